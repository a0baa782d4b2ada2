//! The protection keys: `allow` / `deny`, `[[listener.limit]]`, `[[listener.route.limit]]`,
//! `[[listener.block]]`, `[[listener.route.block]]`, `forward_headers`, `trusted_proxies` on
//! http listeners, a server's `max_conns` with the pool's `queue_size` / `queue_timeout`; and
//! the warnings of `check`.

use std::time::Duration;

use crate::config::{Cidr, ForwardHeaders, LimitKey, Rate, load_str, warnings};

fn errors(src: &str) -> Vec<String> {
    match load_str(src, "p.toml") {
        Ok(_) => Vec::new(),
        Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
    }
}

const POOL: &str = "[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n";
const HTTP: &str = "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n";

#[test]
fn every_key_becomes_the_plan() {
    let src = format!(
        r#"{HTTP}allow = ["10.0.0.0/8", "2001:db8::/32"]
deny = ["10.1.0.0/16"]
trusted_proxies = ["192.0.2.1"]
forward_headers = ["x-forwarded-for", "Forwarded", "X_Forwarded_Host"]
[[listener.limit]]
key = "client_ip"
rate = "100/s"
burst = 50
[[listener.limit]]
key = "header:X-Api-Key"
rate = "600r/m"
size = 1000
[[listener.block]]
method = ["TRACE", "track"]
[[listener.block]]
path_regex = '\.php$'
header = {{ name = "User-Agent", regex = "(?i)sqlmap" }}
[[listener.route]]
path_prefix = "/login"
pool = "p"
deny = ["203.0.113.0/24"]
[[listener.route.limit]]
key = "cookie:session"
rate = "5/h"
[pool.p]
max_conns = 10
queue_size = 20
queue_timeout = "3s"
servers = [ {{ addr = "127.0.0.1:9" }}, {{ addr = "127.0.0.1:8", max_conns = 2 }} ]
"#
    );
    let plan = load_str(&src, "p.toml").unwrap_or_else(|e| panic!("{e}"));
    let l = &plan.listeners[0];
    let g = &l.guard;
    assert_eq!(
        g.allow,
        [
            Cidr::parse("10.0.0.0/8").unwrap(),
            Cidr::parse("2001:db8::/32").unwrap()
        ]
    );
    assert_eq!(g.deny, [Cidr::parse("10.1.0.0/16").unwrap()]);
    assert_eq!(l.trusted_proxies, [Cidr::parse("192.0.2.1").unwrap()]);
    assert_eq!(
        l.l4.accept_proxy, None,
        "trusted_proxies alone: X-Forwarded-For, not PROXY"
    );
    assert_eq!(
        l.forward_headers,
        ForwardHeaders(
            ForwardHeaders::X_FORWARDED_FOR
                | ForwardHeaders::FORWARDED
                | ForwardHeaders::X_FORWARDED_HOST
        )
    );
    assert_eq!(g.limits.len(), 2);
    assert_eq!(g.limits[0].key, LimitKey::ClientIp);
    assert_eq!(
        g.limits[0].rate,
        Rate {
            count: 100,
            per: Duration::from_secs(1)
        }
    );
    assert_eq!((g.limits[0].burst, g.limits[0].size), (50, 65_536));
    assert_eq!(
        g.limits[1].key,
        LimitKey::Header(http::HeaderName::from_static("x-api-key"))
    );
    assert_eq!(
        (g.limits[1].rate.count, g.limits[1].burst, g.limits[1].size),
        (600, 0, 1000)
    );
    assert_eq!(g.blocks.len(), 2);
    assert_eq!(g.blocks[0].methods, ["TRACE", "TRACK"]);
    assert_eq!(g.blocks[1].path_regex.as_deref(), Some(r"\.php$"));
    assert_eq!(
        g.blocks[1].header,
        Some(("user-agent".to_string(), "(?i)sqlmap".to_string()))
    );
    let r = &l.routes[0].guard;
    assert_eq!(r.deny, [Cidr::parse("203.0.113.0/24").unwrap()]);
    assert_eq!(r.limits[0].key, LimitKey::Cookie("session".into()));
    assert_eq!(r.limits[0].rate.per, Duration::from_secs(3600));
    let p = plan.pool("p").unwrap();
    assert_eq!(
        (p.queue_size, p.queue_timeout),
        (20, Duration::from_secs(3))
    );
    let conns: Vec<u32> = p.servers.iter().map(|s| s.max_conns).collect();
    assert_eq!(
        conns,
        [10, 2],
        "the pool's max_conns is each server's default"
    );

    let plain = load_str(&format!("{HTTP}{POOL}"), "p.toml").unwrap();
    assert!(plain.listeners[0].guard.is_empty());
    assert_eq!(
        plain.listeners[0].forward_headers,
        ForwardHeaders::default()
    );
    let p = plain.pool("p").unwrap();
    assert_eq!((p.servers[0].max_conns, p.queue_size), (0, 1024));
    assert_eq!(p.queue_timeout, Duration::from_secs(60));
}

#[test]
fn mistakes_name_their_place_and_the_fix() {
    let e = errors(&format!(
        "{HTTP}[[listener.limit]]\nkey = \"ip\"\nrate = \"100/d\"\n{POOL}"
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(e[0].contains("p.toml:5:7: limit key \"ip\""), "{e:?}");
    assert!(
        e[0].contains("\"client_ip\", \"header:NAME\" or \"cookie:NAME\""),
        "{e:?}"
    );
    assert!(
        e[1].contains("p.toml:6:8: rate: unknown period \"d\""),
        "{e:?}"
    );
    assert!(e[1].contains("\"100/s\""), "{e:?}");

    let e = errors(&format!(
        "{HTTP}[[listener.limit]]\nkey = \"client_ip\"\n{POOL}"
    ));
    assert!(e[0].contains("a limit has no rate"), "{e:?}");

    let e = errors(&format!(
        "{HTTP}[[listener.block]]\npath_regex = \"(\"\n{POOL}"
    ));
    assert!(
        e[0].contains("p.toml:5:14:") && e[0].contains("is not a regular expression"),
        "{e:?}"
    );
    let e = errors(&format!(
        "{HTTP}[[listener.block]]\n[[listener.block]]\nmethod = \"GET X\"\n{POOL}"
    ));
    assert!(e[0].contains("would refuse every request"), "{e:?}");
    assert!(e[1].contains("\"GET X\" is not an HTTP method"), "{e:?}");

    let e = errors(&format!(
        "{HTTP}allow = [\"10.0.0.0/8\"]\ndeny = [\"10.0.0.0/8\", \"x\"]\n{POOL}"
    ));
    assert_eq!(e.len(), 2, "{e:?}");
    assert!(
        e[1].contains("p.toml:5:23: \"x\" is not an address block"),
        "{e:?}"
    );
    let e = errors(&format!(
        "{HTTP}allow = [\"10.0.0.0/8\"]\ndeny = [\"10.0.0.0/8\"]\n{POOL}"
    ));
    assert!(
        e[0].contains("10.0.0.0/8 is in both allow and deny"),
        "{e:?}"
    );

    let e = errors(&format!(
        "{HTTP}forward_headers = [\"x-client-ip\"]\n{POOL}"
    ));
    assert!(
        e[0].contains("forward_headers cannot write \"x-client-ip\""),
        "{e:?}"
    );
    assert!(e[0].contains("use some of: x-forwarded-for"), "{e:?}");

    let tcp = "[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"tcp\"\npool = \"p\"\n";
    let e = errors(&format!(
        "{tcp}deny = [\"10.0.0.0/8\"]\n[[listener.limit]]\nkey = \"client_ip\"\nrate = \"1/s\"\n{POOL}"
    ));
    assert_eq!(
        e.len(),
        1,
        "deny is for every protocol, limit is not: {e:?}"
    );
    assert!(e[0].contains("remove [[listener.limit]]"), "{e:?}");
    let e = errors(&format!(
        "{tcp}[pool.p]\nqueue_size = 5\nservers = [ {{ addr = \"127.0.0.1:9\" }} ]\n"
    ));
    assert!(e[0].contains("an L4 connection is not queued"), "{e:?}");
    let e = errors(&format!("{tcp}trusted_proxies = [\"10.0.0.0/8\"]\n{POOL}"));
    assert!(e[0].contains("accept_proxy_protocol is not true"), "{e:?}");

    let e = errors(&format!(
        "{HTTP}[pool.p]\nqueue_timeout = \"0s\"\nmax_conns = -1\nservers = [ {{ addr = \"127.0.0.1:9\" }} ]\n"
    ));
    assert_eq!(e.len(), 2, "{e:?}");
}

/// A block rule answers 403 unless it says `status` (nginx's `return 404`, HAProxy's
/// `deny_status 404`): 400 to 599, anything else refused at its place with the fix.
#[test]
fn a_block_rule_carries_its_status() {
    let plan = load_str(
        &format!(
            "{HTTP}[[listener.block]]\npath_regex = '^/x'\nstatus = 404\n[[listener.route]]\npath_prefix = \"/\"\npool = \"p\"\n[[listener.route.block]]\nmethod = \"TRACE\"\n{POOL}"
        ),
        "p.toml",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(plan.listeners[0].guard.blocks[0].status, 404);
    assert_eq!(plan.listeners[0].routes[0].guard.blocks[0].status, 403);
    for (bad, col) in [("200", 10), ("399", 10), ("600", 10), ("\"404\"", 10)] {
        let e = errors(&format!(
            "{HTTP}[[listener.block]]\nmethod = \"TRACE\"\nstatus = {bad}\n{POOL}"
        ));
        assert_eq!(e.len(), 1, "{bad}: {e:?}");
        assert!(e[0].contains(&format!("p.toml:6:{col}:")), "{bad}: {e:?}");
    }
    let e = errors(&format!(
        "{HTTP}[[listener.block]]\nmethod = \"TRACE\"\nstatus = 302\n{POOL}"
    ));
    assert!(
        e[0].contains("status = 302 cannot refuse a request")
            && e[0].contains("write a status from 400 to 599, e.g. status = 404"),
        "{e:?}"
    );
}

#[test]
fn check_warns_of_an_open_admin_and_trust_in_everyone() {
    let risky = format!(
        "{HTTP}trusted_proxies = [\"0.0.0.0/0\"]\n{POOL}[admin]\nlisten = \"0.0.0.0:9000\"\ntoken = \"0123456789abcdef0123\"\n"
    );
    let w = warnings(&load_str(&risky, "p.toml").unwrap());
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].starts_with("p.toml:8:10: the admin listener listens on 0.0.0.0:9000"),
        "{w:?}"
    );
    assert!(w[0].contains("listen on 127.0.0.1"), "{w:?}");
    assert!(w[1].contains("trusted_proxies contains 0.0.0.0/0"), "{w:?}");
    let safe = format!(
        "{HTTP}trusted_proxies = [\"10.0.0.0/8\"]\n{POOL}[admin]\nlisten = \"127.0.0.1:9000\"\n"
    );
    assert!(warnings(&load_str(&safe, "p.toml").unwrap()).is_empty());
}

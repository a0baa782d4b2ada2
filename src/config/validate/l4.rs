//! The L4 keys of a listener (`protocol = "tcp"` / `"udp"`): which keys belong to which
//! protocol, their ranges, and the PROXY protocol settings. Called by `listener()` in
//! `validate.rs` with the same [`Checker`], so every mistake is reported with its place.

use std::ops::Range;

use toml::Spanned;

use super::Checker;
use crate::config::HealthKind;
use crate::config::file::{ConfigFile, ListenerFile};
use crate::config::plan::{Cidr, HashKey, L4Plan, PoolPlan, Protocol, ProxyVersion};

const TCP_ONLY: &str = "applies to protocol = \"tcp\" listeners";
const UDP_ONLY: &str = "applies to protocol = \"udp\" listeners";

/// The L4 settings of one listener, reporting keys that do not fit its protocol.
pub(super) fn listener_l4(c: &mut Checker<'_>, f: &ListenerFile, protocol: Protocol) -> L4Plan {
    let mut plan = L4Plan::default();
    let tcp = protocol == Protocol::Tcp;
    let udp = protocol == Protocol::Udp;
    // Accepting PROXY headers also works in front of HTTP (nginx `listen … proxy_protocol`,
    // HAProxy `accept-proxy`): the header is read before hyper and before TLS.
    let http = matches!(protocol, Protocol::Http | Protocol::Https);
    let is = protocol.as_str();

    // Keys of the other protocol (or of L4 on an http listener): name the fix.
    let tcp_keys: [(&str, Option<Range<usize>>); 6] = [
        ("idle_timeout", f.idle_timeout.as_ref().map(|v| v.span())),
        (
            "max_connections",
            f.max_connections.as_ref().map(|v| v.span()),
        ),
        (
            "proxy_protocol",
            f.proxy_protocol.as_ref().map(|v| v.span()),
        ),
        (
            "accept_proxy_protocol",
            f.accept_proxy_protocol.as_ref().map(|v| v.span()),
        ),
        (
            "trusted_proxies",
            f.trusted_proxies.as_ref().map(|v| v.span()),
        ),
        ("splice", f.splice.as_ref().map(|v| v.span())),
    ];
    let udp_keys: [(&str, Option<Range<usize>>); 2] = [
        (
            "session_timeout",
            f.session_timeout.as_ref().map(|v| v.span()),
        ),
        ("max_sessions", f.max_sessions.as_ref().map(|v| v.span())),
    ];
    if !tcp {
        for (key, span) in &tcp_keys {
            if http && matches!(*key, "accept_proxy_protocol" | "trusted_proxies") {
                continue;
            }
            if let Some(span) = span {
                let help = if udp {
                    match *key {
                        "idle_timeout" => "use session_timeout on a udp listener".to_string(),
                        "max_connections" => "use max_sessions on a udp listener".to_string(),
                        _ => format!("remove {key}; UDP listeners do not support it"),
                    }
                } else {
                    format!("set protocol = \"tcp\" or remove {key}")
                };
                c.error(
                    span.clone(),
                    format!("{key} {TCP_ONLY}, not to this {is} listener"),
                    help,
                );
            }
        }
    }
    if !udp {
        for (key, span) in &udp_keys {
            if let Some(span) = span {
                let help = if tcp {
                    match *key {
                        "session_timeout" => "use idle_timeout on a tcp listener",
                        _ => "use max_connections on a tcp listener",
                    }
                    .to_string()
                } else {
                    format!("set protocol = \"udp\" or remove {key}")
                };
                c.error(
                    span.clone(),
                    format!("{key} {UDP_ONLY}, not to this {is} listener"),
                    help,
                );
            }
        }
    }
    if http {
        plan.accept_proxy = accept_proxy(c, f);
    }
    if !(tcp || udp) {
        return plan;
    }

    // L4 sees no HTTP: routes cannot match anything.
    if let Some(r) = f.route.first() {
        c.error(
            r.span(),
            format!("a {is} listener cannot route: it sees no host, path or header"),
            "remove the [[listener.route]] entries and set pool = \"NAME\", or use protocol = \"http\"",
        );
    }
    if f.pool.is_none() && !f.route.is_empty() {
        c.error(
            f.listen.span(),
            format!("this {is} listener has no pool"),
            "add pool = \"NAME\"",
        );
    }

    if tcp {
        plan.idle_timeout =
            positive_duration(c, &f.idle_timeout, "idle_timeout", plan.idle_timeout);
        if let Some(m) = &f.max_connections {
            plan.max_connections = c
                .int_in(m, "max_connections", 1, 10_000_000)
                .map_or(plan.max_connections, |n| n as usize);
        }
        if let Some(v) = &f.proxy_protocol {
            plan.proxy_protocol = match v.get_ref().to_ascii_lowercase().as_str() {
                "v1" | "1" => Some(ProxyVersion::V1),
                "v2" | "2" => Some(ProxyVersion::V2),
                other => {
                    c.error(
                        v.span(),
                        format!("proxy_protocol {other:?} is not a PROXY protocol version"),
                        "use proxy_protocol = \"v1\" or \"v2\"",
                    );
                    None
                }
            };
        }
        if let Some(s) = &f.splice {
            plan.splice = *s.get_ref();
        }
        plan.accept_proxy = accept_proxy(c, f);
    }
    if udp {
        plan.session_timeout = positive_duration(
            c,
            &f.session_timeout,
            "session_timeout",
            plan.session_timeout,
        );
        if let Some(m) = &f.max_sessions {
            plan.max_sessions = c
                .int_in(m, "max_sessions", 1, 10_000_000)
                .map_or(plan.max_sessions, |n| n as usize);
        }
    }
    plan
}

fn positive_duration(
    c: &mut Checker<'_>,
    v: &Option<Spanned<String>>,
    what: &str,
    default: std::time::Duration,
) -> std::time::Duration {
    let Some(v) = v else { return default };
    match c.duration(v, what) {
        Some(d) if d.is_zero() => {
            c.error(
                v.span(),
                format!("{what} must be longer than 0"),
                "write e.g. \"30s\" or \"10m\"",
            );
            default
        }
        Some(d) => d,
        None => default,
    }
}

fn accept_proxy(c: &mut Checker<'_>, f: &ListenerFile) -> Option<Vec<Cidr>> {
    let on = f
        .accept_proxy_protocol
        .as_ref()
        .is_some_and(|a| *a.get_ref());
    match (&f.accept_proxy_protocol, &f.trusted_proxies) {
        (_, Some(t)) if !on => {
            c.error(
                t.span(),
                "trusted_proxies is set but accept_proxy_protocol is not true",
                "add accept_proxy_protocol = true, or remove trusted_proxies",
            );
            None
        }
        (Some(a), None) if on => {
            c.error(
                a.span(),
                "accept_proxy_protocol = true needs trusted_proxies",
                "list who may send PROXY headers: trusted_proxies = [\"10.0.0.0/8\"]",
            );
            None
        }
        (_, Some(t)) => {
            let mut blocks = Vec::new();
            for item in t.get_ref() {
                match Cidr::parse(item.get_ref()) {
                    Some(b) => blocks.push(b),
                    None => c.error(
                        item.span(),
                        format!("{:?} is not an address block", item.get_ref()),
                        "write an address or a block: \"127.0.0.1\", \"10.0.0.0/8\", \"fd00::/8\"",
                    ),
                }
            }
            if t.get_ref().is_empty() {
                c.error(
                    t.span(),
                    "trusted_proxies is empty, so every connection would be refused",
                    "list who may send PROXY headers: trusted_proxies = [\"10.0.0.0/8\"]",
                );
            }
            Some(blocks)
        }
        _ => None,
    }
}

/// A pool behind an L4 listener cannot hash on what only HTTP carries; one that only L4
/// listeners use cannot have HTTP's sticky sessions or retries, and its health check is a TCP
/// connect unless it says otherwise (nginx's stream module does the same).
pub(super) fn check_pools(c: &mut Checker<'_>, parsed: &ConfigFile, pools: &mut [PoolPlan]) {
    let is_l4 = |f: &ListenerFile| {
        f.protocol
            .as_ref()
            .is_some_and(|p| matches!(p.get_ref().as_str(), "tcp" | "udp"))
    };
    // Pools some HTTP listener sends to (default pool, routes, splits).
    let mut http_pools: Vec<&str> = Vec::new();
    for l in parsed
        .listener
        .iter()
        .map(|l| l.get_ref())
        .filter(|f| !is_l4(f))
    {
        http_pools.extend(l.pool.as_ref().map(|p| p.get_ref().as_str()));
        for r in &l.route {
            let r = r.get_ref();
            http_pools.extend(r.pool.as_ref().map(|p| p.get_ref().as_str()));
            for s in r.split.iter().flat_map(|s| s.get_ref()) {
                http_pools.push(s.get_ref().pool.get_ref().as_str());
            }
        }
    }
    let l4_only: Vec<&str> = parsed
        .listener
        .iter()
        .map(|l| l.get_ref())
        .filter(|f| is_l4(f))
        .filter_map(|f| f.pool.as_ref().map(|p| p.get_ref().as_str()))
        .filter(|p| !http_pools.contains(p))
        .collect();
    for name in l4_only {
        let (Some(file), Some(plan)) = (
            parsed.pool.get(name),
            pools.iter_mut().find(|p| p.name == name),
        ) else {
            continue;
        };
        let f = file.get_ref();
        if let Some(sticky) = &f.sticky {
            c.error(
                sticky.span(),
                format!("[pool.{name}.sticky] needs HTTP, but only tcp/udp listeners use this pool"),
                "for client-address affinity at L4 use algorithm = \"ip_hash\" (or \"hash\"), and remove [sticky]",
            );
        }
        if let Some(retry) = &f.retry {
            c.error(
                retry.span(),
                format!("[pool.{name}.retry] applies to HTTP requests, but only tcp/udp listeners use this pool"),
                "remove it: an L4 listener always tries the next server when a connect fails",
            );
        }
        if let (Some(h), Some(health)) = (&f.health, plan.health.as_mut())
            && h.get_ref().kind.is_none()
            && h.get_ref().path.is_none()
        {
            health.kind = HealthKind::Tcp;
        }
    }
    for l in &parsed.listener {
        let f = l.get_ref();
        let is_l4 = f
            .protocol
            .as_ref()
            .is_some_and(|p| matches!(p.get_ref().as_str(), "tcp" | "udp"));
        let Some(pool_name) = f.pool.as_ref().filter(|_| is_l4) else {
            continue;
        };
        if let Some(p) = pools.iter().find(|p| &p.name == pool_name.get_ref())
            && p.algorithm.uses_hash_key()
            && p.hash_key != HashKey::ClientIp
        {
            c.error(
                pool_name.span(),
                format!(
                    "pool {:?} hashes on an HTTP value, which a {} listener cannot see",
                    p.name,
                    f.protocol.as_ref().map_or("", |p| p.get_ref().as_str())
                ),
                format!(
                    "set hash_key = \"client_ip\" in [pool.{}], or give this listener its own pool",
                    p.name
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::config::plan::*;
    use std::time::Duration;

    fn errors(src: &str) -> Vec<String> {
        match super::super::validate(src, "l4.toml") {
            Ok(_) => Vec::new(),
            Err(e) => e.0.iter().map(|e| e.to_string()).collect(),
        }
    }

    #[test]
    fn tcp_and_udp_listeners_become_plans() {
        let src = r#"
[[listener]]
name = "redis"
listen = "127.0.0.1:6380"
protocol = "tcp"
pool = "p"
idle_timeout = "10m"
max_connections = 10000
proxy_protocol = "v2"
accept_proxy_protocol = true
trusted_proxies = ["127.0.0.1/32", "10.0.0.0/8", "::1"]

[[listener]]
name = "dns"
listen = "127.0.0.1:5353"
protocol = "udp"
pool = "p"
session_timeout = "30s"
max_sessions = 100000

[pool.p]
servers = [ { addr = "127.0.0.1:1" } ]
"#;
        let plan = super::super::validate(src, "l4.toml").unwrap();
        let tcp = &plan.listeners[0];
        assert_eq!(tcp.protocol, Protocol::Tcp);
        assert_eq!(tcp.l4.idle_timeout, Duration::from_secs(600));
        assert_eq!(tcp.l4.max_connections, 10000);
        assert_eq!(tcp.l4.proxy_protocol, Some(ProxyVersion::V2));
        let trusted = tcp.l4.accept_proxy.as_ref().unwrap();
        assert_eq!(trusted.len(), 3);
        assert!(trusted[1].contains("10.9.8.7".parse().unwrap()));
        assert!(!trusted[0].contains("127.0.0.2".parse().unwrap()));
        assert!(trusted[0].contains("::ffff:127.0.0.1".parse().unwrap()));
        let udp = &plan.listeners[1];
        assert_eq!(udp.protocol, Protocol::Udp);
        assert_eq!(udp.l4.session_timeout, Duration::from_secs(30));
        assert_eq!(udp.l4.max_sessions, 100000);
    }

    #[test]
    fn keys_of_the_wrong_protocol_are_errors_with_the_fix() {
        let src = r#"
[[listener]]
listen = "127.0.0.1:1"
protocol = "tcp"
pool = "p"
session_timeout = "30s"
  [[listener.route]]
  path_prefix = "/x"
  pool = "p"

[[listener]]
listen = "127.0.0.1:2"
protocol = "udp"
pool = "p"
idle_timeout = "1m"
proxy_protocol = "v3"

[[listener]]
listen = "127.0.0.1:3"
pool = "p"
max_sessions = 5

[pool.p]
servers = [ { addr = "127.0.0.1:1" } ]
"#;
        let e = errors(src);
        assert_eq!(e.len(), 5, "{e:#?}");
        assert!(e[0].contains("l4.toml:6:19: session_timeout applies to protocol = \"udp\""));
        assert!(e[0].contains("use idle_timeout"), "{}", e[0]);
        assert!(
            e[1].contains("l4.toml:7:3: a tcp listener cannot route"),
            "{}",
            e[1]
        );
        assert!(e[2].contains("l4.toml:15:16: idle_timeout applies to protocol = \"tcp\""));
        assert!(e[2].contains("use session_timeout"), "{}", e[2]);
        assert!(
            e[3].contains("l4.toml:16:18: proxy_protocol applies"),
            "{}",
            e[3]
        );
        assert!(
            e[4].contains("l4.toml:21:16: max_sessions applies"),
            "{}",
            e[4]
        );
        assert!(e[4].contains("set protocol = \"udp\""), "{}", e[4]);
    }

    #[test]
    fn proxy_protocol_settings_are_checked() {
        let base = "[pool.p]\nservers = [ { addr = \"127.0.0.1:1\" } ]\n[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"tcp\"\npool = \"p\"\n";
        let e = errors(&format!("{base}proxy_protocol = \"v3\"\n"));
        assert!(e[0].contains("7:18: proxy_protocol \"v3\""), "{e:?}");
        assert!(e[0].contains("\"v1\" or \"v2\""), "{e:?}");
        let e = errors(&format!("{base}accept_proxy_protocol = true\n"));
        assert!(e[0].contains("needs trusted_proxies"), "{e:?}");
        let e = errors(&format!("{base}trusted_proxies = [\"10.0.0.0/8\"]\n"));
        assert!(e[0].contains("accept_proxy_protocol is not true"), "{e:?}");
        let e = errors(&format!(
            "{base}accept_proxy_protocol = true\ntrusted_proxies = [\"10.0.0.0/33\", \"x\"]\n"
        ));
        assert_eq!(e.len(), 2, "{e:?}");
        assert!(
            e[0].contains("8:20: \"10.0.0.0/33\" is not an address block"),
            "{e:?}"
        );
        let e = errors(&format!(
            "{base}idle_timeout = \"0s\"\nmax_connections = 0\n"
        ));
        assert_eq!(e.len(), 2, "{e:?}");
    }

    #[test]
    fn http_listeners_accept_proxy_headers_udp_ones_do_not() {
        for protocol in ["http", "https"] {
            let tls = if protocol == "https" {
                "tls = [ { cert = \"c.pem\", key = \"k.pem\" } ]\n"
            } else {
                ""
            };
            let src = format!(
                "[pool.p]\nservers = [ {{ addr = \"127.0.0.1:1\" }} ]\n[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"{protocol}\"\npool = \"p\"\n{tls}accept_proxy_protocol = true\n"
            );
            let e = errors(&src);
            assert!(
                e.iter().any(|e| e.contains("needs trusted_proxies")),
                "{protocol}: {e:?}"
            );
            assert!(
                !e.iter().any(|e| e.contains("applies to protocol")),
                "{protocol}: {e:?}"
            );
        }
        let src = "[pool.p]\nservers = [ { addr = \"127.0.0.1:1\" } ]\n[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\naccept_proxy_protocol = true\ntrusted_proxies = [\"10.0.0.0/8\"]\n";
        let plan = crate::config::load_str(src, "l4.toml").unwrap();
        assert_eq!(
            plan.listeners[0].l4.accept_proxy,
            Some(vec![Cidr::parse("10.0.0.0/8").unwrap()])
        );
        let e = errors(&src.replace("pool = \"p\"", "protocol = \"udp\"\npool = \"p\""));
        assert!(
            e[0].contains("accept_proxy_protocol applies to protocol = \"tcp\""),
            "{e:?}"
        );
    }

    #[test]
    fn an_l4_pool_cannot_hash_on_http_values() {
        let src = r#"
[[listener]]
listen = "127.0.0.1:1"
protocol = "tcp"
pool = "p"
[pool.p]
algorithm = "hash"
hash_key = "header:x-user"
servers = [ { addr = "127.0.0.1:1" } ]
"#;
        let e = errors(src);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(
            e[0].contains("5:8: pool \"p\" hashes on an HTTP value"),
            "{e:?}"
        );
    }

    #[test]
    fn cidr_blocks() {
        let c = Cidr::parse("192.168.1.77/24").unwrap();
        assert_eq!(c.addr, "192.168.1.0".parse::<std::net::IpAddr>().unwrap());
        assert!(c.contains("192.168.1.200".parse().unwrap()));
        assert!(!c.contains("192.168.2.1".parse().unwrap()));
        assert!(
            Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("8.8.8.8".parse().unwrap())
        );
        assert!(
            !Cidr::parse("0.0.0.0/0")
                .unwrap()
                .contains("::2".parse().unwrap())
        );
        assert!(
            Cidr::parse("fd00::/8")
                .unwrap()
                .contains("fd12::1".parse().unwrap())
        );
        assert!(Cidr::parse("1.2.3.4/x").is_none());
    }

    #[test]
    fn an_l4_only_pool_gets_tcp_checks_and_no_http_settings() {
        let base = "[[listener]]\nname = \"r\"\nlisten = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"p\"\n[pool.p]\nservers = [ { addr = \"127.0.0.1:1\" } ]\n";
        let plan = crate::config::load_str(
            &format!("{base}[pool.p.health]\ninterval = \"1s\"\n"),
            "t.toml",
        )
        .unwrap();
        assert_eq!(
            plan.pools[0].health.as_ref().unwrap().kind,
            crate::config::HealthKind::Tcp
        );
        // An explicit path means an HTTP check of servers behind a TCP listener.
        let plan = crate::config::load_str(
            &format!("{base}[pool.p.health]\npath = \"/up\"\n"),
            "t.toml",
        )
        .unwrap();
        assert_eq!(
            plan.pools[0].health.as_ref().unwrap().kind,
            crate::config::HealthKind::Http
        );

        let errs = errors(&format!(
            "{base}[pool.p.sticky]\nmode = \"cookie\"\n[pool.p.retry]\nattempts = 1\n"
        ));
        assert_eq!(errs.len(), 2, "{errs:#?}");
        assert!(
            errs[0].contains("l4.toml:8:1: [pool.p.sticky] needs HTTP"),
            "{errs:#?}"
        );
        assert!(
            errs[1].contains("[pool.p.retry] applies to HTTP requests"),
            "{errs:#?}"
        );

        // The same pool also behind an HTTP listener keeps its HTTP settings.
        let shared = format!(
            "{base}[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p.sticky]\nmode = \"cookie\"\n"
        );
        assert!(crate::config::load_str(&shared, "t.toml").is_ok());
    }
}

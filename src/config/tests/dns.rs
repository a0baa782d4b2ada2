//! The keys of DNS discovery: a server's `addr` as a host name or an SRV name, `resolve`,
//! and the pool's `resolver`, `resolver_timeout`, `resolver_valid`, `init_addr`. The reader
//! asks no DNS server: names are resolved by `discovery`.

use std::time::Duration;

use crate::config::InitAddr;

fn errors(src: &str) -> String {
    match crate::config::load_str(src, "t.toml") {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

const BASE: &str = "[[listener]]\nlisten = \"127.0.0.1:8080\"\npool = \"p\"\n[pool.p]\n";

#[test]
fn names_are_kept_as_written_for_discovery_with_the_acceptance_spelling() {
    let src = format!(
        "{BASE}resolver = \"127.0.0.1:5353\"\nservers = [ {{ addr = \"127.0.0.1:9001\" }}, {{ addr = \"app.test:8080\", resolve = true }}, {{ addr = \"_http._tcp.app.test\", resolve = true, backup = true }}, {{ addr = \"static.test:80\", weight = 4 }} ]\n"
    );
    let plan = crate::config::load_str(&src, "t.toml").unwrap();
    let p = &plan.pools[0];
    // Only the server written with its address is in `servers`, until discovery runs.
    assert_eq!(p.servers.len(), 1);
    assert_eq!(p.dns.resolvers, ["127.0.0.1:5353".parse().unwrap()]);
    assert_eq!(p.dns.init_addr, InitAddr::Resolve);
    assert_eq!(p.dns.valid, Duration::from_secs(30));
    let n: Vec<_> = p
        .named
        .iter()
        .map(|n| (n.host.as_str(), n.port, n.resolve, n.at, n.server.weight))
        .collect();
    assert_eq!(
        n,
        [
            ("app.test", Some(8080), true, 1, 1),
            ("_http._tcp.app.test", None, true, 1, 1),
            ("static.test", Some(80), false, 1, 4),
        ]
    );
    assert!(p.named[1].server.backup);
    assert_eq!(p.named[0].server.name, "app.test:8080");
    let o = &p.named[0].origin;
    assert_eq!((o.file.as_str(), o.line, o.column), ("t.toml", 6, 51));
}

#[test]
fn the_pool_keys_read_and_a_resolver_takes_a_list_and_a_default_port() {
    let src = format!(
        "{BASE}resolver = [\"10.0.0.2\", \"[::1]:5353\"]\nresolver_timeout = \"2s\"\nresolver_valid = \"5m\"\ninit_addr = \"none\"\nservers = [ {{ addr = \"app.test:8080\", resolve = true }} ]\n"
    );
    let plan = crate::config::load_str(&src, "t.toml").unwrap();
    let d = &plan.pools[0].dns;
    assert_eq!(
        d.resolvers,
        [
            "10.0.0.2:53".parse().unwrap(),
            "[::1]:5353".parse().unwrap()
        ]
    );
    assert_eq!(d.timeout, Duration::from_secs(2));
    assert_eq!(d.valid, Duration::from_secs(300));
    assert_eq!(d.init_addr, InitAddr::None);
    // The bounds of the time between two questions: TTL, at least 1 s, at most valid.
    assert_eq!(d.interval(Duration::ZERO), Duration::from_secs(1));
    assert_eq!(d.interval(Duration::from_secs(60)), Duration::from_secs(60));
    assert_eq!(
        d.interval(Duration::from_secs(86_400)),
        Duration::from_secs(300)
    );
}

#[test]
fn names_written_wrong_say_how_to_write_them() {
    let e = errors(&format!(
        "{BASE}servers = [ {{ addr = \"app.test\" }}, {{ addr = \"_http._tcp.app.test:80\" }}, {{ addr = \"app test:80\" }}, {{ addr = \"10.0.0.300:80\" }} ]\n"
    ));
    for want in [
        "t.toml:5:22: server address \"app.test\" has no port",
        "help: write \"app.test:80\" (host:port); for DNS SRV records, which give the ports, write \"_http._tcp.app.test\"",
        "server address \"_http._tcp.app.test:80\": an SRV name takes no port, its records give the ports",
        "help: write \"_http._tcp.app.test\"",
        "server address \"app test:80\" is not an address",
        "server address \"10.0.0.300:80\" is not an address",
    ] {
        assert!(e.contains(want), "{want:?} missing from:\n{e}");
    }
}

#[test]
fn an_address_written_as_a_url_says_to_drop_the_scheme() {
    let e = errors(&format!(
        "{BASE}servers = [ {{ addr = \"http://127.0.0.1:9003\" }}, {{ addr = \"https://app.test:8443/\" }} ]\n"
    ));
    for want in [
        "t.toml:5:22: server address \"http://127.0.0.1:9003\" is a URL, not host:port",
        "help: drop `http://`: addr is host:port, e.g. \"127.0.0.1:9003\"",
        "server address \"https://app.test:8443/\" is a URL, not host:port",
        "help: drop `https://`: addr is host:port, e.g. \"app.test:8443\" (TLS to servers is the pool's `tls`)",
    ] {
        assert!(e.contains(want), "{want:?} missing from:\n{e}");
    }
    assert!(!e.contains("is not an address"), "{e}");
    let e = errors(&BASE.replace("\"127.0.0.1:8080\"", "\"http://0.0.0.0:80\""));
    assert!(
        e.contains("listen \"http://0.0.0.0:80\" is a URL, not host:port")
            && e.contains("drop `http://`"),
        "{e}"
    );
}

#[test]
fn keys_without_a_use_are_errors_with_the_fix() {
    let e = errors(&format!(
        "{BASE}resolver = \"127.0.0.1:5353\"\ninit_addr = \"none\"\nservers = [ {{ addr = \"127.0.0.1:9001\", resolve = true }} ]\n"
    ));
    for want in [
        "t.toml:5:12: resolver is used only for servers written with a host name, and pool \"p\" has none",
        "t.toml:6:13: init_addr is used only for servers with resolve = true",
        "resolve = true asks DNS again for a host name, but 127.0.0.1:9001 is an address",
        "help: remove resolve, or write the server's host name, e.g. { addr = \"app.internal:9001\", resolve = true }",
    ] {
        assert!(e.contains(want), "{want:?} missing from:\n{e}");
    }
    let e = errors(&format!(
        "{BASE}resolver = \"dns.local\"\ninit_addr = \"later\"\nresolver_valid = \"500ms\"\nservers = [ {{ addr = \"_http._tcp.app.test\", resolve = true, weight = 3 }}, {{ addr = \"APP.test:80\" }}, {{ addr = \"app.test:80\" }} ]\n"
    ));
    for want in [
        "resolver \"dns.local\" is not an IP address",
        "init_addr \"later\" is not understood",
        "resolver_valid = \"500ms\" is shorter than the 1s between two questions about a name",
        "an SRV name's records give the weights",
        "server app.test:80 appears twice in pool \"p\"",
    ] {
        assert!(e.contains(want), "{want:?} missing from:\n{e}");
    }
}

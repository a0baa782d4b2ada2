//! The tests of the L4 keys of listeners and pools (once in `validate/l4.rs`), moved here
//! verbatim.

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
servers = [ { addr = "127.0.0.1:9" } ]
"#;
        let plan = super::super::validate(src, "l4.toml").unwrap();
        let tcp = &plan.listeners[0];
        assert_eq!(tcp.protocol, Protocol::Tcp);
        assert_eq!(tcp.l4.idle_timeout, Duration::from_secs(600));
        assert_eq!(tcp.limits.max_connections, 10000);
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
servers = [ { addr = "127.0.0.1:9" } ]
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
        let base = "[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"tcp\"\npool = \"p\"\n";
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
                "[pool.p]\nservers = [ {{ addr = \"127.0.0.1:9\" }} ]\n[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"{protocol}\"\npool = \"p\"\n{tls}accept_proxy_protocol = true\n"
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
        let src = "[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\naccept_proxy_protocol = true\ntrusted_proxies = [\"10.0.0.0/8\"]\n";
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
servers = [ { addr = "127.0.0.1:9" } ]
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
        let base = "[[listener]]\nname = \"r\"\nlisten = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"p\"\n[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n";
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

    /// The file that passed `check` and then made `run` panic (upstreams indexed by "").
    pub(crate) const TCP_REDIRECT_NO_POOL: &str = "[[listener]]\nlisten = \"127.0.0.1:0\"\nprotocol = \"tcp\"\nredirect_https = true\n\n[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n";

    #[test]
    fn an_l4_listener_needs_a_pool_and_no_http_keys() {
        let e = errors(TCP_REDIRECT_NO_POOL);
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(
            e[0].contains("l4.toml:1:1: this tcp listener has no pool"),
            "{e:#?}"
        );
        assert!(e[0].contains("help: add pool = \"NAME\""), "{e:#?}");
        assert!(
            e[1].contains(
                "l4.toml:4:18: redirect_https is for http/https listeners, not this tcp listener"
            ),
            "{e:#?}"
        );
        assert!(crate::config::load_str(TCP_REDIRECT_NO_POOL, "l4.toml").is_err());

        let src = "[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = \"udp\"\npool = \"p\"\nhsts = \"1y\"\n  [[listener.tls]]\n  cert = \"missing-cert.pem\"\n  key = \"missing-key.pem\"\n";
        let e = errors(src);
        // The certificate files are not loaded: the key itself is the mistake.
        assert_eq!(e.len(), 2, "{e:#?}");
        assert!(
            e[0].contains("7:8: hsts is for http/https listeners, not this udp listener"),
            "{e:#?}"
        );
        assert!(
            e[1].contains("8:3: [[listener.tls]] is for http/https listeners"),
            "{e:#?}"
        );
        assert!(e[1].contains("protocol = \"https\""), "{e:#?}");
        // Without the pool a udp listener says so too.
        let e = errors(&src.replace("pool = \"p\"\n", ""));
        assert!(e[0].contains("this udp listener has no pool"), "{e:#?}");
    }

    #[test]
    fn http_settings_of_an_l4_only_pool_are_errors() {
        let src = r#"
[[listener]]
listen = "127.0.0.1:0"
protocol = "tcp"
pool = "p"
[pool.p]
upstream_protocol = "h2"
tunnel_idle_timeout = "1m"
keepalive = 8
host_header = "upstream"
timeouts = { connect = "1s", read = "5s", client_body = "5s" }
tls = { server_name = "db.internal" }
servers = [ { addr = "127.0.0.1:9" } ]
"#;
        let e = errors(src);
        assert_eq!(e.len(), 7, "{e:#?}");
        for (i, (at, key)) in [
            ("7:21", "upstream_protocol"),
            ("8:23", "tunnel_idle_timeout"),
            ("9:13", "keepalive"),
            ("10:15", "host_header"),
            ("11:37", "timeouts.read"),
            ("11:57", "timeouts.client_body"),
            ("12:7", "tls"),
        ]
        .iter()
        .enumerate()
        {
            assert!(
                e[i].contains(&format!("l4.toml:{at}: {key} in [pool.p] is for HTTP, but only tcp/udp listeners use this pool")),
                "{i}: {e:#?}"
            );
        }
        assert!(
            e[6].contains("L4 passes bytes through as they are"),
            "{e:#?}"
        );
        // timeouts.connect is what L4 uses.
        let ok = "[[listener]]\nlisten = \"127.0.0.1:0\"\nprotocol = \"tcp\"\npool = \"p\"\n[pool.p]\ntimeouts = { connect = \"1s\" }\nservers = [ { addr = \"127.0.0.1:9\" } ]\n";
        assert!(crate::config::load_str(ok, "l4.toml").is_ok());
    }

    #[test]
    fn tls_on_a_pool_shared_by_l4_and_http_is_an_error() {
        let src = r#"
[[listener]]
listen = "127.0.0.1:0"
protocol = "tcp"
pool = "p"
[[listener]]
listen = "127.0.0.1:0"
pool = "p"
[pool.p]
upstream_protocol = "h2"
keepalive = 8
tls = { server_name = "db.internal" }
servers = [ { addr = "127.0.0.1:9" } ]
"#;
        let e = errors(src);
        // The HTTP side uses upstream_protocol and keepalive; the tcp side would send
        // plaintext to servers that expect TLS.
        assert_eq!(e.len(), 1, "{e:#?}");
        assert!(
            e[0].contains("l4.toml:12:7: pool \"p\" has tls, but a tcp/udp listener uses it too"),
            "{e:#?}"
        );
        assert!(
            e[0].contains("give the tcp/udp listener its own pool"),
            "{e:#?}"
        );
    }
}

//! The tests of the health, retry, passive-health, sticky and admin settings (once in
//! `validate/failover.rs`), moved here verbatim.

use super::parse_expect;
use crate::config::*;
use http::Method;
use std::time::Duration;

#[cfg(test)]
mod tests {
    use super::super::validate;
    use super::*;

    const BASE: &str = "[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nservers = [ { addr = \"127.0.0.1:9001\" }, { addr = \"127.0.0.1:9002\", max_fails = 0, slow_start = \"5s\" } ]\n";

    #[test]
    fn defaults_are_nginx_s() {
        let plan = validate(BASE, "t.toml").unwrap();
        let p = plan.pool("p").unwrap();
        assert_eq!(p.health, None);
        assert_eq!(p.retry, RetryPlan::default());
        assert_eq!(p.servers[0].passive, PassivePlan::default());
        assert_eq!(p.servers[0].passive.max_fails, 1);
        assert_eq!(p.servers[0].passive.fail_timeout, Duration::from_secs(10));
        assert_eq!(p.servers[1].passive.max_fails, 0);
        assert_eq!(p.servers[1].slow_start, Duration::from_secs(5));
        assert_eq!(plan.admin, None);
    }

    #[test]
    fn full_sections_become_plans() {
        let src = format!(
            "{BASE}max_fails = 3\nfail_timeout = \"30s\"\n[pool.p.health]\ntype = \"http\"\npath = \"/health\"\nexpect = \"200-299,302\"\nexpect_body = \"ok\"\ninterval = \"3s\"\ntimeout = \"1s\"\nrise = 2\nfall = 3\n[pool.p.retry]\nattempts = 3\non = [\"connect_failure\", \"503\"]\nnon_idempotent = true\nbudget = 0.5\n[pool.p.sticky]\nmode = \"cookie\"\nname = \"SRV\"\nttl = \"2h\"\n[admin]\nlisten = \"127.0.0.1:9900\"\n"
        );
        let plan = validate(&src, "t.toml").unwrap();
        let p = plan.pool("p").unwrap();
        let h = p.health.as_ref().unwrap();
        assert_eq!(h.expect, vec![(200, 299), (302, 302)]);
        assert!(h.status_passes(302) && !h.status_passes(301));
        assert_eq!((h.rise, h.fall, h.interval), (2, 3, Duration::from_secs(3)));
        assert_eq!(p.retry.attempts, 3);
        assert!(p.retry.on.connect_failure && !p.retry.on.timeout && p.retry.on.status(503));
        assert!(!p.retry.on.status(502));
        assert!(p.retry.non_idempotent);
        assert_eq!(p.servers[0].passive.max_fails, 3);
        assert_eq!(p.servers[0].passive.fail_timeout, Duration::from_secs(30));
        // The server's own max_fails wins over the pool's.
        assert_eq!(p.servers[1].passive.max_fails, 0);
        let s = p.sticky.as_ref().unwrap();
        assert_eq!(
            (s.mode, s.name.as_str(), s.ttl),
            (StickyMode::Cookie, "SRV", Duration::from_secs(7200))
        );
        assert_eq!(plan.admin.unwrap().listen.port(), 9900);
    }

    #[test]
    fn mistakes_are_reported_with_their_place() {
        let src = format!(
            "{BASE}[pool.p.health]\ntype = \"udp\"\nexpect = \"2xx\"\ninterval = \"1s\"\ntimeout = \"5s\"\nrise = 0\n[pool.p.retry]\non = [\"bogus\"]\nbudget = -1.0\n[pool.p.sticky]\nmode = \"app_cookie\"\n"
        );
        let errs = validate(&src, "t.toml").unwrap_err();
        let text = errs.to_string();
        assert_eq!(errs.0.len(), 7, "{text}");
        assert!(
            text.contains("t.toml:7:8: unknown health check type \"udp\""),
            "{text}"
        );
        assert!(text.contains("t.toml:8:10: expect \"2xx\""), "{text}");
        assert!(
            text.contains("t.toml:10:11: timeout (5s) is longer than interval (1s)"),
            "{text}"
        );
        assert!(
            text.contains("t.toml:11:8: rise = 0 is out of range"),
            "{text}"
        );
        assert!(
            text.contains("t.toml:13:7: retry condition \"bogus\""),
            "{text}"
        );
        assert!(
            text.contains("t.toml:14:10: budget = -1 is out of range"),
            "{text}"
        );
        assert!(
            text.contains("needs the application's cookie name"),
            "{text}"
        );
    }

    #[test]
    fn a_single_server_is_never_taken_out_passively() {
        let src = "[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nmax_fails = 3\nslow_start = \"10s\"\nservers = [ { addr = \"127.0.0.1:9001\" } ]\n";
        let plan = validate(src, "t.toml").unwrap();
        let s = &plan.pool("p").unwrap().servers[0];
        assert_eq!((s.passive.max_fails, s.slow_start), (0, Duration::ZERO));
    }

    #[test]
    fn expect_lists() {
        assert_eq!(parse_expect("200"), Some(vec![(200, 200)]));
        assert_eq!(
            parse_expect(" 200-299 , 302"),
            Some(vec![(200, 299), (302, 302)])
        );
        for bad in ["", "2xx", "300-200", "99", "200-700", "200,"] {
            assert_eq!(parse_expect(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn probe_methods_and_timeouts() {
        let with = |health: &str| format!("{BASE}[pool.p.health]\n{health}");
        let errs = |health: &str| validate(&with(health), "t.toml").unwrap_err().to_string();
        let plan = validate(&with("method = \"head\"\n"), "t.toml").unwrap();
        assert_eq!(plan.pools[0].health.as_ref().unwrap().method, Method::HEAD);
        for m in ["OPTIONS", "POST", "DELETE"] {
            assert!(validate(&with(&format!("method = \"{m}\"\n")), "t.toml").is_ok());
        }
        for bad in ["FOO", "CONNECT", "G ET"] {
            let text = errs(&format!("method = \"{bad}\"\n"));
            assert!(
                text.contains(&format!(
                    "t.toml:7:10: \"{bad}\" is not a method a health check can send"
                )),
                "{text}"
            );
            assert!(text.contains("use one of: GET, HEAD"), "{text}");
        }
        let text = errs("method = \"HEAD\"\nexpect_body = \"ok\"\n");
        assert!(
            text.contains(
                "t.toml:8:15: expect_body with method = \"HEAD\": an answer to HEAD has no body"
            ),
            "{text}"
        );
        // A short interval alone shortens the default timeout (1s) to it.
        let short = validate(&with("interval = \"500ms\"\n"), "t.toml").unwrap();
        let h = short.pools[0].health.as_ref().unwrap();
        assert_eq!(
            (h.interval, h.timeout),
            (Duration::from_millis(500), Duration::from_millis(500))
        );
        // And a timeout against the default interval (2s).
        let text = errs("timeout = \"3s\"\n");
        assert!(
            text.contains("t.toml:7:11: timeout (3s) is longer than interval (2s, the default)"),
            "{text}"
        );
        // The fix it names is valid, as docs/health-and-stickiness.md says: at most interval.
        assert!(text.contains("set timeout = \"2s\" or less"), "{text}");
        assert!(validate(&with("timeout = \"2s\"\n"), "t.toml").is_ok());
        let text = errs("interval = \"500ms\"\ntimeout = \"1s\"\n");
        assert!(text.contains("set timeout = \"500ms\" or less"), "{text}");
        assert!(
            validate(
                &with("interval = \"500ms\"\ntimeout = \"500ms\"\n"),
                "t.toml"
            )
            .is_ok()
        );
        assert!(
            validate(
                &with("interval = \"500ms\"\ntimeout = \"200ms\"\n"),
                "t.toml"
            )
            .is_ok()
        );
        let text = errs("interval = \"0s\"\n");
        assert!(text.contains("interval under 10ms"), "{text}");
    }

    #[test]
    fn grpc_checks_need_an_h2_pool_and_no_http_keys() {
        let pool = |extra: &str, health: &str| {
            format!(
                "[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"g\"\n[pool.g]\n{extra}servers = [ {{ addr = \"127.0.0.1:9001\" }} ]\n[pool.g.health]\n{health}"
            )
        };
        let kind = |src: &str| {
            validate(src, "t.toml").unwrap().pools[0]
                .health
                .clone()
                .unwrap()
                .kind
        };
        let errs = |src: &str| validate(src, "t.toml").unwrap_err().to_string();
        let grpc = |service: &str| HealthKind::Grpc {
            service: service.into(),
        };
        // Over h2c and h2 (TLS), the whole server or one service.
        let h2c = "upstream_protocol = \"h2c\"\n";
        assert_eq!(kind(&pool(h2c, "type = \"grpc\"\n")), grpc(""));
        assert_eq!(
            kind(&pool(
                "upstream_protocol = \"h2\"\n",
                "type = \"grpc\"\nservice = \"test.Echo\"\nhost = \"g.internal\"\n"
            )),
            grpc("test.Echo")
        );
        // An HTTP/1.1 pool, by default or as written: the error is at `type`, with the fix.
        let text = errs(&pool("", "type = \"grpc\"\n"));
        assert!(
            text.contains("t.toml:7:8: a type = \"grpc\" health check speaks HTTP/2, but pool \"g\" speaks HTTP/1.1, the default to its servers"),
            "{text}"
        );
        assert!(
            text.contains("set upstream_protocol = \"h2c\" in [pool.g]"),
            "{text}"
        );
        let text = errs(&pool("upstream_protocol = \"h1\"\n", "type = \"grpc\"\n"));
        assert!(
            text.contains("t.toml:8:8: a type = \"grpc\" health check speaks HTTP/2, but pool \"g\" speaks upstream_protocol = \"h1\" to its servers"),
            "{text}"
        );
        // HTTP keys, each named where it is written.
        let errs_of = |src: &str| validate(src, "t.toml").unwrap_err();
        let e = errs_of(&pool(
            h2c,
            "type = \"grpc\"\npath = \"/health\"\nmethod = \"GET\"\nexpect = \"200\"\nexpect_body = \"ok\"\n",
        ));
        let text = e.to_string();
        assert_eq!(e.0.len(), 4, "{text}");
        for (line_col, key) in [
            ("9:8", "path"),
            ("10:10", "method"),
            ("11:10", "expect"),
            ("12:15", "expect_body"),
        ] {
            assert!(
                text.contains(&format!(
                    "t.toml:{line_col}: {key} is not used by type = \"grpc\" health checks"
                )),
                "{key}: {text}"
            );
        }
        assert!(
            text.contains("remove path: a gRPC check always calls /grpc.health.v1.Health/Check"),
            "{text}"
        );
        // `service` belongs to gRPC checks only.
        let text = errs(&pool(h2c, "path = \"/up\"\nservice = \"x\"\n"));
        assert!(
            text.contains("t.toml:9:11: service is only used by type = \"grpc\" health checks"),
            "{text}"
        );
    }

    const TWO_STICKY: &str = r#"
[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "a"
  [[listener.route]]
  path_prefix = "/b/"
  pool = "b"
[pool.a]
servers = [ { addr = "127.0.0.1:9001" } ]
[pool.a.sticky]
mode = "cookie"
[pool.b]
servers = [ { addr = "127.0.0.1:9002" } ]
[pool.b.sticky]
mode = "cookie"
"#;

    #[test]
    fn sticky_pools_of_one_listener_need_their_own_cookie() {
        // Both on the default name SRV.
        let errs = validate(TWO_STICKY, "t.toml").unwrap_err();
        let text = errs.to_string();
        assert_eq!(errs.0.len(), 1, "{text}");
        assert!(
            text.contains("t.toml:15:1: pools \"a\" and \"b\" both use the sticky cookie \"SRV\" on listener \"web\""),
            "{text}"
        );
        assert!(
            text.contains(
                "name = \"SRV_a\" in [pool.a.sticky] and name = \"SRV_b\" in [pool.b.sticky]"
            ),
            "{text}"
        );
        // The same name written out, reached through a split.
        let named = TWO_STICKY
            .replace(
                "pool = \"b\"\n",
                "split = [ { pool = \"a\", weight = 1 }, { pool = \"b\", weight = 1 } ]\n",
            )
            .replace("mode = \"cookie\"\n", "mode = \"cookie\"\nname = \"S\"\n");
        let text = validate(&named, "t.toml").unwrap_err().to_string();
        assert!(
            text.contains("t.toml:18:8: pools \"a\" and \"b\" both use the sticky cookie \"S\""),
            "{text}"
        );
        assert!(text.contains("name = \"S_a\" in [pool.a.sticky]"), "{text}");
        // Switchyard's cookie on the application's session cookie.
        let app = TWO_STICKY.replacen(
            "[pool.b.sticky]\nmode = \"cookie\"\n",
            "[pool.b.sticky]\nmode = \"app_cookie\"\nname = \"SRV\"\n",
            1,
        );
        let text = validate(&app, "t.toml").unwrap_err().to_string();
        assert!(
            text.contains("both use the sticky cookie \"SRV\""),
            "{text}"
        );
        assert!(
            text.contains("name = \"SRV_a\" in [pool.a.sticky]"),
            "{text}"
        );
        // Distinct names, or pools on different listeners, are fine.
        let distinct = TWO_STICKY.replacen(
            "mode = \"cookie\"\n",
            "mode = \"cookie\"\nname = \"SRV_a\"\n",
            1,
        );
        assert!(validate(&distinct, "t.toml").is_ok());
        let apart = TWO_STICKY.replace(
            "  [[listener.route]]\n  path_prefix = \"/b/\"\n  pool = \"b\"\n",
            "[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"b\"\n",
        );
        assert!(
            validate(&apart, "t.toml").is_ok(),
            "{:?}",
            validate(&apart, "t.toml")
        );
        // Virtual hosts: cookies carry no Domain, so pools behind disjoint exact hosts
        // never see each other's; a wildcard, or the listener's default pool, may.
        let vhosts = |a: &str, b: &str| {
            format!(
                "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n  [[listener.route]]\n  host = \"{a}\"\n  pool = \"a\"\n  [[listener.route]]\n  host = \"{b}\"\n  pool = \"b\"\n{}",
                &TWO_STICKY[TWO_STICKY.find("[pool.a]").unwrap()..]
            )
        };
        assert!(validate(&vhosts("a.example.com", "b.example.com"), "t.toml").is_ok());
        for (a, b) in [
            ("a.example.com", "a.example.com"),
            ("*.example.com", "b.example.com"),
        ] {
            let text = validate(&vhosts(a, b), "t.toml").unwrap_err().to_string();
            assert!(
                text.contains("both use the sticky cookie \"SRV\""),
                "{a} {b}: {text}"
            );
        }
    }
}

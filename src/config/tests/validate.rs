//! The tests of the rules that turn a file into a `Plan` (once in `validate.rs`), moved here
//! verbatim so that they outlive the reader they were written against: they reach it only
//! through `super::validate` (`config::load_str`) and the public plan types.

use super::validate;
use crate::config::*;
use std::time::Duration;

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[listener]]
name = "web"
listen = "127.0.0.1:8080"
pool = "web"

  [[listener.route]]
  path_prefix = "/api/"
  pool = "api"

  [[listener.route]]
  host = "*.example.com"
  split = [ { pool = "web", weight = 90 }, { pool = "api", weight = 10 } ]

[pool.web]
servers = [ { addr = "127.0.0.1:9001" } ]

[pool.api]
algorithm = "least_conn"
keepalive = 16
timeouts = { connect = "5s", read = "60s", send = "1m" }
servers = [
  { addr = "127.0.0.1:9002", weight = 3 },
  { addr = "127.0.0.1:9003", weight = 2, backup = true },
]
"#;

    #[test]
    fn a_good_file_becomes_a_plan() {
        let plan = validate(GOOD, "good.toml").unwrap();
        assert_eq!(plan.listeners.len(), 1);
        let l = &plan.listeners[0];
        assert_eq!(l.default_pool.as_deref(), Some("web"));
        assert_eq!(l.routes.len(), 2);
        assert_eq!(
            l.routes[1].matcher.host,
            Some(HostMatch::Suffix(".example.com".into()))
        );
        let api = plan.pool("api").unwrap();
        assert_eq!(api.algorithm, Algorithm::LeastConn);
        assert_eq!(api.keepalive, 16);
        assert_eq!(api.timeouts.connect, Duration::from_secs(5));
        assert_eq!(api.servers[0].weight, 3);
        assert!(api.servers[1].backup);
    }

    #[test]
    fn every_error_is_reported_with_its_place() {
        let bad = r#"
[[listener]]
name = "web"
listen = "nowhere"
pool = "missing"

[pool.empty]
servers = []

[pool.z]
algorithm = "fastest"
servers = [ { addr = "127.0.0.1:1", weight = 0 } ]
"#;
        let errs = validate(bad, "bad.toml").unwrap_err().0;
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 5, "{text:#?}");
        assert!(
            text[0].starts_with("error: bad.toml:4:10: listen \"nowhere\" is not an address"),
            "{}",
            text[0]
        );
        assert!(
            text[1].contains("bad.toml:5:8: no pool named \"missing\""),
            "{}",
            text[1]
        );
        assert!(
            text[2].contains("bad.toml:8:11: pool \"empty\" has no servers"),
            "{}",
            text[2]
        );
        assert!(
            text[3].contains("bad.toml:11:13: unknown algorithm \"fastest\""),
            "{}",
            text[3]
        );
        assert!(
            text[4].contains("bad.toml:12:46: weight = 0 is out of range"),
            "{}",
            text[4]
        );
        assert!(errs.iter().all(|e| e.help.is_some()));
    }

    #[test]
    fn a_bare_port_listens_on_every_ipv4_address() {
        let src = "[[listener]]\nlisten = \"8080\"\npool = \"p\"\n[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n";
        let plan = validate(src, "f.toml").unwrap();
        assert_eq!(plan.listeners[0].listen, "0.0.0.0:8080".parse().unwrap());
        // Only listen: a server needs its host.
        let errs = validate(&src.replace("127.0.0.1:9", "9"), "f.toml")
            .unwrap_err()
            .0;
        assert!(errs[0].message.contains("is not an address"), "{errs:?}");
    }

    /// HAProxy's `bind :8080` and `bind *:8080` (nginx's `listen *:8080`) as `listen`: the
    /// help says what to write, rather than "write host:port" or "\"*\" does not resolve".
    #[test]
    fn a_wildcard_listen_says_how_to_write_every_address() {
        for listen in [":8080", "*:8080"] {
            let src = format!(
                "[[listener]]\nlisten = \"{listen}\"\npool = \"p\"\n[pool.p]\nservers = [ {{ addr = \"127.0.0.1:9\" }} ]\n"
            );
            let errs = validate(&src, "f.toml").unwrap_err().0;
            assert_eq!(errs.len(), 1, "{errs:?}");
            let help = errs[0].help.as_deref().unwrap_or("");
            assert!(help.contains("\"0.0.0.0:8080\""), "{listen}: {errs:?}");
            // IPv6 listeners are bound IPv6-only: "[::]" is a second listener, not a swap.
            assert!(help.contains("second [[listener]]"), "{listen}: {errs:?}");
            assert!(
                help.contains("\"[::]:8080\" (IPv6 only)"),
                "{listen}: {errs:?}"
            );
            assert!(errs[0].to_string().contains("f.toml:2:10:"), "{errs:?}");
        }
    }

    /// nginx's `[upstream.p]` (HAProxy's `[backend.p]`) sent to by `pool = "p"`: one error,
    /// "did you mean `pool`?"; "no pool named \"p\"" would only repeat it.
    #[test]
    fn an_upstream_table_for_a_pool_is_one_error_not_two() {
        for word in ["upstream", "backend"] {
            let src = format!(
                "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n[{word}.p]\nservers = [ {{ addr = \"127.0.0.1:9\" }} ]\n"
            );
            let errs = validate(&src, "f.toml").unwrap_err().0;
            assert_eq!(errs.len(), 1, "{word}: {errs:?}");
            assert!(
                errs[0].to_string().contains("did you mean `pool`?"),
                "{errs:?}"
            );
            // Another name is still missing, and said so.
            let other = validate(&src.replace("pool = \"p\"", "pool = \"q\""), "f.toml");
            let errs = other.unwrap_err().0;
            assert!(
                errs.iter().any(|e| e.message == "no pool named \"q\""),
                "{errs:?}"
            );
        }
    }

    #[test]
    fn unknown_keys_are_named_with_their_place() {
        let bad = "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\nlisen = 1\n[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n";
        let errs = validate(bad, "f.toml").unwrap_err().0;
        assert_eq!(errs.len(), 1);
        assert_eq!((errs[0].line, errs[0].column), (4, 1));
        assert!(
            errs[0].message.contains("unknown field `lisen`"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn duplicate_listener_names_and_servers_are_errors() {
        let bad = r#"
[[listener]]
name = "a"
listen = "127.0.0.1:1"
pool = "p"
[[listener]]
name = "a"
listen = "127.0.0.1:2"
pool = "p"
[pool.p]
servers = [ { addr = "127.0.0.1:9" }, { addr = "127.0.0.1:9" } ]
"#;
        let errs = validate(bad, "f.toml").unwrap_err().0;
        let text = ConfigErrors(errs.clone()).to_string();
        assert_eq!(errs.len(), 2, "{text}");
        assert!(
            text.contains("f.toml:11:48: server 127.0.0.1:9 appears twice in pool \"p\""),
            "{text}"
        );
        assert!(text.contains("listener name \"a\" is used twice"), "{text}");
    }

    /// A route's `name` labels it (its position otherwise); two of one listener, a number,
    /// `default` or `-` are errors at the name with the fix; two listeners may share one.
    #[test]
    fn route_names_label_routes_and_are_unique_per_listener() {
        let route =
            |name: &str| format!("[[listener.route]]\n{name}path_prefix = \"/a\"\npool = \"p\"\n");
        let file = |routes: &str, more: &str| {
            format!(
                "[[listener]]\nname = \"a\"\nlisten = \"127.0.0.1:1\"\n{routes}{more}[pool.p]\nservers = [ {{ addr = \"127.0.0.1:9\" }} ]\n"
            )
        };
        let other = format!(
            "[[listener]]\nname = \"b\"\nlisten = \"127.0.0.1:2\"\n{}",
            route("name = \"api\"\n")
        );
        let plan = validate(
            &file(
                &format!("{}{}", route("name = \"api\"\n"), route("")),
                &other,
            ),
            "f.toml",
        )
        .unwrap();
        let labels: Vec<String> = (plan.listeners[0].routes.iter().enumerate())
            .map(|(i, r)| r.label(i))
            .collect();
        assert_eq!(labels, ["api", "2"]);
        assert_eq!(plan.listeners[1].routes[0].label(0), "api");

        let twice = file(
            &format!("{}{}", route("name = \"api\"\n"), route("name = \"api\"\n")),
            "",
        );
        let text = validate(&twice, "f.toml").unwrap_err().to_string();
        assert!(
            text.contains("f.toml:9:8: route name \"api\" is used twice in listener \"a\"")
                && text.contains("give every [[listener.route]] of a listener its own name"),
            "{text}"
        );
        for taken in ["2", "default", "-", ""] {
            let bad = file(&route(&format!("name = {taken:?}\n")), "");
            let text = validate(&bad, "f.toml").unwrap_err().to_string();
            assert!(
                text.contains(&format!(
                    "f.toml:5:8: route name {taken:?} is a label of its own"
                )) && text.contains("e.g. name = \"api\""),
                "{taken}: {text}"
            );
        }
    }

    #[test]
    fn shape_errors_and_other_errors_come_in_one_run() {
        let bad = r#"
[[listener]]
listen = "127.0.0.1:1"
pool = "web"
timeout = "5s"
  [[listener.route]]
  path_prefix = "/api/"
  pool = "api"

[pool.web]
servers = [ { addr = "127.0.0.1:9", weight = 0 } ]
"#;
        let errs = validate(bad, "f.toml").unwrap_err().0;
        let text = ConfigErrors(errs.clone()).to_string();
        assert_eq!(errs.len(), 3, "{text}");
        assert!(
            text.starts_with("error: f.toml:5:1: unknown field `timeout`"),
            "{text}"
        );
        assert!(
            errs[1]
                .to_string()
                .contains("f.toml:8:10: no pool named \"api\""),
            "{text}"
        );
        assert!(
            errs[2]
                .to_string()
                .contains("f.toml:11:46: weight = 0 is out of range"),
            "{text}"
        );
    }

    #[test]
    fn a_route_host_may_start_with_any_character() {
        // Once a panic: the wildcard check sliced the host at byte 1.
        let config = |host: &str| {
            format!(
                "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n  [[listener.route]]\n  host = \"{host}\"\n  pool = \"p\"\n[pool.p]\nservers = [ {{ addr = \"127.0.0.1:9\" }} ]\n"
            )
        };
        for host in ["ü.example.com", "é"] {
            let plan = validate(&config(host), "f.toml").expect(host);
            assert_eq!(plan.listeners[0].routes.len(), 1, "{host}");
        }
        let errs = validate(&config("*ü.example.com"), "f.toml").unwrap_err();
        assert_eq!(errs.0.len(), 1);
        assert_eq!(
            errs.to_string().lines().next().unwrap(),
            "error: f.toml:5:10: wildcard host \"*ü.example.com\" must start with \"*.\""
        );
    }

    #[test]
    fn an_upper_case_protocol_is_an_error_and_the_listener_is_still_checked() {
        let src = r#"
[[listener]]
listen = "127.0.0.1:7000"
protocol = "TCP"
pool = "r"
[pool.r]
keepalive = 8
servers = [ { addr = "127.0.0.1:9" } ]
"#;
        let errs = validate(src, "f.toml").unwrap_err();
        let text = errs.to_string();
        assert_eq!(errs.0.len(), 2, "{text}");
        assert!(
            text.contains("f.toml:4:12: unknown protocol \"TCP\"")
                && text.contains("names are lowercase: write protocol = \"tcp\""),
            "{text}"
        );
        assert!(text.contains("keepalive in [pool.r] is for HTTP"), "{text}");
    }

    #[test]
    fn a_chain_of_local_listeners_is_fine_and_a_loop_is_not() {
        // tcp :7000 -> http :7001 -> the real server: a chain, as with PROXY headers.
        let chain = r#"
[[listener]]
name = "edge"
listen = "127.0.0.1:7000"
protocol = "tcp"
pool = "hop"
[[listener]]
name = "web"
listen = "127.0.0.1:7001"
pool = "app"
[pool.hop]
servers = [ { addr = "127.0.0.1:7001" } ]
[pool.app]
servers = [ { addr = "127.0.0.1:9" } ]
"#;
        assert!(validate(chain, "f.toml").is_ok());
        // :7000 -> :7001 -> :7000: each listener of the loop is named.
        let looped = chain.replace("addr = \"127.0.0.1:9\"", "addr = \"127.0.0.1:7000\"");
        let errs = validate(&looped, "f.toml").unwrap_err().0;
        let text = ConfigErrors(errs.clone()).to_string();
        assert_eq!(errs.len(), 2, "{text}");
        assert!(
            text.contains("listener \"edge\" sends through pool \"hop\" (server \"127.0.0.1:7001\") to listener \"web\", whose traffic comes back to it"),
            "{text}"
        );
        assert!(
            text.contains("listener \"web\" sends through pool \"app\""),
            "{text}"
        );
    }

    #[test]
    fn a_typo_in_a_pool_still_lets_its_servers_be_checked() {
        let bad = r#"
[[listener]]
listen = "127.0.0.1:1"
pool = "web"

[pool.web]
algoritm = "least_conn"
servers = [ { addr = "127.0.0.1:9", weight = 0 } ]
"#;
        let errs = validate(bad, "f.toml").unwrap_err().0;
        let text = ConfigErrors(errs.clone()).to_string();
        assert_eq!(errs.len(), 2, "{text}");
        assert!(
            text.contains("f.toml:7:1: unknown field `algoritm`"),
            "{text}"
        );
        assert!(
            text.contains("f.toml:8:46: weight = 0 is out of range"),
            "{text}"
        );
    }

    #[test]
    fn a_shape_error_brings_no_follow_on_errors() {
        let pool = "[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n";
        for (src, only) in [
            // A misspelt key is absent, but "has no servers" / "sends traffic nowhere" / "a
            // route has no pool" would blame the user twice for one typo.
            (
                "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n[pool.p]\nserver = [ { addr = \"127.0.0.1:9\" } ]\n"
                    .to_string(),
                "unknown field `server`",
            ),
            (
                format!("[[listener]]\nlisten = \"127.0.0.1:1\"\npol = \"p\"\n{pool}"),
                "unknown field `pol`",
            ),
            (
                format!(
                    "[[listener]]\nlisten = \"127.0.0.1:1\"\n[[listener.route]]\npol = \"p\"\n{pool}"
                ),
                "unknown field `pol`",
            ),
            (
                "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n[pool.p]\nservers = 3\n"
                    .to_string(),
                "servers must be an array",
            ),
            // A wrong-typed protocol is unknown, not "http": no "idle_timeout applies to tcp".
            (
                format!(
                    "[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = 4\nidle_timeout = \"1m\"\npool = \"p\"\n{pool}"
                ),
                "protocol must be a string, in quotes",
            ),
            // A misspelt [[listener]]: its own error, not also "the file has no [[listener]]"
            // listed first.
            (
                format!("[[listner]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n{pool}"),
                "unknown field `listner`",
            ),
            // The only listener has no address: not also "the file has no [[listener]]".
            (
                format!("[[listener]]\npool = \"p\"\n{pool}"),
                "listener \"listener1\" has no listen address",
            ),
            // A misspelt required key: not also "has no listen address" / "has no addr".
            (
                format!("[[listener]]\nlistn = \"127.0.0.1:1\"\npool = \"p\"\n{pool}"),
                "unknown field `listn`",
            ),
            (
                "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n[pool.p]\nservers = [ { adr = \"127.0.0.1:9\" } ]\n"
                    .to_string(),
                "unknown field `adr`",
            ),
            (
                format!("[[listener]]\nlisten = 1\npool = \"p\"\n{pool}"),
                "listen must be a string, in quotes",
            ),
            (
                format!(
                    "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n{pool}[pool.p.sticky]\nmod = \"cookie\"\n"
                ),
                "unknown field `mod`",
            ),
            // A wrong-typed interval is not compared with the timeout as the default.
            (
                format!(
                    "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n{pool}[pool.p.health]\ninterval = 1\ntimeout = \"3s\"\n"
                ),
                "interval = 1 needs a unit",
            ),
            // A pool that could not be read still exists for the routes that name it.
            (
                "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n[pool]\np = 1\n".to_string(),
                "p must be a table",
            ),
        ] {
            let errs = validate(&src, "f.toml").unwrap_err().0;
            let text = ConfigErrors(errs.clone()).to_string();
            assert_eq!(errs.len(), 1, "{src}\n{text}");
            assert!(errs[0].message.contains(only), "{src}\n{text}");
        }
    }

    #[test]
    fn one_error_hides_no_other_in_its_entry() {
        // The trial files of a user coming from nginx/HAProxy: a wrong type, an unknown
        // value or a misspelt required key each used to hide the rest of its table.
        let bad = r#"
[[listener]]
name = "site"
listen = "127.0.0.1:18090"
pool = "api"

[[listener]]
name = "raw"
listn = "127.0.0.1:18096"
protocol = "tcp"
pool = "apii"
hsts = "1h"

[pool.api]
keepalive = "32"
servers = [
  { addr = "127.0.0.1:18081", weight = 0, fail_timeout = "30" },
  { weight = 2 },
]

[[listener]]
name = "l4"
listen = "127.0.0.1:18097"
protocol = "tcp"
pool = "web"

[pool.web]
algorithm = "least_connections"
timeouts = { read = "5s" }
servers = [ { addr = "127.0.0.1:18082" } ]
[pool.web.sticky]
mode = "cookie"
[pool.web.retry]
attempts = 1
"#;
        let errs = validate(bad, "f.toml").unwrap_err().0;
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        let expected = [
            "f.toml:9:1: unknown field `listn`",
            "f.toml:11:8: no pool named \"apii\"",
            "f.toml:12:8: hsts is for http/https listeners, not this tcp listener",
            "f.toml:15:13: keepalive must be a whole number",
            "f.toml:17:40: weight = 0 is out of range",
            "f.toml:17:58: fail_timeout: \"30\" has no unit",
            "f.toml:18:3: a server of pool \"api\" has no addr",
            "f.toml:28:13: unknown algorithm \"least_connections\"",
            "f.toml:29:21: timeouts.read in [pool.web] is for HTTP",
            "f.toml:31:1: [pool.web.sticky] needs HTTP",
            "f.toml:33:1: [pool.web.retry] applies to HTTP requests",
        ];
        assert_eq!(errs.len(), expected.len(), "{text:#?}");
        for (got, want) in text.iter().zip(expected) {
            assert!(
                got.starts_with(&format!("error: {want}")),
                "{want}\n{text:#?}"
            );
        }
        assert!(text[3].contains("help: write keepalive = 32, without quotes"));
        assert!(text[7].contains("help: did you mean \"least_conn\"?"));
    }

    #[test]
    fn listeners_that_cannot_all_bind_are_errors() {
        let pool = "[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n";
        let l = |listen: &str, protocol: &str| {
            format!(
                "[[listener]]\nlisten = \"{listen}\"\nprotocol = \"{protocol}\"\npool = \"p\"\n"
            )
        };
        for (src, message) in [
            (
                format!(
                    "{}{}{pool}",
                    l("127.0.0.1:80", "http"),
                    l("127.0.0.1:80", "tcp")
                ),
                "listener \"listener2\" listens on 127.0.0.1:80, as listener \"listener1\" does",
            ),
            (
                format!(
                    "{}{}{pool}",
                    l("0.0.0.0:80", "http"),
                    l("127.0.0.1:80", "http")
                ),
                "listener \"listener2\" listens on 127.0.0.1:80, which listener \"listener1\" on 0.0.0.0:80 covers",
            ),
            (
                format!(
                    "{}{}{pool}",
                    l("127.0.0.1:53", "udp"),
                    l("0.0.0.0:53", "udp")
                ),
                "listener \"listener2\" listens on 0.0.0.0:53, which covers listener \"listener1\" on 127.0.0.1:53",
            ),
            (
                format!("{}{pool}", l("127.0.0.1:9", "http")),
                "listener \"listener1\" listens on 127.0.0.1:9, where server \"127.0.0.1:9\" of pool \"p\" is",
            ),
            (
                format!("{}{pool}", l("0.0.0.0:9", "tcp")),
                "listener \"listener1\" listens on 0.0.0.0:9, where server \"127.0.0.1:9\" of pool \"p\" is",
            ),
            (
                format!(
                    "{}{pool}[admin]\nlisten = \"127.0.0.1:80\"\n",
                    l("0.0.0.0:80", "http")
                ),
                "[admin] listens on 127.0.0.1:80, as listener \"listener1\" does",
            ),
        ] {
            let errs = validate(&src, "f.toml").unwrap_err().0;
            assert_eq!(errs.len(), 1, "{src}\n{errs:#?}");
            assert_eq!(errs[0].message, message, "{src}");
            assert!(errs[0].help.is_some());
        }
        // A tcp and a udp listener may share an address (DNS on 53); IPv4 and IPv6
        // wildcards are separate sockets (v6-only).
        for src in [
            format!(
                "{}{}{pool}",
                l("127.0.0.1:53", "tcp"),
                l("127.0.0.1:53", "udp")
            ),
            format!("{}{}{pool}", l("0.0.0.0:80", "http"), l("[::]:80", "http")),
        ] {
            assert!(validate(&src, "f.toml").is_ok(), "{src}");
        }
    }

    #[test]
    fn a_listener_knows_where_its_address_is_written() {
        let src = "[[listener]]\nname = \"web\"\n  listen = \"127.0.0.1:8080\"\npool = \"p\"\n[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n[admin]\nlisten = \"127.0.0.1:9900\"\n";
        let plan = validate(src, "dir/f.toml").unwrap();
        assert_eq!(plan.listeners[0].origin.as_deref(), Some("dir/f.toml:3:12"));
        assert_eq!(
            plan.admin.unwrap().origin.as_deref(),
            Some("dir/f.toml:8:10")
        );
    }

    #[test]
    fn zero_timeouts_are_errors() {
        let base = "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n";
        for (key, line) in [
            (
                "timeouts = { connect = \"0s\" }",
                "timeouts.connect must be longer than 0",
            ),
            (
                "timeouts = { read = \"0ms\" }",
                "timeouts.read must be longer than 0",
            ),
            (
                "timeouts = { send = \"0s\" }",
                "timeouts.send must be longer than 0",
            ),
            (
                "keepalive_timeout = \"0s\"",
                "keepalive_timeout must be longer than 0",
            ),
            (
                "tunnel_idle_timeout = \"0s\"",
                "tunnel_idle_timeout must be longer than 0",
            ),
            (
                "fail_timeout = \"0s\"",
                "fail_timeout = \"0s\" would never take",
            ),
        ] {
            let errs = validate(&format!("{base}{key}\n"), "f.toml").unwrap_err().0;
            assert_eq!(errs.len(), 1, "{key}: {errs:?}");
            assert_eq!(errs[0].line, 6, "{key}: {errs:?}");
            assert!(errs[0].message.contains(line), "{key}: {errs:?}");
            assert!(errs[0].help.is_some());
        }
        // Zero means something for these: stop at once, no ramp-up, forget HSTS.
        let ok = format!("grace_period = \"0s\"\n{base}slow_start = \"0s\"\n");
        assert!(validate(&ok, "f.toml").is_ok());
    }

    /// The trial's typo: `[pool.ap.sticky]` for the pool `app`. No listener sends to "ap",
    /// and its name is one letter from "app": the help says which section was meant.
    #[test]
    fn a_misspelt_pool_section_says_which_pool_was_meant() {
        let base = "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"app\"\n\n[pool.app]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n\n";
        let typo = format!("{base}[pool.ap.sticky]\nmode = \"cookie\"\n");
        assert_eq!(
            validate(&typo, "bad6.toml").unwrap_err().to_string(),
            "error: bad6.toml:8:7: pool \"ap\" has no servers\n  help: there is no pool \"ap\": did you mean [pool.app.sticky]? (or add servers = [...] to make a pool \"ap\")"
        );
        // Two letters swapped is one edit, as a letter left out.
        let swapped = base.replace("app", "web") + "[pool.wbe.health]\npath = \"/\"\n";
        assert_eq!(
            validate(&swapped, "f.toml").unwrap_err().to_string(),
            "error: f.toml:8:7: pool \"wbe\" has no servers\n  help: there is no pool \"wbe\": did you mean [pool.web.health]? (or add servers = [...] to make a pool \"wbe\")"
        );
        let typo = format!("{base}[pool.ap]\nalgorithm = \"least_conn\"\n");
        assert_eq!(
            validate(&typo, "f.toml").unwrap_err().to_string(),
            "error: f.toml:8:1: pool \"ap\" has no servers\n  help: there is no pool \"ap\": did you mean [pool.app]? (or add servers = [...] to make a pool \"ap\")"
        );
        // A pool that a listener sends to is meant: it only lacks its servers.
        let used = typo.replace(
            "pool = \"app\"\n",
            "pool = \"app\"\n[[listener.route]]\npath_prefix = \"/a/\"\npool = \"ap\"\n",
        );
        assert_eq!(
            validate(&used, "f.toml").unwrap_err().to_string(),
            "error: f.toml:11:1: pool \"ap\" has no servers\n  help: add servers = [{ addr = \"host:port\" }]"
        );
        // A name near no other pool's: as before.
        let far = format!("{base}[pool.cache]\nalgorithm = \"least_conn\"\n");
        assert_eq!(
            validate(&far, "f.toml").unwrap_err().to_string(),
            "error: f.toml:8:1: pool \"cache\" has no servers\n  help: add servers = [{ addr = \"host:port\" }]"
        );
    }

    /// A misspelt `[[listener]]` is one error: no "the file has no [[listener]]" before it.
    #[test]
    fn a_misspelt_listener_is_one_error() {
        let src = "[[listner]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n\n[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n";
        let text = validate(src, "f.toml").unwrap_err().to_string();
        assert!(!text.contains("the file has no [[listener]]"), "{text}");
        assert!(
            text.starts_with("error: f.toml:1:3: unknown field `listner`"),
            "{text}"
        );
        assert!(text.contains("did you mean `listener`?"), "{text}");
        // With no listener at all, still said.
        let none = "[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n";
        let text = validate(none, "f.toml").unwrap_err().to_string();
        assert!(
            text.starts_with("error: f.toml:1:1: the file has no [[listener]]"),
            "{text}"
        );
    }

    /// A pool that no listener or route sends to is a warning at `check`, never an error.
    #[test]
    fn a_pool_nobody_sends_to_is_a_warning() {
        let src = "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n\n[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n\n[pool.spare]\nservers = [ { addr = \"127.0.0.1:10\" } ]\n";
        let plan = validate(src, "f.toml").unwrap();
        assert_eq!(
            warnings(&plan),
            [
                "pool \"spare\" gets no traffic: no listener or route sends to it; name it in a listener's or a route's pool = \"spare\", or remove it"
            ]
        );
    }
}

//! The L4 keys of a listener (`protocol = "tcp"` / `"udp"`): which keys belong to which
//! protocol, their ranges, and the PROXY protocol settings. Called by `listener()` in
//! `validate.rs` with the same [`Checker`], so every mistake is reported with its place.

use std::ops::Range;

use toml::Spanned;

use super::Checker;
use crate::config::HealthKind;
use crate::config::file::{ConfigFile, ListenerFile, PoolFile};
use crate::config::plan::{Cidr, HashKey, L4Plan, PoolPlan, Protocol, ProxyVersion};

const TCP_ONLY: &str = "applies to protocol = \"tcp\" listeners";
const UDP_ONLY: &str = "applies to protocol = \"udp\" listeners";

/// The L4 settings of one listener, reporting keys that do not fit its protocol.
pub(super) fn listener_l4(
    c: &mut Checker<'_>,
    l: &Spanned<ListenerFile>,
    protocol: Protocol,
) -> L4Plan {
    let f = l.get_ref();
    let shaky = c.shaky(l.span());
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
        plan.accept_proxy = accept_proxy(c, f, shaky);
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
    // Without routes, the pool is where every connection goes: there is no other.
    if f.pool.is_none() && !shaky {
        c.error(
            l.span(),
            format!("this {is} listener has no pool"),
            "add pool = \"NAME\": every connection goes to a server of that pool",
        );
    }
    // What only HTTP does: an L4 listener copies bytes and never sees a request to redirect,
    // a response to add a header to, or a TLS handshake of its own to answer.
    let http_keys: [(&str, Option<Range<usize>>, &str); 3] = [
        (
            "redirect_https",
            f.redirect_https.as_ref().map(|v| v.span()),
            "remove redirect_https; it answers HTTP requests, so it belongs on a protocol = \"http\" listener",
        ),
        (
            "hsts",
            f.hsts.as_ref().map(|v| v.span()),
            "remove hsts; it is an HTTP header, so it belongs on a protocol = \"https\" listener",
        ),
        (
            "[[listener.tls]]",
            f.tls.first().map(|v| v.span()),
            "remove [[listener.tls]] to pass TLS through to the servers as it is, or use protocol = \"https\" to end TLS here",
        ),
    ];
    for (key, span, help) in http_keys {
        if let Some(span) = span {
            c.error(
                span,
                format!("{key} is for http/https listeners, not this {is} listener"),
                help,
            );
        }
    }

    if tcp {
        plan.idle_timeout = c.positive_duration(
            &f.idle_timeout,
            "idle_timeout",
            plan.idle_timeout,
            "write e.g. \"30s\" or \"10m\"",
        );
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
        plan.accept_proxy = accept_proxy(c, f, shaky);
    }
    if udp {
        plan.session_timeout = c.positive_duration(
            &f.session_timeout,
            "session_timeout",
            plan.session_timeout,
            "write e.g. \"30s\" or \"10m\"",
        );
        if let Some(m) = &f.max_sessions {
            plan.max_sessions = c
                .int_in(m, "max_sessions", 1, 10_000_000)
                .map_or(plan.max_sessions, |n| n as usize);
        }
    }
    plan
}

fn accept_proxy(c: &mut Checker<'_>, f: &ListenerFile, shaky: bool) -> Option<Vec<Cidr>> {
    let on = f
        .accept_proxy_protocol
        .as_ref()
        .is_some_and(|a| *a.get_ref());
    match (&f.accept_proxy_protocol, &f.trusted_proxies) {
        // One of the pair cut for a shape error: that error says it.
        (Some(_), None) | (None, Some(_)) if shaky => None,
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
/// listeners use cannot have HTTP's sticky sessions, retries or other HTTP settings (they
/// would be ignored), and its health check is a TCP connect unless it says otherwise
/// (nginx's stream module does the same). `tls` is an error on any pool an L4 listener
/// uses: that listener would still send the client's bytes as they are, in plaintext.
pub(super) fn check_pools(c: &mut Checker<'_>, parsed: &ConfigFile, pools: &mut [PoolPlan]) {
    let is_l4 = |f: &ListenerFile| {
        f.protocol
            .as_ref()
            .is_some_and(|p| matches!(p.get_ref().to_ascii_lowercase().as_str(), "tcp" | "udp"))
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
                http_pools.extend(s.get_ref().pool.as_ref().map(|p| p.get_ref().as_str()));
            }
        }
    }
    let mut l4_pools: Vec<&str> = parsed
        .listener
        .iter()
        .map(|l| l.get_ref())
        .filter(|f| is_l4(f))
        .filter_map(|f| f.pool.as_ref().map(|p| p.get_ref().as_str()))
        .collect();
    l4_pools.sort_unstable();
    l4_pools.dedup();
    for name in &l4_pools {
        let Some(file) = parsed.pool.get(*name) else {
            continue;
        };
        if let Some(tls) = &file.get_ref().tls
            && http_pools.contains(name)
        {
            c.error(
                tls.span(),
                format!("pool {name:?} has tls, but a tcp/udp listener uses it too: that listener passes the client's bytes through as they are, without TLS"),
                "give the tcp/udp listener its own pool (the same servers, without tls); tls to the servers is only for http/https listeners",
            );
        }
    }
    // A listener cut for a shape error may have used a pool: "only L4 uses it" is unsure.
    let l4_only: Vec<&str> = if c.was_cut(None, "listener") {
        Vec::new()
    } else {
        l4_pools
            .into_iter()
            .filter(|p| !http_pools.contains(p))
            .collect()
    };
    for name in l4_only {
        let Some(file) = parsed.pool.get(name) else {
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
        http_only_pool_keys(c, name, f);
        let plan = pools.iter_mut().find(|p| p.name == name);
        if let (Some(h), Some(health)) = (&f.health, plan.and_then(|p| p.health.as_mut()))
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
            .is_some_and(|p| matches!(p.get_ref().to_ascii_lowercase().as_str(), "tcp" | "udp"));
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

/// Keys of a pool that only tcp/udp listeners use which only HTTP reads: each is an error,
/// since the value would be silently ignored.
fn http_only_pool_keys(c: &mut Checker<'_>, name: &str, f: &PoolFile) {
    const PASS: &str = "L4 passes bytes through as they are";
    let timeouts = f.timeouts.as_ref().map(|t| t.get_ref());
    let keys: [(&str, Option<Range<usize>>, String); 9] = [
        (
            "tls",
            f.tls.as_ref().map(|v| v.span()),
            format!("remove tls: {PASS}, so TLS to the servers is only for http/https listeners (clients that speak TLS themselves reach TLS servers through a tcp listener unchanged)"),
        ),
        (
            "upstream_protocol",
            f.upstream_protocol.as_ref().map(|v| v.span()),
            format!("remove upstream_protocol: {PASS}, in whatever protocol the client speaks"),
        ),
        (
            "tunnel_idle_timeout",
            f.tunnel_idle_timeout.as_ref().map(|v| v.span()),
            "remove it and set idle_timeout on the tcp listener".to_string(),
        ),
        (
            "keepalive",
            f.keepalive.as_ref().map(|v| v.span()),
            "remove it: each L4 connection has its own server connection, kept as long as the client's".to_string(),
        ),
        (
            "keepalive_timeout",
            f.keepalive_timeout.as_ref().map(|v| v.span()),
            "remove it: each L4 connection has its own server connection, kept as long as the client's".to_string(),
        ),
        (
            "host_header",
            f.host_header.as_ref().map(|v| v.span()),
            format!("remove host_header: {PASS} and rewrites no header"),
        ),
        (
            "timeouts.read",
            timeouts.and_then(|t| t.read.as_ref()).map(|v| v.span()),
            "remove it and set idle_timeout (tcp) or session_timeout (udp) on the listener; timeouts.connect applies".to_string(),
        ),
        (
            "timeouts.send",
            timeouts.and_then(|t| t.send.as_ref()).map(|v| v.span()),
            "remove it and set idle_timeout (tcp) or session_timeout (udp) on the listener; timeouts.connect applies".to_string(),
        ),
        (
            "timeouts.client_body",
            timeouts.and_then(|t| t.client_body.as_ref()).map(|v| v.span()),
            "remove it and set idle_timeout (tcp) or session_timeout (udp) on the listener; timeouts.connect applies".to_string(),
        ),
    ];
    for (key, span, help) in keys {
        if let Some(span) = span {
            c.error(
                span,
                format!(
                    "{key} in [pool.{name}] is for HTTP, but only tcp/udp listeners use this pool"
                ),
                help,
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
servers = [ { addr = "127.0.0.1:9" } ]
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

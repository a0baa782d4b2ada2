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

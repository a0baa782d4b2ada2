//! The rules that span listeners and pools, run on the typed plan once every table is read,
//! pointing at the lines to change through the positions the reader kept: listeners that
//! cannot all bind, traffic that loops back, the pools that only tcp/udp listeners use, and
//! sticky cookies that would overwrite each other.
//!
//! To add a rule: a function here over `&Plan` (or `&mut Plan`, for a default that depends
//! on how a pool is used), called from [`check`]; `r.at("pool.NAME.key")` is where a key is
//! written.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::ops::Range;

use super::report::{Kind, Report};
use crate::config::{
    HealthKind, HostMatch, ListenerPlan, Plan, PoolPlan, Protocol, ServerPlan, StickyMode, Target,
};

/// What the rules need to know besides the plan.
#[derive(Default)]
pub(super) struct Seen {
    /// Of each listener of the plan, its path (`listener.3`) and its protocol as written.
    pub(super) listeners: Vec<(String, String)>,
    /// The pools named by listeners that are not tcp/udp (or of an unknown protocol).
    pub(super) http_pools: Vec<String>,
    /// Whether some `[[listener]]` entry could not be read at all.
    pub(super) lost_listener: bool,
}

/// Every rule across listeners and pools.
pub(super) fn check(r: &Report<'_>, plan: &mut Plan, seen: &Seen) {
    let listens: Vec<Range<usize>> = seen
        .listeners
        .iter()
        .map(|(path, _)| {
            r.at(&format!("{path}.listen"))
                .or(r.at(path))
                .unwrap_or_default()
        })
        .collect();
    addresses(r, plan, seen, &listens);
    loops(r, plan, &listens);
    l4_pools(r, plan, seen);
    sticky_cookies(r, plan);
}

fn error(r: &Report<'_>, span: Range<usize>, message: String, help: &str) {
    r.error(Kind::Rule, span, message, help.to_string());
}

/// Whether two sockets of one transport cannot both be bound: the same address, or the same
/// port with one of them on every address of the family (`0.0.0.0`, `[::]`; IPv6 sockets
/// are v6-only, so `0.0.0.0:80` and `[::]:80` go together).
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Listener names are unique, and the listeners (and `[admin]`) can all bind.
fn addresses(r: &Report<'_>, plan: &Plan, seen: &Seen, listens: &[Range<usize>]) {
    let mut names = HashSet::new();
    // (udp?, address, listener name) of the listeners so far.
    let mut bound: Vec<(bool, SocketAddr, &str)> = Vec::new();
    for ((l, (path, _)), listen) in plan.listeners.iter().zip(&seen.listeners).zip(listens) {
        if !names.insert(&l.name) {
            let span = r
                .at(&format!("{path}.name"))
                .or(r.at(path))
                .unwrap_or_default();
            let message = format!("listener name {:?} is used twice", l.name);
            error(r, span, message, "give every [[listener]] its own name");
        }
        let udp = l.protocol == Protocol::Udp;
        if let Some((_, other, name)) = bound
            .iter()
            .find(|(u, a, _)| *u == udp && same_socket(*a, l.listen))
        {
            let how = if *other == l.listen {
                format!("as listener {name:?} does")
            } else if l.listen.ip().is_unspecified() {
                format!("which covers listener {name:?} on {other}")
            } else {
                format!("which listener {name:?} on {other} covers")
            };
            error(
                r,
                listen.clone(),
                format!("listener {:?} listens on {}, {how}", l.name, l.listen),
                "give every [[listener]] its own address or port (a tcp and a udp listener may share one)",
            );
        }
        if l.listen.port() != 0 {
            bound.push((udp, l.listen, &l.name));
        }
    }
    if let Some(a) = &plan.admin
        && let Some((_, _, name)) = bound
            .iter()
            .find(|(udp, addr, _)| !udp && same_socket(*addr, a.listen))
    {
        error(
            r,
            r.at("admin.listen").or(r.at("admin")).unwrap_or_default(),
            format!("[admin] listens on {}, as listener {name:?} does", a.listen),
            "give [admin] an address or port of its own, e.g. listen = \"127.0.0.1:9900\"",
        );
    }
}

/// The pools a listener sends to: its default pool, its routes' pools and splits.
fn pools_of(l: &ListenerPlan) -> Vec<&str> {
    let mut names: Vec<&str> = l.default_pool.iter().map(String::as_str).collect();
    for route in &l.routes {
        match &route.target {
            Target::Pool(p) => names.push(p),
            Target::Split(parts) => names.extend(parts.iter().map(|(p, _)| p.as_str())),
        }
    }
    names
}

/// A listener whose traffic comes back to itself: a server of a pool it sends to is on its
/// own address, or on the address of another listener of this config whose traffic leads
/// back to it. Chains that end elsewhere (a tcp listener sending PROXY headers to a local
/// https listener that sends to the real servers) are fine.
fn loops(r: &Report<'_>, plan: &Plan, listens: &[Range<usize>]) {
    let listeners = &plan.listeners;
    // A server on listener `m`'s address, reached over the same transport.
    let lands_on = |m: &ListenerPlan, s: &ServerPlan| {
        m.listen.port() != 0
            && s.addr.port() == m.listen.port()
            && (s.addr.ip() == m.listen.ip()
                || (m.listen.ip().is_unspecified()
                    && s.addr.ip().is_loopback()
                    && s.addr.is_ipv4() == m.listen.is_ipv4()))
    };
    // hops[i]: (j, pool, server) for each listener j that listener i's servers land on.
    let hops: Vec<Vec<(usize, &PoolPlan, &ServerPlan)>> = listeners
        .iter()
        .map(|l| {
            let mut names = pools_of(l);
            names.sort_unstable();
            names.dedup();
            let mut out = Vec::new();
            for p in names.into_iter().filter_map(|n| plan.pool(n)) {
                for s in &p.servers {
                    for (j, m) in listeners.iter().enumerate() {
                        if (m.protocol == Protocol::Udp) == (l.protocol == Protocol::Udp)
                            && lands_on(m, s)
                        {
                            out.push((j, p, s));
                        }
                    }
                }
            }
            out
        })
        .collect();
    let leads_back = |from: usize, to: usize| {
        let mut seen = vec![false; listeners.len()];
        let mut stack = vec![from];
        while let Some(k) = stack.pop() {
            if k == to {
                return true;
            }
            if !std::mem::replace(&mut seen[k], true) {
                stack.extend(hops[k].iter().map(|h| h.0));
            }
        }
        false
    };
    for (i, (l, span)) in listeners.iter().zip(listens).enumerate() {
        let Some(&(j, pool, server)) = hops[i].iter().find(|h| leads_back(h.0, i)) else {
            continue;
        };
        let message = if j == i {
            format!(
                "listener {:?} listens on {}, where server {:?} of pool {:?} is",
                l.name, l.listen, server.name, pool.name
            )
        } else {
            format!(
                "listener {:?} sends through pool {:?} (server {:?}) to listener {:?}, whose traffic comes back to it",
                l.name, pool.name, server.name, listeners[j].name
            )
        };
        let help = "Switchyard would send to itself in a loop: give the listener (or the server) another port";
        error(r, span.clone(), message, help);
    }
}

/// The keys of a pool that only HTTP reads, and the fix when only tcp/udp listeners use it.
const HTTP_POOL_KEYS: [(&str, &str); 9] = [
    (
        "tls",
        "remove tls: L4 passes bytes through as they are, so TLS to the servers is only for http/https listeners (clients that speak TLS themselves reach TLS servers through a tcp listener unchanged)",
    ),
    (
        "upstream_protocol",
        "remove upstream_protocol: L4 passes bytes through as they are, in whatever protocol the client speaks",
    ),
    (
        "tunnel_idle_timeout",
        "remove it and set idle_timeout on the tcp listener",
    ),
    (
        "keepalive",
        "remove it: each L4 connection has its own server connection, kept as long as the client's",
    ),
    (
        "keepalive_timeout",
        "remove it: each L4 connection has its own server connection, kept as long as the client's",
    ),
    (
        "host_header",
        "remove host_header: L4 passes bytes through as they are and rewrites no header",
    ),
    ("timeouts.read", TIMEOUTS),
    ("timeouts.send", TIMEOUTS),
    ("timeouts.client_body", TIMEOUTS),
];

const TIMEOUTS: &str = "remove it and set idle_timeout (tcp) or session_timeout (udp) on the listener; timeouts.connect applies";

/// A pool behind an L4 listener cannot hash on what only HTTP carries; one that only L4
/// listeners use cannot have HTTP's sticky sessions, retries or other HTTP settings (they
/// would be ignored), and its health check is a TCP connect unless it says otherwise
/// (nginx's stream module does the same). `tls` is an error on any pool an L4 listener
/// uses: that listener would still send the client's bytes as they are, in plaintext.
fn l4_pools(r: &Report<'_>, plan: &mut Plan, seen: &Seen) {
    let l4 = |l: &ListenerPlan| matches!(l.protocol, Protocol::Tcp | Protocol::Udp);
    let mut l4_pools: Vec<String> = plan
        .listeners
        .iter()
        .filter(|l| l4(l))
        .filter_map(|l| l.default_pool.clone())
        .collect();
    l4_pools.sort_unstable();
    l4_pools.dedup();
    for name in &l4_pools {
        if let Some(span) = r.at(&format!("pool.{name}.tls"))
            && seen.http_pools.contains(name)
        {
            error(
                r,
                span,
                format!(
                    "pool {name:?} has tls, but a tcp/udp listener uses it too: that listener passes the client's bytes through as they are, without TLS"
                ),
                "give the tcp/udp listener its own pool (the same servers, without tls); tls to the servers is only for http/https listeners",
            );
        }
    }
    // With a listener that could not be read, "only L4 uses it" is unsure.
    let l4_only = l4_pools
        .iter()
        .filter(|p| !seen.lost_listener && !seen.http_pools.contains(p));
    for name in l4_only {
        let at = |key: &str| r.at(&format!("pool.{name}.{key}"));
        if let Some(span) = at("sticky") {
            error(
                r,
                span,
                format!(
                    "[pool.{name}.sticky] needs HTTP, but only tcp/udp listeners use this pool"
                ),
                "for client-address affinity at L4 use algorithm = \"ip_hash\" (or \"hash\"), and remove [sticky]",
            );
        }
        if let Some(span) = at("retry") {
            error(
                r,
                span,
                format!(
                    "[pool.{name}.retry] applies to HTTP requests, but only tcp/udp listeners use this pool"
                ),
                "remove it: an L4 listener always tries the next server when a connect fails",
            );
        }
        for (key, help) in HTTP_POOL_KEYS {
            if let Some(span) = at(key) {
                let message = format!(
                    "{key} in [pool.{name}] is for HTTP, but only tcp/udp listeners use this pool"
                );
                error(r, span, message, help);
            }
        }
        let health = plan
            .pools
            .iter_mut()
            .find(|p| &p.name == name)
            .and_then(|p| p.health.as_mut());
        if let Some(h) = health
            && at("health.type").is_none()
            && at("health.path").is_none()
        {
            h.kind = HealthKind::Tcp;
        }
    }
    for (l, (path, written)) in plan
        .listeners
        .iter()
        .zip(&seen.listeners)
        .filter(|(l, _)| l4(l))
    {
        if let Some(p) = l.default_pool.as_deref().and_then(|name| plan.pool(name))
            && p.algorithm.uses_hash_key()
            && p.hash_key != crate::config::HashKey::ClientIp
        {
            error(
                r,
                r.at(&format!("{path}.pool")).unwrap_or_default(),
                format!(
                    "pool {:?} hashes on an HTTP value, which a {written} listener cannot see",
                    p.name
                ),
                &format!(
                    "set hash_key = \"client_ip\" in [pool.{}], or give this listener its own pool",
                    p.name
                ),
            );
        }
    }
}

/// Two sticky pools that one listener reaches (default pool, routes, splits) must not share
/// a cookie name: both cookies are set with `Path=/`, so each pool's `Set-Cookie` replaces
/// the other's and a client moving between them loses its server every time. A
/// `mode = "cookie"` name equal to an `app_cookie` pool's would overwrite the application's
/// session cookie. Two `app_cookie` pools on one name are the applications' business.
fn sticky_cookies(r: &Report<'_>, plan: &Plan) {
    // (pool, cookie name, mode, where to point) of the sticky pools with a cookie.
    let all: Vec<(&str, &str, StickyMode, Range<usize>)> = plan
        .pools
        .iter()
        .filter_map(|p| {
            let s = p
                .sticky
                .as_ref()
                .filter(|s| s.mode != StickyMode::SourceIp && !s.name.is_empty())?;
            let at = |key: &str| r.at(&format!("pool.{}.{key}", p.name));
            let span = at("sticky.name").or(at("sticky")).unwrap_or_default();
            Some((p.name.as_str(), s.name.as_str(), s.mode, span))
        })
        .collect();
    let mut reported = HashSet::new();
    for l in plan
        .listeners
        .iter()
        .filter(|l| matches!(l.protocol, Protocol::Http | Protocol::Https))
    {
        // The exact hosts through which each pool is reached; `None` when some way to it
        // has no exact host (the default pool, a route without `host`, a wildcard).
        let mut hosts: HashMap<&str, Option<HashSet<&str>>> = HashMap::new();
        if let Some(p) = &l.default_pool {
            hosts.insert(p, None);
        }
        for route in &l.routes {
            let exact = match &route.matcher.host {
                Some(HostMatch::Exact(h)) => Some(h.as_str()),
                _ => None,
            };
            let targets = match &route.target {
                Target::Pool(p) => vec![p.as_str()],
                Target::Split(parts) => parts.iter().map(|(p, _)| p.as_str()).collect(),
            };
            for p in targets {
                let entry = hosts.entry(p).or_insert_with(|| Some(HashSet::new()));
                match (entry.as_mut(), exact) {
                    (Some(set), Some(h)) => _ = set.insert(h),
                    _ => *entry = None,
                }
            }
        }
        // Host-only cookies (no Domain) of pools that serve disjoint exact hosts never meet.
        let apart = |a: &str, b: &str| matches!((hosts.get(a), hosts.get(b)), (Some(Some(x)), Some(Some(y))) if x.is_disjoint(y));
        let mut stickies = Vec::new();
        for p in pools_of(l) {
            if let Some(s) = all.iter().find(|s| s.0 == p)
                && !stickies
                    .iter()
                    .any(|x: &&(&str, &str, StickyMode, Range<usize>)| x.0 == p)
            {
                stickies.push(s);
            }
        }
        for (i, a) in stickies.iter().enumerate() {
            for b in &stickies[i + 1..] {
                let both_apps = a.2 == StickyMode::AppCookie && b.2 == StickyMode::AppCookie;
                if a.1 != b.1 || both_apps || apart(a.0, b.0) {
                    continue;
                }
                // Point at the later of the two in the file; report each pair once.
                let (first, second) = if a.3.start <= b.3.start {
                    (a, b)
                } else {
                    (b, a)
                };
                if !reported.insert((first.0, second.0)) {
                    continue;
                }
                let (c, p1, p2) = (first.1, first.0, second.0);
                let help = match (first.2, second.2) {
                    (StickyMode::Cookie, StickyMode::Cookie) => format!(
                        "give each pool its own cookie: name = \"{c}_{p1}\" in [pool.{p1}.sticky] and name = \"{c}_{p2}\" in [pool.{p2}.sticky]"
                    ),
                    _ => {
                        let ours = if first.2 == StickyMode::Cookie {
                            first
                        } else {
                            second
                        };
                        format!(
                            "rename Switchyard's cookie: name = \"{}_{}\" in [pool.{}.sticky]; the application's cookie keeps its name",
                            ours.1, ours.0, ours.0
                        )
                    }
                };
                let message = format!(
                    "pools {p1:?} and {p2:?} both use the sticky cookie {c:?} on listener {:?}: each one's Set-Cookie (Path=/) replaces the other's, so clients lose their server",
                    l.name
                );
                error(r, second.3.clone(), message, &help);
            }
        }
    }
}

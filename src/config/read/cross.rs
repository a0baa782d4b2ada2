//! The rules that span listeners and pools, run on the typed plan once every table is read,
//! pointing at the lines to change through the positions the reader kept: listeners that
//! cannot all bind, traffic that loops back, the pools that only tcp/udp listeners use,
//! sticky cookies that would overwrite each other, and shared state without `[redis]`.
//!
//! To add a rule: a function here over `&Plan` (or `&mut Plan`, for a default that depends
//! on how a pool is used), called from [`check`]; `r.at("pool.NAME.key")` is where a key is
//! written.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::ops::Range;

use super::report::{Kind, Report};
use crate::config::diff::pools_of;
use crate::config::{
    HashKey, HealthKind, HostMatch, ListenerPlan, Plan, Protocol, StickyMode, Target,
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
    /// Pools without servers whose name is near another pool's.
    pub(super) near_misses: Vec<super::pool::NearMiss>,
}

/// Every rule across listeners and pools.
pub(super) fn check(r: &Report<'_>, plan: &mut Plan, seen: &Seen) {
    let listens: Vec<_> = seen
        .listeners
        .iter()
        .map(|(path, _)| at(r, path, "listen"))
        .collect();
    addresses(r, plan, seen, &listens);
    loops(r, plan, &listens);
    l4_pools(r, plan, seen);
    sticky_cookies(r, plan);
    shared_without_redis(r, plan, seen);
    near_misses(r, plan, seen);
}

/// A pool without servers: an error, whose help, when no listener or route sends to it and
/// its name is near another pool's, says which section was probably meant.
fn near_misses(r: &Report<'_>, plan: &Plan, seen: &Seen) {
    for m in &seen.near_misses {
        let used = plan
            .listeners
            .iter()
            .any(|l| pools_of(l).contains(&m.pool.as_str()));
        let help = match used {
            true => "add servers = [{ addr = \"host:port\" }]".to_string(),
            false => format!(
                "there is no pool {:?}: did you mean {}? (or add servers = [...] to make a pool {:?})",
                m.pool, m.meant, m.pool
            ),
        };
        let message = format!("pool {:?} has no servers", m.pool);
        r.error(Kind::Rule, m.span.clone(), message, help);
    }
}

/// A table or a limit kept in Redis needs a `[redis]` to keep it in.
fn shared_without_redis(r: &Report<'_>, plan: &Plan, seen: &Seen) {
    if plan.redis.is_some() {
        return;
    }
    let help = "add a [redis] table with addr = \"host:6379\", or remove shared";
    for (l, (path, _)) in plan.listeners.iter().zip(&seen.listeners) {
        let guards = std::iter::once((path.clone(), "listener", &l.guard)).chain(
            l.routes
                .iter()
                .enumerate()
                .map(|(k, route)| (format!("{path}.route.{k}"), "listener.route", &route.guard)),
        );
        for (table, kind, guard) in guards {
            for (j, _) in guard.limits.iter().enumerate().filter(|(_, x)| x.shared) {
                let message = format!(
                    "[[{kind}.limit]] of listener {:?} says shared = true, but there is no [redis] to share it through",
                    l.name
                );
                error(
                    r,
                    at(r, &format!("{table}.limit.{j}"), "shared"),
                    message,
                    help,
                );
            }
        }
    }
    for p in &plan.pools {
        if p.sticky.as_ref().is_some_and(|s| s.shared) {
            let path = format!("pool.{}.sticky", p.name);
            let message = format!(
                "[pool.{}.sticky] says shared = true, but there is no [redis] to share it through",
                p.name
            );
            error(r, at(r, &path, "shared"), message, help);
        }
    }
}

/// Where `key` of the table at `path` is written, else where the table is.
fn at(r: &Report<'_>, path: &str, key: &str) -> Range<usize> {
    r.at(&format!("{path}.{key}"))
        .or(r.at(path))
        .unwrap_or_default()
}

fn error(r: &Report<'_>, span: Range<usize>, message: String, help: &str) {
    r.error(Kind::Rule, span, message, help.to_string());
}

fn is_l4(l: &ListenerPlan) -> bool {
    matches!(l.protocol, Protocol::Tcp | Protocol::Udp)
}

/// Whether two sockets of one transport cannot both be bound: the same address, or the same
/// port with one of them on every address of the family (`0.0.0.0`, `[::]`; IPv6 sockets
/// are v6-only, so `0.0.0.0:80` and `[::]:80` go together).
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    let either_any = a.ip().is_unspecified() || b.ip().is_unspecified();
    a.port() == b.port()
        && a.port() != 0
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || either_any)
}

/// Listener names are unique, and the listeners (and `[admin]`) can all bind.
fn addresses(r: &Report<'_>, plan: &Plan, seen: &Seen, listens: &[Range<usize>]) {
    let mut names = HashSet::new();
    // (udp?, address, listener name) of the listeners so far.
    let mut bound: Vec<(bool, SocketAddr, &str)> = Vec::new();
    for ((l, (path, _)), listen) in plan.listeners.iter().zip(&seen.listeners).zip(listens) {
        if !names.insert(&l.name) {
            let message = format!("listener name {:?} is used twice", l.name);
            error(
                r,
                at(r, path, "name"),
                message,
                "give every [[listener]] its own name",
            );
        }
        let udp = l.protocol == Protocol::Udp;
        let taken = bound
            .iter()
            .find(|(u, a, _)| *u == udp && same_socket(*a, l.listen));
        if let Some((_, other, name)) = taken {
            let how = if *other == l.listen {
                format!("as listener {name:?} does")
            } else if l.listen.ip().is_unspecified() {
                format!("which covers listener {name:?} on {other}")
            } else {
                format!("which listener {name:?} on {other} covers")
            };
            let message = format!("listener {:?} listens on {}, {how}", l.name, l.listen);
            let help = "give every [[listener]] its own address or port (a tcp and a udp listener may share one)";
            error(r, listen.clone(), message, help);
        }
        if l.listen.port() != 0 {
            bound.push((udp, l.listen, &l.name));
        }
    }
    let Some(a) = &plan.admin else { return };
    if let Some((_, _, name)) = bound
        .iter()
        .find(|(udp, addr, _)| !udp && same_socket(*addr, a.listen))
    {
        let message = format!("[admin] listens on {}, as listener {name:?} does", a.listen);
        let help = "give [admin] an address or port of its own, e.g. listen = \"127.0.0.1:9900\"";
        error(r, at(r, "admin", "listen"), message, help);
    }
}

/// The pools a listener sends to, each with the exact host of the way there (`None` for the
/// default pool, a route without `host`, a wildcard).
fn ways(l: &ListenerPlan) -> Vec<(&str, Option<&str>)> {
    let mut ways: Vec<_> = l.default_pool.iter().map(|p| (p.as_str(), None)).collect();
    for route in &l.routes {
        let exact = match &route.matcher.host {
            Some(HostMatch::Exact(h)) => Some(h.as_str()),
            _ => None,
        };
        match &route.target {
            Target::Pool(p) => ways.push((p, exact)),
            Target::Split(parts) => ways.extend(parts.iter().map(|(p, _)| (p.as_str(), exact))),
        }
    }
    ways
}

/// A listener whose traffic comes back to itself: a server of a pool it sends to is on its
/// own address, or on the address of another listener of this config whose traffic leads
/// back to it. Chains that end elsewhere (a tcp listener sending PROXY headers to a local
/// https listener that sends to the real servers) are fine.
fn loops(r: &Report<'_>, plan: &Plan, listens: &[Range<usize>]) {
    let listeners = &plan.listeners;
    // A server at `s` is on listener `m`'s address.
    let lands_on = |m: &ListenerPlan, s: SocketAddr| {
        let any = m.listen.ip().is_unspecified()
            && s.ip().is_loopback()
            && s.is_ipv4() == m.listen.is_ipv4();
        m.listen.port() != 0 && s.port() == m.listen.port() && (s.ip() == m.listen.ip() || any)
    };
    // hops[i]: (j, pool, server) for each listener j (of the same transport) that listener
    // i's servers land on.
    let hops: Vec<Vec<_>> = listeners
        .iter()
        .map(|l| {
            let servers = pools_of(l)
                .into_iter()
                .filter_map(|n| plan.pool(n))
                .flat_map(|p| p.servers.iter().map(move |s| (p, s)));
            let same =
                |m: &ListenerPlan| (m.protocol == Protocol::Udp) == (l.protocol == Protocol::Udp);
            let mut out = Vec::new();
            for (p, s) in servers {
                let landed = listeners
                    .iter()
                    .enumerate()
                    .filter(|(_, m)| same(m) && lands_on(m, s.addr));
                out.extend(landed.map(|(j, _)| (j, p, s)));
            }
            out
        })
        .collect();
    let leads_back = |from: usize, to: usize| {
        let (mut seen, mut stack) = (vec![false; listeners.len()], vec![from]);
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
            let to = &listeners[j].name;
            format!(
                "listener {:?} sends through pool {:?} (server {:?}) to listener {to:?}, whose traffic comes back to it",
                l.name, pool.name, server.name
            )
        };
        let help = "Switchyard would send to itself in a loop: give the listener (or the server) another port";
        error(r, span.clone(), message, help);
    }
}

/// The keys of a pool that only HTTP reads, and the fix when only tcp/udp listeners use it.
#[rustfmt::skip]
const HTTP_POOL_KEYS: [(&str, &str); 11] = [
    ("tls", "remove tls: L4 passes bytes through as they are, so TLS to the servers is only for http/https listeners (clients that speak TLS themselves reach TLS servers through a tcp listener unchanged)"),
    ("upstream_protocol", "remove upstream_protocol: L4 passes bytes through as they are, in whatever protocol the client speaks"),
    ("tunnel_idle_timeout", "remove it and set idle_timeout on the tcp listener"),
    ("keepalive", "remove it: each L4 connection has its own server connection, kept as long as the client's"),
    ("keepalive_timeout", "remove it: each L4 connection has its own server connection, kept as long as the client's"),
    ("host_header", "remove host_header: L4 passes bytes through as they are and rewrites no header"),
    ("queue_size", "remove it: an L4 connection is not queued; with every server at max_conns it is closed"),
    ("queue_timeout", "remove it: an L4 connection is not queued; with every server at max_conns it is closed"),
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
    let listeners = plan.listeners.iter().filter(|l| is_l4(l));
    let mut l4_pools: Vec<String> = listeners.filter_map(|l| l.default_pool.clone()).collect();
    l4_pools.sort_unstable();
    l4_pools.dedup();
    for name in &l4_pools {
        let pool = format!("pool.{name}");
        let at = |key: &str| r.at(&format!("{pool}.{key}"));
        if let Some(span) = at("tls").filter(|_| seen.http_pools.contains(name)) {
            let message = format!(
                "pool {name:?} has tls, but a tcp/udp listener uses it too: that listener passes the client's bytes through as they are, without TLS"
            );
            let help = "give the tcp/udp listener its own pool (the same servers, without tls); tls to the servers is only for http/https listeners";
            error(r, span, message, help);
        }
        // With a listener that could not be read, "only L4 uses it" is unsure.
        if seen.lost_listener || seen.http_pools.contains(name) {
            continue;
        }
        let only = "but only tcp/udp listeners use this pool";
        if let Some(span) = at("sticky") {
            let help = "for client-address affinity at L4 use algorithm = \"ip_hash\" (or \"hash\"), and remove [sticky]";
            error(r, span, format!("[{pool}.sticky] needs HTTP, {only}"), help);
        }
        if let Some(span) = at("retry") {
            let help =
                "remove it: an L4 listener always tries the next server when a connect fails";
            error(
                r,
                span,
                format!("[{pool}.retry] applies to HTTP requests, {only}"),
                help,
            );
        }
        for (key, help) in HTTP_POOL_KEYS {
            if let Some(span) = at(key) {
                error(
                    r,
                    span,
                    format!("{key} in [{pool}] is for HTTP, {only}"),
                    help,
                );
            }
        }
        let health = plan
            .pools
            .iter_mut()
            .find(|p| &p.name == name)
            .and_then(|p| p.health.as_mut());
        if let Some(h) =
            health.filter(|_| at("health.type").is_none() && at("health.path").is_none())
        {
            h.kind = HealthKind::Tcp;
        }
    }
    for (l, (path, written)) in plan
        .listeners
        .iter()
        .zip(&seen.listeners)
        .filter(|(l, _)| is_l4(l))
    {
        let Some(p) = l.default_pool.as_deref().and_then(|name| plan.pool(name)) else {
            continue;
        };
        if p.algorithm.uses_hash_key() && p.hash_key != HashKey::ClientIp {
            let message = format!(
                "pool {:?} hashes on an HTTP value, which a {written} listener cannot see",
                p.name
            );
            let help = format!(
                "set hash_key = \"client_ip\" in [pool.{}], or give this listener its own pool",
                p.name
            );
            error(r, at(r, path, "pool"), message, &help);
        }
    }
}

/// A sticky pool with a cookie: its name, the cookie, the mode, where to point.
struct Sticky<'p> {
    pool: &'p str,
    cookie: &'p str,
    mode: StickyMode,
    span: Range<usize>,
}

/// Two sticky pools that one listener reaches (default pool, routes, splits) must not share
/// a cookie name: both cookies are set with `Path=/`, so each pool's `Set-Cookie` replaces
/// the other's and a client moving between them loses its server every time. A
/// `mode = "cookie"` name equal to an `app_cookie` pool's would overwrite the application's
/// session cookie. Two `app_cookie` pools on one name are the applications' business.
fn sticky_cookies(r: &Report<'_>, plan: &Plan) {
    let mut all: Vec<Sticky<'_>> = Vec::new();
    for p in &plan.pools {
        if let Some(s) = p
            .sticky
            .as_ref()
            .filter(|s| s.mode != StickyMode::SourceIp && !s.name.is_empty())
        {
            let span = at(r, &format!("pool.{}.sticky", p.name), "name");
            all.push(Sticky {
                pool: &p.name,
                cookie: &s.name,
                mode: s.mode,
                span,
            });
        }
    }
    let mut reported = HashSet::new();
    for l in plan.listeners.iter().filter(|l| !is_l4(l)) {
        let ways = ways(l);
        // The exact hosts through which each pool is reached; `None` when some way to it
        // has none. Host-only cookies (no Domain) of pools that serve disjoint exact hosts
        // never meet.
        let mut hosts: HashMap<&str, Option<HashSet<&str>>> = HashMap::new();
        for &(p, exact) in &ways {
            let entry = hosts.entry(p).or_insert_with(|| Some(HashSet::new()));
            match (entry.as_mut(), exact) {
                (Some(set), Some(h)) => _ = set.insert(h),
                _ => *entry = None,
            }
        }
        let apart = |a: &str, b: &str| matches!((&hosts[a], &hosts[b]), (Some(x), Some(y)) if x.is_disjoint(y));
        let mut stickies: Vec<&Sticky<'_>> = Vec::new();
        for s in ways
            .iter()
            .filter_map(|(p, _)| all.iter().find(|s| s.pool == *p))
        {
            if !stickies.iter().any(|x| x.pool == s.pool) {
                stickies.push(s);
            }
        }
        for (i, a) in stickies.iter().enumerate() {
            for b in &stickies[i + 1..] {
                let apps = a.mode == StickyMode::AppCookie && b.mode == StickyMode::AppCookie;
                // Point at the later of the two in the file; report each pair once.
                let (first, second) = if a.span.start <= b.span.start {
                    (a, b)
                } else {
                    (b, a)
                };
                if a.cookie != b.cookie
                    || apps
                    || apart(a.pool, b.pool)
                    || !reported.insert((first.pool, second.pool))
                {
                    continue;
                }
                let (c, p1, p2) = (first.cookie, first.pool, second.pool);
                let help = match (first.mode, second.mode) {
                    (StickyMode::Cookie, StickyMode::Cookie) => format!(
                        "give each pool its own cookie: name = \"{c}_{p1}\" in [pool.{p1}.sticky] and name = \"{c}_{p2}\" in [pool.{p2}.sticky]"
                    ),
                    (StickyMode::Cookie, _) => format!(
                        "rename Switchyard's cookie: name = \"{c}_{p1}\" in [pool.{p1}.sticky]; the application's cookie keeps its name"
                    ),
                    _ => format!(
                        "rename Switchyard's cookie: name = \"{c}_{p2}\" in [pool.{p2}.sticky]; the application's cookie keeps its name"
                    ),
                };
                let message = format!(
                    "pools {p1:?} and {p2:?} both use the sticky cookie {c:?} on listener {:?}: each one's Set-Cookie (Path=/) replaces the other's, so clients lose their server",
                    l.name
                );
                error(r, second.span.clone(), message, &help);
            }
        }
    }
}

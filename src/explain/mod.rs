//! "Why this server?": what Switchyard would do with a request now, and why — the listener's
//! routes (the one that matches and the ones it shadows), the pool, every server and why it
//! is or is not a candidate, a sticky session that takes the request ahead of the balancer,
//! what the algorithm looks at, and the server it picks.
//!
//! Data flow: a [`Request`] (from `switchyard explain`'s command line in `cli.rs`, or the
//! query of `GET /api/explain` in `admin/explain.rs`) and a listener's [`Site`] (the running
//! one, or one built from the config file with every server assumed up) go into
//! [`explain`], which asks the router, the sticky table, the pool and its balancers to
//! explain themselves ([`crate::balance::Balancer::explain`] and the like). None of them
//! changes anything: no route split, round robin turn, random draw or slow-start ask is taken,
//! no stick-table entry renewed, so explaining leaves traffic exactly as it would have gone.
//! `render.rs` writes the [`Report`] as JSON (the API) or text (the command).

pub mod cli;
mod render;
mod request;
mod servers;

use std::sync::Arc;

use crate::balance::PickContext;
use crate::config::{Algorithm, HashKey, Matcher};
use crate::proxy::http::router::{Condition, first_failed};
use crate::proxy::http::sticky::StickyPeek;
use crate::proxy::http::view::{RequestView, hash_key};
use crate::proxy::http::{RouteTarget, Site, Upstream};
use crate::upstream::{PoolExplanation, Server};

pub use request::{QUERY_HELP, Request};
pub use servers::Candidate;

/// Everything an explanation found.
#[derive(Debug)]
pub struct Report {
    pub listener: String,
    /// A tcp or udp listener: a connection, no routes.
    pub l4: bool,
    /// The pool was asked directly (`switchyard explain --pool`): no listener, no routes.
    pub direct: bool,
    pub request: Request,
    /// Set when the listener answers every request itself (`redirect_https`).
    pub answered: Option<String>,
    /// The listener's and the matched route's rules, each with its verdict (see [`rules`]).
    pub rules: Vec<String>,
    /// Every route, in order.
    pub routes: Vec<RouteLine>,
    /// The index of the route that matched; `None`: the default, if any.
    pub matched: Option<usize>,
    /// The default pool's name.
    pub default: Option<String>,
    /// The weighted split of the matched route, if it has one.
    pub split: Option<SplitLine>,
    /// The pool the request goes to; `None`: no route and no default (404).
    pub pool: Option<PoolReport>,
}

/// One route and how the request fared against it.
#[derive(Debug, Clone)]
pub struct RouteLine {
    /// Its label: its `name`, or its position (`1`, `2`, …), as its metrics say it.
    pub label: String,
    /// Whether the label is a `name` (not a position).
    pub named: bool,
    /// Its conditions, as the config writes them.
    pub conditions: String,
    /// Where it sends requests.
    pub target: String,
    pub verdict: RouteVerdict,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RouteVerdict {
    /// The first route that matches: it takes the request.
    Matched,
    /// It matches too, but an earlier route takes the request.
    Shadowed { by: usize },
    /// A condition fails (the first one, in words).
    Failed(String),
}

/// A weighted split: its parts, and where its exact cycle is now.
#[derive(Debug, Clone)]
pub struct SplitLine {
    pub parts: Vec<(String, u32)>,
    pub position: usize,
    pub cycle: usize,
}

/// The pool's part of an explanation.
#[derive(Debug)]
pub struct PoolReport {
    pub name: String,
    pub algorithm: Algorithm,
    /// What a hashing pool hashes: where it comes from, and its value for this request.
    pub key: Option<(String, String)>,
    pub servers: Vec<Candidate>,
    pub sticky: Option<StickyPeek>,
    pub balancer: PoolExplanation,
    /// The server the request goes to now.
    pub pick: Option<Arc<Server>>,
    /// Why that one, in a sentence.
    pub why: String,
}

/// Explain what `site` would do with `req` now.
pub fn explain(site: &Site, req: &Request) -> Report {
    // Routes match the normalised path, as the proxy's do (a path it refuses: the raw one).
    let raw = crate::proxy::http::view::RequestView::path(req)
        .as_bytes()
        .to_vec();
    let mut buf = Vec::new();
    let path = crate::proxy::http::path::normalise(&raw, &mut buf)
        .map(<[u8]>::to_vec)
        .unwrap_or(raw);
    let mut report = Report {
        listener: site.listener.clone(),
        l4: false,
        direct: false,
        request: req.clone(),
        answered: site.redirect_https.map(|port| {
            format!("this listener answers every request with 308 to https (port {port}): nothing is routed")
        }),
        rules: Vec::new(),
        routes: Vec::new(),
        matched: site.router.matched(req, &path),
        default: site.router.default.as_ref().map(|u| u.pool.name.clone()),
        split: None,
        pool: None,
    };
    if let Err(answer) = rules(&site.guard, "listener", req, &path, &mut report.rules) {
        report.answered = Some(answer);
        return report;
    }
    for (i, r) in site.router.routes.iter().enumerate() {
        let verdict = match (first_failed(&r.matcher, req, &path), report.matched) {
            (Some(c), _) => RouteVerdict::Failed(failure(&r.matcher, c, req)),
            (None, Some(m)) if m == i => RouteVerdict::Matched,
            (None, m) => RouteVerdict::Shadowed { by: m.unwrap_or(i) },
        };
        // The label its answers are counted under (`runtime/listener.rs`).
        let label = r.rows.first().map(|row| row.route.clone());
        report.routes.push(RouteLine {
            named: label.as_ref().is_some_and(|l| *l != (i + 1).to_string()),
            label: label.unwrap_or_else(|| (i + 1).to_string()),
            conditions: conditions(&r.matcher),
            target: target(&r.target),
            verdict,
        });
    }
    if report.answered.is_some() {
        return report;
    }
    if let Some(i) = report.matched {
        let whose = format!("route {}", report.routes[i].label);
        let guard = &site.router.routes[i].guard;
        if let Err(answer) = rules(guard, &whose, req, &path, &mut report.rules) {
            report.answered = Some(answer);
            return report;
        }
    }
    let up = match report.matched {
        Some(i) => {
            let (up, split) = site.router.routes[i].target.peek();
            if let (RouteTarget::Split { pools, .. }, Some((position, cycle))) =
                (&site.router.routes[i].target, split)
            {
                report.split = Some(SplitLine {
                    parts: split_parts(pools, &site.router.routes[i].target),
                    position,
                    cycle,
                });
            }
            Some(up.clone())
        }
        None => site.router.default.clone(),
    };
    report.pool = up.map(|up| explain_pool(&up, req));
    report
}

/// Explain what a tcp or udp listener named `listener` would do with a connection from
/// `req.client` now: its one pool, whose key is the client address (no route, no cookie).
pub fn explain_l4(listener: &str, up: &Upstream, req: &Request) -> Report {
    let l4 = Request {
        client: req.client,
        client_given: req.client_given,
        listener: Some(listener.to_string()),
        ..Request::default()
    };
    Report {
        listener: listener.to_string(),
        l4: true,
        direct: false,
        pool: Some(pool_report(up, &l4, true)),
        request: l4,
        answered: None,
        rules: Vec::new(),
        routes: Vec::new(),
        matched: None,
        default: Some(up.pool.name.clone()),
        split: None,
    }
}

/// Explain what pool `up` would do with `req` now.
pub fn explain_pool(up: &Upstream, req: &Request) -> PoolReport {
    pool_report(up, req, false)
}

/// Explain what pool `up` would do with `req` now, asked directly: routing left out.
pub fn explain_direct(up: &Upstream, req: &Request) -> Report {
    Report {
        listener: String::new(),
        l4: false,
        direct: true,
        request: req.clone(),
        answered: None,
        rules: Vec::new(),
        routes: Vec::new(),
        matched: None,
        default: Some(up.pool.name.clone()),
        split: None,
        pool: Some(explain_pool(up, req)),
    }
}

/// `l4`: a connection of a tcp or udp listener, whose only key is the client address and
/// which has no sticky sessions.
fn pool_report(up: &Upstream, req: &Request, l4: bool) -> PoolReport {
    let pool = &up.pool;
    let key = if l4 {
        None
    } else {
        hash_key(&pool.hash_key, req)
    };
    let ctx = PickContext {
        client: Some(req.client),
        hash_key: key,
        tried: &[],
    };
    let now = tokio::time::Instant::now();
    let sticky = up
        .sticky()
        .filter(|_| !l4)
        .map(|s| s.peek(req, req.client, now));
    let balancer = pool.explain(&ctx);
    let servers = servers::candidates(pool, balancer.backup.is_some());
    let stuck = sticky
        .as_ref()
        .filter(|s| s.used)
        .and_then(|s| s.remembered.clone());
    let (pick, why) = match (&stuck, &balancer.pick) {
        (Some(s), _) => {
            let p = sticky.as_ref().expect("stuck");
            let what = match p.mode {
                "source_ip" => format!("the stick table holds {} for this client", s.name),
                "app_cookie" => format!(
                    "the stick table holds {} for the value of cookie {}",
                    s.name, p.name
                ),
                _ => format!("cookie {} names {}", p.name, s.name),
            };
            let balancer = match &balancer.pick {
                Some(b) if b.id() != s.id() => format!(" (which would pick {})", b.name),
                _ => String::new(),
            };
            (
                stuck.clone(),
                format!(
                    "sticky ({}): {what}; the balancer{balancer} is not asked",
                    p.mode
                ),
            )
        }
        (None, Some(p)) => {
            let e = balancer.backup.as_ref().unwrap_or(&balancer.primary);
            let last = e.steps.last().cloned().unwrap_or_default();
            let tier = if p.backup { " over the backups" } else { "" };
            (
                Some(p.clone()),
                format!("{}{tier}: {last}", pool.algorithm.as_str()),
            )
        }
        (None, None) => (
            None,
            balancer
                .notes
                .last()
                .cloned()
                .unwrap_or_else(|| "no server can take the request: 503".into()),
        ),
    };
    PoolReport {
        name: pool.name.clone(),
        algorithm: pool.algorithm,
        key: key_of(
            if l4 {
                &HashKey::ClientIp
            } else {
                &pool.hash_key
            },
            pool.algorithm,
            req,
            key,
        ),
        servers,
        sticky,
        balancer,
        pick,
        why,
    }
}

/// The listener's rules (allow/deny, block rules, rate limits) and, once routed, the
/// route's: each rule's verdict in a line, asked without spending a limit's allowance;
/// `Err` when one refuses the request (its answer).
fn rules(
    guard: &crate::proxy::http::protect::Guard,
    whose: &str,
    req: &Request,
    path: &[u8],
    lines: &mut Vec<String>,
) -> Result<(), String> {
    if guard.is_empty() {
        return Ok(());
    }
    let raw = RequestView::path(req).as_bytes();
    let raw = raw.split(|&b| b == b'?').next().unwrap_or_default();
    let mut said = Vec::new();
    let verdict = guard.judge(req, req.client, raw, path, &mut said);
    lines.extend(said.into_iter().map(|l| format!("{whose}: {l}")));
    verdict.map_err(|e| format!("{whose} answers {} itself ({e})", e.status()))
}

/// What a pool of `algorithm` hashes for `req` (`bytes`: the pool's key, if the request has
/// it), as (where it comes from, its value).
fn key_of(
    hash_key: &HashKey,
    algorithm: Algorithm,
    req: &Request,
    bytes: Option<&[u8]>,
) -> Option<(String, String)> {
    let client = || {
        (
            "client_ip".to_string(),
            req.client.to_canonical().to_string(),
        )
    };
    match algorithm {
        Algorithm::IpHash => Some((
            "client address (its /24 for IPv4)".into(),
            req.client.to_canonical().to_string(),
        )),
        Algorithm::Hash | Algorithm::Maglev => {
            if *hash_key == HashKey::ClientIp {
                return Some(client());
            }
            let from = crate::config::hash_key(hash_key);
            Some(match bytes {
                Some(b) => (from, String::from_utf8_lossy(b).into_owned()),
                None => {
                    let (_, ip) = client();
                    (
                        format!("{from} (absent from the request: the client address instead)"),
                        ip,
                    )
                }
            })
        }
        _ => None,
    }
}

/// A route's conditions as the config writes them.
fn conditions(m: &Matcher) -> String {
    let mut parts = Vec::new();
    if let Some(h) = &m.host {
        parts.push(match h {
            crate::config::HostMatch::Exact(h) => format!("host = {h:?}"),
            crate::config::HostMatch::Suffix(s) => format!("host = \"*{s}\""),
        });
    }
    if let Some(p) = &m.path_prefix {
        parts.push(format!("path_prefix = {p:?}"));
    }
    if let Some(x) = &m.method {
        parts.push(format!("method = \"{x}\""));
    }
    if let Some((n, v)) = &m.header {
        parts.push(format!("header = \"{n}: {v}\""));
    }
    if let Some((n, v)) = &m.cookie {
        parts.push(format!("cookie = \"{n}={v}\""));
    }
    if parts.is_empty() {
        "every request".into()
    } else {
        parts.join(", ")
    }
}

/// Why `req` fails condition `c` of `m`, in words.
fn failure(m: &Matcher, c: Condition, req: &Request) -> String {
    match c {
        Condition::Host => match (req.host(), &m.host) {
            (Some(h), Some(crate::config::HostMatch::Suffix(s))) => {
                format!("host {h:?} does not end in {s:?}")
            }
            (Some(h), Some(crate::config::HostMatch::Exact(e))) => {
                format!("host {h:?} is not {e:?}")
            }
            _ => "the request names no host".into(),
        },
        Condition::PathPrefix => format!(
            "path {:?} does not start with {:?}",
            req.path(),
            m.path_prefix.as_deref().unwrap_or_default()
        ),
        Condition::Method => format!(
            "method {} is not {}",
            req.method(),
            m.method.as_ref().map_or("", |x| x.as_str())
        ),
        Condition::Header => match &m.header {
            Some((n, v)) => match req.header_values(n).next() {
                Some(got) => format!(
                    "header {n} is {:?}, not {v:?}",
                    String::from_utf8_lossy(got)
                ),
                None => format!("no header {n}"),
            },
            None => String::new(),
        },
        Condition::Cookie => match &m.cookie {
            Some((n, v)) => match req.cookie(n) {
                Some(got) => format!("cookie {n} is {got:?}, not {v:?}"),
                None => format!("no cookie {n}"),
            },
            None => String::new(),
        },
    }
}

fn target(t: &RouteTarget) -> String {
    match t {
        RouteTarget::Pool(p) => format!("pool {}", p.pool.name),
        RouteTarget::Split { pools, .. } => {
            let parts: Vec<String> = split_parts(pools, t)
                .iter()
                .map(|(n, w)| format!("{n} {w}"))
                .collect();
            format!("split {}", parts.join(" / "))
        }
    }
}

/// The parts of a split with their weights (counted in its cycle, which holds each pool
/// as often as its weight reduced by the weights' gcd).
fn split_parts(pools: &[Arc<Upstream>], t: &RouteTarget) -> Vec<(String, u32)> {
    let RouteTarget::Split { cycle, .. } = t else {
        return Vec::new();
    };
    pools
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let n = cycle.iter().filter(|&&c| c as usize == i).count() as u32;
            (p.pool.name.clone(), n)
        })
        .collect()
}

//! Choosing the pool for a request: routes in order, first match wins, else the default.
//! A route's `path_prefix` is compared with the normalised path (`path.rs`), as nginx
//! matches a `location` against `$uri`.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::protect::Guard;
use super::stats::Row;
use super::upstream::Upstream;
use super::view::RequestView;
use crate::balance::smooth_sequence;
use crate::config::Matcher;

/// Where a matched route sends requests.
pub enum RouteTarget {
    Pool(Arc<Upstream>),
    /// A weighted split: an exact, interleaved cycle over the pools (weights 90/10 send
    /// exactly 9 of every 10 requests to the first, never 90 in a row).
    Split {
        pools: Vec<Arc<Upstream>>,
        cycle: Vec<u32>,
        next: AtomicUsize,
    },
}

impl RouteTarget {
    pub fn split(parts: Vec<(Arc<Upstream>, u32)>) -> RouteTarget {
        let weights: Vec<u32> = parts.iter().map(|(_, w)| *w).collect();
        RouteTarget::Split {
            cycle: smooth_sequence(&weights),
            pools: parts.into_iter().map(|(p, _)| p).collect(),
            next: AtomicUsize::new(0),
        }
    }

    /// The pool for the next request, and its position in the target.
    fn choose(&self) -> (&Arc<Upstream>, usize) {
        match self {
            RouteTarget::Pool(p) => (p, 0),
            RouteTarget::Split { pools, cycle, next } => {
                let i = next.fetch_add(1, Ordering::Relaxed) % cycle.len();
                let at = cycle[i] as usize;
                (&pools[at], at)
            }
        }
    }

    /// The pool the next request would go to, without taking the split's turn; for a split,
    /// also the position of its cycle now and the cycle's length.
    pub fn peek(&self) -> (&Arc<Upstream>, Option<(usize, usize)>) {
        match self {
            RouteTarget::Pool(p) => (p, None),
            RouteTarget::Split { pools, cycle, next } => {
                let i = next.load(Ordering::Relaxed) % cycle.len();
                (&pools[cycle[i] as usize], Some((i, cycle.len())))
            }
        }
    }

    /// The pools, in order.
    pub fn pools(&self) -> Vec<&Arc<Upstream>> {
        match self {
            RouteTarget::Pool(p) => vec![p],
            RouteTarget::Split { pools, .. } => pools.iter().collect(),
        }
    }
}

pub struct Route {
    pub matcher: Matcher,
    pub target: RouteTarget,
    /// The route's `client_max_body_size`, when it sets one (0: no limit).
    pub max_body: Option<u64>,
    /// Where its answers are counted: one row per pool of the target, in order.
    pub rows: Vec<Arc<Row>>,
    /// The route's `allow` / `deny`, blocks and limits.
    pub guard: Guard,
}

pub struct Router {
    pub routes: Vec<Route>,
    pub default: Option<Arc<Upstream>>,
    /// The rows of the default pool's answers, and of answers no route took.
    pub default_row: Arc<Row>,
    pub none_row: Arc<Row>,
}

/// Where a request goes, where its answer is counted, and what guards that way.
pub struct Routed<'a> {
    pub pool: Option<&'a Arc<Upstream>>,
    pub row: &'a Arc<Row>,
    pub guard: &'a Guard,
    /// The route's `client_max_body_size`, when it sets one (0: no limit).
    pub max_body: Option<u64>,
}

/// The guard of the default pool: nothing beyond the listener's.
static NO_GUARD: Guard = Guard::none();

impl Router {
    /// The pool for `req` whose normalised path is `path`, or `None` when no route matches
    /// and there is no default.
    pub fn route(&self, req: &impl RequestView, path: &[u8]) -> Option<&Arc<Upstream>> {
        self.route_row(req, path).pool
    }

    /// Where `req` (its normalised path `path`) goes: the pool (if any), the row its answer
    /// is counted in, the route's guard and its `client_max_body_size`.
    pub fn route_row(&self, req: &impl RequestView, path: &[u8]) -> Routed<'_> {
        if let Some(r) = self.routes.iter().find(|r| matches(&r.matcher, req, path)) {
            let (up, at) = r.target.choose();
            return Routed {
                pool: Some(up),
                row: &r.rows[at],
                guard: &r.guard,
                max_body: r.max_body,
            };
        }
        match &self.default {
            Some(up) => Routed {
                pool: Some(up),
                row: &self.default_row,
                guard: &NO_GUARD,
                max_body: None,
            },
            None => Routed {
                pool: None,
                row: &self.none_row,
                guard: &NO_GUARD,
                max_body: None,
            },
        }
    }
}

/// A condition of a route, for saying which one a request fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Condition {
    Host,
    PathPrefix,
    Method,
    Header,
    Cookie,
}

fn matches(m: &Matcher, req: &impl RequestView, path: &[u8]) -> bool {
    first_failed(m, req, path).is_none()
}

/// The first condition of `m` that `req` (its normalised path `path`) fails, in the order
/// they are checked.
pub fn first_failed(m: &Matcher, req: &impl RequestView, path: &[u8]) -> Option<Condition> {
    if let Some(host) = &m.host {
        match req.host() {
            Some(h) if host.matches(h) => {}
            _ => return Some(Condition::Host),
        }
    }
    if let Some(prefix) = &m.path_prefix
        && !path.starts_with(prefix.as_bytes())
    {
        return Some(Condition::PathPrefix);
    }
    if let Some(method) = &m.method
        && req.method() != method.as_str()
    {
        return Some(Condition::Method);
    }
    if let Some((name, value)) = &m.header
        && !req.header_values(name).any(|v| v == value.as_bytes())
    {
        return Some(Condition::Header);
    }
    if let Some((name, value)) = &m.cookie
        && req.cookie(name) != Some(value.as_str())
    {
        return Some(Condition::Cookie);
    }
    None
}

impl Router {
    /// The index of the route `req` (its normalised path `path`) matches (the first that
    /// matches), without choosing its pool; `None` for the default.
    pub fn matched(&self, req: &impl RequestView, path: &[u8]) -> Option<usize> {
        self.routes
            .iter()
            .position(|r| matches(&r.matcher, req, path))
    }
}

//! Choosing the pool for a request: routes in order, first match wins, else the default.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

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
}

pub struct Router {
    pub routes: Vec<Route>,
    pub default: Option<Arc<Upstream>>,
    /// The rows of the default pool's answers, and of answers no route took.
    pub default_row: Arc<Row>,
    pub none_row: Arc<Row>,
}

impl Router {
    /// The pool for `req`, or `None` when no route matches and there is no default.
    pub fn route(&self, req: &impl RequestView) -> Option<&Arc<Upstream>> {
        self.route_row(req).0
    }

    /// The pool for `req` (if any) and the row its answer is counted in.
    pub fn route_row(&self, req: &impl RequestView) -> (Option<&Arc<Upstream>>, &Arc<Row>) {
        let (up, row, _) = self.route_full(req);
        (up, row)
    }

    /// [`Router::route_row`], with the matched route's `client_max_body_size` (`None` when
    /// it sets none, or no route matched).
    pub fn route_full(
        &self,
        req: &impl RequestView,
    ) -> (Option<&Arc<Upstream>>, &Arc<Row>, Option<u64>) {
        if let Some(r) = self.routes.iter().find(|r| matches(&r.matcher, req)) {
            let (up, at) = r.target.choose();
            return (Some(up), &r.rows[at], r.max_body);
        }
        match &self.default {
            Some(up) => (Some(up), &self.default_row, None),
            None => (None, &self.none_row, None),
        }
    }
}

fn matches(m: &Matcher, req: &impl RequestView) -> bool {
    if let Some(host) = &m.host {
        match req.host() {
            Some(h) if host.matches(h) => {}
            _ => return false,
        }
    }
    if let Some(prefix) = &m.path_prefix
        && !req.path().starts_with(prefix.as_str())
    {
        return false;
    }
    if let Some(method) = &m.method
        && req.method() != method.as_str()
    {
        return false;
    }
    if let Some((name, value)) = &m.header
        && !req.header_values(name).any(|v| v == value.as_bytes())
    {
        return false;
    }
    if let Some((name, value)) = &m.cookie
        && req.cookie(name) != Some(value.as_str())
    {
        return false;
    }
    true
}

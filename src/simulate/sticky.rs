//! Sticky sessions in the simulator: which server a key is remembered on, with the rules of
//! `proxy::http::sticky` (a remembered server is tried first only while it is available; a
//! backup keeps a session only while no primary can serve; a session that lands elsewhere
//! is "moved"). The `app_cookie` and `source_ip` modes remember in Switchyard's own
//! [`StickTable`] (size and ttl from the pool); `cookie` is held by the client, so here by
//! key, and names the server by name (a server that leaves and comes back keeps its
//! sessions, as its cookie value is a hash of its name and address).

use std::collections::HashMap;
use std::sync::Arc;

use tokio::time::Instant;

use crate::config::{StickyMode, StickyPlan};
use crate::upstream::{Server, StickTable};

pub struct Sticky {
    /// `cookie`: key → the remembered server (by index of the workload's servers).
    cookies: HashMap<u64, usize>,
    /// `app_cookie`, `source_ip`: key → server id.
    table: Option<StickTable<u64>>,
    /// Requests whose remembered server could not take them, or that were served elsewhere.
    pub moved: u64,
}

/// What a request's key remembers.
pub struct Lookup {
    pub preferred: Option<Arc<Server>>,
    broken: bool,
}

impl Sticky {
    pub fn new(plan: &StickyPlan) -> Sticky {
        Sticky {
            cookies: HashMap::new(),
            table: (plan.mode != StickyMode::Cookie).then(|| StickTable::new(plan.size, plan.ttl)),
            moved: 0,
        }
    }

    /// `current(i)`: the live server of workload index `i`, if in the pool; `by_id`: the
    /// server of an id, if in the pool.
    pub fn lookup(
        &self,
        key: u64,
        now: Instant,
        current: impl Fn(usize) -> Option<Arc<Server>>,
        by_id: impl Fn(u64) -> Option<Arc<Server>>,
        primary_available: impl Fn() -> bool,
    ) -> Lookup {
        let remembered = match &self.table {
            None => self.cookies.get(&key).map(|&i| current(i)),
            Some(t) => t.get(&key, now).map(by_id),
        };
        let mut l = Lookup {
            preferred: None,
            broken: false,
        };
        match remembered {
            None => {}
            Some(Some(s)) if s.backup && primary_available() => {}
            Some(Some(s)) if s.is_available() => l.preferred = Some(s),
            Some(_) => l.broken = true,
        }
        l
    }

    /// The request of `key` was answered by `server` (workload index `index`).
    pub fn after(
        &mut self,
        key: u64,
        l: &Lookup,
        server: &Arc<Server>,
        index: usize,
        now: Instant,
    ) {
        let held = l.preferred.as_ref().is_some_and(|p| p.id() == server.id());
        if l.broken || (l.preferred.is_some() && !held) {
            self.moved += 1;
        }
        match &self.table {
            None => {
                self.cookies.insert(key, index);
            }
            Some(t) if !held => t.insert(key, server.id(), now),
            Some(_) => {}
        }
    }
}

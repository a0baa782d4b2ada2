//! Weighted least connections, as nginx's `least_conn`.
//!
//! A pick takes the eligible server with the lowest `in_flight / weight`. Ties are broken in
//! weighted turn: of the least loaded, the first from where a smooth weighted round robin
//! over the same servers points next. An idle pool therefore behaves exactly like
//! `round_robin`, a loaded one sends each request where relative load is least. The weights
//! are the ones the balancer was built with (the pool rebuilds when they change).
//!
//! Under [`INDEX_FROM`] servers a pick scans them, reading each one's `in_flight` atomic
//! and comparing loads cross-multiplied (`a.in_flight × b.weight < b.in_flight × a.weight`),
//! from the turn's server on, stopping at the first idle one. From [`INDEX_FROM`] servers on
//! the servers report every request's start and end to a [`MinIndex`] of their loads, and a
//! pick reads its per-block least loads instead (see `load_index.rs`): the same answer, at
//! the cost of a few atomic operations per request start and end.

use std::sync::Arc;

use super::load_index::{Bound, INDEX_FROM, Keys, MinIndex, conn_key};
use super::round_robin::RoundRobin;
use super::{Balancer, Explanation, PickContext, label};
use crate::upstream::Server;

/// Least connections relative to weight over a fixed set of servers.
pub struct LeastConn {
    servers: Vec<Arc<Server>>,
    weights: Vec<u64>,
    turn: RoundRobin,
    /// Kept by the servers, for pools of [`INDEX_FROM`] servers or more.
    index: Option<Bound<ConnKeys>>,
}

/// Every server's `conn_key`.
struct ConnKeys {
    weights: Vec<u64>,
    loads: MinIndex,
}

impl Keys for ConnKeys {
    fn update(&self, server: &Server, slot: usize) {
        // Read the count again after storing its key: if another start or end moved it
        // meanwhile, the last of the updates stores the count as it is now.
        loop {
            let in_flight = server.in_flight();
            self.loads
                .set(slot, conn_key(in_flight, self.weights[slot]));
            if server.in_flight() == in_flight {
                return;
            }
        }
    }
}

impl LeastConn {
    pub fn new(servers: &[Arc<Server>]) -> LeastConn {
        LeastConn::with_index(servers, servers.len() >= INDEX_FROM)
    }

    /// With or without the index, whatever the size (for tests that compare the two).
    pub(super) fn with_index(servers: &[Arc<Server>], index: bool) -> LeastConn {
        let weights: Vec<u64> = servers.iter().map(|s| u64::from(s.weight())).collect();
        let index = index.then(|| {
            let keys = ConnKeys {
                weights: weights.clone(),
                loads: MinIndex::new(servers.len()),
            };
            Bound::new(keys, servers)
        });
        LeastConn {
            servers: servers.to_vec(),
            weights,
            turn: RoundRobin::new(servers),
            index,
        }
    }

    /// The scan: from `start` on, the first server of the least load that `take` accepts.
    fn scan(&self, start: usize, take: impl Fn(&Server) -> bool) -> Option<Arc<Server>> {
        let n = self.servers.len();
        // (index, in_flight, weight) of the least loaded so far.
        let mut best: Option<(usize, u64, u64)> = None;
        for k in 0..n {
            let i = if start + k >= n {
                start + k - n
            } else {
                start + k
            };
            let s = &self.servers[i];
            let load = u64::from(s.in_flight());
            let w = self.weights[i];
            // The load first, eligibility only for a server that would become the best: most
            // servers of a large pool are not, and they cost one atomic load.
            let better = match best {
                Some((_, bl, bw)) => load * bw < bl * w,
                None => true,
            };
            if better && take(s) {
                best = Some((i, load, w));
                if load == 0 {
                    break; // nothing is strictly less loaded than idle
                }
            }
        }
        best.map(|(i, _, _)| self.servers[i].clone())
    }
}

impl Balancer for LeastConn {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>> {
        let start = self.turn.next_index()?;
        if let Some(keys) = self.index.as_ref().and_then(Bound::keys) {
            // Nothing is less loaded than idle, and the turn's server comes first among equals.
            // (The scan starts there too.)
            let s = &self.servers[start];
            let asked = s.in_flight() == 0;
            if asked && ctx.eligible(s) {
                return Some(s.clone());
            }
            // A server turned away is not asked twice.
            let eligible = |i: usize| !(asked && i == start) && ctx.eligible(&self.servers[i]);
            if let Ok(least) = keys.loads.search(start, eligible) {
                return least.map(|(_, i)| self.servers[i].clone());
            }
        }
        self.scan(start, |s| ctx.eligible(s))
    }

    /// A peek: the turn is read, not taken; the scan's answer, which the index gives too.
    fn explain(&self, ctx: &PickContext<'_>) -> Explanation {
        let mut e = Explanation::new("least_conn");
        for (s, &w) in self.servers.iter().zip(&self.weights) {
            e.server(s)
                .add("in_flight", s.in_flight())
                .add("weight", w)
                .add("load", format!("{}/{w}", s.in_flight()));
        }
        let Some(start) = self.turn.peek_index() else {
            e.step("no server in rotation");
            return e;
        };
        let first = &self.servers[start];
        e.facts.add("turn", first.name.as_str()).add(
            "load_index",
            if self.index.is_some() {
                "on (32 servers or more)"
            } else {
                "off (under 32 servers: every server read)"
            },
        );
        e.step(format!(
            "fewest requests in flight relative to weight wins; ties go in weighted turn, which is at {}",
            label(first)
        ));
        if self.index.is_some() {
            e.step(format!(
                "the pool has {} servers: picks read its load index, whose answer is the scan's",
                self.servers.len()
            ));
        }
        e.pick = self.scan(start, |s| ctx.would_take(s));
        let Some(p) = e.pick.clone() else {
            e.step("no server is eligible");
            return e;
        };
        let at = self
            .servers
            .iter()
            .position(|s| s.id() == p.id())
            .unwrap_or(0);
        let (pl, pw) = (u64::from(p.in_flight()), self.weights[at]);
        for (s, &w) in self.servers.iter().zip(&self.weights) {
            if u64::from(s.in_flight()) * pw < pl * w
                && let Some(why) = ctx.refusal(s)
            {
                e.step(format!(
                    "{} is less loaded ({}/{w}) but {why}",
                    label(s),
                    s.in_flight()
                ));
            }
        }
        e.step(format!(
            "{} has the least load, {pl} in flight for weight {pw}{}",
            label(&p),
            if p.id() == first.id() {
                ", and the turn".to_string()
            } else {
                String::new()
            }
        ));
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{
        Rng, check_exclusion, check_retries_try_each_server_once, index, picks, servers,
    };
    use crate::upstream::InFlight;

    #[test]
    fn sends_to_the_least_loaded_relative_to_weight() {
        for indexed in [false, true] {
            let s = servers(&[1, 2, 4]);
            let b = LeastConn::with_index(&s, indexed);
            // Loads 1/1, 1/2, 3/4: server 1 (0.5) is least loaded.
            let mut guards = vec![s[0].begin(), s[1].begin()];
            guards.extend((0..3).map(|_| s[2].begin()));
            for _ in 0..20 {
                assert_eq!(index(&s, &b.pick(&PickContext::default()).unwrap()), 1);
            }
            // Following the picks with requests fills the servers in proportion to weight.
            let mut counts = [1usize, 1, 3];
            for _ in 0..65 {
                let got = b.pick(&PickContext::default()).unwrap();
                counts[index(&s, &got)] += 1;
                guards.push(got.begin());
            }
            // 70 in flight over weights 1,2,4 is 10,20,40.
            assert_eq!(counts, [10, 20, 40], "indexed: {indexed}");
            assert_eq!(
                s.iter().map(|x| x.in_flight()).collect::<Vec<_>>(),
                [10, 20, 40]
            );
            drop(guards);
        }
    }

    #[test]
    fn an_idle_pool_goes_in_weighted_turn() {
        for indexed in [false, true] {
            let s = servers(&[5, 3, 2]);
            let b = LeastConn::with_index(&s, indexed);
            assert_eq!(picks(&b, &s, 10), [0, 1, 2, 0, 0, 1, 0, 2, 1, 0]);
        }
    }

    #[test]
    fn ties_rotate_instead_of_piling_on_the_first() {
        for indexed in [false, true] {
            let s = servers(&[1, 1, 1, 1]);
            let b = LeastConn::with_index(&s, indexed);
            // Servers 0 and 2 are busy; 1 and 3 tie and must share the picks.
            let _g = (s[0].begin(), s[2].begin());
            let got = picks(&b, &s, 8);
            assert_eq!(got.iter().filter(|&&i| i == 1).count(), 4, "{got:?}");
            assert_eq!(got.iter().filter(|&&i| i == 3).count(), 4, "{got:?}");
        }
    }

    #[test]
    fn exclusion() {
        check_exclusion(|s| Box::new(LeastConn::with_index(s, false)));
        check_exclusion(|s| Box::new(LeastConn::with_index(s, true)));
    }

    #[test]
    fn retries_try_each_server_once() {
        check_retries_try_each_server_once(|s| Box::new(LeastConn::with_index(s, false)));
        check_retries_try_each_server_once(|s| Box::new(LeastConn::with_index(s, true)));
    }

    #[test]
    fn large_pools_use_the_index() {
        let small = LeastConn::new(&servers(&[1; INDEX_FROM - 1]));
        assert!(small.index.is_none());
        assert!(LeastConn::new(&servers(&[1; INDEX_FROM])).index.is_some());
    }

    /// The index and the scan give the same server at every pick, with the same turn, while
    /// requests start and end, some servers are down and retries exclude others.
    #[test]
    fn the_index_picks_exactly_what_the_scan_picks() {
        let mut rng = Rng::new(7);
        for (n, max_weight) in [(5, 3), (40, 10), (130, 10), (200, 1000)] {
            let weights: Vec<u32> = (0..n).map(|_| 1 + rng.below(max_weight) as u32).collect();
            let s = servers(&weights);
            let scan = LeastConn::with_index(&s, false);
            let indexed = LeastConn::with_index(&s, true);
            let mut held: Vec<InFlight> = Vec::new();
            for step in 0..4000 {
                match rng.below(10) {
                    0 if !held.is_empty() => {
                        let i = rng.below(held.len() as u64) as usize;
                        held.swap_remove(i);
                    }
                    1 => {
                        let i = rng.below(n as u64) as usize;
                        s[i].set_admin_down(!s[i].admin_down() && rng.below(4) == 0);
                    }
                    _ => {}
                }
                let tried: Vec<Arc<Server>> = (0..rng.below(3))
                    .map(|_| s[rng.below(n as u64) as usize].clone())
                    .collect();
                let ctx = PickContext {
                    tried: &tried,
                    ..PickContext::default()
                };
                let (a, b) = (scan.pick(&ctx), indexed.pick(&ctx));
                assert_eq!(
                    a.as_ref().map(|x| index(&s, x)),
                    b.as_ref().map(|x| index(&s, x)),
                    "n {n}, step {step}"
                );
                if let Some(got) = b
                    && held.len() < 3 * n
                {
                    held.push(got.begin());
                }
            }
        }
    }

    /// Requests starting and ending on many threads at once leave the index exact.
    #[test]
    fn the_index_settles_exactly_after_concurrent_requests() {
        let s = servers(&(1..=100).map(|i| 1 + i % 7).collect::<Vec<_>>());
        let indexed = LeastConn::with_index(&s, true);
        let kept: Vec<InFlight> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4u64)
                .map(|t| {
                    let (s, indexed) = (&s, &indexed);
                    scope.spawn(move || {
                        let mut rng = Rng::new(t);
                        let mut held: Vec<InFlight> = Vec::new();
                        for _ in 0..20_000 {
                            if rng.below(2) == 0 && !held.is_empty() {
                                held.swap_remove(rng.below(held.len() as u64) as usize);
                            } else if rng.below(2) == 0 {
                                held.push(s[rng.below(100) as usize].begin());
                            } else if let Some(got) = indexed.pick(&PickContext::default()) {
                                held.push(got.begin());
                            }
                        }
                        held.truncate(30);
                        held
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().unwrap())
                .collect()
        });
        assert!(!kept.is_empty());
        let keys = indexed.index.as_ref().unwrap().keys().unwrap();
        for (i, x) in s.iter().enumerate() {
            assert_eq!(keys.loads.key(i), conn_key(x.in_flight(), keys.weights[i]));
        }
        assert!(keys.loads.settled());
        // And a pick is the least loaded.
        let least = s
            .iter()
            .map(|x| conn_key(x.in_flight(), u64::from(x.weight())))
            .min();
        let got = indexed.pick(&PickContext::default()).unwrap();
        assert_eq!(
            Some(conn_key(got.in_flight(), u64::from(got.weight()))),
            least
        );
    }

    /// A newer balancer over the same servers takes their reports over; the older one, still
    /// asked by requests that started before the swap, scans and stays exact.
    #[test]
    fn a_rebuilt_balancer_takes_the_servers_over() {
        let s = servers(&[1; 50]);
        let old = LeastConn::with_index(&s, true);
        let mut busy: Vec<InFlight> = s[..49].iter().map(|x| x.begin()).collect();
        let new = LeastConn::with_index(&s, true);
        assert!(old.index.as_ref().unwrap().keys().is_none(), "superseded");
        assert!(new.index.as_ref().unwrap().keys().is_some());
        for b in [&old, &new] {
            assert_eq!(index(&s, &b.pick(&PickContext::default()).unwrap()), 49);
        }
        let g = s[49].begin();
        let _h = s[49].begin();
        drop(g);
        // Server 49 has 1 in flight like the rest: ties go in turn again.
        let got = picks(&new, &s, 50);
        assert_eq!(
            got.iter().collect::<std::collections::BTreeSet<_>>().len(),
            50
        );
        // Dropping the old one leaves the new one told.
        drop(old);
        busy.swap_remove(10);
        for _ in 0..5 {
            assert_eq!(index(&s, &new.pick(&PickContext::default()).unwrap()), 10);
        }
    }
}

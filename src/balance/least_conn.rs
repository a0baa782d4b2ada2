//! Weighted least connections, as nginx's `least_conn`.
//!
//! A pick scans the eligible servers and takes the lowest `in_flight / weight`, compared
//! cross-multiplied (`a.in_flight × b.weight < b.in_flight × a.weight`) so no floats or
//! division are needed. Ties are broken in weighted turn: the scan starts where a smooth
//! weighted round robin over the same servers points next, and only a strictly lower load
//! displaces the first candidate. An idle pool therefore behaves exactly like
//! `round_robin`, a loaded one sends each request where relative load is least. The load
//! is read live from each server's `in_flight` atomic; the weights are the ones the
//! balancer was built with (the pool rebuilds when they change). A pick is O(servers).

use std::sync::Arc;

use super::round_robin::RoundRobin;
use super::{Balancer, PickContext};
use crate::upstream::Server;

/// Least connections relative to weight over a fixed set of servers.
pub struct LeastConn {
    servers: Vec<Arc<Server>>,
    weights: Vec<u64>,
    turn: RoundRobin,
}

impl LeastConn {
    pub fn new(servers: &[Arc<Server>]) -> LeastConn {
        LeastConn {
            servers: servers.to_vec(),
            weights: servers.iter().map(|s| u64::from(s.weight())).collect(),
            turn: RoundRobin::new(servers),
        }
    }
}

impl Balancer for LeastConn {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>> {
        let start = self.turn.next_index()?;
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
            if better && ctx.eligible(s) {
                best = Some((i, load, w));
                if load == 0 {
                    break; // nothing is strictly less loaded than idle
                }
            }
        }
        best.map(|(i, _, _)| self.servers[i].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{
        check_exclusion, check_retries_try_each_server_once, index, picks, servers,
    };

    #[test]
    fn sends_to_the_least_loaded_relative_to_weight() {
        let s = servers(&[1, 2, 4]);
        let b = LeastConn::new(&s);
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
        assert_eq!(counts, [10, 20, 40]);
        assert_eq!(
            s.iter().map(|x| x.in_flight()).collect::<Vec<_>>(),
            [10, 20, 40]
        );
        drop(guards);
    }

    #[test]
    fn an_idle_pool_goes_in_weighted_turn() {
        let s = servers(&[5, 3, 2]);
        let b = LeastConn::new(&s);
        assert_eq!(picks(&b, &s, 10), [0, 1, 2, 0, 0, 1, 0, 2, 1, 0]);
    }

    #[test]
    fn ties_rotate_instead_of_piling_on_the_first() {
        let s = servers(&[1, 1, 1, 1]);
        let b = LeastConn::new(&s);
        // Servers 0 and 2 are busy; 1 and 3 tie and must share the picks.
        let _g = (s[0].begin(), s[2].begin());
        let got = picks(&b, &s, 8);
        assert_eq!(got.iter().filter(|&&i| i == 1).count(), 4, "{got:?}");
        assert_eq!(got.iter().filter(|&&i| i == 3).count(), 4, "{got:?}");
    }

    #[test]
    fn exclusion() {
        check_exclusion(|s| Box::new(LeastConn::new(s)));
    }

    #[test]
    fn retries_try_each_server_once() {
        check_retries_try_each_server_once(|s| Box::new(LeastConn::new(s)));
    }
}

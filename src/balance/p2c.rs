//! Power of two choices: draw two distinct servers at random, send to the less loaded.
//!
//! Load is `in_flight / weight` (compared cross-multiplied); between equally loaded servers
//! the one with the clearly lower latency EWMA wins (one never measured counts as fastest,
//! so it gets a sample), and when the EWMAs are within 25% of each other the first drawn
//! wins, so idle pools spread at random instead of starving whichever server was measured
//! slowest once. O(1) per pick regardless of pool size, no lock: the random numbers come
//! from a SplitMix64 counter in an atomic. When a draw hits an ineligible server the draw is
//! repeated a few times, then one scan finds the least loaded eligible server.

use std::sync::Arc;

use super::{Balancer, PickContext, SplitMix};
use crate::upstream::Server;

/// Draws that may hit ineligible servers before falling back to a scan.
const DRAWS: usize = 4;

/// Power of two choices over a fixed set of servers.
pub struct P2c {
    servers: Vec<Arc<Server>>,
    weights: Vec<u64>,
    rng: SplitMix,
}

impl P2c {
    pub fn new(servers: &[Arc<Server>]) -> P2c {
        P2c::with_rng(servers, SplitMix::from_entropy())
    }

    /// With a fixed seed, for reproducible tests and benchmarks.
    pub fn with_seed(servers: &[Arc<Server>], seed: u64) -> P2c {
        P2c::with_rng(servers, SplitMix::new(seed))
    }

    fn with_rng(servers: &[Arc<Server>], rng: SplitMix) -> P2c {
        P2c {
            servers: servers.to_vec(),
            weights: servers.iter().map(|s| u64::from(s.weight())).collect(),
            rng,
        }
    }

    /// Whether server `a` should be taken over server `b`.
    fn better(&self, a: usize, b: usize) -> bool {
        let (sa, sb) = (&self.servers[a], &self.servers[b]);
        let la = u64::from(sa.in_flight()) * self.weights[b];
        let lb = u64::from(sb.in_flight()) * self.weights[a];
        if la != lb {
            return la < lb;
        }
        let (ea, eb) = (sa.latency_ewma_us(), sb.latency_ewma_us());
        // Clearly faster: below 3/4 of the other's EWMA (saturating: no overflow for any
        // EWMA); otherwise a tie, and the caller keeps the first drawn.
        ea.saturating_mul(4) < eb.saturating_mul(3)
    }
}

impl Balancer for P2c {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>> {
        let n = self.servers.len();
        match n {
            0 => return None,
            1 => return super::first_eligible(&self.servers, 0, ctx),
            _ => {}
        }
        for _ in 0..DRAWS {
            // Two distinct indices from one 64-bit draw: `a` uniform, `b` uniform among the
            // other n-1.
            let r = self.rng.next_u64();
            let a = ((u128::from(r as u32) * n as u128) >> 32) as usize;
            let b = (a + 1 + ((u128::from(r >> 32) * (n as u128 - 1)) >> 32) as usize) % n;
            let (ea, eb) = (
                ctx.eligible(&self.servers[a]),
                ctx.eligible(&self.servers[b]),
            );
            let chosen = match (ea, eb) {
                (true, true) => {
                    if self.better(b, a) {
                        b
                    } else {
                        a
                    }
                }
                _ => continue,
            };
            return Some(self.servers[chosen].clone());
        }
        // Much of the pool is excluded: one pass for the least loaded eligible server.
        let start = self.rng.below(n as u64) as usize;
        let mut best: Option<usize> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if ctx.eligible(&self.servers[i]) && best.is_none_or(|b| self.better(i, b)) {
                best = Some(i);
            }
        }
        best.map(|i| self.servers[i].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{
        check_exclusion, check_retries_try_each_server_once, index, picks, servers, simulate,
    };
    use std::time::Duration;

    #[test]
    fn moves_traffic_away_from_a_slow_server() {
        let s = servers(&[1, 1, 1]);
        let b = P2c::with_seed(&s, 7);
        let counts = simulate(&b, &s, &[50, 5, 5], 2000);
        assert!(counts[0] * 4 < counts[1], "{counts:?}");
        assert!(counts[0] * 4 < counts[2], "{counts:?}");
        assert!(counts[0] >= 1, "the slow server was measured: {counts:?}");
    }

    #[test]
    fn takes_the_less_loaded_of_two() {
        let s = servers(&[1, 1]);
        let b = P2c::with_seed(&s, 1);
        let _g = s[0].begin();
        // Always two distinct servers: a draw of server 0 twice would pick it.
        for _ in 0..50 {
            assert_eq!(index(&s, &b.pick(&PickContext::default()).unwrap()), 1);
        }
        // Relative to weight: 1 in flight on weight 4 beats 1 on weight 1.
        let s = servers(&[1, 4]);
        let b = P2c::with_seed(&s, 1);
        let _g = (s[0].begin(), s[1].begin());
        for _ in 0..50 {
            assert_eq!(index(&s, &b.pick(&PickContext::default()).unwrap()), 1);
        }
    }

    #[test]
    fn equal_idle_servers_share_evenly() {
        let s = servers(&[1, 1, 1, 1]);
        s[0].record_latency(Duration::from_micros(1000));
        s[1].record_latency(Duration::from_micros(1100));
        s[2].record_latency(Duration::from_micros(900));
        s[3].record_latency(Duration::from_micros(1050));
        let b = P2c::with_seed(&s, 3);
        let got = picks(&b, &s, 4000);
        for i in 0..4 {
            let c = got.iter().filter(|&&x| x == i).count();
            assert!((800..1200).contains(&c), "server {i}: {c}");
        }
    }

    #[test]
    fn seeded_runs_repeat() {
        let s = servers(&[1; 10]);
        let a = picks(&P2c::with_seed(&s, 99), &s, 100);
        let b = picks(&P2c::with_seed(&s, 99), &s, 100);
        assert_eq!(a, b);
    }

    #[test]
    fn exclusion() {
        check_exclusion(|s| Box::new(P2c::with_seed(s, 5)));
    }

    #[test]
    fn retries_try_each_server_once() {
        check_retries_try_each_server_once(|s| Box::new(P2c::with_seed(s, 5)));
    }
}

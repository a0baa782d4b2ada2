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

use super::{Balancer, Draws, Explanation, PickContext, SplitMix, label};
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

/// How a pick of [`P2c::choose`] went.
enum Chosen {
    /// Draw `draw` sampled `a` and `b`, both eligible; `chosen` is one of them.
    Sampled {
        draw: usize,
        a: usize,
        b: usize,
        chosen: usize,
    },
    /// Every draw hit an ineligible server; one pass from `start` found this one.
    Scanned { start: usize, chosen: Option<usize> },
    /// A pool of one: that server, if eligible.
    Single(Option<usize>),
}

impl P2c {
    /// A pick with the random numbers of `draws`, taking what `take` accepts; `seen` is told
    /// each draw's two servers.
    fn choose<D: Draws>(
        &self,
        mut draws: D,
        take: impl Fn(&Server) -> bool,
        mut seen: impl FnMut(usize, usize),
    ) -> Chosen {
        let n = self.servers.len();
        if n < 2 {
            return Chosen::Single(super::first_where(&self.servers, 0, take));
        }
        for draw in 0..DRAWS {
            // Two distinct indices from one 64-bit draw: `a` uniform, `b` uniform among the
            // other n-1.
            let r = draws.next_u64();
            let a = ((u128::from(r as u32) * n as u128) >> 32) as usize;
            let b = (a + 1 + ((u128::from(r >> 32) * (n as u128 - 1)) >> 32) as usize) % n;
            seen(a, b);
            let (ta, tb) = (take(&self.servers[a]), take(&self.servers[b]));
            if ta && tb {
                let chosen = if self.better(b, a) { b } else { a };
                return Chosen::Sampled { draw, a, b, chosen };
            }
        }
        // Much of the pool is excluded: one pass for the least loaded eligible server.
        let start = draws.below(n as u64) as usize;
        let mut best: Option<usize> = None;
        for k in 0..n {
            let i = (start + k) % n;
            if take(&self.servers[i]) && best.is_none_or(|b| self.better(i, b)) {
                best = Some(i);
            }
        }
        Chosen::Scanned {
            start,
            chosen: best,
        }
    }
}

impl Balancer for P2c {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>> {
        let chosen = match self.choose(&self.rng, |s| ctx.eligible(s), |_, _| {}) {
            Chosen::Sampled { chosen, .. } => Some(chosen),
            Chosen::Scanned { chosen, .. } | Chosen::Single(chosen) => chosen,
        };
        chosen.map(|i| self.servers[i].clone())
    }

    /// A peek: the random numbers the next pick will draw, computed without drawing them.
    fn explain(&self, ctx: &PickContext<'_>) -> Explanation {
        let mut e = Explanation::new("p2c");
        for (s, &w) in self.servers.iter().zip(&self.weights) {
            e.server(s)
                .add("in_flight", s.in_flight())
                .add("weight", w)
                .add("ewma_us", s.latency_ewma_us());
        }
        let mut pairs = Vec::new();
        let chosen = self.choose(
            self.rng.peek(),
            |s| ctx.would_take(s),
            |a, b| pairs.push((a, b)),
        );
        let name = |i: usize| label(&self.servers[i]);
        let load = |i: usize| format!("{}/{}", self.servers[i].in_flight(), self.weights[i]);
        for &(a, b) in &pairs {
            let turned: Vec<String> = [a, b]
                .into_iter()
                .filter_map(|i| {
                    ctx.refusal(&self.servers[i])
                        .map(|w| format!("{} {w}", name(i)))
                })
                .collect();
            if turned.is_empty() {
                e.step(format!(
                    "the draw samples {} (load {}) and {} (load {})",
                    name(a),
                    load(a),
                    name(b),
                    load(b)
                ));
            } else {
                e.step(format!(
                    "the draw samples {} and {}: {}; drawn again",
                    name(a),
                    name(b),
                    turned.join(", ")
                ));
            }
        }
        let pick = match chosen {
            Chosen::Sampled { draw, a, b, chosen } => {
                e.facts
                    .add(
                        "sampled",
                        format!("{}, {}", self.servers[a].name, self.servers[b].name),
                    )
                    .add("draws", draw + 1);
                let other = if chosen == a { b } else { a };
                let (lc, lo) = (
                    u64::from(self.servers[chosen].in_flight()) * self.weights[other],
                    u64::from(self.servers[other].in_flight()) * self.weights[chosen],
                );
                let why = if lc < lo {
                    "fewer requests in flight relative to weight".to_string()
                } else if self.better(chosen, other) {
                    "as loaded, and clearly faster (EWMA under 3/4 of the other's)".to_string()
                } else {
                    "as loaded and about as fast: the first drawn".to_string()
                };
                e.step(format!("{} wins: {why}", name(chosen)));
                Some(chosen)
            }
            Chosen::Scanned { start, chosen } => {
                e.step(format!(
                    "{DRAWS} draws hit ineligible servers: one pass from {} finds the least loaded eligible server",
                    name(start)
                ));
                chosen
            }
            Chosen::Single(chosen) => {
                e.step("one server: nothing to sample");
                chosen
            }
        };
        e.pick = pick.map(|i| self.servers[i].clone());
        e
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

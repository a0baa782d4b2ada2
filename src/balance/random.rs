//! Weighted random: each pick lands on a server with probability `weight / total`.
//!
//! The build keeps the running sums of the weights; a pick draws `r` in `0..total` and
//! binary-searches the first sum above it: O(log servers), no lock (the random numbers come
//! from a SplitMix64 counter in an atomic). If the draw hits an ineligible server it is
//! repeated a few times, then one weighted pass over the eligible servers decides, so the
//! weights still hold among what is left.

use std::sync::Arc;

use super::{Balancer, Draws, Explanation, PickContext, SplitMix, label};
use crate::upstream::Server;

/// Draws that may hit ineligible servers before the weighted pass.
const DRAWS: usize = 4;

/// Weighted random choice over a fixed set of servers.
pub struct WeightedRandom {
    servers: Vec<Arc<Server>>,
    /// `cumulative[i]` = sum of the weights of servers `0..=i`.
    cumulative: Vec<u64>,
    rng: SplitMix,
}

impl WeightedRandom {
    pub fn new(servers: &[Arc<Server>]) -> WeightedRandom {
        WeightedRandom::with_rng(servers, SplitMix::from_entropy())
    }

    /// With a fixed seed, for reproducible tests and benchmarks.
    pub fn with_seed(servers: &[Arc<Server>], seed: u64) -> WeightedRandom {
        WeightedRandom::with_rng(servers, SplitMix::new(seed))
    }

    fn with_rng(servers: &[Arc<Server>], rng: SplitMix) -> WeightedRandom {
        let cumulative = servers
            .iter()
            .scan(0u64, |sum, s| {
                *sum += u64::from(s.weight().max(1));
                Some(*sum)
            })
            .collect();
        WeightedRandom {
            servers: servers.to_vec(),
            cumulative,
            rng,
        }
    }

    fn weight(&self, i: usize) -> u64 {
        self.cumulative[i] - if i == 0 { 0 } else { self.cumulative[i - 1] }
    }
}

impl WeightedRandom {
    /// A pick with the random numbers of `draws`, taking what `take` accepts; `seen` is told
    /// each draw (the number in `0..total` and the server it lands on). `Err` when every draw
    /// missed: then the weighted pass's answer.
    fn choose<D: Draws>(
        &self,
        mut draws: D,
        take: impl Fn(&Server) -> bool,
        mut seen: impl FnMut(u64, usize),
    ) -> Result<usize, Option<usize>> {
        let Some(&total) = self.cumulative.last() else {
            return Err(None);
        };
        for _ in 0..DRAWS {
            let r = draws.below(total);
            let i = self.cumulative.partition_point(|&c| c <= r);
            seen(r, i);
            if take(&self.servers[i]) {
                return Ok(i);
            }
        }
        // Most of the weight is excluded: choose among the eligible by weight.
        let eligible: u64 = (0..self.servers.len())
            .filter(|&i| take(&self.servers[i]))
            .map(|i| self.weight(i))
            .sum();
        if eligible == 0 {
            return Err(None);
        }
        let mut r = draws.below(eligible);
        for (i, s) in self.servers.iter().enumerate() {
            if !take(s) {
                continue;
            }
            let w = self.weight(i);
            if r < w {
                return Err(Some(i));
            }
            r -= w;
        }
        // Eligibility changed during the pass (a server went down meanwhile).
        Err(super::first_where(&self.servers, 0, take))
    }
}

impl Balancer for WeightedRandom {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>> {
        let i = match self.choose(&self.rng, |s| ctx.eligible(s), |_, _| {}) {
            Ok(i) | Err(Some(i)) => i,
            Err(None) => return None,
        };
        Some(self.servers[i].clone())
    }

    /// A peek: the random numbers the next pick will draw, computed without drawing them.
    fn explain(&self, ctx: &PickContext<'_>) -> Explanation {
        let mut e = Explanation::new("random");
        let total = self.cumulative.last().copied().unwrap_or(0);
        for (i, s) in self.servers.iter().enumerate() {
            let w = self.weight(i);
            e.server(s).add("weight", w).add(
                "range",
                format!("{}..{}", self.cumulative[i] - w, self.cumulative[i]),
            );
        }
        e.facts.add("total_weight", total);
        let mut draws = Vec::new();
        let chosen = self.choose(
            self.rng.peek(),
            |s| ctx.would_take(s),
            |r, i| draws.push((r, i)),
        );
        for (r, i) in draws {
            let s = &self.servers[i];
            match ctx.refusal(s) {
                None => e.step(format!(
                    "the draw is {r} of 0..{total}: it lands in the range of {}",
                    label(s)
                )),
                Some(why) => e.step(format!(
                    "the draw is {r} of 0..{total}: {} ({why}); drawn again",
                    label(s)
                )),
            }
        }
        let pick = match chosen {
            Ok(i) => Some(i),
            Err(i) => {
                if i.is_some() {
                    e.step(format!(
                        "{DRAWS} draws missed: one more draw over the eligible servers' weights decides"
                    ));
                }
                i
            }
        };
        e.pick = pick.map(|i| self.servers[i].clone());
        if e.pick.is_none() {
            e.step("no server is eligible");
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{
        check_exclusion, check_retries_try_each_server_once, index, picks, servers,
    };

    #[test]
    fn honours_weights() {
        let s = servers(&[5, 3, 2]);
        let b = WeightedRandom::with_seed(&s, 42);
        let got = picks(&b, &s, 10_000);
        for (i, want) in [5000usize, 3000, 2000].into_iter().enumerate() {
            let c = got.iter().filter(|&&x| x == i).count();
            // ±5% of the expected count; the standard deviation is under 50.
            assert!(
                c.abs_diff(want) < want / 20,
                "server {i}: {c} of 10000, want ~{want}"
            );
        }
    }

    #[test]
    fn weights_hold_among_the_eligible() {
        let s = servers(&[6, 1, 3]);
        let b = WeightedRandom::with_seed(&s, 9);
        let tried = [s[0].clone()];
        let ctx = PickContext {
            tried: &tried,
            ..PickContext::default()
        };
        let mut counts = [0usize; 3];
        for _ in 0..4000 {
            counts[index(&s, &b.pick(&ctx).unwrap())] += 1;
        }
        assert_eq!(counts[0], 0);
        assert!(counts[1].abs_diff(1000) < 100, "{counts:?}");
        assert!(counts[2].abs_diff(3000) < 100, "{counts:?}");
    }

    #[test]
    fn seeded_runs_repeat() {
        let s = servers(&[1, 2, 3]);
        assert_eq!(
            picks(&WeightedRandom::with_seed(&s, 5), &s, 50),
            picks(&WeightedRandom::with_seed(&s, 5), &s, 50)
        );
    }

    #[test]
    fn exclusion() {
        check_exclusion(|s| Box::new(WeightedRandom::with_seed(s, 5)));
    }

    #[test]
    fn retries_try_each_server_once() {
        check_retries_try_each_server_once(|s| Box::new(WeightedRandom::with_seed(s, 5)));
    }
}

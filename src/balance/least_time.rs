//! Least time: the server expected to answer soonest, as nginx Plus's `least_time`.
//!
//! Each server's cost is its response-time EWMA (`Server::latency_ewma_us`, fed by the proxy
//! with the time to the response head) times the requests it would then have in flight,
//! over its weight: `ewma × (in_flight + 1) / weight`. Costs are compared cross-multiplied in
//! integers, so no floats or division. A slow server is used only once the fast ones have
//! enough requests queued to be slower still.
//!
//! A server with no sample yet (new, or just back) must be measured: when idle it is picked
//! before any measured server; while its first request is in flight it is costed at the
//! mean EWMA of the measured servers, so it gets a fair share instead of a flood.
//! Ties are broken in weighted turn, as `least_conn`.
//!
//! A measured server left unpicked for [`LeastTime::starved_after`] picks (256, or 16 per
//! server in larger pools) is measured again: when the turn comes to it and it is idle, it
//! gets that request, and the answer replaces its EWMA. Without this, one slow answer (a
//! cold start, a pause) would keep a server out of rotation for good, since only picks bring
//! samples; the cost is at most one request in 256 per slow server.
//!
//! Under [`INDEX_FROM`] servers a pick scans them. From [`INDEX_FROM`] on, as `least_conn`,
//! the servers report every change of their load (a request starts or ends, a latency
//! sample) to two [`MinIndex`]es: the measured servers by cost, the unmeasured ones by
//! requests in flight relative to weight, plus the sum and count of the EWMAs for the mean.
//! A pick reads the block summaries instead of every server; the answer is the scan's.

use std::sync::Arc;
use std::sync::atomic::{
    AtomicU64,
    Ordering::{Relaxed, SeqCst},
};

use super::load_index::{ABSENT, Bound, INDEX_FROM, Keys, MinIndex, conn_key};
use super::round_robin::RoundRobin;
use super::{Balancer, Explanation, PickContext, label};
use crate::upstream::Server;

/// Lowest expected response time over a fixed set of servers.
pub struct LeastTime {
    servers: Vec<Arc<Server>>,
    weights: Vec<u64>,
    turn: RoundRobin,
    /// The turn at which each server was last picked.
    last_pick: Box<[AtomicU64]>,
    /// Picks after which an unpicked server is measured again (see the module docs).
    starved_after: u64,
    /// Kept by the servers, for pools of [`INDEX_FROM`] servers or more.
    index: Option<Bound<TimeKeys>>,
}

/// The keys of every server's cost, for the measured ones, and of its requests in flight,
/// for the others.
struct TimeKeys {
    weights: Vec<u64>,
    /// `cost_key` of each measured server; [`ABSENT`] for the unmeasured.
    costs: MinIndex,
    /// `conn_key` of each unmeasured server; [`ABSENT`] for the measured.
    unmeasured: MinIndex,
    /// Each server's EWMA as last accounted in `ewma_sum` and `measured`.
    ewma: Box<[AtomicU64]>,
    ewma_sum: AtomicU64,
    measured: AtomicU64,
}

/// The key of a server's cost `ewma × (in_flight + 1) / weight`, scaled by 2^20 before the
/// division so that keys compare as the costs do (as `conn_key`; saturating just below
/// [`ABSENT`], which only EWMA × requests beyond 10^13 µs reach).
fn cost_key(ewma: u64, in_flight: u32, weight: u64) -> u64 {
    let scaled = (u128::from(ewma) * (u128::from(in_flight) + 1)) << 20;
    u64::try_from(scaled / u128::from(weight.max(1))).map_or(ABSENT - 1, |k| k.min(ABSENT - 1))
}

impl Keys for TimeKeys {
    fn update(&self, server: &Server, slot: usize) {
        // As `ConnKeys::update`: read again after storing, until nothing moved meanwhile.
        loop {
            let (ewma, in_flight) = (server.latency_ewma_us(), server.in_flight());
            // Swapped, so that concurrent updates add up to the last EWMA stored.
            let old = self.ewma[slot].swap(ewma, SeqCst);
            if old != ewma {
                self.ewma_sum.fetch_add(ewma.wrapping_sub(old), SeqCst);
                match (old, ewma) {
                    (0, _) => self.measured.fetch_add(1, SeqCst),
                    (_, 0) => self.measured.fetch_sub(1, SeqCst),
                    _ => 0,
                };
            }
            let w = self.weights[slot];
            // Into the one index before out of the other: a pick in between sees it twice
            // rather than not at all.
            if ewma == 0 {
                self.unmeasured.set(slot, conn_key(in_flight, w));
                self.costs.set(slot, ABSENT);
            } else {
                self.costs.set(slot, cost_key(ewma, in_flight, w));
                self.unmeasured.set(slot, ABSENT);
            }
            if (server.latency_ewma_us(), server.in_flight()) == (ewma, in_flight) {
                return;
            }
        }
    }
}

impl LeastTime {
    pub fn new(servers: &[Arc<Server>]) -> LeastTime {
        LeastTime::with_index(servers, servers.len() >= INDEX_FROM)
    }

    /// With or without the index, whatever the size (for tests that compare the two).
    pub(super) fn with_index(servers: &[Arc<Server>], index: bool) -> LeastTime {
        let weights: Vec<u64> = servers.iter().map(|s| u64::from(s.weight())).collect();
        let n = servers.len();
        let index = index.then(|| {
            let keys = TimeKeys {
                weights: weights.clone(),
                costs: MinIndex::new(n),
                unmeasured: MinIndex::new(n),
                ewma: (0..n).map(|_| AtomicU64::new(0)).collect(),
                ewma_sum: AtomicU64::new(0),
                measured: AtomicU64::new(0),
            };
            Bound::new(keys, servers)
        });
        LeastTime {
            servers: servers.to_vec(),
            weights,
            turn: RoundRobin::new(servers),
            last_pick: (0..n).map(|_| AtomicU64::new(0)).collect(),
            starved_after: (16 * n as u64).max(256),
            index,
        }
    }

    /// Whether the server at the turn (`i`, the `turn`th pick) is to be measured again: a
    /// measured server unpicked for `starved_after` picks and idle now.
    fn starved(&self, i: usize, turn: u64, take: impl Fn(&Server) -> bool) -> bool {
        let s = &self.servers[i];
        turn.wrapping_sub(self.last_pick[i].load(Relaxed)) >= self.starved_after
            && s.latency_ewma_us() > 0
            && s.in_flight() == 0
            && take(s)
    }

    /// A pick from the index: `Err` when it turned too many candidates away (then scan).
    fn pick_indexed(
        &self,
        keys: &TimeKeys,
        start: usize,
        ctx: &PickContext<'_>,
    ) -> Result<Option<usize>, ()> {
        let eligible = |i: usize| ctx.eligible(&self.servers[i]);
        let (measured, n) = (keys.measured.load(SeqCst), self.servers.len() as u64);
        // The least busy unmeasured server; an idle one goes first.
        let unmeasured = if measured < n {
            match keys.unmeasured.search(start, eligible)? {
                Some((0, i)) => return Ok(Some(i)),
                u => u,
            }
        } else {
            None
        };
        let best = keys.costs.search(start, eligible)?;
        let cost =
            |i: usize, ewma: u64| Cost::new(ewma, self.servers[i].in_flight(), self.weights[i]);
        if let Some((_, u)) = unmeasured {
            let mean = keys
                .ewma_sum
                .load(SeqCst)
                .checked_div(measured)
                .unwrap_or(1)
                .max(1);
            if best
                .is_none_or(|(_, m)| cost(u, mean).less(cost(m, self.servers[m].latency_ewma_us())))
            {
                return Ok(Some(u));
            }
        }
        Ok(best.map(|(_, m)| m))
    }
}

/// `ewma × (in_flight + 1)` of one server, and its weight: cost is `.0 / .1`. Kept in
/// `u64` (saturating; 60 s × 10^5 requests is still far below the limit) and compared with
/// one widening multiply per side.
#[derive(Clone, Copy)]
struct Cost(u64, u64);

impl Cost {
    fn new(ewma: u64, in_flight: u32, weight: u64) -> Cost {
        Cost(ewma.saturating_mul(u64::from(in_flight) + 1), weight)
    }

    fn less(self, other: Cost) -> bool {
        u128::from(self.0) * u128::from(other.1) < u128::from(other.0) * u128::from(self.1)
    }
}

impl Balancer for LeastTime {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>> {
        let (start, turn) = self.turn.next_turn()?;
        let i = if self.starved(start, turn, |s| ctx.eligible(s)) {
            self.servers[start].remeasure();
            start
        } else if let Some(keys) = self.index.as_ref().and_then(Bound::keys)
            && let Ok(found) = self.pick_indexed(keys, start, ctx)
        {
            found?
        } else {
            self.scan(start, |s| ctx.eligible(s))?
        };
        self.last_pick[i].store(turn, Relaxed);
        Some(self.servers[i].clone())
    }

    /// A peek: the turn is read, not taken; the scan's answer, which the index gives too.
    fn explain(&self, ctx: &PickContext<'_>) -> Explanation {
        let mut e = Explanation::new("least_time");
        let measured: Vec<u64> = self
            .servers
            .iter()
            .map(|s| s.latency_ewma_us())
            .filter(|&x| x > 0)
            .collect();
        let mean = (measured.iter().sum::<u64>())
            .checked_div(measured.len() as u64)
            .unwrap_or(1)
            .max(1);
        for (s, &w) in self.servers.iter().zip(&self.weights) {
            let (ewma, in_flight) = (s.latency_ewma_us(), s.in_flight());
            let f = e.server(s);
            f.add("ewma_us", ewma)
                .add("in_flight", in_flight)
                .add("weight", w);
            if ewma == 0 {
                f.add("cost_us", "unmeasured");
            } else {
                f.add("cost_us", Cost::new(ewma, in_flight, w).0 / w.max(1));
            }
        }
        let Some((start, turn)) = self.turn.peek_turn() else {
            e.step("no server in rotation");
            return e;
        };
        e.facts
            .add("turn", self.servers[start].name.as_str())
            .add("mean_ewma_us", mean)
            .add(
                "load_index",
                if self.index.is_some() {
                    "on (32 servers or more)"
                } else {
                    "off (under 32 servers: every server read)"
                },
            );
        e.step(format!(
            "the least expected time wins: response-time EWMA x (in flight + 1) / weight; ties go in weighted turn, which is at {}",
            label(&self.servers[start])
        ));
        if measured.len() < self.servers.len() {
            e.step(format!(
                "a server never measured goes first when idle; while busy it is costed at the mean EWMA, {mean} us"
            ));
        }
        if self.index.is_some() {
            e.step(format!(
                "the pool has {} servers: picks read its load index, whose answer is the scan's",
                self.servers.len()
            ));
        }
        if self.starved(start, turn, |s| ctx.would_take(s)) {
            e.pick = Some(self.servers[start].clone());
            e.step(format!(
                "{} is picked: the turn is at it and it has not been picked in {} picks, so it is measured again (its answer replaces its EWMA)",
                label(&self.servers[start]),
                self.starved_after
            ));
            return e;
        }
        e.pick = self
            .scan(start, |s| ctx.would_take(s))
            .map(|i| self.servers[i].clone());
        for s in &self.servers {
            if let Some(why) = ctx.refusal(s) {
                e.step(format!("{} is not considered: {why}", label(s)));
            }
        }
        match &e.pick {
            Some(p) if p.latency_ewma_us() == 0 => {
                let text = format!("{} is picked: it has not been measured yet", label(p));
                e.step(text);
            }
            Some(p) => {
                let text = format!(
                    "{} is picked: the least expected time ({} us EWMA, {} in flight)",
                    label(p),
                    p.latency_ewma_us(),
                    p.in_flight()
                );
                e.step(text);
            }
            None => e.step("no server is eligible"),
        }
        e
    }
}

impl LeastTime {
    /// The scan: every server from `start` on, those `take` accepts.
    fn scan(&self, start: usize, take: impl Fn(&Server) -> bool) -> Option<usize> {
        let n = self.servers.len();
        let mut best: Option<(usize, Cost)> = None;
        // The least busy (in_flight relative to weight) server still waiting for its first
        // sample, costed once the mean EWMA is known.
        let mut unmeasured: Option<(usize, u32)> = None;
        let (mut sum, mut count) = (0u64, 0u64);
        for k in 0..n {
            let i = if start + k >= n {
                start + k - n
            } else {
                start + k
            };
            let s = &self.servers[i];
            let ewma = s.latency_ewma_us();
            let in_flight = s.in_flight();
            let w = self.weights[i];
            // Eligibility is asked only of a server that would be chosen: it costs more than
            // the two loads above, and most servers of a large pool are not.
            if ewma == 0 {
                let better = match unmeasured {
                    None => true,
                    Some((j, f)) => u64::from(in_flight) * self.weights[j] < u64::from(f) * w,
                };
                if (in_flight == 0 || better) && take(s) {
                    if in_flight == 0 {
                        return Some(i);
                    }
                    unmeasured = Some((i, in_flight));
                }
                continue;
            }
            // The mean that costs an unmeasured server is over every measured one.
            sum = sum.saturating_add(ewma);
            count += 1;
            let cost = Cost::new(ewma, in_flight, w);
            if best.is_none_or(|(_, b)| cost.less(b)) && take(s) {
                best = Some((i, cost));
            }
        }
        if let Some((i, in_flight)) = unmeasured {
            // With nothing measured yet, any positive cost will do: all are guesses.
            let mean = sum.checked_div(count).unwrap_or(1).max(1);
            let cost = Cost::new(mean, in_flight, self.weights[i]);
            if best.is_none_or(|(_, b)| cost.less(b)) {
                best = Some((i, cost));
            }
        }
        best.map(|(i, _)| i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{
        Rng, check_exclusion, check_retries_try_each_server_once, index, servers, simulate,
    };
    use crate::upstream::InFlight;
    use std::time::Duration;

    /// One slow first answer (a cold start) must not keep an as-fast server out for good:
    /// after `starved_after` picks it gets one request, whose answer replaces its EWMA.
    #[test]
    fn a_server_slow_once_is_measured_again() {
        for indexed in [false, true] {
            let s = servers(&[1, 1, 1]);
            let b = LeastTime::with_index(&s, indexed);
            for (server, ms) in s.iter().zip([5, 80, 5]) {
                server.record_latency(Duration::from_millis(ms));
            }
            // From now on every server answers in 5 ms; requests one after another.
            let mut counts = [0; 3];
            let mut first_back = None;
            for n in 0..3000 {
                let got = b.pick(&PickContext::default()).unwrap();
                let i = index(&s, &got);
                counts[i] += 1;
                if i == 1 && first_back.is_none() {
                    first_back = Some(n);
                }
                let held = got.begin();
                got.record_latency(Duration::from_millis(5));
                drop(held);
            }
            let back = first_back.expect("server 1 is picked again");
            assert!(back <= 256 + 3, "measured again after {back} picks");
            // Back at 5 ms, it shares the rest about evenly (ties in turn).
            assert!(counts[1] > 800, "indexed {indexed}: {counts:?}");
        }
    }

    #[test]
    fn moves_traffic_away_from_a_slow_server() {
        for indexed in [false, true] {
            let s = servers(&[1, 1, 1]);
            let b = LeastTime::with_index(&s, indexed);
            // Server 0 answers in 50 ticks, the others in 5.
            let counts = simulate(&b, &s, &[50, 5, 5], 2000);
            assert!(counts[0] * 10 < counts[1], "{counts:?}");
            assert!(counts[0] * 10 < counts[2], "{counts:?}");
            assert!(counts[0] >= 1, "the slow server was measured: {counts:?}");
        }
    }

    #[test]
    fn cost_is_latency_times_load_over_weight() {
        for indexed in [false, true] {
            let s = servers(&[1, 1, 2]);
            s[0].record_latency(Duration::from_millis(10));
            s[1].record_latency(Duration::from_millis(4));
            s[2].record_latency(Duration::from_millis(6));
            let b = LeastTime::with_index(&s, indexed);
            let pick = || index(&s, &b.pick(&PickContext::default()).unwrap());
            // Costs 10, 4, 3: server 2.
            assert_eq!(pick(), 2);
            // Server 2 with 2 in flight: 6×3/2 = 9 > 4: server 1.
            let _g = (s[2].begin(), s[2].begin());
            assert_eq!(pick(), 1);
            // Server 1 with 2 in flight: 4×3 = 12 > 10 > 9: server 2 again.
            let _h = (s[1].begin(), s[1].begin());
            assert_eq!(pick(), 2);
        }
    }

    #[test]
    fn unmeasured_servers_get_tried() {
        for indexed in [false, true] {
            let s = servers(&[1, 1, 1]);
            s[0].record_latency(Duration::from_millis(1));
            s[1].record_latency(Duration::from_millis(1));
            let b = LeastTime::with_index(&s, indexed);
            // Idle and never measured: picked before the measured ones.
            assert_eq!(index(&s, &b.pick(&PickContext::default()).unwrap()), 2);
            // With its probe in flight it costs the mean (1 ms × 2) and the others win.
            let _g = s[2].begin();
            for _ in 0..10 {
                assert_ne!(index(&s, &b.pick(&PickContext::default()).unwrap()), 2);
            }
        }
    }

    #[test]
    fn exclusion() {
        check_exclusion(|s| Box::new(LeastTime::with_index(s, false)));
        check_exclusion(|s| Box::new(LeastTime::with_index(s, true)));
    }

    #[test]
    fn retries_try_each_server_once() {
        check_retries_try_each_server_once(|s| Box::new(LeastTime::with_index(s, false)));
        check_retries_try_each_server_once(|s| Box::new(LeastTime::with_index(s, true)));
    }

    #[test]
    fn cost_keys_order_as_costs_do() {
        let mut rng = Rng::new(3);
        for _ in 0..100_000 {
            let a = (
                1 + rng.below(100_000),
                rng.below(50) as u32,
                1 + rng.below(1000),
            );
            let b = (
                1 + rng.below(100_000),
                rng.below(50) as u32,
                1 + rng.below(1000),
            );
            let (ca, cb) = (Cost::new(a.0, a.1, a.2), Cost::new(b.0, b.1, b.2));
            let (ka, kb) = (cost_key(a.0, a.1, a.2), cost_key(b.0, b.1, b.2));
            assert_eq!(ca.less(cb), ka < kb, "{a:?} {b:?}");
            assert_eq!(cb.less(ca), kb < ka, "{a:?} {b:?}");
        }
        assert_eq!(cost_key(u64::MAX, u32::MAX, 1), ABSENT - 1);
    }

    /// The index and the scan give the same server at every pick, with the same turn, while
    /// requests start and end, latencies move, servers are first measured, some are down
    /// and retries exclude others.
    #[test]
    fn the_index_picks_exactly_what_the_scan_picks() {
        let mut rng = Rng::new(11);
        for (n, max_weight) in [(5, 3), (40, 10), (130, 10), (200, 1000)] {
            let weights: Vec<u32> = (0..n).map(|_| 1 + rng.below(max_weight) as u32).collect();
            let s = servers(&weights);
            // A third start measured, a few of them with equal EWMAs (ties).
            for x in s.iter().step_by(3) {
                x.record_latency(Duration::from_micros(100 * (1 + rng.below(4))));
            }
            let scan = LeastTime::with_index(&s, false);
            let indexed = LeastTime::with_index(&s, true);
            let mut held: Vec<InFlight> = Vec::new();
            for step in 0..4000 {
                match rng.below(12) {
                    0 if !held.is_empty() => {
                        let i = rng.below(held.len() as u64) as usize;
                        let done = held.swap_remove(i);
                        let us = 100 * (1 + rng.below(40));
                        done.server().record_latency(Duration::from_micros(us));
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

    /// Requests and latency samples on many threads at once leave the index exact.
    #[test]
    fn the_index_settles_exactly_after_concurrent_requests() {
        let s = servers(&(1..=100).map(|i| 1 + i % 7).collect::<Vec<_>>());
        let indexed = LeastTime::with_index(&s, true);
        let kept: Vec<InFlight> = std::thread::scope(|scope| {
            let workers: Vec<_> = (0..4u64)
                .map(|t| {
                    let indexed = &indexed;
                    scope.spawn(move || {
                        let mut rng = Rng::new(t);
                        let mut held: Vec<InFlight> = Vec::new();
                        for _ in 0..20_000 {
                            if rng.below(2) == 0 && !held.is_empty() {
                                let done = held.swap_remove(rng.below(held.len() as u64) as usize);
                                let us = 100 * (1 + rng.below(40));
                                done.server().record_latency(Duration::from_micros(us));
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
        let mut sum = 0;
        for (i, x) in s.iter().enumerate() {
            let (ewma, f, w) = (x.latency_ewma_us(), x.in_flight(), keys.weights[i]);
            sum += ewma;
            assert_eq!(keys.ewma[i].load(SeqCst), ewma);
            if ewma == 0 {
                assert_eq!(keys.unmeasured.key(i), conn_key(f, w));
            } else {
                assert_eq!(keys.costs.key(i), cost_key(ewma, f, w));
            }
        }
        assert_eq!(keys.ewma_sum.load(SeqCst), sum);
        assert_eq!(keys.measured.load(SeqCst), 100, "every server was measured");
        assert!(keys.costs.settled() && keys.unmeasured.settled());
    }
}

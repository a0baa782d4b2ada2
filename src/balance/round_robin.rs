//! Smooth weighted round robin, as nginx does it.
//!
//! Every pick adds each server's weight to its current weight, takes the largest, and
//! subtracts the total from it: weights 5,3,2 give a,b,c,a,a,b,a,c,b,a — exactly 5,3,2 in
//! every 10, spread out. The cycle of picks is computed once when the balancer is built, and a
//! pick is one atomic increment into it, so the hot path takes no lock. A server skipped at
//! pick time (passively failed, slow-started, tried) gives up its positions of the cycle, so
//! the others keep their proportions among themselves.
//!
//! Building nginx's sequence costs O(servers × sum of weights): 1,000 servers of weight up
//! to 1,000 would take about 10^9 steps. So the exact nginx cycle is built only when that
//! product is small (every ordinary pool); larger pools get the same cycle length and the same
//! exact counts from an earliest-deadline-first merge (one sort of fixed-point deadlines,
//! O(sum × log sum)): server `i`'s `j`-th pick is due at `(j + ½) / wᵢ` of the cycle, so
//! its picks are spread evenly through it. The cycle is stored as `u16` indices when the pool
//! has at most 65,536 servers, and is capped at about [`MAX_CYCLE`] entries (2 MiB); a pool
//! whose gcd-reduced total weight is larger still has its weights scaled down to fit (each
//! server keeps at least one pick, so the cap can be exceeded by at most one per server).

use std::cmp::Ordering as CmpOrdering;
use std::collections::BinaryHeap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Balancer, Explanation, PickContext, label};
use crate::upstream::Server;

/// The longest cycle kept, in picks (1,000 servers of weight ≤ 1,000 fit unscaled).
pub const MAX_CYCLE: usize = 1 << 20;

/// Above this many steps (servers × cycle length) nginx's own O(n)-per-step build is
/// replaced by the deadline build.
const EXACT_BUDGET: usize = 1 << 22;

/// Smooth weighted round robin over a fixed set of servers.
pub struct RoundRobin {
    servers: Vec<Arc<Server>>,
    cycle: Cycle,
    next: AtomicUsize,
}

/// One cycle of picks as indices into `servers`, in the narrowest type that fits.
enum Cycle {
    Narrow(Vec<u16>),
    Wide(Vec<u32>),
}

impl Cycle {
    fn len(&self) -> usize {
        match self {
            Cycle::Narrow(v) => v.len(),
            Cycle::Wide(v) => v.len(),
        }
    }

    fn get(&self, i: usize) -> usize {
        match self {
            Cycle::Narrow(v) => usize::from(v[i]),
            Cycle::Wide(v) => v[i] as usize,
        }
    }

    fn from_indices(n: usize, seq: impl Iterator<Item = u32>) -> Cycle {
        if n <= usize::from(u16::MAX) + 1 {
            Cycle::Narrow(seq.map(|i| i as u16).collect())
        } else {
            Cycle::Wide(seq.collect())
        }
    }
}

impl RoundRobin {
    pub fn new(servers: &[Arc<Server>]) -> RoundRobin {
        let weights: Vec<u32> = servers.iter().map(|s| s.weight()).collect();
        RoundRobin {
            servers: servers.to_vec(),
            cycle: build_cycle(&weights),
            next: AtomicUsize::new(0),
        }
    }

    /// Length of one cycle of picks (the gcd-reduced sum of weights, at most [`MAX_CYCLE`]).
    pub fn cycle_len(&self) -> usize {
        self.cycle.len()
    }

    /// Bytes held by the cycle.
    pub fn cycle_bytes(&self) -> usize {
        match &self.cycle {
            Cycle::Narrow(v) => v.len() * 2,
            Cycle::Wide(v) => v.len() * 4,
        }
    }

    /// Advance the cycle by one and return the index into `servers` it lands on; `None` for
    /// an empty pool. Least-conn uses this to break ties in weighted turn.
    pub(crate) fn next_index(&self) -> Option<usize> {
        let len = self.cycle.len();
        if len == 0 {
            return None;
        }
        let at = self.next.fetch_add(1, Ordering::Relaxed) % len;
        Some(self.cycle.get(at))
    }

    /// [`RoundRobin::next_index`], with the count of turns taken before this one.
    pub(crate) fn next_turn(&self) -> Option<(usize, u64)> {
        let len = self.cycle.len();
        if len == 0 {
            return None;
        }
        let turn = self.next.fetch_add(1, Ordering::Relaxed);
        Some((self.cycle.get(turn % len), turn as u64))
    }

    /// What [`RoundRobin::next_turn`] would return, without taking the turn.
    pub(crate) fn peek_turn(&self) -> Option<(usize, u64)> {
        let len = self.cycle.len();
        let turn = self.next.load(Ordering::Relaxed);
        (len > 0).then(|| (self.cycle.get(turn % len), turn as u64))
    }

    /// What [`RoundRobin::next_index`] would return, without taking the turn.
    pub(crate) fn peek_index(&self) -> Option<usize> {
        let len = self.cycle.len();
        (len > 0).then(|| self.cycle.get(self.next.load(Ordering::Relaxed) % len))
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// Weights divided by their gcd (zero weights count as 1).
fn reduced(weights: &[u32]) -> Vec<u32> {
    let weights: Vec<u32> = weights.iter().map(|&w| w.max(1)).collect();
    let g = weights.iter().copied().fold(0, gcd).max(1);
    weights.iter().map(|&w| w / g).collect()
}

fn build_cycle(weights: &[u32]) -> Cycle {
    let n = weights.len();
    let mut w = reduced(weights);
    let total: u64 = w.iter().map(|&x| u64::from(x)).sum();
    if total > MAX_CYCLE as u64 {
        // Only pools of over 1,000 heavy servers get here: keep the proportions as closely
        // as MAX_CYCLE allows (every server keeps at least one pick per cycle).
        w = reduced(
            &w.iter()
                .map(|&x| ((u64::from(x) * MAX_CYCLE as u64 / total) as u32).max(1))
                .collect::<Vec<_>>(),
        );
    }
    let total: usize = w.iter().map(|&x| x as usize).sum();
    if n.saturating_mul(total) <= EXACT_BUDGET {
        Cycle::from_indices(n, smooth_sequence(&w).into_iter())
    } else {
        Cycle::from_indices(n, deadline_sequence(&w).into_iter())
    }
}

/// One cycle of nginx's smooth weighted round robin over `weights`, reduced by their gcd.
/// O(servers × sum of weights); see [`RoundRobin`] for what large pools use.
pub fn smooth_sequence(weights: &[u32]) -> Vec<u32> {
    if weights.is_empty() {
        return Vec::new();
    }
    let w: Vec<i64> = reduced(weights).into_iter().map(i64::from).collect();
    let total: i64 = w.iter().sum();
    let mut current = vec![0i64; w.len()];
    let mut seq = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for i in 0..w.len() {
            current[i] += w[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        seq.push(best as u32);
    }
    seq
}

/// A pick falling due at `num / den` of the cycle, for server `idx`.
#[derive(PartialEq, Eq)]
struct Due {
    num: u64,
    den: u64,
    idx: u32,
}

impl Ord for Due {
    // Reversed, so that `BinaryHeap` (a max-heap) pops the earliest deadline; ties go to
    // the lower index, as in nginx's scan.
    fn cmp(&self, other: &Self) -> CmpOrdering {
        (other.num * self.den)
            .cmp(&(self.num * other.den))
            .then(other.idx.cmp(&self.idx))
    }
}

impl PartialOrd for Due {
    fn partial_cmp(&self, other: &Self) -> Option<CmpOrdering> {
        Some(self.cmp(other))
    }
}

/// One cycle of earliest-deadline-first picks over `weights` (already reduced): server `i`
/// gets exactly `wᵢ` picks, the `j`-th due at `(2j + 1) / (2wᵢ)` of the cycle. Every deadline
/// with `j < wᵢ` lies below 1 and every later one above, so the first `Σw` pops are exactly
/// one cycle.
fn deadline_sequence(weights: &[u32]) -> Vec<u32> {
    let max_w = u64::from(weights.iter().copied().max().unwrap_or(1));
    // Two different deadlines (2j+1)/(2a) and (2k+1)/(2b) differ by at least 1/(4ab), so
    // a fixed point with 2^frac > 4·max² fractional bits keeps them apart, and equal ones
    // stay equal. With the server index below it, one u64 per pick sorts in deadline order
    // (ties to the lower index, as the heap does): faster than the heap by a log factor.
    let frac = 2 * (u64::BITS - max_w.leading_zeros()) + 3;
    let idx_bits = u64::BITS - (weights.len() as u64).leading_zeros();
    if frac + idx_bits > u64::BITS {
        return deadline_sequence_heap(weights);
    }
    let total: usize = weights.iter().map(|&x| x as usize).sum();
    let mut keys = Vec::with_capacity(total);
    for (i, &w) in weights.iter().enumerate() {
        let w = u128::from(w);
        keys.extend((0..w).map(|j| {
            let fixed = ((2 * j + 1) << (frac - 1)) / w;
            ((fixed as u64) << idx_bits) | i as u64
        }));
    }
    keys.sort_unstable();
    let mask = (1u64 << idx_bits) - 1;
    keys.into_iter().map(|k| (k & mask) as u32).collect()
}

/// [`deadline_sequence`] with a heap of exact fractions, for weights too large for the
/// fixed-point keys. O(Σw × log n) time, O(n) besides the output.
fn deadline_sequence_heap(weights: &[u32]) -> Vec<u32> {
    let total: usize = weights.iter().map(|&x| x as usize).sum();
    let mut heap: BinaryHeap<Due> = weights
        .iter()
        .enumerate()
        .map(|(i, &w)| Due {
            num: 1,
            den: 2 * u64::from(w),
            idx: i as u32,
        })
        .collect();
    let mut seq = Vec::with_capacity(total);
    while seq.len() < total {
        let Some(mut due) = heap.pop() else { break };
        seq.push(due.idx);
        due.num += 2;
        heap.push(due);
    }
    seq
}

/// Positions of the cycle a pick walks before one pass over the servers decides.
const WALK: usize = 64;

/// Where a pick's walk along the cycle ended.
enum Walked {
    /// At `offset` positions from the start, on the server of that position.
    Found { offset: usize, server: usize },
    /// [`WALK`] positions (or the whole cycle) and nothing taken.
    Nothing { walked: usize },
}

impl RoundRobin {
    /// The walk of a pick from cycle position `start`: the first position whose server `take`
    /// accepts. Each position serves one pick, so a skipped one is used up: the eligible
    /// servers keep their proportions (5,3,2 with the first out give 3:2, not the 7:3 that
    /// handing the skipped positions to whoever follows them would). When most of the pool
    /// is excluded, one pass over the servers instead of a whole cycle.
    fn walk(&self, start: usize, take: impl Fn(&Server) -> bool) -> Walked {
        let len = self.cycle.len();
        let walked = len.min(WALK);
        for offset in 0..walked {
            let server = self.cycle.get((start + offset) % len);
            if take(&self.servers[server]) {
                return Walked::Found { offset, server };
            }
        }
        Walked::Nothing { walked }
    }
}

impl Balancer for RoundRobin {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>> {
        if self.cycle.len() == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        match self.walk(start, |s| ctx.eligible(s)) {
            Walked::Found { offset, server } => {
                if offset > 0 {
                    self.next.fetch_add(offset, Ordering::Relaxed);
                }
                Some(self.servers[server].clone())
            }
            Walked::Nothing { walked } => {
                self.next.fetch_add(walked - 1, Ordering::Relaxed);
                super::first_eligible(&self.servers, start % self.servers.len(), ctx)
            }
        }
    }

    /// A peek: the turn is read, not taken.
    fn explain(&self, ctx: &PickContext<'_>) -> Explanation {
        let mut e = Explanation::new("round_robin");
        let len = self.cycle.len();
        for (i, s) in self.servers.iter().enumerate() {
            let turns = (0..len).filter(|&p| self.cycle.get(p) == i).count();
            e.server(s)
                .add("weight", s.weight())
                .add("turns_per_cycle", turns);
        }
        if len == 0 {
            e.step("no server in rotation");
            return e;
        }
        let start = self.next.load(Ordering::Relaxed);
        let at = start % len;
        let upcoming: Vec<String> = (0..len.min(10))
            .map(|k| self.servers[self.cycle.get((start + k) % len)].name.clone())
            .collect();
        e.facts
            .add("cycle", len)
            .add("turn", at)
            .add("upcoming", upcoming.join(", "));
        e.step(format!(
            "the turn is at position {at} of the {len}-position cycle (smooth weighted round robin)"
        ));
        match self.walk(start, |s| ctx.would_take(s)) {
            Walked::Found { offset, server } => {
                for k in 0..offset {
                    let s = &self.servers[self.cycle.get((start + k) % len)];
                    e.step(format!(
                        "position {}: {} is skipped ({}); its turn is used up",
                        (start + k) % len,
                        label(s),
                        ctx.refusal(s).unwrap_or("not eligible")
                    ));
                }
                let s = &self.servers[server];
                e.step(format!(
                    "position {}: {} takes the request",
                    (start + offset) % len,
                    label(s)
                ));
                e.pick = Some(s.clone());
            }
            Walked::Nothing { walked } => {
                e.step(format!(
                    "{walked} positions from the turn hold no eligible server: the first eligible server from {} on takes it",
                    label(&self.servers[start % self.servers.len()])
                ));
                e.pick = super::first_where(&self.servers, start % self.servers.len(), |s| {
                    ctx.would_take(s)
                })
                .map(|i| self.servers[i].clone());
            }
        }
        e
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{
        check_exclusion, check_retries_try_each_server_once, picks, servers,
    };

    #[test]
    fn weights_5_3_2_spread_out() {
        assert_eq!(
            smooth_sequence(&[5, 3, 2]),
            vec![0, 1, 2, 0, 0, 1, 0, 2, 1, 0]
        );
        let s = servers(&[5, 3, 2]);
        let b = RoundRobin::new(&s);
        let got = picks(&b, &s, 30);
        for window in got.chunks(10) {
            assert_eq!(window, [0, 1, 2, 0, 0, 1, 0, 2, 1, 0]);
        }
    }

    #[tokio::test]
    async fn a_passively_excluded_server_leaves_the_others_their_proportions() {
        let s = servers(&[5, 3, 2]);
        let b = RoundRobin::new(&s);
        assert!(s[0].report_failure(tokio::time::Instant::now()));
        assert!(!s[0].is_available());
        let got = picks(&b, &s, 1000);
        let count = |i: usize| got.iter().filter(|&&x| x == i).count();
        // 3:2 of the remaining weight, exactly, and still interleaved (no runs of one server
        // longer than the cycle gives).
        assert_eq!((count(0), count(1), count(2)), (0, 600, 400));
        assert!(
            got.windows(3).all(|w| !(w[0] == w[1] && w[1] == w[2])),
            "{got:?}"
        );
        // Tried servers are skipped the same way: the others keep their proportions.
        let s = servers(&[1, 5, 3, 2]);
        let b = RoundRobin::new(&s);
        let tried = [s[1].clone()];
        let ctx = PickContext {
            tried: &tried,
            ..PickContext::default()
        };
        let mut counts = [0usize; 4];
        for _ in 0..1100 {
            counts[crate::balance::testing::index(&s, &b.pick(&ctx).unwrap())] += 1;
        }
        // Weights 1, 3, 2 of the remaining 6 over 1,100 picks: 183⅓, 550, 366⅔.
        assert!(counts[0].abs_diff(183) <= 1, "{counts:?}");
        assert_eq!(counts[1], 0);
        assert!(counts[2].abs_diff(550) <= 1, "{counts:?}");
        assert!(counts[3].abs_diff(367) <= 1, "{counts:?}");
    }

    #[test]
    fn equal_weights_go_in_turn() {
        let s = servers(&[2, 2, 2]);
        assert_eq!(picks(&RoundRobin::new(&s), &s, 6), [0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn heap_build_matches_nginx_where_both_agree_on_counts() {
        // The deadline build is what large pools use; on 5,3,2 it gives nginx's sequence,
        // and in general the same counts per cycle.
        assert_eq!(deadline_sequence(&[5, 3, 2]), smooth_sequence(&[5, 3, 2]));
        assert_eq!(
            deadline_sequence_heap(&[5, 3, 2]),
            smooth_sequence(&[5, 3, 2])
        );
        for weights in [vec![9, 10, 9, 6, 11, 2], vec![1, 7, 3], vec![4, 4, 1, 1, 1]] {
            let a = deadline_sequence(&weights);
            let b = smooth_sequence(&weights);
            assert_eq!(a.len(), b.len());
            for i in 0..weights.len() as u32 {
                assert_eq!(
                    a.iter().filter(|&&x| x == i).count(),
                    b.iter().filter(|&&x| x == i).count()
                );
            }
        }
    }

    #[test]
    fn sorted_and_heap_deadline_builds_agree() {
        let mut seed = 12345u64;
        let mut next = move || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u32
        };
        for _ in 0..200 {
            let n = 1 + next() as usize % 40;
            let weights: Vec<u32> = (0..n).map(|_| 1 + next() % 1000).collect();
            assert_eq!(
                deadline_sequence(&weights),
                deadline_sequence_heap(&weights),
                "{weights:?}"
            );
        }
        let weights: Vec<u32> = (1..=300).collect();
        assert_eq!(
            deadline_sequence(&weights),
            deadline_sequence_heap(&weights)
        );
    }

    #[test]
    fn large_pool_builds_a_bounded_cycle_with_exact_counts_spread_out() {
        // 1,000 servers of weights 1..=1000: nginx's build would take 5·10^8 steps.
        let weights: Vec<u32> = (1..=1000).collect();
        let s = servers(&weights);
        let b = RoundRobin::new(&s);
        let total: usize = weights.iter().map(|&w| w as usize).sum();
        assert_eq!(b.cycle_len(), total);
        assert_eq!(b.cycle_bytes(), 2 * total, "u16 indices: about 1 MB");
        let got = picks(&b, &s, total);
        let mut counts = vec![0usize; s.len()];
        let mut last = vec![None::<usize>; s.len()];
        let mut max_gap = vec![0usize; s.len()];
        for (pos, &i) in got.iter().enumerate() {
            counts[i] += 1;
            if let Some(p) = last[i] {
                max_gap[i] = max_gap[i].max(pos - p);
            }
            last[i] = Some(pos);
        }
        for i in 0..s.len() {
            assert_eq!(counts[i], weights[i] as usize, "server {i}");
        }
        // No runs: the heaviest server holds 0.2% of the cycle and never follows itself.
        assert!(got.windows(2).all(|w| w[0] != w[1]));
        // Evenly spread: a server's picks are never more than twice its fair gap apart.
        for i in 1..s.len() {
            let fair = total / weights[i] as usize;
            assert!(
                max_gap[i] <= 2 * fair,
                "server {i}: gap {} > 2×{fair}",
                max_gap[i]
            );
        }
    }

    #[test]
    fn oversized_total_weight_is_scaled_to_the_cap() {
        // 3,000 servers of coprime-ish weights: the reduced total is far above MAX_CYCLE.
        let weights: Vec<u32> = (0..3000).map(|i| 500 + (i % 501)).collect();
        let b = RoundRobin::new(&servers(&weights));
        assert!(b.cycle_len() <= MAX_CYCLE + 3000, "{}", b.cycle_len());
        assert!(b.cycle_len() > MAX_CYCLE / 2);
    }

    #[test]
    fn exclusion() {
        check_exclusion(|s| Box::new(RoundRobin::new(s)));
    }

    #[test]
    fn retries_try_each_server_once() {
        check_retries_try_each_server_once(|s| Box::new(RoundRobin::new(s)));
    }
}

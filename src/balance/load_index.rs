//! The least loaded of a large pool without reading every server: a two-level index of load
//! keys, kept up to date as requests start and end.
//!
//! `least_conn` and `least_time` over a pool of [`INDEX_FROM`] servers or more keep one
//! integer key per server (the load relative to weight, ordered exactly as the balancer
//! compares loads) in a dense array, cut into blocks of [`BLOCK`] slots, and per block the slot
//! of its least key (the first and the last of equal ones). A server tells its balancer when its load
//! changes (`Server::begin`, the end of the request, a latency sample: see
//! `upstream::LoadWatch`), which stores the new key and brings that one block's summary up to
//! date: a compare with the block's least key when the key went down, one pass over the block
//! when the block's least went up, and for other keys going up only a new version of the
//! summary. A pick reads the block summaries (16 for 1,000 servers) instead of every server.
//!
//! It is exact the way a scan is. The summary of a block carries a version that every update
//! bumps with a compare-and-swap computed from keys read after the summary, so an update
//! computed from keys that changed meanwhile cannot land, and whoever changes a key settles
//! its block afterwards: once the updates in flight have finished, every summary names its
//! block's least key. A pick that runs while another request starts or ends sees each block
//! as of one moment or the next, as a scan sees each server.
//!
//! The search breaks ties as the scan does: of the slots with the least key, the first in
//! circular order from `start` (the balancer's weighted turn), so an idle pool still goes
//! exactly in weighted round robin.

use std::cmp::Ordering;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed, Ordering::SeqCst};

use crate::upstream::{LoadWatch, Server};

/// Pools of at least this many servers get an index; smaller ones scan, which costs less
/// than keeping an index up to date on every request.
pub const INDEX_FROM: usize = 32;

/// Slots per block: a pass over a block reads 8 cache lines.
pub const BLOCK: usize = 64;

/// The key of a slot that takes no part in this index.
pub const ABSENT: u64 = u64::MAX;

/// A block's summary: the offsets of the first and the last slot holding its least key, and
/// a version, packed in one `u64` (8, 8 and 48 bits).
#[derive(Clone, Copy)]
struct Summary {
    first: usize,
    last: usize,
    version: u64,
}

impl Summary {
    fn unpack(v: u64) -> Summary {
        Summary {
            first: (v & 0xff) as usize,
            last: ((v >> 8) & 0xff) as usize,
            version: v >> 16,
        }
    }

    fn pack(self) -> u64 {
        self.version << 16 | (self.last as u64) << 8 | self.first as u64
    }
}

/// Integer load keys with their per-block least, for [`MinIndex::least_from`].
pub struct MinIndex {
    keys: Box<[AtomicU64]>,
    /// Per block, a packed [`Summary`].
    blocks: Box<[AtomicU64]>,
}

/// `key` of `slot`.
pub type Least = (u64, usize);

impl MinIndex {
    /// `n` slots, every one [`ABSENT`].
    pub fn new(n: usize) -> MinIndex {
        MinIndex {
            keys: (0..n).map(|_| AtomicU64::new(ABSENT)).collect(),
            blocks: (0..n.div_ceil(BLOCK)).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    pub fn key(&self, slot: usize) -> u64 {
        self.keys[slot].load(SeqCst)
    }

    /// Give `slot` the key `key` and settle its block.
    pub fn set(&self, slot: usize, key: u64) {
        if self.keys[slot].load(SeqCst) == key {
            return;
        }
        let b = slot / BLOCK;
        let (base, end) = (b * BLOCK, self.block_end(b));
        // Whether the summary named this slot before the change (read before it).
        let before = Summary::unpack(self.blocks[b].load(SeqCst));
        let was_named = slot == base + before.first || slot == base + before.last;
        let old = self.keys[slot].swap(key, SeqCst);
        if old == key {
            return;
        }
        #[cfg(test)]
        tests::meanwhile(tests::At::Stored);
        loop {
            let raw = self.blocks[b].load(SeqCst);
            let summary = Summary::unpack(raw);
            let (first, last) = (base + summary.first, base + summary.last);
            let (first, last) = if key < old && slot == first {
                // The least went down: it is the only one now.
                (slot, slot)
            } else if key < old {
                // A key that went down can only join or become the least: compare the two.
                let (k, l) = (self.key(slot), self.key(first));
                match k.cmp(&l) {
                    Ordering::Less => (slot, slot),
                    Ordering::Equal => (first.min(slot), last.max(slot)),
                    Ordering::Greater => (first, last),
                }
            } else if was_named || slot == first || slot == last {
                // One that went up may have been the least: look at the whole block.
                self.rescan(base, end)
            } else {
                // Otherwise the least stays; the version still moves, so that a pass over
                // the block that read the old key cannot land after this.
                (first, last)
            };
            #[cfg(test)]
            tests::meanwhile(tests::At::Settling);
            let next = Summary {
                first: first - base,
                last: last - base,
                version: summary.version.wrapping_add(1),
            };
            if self.blocks[b]
                .compare_exchange(raw, next.pack(), SeqCst, SeqCst)
                .is_ok()
            {
                return;
            }
        }
    }

    /// The first and the last slot of `lo..hi` (not empty) with the least key.
    fn rescan(&self, lo: usize, hi: usize) -> (usize, usize) {
        let (mut least, mut first, mut last) = (ABSENT, lo, lo);
        for slot in lo..hi {
            let k = self.key(slot);
            if k < least {
                (least, first, last) = (k, slot, slot);
            } else if k == least {
                last = slot;
            }
        }
        (first, last)
    }

    fn block_end(&self, b: usize) -> usize {
        ((b + 1) * BLOCK).min(self.keys.len())
    }

    /// The least key of slots `lo..hi` other than `skip`, and the first slot holding it;
    /// `None` if all are absent or skipped.
    fn leftmost_least(&self, lo: usize, hi: usize, skip: &[usize]) -> Option<Least> {
        let mut best: Option<Least> = None;
        for slot in lo..hi {
            let k = self.key(slot);
            if k != ABSENT && best.is_none_or(|(b, _)| k < b) && !skip.contains(&slot) {
                best = Some((k, slot));
            }
        }
        best
    }

    /// Block `b`'s least key with the first and the last slot holding it, from the summary
    /// (the key read now).
    fn block_least(&self, b: usize) -> Option<(u64, usize, usize)> {
        let summary = Summary::unpack(self.blocks[b].load(SeqCst));
        let (first, last) = (b * BLOCK + summary.first, b * BLOCK + summary.last);
        let k = self.key(first);
        (k != ABSENT).then_some((k, first, last))
    }

    /// The slot with the least key, ties going to the first in circular order from `start`,
    /// among the slots not in `skip` (a few); `None` when there is none.
    pub fn least_from(&self, start: usize, skip: &[usize]) -> Option<Least> {
        let nb = self.blocks.len();
        if nb == 0 {
            return None;
        }
        let sb = start / BLOCK;
        let (base, end) = (sb * BLOCK, self.block_end(sb));
        let skips = |b: usize| skip.iter().any(|&s| s / BLOCK == b);
        // The start's block in two parts: `ahead` (from `start` on) comes first in circular
        // order, `behind` (before `start`) last.
        let (ahead, behind) = if skips(sb) {
            (
                self.leftmost_least(start, end, skip),
                self.leftmost_least(base, start, skip),
            )
        } else {
            match self.block_least(sb) {
                None => (None, None),
                // The block's first least key is ahead: everything behind is greater.
                Some((k, first, _)) if first >= start => (Some((k, first)), None),
                // It is behind, and so is the last: nothing ahead can win.
                Some((k, first, last)) if last < start => (None, Some((k, first))),
                // Behind and ahead: the first one ahead comes first.
                Some((k, first, last)) => match (start..=last).find(|&x| self.key(x) == k) {
                    Some(x) => (Some((k, x)), None),
                    None => (None, Some((k, first))),
                },
            }
        };
        let mut best = ahead;
        if skip.is_empty() {
            // The common case, kept to a few instructions per block.
            let (mut least, mut at) = best.unwrap_or((ABSENT, 0));
            let mut visit = |first_block: usize, blocks: &[AtomicU64]| {
                for (i, summary) in blocks.iter().enumerate() {
                    let summary = Summary::unpack(summary.load(SeqCst));
                    let slot = (first_block + i) * BLOCK + summary.first;
                    let k = self.key(slot);
                    if k < least {
                        (least, at) = (k, slot);
                    }
                }
            };
            visit(sb + 1, &self.blocks[sb + 1..]);
            visit(0, &self.blocks[..sb]);
            best = (least != ABSENT).then_some((least, at));
        } else {
            for b in (sb + 1..nb).chain(0..sb) {
                let least = if skips(b) {
                    self.leftmost_least(b * BLOCK, self.block_end(b), skip)
                } else {
                    self.block_least(b).map(|(k, first, _)| (k, first))
                };
                if let Some((k, s)) = least
                    && best.is_none_or(|(bk, _)| k < bk)
                {
                    best = Some((k, s));
                }
            }
        }
        match (best, behind) {
            (Some((bk, _)), Some((k, s))) if k < bk => Some((k, s)),
            (None, behind) => behind,
            (best, _) => best,
        }
    }

    /// Whether every block summary names its block's first least key (for tests, once the
    /// updates have finished).
    #[cfg(test)]
    pub fn settled(&self) -> bool {
        (0..self.blocks.len()).all(|b| {
            let want = self.leftmost_least(b * BLOCK, self.block_end(b), &[]);
            let rightmost = (b * BLOCK..self.block_end(b))
                .rev()
                .find(|&s| want.is_some_and(|(k, _)| self.key(s) == k));
            want.is_none() || self.block_least(b) == want.map(|(k, s)| (k, s, rightmost.unwrap()))
        })
    }

    /// The least slot, first in circular order from `start`, for which `eligible` holds:
    /// `Ok(None)` when no slot is present, `Err(())` when more than [`MAX_SKIPS`] candidates
    /// were turned away (the caller then scans).
    pub fn search(
        &self,
        start: usize,
        mut eligible: impl FnMut(usize) -> bool,
    ) -> Result<Option<Least>, ()> {
        let mut skip = [0usize; MAX_SKIPS];
        for n in 0..=MAX_SKIPS {
            let Some((k, slot)) = self.least_from(start, &skip[..n]) else {
                return Ok(None);
            };
            if eligible(slot) {
                return Ok(Some((k, slot)));
            }
            if n == MAX_SKIPS {
                break;
            }
            skip[n] = slot;
        }
        Err(())
    }
}

/// Ineligible candidates (tried, failed, held back by slow start) a search steps over
/// before the balancer falls back to a scan.
pub const MAX_SKIPS: usize = 8;

/// A balancer's keys of its servers' load: `update` reads the load of `server` (slot `slot`)
/// and stores its keys.
pub trait Keys: Send + Sync + 'static {
    fn update(&self, server: &Server, slot: usize);
}

/// Keys as a server's [`LoadWatch`], with a mark for when another watcher took over one of
/// the servers (a newer balancer over the same servers): these keys are then incomplete.
struct Watched<K> {
    keys: K,
    superseded: AtomicBool,
}

impl<K: Keys> LoadWatch for Watched<K> {
    fn load_changed(&self, server: &Server, slot: u32) {
        self.keys.update(server, slot as usize);
    }

    fn superseded(&self) {
        self.superseded.store(true, Relaxed);
    }
}

/// Keys that a balancer's servers keep up to date for as long as it lives.
pub struct Bound<K: Keys> {
    watched: Arc<Watched<K>>,
    servers: Vec<Arc<Server>>,
}

impl<K: Keys> Bound<K> {
    /// Watch `servers` (slot `i` is `servers[i]`) with `keys`, and fill them in.
    pub fn new(keys: K, servers: &[Arc<Server>]) -> Bound<K> {
        let watched = Arc::new(Watched {
            keys,
            superseded: AtomicBool::new(false),
        });
        let watch: Arc<dyn LoadWatch> = watched.clone();
        for (i, s) in servers.iter().enumerate() {
            s.watch_load(&watch, i as u32);
        }
        // Each load is read after its server is watched: a change made before then may have
        // been told to the previous watcher only, and is seen here.
        for (i, s) in servers.iter().enumerate() {
            watched.keys.update(s, i);
        }
        Bound {
            watched,
            servers: servers.to_vec(),
        }
    }

    /// The keys, unless a newer balancer took over some server (the caller then scans).
    pub fn keys(&self) -> Option<&K> {
        (!self.watched.superseded.load(Relaxed)).then_some(&self.watched.keys)
    }
}

impl<K: Keys> Drop for Bound<K> {
    fn drop(&mut self) {
        let watch: Arc<dyn LoadWatch> = self.watched.clone();
        for s in &self.servers {
            s.unwatch_load(&watch);
        }
    }
}

/// The key of `in_flight` requests on a server of weight `weight` (at most 1,000): scaled by
/// 2^20 before the division, so that two loads compare as `a/wa < b/wb` does (two different
/// such fractions differ by at least 1/(wa·wb) > 2^-20, so their scaled floors differ too).
pub fn conn_key(in_flight: u32, weight: u64) -> u64 {
    (u64::from(in_flight) << 20) / weight.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    /// Where in `MinIndex::set` a test runs another update, as if another thread had run it
    /// right then.
    #[derive(Clone, Copy, PartialEq, Debug)]
    pub(super) enum At {
        /// The key is stored, the block not yet settled.
        Stored,
        /// The block's new least is computed, not yet swapped in.
        Settling,
    }

    /// An update to run at one point of the next `set` on this thread.
    type Planned = Option<(At, Box<dyn FnOnce()>)>;

    thread_local! {
        static MEANWHILE: RefCell<Planned> = RefCell::new(None);
    }

    /// Run the update planned for `at`, once.
    pub(super) fn meanwhile(at: At) {
        let planned = MEANWHILE.with(|m| {
            let mut m = m.borrow_mut();
            if m.as_ref().is_some_and(|(a, _)| *a == at) {
                m.take()
            } else {
                None
            }
        });
        if let Some((_, f)) = planned {
            f();
        }
    }

    fn plan(at: At, f: impl FnOnce() + 'static) {
        MEANWHILE.with(|m| *m.borrow_mut() = Some((at, Box::new(f))));
    }

    fn index_of(keys: &[u64]) -> std::rc::Rc<MinIndex> {
        let index = MinIndex::new(keys.len());
        for (s, &k) in keys.iter().enumerate() {
            index.set(s, k);
        }
        std::rc::Rc::new(index)
    }

    #[test]
    fn a_least_that_goes_up_is_looked_for_again_even_if_another_update_moved_the_summary() {
        // Slot 0 is the least and goes up; while it does, slot 2 goes down (not below slot
        // 1) and, seeing slot 0's new key, names itself: slot 0's update must still look at
        // the whole block, where slot 1 is the least.
        let index = index_of(&[1, 2, 5]);
        let other = index.clone();
        plan(At::Stored, move || other.set(2, 3));
        index.set(0, 10);
        assert_eq!(index.least_from(0, &[]), Some((2, 1)));
        assert!(index.settled());
    }

    #[test]
    fn an_update_from_keys_that_moved_meanwhile_does_not_land() {
        // Slot 0, the least, goes up and the pass over the block finds slot 2; before that is
        // swapped in, slot 2 goes up too (it was not the least, so its own update only moves
        // the version). The first swap must fail and look again: slot 1 is the least.
        let index = index_of(&[1, 5, 3]);
        let other = index.clone();
        plan(At::Settling, move || other.set(2, 20));
        index.set(0, 9);
        assert_eq!(index.least_from(0, &[]), Some((5, 1)));
        assert!(index.settled());
    }

    /// The answer by brute force: least key, first in circular order from `start`.
    fn brute(keys: &[u64], start: usize, skip: &[usize]) -> Option<Least> {
        let n = keys.len();
        (0..n)
            .map(|i| (start + i) % n)
            .filter(|s| keys[*s] != ABSENT && !skip.contains(s))
            .fold(None, |best: Option<Least>, s| {
                if best.is_none_or(|(k, _)| keys[s] < k) {
                    Some((keys[s], s))
                } else {
                    best
                }
            })
    }

    #[test]
    fn agrees_with_a_scan_under_random_updates() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut rand = move |m: u64| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed % m
        };
        for n in [1, 2, 63, 64, 65, 130, 1000] {
            let index = MinIndex::new(n);
            let mut keys = vec![ABSENT; n];
            assert_eq!(index.least_from(0, &[]), None);
            for round in 0..3000 {
                let slot = rand(n as u64) as usize;
                // Few distinct keys, so ties are common; now and then a slot leaves.
                let key = if rand(20) == 0 { ABSENT } else { rand(6) };
                keys[slot] = key;
                index.set(slot, key);
                let start = rand(n as u64) as usize;
                let skip: Vec<usize> = (0..rand(3)).map(|_| rand(n as u64) as usize).collect();
                assert_eq!(
                    index.least_from(start, &skip),
                    brute(&keys, start, &skip),
                    "n {n}, round {round}, start {start}, skip {skip:?}"
                );
                assert!(
                    index.settled(),
                    "n {n}, round {round}: {keys:?} {:?}",
                    (0..index.blocks.len())
                        .map(|b| index.block_least(b))
                        .collect::<Vec<_>>()
                );
            }
        }
    }

    #[test]
    fn search_steps_over_ineligible_slots_then_gives_up() {
        let index = MinIndex::new(200);
        for s in 0..200 {
            index.set(s, if s % 2 == 0 { 1 } else { 2 });
        }
        // Slots 0, 2, 4 are out: the next least from 0 is 6.
        assert_eq!(index.search(0, |s| s > 4), Ok(Some((1, 6))));
        // From 199 on, wrapping: 0 is the first key-1 slot.
        assert_eq!(index.search(199, |_| true), Ok(Some((1, 0))));
        // Every key-1 slot out: more than MAX_SKIPS turned away, the caller scans.
        assert_eq!(index.search(10, |s| s % 2 == 1), Err(()));
        assert_eq!(
            MinIndex::new(200).search(0, |_| true),
            Ok(None),
            "nothing present"
        );
    }

    #[test]
    fn concurrent_updates_settle_to_the_exact_least() {
        let n = 256;
        let index = std::sync::Arc::new(MinIndex::new(n));
        for s in 0..n {
            index.set(s, 100);
        }
        let barrier = std::sync::Barrier::new(4);
        // Four threads move keys of any slot up and down at once, few distinct keys so that
        // ties are common; then each thread gives its own slots their final keys, so the
        // settled state is known.
        std::thread::scope(|scope| {
            for t in 0..4u64 {
                let (index, barrier) = (index.clone(), &barrier);
                scope.spawn(move || {
                    let mut seed = t + 1;
                    for _ in 0..50_000u64 {
                        seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                        let slot = (seed >> 33) as usize % n;
                        index.set(slot, (seed >> 20) % 5);
                    }
                    barrier.wait();
                    // Up and down on its own slots only, ending at a known key.
                    for round in 0..40u64 {
                        for slot in (t as usize..n).step_by(4) {
                            seed = seed.wrapping_mul(6364136223846793005).wrapping_add(1);
                            let key = if round == 39 {
                                (slot as u64 * 7) % 13
                            } else {
                                (seed >> 20) % 13
                            };
                            index.set(slot, key);
                        }
                    }
                });
            }
        });
        let keys: Vec<u64> = (0..n).map(|s| index.key(s)).collect();
        assert!(index.settled());
        for start in [0, 1, 63, 64, 200, 255] {
            assert_eq!(index.least_from(start, &[]), brute(&keys, start, &[]));
        }
    }
}

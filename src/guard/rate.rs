//! Rate limits: GCRA per key in a table of fixed size.
//!
//! GCRA (the generic cell rate algorithm, which nginx's `limit_req` leaky bucket and
//! HAProxy's `sc_http_req_rate` approximate) keeps one number per key, its *theoretical
//! arrival time* (TAT): when the key's bucket would be empty again. A request at `now` is
//! allowed when `TAT - now <= burst × T` (T = one request's share of time, 1/rate); it then
//! pushes TAT to `max(TAT, now) + T`. A key whose TAT has passed holds no state at all: it is
//! the same as a key never seen, so its slot may be given away.
//!
//! The table is set-associative: a key's 64-bit hash picks a bucket of [`WAYS`] slots, each
//! three atomics (the key's hash, its TAT in microseconds, the count not yet synced of a
//! shared limiter). Memory is fixed when the limiter is built (24 bytes a slot), so 100,000 new client addresses cannot grow it, and no
//! lock is taken (a compare-and-swap per request). When every slot of a bucket holds a live
//! key, the one nearest its full allowance is forgotten (it gets at most one burst more than
//! its due) and [`RateLimiter::evictions`] counts it. A request racing with the eviction of
//! its own key may be charged to the key that took the slot: one request, rarely.
//!
//! A slot holds its key's *identity*: a hash of the key with a fixed seed, the same in every
//! process ([`RateLimiter::key_id`]), so that balancers sharing a limit through Redis name a
//! key alike. Which bucket a key lands in is the top bits of that identity times an odd
//! number drawn at random per limiter (multiply-shift, a universal hash: for a multiplier
//! the client does not know, any two keys share a bucket with probability about
//! 2/buckets), so a flood of made-up keys cannot be aimed at one bucket.
//!
//! A limiter shared with other balancers ([`RateLimiter::shared`], synchronised by
//! `cluster::rate`) also counts, per slot, the requests it allowed since the last sync;
//! [`RateLimiter::take_pending`] hands those counts over and [`RateLimiter::raise`] pushes a
//! key's TAT up to what the other balancers used. Both are plain atomics: `check` stays one
//! compare-and-swap (and, shared, one add).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Slots per bucket.
pub const WAYS: usize = 4;

/// The seed of [`RateLimiter::key_id`] unless [`RateLimiter::shared`] names another: any
/// fixed number will do, as long as every balancer uses the same.
pub const IDENTITY_SEED: u64 = 0x5377_6974_6368_7964; // "Switchyd"

/// A rate as `rate = "100/s"` writes it (parsed by the config reader).
pub use crate::config::Rate;

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Allow,
    /// Over the limit: the key may try again after this long (`Retry-After`).
    Deny {
        retry_after: Duration,
    },
}

/// A keyed GCRA limiter; see the module docs.
#[derive(Debug)]
pub struct RateLimiter {
    interval_us: u64,
    tolerance_us: u64,
    slots: Box<[Slot]>,
    /// Buckets − 1 (their number is a power of two).
    mask: usize,
    /// 64 − log2(buckets): the bucket is the top bits of identity × `seed`.
    shift: u32,
    /// Bucket placement: a random odd multiplier, drawn per limiter.
    seed: u64,
    /// Key identity: the same in every process.
    id_seed: u64,
    /// Count allowed requests per slot for a sync with other balancers.
    shared: bool,
    epoch: Instant,
    evictions: AtomicU64,
}

/// One tracked key: its identity (0: empty), its TAT in µs since the limiter's epoch, and
/// (shared limiters) the requests allowed since the last sync.
#[derive(Debug, Default)]
struct Slot {
    key: AtomicU64,
    tat: AtomicU64,
    pending: AtomicU64,
}

/// The requests one key was allowed since the last sync ([`RateLimiter::take_pending`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    /// Where the key was; [`RateLimiter::raise`] finds it there if it is still there.
    pub slot: usize,
    /// [`RateLimiter::key_id`] of the key.
    pub id: u64,
    pub count: u64,
}

impl RateLimiter {
    /// `rate` with `burst` requests above it allowed at once, tracking about `capacity` keys.
    pub fn new(rate: Rate, burst: u32, capacity: usize) -> RateLimiter {
        let buckets = capacity.div_ceil(WAYS).max(1).next_power_of_two();
        let interval_us = rate.interval_us();
        RateLimiter {
            interval_us,
            tolerance_us: interval_us.saturating_mul(u64::from(burst)),
            slots: (0..buckets * WAYS).map(|_| Slot::default()).collect(),
            mask: buckets - 1,
            shift: 64 - buckets.trailing_zeros(),
            seed: rand::random::<u64>() | 1,
            id_seed: IDENTITY_SEED,
            shared: false,
            epoch: Instant::now(),
            evictions: AtomicU64::new(0),
        }
    }

    /// This limiter, counting what it allows for a sync with other balancers, its keys
    /// named with `identity_seed` (the same on every balancer; [`IDENTITY_SEED`] will do,
    /// a secret shared by the balancers keeps clients from choosing keys that collide).
    pub fn shared(mut self, identity_seed: u64) -> RateLimiter {
        self.shared = true;
        self.id_seed = identity_seed;
        self
    }

    /// Whether [`RateLimiter::shared`] made it count for a sync.
    pub fn is_shared(&self) -> bool {
        self.shared
    }

    /// The time one request uses up (1/rate).
    pub fn interval(&self) -> Duration {
        Duration::from_micros(self.interval_us)
    }

    /// The key's identity: the same in every process with the same identity seed; never 0.
    pub fn key_id(&self, key: &[u8]) -> u64 {
        // 0 marks an empty slot, so no key has it.
        xxh3_64_with_seed(key, self.id_seed).max(1)
    }

    /// The counts of requests allowed since the last call, one per key that had any, each
    /// slot's count reset as it is read (requests allowed meanwhile go to the next call).
    pub fn take_pending(&self, out: &mut Vec<Pending>) {
        for (slot, s) in self.slots.iter().enumerate() {
            if s.pending.load(Ordering::Relaxed) == 0 {
                continue;
            }
            let id = s.key.load(Ordering::Relaxed);
            let count = s.pending.swap(0, Ordering::Relaxed);
            if id != 0 && count > 0 {
                out.push(Pending { slot, id, count });
            }
        }
    }

    /// Put back counts that could not be sent, where their keys still are.
    pub fn restore(&self, pending: &[Pending]) {
        for p in pending {
            let s = &self.slots[p.slot];
            if s.key.load(Ordering::Relaxed) == p.id {
                s.pending.fetch_add(p.count, Ordering::Relaxed);
            }
        }
    }

    /// Raise the TAT of key `id` (last seen in `slot`) to at least `tat`, the key's TAT
    /// over every balancer as of the sync, plus this limiter's requests allowed since (they
    /// are not in `tat` yet, and go in the next sync: counted once). A key that left its
    /// slot meanwhile is left alone.
    pub fn raise(&self, slot: usize, id: u64, tat: Instant) {
        let s = &self.slots[slot];
        if s.key.load(Ordering::Relaxed) != id {
            return;
        }
        let since = s.pending.load(Ordering::Relaxed);
        let tat_us = self.micros(tat) + since.saturating_mul(self.interval_us);
        s.tat.fetch_max(tat_us, Ordering::Relaxed);
    }

    /// How far key `id` (last seen in `slot`) is ahead of `now`: the time until its
    /// allowance is whole again; None when it left the slot.
    pub fn debt(&self, slot: usize, id: u64, now: Instant) -> Option<Duration> {
        let s = &self.slots[slot];
        if s.key.load(Ordering::Relaxed) != id {
            return None;
        }
        let tat = s.tat.load(Ordering::Relaxed);
        Some(Duration::from_micros(tat.saturating_sub(self.micros(now))))
    }

    /// µs since the epoch, +1 to keep any time above the 0 of a slot never written.
    fn micros(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_micros() as u64 + 1
    }

    /// Keys tracked at once, at most.
    pub fn capacity(&self) -> usize {
        self.slots.len()
    }

    /// Live keys pushed out of a full bucket, ever.
    pub fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }

    /// Count one request of `key` at `now`.
    pub fn check(&self, key: &[u8], now: Instant) -> Decision {
        let hash = self.key_id(key);
        // Multiply-shift (Dietzfelbinger): for a multiplier the client does not know, two
        // identities share a bucket with probability about 2/buckets, whatever they are.
        let place = hash.wrapping_mul(self.seed) >> self.shift.min(63);
        let bucket = (place as usize & self.mask) * WAYS;
        let slots = &self.slots[bucket..bucket + WAYS];
        let now_us = self.micros(now);
        // A failed compare-and-swap means another request changed the bucket: look again.
        loop {
            if let Some(slot) = slots.iter().find(|s| s.key.load(Ordering::Relaxed) == hash) {
                return self.charge(slot, now_us);
            }
            let live = |s: &Slot| {
                s.key.load(Ordering::Relaxed) != 0 && s.tat.load(Ordering::Relaxed) > now_us
            };
            // A free slot (empty or expired), else the live key that expires first.
            let victim = slots
                .iter()
                .find(|s| !live(s))
                .or_else(|| slots.iter().min_by_key(|s| s.tat.load(Ordering::Relaxed)))
                .expect("a bucket has slots");
            let (old, evicts) = (victim.key.load(Ordering::Relaxed), live(victim));
            if victim
                .key
                .compare_exchange(old, hash, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                if evicts {
                    self.evictions.fetch_add(1, Ordering::Relaxed);
                }
                // A key new to the table is a key with a full allowance: this request passes.
                // (Shared: the old key's count not yet synced goes with it.)
                victim
                    .tat
                    .store(now_us + self.interval_us, Ordering::Relaxed);
                if self.shared {
                    victim.pending.store(1, Ordering::Relaxed);
                }
                return Decision::Allow;
            }
        }
    }

    /// What [`RateLimiter::check`] would answer for `key` at `now`, and how many more
    /// requests it would allow at once then; nothing spent, nothing stored (for `explain`).
    pub fn peek(&self, key: &[u8], now: Instant) -> (Decision, u64) {
        let hash = self.key_id(key);
        let place = hash.wrapping_mul(self.seed) >> self.shift.min(63);
        let bucket = (place as usize & self.mask) * WAYS;
        let now_us = self.micros(now);
        let tat = self.slots[bucket..bucket + WAYS]
            .iter()
            .find(|s| s.key.load(Ordering::Relaxed) == hash)
            .map_or(now_us, |s| s.tat.load(Ordering::Relaxed).max(now_us));
        let ahead = tat - now_us;
        if ahead > self.tolerance_us {
            let retry_after = Duration::from_micros(ahead - self.tolerance_us);
            return (Decision::Deny { retry_after }, 0);
        }
        let room = (self.tolerance_us - ahead) / self.interval_us.max(1) + 1;
        (Decision::Allow, room)
    }

    /// GCRA on a slot that holds the key.
    fn charge(&self, slot: &Slot, now_us: u64) -> Decision {
        let mut old = slot.tat.load(Ordering::Relaxed);
        loop {
            let tat = old.max(now_us);
            if tat - now_us > self.tolerance_us {
                return Decision::Deny {
                    retry_after: Duration::from_micros(tat - now_us - self.tolerance_us),
                };
            }
            match slot.tat.compare_exchange_weak(
                old,
                tat + self.interval_us,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => {
                    if self.shared {
                        slot.pending.fetch_add(1, Ordering::Relaxed);
                    }
                    return Decision::Allow;
                }
                Err(now_there) => old = now_there,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peek_spends_nothing_and_agrees_with_check() {
        let l = RateLimiter::new(Rate::parse("10/s").unwrap(), 2, 64);
        let now = Instant::now();
        assert_eq!(l.peek(b"k", now), (Decision::Allow, 3));
        assert_eq!(l.peek(b"k", now), (Decision::Allow, 3), "nothing spent");
        for left in [2, 1, 0] {
            assert_eq!(l.check(b"k", now), Decision::Allow);
            let (d, room) = l.peek(b"k", now);
            assert_eq!(room, left);
            assert_eq!(d == Decision::Allow, left > 0);
        }
        assert_eq!(l.peek(b"k", now).0, l.check(b"k", now));
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn a_burst_passes_at_once_then_the_rate_holds() {
        let l = RateLimiter::new(Rate::parse("10/s").unwrap(), 5, 1024);
        let t0 = l.epoch + ms(1000);
        // burst 5: six at once (the first is the rate's own), the seventh waits 100 ms.
        for i in 0..6 {
            assert_eq!(l.check(b"a", t0), Decision::Allow, "request {i}");
        }
        match l.check(b"a", t0) {
            Decision::Deny { retry_after } => assert_eq!(retry_after, ms(100)),
            d => panic!("{d:?}"),
        }
        // Another key has its own budget.
        assert_eq!(l.check(b"b", t0), Decision::Allow);
        // After 100 ms one more is allowed, and only one.
        assert_eq!(l.check(b"a", t0 + ms(100)), Decision::Allow);
        assert!(matches!(l.check(b"a", t0 + ms(100)), Decision::Deny { .. }));
        // Over 10 s at exactly the rate: every one passes.
        let start = t0 + ms(200);
        let allowed = (0..100)
            .filter(|i| l.check(b"a", start + ms(100 * i)) == Decision::Allow)
            .count();
        assert_eq!(allowed, 100);
    }

    #[test]
    fn at_twice_the_rate_half_pass() {
        let l = RateLimiter::new(Rate::parse("100/s").unwrap(), 0, 64);
        let t0 = l.epoch + ms(1);
        let allowed = (0..2000)
            .filter(|i| l.check(b"k", t0 + Duration::from_micros(5_000 * i)) == Decision::Allow)
            .count();
        assert_eq!(allowed, 1000);
    }

    #[test]
    fn a_flood_of_new_keys_stays_in_the_table_and_spares_no_one_twice() {
        let l = RateLimiter::new(Rate::parse("1/m").unwrap(), 0, 1000);
        let cap = l.capacity();
        assert!((1000..=1024).contains(&cap), "{cap}");
        let t0 = l.epoch + ms(1);
        // 100,000 keys, each once: all allowed (first request), the memory fixed.
        for i in 0..100_000u32 {
            assert_eq!(l.check(&i.to_le_bytes(), t0), Decision::Allow);
        }
        assert!(l.evictions() >= 100_000 - cap as u64);
        // A key seen just now is refused on its second request at once …
        assert!(matches!(
            l.check(&99_999u32.to_le_bytes(), t0),
            Decision::Deny { .. }
        ));
        // … and a quiet key's slot is free again when its time has passed: 500 new keys a
        // minute later push out none of the expired ones (only each other, where more than
        // four land in one bucket: about 17 expected, 500 if expired keys were kept).
        let before = l.evictions();
        let later = t0 + Duration::from_secs(61);
        for i in 0..500u32 {
            assert_eq!(
                l.check(&(1_000_000 + i).to_le_bytes(), later),
                Decision::Allow
            );
        }
        let pushed = l.evictions() - before;
        assert!(
            pushed < 100,
            "expired slots are free slots: {pushed} evictions"
        );
    }

    #[test]
    fn identities_agree_across_limiters_and_placement_does_not() {
        let a = RateLimiter::new(Rate::parse("1/s").unwrap(), 0, 64);
        let b = RateLimiter::new(Rate::parse("1/s").unwrap(), 0, 64);
        assert_eq!(a.key_id(b"client"), b.key_id(b"client"));
        assert_ne!(a.key_id(b"client"), a.key_id(b"other"));
        assert_ne!(a.seed, b.seed, "placement seeds are drawn per limiter");
        let c = RateLimiter::new(Rate::parse("1/s").unwrap(), 0, 64).shared(7);
        assert_ne!(
            a.key_id(b"client"),
            c.key_id(b"client"),
            "another identity seed"
        );
    }

    #[test]
    fn a_shared_limiter_counts_what_it_allows_and_takes_raises() {
        let l = RateLimiter::new(Rate::parse("10/s").unwrap(), 4, 64).shared(IDENTITY_SEED);
        let t0 = l.epoch + ms(1000);
        for _ in 0..8 {
            l.check(b"a", t0);
        }
        l.check(b"b", t0);
        let mut p = Vec::new();
        l.take_pending(&mut p);
        p.sort_by_key(|p| p.count);
        let counts: Vec<(u64, u64)> = p.iter().map(|p| (p.id, p.count)).collect();
        assert_eq!(
            counts,
            vec![(l.key_id(b"b"), 1), (l.key_id(b"a"), 5)],
            "5 allowed, 3 denied"
        );
        let mut again = Vec::new();
        l.take_pending(&mut again);
        assert!(again.is_empty(), "counts are taken once");
        // Other balancers used up b's allowance until t0 + 1 s: b is refused until then
        // (less its burst), and one request b made meanwhile is added on top.
        let b = p[0];
        assert_eq!(l.check(b"b", t0 + ms(10)), Decision::Allow);
        l.raise(b.slot, b.id, t0 + ms(1000));
        match l.check(b"b", t0 + ms(20)) {
            Decision::Deny { retry_after } => assert_eq!(retry_after, ms(1000 + 100 - 400 - 20)),
            d => panic!("{d:?}"),
        }
        assert_eq!(l.debt(b.slot, b.id, t0 + ms(20)), Some(ms(1080)));
        assert_eq!(l.debt(b.slot, b.id, t0 + ms(2000)), Some(ms(0)));
        assert_eq!(l.debt(b.slot, 12345, t0), None);
        // A raise below the TAT changes nothing; one for a key gone from the slot neither.
        l.raise(b.slot, b.id, t0);
        l.raise(b.slot, 12345, t0 + ms(60_000));
        assert!(matches!(l.check(b"b", t0 + ms(700)), Decision::Allow));
        // Counts that could not be sent are put back.
        let mut p = Vec::new();
        l.take_pending(&mut p);
        l.restore(&p);
        let mut back = Vec::new();
        l.take_pending(&mut back);
        assert_eq!(p, back);
    }

    #[test]
    fn a_local_limiter_counts_nothing() {
        let l = RateLimiter::new(Rate::parse("10/s").unwrap(), 4, 64);
        l.check(b"a", l.epoch);
        let mut p = Vec::new();
        l.take_pending(&mut p);
        assert!(p.is_empty());
    }

    #[test]
    fn threads_together_get_exactly_the_budget() {
        let l = std::sync::Arc::new(RateLimiter::new(Rate::parse("1/h").unwrap(), 99, 64));
        let t0 = l.epoch + ms(1);
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let l = l.clone();
                std::thread::spawn(move || {
                    (0..100)
                        .filter(|_| l.check(b"shared", t0) == Decision::Allow)
                        .count()
                })
            })
            .collect();
        let total: usize = handles.into_iter().map(|h| h.join().unwrap()).sum();
        assert_eq!(total, 100, "burst 99 + 1 across four threads");
    }
}

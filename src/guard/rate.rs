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
//! a pair of atomics (the key's hash, its TAT in microseconds). Memory is fixed when the
//! limiter is built (16 bytes a slot), so 100,000 new client addresses cannot grow it, and no
//! lock is taken (a compare-and-swap per request). When every slot of a bucket holds a live
//! key, the one nearest its full allowance is forgotten (it gets at most one burst more than
//! its due) and [`RateLimiter::evictions`] counts it. A request racing with the eviction of
//! its own key may be charged to the key that took the slot: one request, rarely.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use xxhash_rust::xxh3::xxh3_64_with_seed;

/// Slots per bucket.
pub const WAYS: usize = 4;

/// `N/s`, `N/m`, `N/h`: so many requests per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    /// Parse `100/s`, `10/m`, `5/h` (also `r/s` as nginx writes it: `100r/s`).
    pub fn parse(s: &str) -> Result<Rate, String> {
        let fix = "write a count per period, such as \"100/s\", \"600/m\" or \"5/h\"";
        let (n, per) = s
            .split_once('/')
            .ok_or_else(|| format!("{s:?} is not a rate; {fix}"))?;
        let n = n.trim().trim_end_matches('r');
        let count: u32 = n
            .parse()
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(|| format!("{n:?} is not a whole number above 0; {fix}"))?;
        let per = match per.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            other => return Err(format!("unknown period {other:?}; {fix}")),
        };
        Ok(Rate { count, per })
    }

    /// The time one request uses up, in µs (at least 1).
    fn interval_us(&self) -> u64 {
        (self.per.as_micros() as u64 / u64::from(self.count)).max(1)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per.as_secs() {
            60 => "m",
            3600 => "h",
            _ => "s",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

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
    seed: u64,
    epoch: Instant,
    evictions: AtomicU64,
}

/// One tracked key: its hash (0: empty) and its TAT in µs since the limiter's epoch.
#[derive(Debug, Default)]
struct Slot {
    key: AtomicU64,
    tat: AtomicU64,
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
            seed: rand::random(),
            epoch: Instant::now(),
            evictions: AtomicU64::new(0),
        }
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
        // 0 marks an empty slot, so no key hashes to it.
        let hash = xxh3_64_with_seed(key, self.seed).max(1);
        let bucket = (hash as usize & self.mask) * WAYS;
        let slots = &self.slots[bucket..bucket + WAYS];
        // +1 keeps `now` above the 0 of a slot never written.
        let now_us = now.saturating_duration_since(self.epoch).as_micros() as u64 + 1;
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
                victim
                    .tat
                    .store(now_us + self.interval_us, Ordering::Relaxed);
                return Decision::Allow;
            }
        }
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
                Ok(_) => return Decision::Allow,
                Err(now_there) => old = now_there,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn rates_parse_as_nginx_and_haproxy_write_them() {
        assert_eq!(Rate::parse("100/s").unwrap().interval_us(), 10_000);
        assert_eq!(Rate::parse("100r/s").unwrap().count, 100);
        assert_eq!(Rate::parse("60/m").unwrap().interval_us(), 1_000_000);
        assert_eq!(Rate::parse("2/h").unwrap().to_string(), "2/h");
        for bad in ["100", "0/s", "x/s", "10/d", "-1/s"] {
            let e = Rate::parse(bad).unwrap_err();
            assert!(e.contains("\"100/s\""), "{bad}: {e}");
        }
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

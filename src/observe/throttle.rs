//! Warnings that repeat, said at most once per interval with how many were held back: a
//! flood of bad datagrams, refused connections or failed accepts is one line every few
//! seconds with a count, not a line per event (which would cost more than the event).
//!
//! ```
//! switchyard::warn_every!(std::time::Duration::from_secs(10), "datagram dropped: {}", "table full");
//! ```
//!
//! Each call site has its own [`Throttle`] (a static made by [`warn_every!`](crate::warn_every)):
//! two atomics, no lock, no allocation when the line is held back.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A line said at most once per `interval`.
pub struct Throttle {
    interval_ms: u64,
    /// When the line may be said again: milliseconds since the process's first throttled
    /// line, plus one (0: never said).
    next: AtomicU64,
    /// Lines held back since the last one said.
    held: AtomicU64,
}

fn epoch() -> Instant {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    *EPOCH.get_or_init(Instant::now)
}

impl Throttle {
    pub const fn new(interval: Duration) -> Throttle {
        Throttle {
            interval_ms: interval.as_millis() as u64,
            next: AtomicU64::new(0),
            held: AtomicU64::new(0),
        }
    }

    /// Whether to say the line now: `Some(n)` with the number held back since the last
    /// time it was said, `None` to hold it back.
    pub fn allow(&self) -> Option<u64> {
        self.allow_at(epoch().elapsed())
    }

    /// [`Throttle::allow`] at `now` (time since the process's first throttled line).
    pub fn allow_at(&self, now: Duration) -> Option<u64> {
        let now = now.as_millis() as u64 + 1;
        let next = self.next.load(Ordering::Relaxed);
        if now >= next
            && self
                .next
                .compare_exchange(
                    next,
                    now + self.interval_ms,
                    Ordering::Relaxed,
                    Ordering::Relaxed,
                )
                .is_ok()
        {
            return Some(self.held.swap(0, Ordering::Relaxed));
        }
        self.held.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// `tracing::warn!` at most once per interval from this call site; a line said after some
/// were held back carries `repeated = N`, how many.
#[macro_export]
macro_rules! warn_every {
    ($interval:expr, $($arg:tt)+) => {{
        static THROTTLE: $crate::observe::throttle::Throttle =
            $crate::observe::throttle::Throttle::new($interval);
        match THROTTLE.allow() {
            Some(0) => ::tracing::warn!($($arg)+),
            Some(repeated) => ::tracing::warn!(repeated, $($arg)+),
            None => {}
        }
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_held_back() {
        let t = Throttle::new(Duration::from_secs(10));
        let s = Duration::from_secs;
        assert_eq!(t.allow_at(s(0)), Some(0));
        for i in 1..=500 {
            assert_eq!(t.allow_at(Duration::from_millis(i * 10)), None);
        }
        assert_eq!(t.allow_at(s(10)), Some(500));
        assert_eq!(t.allow_at(s(11)), None);
        assert_eq!(t.allow_at(s(25)), Some(1));
    }
}

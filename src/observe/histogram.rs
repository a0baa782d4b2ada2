//! A latency histogram as a fixed array of atomic counters: recording one duration is a
//! search over a dozen and a half constants and two relaxed increments, with no lock, no
//! allocation and nothing formatted. A scrape reads the counters into a [`Snapshot`], which
//! the Prometheus writer (`metrics.rs`) turns into cumulative `_bucket` lines.
//!
//! One set of bucket bounds serves every duration Switchyard measures (a request, a server's
//! time to its response head, a health check): from half a millisecond to a minute, the
//! range of `timeouts.*`, roughly ×2.5 apart as Prometheus's client libraries space theirs.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The upper bounds of the buckets in microseconds (a bucket counts the durations at most
/// its bound); one more bucket, `+Inf`, takes the rest.
pub const BOUNDS_US: [u64; 16] = [
    500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000, 30_000_000, 60_000_000,
];

/// Buckets, the last one `+Inf`.
pub const BUCKETS: usize = BOUNDS_US.len() + 1;

/// Durations observed, by bucket, and their sum.
#[derive(Debug, Default)]
pub struct Histogram {
    /// Not cumulative: each duration is counted in its own bucket only.
    buckets: [AtomicU64; BUCKETS],
    sum_us: AtomicU64,
}

/// A histogram as read at one moment.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Snapshot {
    /// Durations per bucket (not cumulative), the last one `+Inf`.
    pub buckets: [u64; BUCKETS],
    /// Their sum, in seconds.
    pub sum: f64,
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram::default()
    }

    /// Count one duration (rounded down to the microsecond).
    pub fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let i = BOUNDS_US.partition_point(|&b| b < us);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot {
            buckets: std::array::from_fn(|i| self.buckets[i].load(Ordering::Relaxed)),
            sum: self.sum_us.load(Ordering::Relaxed) as f64 / 1e6,
        }
    }
}

impl Snapshot {
    /// Durations observed.
    pub fn count(&self) -> u64 {
        self.buckets.iter().sum()
    }

    /// Cumulative counts with their bounds in seconds (`+Inf` last), as Prometheus's
    /// `_bucket{le=…}` samples show them.
    pub fn cumulative(&self) -> impl Iterator<Item = (f64, u64)> + '_ {
        let bounds = BOUNDS_US
            .iter()
            .map(|&b| b as f64 / 1e6)
            .chain(std::iter::once(f64::INFINITY));
        bounds.zip(self.buckets.iter().scan(0u64, |acc, &n| {
            *acc += n;
            Some(*acc)
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_duration_lands_in_the_first_bucket_that_holds_it() {
        let h = Histogram::new();
        for us in [
            0,
            500,
            501,
            1_000,
            59_000_000,
            60_000_000,
            60_000_001,
            3_600_000_000,
        ] {
            h.record(Duration::from_micros(us));
        }
        let s = h.snapshot();
        assert_eq!(s.count(), 8);
        assert_eq!(&s.buckets[..2], &[2, 2], "le 0.0005 holds 0 and 500 µs");
        assert_eq!(s.buckets[15], 2, "le 60 holds 59 s and 60 s");
        assert_eq!(s.buckets[16], 2, "+Inf holds the rest");
        let c: Vec<(f64, u64)> = s.cumulative().collect();
        assert_eq!(c[0], (0.0005, 2));
        assert_eq!(c[1], (0.001, 4));
        assert_eq!(c[16], (f64::INFINITY, 8));
        assert!(
            (s.sum - (0.0005 + 0.000501 + 0.001 + 59.0 + 60.0 + 60.000001 + 3600.0)).abs() < 1e-6
        );
    }
}

//! The retry budget of a pool: each request adds `ratio` of a token, each retry takes one.

use std::sync::atomic::{AtomicI64, Ordering};

/// A budget for retries: each request adds `ratio` of a token, each retry takes one. It
/// starts with, and never holds more than, [`RetryBudget::RESERVE`] tokens, so a quiet pool
/// can still retry a few requests while a failing one cannot double its traffic.
#[derive(Debug)]
pub struct RetryBudget {
    /// Thousandths of a token.
    milli: AtomicI64,
    per_request: i64,
}

impl RetryBudget {
    /// Tokens a budget starts with and holds at most.
    pub const RESERVE: i64 = 10;

    pub fn new(ratio: f64) -> RetryBudget {
        RetryBudget {
            milli: AtomicI64::new(Self::RESERVE * 1000),
            per_request: (ratio * 1000.0).round() as i64,
        }
    }

    /// One request went out (its first try).
    pub fn deposit(&self) {
        if self.per_request == 0 {
            return;
        }
        let cap = Self::RESERVE * 1000;
        let _ = self
            .milli
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                (m < cap).then(|| (m + self.per_request).min(cap))
            });
    }

    /// Take a token for one retry; false when the budget is spent.
    pub fn try_withdraw(&self) -> bool {
        self.milli
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                (m >= 1000).then_some(m - 1000)
            })
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_allows_the_reserve_then_its_ratio() {
        let b = RetryBudget::new(0.2);
        for _ in 0..RetryBudget::RESERVE {
            assert!(b.try_withdraw());
        }
        assert!(!b.try_withdraw(), "reserve spent");
        // 100 requests earn 20 retries, but the bucket holds at most the reserve.
        for _ in 0..100 {
            b.deposit();
        }
        let granted = (0..100).filter(|_| b.try_withdraw()).count() as i64;
        assert_eq!(granted, RetryBudget::RESERVE);
        // Steady state: 5 requests per retry.
        for _ in 0..5 {
            b.deposit();
        }
        assert!(b.try_withdraw());
        assert!(!b.try_withdraw());
    }

    #[test]
    fn zero_budget_allows_only_the_reserve() {
        let b = RetryBudget::new(0.0);
        for _ in 0..1000 {
            b.deposit();
        }
        let granted = (0..100).filter(|_| b.try_withdraw()).count() as i64;
        assert_eq!(granted, RetryBudget::RESERVE);
    }
}

//! A timer for the waits of a connection's life, moved to each new deadline (a client
//! connection keeps two: its waits on the client, and on the servers' answer heads; a server
//! connection keeps one for the answer heads of hyper's tries over it, `h1/client.rs`).
//!
//! A `tokio::time::timeout` per wait registers a timer with the runtime and removes it again
//! (each under the timer driver's lock): about 400 user-space instructions a request for
//! the two waits of a keep-alive exchange. Moving a tokio timer later costs less (one atomic
//! store, with the deadline turned into the driver's ticks: about 140 instructions), and
//! leaving it where it is costs nothing: a deadline moved later is only noted, and when the
//! earlier time comes the timer is set again to the deadline now wanted (one clock read,
//! once per timeout's length rather than once per wait). nginx does the same with its
//! timer tree: a timer moved by less than its resolution is left where it is.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

/// A connection's timer: [`Timer::within`] runs one wait under a deadline.
pub struct Timer(Pin<Box<Sleep>>);

impl Timer {
    pub fn new() -> Timer {
        // Far away and not yet registered: the first `within` sets the real deadline.
        let far = Instant::now() + Duration::from_secs(365 * 24 * 3600);
        Timer(Box::pin(tokio::time::sleep_until(far)))
    }

    /// `fut`'s output, or `None` when `deadline` comes first.
    pub async fn within<F: Future>(&mut self, deadline: Instant, fut: F) -> Option<F::Output> {
        // Set when it must come sooner, or has fired; left earlier than `deadline`
        // otherwise (and set again below when it fires).
        if deadline < self.0.deadline() || self.0.is_elapsed() {
            self.0.as_mut().reset(deadline);
        }
        tokio::pin!(fut);
        loop {
            tokio::select! {
                biased;
                out = &mut fut => return Some(out),
                () = self.0.as_mut() => {
                    if Instant::now() >= deadline {
                        return None;
                    }
                    self.0.as_mut().reset(deadline);
                }
            }
        }
    }
}

impl Default for Timer {
    fn default() -> Self {
        Timer::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_deadline_moved_later_or_earlier_is_kept() {
        let mut t = Timer::new();
        let now = Instant::now();
        // Done before the deadline.
        let quick = t.within(now + Duration::from_secs(10), async { 7 }).await;
        assert_eq!(quick, Some(7));
        // Moved later: the old deadline (10 s) passes without a timeout.
        let slow = tokio::time::sleep(Duration::from_secs(15));
        assert_eq!(
            t.within(now + Duration::from_secs(20), slow).await,
            Some(())
        );
        // Moved earlier than the one registered: it fires at the new one.
        let never = std::future::pending::<()>();
        let at = Instant::now() + Duration::from_secs(1);
        assert_eq!(t.within(at, never).await, None);
        assert!(Instant::now() >= at && Instant::now() < at + Duration::from_millis(10));
        // And works again after having fired.
        let later = Instant::now() + Duration::from_secs(5);
        assert_eq!(t.within(later, std::future::pending::<()>()).await, None);
        assert!(Instant::now() >= later);
    }
}

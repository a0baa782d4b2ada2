//! Requests waiting for a server below its `max_conns` (HAProxy's `maxconn` with its queue
//! and `timeout queue`, nginx's `max_conns` with `queue N timeout=T`).
//!
//! A server with `max_conns` takes at most that many requests at once: the balancers skip it
//! while it is full (`Server::admits_pick`), and a request takes its place atomically
//! ([`Server::try_begin`], so two requests racing for the last place never both get it).
//! When every server a request could go to is full, it waits here, in the order requests
//! arrived, for at most the pool's `queue_timeout`; a request arriving to a queue of
//! `queue_size` gets 503 at once, as does one whose wait runs out. Only the request at the
//! head of the line looks for a place: a place freed on a server (its request done) wakes
//! it; when it gets one it leaves the line and wakes the next, which looks too (more places
//! may be free). A request that looks in vain keeps its place at the head. A request
//! arriving while others wait goes behind them instead of taking a freed place first.
//!
//! The queue belongs to the pool and is handed on when a reload rebuilds the pool, with
//! the servers that stay, so no waiting request loses its wake-up.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;

/// How often the head of the line looks again without a wake-up: a safety net for a place
/// freed by a way that wakes nobody (a server's `max_conns` raised by a reload).
const RECHECK: Duration = Duration::from_millis(100);

/// The waiting requests of one pool.
#[derive(Debug, Default)]
pub struct Queue {
    /// The line, oldest first; each waiter is woken through its own `Notify`.
    line: Mutex<VecDeque<Arc<Notify>>>,
    waiting: AtomicUsize,
    /// Requests that waited and got a place, ever.
    served: AtomicUsize,
    /// Requests refused because the queue was full or their wait ran out, ever.
    refused: AtomicUsize,
}

/// Why a request got no place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueRefused {
    /// `queue_size` requests were waiting already (or it is 0).
    Full,
    /// No place within `queue_timeout`.
    TimedOut,
}

impl Queue {
    pub fn new() -> Arc<Queue> {
        Arc::new(Queue::default())
    }

    /// Requests waiting now.
    pub fn waiting(&self) -> usize {
        self.waiting.load(Ordering::SeqCst)
    }

    /// Requests that waited and got a place, and requests refused, ever.
    pub fn counts(&self) -> (usize, usize) {
        (
            self.served.load(Ordering::Relaxed),
            self.refused.load(Ordering::Relaxed),
        )
    }

    fn line(&self) -> std::sync::MutexGuard<'_, VecDeque<Arc<Notify>>> {
        // A panic while holding this lock leaves the line as it was: keep using it.
        self.line.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A place was freed on a server of the pool: wake the head of the line.
    pub fn freed(&self) {
        if self.waiting.load(Ordering::SeqCst) > 0
            && let Some(head) = self.line().front()
        {
            head.notify_one();
        }
    }

    /// Wait for `take` to find a place, in line behind the requests already waiting, until
    /// `timeout`. At most `size` requests wait.
    pub async fn wait<T>(
        &self,
        size: usize,
        timeout: Duration,
        mut take: impl FnMut() -> Option<T>,
    ) -> Result<T, QueueRefused> {
        let me = Arc::new(Notify::new());
        {
            let mut line = self.line();
            if line.len() >= size {
                drop(line);
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(QueueRefused::Full);
            }
            line.push_back(me.clone());
            self.waiting.fetch_add(1, Ordering::SeqCst);
        }
        // Leaves the line whatever the outcome, also when the client goes away and this
        // future is dropped.
        let _leave = Leave {
            queue: self,
            me: &me,
        };
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let head = self.line().front().is_some_and(|h| Arc::ptr_eq(h, &me));
            if head && let Some(got) = take() {
                self.served.fetch_add(1, Ordering::Relaxed);
                return Ok(got);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                self.refused.fetch_add(1, Ordering::Relaxed);
                return Err(QueueRefused::TimedOut);
            }
            let nap = (deadline - now).min(RECHECK);
            tokio::select! {
                () = me.notified() => {}
                () = tokio::time::sleep(nap) => {}
            }
        }
    }
}

/// Takes a waiter out of the line; when it was the head, the next one is woken to look
/// (the place freed for it, if any, or another, is then not lost).
struct Leave<'a> {
    queue: &'a Queue,
    me: &'a Arc<Notify>,
}

impl Drop for Leave<'_> {
    fn drop(&mut self) {
        let mut line = self.queue.line();
        if let Some(i) = line.iter().position(|w| Arc::ptr_eq(w, self.me)) {
            line.remove(i);
            self.queue.waiting.fetch_sub(1, Ordering::SeqCst);
            if i == 0
                && let Some(next) = line.front()
            {
                next.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicU32;

    #[tokio::test(start_paused = true)]
    async fn waiters_get_places_in_order_and_time_out() {
        let q = Queue::new();
        let free = Arc::new(AtomicU32::new(0));
        let take = |free: Arc<AtomicU32>| {
            move || {
                free.fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .ok()
                    .map(|_| ())
            }
        };
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..3 {
            let (q, free, order) = (q.clone(), free.clone(), order.clone());
            tasks.push(tokio::spawn(async move {
                let r = q.wait(3, Duration::from_secs(5), take(free)).await;
                order.lock().unwrap().push(i);
                r
            }));
            // Let each one queue before the next arrives.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        assert_eq!(q.waiting(), 3);
        assert_eq!(
            q.wait(3, Duration::from_secs(5), || Some(())).await,
            Err(QueueRefused::Full),
            "a fourth is refused at once"
        );
        for _ in 0..2 {
            free.fetch_add(1, Ordering::SeqCst);
            q.freed();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        tokio::time::sleep(Duration::from_secs(6)).await;
        let results: Vec<_> = futures_util::future::join_all(tasks)
            .await
            .into_iter()
            .map(|r| r.unwrap())
            .collect();
        assert_eq!(results, [Ok(()), Ok(()), Err(QueueRefused::TimedOut)]);
        assert_eq!(*order.lock().unwrap(), [0, 1, 2], "served in arrival order");
        assert_eq!((q.waiting(), q.counts()), (0, (2, 2)));
    }
}

//! An HTTP/2 connection's streams run inside the connection's own task.
//!
//! hyper hands each new HTTP/2 stream to its executor; `tokio::spawn` would make a task per
//! stream, and each answer a stream sends wakes the connection's task on its own. On the
//! multi-thread scheduler that task then runs straight after the stream (the worker's LIFO
//! slot), so every answer went out in a write of its own: h2load with 10 streams a
//! connection saw 0.66 `writev` per request, HAProxy about 0.1. [`Joined`] polls the
//! streams the connection opened (those woken since) and then the connection once, so the
//! answers that came together leave together, and no task is spawned per stream. As in
//! HAProxy and nginx, one connection's streams share one worker.
//!
//! [`StreamExec`] is the executor of every listener's hyper builder: a stream opened while
//! a [`Joined`] polls its connection is adopted by it; any other future (hyper's upgrade
//! tasks, given from a stream) is spawned as before. The streams of a connection share its
//! task's budget of tokio's cooperative scheduling: when they spend it, the connection is
//! polled first the next time, so a large download cannot keep its connection from
//! reading and writing.

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};

type Stream = Pin<Box<dyn Future<Output = ()> + Send>>;

thread_local! {
    /// The streams opened by the connection a [`Joined`] is polling on this thread.
    static OPENED: RefCell<Option<Vec<Stream>>> = const { RefCell::new(None) };
}

/// hyper's executor: see the module's text.
#[derive(Clone, Copy, Debug, Default)]
pub struct StreamExec;

impl<F> hyper::rt::Executor<F> for StreamExec
where
    F: Future<Output = ()> + Send + 'static,
{
    fn execute(&self, fut: F) {
        // A stream that panics ends alone (its stream reset), as a spawned task would, not
        // with its connection's other streams.
        let fut: Stream = Box::pin(std::panic::AssertUnwindSafe(fut).catch_unwind().map(drop));
        let left = OPENED.with(|o| match &mut *o.borrow_mut() {
            Some(opened) => {
                opened.push(fut);
                None
            }
            None => Some(fut),
        });
        if let Some(fut) = left {
            tokio::spawn(fut);
        }
    }
}

/// How many rounds of "new streams, then the connection" one poll makes before it lets
/// other tasks run (a client that opens streams as fast as they finish gets no more).
const ROUNDS: usize = 4;

/// A connection future and the streams it opened, polled as one. `after` is called with
/// the connection after each poll that opened streams, before they run: the place to begin
/// a graceful shutdown (`keepalive_requests`) so that its GOAWAY leaves before their answers.
pub struct Joined<C, H> {
    conn: Pin<Box<C>>,
    streams: FuturesUnordered<Stream>,
    /// The list [`OPENED`] lends out, kept for its allocation.
    spare: Vec<Stream>,
    after: H,
    /// The streams spent the task's budget (tokio's cooperative scheduling) last time: the
    /// connection goes first now, so that its reads and writes are not starved by them.
    conn_first: bool,
}

impl<C: Future, H: FnMut(Pin<&mut C>)> Joined<C, H> {
    pub fn new(conn: C, after: H) -> Joined<C, H> {
        Joined {
            conn: Box::pin(conn),
            streams: FuturesUnordered::new(),
            spare: Vec::new(),
            after,
            conn_first: false,
        }
    }

    /// The connection (for a graceful shutdown).
    pub fn conn(&mut self) -> Pin<&mut C> {
        self.conn.as_mut()
    }

    /// Streams still running.
    pub fn streams(&self) -> usize {
        self.streams.len()
    }

    /// Poll the streams that were woken, while the task's budget lasts; false when it ran
    /// out (the connection goes first next time).
    fn run_streams(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            if !tokio::task::coop::has_budget_remaining() {
                self.conn_first = true;
                return false;
            }
            match self.streams.poll_next_unpin(cx) {
                Poll::Ready(Some(())) => {}
                _ => return true,
            }
        }
    }
}

/// Lends `OPENED` a list for as long as it lives, and takes it back even if the poll
/// panics (so no later `execute` on this thread could fall into a stale list).
struct Lent;

impl Lent {
    fn new(list: Vec<Stream>) -> Lent {
        let before = OPENED.with(|o| o.borrow_mut().replace(list));
        debug_assert!(before.is_none(), "a Joined polled inside another");
        Lent
    }

    fn take(self) -> Vec<Stream> {
        OPENED.with(|o| o.borrow_mut().take()).unwrap_or_default()
    }
}

impl Drop for Lent {
    fn drop(&mut self) {
        let _ = OPENED.try_with(|o| o.borrow_mut().take());
    }
}

impl<C: Future, H: FnMut(Pin<&mut C>) + Unpin> Future for Joined<C, H> {
    /// The connection's: streams still running when it ends are dropped with this future
    /// (after a graceful shutdown it ends only once every stream has sent its last frame).
    type Output = C::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<C::Output> {
        let this = &mut *self;
        // The streams spent the last budget: the connection goes first, the streams after.
        let mut streams_due = std::mem::take(&mut this.conn_first);
        for _ in 0..ROUNDS {
            // Streams first: what they send the connection writes below, in one go.
            if !streams_due && !this.run_streams(cx) {
                cx.waker().wake_by_ref();
                return Poll::Pending;
            }
            let lent = Lent::new(std::mem::take(&mut this.spare));
            let polled = this.conn.as_mut().poll(cx);
            let mut opened = lent.take();
            if let Poll::Ready(out) = polled {
                return Poll::Ready(out);
            }
            if opened.is_empty() {
                this.spare = opened;
                // Streams left ready when the budget ran out have no wake-up coming: run
                // them now.
                if streams_due && !this.run_streams(cx) {
                    cx.waker().wake_by_ref();
                }
                return Poll::Pending;
            }
            (this.after)(this.conn.as_mut());
            this.streams.extend(opened.drain(..));
            this.spare = opened;
            streams_due = false;
        }
        // New streams keep coming: poll them (and the connection) again after others ran.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::rt::Executor;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// A connection that opens `n` streams (through the executor) on its first poll, each
    /// counting itself done after one wake-up, and ends when all have.
    struct Conn {
        opened: bool,
        n: usize,
        done: Arc<AtomicUsize>,
    }

    impl Future for Conn {
        type Output = usize;
        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
            if !self.opened {
                self.opened = true;
                for _ in 0..self.n {
                    let done = self.done.clone();
                    StreamExec.execute(async move {
                        tokio::task::yield_now().await;
                        done.fetch_add(1, Ordering::Relaxed);
                    });
                }
            }
            match self.done.load(Ordering::Relaxed) {
                d if d == self.n => Poll::Ready(d),
                _ => {
                    cx.waker().wake_by_ref();
                    Poll::Pending
                }
            }
        }
    }

    #[tokio::test]
    async fn streams_opened_while_the_connection_polls_run_in_its_task() {
        let done = Arc::new(AtomicUsize::new(0));
        let conn = Conn {
            opened: false,
            n: 10,
            done: done.clone(),
        };
        let mut joined = Joined::new(conn, |_| {});
        // The first poll: the connection opened ten streams, adopted (each waits on its
        // first wake-up), none spawned elsewhere.
        let first = std::future::poll_fn(|cx| Poll::Ready(Pin::new(&mut joined).poll(cx))).await;
        assert!(first.is_pending());
        assert_eq!(joined.streams(), 10);
        assert_eq!(done.load(Ordering::Relaxed), 0);
        let ended = joined.await;
        assert_eq!(ended, 10);
    }

    #[tokio::test]
    async fn a_stream_that_panics_ends_alone() {
        struct Opener(bool, Arc<AtomicUsize>);
        impl Future for Opener {
            type Output = ();
            fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
                if !self.0 {
                    self.0 = true;
                    StreamExec.execute(async { panic!("a bug in one stream") });
                    let done = self.1.clone();
                    StreamExec.execute(async move {
                        tokio::task::yield_now().await;
                        done.fetch_add(1, Ordering::Relaxed);
                    });
                }
                if self.1.load(Ordering::Relaxed) == 1 {
                    return Poll::Ready(());
                }
                cx.waker().wake_by_ref();
                Poll::Pending
            }
        }
        let done = Arc::new(AtomicUsize::new(0));
        Joined::new(Opener(false, done.clone()), |_| {}).await;
        assert_eq!(done.load(Ordering::Relaxed), 1);
    }

    /// One stream spends the task's whole budget while another is ready: both finish, with
    /// no wake-up from outside (the connection wakes no one, as a quiet client's would not).
    #[tokio::test]
    async fn streams_left_ready_when_the_budget_ran_out_still_run() {
        struct Quiet(bool, Arc<AtomicUsize>);
        impl Future for Quiet {
            type Output = ();
            fn poll(mut self: Pin<&mut Self>, _: &mut Context<'_>) -> Poll<()> {
                if !self.0 {
                    self.0 = true;
                    let (a, b) = (self.1.clone(), self.1.clone());
                    StreamExec.execute(async move {
                        for _ in 0..300 {
                            tokio::task::coop::consume_budget().await;
                        }
                        a.fetch_add(1, Ordering::Relaxed);
                    });
                    StreamExec.execute(async move {
                        tokio::task::yield_now().await;
                        b.fetch_add(1, Ordering::Relaxed);
                    });
                }
                match self.1.load(Ordering::Relaxed) {
                    2 => Poll::Ready(()),
                    _ => Poll::Pending,
                }
            }
        }
        let done = Arc::new(AtomicUsize::new(0));
        let joined = Joined::new(Quiet(false, done.clone()), |_| {});
        // In a task of its own, where tokio counts the budget.
        tokio::time::timeout(std::time::Duration::from_secs(5), tokio::spawn(joined))
            .await
            .expect("both streams end without a wake-up from outside")
            .unwrap();
    }

    #[tokio::test]
    async fn a_future_given_outside_a_joined_poll_is_spawned() {
        let (tx, rx) = tokio::sync::oneshot::channel();
        StreamExec.execute(async move {
            let _ = tx.send(7);
        });
        assert_eq!(rx.await.unwrap(), 7);
    }
}

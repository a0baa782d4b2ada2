//! The direct path's idle server connections: per server of a pool, a short list of open
//! connections, each with its read buffer, taken for one exchange and put back inline when
//! the response has been read to its end (no task, no channel). Newest first, each for at
//! most `keepalive_timeout`; `keepalive` per server, as nginx's `keepalive`, except that a
//! connection over that number is closed only once it has stayed idle [`PURGE_DELAY`], as
//! HAProxy's `pool-purge-delay`: under steady load with more requests in flight than
//! `keepalive` (one HTTP/2 client's 100 streams), nginx's rule closes connections as
//! they come back and opens new ones a moment later, one per five requests in
//! `MODE=h2 bench/callgrind.sh`. A sweep every half [`PURGE_DELAY`] closes those, and the
//! ones past `keepalive_timeout`, when no request comes to do it.
//!
//! One mutex per server, held only to push or pop: requests to different servers never
//! contend, and the lock is never held across an await.

use std::pin::Pin;
use std::sync::Mutex;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use tokio::io::AsyncRead;

use super::body::ReadBuf;
use super::parse::ResponseHead;
use super::timer::Timer;
use crate::proxy::http::transport::{SendTimed, ServerStream};
use crate::upstream::Server;

/// How long a connection over a server's `keepalive` stays idle before it is closed
/// (HAProxy's `pool-purge-delay` default).
pub const PURGE_DELAY: Duration = Duration::from_secs(5);

/// The capacity an idle connection keeps of its write buffer (`ServerConn::out`): a large
/// upload's buffer is given back.
pub const KEPT_OUT: usize = 16 * 1024;

/// An open connection to a server and what it has read ahead.
pub struct ServerConn {
    pub io: SendTimed<ServerStream>,
    pub rb: ReadBuf,
    /// Taken from the idle list (a failure before any answer may be the server's idle close).
    pub reused: bool,
    since: Instant,
    /// The head buffers of hyper's engine's tries over it (`h1/client.rs`), kept with the
    /// connection so that a request in the steady state allocates none.
    pub out: Vec<u8>,
    pub head: ResponseHead,
    /// What those tries keep, made at the first (boxed: the direct path's connections stay
    /// as small as they were).
    pub tries: Option<Box<Tries>>,
}

/// What hyper's tries over a server connection keep with it (`h1/client.rs`).
pub struct Tries {
    /// The timer of their waits for an answer head, moved to each deadline (`h1/timer.rs`).
    pub timer: Timer,
    /// Where their answer heads are copied for hyper.
    pub answers: bytes::BytesMut,
}

/// The room of [`Tries::answers`] made at first, and made again when an idle connection's
/// room left (after the answers split off it) is over [`KEPT_OUT`]: `bytes` reuses its
/// allocation only when the answers before were sent, and grows it to what an answer
/// needed otherwise, so an idle connection keeps at most about twice the largest answer
/// head it read (under 64 KiB: a head fits the 16 KiB read buffer).
const ANSWERS: usize = 4096;

impl Default for Tries {
    fn default() -> Self {
        Tries {
            timer: Timer::default(),
            answers: bytes::BytesMut::with_capacity(ANSWERS),
        }
    }
}

impl ServerConn {
    pub fn new(io: SendTimed<ServerStream>) -> ServerConn {
        ServerConn {
            io,
            rb: ReadBuf::default(),
            reused: false,
            since: Instant::now(),
            out: Vec::new(),
            head: ResponseHead::default(),
            tries: None,
        }
    }

    /// Whether the server has neither closed it nor sent anything unasked (one read that
    /// must find nothing to read).
    fn still_open(&mut self) -> bool {
        if !self.rb.is_empty() {
            return false;
        }
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let mut byte = [0u8; 1];
        let mut probe = tokio::io::ReadBuf::new(&mut byte);
        matches!(
            Pin::new(&mut self.io).poll_read(&mut cx, &mut probe),
            Poll::Pending
        )
    }
}

/// Idle connections per server of one pool, in the pool's server order.
pub struct IdleConns {
    ids: Vec<u64>,
    lists: Vec<Mutex<Vec<ServerConn>>>,
    max_idle: usize,
    idle_timeout: Duration,
}

impl IdleConns {
    pub fn new(
        servers: &[std::sync::Arc<Server>],
        max_idle: usize,
        idle_timeout: Duration,
    ) -> Self {
        IdleConns {
            ids: servers.iter().map(|s| s.id()).collect(),
            lists: servers.iter().map(|_| Mutex::new(Vec::new())).collect(),
            max_idle,
            idle_timeout,
        }
    }

    /// The idle connections of a pool rebuilt by a reload or an admin change: the servers
    /// that stayed take their idle connections over from `previous` (when it reached them
    /// the same way); new servers start with none.
    pub fn succeed(
        servers: &[std::sync::Arc<Server>],
        max_idle: usize,
        idle_timeout: Duration,
        previous: Option<&IdleConns>,
    ) -> Self {
        let conns = IdleConns::new(servers, max_idle, idle_timeout);
        if let Some(previous) = previous {
            for (server, list) in servers.iter().zip(&conns.lists) {
                if let Some(old) = previous.list(server) {
                    let mut kept =
                        std::mem::take(&mut *old.lock().unwrap_or_else(|e| e.into_inner()));
                    // The newest `max_idle` (a changed `keepalive` applies at once).
                    kept.drain(..kept.len().saturating_sub(max_idle));
                    *list.lock().unwrap_or_else(|e| e.into_inner()) = kept;
                }
            }
        }
        conns
    }

    /// Shared, with a task (on the current runtime, if any) that closes what has stayed
    /// idle too long while no request comes; it ends with the last holder.
    pub fn shared(self) -> std::sync::Arc<Self> {
        let conns = std::sync::Arc::new(self);
        if conns.max_idle > 0
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            let weak = std::sync::Arc::downgrade(&conns);
            runtime.spawn(async move {
                let mut tick = tokio::time::interval(PURGE_DELAY / 2);
                tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                loop {
                    tick.tick().await;
                    let Some(conns) = weak.upgrade() else { return };
                    conns.sweep();
                }
            });
        }
        conns
    }

    /// Close the connections idle past `keepalive_timeout`, and those over `keepalive`
    /// idle past [`PURGE_DELAY`].
    fn sweep(&self) {
        let now = Instant::now();
        for list in &self.lists {
            let gone: Vec<ServerConn> = {
                let mut list = list.lock().unwrap_or_else(|e| e.into_inner());
                let n = self.stale(&list, now);
                list.drain(..n).collect()
            };
            drop(gone);
        }
    }

    /// How many of `list` (oldest first: each was put back after the one before it) are
    /// to be closed at `now`.
    fn stale(&self, list: &[ServerConn], now: Instant) -> usize {
        let over = list.len().saturating_sub(self.max_idle);
        list.iter()
            .enumerate()
            .take_while(|(i, c)| {
                let idle = now.saturating_duration_since(c.since);
                idle >= self.idle_timeout || (*i < over && idle >= PURGE_DELAY)
            })
            .count()
    }

    fn list(&self, server: &Server) -> Option<&Mutex<Vec<ServerConn>>> {
        let i = self.ids.iter().position(|&id| id == server.id())?;
        self.lists.get(i)
    }

    /// Idle connections to `server` now.
    pub fn count(&self, server: &Server) -> usize {
        self.list(server)
            .map_or(0, |l| l.lock().unwrap_or_else(|e| e.into_inner()).len())
    }

    /// The newest idle connection to `server` that is still open.
    pub fn take(&self, server: &Server) -> Option<ServerConn> {
        self.take_at(server, Instant::now())
    }

    /// [`IdleConns::take`] at `now`, a clock its caller has just read.
    pub fn take_at(&self, server: &Server, now: Instant) -> Option<ServerConn> {
        let list = self.list(server)?;
        loop {
            let mut c = list.lock().unwrap_or_else(|e| e.into_inner()).pop()?;
            if now.saturating_duration_since(c.since) < self.idle_timeout && c.still_open() {
                c.reused = true;
                return Some(c);
            }
            // Closed by the server, or idle too long: dropped, and look again.
        }
    }

    /// Keep `conn` for the next request to `server` (its response was read whole).
    /// Back on the idle list, the buffer of what is written shrunk to [`KEPT_OUT`]; the
    /// list's oldest closed if they are over `keepalive` and were idle [`PURGE_DELAY`].
    pub fn put(&self, server: &Server, conn: ServerConn) {
        self.put_at(server, conn, Instant::now());
    }

    /// [`IdleConns::put`] at `now`, a clock its caller has just read.
    pub fn put_at(&self, server: &Server, mut conn: ServerConn, now: Instant) {
        if self.max_idle == 0 {
            return;
        }
        let Some(list) = self.list(server) else {
            return;
        };
        conn.since = now;
        // An idle connection does not keep the largest request it ever wrote.
        conn.out.shrink_to(KEPT_OUT);
        if let Some(t) = conn.tries.as_mut()
            && t.answers.capacity() > KEPT_OUT
        {
            t.answers = bytes::BytesMut::with_capacity(ANSWERS);
        }
        let gone: Vec<ServerConn> = {
            let mut list = list.lock().unwrap_or_else(|e| e.into_inner());
            list.push(conn);
            if list.len() <= self.max_idle {
                return;
            }
            // Over the cap: the oldest go (the likeliest to be closed by the server), once
            // they have not been needed for a while.
            let n = self.stale(&list, now);
            list.drain(..n).collect()
        };
        // Closed outside the lock.
        drop(gone);
    }
}

//! The link to Redis: one multiplexed connection for commands, one subscribed connection
//! for what other balancers publish, and the two tasks that keep them (the monitor) and feed
//! them (the writer).
//!
//! Nothing connects at construction: the monitor task connects in the background, so a
//! balancer starts and serves with Redis down. While the link is down every call returns
//! [`CallError::Down`] at once, without sending anything (no request waits for a reconnect);
//! while it is up every call is bounded by a timeout ([`Bound`]). A call that finds the
//! connection broken (an I/O error, or a background call that times out) takes the link down
//! at once and wakes the monitor, which reconnects with a jittered exponential backoff
//! (100 ms doubling to 2 s), loads the Lua scripts again (a restarted Redis has none) and
//! subscribes again. Every time the link comes up it asks each registered [`Replica`] to
//! catch up (write what it holds where Redis lacks it), because what was published while it
//! was down is lost.
//!
//! Writes that a request causes (a sticky mapping learned) go through a bounded queue drained
//! by the writer task, which sends all that is waiting in one pipeline: a full queue, or a
//! link that is down, drops the write and counts it; a request never blocks on it.
//!
//! The redis crate's `ConnectionManager` also reconnects, but makes callers wait for the new
//! connection: here the caller learns that the link is down from one lock-free read instead.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use arc_swap::ArcSwapOption;
use futures_util::StreamExt;
use futures_util::future::BoxFuture;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, Cmd, FromRedisValue, Pipeline, RedisResult};
use tokio::sync::{Notify, mpsc};

use crate::shutdown::Shutdown;

const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(2);
/// A link with no other traffic is checked this often (a Redis that hangs closes nothing).
const PING_EVERY: Duration = Duration::from_secs(1);
/// Writes sent in one pipeline, at most.
const MAX_BATCH: usize = 512;

/// Where Redis is and how long to wait for it: the `[redis]` table of the config.
pub use crate::config::RedisPlan as RedisConfig;

/// Which timeout bounds a call, and whether running out of it means the link is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bound {
    /// A request waits: [`RedisConfig::timeout`]; a timeout says nothing about the link.
    Request,
    /// A background task waits: [`RedisConfig::io_timeout`]; a timeout takes the link down.
    Background,
}

/// Why a call has no answer.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error("the link to Redis is down")]
    Down,
    #[error("Redis did not answer in time")]
    Timeout,
    #[error("Redis: {0}")]
    Failed(#[from] redis::RedisError),
}

/// Something kept in Redis and copied on every balancer: a channel of its own, the messages
/// on it, and a catch-up after an outage.
pub trait Replica: Send + Sync {
    /// The pub/sub channel its messages come on (under the link's prefix).
    fn channel(&self) -> &str;
    /// A message another balancer (or this one) published on the channel.
    fn apply(&self, payload: &[u8]);
    /// Write what it holds to Redis where Redis lacks it (the link just came up).
    fn catch_up(self: Arc<Self>) -> BoxFuture<'static, ()>;
}

/// What the link did, ever: read by the metrics (later) and the tests.
#[derive(Debug, Default)]
pub struct LinkStats {
    ok: AtomicU64,
    errors: AtomicU64,
    timeouts: AtomicU64,
    skipped: AtomicU64,
    writes: AtomicU64,
    dropped: AtomicU64,
    messages: AtomicU64,
    ups: AtomicU64,
    downs: AtomicU64,
    connect_failures: AtomicU64,
}

/// A copy of [`LinkStats`] at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct LinkCounters {
    /// Calls answered.
    pub ok: u64,
    /// Calls answered with an error, or whose connection broke.
    pub errors: u64,
    /// Calls that ran out of their time.
    pub timeouts: u64,
    /// Calls not made because the link was down.
    pub skipped: u64,
    /// Writes sent (each a command of a pipeline that Redis answered).
    pub writes: u64,
    /// Writes dropped: queue full, link down, or their pipeline failed.
    pub dropped: u64,
    /// Pub/sub messages received.
    pub messages: u64,
    /// Times the link came up (the first connection included).
    pub ups: u64,
    /// Times it went down.
    pub downs: u64,
    /// Connection attempts that failed.
    pub connect_failures: u64,
}

impl LinkStats {
    fn snapshot(&self) -> LinkCounters {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        LinkCounters {
            ok: r(&self.ok),
            errors: r(&self.errors),
            timeouts: r(&self.timeouts),
            skipped: r(&self.skipped),
            writes: r(&self.writes),
            dropped: r(&self.dropped),
            messages: r(&self.messages),
            ups: r(&self.ups),
            downs: r(&self.downs),
            connect_failures: r(&self.connect_failures),
        }
    }
}

fn bump(a: &AtomicU64, n: u64) {
    a.fetch_add(n, Ordering::Relaxed);
}

/// The live connection and which one it is (a failure reported for an older one is stale).
struct Conn {
    conn: MultiplexedConnection,
    generation: u64,
}

/// The shared link; see the module docs.
pub struct Link {
    client: Client,
    config: RedisConfig,
    /// Lua scripts loaded on every connection.
    scripts: Vec<&'static str>,
    conn: ArcSwapOption<Conn>,
    generation: AtomicU64,
    /// A caller found the connection broken.
    broken: Notify,
    writes: mpsc::Sender<Cmd>,
    replicas: Mutex<HashMap<String, Weak<dyn Replica>>>,
    stats: LinkStats,
}

impl Link {
    /// A link to `config.addr` (not connected yet) and the receiving end of its write queue
    /// for [`Link::write_loop`]. Fails only on an address that cannot be a Redis address.
    pub fn new(
        config: RedisConfig,
        scripts: Vec<&'static str>,
    ) -> RedisResult<(Arc<Link>, mpsc::Receiver<Cmd>)> {
        let url = if config.addr.contains("://") {
            config.addr.clone()
        } else {
            format!("redis://{}", config.addr)
        };
        let client = Client::open(url)?;
        let (writes, rx) = mpsc::channel(config.queue.max(1));
        let link = Link {
            client,
            config,
            scripts,
            conn: ArcSwapOption::empty(),
            generation: AtomicU64::new(0),
            broken: Notify::new(),
            writes,
            replicas: Mutex::new(HashMap::new()),
            stats: LinkStats::default(),
        };
        Ok((Arc::new(link), rx))
    }

    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// Whether a connection is up now (a lock-free read).
    pub fn is_up(&self) -> bool {
        self.conn.load().is_some()
    }

    pub fn stats(&self) -> LinkCounters {
        self.stats.snapshot()
    }

    /// Receive the messages of `replica`'s channel, and ask it to catch up whenever the
    /// link comes up. Held weakly: a replica dropped is forgotten.
    ///
    /// Registered while the link is up (a table made by a reload), it catches up at once:
    /// the catch-up of the link's coming up may have run before it was there. Registered
    /// again, nothing happens.
    pub fn register(&self, replica: &Arc<dyn Replica>) {
        {
            let mut map = self.replicas.lock().unwrap_or_else(|e| e.into_inner());
            map.retain(|_, r| r.strong_count() > 0);
            let weak = Arc::downgrade(replica);
            let channel = replica.channel().to_string();
            if map.get(&channel).is_some_and(|held| held.ptr_eq(&weak)) {
                return;
            }
            map.insert(channel, weak);
        }
        if self.is_up()
            && let Ok(rt) = tokio::runtime::Handle::try_current()
        {
            rt.spawn(replica.clone().catch_up());
        }
    }

    /// One command, bounded by `bound`.
    pub async fn cmd<T: FromRedisValue>(&self, cmd: &Cmd, bound: Bound) -> Result<T, CallError> {
        self.call(bound, |mut c| async move { cmd.query_async(&mut c).await })
            .await
    }

    /// One pipeline (one round trip), bounded by `bound`.
    pub async fn pipe<T: FromRedisValue>(
        &self,
        pipe: &Pipeline,
        bound: Bound,
    ) -> Result<T, CallError> {
        self.call(bound, |mut c| async move { pipe.query_async(&mut c).await })
            .await
    }

    async fn call<T, F, Fut>(&self, bound: Bound, run: F) -> Result<T, CallError>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = RedisResult<T>>,
    {
        let Some(conn) = self.conn.load_full() else {
            bump(&self.stats.skipped, 1);
            return Err(CallError::Down);
        };
        let limit = match bound {
            Bound::Request => self.config.timeout,
            Bound::Background => self.config.io_timeout,
        };
        match tokio::time::timeout(limit, run(conn.conn.clone())).await {
            Ok(Ok(v)) => {
                bump(&self.stats.ok, 1);
                Ok(v)
            }
            Ok(Err(e)) => {
                bump(&self.stats.errors, 1);
                // A restarted Redis (or SCRIPT FLUSH) has lost our scripts: a new
                // connection loads them again.
                let lost_scripts =
                    e.kind() == redis::ErrorKind::Server(redis::ServerErrorKind::NoScript);
                if e.is_unrecoverable_error() || e.is_io_error() || lost_scripts {
                    self.broke(conn.generation);
                }
                Err(CallError::Failed(e))
            }
            Err(_) => {
                bump(&self.stats.timeouts, 1);
                if bound == Bound::Background {
                    self.broke(conn.generation);
                }
                Err(CallError::Timeout)
            }
        }
    }

    /// Take the link down if connection `generation` is still the live one.
    fn broke(&self, generation: u64) {
        let current = self.conn.load();
        if current.as_ref().is_some_and(|c| c.generation == generation) {
            let prev = self.conn.compare_and_swap(&*current, None);
            if prev.as_ref().is_some_and(|c| c.generation == generation) {
                self.broken.notify_one();
            }
        }
    }

    /// Queue a write for the writer task; false (and counted) when the queue is full or the
    /// link is down. Never waits.
    pub fn enqueue(&self, cmd: Cmd) -> bool {
        if !self.is_up() || self.writes.try_send(cmd).is_err() {
            bump(&self.stats.dropped, 1);
            return false;
        }
        true
    }

    /// The writer task: whatever waits in the queue goes in one pipeline.
    pub async fn write_loop(self: Arc<Self>, mut rx: mpsc::Receiver<Cmd>, shutdown: Shutdown) {
        let mut batch = Vec::with_capacity(MAX_BATCH);
        loop {
            tokio::select! {
                n = rx.recv_many(&mut batch, MAX_BATCH) => if n == 0 { return },
                _ = shutdown.stopped() => return,
            }
            let n = batch.len() as u64;
            let mut pipe = redis::pipe();
            for cmd in batch.drain(..) {
                pipe.add_command(cmd).ignore();
            }
            // What fails here is written again by the catch-up when the link comes back.
            match self.pipe::<()>(&pipe, Bound::Background).await {
                Ok(()) => bump(&self.stats.writes, n),
                Err(_) => bump(&self.stats.dropped, n),
            }
        }
    }

    /// The monitor task: connect, serve the subscription, notice a broken link, reconnect.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let mut backoff = BACKOFF_MIN;
        let mut warned = false;
        loop {
            let attempt = tokio::select! {
                a = tokio::time::timeout(self.config.io_timeout, self.connect()) => a,
                _ = shutdown.stopped() => return,
            };
            let (conn, mut messages) = match attempt {
                Ok(Ok(pair)) => pair,
                failed => {
                    bump(&self.stats.connect_failures, 1);
                    let why = match failed {
                        Ok(Err(e)) => e.to_string(),
                        _ => "connecting timed out".to_string(),
                    };
                    // Once per outage at warn; the retries at debug.
                    if warned {
                        tracing::debug!(addr = %shown(&self.config.addr), error = %why, "Redis still unreachable");
                    } else {
                        warned = true;
                        tracing::warn!(addr = %shown(&self.config.addr), error = %why, "cannot reach Redis; shared state is local only until it answers");
                    }
                    let pause = backoff.mul_f64(0.5 + rand::random::<f64>() / 2.0);
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                    tokio::select! {
                        _ = tokio::time::sleep(pause) => continue,
                        _ = shutdown.stopped() => return,
                    }
                }
            };
            (backoff, warned) = (BACKOFF_MIN, false);
            let generation = self.generation.fetch_add(1, Ordering::Relaxed) + 1;
            self.conn.store(Some(Arc::new(Conn { conn, generation })));
            bump(&self.stats.ups, 1);
            tracing::info!(addr = %shown(&self.config.addr), "Redis link up");
            let catch_up = tokio::spawn(self.clone().catch_up());
            let mut ping = tokio::time::interval(PING_EVERY);
            ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            ping.tick().await;
            loop {
                tokio::select! {
                    m = messages.next() => match m {
                        Some(m) => self.dispatch(&m),
                        None => break, // the subscribed connection closed
                    },
                    _ = self.broken.notified() => if !self.is_live(generation) { break },
                    _ = ping.tick() => {
                        if self.cmd::<String>(&redis::cmd("PING"), Bound::Background).await.is_err() {
                            break;
                        }
                    }
                    _ = shutdown.stopped() => {
                        catch_up.abort();
                        self.conn.store(None);
                        return;
                    }
                }
            }
            catch_up.abort();
            self.conn.store(None);
            bump(&self.stats.downs, 1);
            tracing::warn!(addr = %shown(&self.config.addr), "Redis link down; shared state is local only until it is back");
        }
    }

    fn is_live(&self, generation: u64) -> bool {
        self.conn
            .load()
            .as_ref()
            .is_some_and(|c| c.generation == generation)
    }

    async fn connect(
        &self,
    ) -> RedisResult<(
        MultiplexedConnection,
        impl futures_util::Stream<Item = redis::Msg>,
    )> {
        let config = AsyncConnectionConfig::new()
            .set_connection_timeout(Some(self.config.io_timeout))
            .set_response_timeout(Some(self.config.io_timeout));
        let mut conn = self
            .client
            .get_multiplexed_async_connection_with_config(&config)
            .await?;
        for script in &self.scripts {
            redis::cmd("SCRIPT")
                .arg("LOAD")
                .arg(*script)
                .query_async::<String>(&mut conn)
                .await?;
        }
        let mut pubsub = self.client.get_async_pubsub().await?;
        pubsub
            .psubscribe(format!("{}*", glob_escape(&self.config.prefix)))
            .await?;
        Ok((conn, pubsub.into_on_message()))
    }

    fn dispatch(&self, m: &redis::Msg) {
        bump(&self.stats.messages, 1);
        let replica = self
            .replicas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(m.get_channel_name())
            .and_then(Weak::upgrade);
        if let Some(r) = replica {
            r.apply(m.get_payload_bytes());
        }
    }

    async fn catch_up(self: Arc<Self>) {
        let replicas: Vec<Arc<dyn Replica>> = self
            .replicas
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .values()
            .filter_map(Weak::upgrade)
            .collect();
        for r in replicas {
            r.catch_up().await;
        }
    }
}

/// A Redis address as logs and errors show it: a password in it written `***`.
pub fn shown(addr: &str) -> String {
    match addr.split_once("://") {
        Some((scheme, rest)) => match rest.rsplit_once('@') {
            Some((_, host)) => format!("{scheme}://***@{host}"),
            None => addr.to_string(),
        },
        None => addr.to_string(),
    }
}

/// `s` with the characters a Redis glob pattern treats specially escaped.
fn glob_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A name (pool, limit scope) made safe to put between the `:` of a key: `%` and `:` are
/// written `%25` and `%3A`, so two names never make the same key.
pub fn key_part(name: &str) -> String {
    name.replace('%', "%25").replace(':', "%3A")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_cannot_run_into_each_other() {
        assert_eq!(key_part("api"), "api");
        assert_ne!(
            format!("{}:{}", key_part("a:b"), "c"),
            format!("{}:{}", key_part("a"), "b:c")
        );
        assert_eq!(key_part("50%:x"), "50%25%3Ax");
        assert_eq!(glob_escape("sy*[1]:"), "sy\\*\\[1\\]:");
        assert_eq!(shown("redis://:pw@h:1/0"), "redis://***@h:1/0");
        assert_eq!(shown("redis://u:p@w@h:1"), "redis://***@h:1");
        assert_eq!(shown("h:6379"), "h:6379");
    }

    #[tokio::test]
    async fn a_link_to_nowhere_refuses_at_once_and_drops_writes() {
        let config = RedisConfig {
            addr: "127.0.0.1:1".into(),
            ..RedisConfig::default()
        };
        let (link, _rx) = Link::new(config, vec![]).unwrap();
        assert!(!link.is_up());
        let started = std::time::Instant::now();
        let r = link
            .cmd::<String>(&redis::cmd("PING"), Bound::Request)
            .await;
        assert!(matches!(r, Err(CallError::Down)), "{r:?}");
        assert!(started.elapsed() < Duration::from_millis(50));
        assert!(!link.enqueue(redis::cmd("PING")));
        let s = link.stats();
        assert_eq!((s.skipped, s.dropped, s.ok), (1, 1, 0));
        assert!(
            Link::new(
                RedisConfig {
                    addr: "http://x".into(),
                    ..RedisConfig::default()
                },
                vec![]
            )
            .is_err()
        );
    }
}

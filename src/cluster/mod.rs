//! Several active balancers sharing state through Redis: sticky tables (`app_cookie`,
//! `source_ip`) and rate limits, so that balancers behind one address (DNS round robin,
//! ECMP, an L4 balancer in front) agree on where a client's session lives and on how many
//! requests a key has made.
//!
//! - `link.rs`: the connection to Redis, made in the background (a balancer starts and serves
//!   with Redis down), every call bounded by a timeout, reconnect with backoff, a bounded
//!   write queue drained by one task in pipelines, counters.
//! - `sticky.rs`: [`SharedStickTable`], a local stick table that writes what it learns to
//!   Redis and publishes it; every balancer applies what is published, a local miss may read
//!   through (one `GET`, bounded by a few ms), and after an outage the tables catch up.
//! - `rate.rs`: GCRA across balancers: each decides alone with its [`RateLimiter`], and one
//!   task syncs the counts every interval through a Lua script that advances the global TAT
//!   (Redis's clock) and answers each key's debt.
//!
//! The request path never waits on Redis longer than [`RedisConfig::timeout`] (only a
//! sticky lookup that misses locally waits at all) and not at all while the link is down.
//! Consistency is eventual: a mapping learned on one balancer is on the others one write
//! and one message later (about a millisecond on a LAN), and a read-through finds it as soon
//! as the write has landed; a shared rate limit holds within what the other balancers allow
//! in two sync intervals and a round trip (`rate.rs`). With Redis down each balancer goes on with its
//! local state (fail open to local), counts it, and catches up when Redis is back.
//!
//! `cookie` stickiness needs nothing shared: the cookie names the server by a hash of the
//! pool's name and the server's name and address (`proxy::http::sticky::server_cookie_id`,
//! xxh3 with a fixed seed), the same on every balancer whose config names the pool and the
//! server alike.
//!
//! # Configuration (`config`: `[redis]` is `Plan::redis`, `shared` is on `StickyPlan` and
//! `LimitPlan`; `shared = true` without `[redis]` is an error)
//!
//! ```toml
//! [redis]
//! addr = "10.0.0.5:6379"     # or "redis://:password@host:6379/0"
//! prefix = "switchyard:"     # before every key and channel (several groups, one Redis)
//! timeout = "5ms"            # the most a request waits on Redis (sticky read-through)
//! io_timeout = "1s"          # connect and background calls; longer takes the link down
//! sync_interval = "100ms"    # shared rate limits are synchronised this often
//! queue = 10000              # writes waiting for Redis, at most; more are dropped, counted
//!
//! [pool.api.sticky]
//! mode = "source_ip"         # or "app_cookie"; `cookie` needs nothing shared
//! shared = true              # needs [redis]
//!
//! [[listener.limit]]         # and [[listener.route.limit]]
//! rate = "100/s"
//! shared = true              # needs [redis]
//! ```
//!
//! # Wiring
//!
//! - `runtime` starts a [`Cluster`] when the plan has `[redis]` (a reload that changes it
//!   starts a new one, and the old one stops), before the listeners, and stops it after
//!   they drained.
//! - `proxy/http/sticky.rs`: a shared pool's table is [`Cluster::sticky_table`]; a lookup
//!   that misses locally reads through (`get_or_fetch`).
//! - `proxy/http/protect.rs`: a shared limit's table is [`Cluster::rate_limiter`] under the
//!   scope `{listener}/{index}` (`{listener}/route{n}/{index}`), which every balancer names
//!   alike; the request path calls `limiter.check(key, now)` as for a local one. A reload
//!   that keeps the limit keeps its table ([`Cluster::holds_limiter`]), or moves it onto a
//!   new link ([`Cluster::adopt_limiter`]).
//! - `admin/catalog/redis.rs`: [`Cluster::link_stats`], [`Cluster::rate_stats`] and each
//!   shared table's [`SharedStickTable::stats`] as `switchyard_redis_*` and
//!   `switchyard_pool_sticky_shared_total`.

mod link;
mod rate;
mod sticky;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::task::JoinHandle;

pub use link::{LinkCounters, RedisConfig, shown as shown_addr};
pub use rate::RateCounters;
pub use sticky::{ShareKey, SharedStickTable, StickyCounters};

use crate::config::StickyMode;
use crate::guard::rate::IDENTITY_SEED;
use crate::guard::{Rate, RateLimiter};
use crate::shutdown::Shutdown;
use crate::upstream::Pool;
use link::Link;
use rate::SharedLimits;

/// A Redis address that cannot be one.
#[derive(Debug, thiserror::Error)]
#[error("redis addr {addr:?}: {reason}; write host:port or redis://[:password@]host:port[/db]")]
pub struct ClusterError {
    pub addr: String,
    pub reason: String,
}

/// The shared state of one balancer: its link to Redis, the tasks that keep it, and what
/// it shares.
pub struct Cluster {
    link: Arc<Link>,
    limits: Arc<SharedLimits>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl Cluster {
    /// Start the link's tasks (the monitor, the writer, the rate sync), which run until
    /// `shutdown` fires. Returns at once: Redis is reached in the background.
    pub fn start(config: RedisConfig, shutdown: &Shutdown) -> Result<Arc<Cluster>, ClusterError> {
        let addr = link::shown(&config.addr);
        let (link, writes) = Link::new(config, vec![sticky::WRITE_SCRIPT, rate::SYNC_SCRIPT])
            .map_err(|e| ClusterError {
                addr,
                reason: e.to_string(),
            })?;
        let limits = Arc::new(SharedLimits::new(link.clone()));
        let tasks = vec![
            tokio::spawn(link.clone().run(shutdown.clone())),
            tokio::spawn(link.clone().write_loop(writes, shutdown.clone())),
            tokio::spawn(limits.clone().run(shutdown.clone())),
        ];
        Ok(Arc::new(Cluster {
            link,
            limits,
            tasks: Mutex::new(tasks),
        }))
    }

    /// A stick table of `pool`'s `mode` stickiness shared with the other balancers.
    pub fn sticky_table<K: ShareKey>(
        &self,
        mode: StickyMode,
        pool: Arc<Pool>,
        capacity: usize,
        ttl: Duration,
    ) -> Arc<SharedStickTable<K>> {
        SharedStickTable::new(self.link.clone(), mode, pool, capacity, ttl)
    }

    /// [`Cluster::sticky_table`] for a reload to prepare: it starts receiving what is
    /// published, and catches up, once [`SharedStickTable::serve`]d.
    pub fn unregistered_sticky_table<K: ShareKey>(
        &self,
        mode: StickyMode,
        pool: Arc<Pool>,
        capacity: usize,
        ttl: Duration,
    ) -> Arc<SharedStickTable<K>> {
        SharedStickTable::unregistered(self.link.clone(), mode, pool, capacity, ttl)
    }

    /// Whether `table` is kept through this cluster's link (a reload that changed
    /// `[redis]` makes a new cluster; its pools' tables move to it).
    pub fn holds<K: ShareKey>(&self, table: &SharedStickTable<K>) -> bool {
        table.on_link(&self.link)
    }

    /// A rate limiter whose keys are counted across balancers under `scope` (a name every
    /// balancer gives this limit).
    pub fn rate_limiter(
        &self,
        scope: &str,
        rate: Rate,
        burst: u32,
        capacity: usize,
    ) -> Arc<RateLimiter> {
        let limiter = Arc::new(RateLimiter::new(rate, burst, capacity).shared(IDENTITY_SEED));
        self.limits.add(scope, &limiter);
        limiter
    }

    /// Whether `limiter` is synced through this cluster's link.
    pub fn holds_limiter(&self, limiter: &Arc<RateLimiter>) -> bool {
        self.limits.holds(limiter)
    }

    /// Sync `limiter` (one of another cluster's, a reload that changed `[redis]` moving it
    /// here with its keys) under `scope` through this cluster's link too.
    pub fn adopt_limiter(&self, scope: &str, limiter: &Arc<RateLimiter>) {
        self.limits.add(scope, limiter);
    }

    /// Whether the link to Redis is up now.
    pub fn is_up(&self) -> bool {
        self.link.is_up()
    }

    pub fn config(&self) -> &RedisConfig {
        self.link.config()
    }

    pub fn link_stats(&self) -> LinkCounters {
        self.link.stats()
    }

    pub fn rate_stats(&self) -> RateCounters {
        self.limits.stats()
    }

    /// Resolves when the tasks have ended (after the `Shutdown` given to
    /// [`Cluster::start`] fired).
    pub async fn stopped(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for t in tasks {
            let _ = t.await;
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for t in self
            .tasks
            .get_mut()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
        {
            t.abort();
        }
    }
}

//! A pool as the HTTP proxy sees it: the pool's servers plus their idle connections.
//!
//! HTTP/1.1 requests of both engines go over the direct path's connections
//! ([`IdleConns`](super::h1::pool::IdleConns), `h1/client.rs` for hyper's); [`ConnPool`]
//! keeps hyper's HTTP/1.1 client connections for WebSocket upgrades, which hyper hands over
//! as upgraded connections. Those are one request at a time. A connection checked out for a request
//! is a [`Lease`] until its response body has been read to its end; then the body itself
//! puts it back on its server's idle list (no task waits for it), keeping at most
//! `keepalive` per server for at most `keepalive_timeout`, like nginx's `keepalive`
//! directive. A body dropped or failed before its end closes the connection.
//!
//! How a connection is made (TCP or TLS) is the pool's [`Transport`]; pools with
//! `upstream_protocol = "h2"`/`"h2c"` use the multiplexed [`H2Conns`] instead of this pool.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::body::{AtEnd, ProxyBody};
use super::transport::{H2Conns, SendTimed, Transport};
use crate::cluster::Cluster;
use crate::error::ProxyError;
use crate::upstream::{Pool, Server};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

/// A pool plus the connections to its servers.
pub struct Upstream {
    pub pool: Arc<Pool>,
    conns: Arc<ConnPool>,
    retry_budget: super::budget::RetryBudget,
    sticky: Option<super::sticky::Sticky>,
    h2: H2Conns,
    /// Idle connections of the direct HTTP/1 path, with their read buffers.
    idle: Arc<super::h1::pool::IdleConns>,
    /// Retries and refusals of the retry budget, kept by the upstream that succeeds it.
    stats: Arc<PoolStats>,
}

/// What the retry loop counts for a pool.
#[derive(Debug, Default)]
pub struct PoolStats {
    /// Tries after the first, on another server.
    pub retries: AtomicU64,
    /// Retries the budget refused (the request got the failed try's answer).
    pub budget_refusals: AtomicU64,
}

impl Upstream {
    pub fn new(pool: Arc<Pool>) -> Upstream {
        Upstream::with_transport(pool, Transport::default())
    }

    /// A pool whose servers are reached as `transport` says (TLS, HTTP/2).
    pub fn with_transport(pool: Arc<Pool>, transport: Transport) -> Upstream {
        Upstream::build(pool, transport, None, None)
    }

    /// [`Upstream::with_transport`], with the link to Redis for a `shared = true` sticky
    /// table (and when `previous` is given, taking over from it as [`Upstream::succeed`]).
    pub fn with_cluster(
        pool: Arc<Pool>,
        transport: Transport,
        previous: Option<(&Upstream, bool)>,
        cluster: Option<&Arc<Cluster>>,
    ) -> Upstream {
        Upstream::build(pool, transport, previous, cluster)
    }

    /// The upstream of a pool rebuilt by a reload or an admin change (servers added or
    /// removed, settings changed), taking over from `previous`: its sticky sessions, and
    /// when `keep_conns` (same protocol and TLS towards the servers) the idle and HTTP/2
    /// connections of the servers that stayed. Requests still running on `previous` finish
    /// there; connections they put back after the swap close with it.
    pub fn succeed(
        pool: Arc<Pool>,
        transport: Transport,
        previous: &Upstream,
        keep_conns: bool,
    ) -> Upstream {
        Upstream::build(pool, transport, Some((previous, keep_conns)), None)
    }

    fn build(
        pool: Arc<Pool>,
        transport: Transport,
        previous: Option<(&Upstream, bool)>,
        cluster: Option<&Arc<Cluster>>,
    ) -> Upstream {
        let conns_of = previous.and_then(|(p, keep)| keep.then_some(p));
        let h2 = H2Conns::succeed(pool.servers(), conns_of.map(|p| &p.h2));
        let idle_of = |id: u64| {
            conns_of
                .and_then(|p| p.conns.idle.iter().find(|(sid, _)| *sid == id))
                .map_or_else(Default::default, |(_, list)| list.clone())
        };
        let conns = Arc::new(ConnPool {
            idle: pool
                .servers()
                .iter()
                .map(|s| (s.id(), idle_of(s.id())))
                .collect(),
            max_idle: pool.keepalive,
            idle_timeout: pool.keepalive_timeout,
            connect_timeout: pool.timeouts.connect,
            send_timeout: pool.timeouts.send,
            opened: AtomicU64::new(conns_of.map_or(0, |p| p.conns.opened())),
            transport: Arc::new(transport),
        });
        let idle = super::h1::pool::IdleConns::succeed(
            pool.servers(),
            pool.keepalive,
            pool.keepalive_timeout,
            conns_of.map(|p| &*p.idle),
        )
        .shared();
        Upstream {
            idle,
            stats: previous.map_or_else(Arc::default, |(p, _)| p.stats.clone()),
            retry_budget: super::budget::RetryBudget::new(pool.retry.budget),
            sticky: pool.sticky.clone().map(|plan| {
                let before = previous.and_then(|(p, _)| p.sticky.as_ref());
                super::sticky::Sticky::succeed(plan, pool.clone(), before, cluster)
            }),
            pool,
            conns,
            h2,
        }
    }

    /// The pool's retry budget.
    /// Retries and budget refusals, since the pool first started.
    pub fn stats(&self) -> &PoolStats {
        &self.stats
    }

    pub fn retry_budget(&self) -> &super::budget::RetryBudget {
        &self.retry_budget
    }

    /// The pool's sticky sessions, if `[sticky]` is configured.
    pub fn sticky(&self) -> Option<&super::sticky::Sticky> {
        self.sticky.as_ref()
    }

    pub fn conns(&self) -> &Arc<ConnPool> {
        &self.conns
    }

    /// The direct HTTP/1 path's idle server connections (a response body read by hyper's
    /// engine holds them to put its connection back: `h1/client.rs`).
    pub fn idle(&self) -> &Arc<super::h1::pool::IdleConns> {
        &self.idle
    }

    /// The HTTP/2 connections (pools with `upstream_protocol = "h2"`/`"h2c"`).
    pub fn h2(&self) -> &H2Conns {
        &self.h2
    }

    /// How this pool reaches its servers.
    pub fn transport(&self) -> &Transport {
        &self.conns.transport
    }
}

struct IdleConn {
    sender: http1::SendRequest<ProxyBody>,
    since: Instant,
}

/// Idle upstream connections, per server.
pub struct ConnPool {
    /// One short lock per server, held only to push or pop an idle connection; requests to
    /// different servers never contend. Shared with the pool's next upstream after a
    /// reload, for the servers that stayed.
    idle: Vec<(u64, Arc<Mutex<Vec<IdleConn>>>)>,
    max_idle: usize,
    idle_timeout: Duration,
    connect_timeout: Duration,
    send_timeout: Duration,
    opened: AtomicU64,
    transport: Arc<Transport>,
}

/// A connection checked out for one request.
pub struct Conn {
    pub sender: http1::SendRequest<ProxyBody>,
    /// Its server's place in the pool's idle lists (`None`: the server left the pool).
    slot: Option<usize>,
    /// Taken from the idle list rather than opened for this request.
    pub reused: bool,
    /// Time spent connecting (zero when reused).
    pub connect_time: Duration,
}

/// A connection whose response is being read: back on its server's idle list when the
/// body has been read whole ([`AtEnd`]), closed when dropped before that.
pub struct Lease {
    pool: Arc<ConnPool>,
    slot: usize,
    sender: http1::SendRequest<ProxyBody>,
}

impl AtEnd for Lease {
    fn ended(self) {
        // The response is read whole, but the request body may still be going out (a server
        // that answers before reading an upload): such a connection is not ready, and would
        // hold up the next request to take it until the upload ends. It comes back when it
        // is ready, through a task (the common case, ready at once, spawns nothing).
        let Lease {
            pool,
            slot,
            mut sender,
        } = self;
        if sender.is_ready() {
            pool.put(slot, sender);
            return;
        }
        tokio::spawn(async move {
            if sender.ready().await.is_ok() {
                pool.put(slot, sender);
            }
        });
    }
}

impl ConnPool {
    /// The place of `server`'s idle list, found once per checkout (a short scan of ids; the
    /// lease carries the place back).
    fn slot(&self, server: &Server) -> Option<usize> {
        let id = server.id();
        self.idle.iter().position(|(sid, _)| *sid == id)
    }

    fn idle_list(&self, server: &Server) -> Option<&Mutex<Vec<IdleConn>>> {
        self.slot(server).map(|i| &*self.idle[i].1)
    }

    /// Idle connections to `server` waiting in the pool now (the admin API shows them).
    pub fn idle_count(&self, server: &Server) -> usize {
        self.idle_list(server)
            .map_or(0, |l| l.lock().unwrap_or_else(|e| e.into_inner()).len())
    }

    /// Connections opened since start, for tests and metrics.
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    /// One more connection opened (by the direct HTTP/1 path).
    pub fn count_opened(&self) {
        self.opened.fetch_add(1, Ordering::Relaxed);
    }

    /// An idle connection to `server` if one is still good, else a new one.
    pub async fn checkout(&self, server: &Server) -> Result<Conn, ProxyError> {
        let slot = self.slot(server);
        if let Some(i) = slot {
            loop {
                let candidate = self.idle[i]
                    .1
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .pop();
                let Some(mut c) = candidate else { break };
                if c.since.elapsed() >= self.idle_timeout {
                    // Idle too long: drop it and look again.
                    continue;
                }
                // Put back ready (`Lease::ended`): ready still, or closed by the server
                // since (then look again); never waiting on another request's upload.
                if c.sender.is_ready() || c.sender.ready().await.is_ok() {
                    return Ok(Conn {
                        sender: c.sender,
                        slot,
                        reused: true,
                        connect_time: Duration::ZERO,
                    });
                }
            }
        }
        self.connect(server).await
    }

    /// Open a new connection to `server`, bounded by the pool's connect timeout; its writes
    /// are bounded by the pool's send timeout.
    pub async fn connect(&self, server: &Server) -> Result<Conn, ProxyError> {
        // Boxed: a TLS connect and a handshake make a large future, and every request's
        // future (moved whole each time a task is spawned for it) would carry its size.
        Box::pin(self.open(server)).await
    }

    async fn open(&self, server: &Server) -> Result<Conn, ProxyError> {
        let started = Instant::now();
        let stream = self.transport.connect(server, self.connect_timeout).await?;
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(SendTimed::new(stream, self.send_timeout)))
            .await
            .map_err(|e| ProxyError::Connect {
                server: server.name.clone(),
                cause: e.to_string(),
            })?;
        self.opened.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            // Ends when the server closes, the pool drops the sender, or an upgraded
            // connection's tunnel is done.
            let _ = conn.with_upgrades().await;
        });
        Ok(Conn {
            sender,
            slot: self.slot(server),
            reused: false,
            connect_time: started.elapsed(),
        })
    }

    /// The connection of a response whose body is still to be read: it comes back to the
    /// idle list when that body ends whole (`None`: the pool keeps no idle connections, or
    /// the server left it).
    pub fn lease(self: &Arc<Self>, conn: Conn) -> Option<Lease> {
        if self.max_idle == 0 {
            return None;
        }
        Some(Lease {
            pool: self.clone(),
            slot: conn.slot?,
            sender: conn.sender,
        })
    }

    fn put(&self, slot: usize, sender: http1::SendRequest<ProxyBody>) {
        if sender.is_closed() {
            return;
        }
        let mut list = self.idle[slot].1.lock().unwrap_or_else(|e| e.into_inner());
        if list.len() >= self.max_idle {
            // Keep the newest; the oldest is the likeliest to be closed by the server.
            list.remove(0);
        }
        list.push(IdleConn {
            sender,
            since: Instant::now(),
        });
    }
}

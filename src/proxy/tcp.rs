//! L4 TCP: accept a client, pick a server from the pool, connect, and copy bytes both ways.
//!
//! Data flow of one connection: the accept loop ([`serve`]) enforces `max_connections` and
//! `max_connections_per_client` (over either: accept and close at once, counted) and spawns
//! the connection. The connection
//! optionally reads a PROXY header from a trusted peer (the real client address then feeds
//! balancing), asks [`Pool::pick`] with the client address and the servers already tried,
//! connects within the pool's connect timeout and, on refusal or timeout, tries the next
//! server — before any byte went back to the client, so it never sees the dead server. The
//! PROXY header for the server (if configured) and any bytes read past the client's header
//! go out first; then both directions are copied until both have ended. One side's FIN is
//! passed on as a `shutdown(Write)` of the other, and the other direction keeps flowing (the
//! second FIN goes with the close). When epoll had already reported the FIN behind the last
//! bytes read, those bytes are written with `MSG_MORE` and leave with the FIN in one segment
//! (as HAProxy's do): 18 segments per short proxied connection instead of 20. Bytes are copied through one buffer per worker thread,
//! borrowed for a read and the write that follows it, so a short exchange allocates no
//! buffer; a direction whose write had to wait gets one of its own. On Linux a direction
//! switches to splice(2) (socket → pipe → socket, no copy through user memory) once a read
//! fills the buffer, i.e. for bulk transfers (HAProxy's `splice-auto`); short exchanges
//! never pay for a pipe. The server's `in_flight` count is held for the
//! life of the connection, so `least_conn` counts open connections. Each connect attempt is
//! reported to the server's passive health (`report_failure` on refusal or timeout,
//! `report_success` on a connect), so `max_fails` / `fail_timeout` apply at L4 as in nginx's
//! stream module. When a connection ends, however it ends, one access-log line says who,
//! to which server, the bytes each way, how long and how it ended ([`ConnLog`]).

use std::cell::RefCell;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::io::{AsyncRead, ReadBuf};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{ReadHalf, WriteHalf};
use tokio::net::{TcpListener, TcpStream};

use crate::balance::PickContext;
use crate::config::L4Plan;
use crate::guard::{Acl, ConnLimits};
use crate::observe::sink::AccessLog;
use crate::observe::stream::StreamRecord;
use crate::proxy::proxy_protocol::{self, Header};
use crate::shutdown::Shutdown;
use crate::upstream::{InFlight, Pool, Server};

/// How long a trusted peer may take to send its PROXY header.
const PROXY_HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// The user-space buffer of one direction.
const BUF_SIZE: usize = 32 * 1024;

/// Live counters of one TCP listener: plain atomics, read at scrape time by `admin::catalog`.
#[derive(Debug, Default)]
pub struct TcpStats {
    /// Connections accepted, ever (including those closed for the limit).
    pub accepted: AtomicU64,
    /// Connections open now.
    pub active: AtomicU64,
    /// Closed at once because `max_connections` were open.
    pub rejected_over_limit: AtomicU64,
    /// Closed at once because the client is not allowed (`allow` / `deny`).
    pub denied: AtomicU64,
    /// Closed because the peer is not in `trusted_proxies`.
    pub proxy_untrusted: AtomicU64,
    /// Closed because the PROXY header was malformed, missing or late.
    pub proxy_malformed: AtomicU64,
    /// Connect attempts to servers that failed (each one then tries the next server).
    pub connect_failures: AtomicU64,
    /// Clients closed because no server could be reached.
    pub no_server: AtomicU64,
    /// Closed by the idle timeout.
    pub idle_timeouts: AtomicU64,
    /// Bytes client → server and server → client.
    pub bytes_up: AtomicU64,
    pub bytes_down: AtomicU64,
    /// Directions that switched to splice(2).
    pub spliced: AtomicU64,
}

impl TcpStats {
    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
    pub fn active(&self) -> u64 {
        Self::get(&self.active)
    }
    pub fn rejected_over_limit(&self) -> u64 {
        Self::get(&self.rejected_over_limit)
    }
    pub fn proxy_untrusted(&self) -> u64 {
        Self::get(&self.proxy_untrusted)
    }
    pub fn proxy_malformed(&self) -> u64 {
        Self::get(&self.proxy_malformed)
    }
    pub fn idle_timeouts(&self) -> u64 {
        Self::get(&self.idle_timeouts)
    }
    pub fn connect_failures(&self) -> u64 {
        Self::get(&self.connect_failures)
    }
    pub fn spliced(&self) -> u64 {
        Self::get(&self.spliced)
    }
}

/// One TCP listener's settings, pool and counters.
pub struct TcpService {
    pub listener: String,
    pub pool: Arc<Pool>,
    pub config: L4Plan,
    /// Connections open at once (`max_connections`, fitted to the open-file limit).
    pub max_connections: usize,
    /// `max_connections_per_client`, when set: the open connections per client address.
    pub per_client: Option<Arc<ConnLimits>>,
    pub stats: Arc<TcpStats>,
    /// `allow` / `deny`: a client they refuse is closed at once (after its PROXY header,
    /// when the listener reads one: the address it gives is the client's).
    pub acl: Acl,
    /// Feed connect times to the servers' latency EWMA (`least_time`); off when an HTTP
    /// listener shares the pool, whose EWMA is the time to a response head.
    pub record_latency: bool,
    pub log: Arc<AccessLog>,
}

/// The access-log line of one connection, written when it is dropped: at the end of
/// [`handle`], or when the grace period cuts the connection (`end` is then `shutdown`).
struct ConnLog<'a> {
    svc: &'a TcpService,
    client: SocketAddr,
    upstream: Option<SocketAddr>,
    connect: Option<Duration>,
    status: u16,
    end: &'static str,
    started: Instant,
    /// Bytes client → server and server → client, counted as they move.
    up: AtomicU64,
    down: AtomicU64,
}

impl<'a> ConnLog<'a> {
    fn new(svc: &'a TcpService, client: SocketAddr, started: Instant) -> ConnLog<'a> {
        ConnLog {
            svc,
            client,
            upstream: None,
            connect: None,
            status: 200,
            end: "shutdown",
            started,
            up: AtomicU64::new(0),
            down: AtomicU64::new(0),
        }
    }

    fn ended(&mut self, status: u16, end: &'static str) {
        (self.status, self.end) = (status, end);
    }
}

impl Drop for ConnLog<'_> {
    fn drop(&mut self) {
        self.svc.log.write(|out, format| {
            StreamRecord {
                protocol: "TCP",
                listener: &self.svc.listener,
                pool: &self.svc.pool.name,
                client: self.client,
                upstream: self.upstream,
                status: self.status,
                sent: self.down.load(Ordering::Relaxed),
                received: self.up.load(Ordering::Relaxed),
                duration: self.started.elapsed(),
                connect: self.connect,
                end: self.end,
                at: std::time::SystemTime::now(),
            }
            .write(out, format)
        });
    }
}

/// Decrements `active` when a connection ends, however it ends.
struct Active(Arc<TcpStats>);

impl Drop for Active {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Accept connections on `listener` with the current service (a reload swaps it: new
/// connections take the new pool and settings, open ones keep theirs) until `shutdown`
/// fires; then stop accepting (serving what the kernel already queued, see
/// [`crate::proxy::listen::last_accepts`]) and give open connections `grace` to end before
/// closing them. The service's `stats` stay the same across swaps.
pub async fn serve(
    listener: Arc<TcpListener>,
    services: Arc<ArcSwap<TcpService>>,
    shutdown: Shutdown,
    grace: Duration,
) {
    let local = listener.local_addr().ok();
    // Accepted sockets inherit TCP_NODELAY from a listener that has it (ours do: see
    // `listen::bind_tcp`); only others need one more syscall per connection.
    let set_nodelay = !socket2::SockRef::from(&*listener)
        .tcp_nodelay()
        .unwrap_or(false);
    // Fired when the grace period is over: connections still open close then.
    let kill = Shutdown::new();
    let start = |stream: TcpStream, client: SocketAddr| {
        let svc = services.load_full();
        svc.stats.accepted.fetch_add(1, Ordering::Relaxed);
        let open = svc.stats.active.fetch_add(1, Ordering::Relaxed);
        let active = Active(svc.stats.clone());
        if svc.config.accept_proxy.is_none() && !svc.acl.is_empty() && !svc.acl.allows(client.ip())
        {
            svc.stats.denied.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(listener = %svc.listener, %client, "not allowed: closed");
            return;
        }
        if open >= svc.max_connections as u64 {
            svc.stats
                .rejected_over_limit
                .fetch_add(1, Ordering::Relaxed);
            tracing::debug!(listener = %svc.listener, %client, "over max_connections: closed");
            let mut log = ConnLog::new(&svc, client, Instant::now());
            log.ended(503, "over_limit");
            return;
        }
        let permit = match svc.per_client.as_ref().map(|l| l.admit(client.ip())) {
            Some(Err(_)) => {
                svc.stats
                    .rejected_over_limit
                    .fetch_add(1, Ordering::Relaxed);
                tracing::debug!(listener = %svc.listener, %client, "over max_connections_per_client: closed");
                return;
            }
            Some(Ok(p)) => Some(p),
            None => None,
        };
        let killed = kill.clone();
        tokio::spawn(async move {
            let _active = active;
            let _permit = permit;
            tokio::select! {
                _ = handle(&svc, stream, client, local, set_nodelay) => {}
                _ = killed.stopped() => {}
            }
        });
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((stream, client)) => start(stream, client),
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        crate::warn_every!(Duration::from_secs(10), listener = %services.load().listener, "accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            _ = shutdown.stopped() => break,
        }
    }
    for (stream, client) in crate::proxy::listen::last_accepts(&listener) {
        start(stream, client);
    }
    drop(listener);
    let svc = services.load_full();
    let deadline = Instant::now() + grace;
    while svc.stats.active() > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if svc.stats.active() > 0 {
        tracing::warn!(
            listener = %svc.listener,
            "grace period of {grace:?} over; closing {} connection(s)",
            svc.stats.active()
        );
    }
    kill.stop();
}

/// Serve one client connection from start to end.
async fn handle(
    svc: &TcpService,
    mut client: TcpStream,
    peer: SocketAddr,
    local: Option<SocketAddr>,
    set_nodelay: bool,
) {
    let started = Instant::now();
    if set_nodelay {
        let _ = client.set_nodelay(true);
    }
    let mut log = ConnLog::new(svc, peer, started);

    // Who the client is: the peer, or what a trusted proxy in front of us says.
    let mut early = Vec::new();
    let mut source = peer;
    // The address the client connected to; asked of the socket only when a PROXY header
    // will carry it (one syscall saved per connection otherwise), since a wildcard listener
    // does not know it.
    let mut destination = match (svc.config.proxy_protocol, local) {
        (Some(_), _) => client.local_addr().ok().or(local).unwrap_or(peer),
        (None, local) => local.unwrap_or(peer),
    };
    if let Some(trusted) = &svc.config.accept_proxy {
        if !trusted.iter().any(|b| b.contains(peer.ip())) {
            svc.stats.proxy_untrusted.fetch_add(1, Ordering::Relaxed);
            crate::warn_every!(Duration::from_secs(10), listener = %svc.listener, %peer, "closed: peer is not in trusted_proxies");
            log.ended(403, "proxy_untrusted");
            return;
        }
        // Boxed: its read buffer would otherwise make every connection's task larger.
        match Box::pin(proxy_protocol::read_header(
            &mut client,
            PROXY_HEADER_TIMEOUT,
        ))
        .await
        {
            Ok((
                Header::Proxied {
                    source: s,
                    destination: d,
                },
                rest,
            )) => {
                source = s;
                destination = d;
                early = rest;
                log.client = s;
            }
            Ok((Header::Local, rest)) => early = rest,
            Err(e) => {
                svc.stats.proxy_malformed.fetch_add(1, Ordering::Relaxed);
                crate::warn_every!(Duration::from_secs(10), listener = %svc.listener, %peer, "closed: {e}");
                log.ended(400, "proxy_malformed");
                return;
            }
        }
        if !svc.acl.is_empty() && !svc.acl.allows(source.ip()) {
            svc.stats.denied.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(listener = %svc.listener, client = %source, "not allowed: closed");
            return;
        }
    }

    let connecting = Instant::now();
    let Some((mut upstream, inflight)) = connect(svc, source).await else {
        svc.stats.no_server.fetch_add(1, Ordering::Relaxed);
        log.ended(502, "no_server");
        tracing::warn!(
            listener = %svc.listener,
            client = %source,
            pool = %svc.pool.name,
            "closed: no server of the pool could be reached"
        );
        return;
    };
    let server = inflight.server().clone();
    log.connect = Some(connecting.elapsed());
    log.upstream = Some(server.addr);

    // What the server reads first: our PROXY header, then what the client sent past its own.
    let mut first = match svc.config.proxy_protocol {
        Some(v) => proxy_protocol::encode(v, source, destination),
        None => Vec::new(),
    };
    first.extend_from_slice(&early);
    if !first.is_empty()
        && let Err(e) = upstream.write_all(&first).await
    {
        tracing::debug!(listener = %svc.listener, server = %server.name, "write failed: {e}");
        log.ended(502, "error");
        return;
    }
    svc.stats
        .bytes_up
        .fetch_add(early.len() as u64, Ordering::Relaxed);
    log.up.fetch_add(early.len() as u64, Ordering::Relaxed);

    let end = pipe_both(&mut client, &mut upstream, &svc.config, &svc.stats, &log).await;
    log.ended(200, end);
    tracing::debug!(
        listener = %svc.listener,
        client = %source,
        server = %server.name,
        up = log.up.load(Ordering::Relaxed),
        down = log.down.load(Ordering::Relaxed),
        end,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "connection closed"
    );
    drop(inflight);
}

/// Pick and connect, trying the next server on refusal or timeout, until one answers or the
/// pool has no untried server left.
async fn connect(svc: &TcpService, client: SocketAddr) -> Option<(TcpStream, InFlight)> {
    let mut tried: Vec<Arc<Server>> = Vec::new();
    let limit = svc.pool.timeouts.connect;
    loop {
        let server = svc.pool.pick(&PickContext {
            client: Some(client.ip()),
            hash_key: None,
            tried: &tried,
        })?;
        // Counted from the attempt on, so concurrent picks see it (least_conn).
        // The place is taken atomically: a server whose last `max_conns` place went to a
        // racing connection is skipped like a full one.
        let Some(inflight) = server.try_begin() else {
            tried.push(server);
            continue;
        };
        let attempt = Instant::now();
        let err = match tokio::time::timeout(limit, TcpStream::connect(server.addr)).await {
            Ok(Ok(s)) => {
                let _ = s.set_nodelay(true);
                // At L4 the connect time is the server's response time: `least_time` ranks
                // by it here (nginx's `least_time connect`).
                if svc.record_latency {
                    server.record_latency(attempt.elapsed());
                }
                // Passive health: a connect is the server's answer at L4 (nginx's stream
                // module judges the same). One atomic load unless failures are on record.
                server.report_success(tokio::time::Instant::now());
                return Some((s, inflight));
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within {limit:?}"),
        };
        svc.stats.connect_failures.fetch_add(1, Ordering::Relaxed);
        // Refused or timed out: counts towards `max_fails` within `fail_timeout`; once
        // tripped, picks skip the server until `fail_timeout` has passed.
        server.report_failure(tokio::time::Instant::now());
        tracing::warn!(
            listener = %svc.listener,
            pool = %svc.pool.name,
            server = %server.name,
            "connect failed, trying the next server: {err}"
        );
        drop(inflight);
        tried.push(server);
    }
}

/// Copy both ways until both directions have ended, an error ends one, or the connection
/// has been idle for `idle_timeout`; the bytes moved are counted in `log` as well as in
/// `stats`. Says how it ended: `done`, `error` or `idle_timeout`.
async fn pipe_both(
    client: &mut TcpStream,
    upstream: &mut TcpStream,
    cfg: &L4Plan,
    stats: &TcpStats,
    log: &ConnLog<'_>,
) -> &'static str {
    let epoch = Instant::now();
    // Milliseconds since `epoch` of the last byte moved either way.
    let last = AtomicU64::new(0);
    let activity = Activity { epoch, last: &last };
    let ended = AtomicBool::new(false);
    let (client_in, client_out) = client.split();
    let (upstream_in, upstream_out) = upstream.split();
    let mut up = Direction {
        from: client_in,
        to: upstream_out,
        bytes: &stats.bytes_up,
        moved: &log.up,
        ended: &ended,
    };
    let mut down = Direction {
        from: upstream_in,
        to: client_out,
        bytes: &stats.bytes_down,
        moved: &log.down,
        ended: &ended,
    };
    let splice = cfg.splice;
    let copy = async {
        // An error in one direction ends the connection: the other cannot be trusted to
        // finish (e.g. a reset server will not answer), so stop both.
        tokio::try_join!(
            up.run(&activity, splice, stats),
            down.run(&activity, splice, stats)
        )
    };
    tokio::select! {
        r = copy => match r {
            Ok(_) => "done",
            Err(_) => "error",
        },
        _ = activity.idle(cfg.idle_timeout) => {
            stats.idle_timeouts.fetch_add(1, Ordering::Relaxed);
            "idle_timeout"
        }
    }
}

struct Activity<'a> {
    epoch: Instant,
    last: &'a AtomicU64,
}

impl Activity<'_> {
    fn touch(&self) {
        self.last
            .store(self.epoch.elapsed().as_millis() as u64, Ordering::Relaxed);
    }

    /// Resolves once nothing moved for `limit`.
    async fn idle(&self, limit: Duration) {
        loop {
            let last = self.epoch + Duration::from_millis(self.last.load(Ordering::Relaxed));
            let due = last + limit;
            if Instant::now() >= due {
                return;
            }
            tokio::time::sleep_until(due.into()).await;
        }
    }
}

thread_local! {
    /// This thread's copy buffer. A read and the write after it happen with no await between
    /// them, so a connection borrows it only for that moment: a short exchange allocates no
    /// buffer at all (HAProxy takes its buffers from a pool only while they hold data).
    static SCRATCH: RefCell<Box<[u8]>> = RefCell::new(vec![0u8; BUF_SIZE].into_boxed_slice());
}

/// What one read through the shared buffer did.
enum Step {
    /// End of stream.
    End,
    /// `read` bytes read; those the socket did not take are in the direction's own buffer.
    /// `last`: the peer's FIN had arrived before this read, which took everything before
    /// it, so the stream has ended (no read just to be told so).
    Read {
        read: usize,
        written: usize,
        last: bool,
    },
}

/// One direction of a connection.
struct Direction<'a> {
    from: ReadHalf<'a>,
    to: WriteHalf<'a>,
    bytes: &'a AtomicU64,
    /// This connection's count.
    moved: &'a AtomicU64,
    /// Set by the first direction to end: the second then needs no `shutdown`, the close
    /// that follows sends the FIN (one syscall fewer per connection).
    ended: &'a AtomicBool,
}

impl Direction<'_> {
    fn count(&self, n: usize, activity: &Activity<'_>) {
        self.moved.fetch_add(n as u64, Ordering::Relaxed);
        self.bytes.fetch_add(n as u64, Ordering::Relaxed);
        activity.touch();
    }

    /// Read once into this thread's buffer and write at once what the other socket takes;
    /// the rest goes to `held` (allocated then, and kept). A short read clears the socket's
    /// readiness (tokio's `poll_read`), so no read is tried just to learn it would block.
    ///
    /// When the peer's FIN was already in before the read (epoll said `EPOLLRDHUP`; tokio
    /// keeps that state), a short read took everything the peer sent: the stream has ended.
    /// The bytes then go out with `MSG_MORE` and the `shutdown` that follows at once sends
    /// them and the FIN in one segment, as HAProxy does: one packet fewer for both kernels,
    /// one wake-up fewer for the reader, and no read just to learn of the end.
    async fn step(&mut self, held: &mut Vec<u8>) -> io::Result<Step> {
        std::future::poll_fn(|cx| {
            SCRATCH.with_borrow_mut(|buf| {
                let from: &TcpStream = self.from.as_ref();
                std::task::ready!(from.poll_read_ready(cx))?;
                let closed = read_closed(from);
                let mut rb = ReadBuf::new(buf);
                std::task::ready!(std::pin::Pin::new(&mut self.from).poll_read(cx, &mut rb))?;
                let read = rb.filled().len();
                if read == 0 {
                    return std::task::Poll::Ready(Ok(Step::End));
                }
                let last = closed && read < buf.len();
                let to: &TcpStream = self.to.as_ref();
                let mut written = 0;
                while written < read {
                    match send(to, &buf[written..read], last) {
                        Ok(0) => {
                            return std::task::Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                        }
                        Ok(m) => written += m,
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return std::task::Poll::Ready(Err(e)),
                    }
                }
                if written < read {
                    held.reserve_exact(BUF_SIZE);
                    held.extend_from_slice(&buf[written..read]);
                }
                std::task::Poll::Ready(Ok(Step::Read {
                    read,
                    written,
                    last,
                }))
            })
        })
        .await
    }

    /// Copy until end of stream, then pass the FIN on. Bytes go through this thread's
    /// buffer while the other side takes them at once; once a write has to wait, the
    /// direction copies through a buffer of its own; once a read fills a buffer (bulk data)
    /// it moves the rest with splice(2) when `splice` is on.
    async fn run(
        &mut self,
        activity: &Activity<'_>,
        splice: bool,
        stats: &TcpStats,
    ) -> io::Result<()> {
        let mut held: Vec<u8> = Vec::new();
        loop {
            let full = if held.capacity() == 0 {
                match self.step(&mut held).await? {
                    Step::End => break,
                    Step::Read {
                        read,
                        written,
                        last,
                    } => {
                        self.count(written, activity);
                        if !held.is_empty() {
                            write_all(self.to.as_ref(), &held).await?;
                            self.count(held.len(), activity);
                            held.clear();
                        }
                        if last {
                            break;
                        }
                        read == BUF_SIZE
                    }
                }
            } else {
                // A congested direction: read straight into its own buffer.
                if self.from.read_buf(&mut held).await? == 0 {
                    break;
                }
                write_all(self.to.as_ref(), &held).await?;
                self.count(held.len(), activity);
                let full = held.len() == held.capacity();
                held.clear();
                full
            };
            // A full buffer means bulk data: move the rest without copying it through us.
            #[cfg(target_os = "linux")]
            if splice
                && full
                && let Some(pipe) = crate::proxy::splice::Pipe::new()
            {
                drop(held);
                stats.spliced.fetch_add(1, Ordering::Relaxed);
                let (from, to) = (self.from.as_ref(), self.to.as_ref());
                crate::proxy::splice::copy(from, to, &pipe, |n| self.count(n, activity)).await?;
                return self.finish();
            }
            #[cfg(not(target_os = "linux"))]
            let _ = (splice, stats, full);
        }
        self.finish()
    }

    /// Pass a FIN on, unless the other direction has ended too: then the close does.
    fn finish(&self) -> io::Result<()> {
        if self.ended.swap(true, Ordering::Relaxed) {
            return Ok(());
        }
        finish(self.to.as_ref())
    }
}

/// Pass a FIN on: the peer reads end of stream, and may still send.
fn finish(to: &TcpStream) -> io::Result<()> {
    match socket2::SockRef::from(to).shutdown(std::net::Shutdown::Write) {
        // The other side already went away entirely; nothing left to tell it.
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(()),
        r => r,
    }
}

/// Whether `s`'s peer has sent its FIN, as the last epoll event said (no syscall), and no
/// error (a reset) came with it: that one the read reports. Called only when the socket is
/// read-ready, where tokio answers without waiting.
fn read_closed(s: &TcpStream) -> bool {
    use futures_util::FutureExt;
    use tokio::io::Interest;
    matches!(
        s.ready(Interest::READABLE.add(Interest::ERROR)).now_or_never(),
        Some(Ok(r)) if r.is_read_closed() && !r.is_error()
    )
}

/// Write what `to` takes now; with `more` (Linux), hold it for the FIN that follows at once
/// (`MSG_MORE`: the `shutdown` or close sends both in one segment).
fn send(to: &TcpStream, buf: &[u8], more: bool) -> io::Result<usize> {
    #[cfg(target_os = "linux")]
    if more {
        use rustix::net::SendFlags;
        return to.try_io(tokio::io::Interest::WRITABLE, || {
            rustix::net::send(to, buf, SendFlags::MORE | SendFlags::NOSIGNAL)
                .map_err(io::Error::from)
        });
    }
    let _ = more;
    to.try_write(buf)
}

async fn write_all(s: &TcpStream, mut buf: &[u8]) -> io::Result<()> {
    while !buf.is_empty() {
        s.writable().await?;
        match s.try_write(buf) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => buf = &buf[n..],
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

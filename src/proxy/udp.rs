//! L4 UDP: a session per client address, each with its own upstream socket.
//!
//! Data flow: the listener task ([`serve`]) owns the session table, so the table needs no
//! lock. A datagram from a client finds its session (or creates one: [`Pool::pick`] with the
//! client address, a new socket connected to the chosen server) and goes out on that
//! session's socket. Each session has a small task that reads the server's answers from its
//! socket and sends them back to the client from the listening socket, so answers reach the
//! right client and the client sees the address it spoke to. A session lives
//! `session_timeout` after the client's last datagram; a periodic sweep ends idle sessions.
//! The table holds at most `max_sessions` (lowered at start to what the open-file limit
//! allows, each session holding a socket: `runtime::fds`): a datagram from a new client
//! beyond that is dropped and counted. Repeated warnings (no server, sessions ending) are
//! said once per 10 s with a count. A session whose server refuses (ICMP port unreachable, seen as
//! ECONNREFUSED on the connected socket) or that left service (health checks, maintenance,
//! removed from the pool) ends, and the client's next datagram picks another server; a
//! draining server keeps its sessions (as HAProxy keeps a draining server's connections).
//! A reload swaps the listener's [`UdpService`] (pool, settings): new sessions take it. A session holds its server's
//! `in_flight` count, so `least_conn` counts sessions. Passive health sees UDP through the
//! only signals it has: a refusal (ICMP port unreachable) is a failure of the server, the
//! first answer of a session a success, so `max_fails` / `fail_timeout` take a server
//! that refuses out of new sessions' picks. When a session ends (expired, its server gone,
//! the listener stopped), one access-log line says who, which server, the bytes each way
//! and how long.

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

use crate::balance::PickContext;
use crate::config::L4Plan;
use crate::guard::Acl;
use crate::observe::sink::AccessLog;
use crate::observe::stream::StreamRecord;
use crate::shutdown::Shutdown;
use crate::upstream::{InFlight, Pool, Server};

/// The largest UDP payload.
const MAX_DATAGRAM: usize = 65_535;

/// Live counters of one UDP listener.
#[derive(Debug, Default)]
pub struct UdpStats {
    /// Sessions now in the table.
    pub sessions: AtomicU64,
    /// Sessions created, ever.
    pub sessions_created: AtomicU64,
    /// Sessions ended because their client was quiet for `session_timeout`.
    pub sessions_expired: AtomicU64,
    /// Datagrams of new clients dropped because the table was full.
    pub rejected_over_limit: AtomicU64,
    /// Datagrams dropped because their client is not allowed (`allow` / `deny`).
    pub denied: AtomicU64,
    /// Datagrams dropped because no server was available.
    pub no_server: AtomicU64,
    /// Datagrams client → server and server → client.
    pub datagrams_up: AtomicU64,
    pub datagrams_down: AtomicU64,
    /// Datagrams that could not be sent (socket buffer full, or an error).
    pub send_errors: AtomicU64,
}

impl UdpStats {
    pub fn sessions(&self) -> u64 {
        self.sessions.load(Ordering::Relaxed)
    }
    pub fn sessions_expired(&self) -> u64 {
        self.sessions_expired.load(Ordering::Relaxed)
    }
    pub fn rejected_over_limit(&self) -> u64 {
        self.rejected_over_limit.load(Ordering::Relaxed)
    }
}

/// One UDP listener's settings, pool and counters.
pub struct UdpService {
    pub listener: String,
    pub pool: Arc<Pool>,
    pub config: L4Plan,
    pub stats: Arc<UdpStats>,
    /// `allow` / `deny`: a datagram from a client they refuse is dropped (no session).
    pub acl: Acl,
    /// Feed first-answer delays to the servers' latency EWMA (`least_time`); off when an
    /// HTTP listener shares the pool.
    pub record_latency: bool,
    pub log: Arc<AccessLog>,
}

struct Session {
    upstream: Arc<UdpSocket>,
    /// The client's last datagram.
    last_seen: Instant,
    /// Reads answers from the server; aborted when the session ends.
    answers: JoinHandle<()>,
    /// Holds the server's in-flight count for the life of the session.
    inflight: InFlight,
    opened: Instant,
    /// Bytes from the client, and (counted by the answers task) to it.
    received: u64,
    sent: Arc<AtomicU64>,
}

impl Session {
    /// The session's access-log line, as it ends.
    fn log(&self, svc: &UdpService, client: SocketAddr, end: &'static str) {
        svc.log.write(|out, format| {
            StreamRecord {
                protocol: "UDP",
                listener: &svc.listener,
                pool: &svc.pool.name,
                client,
                upstream: Some(self.inflight.server().addr),
                status: 200,
                sent: self.sent.load(Ordering::Relaxed),
                received: self.received,
                duration: self.opened.elapsed(),
                connect: None,
                end,
                at: std::time::SystemTime::now(),
            }
            .write(out, format)
        });
    }
}

impl Drop for Session {
    fn drop(&mut self) {
        self.answers.abort();
    }
}

/// Serve datagrams on `socket` with the current service until `shutdown` fires. UDP has
/// nothing to drain: the sessions end with the loop.
pub async fn serve(socket: Arc<UdpSocket>, services: Arc<ArcSwap<UdpService>>, shutdown: Shutdown) {
    let svc = services.load_full();
    let mut table: HashMap<SocketAddr, Session> = HashMap::new();
    let mut buf = vec![0u8; MAX_DATAGRAM];
    // Sweep often enough that a session outlives its timeout by at most a quarter of it.
    let every =
        (svc.config.session_timeout / 4).clamp(Duration::from_millis(10), Duration::from_secs(1));
    let mut sweep = tokio::time::interval(every);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (n, client) = match r {
                    Ok(pair) => pair,
                    Err(e) => {
                        // On Linux an ICMP error for an earlier send_to can surface here;
                        // it concerns one client, not the listener.
                        tracing::debug!(listener = %svc.listener, "recv failed: {e}");
                        continue;
                    }
                };
                datagram(&services.load(), &socket, &mut table, client, &buf[..n]);
            }
            _ = sweep.tick() => expire(&services.load(), &mut table, Instant::now()),
            _ = shutdown.stopped() => break,
        }
    }
    let svc = services.load();
    for (client, session) in table.drain() {
        session.log(&svc, client, "shutdown");
    }
    svc.stats.sessions.store(0, Ordering::Relaxed);
}

fn datagram(
    svc: &UdpService,
    socket: &Arc<UdpSocket>,
    table: &mut HashMap<SocketAddr, Session>,
    client: SocketAddr,
    data: &[u8],
) {
    let now = Instant::now();
    // A session whose server refused, or was taken out of service (health checks, drain),
    // ends; this datagram then tries another server.
    let mut tried: Vec<Arc<Server>> = Vec::new();
    if let Some(s) = table.get(&client)
        && (s.answers.is_finished() || !s.inflight.server().is_available())
    {
        tried.push(s.inflight.server().clone());
        s.log(svc, client, "server_gone");
        table.remove(&client);
        svc.stats.sessions.fetch_sub(1, Ordering::Relaxed);
    }
    if !table.contains_key(&client) {
        if !svc.acl.is_empty() && !svc.acl.allows(client.ip()) {
            svc.stats.denied.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // Expired sessions leave at the next sweep (at most a second away), not here: a
        // scan per datagram of a full table would let a flood of new clients burn the CPU.
        if table.len() >= svc.config.max_sessions {
            svc.stats
                .rejected_over_limit
                .fetch_add(1, Ordering::Relaxed);
            crate::warn_every!(
                Duration::from_secs(10),
                listener = %svc.listener,
                "max_sessions ({}) open: datagrams of new clients dropped",
                svc.config.max_sessions
            );
            return;
        }
        match open(svc, socket, client, &tried) {
            Ok(s) => {
                table.insert(client, s);
                svc.stats.sessions.fetch_add(1, Ordering::Relaxed);
                svc.stats.sessions_created.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                svc.stats.no_server.fetch_add(1, Ordering::Relaxed);
                // Once per interval: a flood (spoofed sources, no descriptor left) would
                // otherwise be a line per datagram.
                crate::warn_every!(
                    Duration::from_secs(10),
                    listener = %svc.listener,
                    %client,
                    pool = %svc.pool.name,
                    "datagram dropped: {e}"
                );
                return;
            }
        }
    }
    let Some(session) = table.get_mut(&client) else {
        return;
    };
    session.last_seen = now;
    // The session began with this datagram, taken a moment before the session was made: its
    // lifetime (the log's duration) counts from it, so an expired one lived its timeout.
    session.opened = session.opened.min(now);
    // A non-blocking send: a full socket buffer drops the datagram, as the network would,
    // instead of stalling every other client behind this one. Straight to the socket, not
    // tokio's `try_send`, which reports would-block until the reactor has seen the socket
    // writable once (never, for a socket created a moment ago).
    match socket2::SockRef::from(&*session.upstream).send(data) {
        Ok(_) => {
            svc.stats.datagrams_up.fetch_add(1, Ordering::Relaxed);
            session.received += data.len() as u64;
        }
        Err(e) => {
            svc.stats.send_errors.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(listener = %svc.listener, %client, "send to server failed: {e}");
        }
    }
}

/// A new session for `client`: pick a server, connect a socket to it, start reading answers.
fn open(
    svc: &UdpService,
    listener: &Arc<UdpSocket>,
    client: SocketAddr,
    tried: &[Arc<Server>],
) -> io::Result<Session> {
    let server = svc
        .pool
        .pick(&PickContext {
            client: Some(client.ip()),
            hash_key: None,
            tried,
        })
        .ok_or_else(|| io::Error::other("no server available"))?;
    let inflight = server
        .try_begin()
        .ok_or_else(|| io::Error::other("the server is at max_conns"))?;
    let any: IpAddr = if server.addr.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let std_socket = std::net::UdpSocket::bind(SocketAddr::new(any, 0))?;
    if let Err(e) = std_socket.connect(server.addr) {
        // No route to the server, for instance: its fault, not the client's.
        server.report_failure(tokio::time::Instant::now());
        return Err(e);
    }
    std_socket.set_nonblocking(true)?;
    let upstream = Arc::new(UdpSocket::from_std(std_socket)?);
    let sent = Arc::new(AtomicU64::new(0));
    let answers = tokio::spawn(answers(
        upstream.clone(),
        listener.clone(),
        client,
        (svc.stats.clone(), sent.clone()),
        server.clone(),
        svc.record_latency,
    ));
    Ok(Session {
        upstream,
        last_seen: Instant::now(),
        answers,
        inflight,
        opened: Instant::now(),
        received: 0,
        sent,
    })
}

/// Relay a server's answers to its client until the socket fails (the server refused).
///
/// A session holds no receive buffer while it waits: once readable, it reads into its worker
/// thread's one 64 KiB buffer and forwards at once, with no await in between.
/// So a table of 100,000 quiet sessions costs sockets and small tasks, not 6 GiB of buffers.
async fn answers(
    upstream: Arc<UdpSocket>,
    listener: Arc<UdpSocket>,
    client: SocketAddr,
    (stats, sent): (Arc<UdpStats>, Arc<AtomicU64>),
    server: Arc<Server>,
    record_latency: bool,
) {
    thread_local! {
        static BUF: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0u8; MAX_DATAGRAM]);
    }
    let opened = Instant::now();
    let mut answered = false;
    loop {
        // As `recv` does (a refusal, ICMP port unreachable, wakes it too), with the
        // syscall made straight on the socket and the answer forwarded inside the closure.
        let got = upstream
            .async_io(
                tokio::io::Interest::READABLE | tokio::io::Interest::ERROR,
                || {
                    BUF.with_borrow_mut(|buf| {
                        use std::io::Read;
                        let n = (&*socket2::SockRef::from(&*upstream)).read(buf)?;
                        if forward(&listener, &buf[..n], client, &stats) {
                            sent.fetch_add(n as u64, Ordering::Relaxed);
                        }
                        Ok(())
                    })
                },
            )
            .await;
        match got {
            Ok(()) if !answered => {
                // The first answer of a session is the server's proof of life, and its
                // delay the server's response time (for `least_time`); later ones add
                // nothing, so they cost nothing.
                answered = true;
                if record_latency {
                    server.record_latency(opened.elapsed());
                }
                server.report_success(tokio::time::Instant::now());
            }
            Ok(()) => {}
            Err(e) => {
                if e.kind() == io::ErrorKind::ConnectionRefused {
                    server.report_failure(tokio::time::Instant::now());
                }
                crate::warn_every!(
                    Duration::from_secs(10),
                    %client,
                    server = %server.name,
                    "session ended: {e}"
                );
                return;
            }
        }
    }
}

/// Send one answer back to its client from the listening socket; whether it went.
fn forward(listener: &UdpSocket, data: &[u8], client: SocketAddr, stats: &UdpStats) -> bool {
    match socket2::SockRef::from(listener).send_to(data, &client.into()) {
        Ok(_) => {
            stats.datagrams_down.fetch_add(1, Ordering::Relaxed);
            true
        }
        Err(_) => {
            stats.send_errors.fetch_add(1, Ordering::Relaxed);
            false
        }
    }
}

/// End the sessions whose client has been quiet for `session_timeout`.
fn expire(svc: &UdpService, table: &mut HashMap<SocketAddr, Session>, now: Instant) {
    let limit = svc.config.session_timeout;
    let before = table.len();
    table.retain(|client, s| {
        let live = now.duration_since(s.last_seen) < limit;
        if !live {
            s.log(svc, *client, "expired");
        }
        live
    });
    let gone = (before - table.len()) as u64;
    if gone > 0 {
        svc.stats.sessions.fetch_sub(gone, Ordering::Relaxed);
        svc.stats
            .sessions_expired
            .fetch_add(gone, Ordering::Relaxed);
    }
}

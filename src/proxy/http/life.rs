//! How long a client connection may live, and how much it may ask: the limits of the accept
//! loops, as HAProxy and nginx put them.
//!
//! - [`admit`]: the listener's `max_connections` and `max_connections_per_client`
//!   (`guard::conns`), checked once per accepted connection. A full listener closes its
//!   longest-idle connection for the new one (nginx's reusable connections); with none idle
//!   the new one is closed at once. A client over its own limit gets a 503 on a cleartext
//!   listener (nginx's `limit_conn` answer), a close on TLS; each is counted.
//! - [`Life`]: one connection's place (its permit) and clock. Its first request head must be
//!   whole within `client_header_timeout` of the accept, the PROXY header, TLS handshake and
//!   protocol detection included; between requests it may wait `keepalive_timeout` for the
//!   next one's first byte, and that head then has `client_header_timeout` from that byte.
//!   The direct HTTP/1 path applies these itself (`h1/`).
//! - [`drive`]: a connection served by hyper (HTTP/2, h2c, and HTTP/1 on listeners whose
//!   pools speak HTTP/2). Its requests are watched ([`Activity`]): with no stream open for
//!   `keepalive_timeout` it is closed (PINGs do not count), after `keepalive_requests` it is
//!   told to go away (GOAWAY, or `Connection: close`), and a client that resets streams it
//!   opened — more than [`RESET_FLOOD`] of them and more than a quarter of all — gets GOAWAY
//!   and a close (HTTP/2 "rapid reset", CVE-2023-44487, paced under hyper's own limit, as
//!   HAProxy counts such "glitches"). One timer per connection, not per request; counts are
//!   atomics.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Notify, watch};
use tokio::time::Instant;

use super::body::{BoxError, ProxyBody};
use super::stats::Counted;
use super::streams::Joined;
use super::{Site, Tunnels, handle, headers};
use crate::config::ClientLimits;
use crate::guard::{ConnPermit, ConnStats, Refused};

/// Streams a client may reset before the ratio is looked at.
pub const RESET_FLOOD: u32 = 100;

/// One accepted client connection: its place in the listener and its clock.
pub struct Life {
    pub permit: ConnPermit,
    pub accepted: Instant,
    pub header_timeout: Duration,
    pub keepalive_timeout: Duration,
    pub keepalive_requests: u32,
}

impl Life {
    pub fn new(permit: ConnPermit, accepted: Instant, limits: &ClientLimits) -> Life {
        // Waiting for its first bytes, a new connection is idle: a full listener may close it.
        permit.idle(accepted.into_std());
        Life {
            permit,
            accepted,
            header_timeout: limits.client_header_timeout,
            keepalive_timeout: limits.keepalive_timeout,
            keepalive_requests: limits.keepalive_requests,
        }
    }

    /// When the first request head must be whole.
    pub fn first_deadline(&self) -> Instant {
        self.accepted + self.header_timeout
    }

    /// The counters of the connection's listener.
    pub fn stats(&self) -> &ConnStats {
        self.permit.stats()
    }
}

/// At most this many refused clients are answered 503 at once (each for at most
/// [`LINGER`]); beyond that they are closed without a word.
const ANSWERING: usize = 64;
/// How long a refused client has to read its 503, and a keep-alive connection closed by a
/// stopping listener lingers (`h1::linger`).
pub(super) const LINGER: Duration = Duration::from_secs(1);
static ANSWERING_NOW: AtomicUsize = AtomicUsize::new(0);

/// Admit a connection accepted from `client` under `site`'s limits; `None`: it was refused
/// (answered or closed, counted, and a warning said at most every 10 s).
pub fn admit(
    site: &Arc<Site>,
    stream: tokio::net::TcpStream,
    client: SocketAddr,
    tls: bool,
) -> Option<(tokio::net::TcpStream, ConnPermit)> {
    match site.conns.admit(client.ip()) {
        Ok(permit) => Some((stream, permit)),
        Err(Refused::Listener) => {
            crate::warn_every!(
                Duration::from_secs(10),
                listener = %site.listener,
                "max_connections ({}) open and none idle: new connections closed",
                site.conns.max()
            );
            None
        }
        Err(Refused::Client) => {
            crate::warn_every!(
                Duration::from_secs(10),
                listener = %site.listener,
                %client,
                "max_connections_per_client ({}) open: refused",
                site.limits.max_connections_per_client
            );
            if !tls && ANSWERING_NOW.fetch_add(1, Ordering::Relaxed) < ANSWERING {
                tokio::spawn(busy_answer(stream, site.clone(), client));
            } else if !tls {
                ANSWERING_NOW.fetch_sub(1, Ordering::Relaxed);
            }
            None
        }
    }
}

/// 503 to a client over its connection limit, then a close once it has read it (or after
/// [`LINGER`]): what it sent is read and dropped, so the close is not a reset that would
/// take the answer with it. Counted and logged as the listener's answers no route took (its
/// request unread: `-`).
async fn busy_answer(mut stream: tokio::net::TcpStream, site: Arc<Site>, client: SocketAddr) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    const BODY: &str = "503 Service Unavailable: too many connections open\n\n";
    const ANSWER: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: text/plain\r\n\
retry-after: 1\r\ncontent-length: 52\r\nconnection: close\r\n\r\n\
503 Service Unavailable: too many connections open\n\n";
    let started = std::time::Instant::now();
    let _ = tokio::time::timeout(LINGER, async {
        stream.write_all(ANSWER).await?;
        super::stats::refused(
            &site,
            client,
            super::stats::Unread::NOTHING,
            503,
            BODY.len() as u64,
            started,
        );
        stream.shutdown().await?;
        let mut sink = [0u8; 1024];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
    ANSWERING_NOW.fetch_sub(1, Ordering::Relaxed);
}

/// The status hyper's HTTP/1 server answered before it ended a connection on a request head
/// it could not parse (its `on_error`: 414 for a target too long, 431 for a head too large,
/// 400 for the rest), if it did.
fn refused_by_hyper(e: &(dyn std::error::Error + 'static)) -> Option<u16> {
    let e = e.downcast_ref::<hyper::Error>()?;
    if !e.is_parse() || e.is_parse_status() || e.is_parse_version_h2() {
        return None;
    }
    // hyper tells a target too long from a head too large only in its message.
    let text = e.to_string();
    match () {
        _ if e.is_parse_too_large() && text.contains("URI") => Some(414),
        _ if e.is_parse_too_large() => Some(431),
        // Its own failure (no answer written).
        _ if text.contains("internal error") => None,
        _ => Some(400),
    }
}

/// What the requests of one hyper-served connection are doing, for [`drive`].
pub struct Activity {
    /// Requests being served (HTTP/2: streams open).
    active: AtomicU32,
    /// When `active` last fell to 0 (or the connection began), as milliseconds since
    /// `epoch`.
    idle_since: AtomicU64,
    requests: AtomicU32,
    /// Requests whose answer the client did not take whole (reset, or gone).
    resets: AtomicU32,
    /// Set when the connection should go: too many requests or resets.
    wake: Notify,
    /// Set when the last request open ends: the idle clock starts.
    idled: Notify,
    epoch: Instant,
    max_requests: u32,
    life: Life,
    served_one: AtomicBool,
}

impl Activity {
    fn new(life: Life) -> Arc<Activity> {
        Arc::new(Activity {
            active: AtomicU32::new(0),
            idle_since: AtomicU64::new(0),
            requests: AtomicU32::new(0),
            resets: AtomicU32::new(0),
            wake: Notify::new(),
            idled: Notify::new(),
            epoch: life.accepted,
            max_requests: life.keepalive_requests,
            life,
            served_one: AtomicBool::new(false),
        })
    }

    fn begin(self: &Arc<Self>) -> Stream {
        if self.active.fetch_add(1, Ordering::AcqRel) == 0 {
            self.life.permit.busy();
        }
        self.served_one.store(true, Ordering::Relaxed);
        if self.requests.fetch_add(1, Ordering::Relaxed) + 1 == self.max_requests {
            self.wake.notify_one();
        }
        Stream {
            activity: self.clone(),
            done: false,
        }
    }

    /// Whether the client reset so many of its streams that the connection must go.
    fn flooding(&self) -> bool {
        let resets = self.resets.load(Ordering::Relaxed);
        resets > RESET_FLOOD && resets * 4 > self.requests.load(Ordering::Relaxed)
    }

    fn idle_for(&self, now: Instant) -> Option<Duration> {
        if self.active.load(Ordering::Acquire) > 0 {
            return None;
        }
        let since = Duration::from_millis(self.idle_since.load(Ordering::Acquire));
        Some(now.saturating_duration_since(self.epoch + since))
    }
}

/// One request of a watched connection; dropped when its answer is done with.
struct Stream {
    activity: Arc<Activity>,
    /// The answer went out whole.
    done: bool,
}

impl Drop for Stream {
    fn drop(&mut self) {
        let a = &self.activity;
        if !self.done && a.resets.fetch_add(1, Ordering::Relaxed) + 1 > RESET_FLOOD && a.flooding()
        {
            a.wake.notify_one();
        }
        if a.active.fetch_sub(1, Ordering::AcqRel) == 1 {
            let now = Instant::now();
            let ms = now.saturating_duration_since(a.epoch).as_millis() as u64;
            a.idle_since.store(ms, Ordering::Release);
            a.life.permit.idle(now.into_std());
            a.idled.notify_one();
        }
    }
}

pin_project_lite::pin_project! {
    /// An answer's body, holding its request's [`Stream`] until the body is done with.
    pub struct Watched {
        #[pin]
        inner: Counted<ProxyBody>,
        stream: Option<Stream>,
    }
}

impl Body for Watched {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let r = this.inner.as_mut().poll_frame(cx);
        // Done once the last frame is out (hyper may not ask again after a body whose
        // length it knows has all come).
        let done = match &r {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            _ => false,
        };
        if done && let Some(mut s) = this.stream.take() {
            s.done = true;
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The service of one hyper-served client connection: [`handle`] with the listener's
/// current site, each request counted in `activity`; an upgrade carries the listener's
/// [`Tunnels`] so shutdown sees it.
fn service(
    site: Arc<ArcSwap<Site>>,
    client: SocketAddr,
    tunnels: Tunnels,
    activity: Arc<Activity>,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<Watched>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<Watched>, Infallible>> + Send,
> + Clone {
    service_fn(move |mut req: Request<Incoming>| {
        let site = site.load_full();
        let mut stream = activity.begin();
        // Only a WebSocket upgrade becomes a tunnel (issue 15.2); other requests skip the
        // extension map's allocation.
        // (HTTP/2 has no Upgrade: h2 refuses a request that carries one.)
        if req.version() != http::Version::HTTP_2 && headers::wants_websocket(req.headers()) {
            req.extensions_mut().insert(tunnels.clone());
        }
        // Boxed once here: hyper moves each request's future whole several times as it spawns
        // it (HTTP/2: into the connection's streams, streams.rs), and ours is large.
        let answer = Box::pin(handle(site, client, req));
        async move {
            let resp = answer.await;
            let empty = resp.body().is_end_stream();
            stream.done = empty;
            let stream = (!empty).then_some(stream);
            Ok::<_, Infallible>(resp.map(|inner| Watched { inner, stream }))
        }
    })
}

/// Serve one client connection with hyper (`site.hyper`: HTTP/1.1, h2c or HTTP/2 as the
/// stream says) under `life`'s limits, until it ends, the listener stops (`stopping`:
/// graceful, requests running finish) or a limit closes it. `sites` is the listener's
/// current site, `tunnels` its upgraded connections.
pub async fn drive<C>(
    io: C,
    client: SocketAddr,
    (sites, tunnels): (&Arc<ArcSwap<Site>>, &Tunnels),
    life: Life,
    mut stopping: watch::Receiver<bool>,
) where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let site = sites.load_full();
    let activity = Activity::new(life);
    let svc = service(sites.clone(), client, tunnels.clone(), activity.clone());
    let conn = site
        .hyper
        .serve_connection_with_upgrades(TokioIo::new(io), svc)
        .into_owned();
    drop(site);
    // HTTP/2 streams run in this task, polled before the connection writes (streams.rs).
    // Once `keepalive_requests` streams came, the GOAWAY is begun before they run, so that
    // it leaves ahead of their answers (and the client opens no more).
    let counted = activity.clone();
    let mut conn = Joined::new(conn, move |c: Pin<&mut _>| {
        let max = counted.max_requests;
        if max > 0 && counted.requests.load(Ordering::Relaxed) >= max {
            c.graceful_shutdown();
        }
    });
    let a = &activity;
    let life = &a.life;
    let stats = life.stats();
    let mut deadline = life.first_deadline();
    // Once told to go: a close by then, whatever is running.
    let mut going: Option<Instant> = None;
    let mut graceful = false;
    loop {
        tokio::select! {
            r = &mut conn => {
                if let Err(e) = r {
                    tracing::debug!(%client, "connection ended: {e}");
                    if let Some(status) = refused_by_hyper(&*e) {
                        // hyper answered a head it could not parse itself.
                        let started = match a.served_one.load(Ordering::Relaxed) {
                            true => std::time::Instant::now(),
                            false => life.accepted.into_std(),
                        };
                        let unread = super::stats::Unread::NOTHING;
                        super::stats::refused(&sites.load(), client, unread, status, 0, started);
                    }
                }
                return;
            }
            _ = stopping.changed(), if !graceful => {
                conn.conn().graceful_shutdown();
                graceful = true;
            }
            _ = tokio::time::sleep_until(going.unwrap_or(deadline)) => {
                if going.is_some() {
                    return;
                }
                let now = Instant::now();
                let (limit, counter) = if a.served_one.load(Ordering::Relaxed) {
                    (life.keepalive_timeout, &stats.idle_timeouts)
                } else {
                    (life.header_timeout, &stats.header_timeouts)
                };
                match a.idle_for(now) {
                    Some(idle) if idle >= limit || !a.served_one.load(Ordering::Relaxed) => {
                        ConnStats::count(counter);
                        tracing::debug!(%client, "closed: no request for {limit:?}");
                        conn.conn().graceful_shutdown();
                        graceful = true;
                        going = Some(now + Duration::from_secs(1));
                    }
                    Some(idle) => deadline = now + (limit - idle),
                    None => deadline = now + life.keepalive_timeout,
                }
            }
            _ = a.idled.notified(), if going.is_none() => {
                // No request open from now: closed after keepalive_timeout unless one comes
                // (the timer looks again when it fires).
                deadline = deadline.min(Instant::now() + life.keepalive_timeout);
            }
            _ = a.wake.notified() => {
                if a.flooding() {
                    ConnStats::count(&stats.reset_floods);
                    crate::warn_every!(
                        Duration::from_secs(10),
                        %client,
                        "closed: the client reset {} of its {} streams (HTTP/2 rapid reset?)",
                        a.resets.load(Ordering::Relaxed),
                        a.requests.load(Ordering::Relaxed)
                    );
                    conn.conn().graceful_shutdown();
                    graceful = true;
                    going = Some(Instant::now() + Duration::from_millis(100));
                } else if !graceful {
                    // keepalive_requests served: GOAWAY (HTTP/1.1: Connection: close).
                    conn.conn().graceful_shutdown();
                    graceful = true;
                }
            }
            _ = life.permit.reused(), if going.is_none() => {
                // Chosen to close for a new connection while idle; a request that came in
                // the same moment is finished first.
                conn.conn().graceful_shutdown();
                graceful = true;
                if a.active.load(Ordering::Acquire) == 0 {
                    going = Some(Instant::now() + Duration::from_secs(1));
                } else {
                    going = Some(Instant::now() + life.keepalive_timeout);
                }
            }
        }
    }
}

//! L7: HTTP/1.x and HTTP/2 (h2c, TLS h2) from clients; HTTP/1.1 or HTTP/2 to servers.
//!
//! `serve` accepts connections; each goes to the direct HTTP/1 path (`h1/`) when the site
//! takes it (it hands HTTP/2 to hyper itself), else to hyper's auto (h1/h2c) server, whose
//! requests go through [`handle`]: the request's own checks (its `Host`, its method, its
//! path normalised: `path.rs`), the listener's guard (`protect.rs`: access lists, block
//! rules, rate limits), the [`Router`] choosing an [`Upstream`] on the normalised path and
//! the route's guard, then [`forward`] picks a server and streams the exchange, and one
//! access-log line records the outcome.

pub mod attempt;
pub mod body;
pub mod budget;
pub mod forward;
pub mod forwarding;
pub mod h1;
pub mod headers;
pub mod life;
pub mod path;
pub mod protect;
pub mod proxy_in;
pub mod replay;
pub mod retry;
pub mod router;
pub mod stats;
pub mod sticky;
pub mod streams;
pub mod tls_serve;
pub mod trace;
pub mod transport;
pub mod tunnel;
pub mod upstream;
pub mod view;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::TokioTimer;
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, TcpStream};

pub use attempt::UpstreamInfo;
pub use body::ProxyBody;
pub use forward::{error_response, forward};
pub use router::{Route, RouteTarget, Router};
pub use tunnel::Tunnels;
pub use upstream::Upstream;

use crate::config::{Cidr, ClientLimits, ForwardHeaders};
use crate::error::ProxyError;
use crate::guard::ConnLimits;
use crate::shutdown::Shutdown;
use life::Life;
use transport::SendTimed;

/// Which code serves HTTP/1.x clients of a listener. HTTP/2 (h2c, TLS h2) always goes
/// through hyper.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Http1Engine {
    /// The direct path (`h1/`), for listeners whose pools all speak HTTP/1.1 to servers.
    #[default]
    Direct,
    /// hyper's server and client connections.
    Hyper,
}

/// Everything one HTTP listener needs to serve a request; swapped whole on reload.
pub struct Site {
    pub listener: String,
    /// `http` or `https`, for `X-Forwarded-Proto`.
    pub scheme: &'static str,
    pub router: Router,
    /// `redirect_https = true`: answer 308 to the https URL on this port (443 left out).
    pub redirect_https: Option<u16>,
    /// `Strict-Transport-Security` value added to answers (https listeners only).
    pub hsts: Option<http::HeaderValue>,
    /// `accept_proxy_protocol`: read a PROXY header first and take the client from it.
    pub proxy_in: Option<Arc<proxy_in::ProxyIn>>,
    /// HTTP/1.x clients take the direct path (`h1/`): the engine chosen is `Direct` and every
    /// pool this listener routes to speaks HTTP/1.1 to its servers.
    pub direct: bool,
    /// `allow` / `deny`, `[[listener.block]]`, `[[listener.limit]]`: checked before routing.
    pub guard: protect::Guard,
    /// The peers whose `X-Forwarded-For` says who the client is, and whose forwarding
    /// headers are kept (`trusted_proxies` on a listener that reads no PROXY header).
    pub trusted: Vec<Cidr>,
    /// `forward_headers`.
    pub forward_headers: ForwardHeaders,
    /// The listener's port (for `X-Forwarded-Port`).
    pub port: u16,
    /// Timeouts and sizes (`config::ClientLimits`); connections take the timeouts in force
    /// when they were accepted.
    pub limits: ClientLimits,
    /// The open connections (kept across reloads that keep `max_connections`).
    pub conns: Arc<ConnLimits>,
    /// hyper's connection settings, made from `limits` ([`conn_builder`]).
    pub hyper: Arc<auto::Builder<streams::StreamExec>>,
    /// The listener's counters (kept across reloads).
    pub stats: Arc<stats::HttpStats>,
    /// The access log.
    pub log: Arc<crate::observe::sink::AccessLog>,
}

impl Site {
    /// Whether every pool this site can route to speaks HTTP/1.1 to its servers.
    pub fn all_pools_h1(&self) -> bool {
        let h1 = |u: &Arc<Upstream>| !u.transport().protocol.is_h2();
        self.router.default.iter().all(h1)
            && self.router.routes.iter().all(|r| match &r.target {
                RouteTarget::Pool(p) => h1(p),
                RouteTarget::Split { pools, .. } => pools.iter().all(h1),
            })
    }
}

/// Serve one request.
pub async fn handle(
    site: Arc<Site>,
    client: SocketAddr,
    mut req: Request<Incoming>,
) -> Response<stats::Counted<ProxyBody>> {
    let started = Instant::now();
    slash_before_query(&mut req);
    let too_big = head_too_big(&site.limits, &req);
    let method = req.method().clone();
    // The response speaks the client's hop, whatever the server spoke: an HTTP/1.0 server
    // must not turn off the client's keep-alive (hyper still answers a 1.0 client in 1.0).
    let (version, protocol) = match req.version() {
        http::Version::HTTP_2 => (http::Version::HTTP_2, "HTTP/2.0"),
        http::Version::HTTP_10 => (http::Version::HTTP_11, "HTTP/1.0"),
        _ => (http::Version::HTTP_11, "HTTP/1.1"),
    };
    let logging = site.log.enabled();
    // The target is written only in the access log: not copied when it is off. A failure's
    // log line gets it from `info.uri` (set where the request failed, so that a request
    // that does not fail copies nothing).
    let target = match req.uri().path_and_query() {
        Some(pq) if logging => bytes::Bytes::copy_from_slice(pq.as_str().as_bytes()),
        _ => bytes::Bytes::from_static(b"/"),
    };
    let header = |name: &http::HeaderName| {
        req.headers()
            .get(name)
            .map_or_else(Vec::new, |v| v.as_bytes().to_vec())
    };
    let (referer, user_agent) = if logging {
        (
            header(&http::header::REFERER),
            header(&http::header::USER_AGENT),
        )
    } else {
        (Vec::new(), Vec::new())
    };
    let host = if logging {
        view::RequestView::host(&req).map_or_else(Vec::new, |h| h.as_bytes().to_vec())
    } else {
        Vec::new()
    };
    let mut info = UpstreamInfo {
        trace: trace::Trace::asked(&site, &req).map(Arc::new),
        ..UpstreamInfo::default()
    };
    let (pool, row, result) = match checked(&site, &req) {
        Err(e) => {
            info.uri = Some(req.uri().clone());
            (None, site.router.none_row.clone(), Err(e))
        }
        Ok(()) if site.redirect_https.is_some() => {
            let port = site.redirect_https.unwrap_or(443);
            return tls_serve::redirect(&site, client, &req, port).map(stats::Counted::uncounted);
        }
        // Refused before routing: counted with the answers no route took.
        Ok(()) => match too_big {
            Some(status) => (
                None,
                site.router.none_row.clone(),
                Ok(refused(&site, client, &req, status)),
            ),
            None => route_and_forward(&site, client, req, &mut info).await,
        },
    };
    let pool_name = pool.as_ref().map_or("-", |p| p.pool.name.as_str());
    let server_name = info.server.as_ref().map_or("-", |s| s.name.as_str());
    let resp = match result {
        Ok(resp) => resp,
        Err(e) => {
            let uri = info.uri.take().unwrap_or_default();
            if e.is_refusal() {
                tracing::debug!(listener = %site.listener, %client, "{method} {uri}: {e}");
            } else {
                log_failure(&site.listener, pool_name, server_name, &e, &method, &uri);
            }
            let mut resp = error_response(&e);
            // A request refused for what it is (its Host, its method, its path) ends its
            // HTTP/1 connection, as on the direct path.
            let closes = matches!(
                e,
                ProxyError::BadRequest(_)
                    | ProxyError::MethodNotAllowed(_)
                    | ProxyError::NotImplemented(_)
            );
            if closes && version != http::Version::HTTP_2 {
                resp.headers_mut().insert(
                    http::header::CONNECTION,
                    http::HeaderValue::from_static("close"),
                );
            }
            resp
        }
    };
    let mut resp = tls_serve::with_hsts(site.hsts.as_ref(), resp);
    if let Some(t) = &info.trace {
        resp.headers_mut().insert(trace::HEADER, t.header_value());
    }
    *resp.version_mut() = version;
    let pending = stats::Pending {
        site: site.clone(),
        row,
        client,
        method,
        target,
        protocol,
        host,
        referer,
        user_agent,
        status: resp.status().as_u16(),
        body_bytes: 0,
        upstream: info.server.as_ref().map(|s| s.addr),
        attempts: info.attempts,
        upstream_connect: info.connect,
        upstream_header: info.header,
        started,
    };
    let (parts, body) = resp.into_parts();
    Response::from_parts(parts, stats::Counted::new(body, pending))
}

/// An absolute-form target with a query and no path (`GET http://a?q`) goes on as `/?q`
/// (RFC 9112 §3.2.2: an empty path is `/` in the origin form), as on the direct path; the
/// target of everything else is left as it came.
fn slash_before_query<B>(req: &mut Request<B>) {
    let Some(pq) = req.uri().path_and_query() else {
        return;
    };
    // HTTP/2's `:path` must start with `/` (refused in `checked`); its scheme is always there.
    let h1 = req.version() != http::Version::HTTP_2;
    if !h1 || !pq.as_str().starts_with('?') || req.uri().scheme().is_none() {
        return;
    }
    let mut parts = req.uri().clone().into_parts();
    parts.path_and_query = format!("/{}", pq.as_str()).parse().ok();
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *req.uri_mut() = uri;
    }
}

/// What a request must be before anything else looks at it: its host (one, valid, the one
/// of `:authority` on HTTP/2; required on HTTP/1.1), on HTTP/2 a `:path` that starts with
/// `/`, `*` only with `OPTIONS`, a method we carry (no `CONNECT`), a
/// body framing we can pass on whole (no transfer coding but `chunked`).
fn checked<B>(site: &Site, req: &Request<B>) -> Result<(), ProxyError> {
    let bad = |why: &'static str| {
        tracing::debug!(listener = %site.listener, "refused: {why}");
        Err(ProxyError::BadRequest(why.into()))
    };
    if req.method() == http::Method::CONNECT {
        return Err(ProxyError::MethodNotAllowed("CONNECT is not proxied"));
    }
    // The asterisk-form target (RFC 9112 §3.2.4; HTTP/2's `:path` of `*`, RFC 9113 §8.3.1).
    if req.uri().path() == "*" && req.method() != http::Method::OPTIONS {
        return bad("the asterisk-form target is for OPTIONS only");
    }
    let h2 = req.version() == http::Version::HTTP_2;
    // RFC 9113 §8.3.1: `:path` is an origin-form target (or `*` for OPTIONS); h2 takes any
    // (`?x`), which routing would read as `/` and a server as something else (nginx: 400).
    let target = req.uri().path_and_query().map_or("", |pq| pq.as_str());
    if h2 && !target.starts_with('/') && target != "*" {
        return bad("a :path not starting with /");
    }
    // RFC 9112 §3.2: an HTTP/1 target is origin-form (`/…`), absolute-form (a scheme, then
    // its authority: checked below), or `*`; hyper also takes `admin` or `?q`, which routing
    // would read as no path at all and a server as something else (nginx: 400).
    if !h2 && req.uri().scheme().is_none() && !target.starts_with('/') && target != "*" {
        return bad("a target not starting with /");
    }
    let h = req.headers();
    let mut hosts = h.get_all(http::header::HOST).iter();
    let host = hosts.next();
    if hosts.next().is_some() {
        return bad("more than one Host");
    }
    let authority = req.uri().authority().map(|a| a.as_str().as_bytes());
    match (authority, host) {
        // RFC 9113 §8.3.1: a Host that names another entity than :authority makes the
        // request malformed (refused rather than replaced: one of them lies). For an
        // absolute-form HTTP/1.1 target the target wins (RFC 9112 §3.2.2) and Host is
        // replaced when forwarded.
        (Some(a), Some(host)) if h2 && !a.eq_ignore_ascii_case(host.as_bytes()) => {
            return bad("Host differs from :authority");
        }
        (Some(a), _) if !headers::valid_host(a) => return bad("invalid host in the target"),
        (None, Some(host)) if !headers::valid_host(host.as_bytes()) => {
            return bad("invalid Host");
        }
        (None, None) if h2 || req.version() == http::Version::HTTP_11 => {
            return bad("no Host");
        }
        _ => {}
    }
    if !headers::only_chunked(
        h.get_all(http::header::TRANSFER_ENCODING)
            .iter()
            .map(|v| v.as_bytes()),
    ) {
        return Err(ProxyError::NotImplemented(
            "a transfer coding other than chunked",
        ));
    }
    Ok(())
}

/// The listener's guard, the route (on the normalised path), the route's guard, then
/// [`forward`]; with the pool and the row the answer is counted in (the row of answers no
/// route took when refused before routing).
async fn route_and_forward(
    site: &Site,
    peer: SocketAddr,
    req: Request<Incoming>,
    info: &mut UpstreamInfo,
) -> (
    Option<Arc<Upstream>>,
    Arc<stats::Row>,
    Result<Response<ProxyBody>, ProxyError>,
) {
    let none = || site.router.none_row.clone();
    // Only a trusted peer's `X-Forwarded-For` is read (the list names the client).
    let trusted = !site.trusted.is_empty() && protect::trusted(&site.trusted, peer.ip());
    let client = if trusted {
        static XFF: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");
        protect::real_client(
            peer.ip(),
            &site.trusted,
            req.headers().get_all(&XFF).iter().map(|v| v.as_bytes()),
        )
    } else {
        peer.ip()
    };
    // A refusal's log line names the target (`handle`).
    let failed = |info: &mut UpstreamInfo, e| {
        info.uri = Some(req.uri().clone());
        Err(e)
    };
    let raw = req.uri().path().as_bytes();
    let mut buf = Vec::new();
    let normal = match path::normalise(raw, &mut buf) {
        Ok(n) => n,
        Err(e) => {
            let bad = ProxyError::BadRequest(e.reason().into());
            return (None, none(), failed(info, bad));
        }
    };
    if let Err(e) = site.guard.check(&req, client, raw, normal) {
        return (None, none(), failed(info, e));
    }
    let routed = site.router.route_row(&req, normal);
    let row = routed.row.clone();
    let Some(up) = routed.pool.cloned() else {
        return (None, row, failed(info, ProxyError::NoRoute));
    };
    if let Err(e) = routed.guard.check(&req, client, raw, normal) {
        return (Some(up), row, failed(info, e));
    }
    if let Some(t) = &info.trace {
        t.note(format!(
            "pool {} ({})",
            up.pool.name,
            up.pool.algorithm.as_str()
        ));
    }
    if body_too_big(&site.limits, routed.max_body, &req) {
        let resp = refused(site, peer, &req, StatusCode::PAYLOAD_TOO_LARGE);
        return (Some(up), row, Ok(resp));
    }
    let max_body = match routed.max_body.unwrap_or(site.limits.client_max_body_size) {
        0 => u64::MAX,
        n => n,
    };
    let r = forward(&up, req, peer, client, trusted, site, max_body, info).await;
    (Some(up), row, r)
}

/// Say that a request failed: a WARN line for each failure on the server's side or ours;
/// one per 10 s (with a count of the rest) for the client's (a bad request, a body over
/// the limit, a client too slow), which a flood sends by the thousand.
pub(crate) fn log_failure(
    listener: &str,
    pool: &str,
    server: &str,
    e: &ProxyError,
    method: &dyn std::fmt::Display,
    uri: &dyn std::fmt::Display,
) {
    if e.side() == crate::error::Side::Downstream {
        crate::warn_every!(
            Duration::from_secs(10),
            listener,
            pool,
            server,
            cause = e.kind(),
            "{method} {uri}: {e}"
        );
    } else {
        tracing::warn!(
            listener,
            pool,
            server,
            cause = e.kind(),
            "{method} {uri}: {e}"
        );
    }
}

/// Whether a request head is over the listener's limits: 414 for the target, 431 for the
/// fields, their count or the whole head (its size as HTTP/1.1 writes it). hyper refuses
/// much longer heads itself; HTTP/2 heads are bounded by `max_header_list_size` too.
fn head_too_big<B>(limits: &ClientLimits, req: &Request<B>) -> Option<StatusCode> {
    let target = req.uri().path_and_query().map_or(0, |pq| pq.as_str().len());
    if target > limits.max_uri_size {
        return Some(StatusCode::URI_TOO_LONG);
    }
    let fields = req.headers();
    if fields.len() > limits.max_headers {
        return Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE);
    }
    let line = req.method().as_str().len() + target + 12;
    let size = fields
        .iter()
        .fold(line, |n, (k, v)| n + k.as_str().len() + v.len() + 4);
    (size > limits.max_header_size).then_some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
}

/// Whether a request's declared body is over its route's `client_max_body_size` (`max`)
/// or else the listener's (0: none).
fn body_too_big<B: http_body::Body>(
    limits: &ClientLimits,
    max: Option<u64>,
    req: &Request<B>,
) -> bool {
    let max = max.unwrap_or(limits.client_max_body_size);
    max > 0
        && req
            .body()
            .size_hint()
            .exact()
            .or_else(|| {
                let v = req.headers().get(http::header::CONTENT_LENGTH)?;
                v.to_str().ok()?.parse().ok()
            })
            .is_some_and(|n| n > max)
}

/// An answer of our own to a request over a limit (the connection closes after it, its
/// body unread); [`handle`] counts and logs it as any other.
fn refused<B>(
    site: &Site,
    client: SocketAddr,
    req: &Request<B>,
    status: StatusCode,
) -> Response<ProxyBody> {
    let reason = status.canonical_reason().unwrap_or("Error");
    let mut resp = Response::new(body::full(format!("{} {reason}\n", status.as_u16())));
    *resp.status_mut() = status;
    if req.version() != http::Version::HTTP_2 {
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    tracing::debug!(listener = %site.listener, %client, "refused: {status}");
    resp
}

/// Accept connections on `listener` and serve them with the current `site` until `shutdown`
/// fires; then stop accepting (serving what the kernel already queued, unless the socket
/// lives on elsewhere: see [`crate::proxy::listen::last_accepts`]) and give open connections
/// `grace` to finish. Idle keep-alive connections are closed at once; a connection with a
/// request running closes after its answer.
pub async fn serve(
    listener: Arc<TcpListener>,
    site: Arc<ArcSwap<Site>>,
    shutdown: Shutdown,
    grace: Duration,
) {
    let l = h1::Listener {
        site,
        tunnels: Tunnels::default(),
        direct: h1::DirectConns::default(),
    };
    loop {
        tokio::select! {
            accepted = accept(&listener, &l) => {
                match accepted {
                    Ok((stream, client)) => start(&l, stream, client),
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        crate::warn_every!(Duration::from_secs(10), "accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            _ = shutdown.stopped() => break,
        }
    }
    for (stream, client) in crate::proxy::listen::last_accepts(&listener) {
        start(&l, stream, client);
    }
    drop(listener);
    drain(&l, grace).await;
}

/// The next connection, once the listener has room ([`ConnLimits::room`], waited for at
/// most [`ROOM_WAIT`]; then the connection is accepted and the limits decide).
pub(crate) async fn accept(
    listener: &TcpListener,
    l: &h1::Listener,
) -> std::io::Result<(TcpStream, SocketAddr)> {
    let conns = l.site.load().conns.clone();
    let _ = tokio::time::timeout(ROOM_WAIT, conns.room()).await;
    listener.accept().await
}

/// The longest an accept loop waits for room before it accepts anyway.
const ROOM_WAIT: Duration = Duration::from_millis(200);

/// Start serving one accepted cleartext connection: a PROXY header first when the site
/// takes one (the connection is admitted under the limits with the client it names), then
/// [`serve_connection`].
fn start(l: &h1::Listener, stream: TcpStream, client: SocketAddr) {
    let accepted = tokio::time::Instant::now();
    let _ = stream.set_nodelay(true);
    let site = l.site.load();
    if let Some(policy) = site.proxy_in.clone() {
        proxy_in::spawn_cleartext(policy, stream, client, l.clone(), accepted);
        return;
    }
    let Some((stream, permit)) = life::admit(&site, stream, client, false) else {
        return;
    };
    let life = Life::new(permit, accepted, &site.limits);
    let io = SendTimed::new(stream, site.limits.send_timeout);
    tokio::spawn(serve_connection(io, client, l.clone(), life));
}

/// One accepted cleartext connection: the direct path when the site takes it (it hands
/// HTTP/2 to hyper itself), else hyper's auto (h1/h2c) server.
pub(crate) async fn serve_connection<C>(io: C, client: SocketAddr, l: h1::Listener, life: Life)
where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = stats::CountedIo::new(io, &l.site.load().stats);
    let (_open, stopping) = l.direct.track();
    if l.site.load().direct {
        return h1::serve(io, client, &l, life, stopping).await;
    }
    life::drive(io, client, (&l.site, &l.tunnels), life, stopping).await;
}

/// After the listener closed: let open connections and tunnels finish within `grace`
/// (nginx keeps WebSocket connections through a graceful shutdown too), then close the rest.
pub(crate) async fn drain(l: &h1::Listener, grace: Duration) {
    let tunnels = &l.tunnels;
    // Connections first: a request upgrading now spawns its tunnel before its connection
    // is done, so once they are all done no tunnel can be added.
    let both = async {
        l.direct.finish().await;
        tunnels.idle().await;
    };
    if tokio::time::timeout(grace, both).await.is_err() {
        tracing::warn!(
            tunnels = tunnels.open(),
            "grace period of {grace:?} over; closing the remaining connections"
        );
        tunnels.cut();
    }
}

/// The connection settings of a listener, cleartext or TLS, from its `limits`: HTTP/1.1
/// keep-alive with a header deadline and head limits, and HTTP/2 with limits against the
/// known floods: at most 256 streams per connection, `max_header_size` of headers, and a
/// GOAWAY (ENHANCE_YOUR_CALM) for a client that resets streams faster than we accept them
/// (CVE-2023-44487 "rapid reset") or makes us reset many; resets paced slower than that are
/// counted per connection by [`life::drive`]. SETTINGS floods are bounded by h2 itself: it
/// reads no further frame until the previous SETTINGS is acknowledged.
pub fn conn_builder(limits: &ClientLimits) -> auto::Builder<streams::StreamExec> {
    let mut builder = auto::Builder::new(streams::StreamExec);
    builder
        .http1()
        .timer(TokioTimer::new())
        // A backstop: `life::drive` closes (and counts) a connection over its header or
        // keep-alive timeout first.
        .header_read_timeout(limits.client_header_timeout + Duration::from_secs(1))
        .max_headers(limits.max_headers)
        // Room past the limits, so that hyper reads a head a little over them whole and
        // `handle` answers as the direct path does (414 for the target, 431 for the rest);
        // much longer ones hyper refuses itself, with the same statuses.
        .max_buf_size((2 * limits.max_header_size).max(128 * 1024))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(limits.max_header_size as u32)
        .max_pending_accept_reset_streams(50)
        .max_local_error_reset_streams(256)
        .max_send_buf_size(1024 * 1024)
        .keep_alive_interval(Duration::from_secs(60))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

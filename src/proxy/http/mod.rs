//! L7: HTTP/1.x and HTTP/2 (h2c, TLS h2) from clients; HTTP/1.1 or HTTP/2 to servers.
//!
//! `serve` accepts connections; each goes to the direct HTTP/1 path (`h1/`) when the site
//! takes it (it hands HTTP/2 to hyper itself), else to hyper's auto (h1/h2c) server, whose
//! requests go through [`handle`]: the [`Router`] chooses an [`Upstream`], [`forward`] picks
//! a server and streams the exchange, and one access-log line records the outcome.

pub mod attempt;
pub mod body;
pub mod budget;
pub mod forward;
pub mod h1;
pub mod headers;
pub mod proxy_in;
pub mod replay;
pub mod retry;
pub mod router;
pub mod stats;
pub mod sticky;
pub mod tls_serve;
pub mod transport;
pub mod tunnel;
pub mod upstream;
pub mod view;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::{TcpListener, TcpStream};

pub use attempt::UpstreamInfo;
pub use body::ProxyBody;
pub use forward::{error_response, forward};
pub use router::{Route, RouteTarget, Router};
pub use tunnel::Tunnels;
pub use upstream::Upstream;

use crate::error::ProxyError;
use crate::shutdown::Shutdown;

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
    req: Request<Incoming>,
) -> Response<ProxyBody> {
    if let Some(port) = site.redirect_https {
        return tls_serve::redirect(&site, client, &req, port);
    }
    let started = Instant::now();
    let method = req.method().clone();
    let uri = req.uri().clone();
    // The response speaks the client's hop, whatever the server spoke: an HTTP/1.0 server
    // must not turn off the client's keep-alive (hyper still answers a 1.0 client in 1.0).
    let (version, protocol) = match req.version() {
        http::Version::HTTP_2 => (http::Version::HTTP_2, "HTTP/2.0"),
        http::Version::HTTP_10 => (http::Version::HTTP_11, "HTTP/1.0"),
        _ => (http::Version::HTTP_11, "HTTP/1.1"),
    };
    let logging = site.log.enabled();
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
    let mut info = UpstreamInfo::default();
    let (routed, row) = site.router.route_row(&req);
    let (routed, row) = (routed.cloned(), row.clone());
    let (pool, result) = match routed {
        None => (None, Err(ProxyError::NoRoute)),
        Some(up) => {
            let r = forward(&up, req, client, site.scheme, &mut info).await;
            (Some(up), r)
        }
    };
    let pool_name = pool.as_ref().map_or("-", |p| p.pool.name.as_str());
    let server_name = info.server.as_ref().map_or("-", |s| s.name.as_str());
    let resp = match result {
        Ok(resp) => resp,
        Err(e) => {
            tracing::warn!(
                listener = %site.listener,
                pool = pool_name,
                server = server_name,
                cause = e.kind(),
                "{method} {uri}: {e}"
            );
            error_response(&e)
        }
    };
    let mut resp = tls_serve::with_hsts(site.hsts.as_ref(), resp);
    *resp.version_mut() = version;
    let target = uri.path_and_query().map_or_else(
        || bytes::Bytes::from_static(b"/"),
        |pq| bytes::Bytes::copy_from_slice(pq.as_str().as_bytes()),
    );
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
    Response::from_parts(parts, body::boxed(stats::Counted::new(body, pending)))
}

/// Accept connections on `listener` and serve them with the current `site` until `shutdown`
/// fires; then stop accepting (serving what the kernel already queued, unless the socket
/// lives on elsewhere: see [`crate::proxy::listen::last_accepts`]) and give open connections
/// `grace` to finish. Idle keep-alive connections are closed at once (hyper's graceful
/// shutdown); a connection with a request running closes after its answer.
pub async fn serve(
    listener: Arc<TcpListener>,
    site: Arc<ArcSwap<Site>>,
    shutdown: Shutdown,
    grace: Duration,
) {
    let graceful = GracefulShutdown::new();
    let l = h1::Listener {
        site,
        tunnels: Tunnels::default(),
        direct: h1::DirectConns::default(),
        hyper: Arc::new(conn_builder()),
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((stream, client)) => start(&l, &graceful, stream, client),
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            _ = shutdown.stopped() => break,
        }
    }
    for (stream, client) in crate::proxy::listen::last_accepts(&listener) {
        start(&l, &graceful, stream, client);
    }
    drop(listener);
    drain(graceful, &l, grace).await;
}

/// Start serving one accepted cleartext connection: a PROXY header first when the site
/// takes one, then [`serve_connection`].
fn start(l: &h1::Listener, graceful: &GracefulShutdown, stream: TcpStream, client: SocketAddr) {
    let _ = stream.set_nodelay(true);
    if let Some(policy) = l.site.load().proxy_in.clone() {
        proxy_in::spawn_cleartext(policy, stream, client, l.clone(), graceful.watcher());
        return;
    }
    tokio::spawn(serve_connection(
        stream,
        client,
        l.clone(),
        graceful.watcher(),
    ));
}

/// One accepted cleartext connection: the direct path when the site takes it (it hands
/// HTTP/2 to hyper itself), else hyper's auto (h1/h2c) server.
pub(crate) async fn serve_connection<C>(
    io: C,
    client: SocketAddr,
    l: h1::Listener,
    watcher: hyper_util::server::graceful::Watcher,
) where
    C: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let io = stats::CountedIo::new(io, &l.site.load().stats);
    if l.site.load().direct {
        return h1::serve(io, client, l, watcher).await;
    }
    let svc = service(l.site.clone(), client, l.tunnels.clone());
    let conn = l
        .hyper
        .serve_connection_with_upgrades(TokioIo::new(io), svc)
        .into_owned();
    if let Err(e) = watcher.watch(conn).await {
        tracing::debug!(%client, "connection ended: {e}");
    }
}

/// The service of one client connection: [`handle`] with the listener's current site; each
/// request carries the listener's [`Tunnels`] so an upgrade is kept where shutdown sees it.
pub(crate) fn service(
    site: Arc<ArcSwap<Site>>,
    client: SocketAddr,
    tunnels: Tunnels,
) -> impl hyper::service::Service<
    Request<Incoming>,
    Response = Response<ProxyBody>,
    Error = Infallible,
    Future = impl Future<Output = Result<Response<ProxyBody>, Infallible>> + Send,
> + Clone {
    service_fn(move |mut req: Request<Incoming>| {
        let site = site.load_full();
        // Only an upgrade becomes a tunnel; other requests skip the extension map's allocation.
        if headers::wants_upgrade(req.headers()) {
            req.extensions_mut().insert(tunnels.clone());
        }
        // Boxed once here: hyper moves each request's future whole several times as it spawns
        // it (HTTP/2: a task per stream), and ours is large.
        let answer = Box::pin(handle(site, client, req));
        async move { Ok::<_, Infallible>(answer.await) }
    })
}

/// After the listener closed: let open connections and tunnels finish within `grace`
/// (nginx keeps WebSocket connections through a graceful shutdown too), then close the rest.
pub(crate) async fn drain(graceful: GracefulShutdown, l: &h1::Listener, grace: Duration) {
    let tunnels = &l.tunnels;
    // Connections first: a request upgrading now spawns its tunnel before its connection
    // is done, so once they are all done no tunnel can be added.
    let both = async {
        tokio::join!(graceful.shutdown(), l.direct.finish());
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

/// The connection settings of every listener, cleartext or TLS: HTTP/1.1 keep-alive with a
/// header deadline, and HTTP/2 with limits against the known floods: at most 256 streams per
/// connection, 64 KiB of headers, and a GOAWAY (ENHANCE_YOUR_CALM) for a client that resets
/// streams faster than we accept them (CVE-2023-44487 "rapid reset") or makes us reset many.
/// SETTINGS floods are bounded by h2 itself: it reads no further frame until the previous
/// SETTINGS is acknowledged.
pub(crate) fn conn_builder() -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(30))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(256)
        .max_header_list_size(64 * 1024)
        .max_pending_accept_reset_streams(50)
        .max_local_error_reset_streams(256)
        .max_send_buf_size(1024 * 1024)
        .keep_alive_interval(Duration::from_secs(60))
        .keep_alive_timeout(Duration::from_secs(20));
    builder
}

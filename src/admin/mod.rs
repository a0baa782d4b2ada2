//! The admin listener: Switchyard's own endpoints for orchestrators, keepalived, Prometheus
//! and people.
//!
//! - `GET /health/live`: 200 while the process serves at all.
//! - `GET /health/ready`: 200 when the configuration is loaded, the listeners are bound (the
//!   admin listener starts after them) and every pool has at least one usable server; else
//!   503 naming the pools without one, or 503 "draining" once a shutdown has begun. The body
//!   lists each server's state.
//! - `GET /metrics`: every counter, in the Prometheus text format (`metrics.rs`).
//! - `GET /status`: pools, servers and listeners with their state and counters, as JSON
//!   (`status.rs`).
//! - `GET /`: the dashboard, a page for people compiled into the binary (`dashboard/`).
//! - `/api/…`: the JSON admin API that changes pools and reloads the configuration
//!   (`api.rs`); its writes go to the runtime's control task, one at a time.
//!
//! Everything here reads a [`View`] of the running configuration, which the runtime replaces
//! whole after every change, and the live atomics of servers and listeners behind it.

pub mod api;
pub mod catalog;
pub mod client;
mod dashboard;
mod explain;
mod metrics;
pub mod readiness;
mod status;

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::SystemTime;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::{TcpListener, TcpStream};

use crate::config::{Plan, Protocol};
use crate::proxy::http::Upstream;
use crate::proxy::http::proxy_in::ProxyInStats;
use crate::proxy::tcp::TcpStats;
use crate::proxy::udp::UdpStats;
use crate::shutdown::Shutdown;
use crate::upstream::Pool;

/// What the admin listener shares with the runtime: the current view, the readiness
/// switch, and where API writes go.
pub struct State {
    /// The running configuration as the endpoints show it; replaced whole by every change.
    pub view: ArcSwap<View>,
    /// Set when a shutdown begins: `/health/ready` answers 503, so a balancer or
    /// orchestrator in front takes this instance out while it still serves.
    pub draining: AtomicBool,
    /// The runtime's control task, for API writes; `None` makes the API read-only.
    pub control: Option<api::Control>,
}

/// The running configuration as the admin endpoints see it.
pub struct View {
    pub plan: Arc<Plan>,
    /// The running pools, in the plan's order.
    pub pools: Vec<Arc<Upstream>>,
    /// The running listeners, in the plan's order.
    pub listeners: Vec<AdminListener>,
    /// The admin listener's bound address.
    pub admin_addr: Option<SocketAddr>,
    /// The link to Redis (`[redis]`), for its counters.
    pub cluster: Option<Arc<crate::cluster::Cluster>>,
    pub config: Loaded,
    pub reloads: Arc<Reloads>,
    /// The access log, for its counters.
    pub access_log: Arc<crate::observe::sink::AccessLog>,
}

impl Default for View {
    /// Nothing running yet.
    fn default() -> View {
        View {
            plan: Arc::new(Plan {
                workers: 1,
                grace_period: Default::default(),
                shutdown_delay: Default::default(),
                listeners: Vec::new(),
                pools: Vec::new(),
                admin: None,
                redis: None,
                log: Default::default(),
            }),
            pools: Vec::new(),
            listeners: Vec::new(),
            admin_addr: None,
            cluster: None,
            config: Loaded {
                path: None,
                sha256: None,
                at: SystemTime::now(),
                overrides: 0,
            },
            reloads: Default::default(),
            access_log: Default::default(),
        }
    }
}

/// Where the running configuration came from.
#[derive(Debug, Clone)]
pub struct Loaded {
    /// The config file, when there is one (a plan made in code has none).
    pub path: Option<String>,
    /// SHA-256 of the file as last loaded, in hex (`sha256sum FILE` prints the same).
    pub sha256: Option<String>,
    /// When the running configuration was last applied (start, reload or API change).
    pub at: SystemTime,
    /// Operator changes made over the API and kept on top of the file.
    pub overrides: usize,
}

/// Reload outcomes since start.
#[derive(Debug, Default)]
pub struct Reloads {
    pub ok: AtomicU64,
    pub failed: AtomicU64,
    /// Whether the last reload took (true before any).
    pub last_failed: AtomicBool,
}

impl Reloads {
    /// Count one reload.
    pub fn count(&self, ok: bool) {
        let c = if ok { &self.ok } else { &self.failed };
        c.fetch_add(1, Ordering::Relaxed);
        self.last_failed.store(!ok, Ordering::Relaxed);
    }
}

/// A running listener as the admin endpoints show it.
pub struct AdminListener {
    pub name: String,
    pub protocol: Protocol,
    pub addr: SocketAddr,
    pub stats: ListenerStats,
    /// The site an `http` / `https` listener serves (as its accept loop reads it), for
    /// `GET /api/explain`.
    pub site: Option<Arc<arc_swap::ArcSwap<crate::proxy::http::Site>>>,
    /// The certificates an `https` listener serves now (swapped on reload), for their
    /// expiry metric.
    pub certs: Option<Arc<crate::tls::SniResolver>>,
}

/// The counters a listener keeps, by protocol.
pub enum ListenerStats {
    /// `http` / `https`: PROXY header counters when it accepts the header, and its open
    /// connections with what its limits and timeouts closed.
    Http {
        proxy_in: Option<Arc<ProxyInStats>>,
        /// Connections, bytes, TLS handshakes, and the answers by route, pool and code.
        http: Arc<crate::proxy::http::stats::HttpStats>,
        /// Its limits: connections open and refused, timeouts, HTTP/2 reset floods.
        conns: Arc<crate::guard::ConnLimits>,
    },
    Tcp(Arc<TcpStats>),
    Udp(Arc<UdpStats>),
}

/// Serve the admin endpoints on `listener` until `shutdown` fires (with every other
/// listener, after the shutdown delay). At most `limits.max_connections` are open (more are
/// closed at once); a connection must send each request head within
/// `limits.client_header_timeout` (from the accept, or from the end of the last answer),
/// so silent connections cannot take the admin port.
pub async fn serve(
    listener: Arc<TcpListener>,
    state: Arc<State>,
    shutdown: Shutdown,
    limits: crate::config::AdminLimits,
) {
    let conns = crate::guard::ConnLimits::new(limits.max_connections, 0);
    let start = |stream: TcpStream, peer: SocketAddr| {
        let Ok(permit) = conns.admit(peer.ip()) else {
            crate::warn_every!(
                std::time::Duration::from_secs(10),
                "admin: max_connections ({}) open: new connections closed",
                limits.max_connections
            );
            return;
        };
        let state = state.clone();
        let svc = service_fn(move |req| {
            let state = state.clone();
            async move { Ok::<_, Infallible>(respond(&state, req, peer).await) }
        });
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let conn = http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.client_header_timeout)
                .serve_connection(TokioIo::new(stream), svc);
            tokio::select! {
                _ = conn => {}
                _ = stop.stopped() => {}
            }
        });
    };
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                match accepted {
                    Ok((stream, peer)) => start(stream, peer),
                    Err(e) => {
                        crate::warn_every!(std::time::Duration::from_secs(10), "admin: accept failed: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(50)).await
                    }
                }
            }
            _ = shutdown.stopped() => break,
        }
    }
    for (stream, peer) in crate::proxy::listen::last_accepts(&listener) {
        start(stream, peer);
    }
}

/// The answer to one admin request: the API, or one of the read-only endpoints.
async fn respond(state: &State, req: Request<Incoming>, peer: SocketAddr) -> Response<Full<Bytes>> {
    if req.uri().path().starts_with("/api/") || req.uri().path() == "/api" {
        return api::answer(state, req, peer).await;
    }
    answer(state, &req)
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    typed(status, "text/plain; charset=utf-8", body)
}

fn typed(
    status: StatusCode,
    content_type: &'static str,
    body: impl Into<Bytes>,
) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(body.into()));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    r.headers_mut().insert(
        header::CACHE_CONTROL,
        header::HeaderValue::from_static("no-store"),
    );
    r
}

/// The read-only endpoints (the API has its own routes, in `api.rs`). A new one is a
/// variant, a line in [`Endpoint::of`] and an arm in [`answer`].
enum Endpoint {
    Live,
    Ready,
    Metrics,
    Status,
    /// The dashboard's page and its files.
    Page(dashboard::Asset),
}

impl Endpoint {
    fn of(path: &str) -> Option<Endpoint> {
        Some(match path {
            "/health/live" => Endpoint::Live,
            "/health/ready" => Endpoint::Ready,
            "/metrics" => Endpoint::Metrics,
            "/status" => Endpoint::Status,
            _ => Endpoint::Page(dashboard::asset(path)?),
        })
    }
}

/// The answer to a request for one of the read-only endpoints.
pub fn answer<B>(state: &State, req: &Request<B>) -> Response<Full<Bytes>> {
    let Some(endpoint) = Endpoint::of(req.uri().path()) else {
        return text(
            StatusCode::NOT_FOUND,
            "not found; try / (the dashboard), /health/live, /health/ready, /metrics, /status or /api/pools\n"
                .into(),
        );
    };
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into());
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    let view = state.view.load();
    match endpoint {
        Endpoint::Live => text(StatusCode::OK, "live\n".into()),
        Endpoint::Metrics => typed(
            StatusCode::OK,
            crate::observe::metrics::CONTENT_TYPE,
            metrics::render(&view),
        ),
        Endpoint::Status => typed(
            StatusCode::OK,
            "application/json",
            status::render(&view, state.draining.load(Ordering::Relaxed)),
        ),
        Endpoint::Page(a) => {
            let mut r = typed(StatusCode::OK, a.content_type, a.body);
            let h = r.headers_mut();
            h.insert(
                header::CONTENT_SECURITY_POLICY,
                header::HeaderValue::from_static(dashboard::CONTENT_SECURITY_POLICY),
            );
            h.insert(
                header::X_CONTENT_TYPE_OPTIONS,
                header::HeaderValue::from_static("nosniff"),
            );
            h.insert(
                header::X_FRAME_OPTIONS,
                header::HeaderValue::from_static("DENY"),
            );
            r
        }
        Endpoint::Ready if state.draining.load(Ordering::Relaxed) => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: draining (shutting down: still serving until shutdown_delay ends, then no new connections)\n".into(),
        ),
        Endpoint::Ready => {
            let (ready, body) = readiness(view.pools.iter().map(|u| &u.pool));
            text(
                if ready {
                    StatusCode::OK
                } else {
                    StatusCode::SERVICE_UNAVAILABLE
                },
                body,
            )
        }
    }
}

/// Whether every pool has a usable server, and a report of every server's state.
pub fn readiness<'a>(pools: impl IntoIterator<Item = &'a Arc<Pool>>) -> (bool, String) {
    let mut body = String::new();
    let mut empty = Vec::new();
    for p in pools {
        if !p.has_available() {
            empty.push(p.name.as_str());
        }
        for s in p.servers() {
            let _ = write!(
                body,
                "pool={} server={} addr={} state={}",
                p.name,
                s.name,
                s.addr,
                s.health_state().as_str()
            );
            if s.admin_state() != crate::upstream::AdminState::Ready {
                let _ = write!(body, " admin={}", s.admin_state().as_str());
            }
            if let Some(c) = s.last_check() {
                let ago = c.at.elapsed().unwrap_or_default();
                let _ = write!(
                    body,
                    " last_check={} ({}, {}ms ago)",
                    if c.pass { "pass" } else { "fail" },
                    c.detail,
                    ago.as_millis()
                );
            }
            body.push('\n');
        }
    }
    let head = if empty.is_empty() {
        "ready\n".to_string()
    } else {
        format!(
            "not ready: no usable server in pool(s) {}\n",
            empty.join(", ")
        )
    };
    (empty.is_empty(), head + &body)
}

/// The admin listener's bound address, for logs.
pub fn describe(addr: SocketAddr) -> String {
    format!(
        "admin endpoints on http://{addr}: / (the dashboard), /health/live, /health/ready, /metrics, /status, /api/pools"
    )
}

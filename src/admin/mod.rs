//! The admin listener: Switchyard's own endpoints for orchestrators, keepalived, Prometheus
//! and people.
//!
//! - `GET /health/live`: 200 while the process serves at all.
//! - `GET /health/ready`: 200 when the configuration is loaded, the listeners are bound (the
//!   admin listener starts after them) and every pool has at least one usable server; else
//!   503 naming the pools without one. The body lists each server's state.
//! - `GET /metrics`: every counter, in the Prometheus text format (`metrics.rs`).
//! - `GET /status`: pools, servers and listeners with their state and counters, as JSON
//!   (`status.rs`).
//!
//! It reads pools and listener counters only; it never changes them.

mod metrics;
pub mod probe;
mod status;

use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

use crate::config::Protocol;
use crate::proxy::http::Upstream;
use crate::proxy::http::proxy_in::ProxyInStats;
use crate::proxy::tcp::TcpStats;
use crate::proxy::udp::UdpStats;
use crate::shutdown::Shutdown;
use crate::upstream::Pool;

/// What the admin endpoints look at: the running pools (with their sticky state) and
/// listeners (with their counters): pools by name (as the plan holds them), listeners in
/// the order the runtime started them (TCP-based ones, then UDP).
pub struct AdminState {
    pub pools: Vec<Arc<Upstream>>,
    pub listeners: Vec<AdminListener>,
    /// Fired once the process is shutting down: `/health/ready` then answers 503, so a
    /// balancer or orchestrator in front takes this instance out while it drains.
    pub draining: Shutdown,
}

/// A running listener as the admin endpoints show it.
pub struct AdminListener {
    pub name: String,
    pub protocol: Protocol,
    pub addr: SocketAddr,
    pub stats: ListenerStats,
}

/// The counters a listener keeps, by protocol.
pub enum ListenerStats {
    /// `http` / `https`: PROXY header counters when it accepts the header.
    Http {
        proxy_in: Option<Arc<ProxyInStats>>,
    },
    Tcp(Arc<TcpStats>),
    Udp(Arc<UdpStats>),
}

fn load(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(std::sync::atomic::Ordering::Relaxed)
}

/// Serve the admin endpoints on `listener` until `shutdown` fires (after the
/// listeners have drained, so readiness can say "draining" meanwhile).
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, shutdown: Shutdown) {
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else {
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                };
                let state = state.clone();
                let svc = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(answer(&state, &req)) }
                });
                let stop = shutdown.clone();
                tokio::spawn(async move {
                    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = stop.stopped() => {}
                    }
                });
            }
            _ = shutdown.stopped() => return,
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    typed(status, "text/plain; charset=utf-8", body)
}

fn typed(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
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

/// The answer to one admin request.
pub fn answer(state: &AdminState, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    if !matches!(
        path,
        "/health/live" | "/health/ready" | "/metrics" | "/status"
    ) {
        return text(
            StatusCode::NOT_FOUND,
            "not found; try /health/live, /health/ready, /metrics or /status\n".into(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into());
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    match path {
        "/health/live" => return text(StatusCode::OK, "live\n".into()),
        "/metrics" => {
            return typed(
                StatusCode::OK,
                crate::observe::metrics::CONTENT_TYPE,
                metrics::render(state),
            );
        }
        "/status" => {
            return typed(StatusCode::OK, "application/json", status::render(state));
        }
        _ => {}
    }
    if state.draining.is_stopped() {
        return text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: draining (shutting down, no new connections)\n".into(),
        );
    }
    let (ready, body) = readiness(state.pools.iter().map(|u| &u.pool));
    text(
        if ready {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        body,
    )
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
    format!("admin endpoints on http://{addr}: /health/live, /health/ready, /metrics, /status")
}

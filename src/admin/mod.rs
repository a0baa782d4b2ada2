//! The admin listener: Switchyard's own endpoints for orchestrators and keepalived.
//!
//! - `GET /health/live`: 200 while the process serves at all.
//! - `GET /health/ready`: 200 when the configuration is loaded, the listeners are bound (the
//!   admin listener starts after them) and every pool has at least one usable server; else
//!   503 naming the pools without one. The body lists each server's state.
//!
//! It reads pools only; it never changes them.

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
use tokio::sync::watch;

use crate::upstream::Pool;

/// What the admin endpoints look at.
pub struct AdminState {
    pub pools: Vec<Arc<Pool>>,
}

/// Serve the admin endpoints on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    state: Arc<AdminState>,
    mut shutdown: watch::Receiver<bool>,
) {
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
                let mut stop = shutdown.clone();
                tokio::spawn(async move {
                    let conn = http1::Builder::new().serve_connection(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        _ = crate::proxy::http::stopped(&mut stop) => {}
                    }
                });
            }
            _ = crate::proxy::http::stopped(&mut shutdown) => return,
        }
    }
}

fn text(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("text/plain; charset=utf-8"),
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
    if !matches!(path, "/health/live" | "/health/ready") {
        return text(
            StatusCode::NOT_FOUND,
            "not found; try /health/live or /health/ready\n".into(),
        );
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        let mut r = text(StatusCode::METHOD_NOT_ALLOWED, "use GET\n".into());
        r.headers_mut()
            .insert(header::ALLOW, header::HeaderValue::from_static("GET, HEAD"));
        return r;
    }
    if path == "/health/live" {
        return text(StatusCode::OK, "live\n".into());
    }
    let (ready, body) = readiness(&state.pools);
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
pub fn readiness(pools: &[Arc<Pool>]) -> (bool, String) {
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
    format!("admin endpoints on http://{addr}/health/live and /health/ready")
}

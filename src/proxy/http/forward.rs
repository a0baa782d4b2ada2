//! Forwarding one request: rewrite headers, then (through the retry loop of `retry.rs`)
//! send it to a server and hand back the response with its body still streaming.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64};

use http::header::{self, HeaderValue};
use http::{Request, Response, Version};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;

use super::Site;
use super::attempt::{HyperExchange, Prepared, UpstreamInfo};
use super::body::{ClientBody, ProxyBody, boxed, full};
use super::forwarding::Forwarding;
use super::headers::{join_cookies, strip_hop_by_hop, wants_websocket};
use super::replay::{ReplayBody, is_grpc, kept_up_to};
use super::retry::{PickHints, retry_loop};
use super::tunnel::Tunnels;
use super::upstream::Upstream;
use super::view::hash_key;
use crate::error::ProxyError;
use crate::upstream::Server;

/// Send `req` to a server of `up` and return its response, body streaming. Stickiness
/// chooses the first server when the pool has it; failed tries move on to other servers
/// as the pool's retry policy allows (`retry.rs`). `peer` is the connection's client,
/// `client` who the client is (the same, or what a trusted proxy says), `trusted` whether
/// the peer is one of the listener's `trusted_proxies`. A body of known length up to
/// `replay::kept_up_to(limits)` is read before a server is chosen (retries, request
/// buffering); past `max_body` bytes (`client_max_body_size`; `u64::MAX`: none) the request
/// fails with 413.
#[allow(clippy::too_many_arguments)]
pub async fn forward(
    up: &Upstream,
    mut req: Request<Incoming>,
    peer: SocketAddr,
    client: IpAddr,
    trusted: bool,
    site: &Site,
    max_body: u64,
    info: &mut UpstreamInfo,
) -> Result<Response<ProxyBody>, ProxyError> {
    let pool = &up.pool;
    let scheme = site.scheme;
    let limits = &site.limits;
    let key = hash_key(&pool.hash_key, &req).map(<[u8]>::to_vec);
    let stick = match up.sticky() {
        Some(s) => Some(s.lookup(&req, client, tokio::time::Instant::now()).await),
        None => None,
    };

    // Only a WebSocket upgrade may become a tunnel (issue 15.2): another offer (`h2c`) is
    // dropped with the other hop-by-hop headers and the request goes on as a plain one.
    // (HTTP/2 has no Upgrade: h2 refuses a request that carries `Connection` or `Upgrade`.)
    let from_h2 = req.version() == Version::HTTP_2;
    let upgrading = !from_h2 && wants_websocket(req.headers());
    if upgrading && up.transport().protocol.is_h2() {
        // HTTP/2 has no Upgrade: forwarded without it, the request would quietly become a
        // plain one.
        info.uri = Some(req.uri().clone());
        return Err(ProxyError::UpgradeToH2 {
            pool: pool.name.clone(),
            protocol: up.transport().protocol.as_str(),
        });
    }
    let tunnels = req.extensions().get::<Tunnels>().cloned();
    let downstream_upgrade = upgrading.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    strip_hop_by_hop(&mut parts.headers, upgrading);
    // We answer `Expect: 100-continue` ourselves (hyper sends 100 when the body is first
    // read, which is when a server is ready for it); the server sees a plain request.
    parts.headers.remove(header::EXPECT);
    // The host the request was routed on is the one the server sees: an HTTP/2 request's
    // :authority, or the authority of an absolute-form target (RFC 9112 §3.2.2), replaces
    // the `Host` line (an HTTP/2 `host` that differs was refused before routing). The target
    // keeps it until a try writes the head: as bytes to an HTTP/1.1 server, with no copy
    // (`h1/client.rs`), or `Prepared::parts_for_hyper` moves it into the fields.
    if from_h2 && !up.transport().protocol.is_h2() {
        join_cookies(&mut parts.headers);
    }
    // The forwarding headers are written by each try, as bytes or into its fields
    // (`forwarding.rs`); the host they may name is read then.
    let fwd = Forwarding {
        peer: peer.ip(),
        client,
        trusted,
        scheme,
        host: None,
        port: site.port,
        set: site.forward_headers,
    };
    parts.version = Version::HTTP_11;
    let method = parts.method.clone();
    // Keep small bodies for a retry when a retry could happen, and when the listener
    // buffers requests.
    let keep = if upgrading {
        0
    } else {
        kept_up_to(limits, pool.retry.attempts > 0)
    };
    // A request without a body (GET) has nothing to time out, nothing to keep: no
    // allocation for it.
    let (mut body, client_stalled, body_over) = if http_body::Body::is_end_stream(&body) {
        (ReplayBody::Empty, None, None)
    } else {
        let client_stalled = Arc::new(AtomicBool::new(false));
        let body_over = Arc::new(AtomicU64::new(0));
        let body = boxed(
            ClientBody::new(body, pool.timeouts.client_body, client_stalled.clone())
                .with_max(max_body, body_over.clone()),
        );
        let unknown = limits.request_buffering && !upgrading && !is_grpc(&parts.headers);
        let body = match ReplayBody::read(body, keep, unknown).await {
            Ok(body) => body,
            Err(e) => {
                info.uri = Some(parts.uri);
                return Err(e);
            }
        };
        (body, Some(client_stalled), Some(body_over))
    };
    let prepared = Prepared {
        parts,
        fwd,
        client_stalled,
        body_over,
        tunnels,
    };
    let ask = PickHints {
        client: SocketAddr::new(client, peer.port()),
        hash_key: key.as_deref(),
        method: &method,
        preferred: stick.as_ref().and_then(|l| l.preferred.clone()),
        trace: info.trace.clone(),
    };
    let (result, server) = run(up, &prepared, &mut body, downstream_upgrade, ask, info).await;
    let mut resp = match result {
        Ok(resp) => resp,
        Err(e) => {
            info.uri = Some(prepared.parts.uri);
            return Err(e);
        }
    };
    if let (Some(sticky), Some(lookup), Some(server)) = (up.sticky(), &stick, &server) {
        sticky.after(
            lookup,
            server,
            resp.headers_mut(),
            scheme == "https",
            tokio::time::Instant::now(),
        );
    }
    Ok(resp)
}

/// The client's answer when a request cannot be served.
pub fn error_response(e: &ProxyError) -> Response<ProxyBody> {
    let status = e.status();
    let mut text = format!(
        "{} {}\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    if let Some(detail) = e.client_detail() {
        text.push_str(&detail);
        text.push('\n');
    }
    let mut resp = Response::new(full(text));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    if let Some(secs) = e.retry_after() {
        h.insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
}

/// Send the prepared request, with failover; returns the final outcome and the server that
/// produced it.
pub async fn run(
    up: &Upstream,
    prepared: &Prepared,
    body: &mut ReplayBody,
    downstream_upgrade: Option<OnUpgrade>,
    ask: PickHints<'_>,
    info: &mut UpstreamInfo,
) -> (Result<Response<ProxyBody>, ProxyError>, Option<Arc<Server>>) {
    let upgrading = downstream_upgrade.is_some();
    let max_tries = if upgrading {
        1
    } else {
        1 + up.pool.retry.attempts
    };
    if up.pool.retry.on.grpc_unavailable && max_tries > 1 && is_grpc(&prepared.parts.headers) {
        body.tee();
    }
    let mut ex = HyperExchange {
        up,
        prepared,
        body,
        downstream_upgrade,
        info,
    };
    retry_loop(up, &ask, max_tries, &mut ex).await
}

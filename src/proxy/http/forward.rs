//! Forwarding one request: rewrite headers, then (through the retry loop of `retry.rs`)
//! send it to a server and hand back the response with its body still streaming.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use super::body::{ClientBody, ClientBodyTimeout, ProxyBody, Sending, UpstreamBody, boxed, full};
use super::headers::{add_forwarding, remove_hop_by_hop, wants_upgrade};
use super::retry::{self, PickHints, ReplayBody};
use super::tunnel::Tunnels;
use super::upstream::Upstream;
use super::view::RequestView;
use crate::config::{HashKey, HostHeader};
use crate::error::ProxyError;
use crate::upstream::Server;

/// What the access log wants to know about the upstream side of a request.
#[derive(Debug, Default)]
pub struct UpstreamInfo {
    pub server: Option<Arc<Server>>,
    pub attempts: u32,
    pub connect: Option<Duration>,
    pub header: Option<Duration>,
}

/// The bytes a hashing pool hashes for this request; `None` means the client address.
pub fn hash_key<'r>(key: &HashKey, req: &'r impl RequestView) -> Option<&'r [u8]> {
    match key {
        HashKey::ClientIp => None,
        HashKey::Uri => Some(req.path_and_query().as_bytes()),
        HashKey::Header(name) => req.header_values(name).next(),
        HashKey::Cookie(name) => req.cookie(name).map(str::as_bytes),
        HashKey::Query(name) => req.query().and_then(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_bytes())
        }),
    }
}

/// The request head as every try sends it (hop-by-hop headers gone, forwarding headers
/// added); `attempt` clones it per server.
pub struct Prepared {
    pub parts: http::request::Parts,
    /// Turns true when the client stalled sending its body (`timeouts.client_body`).
    pub client_stalled: Arc<AtomicBool>,
    /// Where upgraded connections are kept, so shutdown waits for them.
    pub tunnels: Option<Tunnels>,
}

/// Send `req` to a server of `up` and return its response, body streaming. Stickiness
/// chooses the first server when the pool has it; failed tries move on to other servers
/// as the pool's retry policy allows (`retry.rs`).
pub async fn forward(
    up: &Upstream,
    mut req: Request<Incoming>,
    client: SocketAddr,
    scheme: &'static str,
    info: &mut UpstreamInfo,
) -> Result<Response<ProxyBody>, ProxyError> {
    let pool = &up.pool;
    let key = hash_key(&pool.hash_key, &req).map(<[u8]>::to_vec);
    let now = tokio::time::Instant::now();
    let stick = up.sticky().map(|s| s.lookup(&req, client.ip(), now));

    let upgrading = wants_upgrade(req.headers());
    if upgrading && up.transport().protocol.is_h2() && asks_websocket(req.headers()) {
        // HTTP/2 has no Upgrade: forwarded without it, the request would quietly become a
        // plain one. Other upgrades (`h2c`) are offers a server may ignore, so they go on.
        return Err(ProxyError::UpgradeToH2 {
            pool: pool.name.clone(),
            protocol: up.transport().protocol.as_str(),
        });
    }
    let tunnels = req.extensions().get::<Tunnels>().cloned();
    let downstream_upgrade = upgrading.then(|| hyper::upgrade::on(&mut req));
    let (mut parts, body) = req.into_parts();
    super::transport::strip_hop_by_hop(&mut parts.headers, upgrading);
    // We answer `Expect: 100-continue` ourselves (hyper sends 100 when the body is first
    // read, which is when a server is ready for it); the server sees a plain request.
    parts.headers.remove(header::EXPECT);
    if !parts.headers.contains_key(header::HOST)
        && let Some(authority) = parts.uri.authority()
        && let Ok(v) = HeaderValue::from_str(authority.as_str())
    {
        // An HTTP/2 request carries its host in :authority; HTTP/1.1 needs Host.
        parts.headers.insert(header::HOST, v);
    }
    add_forwarding(&mut parts.headers, client.ip(), scheme);
    // Origin form (`/path?query`) for the server, without parsing the target again.
    let mut target = http::uri::Parts::default();
    target.path_and_query = Some(
        parts
            .uri
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
    );
    parts.uri = http::Uri::from_parts(target)
        .map_err(|_| ProxyError::BadRequest("bad request target".into()))?;
    parts.version = Version::HTTP_11;
    let method = parts.method.clone();
    // Keep small bodies for a retry only when a retry could happen.
    let keep = !upgrading && pool.retry.attempts > 0;
    let client_stalled = Arc::new(AtomicBool::new(false));
    // A request without a body (GET) has nothing to time out.
    let body = if http_body::Body::is_end_stream(&body) {
        boxed(body)
    } else {
        boxed(ClientBody::new(
            body,
            pool.timeouts.client_body,
            client_stalled.clone(),
        ))
    };
    let mut body = ReplayBody::read(body, keep).await?;
    let prepared = Prepared {
        parts,
        client_stalled,
        tunnels,
    };
    let ask = PickHints {
        client,
        hash_key: key.as_deref(),
        method: &method,
        preferred: stick.as_ref().and_then(|l| l.preferred.clone()),
    };
    let (result, server) =
        retry::run(up, &prepared, &mut body, downstream_upgrade, ask, info).await;
    let mut resp = result?;
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

/// Whether `Upgrade` offers WebSocket (among other protocols, perhaps).
fn asks_websocket(headers: &http::HeaderMap) -> bool {
    headers
        .get_all(header::UPGRADE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim().eq_ignore_ascii_case("websocket"))
}

/// One try: send the prepared request to `server` and return its response, body
/// streaming. The body is taken only once a connection is open, so a connect failure
/// leaves it for the next server.
pub async fn attempt(
    up: &Upstream,
    server: &Arc<Server>,
    prepared: &Prepared,
    body: &mut ReplayBody,
    downstream_upgrade: &mut Option<hyper::upgrade::OnUpgrade>,
    info: &mut UpstreamInfo,
) -> Result<Response<ProxyBody>, ProxyError> {
    let pool = &up.pool;
    info.server = Some(server.clone());
    info.attempts += 1;
    let in_flight = server.begin();
    let started = Instant::now();
    // The body is handed over only once a connection exists, so a failed connect leaves it
    // whole for the next server.
    let request = |body: &mut ReplayBody| {
        let mut parts = prepared.parts.clone();
        if pool.host_header == HostHeader::Upstream
            && let Ok(v) = HeaderValue::from_str(&server.addr.to_string())
        {
            parts.headers.insert(header::HOST, v);
        }
        Request::from_parts(parts, body.for_send())
    };
    if up.transport().protocol.is_h2() {
        let sent = super::body::UploadProgress::new();
        let make = {
            let sent = sent.clone();
            move || request(body).map(|b| boxed(Sending::sliced(b, sent, super::body::H2_SLICE)))
        };
        return super::transport::forward_h2(
            up, server, prepared, make, &sent, in_flight, started, info,
        )
        .await;
    }
    let mut conn = up.conns().checkout(server).await?;
    info.connect = Some(conn.connect_time);
    let sent = super::body::UploadProgress::new();
    let upstream_req = request(body).map(|b| boxed(Sending::new(b, sent.clone())));

    let read_timeout = pool.timeouts.read;
    let send_timeout = pool.timeouts.send;
    let timed_out = |after| ProxyError::Timeout {
        server: server.name.clone(),
        after,
    };
    let sent_head = response_head(
        conn.sender.try_send_request(upstream_req),
        &sent,
        read_timeout,
        // HTTP/1.1: every socket write is timed already (`SendTimed`), byte by byte.
        None,
    );
    let mut resp = match sent_head.await {
        HeadWait::ReadTimeout => return Err(timed_out(read_timeout)),
        HeadWait::SendStalled => return Err(timed_out(send_timeout)),
        HeadWait::Done(Err(mut e)) => {
            // A kept-alive connection the server had just closed: the request was not sent,
            // so it goes again on a fresh connection to the same server.
            match e.take_message() {
                Some(again) if conn.reused => {
                    conn = up.conns().connect(server).await?;
                    info.connect = Some(conn.connect_time);
                    let again = conn.sender.send_request(again);
                    match response_head(again, &sent, read_timeout, None).await {
                        HeadWait::ReadTimeout => return Err(timed_out(read_timeout)),
                        HeadWait::SendStalled => return Err(timed_out(send_timeout)),
                        HeadWait::Done(Err(e)) => {
                            return Err(exchange_error(server, &e, prepared, pool));
                        }
                        HeadWait::Done(Ok(r)) => r,
                    }
                }
                _ => return Err(exchange_error(server, e.error(), prepared, pool)),
            }
        }
        HeadWait::Done(Ok(r)) => r,
    };
    let header_time = started.elapsed();
    info.header = Some(header_time);
    server.record_latency(header_time);

    let switching = resp.status() == StatusCode::SWITCHING_PROTOCOLS;
    if switching && let Some(downstream) = downstream_upgrade.take() {
        let upstream = hyper::upgrade::on(&mut resp);
        let tunnel = super::tunnel::run(
            downstream,
            upstream,
            in_flight,
            up.transport().tunnel_idle_timeout,
        );
        match &prepared.tunnels {
            Some(t) => t.spawn(tunnel),
            None => {
                tokio::spawn(tunnel);
            }
        }
        let (mut parts, _) = resp.into_parts();
        remove_hop_by_hop(&mut parts.headers, true);
        return Ok(Response::from_parts(parts, full(Bytes::new())));
    }
    up.conns().checkin(server, conn.sender);
    let (mut parts, body) = resp.into_parts();
    super::transport::strip_hop_by_hop(&mut parts.headers, false);
    Ok(Response::from_parts(
        parts,
        boxed(UpstreamBody::new(body, in_flight, read_timeout)),
    ))
}

/// How waiting for a response head ended.
pub(super) enum HeadWait<T> {
    Done(T),
    /// `timeouts.read` passed after the request was sent.
    ReadTimeout,
    /// The body made no progress for `timeouts.send` while not waiting on the client: the
    /// connection is not taking it.
    SendStalled,
}

/// Wait for the response head of a request whose body tells `sent` when it has gone: while
/// the body is being sent, the client's pauses are bounded by `timeouts.client_body` and the
/// connection's by `send` (a socket that takes no bytes, an HTTP/2 server that opens no
/// window); then at most `read`, as nginx starts `proxy_read_timeout` once the request is
/// sent.
pub(super) async fn response_head<F: Future>(
    send: F,
    sent: &super::body::UploadProgress,
    read: Duration,
    stall_limit: Option<Duration>,
) -> HeadWait<F::Output> {
    tokio::pin!(send);
    loop {
        let check = stall_limit.unwrap_or(Duration::MAX);
        tokio::select! {
            biased;
            r = &mut send => return HeadWait::Done(r),
            () = sent.wait() => break,
            () = tokio::time::sleep(check / 4), if stall_limit.is_some() => {
                if sent.stalled_for().is_some_and(|d| d >= check) {
                    return HeadWait::SendStalled;
                }
            }
        }
    }
    match tokio::time::timeout(read, send).await {
        Ok(r) => HeadWait::Done(r),
        Err(_) => HeadWait::ReadTimeout,
    }
}

/// A failed exchange with `server`, by cause: the client stalled sending its body (408, not
/// the server's fault), the server took no bytes for `timeouts.send` (504), or the server
/// closed, reset or answered garbage (502).
pub(super) fn exchange_error(
    server: &Server,
    e: &hyper::Error,
    prepared: &Prepared,
    pool: &crate::upstream::Pool,
) -> ProxyError {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if let Some(t) = s.downcast_ref::<ClientBodyTimeout>() {
            return ProxyError::ClientTimeout(t.0);
        }
        source = s.source();
    }
    if prepared.client_stalled.load(Ordering::Relaxed) {
        return ProxyError::ClientTimeout(pool.timeouts.client_body);
    }
    if e.is_user() {
        // Our side of the exchange failed: the request body, which is the client's (it
        // closed or reset mid-upload). Not the server's fault, so no passive failure.
        let cause = std::error::Error::source(e).map_or_else(|| e.to_string(), |s| s.to_string());
        return ProxyError::ClientAborted(cause);
    }
    if super::transport::is_send_timeout(e) {
        return ProxyError::Timeout {
            server: server.name.clone(),
            after: pool.timeouts.send,
        };
    }
    let mut cause = e.to_string();
    if let Some(source) = std::error::Error::source(e) {
        cause = format!("{cause}: {source}");
    }
    ProxyError::Upstream {
        server: server.name.clone(),
        cause,
    }
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
    if status == StatusCode::SERVICE_UNAVAILABLE {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

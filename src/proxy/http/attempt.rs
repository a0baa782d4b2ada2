//! One try of a request on hyper's engine, and the interface every engine's tries share.
//!
//! [`Exchange`] is what the retry loop (`retry.rs`) drives: one try on a server, and whether
//! the request can go again; [`Answer`] is what it judges. [`HyperExchange`] is hyper's:
//! [`attempt`] sends the prepared request to an HTTP/1.1 server over the direct path's
//! connections (`h1/client.rs`, with its resend-once rule and its failures classified
//! there), a WebSocket upgrade over hyper's HTTP/1.1 client (`upstream.rs`'s `ConnPool`),
//! or to its server's HTTP/2 connection ([`forward_h2`]); for these two, with the
//! resend-once rule for a kept-alive connection that closed before the request left, a
//! failure classified where it happens ([`exchange_error`]). The direct HTTP/1 path's tries
//! are in `h1/exchange.rs`.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Method, Request, Response, StatusCode, Version};
use hyper::body::Incoming;

use super::body::{
    AtEnd, BodyOverLimit, ClientBodyTimeout, ProxyBody, Sending, UpstreamBody, boxed, full,
};
use super::forwarding::{self, Forwarding};
use super::headers::{
    drop_length_beside_coding, only_chunked, remove_hop_by_hop, strip_hop_by_hop,
};
use super::replay::{ReplayBody, grpc_unavailable};
use super::tunnel::Tunnels;
use super::upstream::Upstream;
use crate::config::HostHeader;
use crate::error::ProxyError;
use crate::upstream::{InFlight, Server};

/// Methods that may be sent twice without harm (RFC 9110 §9.2.2).
pub fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

/// What the retry loop needs of an answer to judge it.
pub trait Answer {
    fn status(&self) -> u16;
    /// A trailers-only gRPC answer with status UNAVAILABLE.
    fn grpc_unavailable(&self) -> bool;
}

impl<B> Answer for Response<B> {
    fn status(&self) -> u16 {
        Response::status(self).as_u16()
    }
    fn grpc_unavailable(&self) -> bool {
        grpc_unavailable(self.headers())
    }
}

/// One request as the retry loop sends it: a try on a server, and whether it can go again.
pub trait Exchange {
    type Answer: Answer;
    /// One try on `server`, whose place (`in_flight`) the retry loop took.
    fn attempt(
        &mut self,
        server: &Arc<Server>,
        in_flight: InFlight,
    ) -> impl Future<Output = Result<Self::Answer, ProxyError>> + Send;
    /// After a failed try: whether the request (its body) can still be sent again.
    fn replayable(&mut self) -> bool;
}

pub struct HyperExchange<'a, 'i> {
    pub up: &'a Upstream,
    pub prepared: &'a Prepared,
    pub body: &'a mut ReplayBody,
    pub downstream_upgrade: Option<hyper::upgrade::OnUpgrade>,
    pub info: &'i mut UpstreamInfo,
}

impl Exchange for HyperExchange<'_, '_> {
    type Answer = Response<ProxyBody>;

    fn attempt(
        &mut self,
        server: &Arc<Server>,
        in_flight: InFlight,
    ) -> impl Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send {
        attempt(
            self.up,
            server,
            in_flight,
            self.prepared,
            self.body,
            &mut self.downstream_upgrade,
            self.info,
        )
    }

    fn replayable(&mut self) -> bool {
        self.body.settle();
        self.body.available()
    }
}

/// What the access log wants to know about the upstream side of a request.
#[derive(Debug, Default)]
pub struct UpstreamInfo {
    pub server: Option<Arc<Server>>,
    /// The request asked for a trace of its balancing (`trace.rs`).
    pub trace: Option<Arc<super::trace::Trace>>,
    pub attempts: u32,
    pub connect: Option<Duration>,
    pub header: Option<Duration>,
    /// The target of a request that failed, for its log line: copied where it failed, so
    /// that one that does not fail copies nothing.
    pub uri: Option<http::Uri>,
}

/// The request head as every try sends it (hop-by-hop headers gone; the target as the
/// client gave it, its authority the host the server sees; the forwarding headers written
/// by each try, `fwd`): as bytes to an HTTP/1.1 server (`h1/client.rs`), else through
/// [`Prepared::parts_for_hyper`], a copy per try.
pub struct Prepared {
    pub parts: http::request::Parts,
    /// What the forwarding headers say (`host`: read from the request when written).
    pub fwd: Forwarding<'static>,
    /// Turns true when the client stalled sending its body (`timeouts.client_body`).
    pub client_stalled: Option<Arc<AtomicBool>>,
    /// Set to `client_max_body_size` when the request body went past it (413).
    pub body_over: Option<Arc<std::sync::atomic::AtomicU64>>,
    /// Where upgraded connections are kept, so shutdown waits for them.
    pub tunnels: Option<Tunnels>,
}

impl Prepared {
    /// The head for hyper's clients (HTTP/2 servers, WebSocket upgrades): the target's
    /// authority as `Host`, the target in origin form (`/path?query`), the forwarding
    /// headers rewritten (`forwarding.rs`).
    pub fn parts_for_hyper(&self) -> http::request::Parts {
        let mut parts = self.parts.clone();
        if let Some(authority) = parts.uri.authority()
            && let Ok(v) = HeaderValue::from_str(authority.as_str())
        {
            parts.headers.insert(header::HOST, v);
        }
        let mut target = http::uri::Parts::default();
        target.path_and_query = Some(
            (parts.uri.path_and_query().cloned())
                .unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")),
        );
        parts.uri = http::Uri::from_parts(target).unwrap_or_else(|_| http::Uri::from_static("/"));
        // Only `X-Forwarded-Host` and `Forwarded` name the host: a copy of it only for them.
        let host = (self.fwd.wants_host())
            .then(|| parts.headers.get(header::HOST).cloned())
            .flatten();
        let fwd = Forwarding {
            host: host.as_ref().and_then(|h| h.to_str().ok()),
            ..self.fwd
        };
        forwarding::rewrite(&mut parts.headers, &fwd);
        parts
    }
}

/// One try: send the prepared request to `server` and return its response, body
/// streaming. The body is taken only once a connection is open, so a connect failure
/// leaves it for the next server.
pub async fn attempt(
    up: &Upstream,
    server: &Arc<Server>,
    in_flight: InFlight,
    prepared: &Prepared,
    body: &mut ReplayBody,
    downstream_upgrade: &mut Option<hyper::upgrade::OnUpgrade>,
    info: &mut UpstreamInfo,
) -> Result<Response<ProxyBody>, ProxyError> {
    let pool = &up.pool;
    info.server = Some(server.clone());
    info.attempts += 1;
    let started = Instant::now();
    // The body is handed over only once a connection exists, so a failed connect leaves it
    // whole for the next server.
    let request = |body: &mut ReplayBody| {
        let mut parts = prepared.parts_for_hyper();
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
        return forward_h2(up, server, prepared, make, &sent, in_flight, started, info).await;
    }
    if downstream_upgrade.is_none() {
        // HTTP/1.1 over the direct path's connections (`h1/client.rs`); only a WebSocket
        // upgrade keeps hyper's client, which hands over the upgraded connection.
        let out = super::h1::client::Outgoing {
            parts: &prepared.parts,
            fwd: &prepared.fwd,
            host_from_server: pool.host_header == HostHeader::Upstream,
        };
        let response =
            super::h1::client::exchange(up, server, &out, body, in_flight, &mut info.connect)
                .await?;
        let header_time = started.elapsed();
        info.header = Some(header_time);
        server.record_response_head(header_time);
        return Ok(response);
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
    server.record_response_head(header_time);

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
    // A 101 the client did not ask for (issue 15.2: an `h2c` upgrade the server took on its
    // own) opens no tunnel; it is the server's error.
    let refused = if switching {
        Some("switched protocols unasked")
    } else if !only_chunked(
        resp.headers()
            .get_all(header::TRANSFER_ENCODING)
            .iter()
            .map(|v| v.as_bytes()),
    ) {
        // `gzip, chunked`: the coding would be lost when the body is framed anew.
        Some("a transfer coding other than chunked")
    } else {
        None
    };
    if let Some(cause) = refused {
        return Err(ProxyError::Upstream {
            server: server.name.clone(),
            cause: cause.into(),
        });
    }
    // The connection goes back to the pool when the body has been read whole (at once for
    // an empty one); a client that leaves before that closes it.
    let lease = up.conns().lease(conn);
    let (mut parts, body) = resp.into_parts();
    drop_length_beside_coding(&mut parts.headers);
    strip_hop_by_hop(&mut parts.headers, false);
    let lease = match lease {
        Some(lease) if http_body::Body::is_end_stream(&body) => {
            lease.ended();
            None
        }
        lease => lease,
    };
    let body = UpstreamBody::with_end(body, in_flight, read_timeout, lease);
    Ok(Response::from_parts(parts, boxed(body)))
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
        if let Some(over) = s.downcast_ref::<BodyOverLimit>() {
            return ProxyError::BodyTooLarge(over.0);
        }
        source = s.source();
    }
    let over = (prepared.body_over.as_ref()).map_or(0, |o| o.load(Ordering::Relaxed));
    if over > 0 {
        return ProxyError::BodyTooLarge(over);
    }
    if (prepared.client_stalled.as_ref()).is_some_and(|s| s.load(Ordering::Relaxed)) {
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

/// Send one request over the server's HTTP/2 connection; the response body streams back
/// (trailers included: gRPC's `grpc-status` arrives as a trailer frame of the body). The
/// request body tells `sent` when it has gone; the read timeout starts then.
#[allow(clippy::too_many_arguments)]
pub async fn forward_h2(
    up: &Upstream,
    server: &Arc<Server>,
    prepared: &Prepared,
    make_request: impl FnOnce() -> Request<ProxyBody>,
    sent: &super::body::UploadProgress,
    in_flight: InFlight,
    started: Instant,
    info: &mut UpstreamInfo,
) -> Result<Response<ProxyBody>, ProxyError> {
    let transport = up.transport();
    let timeout = up.pool.timeouts.read;
    let send_timeout = up.pool.timeouts.send;
    let timed_out = |after| ProxyError::Timeout {
        server: server.name.clone(),
        after,
    };
    let failed = |e: &hyper::Error| exchange_error(server, e, prepared, &up.pool);
    // Connect first: the request (and so its body) is made only once a connection exists, so
    // a failed connect leaves the body whole for a retry on another server.
    let (mut sender, reused, connect_time) = up
        .h2()
        .sender(transport, server, up.pool.timeouts.connect, send_timeout)
        .await?;
    info.connect = Some(connect_time);
    let (mut parts, body) = make_request().into_parts();
    // HTTP/2 carries the host in :authority and forbids connection-specific headers.
    let authority = parts
        .headers
        .remove(header::HOST)
        .and_then(|h| h.to_str().ok().map(str::to_string))
        .unwrap_or_else(|| server.addr.to_string());
    parts.headers.remove(header::CONNECTION);
    parts.headers.remove(header::UPGRADE);
    let pq = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    parts.uri = format!("{}://{authority}{pq}", transport.scheme())
        .parse()
        .map_err(|_| ProxyError::BadRequest("bad host for an HTTP/2 request".into()))?;
    parts.version = Version::HTTP_2;
    let req = Request::from_parts(parts, body);
    let resp = match response_head(
        sender.try_send_request(req),
        sent,
        timeout,
        Some(send_timeout),
    )
    .await
    {
        HeadWait::ReadTimeout => return Err(timed_out(timeout)),
        HeadWait::SendStalled => return Err(timed_out(send_timeout)),
        HeadWait::Done(Ok(r)) => r,
        HeadWait::Done(Err(mut e)) => match e.take_message() {
            // The connection went away (GOAWAY, closed) before the request left: it was not
            // sent, so it goes once more on a fresh connection to the same server.
            Some(again) if reused => {
                let (mut sender, _, connect_time) = up
                    .h2()
                    .sender(transport, server, up.pool.timeouts.connect, send_timeout)
                    .await?;
                info.connect = Some(connect_time);
                match response_head(
                    sender.send_request(again),
                    sent,
                    timeout,
                    Some(send_timeout),
                )
                .await
                {
                    HeadWait::ReadTimeout => return Err(timed_out(timeout)),
                    HeadWait::SendStalled => return Err(timed_out(send_timeout)),
                    HeadWait::Done(Err(e)) => return Err(failed(&e)),
                    HeadWait::Done(Ok(r)) => r,
                }
            }
            _ => return Err(failed(e.error())),
        },
    };
    let header_time = started.elapsed();
    info.header = Some(header_time);
    server.record_response_head(header_time);
    Ok(response(resp, in_flight, timeout))
}

fn response(
    resp: Response<Incoming>,
    in_flight: InFlight,
    timeout: Duration,
) -> Response<ProxyBody> {
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers, false);
    // The client's connection decides its own version.
    parts.version = Version::HTTP_11;
    Response::from_parts(parts, boxed(UpstreamBody::new(body, in_flight, timeout)))
}

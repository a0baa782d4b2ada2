//! Retries and failover around the single attempt of `forward.rs`.
//!
//! [`run`] tries the sticky server or the pool's pick, judges the outcome (connect failure,
//! reset, timeout, or a status of the pool's `on` list), reports it to the server's passive
//! health, and when allowed tries again on a server this request has not tried yet
//! (`PickContext::tried`). A retry is allowed when the failure is in `on`, the method is
//! idempotent or `non_idempotent = true` (or the request never reached the server), the
//! body can be sent again, attempts are left, and the pool's [`RetryBudget`] has a token.
//!
//! Bodies: a body whose length is known and at most [`REPLAY_LIMIT`] bytes is read before
//! the first try and kept, so it can be sent again; any other body streams to the first
//! server and its request is retried only if that server could not even be connected to.
//!
//! gRPC (`on = ["grpc_unavailable"]`): gRPC requests carry no `Content-Length`, and a call
//! may be a stream the client feeds as answers come back, so its body cannot be read before
//! the first try. It streams, and a copy of up to [`REPLAY_LIMIT`] bytes is kept on the way
//! ([`ReplayBody::tee`]). When the server refuses the call with `grpc-status: 14`
//! (UNAVAILABLE) in a trailers-only answer and the client's whole body had gone through
//! (a unary call, or a stream that had ended), the copy is sent to the next server. gRPC
//! calls are POSTs; listing `grpc_unavailable` is the operator's statement that UNAVAILABLE
//! is safe to retry (as Envoy's `retry_on: unavailable`), so the method is not checked.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::{HeaderMap, Method, Response};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use hyper::upgrade::OnUpgrade;
use tokio::time::Instant;

use super::body::{BoxError, ClientBodyTimeout, ProxyBody, boxed, full};
use super::forward::{Prepared, UpstreamInfo, attempt};
use super::upstream::Upstream;
use crate::balance::PickContext;
use crate::config::RetryOn;
use crate::error::ProxyError;
use crate::upstream::Server;

/// The most request body kept for replay on another server (nginx buffers bodies too, in
/// memory up to `client_body_buffer_size`, then on disk; we stream what is beyond this).
pub const REPLAY_LIMIT: usize = 64 * 1024;

/// A budget for retries: each request adds `ratio` of a token, each retry takes one. It
/// starts with, and never holds more than, [`RetryBudget::RESERVE`] tokens, so a quiet pool
/// can still retry a few requests while a failing one cannot double its traffic.
#[derive(Debug)]
pub struct RetryBudget {
    /// Thousandths of a token.
    milli: AtomicI64,
    per_request: i64,
}

impl RetryBudget {
    /// Tokens a budget starts with and holds at most.
    pub const RESERVE: i64 = 10;

    pub fn new(ratio: f64) -> RetryBudget {
        RetryBudget {
            milli: AtomicI64::new(Self::RESERVE * 1000),
            per_request: (ratio * 1000.0).round() as i64,
        }
    }

    /// One request went out (its first try).
    pub fn deposit(&self) {
        if self.per_request == 0 {
            return;
        }
        let cap = Self::RESERVE * 1000;
        let _ = self
            .milli
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                (m < cap).then(|| (m + self.per_request).min(cap))
            });
    }

    /// Take a token for one retry; false when the budget is spent.
    pub fn try_withdraw(&self) -> bool {
        self.milli
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |m| {
                (m >= 1000).then_some(m - 1000)
            })
            .is_ok()
    }
}

/// Methods that may be sent twice without harm (RFC 9110 §9.2.2).
pub fn idempotent(m: &Method) -> bool {
    matches!(
        *m,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    )
}

/// A request body that can be sent more than once when it was small enough to keep.
pub enum ReplayBody {
    Empty,
    Kept {
        data: Bytes,
        trailers: Option<HeaderMap>,
    },
    /// Too big to keep: goes to the first server that accepts a connection, then is gone.
    Streaming(Option<ProxyBody>),
    /// Streams, keeping a copy on the way ([`ReplayBody::tee`]); `settle` turns it into
    /// `Kept` once a try has sent it whole, or into a spent `Streaming` when it could not.
    Teed {
        body: Option<ProxyBody>,
        copy: Arc<Mutex<TeeCopy>>,
    },
}

impl ReplayBody {
    /// Read `body` whole when `keep` (retries are possible) and its declared length is at
    /// most [`REPLAY_LIMIT`]; otherwise stream it. The client's pauses are bounded by the
    /// [`ClientBody`](super::body::ClientBody) around it.
    pub async fn read(body: ProxyBody, keep: bool) -> Result<ReplayBody, ProxyError> {
        if body.is_end_stream() {
            return Ok(ReplayBody::Empty);
        }
        // Only a body of known, small length is waited for. A body of unknown length may be
        // a stream the client feeds as answers come back (gRPC, long polls): holding it
        // until it ends could deadlock, so it streams at once.
        let small = body
            .size_hint()
            .exact()
            .is_some_and(|n| n <= REPLAY_LIMIT as u64);
        if !keep || !small {
            return Ok(ReplayBody::Streaming(Some(body)));
        }
        let mut body = body;
        let mut data = BytesMut::new();
        loop {
            let frame = match body.frame().await {
                None => {
                    return Ok(ReplayBody::Kept {
                        data: data.freeze(),
                        trailers: None,
                    });
                }
                Some(Err(e)) => return Err(client_body_error(&*e)),
                Some(Ok(f)) => f,
            };
            match frame.into_data() {
                Ok(d) => {
                    data.extend_from_slice(&d);
                    if data.len() > REPLAY_LIMIT {
                        return Ok(ReplayBody::Streaming(Some(boxed(Prefixed {
                            prefix: Some(data.freeze()),
                            rest: body,
                        }))));
                    }
                }
                Err(frame) => {
                    // Trailers end the body.
                    return Ok(ReplayBody::Kept {
                        data: data.freeze(),
                        trailers: frame.into_trailers().ok(),
                    });
                }
            }
        }
    }

    /// Whether the body can still be sent (again).
    pub fn available(&self) -> bool {
        !matches!(
            self,
            ReplayBody::Streaming(None) | ReplayBody::Teed { body: None, .. }
        )
    }

    /// Stream this body but keep a copy of up to [`REPLAY_LIMIT`] bytes on the way, so the
    /// request can be sent again if it went through whole. Only a streaming body changes.
    pub fn tee(&mut self) {
        if let ReplayBody::Streaming(body @ Some(_)) = self {
            *self = ReplayBody::Teed {
                body: body.take(),
                copy: Arc::default(),
            };
        }
    }

    /// After a try: a teed body that went through whole (and fit) can be sent again from
    /// its copy; one that did not is spent.
    fn settle(&mut self) {
        let ReplayBody::Teed { body: None, copy } = self else {
            return;
        };
        let next = {
            let mut c = copy.lock().unwrap_or_else(|e| e.into_inner());
            if c.complete && !c.overflow {
                ReplayBody::Kept {
                    data: std::mem::take(&mut c.data).freeze(),
                    trailers: c.trailers.take(),
                }
            } else {
                ReplayBody::Streaming(None)
            }
        };
        *self = next;
    }

    /// The body for one try: a copy of a kept body, or the stream itself (once).
    pub fn for_send(&mut self) -> ProxyBody {
        match self {
            ReplayBody::Empty => full(Bytes::new()),
            ReplayBody::Kept {
                data,
                trailers: None,
            } => full(data.clone()),
            ReplayBody::Kept {
                data,
                trailers: Some(t),
            } => boxed(Prefixed::<http_body_util::Empty<Bytes>> {
                prefix: Some(data.clone()),
                rest: http_body_util::Empty::new(),
            })
            .with_trailers(std::future::ready(Some(Ok(t.clone()))))
            .boxed(),
            ReplayBody::Streaming(b) => b.take().unwrap_or_else(|| full(Bytes::new())),
            ReplayBody::Teed { body, copy } => match body.take() {
                Some(b) => boxed(Tee {
                    inner: b,
                    copy: copy.clone(),
                }),
                None => full(Bytes::new()),
            },
        }
    }
}

/// The error of a request body read from the client: 408 when it stalled, else 400.
fn client_body_error(e: &(dyn std::error::Error + 'static)) -> ProxyError {
    match e.downcast_ref::<ClientBodyTimeout>() {
        Some(t) => ProxyError::ClientTimeout(t.0),
        None => ProxyError::BadRequest(format!("request body: {e}")),
    }
}

/// What a teed body has seen go through.
#[derive(Debug, Default)]
pub struct TeeCopy {
    data: BytesMut,
    trailers: Option<HeaderMap>,
    /// The body ended (the client's END_STREAM went through).
    complete: bool,
    /// More than [`REPLAY_LIMIT`] bytes: no copy is kept.
    overflow: bool,
}

pin_project_lite::pin_project! {
    /// A body passed through unchanged while a copy of it is kept. The mutex is taken once
    /// per frame, by one task only (the connection sending the body); it exists so the
    /// retry loop can read the copy after the try. Only gRPC calls of pools with
    /// `grpc_unavailable` pay for it.
    struct Tee<B> {
        #[pin]
        inner: B,
        copy: Arc<Mutex<TeeCopy>>,
    }
}

impl<B> Body for Tee<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        let ended = match &polled {
            Poll::Pending | Poll::Ready(Some(Err(_))) => {
                return polled.map(|f| f.map(|r| r.map_err(Into::into)));
            }
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => false,
        };
        let mut c = this.copy.lock().unwrap_or_else(|e| e.into_inner());
        if let Poll::Ready(Some(Ok(frame))) = &polled {
            if let Some(d) = frame.data_ref() {
                if c.data.len() + d.len() > REPLAY_LIMIT {
                    c.overflow = true;
                    c.data = BytesMut::new();
                } else if !c.overflow {
                    c.data.extend_from_slice(d);
                }
            } else if let Some(t) = frame.trailers_ref() {
                c.trailers = Some(t.clone());
            }
        }
        // END_STREAM may come with the last frame: then no `None` is ever polled.
        c.complete |= ended || this.inner.is_end_stream();
        drop(c);
        polled.map(|f| f.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A gRPC call: `content-type: application/grpc` or `application/grpc+…`.
fn is_grpc(headers: &HeaderMap) -> bool {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            v == "application/grpc"
                || v.starts_with("application/grpc+")
                || v.starts_with("application/grpc;")
        })
}

/// A trailers-only gRPC answer with status UNAVAILABLE (14): `grpc-status` in the headers.
fn grpc_unavailable(headers: &HeaderMap) -> bool {
    headers
        .get("grpc-status")
        .is_some_and(|v| v.as_bytes().trim_ascii() == b"14")
}

pin_project_lite::pin_project! {
    /// Bytes already read, then the rest of the body.
    struct Prefixed<B> {
        prefix: Option<Bytes>,
        #[pin]
        rest: B,
    }
}

impl<B> Body for Prefixed<B>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.project();
        if let Some(p) = this.prefix.take() {
            return Poll::Ready(Some(Ok(Frame::data(p))));
        }
        this.rest
            .poll_frame(cx)
            .map(|f| f.map(|r| r.map_err(Into::into)))
    }

    fn is_end_stream(&self) -> bool {
        self.prefix.is_none() && self.rest.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let extra = self.prefix.as_ref().map_or(0, |p| p.len() as u64);
        let rest = self.rest.size_hint();
        let mut h = SizeHint::new();
        h.set_lower(rest.lower() + extra);
        if let Some(u) = rest.upper() {
            h.set_upper(u + extra);
        }
        h
    }
}

/// How one try ended, for passive health and the retry decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Judged {
    Success,
    /// The client's doing (bad request, stalled or aborted body): says nothing of the server.
    Neutral,
    /// A failure; `retry` when it is in the `on` list.
    Failure {
        retry: bool,
    },
}

fn judge<A: Answer>(result: &Result<A, ProxyError>, on: &RetryOn) -> Judged {
    match result {
        Ok(r) if on.status(r.status()) => Judged::Failure { retry: true },
        Ok(r) if on.grpc_unavailable && r.grpc_unavailable() => Judged::Failure { retry: true },
        Ok(_) => Judged::Success,
        Err(ProxyError::Connect { .. }) => Judged::Failure {
            retry: on.connect_failure,
        },
        Err(ProxyError::Timeout { .. }) => Judged::Failure { retry: on.timeout },
        Err(ProxyError::Upstream { .. }) => Judged::Failure { retry: on.reset },
        // Not the server's fault (a bad request, a client that stalled or went away): no
        // health consequence either way, no retry.
        Err(_) => Judged::Neutral,
    }
}

/// Everything about the request the retry loop needs besides the request itself.
pub struct PickHints<'a> {
    pub client: SocketAddr,
    pub hash_key: Option<&'a [u8]>,
    pub method: &'a Method,
    /// Try this one first (sticky), when it is available.
    pub preferred: Option<Arc<Server>>,
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
    /// One try on `server`.
    fn attempt(
        &mut self,
        server: &Arc<Server>,
    ) -> impl Future<Output = Result<Self::Answer, ProxyError>> + Send;
    /// After a failed try: whether the request (its body) can still be sent again.
    fn replayable(&mut self) -> bool;
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

struct HyperExchange<'a, 'i> {
    up: &'a Upstream,
    prepared: &'a Prepared,
    body: &'a mut ReplayBody,
    downstream_upgrade: Option<OnUpgrade>,
    info: &'i mut UpstreamInfo,
}

impl Exchange for HyperExchange<'_, '_> {
    type Answer = Response<ProxyBody>;

    fn attempt(
        &mut self,
        server: &Arc<Server>,
    ) -> impl Future<Output = Result<Response<ProxyBody>, ProxyError>> + Send {
        attempt(
            self.up,
            server,
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

/// The loop alone: pick (the preferred server first), try, judge, report to passive health,
/// and try another server while the policy, the budget and the request allow.
pub async fn retry_loop<E: Exchange>(
    up: &Upstream,
    ask: &PickHints<'_>,
    max_tries: u32,
    ex: &mut E,
) -> (Result<E::Answer, ProxyError>, Option<Arc<Server>>) {
    let pool = &up.pool;
    let plan = &pool.retry;
    up.retry_budget().deposit();
    let mut tried: Vec<Arc<Server>> = Vec::new();
    let mut last: Option<Result<E::Answer, ProxyError>> = None;
    let mut leaving: Option<(Arc<Server>, String)> = None;
    for n in 0..max_tries {
        let server = match ask
            .preferred
            .as_ref()
            .filter(|s| n == 0 && s.is_available())
        {
            Some(s) => s.clone(),
            None => {
                let ctx = PickContext {
                    client: Some(ask.client.ip()),
                    hash_key: ask.hash_key,
                    tried: &tried,
                };
                match pool.pick(&ctx) {
                    Some(s) => s,
                    None => break,
                }
            }
        };
        if n > 0 && !up.retry_budget().try_withdraw() {
            tracing::debug!(pool = %pool.name, "retry budget spent; not retrying");
            break;
        }
        if let Some((from, why)) = leaving.take() {
            tracing::warn!(
                pool = %pool.name,
                server = %from.name,
                next = %server.name,
                "try {n} {why}; failing over"
            );
        }
        let result = ex.attempt(&server).await;
        if let Ok(r) = &result {
            server.count_response(r.status());
        }
        let judged = judge(&result, &plan.on);
        let now = Instant::now();
        let retry = match judged {
            Judged::Success => {
                server.report_success(now);
                return (result, Some(server));
            }
            Judged::Neutral => return (result, Some(server)),
            Judged::Failure { retry } => {
                server.report_failure(now);
                retry
            }
        };
        let reached_server = !matches!(result, Err(ProxyError::Connect { .. }));
        // UNAVAILABLE is gRPC's "not processed, try elsewhere" when the operator says so.
        let grpc_refused =
            plan.on.grpc_unavailable && matches!(&result, Ok(r) if r.grpc_unavailable());
        let may = retry
            && n + 1 < max_tries
            && ex.replayable()
            && (!reached_server || idempotent(ask.method) || plan.non_idempotent || grpc_refused);
        // Logged once the next try has a server (as nginx logs each upstream it leaves);
        // a last try's outcome is the request's, logged with it.
        if may {
            let why = match &result {
                Err(e) => format!("failed: {e}"),
                Ok(r) => format!("answered {}", r.status()),
            };
            leaving = Some((server.clone(), why));
        }
        tried.push(server.clone());
        let done = !may;
        last = Some(result);
        if done {
            return (last.expect("just set"), Some(server));
        }
    }
    let server = tried.last().cloned();
    match last {
        Some(r) => (r, server),
        None => (
            Err(ProxyError::NoServer {
                pool: pool.name.clone(),
            }),
            None,
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budget_allows_the_reserve_then_its_ratio() {
        let b = RetryBudget::new(0.2);
        for _ in 0..RetryBudget::RESERVE {
            assert!(b.try_withdraw());
        }
        assert!(!b.try_withdraw(), "reserve spent");
        // 100 requests earn 20 retries, but the bucket holds at most the reserve.
        for _ in 0..100 {
            b.deposit();
        }
        let granted = (0..100).filter(|_| b.try_withdraw()).count() as i64;
        assert_eq!(granted, RetryBudget::RESERVE);
        // Steady state: 5 requests per retry.
        for _ in 0..5 {
            b.deposit();
        }
        assert!(b.try_withdraw());
        assert!(!b.try_withdraw());
    }

    #[test]
    fn zero_budget_allows_only_the_reserve() {
        let b = RetryBudget::new(0.0);
        for _ in 0..1000 {
            b.deposit();
        }
        let granted = (0..100).filter(|_| b.try_withdraw()).count() as i64;
        assert_eq!(granted, RetryBudget::RESERVE);
    }

    #[test]
    fn idempotent_methods() {
        assert!(
            idempotent(&Method::GET) && idempotent(&Method::PUT) && idempotent(&Method::DELETE)
        );
        assert!(!idempotent(&Method::POST) && !idempotent(&Method::PATCH));
    }

    #[test]
    fn judging_follows_the_on_list() {
        let on = RetryOn {
            connect_failure: true,
            reset: false,
            timeout: true,
            statuses: vec![503],
            grpc_unavailable: false,
        };
        let resp = |s: u16| {
            let mut r = Response::new(full(""));
            *r.status_mut() = http::StatusCode::from_u16(s).unwrap();
            Ok(r)
        };
        assert_eq!(judge(&resp(200), &on), Judged::Success);
        assert_eq!(
            judge(&resp(500), &on),
            Judged::Success,
            "not listed: passed through"
        );
        assert_eq!(judge(&resp(503), &on), Judged::Failure { retry: true });
        let reset: Result<Response<ProxyBody>, _> = Err(ProxyError::Upstream {
            server: "s".into(),
            cause: "closed".into(),
        });
        assert_eq!(
            judge(&reset, &on),
            Judged::Failure { retry: false },
            "counted, not retried"
        );
        let bad: Result<Response<ProxyBody>, _> = Err(ProxyError::BadRequest("x".into()));
        assert_eq!(judge(&bad, &on), Judged::Neutral);
    }

    #[test]
    fn grpc_unavailable_in_the_headers_is_judged_when_listed() {
        let grpc = |status: &str| {
            let mut r = Response::new(full(""));
            r.headers_mut()
                .insert("grpc-status", status.parse().unwrap());
            Ok(r)
        };
        let mut on = RetryOn {
            connect_failure: true,
            reset: true,
            timeout: true,
            statuses: vec![],
            grpc_unavailable: false,
        };
        assert_eq!(judge(&grpc("14"), &on), Judged::Success, "not listed");
        on.grpc_unavailable = true;
        assert_eq!(judge(&grpc("14"), &on), Judged::Failure { retry: true });
        assert_eq!(judge(&grpc("0"), &on), Judged::Success);
        assert_eq!(judge(&grpc("13"), &on), Judged::Success);
    }

    /// A teed body that went through whole becomes replayable; one beyond the limit, or
    /// one the client had not finished, is spent after its try.
    #[tokio::test]
    async fn a_teed_body_is_kept_only_when_it_went_through_whole() {
        let streaming = |b: ProxyBody| {
            let mut r = ReplayBody::Streaming(Some(b));
            r.tee();
            r
        };
        let mut small = streaming(full(Bytes::from_static(b"\0\0\0\0\x02hi")));
        let sent = small.for_send().collect().await.unwrap().to_bytes();
        small.settle();
        assert!(small.available());
        let again = small.for_send().collect().await.unwrap().to_bytes();
        assert_eq!(sent, again);

        let mut big = streaming(full(Bytes::from(vec![7u8; REPLAY_LIMIT + 1])));
        let _ = big.for_send().collect().await.unwrap();
        big.settle();
        assert!(!big.available(), "beyond the replay limit");

        // Only the first frame of a longer stream went through before the answer.
        use futures_util::StreamExt;
        let first = futures_util::stream::iter(vec![Ok::<_, BoxError>(Frame::data(
            Bytes::from_static(b"a"),
        ))]);
        let pending = http_body_util::StreamBody::new(first.chain(futures_util::stream::pending()));
        let mut open = streaming(boxed(pending));
        let mut b = open.for_send();
        assert!(b.frame().await.unwrap().is_ok());
        drop(b);
        open.settle();
        assert!(!open.available(), "the client had not finished");
    }
}

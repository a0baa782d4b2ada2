//! Request bodies that can be sent more than once.
//!
//! A body whose length is known and at most [`REPLAY_LIMIT`] bytes is read before the first
//! try and kept, so it can be sent again; any other body streams to the first server and its
//! request is retried only if that server could not even be connected to.
//!
//! gRPC (`on = ["grpc_unavailable"]`): gRPC requests carry no `Content-Length`, and a call
//! may be a stream the client feeds as answers come back, so its body cannot be read before
//! the first try. It streams, and a copy of up to [`REPLAY_LIMIT`] bytes is kept on the way
//! ([`ReplayBody::tee`]). When the server refuses the call with `grpc-status: 14`
//! (UNAVAILABLE) in a trailers-only answer and the client's whole body had gone through
//! (a unary call, or a stream that had ended), the copy is sent to the next server.

use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use bytes::{Bytes, BytesMut};
use http::HeaderMap;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::body::{BodyOverLimit, BoxError, ClientBodyTimeout, ProxyBody, boxed, empty, full};
use crate::error::ProxyError;

/// The most request body kept for replay on another server (nginx buffers bodies too, in
/// memory up to `client_body_buffer_size`, then on disk; we stream what is beyond this).
pub const REPLAY_LIMIT: usize = 64 * 1024;

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
    /// Read `body` whole when its declared length is at most `keep` bytes ([`kept_up_to`]:
    /// retries are possible, or the listener buffers requests); otherwise stream it. With
    /// `unknown` (request buffering, not gRPC) a body of unknown length is read too, up to
    /// `keep` bytes: whole if it ends by then, else those bytes first and the rest
    /// streaming. The client's pauses are bounded by the
    /// [`ClientBody`](super::body::ClientBody) around it.
    pub async fn read(
        body: ProxyBody,
        keep: usize,
        unknown: bool,
    ) -> Result<ReplayBody, ProxyError> {
        if body.is_end_stream() {
            return Ok(ReplayBody::Empty);
        }
        // A body of known, small length is waited for. One of unknown length may be a
        // stream the client feeds as answers come back (gRPC, long polls): holding it until
        // it ends could deadlock, so it streams at once unless the listener buffers
        // requests (nginx's proxy_request_buffering, which gRPC is never under).
        let small = match body.size_hint().exact() {
            Some(n) => n <= keep as u64,
            None => unknown && keep > 0,
        };
        if !small {
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
                    if data.len() > keep {
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
    pub fn settle(&mut self) {
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
            ReplayBody::Empty => empty(),
            ReplayBody::Kept {
                data,
                trailers: None,
            } => full(data.clone()),
            // Of no declared length, so that an HTTP/1.1 server gets it chunked, with its
            // trailers (a length would leave them no place).
            ReplayBody::Kept {
                data,
                trailers: Some(t),
            } => boxed(http_body_util::StreamBody::new(futures_util::stream::iter(
                [
                    Ok::<_, std::convert::Infallible>(Frame::data(data.clone())),
                    Ok(Frame::trailers(t.clone())),
                ],
            ))),
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
    if let Some(over) = e.downcast_ref::<BodyOverLimit>() {
        return ProxyError::BodyTooLarge(over.0);
    }
    match e.downcast_ref::<ClientBodyTimeout>() {
        Some(t) => ProxyError::ClientTimeout(t.0),
        None => ProxyError::BadRequest(format!("request body: {e}")),
    }
}

/// The longest body of known length read whole before the first try, on either engine:
/// one a retry could send again ([`REPLAY_LIMIT`]), or, when the listener buffers requests
/// (nginx's `proxy_request_buffering`), up to `request_buffer_size`, so that a slow upload
/// holds no server connection. 0: none.
pub fn kept_up_to(limits: &crate::config::ClientLimits, retries: bool) -> usize {
    let retry = if retries { REPLAY_LIMIT } else { 0 };
    let buffer = if limits.request_buffering {
        limits.request_buffer_size
    } else {
        0
    };
    retry.max(buffer)
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
pub fn is_grpc(headers: &HeaderMap) -> bool {
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
pub fn grpc_unavailable(headers: &HeaderMap) -> bool {
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

#[cfg(test)]
mod tests {
    use super::*;

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

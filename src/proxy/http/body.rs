//! Body types of the proxy and the wrapper that watches an upstream response body.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, Full, combinators::BoxBody};
use tokio::time::{Instant, Sleep};

use crate::upstream::InFlight;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Any body the proxy sends, either way.
pub type ProxyBody = BoxBody<Bytes, BoxError>;

/// A body from bytes we hold.
pub fn full(b: impl Into<Bytes>) -> ProxyBody {
    Full::new(b.into()).map_err(|never| match never {}).boxed()
}

/// Box any body whose error converts.
pub fn boxed<B>(b: B) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    b.map_err(Into::into).boxed()
}

#[derive(Debug)]
pub struct ReadTimeout(pub Duration);

impl std::fmt::Display for ReadTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "upstream sent nothing for {:?}", self.0)
    }
}

impl std::error::Error for ReadTimeout {}

pin_project_lite::pin_project! {
    /// An upstream response body on its way to the client. It keeps the server's in-flight
    /// count until the body ends (so `least_conn` sees streaming responses), and fails if the
    /// server sends nothing for `read_timeout` (nginx's `proxy_read_timeout`).
    pub struct UpstreamBody<B> {
        #[pin]
        inner: B,
        in_flight: Option<InFlight>,
        read_timeout: Duration,
        #[pin]
        deadline: Sleep,
    }
}

impl<B> UpstreamBody<B> {
    pub fn new(inner: B, in_flight: InFlight, read_timeout: Duration) -> Self {
        UpstreamBody {
            inner,
            in_flight: Some(in_flight),
            read_timeout,
            deadline: tokio::time::sleep(read_timeout),
        }
    }
}

impl<B> Body for UpstreamBody<B>
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
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(frame) => {
                if frame.is_none() || this.inner.is_end_stream() {
                    this.in_flight.take();
                } else {
                    this.deadline
                        .as_mut()
                        .reset(Instant::now() + *this.read_timeout);
                }
                Poll::Ready(frame.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                ready!(this.deadline.poll(cx));
                this.in_flight.take();
                Poll::Ready(Some(Err(Box::new(ReadTimeout(*this.read_timeout)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The client sent no byte of its request body for this long (`timeouts.client_body`).
#[derive(Debug)]
pub struct ClientBodyTimeout(pub Duration);

impl std::fmt::Display for ClientBodyTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the client sent no body bytes for {:?}", self.0)
    }
}

impl std::error::Error for ClientBodyTimeout {}

pin_project_lite::pin_project! {
    /// A request body as the client sends it, failing with [`ClientBodyTimeout`] when the
    /// client makes us wait longer than `timeout` for its next bytes (nginx's
    /// `client_body_timeout`). Only time spent waiting on the client counts: while the
    /// server is slow to take the body, this body is not polled and its clock is stopped.
    pub struct ClientBody<B> {
        #[pin]
        inner: B,
        timeout: Duration,
        waiting: bool,
        // Set when the timeout fired, for whoever sees the exchange fail afterwards (hyper
        // does not always hand a body's own error back).
        stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
        #[pin]
        deadline: Sleep,
    }
}

impl<B> ClientBody<B> {
    pub fn new(
        inner: B,
        timeout: Duration,
        stalled: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> Self {
        ClientBody {
            inner,
            timeout,
            waiting: false,
            stalled,
            deadline: tokio::time::sleep(timeout),
        }
    }
}

impl<B> Body for ClientBody<B>
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
        match this.inner.as_mut().poll_frame(cx) {
            Poll::Ready(frame) => {
                *this.waiting = false;
                Poll::Ready(frame.map(|r| r.map_err(Into::into)))
            }
            Poll::Pending => {
                if !*this.waiting {
                    *this.waiting = true;
                    this.deadline.as_mut().reset(Instant::now() + *this.timeout);
                }
                ready!(this.deadline.poll(cx));
                this.stalled
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                Poll::Ready(Some(Err(Box::new(ClientBodyTimeout(*this.timeout)))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project_lite::pin_project! {
    /// A request body on its way to a server, telling `sent` when its end has been handed
    /// to the connection: the server's read timeout for the response head starts then
    /// (nginx starts `proxy_read_timeout` once the request is sent).
    pub struct Sending<B> {
        #[pin]
        inner: B,
        sent: Option<std::sync::Arc<tokio::sync::Notify>>,
    }
}

impl<B: Body> Sending<B> {
    pub fn new(inner: B, sent: std::sync::Arc<tokio::sync::Notify>) -> Self {
        if inner.is_end_stream() {
            // Nothing to send (GET): the connection may never poll it.
            sent.notify_one();
            return Sending { inner, sent: None };
        }
        Sending {
            inner,
            sent: Some(sent),
        }
    }
}

impl<B> Body for Sending<B>
where
    B: Body<Data = Bytes>,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, B::Error>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => this.inner.is_end_stream(),
            _ => false,
        };
        if ended && let Some(sent) = this.sent.take() {
            sent.notify_one();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

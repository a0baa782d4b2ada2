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

//! Body types of the proxy and the wrapper that watches an upstream response body.

use std::pin::Pin;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::{BodyExt, combinators::BoxBody};
use tokio::time::{Instant, Sleep};

use crate::upstream::InFlight;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Any body the proxy sends, either way: bytes we hold (a small answer read whole with its
/// head, our own answers), with no box, or any other body boxed.
pub enum ProxyBody {
    /// Sent as one frame (none when empty), then the end.
    Bytes(Option<Bytes>),
    Boxed(BoxBody<Bytes, BoxError>),
}

impl std::fmt::Debug for ProxyBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ProxyBody::Bytes(b) => f.debug_tuple("Bytes").field(b).finish(),
            ProxyBody::Boxed(_) => f.write_str("Boxed"),
        }
    }
}

impl Body for ProxyBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        match self.get_mut() {
            ProxyBody::Bytes(b) => Poll::Ready(b.take().map(|b| Ok(Frame::data(b)))),
            ProxyBody::Boxed(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            ProxyBody::Bytes(b) => b.is_none(),
            ProxyBody::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            ProxyBody::Bytes(b) => SizeHint::with_exact(b.as_ref().map_or(0, |b| b.len() as u64)),
            ProxyBody::Boxed(b) => b.size_hint(),
        }
    }
}

/// A body from bytes we hold (no allocation).
pub fn full(b: impl Into<Bytes>) -> ProxyBody {
    let b = b.into();
    ProxyBody::Bytes((!b.is_empty()).then_some(b))
}

/// An empty body, without an allocation.
pub fn empty() -> ProxyBody {
    ProxyBody::Bytes(None)
}

/// Box any body whose error converts.
pub fn boxed<B>(b: B) -> ProxyBody
where
    B: Body<Data = Bytes> + Send + Sync + 'static,
    B::Error: Into<BoxError>,
{
    ProxyBody::Boxed(b.map_err(Into::into).boxed())
}

#[derive(Debug)]
pub struct ReadTimeout(pub Duration);

impl std::fmt::Display for ReadTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "upstream sent nothing for {:?}", self.0)
    }
}

impl std::error::Error for ReadTimeout {}

/// What to do once an upstream response body has been read to its end, whole: put its
/// connection back on its server's idle list (`upstream.rs`). Not called when the body
/// fails, times out or is dropped before its end (the connection then closes).
pub trait AtEnd: Send + Sync + 'static {
    fn ended(self);
}

impl AtEnd for () {
    fn ended(self) {}
}

pin_project_lite::pin_project! {
    /// An upstream response body on its way to the client. It keeps the server's in-flight
    /// count until the body ends (so `least_conn` sees streaming responses), and fails if the
    /// server sends nothing for `read_timeout` (nginx's `proxy_read_timeout`). Read whole, it
    /// calls its [`AtEnd`] (no task waits for that).
    pub struct UpstreamBody<B, E = ()> {
        #[pin]
        inner: B,
        in_flight: Option<InFlight>,
        at_end: Option<E>,
        read_timeout: Duration,
        #[pin]
        deadline: Sleep,
    }
}

impl<B> UpstreamBody<B> {
    pub fn new(inner: B, in_flight: InFlight, read_timeout: Duration) -> Self {
        UpstreamBody::with_end(inner, in_flight, read_timeout, None)
    }
}

impl<B> UpstreamBody<B> {
    /// [`UpstreamBody::new`] for a body whose server's in-flight count is held by whoever
    /// outlives it (`h1/client.rs`'s `duplex` task, which may write after the answer's end).
    pub fn counted_elsewhere(inner: B, read_timeout: Duration) -> Self {
        UpstreamBody {
            inner,
            in_flight: None,
            at_end: None,
            read_timeout,
            deadline: tokio::time::sleep(read_timeout),
        }
    }
}

impl<B, E> UpstreamBody<B, E> {
    /// [`UpstreamBody::new`], calling `at_end` when the body has been read whole.
    pub fn with_end(
        inner: B,
        in_flight: InFlight,
        read_timeout: Duration,
        at_end: Option<E>,
    ) -> Self {
        UpstreamBody {
            inner,
            in_flight: Some(in_flight),
            at_end,
            read_timeout,
            deadline: tokio::time::sleep(read_timeout),
        }
    }
}

impl<B, E> Body for UpstreamBody<B, E>
where
    B: Body<Data = Bytes>,
    B::Error: Into<BoxError>,
    E: AtEnd,
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
                if matches!(frame, Some(Err(_))) {
                    // A broken body: its connection is not reused.
                    this.at_end.take();
                }
                if frame.is_none() || this.inner.is_end_stream() {
                    this.in_flight.take();
                    if let Some(e) = this.at_end.take() {
                        e.ended();
                    }
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
                this.at_end.take();
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

/// The request body went past `client_max_body_size` (the limit, in bytes).
#[derive(Debug)]
pub struct BodyOverLimit(pub u64);

impl std::fmt::Display for BodyOverLimit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the request body is over {} bytes", self.0)
    }
}

impl std::error::Error for BodyOverLimit {}

pin_project_lite::pin_project! {
    /// A request body as the client sends it, failing with [`ClientBodyTimeout`] when the
    /// client makes us wait longer than `timeout` for its next bytes (nginx's
    /// `client_body_timeout`). Only time spent waiting on the client counts: while the
    /// server is slow to take the body, this body is not polled and its clock is stopped.
    /// Past `max` bytes (`client_max_body_size`) it fails with [`BodyOverLimit`].
    pub struct ClientBody<B> {
        #[pin]
        inner: B,
        timeout: Duration,
        waiting: bool,
        max: u64,
        seen: u64,
        // Set to `max` when the body went past it, for the same reason as `stalled`.
        over: Option<std::sync::Arc<std::sync::atomic::AtomicU64>>,
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
            max: u64::MAX,
            seen: 0,
            over: None,
            stalled,
            deadline: tokio::time::sleep(timeout),
        }
    }

    /// Fail past `max` bytes of data, setting `over` to `max`.
    pub fn with_max(
        mut self,
        max: u64,
        over: std::sync::Arc<std::sync::atomic::AtomicU64>,
    ) -> Self {
        self.max = max;
        self.over = Some(over);
        self
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
                if let Some(Ok(f)) = &frame
                    && let Some(d) = f.data_ref()
                {
                    *this.seen += d.len() as u64;
                    if *this.seen > *this.max {
                        if let Some(over) = this.over {
                            over.store(*this.max, std::sync::atomic::Ordering::Relaxed);
                        }
                        return Poll::Ready(Some(Err(Box::new(BodyOverLimit(*this.max)))));
                    }
                }
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

/// Whether a request body has been handed whole to the upstream connection. A flag that
/// stays set (a request sent again on a fresh connection is sent already) and wakes every
/// waiter. Until then it also tells how long the body has made no progress while not
/// waiting on the client: the connection not taking it (an HTTP/2 server that opens no
/// flow-control window, a socket that takes no bytes), which `timeouts.send` bounds.
pub struct UploadProgress {
    done: std::sync::atomic::AtomicBool,
    notify: tokio::sync::Notify,
    epoch: Instant,
    /// Milliseconds since `epoch` of the body's last step (a frame, or the start).
    progress_ms: std::sync::atomic::AtomicU64,
    /// The body is waiting for the client's next bytes (its pauses are the client's).
    waiting_client: std::sync::atomic::AtomicBool,
}

impl UploadProgress {
    pub fn new() -> std::sync::Arc<UploadProgress> {
        std::sync::Arc::new(UploadProgress {
            done: Default::default(),
            notify: Default::default(),
            epoch: Instant::now(),
            progress_ms: Default::default(),
            waiting_client: Default::default(),
        })
    }

    fn mark(&self) {
        self.done.store(true, std::sync::atomic::Ordering::Release);
        self.notify.notify_waiters();
    }

    fn step(&self, waiting_client: bool) {
        use std::sync::atomic::Ordering::{Relaxed, Release};
        // The time first: whoever sees "not waiting" then sees this step's time too.
        if !waiting_client {
            let ms = self.epoch.elapsed().as_millis() as u64;
            self.progress_ms.store(ms, Relaxed);
        }
        self.waiting_client.store(waiting_client, Release);
    }

    /// How long the body has not moved for want of the connection taking it; `None` while
    /// it waits on the client.
    pub fn stalled_for(&self) -> Option<Duration> {
        use std::sync::atomic::Ordering::{Acquire, Relaxed};
        if self.waiting_client.load(Acquire) {
            return None;
        }
        let last = Duration::from_millis(self.progress_ms.load(Relaxed));
        Some(self.epoch.elapsed().saturating_sub(last))
    }

    /// Returns once the body has been sent.
    pub async fn wait(&self) {
        loop {
            let notified = self.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.done.load(std::sync::atomic::Ordering::Acquire) {
                return;
            }
            notified.await;
        }
    }
}

pin_project_lite::pin_project! {
    /// A request body on its way to a server, telling `sent` when its end has been handed
    /// to the connection: the server's read timeout for the response head starts then
    /// (nginx starts `proxy_read_timeout` once the request is sent). Sliced (HTTP/2), it
    /// hands data over in pieces of at most `slice` bytes, so each piece asked for means
    /// that much has gone out, and a slow but moving upload is not taken for a stall.
    pub struct Sending<B> {
        #[pin]
        inner: B,
        sent: Option<std::sync::Arc<UploadProgress>>,
        slice: usize,
        rest: Option<Bytes>,
    }
}

/// The piece size for HTTP/2 uploads: one default-size DATA frame.
pub const H2_SLICE: usize = 16 * 1024;

impl<B: Body> Sending<B> {
    pub fn new(inner: B, sent: std::sync::Arc<UploadProgress>) -> Self {
        Self::sliced(inner, sent, usize::MAX)
    }

    pub fn sliced(inner: B, sent: std::sync::Arc<UploadProgress>, slice: usize) -> Self {
        let sent = if inner.is_end_stream() {
            // Nothing to send (GET): the connection may never poll it.
            sent.mark();
            None
        } else {
            Some(sent)
        };
        Sending {
            inner,
            sent,
            slice: slice.max(1),
            rest: None,
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
        let polled = match this.rest.take() {
            Some(mut rest) => {
                let piece = rest.split_to(rest.len().min(*this.slice));
                *this.rest = (!rest.is_empty()).then_some(rest);
                Poll::Ready(Some(Ok(Frame::data(piece))))
            }
            None => match this.inner.as_mut().poll_frame(cx) {
                Poll::Ready(Some(Ok(frame)))
                    if frame.data_ref().is_some_and(|d| d.len() > *this.slice) =>
                {
                    let mut data = frame.into_data().unwrap_or_default();
                    let piece = data.split_to(*this.slice);
                    *this.rest = Some(data);
                    Poll::Ready(Some(Ok(Frame::data(piece))))
                }
                other => other,
            },
        };
        let ended = match &polled {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => this.rest.is_none() && this.inner.is_end_stream(),
            _ => false,
        };
        // Progress matters only where the stall check runs (sliced, HTTP/2); HTTP/1.1
        // writes are timed by `SendTimed`, so its uploads skip the clock read per frame.
        if *this.slice != usize::MAX
            && let Some(sent) = this.sent.as_ref()
        {
            sent.step(polled.is_pending());
        }
        if ended && let Some(sent) = this.sent.take() {
            sent.mark();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_none() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        let mut hint = self.inner.size_hint();
        let rest = self.rest.as_ref().map_or(0, |r| r.len() as u64);
        if let Some(upper) = hint.upper() {
            hint.set_upper(upper + rest);
        }
        hint.set_lower(hint.lower() + rest);
        hint
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::{BodyExt, Full};
    use std::time::Duration;

    #[tokio::test]
    async fn sent_stays_sent_for_a_request_sent_again() {
        // A GET is sent at once; the first wait for its response head uses the signal, and
        // the wait after a retry on a fresh connection must see it still (the read timeout
        // depends on it).
        let sent = UploadProgress::new();
        let _get = Sending::new(Full::new(Bytes::new()), sent.clone());
        for attempt in 0..2 {
            tokio::time::timeout(Duration::from_secs(1), sent.wait())
                .await
                .unwrap_or_else(|_| panic!("wait {attempt} saw the body as sent"));
        }
    }

    #[tokio::test]
    async fn a_sliced_body_goes_in_pieces_and_keeps_its_length() {
        let sent = UploadProgress::new();
        let data = Bytes::from(vec![7u8; 40_000]);
        let mut body = Sending::sliced(Full::new(data.clone()), sent.clone(), 16_384);
        assert_eq!(body.size_hint().exact(), Some(40_000));
        let mut sizes = Vec::new();
        let mut got = Vec::new();
        while let Some(frame) = body.frame().await {
            let d = frame.unwrap().into_data().unwrap();
            sizes.push(d.len());
            got.extend_from_slice(&d);
            if !body.is_end_stream() {
                assert_eq!(body.size_hint().exact(), Some((40_000 - got.len()) as u64));
            }
        }
        assert_eq!(sizes, [16_384, 16_384, 7_232]);
        assert_eq!(got, data);
        tokio::time::timeout(Duration::from_secs(1), sent.wait())
            .await
            .expect("sent once the last piece went");
    }

    #[tokio::test]
    async fn sent_wakes_a_waiter_when_the_body_ends() {
        let sent = UploadProgress::new();
        let body = Sending::new(Full::new(Bytes::from_static(b"abc")), sent.clone());
        let waiter = tokio::spawn({
            let sent = sent.clone();
            async move { sent.wait().await }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(!waiter.is_finished(), "not sent before the body is read");
        let got = body.collect().await.unwrap().to_bytes();
        assert_eq!(&got[..], b"abc");
        tokio::time::timeout(Duration::from_secs(1), waiter)
            .await
            .expect("the waiter woke")
            .unwrap();
    }
}

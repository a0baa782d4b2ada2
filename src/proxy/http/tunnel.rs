//! An upgraded connection (WebSocket and other `Upgrade` protocols): bytes both ways.
//!
//! The tunnel lives until both sides have closed (an end of stream on one side is passed on
//! as a half-close to the other, so a WebSocket close handshake completes normally), or until
//! no byte has moved either way for the pool's `tunnel_idle_timeout`, when both connections
//! are dropped. While it lives, the server counts it as in flight (`least_conn` sees it).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Instant;

use crate::upstream::InFlight;

/// Join the client's and the server's upgraded connections and copy until both are done or
/// the tunnel has been idle for `idle_timeout`.
pub async fn run(
    downstream: OnUpgrade,
    upstream: OnUpgrade,
    in_flight: InFlight,
    idle_timeout: Duration,
) {
    let (down, up) = match tokio::try_join!(downstream, upstream) {
        Ok(pair) => pair,
        Err(e) => {
            tracing::debug!(server = %in_flight.server().name, "upgrade failed: {e}");
            return;
        }
    };
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut down = Watched {
        inner: TokioIo::new(down),
        start,
        last: last.clone(),
    };
    let mut up = Watched {
        inner: TokioIo::new(up),
        start,
        last: last.clone(),
    };
    let copy = tokio::io::copy_bidirectional(&mut down, &mut up);
    tokio::pin!(copy);
    loop {
        let quiet = start
            .elapsed()
            .saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
        let left = idle_timeout.saturating_sub(quiet);
        if left.is_zero() {
            tracing::debug!(
                server = %in_flight.server().name,
                "tunnel idle for {idle_timeout:?}; closing both sides"
            );
            return;
        }
        tokio::select! {
            r = &mut copy => {
                if let Err(e) = r {
                    tracing::debug!(server = %in_flight.server().name, "tunnel ended: {e}");
                }
                return;
            }
            _ = tokio::time::sleep(left) => {}
        }
    }
}

/// A stream that notes when bytes last moved through it (milliseconds since `start`).
struct Watched<T> {
    inner: T,
    start: Instant,
    last: Arc<AtomicU64>,
}

impl<T> Watched<T> {
    fn touch(&self) {
        self.last
            .store(self.start.elapsed().as_millis() as u64, Ordering::Relaxed);
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Watched<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let r = Pin::new(&mut this.inner).poll_read(cx, buf);
        if buf.filled().len() > before {
            this.touch();
        }
        r
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Watched<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        if let Poll::Ready(Ok(n)) = &r
            && *n > 0
        {
            this.touch();
        }
        r
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
}

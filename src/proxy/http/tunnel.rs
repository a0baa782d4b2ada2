//! An upgraded connection (WebSocket and other `Upgrade` protocols): bytes both ways.
//!
//! The tunnel lives until both sides have closed (an end of stream on one side is passed on
//! as a half-close to the other, so a WebSocket close handshake completes normally), or until
//! no byte has moved either way for the pool's `tunnel_idle_timeout` (5 s once one side has
//! closed), when both connections are dropped. While it lives, the server counts it as in flight (`least_conn` sees it).

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
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
    copy_both_ways(
        TokioIo::new(down),
        TokioIo::new(up),
        in_flight,
        idle_timeout,
    )
    .await;
}

/// The tunnel over two byte streams: the client's (`down`) and the server's (`up`).
pub async fn copy_both_ways<D, U>(down: D, up: U, in_flight: InFlight, idle_timeout: Duration)
where
    D: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    let start = Instant::now();
    let last = Arc::new(AtomicU64::new(0));
    let mut down = Watched {
        inner: down,
        start,
        last: last.clone(),
    };
    let mut up = Watched {
        inner: up,
        start,
        last: last.clone(),
    };
    let (mut down_read, mut down_write) = tokio::io::split(&mut down);
    let (mut up_read, mut up_write) = tokio::io::split(&mut up);
    // Each direction copies until end of stream, then passes the end on as a half-close.
    let to_server = async {
        let r = tokio::io::copy(&mut down_read, &mut up_write).await;
        let _ = up_write.shutdown().await;
        r
    };
    let to_client = async {
        let r = tokio::io::copy(&mut up_read, &mut down_write).await;
        let _ = down_write.shutdown().await;
        r
    };
    tokio::pin!(to_server, to_client);
    let (mut server_done, mut client_done) = (false, false);
    loop {
        // Once one side has finished, the other gets a short idle limit: a peer that keeps a
        // finished tunnel half-open would otherwise hold it for the whole idle timeout.
        let limit = if server_done || client_done {
            idle_timeout.min(HALF_CLOSED_IDLE)
        } else {
            idle_timeout
        };
        let quiet = start
            .elapsed()
            .saturating_sub(Duration::from_millis(last.load(Ordering::Relaxed)));
        let left = limit.saturating_sub(quiet);
        if left.is_zero() {
            tracing::debug!(
                server = %in_flight.server().name,
                "tunnel idle for {limit:?}; closing both sides"
            );
            return;
        }
        tokio::select! {
            r = &mut to_server, if !server_done => {
                server_done = true;
                if let Err(e) = r {
                    tracing::debug!(server = %in_flight.server().name, "tunnel ended: {e}");
                    return;
                }
            }
            r = &mut to_client, if !client_done => {
                client_done = true;
                if let Err(e) = r {
                    tracing::debug!(server = %in_flight.server().name, "tunnel ended: {e}");
                    return;
                }
            }
            _ = tokio::time::sleep(left) => {}
        }
        if server_done && client_done {
            return;
        }
    }
}

/// The open tunnels of one listener. Upgraded connections leave hyper's graceful shutdown
/// (their HTTP connection is over), so the serve loop keeps them here: on shutdown it waits
/// for them as for connections, within the same grace period, then cuts what is left.
#[derive(Clone)]
pub struct Tunnels {
    open: Arc<tokio::sync::watch::Sender<usize>>,
    cut: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Tunnels {
    fn default() -> Self {
        Tunnels {
            open: Arc::new(tokio::sync::watch::Sender::new(0)),
            cut: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }
}

/// Counts one open tunnel until dropped.
struct Open(Arc<tokio::sync::watch::Sender<usize>>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl Tunnels {
    /// Run `tunnel` in its own task, counted until it ends or [`Tunnels::cut`] is called.
    pub fn spawn(&self, tunnel: impl std::future::Future<Output = ()> + Send + 'static) {
        self.open.send_modify(|n| *n += 1);
        let open = Open(self.open.clone());
        let mut cut = self.cut.subscribe();
        tokio::spawn(async move {
            let _open = open;
            tokio::select! {
                () = tunnel => {}
                _ = cut.wait_for(|c| *c) => {
                    tracing::debug!("grace period over; closing an open tunnel");
                }
            }
        });
    }

    /// Tunnels open now.
    pub fn open(&self) -> usize {
        *self.open.borrow()
    }

    /// Resolves once no tunnel is open.
    pub async fn idle(&self) {
        let mut rx = self.open.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }

    /// Close every open tunnel (both of its connections are dropped).
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }
}

/// Idle limit of a tunnel one side of which has closed (HAProxy's `timeout client-fin`).
const HALF_CLOSED_IDLE: Duration = Duration::from_secs(5);

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

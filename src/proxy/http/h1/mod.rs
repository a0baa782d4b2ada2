//! The direct HTTP/1 path: HTTP/1.x from clients to HTTP/1.1 servers without hyper, in one
//! task per client connection (`conn.rs`; what it waits on the client for, under the
//! listener's timeouts and limits, in `wait.rs`), its heads read with `httparse` (`parse.rs`) and
//! written as bytes (`head.rs`), bodies copied with their framing checked (`body.rs`), each
//! try over a pooled server connection (`exchange.rs`, `pool.rs`) inside the shared retry
//! loop. HTTP/2 (h2c by prior knowledge here, ALPN h2 on TLS) keeps hyper: [`serve`] looks
//! at the first bytes and hands such a connection to hyper with them. A WebSocket (or other)
//! upgrade answered 101 becomes a plain copy both ways in the listener's [`Tunnels`].
//!
//! A listener takes this path when every pool it can route to speaks HTTP/1.1 to its
//! servers (`Site::direct`); otherwise its HTTP/1 clients go through hyper as well.

pub mod body;
pub mod checks;
pub mod client;
pub mod conn;
pub mod exchange;
pub mod head;
pub mod parse;
pub mod pool;
pub mod timer;
pub mod upload;
pub mod wait;

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use arc_swap::ArcSwap;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf as TokioReadBuf};
use tokio::sync::watch;

use super::life::Life;
use super::{Site, Tunnels};
use crate::guard::ConnStats;
use conn::{Conn, Next};

/// The HTTP/2 connection preface a client sends first (RFC 9113 §3.4).
const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The connections of one listener (direct or hyper's), so shutdown can ask them to finish
/// and wait.
#[derive(Clone)]
pub struct DirectConns {
    stop: Arc<watch::Sender<bool>>,
    open: Arc<watch::Sender<usize>>,
}

impl Default for DirectConns {
    fn default() -> Self {
        DirectConns {
            stop: Arc::new(watch::Sender::new(false)),
            open: Arc::new(watch::Sender::new(0)),
        }
    }
}

/// Counts one open direct connection until dropped.
pub struct Open(Arc<watch::Sender<usize>>);

impl Drop for Open {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n = n.saturating_sub(1));
    }
}

impl DirectConns {
    /// Count one connection open until the guard drops; the receiver says when to finish.
    pub fn track(&self) -> (Open, watch::Receiver<bool>) {
        self.open.send_modify(|n| *n += 1);
        (Open(self.open.clone()), self.stop.subscribe())
    }

    /// Ask every connection to close once its current request is answered (an idle one
    /// closes now), and wait until all have.
    pub async fn finish(&self) {
        self.stop.send_replace(true);
        let mut rx = self.open.subscribe();
        let _ = rx.wait_for(|n| *n == 0).await;
    }
}

/// What a connection of a listener needs besides its socket.
#[derive(Clone)]
pub struct Listener {
    pub site: Arc<ArcSwap<Site>>,
    pub tunnels: Tunnels,
    pub direct: DirectConns,
}

/// How long a connection chosen to close for room before its first byte was read looks
/// for that byte before it closes.
const LAST_LOOK: std::time::Duration = std::time::Duration::from_millis(5);

/// A keep-alive connection closed because the listener stops, as nginx's lingering close:
/// our FIN first, then what the client still sends is read and dropped for at most
/// [`super::life::LINGER`], so a request that crossed the close meets the end of the stream
/// (which clients retry on a fresh connection), not a reset.
async fn linger<C: AsyncRead + AsyncWrite + Unpin>(io: &mut C) {
    let _ = tokio::time::timeout(super::life::LINGER, async {
        io.shutdown().await?;
        let mut sink = [0u8; 1024];
        while io.read(&mut sink).await? > 0 {}
        Ok::<_, io::Error>(())
    })
    .await;
}

/// Serve one client connection: HTTP/2 by prior knowledge goes to hyper, HTTP/1.x stays
/// here, under `life`'s limits (`client_header_timeout` from the accept for the first
/// head, protocol detection included; `keepalive_timeout` between requests;
/// `keepalive_requests`). `stopping` says when the listener stops.
pub async fn serve<C>(
    mut io: C,
    client: SocketAddr,
    l: &Listener,
    life: Life,
    stopping: watch::Receiver<bool>,
) where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut conn = Conn::new(client);
    conn.limit_heads(&l.site.load().limits);
    // Protocol detection: the first bytes either start the HTTP/2 preface or do not.
    loop {
        let seen = conn.rb.data();
        let n = seen.len().min(PREFACE.len());
        if seen[..n] != PREFACE[..n] {
            break;
        }
        if n == PREFACE.len() {
            let io = Prefixed::new(seen.to_vec(), io);
            // The HTTP/1 buffers are not needed for the HTTP/2 connection's life.
            drop(conn);
            let (site, tunnels) = (&l.site, &l.tunnels);
            return super::life::drive(io, client, (site, tunnels), life, stopping).await;
        }
        let empty = conn.rb.is_empty();
        let read = conn.rb.fill(&mut io, parse::MAX_HEAD);
        let read = tokio::time::timeout_at(life.first_deadline(), read);
        let chosen = tokio::select! {
            biased;
            r = read => match r {
                Ok(Ok(n)) if n > 0 => false,
                Ok(_) => return,
                Err(_) => {
                    ConnStats::count(&life.stats().header_timeouts);
                    return;
                }
            },
            _ = life.permit.reused(), if empty => true,
        };
        if chosen {
            // Chosen to close for room before its first byte was read. A client that
            // wrote its request with the connect has it here already, only not yet seen
            // (its task had not run): one last short look tells it from a silent one,
            // which closes. Served, it closes at its next request.
            let look = conn.rb.fill(&mut io, parse::MAX_HEAD);
            match tokio::time::timeout(LAST_LOOK, look).await {
                Ok(Ok(n)) if n > 0 => continue,
                _ => return,
            }
        }
        // A byte came: this connection is not to be closed for room any more.
        if !life.permit.busy() {
            return;
        }
    }
    let mut served: u32 = 0;
    let up = {
        // What ends an idle wait (the listener stops, or the connection is chosen to close
        // for room), made once for the connection's life: a waiter registered per wait and
        // removed again costs two locks each, twice per request.
        let mut stop = stopping.clone();
        let inner = async {
            tokio::select! {
                _ = stop.changed() => {}
                () = life.permit.reused() => {}
            }
        };
        tokio::pin!(inner);
        let mut gone = wait::Gone::new(inner, &stopping, &life.permit);
        loop {
            match conn
                .read_head(
                    &mut io,
                    (&stopping, Pin::new(&mut gone)),
                    &life,
                    served == 0,
                    &l.site,
                )
                .await
            {
                wait::Read::Head => {}
                // Closed because the listener stops: a request may be crossing our close.
                wait::Read::Gone if *stopping.borrow() => return linger(&mut io).await,
                wait::Read::Gone | wait::Read::Refused => return,
            }
            served += 1;
            if served >= life.keepalive_requests {
                // nginx's keepalive_requests: this answer says Connection: close.
                conn.last_request();
            }
            match conn.request(&mut io, &l.site).await {
                Next::KeepAlive if !*stopping.borrow() => {}
                Next::KeepAlive => return linger(&mut io).await,
                Next::Close => {
                    let _ = io.shutdown().await;
                    return;
                }
                Next::Upgrade(up) => break *up,
            }
        }
    };
    let mut server = up.server;
    // Bytes either side sent early go first.
    if !conn.rb.is_empty() && body::send(&mut server.io, conn.rb.data()).await.is_err() {
        return;
    }
    if !server.rb.is_empty() && body::send(&mut io, server.rb.data()).await.is_err() {
        return;
    }
    let tunnel = super::tunnel::copy_both_ways(io, server.io, up.in_flight, up.idle_timeout);
    // The tunnel keeps the connection's place in the listener.
    let permit = life.permit;
    l.tunnels.spawn(async move {
        tunnel.await;
        drop(permit);
    });
}

/// A stream whose first bytes were already read: they are read again first.
pub struct Prefixed<C> {
    prefix: Vec<u8>,
    at: usize,
    inner: C,
}

impl<C> Prefixed<C> {
    pub fn new(prefix: Vec<u8>, inner: C) -> Self {
        Prefixed {
            prefix,
            at: 0,
            inner,
        }
    }
}

impl<C: AsyncRead + Unpin> AsyncRead for Prefixed<C> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut TokioReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if this.at < this.prefix.len() {
            let n = (this.prefix.len() - this.at).min(buf.remaining());
            buf.put_slice(&this.prefix[this.at..this.at + n]);
            this.at += n;
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut this.inner).poll_read(cx, buf)
    }
}

impl<C: AsyncWrite + Unpin> AsyncWrite for Prefixed<C> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write(cx, buf)
    }
    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_flush(cx)
    }
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_shutdown(cx)
    }
    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.get_mut().inner).poll_write_vectored(cx, bufs)
    }
    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

//! How a pool reaches its servers: TCP or TLS, and HTTP/1.1 or HTTP/2.
//!
//! [`Transport`] is built once per pool from its plan (`upstream_protocol`, `tls`,
//! `tunnel_idle_timeout`). [`Transport::connect`] gives a byte stream, cleartext or TLS,
//! to the HTTP/1.1 keep-alive pool in `upstream.rs` and to [`H2Conns`] here.
//!
//! HTTP/2 upstream: one multiplexed connection per server, shared by every request to it (a
//! `SendRequest` is cloned per request, which is how hyper multiplexes). It is opened on first
//! use, opened once even when many requests arrive together (a per-server async lock taken
//! only to connect), and replaced when it closes (GOAWAY, server restart, error). Balancing
//! stays per request: each request picks its server, then takes that server's connection.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use hyper::client::conn::http2;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::ClientConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

use super::body::ProxyBody;
use crate::config::{PoolPlan, UpstreamProtocol};
use crate::error::ProxyError;
use crate::tls::{TlsError, UpstreamTlsOptions};
use crate::upstream::Server;

/// TLS towards the servers of one pool.
pub struct UpstreamTls {
    pub connector: TlsConnector,
    pub options: UpstreamTlsOptions,
}

/// How one pool connects to its servers.
pub struct Transport {
    pub protocol: UpstreamProtocol,
    pub tls: Option<UpstreamTls>,
    /// Idle limit of upgraded connections (WebSocket) through this pool.
    pub tunnel_idle_timeout: Duration,
}

impl Default for Transport {
    fn default() -> Self {
        Transport {
            protocol: UpstreamProtocol::H1,
            tls: None,
            tunnel_idle_timeout: Duration::from_secs(3600),
        }
    }
}

impl Transport {
    /// The transport a pool's plan asks for; fails only if its TLS files went bad since
    /// validation.
    pub fn from_plan(p: &PoolPlan) -> Result<Transport, TlsError> {
        let tls = match &p.tls {
            None => None,
            Some(opts) => {
                let alpn: &[&[u8]] = if p.upstream_protocol.is_h2() {
                    &[b"h2"]
                } else {
                    &[b"http/1.1"]
                };
                let config: Arc<ClientConfig> = crate::tls::client_config(&p.name, opts, alpn)?;
                Some(UpstreamTls {
                    connector: TlsConnector::from(config),
                    options: opts.clone(),
                })
            }
        };
        Ok(Transport {
            protocol: p.upstream_protocol,
            tls,
            tunnel_idle_timeout: p.tunnel_idle_timeout,
        })
    }

    /// `https` when the pool re-encrypts, else `http` (the `:scheme` of HTTP/2 requests).
    pub fn scheme(&self) -> &'static str {
        if self.tls.is_some() { "https" } else { "http" }
    }

    /// A TCP connection to `server`, with TLS on top when the pool has `tls`; the whole of it
    /// bounded by `timeout`.
    pub async fn connect(
        &self,
        server: &Server,
        timeout: Duration,
    ) -> Result<ServerStream, ProxyError> {
        let fail = |cause: String| ProxyError::Connect {
            server: server.name.clone(),
            cause,
        };
        let work = async {
            let tcp = TcpStream::connect(server.addr)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let _ = tcp.set_nodelay(true);
            let Some(tls) = &self.tls else {
                return Ok(ServerStream::Tcp(tcp));
            };
            let name = crate::tls::server_name_for(tls.options.server_name.as_deref(), server.addr)
                .map_err(|e| fail(e.to_string()))?;
            let stream = tls
                .connector
                .connect(name, tcp)
                .await
                .map_err(|e| fail(format!("TLS handshake: {e}")))?;
            Ok(ServerStream::Tls(Box::new(stream)))
        };
        match tokio::time::timeout(timeout, work).await {
            Ok(r) => r,
            Err(_) => Err(fail(format!("timed out after {timeout:?}"))),
        }
    }
}

/// A connection to a server: TCP or TLS over TCP.
pub enum ServerStream {
    Tcp(TcpStream),
    Tls(Box<TlsStream<TcpStream>>),
}

impl AsyncRead for ServerStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for ServerStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Tcp(s) => Pin::new(s).poll_flush(cx),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ServerStream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            ServerStream::Tcp(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            ServerStream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            ServerStream::Tcp(s) => s.is_write_vectored(),
            ServerStream::Tls(s) => s.is_write_vectored(),
        }
    }
}

struct H2Slot {
    id: u64,
    current: ArcSwapOption<http2::SendRequest<ProxyBody>>,
    /// Held only while connecting, so that a burst of requests opens one connection.
    connecting: tokio::sync::Mutex<()>,
}

/// The HTTP/2 connections of one pool, one per server.
pub struct H2Conns {
    /// Shared with the pool's next `H2Conns` after a reload, for the servers that stayed.
    slots: Vec<Arc<H2Slot>>,
    opened: AtomicU64,
}

impl H2Conns {
    pub fn new(servers: &[Arc<Server>]) -> H2Conns {
        H2Conns::succeed(servers, None)
    }

    /// The connections of a rebuilt pool: the servers that stayed keep theirs from
    /// `previous`.
    pub fn succeed(servers: &[Arc<Server>], previous: Option<&H2Conns>) -> H2Conns {
        let kept = |id: u64| previous.and_then(|p| p.slots.iter().find(|s| s.id == id).cloned());
        H2Conns {
            slots: servers
                .iter()
                .map(|s| {
                    kept(s.id()).unwrap_or_else(|| {
                        Arc::new(H2Slot {
                            id: s.id(),
                            current: ArcSwapOption::empty(),
                            connecting: tokio::sync::Mutex::new(()),
                        })
                    })
                })
                .collect(),
            opened: AtomicU64::new(previous.map_or(0, |p| p.opened())),
        }
    }

    /// HTTP/2 connections opened since start (tests, metrics).
    pub fn opened(&self) -> u64 {
        self.opened.load(Ordering::Relaxed)
    }

    fn live(slot: &H2Slot) -> Option<http2::SendRequest<ProxyBody>> {
        slot.current
            .load()
            .as_ref()
            .filter(|s| !s.is_closed())
            .map(|s| (**s).clone())
    }

    /// A sender on the server's connection, opening one if there is none. Returns whether
    /// it was already open, and the time spent connecting.
    pub async fn sender(
        &self,
        transport: &Transport,
        server: &Server,
        connect_timeout: Duration,
        send_timeout: Duration,
    ) -> Result<(http2::SendRequest<ProxyBody>, bool, Duration), ProxyError> {
        let Some(slot) = self.slots.iter().find(|s| s.id == server.id()) else {
            return Err(ProxyError::Connect {
                server: server.name.clone(),
                cause: "server is not in this pool".into(),
            });
        };
        if let Some(s) = Self::live(slot) {
            return Ok((s, true, Duration::ZERO));
        }
        // Boxed: a TLS connect and a handshake make a large future, and every request's
        // future (moved whole each time a task is spawned for it) would carry its size.
        Box::pin(self.open(slot, transport, server, connect_timeout, send_timeout)).await
    }

    /// Open the server's connection (unless a concurrent request just did).
    async fn open(
        &self,
        slot: &H2Slot,
        transport: &Transport,
        server: &Server,
        connect_timeout: Duration,
        send_timeout: Duration,
    ) -> Result<(http2::SendRequest<ProxyBody>, bool, Duration), ProxyError> {
        let _connecting = slot.connecting.lock().await;
        if let Some(s) = Self::live(slot) {
            return Ok((s, true, Duration::ZERO));
        }
        let started = Instant::now();
        let stream = transport.connect(server, connect_timeout).await?;
        if let ServerStream::Tls(t) = &stream
            && t.get_ref().1.alpn_protocol() != Some(b"h2")
        {
            return Err(ProxyError::Connect {
                server: server.name.clone(),
                cause: "the server did not agree to HTTP/2 (ALPN h2); set upstream_protocol = \"h1\" for this pool".into(),
            });
        }
        let (sender, conn) = http2::Builder::new(TokioExecutor::new())
            .timer(TokioTimer::new())
            .keep_alive_interval(Duration::from_secs(30))
            .keep_alive_timeout(Duration::from_secs(10))
            .max_header_list_size(64 * 1024)
            .adaptive_window(true)
            .handshake(TokioIo::new(SendTimed::new(stream, send_timeout)))
            .await
            .map_err(|e| ProxyError::Connect {
                server: server.name.clone(),
                cause: format!("HTTP/2 handshake: {e}"),
            })?;
        let name = server.name.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::debug!(server = %name, "HTTP/2 upstream connection ended: {e}");
            }
        });
        self.opened.fetch_add(1, Ordering::Relaxed);
        slot.current.store(Some(Arc::new(sender.clone())));
        Ok((sender, false, started.elapsed()))
    }
}

/// A write to a server made no progress for `timeouts.send` (nginx's `proxy_send_timeout`).
#[derive(Debug)]
pub struct SendTimeout(pub Duration);

impl std::fmt::Display for SendTimeout {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the server took no bytes for {:?}", self.0)
    }
}

impl std::error::Error for SendTimeout {}

/// A connection to a server whose writes fail with [`SendTimeout`] once one has waited
/// `timeout` without the server taking a byte: the time between two successful writes is
/// bounded, as nginx's `proxy_send_timeout`. Reads are not touched (the read timeout is the
/// exchange's business).
pub struct SendTimed<T> {
    inner: T,
    timeout: Duration,
    /// Armed while a write waits for the server.
    stalled: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<T> SendTimed<T> {
    pub fn new(inner: T, timeout: Duration) -> Self {
        SendTimed {
            inner,
            timeout,
            stalled: None,
        }
    }

    /// After a write that returned `Pending`: fail once the stall has lasted `timeout`.
    fn check<R>(&mut self, cx: &mut Context<'_>, r: Poll<io::Result<R>>) -> Poll<io::Result<R>> {
        if r.is_ready() {
            self.stalled = None;
            return r;
        }
        let timeout = self.timeout;
        let sleep = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        match sleep.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                SendTimeout(timeout),
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for SendTimed<T> {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for SendTimed<T> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.check(cx, r)
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_flush(cx);
        this.check(cx, r)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_shutdown(cx);
        this.check(cx, r)
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let r = Pin::new(&mut this.inner).poll_write_vectored(cx, bufs);
        this.check(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}

/// Whether `e` (or one of its causes) is a send timeout of [`SendTimed`].
pub fn is_send_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err.is::<SendTimeout>()
            || err
                .downcast_ref::<io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.is::<SendTimeout>())
        {
            return true;
        }
        cur = err.source();
    }
    false
}

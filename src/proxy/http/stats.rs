//! What an HTTP listener counts, and the one place an answer is accounted for: every answer
//! a client gets — a server's, or the balancer's own 4xx/5xx — goes through [`Answered::done`]
//! once, which counts it in its row (by status code, with its duration) and writes its
//! access-log line.
//!
//! Cheap by construction: a row is found when the site is built (one per route and pool the
//! listener can answer for, plus one for answers no route took), so counting is two relaxed
//! atomic increments and a histogram record, indexed by position — no lock, no allocation,
//! no string formatting. Rows live in the listener's [`HttpStats`], which outlives reloads.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use crate::observe::access::AccessRecord;
use crate::observe::histogram::{Histogram, Snapshot};
use crate::observe::sink::AccessLog;

/// Status codes counted one by one: 100 to 599.
const CODES: usize = 500;

/// The answers of one route and pool of a listener.
#[derive(Debug)]
pub struct Row {
    /// The route's `name` or position in the listener (`1`, `2`, …), `default`, or `-`.
    pub route: String,
    /// The pool, or `-`.
    pub pool: String,
    codes: Box<[AtomicU64; CODES]>,
    /// From the request head to the answer's last byte.
    pub duration: Histogram,
}

impl Row {
    fn new(route: &str, pool: &str) -> Row {
        Row {
            route: route.to_string(),
            pool: pool.to_string(),
            codes: Box::new(std::array::from_fn(|_| AtomicU64::new(0))),
            duration: Histogram::new(),
        }
    }

    /// Count one answer.
    pub fn count(&self, status: u16, took: Duration) {
        if let Some(c) = self.codes.get(usize::from(status).wrapping_sub(100)) {
            c.fetch_add(1, Ordering::Relaxed);
        }
        self.duration.record(took);
    }

    /// The answers counted, by code (only the codes seen).
    pub fn codes(&self) -> Vec<(u16, u64)> {
        self.codes
            .iter()
            .enumerate()
            .filter_map(|(i, c)| {
                let n = c.load(Ordering::Relaxed);
                (n > 0).then_some((i as u16 + 100, n))
            })
            .collect()
    }

    pub fn durations(&self) -> Snapshot {
        self.duration.snapshot()
    }
}

/// One HTTP listener's counters; the runtime hands the same to each site it builds for the
/// listener, so they outlive reloads.
#[derive(Debug, Default)]
pub struct HttpStats {
    /// Every row a site of this listener has used, by (route, pool).
    rows: Mutex<Vec<Arc<Row>>>,
    /// Client connections open now, and ever.
    pub open: AtomicU64,
    pub connections: AtomicU64,
    /// Bytes read from and written to clients (after TLS, after a PROXY header).
    pub bytes_in: AtomicU64,
    pub bytes_out: AtomicU64,
    /// TLS handshakes that completed, and those that failed or timed out (https only).
    pub tls_handshakes: AtomicU64,
    pub tls_failures: AtomicU64,
}

impl HttpStats {
    /// The row of `route` and `pool`, made the first time (when a site is built).
    pub fn row(&self, route: &str, pool: &str) -> Arc<Row> {
        let mut rows = self.rows.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(r) = rows.iter().find(|r| r.route == route && r.pool == pool) {
            return r.clone();
        }
        let r = Arc::new(Row::new(route, pool));
        rows.push(r.clone());
        r
    }

    /// Every row, for `/metrics`.
    pub fn rows(&self) -> Vec<Arc<Row>> {
        self.rows.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Count a connection open until the guard drops.
    pub fn open(self: &Arc<Self>) -> OpenConn {
        self.open.fetch_add(1, Ordering::Relaxed);
        self.connections.fetch_add(1, Ordering::Relaxed);
        OpenConn(self.clone())
    }
}

/// One open client connection.
pub struct OpenConn(Arc<HttpStats>);

pin_project_lite::pin_project! {
    /// A client connection whose bytes each way are counted in its listener's
    /// [`HttpStats`] (one relaxed add per read or write), open while it lives.
    pub struct CountedIo<C> {
        #[pin]
        inner: C,
        open: OpenConn,
    }
}

impl<C> CountedIo<C> {
    pub fn new(inner: C, stats: &Arc<HttpStats>) -> CountedIo<C> {
        CountedIo {
            inner,
            open: stats.open(),
        }
    }

    pub fn get_ref(&self) -> &C {
        &self.inner
    }
}

impl<C: tokio::io::AsyncRead> tokio::io::AsyncRead for CountedIo<C> {
    fn poll_read(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = self.project();
        let before = buf.filled().len();
        let polled = this.inner.poll_read(cx, buf);
        let n = buf.filled().len() - before;
        if n > 0 {
            this.open.0.bytes_in.fetch_add(n as u64, Ordering::Relaxed);
        }
        polled
    }
}

impl<C: tokio::io::AsyncWrite> tokio::io::AsyncWrite for CountedIo<C> {
    fn poll_write(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &polled {
            this.open
                .0
                .bytes_out
                .fetch_add(*n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn poll_write_vectored(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let this = self.project();
        let polled = this.inner.poll_write_vectored(cx, bufs);
        if let std::task::Poll::Ready(Ok(n)) = &polled {
            this.open
                .0
                .bytes_out
                .fetch_add(*n as u64, Ordering::Relaxed);
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.project().inner.poll_flush(cx)
    }

    fn poll_shutdown(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        self.project().inner.poll_shutdown(cx)
    }
}

impl Drop for OpenConn {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::Relaxed);
    }
}

/// One answer, as it is accounted for.
pub struct Answered<'a> {
    pub row: &'a Row,
    pub listener: &'a str,
    pub client: SocketAddr,
    pub method: &'a [u8],
    pub target: &'a [u8],
    pub protocol: &'a str,
    pub host: &'a [u8],
    pub referer: &'a [u8],
    pub user_agent: &'a [u8],
    pub status: u16,
    pub body_bytes: u64,
    pub upstream: Option<SocketAddr>,
    pub attempts: u32,
    pub upstream_connect: Option<Duration>,
    pub upstream_header: Option<Duration>,
    pub started: Instant,
}

impl Answered<'_> {
    /// Count it, and write its access-log line (when the log is on).
    pub fn done(&self, log: &AccessLog) {
        self.done_at(log, Instant::now());
    }

    /// [`Answered::done`] for an answer that ended at `ended`, a clock its caller read.
    pub fn done_at(&self, log: &AccessLog, ended: Instant) {
        let total = ended.saturating_duration_since(self.started);
        self.row.count(self.status, total);
        log.write(|out, format| {
            AccessRecord {
                listener: self.listener,
                client: self.client,
                method: self.method,
                target: self.target,
                protocol: self.protocol,
                host: self.host,
                status: self.status,
                body_bytes: self.body_bytes,
                referer: self.referer,
                user_agent: self.user_agent,
                pool: &self.row.pool,
                upstream: self.upstream,
                attempts: self.attempts,
                upstream_connect: self.upstream_connect,
                upstream_header: self.upstream_header,
                total,
                at: SystemTime::now(),
            }
            .write(out, format)
        });
    }
}

/// What is known of a request the balancer answered before it could read it whole: its
/// method, target and protocol when its request line parsed, else `-`.
#[derive(Clone, Copy)]
pub struct Unread<'a> {
    pub method: &'a [u8],
    pub target: &'a [u8],
    pub protocol: &'a str,
}

impl Unread<'_> {
    /// Nothing of the request is known.
    pub const NOTHING: Unread<'static> = Unread {
        method: b"-",
        target: b"-",
        protocol: "-",
    };
}

/// Account for an answer of the balancer's own to a request it could not read — a head
/// malformed or over a limit (400, 414, 431), too slow (408), or a client over its
/// connection limit (503) — with the answers no route took: counted, and logged with what
/// is known. Only refusals come here: the normal path never does.
#[cold]
pub fn refused(
    site: &super::Site,
    client: SocketAddr,
    request: Unread<'_>,
    status: u16,
    body_bytes: u64,
    started: Instant,
) {
    Answered {
        row: &site.router.none_row,
        listener: &site.listener,
        client,
        method: request.method,
        target: request.target,
        protocol: request.protocol,
        host: b"",
        referer: b"",
        user_agent: b"",
        status,
        body_bytes,
        upstream: None,
        attempts: 0,
        upstream_connect: None,
        upstream_header: None,
        started,
    }
    .done(&site.log);
}

/// An answer of the hyper path (HTTP/2, and HTTP/1 to HTTP/2 pools), accounted for when its
/// body has been sent (or the client went away): the fields are owned, as the body outlives
/// the request's borrows.
pub struct Pending {
    pub site: Arc<super::Site>,
    pub row: Arc<Row>,
    pub client: SocketAddr,
    pub method: http::Method,
    pub target: bytes::Bytes,
    pub protocol: &'static str,
    pub host: Vec<u8>,
    pub referer: Vec<u8>,
    pub user_agent: Vec<u8>,
    pub status: u16,
    pub body_bytes: u64,
    pub upstream: Option<SocketAddr>,
    pub attempts: u32,
    pub upstream_connect: Option<Duration>,
    pub upstream_header: Option<Duration>,
    pub started: Instant,
}

impl Drop for Pending {
    fn drop(&mut self) {
        Answered {
            row: &self.row,
            listener: &self.site.listener,
            client: self.client,
            method: self.method.as_str().as_bytes(),
            target: &self.target,
            protocol: self.protocol,
            host: &self.host,
            referer: &self.referer,
            user_agent: &self.user_agent,
            status: self.status,
            body_bytes: self.body_bytes,
            upstream: self.upstream,
            attempts: self.attempts,
            upstream_connect: self.upstream_connect,
            upstream_header: self.upstream_header,
            started: self.started,
        }
        .done(&self.site.log);
    }
}

pin_project_lite::pin_project! {
    /// A response body that counts its bytes and accounts for its answer when dropped (not
    /// boxed again: hyper's answers carry it as it is).
    pub struct Counted<B> {
        #[pin]
        inner: B,
        pending: Option<Pending>,
    }
}

impl<B> Counted<B> {
    pub fn new(inner: B, pending: Pending) -> Counted<B> {
        Counted {
            inner,
            pending: Some(pending),
        }
    }

    /// An answer accounted for elsewhere (or not at all: the https redirect).
    pub fn uncounted(inner: B) -> Counted<B> {
        Counted {
            inner,
            pending: None,
        }
    }
}

impl<B: http_body::Body<Data = bytes::Bytes>> http_body::Body for Counted<B> {
    type Data = bytes::Bytes;
    type Error = B::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let polled = this.inner.poll_frame(cx);
        if let std::task::Poll::Ready(Some(Ok(f))) = &polled
            && let Some(d) = f.data_ref()
            && let Some(p) = this.pending
        {
            p.body_bytes += d.len() as u64;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// The origin form of a request target: the path and query of an absolute-form one.
pub fn origin_form(target: &[u8]) -> &[u8] {
    if target.first() == Some(&b'/') || target == b"*" {
        return target;
    }
    // scheme://authority/path…
    let Some(at) = target.windows(3).position(|w| w == b"://") else {
        return target;
    };
    let rest = &target[at + 3..];
    match rest.iter().position(|&b| b == b'/' || b == b'?') {
        Some(i) if rest[i] == b'/' => &rest[i..],
        Some(i) => &rest[i..],
        None => b"/",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_count_each_code_and_outlive_the_sites() {
        let stats = HttpStats::default();
        let a = stats.row("1", "api");
        a.count(200, Duration::from_millis(2));
        a.count(200, Duration::from_millis(3));
        a.count(503, Duration::from_millis(1));
        a.count(42, Duration::ZERO);
        assert_eq!(a.codes(), vec![(200, 2), (503, 1)]);
        assert_eq!(a.durations().count(), 4);
        assert!(
            Arc::ptr_eq(&a, &stats.row("1", "api")),
            "a rebuilt site finds it again"
        );
        assert_eq!(stats.rows().len(), 1);
    }

    #[test]
    fn targets_are_written_in_origin_form() {
        assert_eq!(origin_form(b"/a?b"), b"/a?b");
        assert_eq!(origin_form(b"http://h:80/a?b"), b"/a?b");
        assert_eq!(origin_form(b"http://h?x"), b"?x");
        assert_eq!(origin_form(b"http://h"), b"/");
        assert_eq!(origin_form(b"*"), b"*");
    }
}

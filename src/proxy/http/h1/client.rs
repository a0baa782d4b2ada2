//! The HTTP/1.1 tries of the requests hyper serves (HTTP/2 clients, and HTTP/1.x clients
//! on listeners the direct path does not serve) over the direct path's server connections
//! (`h1/pool.rs`), without hyper's HTTP/1.1 client: the request head written from the
//! prepared `http` parts into the connection's buffer with the first body bytes, the body
//! streamed by its length or chunked, the answer's head read with httparse and the framing
//! rules of `h1/parse.rs`, and its body handed to hyper as a [`ServerBody`] that reads the
//! connection and puts it back on its server's idle list at its end (no task, no channel).
//!
//! Failures are classified where they happen, as on the direct path (`h1/exchange.rs`):
//! the client's body (stalled, too large, broken off: 408 / 413 / 400, no passive failure),
//! the server's (closed, reset or garbage: 502; no answer within `timeouts.read`, no bytes
//! taken within `timeouts.send`: 504). A reused connection that fails before the request
//! left (or, for a request we hold whole and may send twice, before any answer) gets the
//! request once more on a fresh connection. WebSocket upgrades keep hyper's client.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;

use super::body::{self, FLUSH_AT, ReadBuf, chunk_line, trailers};
use super::exchange::{HeadFailed, answer_head_by, open};
use super::head::{hop_by_hop, named_by_connection};
use super::parse::{self, MAX_HEAD, ResponseHead};
use super::pool::{IdleConns, ServerConn};
use super::upload::{Encoder, Out, Upload};
use crate::error::ProxyError;
use crate::proxy::http::body::{
    BodyOverLimit, BoxError, ClientBodyTimeout, ProxyBody, UpstreamBody, boxed, empty, full,
};
use crate::proxy::http::forwarding::{Forwarding, Seen};
use crate::proxy::http::replay::ReplayBody;
use crate::proxy::http::transport::{SendTimed, ServerStream, is_send_timeout};
use crate::proxy::http::upstream::Upstream;
use crate::upstream::{InFlight, Server};

/// A request as every try sends it: the prepared head and the pool's `host_header`.
pub struct Outgoing<'a> {
    pub parts: &'a http::request::Parts,
    /// The forwarding headers, written after the client's fields.
    pub fwd: &'a Forwarding<'static>,
    /// `host_header = "upstream"`: the server's address replaces `Host`.
    pub host_from_server: bool,
}

/// One try on `server`: a connection (idle or new), the request, the answer's head (its
/// body streaming). The body is taken from `body` only once a connection is open, so a
/// failed connect leaves it whole for the next server. `connect`: the time the connection
/// took to open (zero when reused), set as soon as it is open, for failed tries too.
pub async fn exchange(
    up: &Upstream,
    server: &Arc<Server>,
    req: &Outgoing<'_>,
    body: &mut ReplayBody,
    in_flight: InFlight,
    connect: &mut Option<Duration>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let mut conn = match up.idle().take(server) {
        Some(c) => {
            *connect = Some(Duration::ZERO);
            c
        }
        None => {
            let (c, took) = open(up, server).await?;
            *connect = Some(took);
            c
        }
    };
    let whole = matches!(body, ReplayBody::Empty | ReplayBody::Kept { .. });
    let mut data = body.for_send();
    let mut resent = false;
    let upload = loop {
        let mut touched = false;
        let sent = send(up, server, &mut conn, req, &mut data, &mut touched, whole).await;
        let failed = match sent {
            Ok(upload) => match answer(up, &mut conn).await {
                Ok(()) => break upload,
                Err(HeadFailed::TimedOut) => {
                    return Err(ProxyError::Timeout {
                        server: server.name.clone(),
                        after: up.pool.timeouts.read,
                    });
                }
                Err(HeadFailed::Bad(cause)) => return Err(upstream_error(server, cause)),
                // The server's idle close met our request: if it may be sent again, once,
                // on a fresh connection.
                Err(HeadFailed::Nothing(cause))
                    if conn.reused && !resent && whole && req.parts.method.is_idempotent() =>
                {
                    cause
                }
                Err(HeadFailed::Nothing(cause)) => return Err(upstream_error(server, cause)),
            },
            // The write to a reused connection failed before the request left.
            Err((e, true)) if conn.reused && !resent => e.to_string(),
            Err((e, _)) => return Err(e),
        };
        tracing::debug!(server = %server.name, "kept-alive connection failed ({failed}); sending again on a new one");
        resent = true;
        if touched {
            // A body held whole: a fresh copy.
            data = body.for_send();
        }
        let took;
        (conn, took) = open(up, server).await?;
        *connect = Some(took);
    };
    response(up, server, conn, &req.parts.method, in_flight, upload)
}

fn upstream_error(server: &Server, cause: String) -> ProxyError {
    ProxyError::Upstream {
        server: server.name.clone(),
        cause,
    }
}

/// The request head into `out`, without its body: origin-form target, HTTP/1.1, the
/// prepared fields (the hop-by-hop ones are gone already but `TE: trailers`, which HTTP/1.1
/// servers want before they send trailers, as hyper's client sends it), then our framing.
/// Returns the framing.
fn head_out(out: &mut Vec<u8>, req: &Outgoing<'_>, server: &Server, body: &ProxyBody) -> Out {
    let parts = req.parts;
    out.extend_from_slice(parts.method.as_str().as_bytes());
    out.push(b' ');
    let target = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut declared = false;
    // The target's authority (an HTTP/2 `:authority`, an absolute-form target's) is the
    // host, replacing the `Host` line (`forward.rs`).
    let authority = parts.uri.authority().map(|a| a.as_str());
    let own_host = req.host_from_server || authority.is_some();
    let mut seen = Seen::default();
    for (name, value) in &parts.headers {
        if *name == header::CONTENT_LENGTH {
            declared = true;
            continue;
        }
        if *name == header::TRANSFER_ENCODING
            || (own_host && *name == header::HOST)
            || !req.fwd.passes(name.as_str().as_bytes(), &mut seen)
        {
            continue;
        }
        for part in [name.as_str().as_bytes(), b": ", value.as_bytes(), b"\r\n"] {
            out.extend_from_slice(part);
        }
    }
    if req.host_from_server {
        use std::io::Write;
        let _ = write!(out, "host: {}\r\n", server.addr);
    } else if let Some(a) = authority {
        for part in [&b"host: "[..], a.as_bytes(), b"\r\n"] {
            out.extend_from_slice(part);
        }
    }
    // The host routed on, for the headers that name it.
    let from_field = || parts.headers.get(header::HOST)?.to_str().ok();
    let host = authority.or_else(|| req.fwd.wants_host().then(from_field).flatten());
    Forwarding { host, ..*req.fwd }.write(out, &parts.headers, &seen);
    let framing = if body.is_end_stream() {
        Out::Empty
    } else {
        match body.size_hint().exact() {
            Some(n) => Out::Length(n),
            None => Out::Chunked,
        }
    };
    match framing {
        Out::Empty => {
            // A request that declared its empty body, or whose method means one, says so.
            let wants = matches!(parts.method, Method::POST | Method::PUT | Method::PATCH);
            if declared || wants {
                out.extend_from_slice(b"content-length: 0\r\n");
            }
        }
        Out::Length(n) => {
            use std::io::Write;
            let _ = write!(out, "content-length: {n}\r\n");
        }
        Out::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
    }
    out.extend_from_slice(b"\r\n");
    framing
}

/// The client's body failed: it stalled (408), went past `client_max_body_size` (413), or
/// broke off (not the server's fault).
fn client_error(e: &(dyn std::error::Error + 'static)) -> ProxyError {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if let Some(t) = err.downcast_ref::<ClientBodyTimeout>() {
            return ProxyError::ClientTimeout(t.0);
        }
        if let Some(over) = err.downcast_ref::<BodyOverLimit>() {
            return ProxyError::BodyTooLarge(over.0);
        }
        cur = err.source();
    }
    ProxyError::ClientAborted(e.to_string())
}

fn write_failed(up: &Upstream, server: &Server, e: &io::Error) -> ProxyError {
    if is_send_timeout(e) {
        return ProxyError::Timeout {
            server: server.name.clone(),
            after: up.pool.timeouts.send,
        };
    }
    upstream_error(server, e.to_string())
}

/// Write the request to `conn`: the head with what the body has ready, then the rest as
/// the client sends it. `Ok(Some(_))`: the server answered (or closed) while the body was
/// still coming; the rest of it goes beside the answer. `Err((e, true))`: a write failed
/// before the request left, or while we hold the body whole (it may go again).
async fn send(
    up: &Upstream,
    server: &Server,
    conn: &mut ServerConn,
    req: &Outgoing<'_>,
    body: &mut ProxyBody,
    touched: &mut bool,
    whole: bool,
) -> Result<Option<Upload>, (ProxyError, bool)> {
    let mut out = std::mem::take(&mut conn.out);
    out.clear();
    let framing = head_out(&mut out, req, server, body);
    let ends = Ends {
        io: &mut conn.io,
        rb: &mut conn.rb,
        out: &mut out,
        head: &mut conn.head,
    };
    let r = send_body(up, server, ends, body, framing, touched, whole).await;
    out.clear();
    conn.out = out;
    r
}

/// The server connection's halves a body send uses.
struct Ends<'a> {
    io: &'a mut SendTimed<ServerStream>,
    rb: &'a mut ReadBuf,
    out: &'a mut Vec<u8>,
    head: &'a mut ResponseHead,
}

async fn send_body(
    up: &Upstream,
    server: &Server,
    ends: Ends<'_>,
    body: &mut ProxyBody,
    framing: Out,
    touched: &mut bool,
    whole: bool,
) -> Result<Option<Upload>, (ProxyError, bool)> {
    let Ends { io, rb, out, head } = ends;
    macro_rules! flush {
        () => {
            if !out.is_empty() {
                // Flushed too: over TLS the last records could wait in rustls while we wait
                // on the client or the server (`body::send`).
                if let Err(e) = body::send(io, out).await {
                    return Err((write_failed(up, server, &e), !*touched || whole));
                }
                out.clear();
            }
        };
    }
    if framing == Out::Empty {
        flush!();
        return Ok(None);
    }
    let mut enc = Encoder::new(framing);
    loop {
        // What the body has ready goes with what is gathered; then a write before waiting.
        let ready = std::future::poll_fn(|cx| {
            Poll::Ready(match Pin::new(&mut *body).poll_frame(cx) {
                Poll::Ready(f) => Some(f),
                Poll::Pending => None,
            })
        })
        .await;
        let frame = match ready {
            Some(f) => f,
            None => {
                flush!();
                // While the client's next bytes are awaited, the server may answer (or close):
                // then the answer is read, and the rest of the body goes beside it. An
                // interim answer (a `100 Continue` unasked) is passed over.
                tokio::select! {
                    biased;
                    f = body.frame() => f,
                    got = rb.fill(io, MAX_HEAD) => {
                        if matches!(got, Ok(n) if n > 0) && only_interim(rb, head) {
                            continue;
                        }
                        let rest = std::mem::replace(body, empty());
                        return Ok(Some(Upload::new(rest, enc)));
                    }
                }
            }
        };
        let frame = match frame {
            None => break,
            Some(Err(e)) => return Err((client_error(&*e), false)),
            Some(Ok(f)) => f,
        };
        *touched = true;
        enc.frame(out, frame).map_err(|e| (e, false))?;
        if out.len() >= FLUSH_AT {
            flush!();
        }
    }
    enc.end(out).map_err(|e| (e, false))?;
    flush!();
    Ok(None)
}

/// Whether `rb` held only whole interim answers (1xx but 101), now passed over.
fn only_interim(rb: &mut ReadBuf, head: &mut ResponseHead) -> bool {
    while let Ok(true) = parse::response(rb.data(), head) {
        if !(100..200).contains(&head.status) || head.status == 101 {
            return false;
        }
        rb.consume(head.len);
    }
    rb.is_empty()
}

/// Read the answer's head into `conn.head` (interim 1xx answers are passed over; a 101 was
/// not asked for: upgrades keep hyper's client).
/// The wait is on the connection's timer, moved to each try's deadline (a timeout per try
/// would register a timer with the runtime and remove it again).
async fn answer(up: &Upstream, conn: &mut ServerConn) -> Result<(), HeadFailed> {
    let by = tokio::time::Instant::now() + up.pool.timeouts.read;
    let timer = &mut conn.tries.get_or_insert_with(Box::default).timer;
    answer_head_by(
        &mut conn.rb,
        &mut conn.io,
        &mut conn.head,
        by,
        Some(timer),
        false,
    )
    .await
}

/// The answer for hyper: its status, its fields less the hop-by-hop ones (one
/// `Content-Length`, none beside chunked), and its body reading the connection.
fn response(
    up: &Upstream,
    server: &Arc<Server>,
    mut conn: ServerConn,
    method: &Method,
    in_flight: InFlight,
    upload: Option<Upload>,
) -> Result<Response<ProxyBody>, ProxyError> {
    let head = &conn.head;
    let buf = conn.rb.data();
    let bad = |why: &str| upstream_error(server, why.into());
    let status = StatusCode::from_u16(head.status).map_err(|_| bad("invalid status"))?;
    let framing = head.framing(*method == Method::HEAD);
    // A body of known length already read whole with its head (a small answer: most of
    // them) is handed over as it is, and the connection goes back at once, with no body
    // that reads it and no read timeout to arm.
    let whole = match framing {
        parse::Framing::Length(n) if upload.is_none() && n <= (buf.len() - head.len) as u64 => {
            Some(n as usize)
        }
        _ => None,
    };
    let mut headers = HeaderMap::with_capacity(head.fields.len() + 1);
    // The values (and a whole body) share one copy of the head, in a buffer kept with the
    // connection (`bytes` takes its room back once the answers before were sent).
    let len = head.len + whole.unwrap_or(0);
    let answers = &mut conn.tries.get_or_insert_with(Box::default).answers;
    answers.reserve(len);
    answers.extend_from_slice(&buf[..len]);
    let shared = answers.split().freeze();
    for f in &head.fields {
        let name = f.name.get(buf);
        if name.eq_ignore_ascii_case(b"content-length")
            || hop_by_hop(name)
            || named_by_connection(buf, &head.connection_tokens, name)
        {
            continue;
        }
        let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_maybe_shared(shared.slice(f.value.range())),
        ) else {
            return Err(bad("an invalid header field"));
        };
        headers.append(n, v);
    }
    if let (Some(n), false) = (head.content_length, head.chunked) {
        headers.insert(header::CONTENT_LENGTH, length_value(&shared, head, n));
    }
    let reusable = head.keep_alive && framing != parse::Framing::Close;
    conn.rb.consume(head.len);
    if let Some(n) = whole {
        conn.rb.consume(n);
        // Anything after it was not asked for: the connection closes.
        if reusable && conn.rb.is_empty() {
            up.idle().put(server, conn);
        }
        drop(in_flight);
        let mut resp = Response::new(full(shared.slice(shared.len() - n..)));
        *resp.status_mut() = status;
        *resp.version_mut() = Version::HTTP_11;
        *resp.headers_mut() = headers;
        return Ok(resp);
    }
    let state = match framing {
        parse::Framing::Empty => State::Done,
        parse::Framing::Length(n) => State::Length(n),
        parse::Framing::Chunked => State::Size,
        parse::Framing::Close => State::Close,
    };
    let body = if let Some(upload) = upload {
        let body = ServerBody {
            conn: Some(conn),
            state,
            reusable,
            hold: true,
            idle: up.idle().clone(),
            server: server.clone(),
        };
        let (tx, rx) = tokio::sync::mpsc::channel(1);
        let (gone, reader_gone) = tokio::sync::oneshot::channel();
        tokio::spawn(duplex(body, upload, tx, reader_gone, in_flight));
        let relayed = Relayed {
            rx,
            done: state == State::Done,
            _gone: gone,
        };
        boxed(UpstreamBody::counted_elsewhere(
            relayed,
            up.pool.timeouts.read,
        ))
    } else if state == State::Done {
        if reusable && conn.rb.is_empty() {
            up.idle().put(server, conn);
        }
        drop(in_flight);
        empty()
    } else {
        let body = ServerBody {
            conn: Some(conn),
            state,
            reusable,
            hold: false,
            idle: up.idle().clone(),
            server: server.clone(),
        };
        boxed(UpstreamBody::new(body, in_flight, up.pool.timeouts.read))
    };
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.version_mut() = Version::HTTP_11;
    *resp.headers_mut() = headers;
    Ok(resp)
}

/// The `Content-Length` value for `n`: the server's own bytes when it wrote just the
/// digits once (most do; no allocation), else `n` written out.
fn length_value(shared: &Bytes, head: &ResponseHead, n: u64) -> HeaderValue {
    let mut lengths = head
        .fields
        .iter()
        .filter(|f| f.name.get(shared).eq_ignore_ascii_case(b"content-length"));
    if let (Some(f), None) = (lengths.next(), lengths.next()) {
        let v = f.value.get(shared);
        if !v.is_empty()
            && v.len() <= 19
            && v.iter().all(u8::is_ascii_digit)
            && v[0] != b'0'
            && let Ok(v) = HeaderValue::from_maybe_shared(shared.slice(f.value.range()))
        {
            return v;
        }
    }
    HeaderValue::from(n)
}

/// Where a response body's reading is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// Bytes left of a `Content-Length` body.
    Length(u64),
    /// Chunked: the next size line.
    Size,
    /// Chunked: bytes left of this chunk.
    Data(u64),
    /// Chunked: the CRLF after a chunk's data.
    DataEnd,
    /// Chunked: the trailer section after the last chunk.
    Trailers,
    /// To the server's close.
    Close,
    Done,
}

/// A response body read from the server's connection by its framing (chunked checked as
/// `h1/body.rs` checks it), the connection put back on its server's idle list at the end
/// when the server keeps it open and sent nothing more; dropped or failed before that, the
/// connection closes.
pub struct ServerBody {
    conn: Option<ServerConn>,
    state: State,
    reusable: bool,
    /// An upload still goes on over the connection ([`duplex`]): kept at the end.
    hold: bool,
    idle: Arc<IdleConns>,
    server: Arc<Server>,
}

fn framing_error(why: &'static str) -> BoxError {
    Box::new(io::Error::new(io::ErrorKind::InvalidData, why))
}

impl ServerBody {
    /// The body ended: the connection back to the idle list, or closed.
    fn finish(&mut self) {
        self.state = State::Done;
        if self.hold {
            return;
        }
        if let Some(conn) = self.conn.take()
            && self.reusable
            && conn.rb.is_empty()
        {
            self.idle.put(&self.server, conn);
        }
    }

    fn fail(&mut self, e: BoxError) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        self.state = State::Done;
        self.conn = None;
        Poll::Ready(Some(Err(e)))
    }
}

/// Read more into the connection's buffer; `Ok(false)` at its close.
fn poll_more(conn: &mut ServerConn, cx: &mut Context<'_>) -> Poll<io::Result<bool>> {
    let limit = conn.rb.capacity();
    let n = ready!(conn.rb.poll_fill(cx, &mut conn.io, limit))?;
    Poll::Ready(Ok(n > 0))
}

/// The trailer lines `b` (without the final empty line) as fields, but the hop-by-hop ones
/// (h2 refuses to send `connection`, `te`, ... and would reset the stream after a whole body).
fn trailer_fields(b: &[u8]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for line in b.split(|&c| c == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        if hop_by_hop(line[..colon].trim_ascii()) {
            continue;
        }
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) {
            map.append(n, v);
        }
    }
    map
}

impl Body for ServerBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            let Some(conn) = this.conn.as_mut() else {
                return Poll::Ready(None);
            };
            // The state's bytes when the buffer holds them, else a read and again.
            let need_more = match this.state {
                State::Done => return Poll::Ready(None),
                State::Length(left) | State::Data(left) if !conn.rb.is_empty() => {
                    let n = (conn.rb.data().len() as u64).min(left) as usize;
                    let data = Bytes::copy_from_slice(&conn.rb.data()[..n]);
                    conn.rb.consume(n);
                    let left = left - n as u64;
                    match this.state {
                        State::Length(_) if left == 0 => this.finish(),
                        State::Length(_) => this.state = State::Length(left),
                        _ if left == 0 => this.state = State::DataEnd,
                        _ => this.state = State::Data(left),
                    }
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::Close if !conn.rb.is_empty() => {
                    let data = Bytes::copy_from_slice(conn.rb.data());
                    let n = data.len();
                    conn.rb.consume(n);
                    return Poll::Ready(Some(Ok(Frame::data(data))));
                }
                State::Size => match chunk_line(conn.rb.data()) {
                    Err(why) => return this.fail(framing_error(why)),
                    Ok(None) => true,
                    Ok(Some((line, size))) => {
                        conn.rb.consume(line);
                        this.state = if size == 0 {
                            State::Trailers
                        } else {
                            State::Data(size)
                        };
                        false
                    }
                },
                State::DataEnd if conn.rb.data().len() >= 2 => {
                    if &conn.rb.data()[..2] != b"\r\n" {
                        return this.fail(framing_error("chunk data not followed by CRLF"));
                    }
                    conn.rb.consume(2);
                    this.state = State::Size;
                    false
                }
                State::Trailers => match trailers(conn.rb.data()) {
                    Err(why) => return this.fail(framing_error(why)),
                    Ok(None) => true,
                    Ok(Some(len)) => {
                        let fields = (len > 2).then(|| trailer_fields(&conn.rb.data()[..len - 2]));
                        conn.rb.consume(len);
                        this.finish();
                        return match fields {
                            Some(t) if !t.is_empty() => Poll::Ready(Some(Ok(Frame::trailers(t)))),
                            _ => Poll::Ready(None),
                        };
                    }
                },
                State::Length(_) | State::Data(_) | State::DataEnd | State::Close => true,
            };
            if !need_more {
                continue;
            }
            match poll_more(conn, cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(true)) => {}
                Poll::Ready(Ok(false)) if this.state == State::Close => {
                    this.state = State::Done;
                    this.conn = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(false)) => {
                    return this.fail(Box::new(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "the server closed before the body's end",
                    )));
                }
                Poll::Ready(Err(e)) => return this.fail(Box::new(e)),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.state == State::Done
    }

    fn size_hint(&self) -> SizeHint {
        match self.state {
            State::Length(n) => SizeHint::with_exact(n),
            State::Done => SizeHint::with_exact(0),
            _ => SizeHint::default(),
        }
    }
}

type Relay = Result<Frame<Bytes>, BoxError>;

/// An answer that came while its request's body was still being sent: one task writes the
/// rest of the body and reads the answer's body for the client (as hyper's client reads and
/// writes at once), and when both have ended whole the connection goes back to the idle
/// list. The answer's reader gone, or the upload failed: the connection closes (after the
/// answer's end, when only the upload failed).
async fn duplex(
    mut body: ServerBody,
    mut upload: Upload,
    tx: tokio::sync::mpsc::Sender<Relay>,
    mut reader_gone: tokio::sync::oneshot::Receiver<()>,
    // The server is busy until both ends are over (the upload may outlive the answer).
    _in_flight: InFlight,
) {
    // Dropped when the answer has been read whole: the client sees its end while the
    // upload may still go on.
    let mut tx = Some(tokio_util::sync::PollSender::new(tx));
    let (mut sent, mut read) = (false, false);
    let whole = std::future::poll_fn(|cx| {
        // The answer's reader gone before its end: nothing more is wanted.
        if !read && Pin::new(&mut reader_gone).poll(cx).is_ready() {
            return Poll::Ready(false);
        }
        if !sent {
            let Some(conn) = body.conn.as_mut() else {
                return Poll::Ready(false);
            };
            match upload.poll_drive(cx, &mut conn.io) {
                Poll::Ready(Ok(())) => sent = true,
                // The upload failed (the client's body, or the server took no more): the
                // connection is not kept, but the answer is relayed to its end (or its
                // failure), never cut short to look whole, as hyper's client did.
                Poll::Ready(Err(())) => {
                    sent = true;
                    body.reusable = false;
                }
                Poll::Pending => {}
            }
        }
        while let Some(relay) = tx.as_mut() {
            match relay.poll_reserve(cx) {
                Poll::Ready(Ok(())) => {}
                Poll::Ready(Err(_)) => return Poll::Ready(false),
                Poll::Pending => break,
            }
            match Pin::new(&mut body).poll_frame(cx) {
                Poll::Pending => break,
                Poll::Ready(None) => {
                    read = true;
                    tx = None;
                }
                Poll::Ready(Some(frame)) => {
                    let failed = frame.is_err();
                    if relay.send_item(frame).is_err() || failed {
                        return Poll::Ready(false);
                    }
                }
            }
        }
        if sent && read {
            Poll::Ready(true)
        } else {
            Poll::Pending
        }
    })
    .await;
    if let Some(conn) = body.conn.take()
        && whole
        && body.reusable
        && conn.rb.is_empty()
    {
        body.idle.put(&body.server, conn);
    }
}

/// The answer's body as [`duplex`] relays it.
struct Relayed {
    rx: tokio::sync::mpsc::Receiver<Relay>,
    /// The answer has no body.
    done: bool,
    /// Dropped with this body: [`duplex`] stops reading for nobody.
    _gone: tokio::sync::oneshot::Sender<()>,
}

impl Body for Relayed {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.done {
            return Poll::Ready(None);
        }
        let frame = ready!(self.rx.poll_recv(cx));
        if frame.is_none() {
            self.done = true;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.done
    }
}

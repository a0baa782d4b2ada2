//! One try of a request on the direct HTTP/1 path: a server connection (idle or new), the
//! request head with the first body bytes in one write, the rest of the body copied, then
//! the response head. Implements [`Exchange`] for the retry loop.
//!
//! Failures are classified here, once, where they happen: the client's (its body stalled,
//! broke off or was malformed: 408 / 400, no retry, no passive failure), the server's
//! (connect: may go to another server even for a POST; reset or garbage: 502; no answer
//! within `timeouts.read` or no bytes taken within `timeouts.send`: 504). The resend rule is
//! written once: a reused connection that fails before any answer, for a request we still
//! hold whole, goes once more on a fresh connection to the same server.

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncWrite};

use super::body::{Copy, CopyError, ReadBuf, ReadFailed, flush};
use super::parse::{self, Framing, MAX_HEAD, ResponseHead};
use super::pool::ServerConn;
use super::timer::Timer;
use crate::config::HostHeader;
use crate::error::ProxyError;
use crate::proxy::http::attempt::{Answer, Exchange, idempotent};
use crate::proxy::http::headers::only_chunked;
use crate::proxy::http::transport::{SendTimed, is_send_timeout};
use crate::proxy::http::upstream::Upstream;
use crate::upstream::{InFlight, Server};

/// The request body as the tries see it.
pub enum Body {
    Empty,
    /// Read whole before the first try (small, known length): sent again from `kept`.
    Kept,
    /// Streams from the client to the first server that takes a connection.
    Stream(Framing),
    /// Streamed already (partly or whole): this request cannot be sent again.
    Spent,
}

/// A server's answer, its head parsed, the connection it came on.
pub struct Reply {
    pub conn: ServerConn,
    pub head: ResponseHead,
    pub in_flight: InFlight,
}

impl Answer for Reply {
    fn status(&self) -> u16 {
        self.head.status
    }
    fn grpc_unavailable(&self) -> bool {
        false
    }
}

/// Everything one request's tries share.
pub struct DirectExchange<'a, C> {
    pub up: &'a Upstream,
    /// The head for the server, up to (not including) its final empty line.
    pub head: &'a [u8],
    pub body: Body,
    pub kept: &'a [u8],
    pub method: &'a http::Method,
    pub expect_continue: bool,
    pub te_trailers: bool,
    /// The client asked to switch to WebSocket: a 101 is the answer it wants.
    pub upgrading: bool,
    pub client: &'a mut C,
    pub crb: &'a mut ReadBuf,
    pub out: &'a mut Vec<u8>,
    /// The head the answer is read into; handed back in the [`Reply`].
    pub resp: &'a mut ResponseHead,
    /// Bounds the wait for the answer head (the connection's, reused by each request).
    pub timer: &'a mut Timer,
    /// Set once the client was sent its `100 Continue`.
    pub continued: bool,
    /// Times of the last try, for the access log.
    pub connect: Option<Duration>,
    pub header: Option<Duration>,
    pub attempts: u32,
    pub server: Option<Arc<Server>>,
    /// `client_max_body_size` for a chunked body (`u64::MAX`: none).
    pub max_body: u64,
}

/// A new connection to `server`, and the time it took.
pub async fn open(up: &Upstream, server: &Server) -> Result<(ServerConn, Duration), ProxyError> {
    let started = Instant::now();
    let pool = &up.pool;
    let stream = up
        .transport()
        .connect(server, pool.timeouts.connect)
        .await?;
    up.conns().count_opened();
    let conn = ServerConn::new(SendTimed::new(stream, pool.timeouts.send));
    Ok((conn, started.elapsed()))
}

/// How waiting for a response head failed.
pub enum HeadFailed {
    /// The server closed or reset before a byte of the answer.
    Nothing(String),
    TimedOut,
    Bad(String),
}

impl<C: AsyncRead + AsyncWrite + Unpin + Send> DirectExchange<'_, C> {
    fn connect_failed(server: &Server, cause: String) -> ProxyError {
        ProxyError::Connect {
            server: server.name.clone(),
            cause,
        }
    }

    /// Write the head and the body to `conn`. `Err(None)`: the write to the server failed
    /// before any body byte of the client was used (the request is still whole).
    async fn send(
        &mut self,
        server: &Server,
        conn: &mut ServerConn,
    ) -> Result<(), Option<ProxyError>> {
        self.out.clear();
        self.out.extend_from_slice(self.head);
        if self.up.pool.host_header == HostHeader::Upstream {
            use std::io::Write;
            let _ = write!(self.out, "host: {}\r\n", server.addr);
        }
        self.out.extend_from_slice(b"\r\n");
        let framing = match self.body {
            Body::Empty => None,
            Body::Kept => {
                self.out.extend_from_slice(self.kept);
                None
            }
            Body::Stream(f) => Some(f),
            Body::Spent => {
                return Err(Some(ProxyError::BadRequest(
                    "request body already sent".into(),
                )));
            }
        };
        let Some(framing) = framing else {
            return flush(&mut conn.io, self.out)
                .await
                .map_err(|e| (!conn.reused).then(|| self.write_failed(server, &e)));
        };
        if self.expect_continue && !self.continued && self.crb.is_empty() {
            // The client waits for this before its body (hyper sends it on the first read
            // of the body, which is also now: a server is ready for it).
            self.continued = true;
            if let Err(e) = super::body::send(self.client, b"HTTP/1.1 100 Continue\r\n\r\n").await {
                return Err(Some(ProxyError::ClientAborted(e.to_string())));
            }
        }
        self.body = Body::Spent;
        let wait = self.up.pool.timeouts.client_body;
        let copied = Copy {
            src: &mut *self.client,
            rb: &mut *self.crb,
            dst: &mut conn.io,
            out: &mut *self.out,
            wait: Some(wait),
            chunked_out: framing == Framing::Chunked,
            trailers: self.te_trailers,
            max: self.max_body,
            moved: 0,
        }
        .body(framing)
        .await;
        match copied {
            Ok(()) => Ok(()),
            Err(CopyError::Read(ReadFailed::TimedOut)) => {
                Err(Some(ProxyError::ClientTimeout(wait)))
            }
            Err(CopyError::Read(ReadFailed::Io(e))) => {
                Err(Some(ProxyError::ClientAborted(e.to_string())))
            }
            Err(CopyError::Framing(why)) => Err(Some(ProxyError::BadRequest(why.into()))),
            Err(CopyError::TooLarge) => Err(Some(ProxyError::BodyTooLarge(self.max_body))),
            Err(CopyError::Write(e)) => Err(Some(self.write_failed(server, &e))),
        }
    }

    fn write_failed(&self, server: &Server, e: &std::io::Error) -> ProxyError {
        if is_send_timeout(e) {
            return ProxyError::Timeout {
                server: server.name.clone(),
                after: self.up.pool.timeouts.send,
            };
        }
        ProxyError::Upstream {
            server: server.name.clone(),
            cause: e.to_string(),
        }
    }

    /// Read the answer's head (interim 1xx answers other than 101 are passed over), within
    /// the pool's `read` timeout of `sent`, when the request went.
    async fn answer(
        &mut self,
        conn: &mut ServerConn,
        sent: tokio::time::Instant,
    ) -> Result<(), HeadFailed> {
        let by = sent + self.up.pool.timeouts.read;
        let (rb, io) = (&mut conn.rb, &mut conn.io);
        answer_head_by(
            rb,
            io,
            self.resp,
            by,
            Some(&mut *self.timer),
            self.upgrading,
        )
        .await
    }

    /// Whether the request can go once more as it went (we still hold it whole).
    fn whole(&self) -> bool {
        matches!(self.body, Body::Empty | Body::Kept)
    }
}

impl<C: AsyncRead + AsyncWrite + Unpin + Send> Exchange for DirectExchange<'_, C> {
    type Answer = Reply;

    async fn attempt(
        &mut self,
        server: &Arc<Server>,
        in_flight: InFlight,
    ) -> Result<Reply, ProxyError> {
        self.server = Some(server.clone());
        self.attempts += 1;
        self.connect = None;
        self.header = None;
        // One clock read for the try's start, the idle connection's age and (for a request
        // without a body) the start of the server's `read` timeout.
        let started = Instant::now();
        let (mut conn, connect) = match self.up.idle().take_at(server, started) {
            Some(c) => (c, Duration::ZERO),
            None => open(self.up, server).await?,
        };
        self.connect = Some(connect);
        let mut sending = started + connect;
        let mut resent = false;
        loop {
            let bodied = !matches!(self.body, Body::Empty);
            let sent = self.send(server, &mut conn).await;
            // A head alone goes in one write at once; a body may take its time, and the wait
            // for the answer starts after it.
            let sent_at = match bodied {
                true => tokio::time::Instant::now(),
                false => tokio::time::Instant::from_std(sending),
            };
            let failed = match sent {
                Ok(()) => match self.answer(&mut conn, sent_at).await {
                    Ok(()) => break,
                    Err(HeadFailed::TimedOut) => {
                        return Err(ProxyError::Timeout {
                            server: server.name.clone(),
                            after: self.up.pool.timeouts.read,
                        });
                    }
                    Err(HeadFailed::Bad(cause)) => {
                        return Err(ProxyError::Upstream {
                            server: server.name.clone(),
                            cause,
                        });
                    }
                    // The server's idle close met our request: if it may be sent again,
                    // once, on a fresh connection.
                    Err(HeadFailed::Nothing(cause))
                        if conn.reused && !resent && self.whole() && idempotent(self.method) =>
                    {
                        cause
                    }
                    Err(HeadFailed::Nothing(cause)) => {
                        return Err(ProxyError::Upstream {
                            server: server.name.clone(),
                            cause,
                        });
                    }
                },
                // The write to a reused connection failed before the body: not sent.
                Err(None) if !resent => "closed before the request went".into(),
                Err(None) => {
                    return Err(ProxyError::Upstream {
                        server: server.name.clone(),
                        cause: "closed before the request went".into(),
                    });
                }
                Err(Some(e)) => return Err(e),
            };
            tracing::debug!(server = %server.name, "kept-alive connection failed ({failed}); sending again on a new one");
            resent = true;
            let (fresh, connect) = open(self.up, server).await.map_err(|e| match e {
                ProxyError::Connect { cause, .. } => Self::connect_failed(server, cause),
                other => other,
            })?;
            conn = fresh;
            self.connect = Some(connect);
            sending = Instant::now();
        }
        let header = started.elapsed();
        self.header = Some(header);
        server.record_response_head(header);
        Ok(Reply {
            conn,
            head: std::mem::take(self.resp),
            in_flight,
        })
    }

    fn replayable(&mut self) -> bool {
        // A streaming body not yet begun (the connect failed) can still go to another server.
        !matches!(self.body, Body::Spent)
    }
}

/// The values of the answer's `Transfer-Encoding` lines.
fn transfer_codings<'b>(
    buf: &'b [u8],
    head: &'b ResponseHead,
) -> impl Iterator<Item = &'b [u8]> + 'b {
    head.fields
        .iter()
        .filter(|f| f.name.get(buf).eq_ignore_ascii_case(b"transfer-encoding"))
        .map(|f| f.value.get(buf))
}

/// Read a server's answer head into `resp` within `wait`: interim 1xx answers are passed
/// over; a 101 is an error unless `upgrading`; a transfer coding other than chunked is
/// refused (it would be lost when the body is framed anew for the client, as hyper's engine
/// refuses it too). Used by the direct path and by `h1/client.rs`.
pub async fn answer_head<I: AsyncRead + Unpin>(
    rb: &mut ReadBuf,
    io: &mut I,
    resp: &mut ResponseHead,
    wait: Duration,
    upgrading: bool,
) -> Result<(), HeadFailed> {
    let by = tokio::time::Instant::now() + wait;
    answer_head_by(rb, io, resp, by, None, upgrading).await
}

/// [`answer_head`] by `deadline`, on `timer` when the caller keeps one (else a timeout of
/// its own per read).
pub async fn answer_head_by<I: AsyncRead + Unpin>(
    rb: &mut ReadBuf,
    io: &mut I,
    resp: &mut ResponseHead,
    deadline: tokio::time::Instant,
    mut timer: Option<&mut Timer>,
    upgrading: bool,
) -> Result<(), HeadFailed> {
    loop {
        // Nothing to parse yet (the usual first look): straight to the read.
        let parsed = match rb.is_empty() {
            true => Ok(false),
            false => parse::response(rb.data(), resp),
        };
        match parsed {
            Ok(true) if (100..200).contains(&resp.status) && resp.status != 101 => {
                rb.consume(resp.len);
                // A server that sends interim answers without end is still cut at the
                // deadline (the read below is tried before the timer).
                if tokio::time::Instant::now() >= deadline {
                    return Err(HeadFailed::TimedOut);
                }
                continue;
            }
            Ok(true) if resp.status == 101 && !upgrading => {
                return Err(HeadFailed::Bad("switched protocols unasked".into()));
            }
            Ok(true)
                if (resp.chunked || resp.other_coding)
                    && !only_chunked(transfer_codings(rb.data(), resp)) =>
            {
                return Err(HeadFailed::Bad(
                    "a transfer coding other than chunked".into(),
                ));
            }
            Ok(true) => return Ok(()),
            Ok(false) => {}
            Err(why) => return Err(HeadFailed::Bad(why.into())),
        }
        let got_some = !rb.is_empty();
        let read = rb.fill(io, MAX_HEAD);
        let read = match timer.as_deref_mut() {
            Some(t) => t.within(deadline, read).await,
            None => tokio::time::timeout_at(deadline, read).await.ok(),
        };
        match read.map_or(Err(ReadFailed::TimedOut), |r| r.map_err(ReadFailed::Io)) {
            Ok(0) if got_some => return Err(HeadFailed::Bad("answer cut short".into())),
            Ok(0) => return Err(HeadFailed::Nothing("closed before answering".into())),
            Ok(_) => {}
            Err(ReadFailed::TimedOut) => return Err(HeadFailed::TimedOut),
            Err(ReadFailed::Io(e)) if got_some => return Err(HeadFailed::Bad(e.to_string())),
            Err(ReadFailed::Io(e)) => return Err(HeadFailed::Nothing(e.to_string())),
        }
    }
}

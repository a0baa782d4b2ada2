//! A request body from hyper's engine framed for an HTTP/1.1 server (`h1/client.rs`): by
//! its length or chunked (trailers in the trailer section), and [`Upload`], the rest of a
//! body still to go after the server has answered (an early answer to an upload), written
//! as a poll beside the answer's reading.

use std::pin::Pin;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame};
use tokio::io::AsyncWrite;

use super::body::chunk_size_line;
use super::head::hop_by_hop;
use crate::error::ProxyError;
use crate::proxy::http::body::ProxyBody;
use crate::proxy::http::forwarding::claim;

/// Whether a client's trailer field may go to the server (RFC 9110 §6.5.1): not one that
/// frames, routes, authenticates or controls the request (as hyper's client never sent
/// `Host`, `Authorization`, `Content-Length`, ...), nor a hop-by-hop or forwarding field
/// (`X-Forwarded-*`, `Forwarded`: `forwarding.rs` writes those, in the head).
fn may_trail(name: &http::HeaderName) -> bool {
    let n = name.as_str();
    !(hop_by_hop(n.as_bytes())
        || claim(n.as_bytes()).is_some()
        || matches!(
            n,
            "host"
                | "authorization"
                | "cookie"
                | "set-cookie"
                | "trailer"
                | "expect"
                | "max-forwards"
                | "cache-control"
                | "range"
                | "content-type"
                | "content-encoding"
                | "content-range"
        ))
}

/// How the request body goes on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Out {
    Empty,
    Length(u64),
    Chunked,
}

/// A body's frames written in its framing, the length checked.
#[derive(Debug)]
pub struct Encoder {
    pub framing: Out,
    sent: u64,
    /// The trailer section (the chunked end) is written.
    ended: bool,
}

impl Encoder {
    pub fn new(framing: Out) -> Encoder {
        Encoder {
            framing,
            sent: 0,
            ended: false,
        }
    }

    /// One frame into `out`. Trailers go in a chunked body's trailer section (a length
    /// leaves them no place; they are dropped, as hyper's client drops them).
    pub fn frame(&mut self, out: &mut Vec<u8>, frame: Frame<Bytes>) -> Result<(), ProxyError> {
        match frame.into_data() {
            Ok(d) if d.is_empty() => {}
            Ok(d) => {
                self.sent += d.len() as u64;
                match self.framing {
                    Out::Length(n) if self.sent > n => {
                        return Err(ProxyError::BadRequest(
                            "request body longer than declared".into(),
                        ));
                    }
                    Out::Chunked => {
                        chunk_size_line(out, d.len());
                        out.extend_from_slice(&d);
                        out.extend_from_slice(b"\r\n");
                    }
                    _ => out.extend_from_slice(&d),
                }
            }
            Err(frame) => {
                if let (Out::Chunked, Ok(t)) = (self.framing, frame.into_trailers()) {
                    out.extend_from_slice(b"0\r\n");
                    for (name, value) in t.iter().filter(|(n, _)| may_trail(n)) {
                        out.extend_from_slice(name.as_str().as_bytes());
                        out.extend_from_slice(b": ");
                        out.extend_from_slice(value.as_bytes());
                        out.extend_from_slice(b"\r\n");
                    }
                    out.extend_from_slice(b"\r\n");
                    self.ended = true;
                }
            }
        }
        Ok(())
    }

    /// The body ended: its length checked, a chunked body's end written.
    pub fn end(&mut self, out: &mut Vec<u8>) -> Result<(), ProxyError> {
        match self.framing {
            Out::Length(n) if self.sent != n => Err(ProxyError::BadRequest(
                "request body shorter than declared".into(),
            )),
            Out::Chunked if !self.ended => {
                self.ended = true;
                out.extend_from_slice(b"0\r\n\r\n");
                Ok(())
            }
            _ => Ok(()),
        }
    }
}

/// The rest of a request body, written beside the answer's reading.
pub struct Upload {
    pub body: ProxyBody,
    pub enc: Encoder,
    out: Vec<u8>,
    pos: usize,
    /// Written but not flushed (over TLS, records may wait in rustls: `body::send`).
    unflushed: bool,
    done: bool,
}

impl Upload {
    pub fn new(body: ProxyBody, enc: Encoder) -> Upload {
        Upload {
            body,
            enc,
            out: Vec::new(),
            pos: 0,
            unflushed: false,
            done: false,
        }
    }

    /// Write what is gathered, then take the body's next frames, until the body has gone
    /// whole (`Ok`). `Err`: the client's body failed or the server took no more.
    pub fn poll_drive<W: AsyncWrite + Unpin>(
        &mut self,
        cx: &mut Context<'_>,
        io: &mut W,
    ) -> Poll<Result<(), ()>> {
        loop {
            while self.pos < self.out.len() {
                match ready!(Pin::new(&mut *io).poll_write(cx, &self.out[self.pos..])) {
                    Ok(0) | Err(_) => return Poll::Ready(Err(())),
                    Ok(n) => self.pos += n,
                }
            }
            if !self.out.is_empty() {
                self.out.clear();
                self.pos = 0;
                self.unflushed = true;
            }
            if self.unflushed {
                ready!(Pin::new(&mut *io).poll_flush(cx)).map_err(drop)?;
                self.unflushed = false;
            }
            if self.done {
                return Poll::Ready(Ok(()));
            }
            let step = match ready!(Pin::new(&mut self.body).poll_frame(cx)) {
                None => {
                    self.done = true;
                    self.enc.end(&mut self.out)
                }
                Some(Err(_)) => return Poll::Ready(Err(())),
                Some(Ok(frame)) => self.enc.frame(&mut self.out, frame),
            };
            if step.is_err() {
                return Poll::Ready(Err(()));
            }
        }
    }
}

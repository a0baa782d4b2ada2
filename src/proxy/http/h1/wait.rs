//! Waiting on the client on the direct path, under its listener's limits: for a request
//! head (`client_header_timeout`, `keepalive_timeout`, the head's size limits; a full
//! listener may close a connection idle before a request's first byte), and for a request
//! body before a server is chosen (`request_buffering`).

use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};

use super::body::{ReadBuf, ReadFailed, chunked_whole};
use super::parse::{self, Framing, HeadLimits, RequestHead};
use super::timer::Timer;
use crate::error::ProxyError;
use crate::guard::ConnStats;
use crate::proxy::http::life::Life;

/// How waiting for a head ended.
pub enum Head {
    /// A whole head is in `req`.
    Read,
    /// The client closed, the listener stops, or the connection was chosen to close for a
    /// new one: close without a word.
    Gone,
    /// Out of time with part of a head in: 408, then close.
    TimedOut,
}

/// What a wait for a head is under: the connection's limits, whether its listener stops,
/// and whether this is the connection's first head.
pub struct Waiting<'a> {
    pub stopping: &'a mut tokio::sync::watch::Receiver<bool>,
    pub life: &'a Life,
    pub first: bool,
}

/// Wait for the next request head. The first one must be whole within
/// `client_header_timeout` of the accept; a later one's first byte may take
/// `keepalive_timeout`, and the rest of it `client_header_timeout` from that byte (nginx's
/// timers). A connection with nothing of a request in is idle: a full listener may close
/// it (`life.permit`). Each close by a timeout is counted.
pub async fn head<C: AsyncRead + AsyncWrite + Unpin>(
    rb: &mut ReadBuf,
    req: &mut RequestHead,
    limits: HeadLimits,
    io: &mut C,
    timer: &mut Timer,
    waiting: Waiting<'_>,
) -> Result<Head, parse::HeadError> {
    let Waiting {
        stopping,
        life,
        first,
    } = waiting;
    let now = tokio::time::Instant::now();
    let mut deadline = match (first, rb.is_empty()) {
        (true, _) => life.first_deadline(),
        (false, true) => {
            life.permit.idle(now.into_std());
            now + life.keepalive_timeout
        }
        (false, false) => now + life.header_timeout,
    };
    loop {
        if !rb.is_empty() && parse::request_within(rb.data(), req, limits)? {
            return Ok(Head::Read);
        }
        let idle = rb.is_empty();
        if idle && *stopping.borrow() {
            return Ok(Head::Gone);
        }
        let read = timer.within(deadline, rb.fill(io, limits.size));
        tokio::select! {
            r = read => match r {
                Some(Ok(0)) | Some(Err(_)) => return Ok(Head::Gone),
                Some(Ok(_)) => {
                    if idle && !first {
                        if !life.permit.busy() {
                            return Ok(Head::Gone);
                        }
                        deadline = tokio::time::Instant::now() + life.header_timeout;
                    }
                }
                None => {
                    let stats = life.stats();
                    if idle && !first {
                        ConnStats::count(&stats.idle_timeouts);
                    } else {
                        ConnStats::count(&stats.header_timeouts);
                    }
                    return Ok(if idle { Head::Gone } else { Head::TimedOut });
                }
            },
            _ = stopping.changed(), if idle => return Ok(Head::Gone),
            _ = life.permit.reused(), if idle => return Ok(Head::Gone),
        }
    }
}

/// nginx's `proxy_request_buffering`: before a server is chosen, wait until the body is in
/// the read buffer, or `cap` bytes of it, so a slow upload holds no server connection
/// (`wait` between two reads: the pool's `client_body` timeout). `Ok(Some(n))`: a chunked
/// body of `n` data bytes is in whole.
pub async fn body<C: AsyncRead + AsyncWrite + Unpin>(
    rb: &mut ReadBuf,
    io: &mut C,
    framing: Framing,
    cap: usize,
    expect_continue: bool,
    wait: Duration,
) -> Result<Option<u64>, ProxyError> {
    if expect_continue && rb.is_empty() {
        super::body::send(io, b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .map_err(|e| ProxyError::ClientAborted(e.to_string()))?;
    }
    loop {
        let have = rb.data().len();
        match framing {
            Framing::Length(n) if have as u64 >= n.min(cap as u64) => return Ok(None),
            Framing::Chunked => match chunked_whole(rb.data()) {
                Some(n) => return Ok(Some(n)),
                None if have >= cap => return Ok(None),
                None => {}
            },
            Framing::Length(_) => {}
            Framing::Empty | Framing::Close => return Ok(None),
        }
        let limit = cap.max(rb.capacity());
        match rb.fill_within(io, limit, Some(wait)).await {
            Ok(0) => return Err(ProxyError::ClientAborted("closed mid-body".into())),
            Ok(_) => {}
            Err(ReadFailed::TimedOut) => return Err(ProxyError::ClientTimeout(wait)),
            Err(ReadFailed::Io(e)) => return Err(ProxyError::ClientAborted(e.to_string())),
        }
    }
}

//! Waiting on the client on the direct path, under its listener's limits: for a request
//! head (`client_header_timeout`, `keepalive_timeout`, the head's size limits; a full
//! listener may close a connection idle before a request's first byte; a head refused is
//! answered and accounted for), and for a request body before a server is chosen
//! (`request_buffering`).

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use futures_util::task::AtomicWaker;
use tokio::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite};

use super::body::{ReadBuf, ReadFailed, chunked_whole, flush};
use super::head::own_answer;
use super::parse::{self, Framing, HeadLimits, RequestHead};
use super::timer::Timer;
use crate::error::ProxyError;
use crate::guard::{ConnPermit, ConnStats};
use crate::proxy::http::Site;
use crate::proxy::http::life::Life;
use crate::proxy::http::stats::{self, Unread, origin_form};

/// How waiting for a head ended.
pub enum Head {
    /// A whole head is in `req`; its request began at this time (its first byte read, or
    /// the wait's start when it was in already).
    Read(Instant),
    /// The client closed, the listener stops, or the connection was chosen to close for a
    /// new one: close without a word.
    Gone,
    /// Out of time with part of a head in: 408, then close. Its request began at this
    /// time (its first byte read).
    TimedOut(Instant),
}

/// A head refused by the parser (400, 414, 431), and when its request began.
pub struct Refused(pub parse::HeadError, pub Instant);

/// What a wait for a head is under: the connection's limits, whether its listener stops,
/// and whether this is the connection's first head.
pub struct Waiting<'a, G> {
    pub stopping: &'a tokio::sync::watch::Receiver<bool>,
    /// Resolves when the listener stops or the connection is chosen to close for room: made
    /// once per connection (not per wait, which would register and remove two waiters per
    /// request), and never polled again once it has resolved, as the connection then ends.
    pub gone: Pin<&'a mut G>,
    pub life: &'a Life,
    pub first: bool,
    /// When the connection's last answer ended (its clock read, taken again here as the
    /// start of this wait).
    pub since: Instant,
}

/// Wait for the next request head. The first one must be whole within
/// `client_header_timeout` of the accept; a later one's first byte may take
/// `keepalive_timeout`, and the rest of it `client_header_timeout` from that byte (nginx's
/// timers). A connection with nothing of a request in is idle: a full listener may close
/// it (`life.permit`). Each close by a timeout is counted.
pub async fn head<C: AsyncRead + AsyncWrite + Unpin, G: Future<Output = ()>>(
    rb: &mut ReadBuf,
    req: &mut RequestHead,
    limits: HeadLimits,
    io: &mut C,
    timer: &mut Timer,
    waiting: Waiting<'_, G>,
) -> Result<Head, Refused> {
    let Waiting {
        stopping,
        mut gone,
        life,
        first,
        since,
    } = waiting;
    // The request begins with its first byte: for a head in already, now (the connection's
    // first: it was read while looking for HTTP/2's preface), else when it comes.
    let mut began = match first {
        true if !rb.is_empty() => Instant::now(),
        _ => since,
    };
    let mut deadline = match (first, rb.is_empty()) {
        (true, _) => life.first_deadline(),
        (false, true) => {
            life.permit.idle(since.into_std());
            since + life.keepalive_timeout
        }
        (false, false) => since + life.header_timeout,
    };
    loop {
        if !rb.is_empty() {
            match parse::request_within(rb.data(), req, limits) {
                Ok(true) => return Ok(Head::Read(began)),
                Ok(false) => {}
                Err(e) => return Err(Refused(e, began)),
            }
        }
        let idle = rb.is_empty();
        if idle && *stopping.borrow() {
            return Ok(Head::Gone);
        }
        let read = timer.within(deadline, rb.fill(io, limits.size));
        tokio::select! {
            // The read first: when it is what woke us, `gone` is not looked at.
            biased;
            r = read => match r {
                Some(Ok(0)) | Some(Err(_)) => return Ok(Head::Gone),
                Some(Ok(_)) => {
                    if idle {
                        // One clock read per request: its start, and the head's deadline.
                        began = Instant::now();
                        if !first {
                            if !life.permit.busy() {
                                return Ok(Head::Gone);
                            }
                            deadline = began + life.header_timeout;
                        }
                    }
                }
                None => {
                    let stats = life.stats();
                    if idle && !first {
                        ConnStats::count(&stats.idle_timeouts);
                    } else {
                        ConnStats::count(&stats.header_timeouts);
                    }
                    return Ok(if idle { Head::Gone } else { Head::TimedOut(began) });
                }
            },
            () = gone.as_mut(), if idle => return Ok(Head::Gone),
        }
    }
}

/// What ends a connection's idle waits, made once for its life: `inner` resolves when the
/// listener stops (`stopping` changes) or the connection is chosen to close for room
/// (`permit`). Once `inner` has been polled, its waiters stay registered and wake the
/// connection's task through [`Woken`]; after that it is polled again only when one of them
/// woke (a stale wake-up too: a slot's previous connection chosen to close can wake the
/// waiter its next one registered, which must register again) or one of the two says so (an
/// atomic load each), not on every wait.
pub struct Gone<'a, F> {
    inner: F,
    stopping: &'a tokio::sync::watch::Receiver<bool>,
    permit: &'a ConnPermit,
    polled: bool,
    woken: Arc<Woken>,
    /// `woken` as a waker, for polling `inner`.
    waker: Waker,
}

/// The waker `inner`'s waiters hold: it notes that one woke, then wakes the connection's
/// task (registered at each poll of [`Gone`]).
#[derive(Default)]
struct Woken {
    flag: AtomicBool,
    task: AtomicWaker,
}

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.flag.store(true, Ordering::Release);
        self.task.wake();
    }
}

impl<'a, F: Future<Output = ()> + Unpin> Gone<'a, F> {
    pub fn new(
        inner: F,
        stopping: &'a tokio::sync::watch::Receiver<bool>,
        permit: &'a ConnPermit,
    ) -> Self {
        let woken = Arc::new(Woken::default());
        Gone {
            inner,
            stopping,
            permit,
            polled: false,
            waker: Waker::from(woken.clone()),
            woken,
        }
    }
}

impl<F: Future<Output = ()> + Unpin> Future for Gone<'_, F> {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // Registered before the flag is read: a wake-up after the read wakes this task.
        this.woken.task.register(cx.waker());
        let said = this.woken.flag.swap(false, Ordering::AcqRel)
            || this.stopping.has_changed().unwrap_or(true)
            || this.permit.is_reused();
        if this.polled && !said {
            return Poll::Pending;
        }
        this.polled = true;
        // `inner` re-registers what woke (its `reused` waits in a loop until chosen).
        Pin::new(&mut this.inner).poll(&mut Context::from_waker(&this.waker))
    }
}

/// How reading a request head ended, for the connection.
pub enum Read {
    /// A head to serve.
    Head,
    /// The client closed, the listener stops, or the connection is closed for room.
    Gone,
    /// The head was refused and answered: close.
    Refused,
}

/// A request head refused: `site`'s, from `client`, answered `status` (why it was).
pub struct Refusal<'a> {
    pub site: &'a Site,
    pub client: SocketAddr,
    pub status: u16,
    pub why: &'a str,
    /// The accept for a first head, else the head's first byte (as a served request's).
    pub started: std::time::Instant,
}

impl<'a> Refusal<'a> {
    /// `status` and why, for the connection's `first` head or a later one that `began`.
    pub fn new(
        site: &'a Site,
        client: SocketAddr,
        (status, why): (u16, &'a str),
        life: &Life,
        (first, began): (bool, Instant),
    ) -> Refusal<'a> {
        let started = match first {
            true => life.accepted.into_std(),
            false => began.into_std(),
        };
        Refusal {
            site,
            client,
            status,
            why,
            started,
        }
    }
}

/// Answer a refused head (408 bare; else its status and why) through `out`, and account
/// for it as the listener's answers no route took, with what is known of it: the method,
/// target (not over `uri_limit`) and version its request line in `head` gave, else `-`.
#[cold]
pub async fn refused<C: AsyncWrite + Unpin>(
    io: &mut C,
    out: &mut Vec<u8>,
    head: &[u8],
    uri_limit: usize,
    r: Refusal<'_>,
) {
    let (site, status) = (r.site, r.status);
    tracing::debug!(listener = %site.listener, client = %r.client, "refused: {status} {}", r.why);
    let text = match status {
        408 => String::new(),
        _ => format!("{status} {}\n", r.why),
    };
    out.clear();
    own_answer(out, status, b"", &text, true);
    let _ = flush(io, out).await;
    let mut line = httparse::Request::new(&mut []);
    let _ = line.parse(head);
    let target = line.path.filter(|p| p.len() <= uri_limit);
    let known = Unread {
        method: line.method.map_or(b"-", str::as_bytes),
        target: target.map_or(b"-", |t| origin_form(t.as_bytes())),
        protocol: match line.version {
            Some(0) => "HTTP/1.0",
            Some(_) => "HTTP/1.1",
            None => "-",
        },
    };
    let sent = text.len() as u64;
    stats::refused(site, r.client, known, status, sent, r.started);
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

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicUsize;

    use super::*;
    use crate::guard::ConnLimits;

    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// A stale wake-up (a slot's previous connection chosen to close, its notify coming
    /// after this connection's waiter registered) takes the waiter; the connection's own
    /// choice later must still wake it.
    #[test]
    fn a_stale_wake_up_does_not_hide_the_choice_to_close() {
        let limits = ConnLimits::reusing(1, 0, Arc::default());
        let permit = limits.admit([192, 0, 2, 1].into()).unwrap();
        assert!(permit.idle(std::time::Instant::now()));
        let (_tx, rx) = tokio::sync::watch::channel(false);
        let mut stop = rx.clone();
        let inner = Box::pin(async {
            tokio::select! {
                _ = stop.changed() => {}
                () = permit.reused() => {}
            }
        });
        let mut gone = Gone::new(inner, &rx, &permit);
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        assert!(Pin::new(&mut gone).poll(&mut cx).is_pending());
        permit.wake_stale();
        // Woken by it: polled, nothing to end yet.
        assert!(Pin::new(&mut gone).poll(&mut cx).is_pending());
        let before = count.0.load(Ordering::Relaxed);
        // A new client on the full listener: this idle connection is chosen to close.
        let _new = limits.admit([192, 0, 2, 2].into()).unwrap();
        assert!(permit.is_reused());
        assert!(
            count.0.load(Ordering::Relaxed) > before,
            "the connection's task was not woken"
        );
        assert!(Pin::new(&mut gone).poll(&mut cx).is_ready());
    }
}

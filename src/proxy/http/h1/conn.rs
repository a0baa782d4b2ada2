//! One client connection on the direct HTTP/1 path, in one task for its whole life: read a
//! head, route it, send it through the retry loop, write the answer, and again. Its buffers
//! (the read buffer, the output buffer, the server head, a kept body) are made once and
//! reused; the server connection goes back to its pool inline once its answer is read.
//!
//! The listener's [`Site`] is read once per request, so a reload applies between two
//! requests of a kept-alive connection.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use tokio::io::{AsyncRead, AsyncWrite};

use super::body::{Copy, CopyError, ReadBuf, ReadFailed, flush};
use super::checks::{log_fields, own_checks};
use super::exchange::{Body, DirectExchange, Reply};
use super::head::{AnswerOut, Forwarding, HeadView, own_answer, request_out, response_out};
use super::parse::{self, Framing, RequestHead, ResponseHead};
use super::pool::ServerConn;
use super::timer::Timer;
use super::wait::{self, Read};
use crate::error::ProxyError;
use crate::proxy::http::life::Life;
use crate::proxy::http::replay::kept_up_to;
use crate::proxy::http::retry::{PickHints, retry_loop};
use crate::proxy::http::stats::{Answered, Row, origin_form};
use crate::proxy::http::trace::Trace;
use crate::proxy::http::view::{RequestView, hash_key};
use crate::proxy::http::{Site, headers, log_failure, path, protect};
use crate::upstream::{InFlight, Server};

/// What comes after one request.
pub enum Next {
    KeepAlive,
    Close,
    /// The server switched protocols: copy bytes both ways from now on.
    Upgrade(Box<Upgraded>),
}

/// A server connection that answered 101, with what the tunnel needs.
pub struct Upgraded {
    pub server: ServerConn,
    pub in_flight: InFlight,
    pub idle_timeout: Duration,
}

/// The buffers and state of one client connection.
pub struct Conn {
    pub client: SocketAddr,
    client_ip: String,
    pub rb: ReadBuf,
    out: Vec<u8>,
    up_head: Vec<u8>,
    kept: Vec<u8>,
    req: RequestHead,
    resp: ResponseHead,
    key: Vec<u8>,
    log_method: String,
    log_uri: String,
    /// The normalised path, when it differs from the one sent.
    norm: Vec<u8>,
    /// The client as a trusted proxy named it, as text.
    real_ip: String,
    head_limits: parse::HeadLimits,
    /// Host, Referer and User-Agent, kept for the access log when it is on.
    log_host: Vec<u8>,
    log_referer: Vec<u8>,
    log_ua: Vec<u8>,
    /// Body bytes of the answer sent to the client.
    body_sent: u64,
    /// The deadline of waits on the client.
    timer: Timer,
    /// The deadline of waits on a server's answer head (made at the first request): a
    /// timer of its own, so that on a busy connection each usually moves later (the
    /// client's `keepalive_timeout` is further than the server's `timeouts.read`) and is
    /// not filed again with the runtime per request. One that fired while the connection
    /// idled, or a pool with a shorter `read`, is filed again once.
    server_timer: Option<Timer>,
    /// When the request being served began (its head's first byte), and when the last
    /// answer ended: the clock is read once per phase, and these share it.
    began: tokio::time::Instant,
    ended: tokio::time::Instant,
    /// The answer's end, when its copy read the clock (its account uses it).
    answered: Option<Instant>,
}

impl Conn {
    pub fn new(client: SocketAddr) -> Conn {
        let now = tokio::time::Instant::now();
        Conn {
            client,
            client_ip: client.ip().to_string(),
            rb: ReadBuf::default(),
            out: Vec::with_capacity(4096),
            up_head: Vec::with_capacity(1024),
            kept: Vec::new(),
            req: RequestHead::default(),
            resp: ResponseHead::default(),
            key: Vec::new(),
            log_method: String::new(),
            log_uri: String::new(),
            norm: Vec::new(),
            real_ip: String::new(),
            head_limits: parse::HeadLimits::default(),
            log_host: Vec::new(),
            log_referer: Vec::new(),
            log_ua: Vec::new(),
            body_sent: 0,
            timer: Timer::new(),
            server_timer: None,
            began: now,
            ended: now,
            answered: None,
        }
    }

    /// Read the next request head under `life`'s limits (see [`wait::head`]). A head that
    /// cannot be served — malformed or over a limit (400, 414, 431), or part of one that
    /// ran out of time (408) — is answered, counted and logged as `site`'s answers no route
    /// took, and the connection is to close.
    /// `gone` resolves when the listener stops or the connection is chosen to close for
    /// room (see [`wait::Waiting`]).
    pub async fn read_head<
        C: AsyncRead + AsyncWrite + Unpin,
        G: std::future::Future<Output = ()>,
    >(
        &mut self,
        io: &mut C,
        (stopping, gone): (&tokio::sync::watch::Receiver<bool>, Pin<&mut G>),
        life: &Life,
        first: bool,
        site: &ArcSwap<Site>,
    ) -> Read {
        let waited = wait::head(
            &mut self.rb,
            &mut self.req,
            self.head_limits,
            io,
            &mut self.timer,
            wait::Waiting {
                stopping,
                gone,
                life,
                first,
                since: self.ended,
            },
        );
        let (status, why, began) = match waited.await {
            Ok(wait::Head::Read(began)) => {
                self.began = began;
                return Read::Head;
            }
            Ok(wait::Head::Gone) => return Read::Gone,
            Ok(wait::Head::TimedOut(began)) => (408, "client_header_timeout", began),
            Err(wait::Refused(e, began)) => (e.status(), e.reason(), began),
        };
        let site = site.load();
        let r = wait::Refusal::new(&site, self.client, (status, why), life, (first, began));
        wait::refused(io, &mut self.out, self.rb.data(), self.head_limits.uri, r).await;
        Read::Refused
    }

    /// The head limits of the connection's listener (`max_header_size`, `max_headers`,
    /// `max_uri_size`), as they were when it was accepted.
    pub fn limit_heads(&mut self, limits: &crate::config::ClientLimits) {
        self.head_limits = parse::HeadLimits {
            size: limits.max_header_size,
            fields: limits.max_headers,
            uri: limits.max_uri_size,
        };
    }

    /// The request just read is the connection's last (`keepalive_requests`): its answer
    /// says `Connection: close`.
    pub fn last_request(&mut self) {
        self.req.keep_alive = false;
    }

    /// Write an answer of our own.
    pub async fn answer_own<C: AsyncWrite + Unpin>(
        &mut self,
        io: &mut C,
        status: u16,
        extra: &[u8],
        text: &str,
        close: bool,
    ) -> std::io::Result<()> {
        self.out.clear();
        own_answer(&mut self.out, status, extra, text, close);
        self.body_sent = text.len() as u64;
        flush(io, &mut self.out).await
    }

    /// Serve the request whose head was just read.
    pub async fn request<C>(&mut self, io: &mut C, site: &Arc<ArcSwap<Site>>) -> Next
    where
        C: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let started = self.began.into_std();
        self.answered = None;
        let site = site.load();
        let view = HeadView::new(self.rb.data(), &self.req);
        let logging = site.log.enabled();
        self.body_sent = 0;
        // Kept for the access log and the warning of a failed request (reused buffers).
        self.log_method.clear();
        self.log_method.push_str(view.method());
        self.log_uri.clear();
        self.log_uri.push_str(view.target().unwrap_or("-"));
        if logging {
            let into = (&mut self.log_referer, &mut self.log_ua, &mut self.log_host);
            log_fields(&view, into);
        }
        let head_len = self.req.len;
        let framing = self.req.framing();
        let head_request = view.method_bytes() == b"HEAD";
        let keep_alive = self.req.keep_alive;
        let http10 = self.req.minor == 0;
        // Only WebSocket may switch protocols (issue 15.2: an `h2c` offer would open a tunnel
        // that skips routing and rewriting); other offers are dropped as hop-by-hop.
        let upgrading = self.req.upgrade
            && view
                .header_values(&http::header::UPGRADE)
                .any(headers::offers_websocket);
        let expect_continue = self.req.expect_continue;
        let te_trailers = self.req.te_trailers;
        let method = http::Method::from_bytes(view.method_bytes()).unwrap_or(http::Method::GET);

        if let Some((status, why)) = own_checks(&view, http10) {
            self.rb.consume(head_len);
            return self.refuse(io, &site, status, why, started).await;
        }
        if let Some(port) = site.redirect_https {
            let url = view.host().and_then(|h| {
                crate::proxy::http::tls_serve::https_url_of(h, port, view.path_and_query())
            });
            self.rb.consume(head_len);
            // The body, if any, is not read: close after the answer.
            let close = !keep_alive || framing != Framing::Empty;
            let (status, extra) = match &url {
                Some(u) => (308, format!("location: {u}\r\n")),
                None => (400, String::new()),
            };
            let text = if url.is_some() {
                ""
            } else {
                "400 Bad Request: no host to redirect to\n"
            };
            let _ = self
                .answer_own(io, status, extra.as_bytes(), text, close)
                .await;
            let none = &site.router.none_row;
            self.account(&site, none, status, None, 0, None, None, started);
            return if close { Next::Close } else { Next::KeepAlive };
        }
        // Routes match the normalised path; the server gets the target as sent.
        let raw = view.path().as_bytes();
        let normal = match path::normalise(raw, &mut self.norm) {
            Ok(n) => n,
            Err(e) => {
                self.rb.consume(head_len);
                return self.refuse(io, &site, 400, e.reason(), started).await;
            }
        };
        let peer = self.client.ip();
        let trusted = !site.trusted.is_empty() && protect::trusted(&site.trusted, peer);
        let client = match trusted {
            true => protect::real_client(peer, &site.trusted, view.header_values(&XFF)),
            false => peer,
        };
        if let Err(e) = site.guard.check(&view, client, raw, normal) {
            self.rb.consume(head_len);
            let none = &site.router.none_row;
            return self.failed(io, &site, none, e, "-", framing, started).await;
        }
        let routed = site.router.route_row(&view, normal);
        let (row, route_max) = (routed.row, routed.max_body);
        let Some(up) = routed.pool else {
            self.rb.consume(head_len);
            return self
                .failed(io, &site, row, ProxyError::NoRoute, "-", framing, started)
                .await;
        };
        if let Err(e) = routed.guard.check(&view, client, raw, normal) {
            self.rb.consume(head_len);
            return self
                .failed(io, &site, row, e, &up.pool.name, framing, started)
                .await;
        }
        if client != peer {
            use std::fmt::Write as _;
            self.real_ip.clear();
            let _ = write!(self.real_ip, "{client}");
        }
        let max_body = match route_max.unwrap_or(site.limits.client_max_body_size) {
            0 => u64::MAX,
            n => n,
        };
        if let Framing::Length(n) = framing
            && n > max_body
        {
            self.rb.consume(head_len);
            let e = ProxyError::BodyTooLarge(max_body);
            return self
                .failed(io, &site, row, e, &up.pool.name, Framing::Close, started)
                .await;
        }
        let pool = &up.pool;
        let trace = Trace::asked(&site, &view).map(Arc::new);
        if let Some(t) = &trace {
            t.note(format!("pool {} ({})", pool.name, pool.algorithm.as_str()));
        }
        let key = hash_key(&pool.hash_key, &view);
        self.key.clear();
        let has_key = key.is_some();
        if let Some(k) = key {
            self.key.extend_from_slice(k);
        }
        let stick = match up.sticky() {
            Some(s) => Some(s.lookup(&view, client, tokio::time::Instant::now()).await),
            None => None,
        };
        request_out(
            &mut self.up_head,
            &view,
            &Forwarding {
                client_ip: &self.client_ip,
                real_ip: if client == peer {
                    &self.client_ip
                } else {
                    &self.real_ip
                },
                trusted,
                set: site.forward_headers,
                scheme: site.scheme,
                host: view.host_with_port(),
                port: site.port,
                host_from_server: pool.host_header == crate::config::HostHeader::Upstream,
                framing,
                upgrading,
            },
        );
        self.rb.consume(head_len);

        // A small body of known length is read before the first try when a retry could
        // happen, so it can be sent again, or when the listener buffers requests
        // (`request_buffering`); of others, up to `request_buffer_size` is read first when
        // it buffers, then they stream to the first server.
        let keep = kept_up_to(&site.limits, pool.retry.attempts > 0);
        let mut continued = false;
        if site.limits.request_buffering && !upgrading && framing != Framing::Empty {
            let cap = site.limits.request_buffer_size;
            let wait = pool.timeouts.client_body;
            let buffered = wait::body(&mut self.rb, io, framing, cap, expect_continue, wait)
                .await
                .and_then(|whole| match whole {
                    Some(n) if n > max_body => Err(ProxyError::BodyTooLarge(max_body)),
                    _ => Ok(()),
                });
            if let Err(e) = buffered {
                let unread = Framing::Close;
                return self
                    .failed(io, &site, row, e, &pool.name, unread, started)
                    .await;
            }
            continued = expect_continue;
        }
        let body = match framing {
            Framing::Empty => Body::Empty,
            Framing::Length(n) if n <= keep as u64 && !upgrading => {
                match self
                    .read_kept(io, n, expect_continue, pool.timeouts.client_body)
                    .await
                {
                    Ok(()) => Body::Kept,
                    Err(e) => {
                        return self
                            .failed(io, &site, row, e, &pool.name, framing, started)
                            .await;
                    }
                }
            }
            f => Body::Stream(f),
        };
        let continued = continued || (matches!(body, Body::Kept) && expect_continue);
        let ask = PickHints {
            client: SocketAddr::new(client, self.client.port()),
            hash_key: has_key.then_some(&self.key[..]),
            method: &method,
            preferred: stick.as_ref().and_then(|l| l.preferred.clone()),
            trace: trace.clone(),
        };
        let max_tries = if upgrading {
            1
        } else {
            1 + pool.retry.attempts
        };
        let mut ex = DirectExchange {
            up,
            head: &self.up_head,
            body,
            kept: &self.kept,
            method: &method,
            expect_continue,
            te_trailers,
            upgrading,
            client: &mut *io,
            crb: &mut self.rb,
            out: &mut self.out,
            resp: &mut self.resp,
            timer: self.server_timer.get_or_insert_with(Timer::new),
            continued,
            connect: None,
            header: None,
            attempts: 0,
            server: None,
            max_body,
        };
        let (result, server) = retry_loop(up, &ask, max_tries, &mut ex).await;
        let (connect, header, attempts) = (ex.connect, ex.header, ex.attempts);
        let body_left = matches!(ex.body, Body::Stream(_));
        let server_name = server.as_ref().map_or("-", |s| s.name.as_str());
        let reply = match result {
            Ok(r) => r,
            Err(e) => {
                // A body the client is still sending, or one that broke: the connection
                // cannot carry another request.
                let unread = if body_left { framing } else { Framing::Empty };
                let client_side = matches!(
                    e,
                    ProxyError::ClientTimeout(_)
                        | ProxyError::ClientAborted(_)
                        | ProxyError::BadRequest(_)
                        | ProxyError::BodyTooLarge(_)
                );
                let unread = if client_side { Framing::Close } else { unread };
                let (method, uri) = (&self.log_method, &self.log_uri);
                log_failure(&site.listener, &pool.name, server_name, &e, method, uri);
                let status = e.status().as_u16();
                let trace = trace.map(|t| t.value());
                let next = (self.error_answer(io, &e, unread, keep_alive, trace.as_deref())).await;
                let last = server.as_ref();
                self.account(&site, row, status, last, attempts, connect, header, started);
                return next;
            }
        };
        let set_cookie = match (up.sticky(), &stick, &server) {
            (Some(sticky), Some(lookup), Some(s)) => {
                let buf = reply.conn.rb.data();
                let set = reply
                    .head
                    .fields
                    .iter()
                    .filter(|f| f.name.get(buf).eq_ignore_ascii_case(b"set-cookie"))
                    .map(|f| f.value.get(buf));
                sticky.stick(
                    lookup,
                    s,
                    set,
                    site.scheme == "https",
                    tokio::time::Instant::now(),
                )
            }
            _ => None,
        };
        let status = reply.head.status;
        let trace = trace.map(|t| t.value());
        let next = self
            .answer(
                io,
                up,
                reply,
                AnswerPlan {
                    head_request,
                    keep_alive,
                    http10,
                    upgrading,
                    set_cookie: set_cookie.as_deref(),
                    hsts: site.hsts.as_ref().map(|v| v.as_bytes()),
                    trace: trace.as_deref(),
                    server: server.as_ref(),
                },
            )
            .await;
        let last = server.as_ref();
        self.account(&site, row, status, last, attempts, connect, header, started);
        next
    }

    /// Read a small body whole into `kept`.
    async fn read_kept<C: AsyncRead + AsyncWrite + Unpin>(
        &mut self,
        io: &mut C,
        n: u64,
        expect_continue: bool,
        wait: Duration,
    ) -> Result<(), ProxyError> {
        let n = n as usize;
        self.kept.clear();
        if expect_continue && self.rb.is_empty() {
            super::body::send(io, b"HTTP/1.1 100 Continue\r\n\r\n")
                .await
                .map_err(|e| ProxyError::ClientAborted(e.to_string()))?;
        }
        while self.kept.len() < n {
            if self.rb.is_empty() {
                match self
                    .rb
                    .fill_within(io, self.rb.capacity(), Some(wait))
                    .await
                {
                    Ok(0) => return Err(ProxyError::ClientAborted("closed mid-body".into())),
                    Ok(_) => {}
                    Err(ReadFailed::TimedOut) => return Err(ProxyError::ClientTimeout(wait)),
                    Err(ReadFailed::Io(e)) => return Err(ProxyError::ClientAborted(e.to_string())),
                }
            }
            let take = self.rb.data().len().min(n - self.kept.len());
            self.kept.extend_from_slice(&self.rb.data()[..take]);
            self.rb.consume(take);
        }
        Ok(())
    }

    async fn answer<C>(
        &mut self,
        io: &mut C,
        up: &crate::proxy::http::upstream::Upstream,
        reply: Reply,
        plan: AnswerPlan<'_>,
    ) -> Next
    where
        C: AsyncRead + AsyncWrite + Unpin + Send,
    {
        let Reply {
            mut conn,
            head,
            in_flight,
        } = reply;
        let upgrade = head.status == 101 && plan.upgrading;
        let body = head.framing(plan.head_request);
        let (out_framing, chunked) = match body {
            Framing::Length(n) => (Framing::Length(n), false),
            Framing::Empty => (Framing::Empty, false),
            Framing::Chunked | Framing::Close if plan.http10 => (Framing::Close, false),
            Framing::Chunked | Framing::Close => (body, true),
        };
        let close = !plan.keep_alive || (out_framing == Framing::Close && !chunked);
        self.out.clear();
        response_out(
            &mut self.out,
            conn.rb.data(),
            &head,
            &AnswerOut {
                framing: out_framing,
                chunked,
                head_request: plan.head_request,
                close: close && !upgrade,
                keep_alive_1_0: plan.http10 && !close,
                upgrade,
                set_cookie: plan.set_cookie,
                hsts: plan.hsts,
                trace: plan.trace,
            },
        );
        conn.rb.consume(head.len);
        let server_reusable = head.keep_alive && body != Framing::Close;
        self.resp = head;
        if upgrade {
            if flush(io, &mut self.out).await.is_err() {
                return Next::Close;
            }
            return Next::Upgrade(Box::new(Upgraded {
                server: conn,
                in_flight,
                idle_timeout: up.transport().tunnel_idle_timeout,
            }));
        }
        let mut copy = Copy {
            src: &mut conn.io,
            rb: &mut conn.rb,
            dst: io,
            out: &mut self.out,
            wait: Some(up.pool.timeouts.read),
            chunked_out: chunked,
            trailers: true,
            max: u64::MAX,
            moved: 0,
        };
        let copied = copy.body(body).await;
        let moved = copy.moved;
        self.body_sent = moved;
        drop(in_flight);
        // The answer's end, for the idle list and the account.
        let end = Instant::now();
        self.answered = Some(end);
        match copied {
            Ok(()) => {
                if server_reusable
                    && conn.rb.is_empty()
                    && let Some(s) = plan.server
                {
                    up.idle().put_at(s, conn, end);
                }
                if close { Next::Close } else { Next::KeepAlive }
            }
            Err(CopyError::Write(_)) => Next::Close,
            Err(e) => {
                if let Some(s) = plan.server {
                    tracing::warn!(server = %s.name, "answer body broke off: {e:?}");
                }
                Next::Close
            }
        }
    }

    async fn refuse<C: AsyncWrite + Unpin>(
        &mut self,
        io: &mut C,
        site: &Site,
        status: u16,
        why: &str,
        started: Instant,
    ) -> Next {
        let text = format!(
            "{status} {}\n",
            http::StatusCode::from_u16(status)
                .ok()
                .and_then(|s| s.canonical_reason())
                .unwrap_or("Error")
        );
        tracing::debug!(listener = %site.listener, client = %self.client, "refused: {why}");
        let _ = self.answer_own(io, status, b"", &text, true).await;
        let none = &site.router.none_row;
        self.account(site, none, status, None, 0, None, None, started);
        Next::Close
    }

    #[allow(clippy::too_many_arguments)]
    async fn failed<C: AsyncWrite + Unpin>(
        &mut self,
        io: &mut C,
        site: &Site,
        row: &Row,
        e: ProxyError,
        pool: &str,
        unread: Framing,
        started: Instant,
    ) -> Next {
        if e.is_refusal() {
            tracing::debug!(listener = %site.listener, client = %self.client, "{} {}: {e}", self.log_method, self.log_uri);
        } else {
            log_failure(
                &site.listener,
                pool,
                "-",
                &e,
                &self.log_method,
                &self.log_uri,
            );
        }
        let next = self
            .error_answer(io, &e, unread, self.req.keep_alive, None)
            .await;
        let status = e.status().as_u16();
        self.account(site, row, status, None, 0, None, None, started);
        next
    }

    /// The client's answer when a request cannot be served; the connection stays open only
    /// when the request's body is not left unread.
    async fn error_answer<C: AsyncWrite + Unpin>(
        &mut self,
        io: &mut C,
        e: &ProxyError,
        unread: Framing,
        keep_alive: bool,
        trace: Option<&str>,
    ) -> Next {
        let status = e.status();
        let mut text = format!(
            "{} {}\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or("Error")
        );
        if let Some(detail) = e.client_detail() {
            text.push_str(&detail);
            text.push('\n');
        }
        let close = !keep_alive || unread != Framing::Empty;
        let mut extra = String::new();
        if let Some(secs) = e.retry_after() {
            extra.push_str(&format!("retry-after: {secs}\r\n"));
        }
        if let Some(t) = trace {
            extra.push_str(&format!("x-switchyard-explain: {t}\r\n"));
        }
        let _ = self
            .answer_own(io, status.as_u16(), extra.as_bytes(), &text, close)
            .await;
        if close { Next::Close } else { Next::KeepAlive }
    }

    /// Count the answer the client got in its row, and write its access-log line.
    #[allow(clippy::too_many_arguments)]
    fn account(
        &mut self,
        site: &Site,
        row: &Row,
        status: u16,
        server: Option<&Arc<Server>>,
        attempts: u32,
        connect: Option<Duration>,
        header: Option<Duration>,
        started: Instant,
    ) {
        let ended = self.answered.take().unwrap_or_else(Instant::now);
        self.ended = tokio::time::Instant::from_std(ended);
        Answered {
            row,
            listener: &site.listener,
            client: self.client,
            method: self.log_method.as_bytes(),
            target: origin_form(self.log_uri.as_bytes()),
            protocol: if self.req.minor == 0 {
                "HTTP/1.0"
            } else {
                "HTTP/1.1"
            },
            host: &self.log_host,
            referer: &self.log_referer,
            user_agent: &self.log_ua,
            status,
            body_bytes: self.body_sent,
            upstream: server.map(|s| s.addr),
            attempts,
            upstream_connect: connect,
            upstream_header: header,
            started,
        }
        .done_at(&site.log, ended);
    }
}

static XFF: http::HeaderName = http::HeaderName::from_static("x-forwarded-for");

/// What the answer to the client depends on besides the server's answer.
struct AnswerPlan<'a> {
    head_request: bool,
    keep_alive: bool,
    http10: bool,
    upgrading: bool,
    set_cookie: Option<&'a str>,
    hsts: Option<&'a [u8]>,
    /// `X-Switchyard-Explain`, when the request asked and may.
    trace: Option<&'a str>,
    server: Option<&'a Arc<crate::upstream::Server>>,
}

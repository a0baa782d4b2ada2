//! HTTP/2 clients to HTTP/1.1 servers (`proxy/http/h1/client.rs`): the server connections,
//! the framing of the server's answers and the failures, against scripted servers whose
//! every byte the test chooses.
mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use switchyard::runtime::Runtime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a scripted server does with one request.
#[derive(Clone, Copy)]
enum Act {
    Answer(&'static str),
    /// Close the connection without a byte.
    Close,
    /// Read the request and never answer.
    Silent,
}

/// A server that reads request heads (and `content-length` bodies) and acts as
/// `script(connection, request on it, head)` says; returns its address and its count of
/// connections.
async fn scripted(script: fn(usize, usize, &str) -> Act) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counted = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let c = counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for r in 0.. {
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while buf.len() < end + length {
                        let mut chunk = [0u8; 4096];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..end + length);
                    match script(c, r, &head) {
                        Act::Answer(a) => {
                            if s.write_all(a.as_bytes()).await.is_err()
                                || a.contains("connection: close")
                            {
                                return;
                            }
                        }
                        Act::Close => return,
                        Act::Silent => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, conns)
}

type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

async fn h2c(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Body> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

/// One request over `c`: the status, the body (or the error that broke it off).
async fn send(
    c: &mut hyper::client::conn::http2::SendRequest<Body>,
    method: Method,
    path: &str,
    body: &'static str,
) -> (u16, Result<String, String>) {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1{path}"))
        .body(Full::new(Bytes::from_static(body.as_bytes())).boxed())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), c.send_request(req))
        .await
        .expect("an answer in time")
        .unwrap();
    let status = resp.status().as_u16();
    let body = match resp.into_body().collect().await {
        Ok(b) => Ok(String::from_utf8_lossy(&b.to_bytes()).into_owned()),
        Err(e) => Err(e.to_string()),
    };
    (status, body)
}

async fn lb_for(server: SocketAddr, pool_extra: &str) -> (Runtime, SocketAddr) {
    let lb = start_lb(&format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nservers = [ {{ addr = \"{server}\" }} ]\n{pool_extra}"
    ))
    .await;
    let addr = lb.local_addr("web").unwrap();
    (lb, addr)
}

const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

/// A kept-alive connection the server closes as our next request arrives (its idle close
/// meeting the request): a GET, which we hold whole and may send twice, goes once more on a
/// new connection; a POST does not (the server may have acted on it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reused_connection_closed_unanswered_gets_a_get_once_more() {
    let (server, conns) = scripted(|c, r, _| match (c, r) {
        (0, 0) => Act::Answer(OK),
        (0, _) => Act::Close,
        _ => Act::Answer(OK),
    })
    .await;
    let (lb, addr) = lb_for(server, "[pool.p.retry]\nattempts = 0\n").await;
    let mut c = h2c(addr).await;
    assert_eq!(
        send(&mut c, Method::GET, "/a", "").await,
        (200, Ok("ok".into()))
    );
    assert_eq!(
        send(&mut c, Method::GET, "/b", "").await,
        (200, Ok("ok".into()))
    );
    assert_eq!(
        conns.load(Ordering::SeqCst),
        2,
        "the GET went again on a new one"
    );
    assert_eq!(
        send(&mut c, Method::GET, "/c", "").await,
        (200, Ok("ok".into()))
    );
    assert_eq!(conns.load(Ordering::SeqCst), 2, "the new one was kept");
    lb.shutdown().await;
}

/// Answers without a body (HEAD, 204, 304, 1xx before the answer) leave the connection
/// clean for the next request, and the length of a HEAD's answer is passed on.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_without_a_body_keep_the_connection_clean() {
    let (server, conns) = scripted(|_, _, head| {
        let path = head.split(' ').nth(1).unwrap_or("");
        Act::Answer(match path {
            "/head" => "HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\n",
            "/204" => "HTTP/1.1 204 No Content\r\n\r\n",
            "/304" => "HTTP/1.1 304 Not Modified\r\ncontent-length: 5\r\n\r\n",
            "/early" => "HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nhi",
            "/chunked" => "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5;x=1\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
            _ => OK,
        })
    })
    .await;
    let (lb, addr) = lb_for(server, "").await;
    let mut c = h2c(addr).await;
    let req = Request::head("http://127.0.0.1/head")
        .body(Full::new(Bytes::new()).boxed())
        .unwrap();
    let resp = c.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["content-length"], "5");
    assert!(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .is_empty()
    );
    assert_eq!(
        send(&mut c, Method::GET, "/204", "").await,
        (204, Ok(String::new()))
    );
    assert_eq!(
        send(&mut c, Method::GET, "/304", "").await,
        (304, Ok(String::new()))
    );
    assert_eq!(
        send(&mut c, Method::GET, "/early", "").await,
        (200, Ok("hi".into()))
    );
    assert_eq!(
        send(&mut c, Method::POST, "/chunked", "data").await,
        (200, Ok("hello world".into()))
    );
    assert_eq!(
        send(&mut c, Method::GET, "/", "").await,
        (200, Ok("ok".into()))
    );
    assert_eq!(conns.load(Ordering::SeqCst), 1, "one connection for all");
    lb.shutdown().await;
}

/// The server's answer is read as strictly as on the direct path: an ambiguous length is a
/// 502, a broken chunk breaks the body off (the client sees an error, not a clean end), a
/// body to the close is passed on whole and its connection not kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_servers_framing_is_read_strictly() {
    let (server, conns) = scripted(|_, _, head| {
        let path = head.split(' ').nth(1).unwrap_or("");
        match path {
            "/two-lengths" => Act::Answer(
                "HTTP/1.1 200 OK\r\ncontent-length: 5\r\ncontent-length: 6\r\n\r\nhello!",
            ),
            "/bad-chunk" => Act::Answer(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n",
            ),
            "/gzip" => {
                Act::Answer("HTTP/1.1 200 OK\r\ntransfer-encoding: gzip, chunked\r\n\r\n0\r\n\r\n")
            }
            "/to-close" => Act::Answer("HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nall of it"),
            _ => Act::Answer(OK),
        }
    })
    .await;
    let (lb, addr) = lb_for(server, "[pool.p.retry]\nattempts = 0\n").await;
    let mut c = h2c(addr).await;
    assert_eq!(send(&mut c, Method::GET, "/two-lengths", "").await.0, 502);
    assert_eq!(send(&mut c, Method::GET, "/gzip", "").await.0, 502);
    // The stream is reset: before or after its head reached the client.
    let req = Request::get("http://127.0.0.1/bad-chunk")
        .body(Full::new(Bytes::new()).boxed())
        .unwrap();
    if let Ok(resp) = c.send_request(req).await {
        let body = resp.into_body().collect().await;
        assert!(body.is_err(), "a broken chunk is no clean end");
    }
    let before = conns.load(Ordering::SeqCst);
    assert_eq!(
        send(&mut c, Method::GET, "/to-close", "").await,
        (200, Ok("all of it".into()))
    );
    assert_eq!(
        send(&mut c, Method::GET, "/", "").await,
        (200, Ok("ok".into()))
    );
    assert_eq!(
        conns.load(Ordering::SeqCst),
        before + 2,
        "a body to the close ends its connection"
    );
    lb.shutdown().await;
}

/// A server that takes the request and never answers: 504 after `timeouts.read`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_answer_within_the_read_timeout_is_a_504() {
    let (server, _) = scripted(|_, _, _| Act::Silent).await;
    let (lb, addr) = lb_for(
        server,
        "timeouts = { read = \"300ms\" }\n[pool.p.retry]\nattempts = 0\n",
    )
    .await;
    let mut c = h2c(addr).await;
    let started = std::time::Instant::now();
    assert_eq!(send(&mut c, Method::GET, "/", "").await.0, 504);
    assert!(started.elapsed() < Duration::from_secs(5));
    lb.shutdown().await;
}

/// A server that sends `100 Continue` unasked as soon as it has a request's head (then says
/// so on `sent`), reads the `content-length` body, and answers with its length.
async fn continue_server(sent: tokio::sync::mpsc::Sender<()>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let mut buf = Vec::new();
        let end = loop {
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        };
        let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
        let length: usize = head
            .lines()
            .find_map(|l| l.strip_prefix("content-length:"))
            .map_or(0, |v| v.trim().parse().unwrap());
        s.write_all(b"HTTP/1.1 100 Continue\r\n\r\n").await.unwrap();
        let _ = sent.send(()).await;
        while buf.len() < end + length {
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let text = format!("got {}", buf.len() - end);
        let answer = format!(
            "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{text}",
            text.len()
        );
        let _ = s.write_all(answer.as_bytes()).await;
        let _ = s.read(&mut [0u8; 1]).await;
    });
    addr
}

/// An interim answer the server sends while the upload is still coming is passed over and
/// the upload goes on: the server gets the whole body and answers it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interim_answer_during_an_upload_does_not_stop_it() {
    let (sent_tx, mut sent_rx) = tokio::sync::mpsc::channel(1);
    let server = continue_server(sent_tx).await;
    let lb = start_lb(&format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\nrequest_buffering = false\n[pool.p]\nservers = [ {{ addr = \"{server}\" }} ]\ntimeouts = {{ read = \"3s\" }}\n[pool.p.retry]\nattempts = 0\n"
    ))
    .await;
    let addr = lb.local_addr("web").unwrap();
    let mut c = h2c(addr).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<hyper::body::Frame<Bytes>, Infallible>>(4);
    let frames =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    // Longer than a retry keeps, so it streams.
    let first = Bytes::from(vec![b'a'; 70_000]);
    tx.send(Ok(hyper::body::Frame::data(first))).await.unwrap();
    let req = Request::post("http://127.0.0.1/upload")
        .header("content-length", "100000")
        .body(http_body_util::StreamBody::new(frames).boxed())
        .unwrap();
    let answer = tokio::spawn(async move {
        let resp = c.send_request(req).await.unwrap();
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    });
    tokio::time::timeout(Duration::from_secs(10), sent_rx.recv())
        .await
        .expect("the server sent its 100");
    tx.send(Ok(hyper::body::Frame::data(Bytes::from(vec![
        b'b';
        30_000
    ]))))
    .await
    .unwrap();
    drop(tx);
    let (status, body) = tokio::time::timeout(Duration::from_secs(10), answer)
        .await
        .expect("answered")
        .unwrap();
    assert_eq!((status, body.as_str()), (200, "got 100000"));
    lb.shutdown().await;
}

/// A server that answers `200` chunked with `hello` as soon as it has a request's head
/// (then says so on `answered`), and ends the answer with `world` when told on `finish`.
async fn early_answer_server(
    answered: tokio::sync::mpsc::Sender<()>,
    finish: tokio::sync::oneshot::Receiver<()>,
) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let mut buf = Vec::new();
        while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let head = "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n";
        s.write_all(head.as_bytes()).await.unwrap();
        let _ = answered.send(()).await;
        let (mut r, mut w) = s.into_split();
        // The upload is read (and dropped) meanwhile.
        let reader = tokio::spawn(async move {
            let mut chunk = [0u8; 4096];
            while matches!(r.read(&mut chunk).await, Ok(n) if n > 0) {}
        });
        let _ = finish.await;
        let _ = w.write_all(b"5\r\nworld\r\n0\r\n\r\n").await;
        let _ = tokio::time::timeout(Duration::from_secs(10), reader).await;
    });
    addr
}

/// An upload that fails (here: over `client_max_body_size`) after the server has begun its
/// answer does not cut the answer short to look whole: it is relayed to its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_failing_after_the_answer_began_does_not_cut_the_answer() {
    let (answered_tx, mut answered_rx) = tokio::sync::mpsc::channel(1);
    let (finish_tx, finish_rx) = tokio::sync::oneshot::channel();
    let server = early_answer_server(answered_tx, finish_rx).await;
    let lb = start_lb(&format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\nrequest_buffering = false\nclient_max_body_size = \"80k\"\n[pool.p]\nservers = [ {{ addr = \"{server}\" }} ]\ntimeouts = {{ read = \"5s\" }}\n[pool.p.retry]\nattempts = 0\n"
    ))
    .await;
    let addr = lb.local_addr("web").unwrap();
    let mut c = h2c(addr).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<hyper::body::Frame<Bytes>, Infallible>>(4);
    let frames =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    // Longer than a retry keeps, so it streams; no length, so only the limit stops it.
    tx.send(Ok(hyper::body::Frame::data(Bytes::from(vec![
        b'a';
        70_000
    ]))))
    .await
    .unwrap();
    let req = Request::post("http://127.0.0.1/upload")
        .body(http_body_util::StreamBody::new(frames).boxed())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), c.send_request(req))
        .await
        .expect("an answer in time")
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    tokio::time::timeout(Duration::from_secs(10), answered_rx.recv())
        .await
        .expect("the server answered early");
    let mut body = resp.into_body();
    let first = tokio::time::timeout(Duration::from_secs(10), body.frame())
        .await
        .expect("the first bytes")
        .unwrap()
        .unwrap();
    assert_eq!(first.into_data().unwrap(), "hello");
    // Past the limit: the upload fails.
    let _ = tx
        .send(Ok(hyper::body::Frame::data(Bytes::from(vec![
            b'b';
            30_000
        ]))))
        .await;
    // The answer is not over: nothing (no end) until the server finishes it.
    let next = tokio::time::timeout(Duration::from_millis(500), body.frame()).await;
    assert!(next.is_err(), "the answer ended early: {next:?}");
    finish_tx.send(()).unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(10), body.collect())
        .await
        .expect("the answer's end")
        .expect("a whole answer");
    assert_eq!(rest.to_bytes(), "world");
    drop(tx);
    lb.shutdown().await;
}

/// An HTTP/2 `:path` that is not an origin-form target (`?x`) is refused with 400 before
/// routing, as nginx refuses it; nothing reaches the server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_path_not_starting_with_a_slash_is_a_400() {
    let (server, conns) = scripted(|_, _, _| Act::Answer(OK)).await;
    let (lb, addr) = lb_for(server, "").await;
    let mut c = h2c(addr).await;
    let (status, _) = send(&mut c, Method::GET, "?x", "").await;
    assert_eq!(status, 400);
    assert_eq!(
        send(&mut c, Method::GET, "/?x", "").await,
        (200, Ok("ok".into()))
    );
    assert_eq!(conns.load(Ordering::SeqCst), 1);
    lb.shutdown().await;
}

/// A server's trailers reach the HTTP/2 client but the hop-by-hop ones, which h2 refuses
/// to send (the stream was reset after a whole body).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_trailers_are_dropped() {
    let (server, _) = scripted(|_, _, _| {
        Act::Answer(
            "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\nkeep-alive: 5\r\nTE: trailers\r\nx-sum: 1\r\n\r\n",
        )
    })
    .await;
    let (lb, addr) = lb_for(server, "").await;
    let mut c = h2c(addr).await;
    let req = Request::get("http://127.0.0.1/t")
        .body(Full::new(Bytes::new()).boxed())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), c.send_request(req))
        .await
        .expect("an answer in time")
        .unwrap();
    let got = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .expect("the body in time")
        .expect("a whole body");
    let trailers = got.trailers().cloned().expect("trailers");
    assert_eq!(trailers["x-sum"], "1");
    assert!(!trailers.contains_key("keep-alive") && !trailers.contains_key("te"));
    assert_eq!(got.to_bytes(), "hi");
    lb.shutdown().await;
}

/// A server that reads one chunked request whole (to the end of its trailer section), says
/// what it read on `got`, and answers `ok`.
async fn trailer_server(got: tokio::sync::mpsc::Sender<String>) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((mut s, _)) = listener.accept().await else {
            return;
        };
        let mut buf = Vec::new();
        loop {
            if let Some(e) = buf.windows(4).position(|w| w == b"\r\n\r\n")
                && (buf[e + 4..].starts_with(b"0\r\n")
                    || buf[e + 4..].windows(5).any(|w| w == b"\r\n0\r\n"))
                && buf.ends_with(b"\r\n\r\n")
            {
                break;
            }
            let mut chunk = [0u8; 4096];
            match s.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
        let _ = got.send(String::from_utf8_lossy(&buf).into_owned()).await;
        let _ = s.write_all(OK.as_bytes()).await;
        let _ = s.read(&mut [0u8; 1]).await;
    });
    addr
}

/// A client's trailers go to the server but those that frame, route or authenticate the
/// request, the hop-by-hop ones and the forwarding ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_trailers_are_filtered() {
    let (got_tx, mut got_rx) = tokio::sync::mpsc::channel(1);
    let server = trailer_server(got_tx).await;
    let lb = start_lb(&format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\nrequest_buffering = false\n[pool.p]\nservers = [ {{ addr = \"{server}\" }} ]\n[pool.p.retry]\nattempts = 0\n"
    ))
    .await;
    let addr = lb.local_addr("web").unwrap();
    let mut c = h2c(addr).await;
    let mut t = http::HeaderMap::new();
    for (n, v) in [
        ("x-sum", "1"),
        ("host", "evil.example"),
        ("authorization", "Basic eA=="),
        ("x-forwarded-for", "6.6.6.6"),
        ("forwarded", "for=6.6.6.6"),
        ("set-cookie", "a=b"),
        ("content-length", "9"),
    ] {
        t.insert(n, http::HeaderValue::from_static(v));
    }
    let frames = futures_util::stream::iter([
        Ok::<_, Infallible>(hyper::body::Frame::data(Bytes::from_static(b"hi"))),
        Ok(hyper::body::Frame::trailers(t)),
    ]);
    let req = Request::post("http://127.0.0.1/t")
        .body(http_body_util::StreamBody::new(frames).boxed())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), c.send_request(req))
        .await
        .expect("an answer in time")
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = tokio::time::timeout(Duration::from_secs(10), got_rx.recv())
        .await
        .expect("the server read the request")
        .unwrap()
        .to_ascii_lowercase();
    let trailer = &got[got.find("\r\n0\r\n").expect("a chunked body") + 5..];
    assert_eq!(trailer, "x-sum: 1\r\n\r\n", "all read: {got}");
    lb.shutdown().await;
}

/// A try that fails after its connection opened (here: a garbage answer, 502) still logs
/// the time the connection took to open.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_try_logs_its_connect_time() {
    let (server, _) = scripted(|_, _, _| Act::Answer("garbage\r\n\r\n")).await;
    let dir = temp_dir("h2-to-h1-connect");
    let log = dir.join("access.log");
    let lb = start_lb(&format!(
        "[log]\naccess = \"{}\"\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nservers = [ {{ addr = \"{server}\" }} ]\n[pool.p.retry]\nattempts = 0\n",
        log.display()
    ))
    .await;
    let addr = lb.local_addr("web").unwrap();
    let mut c = h2c(addr).await;
    assert_eq!(send(&mut c, Method::GET, "/x", "").await.0, 502);
    let access = lb.access_log();
    lb.shutdown().await;
    access.flush(Duration::from_secs(5));
    let text = std::fs::read_to_string(&log).unwrap();
    let line = text.lines().find(|l| l.contains("\" 502 ")).expect(&text);
    let connect = line
        .split(' ')
        .find_map(|w| w.strip_prefix("upstream_connect_time="))
        .expect(line);
    assert!(connect.parse::<f64>().is_ok(), "{line}");
}

/// An upload that goes on after its answer's end keeps its server counted busy (in flight,
/// for least_conn) until it ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upload_outliving_its_answer_stays_in_flight() {
    let (answered_tx, mut answered_rx) = tokio::sync::mpsc::channel(1);
    let (finish_tx, finish_rx) = tokio::sync::oneshot::channel();
    let server = early_answer_server(answered_tx, finish_rx).await;
    let lb = start_lb(&format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\nrequest_buffering = false\n[pool.p]\nservers = [ {{ addr = \"{server}\" }} ]\n[pool.p.retry]\nattempts = 0\n"
    ))
    .await;
    let addr = lb.local_addr("web").unwrap();
    let mut c = h2c(addr).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<hyper::body::Frame<Bytes>, Infallible>>(4);
    let frames =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    tx.send(Ok(hyper::body::Frame::data(Bytes::from(vec![
        b'a';
        70_000
    ]))))
    .await
    .unwrap();
    let req = Request::post("http://127.0.0.1/upload")
        .body(http_body_util::StreamBody::new(frames).boxed())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), c.send_request(req))
        .await
        .expect("an answer in time")
        .unwrap();
    tokio::time::timeout(Duration::from_secs(10), answered_rx.recv())
        .await
        .expect("the server answered early");
    finish_tx.send(()).unwrap();
    let body = tokio::time::timeout(Duration::from_secs(10), resp.into_body().collect())
        .await
        .expect("the answer's end")
        .unwrap();
    assert_eq!(body.to_bytes(), "helloworld");
    let pool = lb.pool("p").unwrap();
    let busy = || pool.servers()[0].in_flight();
    assert_eq!(busy(), 1, "the upload still goes on");
    drop(tx);
    wait_until(Duration::from_secs(10), "the upload's end", || async {
        busy() == 0
    })
    .await;
    lb.shutdown().await;
}

/// A server whose every answer waits until `together` requests are waiting on as many
/// connections (so they are surely in flight at once); returns its address and its counts
/// of connections opened and closed (by the LB).
async fn together_server(together: usize) -> (SocketAddr, Arc<AtomicUsize>, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (opened, closed) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (o, c) = (opened.clone(), closed.clone());
    let barrier = Arc::new(tokio::sync::Barrier::new(together));
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            o.fetch_add(1, Ordering::SeqCst);
            let (c, barrier) = (c.clone(), barrier.clone());
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    while let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        buf.drain(..i + 4);
                        barrier.wait().await;
                        if s.write_all(OK.as_bytes()).await.is_err() {
                            break;
                        }
                    }
                    let mut chunk = [0u8; 4096];
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                c.fetch_add(1, Ordering::SeqCst);
            });
        }
    });
    (addr, opened, closed)
}

/// More requests in flight than `keepalive`: the connections over it stay open while they
/// are needed (steady load opens none), and close once idle a while (HAProxy's
/// `pool-purge-delay`); `keepalive` of them stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_keepalive_close_only_once_idle_a_while() {
    let (server, opened, closed) = together_server(8).await;
    let (lb, addr) = lb_for(server, "keepalive = 2\n").await;
    let c = h2c(addr).await;
    for round in 0..3 {
        let sends: Vec<_> = (0..8)
            .map(|i| {
                let mut c = c.clone();
                tokio::spawn(async move { send(&mut c, Method::GET, &format!("/{i}"), "").await })
            })
            .collect();
        for s in sends {
            assert_eq!(s.await.unwrap(), (200, Ok("ok".into())), "round {round}");
        }
        assert_eq!(
            opened.load(Ordering::SeqCst),
            8,
            "round {round}: none opened again"
        );
        assert_eq!(
            closed.load(Ordering::SeqCst),
            0,
            "round {round}: none closed yet"
        );
    }
    wait_until(
        Duration::from_secs(20),
        "the idle ones over keepalive closed",
        || async { closed.load(Ordering::SeqCst) >= 6 },
    )
    .await;
    assert_eq!(
        closed.load(Ordering::SeqCst),
        6,
        "keepalive = 2 of them stay"
    );
    lb.shutdown().await;
}

/// An answer read whole with its head is passed on as it is; bytes past its length were not
/// asked for: they are not passed on, and its connection is not used again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bytes_past_the_answers_length_end_its_connection() {
    let (server, conns) = scripted(|_, _, head| match head.split(' ').nth(1) {
        Some("/extra") => Act::Answer("HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nokEXTRA"),
        _ => Act::Answer(OK),
    })
    .await;
    let (lb, addr) = lb_for(server, "[pool.p.retry]\nattempts = 0\n").await;
    let mut c = h2c(addr).await;
    for path in ["/", "/", "/extra", "/", "/"] {
        assert_eq!(
            send(&mut c, Method::GET, path, "").await,
            (200, Ok("ok".into())),
            "{path}"
        );
    }
    assert_eq!(conns.load(Ordering::SeqCst), 2, "one more after /extra");
    lb.shutdown().await;
}

/// `X-Forwarded-Host` and `Forwarded` name the host an HTTP/2 request was routed on (its
/// `:authority`); the default set writes neither.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forwarding_headers_name_the_routed_host() {
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(4);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                        buf.drain(..i + 4);
                        let _ = tx.send(head).await;
                        if s.write_all(OK.as_bytes()).await.is_err() {
                            return;
                        }
                        continue;
                    }
                    let mut chunk = [0u8; 4096];
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
            });
        }
    });
    for (set, expect) in [
        (
            "forward_headers = [\"x-forwarded-host\", \"forwarded\"]\n",
            [
                "x-forwarded-host: h2.example:8443",
                "host=\"h2.example:8443\"",
            ],
        ),
        ("", ["x-real-ip: 127.0.0.1", "x-forwarded-for: 127.0.0.1"]),
    ] {
        let lb = start_lb(&format!(
            "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n{set}[pool.p]\nservers = [ {{ addr = \"{server}\" }} ]\n"
        ))
        .await;
        let mut c = h2c(lb.local_addr("web").unwrap()).await;
        let req = Request::get("http://h2.example:8443/x")
            .body(Full::new(Bytes::new()).boxed())
            .unwrap();
        let resp = tokio::time::timeout(Duration::from_secs(10), c.send_request(req))
            .await
            .expect("an answer in time")
            .unwrap();
        assert_eq!(resp.status(), 200);
        let head = tokio::time::timeout(Duration::from_secs(10), rx.recv())
            .await
            .expect("the server's head")
            .unwrap();
        for e in expect {
            assert!(head.contains(e), "{set}: {e} in {head}");
        }
        if set.is_empty() {
            assert!(!head.contains("x-forwarded-host"), "{head}");
            assert!(!head.contains("\r\nforwarded"), "{head}");
        }
        lb.shutdown().await;
    }
}

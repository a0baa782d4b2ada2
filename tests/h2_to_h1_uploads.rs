//! HTTP/2 clients to HTTP/1.1 servers (`proxy/http/h1/client.rs`): what goes to the server
//! with a request — uploads (an interim answer, an answer begun before the upload ends, an
//! upload outliving its answer), trailers both ways, the `:path` and the forwarding headers —
//! against scripted servers whose every byte the test chooses. The server connections and
//! the answers' framing: `tests/h2_to_h1.rs`.
mod common;
#[path = "h2_support/mod.rs"]
mod h2_support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use h2_support::*;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

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

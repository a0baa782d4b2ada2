//! HTTP/2 clients to HTTP/1.1 servers (`proxy/http/h1/client.rs`): the server connections
//! (reuse, keep-alive beyond `keepalive`, a connection closed unanswered), the framing of
//! the server's answers and the failures (502, 504), against scripted servers whose every
//! byte the test chooses. Uploads, trailers and request fields: `tests/h2_to_h1_uploads.rs`.
mod common;
#[path = "h2_support/mod.rs"]
mod h2_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use h2_support::*;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

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

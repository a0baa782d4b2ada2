//! HTTP/2 work a client can start and abandon (issue 15, item 4): "rapid reset" paced under
//! h2's own accept-reset limit (HEADERS, then RST_STREAM 1–3 ms later, again and again)
//! ends the connection after about a hundred resets, and `keepalive_requests` ends any
//! connection after that many requests (nginx: 1000), HTTP/2 and HTTP/1.1 alike. The Rust
//! `h2` client over h2c, the demo backend counting what reached it.

mod common;
#[path = "limits_support/mod.rs"]
mod support;

use std::time::{Duration, Instant};

use common::backends;
use support::{h2c, lb, listener_config};
use switchyard::proxy::http::Http1Engine;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// How many HEADERS + RST_STREAM pairs the client tries to send.
const TRIES: usize = 3000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paced_rapid_reset_ends_the_connection() {
    let b = backends(1).await;
    let lb = lb(&listener_config(&b[0], ""), Http1Engine::Direct).await;
    let addr = lb.local_addr("web").unwrap();
    let (mut send, conn) = h2c(addr).await;
    let driver = tokio::spawn(conn);
    let started = Instant::now();
    let mut sent = 0;
    for i in 0..TRIES {
        // Bounded by count and by time.
        if started.elapsed() > Duration::from_secs(20) {
            break;
        }
        let ready = tokio::time::timeout(Duration::from_secs(2), send.clone().ready()).await;
        let Ok(Ok(ready)) = ready else {
            break;
        };
        send = ready;
        // The server answers after 50 ms: every reset comes while it is still working.
        let req = http::Request::get(format!("http://{addr}/sleep/50"))
            .body(())
            .unwrap();
        let Ok((_resp, mut stream)) = send.send_request(req, true) else {
            break;
        };
        sent += 1;
        tokio::time::sleep(Duration::from_millis(1 + (i % 3) as u64)).await;
        stream.send_reset(h2::Reason::CANCEL);
    }
    let ended = tokio::time::timeout(Duration::from_secs(5), driver).await;
    assert!(
        ended.is_ok(),
        "the connection is still open after {sent} resets"
    );
    // Let what is in flight reach the server before counting.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let reached = b[0].requests();
    let upstream = b[0].connections();
    eprintln!(
        "rapid reset: {sent} of {TRIES} sent before the close, {reached} reached the server over {upstream} connections"
    );
    assert!(
        sent < 400,
        "{sent} requests sent before the connection ended"
    );
    assert!(reached <= 300, "{reached} requests reached the server");
    let floods = lb.conn_limits("web").unwrap().stats().reset_floods();
    assert_eq!(floods, 1, "counted as a reset flood");
    // Others are served.
    assert_eq!(common::get(addr, "/").await.status, 200);
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_answered_whole_are_not_resets() {
    // 300 requests on one connection, each answered whole: nothing is cut.
    let b = backends(1).await;
    let lb = lb(&listener_config(&b[0], ""), Http1Engine::Direct).await;
    let addr = lb.local_addr("web").unwrap();
    let (mut send, conn) = h2c(addr).await;
    let driver = tokio::spawn(conn);
    for _ in 0..300 {
        send = send.ready().await.expect("the connection stays open");
        let req = http::Request::get(format!("http://{addr}/"))
            .body(())
            .unwrap();
        let (resp, _) = send.send_request(req, true).unwrap();
        let resp = resp.await.expect("answered");
        assert_eq!(resp.status(), 200);
        let mut body = resp.into_body();
        while let Some(c) = body.data().await {
            c.unwrap();
        }
    }
    assert_eq!(lb.conn_limits("web").unwrap().stats().reset_floods(), 0);
    drop(send);
    let _ = tokio::time::timeout(Duration::from_secs(5), driver).await;
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_requests_ends_http2_and_http1_connections() {
    let b = backends(1).await;
    let lb = lb(
        &listener_config(&b[0], "keepalive_requests = 10"),
        Http1Engine::Direct,
    )
    .await;
    let addr = lb.local_addr("web").unwrap();

    // HTTP/2: GOAWAY after the 10th; the 11th on it is refused.
    let (mut send, conn) = h2c(addr).await;
    let driver = tokio::spawn(conn);
    let mut answered = 0;
    for _ in 0..15 {
        let Ok(Ok(ready)) = tokio::time::timeout(Duration::from_secs(2), send.ready()).await else {
            break;
        };
        send = ready;
        let req = http::Request::get(format!("http://{addr}/"))
            .body(())
            .unwrap();
        let Ok((resp, _)) = send.send_request(req, true) else {
            break;
        };
        match resp.await {
            Ok(r) if r.status() == 200 => {
                let mut body = r.into_body();
                while let Some(c) = body.data().await {
                    c.unwrap();
                }
                answered += 1;
            }
            _ => break,
        }
    }
    assert_eq!(answered, 10, "HTTP/2 requests answered on one connection");
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("the connection ends after keepalive_requests")
        .unwrap()
        .ok();

    // HTTP/1.1 on the direct path: the 10th answer says Connection: close, and it closes.
    let mut s = TcpStream::connect(addr).await.unwrap();
    for i in 1..=10 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let (first, text) = support::read_answer(&mut s).await;
        assert!(first.starts_with("HTTP/1.1 200"), "{i}: {first}");
        let close = text.to_ascii_lowercase().contains("connection: close");
        assert_eq!(close, i == 10, "request {i}: {text}");
    }
    let rest = support::closed_within(&mut s, Duration::from_secs(2))
        .await
        .expect("closed after the 10th answer");
    assert!(rest.is_empty());
    lb.shutdown().await;
}

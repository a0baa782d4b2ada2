//! Client uploads and slow peers through the L7 proxy: slow uploads within the timeouts,
//! a client stalling mid-body (408), an aborted upload, a server that stops reading (the send
//! timeout).

mod common;

use std::time::{Duration, Instant};

use common::*;
use switchyard::demo::Backend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A config over `b` with `timeouts = { ... }` as given.
fn with_timeouts(b: &[Backend], timeouts: &str) -> String {
    simple_config("round_robin", b, &[]).replace(
        "[pool.p]\n",
        &format!("[pool.p]\ntimeouts = {{ {timeouts} }}\n"),
    )
}

/// A raw client connection that has sent `head` (and whatever else is in it).
async fn send_head(addr: std::net::SocketAddr, head: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head).await.unwrap();
    s
}

/// Read what the server sends until it closes or `limit` passes.
async fn read_until_close(s: &mut TcpStream, limit: Duration) -> String {
    let mut out = Vec::new();
    let _ = tokio::time::timeout(limit, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// `timeouts.read` is the time between two reads from the server once the request is sent:
/// an upload that takes longer than it in total, with short pauses, goes through, streamed
/// (chunked) and with a declared length above the replay limit alike.
#[tokio::test]
async fn a_slow_upload_longer_than_the_read_timeout_succeeds() {
    let b = backends(1).await;
    let lb = start_lb(&with_timeouts(
        &b,
        "read = \"300ms\", send = \"2s\", client_body = \"2s\"",
    ))
    .await;
    let addr = lb.local_addr("web").unwrap();

    // Chunked: 12 chunks of 1000 bytes, 100 ms apart (1.2 s in all).
    let mut s = send_head(addr, b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n").await;
    let started = Instant::now();
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        s.write_all(format!("3e8\r\n{}\r\n", "x".repeat(1000)).as_bytes())
            .await
            .unwrap();
    }
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let text = read_until_close(&mut s, Duration::from_secs(10)).await;
    assert!(started.elapsed() > Duration::from_millis(900));
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("received 12000 bytes"), "{text}");

    // Content-Length of 100 000 (streamed: over the replay limit), sent in 10 slices.
    let mut s = send_head(
        addr,
        b"POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: 100000\r\nConnection: close\r\n\r\n",
    )
    .await;
    for _ in 0..10 {
        s.write_all(&[b'y'; 10_000]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(120)).await;
    }
    let text = read_until_close(&mut s, Duration::from_secs(10)).await;
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(text.contains("received 100000 bytes"), "{text}");
}

/// A client that stops in the middle of its body gets 408 after `timeouts.client_body`
/// (nginx's `client_body_timeout`), both for a small body read before the server is chosen
/// and for a large one already streaming to the server; the server is not blamed.
#[tokio::test]
async fn a_client_that_stalls_mid_body_gets_408() {
    let b = backends(1).await;
    let lb = start_lb(&with_timeouts(
        &b,
        "read = \"10s\", send = \"10s\", client_body = \"300ms\"",
    ))
    .await;
    let addr = lb.local_addr("web").unwrap();
    for (declared, sent) in [(1000usize, 10usize), (200_000, 70_000)] {
        let mut s = send_head(
            addr,
            format!("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {declared}\r\n\r\n")
                .as_bytes(),
        )
        .await;
        s.write_all(&vec![b'z'; sent]).await.unwrap();
        let started = Instant::now();
        // The connection is kept open (no half-close): the client just stops.
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("an answer within 5 s")
            .unwrap();
        let text = String::from_utf8_lossy(&buf[..n]);
        assert!(text.starts_with("HTTP/1.1 408"), "{declared}: {text}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
            "408 after {waited:?}"
        );
        // The rest of the body will not come: the connection is closed after the 408.
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
            .await
            .expect("the connection is closed after the 408")
            .ok(); // a reset is a close too
        assert!(!String::from_utf8_lossy(&rest).contains("HTTP/1.1"));
    }
    // Not the server's fault: it is still in use (max_fails = 1 would have taken it out).
    assert_eq!(get(addr, "/").await.status, 200);
}

/// A client that closes its connection mid-upload is the client's failure, not the
/// server's: with nginx's default `max_fails = 1` the server would otherwise be taken out.
#[tokio::test]
async fn a_client_that_aborts_its_upload_does_not_count_against_the_server() {
    let b = backends(2).await;
    let lb = start_lb(&simple_config("round_robin", &b, &[])).await;
    let addr = lb.local_addr("web").unwrap();
    let servers = lb.pool("p").unwrap().servers().to_vec();
    let started = || servers.iter().map(|s| s.requests()).sum::<u64>();
    for (declared, sent) in [(1000usize, 10usize), (4_000_000, 300_000)] {
        let before: u64 = b.iter().map(|x| x.requests()).sum();
        let lb_before = started();
        let mut s = send_head(
            addr,
            format!("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {declared}\r\n\r\n")
                .as_bytes(),
        )
        .await;
        s.write_all(&vec![b'z'; sent]).await.unwrap();
        if declared > 1000 {
            // The streamed body reached a server before the client went away.
            wait_until(
                Duration::from_secs(5),
                "the upload reaches a server",
                || async { b.iter().map(|x| x.requests()).sum::<u64>() > before },
            )
            .await;
        }
        // The client ends its side mid-body; the balancer's answer (or its close) says it has
        // dealt with the abort, and no request is left in flight on a server.
        s.shutdown().await.unwrap();
        let mut answer = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut answer))
            .await
            .expect("the balancer answers or closes an aborted upload")
            .ok(); // a reset is an end too
        let reached = started() > lb_before;
        wait_until(Duration::from_secs(5), "no request in flight", || async {
            servers.iter().all(|s| s.in_flight() == 0)
        })
        .await;
        // The streamed upload did reach a server, so this checks something there.
        assert!(
            declared == 1000 || reached,
            "the upload of {declared} never reached a server"
        );
        let failures: Vec<u64> = servers.iter().map(|s| s.failures()).collect();
        assert_eq!(
            failures,
            [0, 0],
            "an abort of {declared} counted against a server"
        );
        let mut c = Client::connect(addr).await;
        let mut names = Vec::new();
        for _ in 0..10 {
            let a = c.get("/").await;
            assert_eq!(a.status, 200);
            names.push(a.text().split(':').next().unwrap().to_string());
        }
        let t = tally(names);
        assert_eq!(
            t.len(),
            2,
            "both servers still in rotation after an abort of {declared}: {t:?}"
        );
    }
}

/// A server that stops reading the request body: after `timeouts.send` without a write
/// going through, 504, long before `timeouts.read`.
#[tokio::test]
async fn a_server_that_stops_reading_the_body_gets_the_send_timeout() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = l.local_addr().unwrap();
    tokio::spawn(async move {
        // Accept, read a little, then hold the connection without reading (bounded).
        let mut held = Vec::new();
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            held.push(s);
            if held.len() > 4 {
                break;
            }
        }
        tokio::time::sleep(Duration::from_secs(30)).await;
    });
    let cfg = format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\ntimeouts = {{ read = \"20s\", send = \"400ms\", client_body = \"20s\" }}\nservers = [ {{ addr = \"{server}\" }} ]\n"
    );
    let lb = start_lb(&cfg).await;
    let addr = lb.local_addr("web").unwrap();
    let s = TcpStream::connect(addr).await.unwrap();
    let (mut rd, mut wr) = s.into_split();
    const TOTAL: usize = 64 << 20;
    let writer = tokio::spawn(async move {
        wr.write_all(
            format!("POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {TOTAL}\r\n\r\n")
                .as_bytes(),
        )
        .await?;
        let block = vec![b'u'; 1 << 20];
        for _ in 0..TOTAL >> 20 {
            wr.write_all(&block).await?;
        }
        Ok::<_, std::io::Error>(())
    });
    let started = Instant::now();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), rd.read(&mut buf))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 504"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(8),
        "504 after {:?}",
        started.elapsed()
    );
    writer.abort();
}

//! Request bodies and slow clients (issue 15, item 7, and the 413 limit): bodies over the
//! listener's or the route's `client_max_body_size` get 413 (declared, chunked, HTTP/2);
//! slow uploads are read before a server is chosen (`request_buffering`), so they hold no
//! server connection, and are cut at the pool's `client_body` timeout (408); a client that
//! reads nothing is closed at `send_timeout`. Both HTTP/1 engines, raw sockets, the demo
//! backend counting the connections and requests that reached it.

mod common;
#[path = "limits_support/mod.rs"]
mod support;

use std::time::Duration;

use bytes::Bytes;
use common::{backends, wait_until};
use support::{closed_within, lb, listener_config, read_answer};
use switchyard::proxy::http::Http1Engine;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const ENGINES: [Http1Engine; 2] = [Http1Engine::Direct, Http1Engine::Hyper];

/// `client_max_body_size` of 1 KiB on the listener, 4 KiB on `/upload`, none on `/free`.
const BODY_LIMITS: &str = r#"client_max_body_size = "1k"

  [[listener.route]]
  path_prefix = "/upload"
  pool = "p"
  client_max_body_size = "4k"

  [[listener.route]]
  path_prefix = "/free"
  pool = "p"
  client_max_body_size = 0
"#;

/// A pool that never retries (so keeps no body to send again).
const NO_RETRY: &str = "\n[pool.p.retry]\nattempts = 0\n";

/// Send `head` and `body` on a new connection; the answer's status line and text.
async fn exchange(addr: std::net::SocketAddr, head: &str, body: &[u8]) -> (String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head.as_bytes()).await.unwrap();
    // The body may be refused before it is all sent: a failed write is not the test's.
    let _ = s.write_all(body).await;
    read_answer(&mut s).await
}

fn post(path: &str, len: usize) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: a\r\nContent-Length: {len}\r\n\r\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_client_max_body_size_get_413() {
    let b = backends(1).await;
    for engine in ENGINES {
        let lb = lb(&listener_config(&b[0], BODY_LIMITS), engine).await;
        let addr = lb.local_addr("web").unwrap();
        let at_server = b[0].requests();
        // Declared lengths: refused before a server is asked.
        let (first, _) = exchange(addr, &post("/", 2000), b"").await;
        assert!(first.starts_with("HTTP/1.1 413"), "{engine:?}: {first}");
        let (first, _) = exchange(addr, &post("/upload", 5000), b"").await;
        assert!(first.starts_with("HTTP/1.1 413"), "{engine:?}: {first}");
        assert_eq!(
            b[0].requests(),
            at_server,
            "{engine:?}: a 413 reached the server"
        );
        // Under the route's limit, and with no limit.
        let (first, _) = exchange(addr, &post("/upload", 2000), &[b'x'; 2000]).await;
        assert!(first.starts_with("HTTP/1.1 200"), "{engine:?}: {first}");
        let (first, _) = exchange(addr, &post("/free", 100_000), &[b'x'; 100_000]).await;
        assert!(first.starts_with("HTTP/1.1 200"), "{engine:?}: {first}");
        // Chunked, no length declared: 413 once past the limit.
        let chunk = format!("320\r\n{}\r\n", "y".repeat(800));
        let chunked = format!("{chunk}{chunk}0\r\n\r\n");
        let head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
        let (first, _) = exchange(addr, head, chunked.as_bytes()).await;
        assert!(
            first.starts_with("HTTP/1.1 413"),
            "{engine:?}: chunked: {first}"
        );
        let (first, _) = exchange(addr, head, format!("{chunk}0\r\n\r\n").as_bytes()).await;
        assert!(
            first.starts_with("HTTP/1.1 200"),
            "{engine:?}: chunked: {first}"
        );
        lb.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_bodies_over_the_limit_get_413() {
    let b = backends(1).await;
    let lb = lb(&listener_config(&b[0], BODY_LIMITS), Http1Engine::Direct).await;
    let addr = lb.local_addr("web").unwrap();
    let (mut send, conn) = support::h2c(addr).await;
    tokio::spawn(conn);
    for (path, len, declared, status) in [
        ("/upload", 5000, true, 413),
        ("/upload", 5000, false, 413),
        ("/upload", 3000, false, 200),
        ("/", 3000, false, 413),
    ] {
        send = send.ready().await.unwrap();
        let mut req = http::Request::post(format!("http://{addr}{path}"));
        if declared {
            req = req.header("content-length", len);
        }
        let (resp, mut body) = send.send_request(req.body(()).unwrap(), false).unwrap();
        // Data in 1000-byte frames; the server may answer (and reset) before the end.
        for i in 0..len / 1000 {
            let last = i + 1 == len / 1000;
            if body.send_data(Bytes::from(vec![b'z'; 1000]), last).is_err() {
                break;
            }
        }
        let resp = resp.await.expect("an answer");
        assert_eq!(
            resp.status(),
            status,
            "{path} {len} bytes, declared: {declared}"
        );
    }
    lb.shutdown().await;
}

/// Open `n` uploads that send their head and 100 of 1000 bytes, then pause.
async fn slow_uploads(addr: std::net::SocketAddr, n: usize) -> Vec<TcpStream> {
    let mut v = Vec::new();
    for _ in 0..n {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(post("/upload", 1000).as_bytes()).await.unwrap();
        s.write_all(&[b'u'; 100]).await.unwrap();
        v.push(s);
    }
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_uploads_hold_no_server_connection() {
    const N: usize = 200;
    let b = backends(1).await;
    for engine in ENGINES {
        // No retries: no body is kept for a resend, only request buffering reads it first.
        let toml = format!("{}{NO_RETRY}", listener_config(&b[0], ""));
        let lb = lb(&toml, engine).await;
        let addr = lb.local_addr("web").unwrap();
        let limits = lb.conn_limits("web").unwrap();
        let (conns, reqs) = (b[0].connections(), b[0].requests());
        let mut slow = slow_uploads(addr, N).await;
        wait_until(Duration::from_secs(10), "all uploads accepted", || {
            let n = limits.open();
            async move { n >= N }
        })
        .await;
        // A good client is served meanwhile, over one server connection.
        assert_eq!(common::get(addr, "/").await.status, 200, "{engine:?}");
        // Nothing of the slow uploads may reach the server while they are incomplete.
        tokio::time::sleep(Duration::from_millis(500)).await;
        let opened = b[0].connections() - conns;
        assert!(
            opened <= 1,
            "{engine:?}: {opened} server connections for {N} slow uploads"
        );
        assert_eq!(b[0].requests() - reqs, 1, "{engine:?}");
        // Their bodies end: all answered.
        for s in &mut slow {
            s.write_all(&[b'u'; 900]).await.unwrap();
        }
        for mut s in slow {
            let (first, _) = read_answer(&mut s).await;
            assert!(first.starts_with("HTTP/1.1 200"), "{engine:?}: {first}");
        }
        assert_eq!(b[0].requests() - reqs, 1 + N as u64, "{engine:?}");
        lb.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_http2_uploads_without_a_length_hold_no_server_connection() {
    const N: usize = 50;
    let b = backends(1).await;
    let toml = format!("{}{NO_RETRY}", listener_config(&b[0], ""));
    let lb = lb(&toml, Http1Engine::Direct).await;
    let addr = lb.local_addr("web").unwrap();
    let (conns, reqs) = (b[0].connections(), b[0].requests());
    let mut uploads = Vec::new();
    for _ in 0..N {
        let (send, conn) = support::h2c(addr).await;
        tokio::spawn(conn);
        let mut send = send.ready().await.unwrap();
        let req = http::Request::post(format!("http://{addr}/upload"))
            .body(())
            .unwrap();
        let (resp, mut body) = send.send_request(req, false).unwrap();
        body.send_data(Bytes::from(vec![b'h'; 100]), false).unwrap();
        uploads.push((resp, body, send));
    }
    assert_eq!(common::get(addr, "/").await.status, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let opened = b[0].connections() - conns;
    assert!(
        opened <= 1,
        "{opened} server connections for {N} slow HTTP/2 uploads"
    );
    assert_eq!(b[0].requests() - reqs, 1);
    for (resp, mut body, _send) in uploads {
        body.send_data(Bytes::from(vec![b'h'; 900]), true).unwrap();
        assert_eq!(resp.await.unwrap().status(), 200);
    }
    assert_eq!(b[0].requests() - reqs, 1 + N as u64);
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_request_buffering_slow_uploads_hold_server_connections() {
    // The same with request_buffering = false: each upload holds a server connection (what
    // the option prevents; nginx's proxy_request_buffering off).
    const N: usize = 20;
    let b = backends(1).await;
    let toml = format!(
        "{}{NO_RETRY}",
        listener_config(&b[0], "request_buffering = false")
    );
    let lb = lb(&toml, Http1Engine::Direct).await;
    let addr = lb.local_addr("web").unwrap();
    let conns = b[0].connections();
    let slow = slow_uploads(addr, N).await;
    wait_until(Duration::from_secs(10), "each upload at the server", || {
        let n = b[0].connections() - conns;
        async move { n >= N as u64 }
    })
    .await;
    drop(slow);
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_cut_at_client_body_timeout() {
    let b = backends(1).await;
    for engine in ENGINES {
        let toml = listener_config(&b[0], "").replace(
            "servers = [",
            "timeouts = { client_body = \"1s\" }\nservers = [",
        );
        let lb = lb(&toml, engine).await;
        let addr = lb.local_addr("web").unwrap();
        let (conns, reqs) = (b[0].connections(), b[0].requests());
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(post("/upload", 1000).as_bytes()).await.unwrap();
        s.write_all(&[b'u'; 10]).await.unwrap();
        let started = std::time::Instant::now();
        let got = closed_within(&mut s, Duration::from_secs(5))
            .await
            .unwrap_or_else(|_| panic!("{engine:?}: a stalled upload is still open"));
        let text = String::from_utf8_lossy(&got);
        assert!(text.starts_with("HTTP/1.1 408"), "{engine:?}: {text}");
        assert!(started.elapsed() >= Duration::from_millis(900));
        assert_eq!(b[0].connections(), conns, "{engine:?}");
        assert_eq!(b[0].requests(), reqs, "{engine:?}");
        lb.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_reads_nothing_is_closed_at_send_timeout() {
    const LEN: usize = 64 << 20;
    let b = backends(1).await;
    for engine in ENGINES {
        let lb = lb(&listener_config(&b[0], "send_timeout = \"1s\""), engine).await;
        let addr = lb.local_addr("web").unwrap();
        let limits = lb.conn_limits("web").unwrap();
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(format!("GET /bytes/{LEN} HTTP/1.1\r\nHost: a\r\n\r\n").as_bytes())
            .await
            .unwrap();
        wait_until(Duration::from_secs(5), "the connection admitted", || {
            let n = limits.open();
            async move { n == 1 }
        })
        .await;
        // Read nothing: once the socket buffers are full the balancer's writes stall.
        wait_until(Duration::from_secs(15), "the connection closed", || {
            let n = limits.open();
            async move { n == 0 }
        })
        .await;
        // What the socket buffers hold (megabytes) is read, then the close.
        let got = closed_within(&mut s, Duration::from_secs(30))
            .await
            .unwrap_or_else(|got| panic!("{engine:?}: still open after {} bytes", got.len()));
        assert!(
            got.len() < LEN,
            "{engine:?}: {} bytes read: the answer was not cut",
            got.len()
        );
        assert_eq!(common::get(addr, "/").await.status, 200);
        lb.shutdown().await;
    }
}

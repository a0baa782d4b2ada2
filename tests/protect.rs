//! Protection through real listeners (issue 15), beyond the raw HTTP/1 rows of
//! `tests/hostile.rs`: HTTP/2 requests (routing on `:authority`, a `host` that differs,
//! cookie crumbs joined for an HTTP/1.1 server), `allow` / `deny` on TCP and UDP listeners
//! (a close, a dropped datagram), and per-server `max_conns` with its queue on both HTTP/1
//! engines (in order, `queue_size`, `queue_timeout`, 503).
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{backends, get, servers_toml, start_lb, wait_until};
use switchyard::proxy::http::Http1Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};

const LIMIT: Duration = Duration::from_secs(10);

/// One HTTP/2 (prior knowledge) request with these extra fields; the status and body.
async fn h2_get(addr: SocketAddr, uri: &str, fields: &[(&str, &str)]) -> (u16, String) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let (client, conn) = h2::client::handshake(tcp).await.expect("h2 handshake");
    tokio::spawn(conn);
    let mut client = client.ready().await.unwrap();
    let mut req = http::Request::builder().uri(uri);
    for (k, v) in fields {
        req = req.header(*k, *v);
    }
    let (resp, _) = client.send_request(req.body(()).unwrap(), true).unwrap();
    let resp = tokio::time::timeout(LIMIT, resp).await.unwrap().unwrap();
    let status = resp.status().as_u16();
    let mut body = resp.into_body();
    let mut text = Vec::new();
    while let Some(chunk) = tokio::time::timeout(LIMIT, body.data()).await.unwrap() {
        let chunk: Bytes = chunk.unwrap();
        let _ = body.flow_control().release_capacity(chunk.len());
        text.extend_from_slice(&chunk);
    }
    (status, String::from_utf8_lossy(&text).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_routes_on_authority_and_joins_cookies_for_http1_servers() {
    let b = backends(2).await;
    let toml = format!(
        r#"
[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "other"
  [[listener.route]]
  host = "a.example"
  pool = "a"

[pool.a]
servers = {}
[pool.other]
servers = {}
"#,
        servers_toml(&b[..1], &[]),
        servers_toml(&b[1..], &[])
    );
    let lb = start_lb(&toml).await;
    let addr = lb.local_addr("web").unwrap();

    let (status, text) = h2_get(
        addr,
        "http://a.example/headers",
        &[("cookie", "x=1"), ("cookie", "y=2"), ("cookie", "z=3")],
    )
    .await;
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains("host: a.example\n"),
        "routed on :authority, which the server sees as Host: {text}"
    );
    let cookies: Vec<&str> = text.lines().filter(|l| l.starts_with("cookie:")).collect();
    assert_eq!(cookies, ["cookie: x=1; y=2; z=3"], "{text}");

    // A `host` field naming another host than :authority: one of them lies (RFC 9113
    // §8.3.1), and routing on either would let the other reach the server.
    let (status, text) = h2_get(addr, "http://a.example/headers", &[("host", "b.example")]).await;
    assert_eq!(status, 400, "{text}");

    // The same connection-level checks leave a plain request alone.
    let (status, text) = h2_get(addr, "http://other.example/headers", &[]).await;
    assert_eq!(status, 200);
    assert!(text.contains("host: other.example\n"), "{text}");
    lb.shutdown().await;
}

/// A TCP server that answers every connection with `hi` and closes.
async fn hello_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(b"hi").await;
            });
        }
    });
    addr
}

async fn read_all(addr: SocketAddr) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut got = Vec::new();
    tokio::time::timeout(LIMIT, s.read_to_end(&mut got))
        .await
        .expect("closed within the limit")
        .ok();
    got
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tcp_and_udp_listeners_refuse_denied_clients() {
    let server = hello_server().await;
    let udp_server = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let udp_addr = udp_server.local_addr().unwrap();
    let toml = format!(
        r#"
[[listener]]
name = "open"
protocol = "tcp"
listen = "127.0.0.1:0"
pool = "t"
allow = ["127.0.0.0/8"]

[[listener]]
name = "shut"
protocol = "tcp"
listen = "127.0.0.1:0"
pool = "t"
allow = ["127.0.0.0/8"]
deny = ["127.0.0.1"]

[[listener]]
name = "dns"
protocol = "udp"
listen = "127.0.0.1:0"
pool = "u"
deny = ["127.0.0.0/8"]

[pool.t]
servers = [ {{ addr = "{server}" }} ]
[pool.u]
servers = [ {{ addr = "{udp_addr}" }} ]
"#
    );
    let lb = start_lb(&toml).await;
    assert_eq!(read_all(lb.local_addr("open").unwrap()).await, b"hi");
    assert_eq!(
        read_all(lb.local_addr("shut").unwrap()).await,
        b"",
        "the most specific rule (deny 127.0.0.1) closes at once"
    );
    let tcp = lb.tcp_stats("shut").unwrap();
    assert_eq!(tcp.denied.load(std::sync::atomic::Ordering::Relaxed), 1);
    assert_eq!(tcp.connect_failures(), 0);

    let client = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    client
        .send_to(b"q", lb.local_addr("dns").unwrap())
        .await
        .unwrap();
    let udp = lb.udp_stats("dns").unwrap();
    wait_until(LIMIT, "the datagram is counted as denied", || {
        let udp = udp.clone();
        async move { udp.denied.load(std::sync::atomic::Ordering::Relaxed) == 1 }
    })
    .await;
    assert_eq!(udp.sessions(), 0);
    let mut buf = [0u8; 8];
    assert!(
        tokio::time::timeout(Duration::from_millis(200), udp_server.recv_from(&mut buf))
            .await
            .is_err(),
        "nothing reached the UDP server"
    );
    lb.shutdown().await;
}

/// A pool of one demo server with `max_conns = 1` and a queue.
async fn queued_lb(
    engine: Http1Engine,
    queue: &str,
) -> (switchyard::runtime::Runtime, Vec<switchyard::demo::Backend>) {
    let b = backends(1).await;
    let toml = format!(
        r#"
[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "p"

[pool.p]
max_conns = 1
{queue}
servers = {}
"#,
        servers_toml(&b, &[])
    );
    let plan = switchyard::config::load_str(&toml, "test.toml").unwrap();
    let lb = switchyard::runtime::Runtime::start_with(plan, engine)
        .await
        .unwrap();
    (lb, b)
}

async fn max_conns_queue(engine: Http1Engine) {
    let (lb, _b) = queued_lb(engine, "queue_size = 2\nqueue_timeout = \"5s\"").await;
    let addr = lb.local_addr("web").unwrap();
    let pool = lb.pool("p").unwrap();
    let server = pool.servers()[0].clone();
    let started = Instant::now();
    // The first holds the server's only place for 400 ms.
    let first = tokio::spawn(async move { get(addr, "/sleep/400").await });
    wait_until(LIMIT, "the first request is at the server", || {
        let s = server.clone();
        async move { s.in_flight() == 1 }
    })
    .await;
    // Two wait, in order; a third finds the queue full: 503 at once.
    let second = tokio::spawn(async move { (get(addr, "/sleep/1").await, Instant::now()) });
    let queue = pool.queue().unwrap().clone();
    wait_until(LIMIT, "the second request waits", || {
        let q = queue.clone();
        async move { q.waiting() == 1 }
    })
    .await;
    let third = tokio::spawn(async move { (get(addr, "/sleep/1").await, Instant::now()) });
    wait_until(LIMIT, "the third request waits", || {
        let q = queue.clone();
        async move { q.waiting() == 2 }
    })
    .await;
    let full = get(addr, "/").await;
    assert_eq!(full.status, 503, "{engine:?}: {}", full.text());
    assert_eq!(full.headers["retry-after"], "1");
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "refused at once"
    );

    assert_eq!(first.await.unwrap().status, 200);
    let (second, t2) = second.await.unwrap();
    let (third, t3) = third.await.unwrap();
    assert_eq!(
        (second.status.as_u16(), third.status.as_u16()),
        (200, 200),
        "{engine:?}"
    );
    assert!(t2 <= t3, "{engine:?}: served in the order they came");
    assert!(started.elapsed() >= Duration::from_millis(400));
    assert_eq!(pool.servers()[0].in_flight(), 0);
    assert_eq!(queue.counts(), (2, 1));
    lb.shutdown().await;

    // A wait that runs out: 503 after queue_timeout, not before.
    let (lb, _b) = queued_lb(engine, "queue_timeout = \"200ms\"").await;
    let addr = lb.local_addr("web").unwrap();
    let server = lb.pool("p").unwrap().servers()[0].clone();
    let first = tokio::spawn(async move { get(addr, "/sleep/1500").await });
    wait_until(LIMIT, "the first request is at the server", || {
        let s = server.clone();
        async move { s.in_flight() == 1 }
    })
    .await;
    let asked = Instant::now();
    let late = get(addr, "/").await;
    assert_eq!(late.status, 503, "{engine:?}: {}", late.text());
    assert!(asked.elapsed() >= Duration::from_millis(200), "{engine:?}");
    assert_eq!(first.await.unwrap().status, 200);
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_conns_queues_in_order_then_503_on_hyper() {
    max_conns_queue(Http1Engine::Hyper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_conns_queues_in_order_then_503_on_the_direct_path() {
    max_conns_queue(Http1Engine::Direct).await;
}

/// The resident memory of this process, in KiB.
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// 4 connections each send 500 pipelined requests that are refused (a block rule: 403; over
/// a rate limit keyed by a header with 2,000 new keys: 429 or 200), while a good client keeps
/// asking: every one of its requests is answered, and memory stays bounded (the limiter's
/// table is fixed: `size = 256`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_of_refused_requests_leaves_good_clients_served() {
    let b = backends(1).await;
    let toml = format!(
        r#"
[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "p"
  [[listener.block]]
  header = {{ name = "x-bad", regex = "." }}
  [[listener.limit]]
  key = "header:x-user"
  rate = "1/m"
  size = 256

[pool.p]
servers = {}
"#,
        servers_toml(&b, &[])
    );
    let lb = start_lb(&toml).await;
    let addr = lb.local_addr("web").unwrap();
    let before = rss_kib();
    let mut floods = Vec::new();
    for c in 0..4u32 {
        floods.push(tokio::spawn(async move {
            let mut s = TcpStream::connect(addr).await.unwrap();
            let mut reqs = Vec::new();
            for i in 0..500u32 {
                let line = match c % 2 {
                    0 => "X-Bad: 1".to_string(),
                    _ => format!("X-User: flood-{c}-{i}"),
                };
                reqs.extend_from_slice(
                    format!("GET / HTTP/1.1\r\nHost: a\r\n{line}\r\n\r\n").as_bytes(),
                );
            }
            let (mut rd, mut wr) = s.split();
            let write = async {
                wr.write_all(&reqs).await.unwrap();
            };
            let read = async {
                let mut got = Vec::new();
                let mut buf = vec![0u8; 65536];
                let needle = b"HTTP/1.1 ";
                loop {
                    let n = rd.read(&mut buf).await.unwrap_or(0);
                    if n == 0 {
                        break;
                    }
                    got.extend_from_slice(&buf[..n]);
                    if got.windows(needle.len()).filter(|w| w == needle).count() >= 500 {
                        break;
                    }
                }
                got.windows(needle.len()).filter(|w| w == needle).count()
            };
            let ((), answered) =
                tokio::time::timeout(LIMIT * 3, async { tokio::join!(write, read) })
                    .await
                    .expect("the flood is answered within the limit");
            answered
        }));
    }
    // Meanwhile a good client: 20 requests, each answered 200.
    for i in 0..20 {
        let a = tokio::time::timeout(LIMIT, get(addr, "/"))
            .await
            .unwrap_or_else(|_| panic!("good request {i} not answered within {LIMIT:?}"));
        assert_eq!(a.status, 200, "good request {i}");
    }
    for f in floods {
        assert_eq!(f.await.unwrap(), 500, "every flood request answered");
    }
    let grown = rss_kib().saturating_sub(before);
    assert!(grown < 64 * 1024, "memory grew by {grown} KiB");
    lb.shutdown().await;
}

/// A TCP server that says `hi` and holds each connection until the client closes it.
async fn holding_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = s.write_all(b"hi").await;
                let mut sink = [0u8; 64];
                while matches!(s.read(&mut sink).await, Ok(n) if n > 0) {}
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tcp_server_at_max_conns_takes_no_more_connections() {
    let server = holding_server().await;
    let toml = format!(
        "[[listener]]\nname = \"l4\"\nprotocol = \"tcp\"\nlisten = \"127.0.0.1:0\"\npool = \"t\"\n[pool.t]\nservers = [ {{ addr = \"{server}\", max_conns = 1 }} ]\n"
    );
    let lb = start_lb(&toml).await;
    let addr = lb.local_addr("l4").unwrap();
    let mut first = TcpStream::connect(addr).await.unwrap();
    let mut hi = [0u8; 2];
    tokio::time::timeout(LIMIT, first.read_exact(&mut hi))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&hi, b"hi");
    // The server's one place is taken: the next connection is closed without a byte.
    assert_eq!(read_all(addr).await, b"");
    let stats = lb.tcp_stats("l4").unwrap();
    assert_eq!(
        stats.no_server.load(std::sync::atomic::Ordering::Relaxed),
        1
    );
    drop(first);
    let server_state = lb.pool("t").unwrap().servers()[0].clone();
    wait_until(LIMIT, "the first connection's place is free", || {
        let s = server_state.clone();
        async move { s.in_flight() == 0 }
    })
    .await;
    let mut again = TcpStream::connect(addr).await.unwrap();
    tokio::time::timeout(LIMIT, again.read_exact(&mut hi))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&hi, b"hi");
    drop(again);
    lb.shutdown().await;
}

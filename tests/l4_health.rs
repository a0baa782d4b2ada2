//! Health and balancing at L4, through real sockets: passive checks (`max_fails`,
//! `fail_timeout`) fed by TCP connect failures and UDP refusals, active `type = "tcp"`
//! checks taking a stopped backend out and back, and `ip_hash` / `least_conn` judged by
//! where connections land.
mod common;
mod l4_common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use l4_common::*;
use switchyard::runtime::Runtime;
use switchyard::upstream::HealthState;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};
use tokio::sync::mpsc;

async fn start(toml: &str) -> Runtime {
    let plan = switchyard::config::load_str(toml, "test.toml")
        .unwrap_or_else(|e| panic!("test config is invalid:\n{e}\n---\n{toml}"));
    Runtime::start(plan).await.expect("start load balancer")
}

/// Poll `cond` every 20 ms until it holds; panic naming `what` after `limit`.
async fn wait_for(limit: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One echo round trip through the listener (the client never sees a failed connect).
async fn echo_once(addr: SocketAddr) {
    let mut s = TcpStream::connect(addr).await.expect("connect to the LB");
    s.write_all(b"ping").await.unwrap();
    let mut got = [0u8; 4];
    tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
        .await
        .expect("echo in time")
        .expect("echo");
    assert_eq!(&got, b"ping");
}

/// Open a connection (after `prefix`, e.g. a PROXY header) and read the backend's greeting
/// `hello from NAME`; the connection stays open while the returned stream lives.
async fn greeted(addr: SocketAddr, prefix: &[u8]) -> (String, TcpStream) {
    let mut s = TcpStream::connect(addr).await.expect("connect to the LB");
    if !prefix.is_empty() {
        s.write_all(prefix).await.unwrap();
    }
    let mut line = Vec::new();
    let mut b = [0u8; 1];
    let read = async {
        while s.read(&mut b).await.expect("read greeting") == 1 && b[0] != b'\n' {
            line.push(b[0]);
        }
    };
    tokio::time::timeout(Duration::from_secs(5), read)
        .await
        .expect("greeting in time");
    let text = String::from_utf8(line).unwrap();
    let name = text
        .strip_prefix("hello from ")
        .unwrap_or_else(|| panic!("not a greeting: {text:?}"))
        .to_string();
    (name, s)
}

async fn greeters(names: &[&str]) -> (Vec<TcpBackend>, mpsc::UnboundedReceiver<u64>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut v = Vec::new();
    for n in names {
        v.push(TcpBackend::start(n, Mode::GreetThenCount(tx.clone())).await);
    }
    (v, rx)
}

#[tokio::test]
async fn tcp_connect_failures_take_a_dead_server_out_for_fail_timeout() {
    let live = TcpBackend::start("live", Mode::Echo).await;
    let dead: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let fail_timeout = Duration::from_millis(1500);
    let lb = start(&l4_config(
        "tcp",
        "",
        "algorithm = \"round_robin\"\nmax_fails = 2\nfail_timeout = \"1500ms\"",
        &[dead, live.addr],
    ))
    .await;
    let addr = lb.local_addr("l4").unwrap();
    let stats = lb.tcp_stats("l4").unwrap();
    let dead_server = lb.pool("p").unwrap().servers()[0].clone();

    // Round robin offers the dead server every other connection; each refusal fails over
    // (the client sees an echo) and counts. The second one within fail_timeout trips it.
    let mut tripped_at = None;
    for _ in 0..10 {
        let before = Instant::now();
        echo_once(addr).await;
        if stats.connect_failures() == 2 {
            tripped_at = Some(before);
            break;
        }
    }
    let tripped_at = tripped_at.expect("two connect failures within ten connections");
    assert_eq!(dead_server.health_state(), HealthState::Failed);

    // Out: not tried again while fail_timeout runs.
    for _ in 0..20 {
        echo_once(addr).await;
    }
    assert_eq!(
        stats.connect_failures(),
        2,
        "the failed server was tried again inside fail_timeout"
    );

    // After fail_timeout it is tried again (and, still dead, fails again).
    let deadline = Instant::now() + Duration::from_secs(15);
    while stats.connect_failures() == 2 {
        assert!(
            Instant::now() < deadline,
            "dead server never tried again after fail_timeout"
        );
        echo_once(addr).await;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let waited = tripped_at.elapsed();
    assert!(
        waited >= fail_timeout,
        "tried again after {waited:?}, before fail_timeout ({fail_timeout:?})"
    );
    assert_eq!(dead_server.health_state(), HealthState::Failed, "out again");
    lb.shutdown().await;
}

#[tokio::test]
async fn active_tcp_checks_take_a_stopped_backend_out_and_bring_it_back() {
    let (mut b, _rx) = greeters(&["s1", "s2"]).await;
    let addrs: Vec<SocketAddr> = b.iter().map(|x| x.addr).collect();
    // Passive checks off: only the active checks decide here.
    let toml = l4_config(
        "tcp",
        "",
        "algorithm = \"round_robin\"\nmax_fails = 0",
        &addrs,
    ) + "[pool.p.health]\ntype = \"tcp\"\ninterval = \"100ms\"\ntimeout = \"100ms\"\nrise = 2\nfall = 2\n";
    let lb = start(&toml).await;
    let addr = lb.local_addr("l4").unwrap();
    let stats = lb.tcp_stats("l4").unwrap();
    let s1 = lb.pool("p").unwrap().servers()[0].clone();

    let spread = |names: &[String]| names.iter().cloned().collect::<BTreeSet<_>>();
    let mut names = Vec::new();
    for _ in 0..6 {
        names.push(greeted(addr, b"").await.0);
    }
    assert_eq!(spread(&names).len(), 2, "both serve at first: {names:?}");

    b[0].kill().await;
    wait_for(Duration::from_secs(5), "s1 taken out by checks", || {
        s1.health_state() == HealthState::Unhealthy
    })
    .await;
    let failures = stats.connect_failures();
    for _ in 0..10 {
        assert_eq!(greeted(addr, b"").await.0, "s2");
    }
    assert_eq!(
        stats.connect_failures(),
        failures,
        "an unhealthy server is not even tried"
    );

    let (tx, _rx2) = mpsc::unbounded_channel();
    b[0] = TcpBackend::start_on("s1", Mode::GreetThenCount(tx), addrs[0]).await;
    wait_for(Duration::from_secs(5), "s1 back in rotation", || {
        s1.health_state() == HealthState::Healthy
    })
    .await;
    let mut names = Vec::new();
    for _ in 0..6 {
        names.push(greeted(addr, b"").await.0);
    }
    assert_eq!(spread(&names).len(), 2, "s1 serves again: {names:?}");
    lb.shutdown().await;
}

#[tokio::test]
async fn ip_hash_over_tcp_keeps_each_client_address_on_one_server() {
    let (b, _rx) = greeters(&["s1", "s2", "s3"]).await;
    let addrs: Vec<SocketAddr> = b.iter().map(|x| x.addr).collect();
    // Client addresses come from PROXY headers sent by a trusted 127.0.0.1, so the test
    // can play many clients without leaving 127.0.0.1.
    let lb = start(&l4_config(
        "tcp",
        "accept_proxy_protocol = true\ntrusted_proxies = [\"127.0.0.1\"]",
        "algorithm = \"ip_hash\"",
        &addrs,
    ))
    .await;
    let addr = lb.local_addr("l4").unwrap();
    let mut by_client: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for round in 0..5 {
        for c in 0..12 {
            // ip_hash keys on the /24, as nginx: vary the third octet.
            let client = format!("10.1.{}.7", c * 19);
            let header = format!("PROXY TCP4 {client} 127.0.0.1 {} 6379\r\n", 40000 + round);
            let (name, _conn) = greeted(addr, header.as_bytes()).await;
            by_client.entry(client).or_default().insert(name);
        }
    }
    for (client, servers) in &by_client {
        assert_eq!(servers.len(), 1, "{client} moved between {servers:?}");
    }
    let used: BTreeSet<_> = by_client.values().flatten().collect();
    assert!(used.len() >= 2, "12 client networks all hashed to {used:?}");
    lb.shutdown().await;
}

#[tokio::test]
async fn least_conn_over_tcp_counts_open_connections() {
    let (b, _rx) = greeters(&["s1", "s2", "s3"]).await;
    let addrs: Vec<SocketAddr> = b.iter().map(|x| x.addr).collect();
    let lb = start(&l4_config("tcp", "", "algorithm = \"least_conn\"", &addrs)).await;
    let addr = lb.local_addr("l4").unwrap();
    let pool = lb.pool("p").unwrap();

    // Six connections held open: least_conn gives each server two.
    let mut open: Vec<(String, TcpStream)> = Vec::new();
    for _ in 0..6 {
        open.push(greeted(addr, b"").await);
    }
    let count = |open: &[(String, TcpStream)], n: &str| open.iter().filter(|(s, _)| s == n).count();
    for n in ["s1", "s2", "s3"] {
        assert_eq!(
            count(&open, n),
            2,
            "{n}: {:?}",
            open.iter().map(|o| &o.0).collect::<Vec<_>>()
        );
    }

    // Close the two on s2: the next two connections both go there, although round robin
    // would have sent them elsewhere.
    open.retain(|(s, _)| s != "s2");
    let s2 = pool.servers()[1].clone();
    wait_for(Duration::from_secs(5), "s2's connections to end", || {
        s2.in_flight() == 0
    })
    .await;
    for _ in 0..2 {
        let (name, conn) = greeted(addr, b"").await;
        assert_eq!(name, "s2", "the server with no open connection");
        open.push((name, conn));
    }
    for s in pool.servers() {
        assert_eq!(s.in_flight(), 2, "{}", s.name);
    }
    lb.shutdown().await;
}

#[tokio::test]
async fn a_udp_server_that_refuses_is_taken_out_by_passive_checks() {
    let live = UdpBackend::start("live").await;
    let dead: SocketAddr = format!("127.0.0.1:{}", free_udp_port()).parse().unwrap();
    let lb = start(&l4_config(
        "udp",
        "",
        "algorithm = \"round_robin\"\nmax_fails = 1\nfail_timeout = \"30s\"",
        &[dead, live.addr],
    ))
    .await;
    let addr = lb.local_addr("l4").unwrap();
    let dead_server = lb.pool("p").unwrap().servers()[0].clone();

    // Ten new clients one after another. Round robin would give the dead server every
    // other session; its ICMP refusal takes it out after the first, so one client at most
    // goes unanswered.
    let mut unanswered = 0;
    for i in 0..10 {
        let c = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        c.send_to(format!("q{i}").as_bytes(), addr).await.unwrap();
        let mut buf = [0u8; 64];
        match tokio::time::timeout(Duration::from_secs(1), c.recv_from(&mut buf)).await {
            Ok(Ok((n, _))) => assert_eq!(&buf[..n], format!("live:q{i}").as_bytes()),
            _ => {
                unanswered += 1;
                wait_for(Duration::from_secs(5), "the refusal to be counted", || {
                    dead_server.health_state() == HealthState::Failed
                })
                .await;
            }
        }
    }
    assert_eq!(
        unanswered, 1,
        "one session met the dead server, then no more"
    );
    assert_eq!(dead_server.health_state(), HealthState::Failed);
    lb.shutdown().await;
}

/// At L4 the connect time is a server's response time for `least_time` (nginx's
/// `least_time connect`), unless an HTTP listener shares the pool: its EWMA is the time to a
/// response head, which connect times must not dilute.
#[tokio::test]
async fn tcp_connect_times_feed_least_time_unless_http_shares_the_pool() {
    let echo = TcpBackend::start("echo", Mode::Echo).await;
    let lb = start(&l4_config(
        "tcp",
        "",
        "algorithm = \"least_time\"",
        &[echo.addr],
    ))
    .await;
    let server = lb.pool("p").unwrap().servers()[0].clone();
    assert_eq!(
        server.latency_ewma_us(),
        0,
        "unmeasured before any connection"
    );
    echo_once(lb.local_addr("l4").unwrap()).await;
    assert!(
        server.latency_ewma_us() > 0,
        "the connect time was recorded"
    );
    lb.shutdown().await;

    let shared = format!(
        "{}\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n",
        l4_config("tcp", "", "algorithm = \"least_time\"", &[echo.addr])
    );
    let lb = start(&shared).await;
    let server = lb.pool("p").unwrap().servers()[0].clone();
    echo_once(lb.local_addr("l4").unwrap()).await;
    assert_eq!(
        server.latency_ewma_us(),
        0,
        "a pool an http listener shares keeps response-head times only"
    );
    lb.shutdown().await;
}

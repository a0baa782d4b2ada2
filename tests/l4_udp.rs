//! L4 UDP through a real listener: `dig` against two `dnsmasq` servers (every query
//! answered, both servers used, a client keeps its server), session expiry, the bounded
//! session table, and a session whose server went away moving to another server.
mod common;
mod l4_common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{start_lb, wait_until};
use l4_common::*;
use tokio::net::UdpSocket;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (dig, dnsmasq): scripts/test runs it"]
async fn dig_through_two_dnsmasq_servers_gets_every_answer() {
    let d1 = Dnsmasq::start("10.1.2.3").await;
    let d2 = Dnsmasq::start("10.1.2.4").await;
    let lb = start_lb(&l4_config(
        "udp",
        "",
        "",
        &[
            format!("127.0.0.1:{}", d1.port).parse().unwrap(),
            format!("127.0.0.1:{}", d2.port).parse().unwrap(),
        ],
    ))
    .await;
    let port = lb.local_addr("l4").unwrap().port();
    let mut seen = BTreeSet::new();
    for i in 0..40 {
        let answer = dig(port, None).await;
        let a = answer.unwrap_or_else(|| panic!("query {i} got no answer"));
        assert!(a == "10.1.2.3" || a == "10.1.2.4", "{a}");
        seen.insert(a);
    }
    assert_eq!(seen.len(), 2, "both servers answer: {seen:?}");

    // A client (one source port) keeps its server while its session lives.
    let sp = free_udp_port();
    let first = dig(port, Some(sp)).await.expect("answer");
    for _ in 0..5 {
        assert_eq!(dig(port, Some(sp)).await.as_deref(), Some(first.as_str()));
    }
    let stats = lb.udp_stats("l4").unwrap();
    assert!(stats.sessions() >= 1);
    lb.shutdown().await;
}

async fn ask(s: &UdpSocket, msg: &[u8]) -> Option<String> {
    s.send(msg).await.unwrap();
    let mut buf = [0u8; 1500];
    match tokio::time::timeout(Duration::from_secs(2), s.recv(&mut buf)).await {
        Ok(Ok(n)) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
        _ => None,
    }
}

async fn client(lb: std::net::SocketAddr) -> UdpSocket {
    let s = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    s.connect(lb).await.unwrap();
    s
}

#[tokio::test]
async fn sessions_expire_and_the_table_is_bounded() {
    let b = UdpBackend::start("u").await;
    let lb = start_lb(&l4_config(
        "udp",
        "session_timeout = \"2s\"\nmax_sessions = 2",
        "",
        &[b.addr],
    ))
    .await;
    let addr = lb.local_addr("l4").unwrap();
    let stats = lb.udp_stats("l4").unwrap();
    let (a, bb, c) = (client(addr).await, client(addr).await, client(addr).await);
    assert_eq!(ask(&a, b"1").await.as_deref(), Some("u:1"));
    assert_eq!(ask(&bb, b"2").await.as_deref(), Some("u:2"));
    assert_eq!(stats.sessions(), 2);
    // The table is full: a third client's datagram is dropped and counted.
    c.send(b"3").await.unwrap();
    wait_until(
        Duration::from_secs(5),
        "the datagram is counted as rejected",
        || async { stats.rejected_over_limit() == 1 },
    )
    .await;
    // Quiet sessions expire, and the third client gets in.
    wait_until(Duration::from_secs(10), "sessions expire", || async {
        stats.sessions() == 0
    })
    .await;
    assert_eq!(stats.sessions_expired(), 2);
    assert_eq!(ask(&c, b"4").await.as_deref(), Some("u:4"));
    lb.shutdown().await;
}

#[tokio::test]
async fn a_session_whose_server_went_away_moves_to_another() {
    let mut b1 = UdpBackend::start("b1").await;
    let b2 = UdpBackend::start("b2").await;
    let lb = start_lb(&l4_config("udp", "", "", &[b1.addr, b2.addr])).await;
    let addr = lb.local_addr("l4").unwrap();
    // The first client lands on b1 (round robin starts there).
    let c = client(addr).await;
    let first = ask(&c, b"x").await.expect("answer");
    assert_eq!(first, "b1:x");
    b1.kill().await;
    // The next datagram draws ICMP port unreachable, which ends the session; a later one
    // opens a new session on b2. Bounded: at most 20 tries.
    let mut moved = None;
    for _ in 0..20 {
        if let Some(a) = ask(&c, b"y").await {
            moved = Some(a);
            break;
        }
    }
    assert_eq!(moved.as_deref(), Some("b2:y"));
    lb.shutdown().await;
}

//! The PROXY protocol through a TCP listener: the v1 and v2 headers exactly as a server
//! receives them (parsed here by an independent reader, addresses checked), a header
//! accepted from a trusted proxy and passed on, and malformed or untrusted headers closed
//! and counted without reaching any server.
mod common;
mod l4_common;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use common::start_lb;
use l4_common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// A deliberately separate reader of what a server receives: (source, destination, rest).
fn read_header(raw: &[u8]) -> (SocketAddr, SocketAddr, Vec<u8>) {
    const SIG: &[u8] = b"\r\n\r\n\0\r\nQUIT\n";
    if let Some(rest) = raw.strip_prefix(b"PROXY ".as_slice()) {
        let end = rest.windows(2).position(|w| w == b"\r\n").expect("CRLF");
        let line = std::str::from_utf8(&rest[..end]).unwrap();
        let f: Vec<&str> = line.split(' ').collect();
        assert!(f[0] == "TCP4" || f[0] == "TCP6", "{line}");
        let src = SocketAddr::new(f[1].parse().unwrap(), f[3].parse().unwrap());
        let dst = SocketAddr::new(f[2].parse().unwrap(), f[4].parse().unwrap());
        return (src, dst, rest[end + 2..].to_vec());
    }
    assert!(raw.starts_with(SIG), "no PROXY header in {raw:?}");
    assert_eq!(raw[12], 0x21, "version 2, PROXY command");
    let len = u16::from_be_bytes([raw[14], raw[15]]) as usize;
    let a = &raw[16..16 + len];
    let port = |o: usize| u16::from_be_bytes([a[o], a[o + 1]]);
    let (src, dst) = match raw[13] {
        0x11 => (
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])), port(8)),
            SocketAddr::new(IpAddr::V4(Ipv4Addr::new(a[4], a[5], a[6], a[7])), port(10)),
        ),
        0x21 => {
            let ip = |o: usize| {
                let b: [u8; 16] = a[o..o + 16].try_into().unwrap();
                IpAddr::V6(Ipv6Addr::from(b))
            };
            (
                SocketAddr::new(ip(0), port(32)),
                SocketAddr::new(ip(16), port(34)),
            )
        }
        f => panic!("unexpected family byte {f:#x}"),
    };
    (src, dst, raw[16 + len..].to_vec())
}

async fn capture() -> (TcpBackend, mpsc::UnboundedReceiver<Vec<u8>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    (TcpBackend::start("cap", Mode::Capture(tx)).await, rx)
}

async fn received(rx: &mut mpsc::UnboundedReceiver<Vec<u8>>) -> Vec<u8> {
    tokio::time::timeout(Duration::from_secs(10), rx.recv())
        .await
        .expect("the server received the connection")
        .unwrap()
}

async fn sent_through(version: &str) -> (SocketAddr, SocketAddr, SocketAddr, SocketAddr, Vec<u8>) {
    let (b, mut rx) = capture().await;
    let extra = format!("proxy_protocol = \"{version}\"");
    let lb = start_lb(&l4_config("tcp", &extra, "", &[b.addr])).await;
    let lb_addr = lb.local_addr("l4").unwrap();
    let mut s = TcpStream::connect(lb_addr).await.unwrap();
    let me = s.local_addr().unwrap();
    s.write_all(b"hello").await.unwrap();
    s.shutdown().await.unwrap();
    let raw = received(&mut rx).await;
    let (src, dst, rest) = read_header(&raw);
    lb.shutdown().await;
    (me, lb_addr, src, dst, rest)
}

#[tokio::test]
async fn v1_header_tells_the_server_who_the_client_is() {
    let (me, lb_addr, src, dst, rest) = sent_through("v1").await;
    assert_eq!(src, me);
    assert_eq!(dst, lb_addr);
    assert_eq!(rest, b"hello");
}

#[tokio::test]
async fn v2_header_tells_the_server_who_the_client_is() {
    let (me, lb_addr, src, dst, rest) = sent_through("v2").await;
    assert_eq!(src, me);
    assert_eq!(dst, lb_addr);
    assert_eq!(rest, b"hello");
}

fn v2_header(src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let (IpAddr::V4(s), IpAddr::V4(d)) = (src.ip(), dst.ip()) else {
        unreachable!()
    };
    let mut h = b"\r\n\r\n\0\r\nQUIT\n".to_vec();
    h.extend_from_slice(&[0x21, 0x11, 0, 12]);
    h.extend_from_slice(&s.octets());
    h.extend_from_slice(&d.octets());
    h.extend_from_slice(&src.port().to_be_bytes());
    h.extend_from_slice(&dst.port().to_be_bytes());
    h
}

const TRUSTED: &str = "accept_proxy_protocol = true\ntrusted_proxies = [\"127.0.0.1/32\"]";

#[tokio::test]
async fn a_header_from_a_trusted_proxy_is_believed_and_passed_on() {
    let (b, mut rx) = capture().await;
    let extra = format!("{TRUSTED}\nproxy_protocol = \"v1\"");
    let lb = start_lb(&l4_config("tcp", &extra, "", &[b.addr])).await;
    let addr = lb.local_addr("l4").unwrap();
    let client: SocketAddr = "203.0.113.7:4444".parse().unwrap();
    let orig_dst: SocketAddr = "198.51.100.9:443".parse().unwrap();

    // v2 in, with payload in the same write.
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut first = v2_header(client, orig_dst);
    first.extend_from_slice(b"payload");
    s.write_all(&first).await.unwrap();
    s.shutdown().await.unwrap();
    let raw = received(&mut rx).await;
    assert_eq!(
        raw,
        b"PROXY TCP4 203.0.113.7 198.51.100.9 4444 443\r\npayload".to_vec()
    );

    // v1 in, the header split over two writes.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PROXY TCP4 192.0.2.55 19").await.unwrap();
    s.flush().await.unwrap();
    s.write_all(b"8.51.100.9 5555 443\r\nmore").await.unwrap();
    s.shutdown().await.unwrap();
    let (src, dst, rest) = read_header(&received(&mut rx).await);
    assert_eq!(src, "192.0.2.55:5555".parse().unwrap());
    assert_eq!(dst, orig_dst);
    assert_eq!(rest, b"more");
    let stats = lb.tcp_stats("l4").unwrap();
    assert_eq!((stats.proxy_malformed(), stats.proxy_untrusted()), (0, 0));
    lb.shutdown().await;
}

#[tokio::test]
async fn malformed_headers_are_closed_counted_and_never_passed_on() {
    let (b, _rx) = capture().await;
    let lb = start_lb(&l4_config("tcp", TRUSTED, "", &[b.addr])).await;
    let addr = lb.local_addr("l4").unwrap();
    let stats = lb.tcp_stats("l4").unwrap();
    let bad: &[&[u8]] = &[
        b"PROXY TCP4 1.2.3.4 nonsense\r\nhello",
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\r\n\r\n\0\r\nQUIT\n\x21\x11\x00\x04abcd",
        b"PROXY TCP4 1.2.3.4 5.6.7.8 1 99999\r\n",
    ];
    for (i, b) in bad.iter().enumerate() {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b).await.unwrap();
        assert!(
            closed_within(&mut s, Duration::from_secs(5)).await,
            "case {i} not closed"
        );
        assert_eq!(stats.proxy_malformed(), i as u64 + 1);
    }
    // Half a header, then end of stream.
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(b"PROXY TCP4 1.2").await.unwrap();
    s.shutdown().await.unwrap();
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    assert_eq!(stats.proxy_malformed(), bad.len() as u64 + 1);
    assert_eq!(b.connections(), 0, "nothing may reach a server");
    lb.shutdown().await;
}

#[tokio::test]
async fn headers_from_untrusted_peers_are_closed_and_counted() {
    let (b, _rx) = capture().await;
    let extra = "accept_proxy_protocol = true\ntrusted_proxies = [\"10.0.0.0/8\", \"::1\"]";
    let lb = start_lb(&l4_config("tcp", extra, "", &[b.addr])).await;
    let addr = lb.local_addr("l4").unwrap();
    let stats = lb.tcp_stats("l4").unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut h = v2_header("203.0.113.7:1".parse().unwrap(), addr);
    h.extend_from_slice(b"payload");
    let _ = s.write_all(&h).await;
    assert!(closed_within(&mut s, Duration::from_secs(5)).await);
    assert_eq!(stats.proxy_untrusted(), 1);
    assert_eq!(b.connections(), 0, "nothing may reach a server");
    lb.shutdown().await;
}

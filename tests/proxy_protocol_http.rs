//! PROXY protocol in front of `http` and `https` listeners: curl's `--haproxy-protocol`
//! (v1) and hand-written v1/v2 headers in front of HTTP/1.1 and of a TLS handshake; the
//! backend sees the header's client in `X-Forwarded-For` / `X-Real-IP`, `ip_hash` balances
//! on it; untrusted peers and malformed headers are closed and counted, and nothing of them
//! reaches a server. `source_ip` stickiness keys on the header client too.
mod common;
mod tls_support;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use rustls_pki_types::ServerName;
use switchyard::config::ProxyVersion;
use switchyard::proxy::proxy_protocol::encode;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use common::*;
use tls_support::*;

/// Three listeners over one `ip_hash` pool: "web" (http) and "secure" (https) trust
/// 127.0.0.1 to send PROXY headers; "strict" (http) trusts only 10.0.0.0/8.
fn config(pki: &Pki, b: &[switchyard::demo::Backend]) -> String {
    format!(
        r#"
[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "p"
accept_proxy_protocol = true
trusted_proxies = ["127.0.0.1"]

[[listener]]
name = "secure"
listen = "127.0.0.1:0"
protocol = "https"
pool = "p"
accept_proxy_protocol = true
trusted_proxies = ["127.0.0.0/8", "::1"]
{}
[[listener]]
name = "strict"
listen = "127.0.0.1:0"
pool = "p"
accept_proxy_protocol = true
trusted_proxies = ["10.0.0.0/8"]

[pool.p]
algorithm = "ip_hash"
servers = {}
"#,
        tls_entries(&[pki.leaf("www", &["www.example.com"])]),
        servers_toml(b, &[])
    )
}

/// `GET /headers` over `io` (HTTP/1.1); returns the body (the request head the backend saw,
/// lower-cased) and the answering server.
async fn get_headers<T>(io: T) -> (String, String)
where
    T: AsyncRead + AsyncWrite + Send + Unpin + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .expect("HTTP handshake");
    tokio::spawn(conn);
    let req = Request::get("/headers")
        .header("host", "www.example.com")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), sender.send_request(req))
        .await
        .expect("answer in time")
        .expect("answer");
    assert_eq!(resp.status(), 200);
    let server = resp.headers()["x-server"].to_str().unwrap().to_string();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (String::from_utf8_lossy(&body).to_lowercase(), server)
}

/// A connection to `addr` that has already sent `header`.
async fn with_header(addr: SocketAddr, header: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(header).await.unwrap();
    s
}

fn v1(source: &str, port: u16) -> Vec<u8> {
    format!("PROXY TCP4 {source} 127.0.0.1 {port} 80\r\n").into_bytes()
}

/// Whether the LB closes `s` without a byte of answer.
async fn closed_silently(mut s: TcpStream) -> bool {
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (curl): scripts/test runs it"]
async fn http_and_https_listeners_take_the_client_from_a_trusted_proxy_header() {
    let pki = Pki::new();
    let b = backends(3).await;
    let lb = start_lb(&config(&pki, &b)).await;
    let web = lb.local_addr("web").unwrap();
    let secure = lb.local_addr("secure").unwrap();

    // curl's v1 header (its own address) in front of HTTP/1.1, and in front of TLS.
    let out = run_tool_async(
        "curl",
        &[
            "-sS",
            "--haproxy-protocol",
            &format!("http://{web}/headers"),
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        out.status.success(),
        "curl --haproxy-protocol: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("x-forwarded-for: 127.0.0.1"), "{text}");
    let port = secure.port();
    let out = run_tool_async(
        "curl",
        &[
            "-sS",
            "--haproxy-protocol",
            "--cacert",
            pki.ca_pem.to_str().unwrap(),
            "--resolve",
            &format!("www.example.com:{port}:127.0.0.1"),
            &format!("https://www.example.com:{port}/headers"),
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
    assert!(
        out.status.success(),
        "curl --haproxy-protocol over TLS: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("x-real-ip: 127.0.0.1"), "{text}");
    assert!(text.contains("x-forwarded-proto: https"), "{text}");

    // A raw v1 and a raw v2 header naming other clients: the backend sees them, not us.
    let (seen, _) = get_headers(with_header(web, &v1("198.51.100.23", 4711)).await).await;
    assert!(seen.contains("x-forwarded-for: 198.51.100.23\n"), "{seen}");
    assert!(seen.contains("x-real-ip: 198.51.100.23\n"), "{seen}");
    let v2 = encode(
        ProxyVersion::V2,
        "[2001:db8::7]:5000".parse().unwrap(),
        "[2001:db8::1]:80".parse().unwrap(),
    );
    let (seen, _) = get_headers(with_header(web, &v2).await).await;
    assert!(seen.contains("x-forwarded-for: 2001:db8::7\n"), "{seen}");
    assert!(seen.contains("x-real-ip: 2001:db8::7\n"), "{seen}");

    // v2 in front of a TLS handshake on the https listener.
    let v2 = encode(
        ProxyVersion::V2,
        "203.0.113.9:6000".parse().unwrap(),
        "192.0.2.1:443".parse().unwrap(),
    );
    let tcp = with_header(secure, &v2).await;
    let tls = tokio_rustls::TlsConnector::from(client_config(&pki.ca_pem, &["http/1.1"]))
        .connect(ServerName::try_from("www.example.com").unwrap(), tcp)
        .await
        .expect("TLS handshake after the PROXY header");
    let (seen, _) = get_headers(tls).await;
    assert!(seen.contains("x-forwarded-for: 203.0.113.9\n"), "{seen}");
    assert!(seen.contains("x-forwarded-proto: https"), "{seen}");

    // ip_hash balances on the header's client: each client network stays on one server,
    // and twelve of them use more than one.
    let mut by_client: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for round in 0..3u16 {
        for c in 0..12 {
            let client = format!("10.2.{}.5", c * 17);
            let conn = with_header(web, &v1(&client, 30000 + round)).await;
            let (_, server) = get_headers(conn).await;
            by_client.entry(client).or_default().insert(server);
        }
    }
    for (client, servers) in &by_client {
        assert_eq!(servers.len(), 1, "{client} moved between {servers:?}");
    }
    let used: BTreeSet<_> = by_client.values().flatten().collect();
    assert!(used.len() >= 2, "12 client networks all on {used:?}");

    let web_stats = lb.proxy_in_stats("web").unwrap();
    assert_eq!((web_stats.untrusted(), web_stats.malformed()), (0, 0));
    assert_eq!(web_stats.accepted(), 1 + 2 + 36);
    assert_eq!(lb.proxy_in_stats("secure").unwrap().accepted(), 2);
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (curl): scripts/test runs it"]
async fn untrusted_peers_and_malformed_headers_are_closed_and_counted() {
    let pki = Pki::new();
    let b = backends(1).await;
    let lb = start_lb(&config(&pki, &b)).await;
    let web = lb.local_addr("web").unwrap();
    let secure = lb.local_addr("secure").unwrap();
    let strict = lb.local_addr("strict").unwrap();

    // Untrusted: 127.0.0.1 may not send headers to "strict"; curl gets an empty reply.
    let out = run_tool_async(
        "curl",
        &[
            "-sS",
            "--haproxy-protocol",
            &format!("http://{strict}/headers"),
        ],
    )
    .await;
    assert!(!out.status.success(), "an untrusted peer was served");
    assert!(
        closed_silently(with_header(strict, &v1("192.0.2.1", 1)).await).await,
        "untrusted raw header"
    );
    let s = lb.proxy_in_stats("strict").unwrap();
    assert_eq!((s.untrusted(), s.accepted()), (2, 0));

    // Malformed, on a trusted connection: a plain request with no header (curl without
    // --haproxy-protocol), a bad address, a bad v2 version, and a header cut short.
    let out = run_tool_async("curl", &["-sS", &format!("http://{web}/headers")]).await;
    assert!(
        !out.status.success(),
        "a request without a header was served"
    );
    for bad in [
        b"PROXY TCP4 1.2.3 127.0.0.1 1 80\r\nGET /headers HTTP/1.1\r\nhost: x\r\n\r\n".to_vec(),
        b"\r\n\r\n\0\r\nQUIT\n\x31\x11\0\x0c123456789012GET / HTTP/1.1\r\n\r\n".to_vec(),
    ] {
        assert!(
            closed_silently(with_header(web, &bad).await).await,
            "{:?}",
            String::from_utf8_lossy(&bad)
        );
    }
    // Cut short: the peer ends its side after half a header.
    let mut s = with_header(web, b"PROXY TCP4 192.0.2.1 ").await;
    s.shutdown().await.unwrap();
    assert!(closed_silently(s).await, "half a header");
    let w = lb.proxy_in_stats("web").unwrap();
    assert_eq!((w.malformed(), w.accepted()), (4, 0));

    // Malformed before TLS: a client starting the handshake without a header.
    let tcp = TcpStream::connect(secure).await.unwrap();
    let hs = tokio_rustls::TlsConnector::from(client_config(&pki.ca_pem, &["http/1.1"]))
        .connect(ServerName::try_from("www.example.com").unwrap(), tcp)
        .await;
    assert!(
        hs.is_err(),
        "a TLS client without a PROXY header got through"
    );
    assert_eq!(lb.proxy_in_stats("secure").unwrap().malformed(), 1);

    // Nothing of any of them reached the server.
    assert_eq!(
        b[0].connections(),
        0,
        "a refused connection reached a server"
    );
    assert_eq!(b[0].requests(), 0);
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn source_ip_stickiness_follows_the_header_client() {
    let b = backends(3).await;
    let lb = start_lb(&format!(
        r#"
[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "p"
accept_proxy_protocol = true
trusted_proxies = ["127.0.0.1"]

[pool.p]
servers = {}
[pool.p.sticky]
mode = "source_ip"
"#,
        servers_toml(&b, &[])
    ))
    .await;
    let web = lb.local_addr("web").unwrap();
    // Six clients behind the same proxy (all connections come from 127.0.0.1): each stays
    // on its server, and round robin spreads the six, which it could not do if the peer's
    // address were the client.
    let mut by_client: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for round in 0..4u16 {
        for c in 1..=6 {
            let client = format!("192.0.2.{c}");
            let (seen, server) =
                get_headers(with_header(web, &v1(&client, 20000 + round)).await).await;
            assert!(seen.contains(&format!("x-real-ip: {client}\n")), "{seen}");
            by_client.entry(client).or_default().push(server);
        }
    }
    for (client, servers) in &by_client {
        assert!(
            servers.iter().all(|s| *s == servers[0]),
            "{client}: {servers:?}"
        );
    }
    let used: BTreeSet<_> = by_client.values().map(|v| v[0].clone()).collect();
    assert_eq!(
        used.len(),
        3,
        "six clients over three servers: {by_client:?}"
    );
    lb.shutdown().await;
}

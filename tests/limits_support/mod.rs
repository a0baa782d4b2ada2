//! Helpers of the limits tests: a load balancer from TOML with an engine chosen, raw
//! sockets read until the peer closes, HTTP/1.1 answers read off raw sockets, an h2c client.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use switchyard::demo::Backend;
use switchyard::proxy::http::Http1Engine;
use switchyard::runtime::Runtime;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;

/// Start a load balancer from TOML with the HTTP/1 engine `engine`.
pub async fn lb(toml: &str, engine: Http1Engine) -> Runtime {
    let plan = switchyard::config::load_str(toml, "test.toml")
        .unwrap_or_else(|e| panic!("test config is invalid:\n{e}\n---\n{toml}"));
    Runtime::start_with(plan, engine)
        .await
        .expect("start load balancer")
}

/// One http listener "web" on port 0 with `extra` keys, over one pool "p" of `backend`.
pub fn listener_config(backend: &Backend, extra: &str) -> String {
    format!(
        r#"
[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "p"
{extra}

[pool.p]
servers = [{{ addr = "{}", name = "s1" }}]
"#,
        backend.addr
    )
}

/// Read until the peer closes (end of stream, or a reset) within `limit`: `Ok` with what
/// came before the close, `Err` with what came when it is still open at the deadline.
pub async fn closed_within<S: AsyncRead + Unpin>(
    s: &mut S,
    limit: Duration,
) -> Result<Vec<u8>, Vec<u8>> {
    let deadline = tokio::time::Instant::now() + limit;
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return Err(got),
            Ok(Ok(0)) | Ok(Err(_)) => return Ok(got),
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
        }
    }
}

/// One HTTP/1.1 answer read off `s` (Content-Length or chunked, within 10 s): its status
/// line and its whole text.
pub async fn read_answer<S: AsyncRead + Unpin>(s: &mut S) -> (String, String) {
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut got = Vec::new();
    let mut buf = [0u8; 16 * 1024];
    loop {
        if let Some(len) = whole_answer(&got) {
            let text = String::from_utf8_lossy(&got[..len]).into_owned();
            let first = text.lines().next().unwrap_or("").to_string();
            return (first, text);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        match tokio::time::timeout(left, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                let text = String::from_utf8_lossy(&got).into_owned();
                return (text.lines().next().unwrap_or("").to_string(), text);
            }
            Ok(Ok(n)) => got.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "no whole answer within 10 s: {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

/// The length of the whole answer at the start of `b`, if all there.
fn whole_answer(b: &[u8]) -> Option<usize> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(b) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    if resp.code.is_some_and(|c| c < 200) {
        return whole_answer(&b[head..]).map(|n| head + n);
    }
    let field = |name: &str| {
        resp.headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case(name))
            .map(|h| String::from_utf8_lossy(h.value).to_ascii_lowercase())
    };
    if let Some(n) = field("content-length") {
        let n: usize = n.trim().parse().ok()?;
        return (b.len() >= head + n).then_some(head + n);
    }
    if field("transfer-encoding").is_some_and(|v| v.contains("chunked")) {
        let body = &b[head..];
        let end = body.windows(5).position(|w| w == b"0\r\n\r\n")?;
        return Some(head + end + 5);
    }
    None
}

/// An HTTP/2 cleartext client connection (prior knowledge): its sender and the connection
/// future the caller drives.
pub async fn h2c(
    addr: SocketAddr,
) -> (
    h2::client::SendRequest<Bytes>,
    h2::client::Connection<TcpStream, Bytes>,
) {
    let tcp = TcpStream::connect(addr).await.unwrap();
    h2::client::handshake(tcp).await.expect("h2c handshake")
}

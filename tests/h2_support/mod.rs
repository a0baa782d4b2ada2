//! What the HTTP/2-client-to-HTTP/1.1-server tests share (`tests/h2_to_h1.rs`,
//! `tests/h2_to_h1_uploads.rs`): a scripted HTTP/1.1 server whose every byte the test
//! chooses, an h2c client, and a balancer in front of one server.
#![allow(dead_code)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use switchyard::runtime::Runtime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::common::start_lb;
/// What a scripted server does with one request.
#[derive(Clone, Copy)]
pub enum Act {
    Answer(&'static str),
    /// Close the connection without a byte.
    Close,
    /// Read the request and never answer.
    Silent,
}

/// A server that reads request heads (and `content-length` bodies) and acts as
/// `script(connection, request on it, head)` says; returns its address and its count of
/// connections.
pub async fn scripted(script: fn(usize, usize, &str) -> Act) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let conns = Arc::new(AtomicUsize::new(0));
    let counted = conns.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let c = counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut buf = Vec::new();
                for r in 0.. {
                    let end = loop {
                        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                            break i + 4;
                        }
                        let mut chunk = [0u8; 4096];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    };
                    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
                    let length: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .map_or(0, |v| v.trim().parse().unwrap());
                    while buf.len() < end + length {
                        let mut chunk = [0u8; 4096];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..end + length);
                    match script(c, r, &head) {
                        Act::Answer(a) => {
                            if s.write_all(a.as_bytes()).await.is_err()
                                || a.contains("connection: close")
                            {
                                return;
                            }
                        }
                        Act::Close => return,
                        Act::Silent => {
                            tokio::time::sleep(Duration::from_secs(30)).await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, conns)
}

pub type Body = http_body_util::combinators::BoxBody<Bytes, Infallible>;

pub async fn h2c(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<Body> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

/// One request over `c`: the status, the body (or the error that broke it off).
pub async fn send(
    c: &mut hyper::client::conn::http2::SendRequest<Body>,
    method: Method,
    path: &str,
    body: &'static str,
) -> (u16, Result<String, String>) {
    let req = Request::builder()
        .method(method)
        .uri(format!("http://127.0.0.1{path}"))
        .body(Full::new(Bytes::from_static(body.as_bytes())).boxed())
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(10), c.send_request(req))
        .await
        .expect("an answer in time")
        .unwrap();
    let status = resp.status().as_u16();
    let body = match resp.into_body().collect().await {
        Ok(b) => Ok(String::from_utf8_lossy(&b.to_bytes()).into_owned()),
        Err(e) => Err(e.to_string()),
    };
    (status, body)
}

pub async fn lb_for(server: SocketAddr, pool_extra: &str) -> (Runtime, SocketAddr) {
    let lb = start_lb(&format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nservers = [ {{ addr = \"{server}\" }} ]\n{pool_extra}"
    ))
    .await;
    let addr = lb.local_addr("web").unwrap();
    (lb, addr)
}

pub const OK: &str = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";

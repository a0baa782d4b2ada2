//! HTTP/2: h2c prior knowledge with curl, h2load with many streams, HTTP/2 to servers
//! (`upstream_protocol = "h2c"`, one multiplexed connection per server, reconnect), trailers
//! both ways over HTTP/2 and HTTP/1.1, and the known floods (rapid reset, SETTINGS).
mod common;
mod tls_support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::*;
use http::{HeaderMap, HeaderValue, Request, Response};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tls_support::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

type TestBody = http_body_util::combinators::BoxBody<Bytes, Infallible>;

fn body_with_trailers(data: &'static str, trailers: &[(&'static str, &'static str)]) -> TestBody {
    let mut map = HeaderMap::new();
    for (k, v) in trailers {
        map.insert(*k, HeaderValue::from_static(v));
    }
    let frames = vec![
        Ok::<_, Infallible>(Frame::data(Bytes::from_static(data.as_bytes()))),
        Ok(Frame::trailers(map)),
    ];
    StreamBody::new(futures_util::stream::iter(frames)).boxed()
}

/// A server (HTTP/1.1 and h2c) that answers with what it received — bytes and request
/// trailers — and sends a trailer of its own, as gRPC servers do.
async fn trailer_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let svc = hyper::service::service_fn(|req: Request<Incoming>| async move {
                    let version = req.version();
                    let collected = req.into_body().collect().await.unwrap();
                    let got = collected
                        .trailers()
                        .and_then(|t| t.get("x-req-sum"))
                        .map(|v| v.to_str().unwrap().to_string());
                    let n = collected.to_bytes().len();
                    let text: &'static str = Box::leak(
                        format!("{version:?} got {n} bytes, trailer {got:?}").into_boxed_str(),
                    );
                    let resp = Response::builder()
                        .header("trailer", "x-resp-status")
                        .body(body_with_trailers(text, &[("x-resp-status", "done")]))
                        .unwrap();
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    });
    addr
}

/// An h2c (prior knowledge) client connection.
async fn h2c_client(addr: SocketAddr) -> hyper::client::conn::http2::SendRequest<TestBody> {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (sender, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .unwrap();
    tokio::spawn(conn);
    sender
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (curl): scripts/test runs it"]
async fn curl_prior_knowledge_and_one_connection_balanced_per_request() {
    let b = backends(2).await;
    let lb = start_lb(&simple_config("round_robin", &b, &[])).await;
    let addr = lb.local_addr("web").unwrap();
    // One URL per curl: curl 7.88 fails its own connection reuse with prior knowledge
    // ("Error in the HTTP2 framing layer" against any hyper server, the demo backend too).
    let url = format!("http://{addr}/headers");
    let out = run_tool_async(
        "curl",
        &[
            "-sS",
            "--http2-prior-knowledge",
            "-w",
            "v=%{http_version}\n",
            &url,
        ],
    )
    .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("v=2"), "{text}");
    assert!(text.contains("x-forwarded-proto: http\n"), "{text}");
    // Many requests on one HTTP/2 connection alternate between the servers.
    let mut c = h2c_client(addr).await;
    let mut seen = Vec::new();
    for _ in 0..6 {
        let req = Request::get(format!("http://{addr}/"))
            .body(TestBody::default())
            .unwrap();
        let resp = c.send_request(req).await.unwrap();
        seen.push(resp.headers()["x-server"].to_str().unwrap().to_string());
    }
    assert!(seen.windows(2).all(|w| w[0] != w[1]), "{seen:?}");
    assert_eq!(
        tally(seen.clone()).into_values().collect::<Vec<_>>(),
        [3, 3],
        "{seen:?}"
    );
}

fn h2load_ok(out: &std::process::Output, n: u32) {
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "h2load failed:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want =
        format!("requests: {n} total, {n} started, {n} done, {n} succeeded, 0 failed, 0 errored");
    assert!(text.contains(&want), "wanted {want:?}:\n{text}");
    assert!(text.contains(&format!("status codes: {n} 2xx")), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (h2load): scripts/test runs it"]
async fn h2load_many_streams_over_h2c_and_tls_without_errors() {
    let pki = Pki::new();
    let b = backends(3).await;
    let pair = pki.leaf("www", &["www.example.com"]);
    let lb = start_lb(&format!(
        r#"
[[listener]]
name = "plain"
listen = "127.0.0.1:0"
pool = "p"
[[listener]]
name = "tls"
listen = "127.0.0.1:0"
protocol = "https"
pool = "p"
{}
[pool.p]
servers = {}
"#,
        tls_entries(&[pair]),
        servers_toml(&b, &[])
    ))
    .await;
    let plain = lb.local_addr("plain").unwrap();
    let tls = lb.local_addr("tls").unwrap();
    // 4 connections × 50 concurrent streams, 3000 requests: bounded in count; h2load's own
    // duration limit bounds it in time.
    let out = run_tool_async(
        "h2load",
        &[
            "-n",
            "3000",
            "-c",
            "4",
            "-m",
            "50",
            "-T",
            "30",
            &format!("http://{plain}/"),
        ],
    )
    .await;
    h2load_ok(&out, 3000);
    let out = run_tool_async(
        "h2load",
        &[
            "-n",
            "3000",
            "-c",
            "4",
            "-m",
            "50",
            "-T",
            "30",
            &format!("https://{tls}/"),
        ],
    )
    .await;
    h2load_ok(&out, 3000);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Application protocol: h2"));
    // Spread over all three servers per request.
    for s in &b {
        assert!(s.requests() >= 1500, "{} got {}", s.name(), s.requests());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_upstream_multiplexes_one_connection_per_server_and_reconnects() {
    let b = backends(2).await;
    let toml = format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nupstream_protocol = \"h2c\"\nservers = {}\n",
        servers_toml(&b, &[])
    );
    let lb = start_lb(&toml).await;
    let addr = lb.local_addr("web").unwrap();
    let a = get(addr, "/headers").await;
    assert!(a.text().starts_with("GET "), "{}", a.text());
    assert!(
        a.text().lines().next().unwrap().ends_with("HTTP/2.0"),
        "the server got HTTP/2: {}",
        a.text()
    );
    // 200 concurrent requests: two servers, two connections.
    let mut tasks = Vec::new();
    for _ in 0..200 {
        tasks.push(tokio::spawn(
            async move { get(addr, "/sleep/5").await.status },
        ));
    }
    for t in tasks {
        assert_eq!(t.await.unwrap(), 200);
    }
    let up = lb.upstream("p").unwrap();
    assert_eq!(up.h2().opened(), 2);
    assert_eq!(b[0].connections() + b[1].connections(), 2);
    // A server restarts: its connection is replaced.
    let old = b[0].addr;
    b[0].stop();
    let deadline = Instant::now() + Duration::from_secs(10);
    let restarted = loop {
        // The stopped server's socket closes as its task ends.
        match switchyard::demo::Backend::start_on(old, "s1-again", Duration::ZERO).await {
            Ok(r) => break r,
            Err(e) => assert!(Instant::now() < deadline, "cannot restart on {old}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    wait_until(
        Duration::from_secs(10),
        "requests reach the restarted server",
        || async { get(addr, "/").await.server() == "s1-again" },
    )
    .await;
    assert_eq!(up.h2().opened(), 3);
    assert!(restarted.requests() >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trailers_pass_both_ways_over_h2_and_h1() {
    let server = trailer_server().await;
    let lb = start_lb(&format!(
        r#"
[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "h1"
  [[listener.route]]
  path_prefix = "/h2/"
  pool = "h2"
[pool.h1]
servers = [ {{ addr = "{server}" }} ]
[pool.h2]
upstream_protocol = "h2c"
servers = [ {{ addr = "{server}" }} ]
"#
    ))
    .await;
    let addr = lb.local_addr("web").unwrap();

    // HTTP/2 client → HTTP/2 server, and HTTP/2 client → HTTP/1.1 server.
    for (path, version) in [("/h2/x", "HTTP/2.0"), ("/x", "HTTP/1.1")] {
        let mut c = h2c_client(addr).await;
        let req = Request::post(format!("http://127.0.0.1/{}", &path[1..]))
            .header("te", "trailers")
            .header("trailer", "x-req-sum")
            .body(body_with_trailers("hello", &[("x-req-sum", "abc")]))
            .unwrap();
        let resp = c.send_request(req).await.unwrap();
        let collected = resp.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned();
        let text = String::from_utf8_lossy(&collected.to_bytes()).into_owned();
        assert_eq!(
            text,
            format!("{version} got 5 bytes, trailer Some(\"abc\")"),
            "{path}"
        );
        assert_eq!(
            trailers
                .as_ref()
                .and_then(|t| t.get("x-resp-status"))
                .map(|v| v.to_str().unwrap()),
            Some("done"),
            "{path}: response trailers {trailers:?}"
        );
    }

    // HTTP/1.1 client (chunked, TE: trailers) → HTTP/1.1 and HTTP/2 servers.
    for (path, version) in [("/x", "HTTP/1.1"), ("/h2/x", "HTTP/2.0")] {
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut sender, conn) =
            hyper::client::conn::http1::handshake::<_, TestBody>(TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = Request::post(path)
            .header("host", "example.com")
            .header("te", "trailers")
            .header("trailer", "x-req-sum")
            .body(body_with_trailers("hello", &[("x-req-sum", "abc")]))
            .unwrap();
        let resp = sender.send_request(req).await.unwrap();
        let collected = resp.into_body().collect().await.unwrap();
        let trailers = collected.trailers().cloned();
        let text = String::from_utf8_lossy(&collected.to_bytes()).into_owned();
        assert_eq!(
            text,
            format!("{version} got 5 bytes, trailer Some(\"abc\")"),
            "h1 {path}"
        );
        assert_eq!(
            trailers
                .as_ref()
                .and_then(|t| t.get("x-resp-status"))
                .map(|v| v.to_str().unwrap()),
            Some("done"),
            "h1 {path}: response trailers {trailers:?}"
        );
    }
}

// ---- raw HTTP/2 frames, for the flood tests ----

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn frame(buf: &mut BytesMut, kind: u8, flags: u8, stream: u32, payload: &[u8]) {
    let len = payload.len() as u32;
    buf.put_slice(&len.to_be_bytes()[1..]);
    buf.put_u8(kind);
    buf.put_u8(flags);
    buf.put_u32(stream);
    buf.put_slice(payload);
}

/// A GET / header block: :method GET, :scheme http, :path / (static table), :authority.
fn get_headers() -> Vec<u8> {
    let mut h = vec![0x82, 0x86, 0x84, 0x01, 9];
    h.extend_from_slice(b"127.0.0.1");
    h
}

/// Read frames until the server closes or `limit` passes; the GOAWAY error code if any.
async fn read_until_goaway(
    read: &mut tokio::net::tcp::OwnedReadHalf,
    limit: Duration,
) -> Option<u32> {
    let deadline = Instant::now() + limit;
    let mut buf = BytesMut::new();
    loop {
        while buf.len() >= 9 {
            let len = u32::from_be_bytes([0, buf[0], buf[1], buf[2]]) as usize;
            if buf.len() < 9 + len {
                break;
            }
            let kind = buf[3];
            let payload = buf.split_to(9 + len);
            if kind == 7 && len >= 8 {
                return Some(u32::from_be_bytes([
                    payload[13],
                    payload[14],
                    payload[15],
                    payload[16],
                ]));
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let mut chunk = [0u8; 16384];
        match tokio::time::timeout(left, read.read(&mut chunk)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return None,
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rapid_reset_flood_gets_goaway_and_does_not_reach_the_servers() {
    let b = backends(2).await;
    let lb = start_lb(&simple_config("round_robin", &b, &[])).await;
    let addr = lb.local_addr("web").unwrap();
    const STREAMS: u32 = 20_000;
    let mut out = BytesMut::new();
    out.put_slice(PREFACE);
    frame(&mut out, 4, 0, 0, &[]);
    let headers = get_headers();
    for i in 0..STREAMS {
        let id = 2 * i + 1;
        frame(&mut out, 1, 0x4 | 0x1, id, &headers); // HEADERS, END_HEADERS|END_STREAM
        frame(&mut out, 3, 0, id, &8u32.to_be_bytes()); // RST_STREAM CANCEL
    }
    let (mut read, mut write) = TcpStream::connect(addr).await.unwrap().into_split();
    let writer = tokio::spawn(async move {
        // The server may close mid-way: that is the point.
        let _ = tokio::time::timeout(Duration::from_secs(20), write.write_all(&out)).await;
        write
    });
    let code = read_until_goaway(&mut read, Duration::from_secs(20)).await;
    assert_eq!(code, Some(0xb), "GOAWAY with ENHANCE_YOUR_CALM");
    drop(writer.await.unwrap());
    let reached: u64 = b.iter().map(|s| s.requests()).sum();
    eprintln!("{reached} of {STREAMS} reset streams reached a server");
    assert!(
        reached < u64::from(STREAMS) / 10,
        "{reached} of {STREAMS} reset streams reached a server"
    );
    // The load balancer is fine: a normal request works and nothing stays in flight.
    assert_eq!(get(addr, "/").await.status, 200);
    let pool = lb.pool("p").unwrap();
    wait_until(
        Duration::from_secs(10),
        "no request left in flight",
        || async { pool.servers().iter().all(|s| s.in_flight() == 0) },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_settings_flood_is_absorbed_while_others_are_served() {
    let b = backends(1).await;
    let lb = start_lb(&simple_config("round_robin", &b, &[])).await;
    let addr = lb.local_addr("web").unwrap();
    const FRAMES: usize = 50_000;
    let mut out = BytesMut::new();
    out.put_slice(PREFACE);
    for _ in 0..FRAMES {
        // SETTINGS_MAX_CONCURRENT_STREAMS = 100
        frame(&mut out, 4, 0, 0, &[0, 3, 0, 0, 0, 100]);
    }
    let (mut read, mut write) = TcpStream::connect(addr).await.unwrap().into_split();
    let writer = tokio::spawn(async move {
        let _ = tokio::time::timeout(Duration::from_secs(20), write.write_all(&out)).await;
        write
    });
    // Meanwhile other clients are served.
    let mut c = Client::connect(addr).await;
    for _ in 0..20 {
        assert_eq!(c.get("/").await.status, 200);
    }
    // Drain what the server sends (one ACK per SETTINGS, or a GOAWAY), bounded in time.
    let mut acks = 0usize;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut buf = vec![0u8; 65536];
    while acks < FRAMES && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(5), read.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
            Ok(Ok(n)) => acks += n / 9, // SETTINGS ACK frames are 9 bytes
        }
    }
    drop(writer.await.unwrap());
    assert!(acks > 0, "the server answered the SETTINGS frames");
    assert_eq!(c.get("/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (curl): scripts/test runs it"]
async fn a_header_list_over_64k_is_refused_and_smaller_ones_pass() {
    let b = backends(1).await;
    let lb = start_lb(&simple_config("round_robin", &b, &[])).await;
    let url = format!("http://{}/", lb.local_addr("web").unwrap());
    let value = "v".repeat(1000);
    let send = |count: usize| {
        let mut args = vec![
            "-sS".to_string(),
            "--http2-prior-knowledge".into(),
            "-o".into(),
            "/dev/null".into(),
            "-w".into(),
            "%{http_code}".into(),
        ];
        for i in 0..count {
            args.push("-H".into());
            args.push(format!("x-big-{i}: {value}"));
        }
        args.push(url.clone());
        async move {
            let refs: Vec<&str> = args.iter().map(String::as_str).collect();
            run_tool_async("curl", &refs).await
        }
    };
    let small = send(40).await; // ~40 KiB
    assert_eq!(String::from_utf8_lossy(&small.stdout), "200");
    let big = send(100).await; // ~100 KiB: over the limit
    let code = String::from_utf8_lossy(&big.stdout).into_owned();
    assert_ne!(code, "200", "a 100 KiB header list must not be served");
    assert_eq!(
        b[0].requests(),
        1,
        "only the small request reached the server"
    );
    assert_eq!(get(lb.local_addr("web").unwrap(), "/").await.status, 200);
}

/// An h2c server that takes requests but opens no flow-control window, so no body byte can
/// reach it: the upload stalls in the connection, not at the client. `timeouts.send` must
/// bound it (504), long before `timeouts.read` would have started.
#[tokio::test]
async fn an_upload_held_back_by_h2_flow_control_gets_the_send_timeout() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let server = l.local_addr().unwrap();
    tokio::spawn(async move {
        let Ok((s, _)) = l.accept().await else { return };
        let Ok(mut conn) = h2::server::Builder::new()
            .initial_window_size(0)
            .handshake::<_, Bytes>(s)
            .await
        else {
            return;
        };
        let mut held = Vec::new();
        // Accept streams (bounded) and never read their bodies nor answer.
        let _ = tokio::time::timeout(Duration::from_secs(20), async {
            while let Some(Ok(req)) = conn.accept().await {
                held.push(req);
            }
        })
        .await;
    });
    let cfg = format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\nrequest_buffering = false\n[pool.p]\nupstream_protocol = \"h2c\"\ntimeouts = {{ read = \"20s\", send = \"500ms\", client_body = \"20s\" }}\nservers = [ {{ addr = \"{server}\" }} ]\n"
    );
    let lb = start_lb(&cfg).await;
    let addr = lb.local_addr("web").unwrap();
    let started = Instant::now();
    let mut s = TcpStream::connect(addr).await.unwrap();
    // Two chunks, apart: the first is taken and waits for a window that never opens; the
    // second is never asked for (the listener streams bodies: `request_buffering = false`;
    // buffered, this small body would be handed over whole, and `timeouts.read` bound it). (A body handed over whole in one piece counts as sent, and
    // `timeouts.read` bounds it from there.)
    s.write_all(b"POST /upload HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n")
        .await
        .unwrap();
    let chunk = format!("3e8\r\n{}\r\n", "x".repeat(1000));
    s.write_all(chunk.as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    s.write_all(chunk.as_bytes()).await.unwrap();
    s.write_all(b"0\r\n\r\n").await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
        .await
        .expect("an answer well before the read timeout")
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 504"), "{text}");
    let waited = started.elapsed();
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(5),
        "504 after {waited:?}"
    );
}

/// A server that answers each request as soon as it has its head, then reads its body
/// (`content-length`) before the next head: as an upstream that refuses or answers an
/// upload early does.
async fn early_answer_server() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = Vec::new();
                loop {
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
                    buf.drain(..end);
                    let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                    if s.write_all(answer).await.is_err() {
                        return;
                    }
                    while buf.len() < length {
                        let mut chunk = [0u8; 4096];
                        match s.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        }
                    }
                    buf.drain(..length);
                }
            });
        }
    });
    addr
}

/// A server connection whose answer came before the end of its upload is not handed to the
/// next request until the upload is done: the next request gets another connection at once
/// instead of waiting behind someone else's upload (HTTP/2 clients, hyper's client path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_never_waits_behind_another_clients_upload() {
    let server = early_answer_server().await;
    let lb = start_lb(&format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\nrequest_buffering = false\n[pool.p]\nservers = [ {{ addr = \"{server}\" }} ]\n[pool.p.retry]\nattempts = 1\n"
    ))
    .await;
    let addr = lb.local_addr("web").unwrap();
    let mut c = h2c_client(addr).await;
    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(4);
    let frames =
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|f| (f, rx)) });
    let upload = StreamBody::new(frames).boxed();
    // Longer than any buffer the balancer keeps (request_buffer_size, a retry's 64 KiB):
    // it streams as it comes.
    tx.send(Ok(Frame::data(Bytes::from(vec![b'x'; 100_000]))))
        .await
        .unwrap();
    let req = Request::post(format!("http://{addr}/upload"))
        .header("content-length", "1000000")
        .body(upload)
        .unwrap();
    let resp = c.send_request(req).await.unwrap();
    assert_eq!(resp.status(), 200);
    // The answer read whole while the upload is still open.
    assert_eq!(resp.into_body().collect().await.unwrap().to_bytes(), "ok");
    let get = Request::get(format!("http://{addr}/next"))
        .body(TestBody::default())
        .unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), c.send_request(get))
        .await
        .expect("the next request is answered without waiting for the upload")
        .unwrap();
    assert_eq!(next.status(), 200);
    tx.send(Ok(Frame::data(Bytes::from(vec![b'y'; 900_000]))))
        .await
        .unwrap();
    drop(tx);
    lb.shutdown().await;
}

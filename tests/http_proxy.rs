//! The L7 proxy against real sockets: routing, splits, header rewriting, hop-by-hop removal,
//! upstream connection reuse, error statuses, pipelining, Expect, HEAD, graceful shutdown
//! (uploads and slow peers: `uploads.rs`).
mod common;

use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use switchyard::demo::Backend;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn two_pools(web: &[Backend], api: &[Backend], extra_routes: &str) -> String {
    format!(
        r#"
[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "web"
{extra_routes}
  [[listener.route]]
  path_prefix = "/api/"
  pool = "api"

[pool.web]
servers = {}

[pool.api]
algorithm = "least_conn"
servers = {}
"#,
        servers_toml(web, &[]),
        servers_toml(api, &[])
    )
}

#[tokio::test]
async fn routes_by_path_host_header_cookie_and_method() {
    let web = backends(1).await;
    let api = vec![Backend::start("api1", Duration::ZERO).await.unwrap()];
    let routes = r#"
  [[listener.route]]
  host = "*.example.com"
  pool = "api"
  [[listener.route]]
  header = { name = "x-canary", value = "1" }
  pool = "api"
  [[listener.route]]
  cookie = { name = "beta", value = "yes" }
  pool = "api"
  [[listener.route]]
  method = "DELETE"
  pool = "api"
"#;
    let lb = start_lb(&two_pools(&web, &api, routes)).await;
    let addr = lb.local_addr("web").unwrap();

    assert_eq!(get(addr, "/").await.server(), "s1");
    assert_eq!(get(addr, "/api/users").await.server(), "api1");
    assert_eq!(get(addr, "/apix").await.server(), "s1", "prefix is literal");
    assert_eq!(
        get_with(addr, "/", &[("host", "shop.example.com")])
            .await
            .server(),
        "api1"
    );
    assert_eq!(
        get_with(addr, "/", &[("host", "SHOP.Example.com:8080")])
            .await
            .server(),
        "api1"
    );
    assert_eq!(
        get_with(addr, "/", &[("host", "example.com")])
            .await
            .server(),
        "s1"
    );
    assert_eq!(
        get_with(addr, "/", &[("x-canary", "1")]).await.server(),
        "api1"
    );
    assert_eq!(
        get_with(addr, "/", &[("x-canary", "0")]).await.server(),
        "s1"
    );
    assert_eq!(
        get_with(addr, "/", &[("cookie", "a=1; beta=yes")])
            .await
            .server(),
        "api1"
    );
    assert_eq!(
        get_with(addr, "/", &[("cookie", "beta=no")]).await.server(),
        "s1"
    );
    let mut c = Client::connect(addr).await;
    let del = c
        .send(Request::delete("/x").body(Full::new(Bytes::new())).unwrap())
        .await;
    assert_eq!(del.server(), "api1");
}

#[tokio::test]
async fn split_weights_are_exact_and_interleaved() {
    let v1 = vec![Backend::start("v1", Duration::ZERO).await.unwrap()];
    let v2 = vec![Backend::start("v2", Duration::ZERO).await.unwrap()];
    let cfg = format!(
        r#"
[[listener]]
name = "web"
listen = "127.0.0.1:0"
  [[listener.route]]
  host = "shop.example.com"
  split = [ {{ pool = "v1", weight = 90 }}, {{ pool = "v2", weight = 10 }} ]
[pool.v1]
servers = {}
[pool.v2]
servers = {}
"#,
        servers_toml(&v1, &[]),
        servers_toml(&v2, &[])
    );
    let lb = start_lb(&cfg).await;
    let addr = lb.local_addr("web").unwrap();
    let mut c = Client::connect(addr).await;
    let mut seq = Vec::new();
    for _ in 0..200 {
        let req = Request::get("/")
            .header("host", "shop.example.com")
            .body(Full::new(Bytes::new()))
            .unwrap();
        seq.push(c.send(req).await.server());
    }
    let t = tally(seq.clone());
    assert_eq!((t["v1"], t["v2"]), (180, 20), "{t:?}");
    // Canary traffic is spread, not bunched: every window of 10 has exactly one v2.
    for w in seq.chunks(10) {
        assert_eq!(w.iter().filter(|s| *s == "v2").count(), 1, "{w:?}");
    }
    // A request for another host matches no route and there is no default pool.
    assert_eq!(get(addr, "/").await.status, 404);
}

#[tokio::test]
async fn forwarding_headers_are_set_and_host_is_kept_or_rewritten() {
    let b = backends(1).await;
    let lb = start_lb(&simple_config("round_robin", &b, &[])).await;
    let addr = lb.local_addr("web").unwrap();
    let a = get_with(
        addr,
        "/headers?q=1",
        &[
            ("host", "app.example.com"),
            ("x-forwarded-for", "203.0.113.7"),
        ],
    )
    .await;
    let seen = a.text();
    assert!(seen.starts_with("GET /headers?q=1 HTTP/1.1"), "{seen}");
    assert!(seen.contains("host: app.example.com\n"), "{seen}");
    assert!(
        seen.contains("x-forwarded-for: 203.0.113.7, 127.0.0.1\n"),
        "{seen}"
    );
    assert!(seen.contains("x-real-ip: 127.0.0.1\n"), "{seen}");
    assert!(seen.contains("x-forwarded-proto: http\n"), "{seen}");

    // Several X-Forwarded-For lines are one list: all of them, in order, then the client.
    let mut raw = send_head(addr, b"GET /headers HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.1, 203.0.113.2\r\nX-Forwarded-For: 198.51.100.3\r\nConnection: close\r\n\r\n").await;
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), raw.read_to_end(&mut out))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    assert!(
        text.contains("x-forwarded-for: 203.0.113.1, 203.0.113.2, 198.51.100.3, 127.0.0.1\n"),
        "{text}"
    );
    assert_eq!(text.matches("x-forwarded-for:").count(), 1, "{text}");

    let cfg = simple_config("round_robin", &b, &[])
        .replace("[pool.p]\n", "[pool.p]\nhost_header = \"upstream\"\n");
    let lb2 = start_lb(&cfg).await;
    let a = get_with(
        lb2.local_addr("web").unwrap(),
        "/headers",
        &[("host", "app.example.com")],
    )
    .await;
    assert!(
        a.text().contains(&format!("host: {}\n", b[0].addr)),
        "{}",
        a.text()
    );
}

/// A raw HTTP/1.1 server that answers every request with `response` and records requests.
async fn raw_backend(
    response: &'static str,
) -> (std::net::SocketAddr, tokio::sync::mpsc::Receiver<String>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = tokio::sync::mpsc::channel(16);
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let tx = tx.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                loop {
                    let n = match s.read(&mut tmp).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => n,
                    };
                    buf.extend_from_slice(&tmp[..n]);
                    if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        let _ = tx.send(head).await;
                        if s.write_all(response.as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    (addr, rx)
}

#[tokio::test]
async fn hop_by_hop_headers_do_not_cross_either_way() {
    let (addr, mut seen) = raw_backend(
        "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: keep-alive, x-hop\r\nX-Hop: secret\r\nKeep-Alive: timeout=5\r\nProxy-Authenticate: Basic\r\nX-End: kept\r\n\r\nok",
    )
    .await;
    let cfg = format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nservers = [ {{ addr = \"{addr}\" }} ]\n"
    );
    let lb = start_lb(&cfg).await;
    let a = get_with(
        lb.local_addr("web").unwrap(),
        "/",
        &[
            ("connection", "x-private"),
            ("x-private", "1"),
            ("te", "deflate, trailers"),
            ("keep-alive", "300"),
            ("upgrade", "h2c"),
            ("proxy-authorization", "Basic abc"),
            ("proxy-connection", "keep-alive"),
            ("proxy", "http://attacker.example:3128"),
            ("proxy-app-tenant", "t1"),
            ("x-app", "kept"),
        ],
    )
    .await;
    assert_eq!(a.status, 200);
    assert_eq!(a.text(), "ok");
    assert_eq!(a.headers["x-end"], "kept");
    for h in ["x-hop", "keep-alive", "proxy-authenticate"] {
        assert!(
            !a.headers.contains_key(h),
            "response kept {h}: {:?}",
            a.headers
        );
    }
    let head = seen.recv().await.unwrap().to_ascii_lowercase();
    assert!(head.contains("x-app: kept"), "{head}");
    // An application header that only starts with "proxy" is end to end.
    assert!(head.contains("\r\nproxy-app-tenant: t1"), "{head}");
    for h in [
        "x-private",
        "deflate",
        "keep-alive",
        "upgrade",
        "proxy-authorization",
        "proxy-connection",
        "\r\nproxy:",
        "attacker",
    ] {
        assert!(!head.contains(h), "request kept {h}: {head}");
    }
    // TE is hop-by-hop, but "trailers" says the client takes trailers, which we pass through
    // end to end (gRPC servers require it), so that one value crosses.
    assert!(head.contains("\r\nte: trailers"), "{head}");
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let b = backends(1).await;
    let lb = start_lb(&simple_config("round_robin", &b, &[])).await;
    let mut c = Client::connect(lb.local_addr("web").unwrap()).await;
    for i in 0..1000 {
        let a = c.get(&format!("/n/{i}")).await;
        assert_eq!(a.status, 200);
    }
    assert_eq!(b[0].requests(), 1000);
    let opened = b[0].connections();
    assert!(
        opened <= 3,
        "1000 sequential requests opened {opened} upstream connections"
    );
}

#[tokio::test]
async fn keepalive_zero_closes_upstream_connections() {
    let b = backends(1).await;
    let cfg =
        simple_config("round_robin", &b, &[]).replace("[pool.p]\n", "[pool.p]\nkeepalive = 0\n");
    let lb = start_lb(&cfg).await;
    let mut c = Client::connect(lb.local_addr("web").unwrap()).await;
    for _ in 0..20 {
        assert_eq!(c.get("/").await.status, 200);
    }
    assert_eq!(b[0].connections(), 20);
}

#[tokio::test]
async fn refused_server_gives_502_and_no_server_gives_503() {
    // A port that was free a moment ago: connections are refused.
    let dead = TcpListener::bind("127.0.0.1:0")
        .await
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nservers = [ {{ addr = \"{dead}\" }} ]\n"
    );
    let lb = start_lb(&cfg).await;
    let a = get(lb.local_addr("web").unwrap(), "/").await;
    assert_eq!(a.status, 502);
    assert_eq!(a.text(), "502 Bad Gateway\n");

    let cfg = cfg.replace(
        &format!("addr = \"{dead}\""),
        &format!("addr = \"{dead}\", down = true"),
    );
    let lb = start_lb(&cfg).await;
    let a = get(lb.local_addr("web").unwrap(), "/").await;
    assert_eq!(a.status, 503);
    assert_eq!(a.headers["retry-after"], "1");
}

#[tokio::test]
async fn a_server_that_resets_gives_502() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).await;
            drop(s); // closes with the request unanswered
        }
    });
    let cfg = format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nservers = [ {{ addr = \"{addr}\" }} ]\n"
    );
    let lb = start_lb(&cfg).await;
    assert_eq!(get(lb.local_addr("web").unwrap(), "/").await.status, 502);
}

#[tokio::test]
async fn slow_server_gives_504_after_the_read_timeout() {
    let b = backends(1).await;
    let cfg = simple_config("round_robin", &b, &[]).replace(
        "[pool.p]\n",
        "[pool.p]\ntimeouts = { connect = \"1s\", read = \"300ms\" }\n",
    );
    let lb = start_lb(&cfg).await;
    let addr = lb.local_addr("web").unwrap();
    let started = Instant::now();
    let a = get(addr, "/sleep/3000").await;
    assert_eq!(a.status, 504);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "504 took {:?}",
        started.elapsed()
    );
    assert_eq!(get(addr, "/sleep/10").await.status, 200);
}

/// The read timeout on a kept-alive client connection, whose timer for server waits was
/// moved later by each request before: the slow answer is still cut at its own deadline.
#[tokio::test]
async fn the_read_timeout_holds_on_a_kept_alive_connection() {
    let b = backends(1).await;
    let cfg = simple_config("round_robin", &b, &[]).replace(
        "[pool.p]\n",
        "[pool.p]\ntimeouts = { connect = \"1s\", read = \"300ms\" }\n",
    );
    let lb = start_lb(&cfg).await;
    let mut c = Client::connect(lb.local_addr("web").unwrap()).await;
    for _ in 0..3 {
        assert_eq!(c.get("/sleep/10").await.status, 200);
    }
    let started = Instant::now();
    assert_eq!(c.get("/sleep/3000").await.status, 504);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "504 took {:?}",
        started.elapsed()
    );
    let mut c = Client::connect(lb.local_addr("web").unwrap()).await;
    assert_eq!(c.get("/sleep/10").await.status, 200);
}

/// A server that floods interim answers (100 Continue without end, each read finding the
/// next at once) is still cut at the read timeout.
#[tokio::test]
async fn endless_interim_answers_end_at_the_read_timeout() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let flood = b"HTTP/1.1 100 Continue\r\n\r\n".repeat(40_000);
                let until = Instant::now() + Duration::from_secs(10);
                while Instant::now() < until && s.write_all(&flood).await.is_ok() {}
            });
        }
    });
    let cfg = format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\ntimeouts = {{ read = \"300ms\" }}\nservers = [ {{ addr = \"{addr}\" }} ]\n"
    );
    let lb = start_lb(&cfg).await;
    let started = Instant::now();
    let a = tokio::time::timeout(
        Duration::from_secs(8),
        get(lb.local_addr("web").unwrap(), "/"),
    )
    .await
    .expect("an answer before the flood ends");
    assert_eq!(a.status, 504);
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    let b = backends(2).await;
    let lb = start_lb(&simple_config("round_robin", &b, &[])).await;
    let mut s = TcpStream::connect(lb.local_addr("web").unwrap())
        .await
        .unwrap();
    s.write_all(b"GET /one HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\nGET /three HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("answers within 10s")
        .unwrap();
    let text = String::from_utf8_lossy(&out);
    let one = text.find("GET /one").expect("first answer");
    let two = text.find("GET /two").expect("second answer");
    let three = text.find("GET /three").expect("third answer");
    assert!(one < two && two < three, "{text}");
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3, "{text}");
}

#[tokio::test]
async fn head_and_expect_continue_and_chunked_upload() {
    let b = backends(1).await;
    let lb = start_lb(&simple_config("round_robin", &b, &[])).await;
    let addr = lb.local_addr("web").unwrap();

    let mut c = Client::connect(addr).await;
    let head = c
        .send(Request::head("/").body(Full::new(Bytes::new())).unwrap())
        .await;
    assert_eq!(head.status, 200);
    assert!(head.body.is_empty());
    // The connection is still usable after a HEAD.
    assert_eq!(c.get("/").await.status, 200);

    // Expect: 100-continue from a raw client that sends no body byte before the 100 comes
    // (curl would send it after 1 s anyway, so it cannot tell): a small body (read before
    // the server is chosen) and a 2 MB one (streamed to the server).
    for size in [1000usize, 2_000_000] {
        let mut s = send_head(addr, format!(
                "POST /upload HTTP/1.1\r\nHost: a\r\nContent-Length: {size}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n"
            )
            .as_bytes()).await;
        let want = b"HTTP/1.1 100 Continue\r\n\r\n";
        let mut got = vec![0u8; want.len()];
        // The client never sends early, so any bound proves the point; a generous one keeps
        // a loaded machine from failing it.
        tokio::time::timeout(Duration::from_secs(5), s.read_exact(&mut got))
            .await
            .unwrap_or_else(|_| panic!("{size}: no 100 Continue within 5 s"))
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&got), String::from_utf8_lossy(want));
        s.write_all(&vec![b'x'; size]).await.unwrap();
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
            .await
            .expect("final answer within 10 s")
            .unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{size}: {text}");
        assert!(
            text.contains(&format!("received {size} bytes")),
            "{size}: {text}"
        );
    }

    // Chunked (no Content-Length) upload from curl reading a pipe.
    let out = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "head -c 300000 /dev/zero | curl -sS --max-time 20 -T - http://{addr}/chunked"
        ))
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("received 300000 bytes"), "{text}");
}

#[tokio::test]
async fn malformed_requests_get_400_and_a_close() {
    let b = backends(1).await;
    let lb = start_lb(&simple_config("round_robin", &b, &[])).await;
    let addr = lb.local_addr("web").unwrap();
    for bad in [
        &b"GARBAGE\r\n\r\n"[..],
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
        b"GET / HTTP/1.1\r\nBad Header Line\r\n\r\n",
    ] {
        let mut s = send_head(addr, bad).await;
        let mut out = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out))
            .await
            .expect("closed within 5s")
            .unwrap();
        let text = String::from_utf8_lossy(&out);
        assert!(
            text.starts_with("HTTP/1.1 400"),
            "{:?} -> {text}",
            String::from_utf8_lossy(bad)
        );
    }
    // The backend saw none of them, and the LB still serves.
    assert_eq!(b[0].requests(), 0);
    assert_eq!(get(addr, "/").await.status, 200);
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let b = backends(1).await;
    let lb = start_lb(&simple_config("round_robin", &b, &[])).await;
    let addr = lb.local_addr("web").unwrap();
    let slow = tokio::spawn(async move { get(addr, "/sleep/400").await });
    wait_until(
        Duration::from_secs(5),
        "the slow request reaches the backend",
        || async { b[0].requests() == 1 },
    )
    .await;
    lb.shutdown().await;
    let a = slow.await.unwrap();
    assert_eq!(a.status, 200);
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "still accepting after shutdown"
    );
}

#[tokio::test]
async fn listens_on_ipv6_loopback() {
    let b = backends(1).await;
    let cfg = simple_config("round_robin", &b, &[]).replace("127.0.0.1:0", "[::1]:0");
    let lb = start_lb(&cfg).await;
    let addr = lb.local_addr("web").unwrap();
    assert!(addr.is_ipv6());
    let a = get(addr, "/headers").await;
    assert_eq!(a.status, 200);
    assert!(a.text().contains("x-forwarded-for: ::1\n"), "{}", a.text());
}

#[tokio::test]
async fn an_http_1_0_server_does_not_end_the_clients_keep_alive() {
    // Like `python3 -m http.server`: answers in HTTP/1.0 and closes.
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                let _ = s.read(&mut buf).await;
                let _ = s
                    .write_all(b"HTTP/1.0 200 OK\r\nContent-Length: 3\r\n\r\nold")
                    .await;
            });
        }
    });
    let cfg = format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nservers = [ {{ addr = \"{addr}\" }} ]\n"
    );
    let lb = start_lb(&cfg).await;
    let mut s = TcpStream::connect(lb.local_addr("web").unwrap())
        .await
        .unwrap();
    let mut text = String::new();
    for _ in 0..3 {
        s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut buf = vec![0u8; 4096];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut buf))
            .await
            .expect("an answer on the same connection")
            .unwrap();
        assert!(n > 0, "the LB closed the client connection after: {text}");
        text = String::from_utf8_lossy(&buf[..n]).into_owned();
        assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
        assert!(text.ends_with("old"), "{text}");
    }
}

/// A raw client connection that has sent `head` (and whatever else is in it).
async fn send_head(addr: std::net::SocketAddr, head: &[u8]) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(head).await.unwrap();
    s
}

//! Client limits of http, https and admin listeners (issue 15, items 1 and 4): silent
//! connections are closed (nothing sent, `P`, part of the HTTP/2 preface, part of a head, a
//! TLS handshake and then nothing, an idle HTTP/2 connection answering PINGs), idle
//! keep-alive connections are closed, and the connection limits hold (a full listener closes
//! an idle connection for a new one, else the new one; a client over its own limit gets
//! 503; the admin listener has its own). Real sockets on 127.0.0.1, both HTTP/1 engines
//! where the path differs. HTTP/2 rapid reset is in `limits_h2.rs`.

mod common;
#[path = "limits_support/mod.rs"]
mod support;
#[path = "tls_support/mod.rs"]
mod tls_support;

use std::time::{Duration, Instant};

use common::{backends, get, wait_until};
use support::{closed_within, lb, listener_config};
use switchyard::proxy::http::Http1Engine;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

const ENGINES: [Http1Engine; 2] = [Http1Engine::Direct, Http1Engine::Hyper];

/// What a silent or stalled client sends before going quiet, and whether it gets a 408.
const SILENT: [(&str, &[u8], bool); 5] = [
    ("nothing", b"", false),
    ("P", b"P", false),
    (
        "part of the HTTP/2 preface",
        b"PRI * HTTP/2.0\r\n\r\nS",
        false,
    ),
    ("part of a request line", b"GET /inde", true),
    (
        "part of a head",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-Slow: 1",
        true,
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_connections_close_at_client_header_timeout() {
    let b = backends(1).await;
    for engine in ENGINES {
        let toml = listener_config(&b[0], "client_header_timeout = \"1s\"");
        let lb = lb(&toml, engine).await;
        let addr = lb.local_addr("web").unwrap();
        let stats = lb.conn_limits("web").unwrap().stats().clone();
        let before = stats.header_timeouts();
        // All at once: each is closed about 1 s after its accept, none earlier.
        let mut clients = Vec::new();
        for (what, bytes, _) in SILENT {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(bytes).await.unwrap();
            clients.push((what, s, Instant::now()));
        }
        for ((what, mut s, at), (_, _, answered)) in clients.into_iter().zip(SILENT) {
            let got = closed_within(&mut s, Duration::from_secs(5))
                .await
                .unwrap_or_else(|_| panic!("{engine:?}: {what}: still open after 5 s"));
            let took = at.elapsed();
            assert!(
                took >= Duration::from_millis(900),
                "{engine:?}: {what}: closed after {took:?}, before the timeout"
            );
            let text = String::from_utf8_lossy(&got);
            // hyper closes a half-read head without a word when its header timer fires
            // (as nginx does); the direct path answers 408 (as HAProxy does).
            if answered && engine == Http1Engine::Direct {
                assert!(
                    text.starts_with("HTTP/1.1 408"),
                    "{engine:?}: {what}: {text:?}"
                );
            } else {
                assert!(!text.contains("HTTP/1.1 2"), "{engine:?}: {what}: {text:?}");
            }
        }
        let counted = stats.header_timeouts() - before;
        assert_eq!(
            counted,
            SILENT.len() as u64,
            "{engine:?}: header timeouts counted"
        );
        // The listener still serves.
        assert_eq!(get(addr, "/").await.status, 200, "{engine:?}");
        lb.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_keepalive_connections_close_at_keepalive_timeout() {
    let b = backends(1).await;
    for engine in ENGINES {
        let extra = "keepalive_timeout = \"1s\"\nclient_header_timeout = \"10s\"";
        let lb = lb(&listener_config(&b[0], extra), engine).await;
        let addr = lb.local_addr("web").unwrap();
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let (first, _) = support::read_answer(&mut s).await;
        assert!(first.starts_with("HTTP/1.1 200"), "{engine:?}: {first}");
        let at = Instant::now();
        let rest = closed_within(&mut s, Duration::from_secs(5))
            .await
            .unwrap_or_else(|_| panic!("{engine:?}: idle connection still open after 5 s"));
        assert!(
            rest.is_empty(),
            "{engine:?}: {:?}",
            String::from_utf8_lossy(&rest)
        );
        let took = at.elapsed();
        assert!(
            took >= Duration::from_millis(800) && took < Duration::from_secs(4),
            "{engine:?}: idle connection closed after {took:?}"
        );
        assert!(lb.conn_limits("web").unwrap().stats().idle_timeouts() >= 1);
        lb.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_handshake_timeout_and_silence_after_the_handshake() {
    let b = backends(1).await;
    let pki = tls_support::Pki::new();
    let pair = pki.leaf("site", &["site.test"]);
    let extra = format!(
        "protocol = \"https\"\ntls_handshake_timeout = \"1s\"\nclient_header_timeout = \"4s\"\n{}",
        tls_support::tls_entries(&[pair])
    );
    let lb = lb(&listener_config(&b[0], &extra), Http1Engine::Direct).await;
    let addr = lb.local_addr("web").unwrap();

    // No ClientHello at all: closed by tls_handshake_timeout.
    let mut raw = TcpStream::connect(addr).await.unwrap();
    let at = Instant::now();
    closed_within(&mut raw, Duration::from_secs(5))
        .await
        .expect("a connection with no ClientHello is closed");
    let took = at.elapsed();
    // By tls_handshake_timeout (1 s), well before client_header_timeout (4 s).
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(3500),
        "no handshake: closed after {took:?}"
    );

    // Half a ClientHello: the same.
    let mut half = TcpStream::connect(addr).await.unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .await
        .unwrap();
    let at = Instant::now();
    closed_within(&mut half, Duration::from_secs(5))
        .await
        .expect("half a ClientHello is closed");
    assert!(at.elapsed() < Duration::from_millis(3500));

    // A whole handshake, then nothing: closed by client_header_timeout (from the accept).
    for alpn in [&["http/1.1"][..], &["h2"][..]] {
        let cfg = tls_support::client_config(&pki.ca_pem, alpn);
        let tcp = TcpStream::connect(addr).await.unwrap();
        let at = Instant::now();
        let name = rustls_pki_types::ServerName::try_from("site.test").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(cfg)
            .connect(name, tcp)
            .await
            .expect("handshake");
        closed_within(&mut tls, Duration::from_secs(10))
            .await
            .unwrap_or_else(|_| panic!("{alpn:?}: silent after the handshake: still open"));
        let took = at.elapsed();
        assert!(
            took >= Duration::from_millis(3800) && took < Duration::from_secs(8),
            "{alpn:?}: silent after the handshake: closed after {took:?}"
        );
    }
    assert_eq!(
        tls_support::https_get(addr, &pki.ca_pem, "site.test", &["http/1.1"], "/")
            .await
            .status,
        200
    );
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_http2_connections_close_even_answering_pings() {
    let b = backends(1).await;
    let extra = "client_header_timeout = \"1s\"\nkeepalive_timeout = \"1s\"";
    let lb = lb(&listener_config(&b[0], extra), Http1Engine::Direct).await;
    let addr = lb.local_addr("web").unwrap();

    // No request at all, the client pinging every 200 ms (and answering the server's).
    let (_send, mut conn) = support::h2c(addr).await;
    let mut pings = conn.ping_pong().expect("ping_pong");
    let at = Instant::now();
    let pinging = async {
        loop {
            if pings.ping(h2::Ping::opaque()).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    };
    let ended = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::select! { _ = &mut conn => {}, _ = pinging => { let _ = (&mut conn).await; } }
    })
    .await;
    assert!(
        ended.is_ok(),
        "an HTTP/2 connection with no request is still open after 5 s"
    );
    assert!(
        at.elapsed() >= Duration::from_millis(900),
        "{:?}",
        at.elapsed()
    );

    // One request answered, then no stream open: closed by keepalive_timeout.
    let (mut send, conn) = support::h2c(addr).await;
    let driver = tokio::spawn(conn);
    let req = http::Request::get(format!("http://{addr}/"))
        .body(())
        .unwrap();
    let (resp, _) = send.send_request(req, true).unwrap();
    let resp = resp.await.unwrap();
    assert_eq!(resp.status(), 200);
    let mut body = resp.into_body();
    while let Some(chunk) = body.data().await {
        chunk.unwrap();
    }
    let at = Instant::now();
    tokio::time::timeout(Duration::from_secs(5), driver)
        .await
        .expect("an idle HTTP/2 connection is still open after 5 s")
        .unwrap()
        .ok();
    assert!(
        at.elapsed() >= Duration::from_millis(800),
        "{:?}",
        at.elapsed()
    );
    let stats = lb.conn_limits("web").unwrap().stats().clone();
    assert!(stats.header_timeouts() >= 1 && stats.idle_timeouts() >= 1);
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_listener_closes_an_idle_connection_for_a_new_one_or_refuses_it() {
    let b = backends(1).await;
    for engine in ENGINES {
        let extra = "max_connections = 4";
        let lb = lb(&listener_config(&b[0], extra), engine).await;
        let addr = lb.local_addr("web").unwrap();
        let limits = lb.conn_limits("web").unwrap();
        let mut silent = Vec::new();
        for _ in 0..4 {
            silent.push(TcpStream::connect(addr).await.unwrap());
        }
        wait_until(Duration::from_secs(5), "4 open", || {
            let n = limits.open();
            async move { n == 4 }
        })
        .await;
        // Full of idle connections: each new client is served, an idle one closed for it.
        // Kept open, so that each new one needs room.
        let mut good = Vec::new();
        for _ in 0..3 {
            let mut c = common::Client::connect(addr).await;
            assert_eq!(c.get("/").await.status, 200, "{engine:?}");
            good.push(c);
        }
        assert!(limits.stats().reused() >= 3, "{engine:?}");
        let mut closed = 0;
        for s in &mut silent {
            if closed_within(s, Duration::from_millis(500)).await.is_ok() {
                closed += 1;
            }
        }
        assert!(
            closed >= 3,
            "{engine:?}: {closed} of the idle connections closed"
        );
        drop((silent, good));
        wait_until(Duration::from_secs(5), "all closed", || {
            let n = limits.open();
            async move { n == 0 }
        })
        .await;

        // Full of busy connections: a new one is closed at once, unanswered.
        let mut busy = Vec::new();
        for _ in 0..4 {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(b"GET /sleep/2500 HTTP/1.1\r\nHost: a\r\n\r\n")
                .await
                .unwrap();
            busy.push(s);
        }
        wait_until(Duration::from_secs(5), "4 busy", || {
            let n = limits.open();
            async move { n == 4 }
        })
        .await;
        // Give the 4 requests time to be read (busy, not idle).
        wait_until(Duration::from_secs(5), "4 requests at the server", || {
            let n = b[0].requests();
            let c = b[0].connections();
            async move { n > 0 || c >= 4 }
        })
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        let refused = limits.stats().refused_listener();
        let mut extra = TcpStream::connect(addr).await.unwrap();
        let got = closed_within(&mut extra, Duration::from_secs(1))
            .await
            .expect("the connection over max_connections is closed at once");
        assert!(
            got.is_empty(),
            "{engine:?}: {:?}",
            String::from_utf8_lossy(&got)
        );
        assert_eq!(limits.stats().refused_listener(), refused + 1);
        for mut s in busy {
            let (first, _) = support::read_answer(&mut s).await;
            assert!(first.starts_with("HTTP/1.1 200"), "{engine:?}: {first}");
        }
        lb.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_over_its_own_limit_gets_503() {
    let b = backends(1).await;
    let extra = "max_connections_per_client = 2";
    let lb = lb(&listener_config(&b[0], extra), Http1Engine::Direct).await;
    let addr = lb.local_addr("web").unwrap();
    let limits = lb.conn_limits("web").unwrap();
    let _one = TcpStream::connect(addr).await.unwrap();
    let _two = TcpStream::connect(addr).await.unwrap();
    wait_until(Duration::from_secs(5), "2 open", || {
        let n = limits.open();
        async move { n == 2 }
    })
    .await;
    let mut third = TcpStream::connect(addr).await.unwrap();
    third
        .write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let got = closed_within(&mut third, Duration::from_secs(3))
        .await
        .expect("closed after the 503");
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 503"), "{text}");
    assert!(
        text.to_ascii_lowercase().contains("retry-after: 1"),
        "{text}"
    );
    assert_eq!(limits.stats().refused_client(), 1);
    drop((_one, _two));
    wait_until(Duration::from_secs(5), "freed", || {
        let n = limits.open();
        async move { n == 0 }
    })
    .await;
    assert_eq!(get(addr, "/").await.status, 200);
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_https_listener_has_its_connection_limit() {
    let b = backends(1).await;
    let pki = tls_support::Pki::new();
    let pair = pki.leaf("site", &["site.test"]);
    let extra = format!(
        "protocol = \"https\"\nmax_connections = 2\n{}",
        tls_support::tls_entries(&[pair])
    );
    let lb = lb(&listener_config(&b[0], &extra), Http1Engine::Direct).await;
    let addr = lb.local_addr("web").unwrap();
    let limits = lb.conn_limits("web").unwrap();
    let cfg = tls_support::client_config(&pki.ca_pem, &["http/1.1"]);
    let mut busy = Vec::new();
    for _ in 0..2 {
        let tcp = TcpStream::connect(addr).await.unwrap();
        let name = rustls_pki_types::ServerName::try_from("site.test").unwrap();
        let mut tls = tokio_rustls::TlsConnector::from(cfg.clone())
            .connect(name, tcp)
            .await
            .unwrap();
        tls.write_all(b"GET /sleep/1500 HTTP/1.1\r\nHost: site.test\r\n\r\n")
            .await
            .unwrap();
        busy.push(tls);
    }
    wait_until(Duration::from_secs(5), "2 requests at the server", || {
        let n = b[0].connections();
        async move { n >= 2 }
    })
    .await;
    assert_eq!(limits.open(), 2);
    let refused = limits.stats().refused_listener();
    let mut extra = TcpStream::connect(addr).await.unwrap();
    closed_within(&mut extra, Duration::from_secs(1))
        .await
        .expect("the third TLS connection is closed at once");
    assert_eq!(limits.stats().refused_listener(), refused + 1);
    for mut tls in busy {
        let (first, _) = support::read_answer(&mut tls).await;
        assert!(first.starts_with("HTTP/1.1 200"), "{first}");
    }
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_listener_has_a_connection_limit_and_a_header_timeout() {
    let b = backends(1).await;
    let toml = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\nmax_connections = 3\nclient_header_timeout = \"1s\"\n{}",
        listener_config(&b[0], "")
    );
    let lb = lb(&toml, Http1Engine::Direct).await;
    let admin = lb.admin_addr().unwrap();
    let web = lb.local_addr("web").unwrap();
    let mut silent = Vec::new();
    for _ in 0..3 {
        silent.push((TcpStream::connect(admin).await.unwrap(), Instant::now()));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    // Full: a fourth is closed at once; the traffic port is untouched.
    let mut fourth = TcpStream::connect(admin).await.unwrap();
    fourth
        .write_all(b"GET /health/live HTTP/1.1\r\nHost: a\r\n\r\n")
        .await
        .unwrap();
    let got = closed_within(&mut fourth, Duration::from_secs(1))
        .await
        .expect("over max_connections: closed");
    assert!(got.is_empty(), "{:?}", String::from_utf8_lossy(&got));
    assert_eq!(get(web, "/").await.status, 200);
    // The silent ones go at client_header_timeout; then the admin answers again.
    for (mut s, at) in silent {
        closed_within(&mut s, Duration::from_secs(5))
            .await
            .expect("a silent admin connection is closed");
        assert!(at.elapsed() >= Duration::from_millis(900));
    }
    wait_until(Duration::from_secs(5), "the admin answers", || async move {
        get(admin, "/health/live").await.status == 200
    })
    .await;
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_over_the_configured_limits_get_414_and_431() {
    let b = backends(1).await;
    let extra = "max_header_size = \"4k\"\nmax_headers = 20\nmax_uri_size = \"1k\"";
    for engine in ENGINES {
        let lb = lb(&listener_config(&b[0], extra), engine).await;
        let addr = lb.local_addr("web").unwrap();
        let at_server = b[0].requests();
        let many: String = (0..30).map(|i| format!("X-F{i}: v\r\n")).collect();
        for (what, head, status) in [
            (
                "a long target",
                format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "u".repeat(1500)),
                "414",
            ),
            (
                "a big head",
                format!(
                    "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
                    "b".repeat(5000)
                ),
                "431",
            ),
            (
                "too many fields",
                format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n"),
                "431",
            ),
            (
                "under every limit",
                format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "u".repeat(900)),
                "200",
            ),
        ] {
            let mut s = TcpStream::connect(addr).await.unwrap();
            s.write_all(head.as_bytes()).await.unwrap();
            let (first, _) = support::read_answer(&mut s).await;
            assert!(
                first.starts_with(&format!("HTTP/1.1 {status}")),
                "{engine:?}: {what}: {first}"
            );
        }
        assert_eq!(
            b[0].requests(),
            at_server + 1,
            "{engine:?}: only the good one reached the server"
        );
        lb.shutdown().await;
    }
    // HTTP/2: the same limits.
    let lb = lb(&listener_config(&b[0], extra), Http1Engine::Direct).await;
    let addr = lb.local_addr("web").unwrap();
    let (send, conn) = support::h2c(addr).await;
    tokio::spawn(conn);
    let mut send = send;
    for (what, req, status) in [
        (
            "a long target",
            http::Request::get(format!("http://{addr}/{}", "u".repeat(1500))).body(()),
            414,
        ),
        (
            "too many fields",
            (0..30)
                .fold(http::Request::get(format!("http://{addr}/")), |r, i| {
                    r.header(format!("x-f{i}"), "v")
                })
                .body(()),
            431,
        ),
    ] {
        send = send.ready().await.unwrap();
        let (resp, _) = send.send_request(req.unwrap(), true).unwrap();
        let resp = resp.await.expect("answered");
        assert_eq!(resp.status(), status, "HTTP/2: {what}");
    }
    lb.shutdown().await;
}

/// A kept-alive connection that has served two requests and gone idle again: a full
/// listener closes it promptly for a new client (not at its keepalive_timeout), and so does
/// a graceful stop. Its idle waits after the first share one waiter (`h1/wait.rs` `Gone`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_alive_connection_idle_after_two_requests_closes_for_room_and_on_stop() {
    let b = backends(1).await;
    let two = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    for engine in ENGINES {
        let extra = "max_connections = 1\nkeepalive_timeout = \"60s\"";
        let lb = lb(&listener_config(&b[0], extra), engine).await;
        let addr = lb.local_addr("web").unwrap();
        let limits = lb.conn_limits("web").unwrap();
        let mut kept = TcpStream::connect(addr).await.unwrap();
        for _ in 0..2 {
            kept.write_all(two).await.unwrap();
            let (first, _) = support::read_answer(&mut kept).await;
            assert!(first.starts_with("HTTP/1.1 200"), "{engine:?}: {first}");
        }
        // A new client: refused until the kept one is idle (its answer just written), then
        // served, the kept one closed for it.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let mut c = TcpStream::connect(addr).await.unwrap();
            c.write_all(two).await.unwrap();
            let (first, _) = support::read_answer(&mut c).await;
            if first.starts_with("HTTP/1.1 200") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{engine:?}: never served: {first}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(limits.stats().reused(), 1, "{engine:?}");
        closed_within(&mut kept, Duration::from_secs(5))
            .await
            .unwrap_or_else(|_| panic!("{engine:?}: the idle connection chosen is still open"));
        wait_until(Duration::from_secs(5), "all closed", || {
            let n = limits.open();
            async move { n == 0 }
        })
        .await;

        // The same connection state, then a graceful stop.
        let mut kept = TcpStream::connect(addr).await.unwrap();
        for _ in 0..2 {
            kept.write_all(two).await.unwrap();
            let (first, _) = support::read_answer(&mut kept).await;
            assert!(first.starts_with("HTTP/1.1 200"), "{engine:?}: {first}");
        }
        let stopped = tokio::spawn(lb.shutdown());
        closed_within(&mut kept, Duration::from_secs(5))
            .await
            .unwrap_or_else(|_| panic!("{engine:?}: the idle connection is open after a stop"));
        tokio::time::timeout(Duration::from_secs(5), stopped)
            .await
            .expect("stopped within 5 s")
            .unwrap();
    }
}

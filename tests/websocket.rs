//! WebSocket through the load balancer with a real client and real servers
//! (tokio-tungstenite): 1,000 messages echoed, tunnels counted in flight, clean close from
//! either side, and the tunnel idle timeout.
mod common;
mod tls_support;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

/// A WebSocket echo server answering `NAME:message`; on "close-me" it closes first.
async fn echo_server(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    let reply = match msg {
                        Message::Text(t) if t.as_str() == "close-me" => {
                            let _ = ws
                                .close(Some(CloseFrame {
                                    code: CloseCode::Normal,
                                    reason: "server says bye".into(),
                                }))
                                .await;
                            continue;
                        }
                        Message::Text(t) => Message::text(format!("{name}:{t}")),
                        Message::Binary(b) => Message::Binary(b),
                        _ => continue,
                    };
                    if ws.send(reply).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

fn config(servers: &[SocketAddr], extra: &str) -> String {
    let list: Vec<String> = servers
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{{ addr = \"{a}\", name = \"ws{}\" }}", i + 1))
        .collect();
    format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\n{extra}\nservers = [{}]\n",
        list.join(", ")
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_messages_through_two_tunnels_then_clean_close() {
    let servers = [echo_server("ws1").await, echo_server("ws2").await];
    let lb = start_lb(&config(&servers, "")).await;
    let addr = lb.local_addr("web").unwrap();
    let pool = lb.pool("p").unwrap();

    let (mut a, resp) = tokio_tungstenite::connect_async(format!("ws://{addr}/chat"))
        .await
        .expect("WebSocket handshake through the LB");
    assert_eq!(resp.status(), 101);
    let (mut b, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/chat"))
        .await
        .unwrap();
    // Each open tunnel counts as in flight on its server (what least_conn reads).
    wait_until(
        Duration::from_secs(5),
        "one tunnel in flight per server",
        || async { pool.servers().iter().all(|s| s.in_flight() == 1) },
    )
    .await;

    let mut names = Vec::new();
    for (ws, n) in [(&mut a, 0), (&mut b, 1)] {
        for i in 0..500 {
            let text = format!("message {i} on {n}");
            ws.send(Message::text(text.clone())).await.unwrap();
            let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
                .await
                .expect("reply in time")
                .unwrap()
                .unwrap();
            let reply = reply.into_text().unwrap();
            let (server, echoed) = reply.split_once(':').unwrap();
            assert_eq!(echoed, text);
            if i == 0 {
                names.push(server.to_string());
            } else {
                assert_eq!(server, names[n], "a tunnel stays on its server");
            }
        }
    }
    names.sort();
    assert_eq!(
        names,
        ["ws1", "ws2"],
        "the two tunnels went to different servers"
    );
    // Binary frames too, larger than one read.
    let blob: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    a.send(Message::binary(blob.clone())).await.unwrap();
    let back = a.next().await.unwrap().unwrap().into_data();
    assert_eq!(back.as_ref(), blob.as_slice());

    // The client closes: the close handshake completes through the tunnel.
    a.close(None).await.unwrap();
    let rest = tokio::time::timeout(Duration::from_secs(5), a.next())
        .await
        .expect("close answered in time");
    assert!(
        matches!(rest, None | Some(Ok(Message::Close(_)))),
        "{rest:?}"
    );
    // The server has closed its TCP side; the client, done too, lets its socket go.
    drop(a);
    wait_until(
        Duration::from_secs(5),
        "the closed tunnel is no longer in flight",
        || async { pool.servers().iter().map(|s| s.in_flight()).sum::<u32>() == 1 },
    )
    .await;

    // The server closes: the client sees its close frame with the reason.
    b.send(Message::text("close-me")).await.unwrap();
    let msg = tokio::time::timeout(Duration::from_secs(5), b.next())
        .await
        .expect("server close in time")
        .unwrap()
        .unwrap();
    match msg {
        Message::Close(Some(frame)) => assert_eq!(frame.reason.as_str(), "server says bye"),
        other => panic!("expected a close frame, got {other:?}"),
    }
    // tungstenite answers the close; then the stream ends.
    let end = tokio::time::timeout(Duration::from_secs(5), b.next())
        .await
        .expect("end in time");
    assert!(matches!(end, None | Some(Ok(Message::Close(_)))), "{end:?}");
    // This client keeps its socket: the half-closed tunnel still ends (5 s limit).
    wait_until(Duration::from_secs(10), "no tunnel in flight", || async {
        pool.servers().iter().all(|s| s.in_flight() == 0)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_tunnel_is_closed_after_tunnel_idle_timeout() {
    let servers = [echo_server("ws1").await];
    let lb = start_lb(&config(&servers, "tunnel_idle_timeout = \"300ms\"")).await;
    let addr = lb.local_addr("web").unwrap();
    let pool = lb.pool("p").unwrap();
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/"))
        .await
        .unwrap();
    // Traffic keeps it open past the timeout...
    for i in 0..8 {
        ws.send(Message::text(format!("{i}"))).await.unwrap();
        let r = ws.next().await.unwrap().unwrap();
        assert_eq!(r.into_text().unwrap().as_str(), format!("ws1:{i}"));
        tokio::time::sleep(Duration::from_millis(100)).await; // traffic pacing, not sync
    }
    assert_eq!(pool.servers()[0].in_flight(), 1);
    // ...silence closes it.
    let end = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .expect("the idle tunnel is closed by the LB");
    assert!(
        !matches!(end, Some(Ok(Message::Text(_)))),
        "no data should arrive: {end:?}"
    );
    wait_until(
        Duration::from_secs(5),
        "the tunnel is no longer in flight",
        || async { pool.servers()[0].in_flight() == 0 },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_over_an_https_listener() {
    let servers = [echo_server("ws1").await];
    let pki = tls_support::Pki::new();
    let pair = pki.leaf("www", &["www.example.com"]);
    let lb = start_lb(&format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\nprotocol = \"https\"\npool = \"p\"\n{}\n[pool.p]\nservers = [ {{ addr = \"{}\" }} ]\n",
        tls_support::tls_entries(&[pair]),
        servers[0]
    ))
    .await;
    let addr = lb.local_addr("web").unwrap();
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    // WebSocket needs HTTP/1.1: offer only that in ALPN, as browsers do for wss.
    let connector =
        tokio_rustls::TlsConnector::from(tls_support::client_config(&pki.ca_pem, &["http/1.1"]));
    let tls = connector
        .connect("www.example.com".try_into().unwrap(), tcp)
        .await
        .unwrap();
    let (mut ws, resp) = tokio_tungstenite::client_async("wss://www.example.com/chat", tls)
        .await
        .expect("wss handshake through the LB");
    assert_eq!(resp.status(), 101);
    for i in 0..100 {
        ws.send(Message::text(format!("secure {i}"))).await.unwrap();
        let r = ws.next().await.unwrap().unwrap();
        assert_eq!(r.into_text().unwrap().as_str(), format!("ws1:secure {i}"));
    }
    ws.close(None).await.unwrap();
}

/// Send `text` and expect `NAME:text` back within 5 s.
async fn exchange<S>(ws: &mut tokio_tungstenite::WebSocketStream<S>, text: &str) -> String
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    ws.send(Message::text(text.to_string())).await.unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("reply in time")
        .expect("tunnel open")
        .expect("a message");
    reply.into_text().unwrap().to_string()
}

/// SIGTERM with a WebSocket open: the listener stops accepting at once, the open tunnel keeps
/// working, and the process exits as soon as the client closes it (well within the grace).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_websocket_survives_sigterm_until_it_closes() {
    let server = echo_server("ws1").await;
    let cfg = format!(
        "grace_period = \"20s\"\nshutdown_delay = \"0s\"\n{}",
        config(&[server], "")
    );
    let mut lb = LbProcess::start(&cfg);
    let addr = lb.addr;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/chat"))
        .await
        .unwrap();
    assert_eq!(exchange(&mut ws, "before").await, "ws1:before");

    signal(&lb.child, "TERM");
    wait_until(Duration::from_secs(5), "the listener closed", || async {
        tokio::net::TcpStream::connect(addr).await.is_err()
    })
    .await;
    for i in 0..5 {
        let text = format!("during shutdown {i}");
        assert_eq!(exchange(&mut ws, &text).await, format!("ws1:{text}"));
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        lb.child.try_wait().unwrap().is_none(),
        "exited with a tunnel open"
    );

    let started = std::time::Instant::now();
    ws.close(None).await.unwrap();
    let status = exited(&mut lb.child, Duration::from_secs(10))
        .await
        .expect("exits once the tunnel is closed");
    assert!(status.success(), "{status}");
    assert!(
        started.elapsed() < Duration::from_secs(6),
        "exit took {:?} after the close (grace is 20 s)",
        started.elapsed()
    );
}

/// A tunnel still open when the grace period ends is closed, and the process exits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_open_past_the_grace_period_is_closed() {
    let server = echo_server("ws1").await;
    let cfg = format!(
        "grace_period = \"1s\"\nshutdown_delay = \"0s\"\n{}",
        config(&[server], "")
    );
    let mut lb = LbProcess::start(&cfg);
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/chat", lb.addr))
        .await
        .unwrap();
    assert_eq!(exchange(&mut ws, "hello").await, "ws1:hello");
    let started = std::time::Instant::now();
    signal(&lb.child, "TERM");
    // Still served inside the grace period.
    assert_eq!(exchange(&mut ws, "inside").await, "ws1:inside");
    let status = exited(&mut lb.child, Duration::from_secs(10))
        .await
        .expect("exits when the grace period ends");
    let took = started.elapsed();
    assert!(status.success(), "{status}");
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_secs(6),
        "exit after {took:?} with a 1 s grace"
    );
    // The client sees its tunnel end.
    let end = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("the tunnel ends");
    assert!(!matches!(end, Some(Ok(Message::Text(_)))), "{end:?}");
}

/// The switchyard binary on `toml`, its log lines kept as they come; killed on drop.
struct LoggedLb {
    child: std::process::Child,
    addr: SocketAddr,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl LoggedLb {
    fn start(toml: &str) -> LoggedLb {
        use std::io::BufRead;
        let path = temp_dir("ws-h2").join("switchyard.toml");
        std::fs::write(&path, toml).unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["--log-level", "warn,switchyard::runtime=info", "run", "-c"])
            .arg(&path)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start switchyard");
        let mut lines = std::io::BufReader::new(child.stderr.take().unwrap()).lines();
        let addr = loop {
            let line = lines.next().expect("switchyard exited").unwrap();
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let keep = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                keep.lock().unwrap().push(line);
            }
        });
        LoggedLb { child, addr, log }
    }

    fn lines_with(&self, needle: &str) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|l| l.contains(needle)).cloned().collect()
    }
}

impl Drop for LoggedLb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_to_an_h2c_pool_is_refused_with_a_502_naming_the_cause() {
    // The demo backend speaks h2c (prior knowledge) as well as HTTP/1.1.
    let server = switchyard::demo::Backend::start("h2", Duration::ZERO)
        .await
        .unwrap();
    let lb = LoggedLb::start(&format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"grpc\"\n[pool.grpc]\nupstream_protocol = \"h2c\"\nservers = [ {{ addr = \"{}\", name = \"h2\" }} ]\n",
        server.addr
    ));
    // Plain requests reach the server over h2c.
    let a = get(lb.addr, "/").await;
    assert_eq!((a.status.as_u16(), a.server().as_str()), (200, "h2"));
    let before = server.requests();

    let err = tokio_tungstenite::connect_async(format!("ws://{}/chat", lb.addr))
        .await
        .expect_err("no WebSocket through an h2c pool");
    let tokio_tungstenite::tungstenite::Error::Http(resp) = err else {
        panic!("{err:?}");
    };
    assert_eq!(resp.status(), 502);
    let body = String::from_utf8_lossy(resp.body().as_deref().unwrap_or_default()).into_owned();
    assert!(
        body.starts_with("502 Bad Gateway\nWebSocket upgrade refused: pool \"grpc\" speaks h2c to its servers, and WebSocket needs a pool with upstream_protocol = \"h1\""),
        "{body}"
    );
    assert_eq!(server.requests(), before, "the server saw no request");
    // One log line for it, naming the pool and the cause.
    wait_until(Duration::from_secs(5), "the log line", || async {
        !lb.lines_with("upgrade_to_h2_pool").is_empty()
    })
    .await;
    let lines = lb.lines_with("upgrade_to_h2_pool");
    assert_eq!(lines.len(), 1, "{lines:#?}");
    assert!(
        lines[0].contains("pool=\"grpc\"") && lines[0].contains("WebSocket upgrade refused"),
        "{}",
        lines[0]
    );

    // `Upgrade: h2c` is an offer a server may ignore: it goes on as a plain request.
    let a = get_with(
        lb.addr,
        "/",
        &[("connection", "upgrade"), ("upgrade", "h2c")],
    )
    .await;
    assert_eq!((a.status.as_u16(), a.server().as_str()), (200, "h2"));
    assert_eq!(server.requests(), before + 1);
}

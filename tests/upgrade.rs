//! Restarts and upgrades of the real binary under load, with real clients: the newcomer's
//! restart (SIGTERM, and a new process started at once) and a binary upgrade (`run
//! --upgrade`, the sockets handed over) fail no request; an open WebSocket on the old
//! process finishes; systemd hears READY, RELOADING and STOPPING; API writes are logged.
mod common;
mod live_common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;
use futures_util::{SinkExt, StreamExt};
use live_common::*;
use tokio_tungstenite::tungstenite::Message;

/// A WebSocket echo server answering `ws:message`.
async fn echo_server() -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
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
                    if let Message::Text(t) = msg
                        && ws.send(Message::text(format!("ws:{t}"))).await.is_err()
                    {
                        return;
                    }
                }
            });
        }
    });
    addr
}

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

/// The newcomer's case from the issue: one 3 s request in flight, SIGTERM to the running
/// process, a new one started at once on the same config. The old one keeps accepting for
/// `shutdown_delay` (readiness 503) while the new one binds the same ports (SO_REUSEPORT,
/// the admin port too), then closes and finishes its slow request. Before, 70 of 300
/// requests failed: the traffic port closed at once and the new process could not bind
/// the admin port until the drain was over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_newcomers_restart_with_a_slow_request_in_flight_fails_nothing() {
    let b = backends(2).await;
    let (port, admin_port) = (free_port(), free_port());
    let text = format!(
        "shutdown_delay = \"1s\"\ngrace_period = \"10s\"\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n{}",
        simple_config("round_robin", &b, &[]).replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
    );
    let file = ConfigFile::new("newcomer", &text);
    let path = file.path.to_str().unwrap().to_string();
    let mut old = Proc::start(&["run", "-c", &path], &[]);
    let addr = old.listener("web").await;
    assert_eq!(addr.port(), port);

    // 300 requests: two keep-alive clients and one that opens a connection per request.
    let mut plan = Plan::new(addr, vec![Kind::KeepAlive, Kind::Fresh, Kind::KeepAlive]);
    plan.max_per_client = 100;
    plan.pause = Duration::from_millis(15);
    let load = Load::start(plan);
    let slow = tokio::spawn(async move { get(addr, "/sleep/3000").await });
    load.wait_answers(60, Duration::from_secs(20)).await;

    let stopped_at = Instant::now();
    old.signal("TERM");
    let new = Proc::start(&["run", "-c", &path], &[]);
    assert_eq!(
        new.listener("web").await.port(),
        port,
        "the new process binds the same port at once"
    );
    new.line("admin endpoints on", Duration::from_secs(10))
        .await;
    let started_in = stopped_at.elapsed();
    assert!(
        old.running(),
        "the old process still drains while the new one starts"
    );

    let report = load.run_out(Duration::from_secs(30)).await;
    let slow = slow.await.unwrap();
    let status = old
        .exited(Duration::from_secs(15))
        .await
        .expect("the old process exits");
    assert!(status.success(), "{status}");
    assert_eq!(slow.status, 200, "the slow request finished");
    assert_eq!(report.samples.len(), 300);
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.resets, 0);
    // The new process serves alone now, admin port included.
    assert_eq!(get(addr, "/").await.status, 200);
    let pid = api(
        SocketAddr::from(([127, 0, 0, 1], admin_port)),
        "GET",
        "/status",
        None,
        None,
    )
    .await
    .json["pid"]
        .clone();
    assert_eq!(pid, new.pid());
    println!(
        "restart: 300 requests + one of 3 s, {} failed, {} resets, {} sent again on a new connection (keep-alive closed by the old process); new process up {started_in:?} after SIGTERM",
        report.failures.len(),
        report.resets,
        report.retried
    );
}

/// A binary upgrade under load: the new process takes the listening sockets (admin
/// included) over the upgrade socket, the old one stops accepting and drains. No connection
/// is refused or reset; a WebSocket open on the old process keeps working until its client
/// closes it, and only then does the old process exit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_binary_upgrade_under_load_drops_nothing_and_an_open_websocket_finishes() {
    let b = backends(2).await;
    let ws_server = echo_server().await;
    let text = format!(
        r#"grace_period = "30s"
[admin]
listen = "127.0.0.1:0"

[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "p"
  [[listener.route]]
  path_prefix = "/ws"
  pool = "ws"

[pool.p]
servers = {}

[pool.ws]
servers = [{{ addr = "{ws_server}" }}]
"#,
        servers_toml(&b, &[])
    );
    let file = ConfigFile::new("upgrade", &text);
    let path = file.path.to_str().unwrap().to_string();
    let sock = file.dir.join("upgrade.sock");
    let sock = sock.to_str().unwrap().to_string();
    let mut old = Proc::start(&["run", "-c", &path, "--upgrade-socket", &sock], &[]);
    let (addr, admin) = (old.listener("web").await, old.admin().await);
    wait_for_file(std::path::Path::new(&sock), Duration::from_secs(10)).await;

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}/ws"))
        .await
        .unwrap();
    assert_eq!(exchange(&mut ws, "before").await, "ws:before");
    let mut plan = Plan::new(
        addr,
        vec![Kind::KeepAlive, Kind::Fresh, Kind::KeepAlive, Kind::Fresh],
    );
    plan.max_per_client = 1_000;
    plan.pause = Duration::from_millis(5);
    let load = Load::start(plan);
    load.wait_answers(200, Duration::from_secs(20)).await;

    let new = Proc::start(
        &["run", "-c", &path, "--upgrade-socket", &sock, "--upgrade"],
        &[],
    );
    let took = new
        .line(
            "took over the listening sockets of process",
            Duration::from_secs(15),
        )
        .await;
    assert!(took.contains(&old.pid().to_string()), "{took}");
    old.line(
        "a new process serves on the sockets handed over",
        Duration::from_secs(5),
    )
    .await;
    // Same sockets: the new process bound nothing of its own.
    assert_eq!(new.listener("web").await, addr);
    assert_eq!(new.admin().await, admin);
    load.wait_answers(400, Duration::from_secs(30)).await;

    // The WebSocket still lives on the old process, which waits for it.
    for i in 0..5 {
        let t = format!("after the upgrade {i}");
        assert_eq!(exchange(&mut ws, &t).await, format!("ws:{t}"));
    }
    assert!(old.running(), "the old process waits for its open tunnel");
    let status = api(admin, "GET", "/status", None, None).await.json;
    assert_eq!(
        status["pid"],
        new.pid(),
        "the admin port is the new process's"
    );
    let served_by_new: u64 = status["pools"][0]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["requests"].as_u64().unwrap())
        .sum();
    assert!(
        served_by_new >= 100,
        "the load moved to the new process: {served_by_new}"
    );
    let report = load.finish().await;
    ws.close(None).await.unwrap();
    let exit = old
        .exited(Duration::from_secs(10))
        .await
        .expect("the old process exits once its tunnel closed");
    assert!(exit.success(), "{exit}");

    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.resets, 0, "connection resets");
    assert!(report.samples.len() >= 600, "{}", report.samples.len());
    // Served by the new process after the old one exited, on the same port.
    assert_eq!(get(addr, "/").await.status, 200);
    // And the new process can be upgraded in turn.
    wait_for_file(std::path::Path::new(&sock), Duration::from_secs(5)).await;
    println!(
        "upgrade: {} requests from 2 keep-alive + 2 new-connection clients, {} failed, {} resets, {} sent again on a new connection (keep-alive closed by the old process), WebSocket kept",
        report.samples.len(),
        report.failures.len(),
        report.resets,
        report.retried
    );
    drop(new);
}

/// `Type=notify`: READY=1 once serving; RELOADING=1 with MONOTONIC_USEC, then READY=1
/// around a SIGHUP reload (which changes the running config); STOPPING=1 on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn systemd_hears_ready_reloading_and_stopping() {
    let b = backends(2).await;
    let text = format!(
        "shutdown_delay = \"0s\"\n{}",
        simple_config("round_robin", &b[..1], &[])
    );
    let file = ConfigFile::new("notify", &text);
    let notify = file.dir.join("notify.sock");
    let rx = tokio::net::UnixDatagram::bind(&notify).unwrap();
    let next = async || {
        let mut buf = [0u8; 256];
        let n = tokio::time::timeout(Duration::from_secs(10), rx.recv(&mut buf))
            .await
            .expect("a notification")
            .unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let path = file.path.to_str().unwrap().to_string();
    let mut lb = Proc::start(
        &["run", "-c", &path],
        &[("NOTIFY_SOCKET", notify.to_str().unwrap())],
    );
    assert_eq!(next().await, "READY=1\n");
    let addr = lb.listener("web").await;
    assert_eq!(get(addr, "/").await.server(), "s1");

    file.write(&simple_config("round_robin", &b[1..], &[]));
    lb.signal("HUP");
    let reloading = next().await;
    let usec: u64 = reloading
        .strip_prefix("RELOADING=1\nMONOTONIC_USEC=")
        .and_then(|r| r.strip_suffix('\n'))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{reloading:?}"));
    assert!(usec > 0);
    assert_eq!(next().await, "READY=1\n");
    assert_eq!(get(addr, "/").await.server(), "s2", "the reload took");
    lb.signal("TERM");
    assert_eq!(next().await, "STOPPING=1\n");
    assert!(
        lb.exited(Duration::from_secs(10))
            .await
            .expect("exits")
            .success()
    );
}

/// Every API write leaves an audit line: who (address, token or not, client), what
/// (method and path), and before → after. Made with curl, as an operator would.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (curl): scripts/test runs it"]
async fn api_writes_are_audited_with_who_what_and_before_after() {
    let b = backends(2).await;
    let text = format!(
        "shutdown_delay = \"0s\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{}",
        simple_config("round_robin", &b, &[])
    );
    let file = ConfigFile::new("audit", &text);
    let path = file.path.to_str().unwrap().to_string();
    let lb = Proc::start(&["run", "-c", &path], &[]);
    let admin = lb.admin().await;
    let out = std::process::Command::new("curl")
        .args(["-s", "-X", "PUT", "-d", r#"{"weight": 3}"#])
        .arg(format!("http://{admin}/api/pools/p/servers/s1"))
        .output()
        .expect("curl (scripts/test installs it)");
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["server"]["weight"], 3, "{answer:#}");
    let line = lb.line("audit: ", Duration::from_secs(5)).await;
    for part in [
        "who=127.0.0.1:",
        "no token, curl/",
        "what=PUT /api/pools/p/servers/s1",
        &format!("audit: pool \"p\": server {}: weight 1 → 3", b[0].addr),
    ] {
        assert!(line.contains(part), "{part:?} missing from {line:?}");
    }
    let out = std::process::Command::new("curl")
        .args(["-s", "-X", "PUT", "-d", r#"{"weight": 0}"#])
        .arg(format!("http://{admin}/api/pools/p/servers/s1"))
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stdout).contains("weight 0 is not a weight here"));
    // A write refused for its values is audited too, as one refused by the runtime is.
    let line = lb.line("audit: refused", Duration::from_secs(5)).await;
    for part in [
        "what=PUT /api/pools/p/servers/s1",
        "audit: refused: weight 0 is not a weight here",
    ] {
        assert!(line.contains(part), "{part:?} missing from {line:?}");
    }
}

/// Kills a process this test did not start itself (a process's own upgrade) when dropped.
struct KillOnDrop(u32);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", &self.0.to_string()])
            .status();
    }
}

/// SIGUSR2, as nginx users know it: the running process starts its program file anew with
/// `--upgrade` (under systemd, inside the unit), which takes the sockets over; the old one
/// drains and exits. Nothing fails meanwhile.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr2_upgrades_in_place() {
    let b = backends(2).await;
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:0\"\n{}",
        simple_config("round_robin", &b, &[])
    );
    let file = ConfigFile::new("usr2", &text);
    let path = file.path.to_str().unwrap().to_string();
    let sock = file.dir.join("upgrade.sock");
    let sock = sock.to_str().unwrap().to_string();
    let mut old = Proc::start(&["run", "-c", &path, "--upgrade-socket", &sock], &[]);
    let (addr, admin) = (old.listener("web").await, old.admin().await);
    wait_for_file(std::path::Path::new(&sock), Duration::from_secs(10)).await;
    let mut plan = Plan::new(addr, vec![Kind::KeepAlive, Kind::Fresh]);
    plan.max_per_client = 1_000;
    plan.pause = Duration::from_millis(5);
    let load = Load::start(plan);
    load.wait_answers(100, Duration::from_secs(20)).await;

    old.signal("USR2");
    let started = old.line("SIGUSR2: started", Duration::from_secs(10)).await;
    let new_pid: u32 = started
        .split("(pid ")
        .nth(1)
        .and_then(|r| r.split(')').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{started}"));
    let _new = KillOnDrop(new_pid);
    old.line(
        "a new process serves on the sockets handed over",
        Duration::from_secs(15),
    )
    .await;
    let exit = old
        .exited(Duration::from_secs(15))
        .await
        .expect("the old process drains and exits");
    assert!(exit.success(), "{exit}");
    load.wait_answers(100, Duration::from_secs(20)).await;
    let report = load.finish().await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.resets, 0);
    let status = api(admin, "GET", "/status", None, None).await.json;
    assert_eq!(
        status["pid"], new_pid,
        "the new process answers on the same admin port"
    );
    println!(
        "SIGUSR2 upgrade: {} requests, {} failed, {} resets, {} sent again on a new connection",
        report.samples.len(),
        report.failures.len(),
        report.resets,
        report.retried
    );
}

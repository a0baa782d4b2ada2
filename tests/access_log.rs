//! The access log (`[log]`), read back from its file and parsed field by field after real
//! traffic: L4 listeners write one line per TCP connection or UDP session, nginx's `stream`
//! line (client, time, protocol, status, bytes each way, duration) then `key=value` fields
//! (server, connect time, pool, listener, how it ended), or the same as JSON; SIGUSR1
//! reopens the file after logrotate moved it.
mod common;
mod l4_common;
mod live_common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use common::*;
use l4_common::*;
use live_common::{ConfigFile, Proc};
use switchyard::runtime::Runtime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// One L4 line: `IP [TIME] PROTO STATUS SENT RECEIVED SECONDS key=value…`.
#[derive(Debug)]
struct StreamLine {
    client: String,
    time: String,
    protocol: String,
    status: u16,
    sent: u64,
    received: u64,
    seconds: f64,
    fields: BTreeMap<String, String>,
}

fn parse_stream(line: &str) -> StreamLine {
    let (client, rest) = line.split_once(" [").unwrap_or_else(|| panic!("{line}"));
    let (time, rest) = rest.split_once("] ").unwrap_or_else(|| panic!("{line}"));
    let mut words = rest.split(' ');
    let mut next = || words.next().unwrap_or_else(|| panic!("short line: {line}"));
    let protocol = next().to_string();
    let status = next().parse().unwrap();
    let sent = next().parse().unwrap();
    let received = next().parse().unwrap();
    let seconds = next().parse().unwrap();
    let fields = words
        .map(|w| {
            let (k, v) = w
                .split_once('=')
                .unwrap_or_else(|| panic!("{w:?} in {line}"));
            (k.to_string(), v.to_string())
        })
        .collect();
    assert!(
        time.len() == 26 && time.ends_with(" +0000"),
        "nginx's time_local: {time}"
    );
    StreamLine {
        client: client.to_string(),
        time: time.to_string(),
        protocol,
        status,
        sent,
        received,
        seconds,
        fields,
    }
}

struct L4 {
    lb: Runtime,
    _echo: TcpBackend,
    _udp: UdpBackend,
    echo: SocketAddr,
    udp: SocketAddr,
}

async fn l4(log: &Path, format: &str) -> L4 {
    let echo = TcpBackend::start("e", Mode::Echo).await;
    let udp = UdpBackend::start("u1").await;
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let lb = start_lb(&format!(
        r#"
[log]
access = "{}"
format = "{format}"

[[listener]]
name = "tcp"
listen = "127.0.0.1:0"
protocol = "tcp"
pool = "t"
max_connections = 1

[[listener]]
name = "tcpdead"
listen = "127.0.0.1:0"
protocol = "tcp"
pool = "dead"

[[listener]]
name = "udp"
listen = "127.0.0.1:0"
protocol = "udp"
pool = "u"
session_timeout = "300ms"

[pool.t]
servers = [{{ addr = "{}", name = "e" }}]
[pool.dead]
servers = [{{ addr = "{dead}" }}]
[pool.u]
servers = [{{ addr = "{}", name = "u1" }}]
"#,
        log.display(),
        echo.addr,
        udp.addr
    ))
    .await;
    L4 {
        echo: echo.addr,
        udp: udp.addr,
        lb,
        _echo: echo,
        _udp: udp,
    }
}

/// A TCP connection echoing 5 bytes while a second one is refused over max_connections, a
/// connection to a pool that refuses, a UDP session that expires.
async fn drive(s: &L4) {
    let lb = &s.lb;
    let tcp = lb.local_addr("tcp").unwrap();
    let mut first = TcpStream::connect(tcp).await.unwrap();
    first.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 5];
    first.read_exact(&mut buf).await.unwrap();
    let mut second = TcpStream::connect(tcp).await.unwrap();
    assert!(closed_within(&mut second, Duration::from_secs(5)).await);
    drop(first);
    let mut c = TcpStream::connect(lb.local_addr("tcpdead").unwrap())
        .await
        .unwrap();
    assert!(closed_within(&mut c, Duration::from_secs(5)).await);
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(b"ping", lb.local_addr("udp").unwrap())
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("a UDP answer within 5 s")
        .unwrap();
    let stats = lb.udp_stats("udp").unwrap();
    let tcp_stats = lb.tcp_stats("tcp").unwrap();
    wait_until(
        Duration::from_secs(10),
        "the UDP session to expire and TCP to close",
        || async { stats.sessions_expired() == 1 && tcp_stats.active() == 0 },
    )
    .await;
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(String::from)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l4_lines_say_who_where_how_much_and_how_it_ended() {
    let dir = temp_dir("access-l4");
    let path = dir.join("access.log");
    let s = l4(&path, "combined").await;
    drive(&s).await;
    let log = s.lb.access_log();
    s.lb.shutdown().await;
    let text = lines(&path);
    assert_eq!(text.len(), 4, "{text:#?}");
    let by_end: BTreeMap<String, StreamLine> = text
        .iter()
        .map(|l| parse_stream(l))
        .map(|l| (l.fields["end"].clone(), l))
        .collect();
    let done = &by_end["done"];
    assert_eq!(
        (done.client.as_str(), done.protocol.as_str(), done.status),
        ("127.0.0.1", "TCP", 200)
    );
    assert_eq!((done.sent, done.received), (5, 5));
    assert_eq!(done.fields["upstream"], s.echo.to_string());
    assert_eq!(
        (
            done.fields["pool"].as_str(),
            done.fields["listener"].as_str()
        ),
        ("t", "tcp")
    );
    assert!(done.fields["client_port"].parse::<u16>().unwrap() > 0);
    let connect: f64 = done.fields["upstream_connect_time"].parse().unwrap();
    assert!(connect < 5.0 && done.seconds >= connect && done.seconds < 30.0);
    assert!(done.time.contains('/'), "{}", done.time);

    let over = &by_end["over_limit"];
    assert_eq!((over.status, over.sent, over.received), (503, 0, 0));
    assert_eq!(over.fields["upstream"], "-");
    let dead = &by_end["no_server"];
    assert_eq!(
        (
            dead.status,
            dead.fields["listener"].as_str(),
            dead.fields["upstream"].as_str()
        ),
        (502, "tcpdead", "-")
    );
    let udp = &by_end["expired"];
    assert_eq!((udp.protocol.as_str(), udp.status), ("UDP", 200));
    assert_eq!((udp.sent, udp.received), (7, 4), "u1:ping back for ping");
    assert_eq!(udp.fields["upstream"], s.udp.to_string());
    assert!(
        udp.seconds >= 0.3,
        "lived its session_timeout: {}",
        udp.seconds
    );

    let c = log.counters();
    use std::sync::atomic::Ordering::Relaxed;
    assert_eq!(c.lines.load(Relaxed), 4);
    assert_eq!(
        c.dropped_full.load(Relaxed) + c.dropped_write.load(Relaxed),
        0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn l4_lines_in_json_carry_the_same_fields() {
    let dir = temp_dir("access-l4-json");
    let path = dir.join("access.log");
    let s = l4(&path, "json").await;
    drive(&s).await;
    s.lb.shutdown().await;
    let text = lines(&path);
    assert_eq!(text.len(), 4, "{text:#?}");
    let docs: Vec<serde_json::Value> = text
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    let find = |end: &str| docs.iter().find(|d| d["end"] == end).unwrap();
    let done = find("done");
    assert_eq!(done["remote_addr"], "127.0.0.1");
    assert_eq!(
        (done["protocol"].as_str(), done["status"].as_u64()),
        (Some("TCP"), Some(200))
    );
    assert_eq!(
        (done["bytes_sent"].as_u64(), done["bytes_received"].as_u64()),
        (Some(5), Some(5))
    );
    assert_eq!(done["upstream"], s.echo.to_string());
    assert!(done["session_time"].as_f64().unwrap() >= 0.0);
    assert!(done["time"].as_str().unwrap().ends_with('Z'));
    assert_eq!(find("no_server")["status"], 502);
    assert!(find("no_server")["upstream"].is_null());
    assert_eq!(find("over_limit")["status"], 503);
    let udp = find("expired");
    assert_eq!(
        (udp["bytes_sent"].as_u64(), udp["bytes_received"].as_u64()),
        (Some(7), Some(4))
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_reopens_the_file_after_logrotate_moved_it() {
    let echo = TcpBackend::start("e", Mode::Echo).await;
    let file = ConfigFile::new(
        "access-reopen",
        &format!(
            r#"
[log]
access = "access.log"

[[listener]]
name = "tcp"
listen = "127.0.0.1:0"
protocol = "tcp"
pool = "t"

[admin]
listen = "127.0.0.1:0"

[pool.t]
servers = [{{ addr = "{}" }}]
"#,
            echo.addr
        ),
    );
    let p = Proc::start(&["run", "-c", file.path.to_str().unwrap()], &[]);
    let admin = p.admin().await;
    let tcp: SocketAddr = serde_json::from_str::<serde_json::Value>(
        &get(admin, "/status").await.text(),
    )
    .unwrap()["listeners"][0]["addr"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let log = file.dir.join("access.log");
    let one = |tag: &'static [u8]| async move {
        let mut c = TcpStream::connect(tcp).await.unwrap();
        c.write_all(tag).await.unwrap();
        let mut buf = vec![0u8; tag.len()];
        c.read_exact(&mut buf).await.unwrap();
    };
    one(b"first").await;
    wait_until(
        Duration::from_secs(10),
        "the first line in access.log",
        || async { lines(&log).len() == 1 },
    )
    .await;
    // logrotate's move, then its postrotate: kill -USR1.
    let rotated = file.dir.join("access.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    signal(&p.child, "USR1");
    p.line(
        "SIGUSR1: the access log opened again",
        Duration::from_secs(10),
    )
    .await;
    one(b"second!").await;
    wait_until(
        Duration::from_secs(10),
        "a new access.log with the second line",
        || async { lines(&log).len() == 1 },
    )
    .await;
    let old = parse_stream(&lines(&rotated)[0]);
    let new = parse_stream(&lines(&log)[0]);
    assert_eq!(
        (old.sent, new.sent),
        (5, 7),
        "each file has its own connection"
    );
    assert_eq!(lines(&rotated).len(), 1);
    let m = get(admin, "/metrics").await.text();
    assert!(m.contains("switchyard_access_log_lines_total 2\n"), "{m}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_log_nobody_reads_drops_lines_and_counts_them_never_slowing_requests() {
    use std::io::{BufRead, Read};
    let b = backends(1).await;
    let file = ConfigFile::new(
        "access-full",
        &format!(
            r#"
[log]
access = "stdout"
buffer = 4096

[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "p"
# All 1,500 requests on one connection (nginx's default of 1,000 would close it).
keepalive_requests = 2000

[admin]
listen = "127.0.0.1:0"

[pool.p]
servers = [{{ addr = "{}" }}]
"#,
            b[0].addr
        ),
    );
    // Its standard output is a pipe this test does not read until the end: once the pipe's
    // 64 KiB are full, the writer blocks and the lines of the requests after are dropped.
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["--log-level", "info", "run", "-c"])
        .arg(&file.path)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in stderr.lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let (mut web, mut admin) = (None, None);
    while web.is_none() || admin.is_none() {
        let line = rx
            .recv_timeout(Duration::from_secs(20))
            .expect("switchyard starts");
        let addr = |marker: &str| {
            line.split(marker).nth(1).and_then(|r| {
                r.split_whitespace()
                    .next()
                    .map(|a| a.trim_end_matches(':').parse().unwrap())
            })
        };
        web = web.or(addr("listening on "));
        admin = admin.or(addr("admin endpoints on http://"));
    }
    let (web, admin): (SocketAddr, SocketAddr) = (web.unwrap(), admin.unwrap());
    let started = std::time::Instant::now();
    let n = 1500u64;
    let mut client = Client::connect(web).await;
    for _ in 0..n {
        assert_eq!(client.get("/").await.status, 200);
    }
    let took = started.elapsed();
    // A request is accounted for just after its answer went out.
    wait_until(
        Duration::from_secs(10),
        "every request accounted for",
        || async {
            let m = metrics_of(admin).await;
            m["lines"] + m["dropped"] == n
        },
    )
    .await;
    let m = metrics_of(admin).await;
    let (lines, dropped) = (m["lines"], m["dropped"]);
    assert_eq!(
        lines + dropped,
        n,
        "each line taken or dropped, once: {m:?}"
    );
    assert!(
        dropped > 500,
        "the pipe and the buffer are full long before {n}: {m:?}"
    );
    assert!(took < Duration::from_secs(60), "{took:?}");
    // Read the pipe now: every line taken comes out whole.
    let mut out = child.stdout.take().unwrap();
    let reader = std::thread::spawn(move || {
        let mut text = String::new();
        let mut buf = [0u8; 65536];
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while (text.matches('\n').count() as u64) < lines && std::time::Instant::now() < deadline {
            match out.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(k) => text.push_str(&String::from_utf8_lossy(&buf[..k])),
            }
        }
        text
    });
    let text = reader.join().unwrap();
    assert_eq!(text.lines().count() as u64, lines);
    assert!(
        text.lines().all(|l| l.contains("\"GET / HTTP/1.1\" 200")),
        "{text}"
    );
    let _ = child.kill();
    let _ = child.wait();
}

/// The access log's counters from `/metrics`.
async fn metrics_of(admin: SocketAddr) -> BTreeMap<&'static str, u64> {
    let text = get(admin, "/metrics").await.text();
    let value = |prefix: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(prefix))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    BTreeMap::from([
        ("lines", value("switchyard_access_log_lines_total ")),
        (
            "dropped",
            value("switchyard_access_log_dropped_total{reason=\"buffer_full\"} "),
        ),
    ])
}

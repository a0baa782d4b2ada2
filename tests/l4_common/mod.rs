//! Helpers for the L4 tests: in-process TCP/UDP backends that can be killed, real
//! `redis-server` and `dnsmasq` processes on free ports, and a reader of our own RSS.
//! A missing system tool panics with the package to install: these tests never skip.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use xxhash_rust::xxh3::Xxh3;

/// What an in-process TCP backend does with a connection.
#[derive(Clone)]
pub enum Mode {
    /// Echo every read back.
    Echo,
    /// Read to end of stream, then answer `NAME COUNT XXH3HEX\n` and close.
    Digest,
    /// Read a decimal count and `\n`, wait for end of stream, then send that many pattern
    /// bytes (see [`Pattern`]) and close.
    Source,
    /// Send `hello from NAME\n`, shut down writing, then read to end of stream and report the
    /// byte count on the channel.
    GreetThenCount(mpsc::UnboundedSender<u64>),
    /// Read to end of stream and report everything read on the channel.
    Capture(mpsc::UnboundedSender<Vec<u8>>),
}

/// A TCP backend on 127.0.0.1 that can be killed (listener and connections closed).
pub struct TcpBackend {
    pub name: String,
    pub addr: SocketAddr,
    pub connections: Arc<AtomicU64>,
    tasks: Option<tokio::task::JoinHandle<()>>,
}

impl TcpBackend {
    pub async fn start(name: &str, mode: Mode) -> TcpBackend {
        TcpBackend::start_on(name, mode, "127.0.0.1:0".parse().unwrap()).await
    }

    /// Start on a given address (to bring a killed backend back on its port).
    pub async fn start_on(name: &str, mode: Mode, addr: SocketAddr) -> TcpBackend {
        let listener = TcpListener::bind(addr).await.expect("bind backend");
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicU64::new(0));
        let count = connections.clone();
        let name_owned = name.to_string();
        let task = tokio::spawn(async move {
            // Connections live in the JoinSet, so aborting this task closes them all.
            let mut conns = JoinSet::new();
            loop {
                tokio::select! {
                    Ok((s, _)) = listener.accept() => {
                        count.fetch_add(1, Ordering::Relaxed);
                        conns.spawn(serve(s, name_owned.clone(), mode.clone()));
                    }
                    Some(_) = conns.join_next(), if !conns.is_empty() => {}
                }
            }
        });
        TcpBackend {
            name: name.to_string(),
            addr,
            connections,
            tasks: Some(task),
        }
    }

    /// Kill it: the port refuses from now on and open connections are closed.
    pub async fn kill(&mut self) {
        if let Some(t) = self.tasks.take() {
            t.abort();
            let _ = t.await;
        }
    }

    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }
}

impl Drop for TcpBackend {
    fn drop(&mut self) {
        if let Some(t) = &self.tasks {
            t.abort();
        }
    }
}

async fn serve(mut s: TcpStream, name: String, mode: Mode) {
    let mut buf = vec![0u8; 256 * 1024];
    match mode {
        Mode::Echo => loop {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => {
                    if s.write_all(&buf[..n]).await.is_err() {
                        return;
                    }
                }
            }
        },
        Mode::Digest => {
            let mut h = Xxh3::new();
            let mut count = 0u64;
            loop {
                match s.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        h.update(&buf[..n]);
                        count += n as u64;
                    }
                    Err(_) => return,
                }
            }
            let line = format!("{name} {count} {:016x}\n", h.digest());
            let _ = s.write_all(line.as_bytes()).await;
        }
        Mode::Source => {
            let mut req = Vec::new();
            loop {
                match s.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => req.extend_from_slice(&buf[..n]),
                    Err(_) => return,
                }
            }
            let n: u64 = String::from_utf8_lossy(&req).trim().parse().unwrap_or(0);
            let mut p = Pattern::new();
            let mut left = n;
            while left > 0 {
                let chunk = p.next_chunk(left.min(64 * 1024) as usize);
                left -= chunk.len() as u64;
                if s.write_all(chunk).await.is_err() {
                    return;
                }
            }
        }
        Mode::GreetThenCount(tx) => {
            let _ = s.write_all(format!("hello from {name}\n").as_bytes()).await;
            let _ = s.shutdown().await;
            let mut count = 0u64;
            loop {
                match s.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => count += n as u64,
                    Err(_) => return,
                }
            }
            let _ = tx.send(count);
        }
        Mode::Capture(tx) => {
            let mut all = Vec::new();
            loop {
                match s.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => all.extend_from_slice(&buf[..n]),
                    Err(_) => break,
                }
            }
            let _ = tx.send(all);
        }
    }
}

/// Deterministic bytes in 64 KiB chunks: a fixed pseudo-random block whose first 8 bytes
/// are the chunk's index, so lost, repeated or reordered chunks change the checksum.
pub struct Pattern {
    block: Vec<u8>,
    index: u64,
}

impl Pattern {
    pub fn new() -> Pattern {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        let block = (0..64 * 1024)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect();
        Pattern { block, index: 0 }
    }

    /// The next `len` (≤ 64 KiB) bytes.
    pub fn next_chunk(&mut self, len: usize) -> &[u8] {
        self.block[..8].copy_from_slice(&self.index.to_le_bytes());
        self.index += 1;
        &self.block[..len]
    }
}

/// Read to end of stream, with a deadline.
pub async fn read_to_end(s: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut v = Vec::new();
    tokio::time::timeout(limit, s.read_to_end(&mut v))
        .await
        .expect("answer within the limit")
        .expect("read");
    v
}

/// Whether the peer closes `s` (end of stream or reset) within `limit`.
pub async fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    let mut b = [0u8; 64];
    match tokio::time::timeout(limit, s.read(&mut b)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => false,
    }
}

#[allow(unused_imports)]
pub use crate::common::free_port;

#[allow(unused_imports)]
pub use crate::common::free_udp_port;

fn spawn_tool(cmd: &mut Command, tool: &str, package: &str) -> Child {
    cmd.stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap_or_else(|e| {
            panic!("cannot run {tool} ({e}); install it: apt-get install {package}")
        })
}

/// A `redis-server` on a free port, killed when dropped.
pub struct Redis {
    pub port: u16,
    child: Child,
}

impl Redis {
    pub async fn start() -> Redis {
        // A port free a moment ago may be taken by the time redis binds it: it then exits,
        // and we try another.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_port();
            match Redis::spawn_on(port).await {
                Ok(child) => return Redis { port, child },
                Err(e) => last_error = e,
            }
        }
        panic!("redis-server did not start: {last_error}");
    }

    /// A `redis-server` on `port` (one a test kept free, such as a balancer's dead Redis).
    pub async fn start_on(port: u16) -> Redis {
        let child = Redis::spawn_on(port)
            .await
            .unwrap_or_else(|e| panic!("redis-server did not start: {e}"));
        Redis { port, child }
    }

    /// A `redis-server` on `port`, once it accepts connections.
    async fn spawn_on(port: u16) -> Result<Child, String> {
        let mut child = spawn_tool(
            Command::new("redis-server")
                .args(["--port", &port.to_string()])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]),
            "redis-server",
            "redis-server",
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err).await;
                }
                return Err(format!("redis-server on {port} exited ({status}): {err}"));
            }
            if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Ok(child);
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on {port} did not start"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Kill it (SIGKILL: no goodbye to its clients) and wait until it is gone.
    pub async fn kill(&mut self) {
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }

    /// Start it again on its port (empty: nothing is saved), after [`Redis::kill`].
    pub async fn restart(&mut self) {
        self.child = Redis::spawn_on(self.port)
            .await
            .unwrap_or_else(|e| panic!("redis-server did not start again: {e}"));
    }

    /// Send it a signal by name (`STOP`: it hangs with its connections open; `CONT`).
    pub async fn signal(&self, name: &str) {
        let pid = self.child.id().expect("redis-server is running");
        let status = Command::new("kill")
            .args([&format!("-{name}"), &pid.to_string()])
            .status()
            .await
            .expect("run kill");
        assert!(status.success(), "kill -{name} {pid}");
    }

    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// `calls` of one command from `INFO commandstats`, via redis-cli.
    pub async fn calls(&self, command: &str) -> u64 {
        let out = Command::new("redis-cli")
            .args(["-h", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["info", "commandstats"])
            .output()
            .await
            .expect("cannot run redis-cli; install it: apt-get install redis-tools");
        let text = String::from_utf8_lossy(&out.stdout);
        let key = format!("cmdstat_{command}:calls=");
        text.lines()
            .find_map(|l| l.strip_prefix(&key))
            .and_then(|rest| rest.split(',').next())
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// A `dnsmasq` answering `example.test A` with `answer`, on a free UDP port.
pub struct Dnsmasq {
    pub port: u16,
    child: Child,
}

impl Dnsmasq {
    pub async fn start(answer: &str) -> Dnsmasq {
        // dnsmasq binds UDP and TCP on its port; a port free for UDP a moment ago may be
        // taken for TCP, or taken by the time it binds. Then it exits, and we try another.
        let mut last_error = String::new();
        for _ in 0..5 {
            let port = free_udp_port();
            let mut child = spawn_tool(
                Command::new("dnsmasq").args([
                    "--no-daemon",
                    "--no-resolv",
                    "--no-hosts",
                    "--bind-interfaces",
                    "--listen-address=127.0.0.1",
                    &format!("--port={port}"),
                    &format!("--address=/example.test/{answer}"),
                    "--pid-file=",
                    "--user=",
                    "--group=",
                ]),
                "dnsmasq",
                "dnsmasq-base",
            );
            // Ready when it answers a query directly.
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut err).await;
                    }
                    last_error = format!("dnsmasq on {port} exited ({status}): {err}");
                    break;
                }
                if dig(port, None).await.as_deref() == Some(answer) {
                    return Dnsmasq { port, child };
                }
                assert!(
                    Instant::now() < deadline,
                    "dnsmasq on {port} did not answer"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("dnsmasq did not start: {last_error}");
    }
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
    }
}

/// `dig @127.0.0.1 -p PORT example.test A +short`, optionally from a fixed source port;
/// the first answer line, or `None` when there was no answer.
pub async fn dig(port: u16, source_port: Option<u16>) -> Option<String> {
    let mut cmd = Command::new("dig");
    cmd.args(["@127.0.0.1", "-p", &port.to_string()]).args([
        "example.test",
        "A",
        "+short",
        "+tries=1",
        "+time=2",
    ]);
    if let Some(sp) = source_port {
        cmd.args(["-b", &format!("127.0.0.1#{sp}")]);
    }
    let out = cmd
        .output()
        .await
        .expect("cannot run dig; install it: apt-get install dnsutils");
    let text = String::from_utf8_lossy(&out.stdout);
    let first = text.lines().next()?.trim().to_string();
    (out.status.success() && !first.is_empty() && !first.starts_with(';')).then_some(first)
}

/// A UDP backend answering every datagram with `NAME:` + the datagram.
pub struct UdpBackend {
    pub name: String,
    pub addr: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl UdpBackend {
    pub async fn start(name: &str) -> UdpBackend {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let addr = socket.local_addr().unwrap();
        let prefix = format!("{name}:");
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let mut out = prefix.as_bytes().to_vec();
                out.extend_from_slice(&buf[..n]);
                let _ = socket.send_to(&out, from).await;
            }
        });
        UdpBackend {
            name: name.to_string(),
            addr,
            task,
        }
    }

    pub async fn kill(&mut self) {
        self.task.abort();
        let _ = (&mut self.task).await;
    }
}

impl Drop for UdpBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// This process's resident set size in KiB (`VmRSS` of /proc/self/status).
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("read /proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS in /proc/self/status")
}

/// `servers = [...]` for addresses, named s1, s2, …
pub fn servers(addrs: &[SocketAddr]) -> String {
    let items: Vec<String> = addrs
        .iter()
        .enumerate()
        .map(|(i, a)| format!("{{ addr = \"{a}\", name = \"s{}\" }}", i + 1))
        .collect();
    format!("[{}]", items.join(", "))
}

/// A config with one L4 listener named "l4" over one pool "p".
pub fn l4_config(
    protocol: &str,
    listener_extra: &str,
    pool_extra: &str,
    addrs: &[SocketAddr],
) -> String {
    format!(
        r#"
[[listener]]
name = "l4"
listen = "127.0.0.1:0"
protocol = "{protocol}"
pool = "p"
{listener_extra}

[pool.p]
{pool_extra}
servers = {}
"#,
        servers(addrs)
    )
}

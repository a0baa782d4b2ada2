//! The network of tests/ha.rs and what runs in it from the test process itself: network
//! namespaces joined by a bridge (removed on drop, with whatever runs inside), the demo
//! backends and a client on threads moved into those namespaces (setns), and the small
//! helpers around processes and waiting.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// The addresses of `examples/ha/`: the virtual IP, the two balancers, the servers, a client.
pub const VIP: &str = "10.0.0.10";
pub const NODES: [(&str, &str); 2] = [("lb1", "10.0.0.11"), ("lb2", "10.0.0.12")];
pub const SERVERS: [(&str, &str); 2] = [("app1", "10.0.0.21:8080"), ("app2", "10.0.0.22:8080")];
pub const CLIENT: &str = "10.0.0.100";

/// Run a command to its end; panics if it cannot start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"))
}

/// `ip ARGS`, which must succeed.
pub fn ip(args: &[&str]) {
    let out = run(Command::new("ip").args(args));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_default()
}

/// Poll `f` every 20 ms until it gives a value or `limit` passes (then panic naming `what`).
pub fn wait_for<T: Waited>(limit: Duration, what: &str, mut f: impl FnMut() -> T) -> T::Out {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f().done() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What [`wait_for`] accepts: a condition, or a value once there is one.
pub trait Waited {
    type Out;
    fn done(self) -> Option<Self::Out>;
}

impl Waited for bool {
    type Out = ();
    fn done(self) -> Option<()> {
        self.then_some(())
    }
}

impl<T> Waited for Option<T> {
    type Out = T;
    fn done(self) -> Option<T> {
        self
    }
}

/// This test's directory (under Cargo's target tmp dir, whose parents only root may write:
/// keepalived's `enable_script_security` checks that of every path it runs).
pub struct Dir(pub PathBuf);

impl Dir {
    pub fn new() -> Dir {
        use std::sync::atomic::AtomicU32;
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
            "ha-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        Dir(dir)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The network namespaces of one run, named `syha<pid>-<role>`; removed on drop, with
/// anything still running in them. Namespaces left by an earlier run that was killed (its
/// process gone) are removed first.
pub struct Net {
    pub prefix: String,
}

pub const ROLES: [&str; 4] = ["lan", "lb1", "lb2", "client"];

impl Net {
    pub fn new() -> Net {
        remove_stale_namespaces();
        let net = Net {
            prefix: format!("syha{}", std::process::id()),
        };
        for role in ROLES {
            ip(&["netns", "add", &net.ns(role)]);
            ip(&["-n", &net.ns(role), "link", "set", "lo", "up"]);
        }
        let lan = net.ns("lan");
        ip(&["-n", &lan, "link", "add", "br0", "type", "bridge"]);
        ip(&["-n", &lan, "link", "set", "br0", "up"]);
        for (_, addr) in SERVERS {
            let host = addr.split(':').next().unwrap();
            ip(&[
                "-n",
                &lan,
                "addr",
                "add",
                &format!("{host}/24"),
                "dev",
                "br0",
            ]);
        }
        let hosts = [("lb1", NODES[0].1), ("lb2", NODES[1].1), ("client", CLIENT)];
        for (role, addr) in hosts {
            let port = format!("p-{role}");
            let ns = net.ns(role);
            ip(&[
                "-n", &lan, "link", "add", &port, "type", "veth", "peer", "name", "eth0", "netns",
                &ns,
            ]);
            ip(&["-n", &lan, "link", "set", &port, "master", "br0", "up"]);
            ip(&[
                "-n",
                &ns,
                "addr",
                "add",
                &format!("{addr}/24"),
                "dev",
                "eth0",
            ]);
            ip(&["-n", &ns, "link", "set", "eth0", "up"]);
        }
        net
    }

    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for role in ROLES {
            remove_namespace(&self.ns(role));
        }
    }
}

pub fn remove_namespace(ns: &str) {
    // Whatever still runs inside (a keepalived that did not stop) goes first.
    let pids = run(Command::new("ip").args(["netns", "pids", ns]));
    for pid in String::from_utf8_lossy(&pids.stdout).split_whitespace() {
        if let Ok(pid) = pid.parse::<i32>()
            && let Some(pid) = rustix::process::Pid::from_raw(pid)
        {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
        }
    }
    let _ = run(Command::new("ip").args(["netns", "del", ns]));
}

pub fn remove_stale_namespaces() {
    let list = run(Command::new("ip").args(["netns", "list"]));
    for line in String::from_utf8_lossy(&list.stdout).lines() {
        let name = line.split_whitespace().next().unwrap_or("");
        let Some(pid) = name
            .strip_prefix("syha")
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !Path::new(&format!("/proc/{pid}")).exists() {
            remove_namespace(name);
        }
    }
}

/// Move the calling thread into network namespace `ns`: the sockets it opens from then on
/// live there.
pub fn enter(ns: &str) {
    let f = fs::File::open(format!("/run/netns/{ns}")).expect("open the namespace");
    rustix::thread::move_into_link_name_space(
        f.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .expect("setns into the namespace");
}

/// The two demo backends, on a thread of their own in the "lan" namespace.
pub struct Servers {
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Servers {
    pub fn start(ns: &str) -> Servers {
        let ns = ns.to_string();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            enter(&ns);
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut running = Vec::new();
                for (name, addr) in SERVERS {
                    let addr: SocketAddr = addr.parse().unwrap();
                    let b = switchyard::demo::Backend::start_on(addr, name, Duration::ZERO)
                        .await
                        .expect("start a backend in the lan namespace");
                    running.push(b);
                }
                ready_tx.send(()).unwrap();
                let _ = stop_rx.await;
            });
        });
        ready_rx
            .recv_timeout(Duration::from_secs(10))
            .expect("backends started");
        Servers {
            stop: Some(stop),
            thread: Some(thread),
        }
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        let _ = self.stop.take().map(|s| s.send(()));
        let _ = self.thread.take().map(JoinHandle::join);
    }
}

/// On a failure, the logs of every daemon, so the cause is in the test's output.
pub struct Logs(pub Vec<PathBuf>);

impl Drop for Logs {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        for p in &self.0 {
            let text = read(p);
            let lines: Vec<&str> = text.lines().collect();
            let tail = lines[lines.len().saturating_sub(40)..].join("\n");
            eprintln!("---- {} (last 40 lines)\n{tail}", p.display());
        }
    }
}

/// One request to the virtual IP.
#[derive(Clone, Debug)]
pub struct Shot {
    pub start: Instant,
    pub end: Instant,
    /// The server that answered 200, or None.
    pub server: Option<String>,
}

/// A client in the "client" namespace: one GET to the virtual IP every 20 ms, each on a new
/// connection, until stopped (at most 10,000 requests or 3 minutes).
pub struct Traffic {
    stop: Arc<AtomicBool>,
    shots: Arc<Mutex<Vec<Shot>>>,
    thread: Option<JoinHandle<()>>,
}

impl Traffic {
    pub fn start(ns: &str) -> Traffic {
        let ns = ns.to_string();
        let stop = Arc::new(AtomicBool::new(false));
        let shots = Arc::new(Mutex::new(Vec::new()));
        let (s, sh) = (stop.clone(), shots.clone());
        let thread = std::thread::spawn(move || {
            enter(&ns);
            let until = Instant::now() + Duration::from_secs(180);
            let vip: SocketAddr = format!("{VIP}:80").parse().unwrap();
            for _ in 0..10_000 {
                if s.load(Ordering::Relaxed) || Instant::now() > until {
                    break;
                }
                let start = Instant::now();
                let server = get(vip).ok();
                let end = Instant::now();
                sh.lock().unwrap().push(Shot { start, end, server });
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        Traffic {
            stop,
            shots,
            thread: Some(thread),
        }
    }

    /// The first answered request sent after `t`.
    pub fn answer_after(&self, t: Instant) -> Option<Shot> {
        let shots = self.shots.lock().unwrap();
        shots
            .iter()
            .find(|s| s.start >= t && s.server.is_some())
            .cloned()
    }

    /// Requests sent in [from, to) that got no answer.
    pub fn failures_between(&self, from: Instant, to: Instant) -> usize {
        let shots = self.shots.lock().unwrap();
        shots
            .iter()
            .filter(|s| s.start >= from && s.start < to && s.server.is_none())
            .count()
    }

    /// Stop; the number of requests sent.
    pub fn stop(mut self) -> usize {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.take().map(JoinHandle::join);
        self.shots.lock().unwrap().len()
    }
}

impl Drop for Traffic {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.thread.take().map(JoinHandle::join);
    }
}

/// GET / over a new connection: the answering server's name (`x-server`) on a 200.
pub fn get(addr: SocketAddr) -> Result<String, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_millis(300)).map_err(|e| e.to_string())?;
    s.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    s.set_write_timeout(Some(Duration::from_secs(1))).unwrap();
    s.write_all(format!("GET / HTTP/1.1\r\nHost: {VIP}\r\nConnection: close\r\n\r\n").as_bytes())
        .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    s.read_to_end(&mut answer).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&answer);
    if !text.starts_with("HTTP/1.1 200") {
        return Err(text.lines().next().unwrap_or("").to_string());
    }
    text.lines()
        .find_map(|l| l.strip_prefix("x-server: "))
        .map(str::to_string)
        .ok_or_else(|| "no x-server".into())
}

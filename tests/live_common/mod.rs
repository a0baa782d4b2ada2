//! Helpers for the live-change tests (reload, admin API, drain, restart, upgrade): a
//! bounded steady load from several concurrent clients that records every answer, a config
//! file on disk, and calls to the admin API.
//!
//! Clients behave like real ones, and say which:
//! - `KeepAlive`: one HTTP/1.1 connection reused for request after request (browsers, wrk,
//!   `curl` with several URLs). When a server closes an idle keep-alive connection, a
//!   request sent on it at that moment gets no byte back; such a client sends it again on a
//!   new connection (curl: "Connection died, retrying a fresh connect"; browsers and Go's
//!   client do the same for a reused connection). That is counted in `retried`, never as a
//!   failure; with `strict`, it is not done and counts as a failure.
//! - `Fresh`: a new connection per request (`curl` in a loop, `ab` without `-k`). Any error
//!   is a failure.
//!
//! A connection reset (ECONNRESET) anywhere is counted in `resets` as well.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio::task::JoinHandle;

/// How a load client uses connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    KeepAlive,
    Fresh,
}

/// One answered request.
#[derive(Debug, Clone)]
pub struct Sample {
    pub client: usize,
    pub path: String,
    /// When it was sent (before any byte): a request sent after a reload returned must
    /// see the new configuration.
    pub sent: Instant,
    /// When its answer had come back.
    pub answered: Instant,
    pub status: u16,
    /// The demo backend that answered (`x-server`), or "".
    pub server: String,
}

/// What a load run saw.
#[derive(Debug, Default)]
pub struct Report {
    pub samples: Vec<Sample>,
    /// Requests that got no answer (or not a 200), with why.
    pub failures: Vec<String>,
    /// Connection resets seen, whatever came of them.
    pub resets: u64,
    /// Requests sent again on a new connection after a reused one closed under them.
    pub retried: u64,
}

impl Report {
    pub fn ok(&self) -> usize {
        self.samples.iter().filter(|s| s.status == 200).count()
    }

    /// Answers to requests sent after `t`.
    pub fn after(&self, t: Instant) -> Vec<&Sample> {
        let mut v: Vec<&Sample> = self.samples.iter().filter(|s| s.sent >= t).collect();
        v.sort_by_key(|s| s.sent);
        v
    }

    /// Answers to requests sent after `a` and answered before `b`: wholly between them. (A
    /// client notes the time it sends, then writes: on a loaded machine a request noted
    /// before `b` may leave after it.)
    pub fn between(&self, a: Instant, b: Instant) -> Vec<&Sample> {
        let mut v: Vec<&Sample> = self
            .samples
            .iter()
            .filter(|s| s.sent >= a && s.answered < b)
            .collect();
        v.sort_by_key(|s| s.sent);
        v
    }
}

/// A running load.
pub struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<()>>,
    report: Arc<Mutex<Report>>,
}

/// The settings of a load.
#[derive(Debug, Clone)]
pub struct Plan {
    pub addr: SocketAddr,
    pub clients: Vec<Kind>,
    /// Each client cycles through these (client i starts at path i).
    pub paths: Vec<String>,
    /// Extra headers, per client (e.g. a user id to hash on).
    pub user_header: bool,
    /// Each client sends at most this many requests …
    pub max_per_client: usize,
    /// … and stops after this long.
    pub max_time: Duration,
    /// Pause between two requests of one client.
    pub pause: Duration,
    /// Keep-alive clients never send a request twice.
    pub strict: bool,
}

impl Plan {
    pub fn new(addr: SocketAddr, clients: Vec<Kind>) -> Plan {
        Plan {
            addr,
            clients,
            paths: vec!["/".into()],
            user_header: false,
            max_per_client: 2_000,
            max_time: Duration::from_secs(60),
            pause: Duration::from_millis(2),
            strict: false,
        }
    }
}

impl Load {
    pub fn start(plan: Plan) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let report = Arc::new(Mutex::new(Report::default()));
        let tasks = plan
            .clients
            .iter()
            .enumerate()
            .map(|(i, kind)| {
                tokio::spawn(client(i, *kind, plan.clone(), stop.clone(), report.clone()))
            })
            .collect();
        Load {
            stop,
            tasks,
            report,
        }
    }

    /// Answers so far.
    pub fn answered(&self) -> usize {
        self.report.lock().unwrap().samples.len()
    }

    /// Wait until `n` more answers have come (or `limit` passed: panics).
    pub async fn wait_answers(&self, n: usize, limit: Duration) {
        let start = self.answered();
        let deadline = Instant::now() + limit;
        while self.answered() < start + n {
            assert!(
                Instant::now() < deadline,
                "the load got {} of {n} answers within {limit:?}; failures: {:?}",
                self.answered() - start,
                self.report.lock().unwrap().failures
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Let the clients run to their end (`max_per_client`), within `limit`, and return what
    /// they saw.
    pub async fn run_out(self, limit: Duration) -> Report {
        let deadline = Instant::now() + limit;
        for t in &self.tasks {
            while !t.is_finished() {
                assert!(
                    Instant::now() < deadline,
                    "the load did not finish within {limit:?}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
        self.finish().await
    }

    /// Stop the clients (each finishes its request) and return what they saw.
    pub async fn finish(self) -> Report {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        std::mem::take(&mut *self.report.lock().unwrap())
    }
}

fn is_reset(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionReset
        {
            return true;
        }
        cur = err.source();
    }
    false
}

type Sender = http1::SendRequest<Full<Bytes>>;

async fn connect(addr: SocketAddr) -> Result<Sender, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (sender, conn) = http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    tokio::spawn(conn);
    Ok(sender)
}

/// One request on `sender`: the answer, or the error and whether no byte came back.
async fn send(
    sender: &mut Sender,
    addr: SocketAddr,
    path: &str,
    user: Option<&str>,
) -> Result<(u16, String), (hyper::Error, bool)> {
    let mut req = Request::get(path).header("host", addr.to_string());
    if let Some(u) = user {
        req = req.header("x-user", u);
    }
    let req = req.body(Full::new(Bytes::new())).unwrap();
    let resp = match sender.send_request(req).await {
        Ok(r) => r,
        // No response head at all: nothing of it came back.
        Err(e) => return Err((e, true)),
    };
    let status = resp.status().as_u16();
    let server = resp
        .headers()
        .get("x-server")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    match resp.into_body().collect().await {
        Ok(_) => Ok((status, server)),
        Err(e) => Err((e, false)),
    }
}

async fn client(
    id: usize,
    kind: Kind,
    plan: Plan,
    stop: Arc<AtomicBool>,
    report: Arc<Mutex<Report>>,
) {
    let started = Instant::now();
    let user = format!("user-{id}");
    let user = plan.user_header.then_some(user.as_str());
    let mut conn: Option<Sender> = None;
    for n in 0..plan.max_per_client {
        if stop.load(Ordering::Relaxed) || started.elapsed() > plan.max_time {
            return;
        }
        let path = &plan.paths[(id + n) % plan.paths.len()];
        let sent = Instant::now();
        let mut outcome = Err(String::new());
        for attempt in 0..2 {
            // A kept connection the server has closed is noticed here, before sending.
            let reused = kind == Kind::KeepAlive
                && conn
                    .as_mut()
                    .is_some_and(|c| !c.is_closed() && c.is_ready());
            let mut sender = if reused {
                conn.take().unwrap()
            } else {
                match connect(plan.addr).await {
                    Ok(s) => s,
                    Err(e) => {
                        if e.contains("reset") {
                            report.lock().unwrap().resets += 1;
                        }
                        outcome = Err(e);
                        break;
                    }
                }
            };
            match send(&mut sender, plan.addr, path, user).await {
                Ok(answer) => {
                    if kind == Kind::KeepAlive {
                        conn = Some(sender);
                    }
                    outcome = Ok(answer);
                    break;
                }
                Err((e, nothing_back)) => {
                    if is_reset(&e) {
                        report.lock().unwrap().resets += 1;
                    }
                    outcome = Err(format!(
                        "{e} ({})",
                        if reused {
                            "reused connection"
                        } else {
                            "new connection"
                        }
                    ));
                    if reused && nothing_back && !plan.strict && attempt == 0 {
                        report.lock().unwrap().retried += 1;
                        continue;
                    }
                    break;
                }
            }
        }
        {
            let mut r = report.lock().unwrap();
            match outcome {
                Ok((status, server)) => {
                    if status != 200 {
                        r.failures.push(format!(
                            "client {id} {path}: status {status} from {server:?}"
                        ));
                    }
                    r.samples.push(Sample {
                        client: id,
                        path: path.clone(),
                        sent,
                        answered: Instant::now(),
                        status,
                        server,
                    });
                }
                Err(e) => r.failures.push(format!("client {id} {path}: {e}")),
            }
        }
        tokio::time::sleep(plan.pause).await;
    }
}

/// A config file on disk, rewritten by the test.
pub struct ConfigFile {
    pub dir: PathBuf,
    pub path: PathBuf,
}

impl ConfigFile {
    pub fn new(tag: &str, text: &str) -> ConfigFile {
        use std::sync::atomic::AtomicU32;
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "switchyard-live-{tag}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("switchyard.toml");
        std::fs::write(&path, text).unwrap();
        ConfigFile { dir, path }
    }

    pub fn write(&self, text: &str) {
        std::fs::write(&self.path, text).unwrap();
    }

    pub fn text(&self) -> String {
        std::fs::read_to_string(&self.path).unwrap()
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Start a runtime from a config file (reloads and API changes read and change it).
pub async fn start_file(file: &ConfigFile) -> switchyard::runtime::Runtime {
    let text = file.text();
    let plan = switchyard::config::load_file(&file.path)
        .unwrap_or_else(|e| panic!("test config is invalid:\n{e}\n---\n{text}"));
    switchyard::runtime::Runtime::launch(
        plan,
        switchyard::runtime::Launch {
            file: Some((file.path.clone(), text)),
            ..Default::default()
        },
    )
    .await
    .expect("start load balancer")
}

/// An admin API answer: status and JSON (or the text, under "text").
#[derive(Debug)]
pub struct ApiAnswer {
    pub status: StatusCode,
    pub json: Value,
    pub text: String,
    pub headers: http::HeaderMap,
}

/// Call the admin API.
pub async fn api(
    admin: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> ApiAnswer {
    let mut sender = connect(admin).await.expect("connect to the admin listener");
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header("host", admin.to_string())
        .header("user-agent", "live-test");
    if let Some(t) = token {
        req = req.header("authorization", format!("Bearer {t}"));
    }
    if body.is_some() {
        req = req.header("content-type", "application/json");
    }
    let req = req
        .body(Full::new(Bytes::from(body.unwrap_or("").to_string())))
        .unwrap();
    let resp = tokio::time::timeout(Duration::from_secs(30), sender.send_request(req))
        .await
        .expect("admin answer within 30 s")
        .expect("admin answer");
    let status = resp.status();
    let headers = resp.headers().clone();
    let bytes = resp.into_body().collect().await.unwrap().to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    ApiAnswer {
        status,
        json: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
        headers,
    }
}

/// The server named `name` (or at that address) in a pool answer.
pub fn server<'a>(pool: &'a Value, name: &str) -> &'a Value {
    pool["servers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == name || s["addr"] == name)
        .unwrap_or_else(|| panic!("no server {name} in {pool:#}"))
}

#[allow(unused_imports)]
pub use crate::common::free_port;

/// Wait until `path` exists (a socket bound by a process).
pub async fn wait_for_file(path: &Path, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !path.exists() {
        assert!(
            Instant::now() < deadline,
            "{} did not appear",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The `switchyard` binary with its log lines kept as they come; killed on drop.
pub struct Proc {
    pub child: std::process::Child,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    /// Start `switchyard ARGS…` (with `--log-level info`), its stderr read into `log`.
    pub fn start(args: &[&str], env: &[(&str, &str)]) -> Proc {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"));
        cmd.args(["--log-level", "info"])
            .args(args)
            .stderr(std::process::Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        Proc::adopt(cmd.spawn().expect("start switchyard"))
    }

    /// A switchyard started another way (e.g. under `sh -c 'ulimit …; exec …'`), its stderr
    /// piped: read into `log`.
    pub fn adopt(mut child: std::process::Child) -> Proc {
        use std::io::BufRead;
        let stderr = child.stderr.take().unwrap();
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines() {
                let Ok(line) = line else { return };
                sink.lock().unwrap().push(line);
            }
        });
        Proc { child, log }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The first log line containing `text`, waiting up to `limit` for it.
    pub async fn line(&self, text: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self.log.lock().unwrap().iter().find(|l| l.contains(text)) {
                return l.clone();
            }
            assert!(
                Instant::now() < deadline,
                "no log line with {text:?} within {limit:?}:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The address in the log line `listening on ADDR` of listener `name`.
    pub async fn listener(&self, name: &str) -> SocketAddr {
        let pattern = format!("listener={name}");
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let found = self
                .log
                .lock()
                .unwrap()
                .iter()
                .find(|l| l.contains(&pattern) && l.contains("listening on "))
                .cloned();
            if let Some(l) = found {
                let rest = l.split("listening on ").nth(1).unwrap();
                return rest.split_whitespace().next().unwrap().parse().unwrap();
            }
            assert!(
                Instant::now() < deadline,
                "listener {name} did not start:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// The admin listener's address, from its start-up line.
    pub async fn admin(&self) -> SocketAddr {
        let l = self
            .line("admin endpoints on http://", Duration::from_secs(10))
            .await;
        let rest = l.split("admin endpoints on http://").nth(1).unwrap();
        rest.split(':')
            .take(2)
            .collect::<Vec<_>>()
            .join(":")
            .parse()
            .unwrap()
    }

    pub fn signal(&self, name: &str) {
        let ok = std::process::Command::new("kill")
            .args([&format!("-{name}"), &self.child.id().to_string()])
            .status()
            .expect("run kill")
            .success();
        assert!(ok, "kill -{name}");
    }

    /// Wait up to `limit` for the process to exit.
    pub async fn exited(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    pub fn running(&mut self) -> bool {
        self.child.try_wait().unwrap().is_none()
    }

    pub fn log_text(&self) -> String {
        self.log.lock().unwrap().join("\n")
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

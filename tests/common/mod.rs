//! Shared helpers for the integration tests: start demo backends and a load balancer from
//! inline TOML on 127.0.0.1 (port 0), make real HTTP requests, wait for conditions.
#![allow(dead_code)]

mod ports;
#[allow(unused_imports)]
pub use ports::{dead_addr, free_port, free_udp_port};

use std::future::Future;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use switchyard::demo::Backend;
use switchyard::runtime::Runtime;
use tokio::net::TcpStream;

/// Start `n` demo backends named `s1`, `s2`, … with no delay.
pub async fn backends(n: usize) -> Vec<Backend> {
    let mut v = Vec::new();
    for i in 0..n {
        v.push(
            Backend::start(&format!("s{}", i + 1), Duration::ZERO)
                .await
                .expect("start backend"),
        );
    }
    v
}

/// `servers = [...]` entries for `backends`, with optional weights.
pub fn servers_toml(backends: &[Backend], weights: &[u32]) -> String {
    let items: Vec<String> = backends
        .iter()
        .enumerate()
        .map(|(i, b)| {
            let w = weights.get(i).copied().unwrap_or(1);
            format!(
                "{{ addr = \"{}\", name = \"{}\", weight = {w} }}",
                b.addr,
                b.name()
            )
        })
        .collect();
    format!("[{}]", items.join(", "))
}

/// Start a load balancer from TOML text. Listeners should use `127.0.0.1:0`.
pub async fn start_lb(toml: &str) -> Runtime {
    let plan = switchyard::config::load_str(toml, "test.toml")
        .unwrap_or_else(|e| panic!("test config is invalid:\n{e}\n---\n{toml}"));
    Runtime::start(plan).await.expect("start load balancer")
}

/// A minimal single-pool config: listener "web" on port 0 over `backends`.
pub fn simple_config(algorithm: &str, backends: &[Backend], weights: &[u32]) -> String {
    format!(
        r#"
[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "p"

[pool.p]
algorithm = "{algorithm}"
servers = {}
"#,
        servers_toml(backends, weights)
    )
}

/// One answer, read whole.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl Answer {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The demo backend that answered (its `x-server` header), or "" if none.
    pub fn server(&self) -> String {
        self.headers
            .get("x-server")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    }
}

/// A client connection (HTTP/1.1, keep-alive) for many requests in a row.
pub struct Client {
    sender: http1::SendRequest<Full<Bytes>>,
    pub addr: SocketAddr,
}

impl Client {
    pub async fn connect(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).await.expect("connect to LB");
        let (sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .expect("handshake");
        tokio::spawn(conn);
        Client { sender, addr }
    }

    /// Send a request built by the caller (its URI is the path; Host is added if missing).
    pub async fn send(&mut self, mut req: Request<Full<Bytes>>) -> Answer {
        if !req.headers().contains_key(http::header::HOST) {
            req.headers_mut()
                .insert(http::header::HOST, self.addr.to_string().parse().unwrap());
        }
        self.sender.ready().await.expect("connection ready");
        let resp = tokio::time::timeout(Duration::from_secs(30), self.sender.send_request(req))
            .await
            .expect("response within 30s")
            .expect("response");
        let (parts, body) = resp.into_parts();
        let body = body.collect().await.expect("body").to_bytes();
        Answer {
            status: parts.status,
            headers: parts.headers,
            body,
        }
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        self.send(Request::get(path).body(Full::new(Bytes::new())).unwrap())
            .await
    }
}

/// GET over a fresh connection.
pub async fn get(addr: SocketAddr, path: &str) -> Answer {
    Client::connect(addr).await.get(path).await
}

/// GET with extra headers over a fresh connection.
pub async fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
    let mut b = Request::get(path);
    for (k, v) in headers {
        b = b.header(*k, *v);
    }
    Client::connect(addr)
        .await
        .send(b.body(Full::new(Bytes::new())).unwrap())
        .await
}

/// Poll `cond` every 20 ms until it holds or `limit` passes; panics with `what` on timeout.
pub async fn wait_until<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + limit;
    loop {
        if cond().await {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {limit:?} waiting for: {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Count answers per server name.
pub fn tally(names: impl IntoIterator<Item = String>) -> std::collections::BTreeMap<String, usize> {
    let mut m = std::collections::BTreeMap::new();
    for n in names {
        *m.entry(n).or_insert(0) += 1;
    }
    m
}

/// The `switchyard` binary running `run -c` on a config written to a temp file; killed on drop.
pub struct LbProcess {
    pub child: std::process::Child,
    pub addr: SocketAddr,
    pub dir: std::path::PathBuf,
    /// Every line it has logged so far (standard error).
    pub log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl LbProcess {
    /// Start the binary on `toml` (one listener on port 0) and wait until it listens.
    pub fn start(toml: &str) -> LbProcess {
        LbProcess::start_logging(toml, "warn,switchyard::runtime=info")
    }

    /// [`LbProcess::start`] with `--log-level level` (which must show the runtime's
    /// "listening on" line).
    pub fn start_logging(toml: &str, level: &str) -> LbProcess {
        use std::io::BufRead;
        let dir = temp_dir("lb");
        let path = dir.join("switchyard.toml");
        std::fs::write(&path, toml).unwrap();
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .args(["--log-level", level, "run", "-c"])
            .arg(&path)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("start switchyard");
        let stderr = child.stderr.take().unwrap();
        let mut lines = std::io::BufReader::new(stderr).lines();
        let log = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let addr = loop {
            let line = lines
                .next()
                .expect("switchyard exited before listening")
                .unwrap();
            log.lock().unwrap().push(line.clone());
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.split_whitespace().next().unwrap().parse().unwrap();
            }
        };
        // Keep draining its log so it never blocks on a full pipe, and keep it.
        let kept = log.clone();
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                kept.lock().unwrap().push(line);
            }
        });
        LbProcess {
            child,
            addr,
            dir,
            log,
        }
    }

    /// The config file it runs.
    pub fn config_path(&self) -> std::path::PathBuf {
        self.dir.join("switchyard.toml")
    }

    /// The lines logged so far that contain `needle`.
    pub fn logged(&self, needle: &str) -> Vec<String> {
        let log = self.log.lock().unwrap();
        log.iter().filter(|l| l.contains(needle)).cloned().collect()
    }

    /// Wait up to `limit` for a logged line containing `needle`: the first such line.
    pub async fn wait_for_log(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            if let Some(l) = self.logged(needle).into_iter().next() {
                return l;
            }
            assert!(
                Instant::now() < deadline,
                "no line with {needle:?} within {limit:?}; the log:\n{}",
                self.log.lock().unwrap().join("\n")
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Peak resident memory of the process so far (VmHWM), in KiB.
    pub fn peak_rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM in /proc/PID/status")
    }
}

impl Drop for LbProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A fresh, empty directory under the system temp dir.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    use std::sync::atomic::{AtomicU32, Ordering};
    static N: AtomicU32 = AtomicU32::new(0);
    let dir = std::env::temp_dir().join(format!(
        "switchyard-test-{tag}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Send `kill -NAME` to a child process.
pub fn signal(child: &std::process::Child, name: &str) {
    let ok = std::process::Command::new("kill")
        .args([&format!("-{name}"), &child.id().to_string()])
        .status()
        .expect("run kill")
        .success();
    assert!(ok, "kill -{name}");
}

/// Wait up to `limit` for a child to exit: its status, or `None` while it still runs.
pub async fn exited(
    child: &mut std::process::Child,
    limit: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// One raw request over a fresh connection, read until the server closes (the request says
/// `Connection: close`), bounded by 10 s: the answer's status and its head's lines after the
/// status line. `Err` for anything but a whole answer.
pub async fn raw_exchange(addr: SocketAddr, req: &str) -> Result<(u16, Vec<String>), String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut s = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        s.write_all(req.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        let mut out = Vec::new();
        s.read_to_end(&mut out).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(out)
    };
    let out = tokio::time::timeout(Duration::from_secs(10), exchange)
        .await
        .map_err(|_| "no answer within 10 s".to_string())??;
    let text = String::from_utf8_lossy(&out);
    let head = text.split("\r\n\r\n").next().unwrap_or("");
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("not an HTTP answer: {text:?}"))?;
    Ok((status, lines.map(str::to_string).collect()))
}

//! `switchyard probe` against a real `switchyard run`: its exit status follows the admin
//! listener's readiness (ready, a pool without a usable server, draining, gone), it gives up
//! at its deadline, and it says what to fix when it cannot ask.
mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

/// `switchyard probe ARGS`: exit code, stdout, stderr.
async fn probe(args: &[&str]) -> (Option<i32>, String, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("probe")
        .args(args)
        .output()
        .await
        .expect("run switchyard probe");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Probe `admin` until the exit code is `code` (a deadline of 10 s); the last output.
async fn probe_until(admin: &str, code: i32, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (got, out, err) = probe(&["--admin", admin]).await;
        if got == Some(code) {
            return out + &err;
        }
        assert!(
            Instant::now() < deadline,
            "probe never exited {code} ({what}); last: {got:?} {out}{err}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `switchyard run` on `toml`; returns the child, its listener's and its admin address.
fn run(dir: &std::path::Path, toml: &str) -> (std::process::Child, SocketAddr, SocketAddr) {
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, toml).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["--log-level", "warn,switchyard::runtime=info", "run", "-c"])
        .arg(&path)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start switchyard");
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let (mut listen, mut admin) = (None, None);
    let mut seen = String::new();
    while listen.is_none() || admin.is_none() {
        let Some(Ok(line)) = lines.next() else {
            panic!("switchyard exited before listening:\n{seen}");
        };
        seen += &line;
        seen.push('\n');
        let word = |marker: &str| {
            line.split(marker)
                .nth(1)
                .and_then(|r| r.split_whitespace().next())
                // "admin endpoints on http://ADDR: /health/live, ..."
                .map(|a| a.trim_end_matches(':').to_string())
        };
        if let Some(a) = word("listening on ") {
            listen = a.parse().ok();
        }
        if let Some(a) = word("admin endpoints on http://") {
            admin = a.parse().ok();
        }
    }
    std::thread::spawn(move || for _ in lines {});
    (child, listen.unwrap(), admin.unwrap())
}

struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_exit_status_follows_readiness_from_ready_to_draining_to_gone() {
    let b = backends(1).await;
    let dir = temp_dir("probe");
    let toml = format!(
        r#"
grace_period = "10s"

[admin]
listen = "127.0.0.1:0"

[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "p"

[pool.p]
servers = {}

[pool.p.health]
type = "http"
path = "/health"
interval = "100ms"
timeout = "100ms"
rise = 1
fall = 1
"#,
        servers_toml(&b, &[])
    );
    let (child, listen, admin) = run(&dir, &toml);
    let mut child = Child(child);
    let admin = admin.to_string();

    let out = probe_until(&admin, 0, "ready").await;
    assert_eq!(out.trim(), format!("{admin}: ready"));

    // The only server fails its health check: the pool has no usable server.
    b[0].set_healthy(false);
    let out = probe_until(&admin, 1, "no usable server").await;
    assert!(
        out.contains(&format!(
            "{admin}: 503 not ready: no usable server in pool(s) p"
        )),
        "{out}"
    );
    b[0].set_healthy(true);
    probe_until(&admin, 0, "ready again").await;

    // A request in flight keeps the process draining after SIGTERM: not ready, still there.
    let slow = tokio::spawn(async move { get(listen, "/sleep/2000").await });
    let admin_addr: SocketAddr = admin.parse().unwrap();
    wait_until(
        Duration::from_secs(5),
        "the slow request in flight",
        || async move {
            get(admin_addr, "/metrics")
                .await
                .text()
                .lines()
                .any(|l| l.starts_with("switchyard_server_in_flight{") && l.ends_with(" 1"))
        },
    )
    .await;
    signal(&child.0, "TERM");
    let out = probe_until(&admin, 1, "draining").await;
    assert!(out.contains("503 not ready: draining"), "{out}");
    assert_eq!(slow.await.unwrap().status, 200, "the drain finished it");

    // Gone: nothing answers.
    exited(&mut child.0, Duration::from_secs(10))
        .await
        .expect("switchyard exits after draining");
    let (code, _, err) = probe(&["--admin", &admin]).await;
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no answer"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn a_listener_that_never_answers_is_given_up_at_the_timeout() {
    // Accepts (the kernel does, from its backlog) and never says a word.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let (code, out, err) = probe(&["--admin", &addr, "--timeout", "300ms"]).await;
    let took = started.elapsed();
    assert_eq!(code, Some(2), "{out}{err}");
    assert!(err.contains("nothing within 300 ms"), "{err}");
    // A bound on correctness (it stopped waiting), not a performance figure.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    drop(silent);
}

#[tokio::test]
async fn without_an_admin_address_it_says_what_to_add_and_exits_3() {
    let dir = temp_dir("probe");
    let path = dir.join("no-admin.toml");
    std::fs::write(
        &path,
        "[[listener]]\nlisten = \"127.0.0.1:8080\"\npool = \"p\"\n[pool.p]\nservers = [ { addr = \"127.0.0.1:9001\" } ]\n",
    )
    .unwrap();
    let path = path.to_str().unwrap();
    let (code, _, err) = probe(&["-c", path]).await;
    assert_eq!(code, Some(3), "{err}");
    assert!(
        err.contains(&format!("{path} has no [admin] listen address"))
            && err.contains("listen = \"127.0.0.1:9900\""),
        "{err}"
    );
    let (code, _, err) = probe(&["--admin", "not an address"]).await;
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains("is not host:port"), "{err}");
    // --quiet: the status alone.
    let (code, out, err) = probe(&["-q", "-c", path]).await;
    assert_eq!((code, out.as_str(), err.as_str()), (Some(3), "", ""));
    let _ = std::fs::remove_dir_all(&dir);
}

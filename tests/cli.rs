//! The `switchyard` command as a user runs it: `check` on good and bad files, `run` and a
//! clean stop on SIGTERM, the demo with its dashboard.
mod common;
mod live_common;

use std::process::Command;
use std::time::Duration;

use common::*;

fn switchyard(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .output()
        .expect("run switchyard")
}

/// A config file in a temp directory of its own, removed on drop.
struct ConfigFile {
    dir: std::path::PathBuf,
    path: String,
}

impl ConfigFile {
    fn new(name: &str, toml: &str) -> ConfigFile {
        let dir = temp_dir("cli");
        let path = dir.join(name);
        std::fs::write(&path, toml).unwrap();
        let path = path.to_str().unwrap().to_string();
        ConfigFile { dir, path }
    }

    /// `switchyard check -c FILE`: its exit code and standard error.
    fn check(&self) -> (Option<i32>, String) {
        let out = switchyard(&["check", "-c", &self.path]);
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for ConfigFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[test]
fn every_example_checks_ok() {
    for entry in std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/examples")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "toml") {
            // `check -c FILE`, and `check FILE` as `plan` and `import` take theirs.
            for args in [vec!["check", "-c"], vec!["check"]] {
                let out = switchyard(&[&args[..], &[path.to_str().unwrap()]].concat());
                let stdout = String::from_utf8_lossy(&out.stdout);
                assert!(
                    out.status.success() && stdout.starts_with("ok"),
                    "{args:?} {}: {stdout}{}",
                    path.display(),
                    String::from_utf8_lossy(&out.stderr)
                );
            }
        }
    }
}

#[test]
fn check_lists_every_error_with_file_line_column_and_fix() {
    let f = ConfigFile::new(
        "bad.toml",
        r#"[[listener]]
name = "web"
listen = "127.0.0.1:8080"
pool = "nope"

[pool.api]
algorithm = "least_connections"
servers = [ { addr = "127.0.0.1:9001", weight = 0 }, { addr = "not an address" } ]

[pool.empty]
servers = []
"#,
    );
    let p = f.path.as_str();
    let (code, err) = f.check();
    assert_eq!(code, Some(1));
    for expected in [
        format!("error: {p}:4:8: no pool named \"nope\""),
        "help: use one of: api, empty, or define [pool.nope]".to_string(),
        format!("error: {p}:7:13: unknown algorithm \"least_connections\""),
        "help: did you mean \"least_conn\"?".to_string(),
        format!("error: {p}:8:49: weight = 0 is out of range"),
        format!("error: {p}:8:63: server address \"not an address\" is not an address"),
        format!("error: {p}:11:11: pool \"empty\" has no servers"),
        format!("5 error(s) in {p}"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }

    std::fs::write(
        p,
        "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\ntimeout = \"5s\"\n",
    )
    .unwrap();
    let (_, err) = f.check();
    assert!(
        err.contains(&format!("{p}:4:1: unknown field `timeout`")),
        "{err}"
    );

    let out = switchyard(&["check", "-c", f.dir.join("missing.toml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the file"));
}

/// `switchyard run -c FILE`, waited for at most 10 s (killed after that).
fn run_briefly(path: &str) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["run", "-c", path])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run switchyard");
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while child.try_wait().unwrap().is_none() && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    if child.try_wait().unwrap().is_none() {
        let _ = child.kill();
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_tcp_listener_without_pool_is_a_config_error_not_a_panic() {
    // This file passed `check`, then `run` panicked looking up the pool "".
    let f = ConfigFile::new(
        "tcp.toml",
        "[[listener]]\nlisten = \"127.0.0.1:0\"\nprotocol = \"tcp\"\nredirect_https = true\n\n[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n",
    );
    let p = f.path.as_str();
    let (code, err) = f.check();
    assert_eq!(code, Some(1));
    for expected in [
        format!("error: {p}:1:1: this tcp listener has no pool"),
        "help: add pool = \"NAME\"".to_string(),
        format!(
            "error: {p}:4:18: redirect_https is for http/https listeners, not this tcp listener"
        ),
        format!("2 error(s) in {p}"),
    ] {
        assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    }
    let (code, err) = run_briefly(p);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("this tcp listener has no pool"), "{err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn check_reports_shape_errors_and_other_errors_together() {
    let f = ConfigFile::new(
        "mixed.toml",
        r#"[[listener]]
listen = "127.0.0.1:8080"
pool = "web"
timeout = "5s"

  [[listener.route]]
  path_prefix = "/api/"
  pool = "api"

[pool.web]
servers = [ { addr = "127.0.0.1:9001", weight = 0 } ]
"#,
    );
    let p = f.path.as_str();
    let (code, err) = f.check();
    assert_eq!(code, Some(1));
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0].starts_with(&format!("error: {p}:4:1: unknown field `timeout`")),
        "{err}"
    );
    assert_eq!(lines[1], format!("error: {p}:8:10: no pool named \"api\""));
    assert_eq!(
        lines[2],
        format!("error: {p}:11:49: weight = 0 is out of range")
    );
    assert!(err.contains(&format!("3 error(s) in {p}")), "{err}");
}

/// A server name that does not resolve is reported with the file's other errors, in file
/// order, not only once they are fixed (`.invalid` never resolves: RFC 6761). A pool whose
/// `resolver` is itself wrong has its names not asked (another resolver's answer would say
/// nothing true). `run` says the same.
#[test]
fn check_reports_names_that_do_not_resolve_with_the_other_errors() {
    let f = ConfigFile::new(
        "names.toml",
        r#"[[listener]]
listen = "127.0.0.1:8080"
pool = "web"
timeout = "5s"

[pool.web]
servers = [ { addr = "nowhere.invalid:80" }, { addr = "127.0.0.1:9001", weight = 0 } ]

[pool.other]
resolver = "not an address"
servers = [ { addr = "elsewhere.invalid:80" } ]
"#,
    );
    let p = f.path.as_str();
    let (code, err) = f.check();
    assert_eq!(code, Some(1), "{err}");
    let lines: Vec<&str> = err.lines().filter(|l| l.starts_with("error:")).collect();
    assert_eq!(lines.len(), 4, "{err}");
    assert!(lines[0].starts_with(&format!("error: {p}:4:1: unknown field `timeout`")));
    assert!(
        lines[1].starts_with(&format!(
            "error: {p}:7:22: server addr \"nowhere.invalid:80\": the name \"nowhere.invalid\" does not resolve"
        )),
        "{err}"
    );
    assert!(
        err.contains("help: check the name (getent ahosts nowhere.invalid)"),
        "{err}"
    );
    assert!(
        lines[2].starts_with(&format!("error: {p}:7:82: weight = 0")),
        "{err}"
    );
    assert!(lines[3].starts_with(&format!("error: {p}:10:")), "{err}");
    assert!(!err.contains("elsewhere.invalid"), "{err}");
    assert!(err.contains(&format!("4 error(s) in {p}")), "{err}");
    let run = switchyard(&["run", "-c", p]);
    let run_err = String::from_utf8_lossy(&run.stderr);
    assert!(!run.status.success());
    assert!(
        run_err.contains("\"nowhere.invalid\" does not resolve"),
        "{run_err}"
    );
}

#[test]
fn check_lists_every_error_of_the_trial_files_in_one_run() {
    // A user from nginx/HAProxy: a quoted number, a unit-less and a fractional duration, a
    // HAProxy algorithm name, a misspelt listen; each used to hide what came after it in its
    // table, and the type error spoke Rust.
    let f = ConfigFile::new(
        "trial.toml",
        r#"[[listener]]
name = "site"
listen = "127.0.0.1:18090"
pool = "api"

[[listener]]
name = "raw"
listn = "127.0.0.1:18096"
protocol = "tcp"
pool = "apii"

[pool.api]
algorithm = "leastconn"
keepalive = "32"
timeouts = { read = 5, connect = "1.5s" }
servers = [ { addr = "127.0.0.1:18081", weight = 0, fail_timeout = "30" } ]
[pool.api.sticky]
mode = "cookie"
ttl = "99999999999999s"
"#,
    );
    let p = f.path.as_str();
    let (code, err) = f.check();
    assert_eq!(code, Some(1));
    let expected = [
        (
            "8:1: unknown field `listn`",
            "help: did you mean `listen`?".to_string(),
        ),
        (
            "10:8: no pool named \"apii\"",
            "help: use one of: api, or define [pool.apii]".into(),
        ),
        (
            "13:13: unknown algorithm \"leastconn\"",
            "help: did you mean \"least_conn\"? (HAProxy's leastconn)".into(),
        ),
        (
            "14:13: keepalive must be a whole number",
            "help: write keepalive = 32, without quotes".into(),
        ),
        (
            "15:21: read = 5 needs a unit",
            "help: write read = \"5s\" (or \"5ms\")".into(),
        ),
        (
            "15:34: timeouts.connect: \"1.5s\": fractions are not supported",
            "help: write \"1500ms\"".into(),
        ),
        (
            "16:50: weight = 0 is out of range",
            "help: use a whole number from 1 to 1000".into(),
        ),
        (
            "16:68: fail_timeout: \"30\" has no unit",
            "help: write \"30s\" (seconds) or \"30ms\"".into(),
        ),
        (
            "19:7: ttl: \"99999999999999s\" is too long (more than 10 years)",
            "help: write a duration of at most \"10y\"".into(),
        ),
    ];
    let lines: Vec<&str> = err.lines().collect();
    let errors: Vec<usize> = (0..lines.len())
        .filter(|i| lines[*i].starts_with("error:"))
        .collect();
    assert_eq!(errors.len(), expected.len(), "{err}");
    for (i, (message, help)) in errors.iter().zip(expected) {
        assert!(
            lines[*i].starts_with(&format!("error: {p}:{message}")),
            "{message}\n{err}"
        );
        assert!(
            lines[i + 1].starts_with(&format!("  {help}")),
            "{help}\n{err}"
        );
    }
    assert!(err.contains(&format!("9 error(s) in {p}")), "{err}");
}

#[test]
fn a_port_taken_by_another_process_is_named_with_its_line_and_a_fix() {
    // Another process holds the port; `check` cannot know, `run` says where and what to do.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let f = ConfigFile::new(
        "taken.toml",
        &format!(
            "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\npool = \"p\"\n[pool.p]\nservers = [ {{ addr = \"127.0.0.1:9\" }} ]\n"
        ),
    );
    let p = f.path.as_str();
    assert_eq!(f.check().0, Some(0));
    let (code, err) = run_briefly(p);
    assert_eq!(code, Some(1), "{err}");
    // As nginx says it, before anything is bound (tests/second_start.rs: another Switchyard).
    let expected = format!(
        "error: {p}:3:10: listener \"web\": bind() to 127.0.0.1:{port} failed (98: Address already in use): another process listens there"
    );
    assert!(err.contains(&expected), "missing {expected:?} in:\n{err}");
    let help =
        format!("\n  help: `ss -ltnp 'sport = :{port}'` shows which. If it is a Switchyard,");
    assert!(err.contains(&help), "missing {help:?} in:\n{err}");
    drop(taken);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_requests_then_exits() {
    let b = backends(1).await;
    // No readiness delay: this is about the drain (tests/live.rs has the delay).
    let config = format!(
        "shutdown_delay = \"0s\"\n{}",
        simple_config("round_robin", &b, &[])
    );
    let mut lb = LbProcess::start(&config);
    let addr = lb.addr;
    assert_eq!(get(addr, "/").await.status, 200);
    let slow = tokio::spawn(async move { get(addr, "/sleep/500").await });
    wait_until(
        Duration::from_secs(5),
        "the slow request reaches the backend",
        || async { b[0].requests() == 2 },
    )
    .await;
    signal(&lb.child, "TERM");
    let answer = slow.await.unwrap();
    assert_eq!(answer.status, 200, "the in-flight request finished");
    let exited = exited(&mut lb.child, Duration::from_secs(5)).await;
    let status = exited.expect("switchyard exits within 5s of SIGTERM");
    assert!(status.success(), "exit status {status}");
}

/// `switchyard demo` as the README starts it (on ports of its own): it says where it listens
/// and where its dashboard is, balances over its three servers, and the admin listener it
/// names serves the dashboard and the API; Ctrl-C (SIGINT) stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_serves_traffic_and_its_dashboard() {
    use std::io::BufRead;
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["demo", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("run switchyard demo");
    let stdout = child.stdout.take().unwrap();
    // The printed lines, read on a thread to the end (a pipe closed early would fail the
    // demo's next print), and sent here until both addresses are known.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let seen = tokio::task::spawn_blocking(move || {
        let mut seen = Vec::new();
        while let Ok(line) = rx.recv_timeout(Duration::from_secs(30)) {
            let done = line.contains("the dashboard");
            seen.push(line);
            if done {
                break;
            }
        }
        seen
    })
    .await
    .unwrap();
    let url = |marker: &str| -> std::net::SocketAddr {
        let line = seen
            .iter()
            .find(|l| l.contains(marker))
            .unwrap_or_else(|| panic!("no line with {marker:?} in {seen:?}"));
        let at = line.find("http://").unwrap() + "http://".len();
        let rest = &line[at..];
        rest[..rest.find('/').unwrap()].parse().unwrap()
    };
    let traffic = url("listening on");
    let admin = url("the dashboard");
    // The command it suggests runs it again where it was told to listen.
    assert!(
        seen.iter().any(|l| l
            .contains("demo --algorithm least_time --listen 127.0.0.1:0 --admin 127.0.0.1:0  #")),
        "{seen:?}"
    );
    let mut servers = std::collections::BTreeSet::new();
    for _ in 0..6 {
        let a = get(traffic, "/").await;
        assert_eq!(a.status, 200);
        servers.insert(a.server());
    }
    assert_eq!(
        servers.len(),
        3,
        "round robin over three servers: {servers:?}"
    );
    let page = get(admin, "/").await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("<html"), "{}", page.text());
    let pools = get(admin, "/api/pools/demo").await;
    assert_eq!(pools.status, 200);
    for name in ["demo-1", "demo-2", "demo-3"] {
        assert!(pools.text().contains(name), "{}", pools.text());
    }
    // The drain it suggests works: the demo runs from a file of its own, which it names.
    let file = seen
        .iter()
        .find_map(|l| l.strip_prefix("its configuration: "))
        .unwrap_or_else(|| panic!("no configuration line in {seen:?}"))
        .to_string();
    assert!(
        std::fs::read_to_string(&file)
            .unwrap()
            .contains("[pool.demo]")
    );
    let drain = http::Request::put("/api/pools/demo/servers/demo-3")
        .body(http_body_util::Full::new(bytes::Bytes::from(
            r#"{"state": "drain"}"#,
        )))
        .unwrap();
    let a = Client::connect(admin).await.send(drain).await;
    assert_eq!(a.status, 200, "{}", a.text());
    for _ in 0..6 {
        let a = get(traffic, "/").await;
        assert_ne!(a.server(), "demo-3", "drained");
    }
    signal(&child, "INT");
    let status = exited(&mut child, Duration::from_secs(10))
        .await
        .expect("the demo stops within 10 s of Ctrl-C");
    assert!(status.success(), "exit status {status}");
    assert!(
        !std::path::Path::new(&file).exists(),
        "the demo removes its file"
    );
}

/// `switchyard reload -c OTHER.toml` would reload the file the process runs from, not
/// OTHER.toml: an error naming both, exit 1, and no reload. The running file itself, by
/// another path to it (relative, from its directory), reloads.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_of_another_file_than_the_running_one_is_an_error() {
    let b = backends(1).await;
    let admin_port = live_common::free_port();
    let text = format!(
        "[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n\n[pool.p]\nservers = [{{ addr = \"{}\" }}]\n",
        b[0].addr
    );
    let a = ConfigFile::new("a.toml", &text);
    let other = a.dir.join("b.toml");
    std::fs::write(&other, &text).unwrap();
    let other = other.to_str().unwrap();
    let proc = live_common::Proc::start(&["run", "-c", &a.path], &[]);
    let admin = proc.admin().await;
    let running = std::fs::canonicalize(&a.path).unwrap();
    let running = running.display();

    let out = switchyard(&["reload", "-c", other]);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(1), "{stdout}\n{stderr}");
    let said = format!(
        "error: the running Switchyard reads {running}; reload makes it read that file again — edit {running}, or run `switchyard plan {other}` to compare"
    );
    assert!(stderr.contains(&said), "{stderr}");
    assert!(!stdout.contains("reloaded"), "{stdout}");
    let dry = switchyard(&["reload", "-c", other, "--dry-run"]);
    assert_eq!(dry.status.code(), Some(1));
    let status = live_common::api(admin, "GET", "/status", None, None)
        .await
        .json;
    assert_eq!(status["config"]["reloads"]["ok"], 0, "{status:#}");
    assert_eq!(status["config"]["path"], running.to_string());

    // The running file, named relative to its directory: reloaded.
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["reload", "-c", "a.toml"])
        .current_dir(&a.dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("reloaded: nothing changed"), "{stdout}");
    let status = live_common::api(admin, "GET", "/status", None, None)
        .await
        .json;
    assert_eq!(status["config"]["reloads"]["ok"], 1, "{status:#}");
}

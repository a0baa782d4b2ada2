//! The `switchyard` process as an operator meets it: the demo, SIGHUP, the open-file limit and
//! `workers = N`.
mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (curl): scripts/test runs it"]
async fn the_demo_serves_three_named_servers_and_stops_on_ctrl_c() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["--log-level", "warn", "demo", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the demo");
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().expect("the demo prints").unwrap();
    let addr: std::net::SocketAddr = first
        .split("http://")
        .nth(1)
        .and_then(|r| r.split('/').next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {first:?}"));
    let mut printed = Vec::new();
    for line in lines.by_ref().take(20) {
        let line = line.unwrap();
        let last = line.contains("Ctrl-C");
        printed.push(line);
        if last {
            break;
        }
    }
    assert!(
        printed.iter().any(|l| l.contains("curl")),
        "the demo says what to try: {printed:?}"
    );
    std::thread::spawn(move || for _ in lines {});

    let mut client = Client::connect(addr).await;
    let mut names = Vec::new();
    for _ in 0..6 {
        let a = client.get("/").await;
        assert_eq!(a.status, 200);
        names.push(a.text().split(':').next().unwrap_or("").to_string());
    }
    let t = tally(names);
    assert_eq!(
        t.keys().cloned().collect::<Vec<_>>(),
        ["demo-1", "demo-2", "demo-3"],
        "round robin over the three demo servers: {t:?}"
    );
    assert!(t.values().all(|&n| n == 2), "{t:?}");

    signal(&child, "INT");
    let status = exited(&mut child, Duration::from_secs(5))
        .await
        .expect("switchyard exits after the signal");
    assert!(status.success(), "exit status {status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_keeps_the_process_serving_and_sigterm_still_stops_it() {
    let b = backends(2).await;
    let config = format!(
        "shutdown_delay = \"0s\"\n{}",
        simple_config("round_robin", &b, &[])
    );
    let mut lb = LbProcess::start(&config);
    assert_eq!(get(lb.addr, "/").await.status, 200);
    for _ in 0..3 {
        signal(&lb.child, "HUP");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(
            lb.child.try_wait().unwrap().is_none(),
            "SIGHUP must not end the process"
        );
        assert_eq!(get(lb.addr, "/").await.status, 200);
    }
    signal(&lb.child, "TERM");
    let status = exited(&mut lb.child, Duration::from_secs(5))
        .await
        .expect("switchyard exits after the signal");
    assert!(status.success(), "exit status {status}");
}

/// Without `[admin]` (no readiness for anything in front to watch) and without a written
/// `shutdown_delay`, SIGTERM does not wait the default 5 s: the listener closes and the
/// process exits at once, as nginx and HAProxy stop. (The old code served on for 5 s.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_without_admin_stops_without_the_default_delay() {
    let b = backends(1).await;
    let mut lb = LbProcess::start_logging(&simple_config("round_robin", &b, &[]), "info");
    assert_eq!(get(lb.addr, "/").await.status, 200);
    signal(&lb.child, "TERM");
    // Well under the 5 s default: what is left is the drain of no connection.
    let status = exited(&mut lb.child, Duration::from_secs(3))
        .await
        .expect("switchyard exits at once after SIGTERM without [admin]");
    assert!(status.success(), "exit status {status}");
    lb.wait_for_log("stopped", Duration::from_secs(5)).await;
    assert!(
        lb.logged("(shutdown_delay)").is_empty(),
        "no wait announced: {:?}",
        lb.logged("")
    );
}

/// `(soft, hard)` open-file limits of a process, from /proc/PID/limits.
fn open_file_limits(pid: u32) -> (String, String) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files in /proc/PID/limits");
    let mut fields = line["Max open files".len()..].split_whitespace();
    (
        fields.next().unwrap().to_string(),
        fields.next().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_open_file_limit_is_raised_to_the_hard_limit() {
    let (_, hard) = open_file_limits(std::process::id());
    let hard_n: u64 = hard.parse().unwrap_or(u64::MAX);
    assert!(
        hard_n > 1024,
        "this machine's hard open-file limit is {hard}: nothing to raise a soft 1024 to"
    );
    let b = backends(1).await;
    // An HTTP-only config: about 500 proxied clients would exhaust a soft limit of 1024.
    let dir = temp_dir("nofile");
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, simple_config("round_robin", &b, &[])).unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -S -n 1024 && exec {} --log-level warn run -c {}",
            env!("CARGO_BIN_EXE_switchyard"),
            path.display()
        ))
        .spawn()
        .expect("start switchyard");
    let pid = child.id();
    let mut raised = None;
    for _ in 0..250 {
        let (soft, _) = open_file_limits(pid);
        if soft != "1024" {
            raised = Some(soft);
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
    let soft = raised.expect("switchyard raised its soft open-file limit from 1024");
    let soft_n: u64 = soft.parse().unwrap_or(u64::MAX);
    assert_eq!(
        soft_n,
        hard_n.min(1 << 20),
        "soft limit {soft}, hard {hard}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_sets_the_number_of_worker_threads() {
    let b = backends(1).await;
    let config = format!("workers = 3\n{}", simple_config("round_robin", &b, &[]));
    let lb = LbProcess::start(&config);
    assert_eq!(get(lb.addr, "/").await.status, 200);
    let tasks = std::fs::read_dir(format!("/proc/{}/task", lb.child.id())).unwrap();
    let workers = tasks
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .filter(|comm| comm.trim() == "switchyard-w")
        .count();
    assert_eq!(workers, 3, "worker threads named switchyard-w");

    // A reload cannot change it: the reload says so (not `workers 3 → 1` as if done),
    // the threads stay 3, and the next reload says it again until a restart.
    let path = lb.config_path();
    std::fs::write(&path, config.replace("workers = 3", "workers = 1")).unwrap();
    for n in 1..=2 {
        signal(&lb.child, "HUP");
        let said = "not reloaded: workers = 1 in the file, 3 running: a reload cannot change it; restart or upgrade";
        wait_until(
            Duration::from_secs(10),
            "the reload says workers need a restart",
            || async { lb.logged(said).len() == n },
        )
        .await;
    }
    let as_done = lb.logged("reloaded: workers");
    assert!(
        as_done.iter().all(|l| l.contains("not reloaded: workers")),
        "{:?}",
        lb.logged("workers")
    );
    let threads = std::fs::read_dir(format!("/proc/{}/task", lb.child.id()))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.unwrap().path().join("comm")).ok())
        .filter(|comm| comm.trim() == "switchyard-w")
        .count();
    assert_eq!(threads, 3, "still 3 worker threads");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_stop_signal_ends_the_drain_at_once() {
    let b = backends(1).await;
    let config = format!(
        "grace_period = \"30s\"\n{}",
        simple_config("round_robin", &b, &[])
    );
    let mut lb = LbProcess::start(&config);
    let addr = lb.addr;
    // A request that would hold the drain for 20 s.
    let slow = tokio::spawn(async move {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        s.write_all(b"GET /sleep/20000 HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let mut buf = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(25), s.read_to_end(&mut buf)).await;
    });
    wait_until(
        Duration::from_secs(5),
        "the slow request reaches the backend",
        || async { b[0].requests() == 1 },
    )
    .await;
    signal(&lb.child, "TERM");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        lb.child.try_wait().unwrap().is_none(),
        "the first SIGTERM drains"
    );
    signal(&lb.child, "TERM");
    let status = exited(&mut lb.child, Duration::from_secs(3))
        .await
        .expect("switchyard exits after the signal");
    assert!(status.success(), "exit status {status}");
    slow.abort();
}

/// Each health change names its pool, as the failover lines do: active checks taking a
/// server out (`pool=web`) and passive health taking one out after a failed try (`pool=api`;
/// of two servers: a pool of one is never taken out, as in nginx).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_change_log_lines_name_the_pool() {
    let b = backends(1).await;
    // An address nothing listens on: bound, then closed.
    let (dead, dead2) = (common::dead_addr(), common::dead_addr());
    let config = format!(
        "shutdown_delay = \"0s\"\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"web\"\n\
         [[listener.route]]\npath_prefix = \"/api/\"\npool = \"api\"\n\
         [pool.web]\nservers = [{{ addr = \"{}\", name = \"web1\" }}, {{ addr = \"{dead}\", name = \"web3\" }}]\n\
         [pool.web.health]\ninterval = \"100ms\"\ntimeout = \"100ms\"\nfall = 1\n\
         [pool.api]\nservers = [{{ addr = \"{dead}\", name = \"api1\" }}, {{ addr = \"{dead2}\", name = \"api2\" }}]\n[pool.api.retry]\nattempts = 0\n",
        b[0].addr
    );
    let lb = LbProcess::start_logging(&config, "info");
    let down = lb
        .wait_for_log("out of rotation", Duration::from_secs(5))
        .await;
    assert!(
        down.contains("pool=web") && down.contains("server=web3"),
        "{down}"
    );
    assert_eq!(get(lb.addr, "/api/x").await.status, 502);
    let out = lb
        .wait_for_log("server out after", Duration::from_secs(5))
        .await;
    assert!(
        out.contains("pool=api") && out.contains("server=api"),
        "{out}"
    );
}

/// The lines switchyard logs at `info` until it listens, run under `ulimit -n nofile`.
fn startup_log(config: &str, nofile: u32) -> Vec<String> {
    let dir = temp_dir("startup-log");
    let path = dir.join("switchyard.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "ulimit -n {nofile} && exec {} --log-level info run -c {}",
            env!("CARGO_BIN_EXE_switchyard"),
            path.display()
        ))
        .stderr(Stdio::piped())
        .spawn()
        .expect("start switchyard");
    let mut lines = Vec::new();
    for line in BufReader::new(child.stderr.take().unwrap()).lines() {
        let line = line.unwrap();
        let done = line.contains("listening on");
        lines.push(line);
        if done {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(dir);
    assert!(
        lines.iter().any(|l| l.contains("listening on")),
        "{lines:#?}"
    );
    lines
}

/// Under a low open-file limit, the default max_connections lowered to fit is expected:
/// one INFO line, no warning; a value the operator set and that had to be lowered is still
/// a warning.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lowered_default_max_connections_is_said_once_at_info() {
    let b = backends(1).await;
    let two = format!(
        "{}[[listener]]\nname = \"other\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n",
        simple_config("round_robin", &b, &[]).replace("[pool.p]", "[pool.p]\nkeepalive = 2")
    );
    let lines = startup_log(&two, 2048);
    let about: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("max_connections"))
        .collect();
    assert_eq!(about.len(), 1, "{lines:#?}");
    assert!(
        about[0].contains(" INFO ")
            && about[0].contains("listener \"web\" max_connections = ")
            && about[0].contains("listener \"other\" max_connections = "),
        "{about:?}"
    );
    let set = two.replacen(
        "pool = \"p\"\n",
        "pool = \"p\"\nmax_connections = 5000\n",
        1,
    );
    let lines = startup_log(&set, 2048);
    let warned: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains(" WARN ") && l.contains("max_connections = 5000"))
        .collect();
    assert_eq!(warned.len(), 1, "{lines:#?}");
}

//! `switchyard plan` and `switchyard reload` (with `--dry-run`, `--max-moved`) as an operator
//! runs them: the real binary, config files on disk, a real Switchyard running them over
//! real backends, and real clients. What the plan predicts is then measured: the keys of a
//! `hash` pool and the sessions of a sticky pool whose server changed across the reload
//! agree with the share the plan printed; every change the plan lists happens; a dry run
//! changes nothing.
mod common;
mod live_common;

use std::net::SocketAddr;
use std::time::{SystemTime, UNIX_EPOCH};

use common::*;
use live_common::*;
use switchyard::demo::Backend;

/// `switchyard ARGS…`: exit code, stdout, stderr.
fn cli(args: &[&str]) -> (Option<i32>, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(args)
        .env_remove("SWITCHYARD_ADMIN_TOKEN")
        .output()
        .expect("run switchyard");
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The share a plan printed for `pool`: `pool "p" (…): 18.7% of keys move`.
fn printed_share(stdout: &str, pool: &str) -> f64 {
    let line = stdout
        .lines()
        .find(|l| l.trim_start().starts_with(&format!("pool {pool:?} (")) && l.contains("% of "))
        .unwrap_or_else(|| panic!("no keys-moved line for pool {pool:?} in:\n{stdout}"));
    let (_, rest) = line.split_once("): ").unwrap();
    let pct: f64 = rest.split('%').next().unwrap().parse().unwrap();
    pct / 100.0
}

fn entry(b: &Backend, extra: &str) -> String {
    format!(
        "{{ addr = \"{}\", name = \"{}\"{extra} }}",
        b.addr,
        b.name()
    )
}

fn entries(b: &[&Backend]) -> String {
    let v: Vec<String> = b.iter().map(|b| entry(b, "")).collect();
    format!("[ {} ]", v.join(", "))
}

/// The server that answers each key (sent as `header`), over 8 keep-alive connections.
async fn servers_of(addr: SocketAddr, header: &'static str, keys: &[String]) -> Vec<String> {
    let mut tasks = Vec::new();
    for part in keys.chunks(keys.len().div_ceil(8)) {
        let part = part.to_vec();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let mut out = Vec::new();
            for k in part {
                let req = http::Request::get("/")
                    .header(header, k.as_str())
                    .body(http_body_util::Full::new(bytes::Bytes::new()))
                    .unwrap();
                let a = c.send(req).await;
                assert_eq!(a.status, 200, "{}", a.text());
                out.push((a.server(), a.headers.get("set-cookie").cloned()));
            }
            out
        }));
    }
    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.unwrap().into_iter().map(|(s, _)| s));
    }
    all
}

fn share_changed(a: &[String], b: &[String]) -> f64 {
    a.iter().zip(b).filter(|(x, y)| x != y).count() as f64 / a.len() as f64
}

async fn admin_text(admin: SocketAddr, path: &str) -> String {
    api(admin, "GET", path, None, None).await.text
}

/// The issue's question: how many clients of a hash ring move when one server leaves (and
/// another joins)? The plan says, from the running balancer and the new file; the reload is
/// refused above `--max-moved`; a dry run changes nothing; then real traffic before and
/// after the reload measures it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_keys_a_reload_moves_on_a_hash_pool_are_the_share_the_plan_printed() {
    let b = backends(6).await;
    let (port, admin_port) = (free_port(), free_port());
    let text = |servers: &str| {
        format!(
            "[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:{port}\"\npool = \"p\"\n\n[pool.p]\nalgorithm = \"hash\"\nhash_key = \"header:x-user\"\nservers = {servers}\n"
        )
    };
    let old = text(&entries(&[&b[0], &b[1], &b[2], &b[3], &b[4]]));
    let new = text(&entries(&[&b[0], &b[1], &b[2], &b[3], &b[5]]));
    let file = ConfigFile::new("plan-hash", &old);
    let path = file.path.to_str().unwrap().to_string();
    let proc = Proc::start(&["run", "-c", &path], &[]);
    let addr = proc.listener("web").await;
    let admin = proc.admin().await;
    let keys: Vec<String> = (0..3000).map(|i| format!("user-{i}")).collect();
    let before = servers_of(addr, "x-user", &keys).await;

    // The plan against the running balancer, from a new file beside it.
    let next = file.dir.join("next.toml");
    std::fs::write(&next, &new).unwrap();
    let next = next.to_str().unwrap();
    let (code, out, err) = cli(&["plan", next]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let predicted = printed_share(&out, "p");
    for line in [
        format!("- pool \"p\": server {} (s5) removed", b[4].addr),
        format!("+ pool \"p\": server {} (s6) added", b[5].addr),
    ] {
        assert!(out.contains(&line), "{line:?} missing from:\n{out}");
    }
    let (code, _, err) = cli(&["plan", next, "--max-moved", "10%"]);
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("pool \"p\" moves") && err.contains("above --max-moved 10.0%"),
        "{err}"
    );

    // The running file changes; a dry run and a reload over the limit change nothing.
    file.write(&new);
    let config_before = admin_text(admin, "/api/config").await;
    let (code, out, err) = cli(&["reload", "-c", &path, "--dry-run"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("dry run: nothing applied"), "{out}");
    assert_eq!(
        printed_share(&out, "p"),
        predicted,
        "reload prints the same plan:\n{out}"
    );
    let (code, out, err) = cli(&["reload", "-c", &path, "--max-moved", "10%"]);
    assert_eq!(code, Some(2), "{out}\n{err}");
    assert!(
        err.contains("not reloaded: the running configuration stays"),
        "{err}"
    );
    assert_eq!(admin_text(admin, "/api/config").await, config_before);
    let status = api(admin, "GET", "/status", None, None).await.json;
    assert_eq!(status["config"]["reloads"]["ok"], 0, "{status:#}");
    assert_eq!(
        servers_of(addr, "x-user", &keys[..300]).await,
        before[..300],
        "the same servers after the dry run"
    );

    // A file that does not pass `check`: a dry run prints its errors and asks for no reload.
    file.write(&new.replace("algorithm = \"hash\"", "algorithm = \"hsah\""));
    let (code, out, err) = cli(&["reload", "-c", &path, "--dry-run"]);
    assert_eq!(code, Some(1), "{out}\n{err}");
    assert!(
        err.contains(&format!("error: {path}:")) && err.contains("\"hsah\""),
        "{err}"
    );
    let status = api(admin, "GET", "/status", None, None).await.json;
    assert_eq!(status["config"]["reloads"]["error"], 0, "{status:#}");
    file.write(&new);

    // The reload, then the same keys again.
    let (code, out, err) = cli(&["reload", "-c", &path]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_eq!(printed_share(&out, "p"), predicted);
    assert!(
        out.contains(&format!("reloaded: pool \"p\": server {} added", b[5].addr)),
        "{out}"
    );
    let after = servers_of(addr, "x-user", &keys).await;
    let measured = share_changed(&before, &after);
    // A ring moves only what it must: keys of s5 leave it, keys reach s6, no other move.
    for (x, y) in before.iter().zip(&after) {
        assert!(x == y || x == "s5" || y == "s6", "{x} → {y}");
    }
    // 3,000 keys measured against 100,000 planned: the standard error of the measure is
    // about 0.9 points; 3.5 points is four of them.
    println!(
        "hash pool, s5 out and s6 in: plan {:.1}%, measured {:.1}% of 3,000 keys",
        predicted * 100.0,
        measured * 100.0
    );
    assert!(
        (measured - predicted).abs() <= 0.035,
        "plan {predicted}, measured {measured}"
    );
}

/// Sticky sessions: a third of the sessions of a three-server round robin pool live on the
/// server a reload removes; the plan says 33.3%, and that many clients, sending their
/// cookie after the reload, are answered by another server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sticky_sessions_a_reload_moves_are_the_share_the_plan_printed() {
    let b = backends(3).await;
    let admin_port = free_port();
    let text = |servers: &str| {
        format!(
            "[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n\n[pool.p]\nservers = {servers}\n\n[pool.p.sticky]\nmode = \"cookie\"\nname = \"SRV\"\n"
        )
    };
    let file = ConfigFile::new("plan-sticky", &text(&entries(&[&b[0], &b[1], &b[2]])));
    let path = file.path.to_str().unwrap().to_string();
    let proc = Proc::start(&["run", "-c", &path], &[]);
    let addr = proc.listener("web").await;
    proc.admin().await;
    // 600 clients, each starting a session: (its cookie, its server).
    let mut sessions = Vec::new();
    for _ in 0..600 {
        let a = get(addr, "/").await;
        let cookie = a.headers["set-cookie"].to_str().unwrap();
        let cookie = cookie.split(';').next().unwrap().to_string();
        sessions.push((cookie, a.server()));
    }
    file.write(&text(&entries(&[&b[0], &b[1]])));
    let (code, out, err) = cli(&["reload", "-c", &path]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let predicted = printed_share(&out, "p");
    assert!(
        out.contains("of sessions move (their server leaves the pool"),
        "{out}"
    );
    let mut moved = 0;
    for (cookie, server) in &sessions {
        let a = get_with(addr, "/", &[("cookie", cookie)]).await;
        if a.server() != *server {
            moved += 1;
        }
    }
    let measured = moved as f64 / sessions.len() as f64;
    println!(
        "sticky cookie pool, s3 removed: plan {:.1}%, measured {:.1}% of 600 sessions",
        predicted * 100.0,
        measured * 100.0
    );
    assert!(
        (measured - predicted).abs() <= 0.01,
        "plan {predicted}, measured {measured}"
    );
}

/// A self-signed pair for `name` valid until `days` from now (at midnight UTC), written in
/// `dir` as FILE.pem/.key.
fn cert(dir: &std::path::Path, file: &str, name: &str, days: i64) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let date = switchyard::plan::certs::date(now + days * 86_400);
    let ymd: Vec<i64> = date.split('-').map(|p| p.parse().unwrap()).collect();
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec![name.to_string()]).unwrap();
    params.not_after = rcgen::date_time_ymd(ymd[0] as i32, ymd[1] as u8, ymd[2] as u8);
    let c = params.self_signed(&key).unwrap();
    std::fs::write(dir.join(format!("{file}.pem")), c.pem()).unwrap();
    std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
    date
}

/// Each kind of change, planned against a running Switchyard with a change made over the
/// admin API: the plan of `plan NEW` compares with the running state as it is (the API's
/// weight included, with a note), the plan of `reload` with what the reload will really do
/// (the API's weight kept); then the reload does each thing the plan said.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_change_the_plan_lists_is_what_the_reload_does() {
    let b = backends(5).await;
    let (web, old, extra, tls, admin_port) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let file = ConfigFile::new("plan-kinds", "");
    let soon = cert(&file.dir, "soon", "example.com", 10);
    cert(&file.dir, "later", "example.com", 400);
    let config = |listeners: &str, routes: &str, web_pool: &str, api_pool: &str, pair: &str| {
        format!(
            r#"[admin]
listen = "127.0.0.1:{admin_port}"

[[listener]]
name = "web"
listen = "127.0.0.1:{web}"
pool = "web"
{routes}
[[listener]]
name = "tls"
protocol = "https"
listen = "127.0.0.1:{tls}"
pool = "web"

  [[listener.tls]]
  cert = "{pair}.pem"
  key = "{pair}.key"
{listeners}
[pool.web]
servers = {web_pool}

[pool.api]
servers = {api_pool}
"#
        )
    };
    let api_route = "\n  [[listener.route]]\n  path_prefix = \"/api/\"\n  pool = \"api\"\n";
    let old_text = config(
        &format!("\n[[listener]]\nname = \"old\"\nlisten = \"127.0.0.1:{old}\"\npool = \"web\"\n"),
        api_route,
        &entries(&[&b[0], &b[1], &b[2]]),
        &entries(&[&b[3]]),
        "soon",
    );
    let new_text = config(
        &format!(
            "\n[[listener]]\nname = \"extra\"\nlisten = \"127.0.0.1:{extra}\"\npool = \"api\"\n"
        ),
        &format!(
            "{api_route}\n  [[listener.route]]\n  path_prefix = \"/api/v2/\"\n  pool = \"web\"\n"
        ),
        &format!(
            "[ {}, {}, {} ]",
            entry(&b[0], ""),
            entry(&b[1], ", weight = 3"),
            entry(&b[2], ", drain = true")
        ),
        &entries(&[&b[4]]),
        "later",
    );
    file.write(&old_text);
    let path = file.path.to_str().unwrap().to_string();
    let proc = Proc::start(&["run", "-c", &path], &[]);
    let addr = proc.listener("web").await;
    let admin = proc.admin().await;

    // Nothing changed yet; the certificate's date is a warning already.
    let (code, out, err) = cli(&["reload", "-c", &path, "--dry-run"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains(&format!("day(s), on {soon}")), "{out}");
    assert!(out.contains("plan: no changes, 1 warning(s)"), "{out}");

    // The operator weighs s1 over the API: a reload of a file that does not touch it keeps it.
    let s1 = b[0].addr.to_string();
    let a = api(
        admin,
        "PUT",
        &format!("/api/pools/web/servers/{s1}"),
        Some("{\"weight\": 5}"),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    file.write(&new_text);
    let (code, against_running, err) = cli(&["plan", &path]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        against_running.contains(&format!("~ pool \"web\": server {s1} re-weighted 5 → 1")),
        "{against_running}"
    );
    assert!(
        against_running
            .contains("note: the running configuration has changes made over the admin API"),
        "{against_running}"
    );
    let (code, out, err) = cli(&["reload", "-c", &path, "--dry-run"]);
    assert_eq!(code, Some(0), "{err}");
    let d = file.dir.display();
    for line in [
        format!("+ listener \"extra\" binds 127.0.0.1:{extra} (http)"),
        format!("- listener \"old\" closes 127.0.0.1:{old} (http); its connections drain"),
        "+ listener \"web\": route 2 added: path_prefix = \"/api/v2/\" → pool \"web\"".to_string(),
        "! listener \"web\": route 2 (path_prefix = \"/api/v2/\" → pool \"web\") can never match: route 1 (path_prefix = \"/api/\") comes first and matches every request it would".to_string(),
        format!("~ pool \"web\": server {} re-weighted 1 → 3", b[1].addr),
        format!("~ pool \"web\": server {} drained (ready → drain): no new clients", b[2].addr),
        format!("+ pool \"api\": server {} (s5) added", b[4].addr),
        format!("- pool \"api\": server {} (s4) removed (its requests in flight finish)", b[3].addr),
        format!("~ listener \"tls\": certificate for example.com replaced: {d}/soon.pem (expires {soon})"),
    ] {
        assert!(out.contains(&line), "{line:?} missing from:\n{out}");
    }
    assert!(
        !out.contains(&format!("server {s1} re-weighted")),
        "the API's weight stays:\n{out}"
    );
    assert!(
        !out.contains("day(s), on"),
        "the new certificate is good for a year:\n{out}"
    );

    let (code, _, err) = cli(&["reload", "-c", &path]);
    assert_eq!(code, Some(0), "{err}");
    // Each change, as it now runs.
    assert_eq!(
        get(SocketAddr::from(([127, 0, 0, 1], extra)), "/")
            .await
            .server(),
        "s5"
    );
    assert!(
        tokio::net::TcpStream::connect(("127.0.0.1", old))
            .await
            .is_err(),
        "old closed"
    );
    assert_eq!(
        get(addr, "/api/v2/x").await.server(),
        "s5",
        "route 2 never matches"
    );
    let pool = api(admin, "GET", "/api/pools/web", None, None).await.json;
    assert_eq!(server(&pool, "s1")["weight"], 5);
    assert_eq!(server(&pool, "s2")["weight"], 3);
    assert_eq!(server(&pool, "s3")["state"], "drain");
    let pool = api(admin, "GET", "/api/pools/api", None, None).await.json;
    assert_eq!(pool["servers"].as_array().unwrap().len(), 1);
    assert_eq!(server(&pool, "s5")["state"], "ready");
    // After the reload the plan has nothing left to say (and no warning: the new
    // certificate is good for a year).
    let (code, out, _) = cli(&["reload", "-c", &path, "--dry-run"]);
    assert_eq!(code, Some(0));
    assert!(
        out.contains("plan: no changes, 1 warning(s)"),
        "the shadowed route stays:\n{out}"
    );
}

/// Two files, no balancer: a file that does not pass `check` is named with its line, and
/// the exit status tells a CI job what happened.
#[test]
fn two_files_are_planned_without_a_balancer_and_errors_exit_1() {
    let file = ConfigFile::new(
        "plan-files",
        "[[listener]]\nlisten = \"127.0.0.1:8080\"\npool = \"p\"\n[pool.p]\nalgorithm = \"maglev\"\nservers = [ { addr = \"127.0.0.1:9001\" }, { addr = \"127.0.0.1:9002\" } ]\n",
    );
    let old = file.path.to_str().unwrap();
    let new = file.dir.join("new.toml");
    std::fs::write(
        &new,
        file.text().replace(", { addr = \"127.0.0.1:9002\" }", ""),
    )
    .unwrap();
    let new = new.to_str().unwrap();
    let (code, out, err) = cli(&["plan", old, new, "--max-moved", "60%"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let share = printed_share(&out, "p");
    assert!(
        (0.45..0.55).contains(&share),
        "half the keys lived on the server removed: {out}"
    );
    assert!(out.contains("within --max-moved 60.0%"), "{out}");
    let (code, _, _) = cli(&["plan", old, new, "--max-moved", "40%"]);
    assert_eq!(code, Some(2));
    std::fs::write(file.dir.join("bad.toml"), "[pool.p]\nservers = []\n").unwrap();
    let bad = file.dir.join("bad.toml");
    let (code, _, err) = cli(&["plan", old, bad.to_str().unwrap()]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains(&format!(
            "error: {}:2:11: pool \"p\" has no servers",
            bad.display()
        )),
        "{err}"
    );
    // One file without [admin] and no --admin: nothing to ask.
    let (code, _, err) = cli(&["plan", new]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("has no [admin] listener, which switchyard plan talks to"),
        "{err}"
    );
    // No file at all: that one error, not also "has no [admin] listener".
    let missing = file.dir.join("absent.toml");
    let missing = missing.to_str().unwrap();
    for args in [vec!["reload", "-c", missing], vec!["plan", missing]] {
        let (code, _, err) = cli(&args);
        assert_eq!(code, Some(1));
        assert_eq!(
            err.trim_end(),
            format!(
                "error: {missing}: cannot read the file: No such file or directory (os error 2)\n  help: pass an existing file with -c PATH"
            ),
            "{args:?}"
        );
    }
}

/// A value Switchyard derives is said with where it comes from when a reload changes it,
/// and not at all when it does not: under `ulimit -n 512` the default max_connections is
/// lowered to fit; a reload that changes the pools' idle connections (what the process
/// keeps descriptors for) changes the lowered value, and says why; a second server ends
/// nginx's lone-server rule (max_fails 0), and that says why too. A reload of the same file
/// changes nothing and says nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_derived_value_is_a_change_only_when_it_changes_and_says_from_what() {
    let b = backends(2).await;
    let admin_port = free_port();
    let text = |servers: &str, extra: &str| {
        format!(
            "[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\n{extra}servers = {servers}\n"
        )
    };
    let file = ConfigFile::new("derived", &text(&entries(&[&b[0]]), ""));
    let path = file.path.to_str().unwrap().to_string();
    let mut cmd = std::process::Command::new("sh");
    cmd.args([
        "-c",
        "ulimit -n 512 && exec \"$0\" --log-level info run -c \"$1\"",
        env!("CARGO_BIN_EXE_switchyard"),
        &path,
    ])
    .stderr(std::process::Stdio::piped());
    let proc = Proc::adopt(cmd.spawn().expect("start switchyard under ulimit -n 512"));
    proc.line("admin endpoints on", std::time::Duration::from_secs(10))
        .await;
    proc.line(
        "connection limits fitted to the open-file limit of 512",
        std::time::Duration::from_secs(1),
    )
    .await;

    let (code, out, err) = cli(&["reload", "-c", &path]);
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("reloaded: nothing changed"), "{out}");
    assert!(!out.contains("max_connections"), "{out}");

    std::fs::write(
        &file.path,
        text(&entries(&[&b[0], &b[1]]), "keepalive = 8\n"),
    )
    .unwrap();
    let (code, out, err) = cli(&["reload", "-c", &path]);
    assert_eq!(code, Some(0), "{out}{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("reloaded: listener \"web\": max_connections "))
        .unwrap_or_else(|| panic!("the lowered value changed: {out}"));
    assert!(
        line.contains("(derived: max_connections = 10000 lowered to fit the open-file limit of 512 descriptors"),
        "{line}"
    );
    let lone = out
        .lines()
        .find(|l| l.starts_with("reloaded:") && l.contains("max_fails/fail_timeout 0/"))
        .unwrap_or_else(|| panic!("the lone server's rule ended: {out}"));
    assert!(
        lone.contains("(derived: the only server of a pool"),
        "{lone}"
    );
    assert!(lone.contains("the pool now has 2 servers"), "{lone}");

    let (code, out, _) = cli(&["reload", "-c", &path]);
    assert_eq!(code, Some(0));
    assert!(out.contains("reloaded: nothing changed"), "{out}");
}

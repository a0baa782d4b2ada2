//! Changing a running Switchyard under load, with real sockets and real clients: ten
//! reloads in a row, a reload of a broken file, a drain, a listener removed. Every load is
//! bounded (clients × requests, and time); every wait has a deadline; each change is checked
//! in the traffic sent after its reload returned.
mod common;
mod live_common;

use std::time::{Duration, Instant};

use common::*;
use live_common::*;
use switchyard::demo::Backend;

/// The pool/listener layout of one step of the ten-reload test.
#[derive(Clone)]
struct Step {
    /// (backend index, weight, drain) of pool "web".
    web: Vec<(usize, u32, bool)>,
    algorithm: &'static str,
    /// `hash_key = "header:x-user"` (with `algorithm = "hash"`).
    hash_on_user: bool,
    /// The `/api/` route to pool "api".
    api_route: bool,
    /// A second listener "extra" on pool "web".
    extra: bool,
    keepalive_timeout: &'static str,
}

fn render(step: &Step, b: &[Backend]) -> String {
    let servers: Vec<String> = step
        .web
        .iter()
        .map(|(i, w, drain)| {
            format!(
                "{{ addr = \"{}\", name = \"{}\", weight = {w}{} }}",
                b[*i].addr,
                b[*i].name(),
                if *drain { ", drain = true" } else { "" }
            )
        })
        .collect();
    let route = if step.api_route {
        "  [[listener.route]]\n  path_prefix = \"/api/\"\n  pool = \"api\"\n"
    } else {
        ""
    };
    let extra = if step.extra {
        "[[listener]]\nname = \"extra\"\nlisten = \"127.0.0.1:0\"\npool = \"web\"\n\n"
    } else {
        ""
    };
    let hash = if step.hash_on_user {
        "hash_key = \"header:x-user\"\n"
    } else {
        ""
    };
    format!(
        r#"grace_period = "5s"
shutdown_delay = "0s"

[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "web"
{route}
{extra}[admin]
listen = "127.0.0.1:0"

[pool.web]
algorithm = "{}"
{hash}keepalive_timeout = "{}"
servers = [{}]

[pool.api]
servers = [{{ addr = "{}", name = "{}" }}]
"#,
        step.algorithm,
        step.keepalive_timeout,
        servers.join(", "),
        b[3].addr,
        b[3].name(),
    )
}

async fn reload(admin: std::net::SocketAddr) -> Instant {
    let a = api(admin, "POST", "/api/reload", None, None).await;
    assert_eq!(a.status, 200, "reload: {}", a.text);
    assert!(
        !a.json["changes"].as_array().unwrap().is_empty(),
        "the reload changed something: {}",
        a.text
    );
    Instant::now()
}

/// The servers that answered `path` (`"/"`), or every path under it (`"/api/"`), or any
/// path (`""`).
fn servers_of<'a>(samples: &[&'a Sample], path: &str) -> Vec<&'a str> {
    samples
        .iter()
        .filter(|s| match path {
            "/" => s.path == "/",
            p => s.path.starts_with(p),
        })
        .map(|s| s.server.as_str())
        .collect()
}

fn share(names: &[&str], name: &str) -> f64 {
    names.iter().filter(|n| **n == name).count() as f64 / names.len().max(1) as f64
}

/// The issue's first proof: several keep-alive clients send a bounded steady load while the
/// config file is reloaded ten times (servers added and removed, weights, the algorithm, a
/// listener added, a route removed, a drain, a pool setting): no request fails, no
/// connection is reset, and each change shows in the traffic sent right after its reload.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_reloads_under_steady_load_fail_nothing_and_each_shows_at_once() {
    let b = vec![
        Backend::start("s1", Duration::ZERO).await.unwrap(),
        Backend::start("s2", Duration::ZERO).await.unwrap(),
        Backend::start("s3", Duration::ZERO).await.unwrap(),
        Backend::start("a1", Duration::ZERO).await.unwrap(),
    ];
    let mut step = Step {
        web: vec![(0, 1, false), (1, 1, false)],
        algorithm: "round_robin",
        hash_on_user: false,
        api_route: true,
        extra: false,
        keepalive_timeout: "60s",
    };
    let file = ConfigFile::new("ten", &render(&step, &b));
    let lb = start_file(&file).await;
    let (web, admin) = (lb.local_addr("web").unwrap(), lb.admin_addr().unwrap());
    let mut plan = Plan::new(web, vec![Kind::KeepAlive; 6]);
    plan.paths = vec!["/".into(), "/".into(), "/api/x".into()];
    plan.user_header = true;
    plan.strict = true;
    plan.max_per_client = 1_500;
    let load = Load::start(plan);
    load.wait_answers(100, Duration::from_secs(20)).await;

    // (what, when the reload was asked, when it returned)
    let mut marks: Vec<(&str, Instant, Instant)> = Vec::new();
    let mut apply = async |name: &'static str, step: &Step| {
        file.write(&render(step, &b));
        let asked = Instant::now();
        marks.push((name, asked, reload(admin).await));
        load.wait_answers(300, Duration::from_secs(30)).await;
    };

    step.web.push((2, 1, false));
    apply("add s3", &step).await;
    step.web[0].1 = 4;
    apply("weight s1 = 4", &step).await;
    step.algorithm = "hash";
    step.hash_on_user = true;
    apply("algorithm hash on x-user", &step).await;
    step.algorithm = "round_robin";
    step.hash_on_user = false;
    step.web[0].1 = 1;
    apply("back to round robin", &step).await;
    step.web.retain(|(i, _, _)| *i != 1);
    apply("remove s2", &step).await;
    step.extra = true;
    apply("add listener extra", &step).await;
    let extra = lb.local_addr("extra").expect("the new listener is bound");
    let a = get(extra, "/").await;
    assert_eq!(a.status, 200, "the new listener serves at once");
    step.api_route = false;
    apply("remove the /api/ route", &step).await;
    step.web[0].2 = true;
    apply("drain s1", &step).await;
    step.web[0].2 = false;
    step.web.push((1, 2, false));
    apply("s1 ready, s2 back with weight 2", &step).await;
    step.keepalive_timeout = "30s";
    step.extra = false;
    apply("pool setting changed, listener extra removed", &step).await;
    wait_until(Duration::from_secs(10), "listener extra closed", || async {
        tokio::net::TcpStream::connect(extra).await.is_err()
    })
    .await;
    let report = load.finish().await;

    assert_eq!(marks.len(), 10);
    assert!(
        report.failures.is_empty(),
        "{} failed of {}: {:?}",
        report.failures.len(),
        report.samples.len(),
        &report.failures[..report.failures.len().min(10)]
    );
    assert_eq!(report.resets, 0, "connection resets");
    assert_eq!(report.retried, 0, "no request had to be sent twice");
    assert!(
        report.ok() >= 1_000,
        "a steady load: {} answers",
        report.ok()
    );

    // Each change, in the answers to requests sent after its reload returned (and before
    // the next one).
    let window = |i: usize| {
        let end = marks.get(i + 1).map_or(Instant::now(), |m| m.1);
        report.between(marks[i].2, end)
    };
    let w = window(0);
    let names = servers_of(&w, "/");
    assert!(names.contains(&"s3"), "{}: {names:?}", marks[0].0);
    assert!(
        !servers_of(
            &report.between(Instant::now() - Duration::from_secs(3600), marks[0].1),
            "/"
        )
        .contains(&"s3"),
        "s3 before it was added"
    );
    let names = servers_of(&window(1), "/");
    let s1 = share(&names, "s1");
    assert!(
        (0.55..0.8).contains(&s1),
        "{}: s1 took {s1:.2} of {names:?}",
        marks[1].0
    );
    // hash on x-user: each client sticks to one server.
    let w = window(2);
    for c in 0..6 {
        let mut mine: Vec<&str> = w
            .iter()
            .filter(|s| s.client == c && s.path == "/")
            .map(|s| s.server.as_str())
            .collect();
        mine.dedup();
        assert_eq!(mine.len(), 1, "{}: client {c} went to {mine:?}", marks[2].0);
    }
    let w = window(3);
    let spread = (0..6)
        .filter(|c| {
            let mut mine: Vec<&str> = w
                .iter()
                .filter(|s| s.client == *c && s.path == "/")
                .map(|s| s.server.as_str())
                .collect();
            mine.sort_unstable();
            mine.dedup();
            mine.len() > 1
        })
        .count();
    assert!(spread >= 5, "{}: only {spread} clients spread", marks[3].0);
    let names = servers_of(&window(4), "/");
    assert!(!names.contains(&"s2"), "{}: {names:?}", marks[4].0);
    assert!(names.contains(&"s1") && names.contains(&"s3"));
    let api_after = servers_of(&window(6), "/api/");
    assert!(
        !api_after.is_empty() && api_after.iter().all(|n| *n == "s1" || *n == "s3"),
        "{}: /api/ went to {api_after:?}",
        marks[6].0
    );
    let api_before = servers_of(&window(5), "/api/");
    assert!(api_before.iter().all(|n| *n == "a1"), "{api_before:?}");
    let names = servers_of(&window(7), "");
    assert!(
        names.iter().all(|n| *n == "s3"),
        "{}: s1 drained, {names:?}",
        marks[7].0
    );
    let names = servers_of(&window(8), "");
    assert!(
        names.contains(&"s1") && names.contains(&"s2"),
        "{}: {names:?}",
        marks[8].0
    );
    let names = servers_of(&window(9), "");
    assert!(names.contains(&"s2"), "{}: {names:?}", marks[9].0);
    println!(
        "ten reloads: {} requests from 6 keep-alive clients, {} failed, {} resets, {} sent twice",
        report.samples.len(),
        report.failures.len(),
        report.resets,
        report.retried
    );
    lb.shutdown().await;
}

/// A broken file under load: the reload is refused with every error (file:line:column and
/// its fix) over the API, on `switchyard reload`'s stderr with exit status 1, and in the
/// metrics; the old configuration keeps serving and no request fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_reload_under_load_changes_nothing_and_says_why() {
    let b = backends(2).await;
    let good = format!(
        "shutdown_delay = \"0s\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{}",
        simple_config("round_robin", &b, &[])
    );
    let file = ConfigFile::new("broken", &good);
    let lb = start_file(&file).await;
    let (web, admin) = (lb.local_addr("web").unwrap(), lb.admin_addr().unwrap());
    let status = api(admin, "GET", "/status", None, None).await.json;
    let sha = status["config"]["sha256"].as_str().unwrap().to_string();
    assert_eq!(sha, switchyard::runtime::sha256(&good));

    let mut plan = Plan::new(
        web,
        vec![
            Kind::KeepAlive,
            Kind::KeepAlive,
            Kind::Fresh,
            Kind::KeepAlive,
        ],
    );
    plan.strict = true;
    plan.max_per_client = 1_000;
    let load = Load::start(plan);
    load.wait_answers(300, Duration::from_secs(20)).await;

    // Two mistakes: a misspelt algorithm and a zero weight (and the admin still pointing
    // where it is, so `switchyard reload` finds it).
    let broken = good
        .replace("algorithm = \"round_robin\"", "algorithm = \"round_robn\"")
        .replace("weight = 1 }, {", "weight = 0 }, {");
    assert_ne!(broken, good);
    file.write(&broken);
    let a = api(admin, "POST", "/api/reload", None, None).await;
    assert_eq!(a.status, 422, "{}", a.text);
    let errors: Vec<String> = a.json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["text"].as_str().unwrap().to_string())
        .collect();
    let path = file.path.display().to_string();
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert!(
        errors
            .iter()
            .all(|e| e.starts_with(&format!("error: {path}:")) && e.contains("\n  help: ")),
        "{errors:#?}"
    );
    assert!(errors[0].contains("round_robn"), "{errors:#?}");
    assert!(errors[1].contains("weight = 0"), "{errors:#?}");

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["reload", "--admin", &admin.to_string(), "-c"])
        .arg(&file.path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "stderr: {stderr}");
    for e in &errors {
        assert!(stderr.contains(e.as_str()), "{e:?} missing from:\n{stderr}");
    }
    assert!(
        stderr.contains("the running configuration stays"),
        "{stderr}"
    );

    load.wait_answers(300, Duration::from_secs(20)).await;
    // Fixed again: it takes.
    file.write(&good.replace("weight = 1 }]", "weight = 2 }]"));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["reload", "--admin", &admin.to_string(), "-c"])
        .arg(&file.path)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("weight 1 → 2"), "{stdout}");
    let report = load.finish().await;
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.resets, 0);
    let names: Vec<&str> = report.samples.iter().map(|s| s.server.as_str()).collect();
    assert!(names.contains(&"s1") && names.contains(&"s2"));

    let m = api(admin, "GET", "/metrics", None, None).await.text;
    assert!(
        m.contains("switchyard_reloads_total{result=\"ok\"} 1\n"),
        "{m}"
    );
    assert!(
        m.contains("switchyard_reloads_total{result=\"error\"} 2\n"),
        "{m}"
    );
    assert!(
        m.contains("switchyard_config_last_reload_successful 1\n"),
        "{m}"
    );
    let status = api(admin, "GET", "/status", None, None).await.json;
    assert_eq!(status["config"]["reloads"]["error"], 2);
    assert_ne!(
        status["config"]["sha256"].as_str().unwrap(),
        sha,
        "the fixed file is loaded"
    );
    println!(
        "broken reload: {} requests, {} failed, {} resets",
        report.samples.len(),
        report.failures.len(),
        report.resets
    );
    lb.shutdown().await;
}

/// Drain under load: the drained server finishes its in-flight requests (slow ones), gets no
/// new one, and the API shows it idle; no client sees an error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drain_under_load_finishes_in_flight_and_takes_no_new_requests() {
    let b = backends(2).await;
    let file = ConfigFile::new(
        "drain",
        &format!(
            "shutdown_delay = \"0s\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{}",
            simple_config("round_robin", &b, &[])
        ),
    );
    let lb = start_file(&file).await;
    let (web, admin) = (lb.local_addr("web").unwrap(), lb.admin_addr().unwrap());
    let mut plan = Plan::new(web, vec![Kind::KeepAlive, Kind::KeepAlive, Kind::Fresh]);
    plan.strict = true;
    plan.max_per_client = 1_500;
    let load = Load::start(plan);
    load.wait_answers(60, Duration::from_secs(20)).await;

    // Slow requests on both servers (round robin spreads them).
    let slow: Vec<_> = (0..4)
        .map(|_| tokio::spawn(async move { get(web, "/sleep/1500").await }))
        .collect();
    let s1 = &b[0];
    wait_until(Duration::from_secs(5), "slow requests on s1", || async {
        let p = api(admin, "GET", "/api/pools/p", None, None).await.json;
        server(&p, "s1")["in_flight"].as_u64().unwrap() >= 1
    })
    .await;
    let a = api(
        admin,
        "PUT",
        "/api/pools/p/servers/s1",
        Some(r#"{"state": "drain"}"#),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let drained_at = Instant::now();
    let seen_by_s1 = s1.requests();
    assert_eq!(a.json["server"]["state"], "drain");
    assert_eq!(
        a.json["server"]["idle"], false,
        "slow requests still run on it"
    );
    assert!(a.json["persistence"].as_str().unwrap().contains("reload"));
    assert_eq!(
        a.json["changes"][0],
        "pool \"p\": server ".to_string() + &s1.addr.to_string() + ": state ready → drain"
    );

    for s in slow {
        assert_eq!(s.await.unwrap().status, 200, "in-flight requests finish");
    }
    wait_until(Duration::from_secs(5), "the API shows s1 idle", || async {
        let p = api(admin, "GET", "/api/pools/p", None, None).await.json;
        let s = server(&p, "s1");
        s["idle"] == true && s["drained"] == true && s["in_flight"] == 0
    })
    .await;
    load.wait_answers(200, Duration::from_secs(20)).await;
    let report = load.finish().await;
    assert_eq!(
        s1.requests(),
        seen_by_s1,
        "s1 got no new request after the drain"
    );
    assert!(report.after(drained_at).iter().all(|s| s.server == "s2"));
    assert!(report.failures.is_empty(), "{:?}", report.failures);
    assert_eq!(report.resets, 0);
    println!(
        "drain: {} requests, {} failed, 4 slow requests finished",
        report.samples.len(),
        report.failures.len()
    );
    lb.shutdown().await;
}

/// A listener a reload removes stops accepting, finishes the request it runs, and closes
/// its idle keep-alive connections; the listeners that stay keep theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_removed_listener_finishes_its_requests_and_the_others_keep_their_connections() {
    let b = backends(1).await;
    let both = format!(
        "grace_period = \"10s\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{}\n[[listener]]\nname = \"old\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n",
        simple_config("round_robin", &b, &[])
    );
    let file = ConfigFile::new("removed", &both);
    let lb = start_file(&file).await;
    let (web, old, admin) = (
        lb.local_addr("web").unwrap(),
        lb.local_addr("old").unwrap(),
        lb.admin_addr().unwrap(),
    );
    let mut stays = Client::connect(web).await;
    assert_eq!(stays.get("/").await.status, 200);
    let mut idle = Client::connect(old).await;
    assert_eq!(idle.get("/").await.status, 200);
    let slow = tokio::spawn(async move { get(old, "/sleep/1000").await });
    wait_until(Duration::from_secs(5), "the slow request runs", || async {
        b[0].requests() == 3
    })
    .await;
    file.write(&both.replace(
        "[[listener]]\nname = \"old\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n",
        "",
    ));
    let a = api(admin, "POST", "/api/reload", None, None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        a.text.contains("listener \\\"old\\\" removed"),
        "{}",
        a.text
    );
    wait_until(
        Duration::from_secs(5),
        "the removed listener refuses",
        || async { tokio::net::TcpStream::connect(old).await.is_err() },
    )
    .await;
    assert_eq!(
        slow.await.unwrap().status,
        200,
        "its running request finished"
    );
    assert_eq!(
        stays.get("/").await.status,
        200,
        "the same connection, still served"
    );
    lb.shutdown().await;
}

/// A shutdown first makes `/health/ready` say 503 "draining" while everything still serves
/// (so whatever balances in front takes this instance out), then closes every listener, the
/// admin listener too, and lets in-flight requests finish.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readiness_says_draining_while_the_listeners_still_accept_then_all_close() {
    let b = backends(1).await;
    let toml = format!(
        "grace_period = \"10s\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{}",
        simple_config("round_robin", &b, &[])
    );
    let lb = start_lb(&toml).await;
    let (web, admin) = (lb.local_addr("web").unwrap(), lb.admin_addr().unwrap());
    assert_eq!(get(admin, "/health/ready").await.status, 200);
    // SIGTERM's first step (for shutdown_delay): readiness says draining, traffic still flows.
    lb.set_draining();
    let ready = get(admin, "/health/ready").await;
    assert_eq!(ready.status, 503);
    assert!(ready.text().contains("draining"), "{}", ready.text());
    assert_eq!(get(admin, "/health/live").await.status, 200);
    assert_eq!(get(web, "/").await.status, 200, "the listener still serves");
    let slow = tokio::spawn(async move { get(web, "/sleep/800").await });
    wait_until(
        Duration::from_secs(5),
        "the slow request reaches the backend",
        || async { b[0].requests() == 2 },
    )
    .await;
    // Then every listener stops accepting, the admin listener too (so a new process owns
    // every port), and in-flight requests finish.
    let stopping = tokio::spawn(lb.shutdown());
    wait_until(
        Duration::from_secs(5),
        "every listener, the admin one included, closed",
        || async {
            tokio::net::TcpStream::connect(admin).await.is_err()
                && tokio::net::TcpStream::connect(web).await.is_err()
        },
    )
    .await;
    assert_eq!(
        slow.await.unwrap().status,
        200,
        "the in-flight request finished"
    );
    tokio::time::timeout(Duration::from_secs(5), stopping)
        .await
        .expect("shutdown ends once drained")
        .unwrap();
}

/// A reload that rebuilds a pool (here: a server added) keeps what the servers that stay
/// had: their counters, their in-flight accounting, their idle keep-alive connections and
/// their sticky clients. A listener moved to a new address binds it and lets the old one
/// drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebuilt_pool_keeps_the_state_of_the_servers_that_stay() {
    let b = backends(3).await;
    let text = format!(
        "shutdown_delay = \"0s\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{}[pool.p.sticky]\nmode = \"source_ip\"\n",
        simple_config("round_robin", &b[..2], &[])
    );
    let file = ConfigFile::new("kept", &text);
    let lb = start_file(&file).await;
    let (web, admin) = (lb.local_addr("web").unwrap(), lb.admin_addr().unwrap());
    let mut client = Client::connect(web).await;
    let first = client.get("/").await.server();
    for _ in 0..9 {
        assert_eq!(client.get("/").await.server(), first, "stuck by source_ip");
    }
    let stuck = b.iter().find(|x| x.name() == first).unwrap();
    assert_eq!(
        stuck.connections(),
        1,
        "one upstream connection, kept alive"
    );
    let slow = tokio::spawn(async move { get(web, "/sleep/800").await });
    wait_until(Duration::from_secs(5), "the slow request runs", || async {
        stuck.requests() == 11
    })
    .await;

    let with_third = text.replace(
        "weight = 1 }]",
        &format!(
            "weight = 1 }}, {{ addr = \"{}\", name = \"s3\" }}]",
            b[2].addr
        ),
    );
    let moved = with_third.replace(
        "name = \"web\"\nlisten = \"127.0.0.1:0\"",
        "name = \"web\"\nlisten = \"127.0.0.2:0\"",
    );
    assert_ne!(moved, with_third);
    file.write(&with_third);
    let a = api(admin, "POST", "/api/reload", None, None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        a.text.contains("s3") || a.text.contains(&b[2].addr.to_string()),
        "{}",
        a.text
    );
    let p = api(admin, "GET", "/api/pools/p", None, None).await.json;
    let s = server(&p, &first);
    assert_eq!(s["requests"], 11, "counters kept: {s:#}");
    assert_eq!(
        s["in_flight"], 1,
        "the running request is still counted: {s:#}"
    );
    for _ in 0..10 {
        assert_eq!(client.get("/").await.server(), first, "sticky session kept");
    }
    assert_eq!(
        stuck.connections(),
        2,
        "the idle connection was reused (the slow request opened the second)"
    );
    assert_eq!(slow.await.unwrap().status, 200);
    let p = api(admin, "GET", "/api/pools/p", None, None).await.json;
    assert_eq!(server(&p, &first)["in_flight"], 0);

    // The listener moves: the new address serves at once, the old one stops accepting.
    file.write(&moved);
    let a = api(admin, "POST", "/api/reload", None, None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let new = lb.local_addr("web").unwrap();
    assert_eq!(new.ip(), std::net::IpAddr::from([127, 0, 0, 2]));
    assert_eq!(get(new, "/").await.status, 200);
    wait_until(
        Duration::from_secs(5),
        "the old address refuses",
        || async { tokio::net::TcpStream::connect(web).await.is_err() },
    )
    .await;
    lb.shutdown().await;
}

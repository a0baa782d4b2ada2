//! The admin API over a real socket: pools and servers shown with their live state; weight,
//! drain, maintenance, add and remove, each taking effect at once in real traffic; every
//! mistake a 4xx that names the fix; the bearer token; what survives a reload, and
//! `GET /api/config` writing the running state back as a file `check` accepts.
mod common;
mod live_common;

use std::time::Duration;

use common::*;
use live_common::*;
use switchyard::demo::Backend;

fn config(b: &[Backend], extra: &str) -> String {
    format!(
        "shutdown_delay = \"0s\"\ngrace_period = \"3s\"\n[admin]\nlisten = \"127.0.0.1:0\"\n{extra}\n{}",
        simple_config("round_robin", b, &[])
    )
}

/// Which servers answer `n` requests on one keep-alive connection.
async fn answers(addr: std::net::SocketAddr, n: usize) -> Vec<String> {
    let mut c = Client::connect(addr).await;
    let mut out = Vec::new();
    for _ in 0..n {
        let a = c.get("/").await;
        assert_eq!(a.status, 200);
        out.push(a.server());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pools_show_every_server_with_its_live_state() {
    let b = backends(2).await;
    let file = ConfigFile::new("api-show", &config(&b, ""));
    let lb = start_file(&file).await;
    let (web, admin) = (lb.local_addr("web").unwrap(), lb.admin_addr().unwrap());
    answers(web, 4).await;
    let all = api(admin, "GET", "/api/pools", None, None).await;
    assert_eq!(all.status, 200);
    assert_eq!(all.headers["content-type"], "application/json");
    let p = &all.json["pools"][0];
    assert_eq!(p["name"], "p");
    assert_eq!(p["algorithm"], "round_robin");
    let s1 = server(p, "s1");
    assert_eq!(s1["addr"], b[0].addr.to_string());
    for (key, want) in [
        ("weight", serde_json::json!(1)),
        ("state", "ready".into()),
        ("health", "healthy".into()),
        ("in_flight", 0.into()),
        ("active_connections", 0.into()),
        ("requests", 2.into()),
        ("failures", 0.into()),
        ("idle", true.into()),
        ("drained", false.into()),
    ] {
        assert_eq!(s1[key], want, "{key} in {s1:#}");
    }
    assert!(s1["latency_ewma_ms"].as_f64().unwrap() > 0.0, "{s1:#}");
    assert_eq!(s1["responses"]["2xx"], 2);
    assert!(
        s1["idle_connections"].as_u64().unwrap() >= 1,
        "kept alive: {s1:#}"
    );
    assert!(
        all.json["persistence"]
            .as_str()
            .unwrap()
            .contains("GET /api/config")
    );
    let one = api(admin, "GET", "/api/pools/p", None, None).await;
    assert_eq!(server(&one.json, "s2")["requests"], 2);
    let by_addr = api(
        admin,
        "GET",
        &format!("/api/pools/p/servers/{}", b[1].addr),
        None,
        None,
    )
    .await;
    assert_eq!(by_addr.json["name"], "s2");
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn weight_drain_and_maint_take_effect_at_once() {
    let b = backends(2).await;
    let file = ConfigFile::new("api-set", &config(&b, ""));
    let lb = start_file(&file).await;
    let (web, admin) = (lb.local_addr("web").unwrap(), lb.admin_addr().unwrap());

    let a = api(
        admin,
        "PUT",
        "/api/pools/p/servers/s1",
        Some(r#"{"weight": 3}"#),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json["server"]["weight"], 3);
    assert_eq!(
        a.json["changes"][0],
        format!("pool \"p\": server {}: weight 1 → 3", b[0].addr)
    );
    let t = tally(answers(web, 40).await);
    assert_eq!(
        (t["s1"], t["s2"]),
        (30, 10),
        "smooth weighted round robin at 3:1"
    );

    // Maintenance: out at once; ready: back at once.
    let a = api(
        admin,
        "PUT",
        &format!("/api/pools/p/servers/{}", b[0].addr),
        Some(r#"{"state": "maint"}"#),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(a.json["server"]["state"], "maint");
    assert!(answers(web, 10).await.iter().all(|s| s == "s2"));
    let a = api(
        admin,
        "PUT",
        "/api/pools/p/servers/s1",
        Some(r#"{"state": "ready", "weight": 1}"#),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let t = tally(answers(web, 10).await);
    assert_eq!((t["s1"], t["s2"]), (5, 5));
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_are_added_and_removed_and_removal_drains_first() {
    let b = backends(3).await;
    let file = ConfigFile::new("api-add", &config(&b[..2], ""));
    let lb = start_file(&file).await;
    let (web, admin) = (lb.local_addr("web").unwrap(), lb.admin_addr().unwrap());
    let body = format!(r#"{{"addr": "{}", "name": "s3", "weight": 2}}"#, b[2].addr);
    let a = api(admin, "POST", "/api/pools/p/servers", Some(&body), None).await;
    assert_eq!(a.status, 201, "{}", a.text);
    assert_eq!(a.json["server"]["name"], "s3");
    assert_eq!(
        a.json["changes"][0],
        format!("pool \"p\": server {} added", b[2].addr)
    );
    let t = tally(answers(web, 40).await);
    assert_eq!((t["s1"], t["s2"], t["s3"]), (10, 10, 20), "{t:?}");
    // The running pool kept s1 and s2 as they were (their counters go on).
    let p = api(admin, "GET", "/api/pools/p", None, None).await.json;
    assert_eq!(server(&p, "s1")["requests"], 10);

    // Removing: a slow request on s3 holds it; it drains, then leaves.
    let slow = tokio::spawn(async move {
        let mut c = Client::connect(web).await;
        let mut last = String::new();
        // s3 has weight 2: within four requests one lands on it.
        for _ in 0..4 {
            let a = c.get("/sleep/700").await;
            last = a.server();
            if last == "s3" {
                break;
            }
        }
        last
    });
    wait_until(Duration::from_secs(10), "a slow request on s3", || async {
        let p = api(admin, "GET", "/api/pools/p", None, None).await.json;
        server(&p, "s3")["in_flight"] == 1
    })
    .await;
    let a = api(admin, "DELETE", "/api/pools/p/servers/s3", None, None).await;
    assert_eq!(a.status, 202, "{}", a.text);
    assert_eq!(a.json["server"]["state"], "drain");
    assert!(
        a.json["removal"]
            .as_str()
            .unwrap()
            .contains("once it has nothing in flight")
    );
    let before = b[2].requests();
    assert!(
        answers(web, 10).await.iter().all(|s| s != "s3"),
        "no new request to s3"
    );
    assert_eq!(slow.await.unwrap(), "s3", "its running request finished");
    wait_until(Duration::from_secs(5), "s3 left the pool", || async {
        let p = api(admin, "GET", "/api/pools/p", None, None).await.json;
        p["servers"].as_array().unwrap().len() == 2
    })
    .await;
    assert_eq!(b[2].requests(), before);
    // Removed over the API, and gone from the running configuration.
    let cfg = api(admin, "GET", "/api/config", None, None).await.text;
    assert!(!cfg.contains(&b[2].addr.to_string()), "{cfg}");
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mistake_is_a_4xx_that_names_the_fix_and_changes_nothing() {
    let b = backends(2).await;
    let file = ConfigFile::new("api-bad", &config(&b, ""));
    let lb = start_file(&file).await;
    let admin = lb.admin_addr().unwrap();
    let s1 = "/api/pools/p/servers/s1";
    let taken = format!(r#"{{"addr": "{}"}}"#, b[0].addr);
    let cases: Vec<(&str, &str, Option<&str>, u16, &str)> = vec![
        ("GET", "/api/pools/nope", None, 404, "pools: p"),
        (
            "PUT",
            "/api/pools/p/servers/9.9.9.9:1",
            Some(r#"{"weight":2}"#),
            404,
            "POST /api/pools/p/servers",
        ),
        (
            "PUT",
            s1,
            Some(r#"{"weight": 0}"#),
            400,
            "\"state\": \"drain\"",
        ),
        (
            "PUT",
            s1,
            Some(r#"{"weight": 5000}"#),
            400,
            "from 1 to 1000",
        ),
        ("PUT", s1, Some(r#"{"state": "disabled"}"#), 400, "maint"),
        (
            "PUT",
            s1,
            Some(r#"{"wieght": 2}"#),
            400,
            "unknown field `wieght`",
        ),
        ("PUT", s1, Some("weight=2"), 400, "{\"weight\": 5}"),
        ("PUT", s1, Some("{}"), 400, "ready, drain or maint"),
        (
            "POST",
            "/api/pools/p/servers",
            Some(r#"{"addr": "nowhere"}"#),
            400,
            "host:port",
        ),
        // A URL: drop the scheme (not "a host name … goes in the file, resolve = true").
        (
            "POST",
            "/api/pools/p/servers",
            Some(r#"{"addr": "http://127.0.0.1:9/"}"#),
            400,
            "drop `http://`: send {\"addr\": \"127.0.0.1:9\"}",
        ),
        // An IP with no port: the scheme's port; https also names the pool's `tls`.
        (
            "POST",
            "/api/pools/p/servers",
            Some(r#"{"addr": "https://10.0.0.5/health?x=1"}"#),
            400,
            "drop `https://`: send {\"addr\": \"10.0.0.5:443\"}; TLS to servers is the pool's `tls`",
        ),
        // A host name in a URL is not suggested to the API (which refuses names): the file.
        (
            "POST",
            "/api/pools/p/servers",
            Some(r#"{"addr": "http://backend.internal/"}"#),
            400,
            "goes in the file: { addr = \"backend.internal:80\", resolve = true }",
        ),
        (
            "POST",
            "/api/pools/p/servers",
            Some(&taken),
            409,
            "PUT /api/pools/p/servers",
        ),
        ("PATCH", s1, None, 405, "PUT"),
        ("GET", "/api/nothing", None, 404, "GET /api/pools"),
    ];
    for (method, path, body, status, help) in cases {
        let a = api(admin, method, path, body, None).await;
        assert_eq!(a.status, status, "{method} {path} {body:?}: {}", a.text);
        let said = format!(
            "{} {}",
            a.json["error"].as_str().unwrap_or(""),
            a.json["help"].as_str().unwrap_or("")
        );
        assert!(
            said.contains(help),
            "{method} {path} {body:?}: {help:?} not in {said}"
        );
    }
    // Plain http is not told about TLS.
    let plain = r#"{"addr": "http://127.0.0.1:9/"}"#;
    let a = api(admin, "POST", "/api/pools/p/servers", Some(plain), None).await;
    let help = a.json["help"].as_str().unwrap_or("");
    assert!(!help.contains("tls"), "{help}");
    // Removing the last server of a pool is refused: remove s2 first (it drains, then goes).
    assert_eq!(
        api(admin, "DELETE", "/api/pools/p/servers/s2", None, None)
            .await
            .status,
        202
    );
    wait_until(Duration::from_secs(5), "s2 left", || async {
        api(admin, "GET", "/api/pools/p", None, None).await.json["servers"]
            .as_array()
            .unwrap()
            .len()
            == 1
    })
    .await;
    let a = api(admin, "DELETE", "/api/pools/p/servers/s1", None, None).await;
    assert_eq!(a.status, 409, "{}", a.text);
    assert!(
        a.json["help"]
            .as_str()
            .unwrap()
            .contains("add another server first")
    );
    let p = api(admin, "GET", "/api/pools/p", None, None).await.json;
    assert_eq!(server(&p, "s1")["weight"], 1, "nothing changed");
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_guards_the_api_and_check_refuses_a_public_admin_without_one() {
    let b = backends(1).await;
    let token = "0123456789abcdef0123456789abcdef";
    let file = ConfigFile::new(
        "api-token",
        &config(&b, "").replace(
            "listen = \"127.0.0.1:0\"\n\n",
            &format!("listen = \"127.0.0.1:0\"\ntoken = \"{token}\"\n\n"),
        ),
    );
    assert!(file.text().contains("token"), "{}", file.text());
    let lb = start_file(&file).await;
    let admin = lb.admin_addr().unwrap();
    let none = api(admin, "GET", "/api/pools", None, None).await;
    assert_eq!(none.status, 401);
    assert_eq!(
        none.headers["www-authenticate"],
        "Bearer realm=\"switchyard\""
    );
    let wrong = api(
        admin,
        "PUT",
        "/api/pools/p/servers/s1",
        Some(r#"{"weight":2}"#),
        Some("0123456789abcdef0123456789abcdeX"),
    )
    .await;
    assert_eq!(wrong.status, 401);
    assert_eq!(
        api(admin, "GET", "/api/pools", None, Some(token))
            .await
            .status,
        200
    );
    let put = api(
        admin,
        "PUT",
        "/api/pools/p/servers/s1",
        Some(r#"{"weight":2}"#),
        Some(token),
    )
    .await;
    assert_eq!(put.status, 200, "{}", put.text);
    // Probes and scrapes stay open.
    assert_eq!(
        api(admin, "GET", "/health/ready", None, None).await.status,
        200
    );
    assert_eq!(api(admin, "GET", "/metrics", None, None).await.status, 200);
    lb.shutdown().await;

    // check: an admin listener reachable from elsewhere needs a token.
    let public = format!(
        "[admin]\nlisten = \"0.0.0.0:9900\"\n{}",
        simple_config("round_robin", &b, &[])
    );
    let e = switchyard::config::load_str(&public, "public.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("error: public.toml:2:10: [admin] listens on 0.0.0.0:9900, which is not a loopback address, without a token")
            && e.contains("help: add token = \"...\" (make one with: openssl rand -hex 32)"),
        "{e}"
    );
    let short = public.replace(
        "listen = \"0.0.0.0:9900\"",
        "listen = \"0.0.0.0:9900\"\ntoken = \"abc\"",
    );
    let e = switchyard::config::load_str(&short, "short.toml")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("short.toml:3:9: token is 3 characters long; at least 16 are needed"),
        "{e}"
    );
    let good = public.replace(
        "listen = \"0.0.0.0:9900\"",
        &format!("listen = \"0.0.0.0:9900\"\ntoken = \"{token}\""),
    );
    assert!(switchyard::config::load_str(&good, "good.toml").is_ok());
}

/// What survives a reload: the operator's changes, unless the file changes the same value;
/// `GET /api/config` writes the running state back, and once saved as the file nothing is
/// left on top of it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_changes_survive_reloads_until_the_file_says_otherwise() {
    let b = backends(3).await;
    let file = ConfigFile::new("api-persist", &config(&b[..2], ""));
    let lb = start_file(&file).await;
    let (web, admin) = (lb.local_addr("web").unwrap(), lb.admin_addr().unwrap());
    api(
        admin,
        "PUT",
        "/api/pools/p/servers/s1",
        Some(r#"{"weight": 4}"#),
        None,
    )
    .await;
    api(
        admin,
        "PUT",
        "/api/pools/p/servers/s2",
        Some(r#"{"state": "drain"}"#),
        None,
    )
    .await;
    let body = format!(r#"{{"addr": "{}", "name": "s3"}}"#, b[2].addr);
    assert_eq!(
        api(admin, "POST", "/api/pools/p/servers", Some(&body), None)
            .await
            .status,
        201
    );

    // The same file again: every change is kept, and the answer says so.
    let a = api(admin, "POST", "/api/reload", None, None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    let notes = a.json["overrides"].to_string();
    assert!(
        notes.contains("kept weight 4 set over the API (the file says 1)"),
        "{notes}"
    );
    assert!(
        notes.contains("kept state drain set over the API (the file says ready)"),
        "{notes}"
    );
    assert!(notes.contains("kept (added over the API)"), "{notes}");
    let t = tally(answers(web, 10).await);
    assert_eq!(
        (t.get("s1"), t.get("s2"), t.get("s3")),
        (Some(&8), None, Some(&2)),
        "{t:?}"
    );

    // The file changes s1's weight: the file wins for that value, the rest stays.
    file.write(
        &file
            .text()
            .replace("name = \"s1\", weight = 1", "name = \"s1\", weight = 2"),
    );
    let a = api(admin, "POST", "/api/reload", None, None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        a.json["overrides"]
            .to_string()
            .contains("the file changed weight to 2"),
        "{}",
        a.text
    );
    let p = api(admin, "GET", "/api/pools/p", None, None).await.json;
    assert_eq!(server(&p, "s1")["weight"], 2);
    assert_eq!(server(&p, "s2")["state"], "drain");

    // The running state as TOML, which check accepts; saved as the file, nothing is left
    // on top of it, and nothing changes.
    let cfg = api(admin, "GET", "/api/config", None, None).await;
    assert_eq!(cfg.status, 200);
    assert!(
        cfg.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/toml")
    );
    let plan = switchyard::config::load_str(&cfg.text, "running.toml")
        .unwrap_or_else(|e| panic!("{e}\n{}", cfg.text));
    let servers = &plan.pools[0].servers;
    assert_eq!(servers.len(), 3);
    assert!(servers[1].drain && servers[2].name == "s3");
    let status = api(admin, "GET", "/status", None, None).await.json;
    assert_eq!(status["config"]["api_changes"], 2);
    file.write(&cfg.text);
    let a = api(admin, "POST", "/api/reload", None, None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.json["changes"].as_array().unwrap().len(),
        2,
        "only the notes: {}",
        a.text
    );
    let status = api(admin, "GET", "/status", None, None).await.json;
    assert_eq!(status["config"]["api_changes"], 0, "{status:#}");
    let m = api(admin, "GET", "/metrics", None, None).await.text;
    assert!(m.contains("switchyard_config_api_changes 0\n"), "{m}");
    lb.shutdown().await;
}

/// A draining server keeps its sticky clients (HAProxy and nginx do), unless the pool says
/// `on_drain = "move"`; new clients never go to it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn draining_keeps_sticky_clients_unless_the_pool_moves_them() {
    for (on_drain, stays) in [("", true), ("on_drain = \"move\"\n", false)] {
        let b = backends(2).await;
        let text = format!(
            "{}[pool.p.sticky]\nmode = \"cookie\"\n{on_drain}",
            config(&b, "")
        );
        let file = ConfigFile::new("api-sticky", &text);
        let lb = start_file(&file).await;
        let (web, admin) = (lb.local_addr("web").unwrap(), lb.admin_addr().unwrap());
        // A client stuck to s1 by its cookie.
        let first = get(web, "/").await;
        let (server1, cookie) = (
            first.server(),
            first.headers["set-cookie"]
                .to_str()
                .unwrap()
                .split(';')
                .next()
                .unwrap()
                .to_string(),
        );
        let a = api(
            admin,
            "PUT",
            &format!("/api/pools/p/servers/{server1}"),
            Some(r#"{"state": "drain"}"#),
            None,
        )
        .await;
        assert_eq!(a.status, 200);
        for _ in 0..5 {
            let a = get_with(web, "/", &[("cookie", &cookie)]).await;
            assert_eq!(a.server() == server1, stays, "{on_drain:?}");
            let fresh = get(web, "/").await;
            assert_ne!(
                fresh.server(),
                server1,
                "a new client never goes to a draining server"
            );
        }
        lb.shutdown().await;
    }
}

/// `workers` cannot change at a reload: the reload says so, `GET /api/config`, `/status`
/// and `/metrics` show the count running, and a later change of a server says only what it
/// changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn workers_are_reported_by_reloads_only_and_shown_as_running() {
    let b = backends(2).await;
    let text = format!("workers = 2\n{}", config(&b, ""));
    let file = ConfigFile::new("api-workers", &text);
    let lb = start_file(&file).await;
    let admin = lb.admin_addr().unwrap();
    file.write(&text.replace("workers = 2", "workers = 1"));
    let a = api(admin, "POST", "/api/reload", None, None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        a.text.contains("workers = 1 in the file, 2 running"),
        "{}",
        a.text
    );
    let a = api(
        admin,
        "PUT",
        "/api/pools/p/servers/s2",
        Some(r#"{"state": "drain"}"#),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert_eq!(
        a.json["changes"],
        serde_json::json!([format!(
            "pool \"p\": server {}: state ready → drain",
            b[1].addr
        )]),
        "{}",
        a.text
    );
    // The running count, which `switchyard plan` compares with a file.
    let cfg = api(admin, "GET", "/api/config", None, None).await;
    let plan = switchyard::config::load_str(&cfg.text, "running.toml")
        .unwrap_or_else(|e| panic!("{e}\n{}", cfg.text));
    assert_eq!(plan.workers, 2, "{}", cfg.text);
    // And what /status and /metrics say runs.
    let status = api(admin, "GET", "/status", None, None).await.json;
    assert_eq!(status["config"]["workers"], 2, "{status:#}");
    let m = api(admin, "GET", "/metrics", None, None).await.text;
    assert!(m.contains("\nswitchyard_workers 2\n"), "{m}");
    lb.shutdown().await;
}

//! "Why this server?" against a running Switchyard: `GET /api/explain` on the admin listener
//! names the server the next real request gets, for every algorithm, with what the algorithm
//! looked at; explaining takes no turn (the traffic that follows is exactly what it would have
//! been); every reason a server is not a candidate is named; a sticky cookie overrides the
//! balancer. Real backends, real requests, the real admin API, all on 127.0.0.1.
mod common;
mod live_common;

use std::net::SocketAddr;
use std::time::Duration;

use common::*;
use live_common::*;
use serde_json::Value;
use switchyard::demo::Backend;

/// `GET /api/explain?{query}`, which must answer 200.
async fn explain(admin: SocketAddr, query: &str) -> Value {
    let a = api(admin, "GET", &format!("/api/explain?{query}"), None, None).await;
    assert_eq!(a.status, 200, "{query}: {}", a.text);
    a.json
}

/// The name of the server an explanation picks ("" for none).
fn pick(e: &Value) -> String {
    e["pick"]["name"].as_str().unwrap_or_default().to_string()
}

/// The explanation of `query` once `cond` holds of it (polled every 20 ms, at most 10 s).
async fn explain_until(
    admin: SocketAddr,
    query: &str,
    what: &str,
    cond: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let e = explain(admin, query).await;
        if cond(&e) {
            return e;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}: {e:#}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The explanation once no request is in flight any more (a response's end is counted when
/// its body is done, which may be a moment after the client has read it).
async fn settled(admin: SocketAddr, query: &str) -> Value {
    // Both views, the candidates' and the balancer's: they read the counter at two moments.
    explain_until(admin, query, "no request in flight", |e| {
        let idle = |list: &Value| {
            list.as_array().is_none_or(|l| {
                l.iter()
                    .all(|s| s["in_flight"].as_u64().is_none_or(|n| n == 0))
            })
        };
        idle(&e["pool"]["servers"]) && idle(&e["pool"]["balancer"]["servers"])
    })
    .await
}

/// A candidate line of an explanation's pool, by server name.
fn candidate<'a>(e: &'a Value, name: &str) -> &'a Value {
    server(&e["pool"], name)
}

fn reasons(e: &Value, name: &str) -> String {
    candidate(e, name)["reasons"].to_string()
}

/// One listener "web" with a route per algorithm (`/ALGORITHM/…`) over the same backends,
/// and an admin listener.
fn algorithms_config(b: &[Backend]) -> String {
    let servers = servers_toml(b, &[3, 1, 1]);
    let mut text = String::from(
        "shutdown_delay = \"0s\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"round_robin\"\n",
    );
    let pools = [
        ("round_robin", ""),
        ("least_conn", ""),
        ("least_time", ""),
        ("p2c", ""),
        ("random", ""),
        ("ip_hash", ""),
        ("hash", "hash_key = \"header:x-user\"\n"),
        ("maglev", "hash_key = \"uri\"\n"),
    ];
    for (name, _) in pools {
        text.push_str(&format!(
            "[[listener.route]]\npath_prefix = \"/{name}/\"\npool = \"{name}\"\n"
        ));
    }
    for (name, extra) in pools {
        text.push_str(&format!(
            "[pool.{name}]\nalgorithm = \"{name}\"\n{extra}servers = {servers}\n"
        ));
    }
    text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_algorithm_names_the_server_the_next_request_gets() {
    let b = backends(3).await;
    let lb = start_lb(&algorithms_config(&b)).await;
    let (web, admin) = (lb.local_addr("web").unwrap(), lb.admin_addr().unwrap());
    for algorithm in [
        "round_robin",
        "least_conn",
        "least_time",
        "p2c",
        "random",
        "ip_hash",
        "hash",
        "maglev",
    ] {
        let mut got = Vec::new();
        for i in 0..10 {
            let path = format!("/{algorithm}/item/{i}");
            let user = format!("user-{i}");
            let query = format!("path={path}&header=X-User%3A{user}&client=127.0.0.1");
            let first = settled(admin, &query).await;
            // Asked again: the same answer. An explanation that took round robin's turn or
            // drew p2c's random numbers would name the next server now.
            let again = explain(admin, &query).await;
            assert_eq!(pick(&first), pick(&again), "{algorithm} #{i}: {first:#}");
            assert_eq!(first["pool"]["name"], algorithm);
            assert_eq!(first["pool"]["balancer"]["how"], "peek");
            let real = get_with(web, &path, &[("x-user", &user)]).await;
            assert_eq!(real.status, 200);
            assert_eq!(
                real.server(),
                pick(&first),
                "{algorithm} request #{i} went elsewhere than explained: {first:#}"
            );
            got.push(real.server());
            // What the algorithm looked at, by algorithm.
            let bal = &first["pool"]["balancer"];
            let f = &bal["facts"];
            match algorithm {
                "round_robin" => {
                    assert_eq!(f["cycle"], 5, "weights 3,1,1: {bal:#}");
                    assert_eq!(f["turn"], i % 5, "{bal:#}");
                    assert_eq!(server(bal, "s1")["turns_per_cycle"], 3);
                }
                "least_conn" => {
                    assert_eq!(server(bal, "s1")["in_flight"], 0);
                    assert_eq!(server(bal, "s1")["load"], "0/3");
                }
                "least_time" => assert!(server(bal, "s2")["ewma_us"].is_u64(), "{bal:#}"),
                "p2c" => assert!(f["sampled"].as_str().unwrap().contains(", ")),
                "random" => assert_eq!(f["total_weight"], 5),
                "ip_hash" => {
                    assert_eq!(f["key"], "127.0.0.*");
                    assert_eq!(first["pool"]["key"]["value"], "127.0.0.1");
                }
                "hash" => {
                    assert_eq!(first["pool"]["key"]["from"], "header:x-user");
                    assert_eq!(first["pool"]["key"]["value"], user);
                    assert!(f["position"].is_u64() && f["point"].is_u64(), "{bal:#}");
                }
                "maglev" => {
                    assert_eq!(first["pool"]["key"]["value"], path);
                    assert!(f["slot"].as_u64().unwrap() < 65537, "{bal:#}");
                }
                _ => unreachable!(),
            }
        }
        if algorithm == "round_robin" {
            // Ten requests, each explained twice, still split 3:1:1 exactly: no turn taken.
            let t = tally(got);
            assert_eq!(
                (t["s1"], t["s2"], t["s3"]),
                (6, 2, 2),
                "round robin's split moved"
            );
        }
    }
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn least_conn_and_least_time_read_the_live_load() {
    let b = backends(2).await;
    let slow = Backend::start("slow", Duration::from_millis(40))
        .await
        .unwrap();
    let fast = Backend::start("fast", Duration::ZERO).await.unwrap();
    let timed = [slow, fast];
    let text = format!(
        "shutdown_delay = \"0s\"\ngrace_period = \"1s\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"lc\"\n[[listener.route]]\npath_prefix = \"/lt/\"\npool = \"lt\"\n[pool.lc]\nalgorithm = \"least_conn\"\nservers = {}\n[pool.lt]\nalgorithm = \"least_time\"\nservers = {}\n",
        servers_toml(&b, &[]),
        servers_toml(&timed, &[])
    );
    let lb = start_lb(&text).await;
    let (web, admin) = (lb.local_addr("web").unwrap(), lb.admin_addr().unwrap());
    // least_conn: one long request on s1 (the first turn) …
    let long = tokio::spawn(async move { get(web, "/sleep/3000").await });
    // The candidates and the balancer read the counter at two moments of one answer: wait
    // until both have seen the request begin.
    let e = explain_until(admin, "path=/", "s1 busy", |e| {
        candidate(e, "s1")["in_flight"] == 1
            && server(&e["pool"]["balancer"], "s1")["load"] == "1/1"
    })
    .await;
    let bal = &e["pool"]["balancer"];
    assert_eq!(server(bal, "s1")["load"], "1/1", "{bal:#}");
    assert_eq!(server(bal, "s2")["load"], "0/1", "{bal:#}");
    assert_eq!(pick(&e), "s2", "{e:#}");
    assert!(e["why"].as_str().unwrap().contains("least load"), "{e:#}");
    assert_eq!(get(web, "/").await.server(), "s2");
    long.await.unwrap();
    // least_time: once both are measured, the fast one, with the EWMAs that say why.
    for i in 0..6 {
        assert_eq!(get(web, &format!("/lt/{i}")).await.status, 200);
    }
    let e = settled(admin, "path=/lt/x").await;
    let bal = &e["pool"]["balancer"];
    let ewma = |n: &str| server(bal, n)["ewma_us"].as_u64().unwrap();
    assert!(ewma("slow") >= 40_000, "{bal:#}");
    assert!(ewma("fast") < ewma("slow"), "{bal:#}");
    assert_eq!(pick(&e), "fast", "{e:#}");
    assert_eq!(get(web, "/lt/y").await.server(), "fast");
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_exclusion_is_named() {
    let b = backends(5).await;
    let dead = Backend::start("dead", Duration::ZERO).await.unwrap();
    let alive = Backend::start("alive", Duration::ZERO).await.unwrap();
    let newcomer = Backend::start("new", Duration::ZERO).await.unwrap();
    let text = format!(
        r#"shutdown_delay = "0s"
grace_period = "1s"
[admin]
listen = "127.0.0.1:0"
[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "p"
[[listener.route]]
path_prefix = "/q/"
pool = "q"
[[listener.route]]
path_prefix = "/r/"
pool = "r"
[pool.p]
servers = [{{ addr = "{}", name = "s1" }}, {{ addr = "{}", name = "s2" }}, {{ addr = "{}", name = "s3" }}, {{ addr = "{}", name = "s4" }}, {{ addr = "{}", name = "s5", backup = true }}]
[pool.p.health]
type = "http"
path = "/health"
interval = "200ms"
timeout = "200ms"
rise = 1
fall = 1
[pool.q]
max_fails = 1
fail_timeout = "60s"
servers = [{{ addr = "{}", name = "dead" }}, {{ addr = "{}", name = "alive" }}]
[pool.r]
slow_start = "60s"
servers = {}
"#,
        b[0].addr,
        b[1].addr,
        b[2].addr,
        b[3].addr,
        b[4].addr,
        dead.addr,
        alive.addr,
        servers_toml(&b[..1], &[]),
    );
    // Written to a file: the API changes servers only of a Switchyard started from one.
    let file = ConfigFile::new("explain-exclusions", &text);
    let lb = start_file(&file).await;
    let (web, admin) = (lb.local_addr("web").unwrap(), lb.admin_addr().unwrap());
    let put = |server: &str, body: &'static str| {
        let path = format!("/api/pools/p/servers/{server}");
        async move { assert_eq!(api(admin, "PUT", &path, Some(body), None).await.status, 200) }
    };
    put("s1", r#"{"state": "maint"}"#).await;
    put("s2", r#"{"state": "drain"}"#).await;
    b[2].set_healthy(false);
    let e = explain_until(admin, "path=/", "s3 unhealthy", |e| {
        candidate(e, "s3")["health"] == "unhealthy"
    })
    .await;
    assert!(reasons(&e, "s1").contains("in maintenance"), "{e:#}");
    assert!(reasons(&e, "s2").contains("draining"), "{e:#}");
    assert!(reasons(&e, "s3").contains("unhealthy"), "{e:#}");
    assert!(reasons(&e, "s3").contains("last check"), "{e:#}");
    assert!(reasons(&e, "s4").contains("ready and healthy"), "{e:#}");
    assert!(
        reasons(&e, "s5").contains("backup: asked only when"),
        "{e:#}"
    );
    for (name, is) in [
        ("s1", false),
        ("s2", false),
        ("s3", false),
        ("s4", true),
        ("s5", false),
    ] {
        assert_eq!(candidate(&e, name)["candidate"], is, "{name}: {e:#}");
    }
    assert_eq!(pick(&e), "s4");
    assert_eq!(get(web, "/").await.server(), "s4");
    // The last primary goes: the backups are asked, and the explanation says so.
    put("s4", r#"{"state": "maint"}"#).await;
    let e = explain(admin, "path=/").await;
    assert_eq!(pick(&e), "s5", "{e:#}");
    assert!(reasons(&e, "s5").contains("backup: asked now"), "{e:#}");
    assert!(
        e["why"].as_str().unwrap().contains("over the backups"),
        "{e:#}"
    );
    assert_eq!(get(web, "/").await.server(), "s5");

    // Failed passively: a server that refused a real request, out for fail_timeout.
    dead.stop();
    let mut e = Value::Null;
    for i in 0..4 {
        get(web, &format!("/q/{i}")).await;
        e = explain(admin, "path=/q/x").await;
        if candidate(&e, "dead")["health"] == "failed" {
            break;
        }
    }
    assert!(reasons(&e, "dead").contains("failed passively"), "{e:#}");
    assert!(reasons(&e, "dead").contains("tried again in"), "{e:#}");
    assert_eq!(candidate(&e, "dead")["candidate"], false);
    assert_eq!(pick(&e), "alive");

    // Slow start: a server added over the API ramps up.
    let body = format!(r#"{{"addr": "{}", "name": "new"}}"#, newcomer.addr);
    let added = api(admin, "POST", "/api/pools/r/servers", Some(&body), None).await;
    assert_eq!(added.status, 201, "{}", added.text);
    let e = explain(admin, "path=/r/x").await;
    assert!(
        reasons(&e, "new").contains("slow start: admitted for"),
        "{e:#}"
    );
    assert!(
        candidate(&e, "new")["slow_start_share"].is_string(),
        "{e:#}"
    );
    assert!(reasons(&e, "s1").contains("ready and healthy"), "{e:#}");
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sticky_cookie_overrides_the_balancer() {
    let b = backends(2).await;
    let text = format!(
        "shutdown_delay = \"0s\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nservers = {}\n[pool.p.sticky]\nmode = \"cookie\"\n",
        servers_toml(&b, &[])
    );
    let lb = start_lb(&text).await;
    let (web, admin) = (lb.local_addr("web").unwrap(), lb.admin_addr().unwrap());
    let first = get(web, "/").await;
    assert_eq!(first.server(), "s1");
    let set = first.headers["set-cookie"].to_str().unwrap().to_string();
    let pair = set.split(';').next().unwrap().to_string();
    // Without the cookie: the balancer's turn, now at s2.
    let plain = settled(admin, "path=/").await;
    assert_eq!(pick(&plain), "s2", "{plain:#}");
    assert_eq!(plain["pool"]["sticky"]["used"], false);
    // With it: s1, ahead of the balancer, which would have said s2.
    let cookie = pair.replace('=', "%3D");
    let e = explain(admin, &format!("path=/&cookie={cookie}")).await;
    assert_eq!(pick(&e), "s1", "{e:#}");
    assert_eq!(e["pool"]["sticky"]["used"], true);
    assert_eq!(e["pool"]["sticky"]["server"]["name"], "s1");
    assert_eq!(e["pool"]["balancer"]["pick"], "s2", "{e:#}");
    assert!(
        e["why"].as_str().unwrap().starts_with("sticky (cookie)"),
        "{e:#}"
    );
    assert_eq!(
        get_with(web, "/", &[("cookie", &pair)]).await.server(),
        "s1"
    );
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_matched_and_shadowed_and_questions_refused() {
    let b = backends(2).await;
    let text = format!(
        "shutdown_delay = \"0s\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"a\"\n[[listener.route]]\nhost = \"api.example.com\"\npool = \"a\"\n[[listener.route]]\nname = \"v1\"\npath_prefix = \"/v1/\"\npool = \"b\"\n[[listener.route]]\npath_prefix = \"/v1/users\"\npool = \"a\"\n[[listener.route]]\npath_prefix = \"/canary/\"\nsplit = [{{ pool = \"a\", weight = 3 }}, {{ pool = \"b\", weight = 1 }}]\n[[listener]]\nname = \"db\"\nprotocol = \"tcp\"\nlisten = \"127.0.0.1:0\"\npool = \"b\"\n[pool.a]\nservers = {}\n[pool.b]\nservers = {}\n",
        servers_toml(&b[..1], &[]),
        servers_toml(&b[1..], &[])
    );
    let lb = start_lb(&text).await;
    let (web, admin) = (lb.local_addr("web").unwrap(), lb.admin_addr().unwrap());
    let e = explain(
        admin,
        "listener=web&method=GET&host=shop.example.com&path=/v1/users/7",
    )
    .await;
    let routes = e["routes"].as_array().unwrap();
    assert_eq!(routes[0]["verdict"], "no match");
    assert!(
        routes[0]["why"]
            .as_str()
            .unwrap()
            .contains("shop.example.com")
    );
    assert_eq!(routes[1]["verdict"], "matched");
    assert_eq!(routes[2]["verdict"], "shadowed", "{e:#}");
    // Route 2 has a name: explain says it where it says the route, as the metrics do.
    assert_eq!(routes[1]["name"], "v1", "{e:#}");
    assert_eq!(routes[0]["name"], Value::Null, "{e:#}");
    assert!(
        routes[2]["why"]
            .as_str()
            .unwrap()
            .contains("route v1 comes first"),
        "{e:#}"
    );
    assert_eq!(e["route"], 2);
    assert_eq!(e["route_name"], "v1");
    assert_eq!(e["pool"]["name"], "b");
    assert_eq!(pick(&e), "s2");
    let real = get_with(web, "/v1/users/7", &[("host", "shop.example.com")]).await;
    assert_eq!(real.server(), "s2");
    // A weighted split: where its cycle is, without taking its turn.
    let mut pools = Vec::new();
    for _ in 0..8 {
        let e = explain(admin, "listener=web&path=/canary/x").await;
        let again = explain(admin, "listener=web&path=/canary/x").await;
        assert_eq!(e["pool"]["name"], again["pool"]["name"], "{e:#}");
        assert_eq!(e["split"]["cycle"], 4, "{e:#}");
        let real = get(web, "/canary/x").await.server();
        let want = if e["pool"]["name"] == "a" { "s1" } else { "s2" };
        assert_eq!(real, want, "{e:#}");
        pools.push(e["pool"]["name"].as_str().unwrap().to_string());
    }
    assert_eq!(pools.iter().filter(|p| *p == "a").count(), 6, "{pools:?}");
    // A pool asked directly.
    let e = explain(admin, "pool=b&path=/anything").await;
    assert_eq!(
        (e["direct"].clone(), pick(&e)),
        (true.into(), "s2".to_string())
    );
    assert!(e["routes"].as_array().unwrap().is_empty());
    // A tcp listener: a connection, its pool, the client address.
    let e = explain(admin, "listener=db&client=10.9.8.7").await;
    assert_eq!(e["l4"], true);
    assert_eq!(e["pool"]["name"], "b");
    assert_eq!(pick(&e), "s2");
    assert_eq!(e["request"]["client"], "10.9.8.7");
    for (query, status, says) in [
        ("listener=nope", 404, "no listener named"),
        ("pool=nope", 404, "pools: a, b"),
        ("path=/", 400, "say which one"),
        ("colour=red", 400, "unknown parameter"),
        ("path=relative", 400, "must start with /"),
        ("client=not-an-ip", 400, "is not an address"),
    ] {
        let a = api(admin, "GET", &format!("/api/explain?{query}"), None, None).await;
        assert_eq!(a.status, status, "{query}: {}", a.text);
        assert!(a.text.contains(says), "{query}: {}", a.text);
    }
    let a = api(admin, "POST", "/api/explain", None, None).await;
    assert_eq!(a.status, 405);
    lb.shutdown().await;
}

/// Run `switchyard explain ARGS`: (exit code, stdout, stderr).
fn cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("explain")
        .args(args)
        .output()
        .expect("run switchyard explain");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_command_explains_a_file_as_a_fresh_balancer_would_pick() {
    let b = backends(4).await;
    let (s1, s2, s3, s4) = (b[0].addr, b[1].addr, b[2].addr, b[3].addr);
    let s2_port = s2.port();
    let text = format!(
        r#"shutdown_delay = "0s"
[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "rr"
[[listener.route]]
path_prefix = "/users/"
pool = "users"
[[listener.route]]
path_prefix = "/users/admin"
pool = "rr"
[[listener]]
name = "db"
protocol = "tcp"
listen = "127.0.0.1:0"
pool = "ip"
[pool.rr]
servers = [{{ addr = "{s1}", name = "s1", down = true }}, {{ addr = "{s2}", name = "s2", drain = true }}, {{ addr = "{s3}", name = "s3", weight = 2 }}, {{ addr = "{s4}", name = "s4" }}]
[pool.users]
algorithm = "hash"
hash_key = "header:x-user"
servers = [{{ addr = "{s1}", name = "s1" }}, {{ addr = "{s2}", name = "s2" }}, {{ addr = "{s3}", name = "s3" }}, {{ addr = "{s4}", name = "s4" }}]
[pool.ip]
algorithm = "ip_hash"
servers = [{{ addr = "{s1}", name = "s1" }}, {{ addr = "localhost:{s2_port}", name = "s2" }}]
"#
    );
    let file = ConfigFile::new("explain-cli", &text);
    let path = file.path.to_str().unwrap();
    // Text: the route, its shadowed sibling, every server's reason, the pick.
    let (code, out, err) = cli(&[
        "-c",
        path,
        "--listener",
        "web",
        "GET http://example.com/users/admin/7",
        "-H",
        "X-User: alice",
        "--client",
        "10.1.2.3",
    ]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("matched"), "{out}");
    assert!(out.contains("shadowed"), "{out}");
    assert!(out.contains("header:x-user = \"alice\""), "{out}");
    assert!(out.contains("from 10.1.2.3"), "{out}");
    // JSON, as the API answers: the same decision, and the one a fresh balancer makes.
    let lb = start_file(&file).await;
    let web = lb.local_addr("web").unwrap();
    for user in ["alice", "bob", "carol", "dave", "erin", "frank"] {
        let header = format!("X-User: {user}");
        let (code, out, err) = cli(&["-c", path, "-l", "web", "/users/1", "-H", &header, "--json"]);
        assert_eq!(code, 0, "{err}");
        let e: Value = serde_json::from_str(&out).expect("JSON");
        assert_eq!(e["pool"]["name"], "users");
        let real = get_with(web, "/users/1", &[("x-user", user)]).await;
        assert_eq!(real.server(), pick(&e), "{user}: {e:#}");
    }
    // Round robin over what the file leaves in rotation: s3 (weight 2) first, as served.
    let (code, out, _) = cli(&["-c", path, "-l", "web", "/", "--json"]);
    assert_eq!(code, 0);
    let e: Value = serde_json::from_str(&out).unwrap();
    assert!(reasons(&e, "s1").contains("in maintenance"), "{e:#}");
    assert!(reasons(&e, "s2").contains("draining"), "{e:#}");
    assert_eq!(candidate(&e, "s3")["candidate"], true);
    assert_eq!(get(web, "/").await.server(), pick(&e));
    // A tcp listener: the client address is the key.
    let (code, out, err) = cli(&["-c", path, "-l", "db", "--client", "10.9.8.7", "/"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("10.9.8."), "{out}");
    // A server named by host name: resolved as `run` resolves it, and said.
    assert!(out.contains("dns       pool \"ip\": localhost:"), "{out}");
    assert!(out.contains(&format!("127.0.0.1:{s2_port}")), "{out}");
    // Mistakes: which listener, a bad request, a broken file.
    let (code, _, err) = cli(&["-c", path, "/"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("--listener NAME") && err.contains("web (http"),
        "{err}"
    );
    let (code, _, err) = cli(&["-c", path, "-l", "web", "G=T /"]);
    assert_eq!(code, 1);
    assert!(err.contains("is not a method"), "{err}");
    let broken = ConfigFile::new("explain-cli-broken", "[[listener]]\nname = 3\n");
    let (code, _, err) = cli(&["-c", broken.path.to_str().unwrap(), "/"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("explain-cli-broken") && err.contains(":2:"),
        "{err}"
    );
    lb.shutdown().await;
}

/// Words of a shell command line: spaces split, single quotes group (all the docs use).
fn words(line: &str) -> Vec<String> {
    let (mut out, mut word, mut quoted, mut any) = (Vec::new(), String::new(), false, false);
    for c in line.chars() {
        match c {
            '\'' => (quoted, any) = (!quoted, true),
            ' ' if !quoted => {
                if any {
                    out.push(std::mem::take(&mut word));
                }
                any = false;
            }
            c => (word, any) = (word + &c.to_string(), true),
        }
    }
    if any {
        out.push(word);
    }
    out
}

#[test]
fn the_docs_show_what_the_command_prints() {
    let root = env!("CARGO_MANIFEST_DIR");
    let mut checked = 0;
    for doc in ["docs/algorithms.md", "docs/explain.md", "docs/guide.md"] {
        let text = std::fs::read_to_string(format!("{root}/{doc}")).unwrap();
        for block in text.split("```console\n").skip(1) {
            let block = &block[..block.find("```").expect("closed block")];
            let (command, shown) = block.split_once('\n').unwrap();
            let Some(args) = command.strip_prefix("$ switchyard explain ") else {
                continue;
            };
            let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
                .current_dir(root)
                .arg("explain")
                .args(words(args))
                .output()
                .unwrap();
            assert!(out.status.success(), "{doc}: {command}");
            let printed = String::from_utf8_lossy(&out.stdout);
            assert_eq!(
                printed, shown,
                "{doc}: `{command}` prints something else now: paste its output"
            );
            checked += 1;
        }
    }
    assert!(checked >= 10, "only {checked} examples found");
}

/// One raw HTTP/1.1 exchange (the connection closed after it), `proxy` first if given: the
/// answer's head, lower-cased names.
async fn raw(addr: SocketAddr, proxy: Option<&str>, head: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    let text = format!("{}{head}", proxy.unwrap_or(""));
    s.write_all(text.as_bytes()).await.unwrap();
    let mut out = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut out))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let out = String::from_utf8_lossy(&out).into_owned();
    out.split("\r\n\r\n").next().unwrap().to_lowercase()
}

/// The value of `name` in a head from [`raw`].
fn field<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(": "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_request_gets_its_trace_on_both_engines() {
    use switchyard::proxy::http::Http1Engine;
    let b = backends(2).await;
    let dead = Backend::start("dead", Duration::ZERO).await.unwrap();
    let dead_addr = dead.addr;
    drop(dead);
    let text = format!(
        "shutdown_delay = \"0s\"\ngrace_period = \"1s\"\n[[listener]]\nname = \"trusted\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\naccept_proxy_protocol = true\ntrusted_proxies = [\"127.0.0.1\"]\n[[listener.route]]\npath_prefix = \"/none/\"\npool = \"none\"\n[[listener]]\nname = \"open\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nmax_fails = 0\nservers = [{{ addr = \"{dead_addr}\", name = \"gone\" }}, {}]\n[pool.none]\nservers = [{{ addr = \"{dead_addr}\", name = \"gone\" }}]\n",
        servers_toml(&b, &[])
            .trim_start_matches('[')
            .trim_end_matches(']')
    );
    let proxy = "PROXY TCP4 203.0.113.7 127.0.0.1 40000 80\r\n";
    let ask = "GET /x HTTP/1.1\r\nHost: a\r\nX-Switchyard-Explain: 1\r\nConnection: close\r\n\r\n";
    for engine in [Http1Engine::Direct, Http1Engine::Hyper] {
        let plan = switchyard::config::load_str(&text, "test.toml").unwrap();
        let launch = switchyard::runtime::Launch {
            engine,
            ..Default::default()
        };
        let lb = switchyard::runtime::Runtime::launch(plan, launch)
            .await
            .unwrap();
        let (trusted, open) = (
            lb.local_addr("trusted").unwrap(),
            lb.local_addr("open").unwrap(),
        );
        // Round robin starts at the dead server: the trace shows the failed try, then the
        // retry with its reason.
        let head = raw(trusted, Some(proxy), ask).await;
        assert!(head.starts_with("http/1.1 200"), "{engine:?}: {head}");
        let t = field(&head, "x-switchyard-explain").unwrap_or_else(|| panic!("{head}"));
        assert!(
            t.starts_with("route default; pool p (round_robin); try 1: gone by round_robin"),
            "{engine:?}: {t}"
        );
        assert!(t.contains("gone failed"), "{engine:?}: {t}");
        assert!(t.contains("try 2: s1 by round_robin"), "{engine:?}: {t}");
        // Not asked, or asked from a listener with no trusted peers: nothing.
        let plain = ask.replace("X-Switchyard-Explain: 1\r\n", "");
        let head = raw(trusted, Some(proxy), &plain).await;
        assert_eq!(field(&head, "x-switchyard-explain"), None, "{head}");
        let head = raw(open, None, ask).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert_eq!(
            field(&head, "x-switchyard-explain"),
            None,
            "{engine:?}: {head}"
        );
        // A balancer-made 502 carries the trace too.
        let none = ask.replace("/x", "/none/x");
        let head = raw(trusted, Some(proxy), &none).await;
        assert!(head.starts_with("http/1.1 502"), "{engine:?}: {head}");
        let t = field(&head, "x-switchyard-explain").unwrap_or_else(|| panic!("{head}"));
        assert!(
            t.starts_with("route 1; pool none (round_robin); try 1: gone"),
            "{engine:?}: {t}"
        );
        lb.shutdown().await;
    }
}

/// The listener's and the route's rules are judged as the request would meet them, and
/// explaining spends no allowance: allow/deny (403), a block rule (403), a rate limit spent
/// by real requests (429, and the next explanation still says so: nothing was spent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_are_judged_without_spending_a_limit() {
    let b = backends(1).await;
    let text = format!(
        "shutdown_delay = \"0s\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\ndeny = [\"10.9.0.0/16\"]\n[[listener.block]]\npath_regex = \"^/admin\"\n[[listener.route]]\npath_prefix = \"/api/\"\npool = \"p\"\n[[listener.route.limit]]\nkey = \"client_ip\"\nrate = \"1/m\"\nburst = 1\n[pool.p]\nservers = {}\n",
        servers_toml(&b, &[])
    );
    let lb = start_lb(&text).await;
    let (web, admin) = (lb.local_addr("web").unwrap(), lb.admin_addr().unwrap());
    let rules = |e: &Value| e["rules"].to_string();
    let denied = explain(admin, "path=/&client=10.9.1.1").await;
    assert!(
        denied["answered"]
            .as_str()
            .unwrap()
            .starts_with("listener answers 403"),
        "{denied:#}"
    );
    assert!(
        rules(&denied).contains("10.9.1.1 is not allowed: 403"),
        "{denied:#}"
    );
    let blocked = explain(admin, "path=/admin/x").await;
    assert!(
        rules(&blocked).contains("block rule 1 matches: 403"),
        "{blocked:#}"
    );
    assert!(blocked["pick"].is_null(), "{blocked:#}");
    // The route's limit: two requests allowed (rate 1/m, burst 1), then 429.
    let fresh = explain(admin, "path=/api/x").await;
    assert!(
        rules(&fresh).contains("route 1: limit 1/m burst 1 on client_ip for \\\"127.0.0.1\\\": 2 more request(s) allowed now"),
        "{fresh:#}"
    );
    assert_eq!(pick(&fresh), "s1", "{fresh:#}");
    for _ in 0..2 {
        assert_eq!(get(web, "/api/x").await.status, 200);
    }
    for _ in 0..2 {
        let over = explain(admin, "path=/api/x").await;
        assert!(rules(&over).contains("over the limit: 429"), "{over:#}");
        assert!(
            over["answered"]
                .as_str()
                .unwrap()
                .starts_with("route 1 answers 429"),
            "{over:#}"
        );
    }
    assert_eq!(get(web, "/api/x").await.status, 429);
    // Another client's allowance is whole: explaining spent none of it.
    let other = explain(admin, "path=/api/x&client=10.1.1.1").await;
    assert!(
        rules(&other).contains("2 more request(s) allowed now"),
        "{other:#}"
    );
    lb.shutdown().await;
}

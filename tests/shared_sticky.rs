//! Two Switchyards sharing their sticky tables through a real `redis-server`, end to end:
//! real clients on real sockets alternating between the two balancers stay on one server
//! (`app_cookie`: the application's session cookie; `source_ip`: the client address, given
//! by a PROXY header since every test client is 127.0.0.1), where the same two balancers
//! with local tables do not. Redis killed mid-run costs no client an error, is counted, and
//! once it is back the mappings learned meanwhile reach the other balancer and both agree.
//! Balancer A serves HTTP/1 with the direct path, B with hyper: both engines look up and
//! learn through the shared tables. The figures printed are the ones in
//! docs/shared-state.md.

mod common;
mod l4_common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use switchyard::demo::Backend;
use switchyard::proxy::http::Http1Engine;
use switchyard::runtime::Runtime;

use common::{backends, servers_toml};
use l4_common::Redis;

/// Sessions (app_cookie) and client addresses (source_ip) per run.
const CLIENTS: usize = 20;
/// Requests per client after the first, alternating B, A, B, …
const ROUNDS: usize = 10;

/// Listener "app" → pool "a" (`app_cookie` JSESSIONID), listener "ip" → pool "i"
/// (`source_ip`, PROXY headers from 127.0.0.1), both random over the same servers (as two
/// balancers that pick alone: in lockstep, two round robins would agree by chance);
/// the tables shared through `[redis]` when `redis` is given.
fn config(b: &[Backend], redis: Option<u16>) -> String {
    let servers = servers_toml(b, &[]);
    let (shared, redis) = match redis {
        Some(port) => (
            "shared = true\n",
            format!(
                "[redis]\naddr = \"127.0.0.1:{port}\"\ntimeout = \"20ms\"\nio_timeout = \"300ms\"\n"
            ),
        ),
        None => ("", String::new()),
    };
    format!(
        r#"
[[listener]]
name = "app"
listen = "127.0.0.1:0"
pool = "a"

[[listener]]
name = "ip"
listen = "127.0.0.1:0"
pool = "i"
accept_proxy_protocol = true
trusted_proxies = ["127.0.0.1"]

[pool.a]
algorithm = "random"
servers = {servers}
[pool.a.sticky]
mode = "app_cookie"
name = "JSESSIONID"
{shared}
[pool.i]
algorithm = "random"
servers = {servers}
[pool.i.sticky]
mode = "source_ip"
{shared}
[admin]
listen = "127.0.0.1:0"

{redis}"#
    )
}

async fn start(toml: &str, engine: Http1Engine) -> Runtime {
    let plan = switchyard::config::load_str(toml, "test.toml")
        .unwrap_or_else(|e| panic!("test config is invalid:\n{e}\n---\n{toml}"));
    Runtime::start_with(plan, engine)
        .await
        .expect("start load balancer")
}

/// What a client learns of one answer.
#[derive(Debug)]
struct Seen {
    status: u16,
    server: String,
    set_cookie: Option<String>,
}

/// One request over a fresh connection (`Connection: close`), with a PROXY v1 header naming
/// `source` when given and a `Cookie` when given. `Err` for anything but a whole answer.
async fn ask(
    addr: SocketAddr,
    path: &str,
    source: Option<IpAddr>,
    cookie: Option<&str>,
) -> Result<Seen, String> {
    let mut req = String::new();
    if let Some(ip) = source {
        req.push_str(&format!(
            "PROXY TCP4 {ip} 127.0.0.1 40000 {}\r\n",
            addr.port()
        ));
    }
    req.push_str(&format!(
        "GET {path} HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n"
    ));
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    req.push_str("\r\n");
    let (status, head) = common::raw_exchange(addr, &req).await?;
    let header = |name: &str| {
        head.iter().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    };
    Ok(Seen {
        status,
        server: header("x-server").unwrap_or_default(),
        set_cookie: header("set-cookie"),
    })
}

/// `ask` that must succeed with 200.
async fn ok(addr: SocketAddr, path: &str, source: Option<IpAddr>, cookie: Option<&str>) -> Seen {
    let seen = ask(addr, path, source, cookie).await.expect("an answer");
    assert_eq!(seen.status, 200, "{seen:?}");
    seen
}

fn client_ip(i: usize) -> IpAddr {
    IpAddr::from([10, 1, (i / 250) as u8, (i % 250) as u8 + 1])
}

/// Entries in a balancer's table of `pool`.
fn held(lb: &Runtime, pool: &str) -> usize {
    lb.upstream(pool).unwrap().sticky().unwrap().table_len()
}

/// Wait until `cond`, checking every millisecond; the time it took.
async fn until(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) -> Duration {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    started.elapsed()
}

fn median_max(mut v: Vec<Duration>) -> (Duration, Duration) {
    v.sort();
    (v[v.len() / 2], *v.last().unwrap())
}

/// The two balancers, their addresses for one listener.
struct Pair {
    a: Runtime,
    b: Runtime,
}

impl Pair {
    async fn start(b: &[Backend], redis: Option<u16>) -> Pair {
        let toml = config(b, redis);
        Pair {
            a: start(&toml, Http1Engine::Direct).await,
            b: start(&toml, Http1Engine::Hyper).await,
        }
    }

    fn addrs(&self, listener: &str) -> [SocketAddr; 2] {
        [
            self.a.local_addr(listener).unwrap(),
            self.b.local_addr(listener).unwrap(),
        ]
    }

    async fn links_up(&self) {
        until("both links to Redis up", Duration::from_secs(10), || {
            [&self.a, &self.b]
                .iter()
                .all(|lb| lb.cluster().is_some_and(|c| c.is_up()))
        })
        .await;
    }

    async fn stop(self) {
        self.a.shutdown().await;
        self.b.shutdown().await;
    }
}

/// Sessions opened on A (a login there), then used alternately on B and A. With `wait`, B
/// is first given the time to learn the mapping (its own table holds it; the time is
/// returned per session); without, the client goes to B at once. Returns the requests that
/// reached the session's server, of `CLIENTS × ROUNDS`, and the waits.
async fn app_sessions(p: &Pair, wait: bool) -> (usize, Vec<Duration>) {
    let [a, b] = p.addrs("app");
    let (mut same, mut waits) = (0, Vec::new());
    for _ in 0..CLIENTS {
        let before = held(&p.b, "a");
        let login = ok(a, "/login", None, None).await;
        let cookie = login.set_cookie.expect("the application sets its cookie");
        let cookie = cookie.split(';').next().unwrap().to_string();
        if wait {
            let took = until("B holds the session", Duration::from_secs(5), || {
                held(&p.b, "a") > before
            })
            .await;
            waits.push(took);
        }
        for r in 0..ROUNDS {
            let to = if r % 2 == 0 { b } else { a };
            let seen = ok(to, "/", None, Some(&cookie)).await;
            same += usize::from(seen.server == login.server);
        }
    }
    (same, waits)
}

/// Client addresses first served by A, then alternately by B and A (PROXY headers): the
/// requests that reached the server A chose, and (with `wait`) B's time to learn each.
async fn ip_clients(p: &Pair, first: usize, wait: bool) -> (usize, Vec<Duration>) {
    let [a, b] = p.addrs("ip");
    let (mut same, mut waits) = (0, Vec::new());
    for i in first..first + CLIENTS {
        let ip = Some(client_ip(i));
        let before = held(&p.b, "i");
        let chosen = ok(a, "/", ip, None).await.server;
        if wait {
            let took = until("B holds the client", Duration::from_secs(5), || {
                held(&p.b, "i") > before
            })
            .await;
            waits.push(took);
        }
        for r in 0..ROUNDS {
            let to = if r % 2 == 0 { b } else { a };
            same += usize::from(ok(to, "/", ip, None).await.server == chosen);
        }
    }
    (same, waits)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (redis-server): scripts/test runs it"]
async fn clients_alternating_between_two_balancers_stay_on_one_server() {
    let servers = backends(3).await;
    let all = CLIENTS * ROUNDS;

    // The control: the same two balancers with their own tables lose the sessions.
    let local = Pair::start(&servers, None).await;
    let (app_local, _) = app_sessions(&local, false).await;
    let (ip_local, _) = ip_clients(&local, 0, false).await;
    println!(
        "local tables: app_cookie {app_local}/{all}, source_ip {ip_local}/{all} on the first server"
    );
    assert!(
        app_local < all && ip_local < all,
        "B, picking alone, moves clients"
    );
    local.stop().await;

    let redis = Redis::start().await;
    let shared = Pair::start(&servers, Some(redis.port)).await;
    shared.links_up().await;
    // At once: B finds the mapping by reading through to Redis (or by the message).
    let (app_now, _) = app_sessions(&shared, false).await;
    let (ip_now, _) = ip_clients(&shared, 100, false).await;
    println!("shared, at once: app_cookie {app_now}/{all}, source_ip {ip_now}/{all}");
    // Given the time to learn it: every request on the session's server.
    let (app, app_waits) = app_sessions(&shared, true).await;
    let (ip, ip_waits) = ip_clients(&shared, 200, true).await;
    let (am, ax) = median_max(app_waits);
    let (im, ix) = median_max(ip_waits);
    println!(
        "shared: app_cookie {app}/{all}, source_ip {ip}/{all}; learned on A → in B's table: app_cookie median {am:?} max {ax:?}, source_ip median {im:?} max {ix:?}"
    );
    assert_eq!((app, ip), (all, all));
    let a_stats = shared.a.cluster().unwrap().link_stats();
    assert!(a_stats.writes > 0 && a_stats.dropped == 0, "{a_stats:?}");
    // The links stop with the balancers, after their listeners drained.
    let links = [shared.a.cluster().unwrap(), shared.b.cluster().unwrap()];
    shared.stop().await;
    assert!(links.iter().all(|c| !c.is_up()), "links closed at shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (redis-server): scripts/test runs it"]
async fn redis_killed_mid_run_costs_no_client_an_error_and_is_caught_up() {
    let servers = backends(3).await;
    let mut redis = Redis::start().await;
    let p = Pair::start(&servers, Some(redis.port)).await;
    p.links_up().await;
    let [a, b] = p.addrs("ip");
    let mut failed = Vec::new();
    let mut tally = |r: Result<Seen, String>| match r {
        Ok(s) if s.status == 200 => {}
        other => failed.push(format!("{other:?}")),
    };
    // Before: clients 0..20 learned with Redis up.
    for i in 0..CLIENTS {
        tally(ask(a, "/", Some(client_ip(i)), None).await);
        tally(ask(b, "/", Some(client_ip(i)), None).await);
    }

    // Redis hangs (SIGSTOP: connections open, no answer) under traffic: a new client's
    // lookup waits at most [redis] timeout (20 ms here) until the links are found down
    // (io_timeout, 300 ms), then not at all.
    redis.signal("STOP").await;
    let hung = Instant::now();
    let (mut hung_slowest, mut hung_requests) = (Duration::ZERO, 0);
    let all_down = || {
        [&p.a, &p.b]
            .iter()
            .all(|lb| lb.cluster().is_some_and(|c| !c.is_up()))
    };
    while !all_down() {
        assert!(
            hung.elapsed() < Duration::from_secs(5),
            "links not found down within 5 s"
        );
        let i = 1000 + hung_requests;
        let to = if hung_requests % 2 == 0 { a } else { b };
        let t = Instant::now();
        tally(ask(to, "/", Some(client_ip(i)), None).await);
        hung_slowest = hung_slowest.max(t.elapsed());
        hung_requests += 1;
    }
    let found_hung = hung.elapsed();
    println!(
        "Redis hung: both links found down after {found_hung:?}; {hung_requests} new clients meanwhile, slowest request {hung_slowest:?}"
    );
    // Then it dies (still stopped): old and new clients alternate between the balancers.
    redis.kill().await;
    // Clients 20..40 are new during the outage: A and B each learn them on their own.
    let outage: Vec<usize> = (CLIENTS..2 * CLIENTS).collect();
    let mut slowest = Duration::ZERO;
    for round in 0..4 {
        for i in (0..CLIENTS).chain(outage.iter().copied()) {
            let to = if round % 2 == 0 { a } else { b };
            let t = Instant::now();
            tally(ask(to, "/", Some(client_ip(i)), None).await);
            slowest = slowest.max(t.elapsed());
        }
    }
    // Old clients kept their server on both balancers (local tables).
    for i in 0..CLIENTS {
        let ip = Some(client_ip(i));
        let on_a = ok(a, "/", ip, None).await.server;
        assert_eq!(ok(b, "/", ip, None).await.server, on_a, "client {i}");
    }
    let (sa, sb) = (
        p.a.cluster().unwrap().link_stats(),
        p.b.cluster().unwrap().link_stats(),
    );
    println!("Redis down: slowest request {slowest:?}; A {sa:?}; B {sb:?}");
    assert!(sa.downs >= 1 && sb.downs >= 1);
    assert!(sa.skipped + sa.dropped > 0 && sb.skipped + sb.dropped > 0);
    let ip_table = |lb: &Runtime| {
        lb.upstream("i")
            .unwrap()
            .sticky()
            .unwrap()
            .shared_stats()
            .unwrap()
    };
    let skipped = ip_table(&p.a).fetch_skipped + ip_table(&p.b).fetch_skipped;
    assert!(
        skipped > 0,
        "read-throughs not tried while down are counted"
    );
    // The operator sees it: /metrics and /status.
    let admin = p.b.admin_addr().unwrap();
    let metrics = common::get(admin, "/metrics").await.text();
    let skipped_calls = p.b.cluster().unwrap().link_stats().skipped;
    for line in [
        "switchyard_redis_up 0".to_string(),
        "switchyard_redis_link_changes_total{to=\"down\"} 1".to_string(),
        format!("switchyard_redis_calls_total{{result=\"skipped\"}} {skipped_calls}"),
    ] {
        assert!(
            metrics.lines().any(|l| l == line),
            "{line:?} in:\n{metrics}"
        );
    }
    let event = "switchyard_pool_sticky_shared_total{pool=\"i\",mode=\"source_ip\",event=\"fetch_skipped\"} ";
    let fetch_skipped = metrics
        .lines()
        .find_map(|l| l.strip_prefix(event))
        .and_then(|n| n.parse::<u64>().ok());
    assert!(fetch_skipped.is_some_and(|n| n > 0), "{metrics}");
    let status: serde_json::Value =
        serde_json::from_str(&common::get(admin, "/status").await.text()).unwrap();
    assert_eq!(status["redis"]["up"], false, "{status}");
    let pool_i = &status["pools"][1];
    assert_eq!(pool_i["name"], "i");
    assert!(
        pool_i["sticky"]["shared"]["fetch_skipped"].as_u64() > Some(0),
        "{status}"
    );

    // Redis back, empty: both links up, each writes what Redis lacks and takes what it has.
    redis.restart().await;
    let back = Instant::now();
    p.links_up().await;
    let up_after = back.elapsed();
    // Caught up: for every client, both balancers name one server (the one Redis kept).
    let mut agreed_after = Duration::ZERO;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let mut disagree = 0;
        for i in 0..2 * CLIENTS {
            let ip = Some(client_ip(i));
            let on_a = ok(a, "/", ip, None).await.server;
            disagree += usize::from(ok(b, "/", ip, None).await.server != on_a);
        }
        if disagree == 0 {
            agreed_after = agreed_after.max(back.elapsed());
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{disagree} clients still differ 10 s after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let caught = ip_table(&p.a).caught_up + ip_table(&p.b).caught_up;
    let adopted = ip_table(&p.a).adopted + ip_table(&p.b).adopted;
    println!(
        "Redis back: links up after {up_after:?}; every client on one server on both balancers after {agreed_after:?}; catch-up wrote {caught}, adopted {adopted}"
    );
    assert!(caught > 0, "the catch-up wrote the entries Redis lost");
    let metrics = common::get(admin, "/metrics").await.text();
    assert!(
        metrics.lines().any(|l| l == "switchyard_redis_up 1"),
        "{metrics}"
    );
    assert!(failed.is_empty(), "client errors: {failed:?}");
    p.stop().await;
}

/// The keys of source_ip entries in the Redis on `port`, once it holds `n` (5 s at most).
async fn keys_in(port: u16, n: usize) -> usize {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}")).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let keys: Vec<String> = redis::cmd("KEYS")
            .arg("switchyard:source_ip:i:*")
            .query_async(&mut conn)
            .await
            .unwrap();
        if keys.len() >= n || Instant::now() > deadline {
            return keys.len();
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Reload onto `toml`: the change lines.
async fn reload(lb: &Runtime, toml: &str) -> Vec<String> {
    let plan = switchyard::config::load_str(toml, "t.toml").unwrap();
    lb.apply(plan).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (redis-server): scripts/test runs it"]
async fn reloads_that_add_change_and_remove_redis_keep_the_tables() {
    let servers = backends(3).await;
    let (first, second) = (Redis::start().await, Redis::start().await);
    // Local tables first: 20 clients learned.
    let lb = start(&config(&servers, None), Http1Engine::Direct).await;
    assert!(lb.cluster().is_none());
    let ip = lb.local_addr("ip").unwrap();
    let mut chosen = Vec::new();
    for i in 0..CLIENTS {
        chosen.push(ok(ip, "/", Some(client_ip(i)), None).await.server);
    }
    let same_servers = || async {
        for (i, server) in chosen.iter().enumerate() {
            let now = ok(ip, "/", Some(client_ip(i)), None).await.server;
            assert_eq!(&now, server, "client {i}");
        }
    };

    // [redis] added, the tables made shared: the entries stay and reach Redis.
    let changes = reload(&lb, &config(&servers, Some(first.port))).await;
    assert!(
        changes.iter().any(|c| c.starts_with("[redis] added")),
        "{changes:?}"
    );
    let old = lb.cluster().expect("a link");
    until("link up", Duration::from_secs(10), || old.is_up()).await;
    assert_eq!(held(&lb, "i"), CLIENTS);
    same_servers().await;
    assert_eq!(
        keys_in(first.port, CLIENTS).await,
        CLIENTS,
        "the first Redis has them"
    );

    // [redis] moved to another Redis: a new link, the old one stops, the entries follow.
    let changes = reload(&lb, &config(&servers, Some(second.port))).await;
    assert!(
        changes
            .iter()
            .any(|c| c.starts_with("[redis] addr changed")),
        "{changes:?}"
    );
    let new = lb.cluster().unwrap();
    assert!(!std::sync::Arc::ptr_eq(&old, &new), "a new link");
    until("the old link stopped", Duration::from_secs(5), || {
        !old.is_up()
    })
    .await;
    until("the new link up", Duration::from_secs(10), || new.is_up()).await;
    assert_eq!(held(&lb, "i"), CLIENTS);
    same_servers().await;
    assert_eq!(
        keys_in(second.port, CLIENTS).await,
        CLIENTS,
        "the new Redis has them"
    );

    // [redis] removed (and shared with it): local tables again, with the entries.
    let changes = reload(&lb, &config(&servers, None)).await;
    assert!(
        changes.iter().any(|c| c.starts_with("[redis] removed")),
        "{changes:?}"
    );
    assert!(lb.cluster().is_none());
    until("the link stopped", Duration::from_secs(5), || !new.is_up()).await;
    assert_eq!(held(&lb, "i"), CLIENTS);
    same_servers().await;
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (redis-server): scripts/test runs it"]
async fn a_reload_that_fails_leaves_the_shared_tables_as_they_were() {
    let servers = backends(3).await;
    let redis = Redis::start().await;
    let p = Pair::start(&servers, Some(redis.port)).await;
    p.links_up().await;
    // A reload of A that makes new tables (another size) and then cannot bind a port.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let toml = config(&servers, Some(redis.port)).replace(
        "mode = \"source_ip\"\n",
        "mode = \"source_ip\"\nsize = 1000\n",
    ) + &format!(
        "[[listener]]\nname = \"taken\"\nlisten = \"{}\"\npool = \"i\"\n",
        taken.local_addr().unwrap()
    );
    let plan = switchyard::config::load_str(&toml, "t.toml").unwrap();
    assert!(p.a.apply(plan).await.is_err(), "the port is taken");
    // A's running table still receives what B learns, and still writes what A learns.
    let [a, b] = p.addrs("ip");
    for i in 0..CLIENTS {
        let ip = Some(client_ip(i));
        let before = held(&p.a, "i");
        let chosen = ok(b, "/", ip, None).await.server;
        until("A holds what B learned", Duration::from_secs(5), || {
            held(&p.a, "i") > before
        })
        .await;
        assert_eq!(ok(a, "/", ip, None).await.server, chosen, "client {i}");
    }
    p.stop().await;
}

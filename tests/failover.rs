//! Failure handling end to end: active and passive health checks, retries and failover,
//! backup servers, the admin health endpoints. Real backends and a real client on
//! 127.0.0.1; every load loop is bounded in count and time.
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use switchyard::demo::Backend;
use switchyard::runtime::Runtime;
use switchyard::upstream::HealthState;

/// Restart a stopped backend on its old port; the old listener closes asynchronously.
async fn restart(addr: SocketAddr, name: &str) -> Backend {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        match Backend::start_on(addr, name, Duration::ZERO).await {
            Ok(b) => return b,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "cannot restart {name} on {addr}: {e}"
                );
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

fn state(lb: &Runtime, i: usize) -> HealthState {
    lb.pool("p").unwrap().servers()[i].health_state()
}

fn config(backends: &[Backend], pool_extra: &str, sections: &str) -> String {
    format!(
        r#"
[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "p"

[admin]
listen = "127.0.0.1:0"

[pool.p]
timeouts = {{ connect = "2s", read = "5s" }}
servers = {}
{pool_extra}
{sections}
"#,
        servers_toml(backends, &[])
    )
}

const FAST_HEALTH: &str = r#"
[pool.p.health]
type = "http"
path = "/health"
interval = "200ms"
timeout = "150ms"
rise = 2
fall = 2
"#;

const RETRY_ALL: &str = r#"
[pool.p.retry]
attempts = 2
on = ["connect_failure", "reset", "timeout", "502", "503", "504"]
"#;

/// What one run of the steady stream saw.
struct StreamRun {
    sent: usize,
    errors: Vec<(Duration, u16, String)>,
    back_after: Duration,
    s2_after_back: usize,
    tally: std::collections::BTreeMap<String, usize>,
}

/// 200 req/s for 10 s over three backends (4 clients × 50 req/s × 500 requests, each client
/// bounded in count and time); s2 is stopped at 1.5 s and restarted once it is out.
async fn steady_stream_with_a_stop(retry: &str) -> StreamRun {
    let mut b = backends(3).await;
    let lb = start_lb(&config(&b, "", &format!("{FAST_HEALTH}{retry}"))).await;
    let addr = lb.local_addr("web").unwrap();

    const CLIENTS: usize = 4;
    const PER_CLIENT: usize = 500;
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..CLIENTS {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::connect(addr).await;
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut seen = Vec::new();
            for _ in 0..PER_CLIENT {
                if t0.elapsed() > Duration::from_secs(30) {
                    break;
                }
                tick.tick().await;
                let a = c.get("/").await;
                seen.push((t0.elapsed(), a.status.as_u16(), a.server()));
            }
            seen
        }));
    }

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s2_addr = b[1].addr;
    b[1].stop();
    wait_until(Duration::from_secs(5), "s2 marked unhealthy", || async {
        state(&lb, 1) == HealthState::Unhealthy
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    b[1] = restart(s2_addr, "s2").await;
    let restarted = Instant::now();
    let restarted_at = t0.elapsed();
    wait_until(Duration::from_secs(5), "s2 back in rotation", || async {
        state(&lb, 1) == HealthState::Healthy
    })
    .await;
    let back_after = restarted.elapsed();

    let mut all = Vec::new();
    for t in tasks {
        all.extend(t.await.expect("client task"));
    }
    let errors: Vec<_> = all
        .iter()
        .filter(|(_, st, _)| *st != 200)
        .cloned()
        .collect();
    println!(
        "{} requests in {:?}, {} errors; s2 back {back_after:?} after restart",
        all.len(),
        t0.elapsed(),
        errors.len()
    );
    StreamRun {
        sent: all.len(),
        errors,
        back_after,
        s2_after_back: all
            .iter()
            .filter(|(t, _, s)| *t > restarted_at + back_after && s == "s2")
            .count(),
        tally: tally(all.into_iter().map(|(_, _, s)| s)),
    }
}

/// The issue's proof: a backend stopped mid-stream costs no request with retries on, and
/// once restarted it is back within rise × interval plus one check.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backend_stopped_mid_stream_costs_no_request_and_comes_back() {
    let run = steady_stream_with_a_stop(RETRY_ALL).await;
    assert_eq!(run.sent, 2000);
    assert!(
        run.errors.is_empty(),
        "client-visible errors: {:?}",
        run.errors
    );
    // rise (2) × interval (200ms) + one check (interval + timeout), plus scheduling slack
    // on a shared machine.
    let bound = Duration::from_millis(2 * 200 + 200 + 150 + 500);
    assert!(
        run.back_after <= bound,
        "s2 back after {:?} > {bound:?}",
        run.back_after
    );
    assert!(
        run.s2_after_back > 0,
        "s2 took no traffic after coming back"
    );
    assert!(
        run.tally["s1"] > 500 && run.tally["s3"] > 500,
        "{:?}",
        run.tally
    );
}

/// The control: the same stop with retries off is seen by clients, so the test above
/// shows the retries at work and not a lucky timing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_retries_the_same_stop_is_seen_by_clients() {
    let run = steady_stream_with_a_stop("[pool.p.retry]\nattempts = 0\n").await;
    assert_eq!(run.sent, 2000);
    assert!(!run.errors.is_empty(), "no errors even without retries");
    assert!(
        run.errors.iter().all(|(_, st, _)| *st == 502),
        "{:?}",
        run.errors
    );
}

#[tokio::test]
async fn every_server_down_gives_a_fast_503_with_retry_after() {
    let b = backends(2).await;
    let lb = start_lb(&config(&b, "", &format!("{FAST_HEALTH}{RETRY_ALL}"))).await;
    let addr = lb.local_addr("web").unwrap();
    let admin = lb.admin_addr().unwrap();
    assert_eq!(get(admin, "/health/ready").await.status, 200);
    for s in &b {
        s.stop();
    }
    wait_until(Duration::from_secs(5), "ready turns 503", || async {
        get(admin, "/health/ready").await.status == 503
    })
    .await;
    let ready = get(admin, "/health/ready").await;
    assert!(
        ready.text().contains("no usable server in pool(s) p"),
        "{}",
        ready.text()
    );
    assert!(ready.text().contains("state=unhealthy"), "{}", ready.text());
    assert_eq!(get(admin, "/health/live").await.status, 200);

    let started = Instant::now();
    let a = get(addr, "/").await;
    let took = started.elapsed();
    assert_eq!(a.status, 503);
    assert_eq!(a.headers.get("retry-after").unwrap(), "1");
    // Nothing is even tried: far below the 2 s connect timeout.
    assert!(took < Duration::from_millis(500), "took {took:?}");
}

#[tokio::test]
async fn without_health_checks_passive_failures_give_one_fast_503_then_quick_recovery() {
    let b = backends(2).await;
    let lb = start_lb(&config(&b, "fail_timeout = \"30s\"", RETRY_ALL)).await;
    let addr = lb.local_addr("web").unwrap();
    for s in &b {
        s.stop();
    }
    // Wait until both listeners are closed.
    for s in &b {
        let a = s.addr;
        wait_until(Duration::from_secs(5), "backend closed", || async move {
            tokio::net::TcpStream::connect(a).await.is_err()
        })
        .await;
    }
    // The first request tries both servers and gives the last error …
    let first = get(addr, "/").await;
    assert_eq!(first.status, 502, "{}", first.text());
    assert_eq!(state(&lb, 0), HealthState::Failed);
    assert_eq!(state(&lb, 1), HealthState::Failed);
    // … which took both out (max_fails = 1 by default): the next one is a 503 at once …
    let started = Instant::now();
    let second = get(addr, "/").await;
    assert_eq!(second.status, 503);
    assert_eq!(second.headers.get("retry-after").unwrap(), "1");
    assert!(started.elapsed() < Duration::from_millis(500));
    // … and, as nginx does ("mark them as live for quick recovery"), every server is tried
    // again by the following request instead of the pool staying dark for fail_timeout.
    assert_eq!(state(&lb, 0), HealthState::Healthy);
    let b0 = restart(b[0].addr, "s1").await;
    let third = get(addr, "/").await;
    assert_eq!(
        (third.status.as_u16(), third.server().as_str()),
        (200, "s1"),
        "{}",
        third.text()
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "well inside fail_timeout"
    );
    drop(b0);
}

#[tokio::test]
async fn backup_servers_take_over_and_give_back() {
    let b = backends(3).await;
    let servers = format!(
        "[{{ addr = \"{}\", name = \"s1\" }}, {{ addr = \"{}\", name = \"s2\" }}, {{ addr = \"{}\", name = \"s3\", backup = true }}]",
        b[0].addr, b[1].addr, b[2].addr
    );
    let toml = format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nservers = {servers}\n{FAST_HEALTH}"
    );
    let lb = start_lb(&toml).await;
    let addr = lb.local_addr("web").unwrap();
    let mut c = Client::connect(addr).await;
    let mut names = Vec::new();
    for _ in 0..10 {
        names.push(c.get("/").await.server());
    }
    assert_eq!(tally(names), [("s1".into(), 5), ("s2".into(), 5)].into());

    b[0].set_healthy(false);
    b[1].set_healthy(false);
    wait_until(Duration::from_secs(5), "primaries out", || async {
        state(&lb, 0) == HealthState::Unhealthy && state(&lb, 1) == HealthState::Unhealthy
    })
    .await;
    for _ in 0..10 {
        let a = c.get("/").await;
        assert_eq!((a.status.as_u16(), a.server().as_str()), (200, "s3"));
    }

    b[1].set_healthy(true);
    wait_until(Duration::from_secs(5), "s2 back", || async {
        state(&lb, 1) == HealthState::Healthy
    })
    .await;
    for _ in 0..10 {
        let a = c.get("/").await;
        assert_eq!((a.status.as_u16(), a.server().as_str()), (200, "s2"));
    }
}

#[tokio::test]
async fn health_transitions_follow_set_healthy() {
    let b = backends(2).await;
    let lb = start_lb(&config(&b, "", FAST_HEALTH)).await;
    let addr = lb.local_addr("web").unwrap();
    let admin = lb.admin_addr().unwrap();
    b[0].set_healthy(false);
    wait_until(Duration::from_secs(5), "s1 unhealthy", || async {
        state(&lb, 0) == HealthState::Unhealthy
    })
    .await;
    let check = lb.pool("p").unwrap().servers()[0].last_check().unwrap();
    assert!(!check.pass && check.detail == "status 503", "{check:?}");
    let ready = get(admin, "/health/ready").await;
    assert_eq!(ready.status, 200, "s2 still serves");
    assert!(
        ready.text().contains("server=s1") && ready.text().contains("state=unhealthy"),
        "{}",
        ready.text()
    );
    let mut c = Client::connect(addr).await;
    for _ in 0..10 {
        assert_eq!(c.get("/").await.server(), "s2");
    }
    b[0].set_healthy(true);
    wait_until(Duration::from_secs(5), "s1 healthy", || async {
        state(&lb, 0) == HealthState::Healthy
    })
    .await;
    let mut names = Vec::new();
    for _ in 0..10 {
        names.push(c.get("/").await.server());
    }
    assert_eq!(tally(names), [("s1".into(), 5), ("s2".into(), 5)].into());
}

#[tokio::test]
async fn passive_max_fails_takes_a_server_out_for_fail_timeout() {
    let mut b = backends(2).await;
    let toml = config(
        &b,
        "max_fails = 2\nfail_timeout = \"2s\"",
        "[pool.p.retry]\nattempts = 0\n",
    );
    let lb = start_lb(&toml).await;
    let addr = lb.local_addr("web").unwrap();
    let s1 = b[0].addr;
    b[0].stop();
    wait_until(Duration::from_secs(5), "s1 closed", || async move {
        tokio::net::TcpStream::connect(s1).await.is_err()
    })
    .await;
    // Round robin: s1 fails (502, no retries), s2 serves, s1 fails again: out.
    let mut statuses = Vec::new();
    let mut tripped = Instant::now();
    for i in 0..4 {
        if i == 2 {
            // The trip happens during this request, so not before now.
            tripped = Instant::now();
        }
        statuses.push(get(addr, "/").await.status.as_u16());
    }
    assert_eq!(statuses, [502, 200, 502, 200]);
    assert_eq!(state(&lb, 0), HealthState::Failed);

    // s1 is up again, but passive checks keep it out until fail_timeout has passed.
    b[0] = restart(s1, "s1").await;
    let mut checked = 0;
    for _ in 0..10 {
        let a = get(addr, "/").await;
        if tripped.elapsed() < Duration::from_millis(1800) {
            assert_eq!((a.status.as_u16(), a.server().as_str()), (200, "s2"));
            checked += 1;
        }
    }
    // On a machine so slow that no answer came back within fail_timeout, this test would
    // have shown nothing: say so rather than pass.
    assert!(checked > 0, "no answer within fail_timeout to check");
    wait_until(
        Duration::from_secs(6),
        "s1 tried again after fail_timeout",
        || async { get(addr, "/").await.server() == "s1" },
    )
    .await;
    assert!(tripped.elapsed() >= Duration::from_secs(2));
    assert_eq!(state(&lb, 0), HealthState::Healthy);
}

#[tokio::test]
async fn active_checks_bring_a_passively_failed_server_back_early() {
    let b = backends(2).await;
    let toml = config(
        &b,
        "max_fails = 1\nfail_timeout = \"60s\"",
        &format!("{FAST_HEALTH}[pool.p.retry]\nattempts = 1\non = [\"503\"]\n"),
    );
    let lb = start_lb(&toml).await;
    let addr = lb.local_addr("web").unwrap();
    // A 503 is in `on`: it counts as a failure and takes s1 out for 60 s …
    let a = get(addr, "/status/503").await;
    assert_eq!(a.status, 503, "both servers answer 503 to this path");
    assert_eq!(state(&lb, 0), HealthState::Failed);
    // … but s1 passes its health checks, so `rise` passes bring it back at once.
    let started = Instant::now();
    wait_until(
        Duration::from_secs(5),
        "s1 back before fail_timeout",
        || async { state(&lb, 0) == HealthState::Healthy },
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(5));
}

fn post(path: &str, body: impl Into<Bytes>) -> Request<Full<Bytes>> {
    Request::post(path).body(Full::new(body.into())).unwrap()
}

fn total_requests(b: &[Backend]) -> u64 {
    b.iter().map(|s| s.requests()).sum()
}

#[tokio::test]
async fn post_is_not_retried_after_reaching_a_server_unless_non_idempotent() {
    let b = backends(3).await;
    let retry = "[pool.p.retry]\nattempts = 2\non = [\"503\"]\n";
    let lb = start_lb(&config(&b, "max_fails = 0", retry)).await;
    let addr = lb.local_addr("web").unwrap();
    let mut c = Client::connect(addr).await;
    let a = c.send(post("/status/503", "hello")).await;
    assert_eq!(a.status, 503);
    assert_eq!(total_requests(&b), 1, "POST went to one server only");
    let a = c.get("/status/503").await;
    assert_eq!(a.status, 503);
    assert_eq!(total_requests(&b), 4, "GET tried all three");

    let b2 = backends(3).await;
    let retry = "[pool.p.retry]\nattempts = 2\non = [\"503\"]\nnon_idempotent = true\n";
    let lb2 = start_lb(&config(&b2, "max_fails = 0", retry)).await;
    let mut c2 = Client::connect(lb2.local_addr("web").unwrap()).await;
    let a = c2.send(post("/status/503", "hello")).await;
    assert_eq!(a.status, 503);
    assert_eq!(
        total_requests(&b2),
        3,
        "non_idempotent = true: POST tried on all three"
    );
}

#[tokio::test]
async fn each_retry_goes_to_a_server_this_request_has_not_tried() {
    // Passive checks off (max_fails = 0): only the request's own `tried` list keeps its
    // retries apart. Every algorithm, and a fixed client, so hashing always starts on the
    // same server.
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
        let b = backends(3).await;
        let retry = "[pool.p.retry]\nattempts = 2\non = [\"502\"]\n";
        let extra = format!("algorithm = \"{algorithm}\"\nmax_fails = 0");
        let lb = start_lb(&config(&b, &extra, retry)).await;
        let mut c = Client::connect(lb.local_addr("web").unwrap()).await;
        for n in 1..=5u64 {
            // All three answer 502: one request, three tries, one on each server.
            let a = c.get("/status/502").await;
            assert_eq!(a.status, 502, "{algorithm}");
            let got: Vec<u64> = b.iter().map(|s| s.requests()).collect();
            assert_eq!(got, [n, n, n], "{algorithm}: after {n} request(s)");
        }
    }
}

#[tokio::test]
async fn a_post_that_never_reached_a_server_is_retried_with_its_body() {
    post_retried_after_a_failed_connect("").await;
}

#[tokio::test]
async fn over_h2c_too_a_post_that_never_reached_a_server_is_retried_with_its_body() {
    post_retried_after_a_failed_connect("upstream_protocol = \"h2c\"").await;
}

async fn post_retried_after_a_failed_connect(pool_extra: &str) {
    let b = backends(2).await;
    let s1 = b[0].addr;
    b[0].stop();
    wait_until(Duration::from_secs(5), "s1 closed", || async move {
        tokio::net::TcpStream::connect(s1).await.is_err()
    })
    .await;
    // A small body (kept for replay) and a 1 MiB one (streamed: replayable only because the
    // connect failed before any byte was sent).
    let small = Bytes::from_static(b"hello");
    let big = Bytes::from((0..1 << 20).map(|i| (i % 251) as u8).collect::<Vec<u8>>());
    for body in [small, big] {
        // New LB each time so round robin starts at the stopped s1.
        let lb = start_lb(&config(&b, pool_extra, "")).await;
        let mut c = Client::connect(lb.local_addr("web").unwrap()).await;
        let want = format!(
            "received {} bytes xxh3={:016x}\n",
            body.len(),
            xxhash_rust::xxh3::xxh3_64(&body)
        );
        let a = c.send(post("/upload", body)).await;
        assert_eq!((a.status.as_u16(), a.server().as_str()), (200, "s2"));
        assert_eq!(a.text(), want);
    }
}

#[tokio::test]
async fn admin_endpoints_answer_and_refuse_what_they_do_not_serve() {
    let b = backends(1).await;
    let lb = start_lb(&config(&b, "", "")).await;
    let admin = lb.admin_addr().unwrap();
    let live = get(admin, "/health/live").await;
    assert_eq!(
        (live.status.as_u16(), live.text().as_str()),
        (200, "live\n")
    );
    let ready = get(admin, "/health/ready").await;
    assert_eq!(ready.status, 200);
    assert!(ready.text().starts_with("ready\n"), "{}", ready.text());
    assert!(ready.text().contains("server=s1"), "{}", ready.text());
    assert_eq!(get(admin, "/nope").await.status, 404);
    let mut c = Client::connect(admin).await;
    assert_eq!(c.send(post("/health/live", "")).await.status, 405);
}

#[tokio::test]
async fn checkers_stop_with_the_runtime() {
    let b = backends(1).await;
    let lb = start_lb(&config(&b, "", FAST_HEALTH)).await;
    wait_until(Duration::from_secs(5), "first health check", || async {
        b[0].requests() > 0
    })
    .await;
    lb.shutdown().await;
    let after = b[0].requests();
    // Watch for five check intervals: no new probe may arrive.
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(b[0].requests(), after, "a checker outlived its runtime");
    }
}

#[tokio::test]
async fn a_body_streamed_beyond_the_replay_buffer_is_not_sent_twice() {
    let b = backends(3).await;
    let retry = "[pool.p.retry]\nattempts = 2\non = [\"503\"]\nnon_idempotent = true\n";
    let lb = start_lb(&config(&b, "max_fails = 0", retry)).await;
    let mut c = Client::connect(lb.local_addr("web").unwrap()).await;
    // 64 KiB fits the replay buffer: tried on all three servers.
    let a = c.send(post("/status/503", vec![7u8; 64 * 1024])).await;
    assert_eq!(a.status, 503);
    assert_eq!(total_requests(&b), 3);
    // One byte more streams: it reached a server, so it is not retried.
    let a = c.send(post("/status/503", vec![7u8; 64 * 1024 + 1])).await;
    assert_eq!(a.status, 503);
    assert_eq!(total_requests(&b), 4);
}

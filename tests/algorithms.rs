//! Every balancing algorithm, through a running load balancer to real demo backends over
//! real HTTP on 127.0.0.1: the distribution each one promises, seen from the client side
//! (each answer names its backend in `x-server`).
mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use switchyard::demo::Backend;

/// Whole-test bound for the load loops below (each request also has its own 30 s bound).
const LIMIT: Duration = Duration::from_secs(20);

/// `simple_config` with a `hash_key` line for the pool.
fn config_with_key(algorithm: &str, backends: &[Backend], hash_key: &str) -> String {
    let algo_line = format!("algorithm = \"{algorithm}\"");
    simple_config(algorithm, backends, &[]).replacen(
        &algo_line,
        &format!("{algo_line}\nhash_key = \"{hash_key}\""),
        1,
    )
}

/// `n` GETs of `/` in a row over one keep-alive connection; the servers that answered.
async fn sequential(addr: SocketAddr, n: usize) -> Vec<String> {
    let mut c = Client::connect(addr).await;
    let mut names = Vec::with_capacity(n);
    for _ in 0..n {
        let a = c.get("/").await;
        assert_eq!(a.status, 200, "{}", a.text());
        names.push(a.server());
    }
    names
}

/// `clients` concurrent keep-alive clients each sending `each` GETs of `/`; the tally.
async fn concurrent(addr: SocketAddr, clients: usize, each: usize) -> BTreeMap<String, usize> {
    let tasks: Vec<_> = (0..clients)
        .map(|_| tokio::spawn(sequential(addr, each)))
        .collect();
    let mut names = Vec::new();
    for t in tasks {
        names.extend(
            tokio::time::timeout(LIMIT, t)
                .await
                .expect("load finished in time")
                .expect("client task"),
        );
    }
    tally(names)
}

/// Send one GET with `path` and `headers` on `c`; the server that answered.
async fn ask(c: &mut Client, path: &str, headers: &[(&str, String)]) -> String {
    let mut b = Request::get(path);
    for (k, v) in headers {
        b = b.header(*k, v.as_str());
    }
    let a = c.send(b.body(Full::new(Bytes::new())).unwrap()).await;
    assert_eq!(a.status, 200, "{}", a.text());
    a.server()
}

/// For 60 keys, ask twice each (`request(key)` gives path and headers): every key must
/// stay on one server, and the keys must cover all three servers.
async fn check_key_affinity(
    addr: SocketAddr,
    request: impl Fn(&str) -> (String, Vec<(&'static str, String)>),
) {
    let mut c = Client::connect(addr).await;
    let mut servers_used = BTreeSet::new();
    for i in 0..60 {
        let key = format!("user-{i}");
        let (path, headers) = request(&key);
        let first = ask(&mut c, &path, &headers).await;
        for _ in 0..2 {
            assert_eq!(
                ask(&mut c, &path, &headers).await,
                first,
                "key {key} changed server"
            );
        }
        servers_used.insert(first);
    }
    assert_eq!(
        servers_used.len(),
        3,
        "60 keys spread over all servers: {servers_used:?}"
    );
}

fn counts(t: &BTreeMap<String, usize>, names: &[&str]) -> Vec<usize> {
    names
        .iter()
        .map(|n| t.get(*n).copied().unwrap_or(0))
        .collect()
}

#[tokio::test]
async fn round_robin_weights_3_2_1_give_30_20_10_of_60() {
    let b = backends(3).await;
    let lb = start_lb(&simple_config("round_robin", &b, &[3, 2, 1])).await;
    let names = sequential(lb.local_addr("web").unwrap(), 60).await;
    assert_eq!(
        counts(&tally(names.clone()), &["s1", "s2", "s3"]),
        [30, 20, 10]
    );
    // Smooth: the heaviest server never serves three in a row.
    assert!(
        names.windows(3).all(|w| !(w[0] == w[1] && w[1] == w[2])),
        "{names:?}"
    );
}

#[tokio::test]
async fn least_conn_is_weighted_when_idle_and_avoids_busy_servers() {
    let b = backends(3).await;
    let lb = start_lb(&simple_config("least_conn", &b, &[3, 2, 1])).await;
    let addr = lb.local_addr("web").unwrap();
    // Idle pool: ties are broken in weighted turn.
    let t = tally(sequential(addr, 60).await);
    assert_eq!(counts(&t, &["s1", "s2", "s3"]), [30, 20, 10]);

    // Two slow requests hold two servers; everything else must go to the third.
    let pool = lb.pool("p").unwrap();
    let slow: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { get(addr, "/sleep/5000").await }))
        .collect();
    wait_until(Duration::from_secs(5), "two requests in flight", || {
        let n: u32 = pool.servers().iter().map(|s| s.in_flight()).sum();
        async move { n == 2 }
    })
    .await;
    let idle: Vec<String> = pool
        .servers()
        .iter()
        .filter(|s| s.in_flight() == 0)
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(
        idle.len(),
        1,
        "the slow requests went to two different servers"
    );
    let t = tally(sequential(addr, 12).await);
    assert_eq!(t, BTreeMap::from([(idle[0].clone(), 12)]));
    for s in slow {
        s.abort();
    }
}

/// 40 servers: `least_conn` keeps a load index (from 32 servers on) that the servers update
/// as requests start and end, instead of reading every server at each pick.
#[tokio::test]
async fn least_conn_over_a_large_pool_avoids_busy_servers() {
    let b = backends(40).await;
    let lb = start_lb(&simple_config("least_conn", &b, &[])).await;
    let addr = lb.local_addr("web").unwrap();
    let names: Vec<String> = (1..=40).map(|i| format!("s{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    // Idle: in turn, every server twice in 80 requests.
    let t = tally(sequential(addr, 80).await);
    assert_eq!(counts(&t, &names), [2; 40], "{t:?}");

    // 39 slow requests, one after another, each to a server with none in flight.
    let pool = lb.pool("p").unwrap();
    let mut slow = Vec::new();
    for k in 1..=39u32 {
        slow.push(tokio::spawn(async move { get(addr, "/sleep/10000").await }));
        wait_until(Duration::from_secs(5), "one more request in flight", || {
            let n: u32 = pool.servers().iter().map(|s| s.in_flight()).sum();
            async move { n == k }
        })
        .await;
    }
    let idle: Vec<String> = pool
        .servers()
        .iter()
        .filter(|s| s.in_flight() == 0)
        .map(|s| s.name.clone())
        .collect();
    assert_eq!(idle.len(), 1, "39 slow requests on 39 servers");
    // Everything else goes to the one idle server.
    let t = tally(sequential(addr, 12).await);
    assert_eq!(t, BTreeMap::from([(idle[0].clone(), 12)]));
    for s in slow {
        s.abort();
    }
}

#[tokio::test]
async fn ip_hash_keeps_one_client_on_one_server() {
    let b = backends(3).await;
    let lb = start_lb(&simple_config("ip_hash", &b, &[])).await;
    let addr = lb.local_addr("web").unwrap();
    // Fresh connections (new source ports), same address.
    let mut names = Vec::new();
    for _ in 0..20 {
        let a = get(addr, "/").await;
        assert_eq!(a.status, 200);
        names.push(a.server());
    }
    let t = tally(names);
    assert_eq!(t.len(), 1, "{t:?}");
    assert_eq!(t.values().sum::<usize>(), 20);
}

#[tokio::test]
async fn hash_by_header_is_sticky_per_value_and_spreads_values() {
    let b = backends(3).await;
    let lb = start_lb(&config_with_key("hash", &b, "header:x-user")).await;
    check_key_affinity(lb.local_addr("web").unwrap(), |key| {
        ("/".to_string(), vec![("x-user", key.to_string())])
    })
    .await;
}

#[tokio::test]
async fn maglev_by_cookie_is_sticky_per_value_and_spreads_values() {
    let b = backends(3).await;
    let lb = start_lb(&config_with_key("maglev", &b, "cookie:session")).await;
    check_key_affinity(lb.local_addr("web").unwrap(), |key| {
        (
            "/".to_string(),
            vec![("cookie", format!("theme=dark; session={key}"))],
        )
    })
    .await;
}

#[tokio::test]
async fn maglev_by_query_is_sticky_per_value_and_spreads_values() {
    let b = backends(3).await;
    let lb = start_lb(&config_with_key("maglev", &b, "query:user")).await;
    check_key_affinity(lb.local_addr("web").unwrap(), |key| {
        (format!("/items?page=2&user={key}"), vec![])
    })
    .await;
}

#[tokio::test]
async fn random_spreads_over_all_servers_by_weight() {
    let b = backends(3).await;
    let lb = start_lb(&simple_config("random", &b, &[1, 1, 2])).await;
    let t = tally(sequential(lb.local_addr("web").unwrap(), 120).await);
    let c = counts(&t, &["s1", "s2", "s3"]);
    assert!(c.iter().all(|&x| x > 0), "{t:?}");
    // Expected 30/30/60: the weight-2 server gets clearly more than either other.
    assert!(c[2] > c[0] && c[2] > c[1], "{t:?}");
}

#[tokio::test]
async fn p2c_spreads_over_all_servers() {
    let b = backends(3).await;
    let lb = start_lb(&simple_config("p2c", &b, &[])).await;
    let t = concurrent(lb.local_addr("web").unwrap(), 4, 20).await;
    assert_eq!(t.values().sum::<usize>(), 80);
    assert!(
        counts(&t, &["s1", "s2", "s3"]).iter().all(|&x| x > 0),
        "{t:?}"
    );
}

/// s1 answers in 50 ms, s2 and s3 in 5 ms.
async fn one_slow_two_fast() -> Vec<Backend> {
    vec![
        Backend::start("s1", Duration::from_millis(50))
            .await
            .unwrap(),
        Backend::start("s2", Duration::from_millis(5))
            .await
            .unwrap(),
        Backend::start("s3", Duration::from_millis(5))
            .await
            .unwrap(),
    ]
}

#[tokio::test]
async fn least_time_sends_clearly_less_to_a_slow_server() {
    let b = one_slow_two_fast().await;
    let lb = start_lb(&simple_config("least_time", &b, &[])).await;
    let t = concurrent(lb.local_addr("web").unwrap(), 4, 25).await;
    let c = counts(&t, &["s1", "s2", "s3"]);
    assert_eq!(c.iter().sum::<usize>(), 100);
    // It is measured (a new server gets tried), then avoided.
    assert!(c[0] >= 1, "{t:?}");
    assert!(c[0] * 4 < c[1] && c[0] * 4 < c[2], "{t:?}");
}

/// 40 servers (so `least_time` keeps its load index), one of them slow: each is tried once,
/// then the slow one is left alone.
#[tokio::test]
async fn least_time_over_a_large_pool_leaves_a_slow_server_alone() {
    let mut b = vec![
        Backend::start("s1", Duration::from_millis(50))
            .await
            .unwrap(),
    ];
    for i in 2..=40 {
        b.push(
            Backend::start(&format!("s{i}"), Duration::from_millis(2))
                .await
                .unwrap(),
        );
    }
    let lb = start_lb(&simple_config("least_time", &b, &[])).await;
    let t = concurrent(lb.local_addr("web").unwrap(), 4, 50).await;
    assert_eq!(t.values().sum::<usize>(), 200);
    assert_eq!(t.len(), 40, "every server tried: {t:?}");
    // A fair share would be 5.
    assert!(t["s1"] <= 2, "{t:?}");
}

#[tokio::test]
async fn p2c_sends_clearly_less_to_a_slow_server() {
    let b = one_slow_two_fast().await;
    let lb = start_lb(&simple_config("p2c", &b, &[])).await;
    // p2c weighs in-flight requests first: an idle slow server still wins against a busy
    // fast one, so it keeps roughly one request at a time (about a tenth of the traffic
    // here), while the fast ones share the rest.
    let t = concurrent(lb.local_addr("web").unwrap(), 4, 40).await;
    let c = counts(&t, &["s1", "s2", "s3"]);
    assert_eq!(c.iter().sum::<usize>(), 160);
    assert!(c[0] * 3 < c[1] && c[0] * 3 < c[2], "{t:?}");
}

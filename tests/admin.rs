//! The admin listener's `/metrics` (Prometheus text format 0.0.4) and `/status` (JSON),
//! read over a real socket after real traffic: HTTP requests with sticky cookies naming a
//! `down` server, a PROXY-protocol http listener, a TCP listener over its `max_connections`,
//! a TCP pool whose only server refuses, a UDP session. Every counter is asserted exactly,
//! and every line of the page is parsed.
mod common;
mod l4_common;
mod metrics_common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::Full;
use l4_common::*;
use metrics_common::*;
use switchyard::proxy::http::sticky::server_cookie_id;
use switchyard::runtime::Runtime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// The unusual server name checks label escaping end to end: a quote and a backslash.
const ODD: &str = "s\"2\\";

struct Setup {
    lb: Runtime,
    admin: SocketAddr,
    _web: Vec<switchyard::demo::Backend>,
    _tcp: (TcpBackend, TcpBackend),
    _udp: UdpBackend,
    dead: [SocketAddr; 2],
}

async fn setup() -> Setup {
    let web = backends(2).await;
    let echo = TcpBackend::start("e", Mode::Echo).await;
    let spare = TcpBackend::start("b", Mode::Echo).await;
    let udp = UdpBackend::start("u1").await;
    // Two ports nothing listens on (held together while chosen, so they differ). Two
    // servers: the only server of a pool is never taken out by passive checks.
    let dead = {
        let a = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let b = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        [a.local_addr().unwrap(), b.local_addr().unwrap()]
    };
    let toml = format!(
        r#"
[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "p"

[[listener]]
name = "pp"
listen = "127.0.0.1:0"
pool = "p"
accept_proxy_protocol = true
trusted_proxies = ["127.0.0.1"]

[[listener]]
name = "tcp"
listen = "127.0.0.1:0"
protocol = "tcp"
pool = "t"
max_connections = 1

[[listener]]
name = "tcpdead"
listen = "127.0.0.1:0"
protocol = "tcp"
pool = "dead"

[[listener]]
name = "udp"
listen = "127.0.0.1:0"
protocol = "udp"
pool = "u"

[admin]
listen = "127.0.0.1:0"

[pool.p]
servers = [
  {{ addr = "{}", name = "s1" }},
  {{ addr = "{}", name = "s\"2\\", down = true }},
]
[pool.p.sticky]
mode = "cookie"
name = "SRV"
[pool.p.health]
type = "http"
path = "/health"
interval = "1s"
timeout = "500ms"
rise = 2
fall = 3

[pool.t]
servers = [{{ addr = "{}", name = "e" }}, {{ addr = "{}", name = "b", backup = true }}]

[pool.dead]
servers = [{{ addr = "{}", name = "gone" }}, {{ addr = "{}", name = "gone2" }}]

[pool.u]
servers = [{{ addr = "{}", name = "u1" }}]
"#,
        web[0].addr, web[1].addr, echo.addr, spare.addr, dead[0], dead[1], udp.addr
    );
    let lb = start_lb(&toml).await;
    let admin = lb.admin_addr().unwrap();
    Setup {
        lb,
        admin,
        _web: web,
        _tcp: (echo, spare),
        _udp: udp,
        dead,
    }
}

/// Drive the traffic whose counters the tests assert.
async fn drive(s: &Setup) {
    let lb = &s.lb;
    let pool = lb.pool("p").unwrap();
    let cookie = |i: usize| format!("SRV={}", server_cookie_id("p", &pool.servers()[i]));

    // Two requests stuck to the down server: moved to s1 and counted as broken; two stuck
    // to s1 (one answered 503 by it): followed, not counted.
    let web = lb.local_addr("web").unwrap();
    for (path, c) in [("/", 1), ("/", 1), ("/", 0), ("/status/503", 0)] {
        let a = get_with(web, path, &[("cookie", &cookie(c))]).await;
        assert_eq!(a.server(), "s1");
        assert_eq!(a.status, if path == "/" { 200 } else { 503 });
    }

    // PROXY header in front of HTTP: one believed (and served by s1), one malformed.
    let pp = lb.local_addr("pp").unwrap();
    let mut c = TcpStream::connect(pp).await.unwrap();
    c.write_all(
        b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 80\r\nGET /headers HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n",
    )
    .await
    .unwrap();
    let answer = String::from_utf8(read_to_end(&mut c, Duration::from_secs(10)).await).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let mut c = TcpStream::connect(pp).await.unwrap();
    c.write_all(b"PROXY TCP4 1.2.3 127.0.0.1 1 80\r\nGET / HTTP/1.1\r\nhost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_within(&mut c, Duration::from_secs(10)).await);

    // TCP with max_connections = 1: one connection echoes 5 bytes, a second one is closed.
    let tcp = lb.local_addr("tcp").unwrap();
    let mut first = TcpStream::connect(tcp).await.unwrap();
    first.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 5];
    first.read_exact(&mut buf).await.unwrap();
    assert_eq!(&buf, b"hello");
    let mut second = TcpStream::connect(tcp).await.unwrap();
    assert!(closed_within(&mut second, Duration::from_secs(5)).await);
    drop(first);

    // A TCP pool whose servers refuse: a connect failure on each, the client closed.
    let mut c = TcpStream::connect(lb.local_addr("tcpdead").unwrap())
        .await
        .unwrap();
    assert!(closed_within(&mut c, Duration::from_secs(5)).await);

    // One UDP datagram each way.
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(b"ping", lb.local_addr("udp").unwrap())
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("UDP answer within 5 s")
        .unwrap();
    assert_eq!(&buf[..n], b"u1:ping");

    // Wait until every connection has ended, every request has let go of its server, and
    // both health checkers have checked: then the counters no longer move.
    let admin = s.admin;
    let s1_addr = pool.servers()[0].addr.to_string();
    let s1 = [("pool", "p"), ("server", "s1"), ("addr", s1_addr.as_str())];
    wait_until(
        Duration::from_secs(10),
        "the counters to settle",
        || async {
            let m = scrape(admin).await;
            m.get("switchyard_tcp_connections_active", &[("listener", "tcp")]) == Some(0.0)
                && m.get(
                    "switchyard_tcp_connections_active",
                    &[("listener", "tcpdead")],
                ) == Some(0.0)
                && m.get("switchyard_server_in_flight", &s1) == Some(0.0)
                && m.get(
                    "switchyard_udp_datagrams_total",
                    &[("listener", "udp"), ("direction", "server_to_client")],
                ) == Some(1.0)
                && m.label_sets("switchyard_server_last_check_success").len() == 2
                && m.get(
                    "switchyard_requests_total",
                    &[
                        ("listener", "web"),
                        ("route", "default"),
                        ("pool", "p"),
                        ("code", "200"),
                    ],
                ) == Some(3.0)
        },
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_real_traffic_exactly() {
    let s = setup().await;
    drive(&s).await;
    let m = scrape(s.admin).await;
    let lb = &s.lb;
    let addr = |pool: &str, i: usize| lb.pool(pool).unwrap().servers()[i].addr.to_string();
    let (a_s1, a_s2, a_e, a_b, a_u1, a_gone, a_gone2) = (
        addr("p", 0),
        addr("p", 1),
        addr("t", 0),
        addr("t", 1),
        addr("u", 0),
        s.dead[0].to_string(),
        s.dead[1].to_string(),
    );
    assert_eq!(a_gone, addr("dead", 0));
    let s1 = [("pool", "p"), ("server", "s1"), ("addr", a_s1.as_str())];
    let s2 = [("pool", "p"), ("server", ODD), ("addr", a_s2.as_str())];
    let e = [("pool", "t"), ("server", "e"), ("addr", a_e.as_str())];
    let b = [("pool", "t"), ("server", "b"), ("addr", a_b.as_str())];
    let u1 = [("pool", "u"), ("server", "u1"), ("addr", a_u1.as_str())];
    let gone = [
        ("pool", "dead"),
        ("server", "gone"),
        ("addr", a_gone.as_str()),
    ];
    let gone2 = [
        ("pool", "dead"),
        ("server", "gone2"),
        ("addr", a_gone2.as_str()),
    ];
    let all = [s1, s2, e, b, u1, gone, gone2];

    assert_eq!(
        m.at(
            "switchyard_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1.0
    );

    // Per server: state, and [up, backup, in_flight, requests, failures, 2xx, 5xx].
    let expect: [(&str, [f64; 7]); 7] = [
        ("healthy", [1.0, 0.0, 0.0, 5.0, 0.0, 4.0, 1.0]),
        ("disabled", [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
        ("healthy", [1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0]),
        ("healthy", [1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0]),
        // A UDP session counts as in flight on its server while it lives.
        ("healthy", [1.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0]),
        // Each refused once, and was taken out by passive checks for it (max_fails = 1).
        ("failed", [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]),
        ("failed", [0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0]),
    ];
    for (labels, (state, want)) in all.iter().zip(expect) {
        let with = |k: &'static str, v: &'static str| {
            let mut l = labels.to_vec();
            l.push((k, v));
            l
        };
        let got = [
            m.at("switchyard_server_up", labels),
            m.at("switchyard_server_backup", labels),
            m.at("switchyard_server_in_flight", labels),
            m.at("switchyard_server_requests_total", labels),
            m.at("switchyard_server_failures_total", labels),
            m.at("switchyard_server_responses_total", &with("class", "2xx")),
            m.at("switchyard_server_responses_total", &with("class", "5xx")),
        ];
        assert_eq!(got, want, "{labels:?}");
        assert_eq!(m.at("switchyard_server_weight", labels), 1.0);
        assert_eq!(m.at("switchyard_server_slow_start", labels), 0.0);
        for class in ["1xx", "3xx", "4xx"] {
            assert_eq!(
                m.at("switchyard_server_responses_total", &with("class", class)),
                0.0
            );
        }
        for st in ["healthy", "unhealthy", "failed", "disabled"] {
            let want = if st == state { 1.0 } else { 0.0 };
            assert_eq!(
                m.at("switchyard_server_state", &with("state", st)),
                want,
                "{labels:?} {st}"
            );
        }
    }
    // Latency: measured where traffic went, 0 where none did.
    for labels in [&s1, &e] {
        let l = m.at("switchyard_server_latency_ewma_seconds", labels);
        assert!(l > 0.0 && l < 5.0, "{labels:?}: {l}");
    }
    for labels in [&s2, &b] {
        assert_eq!(m.at("switchyard_server_latency_ewma_seconds", labels), 0.0);
    }
    // Active checks run in pool p only, and pass (the down server's backend is up too).
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64();
    for labels in [&s1, &s2] {
        assert_eq!(m.at("switchyard_server_last_check_success", labels), 1.0);
        let at = m.at("switchyard_server_last_check_timestamp_seconds", labels);
        assert!(at <= now + 1.0 && at > now - 30.0, "{at} vs {now}");
    }
    assert_eq!(
        m.label_sets("switchyard_server_last_check_success").len(),
        2
    );
    // Every check counted once by result, and timed once; none in pools without checks.
    for labels in [&s1, &s2] {
        let with = |r: &'static str| {
            let mut l = labels.to_vec();
            l.push(("result", r));
            l
        };
        let pass = m.at("switchyard_server_health_checks_total", &with("pass"));
        assert!(pass >= 1.0, "{labels:?}: {pass}");
        assert_eq!(
            m.at("switchyard_server_health_checks_total", &with("fail")),
            0.0
        );
        let hist = "switchyard_server_health_check_duration_seconds";
        assert_eq!(m.at(&format!("{hist}_count"), labels), pass);
        let mut inf = labels.to_vec();
        inf.push(("le", "+Inf"));
        assert_eq!(m.at(&format!("{hist}_bucket"), &inf), pass);
        let sum = m.at(&format!("{hist}_sum"), labels);
        assert!(sum > 0.0 && sum < pass * 0.5, "timeout 500ms: {sum}");
    }
    assert_eq!(
        m.label_sets("switchyard_server_health_checks_total").len(),
        4,
        "pass and fail for the two servers of the pool with checks"
    );
    assert_eq!(
        m.kinds["switchyard_server_health_check_duration_seconds"],
        "histogram"
    );
    assert_eq!(
        m.at(
            "switchyard_server_admin_state",
            &[s1[0], s1[1], s1[2], ("state", "ready")]
        ),
        1.0
    );
    assert_eq!(
        m.at(
            "switchyard_server_admin_state",
            &[s2[0], s2[1], s2[2], ("state", "maint")]
        ),
        1.0
    );

    // Per pool.
    for (pool, servers, usable) in [
        ("p", 2.0, 1.0),
        ("t", 2.0, 2.0),
        ("dead", 2.0, 0.0),
        ("u", 1.0, 1.0),
    ] {
        assert_eq!(
            m.at("switchyard_pool_servers", &[("pool", pool)]),
            servers,
            "{pool}"
        );
        assert_eq!(
            m.at("switchyard_pool_servers_usable", &[("pool", pool)]),
            usable,
            "{pool}"
        );
    }
    let sticky = [("pool", "p"), ("mode", "cookie")];
    assert_eq!(m.at("switchyard_pool_sticky_broken_total", &sticky), 2.0);
    assert_eq!(m.at("switchyard_pool_sticky_table_entries", &sticky), 0.0);
    assert_eq!(
        m.label_sets("switchyard_pool_sticky_broken_total").len(),
        1,
        "only pools with [sticky]"
    );
    assert_eq!(lb.upstream("p").unwrap().sticky().unwrap().broken(), 2);

    // Per TCP listener.
    let tcp = |name: &str, l: &str| m.at(name, &[("listener", l)]);
    for (l, accepted, rejected, connect_failures, no_server) in
        [("tcp", 2.0, 1.0, 0.0, 0.0), ("tcpdead", 1.0, 0.0, 2.0, 1.0)]
    {
        assert_eq!(
            (
                tcp("switchyard_tcp_connections_accepted_total", l),
                tcp("switchyard_tcp_connections_active", l),
                tcp("switchyard_tcp_connections_rejected_over_limit_total", l),
                tcp("switchyard_tcp_connect_failures_total", l),
                tcp("switchyard_tcp_no_server_total", l),
                tcp("switchyard_tcp_proxy_untrusted_total", l),
                tcp("switchyard_tcp_proxy_malformed_total", l),
                tcp("switchyard_tcp_idle_timeouts_total", l),
                tcp("switchyard_tcp_spliced_total", l),
            ),
            (
                accepted,
                0.0,
                rejected,
                connect_failures,
                no_server,
                0.0,
                0.0,
                0.0,
                0.0
            ),
            "{l}"
        );
    }
    let bytes = |l: &str, d: &str| {
        m.at(
            "switchyard_tcp_bytes_total",
            &[("listener", l), ("direction", d)],
        )
    };
    assert_eq!(bytes("tcp", "client_to_server"), 5.0);
    assert_eq!(bytes("tcp", "server_to_client"), 5.0);
    assert_eq!(bytes("tcpdead", "client_to_server"), 0.0);
    let stats = lb.tcp_stats("tcp").unwrap();
    assert_eq!(
        stats.rejected_over_limit(),
        1,
        "the page shows the listener's own counter"
    );

    // Per UDP listener.
    let udp = |name: &str| m.at(name, &[("listener", "udp")]);
    assert_eq!(
        (
            udp("switchyard_udp_sessions"),
            udp("switchyard_udp_sessions_created_total"),
            udp("switchyard_udp_sessions_expired_total"),
            udp("switchyard_udp_rejected_over_limit_total"),
            udp("switchyard_udp_no_server_total"),
            udp("switchyard_udp_send_errors_total"),
        ),
        (1.0, 1.0, 0.0, 0.0, 0.0, 0.0)
    );
    let dgrams = |d: &str| {
        m.at(
            "switchyard_udp_datagrams_total",
            &[("listener", "udp"), ("direction", d)],
        )
    };
    assert_eq!(
        (dgrams("client_to_server"), dgrams("server_to_client")),
        (1.0, 1.0)
    );

    // PROXY in front of http: only the listener that accepts it has the counters.
    let pp = |name: &str| m.at(name, &[("listener", "pp")]);
    assert_eq!(
        (
            pp("switchyard_http_proxy_protocol_accepted_total"),
            pp("switchyard_http_proxy_protocol_untrusted_total"),
            pp("switchyard_http_proxy_protocol_malformed_total"),
        ),
        (1.0, 0.0, 1.0)
    );
    assert_eq!(
        m.label_sets("switchyard_http_proxy_protocol_accepted_total")
            .len(),
        1
    );
    assert!(
        m.get(
            "switchyard_tcp_connections_accepted_total",
            &[("listener", "udp")]
        )
        .is_none()
    );

    // Kinds: every family is named switchyard_…, counters as counters.
    for (name, kind) in &m.kinds {
        assert!(name.starts_with("switchyard_"), "{name}");
        assert_eq!(
            kind == "counter",
            name.ends_with("_total"),
            "{name} is a {kind}"
        );
    }
    assert_eq!(m.kinds["switchyard_server_in_flight"], "gauge");
    assert_eq!(m.kinds["switchyard_pool_sticky_broken_total"], "counter");

    // A counter only goes up: one more broken stickiness shows on the next scrape.
    let web = lb.local_addr("web").unwrap();
    let down = format!(
        "SRV={}",
        server_cookie_id("p", &lb.pool("p").unwrap().servers()[1])
    );
    assert_eq!(
        get_with(web, "/", &[("cookie", &down)]).await.server(),
        "s1"
    );
    assert_eq!(
        scrape(s.admin)
            .await
            .at("switchyard_pool_sticky_broken_total", &sticky),
        3.0
    );
    s.lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_is_json_with_pools_servers_and_listeners() {
    let s = setup().await;
    drive(&s).await;
    let a = get(s.admin, "/status").await;
    assert_eq!(a.status, 200);
    assert_eq!(a.headers["content-type"], "application/json");
    let doc: serde_json::Value = serde_json::from_str(&a.text()).expect("JSON");
    assert_eq!(doc["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(doc["ready"], false, "pool dead has no usable server");

    let pools = doc["pools"].as_array().unwrap();
    let names: Vec<_> = pools.iter().map(|p| p["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["p", "t", "dead", "u"], "pools in file order");
    let pool = |name: &str| pools.iter().find(|p| p["name"] == name).unwrap();
    let p = pool("p");
    assert_eq!(p["algorithm"], "round_robin");
    assert_eq!(p["servers_usable"], 1);
    assert_eq!(p["sticky"]["mode"], "cookie");
    assert_eq!(p["sticky"]["broken"], 2);
    assert_eq!(p["servers_configured"], 2);
    assert_eq!(doc["config"]["last_reload_successful"], true);
    assert_eq!(doc["config"]["reloads"]["ok"], 0);
    let s1 = &p["servers"][0];
    assert_eq!(
        (&s1["name"], &s1["state"], &s1["usable"], &s1["backup"]),
        (&"s1".into(), &"healthy".into(), &true.into(), &false.into())
    );
    assert_eq!((&s1["in_flight"], &s1["requests"]), (&0.into(), &5.into()));
    assert_eq!(
        (&s1["responses"]["2xx"], &s1["responses"]["5xx"]),
        (&4.into(), &1.into())
    );
    assert_eq!(s1["last_check"]["success"], true);
    assert!(s1["last_check"]["at_unix_ms"].as_f64().unwrap() > 1e12);
    assert_eq!(s1["admin_state"], "ready");
    let checks = &s1["checks"];
    assert!(
        checks["pass"].as_u64().unwrap() >= 1 && checks["fail"] == 0,
        "{checks}"
    );
    assert_eq!(
        s1["check_duration"]["count"], checks["pass"],
        "one duration per check"
    );
    assert_eq!(s1["check_duration"]["buckets"]["+Inf"], checks["pass"]);
    // Buckets by bound, as Prometheus lists them (not as text: "+Inf", "10", "2.5").
    let bounds: Vec<f64> = s1["check_duration"]["buckets"]
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.parse::<f64>().unwrap_or(f64::INFINITY))
        .collect();
    assert!(bounds.is_sorted(), "{bounds:?}");
    assert!(s1["last_check"]["ago_ms"].as_u64().unwrap() < 30_000);
    assert!(s1["latency_ewma_ms"].as_f64().unwrap() > 0.0);
    let s2 = &p["servers"][1];
    assert_eq!(
        (&s2["name"], &s2["state"], &s2["usable"]),
        (&ODD.into(), &"disabled".into(), &false.into())
    );
    assert_eq!(pool("t")["sticky"], serde_json::Value::Null);
    assert_eq!(pool("t")["servers"][1]["backup"], true);
    assert_eq!(pool("dead")["servers_usable"], 0);
    let gone = &pool("dead")["servers"][0];
    assert_eq!(
        (&gone["state"], &gone["failures"]),
        (&"failed".into(), &1.into())
    );
    assert_eq!(
        gone["last_check"],
        serde_json::Value::Null,
        "no active checks there"
    );
    assert_eq!(pool("u")["servers"][0]["in_flight"], 1);

    let listeners: BTreeMap<&str, &serde_json::Value> = doc["listeners"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["name"].as_str().unwrap(), l))
        .collect();
    assert_eq!(
        listeners.keys().copied().collect::<Vec<_>>(),
        ["pp", "tcp", "tcpdead", "udp", "web"]
    );
    for (name, l) in &listeners {
        assert_eq!(
            l["addr"],
            s.lb.local_addr(name).unwrap().to_string(),
            "{name}"
        );
    }
    assert_eq!(listeners["web"]["protocol"], "http");
    let web = &listeners["web"];
    assert_eq!(
        (&web["counters"]["connections"], &web["counters"]["open"]),
        (&4.into(), &0.into()),
        "four requests, each on its own connection"
    );
    assert!(web["counters"]["bytes"]["sent"].as_u64().unwrap() > 0);
    assert_eq!(web["answers"][0]["route"], "default");
    assert_eq!(web["answers"][0]["pool"], "p");
    assert_eq!(
        (
            &web["answers"][0]["requests"]["200"],
            &web["answers"][0]["requests"]["503"]
        ),
        (&3.into(), &1.into())
    );
    assert_eq!(web["answers"][0]["duration"]["count"], 4);
    let pp = &listeners["pp"]["counters"]["proxy_protocol"];
    assert_eq!((&pp["accepted"], &pp["malformed"]), (&1.into(), &1.into()));
    let tcp = &listeners["tcp"]["counters"];
    assert_eq!(listeners["tcp"]["protocol"], "tcp");
    assert_eq!(
        (
            &tcp["accepted"],
            &tcp["rejected_over_limit"],
            &tcp["active"],
            &tcp["bytes"]["client_to_server"]
        ),
        (&2.into(), &1.into(), &0.into(), &5.into())
    );
    assert_eq!(listeners["tcpdead"]["counters"]["connect_failures"], 2);
    let udp = &listeners["udp"]["counters"];
    assert_eq!(
        (&udp["sessions"], &udp["datagrams"]["server_to_client"]),
        (&1.into(), &1.into())
    );
    s.lb.shutdown().await;
}

#[tokio::test]
async fn admin_paths_and_methods() {
    let b = backends(1).await;
    let lb = start_lb(&format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[pool.p]\nservers = {}\n",
        servers_toml(&b, &[])
    ))
    .await;
    let admin = lb.admin_addr().unwrap();
    for path in ["/nope", "/metrics/", "/status.json", "/index.html"] {
        assert_eq!(get(admin, path).await.status, 404, "{path}");
    }
    // The dashboard: its page and files, from this listener only.
    for (path, ty) in [
        ("/", "text/html; charset=utf-8"),
        ("/dashboard.js", "text/javascript; charset=utf-8"),
        ("/dashboard.css", "text/css; charset=utf-8"),
    ] {
        let a = get(admin, path).await;
        assert_eq!(a.status, 200, "{path}");
        assert_eq!(a.headers["content-type"], ty, "{path}");
        let csp = a.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("default-src 'none'") && csp.contains("connect-src 'self'"),
            "{csp}"
        );
        assert_eq!(a.headers["x-frame-options"], "DENY");
    }
    assert!(
        get(admin, "/")
            .await
            .text()
            .contains("<script src=\"/dashboard.js\"")
    );
    for path in ["/metrics", "/status", "/"] {
        for method in ["POST", "PUT", "DELETE"] {
            let req = Request::builder()
                .method(method)
                .uri(path)
                .body(Full::new(Bytes::new()))
                .unwrap();
            let a = Client::connect(admin).await.send(req).await;
            assert_eq!(a.status, 405, "{method} {path}");
            assert_eq!(a.headers["allow"], "GET, HEAD");
        }
        let head = Request::head(path).body(Full::new(Bytes::new())).unwrap();
        let a = Client::connect(admin).await.send(head).await;
        assert_eq!(a.status, 200, "HEAD {path}");
        assert!(a.body.is_empty());
        assert_eq!(a.headers["cache-control"], "no-store");
    }
    // A pool with no traffic: the families are there, the counters at zero.
    let m = scrape(admin).await;
    let s1 = b[0].addr.to_string();
    let labels = [("pool", "p"), ("server", "s1"), ("addr", s1.as_str())];
    assert_eq!(m.at("switchyard_server_requests_total", &labels), 0.0);
    assert_eq!(m.at("switchyard_server_up", &labels), 1.0);
    assert!(
        m.label_sets("switchyard_pool_sticky_broken_total")
            .is_empty()
    );
    assert!(
        !m.kinds
            .contains_key("switchyard_tcp_connections_accepted_total"),
        "no tcp listener"
    );
    lb.shutdown().await;
}

/// HAProxy's server status in Prometheus form: a drained server is `drain` (and still
/// `switchyard_server_up 1`: it serves its sticky clients), a server in maintenance
/// `maint`, the others `up`; a drain over the API moves a server from up to drain on the
/// next scrape; `/status` says the same word.
#[tokio::test]
async fn server_status_tells_up_drain_and_maint_apart() {
    let b = backends(3).await;
    let lb = start_lb(&format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[admin]\nlisten = \"127.0.0.1:0\"\n[pool.p]\nservers = [ {{ addr = \"{}\", name = \"a\" }}, {{ addr = \"{}\", name = \"b\", drain = true }}, {{ addr = \"{}\", name = \"c\", down = true }} ]\n",
        b[0].addr, b[1].addr, b[2].addr
    ))
    .await;
    let admin = lb.admin_addr().unwrap();
    let addrs: Vec<String> = b.iter().map(|b| b.addr.to_string()).collect();
    let labels = |name: &'static str, i: usize| {
        vec![("pool", "p"), ("server", name), ("addr", addrs[i].as_str())]
    };
    let status_of = |m: &metrics_common::Page, name: &'static str, i: usize| -> Vec<&'static str> {
        ["up", "drain", "down", "maint"]
            .into_iter()
            .filter(|st| {
                let mut l = labels(name, i);
                l.push(("state", st));
                m.at("switchyard_server_status", &l) == 1.0
            })
            .collect()
    };
    let m = scrape(admin).await;
    assert_eq!(status_of(&m, "a", 0), ["up"]);
    assert_eq!(status_of(&m, "b", 1), ["drain"]);
    assert_eq!(status_of(&m, "c", 2), ["maint"]);
    // `up` keeps its meaning (a request may be sent there): the drained server is 1.
    assert_eq!(m.at("switchyard_server_up", &labels("b", 1)), 1.0);
    assert_eq!(m.at("switchyard_server_up", &labels("c", 2)), 0.0);
    assert_eq!(
        m.at("switchyard_pool_servers_usable", &[("pool", "p")]),
        1.0
    );
    let status: serde_json::Value =
        serde_json::from_str(&get(admin, "/status").await.text()).unwrap();
    let words: Vec<&str> = status["pools"][0]["servers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["status"].as_str().unwrap())
        .collect();
    assert_eq!(words, ["up", "drain", "maint"]);

    // Drained over the API: the next scrape says so.
    lb.upstream("p").unwrap().pool.servers()[0]
        .set_admin_state(switchyard::upstream::AdminState::Drain);
    let m = scrape(admin).await;
    assert_eq!(status_of(&m, "a", 0), ["drain"]);
    assert_eq!(
        m.at("switchyard_pool_servers_usable", &[("pool", "p")]),
        0.0
    );
    lb.shutdown().await;
}

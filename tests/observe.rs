//! Seeing what the balancer does, checked with the tools operators use: Prometheus's own
//! `promtool check metrics` on the `/metrics` page after traffic of every kind (HTTP with
//! health checks and stickiness, a PROXY-protocol listener, TCP, UDP), and the example
//! Grafana dashboard, whose every query must name a metric the page really exports.
mod common;
mod l4_common;
mod metrics_common;

use std::collections::BTreeSet;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use l4_common::*;
use metrics_common::*;
use switchyard::runtime::Runtime;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

struct Setup {
    lb: Runtime,
    admin: SocketAddr,
    _web: Vec<switchyard::demo::Backend>,
    _tcp: TcpBackend,
    _udp: UdpBackend,
}

/// A Switchyard with a listener of every kind, each having carried traffic, and a health
/// check done on every server of the checked pool.
async fn everything() -> Setup {
    let web = backends(2).await;
    let tcp = TcpBackend::start("e", Mode::Echo).await;
    let udp = UdpBackend::start("u1").await;
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

[[listener]]
name = "udp"
listen = "127.0.0.1:0"
protocol = "udp"
pool = "u"

[admin]
listen = "127.0.0.1:0"

[pool.p]
servers = [{{ addr = "{}", name = "s1" }}, {{ addr = "{}", name = "s2" }}]
[pool.p.sticky]
mode = "cookie"
[pool.p.health]
type = "http"
path = "/health"
interval = "200ms"

[pool.t]
servers = [{{ addr = "{}", name = "e" }}]

[pool.u]
servers = [{{ addr = "{}", name = "u1" }}]
"#,
        web[0].addr, web[1].addr, tcp.addr, udp.addr
    );
    let lb = start_lb(&toml).await;
    let admin = lb.admin_addr().unwrap();

    for _ in 0..4 {
        assert_eq!(get(lb.local_addr("web").unwrap(), "/").await.status, 200);
    }
    let mut c = TcpStream::connect(lb.local_addr("pp").unwrap())
        .await
        .unwrap();
    c.write_all(b"PROXY TCP4 203.0.113.7 192.0.2.1 40000 80\r\nGET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .await
        .unwrap();
    let answer = read_to_end(&mut c, Duration::from_secs(10)).await;
    assert!(answer.starts_with(b"HTTP/1.1 200"));
    let mut c = TcpStream::connect(lb.local_addr("tcp").unwrap())
        .await
        .unwrap();
    c.write_all(b"hello").await.unwrap();
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf).await.unwrap();
    drop(c);
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    sock.send_to(b"ping", lb.local_addr("udp").unwrap())
        .await
        .unwrap();
    let mut buf = [0u8; 64];
    tokio::time::timeout(Duration::from_secs(5), sock.recv_from(&mut buf))
        .await
        .expect("a UDP answer within 5 s")
        .unwrap();
    wait_until(
        Duration::from_secs(10),
        "a health check of each server",
        || async {
            scrape(admin)
                .await
                .label_sets("switchyard_server_last_check_success")
                .len()
                == 2
        },
    )
    .await;
    Setup {
        lb,
        admin,
        _web: web,
        _tcp: tcp,
        _udp: udp,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (promtool): scripts/test runs it"]
async fn promtool_passes_the_metrics_page() {
    let s = everything().await;
    let text = get(s.admin, "/metrics").await.text();
    let page = parse(&text);
    for kind in ["counter", "gauge", "histogram"] {
        assert!(
            page.kinds.values().any(|k| k == kind),
            "a {kind} on the page"
        );
    }
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (Debian package prometheus; scripts/test installs it)");
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let out = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "promtool check metrics: {said}\n{text}"
    );
    assert!(said.trim().is_empty(), "promtool's lints: {said}");
    s.lb.shutdown().await;
}

/// The metric names a PromQL expression uses.
fn metric_names(expr: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = expr;
    while let Some(at) = rest.find("switchyard_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        names.insert(tail[..end].to_string());
        rest = &tail[end..];
    }
    names
}

/// Every `expr` of every panel (rows' panels included).
fn queries(v: &serde_json::Value, out: &mut Vec<(String, String)>) {
    for p in v["panels"].as_array().into_iter().flatten() {
        let title = p["title"].as_str().unwrap_or_default().to_string();
        for t in p["targets"].as_array().into_iter().flatten() {
            out.push((
                title.clone(),
                t["expr"].as_str().unwrap_or_default().to_string(),
            ));
        }
        queries(p, out);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_grafana_query_names_a_metric_the_page_exports() {
    let file = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/grafana/switchyard.json"
    );
    let dashboard: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(file).unwrap()).expect("JSON");
    let mut all = Vec::new();
    queries(&dashboard, &mut all);
    assert!(all.len() >= 8, "{} queries", all.len());

    let s = everything().await;
    let page = scrape(s.admin).await;
    let exported = |name: &str| {
        page.kinds.contains_key(name)
            || ["_bucket", "_sum", "_count"].iter().any(|suffix| {
                name.strip_suffix(suffix)
                    .is_some_and(|f| page.kinds.get(f).map(String::as_str) == Some("histogram"))
            })
    };
    let mut used = BTreeSet::new();
    for (title, expr) in &all {
        let names = metric_names(expr);
        assert!(
            !names.is_empty(),
            "panel {title:?}: {expr:?} names no metric"
        );
        for n in names {
            assert!(
                exported(&n),
                "panel {title:?} asks for {n}, which /metrics does not export"
            );
            used.insert(n);
        }
    }
    // The template variables' queries too.
    for v in dashboard["templating"]["list"]
        .as_array()
        .into_iter()
        .flatten()
    {
        let q = v["query"]["query"]
            .as_str()
            .or(v["query"].as_str())
            .unwrap_or_default();
        for n in metric_names(q) {
            assert!(exported(&n), "variable {} asks for {n}", v["name"]);
        }
    }
    assert!(used.len() >= 6, "the dashboard uses {used:?}");
    s.lb.shutdown().await;
}

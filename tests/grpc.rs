//! gRPC through the load balancer: Python grpcio clients and servers (C-core, a real gRPC
//! stack), through an h2c listener and an https listener, to a pool with
//! `upstream_protocol = "h2"`: unary and bidirectional streaming calls, trailing metadata and
//! `grpc-status` (UNAVAILABLE with its message), and calls spread over the servers per call.
mod common;
mod tls_support;

use std::io::{BufRead, BufReader, Write};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::Duration;

use common::*;
use switchyard::config::{HealthKind, HealthPlan};
use switchyard::probe::{ProbeTransport, probe_with};
use switchyard::runtime::Runtime;
use switchyard::upstream::HealthState;
use tls_support::*;

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc/peer.py");

/// A Python gRPC server; killed when dropped. It takes commands on stdin (`tell`).
struct GrpcServer {
    child: Child,
    port: u16,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl GrpcServer {
    /// `peer.py server ARGS...`, once it listens.
    fn start(args: &[&str]) -> GrpcServer {
        let mut child = Command::new("python3")
            .arg(PEER)
            .arg("server")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3 is needed by this test");
        let stdin = child.stdin.take().unwrap();
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let port = line.trim().parse().unwrap_or_else(|_| {
            panic!("the gRPC server did not start (are grpcio and grpcio-health-checking installed? scripts/test installs them): {line:?}")
        });
        GrpcServer {
            child,
            port,
            stdin,
            stdout,
        }
    }

    /// One command (`set SERVICE STATUS`, `count SERVICE STATUS`) and its one-line answer.
    fn tell(&mut self, command: &str) -> String {
        writeln!(self.stdin, "{command}").unwrap();
        self.stdin.flush().unwrap();
        let mut line = String::new();
        self.stdout.read_line(&mut line).unwrap();
        line.trim().to_string()
    }

    /// How many health checks of `service` (`""`: the whole server) it has answered with
    /// `status`.
    fn checks(&mut self, service: &str, status: &str) -> u32 {
        let service = if service.is_empty() { "-" } else { service };
        let answer = self.tell(&format!("count {service} {status}"));
        answer
            .parse()
            .unwrap_or_else(|_| panic!("count: {answer:?}"))
    }
}

fn grpc_server(name: &str) -> GrpcServer {
    GrpcServer::start(&[name])
}

#[derive(serde::Deserialize, Debug)]
struct ClientReport {
    unary: Vec<String>,
    trailers: Vec<Option<String>>,
    stream: Vec<String>,
    fail: Option<(String, String)>,
}

async fn grpc_client(args: &[&str]) -> ClientReport {
    let mut all = vec![PEER, "client"];
    all.extend_from_slice(args);
    let out = run_tool_async("python3", &all).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "gRPC client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

fn check(report: &ClientReport) {
    let mut by_server = Vec::new();
    for (i, r) in report.unary.iter().enumerate() {
        let (server, rest) = r.split_once(':').unwrap();
        assert_eq!(rest, format!("hello {i}"));
        assert_eq!(
            report.trailers[i].as_deref(),
            Some(server),
            "trailing metadata"
        );
        by_server.push(server.to_string());
    }
    // One client connection, calls balanced per call (round robin alternates).
    assert!(by_server.windows(2).all(|w| w[0] != w[1]), "{by_server:?}");
    assert_eq!(tally(by_server).into_values().collect::<Vec<_>>(), [10, 10]);
    assert_eq!(report.stream.len(), 100);
    let server = report.stream[0].split_once(':').unwrap().0;
    for (i, r) in report.stream.iter().enumerate() {
        assert_eq!(*r, format!("{server}:m{i}"), "a stream stays on one server");
    }
    let (code, message) = report.fail.clone().expect("the Fail call fails");
    assert_eq!(code, "UNAVAILABLE");
    assert!(message.ends_with("is draining"), "{message}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (python3 grpcio): scripts/test runs it"]
async fn grpc_unary_and_streaming_calls_over_h2c_and_tls() {
    let servers = [grpc_server("g1"), grpc_server("g2")];
    let pki = Pki::new();
    let pair = pki.leaf("grpc", &["grpc.example.com"]);
    let lb = start_lb(&format!(
        r#"
[[listener]]
name = "h2c"
listen = "127.0.0.1:0"
pool = "grpc"
[[listener]]
name = "tls"
listen = "127.0.0.1:0"
protocol = "https"
pool = "grpc"
{}
[pool.grpc]
upstream_protocol = "h2"
servers = [ {{ addr = "127.0.0.1:{}", name = "g1" }}, {{ addr = "127.0.0.1:{}", name = "g2" }} ]
"#,
        tls_entries(&[pair]),
        servers[0].port,
        servers[1].port
    ))
    .await;
    let h2c = lb.local_addr("h2c").unwrap().to_string();
    let report = grpc_client(&[&h2c]).await;
    check(&report);
    let tls = lb.local_addr("tls").unwrap().to_string();
    let report = grpc_client(&[&tls, pki.ca_pem.to_str().unwrap(), "grpc.example.com"]).await;
    check(&report);
    // Two servers, one HTTP/2 connection each, for all those calls.
    assert_eq!(lb.upstream("grpc").unwrap().h2().opened(), 2);
}

fn grpc_server_with(name: &str, mode: &str) -> GrpcServer {
    GrpcServer::start(&[name, mode])
}

/// `n` unary calls through `target`: each reply, or the status name of a failed call.
async fn unary_calls(target: &str, n: usize) -> Vec<String> {
    let out = run_tool_async("python3", &[PEER, "unary", target, &n.to_string()]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "gRPC client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{e}: {stdout}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (python3 grpcio): scripts/test runs it"]
async fn grpc_unavailable_is_retried_on_another_server_when_the_policy_says_so() {
    // g1 refuses every unary call with UNAVAILABLE (trailers-only); g2 answers.
    let servers = [grpc_server_with("g1", "refuse"), grpc_server("g2")];
    let config = |retry: &str| {
        format!(
            r#"
[[listener]]
name = "h2c"
listen = "127.0.0.1:0"
pool = "grpc"
[pool.grpc]
upstream_protocol = "h2"
max_fails = 0
servers = [ {{ addr = "127.0.0.1:{}", name = "g1" }}, {{ addr = "127.0.0.1:{}", name = "g2" }} ]
{retry}
"#,
            servers[0].port, servers[1].port
        )
    };
    // The control: without grpc_unavailable in `on`, round robin hands every other call to
    // g1 and the client sees its UNAVAILABLE.
    let lb = start_lb(&config("")).await;
    let h2c = lb.local_addr("h2c").unwrap().to_string();
    let got = unary_calls(&h2c, 10).await;
    assert_eq!(
        got.iter().filter(|r| *r == "UNAVAILABLE").count(),
        5,
        "{got:?}"
    );
    lb.shutdown().await;

    // With it, each call g1 refuses is sent again, body and all, to g2.
    let lb = start_lb(&config("[pool.grpc.retry]\non = [\"grpc_unavailable\"]")).await;
    let h2c = lb.local_addr("h2c").unwrap().to_string();
    let got = unary_calls(&h2c, 10).await;
    let want: Vec<String> = (0..10).map(|i| format!("g2:u{i}")).collect();
    assert_eq!(got, want);
    lb.shutdown().await;
}

fn state(lb: &Runtime, i: usize) -> HealthState {
    lb.pool("grpc").unwrap().servers()[i].health_state()
}

fn detail(lb: &Runtime, i: usize) -> String {
    lb.pool("grpc").unwrap().servers()[i]
        .last_check()
        .map(|c| c.detail)
        .unwrap_or_default()
}

/// Wait until the last check of every server passed with `want`.
async fn all_passing(lb: &Runtime, want: &str) {
    wait_until(
        Duration::from_secs(10),
        "every server passes its check",
        || async {
            (0..2).all(|i| {
                let c = lb.pool("grpc").unwrap().servers()[i].last_check();
                c.is_some_and(|c| c.pass && c.detail == want)
            })
        },
    )
    .await;
}

/// The replies of `n` unary calls, counted per server name.
async fn spread(target: &str, n: usize) -> std::collections::BTreeMap<String, usize> {
    let got = unary_calls(target, n).await;
    for (i, r) in got.iter().enumerate() {
        assert!(r.ends_with(&format!(":u{i}")), "{got:?}");
    }
    tally(got.iter().map(|r| r.split_once(':').unwrap().0.to_string()))
}

const FALL: u32 = 3;
const RISE: u32 = 2;

fn health_pool(servers: &[GrpcServer], pool_extra: &str, health_extra: &str) -> String {
    format!(
        r#"
[[listener]]
name = "h2c"
listen = "127.0.0.1:0"
pool = "grpc"
[pool.grpc]
{pool_extra}
max_fails = 0
servers = [ {{ addr = "127.0.0.1:{}", name = "g1" }}, {{ addr = "127.0.0.1:{}", name = "g2" }} ]
[pool.grpc.health]
type = "grpc"
{health_extra}
interval = "200ms"
timeout = "200ms"
rise = {RISE}
fall = {FALL}
"#,
        servers[0].port, servers[1].port
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (python3 grpcio): scripts/test runs it"]
async fn a_grpc_health_check_takes_a_not_serving_server_out_and_brings_it_back() {
    let mut servers = [grpc_server("g1"), grpc_server("g2")];
    let lb = start_lb(&health_pool(
        &servers,
        "upstream_protocol = \"h2c\"",
        "service = \"test.Echo\"",
    ))
    .await;
    let h2c = lb.local_addr("h2c").unwrap().to_string();
    all_passing(&lb, "SERVING (service \"test.Echo\")").await;
    assert_eq!(
        spread(&h2c, 10).await,
        [("g1".into(), 5), ("g2".into(), 5)].into()
    );

    // g1 says its service is NOT_SERVING: out after `fall` such answers, not before.
    assert_eq!(servers[0].tell("set test.Echo NOT_SERVING"), "ok");
    wait_until(Duration::from_secs(10), "g1 out", || async {
        state(&lb, 0) == HealthState::Unhealthy
    })
    .await;
    let answered = servers[0].checks("test.Echo", "NOT_SERVING");
    // One more check may have been answered while this test looked (one 200ms interval).
    assert!((FALL..=FALL + 1).contains(&answered), "{answered}");
    assert_eq!(detail(&lb, 0), "NOT_SERVING (service \"test.Echo\")");
    assert_eq!(state(&lb, 1), HealthState::Healthy, "{}", detail(&lb, 1));
    // Every call goes to g2 and succeeds.
    assert_eq!(spread(&h2c, 10).await, [("g2".into(), 10)].into());

    // SERVING again: back after `rise` passing checks.
    let before = servers[0].checks("test.Echo", "SERVING");
    assert_eq!(servers[0].tell("set test.Echo SERVING"), "ok");
    wait_until(Duration::from_secs(10), "g1 back", || async {
        state(&lb, 0) == HealthState::Healthy
    })
    .await;
    let answered = servers[0].checks("test.Echo", "SERVING") - before;
    assert!((RISE..=RISE + 1).contains(&answered), "{answered}");
    assert_eq!(
        spread(&h2c, 10).await,
        [("g1".into(), 5), ("g2".into(), 5)].into()
    );
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (python3 grpcio): scripts/test runs it"]
async fn grpc_health_checks_over_tls_with_alpn_h2() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf("grpc", &["grpc.internal"]);
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let mut servers = [
        GrpcServer::start(&["g1", "--tls", cert, key]),
        GrpcServer::start(&["g2", "--tls", cert, key]),
    ];
    let tls = format!(
        "upstream_protocol = \"h2\"\ntls = {{ ca = \"{}\", server_name = \"grpc.internal\" }}",
        pki.ca_pem.display()
    );
    // The whole server's status (service = "", the default).
    let lb = start_lb(&health_pool(&servers, &tls, "")).await;
    let h2c = lb.local_addr("h2c").unwrap().to_string();
    all_passing(&lb, "SERVING").await;
    assert_eq!(servers[1].tell("set - NOT_SERVING"), "ok");
    wait_until(Duration::from_secs(10), "g2 out", || async {
        state(&lb, 1) == HealthState::Unhealthy
    })
    .await;
    assert_eq!(detail(&lb, 1), "NOT_SERVING");
    assert!(servers[1].checks("", "NOT_SERVING") >= FALL);
    assert_eq!(spread(&h2c, 6).await, [("g1".into(), 6)].into());
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (python3 grpcio): scripts/test runs it"]
async fn a_grpc_probe_says_why_it_failed() {
    let mut g = grpc_server("g1");
    let plain = grpc_server_with("g2", "nohealth");
    let addr = |s: &GrpcServer| format!("127.0.0.1:{}", s.port).parse().unwrap();
    let h2c = ProbeTransport {
        tls: None,
        h2: true,
    };
    let plan = |service: &str| HealthPlan {
        kind: HealthKind::Grpc {
            service: service.into(),
        },
        timeout: Duration::from_secs(5),
        ..HealthPlan::default()
    };
    let check = |service: &str, server: &GrpcServer, t: &ProbeTransport| {
        let (plan, addr, t) = (plan(service), addr(server), t.clone());
        async move { probe_with(&plan, addr, &t).await }
    };
    let o = check("", &g, &h2c).await;
    assert_eq!((o.pass, o.detail.as_str()), (true, "SERVING"));
    let o = check("no.Such", &g, &h2c).await;
    assert_eq!(
        (o.pass, o.detail.as_str()),
        (
            false,
            "grpc-status 5 (NOT_FOUND) (the server does not know service \"no.Such\")"
        )
    );
    let o = check("", &plain, &h2c).await;
    assert!(!o.pass);
    assert!(
        o.detail.starts_with("grpc-status 12 (UNIMPLEMENTED)")
            && o.detail
                .ends_with("(the server has no grpc.health.v1.Health service)"),
        "{o:?}"
    );
    assert_eq!(g.tell("set - SERVICE_UNKNOWN"), "ok");
    let o = check("", &g, &h2c).await;
    assert_eq!((o.pass, o.detail.as_str()), (false, "SERVICE_UNKNOWN"));
    // Not over HTTP/1.1.
    let o = check("", &g, &ProbeTransport::default()).await;
    assert!(!o.pass && o.detail.contains("needs HTTP/2"), "{o:?}");
    // An HTTP server that is not a gRPC server.
    let web = switchyard::demo::Backend::start("web", Duration::ZERO)
        .await
        .unwrap();
    let o = probe_with(&plan(""), web.addr, &h2c).await;
    assert!(!o.pass, "{o:?}");
    // Nothing listening.
    let closed = common::dead_addr();
    let o = probe_with(&plan(""), closed, &h2c).await;
    assert!(!o.pass && o.detail.starts_with("connect:"), "{o:?}");
}

//! gRPC through the load balancer: Python grpcio clients and servers (C-core, a real gRPC
//! stack), through an h2c listener and an https listener, to a pool with
//! `upstream_protocol = "h2"`: unary and bidirectional streaming calls, trailing metadata and
//! `grpc-status` (UNAVAILABLE with its message), and calls spread over the servers per call.
mod common;
mod tls_support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

use common::*;
use tls_support::*;

const PEER: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/grpc/peer.py");

/// A Python gRPC server; killed when dropped.
struct GrpcServer {
    child: Child,
    port: u16,
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn grpc_server(name: &str) -> GrpcServer {
    let mut child = Command::new("python3")
        .args([PEER, "server", name])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 is needed by this test");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().unwrap_or_else(|_| {
        panic!("the gRPC server did not start (is grpcio installed? scripts/test installs it): {line:?}")
    });
    GrpcServer { child, port }
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
    let mut child = Command::new("python3")
        .args([PEER, "server", name, mode])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3 is needed by this test");
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line.trim().parse().unwrap_or_else(|_| {
        panic!("the gRPC server did not start (is grpcio installed? scripts/test installs it): {line:?}")
    });
    GrpcServer { child, port }
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

//! The learner's guide (docs/guide.md) says what an L4 and an L7 listener in front of the
//! same servers can see and do, with `examples/l4-vs-l7.toml`; these tests run that file
//! (its addresses moved to free ports) and check each claim: a pick per request or per
//! connection, the headers the server learns, routing on the path. The end-to-end one runs
//! the guide's own commands: `examples/backends.py` and curl.
mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::*;

const EXAMPLE: &str = include_str!("../examples/l4-vs-l7.toml");

/// The example with its listeners on `l7`/`l4` and its servers at `servers` (9001, 9002, 9003).
fn example(l7: &str, l4: &str, servers: &[SocketAddr]) -> String {
    let mut text = EXAMPLE
        .replace("127.0.0.1:8080", l7)
        .replace("127.0.0.1:8081", l4);
    for (i, a) in servers.iter().enumerate() {
        text = text.replace(&format!("127.0.0.1:{}", 9001 + i), &a.to_string());
    }
    text
}

#[tokio::test]
async fn l4_and_l7_in_front_of_the_same_servers_differ_as_the_guide_says() {
    let b = backends(3).await;
    let addrs: Vec<SocketAddr> = b.iter().map(|b| b.addr).collect();
    let lb = start_lb(&example("127.0.0.1:0", "127.0.0.1:0", &addrs)).await;
    let (l7, l4) = (lb.local_addr("l7").unwrap(), lb.local_addr("l4").unwrap());

    // One connection, two requests: L7 picks for each, L4 once for the connection.
    let mut c = Client::connect(l7).await;
    let (x, y) = (c.get("/").await.server(), c.get("/").await.server());
    assert_ne!(x, y, "L7 balances each request");
    let mut c = Client::connect(l4).await;
    let (x, y) = (c.get("/").await.server(), c.get("/").await.server());
    assert_eq!(x, y, "L4 balances the connection");
    assert!(x == "s1" || x == "s2", "{x}");

    // What the server learns.
    let seen = get(l7, "/headers").await.text();
    for h in [
        "x-forwarded-for: 127.0.0.1",
        "x-real-ip: 127.0.0.1",
        "x-forwarded-proto: http",
    ] {
        assert!(seen.contains(h), "{h} missing through L7:\n{seen}");
    }
    let seen = get(l4, "/headers").await.text();
    assert!(
        !seen.contains("x-forwarded-for"),
        "L4 adds nothing:\n{seen}"
    );
    assert!(seen.contains(&format!("host: {l4}")), "{seen}");

    // Routing on the path: only L7 can.
    for _ in 0..4 {
        assert_eq!(get(l7, "/static/logo.png").await.server(), "s3");
        assert_ne!(get(l4, "/static/logo.png").await.server(), "s3");
    }
}

/// `curl` twice on one command line, as the guide shows.
fn curl(urls: &[String]) -> String {
    let out = std::process::Command::new("curl")
        .arg("-s")
        .args(urls)
        .output()
        .expect("curl (scripts/test installs it)");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
#[ignore = "end-to-end (python3, curl): scripts/test runs it"]
fn the_guides_commands_give_the_guides_answers() {
    let dir = temp_dir("guide");
    let ports: Vec<u16> = (0..5).map(|_| live_port()).collect();
    let servers: Vec<SocketAddr> = ports[..3]
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect();
    let mut backends = std::process::Command::new("python3")
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/examples/backends.py"))
        .args(ports[..3].iter().map(|p| p.to_string()))
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("python3 (scripts/test needs it)");
    let (l7, l4) = (
        format!("127.0.0.1:{}", ports[3]),
        format!("127.0.0.1:{}", ports[4]),
    );
    let path = dir.join("l4-vs-l7.toml");
    std::fs::write(&path, example(&l7, &l4, &servers)).unwrap();
    let mut lb = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["--log-level", "warn", "run", "-c"])
        .arg(&path)
        .spawn()
        .expect("start switchyard");
    let up = |addr: &str| std::net::TcpStream::connect(addr).is_ok();
    let deadline = Instant::now() + Duration::from_secs(10);
    // Not a connection to the L4 listener: it would take a pick of the pool's round robin,
    // which the guide's first command must find fresh (both sockets are bound before either
    // accepts).
    while !(servers.iter().all(|s| up(&s.to_string())) && up(&l7)) {
        assert!(
            Instant::now() < deadline,
            "backends or balancer did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let twice = |a: &str, p: &str| curl(&[format!("http://{a}{p}"), format!("http://{a}{p}")]);
    let result = std::panic::catch_unwind(|| {
        assert_eq!(twice(&l7, "/"), "s1: GET /\ns2: GET /\n");
        assert_eq!(twice(&l4, "/"), "s1: GET /\ns1: GET /\n");
        let h = curl(&[format!("http://{l7}/headers")]);
        assert!(
            h.contains(
                "x-forwarded-for: 127.0.0.1\nx-real-ip: 127.0.0.1\nx-forwarded-proto: http\n"
            ),
            "{h}"
        );
        assert!(!curl(&[format!("http://{l4}/headers")]).contains("x-forwarded"));
        let s = curl(&[
            format!("http://{l7}/static/logo.png"),
            format!("http://{l4}/static/logo.png"),
        ]);
        assert_eq!(s, "s3: GET /static/logo.png\ns2: GET /static/logo.png\n");
    });
    let _ = lb.kill();
    let _ = lb.wait();
    let _ = backends.kill();
    let _ = backends.wait();
    let _ = std::fs::remove_dir_all(&dir);
    if let Err(e) = result {
        std::panic::resume_unwind(e);
    }
}

use common::free_port as live_port;

//! Every answer a client gets is counted — the servers' and the balancer's own — and logged:
//! real traffic of a known shape (200s, a server's 404 and 503, the balancer's 400, 404,
//! 502, 503 and 504, retries that succeed, retries the budget refuses, HTTP/2 beside
//! HTTP/1.1) and then `switchyard_requests_total`, the duration histograms, the retry
//! counters and the access log's lines asserted exactly.
mod common;
mod metrics_common;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::Request;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use metrics_common::*;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use common::dead_addr as dead_port;

/// GET over HTTP/2 without TLS (prior knowledge), with a Host and a User-Agent.
async fn h2_get(addr: SocketAddr, path: &str) -> (u16, Bytes) {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) =
        hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .expect("h2c handshake");
    tokio::spawn(conn);
    let req = Request::get(format!("http://h2.test{path}"))
        .header("user-agent", "h2-test/1")
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = send.send_request(req).await.unwrap();
    let status = resp.status().as_u16();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, body)
}

async fn raw(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut c = TcpStream::connect(addr).await.unwrap();
    c.write_all(bytes).await.unwrap();
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut c, &mut out),
    )
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// One combined line: `IP - - [TIME] "METHOD TARGET PROTO" STATUS BYTES "REF" "UA" k=v…`.
#[derive(Debug)]
struct Line {
    client: String,
    method: String,
    target: String,
    protocol: String,
    status: u16,
    bytes: u64,
    referer: String,
    user_agent: String,
    fields: BTreeMap<String, String>,
}

fn parse(line: &str) -> Line {
    let (client, rest) = line
        .split_once(" - - [")
        .unwrap_or_else(|| panic!("{line}"));
    let (_time, rest) = rest.split_once("] \"").unwrap();
    let (request, rest) = rest.split_once("\" ").unwrap();
    let mut r = request.split(' ');
    let (method, target, protocol) = (r.next().unwrap(), r.next().unwrap(), r.next().unwrap());
    let (status, rest) = rest.split_once(' ').unwrap();
    let (bytes, rest) = rest.split_once(" \"").unwrap();
    let (referer, rest) = rest.split_once("\" \"").unwrap();
    let (user_agent, rest) = rest.split_once("\" ").unwrap();
    let fields = rest
        .split(' ')
        .map(|w| {
            let (k, v) = w.split_once('=').unwrap_or_else(|| panic!("{w:?}: {line}"));
            (k.to_string(), v.to_string())
        })
        .collect();
    Line {
        client: client.into(),
        method: method.into(),
        target: target.into(),
        protocol: protocol.into(),
        status: status.parse().unwrap(),
        bytes: bytes.parse().unwrap(),
        referer: referer.into(),
        user_agent: user_agent.into(),
        fields,
    }
}

fn lines(path: &Path) -> Vec<Line> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(parse)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_answer_is_counted_once_with_its_code_and_logged() {
    let b = backends(2).await;
    let dir = temp_dir("requests");
    let log = dir.join("access.log");
    let lb = start_lb(&format!(
        r#"
[log]
access = "{log}"

[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "p"
[[listener.route]]
path_prefix = "/dead"
pool = "dead"
[[listener.route]]
path_prefix = "/sleep"
pool = "slow"
[[listener.route]]
path_prefix = "/none"
pool = "empty"
[[listener.route]]
name = "retry"
path_prefix = "/retry"
pool = "r"
[[listener.route]]
path_prefix = "/budget"
pool = "b"

[[listener]]
name = "strict"
listen = "127.0.0.1:0"
[[listener.route]]
host = "only.example"
pool = "p"

[admin]
listen = "127.0.0.1:0"

[pool.p]
servers = [{{ addr = "{s1}", name = "s1" }}, {{ addr = "{s2}", name = "s2" }}]

[pool.dead]
servers = [{{ addr = "{dead}" }}]

[pool.slow]
servers = [{{ addr = "{s1}" }}]
timeouts = {{ read = "200ms" }}
[pool.slow.retry]
attempts = 0

[pool.empty]
servers = [{{ addr = "{s1}", down = true }}]

[pool.r]
algorithm = "round_robin"
max_fails = 0
servers = [{{ addr = "{dead2}", name = "gone" }}, {{ addr = "{s2}", name = "live" }}]
[pool.r.retry]
attempts = 1
on = ["connect_failure"]

[pool.b]
max_fails = 0
servers = [{{ addr = "{dead3}" }}, {{ addr = "{dead4}" }}]
[pool.b.retry]
attempts = 1
on = ["connect_failure"]
budget = 0.0
"#,
        log = log.display(),
        s1 = b[0].addr,
        s2 = b[1].addr,
        dead = dead_port(),
        dead2 = dead_port(),
        dead3 = dead_port(),
        dead4 = dead_port(),
    ))
    .await;
    let web = lb.local_addr("web").unwrap();
    let strict = lb.local_addr("strict").unwrap();
    let admin = lb.admin_addr().unwrap();

    // The default pool: 6 × 200, a server's own 404 and 503.
    for _ in 0..6 {
        assert_eq!(
            get_with(
                web,
                "/?a=1",
                &[("user-agent", "t/1"), ("referer", "http://r.example/")]
            )
            .await
            .status,
            200
        );
    }
    assert_eq!(get(web, "/status/404").await.status, 404);
    assert_eq!(get(web, "/status/503").await.status, 503);
    // The balancer's own: 502 (refused), 504 (read timeout), 503 (no server).
    for _ in 0..2 {
        assert_eq!(get(web, "/dead").await.status, 502);
    }
    assert_eq!(get(web, "/sleep/2000").await.status, 504);
    assert_eq!(get(web, "/none").await.status, 503);
    // Retries: round robin sends each request first to the refusing server (the retry's
    // pick moves its turn on to the live one, so the next request starts again at the
    // refusing one): 6 answers of 200, 6 retries.
    for _ in 0..6 {
        assert_eq!(get(web, "/retry").await.status, 200);
    }
    // The budget: 10 tokens, none earned (budget = 0.0): 12 requests to two refusing
    // servers retry 10 times, and the last 2 are refused a retry; all answer 502.
    for _ in 0..12 {
        assert_eq!(get(web, "/budget").await.status, 502);
    }
    // No route: 404 of the balancer; a malformed request: 400.
    assert_eq!(get(strict, "/").await.status, 404);
    let bad = raw(strict, b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n").await;
    assert!(bad.starts_with("HTTP/1.1 400"), "{bad}");
    // HTTP/2 (h2c) beside HTTP/1.1, on the default route.
    let (status, body) = h2_get(web, "/?a=1").await;
    assert_eq!(status, 200, "{body:?}");

    // A request is accounted for just after its answer went out (over HTTP/2, when its
    // stream is done).
    let counted = |m: &Page| -> f64 {
        m.samples
            .iter()
            .filter(|((n, _), _)| n == "switchyard_requests_total")
            .map(|(_, v)| v)
            .sum()
    };
    wait_until(Duration::from_secs(10), "33 answers counted", || async {
        counted(&scrape(admin).await) == 33.0
    })
    .await;
    let m = scrape(admin).await;
    let req = |l: &str, route: &str, pool: &str, code: &str| {
        m.get(
            "switchyard_requests_total",
            &[
                ("listener", l),
                ("route", route),
                ("pool", pool),
                ("code", code),
            ],
        )
        .unwrap_or(0.0)
    };
    assert_eq!(
        req("web", "default", "p", "200"),
        7.0,
        "6 over HTTP/1.1, 1 over HTTP/2"
    );
    assert_eq!(req("web", "default", "p", "404"), 1.0);
    assert_eq!(req("web", "default", "p", "503"), 1.0);
    assert_eq!(req("web", "1", "dead", "502"), 2.0);
    assert_eq!(req("web", "2", "slow", "504"), 1.0);
    assert_eq!(req("web", "3", "empty", "503"), 1.0);
    // A named route is labelled by its name, the others by their position.
    assert_eq!(req("web", "retry", "r", "200"), 6.0);
    assert_eq!(req("web", "5", "b", "502"), 12.0);
    assert_eq!(req("strict", "-", "-", "404"), 1.0);
    assert_eq!(req("strict", "-", "-", "400"), 1.0);
    assert_eq!(counted(&m), 33.0, "every answer once, nothing else");

    let pool = |name: &str, p: &str| m.at(name, &[("pool", p)]);
    assert_eq!(pool("switchyard_pool_retries_total", "r"), 6.0);
    assert_eq!(pool("switchyard_pool_retries_total", "b"), 10.0);
    assert_eq!(
        pool("switchyard_pool_retry_budget_refusals_total", "b"),
        2.0
    );
    assert_eq!(
        pool("switchyard_pool_retry_budget_refusals_total", "r"),
        0.0
    );
    assert_eq!(
        pool("switchyard_pool_retries_total", "dead"),
        0.0,
        "no other server to try"
    );

    // Durations: one per answer; the 504 waited its 200 ms read timeout.
    let hist = |route: &str, pool: &str, what: &str| {
        m.at(
            &format!("switchyard_request_duration_seconds_{what}"),
            &[("listener", "web"), ("route", route), ("pool", pool)],
        )
    };
    assert_eq!(hist("default", "p", "count"), 9.0);
    assert_eq!(hist("5", "b", "count"), 12.0);
    assert!(
        hist("2", "slow", "sum") >= 0.2,
        "{}",
        hist("2", "slow", "sum")
    );
    // Time to the response head per server, every try that got one.
    let s = |name: &str, i: usize| lb.pool(name).unwrap().servers()[i].addr.to_string();
    let (a1, a2) = (s("p", 0), s("p", 1));
    let head = |a: &str, n: &str| {
        m.at(
            "switchyard_upstream_header_duration_seconds_count",
            &[("pool", "p"), ("server", n), ("addr", a)],
        )
    };
    assert_eq!(head(&a1, "s1") + head(&a2, "s2"), 9.0);
    let conns = m.at("switchyard_http_connections_total", &[("listener", "web")]);
    assert_eq!(conns, 31.0, "each request above on its own connection");
    assert_eq!(
        m.at("switchyard_http_connections_open", &[("listener", "web")]),
        0.0
    );
    assert!(
        m.at(
            "switchyard_http_bytes_total",
            &[("listener", "web"), ("direction", "sent")]
        ) > 0.0
    );

    // The access log: one line per answer, fields parsed.
    let access = lb.access_log();
    lb.shutdown().await;
    access.flush(Duration::from_secs(5));
    let all = lines(&log);
    assert_eq!(all.len(), 33, "one line per answer");
    let h1 = all
        .iter()
        .find(|l| l.protocol == "HTTP/1.1" && l.target == "/?a=1")
        .expect("an HTTP/1.1 line");
    let h2 = all
        .iter()
        .find(|l| l.protocol == "HTTP/2.0")
        .expect("an HTTP/2 line");
    for l in [h1, h2] {
        assert_eq!(
            (l.client.as_str(), l.method.as_str(), l.status),
            ("127.0.0.1", "GET", 200)
        );
        assert_eq!(
            l.target, "/?a=1",
            "the same URI form over HTTP/1.1 and HTTP/2"
        );
        assert_eq!(l.fields["pool"], "p");
        assert_eq!(l.fields["listener"], "web");
        assert!(l.bytes > 0, "{l:?}");
        let up = &l.fields["upstream"];
        assert!(up == &a1 || up == &a2, "{up}");
        let ut: f64 = l.fields["upstream_time"].parse().unwrap();
        let rt: f64 = l.fields["request_time"].parse().unwrap();
        assert!(ut <= rt && rt < 10.0, "{ut} {rt}");
    }
    assert_eq!(
        (h1.referer.as_str(), h1.user_agent.as_str()),
        ("http://r.example/", "t/1")
    );
    assert_eq!(h1.fields["host"], web.ip().to_string());
    assert_eq!(h2.fields["host"], "h2.test");
    assert_eq!(h2.user_agent, "h2-test/1");
    let timeout = all.iter().find(|l| l.status == 504).unwrap();
    assert_eq!(
        (
            timeout.fields["pool"].as_str(),
            timeout.fields["attempts"].as_str()
        ),
        ("slow", "1")
    );
    assert_eq!(timeout.fields["upstream_time"], "-", "no response head");
    let no_route = all
        .iter()
        .find(|l| l.status == 404 && l.fields["listener"] == "strict")
        .unwrap();
    assert_eq!(
        (
            no_route.fields["pool"].as_str(),
            no_route.fields["upstream"].as_str()
        ),
        ("-", "-")
    );
    let retried = all
        .iter()
        .filter(|l| l.target == "/retry" && l.fields["attempts"] == "2")
        .count();
    assert_eq!(retried, 6);
    let _ = std::fs::remove_dir_all(&dir);
}

/// Send `bytes` (a write error is no failure: the balancer may close first) and read to
/// the close, within 10 s.
async fn hostile(addr: SocketAddr, bytes: &[u8]) -> String {
    let mut c = TcpStream::connect(addr).await.unwrap();
    let _ = c.write_all(bytes).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::io::AsyncReadExt::read_to_end(&mut c, &mut out),
    )
    .await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The balancer's own answers to heads it will not serve — malformed (400), too big (414,
/// 431), too slow (408), a client over its connection limit (503) — are counted in the
/// listener's row of answers no route took and logged, one line each with what is known of
/// the request, on both HTTP/1 engines (hyper's path closes a slow head without an answer).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_heads_are_counted_and_logged_on_both_engines() {
    use switchyard::proxy::http::Http1Engine;
    let b = backends(1).await;
    for engine in [Http1Engine::Direct, Http1Engine::Hyper] {
        let dir = temp_dir("refused");
        let log = dir.join("access.log");
        let toml = format!(
            r#"
[log]
access = "{log}"

[admin]
listen = "127.0.0.1:0"

[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "p"
client_header_timeout = "500ms"

[[listener]]
name = "few"
listen = "127.0.0.1:0"
pool = "p"
max_connections_per_client = 1

[pool.p]
servers = [{{ addr = "{s1}" }}]
"#,
            log = log.display(),
            s1 = b[0].addr,
        );
        let plan = switchyard::config::load_str(&toml, "test.toml").unwrap();
        let lb = switchyard::runtime::Runtime::start_with(plan, engine)
            .await
            .unwrap();
        let web = lb.local_addr("web").unwrap();
        let few = lb.local_addr("few").unwrap();
        let admin = lb.admin_addr().unwrap();
        let hyper = engine == Http1Engine::Hyper;
        let many: String = (0..150).map(|i| format!("X-F{i}: v\r\n")).collect();
        let cases: Vec<(&str, Vec<u8>, u16)> = vec![
            (
                "Content-Length abc",
                b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: abc\r\n\r\n".to_vec(),
                400,
            ),
            ("a garbage request line", b"GARBAGE\r\n\r\n".to_vec(), 400),
            (
                "HTTP/9.9",
                b"GET / HTTP/9.9\r\nHost: a\r\n\r\n".to_vec(),
                400,
            ),
            (
                "obs-fold",
                b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n c\r\n\r\n".to_vec(),
                400,
            ),
            (
                "NUL in a field",
                b"GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n".to_vec(),
                400,
            ),
            (
                "a 100 KB field",
                format!(
                    "GET / HTTP/1.1\r\nHost: a\r\nX-Big: {}\r\n\r\n",
                    "b".repeat(100_000)
                )
                .into_bytes(),
                431,
            ),
            (
                "150 fields",
                format!("GET / HTTP/1.1\r\nHost: a\r\n{many}\r\n").into_bytes(),
                431,
            ),
            (
                "a 100 KB target",
                format!("GET /{} HTTP/1.1\r\nHost: a\r\n\r\n", "u".repeat(100_000)).into_bytes(),
                414,
            ),
        ];
        for (what, bytes, status) in &cases {
            let got = hostile(web, bytes).await;
            assert!(
                got.starts_with(&format!("HTTP/1.1 {status} ")),
                "{engine:?}: {what}: {got:?}"
            );
        }
        // Part of a head, then silence: 408 at client_header_timeout (hyper: a close).
        let got = hostile(web, b"GET / HTTP/1.1\r\nHost: a\r\n").await;
        match hyper {
            false => assert!(got.starts_with("HTTP/1.1 408 "), "{got:?}"),
            true => assert_eq!(got, "", "hyper's path closes without an answer"),
        }
        // One connection held, a second from the same address: 503.
        let mut held = TcpStream::connect(few).await.unwrap();
        held.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 12];
        tokio::io::AsyncReadExt::read_exact(&mut held, &mut first)
            .await
            .unwrap();
        assert_eq!(&first, b"HTTP/1.1 200");
        let got = hostile(few, b"GET / HTTP/1.1\r\nHost: a\r\n\r\n").await;
        assert!(got.starts_with("HTTP/1.1 503 "), "{got:?}");
        drop(held);

        let want: &[(&str, &str, u64)] = match hyper {
            false => &[
                ("web", "400", 5),
                ("web", "408", 1),
                ("web", "414", 1),
                ("web", "431", 2),
                ("few", "503", 1),
            ],
            true => &[
                ("web", "400", 5),
                ("web", "414", 1),
                ("web", "431", 2),
                ("few", "503", 1),
            ],
        };
        let total: u64 = want.iter().map(|w| w.2).sum();
        let refused = |m: &Page| -> Vec<(String, String, u64)> {
            let mut v: Vec<_> = m
                .samples
                .iter()
                .filter(|((n, l), _)| {
                    n == "switchyard_requests_total" && l["route"] == "-" && l["pool"] == "-"
                })
                .map(|((_, l), v)| (l["listener"].clone(), l["code"].clone(), *v as u64))
                .collect();
            v.sort();
            v
        };
        wait_until(Duration::from_secs(10), "the refusals counted", || async {
            refused(&scrape(admin).await)
                .iter()
                .map(|r| r.2)
                .sum::<u64>()
                >= total
        })
        .await;
        let want_rows: Vec<_> = want
            .iter()
            .map(|(l, c, n)| (l.to_string(), c.to_string(), *n))
            .collect();
        let mut want_sorted = want_rows.clone();
        want_sorted.sort();
        assert_eq!(refused(&scrape(admin).await), want_sorted, "{engine:?}");

        let access = lb.access_log();
        lb.shutdown().await;
        access.flush(Duration::from_secs(5));
        let mut got: Vec<_> = lines(&log)
            .into_iter()
            .filter(|l| l.status != 200)
            .map(|l| {
                assert_eq!(l.client, "127.0.0.1");
                assert_eq!(l.fields["pool"], "-");
                assert_eq!(l.fields["upstream"], "-");
                let request = format!("{} {} {}", l.method, l.target, l.protocol);
                (l.fields["listener"].clone(), request, l.status)
            })
            .collect();
        got.sort();
        let line = |l: &str, r: &str, s: u16| (l.to_string(), r.to_string(), s);
        let mut want = match hyper {
            // What the direct path parsed of each; hyper's own refusals know nothing of
            // the request (the 100 KB field it read whole: refused by `handle`).
            false => vec![
                line("web", "GET / HTTP/1.1", 400),
                line("web", "- - -", 400),
                line("web", "GET / -", 400),
                line("web", "GET / HTTP/1.1", 400),
                line("web", "GET / HTTP/1.1", 400),
                line("web", "GET / HTTP/1.1", 431),
                line("web", "GET / HTTP/1.1", 431),
                line("web", "GET - -", 414),
                line("web", "GET / HTTP/1.1", 408),
                line("few", "- - -", 503),
            ],
            true => vec![
                line("web", "- - -", 400),
                line("web", "- - -", 400),
                line("web", "- - -", 400),
                line("web", "- - -", 400),
                line("web", "- - -", 400),
                line("web", "GET / HTTP/1.1", 431),
                line("web", "- - -", 431),
                line("web", "- - -", 414),
                line("few", "- - -", 503),
            ],
        };
        want.sort();
        assert_eq!(got, want, "{engine:?}: one line per refusal");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Read one answer with a Content-Length off a kept-alive connection: its status.
async fn one_answer(c: &mut TcpStream) -> u16 {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), c.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .unwrap();
        assert!(n > 0, "closed before a whole answer: {got:?}");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
        let Some(end) = text.find("\r\n\r\n") else {
            continue;
        };
        let len: usize = text[..end]
            .split("\r\n")
            .find_map(|l| l.strip_prefix("content-length: "))
            .map_or(0, |v| v.trim().parse().unwrap());
        if got.len() >= end + 4 + len {
            return text[9..12].parse().unwrap();
        }
    }
}

/// A refused head on a kept-alive connection (408 for part of one that stalls, 400 for a
/// bad one sent in two parts) logs request_time from the head's first byte, as a served
/// request does (nginx's `$request_time`), not ≈0 from the refusal (the direct path).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_later_refused_heads_request_time_runs_from_its_first_byte() {
    use switchyard::proxy::http::Http1Engine;
    let b = backends(1).await;
    let dir = temp_dir("refused-time");
    let log = dir.join("access.log");
    let toml = format!(
        r#"
[log]
access = "{log}"

[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "p"
client_header_timeout = "500ms"

[pool.p]
servers = [{{ addr = "{s1}" }}]
"#,
        log = log.display(),
        s1 = b[0].addr,
    );
    let plan = switchyard::config::load_str(&toml, "test.toml").unwrap();
    let lb = switchyard::runtime::Runtime::start_with(plan, Http1Engine::Direct)
        .await
        .unwrap();
    let web = lb.local_addr("web").unwrap();
    let ask = b"GET / HTTP/1.1\r\nHost: a\r\n\r\n";
    // 408: a second head's first part, then silence.
    let mut c = TcpStream::connect(web).await.unwrap();
    c.write_all(ask).await.unwrap();
    assert_eq!(one_answer(&mut c).await, 200);
    c.write_all(b"GET /late HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    assert_eq!(one_answer(&mut c).await, 408);
    // 400: a second head in two parts 300 ms apart, the second making it bad.
    let mut c = TcpStream::connect(web).await.unwrap();
    c.write_all(ask).await.unwrap();
    assert_eq!(one_answer(&mut c).await, 200);
    c.write_all(b"GET /bad HTTP/1.1\r\nHost: a\r\n")
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.write_all(b"Content-Length: abc\r\n\r\n").await.unwrap();
    assert_eq!(one_answer(&mut c).await, 400);

    let access = lb.access_log();
    lb.shutdown().await;
    access.flush(Duration::from_secs(5));
    let got = lines(&log);
    let time = |status: u16| -> f64 {
        let l = got
            .iter()
            .find(|l| l.status == status)
            .unwrap_or_else(|| panic!("no {status} line in {got:?}"));
        l.fields["request_time"].parse().unwrap()
    };
    assert!(time(408) >= 0.45, "408's request_time {}", time(408));
    assert!(time(400) >= 0.25, "400's request_time {}", time(400));
    let _ = std::fs::remove_dir_all(&dir);
}

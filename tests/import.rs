//! `switchyard import` on real configurations: the load-balancing examples of nginx's and
//! HAProxy's own documentation (tests/import/, each citing where it is from) and the
//! configurations of Switchyard's own benchmarks (bench/*.sh). Each import passes `check`,
//! and is started beside the original — real nginx or HAProxy on the same file, over the
//! same demo backends — and both must spread requests over the servers alike and route by
//! host and path alike. What the import reports as not carried is checked to be reported.

mod common;
mod import_support;
mod tls_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use import_support::{fill, fixture, import_ok, reported};
use switchyard::demo::Backend;
use switchyard::import::Imported;
use switchyard::runtime::Runtime;

use common::free_port;

/// `text` with the lines that start with one of `needs_root` commented out: they need root
/// or files of a real installation. Line numbers stay as in the fixture.
fn runnable(text: &str, needs_root: &[&str]) -> String {
    text.lines()
        .map(|l| {
            let t = l.trim_start();
            if needs_root
                .iter()
                .any(|k| t == *k || t.starts_with(&format!("{k} ")))
            {
                format!("#{l}\n")
            } else {
                format!("{l}\n")
            }
        })
        .collect()
}

/// A process (nginx or HAProxy) killed on drop.
struct Proc(Child, &'static str, PathBuf);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn nginx(conf: &Path, dir: &Path, text: &str) -> Proc {
        let mut g = String::from("master_process off;");
        if !text.contains("daemon ") {
            g.push_str(" daemon off;");
        }
        let child = Command::new("nginx")
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(conf)
            .args(["-g", &g])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("nginx is installed (scripts/test installs it)");
        Proc(child, "nginx", dir.to_path_buf())
    }

    fn haproxy(cfg: &Path, dir: &Path) -> Proc {
        let child = Command::new("haproxy")
            .arg("-db")
            .arg("-f")
            .arg(cfg)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("haproxy is installed (scripts/test installs it)");
        Proc(child, "haproxy", dir.to_path_buf())
    }

    /// Wait until `port` accepts connections; fails with the process's own words if it exits.
    async fn ready(&mut self, port: u16) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            if tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .is_ok()
            {
                return;
            }
            if let Some(status) = self.0.try_wait().unwrap() {
                let mut err = String::new();
                if let Some(mut e) = self.0.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                let log = std::fs::read_to_string(self.2.join("error.log")).unwrap_or_default();
                panic!(
                    "{} exited ({status}) before listening on {port}: {err}{log}",
                    self.1
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "{} never listened on {port}",
                self.1
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

async fn start_switchyard(toml: &str) -> Runtime {
    let plan = switchyard::config::load_str(toml, "imported.toml").unwrap();
    Runtime::start(plan)
        .await
        .expect("the imported config starts")
}

/// `n` GETs of `path` (with `host`) over one keep-alive connection: answers per server.
async fn tally(port: u16, path: &str, host: &str, n: usize) -> BTreeMap<String, usize> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut client = common::Client::connect(addr).await;
    let mut names = Vec::new();
    for _ in 0..n {
        let req = http::Request::get(path)
            .header("host", host)
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let a = client.send(req).await;
        assert_eq!(a.status, 200, "{port} {host}{path}: {}", a.text());
        names.push(a.server());
    }
    common::tally(names)
}

async fn backends(names: &[&str]) -> Vec<Backend> {
    let mut v = Vec::new();
    for n in names {
        v.push(Backend::start(n, Duration::ZERO).await.unwrap());
    }
    v
}

/// An nginx documentation example run by nginx and by Switchyard after import: the
/// example is an `http { }` block, included by a main file that adds what nginx needs to
/// run in a test (events, pid, error log). Returns the two tallies of `n` requests.
async fn nginx_side_by_side(
    file: &str,
    n: usize,
) -> (BTreeMap<String, usize>, BTreeMap<String, usize>, Imported) {
    let b = backends(&["s1", "s2", "s3"]).await;
    let mut map: Vec<(String, String)> = (0..3)
        .map(|i| (format!("srv{}.example.com", i + 1), b[i].addr.to_string()))
        .collect();
    let text = fixture(file);
    let mut runs = Vec::new();
    for who in ["nginx", "switchyard"] {
        let dir = common::temp_dir(&format!("import-{who}"));
        let port = free_port();
        map.push(("listen 80;".into(), format!("listen 127.0.0.1:{port};")));
        std::fs::write(dir.join("example.conf"), fill(&text, &map)).unwrap();
        map.pop();
        let main = format!(
            "events {{}}\npid {0}/nginx.pid;\nerror_log {0}/error.log;\ninclude example.conf;\n",
            dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), main).unwrap();
        runs.push((dir, port));
    }
    let (ndir, nport) = &runs[0];
    let mut nginx = Proc::nginx(&ndir.join("nginx.conf"), ndir, "");
    nginx.ready(*nport).await;
    let (sdir, sport) = &runs[1];
    let imported = import_ok(&[&sdir.join("nginx.conf")]);
    let lb = start_switchyard(&imported.toml).await;
    let theirs = tally(*nport, "/", "example.com", n).await;
    let ours = tally(*sport, "/", "example.com", n).await;
    lb.shutdown().await;
    drop(nginx);
    for (d, _) in runs {
        let _ = std::fs::remove_dir_all(d);
    }
    (theirs, ours, imported)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (nginx): scripts/test runs it"]
async fn nginx_round_robin_weighted_and_least_conn_examples_spread_alike() {
    for (file, want) in [
        ("nginx/load_balancing.conf", [20, 20, 20]),
        ("nginx/load_balancing_weighted.conf", [36, 12, 12]),
        ("nginx/load_balancing_least_conn.conf", [20, 20, 20]),
    ] {
        let (theirs, ours, imported) = nginx_side_by_side(file, 60).await;
        println!("{file}: nginx {theirs:?}, switchyard {ours:?}");
        assert_eq!(theirs, ours, "{file}: the same spread as nginx");
        let counts: Vec<usize> = ["s1", "s2", "s3"].iter().map(|s| ours[*s]).collect();
        assert_eq!(counts, want, "{file}");
        // Nothing of the example itself is lost (the test's own main file sets pid and log).
        assert!(
            imported
                .notes
                .iter()
                .all(|n| n.at.file.ends_with("nginx.conf")),
            "{file}: {:?}",
            imported.notes
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (nginx): scripts/test runs it"]
async fn nginx_ip_hash_example_sends_a_client_to_the_same_server_as_nginx() {
    let (theirs, ours, _) = nginx_side_by_side("nginx/load_balancing_ip_hash.conf", 20).await;
    println!("ip_hash: nginx {theirs:?}, switchyard {ours:?}");
    // One client, one server; nginx's own hash, so the very same server.
    assert_eq!(theirs.len(), 1);
    assert_eq!(theirs, ours);
}

/// nginx's name-based virtual servers (its "How nginx processes a request" page): routing
/// by Host and by path agrees with nginx for every host, and an unknown host goes to the
/// default (first) server in both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (nginx): scripts/test runs it"]
async fn nginx_virtual_hosts_route_by_host_and_path_alike() {
    let names = ["org1", "org2", "net1", "api1", "com1"];
    let b = backends(&names).await;
    let map: Vec<(String, String)> = names
        .iter()
        .zip(&b)
        .map(|(n, s)| (format!("{n}.test"), s.addr.to_string()))
        .collect();
    let text = fixture("nginx/virtual_hosts.conf");
    let mut ports = Vec::new();
    let mut keep = None;
    let mut lb = None;
    for who in ["nginx", "switchyard"] {
        let dir = common::temp_dir(&format!("import-vhost-{who}"));
        let port = free_port();
        let mut m = map.clone();
        m.push((
            "listen      80;".into(),
            format!("listen      127.0.0.1:{port};"),
        ));
        std::fs::write(dir.join("sites.conf"), fill(&text, &m)).unwrap();
        let main = format!(
            "events {{}}\npid {0}/nginx.pid;\nerror_log {0}/error.log;\ninclude sites.conf;\n",
            dir.display()
        );
        std::fs::write(dir.join("nginx.conf"), main).unwrap();
        if who == "nginx" {
            let mut p = Proc::nginx(&dir.join("nginx.conf"), &dir, "");
            p.ready(port).await;
            keep = Some(p);
        } else {
            let i = import_ok(&[&dir.join("nginx.conf")]);
            assert!(i.toml.contains("host = \"www.example.net\""), "{}", i.toml);
            lb = Some(start_switchyard(&i.toml).await);
        }
        ports.push((port, dir));
    }
    for (host, path) in [
        ("example.org", "/"),
        ("www.example.org", "/a"),
        ("example.net", "/"),
        ("www.example.net", "/api/v1"),
        ("example.net", "/apix"),
        ("www.example.com", "/api/v1"),
        ("unknown.example", "/api/v1"),
        ("EXAMPLE.COM:80", "/"),
    ] {
        let theirs = tally(ports[0].0, path, host, 4).await;
        let ours = tally(ports[1].0, path, host, 4).await;
        println!("{host}{path}: nginx {theirs:?}, switchyard {ours:?}");
        assert_eq!(theirs, ours, "{host}{path}");
    }
    if let Some(lb) = lb {
        lb.shutdown().await;
    }
    drop(keep);
    for (_, d) in ports {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// bench/http.sh's nginx and HAProxy load balancers: round robin over two servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (nginx, haproxy): scripts/test runs it"]
async fn bench_http_configs_of_nginx_and_haproxy_run_alike_after_import() {
    let b = backends(&["b1", "b2"]).await;
    for file in ["nginx/bench_http.conf", "haproxy/bench_http.cfg"] {
        let nginx = file.starts_with("nginx");
        let mut tallies = Vec::new();
        let mut keep = Vec::new();
        for who in ["original", "switchyard"] {
            let dir = common::temp_dir(&format!("import-bench-{who}"));
            let port = free_port();
            let map = vec![
                ("@B1@".to_string(), b[0].addr.port().to_string()),
                ("@B2@".to_string(), b[1].addr.port().to_string()),
                ("@P@".to_string(), port.to_string()),
                ("@DIR@".to_string(), dir.display().to_string()),
            ];
            let text = fill(&fixture(file), &map);
            let path = dir.join(if nginx { "nginx.conf" } else { "haproxy.cfg" });
            std::fs::write(&path, &text).unwrap();
            if who == "original" {
                let mut p = if nginx {
                    Proc::nginx(&path, &dir, &text)
                } else {
                    Proc::haproxy(&path, &dir)
                };
                p.ready(port).await;
                tallies.push(tally(port, "/", "bench", 40).await);
                keep.push((p, dir));
            } else {
                let i = import_ok(&[&path]);
                let lb = start_switchyard(&i.toml).await;
                tallies.push(tally(port, "/", "bench", 40).await);
                lb.shutdown().await;
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        println!(
            "{file}: original {:?}, switchyard {:?}",
            tallies[0], tallies[1]
        );
        assert_eq!(tallies[0], tallies[1], "{file}");
        assert_eq!(tallies[1]["b1"], 20, "{file}");
        for (p, dir) in keep {
            drop(p);
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// bench/tls.sh's nginx and HAProxy: TLS terminated in front of one server (HAProxy's
/// `crt` is one PEM with the certificate and its key).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (nginx, haproxy): scripts/test runs it"]
async fn bench_tls_configs_terminate_tls_alike_after_import() {
    let b = backends(&["b1"]).await;
    let pki = tls_support::Pki::new();
    let (cert, key) = pki.leaf_pem(&["localhost"]);
    for file in ["nginx/bench_tls.conf", "haproxy/bench_tls.cfg"] {
        let nginx = file.starts_with("nginx");
        for who in ["original", "switchyard"] {
            let dir = common::temp_dir(&format!("import-tls-{who}"));
            std::fs::write(dir.join("cert.pem"), &cert).unwrap();
            std::fs::write(dir.join("key.pem"), &key).unwrap();
            std::fs::write(dir.join("combined.pem"), format!("{cert}{key}")).unwrap();
            let port = free_port();
            let map = vec![
                ("@B1@".to_string(), b[0].addr.port().to_string()),
                ("@P@".to_string(), port.to_string()),
                ("@DIR@".to_string(), dir.display().to_string()),
            ];
            let text = fill(&fixture(file), &map);
            let path = dir.join(if nginx { "nginx.conf" } else { "haproxy.cfg" });
            std::fs::write(&path, &text).unwrap();
            let addr: SocketAddr = ([127, 0, 0, 1], port).into();
            let mut original = None;
            let mut lb = None;
            if who == "original" {
                let mut p = if nginx {
                    Proc::nginx(&path, &dir, &text)
                } else {
                    Proc::haproxy(&path, &dir)
                };
                p.ready(port).await;
                original = Some(p);
            } else {
                let i = import_ok(&[&path]);
                assert!(i.toml.contains("protocol = \"https\""), "{}", i.toml);
                lb = Some(start_switchyard(&i.toml).await);
            }
            for alpn in [&["h2", "http/1.1"][..], &["http/1.1"][..]] {
                let a = tls_support::https_get(addr, &pki.ca_pem, "localhost", alpn, "/").await;
                assert_eq!(a.status, 200, "{file} {who}");
                assert!(a.body.starts_with("b1: GET /"), "{file} {who}: {}", a.body);
                assert_eq!(a.alpn.as_deref(), Some(alpn[0]), "{file} {who}");
            }
            if let Some(lb) = lb {
                lb.shutdown().await;
            }
            drop(original);
            let _ = std::fs::remove_dir_all(&dir);
        }
    }
}

/// bench/l4.sh's HAProxy in tcp mode: bytes pass through to the one server.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (haproxy): scripts/test runs it"]
async fn bench_l4_config_of_haproxy_passes_tcp_alike_after_import() {
    let b = backends(&["b1"]).await;
    for who in ["original", "switchyard"] {
        let dir = common::temp_dir(&format!("import-l4-{who}"));
        let port = free_port();
        let map = vec![
            ("@B1@".to_string(), b[0].addr.port().to_string()),
            ("@P@".to_string(), port.to_string()),
        ];
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, fill(&fixture("haproxy/bench_l4.cfg"), &map)).unwrap();
        let mut keep = None;
        let mut lb = None;
        if who == "original" {
            let mut p = Proc::haproxy(&path, &dir);
            p.ready(port).await;
            keep = Some(p);
        } else {
            let i = import_ok(&[&path]);
            assert!(i.toml.contains("protocol = \"tcp\""), "{}", i.toml);
            assert!(i.toml.contains("idle_timeout = \"60s\""), "{}", i.toml);
            lb = Some(start_switchyard(&i.toml).await);
        }
        let t = tally(port, "/", "l4", 5).await;
        assert_eq!(t["b1"], 5, "{who}");
        if let Some(lb) = lb {
            lb.shutdown().await;
        }
        drop(keep);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// HAProxy's examples/content-sw-sample.cfg: /img and /css to the static farm, the rest to
/// the dynamic one; `hdr_beg(host)` has no Switchyard equivalent and is reported.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (haproxy): scripts/test runs it"]
async fn haproxy_content_switching_example_routes_by_path_alike() {
    let b = backends(&[
        "statsrv1", "statsrv2", "dynsrv1", "dynsrv2", "dynsrv3", "dynsrv4",
    ])
    .await;
    let mut ports = Vec::new();
    let mut keep = Vec::new();
    let mut imported = None;
    let mut lb = None;
    for who in ["haproxy", "switchyard"] {
        let dir = common::temp_dir(&format!("import-cs-{who}"));
        let port = free_port();
        let mut map = vec![("192.168.1.10:80".to_string(), format!("127.0.0.1:{port}"))];
        for (i, ip) in [
            "192.168.1.8",
            "192.168.1.9",
            "192.168.1.1",
            "192.168.1.2",
            "192.168.1.3",
            "192.168.1.4",
        ]
        .iter()
        .enumerate()
        {
            map.push((format!("{ip}:80"), b[i].addr.to_string()));
        }
        // Lines that need root or files of a real installation are commented out (so the
        // line numbers stay), and the global maxconn lowered to what the test machine's
        // open-file limit allows.
        let text = runnable(
            &fill(&fixture("haproxy/content-sw-sample.cfg"), &map),
            &["uid", "gid", "chroot", "daemon", "stats socket"],
        )
        .replace("maxconn         10000", "maxconn         4000");
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, text).unwrap();
        if who == "haproxy" {
            let mut p = Proc::haproxy(&path, &dir);
            p.ready(port).await;
            keep.push(p);
        } else {
            let i = import_ok(&[&path]);
            lb = Some(start_switchyard(&i.toml).await);
            imported = Some(i);
        }
        ports.push((port, dir));
    }
    let i = imported.unwrap();
    for (path, host) in [
        ("/img/logo.png", "www.example.com"),
        ("/css/site.css", "www.example.com"),
        ("/index.html", "www.example.com"),
    ] {
        let theirs = tally(ports[0].0, path, host, 40).await;
        let ours = tally(ports[1].0, path, host, 40).await;
        println!("{host}{path}: haproxy {theirs:?}, switchyard {ours:?}");
        assert_eq!(theirs, ours, "{host}{path}");
    }
    // Reported, with its line: the host-prefix rule that Switchyard cannot express.
    assert!(reported(&i, 36, "hdr_beg(host)"), "{:?}", i.notes);
    // maxconn and timeout queue are carried (max_conns, queue_timeout), the queue's
    // bound said; fullconn/minconn (a limit growing with the load) are not.
    assert!(i.toml.contains("max_conns = 500"), "{}", i.toml);
    assert!(i.toml.contains("queue_timeout = \"30s\""), "{}", i.toml);
    assert!(!reported(&i, 61, "timeout queue"), "{:?}", i.notes);
    for (line, what) in [
        (65, "maxconn 500"),
        (65, "minconn 50"),
        (65, "cookie s1"),
        (64, "fullconn"),
    ] {
        assert!(
            reported(&i, line, what),
            "line {line} {what}: {:?}",
            i.notes
        );
    }
    if let Some(lb) = lb {
        lb.shutdown().await;
    }
    drop(keep);
    for (_, d) in ports {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// HAProxy's examples/basic-config-edge.cfg: port 80 redirects to https, port 443 balances
/// at random over four servers with an inserted cookie, HSTS on every answer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (haproxy): scripts/test runs it"]
async fn haproxy_edge_example_redirects_balances_and_sticks_alike() {
    let b = backends(&["srv1", "srv2", "srv3", "srv4"]).await;
    let pki = tls_support::Pki::new();
    let (cert, key) = pki.leaf_pem(&["localhost"]);
    let mut sides = Vec::new();
    let mut keep = Vec::new();
    let mut lbs = Vec::new();
    let mut imported = None;
    for who in ["haproxy", "switchyard"] {
        let dir = common::temp_dir(&format!("import-edge-{who}"));
        std::fs::write(dir.join("pub1.pem"), format!("{cert}{key}")).unwrap();
        let (plain, tls, stats) = (free_port(), free_port(), free_port());
        let mut map = vec![
            ("bind :80 ".to_string(), format!("bind 127.0.0.1:{plain} ")),
            ("bind :443 ".to_string(), format!("bind 127.0.0.1:{tls} ")),
            ("bind :8181".to_string(), format!("bind 127.0.0.1:{stats}")),
        ];
        for (k, s) in b.iter().enumerate() {
            map.push((format!("192.0.2.{}:80", k + 1), s.addr.to_string()));
        }
        let text = runnable(
            &fill(&fixture("haproxy/basic-config-edge.cfg"), &map),
            &[
                "chroot",
                "user",
                "group",
                "daemon",
                "pidfile",
                "stats socket",
            ],
        );
        let path = dir.join("haproxy.cfg");
        std::fs::write(&path, text).unwrap();
        if who == "haproxy" {
            let mut p = Proc::haproxy(&path, &dir);
            p.ready(tls).await;
            keep.push(p);
        } else {
            let i = import_ok(&[&path]);
            lbs.push(start_switchyard(&i.toml).await);
            imported = Some(i);
        }
        sides.push((plain, tls, dir));
    }
    let i = imported.unwrap();
    let mut spreads = Vec::new();
    for (who, (plain, tls, _)) in ["haproxy", "switchyard"].iter().zip(&sides) {
        // Port 80: a redirect to the same URL over https.
        let a = common::get(([127, 0, 0, 1], *plain).into(), "/x?y=1").await;
        assert!(a.status.is_redirection(), "{who}: {}", a.status);
        let location = a.headers["location"].to_str().unwrap();
        assert!(
            location.starts_with("https://") && location.ends_with("/x?y=1"),
            "{who}: {location}"
        );
        // Port 443: random over the four, HSTS, and a cookie that sticks.
        let addr: SocketAddr = ([127, 0, 0, 1], *tls).into();
        let mut names = Vec::new();
        let mut cookie = None;
        for _ in 0..80 {
            let a =
                tls_support::https_get(addr, &pki.ca_pem, "localhost", &["http/1.1"], "/").await;
            assert_eq!(a.status, 200, "{who}");
            assert_eq!(
                a.headers["strict-transport-security"]
                    .to_str()
                    .unwrap()
                    .trim_end_matches("; includeSubDomains"),
                "max-age=31536000",
                "{who}"
            );
            names.push(a.body.split(':').next().unwrap().to_string());
            cookie = a
                .headers
                .get("set-cookie")
                .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string());
        }
        let spread = common::tally(names);
        println!("{who}: random over four: {spread:?}");
        assert_eq!(spread.len(), 4, "{who}: every server serves: {spread:?}");
        assert!(spread.values().all(|&n| n >= 5), "{who}: {spread:?}");
        spreads.push(spread);
        let cookie = cookie.expect("a sticky cookie");
        assert!(cookie.starts_with("app1="), "{who}: {cookie}");
        let _ = cookie;
    }
    // Random: shares agree only on average; each server's count within 20 of 80.
    for s in ["srv1", "srv2", "srv3", "srv4"] {
        let d = spreads[0][s].abs_diff(spreads[1][s]);
        assert!(
            d <= 20,
            "{s}: haproxy {} vs switchyard {}",
            spreads[0][s],
            spreads[1][s]
        );
    }
    assert!(reported(&i, 85, "code 301"), "{:?}", i.notes);
    assert!(reported(&i, 96, "compression"), "{:?}", i.notes);
    assert!(reported(&i, 79, "quic4@"), "{:?}", i.notes);
    for lb in lbs {
        lb.shutdown().await;
    }
    drop(keep);
    for (_, _, d) in sides {
        let _ = std::fs::remove_dir_all(d);
    }
}

/// nginx's `limit_req` imported as a Switchyard rate limit refuses where nginx refuses:
/// with `rate=1r/m burst=2 nodelay`, the first three requests of a client pass and the next
/// ones are refused — 503 from nginx (its `limit_req_status` default), 429 with
/// `Retry-After` from Switchyard, as the import's note says.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (nginx): scripts/test runs it"]
async fn nginx_limit_req_refuses_alike_after_import() {
    let b = backends(&["r1"]).await;
    let mut statuses = Vec::new();
    let mut imported = None;
    for who in ["nginx", "switchyard"] {
        let dir = common::temp_dir(&format!("import-limit-{who}"));
        let port = free_port();
        let text = format!(
            "events {{}}\npid {d}/nginx.pid;\nerror_log {d}/error.log;\nhttp {{\n    access_log off;\n    limit_req_zone $binary_remote_addr zone=one:1m rate=1r/m;\n    upstream app {{ server {b}; }}\n    server {{\n        listen 127.0.0.1:{port};\n        location / {{\n            limit_req zone=one burst=2 nodelay;\n            proxy_pass http://app;\n        }}\n    }}\n}}\n",
            d = dir.display(),
            b = b[0].addr,
        );
        let path = dir.join("nginx.conf");
        std::fs::write(&path, &text).unwrap();
        let mut keep = None;
        let mut lb = None;
        if who == "nginx" {
            let mut p = Proc::nginx(&path, &dir, &text);
            p.ready(port).await;
            keep = Some(p);
        } else {
            let i = import_ok(&[&path]);
            assert!(
                i.toml.contains("[[listener.route.limit]]")
                    || i.toml.contains("[[listener.limit]]"),
                "{}",
                i.toml
            );
            lb = Some(start_switchyard(&i.toml).await);
            imported = Some(i);
        }
        let mut got = Vec::new();
        let mut retry_after = Vec::new();
        for _ in 0..5 {
            let mut client = common::Client::connect(([127, 0, 0, 1], port).into()).await;
            let req = http::Request::get("/")
                .header("host", "example.com")
                .body(http_body_util::Full::new(bytes::Bytes::new()))
                .unwrap();
            let a = client.send(req).await;
            got.push(a.status.as_u16());
            retry_after.push(a.headers.contains_key("retry-after"));
        }
        println!("{who}: {got:?}");
        statuses.push((got, retry_after));
        if let Some(lb) = lb {
            lb.shutdown().await;
        }
        drop(keep);
        let _ = std::fs::remove_dir_all(dir);
    }
    assert_eq!(statuses[0].0, [200, 200, 200, 503, 503], "nginx");
    assert_eq!(statuses[1].0, [200, 200, 200, 429, 429], "switchyard");
    assert_eq!(statuses[1].1, [false, false, false, true, true]);
    let i = imported.unwrap();
    assert!(
        i.notes
            .iter()
            .any(|n| n.at.line == 11 && n.why.contains("429") && n.why.contains("nginx: 503")),
        "{:?}",
        i.notes
    );
}

/// `switchyard import FILE [-o OUT]`: exit code and standard error.
fn import_cli(dir: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("import")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `check`'s errors of an import name the file written (`-o`), or `<stdout>`; no
/// `imported.toml` that does not exist.
#[test]
fn import_errors_name_the_output_file() {
    let dir = common::temp_dir("import-name");
    // A backend with no server: its pool fails `check`.
    let cfg = "defaults\n    mode http\n\nfrontend web\n    bind 127.0.0.1:8080\n    default_backend empty\n\nbackend empty\n    balance roundrobin\n";
    std::fs::write(dir.join("haproxy.cfg"), cfg).unwrap();
    let (code, err) = import_cli(&dir, &["haproxy.cfg", "-o", "out.toml"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(!err.contains("imported.toml"), "{err}");
    assert!(
        err.contains("error: out.toml:") && err.contains("pool \"empty\" has no servers"),
        "{err}"
    );
    assert!(dir.join("out.toml").exists());
    let (code, err) = import_cli(&dir, &["haproxy.cfg"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("<stdout>:") && !err.contains("imported.toml"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// HAProxy's `listen stats` (`stats enable`, `stats uri`, no server) becomes neither a
/// listener nor a pool — it would fail `check` as a pool with no servers — and the report
/// points at `[admin]`.
#[test]
fn a_haproxy_stats_section_is_left_to_the_admin_listener() {
    let dir = common::temp_dir("import-stats");
    let cfg = "defaults\n    mode http\n\nlisten stats\n    bind 127.0.0.1:8404\n    stats enable\n    stats uri /stats\n    stats refresh 10s\n\nfrontend web\n    bind 127.0.0.1:8080\n    default_backend app\n\nbackend app\n    server a1 127.0.0.1:9001\n";
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, cfg).unwrap();
    let i = import_ok(&[&path]);
    assert_eq!((i.listeners, i.pools), (1, 1), "{}", i.toml);
    assert!(
        !i.toml.contains("name = \"stats\"") && !i.toml.contains("[pool.stats]"),
        "{}",
        i.toml
    );
    assert!(reported(&i, 4, "[admin]"), "{:#?}", i.notes);
    let (code, err) = import_cli(&dir, &["haproxy.cfg", "-o", "out.toml"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(err.contains("switchyard check: ok"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}

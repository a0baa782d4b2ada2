//! DNS discovery against a real DNS server: `dnsmasq` on 127.0.0.1, whose records the tests
//! change while Switchyard runs (a hosts file read again on SIGHUP; SRV records). Backends
//! listen on 127.0.0.1, .2, .3, .4 (one port), as the servers of one name do. Every wait has
//! a deadline; every load is a bounded count of requests.
//!
//! The time from a DNS change to the first request served by the new address is printed
//! ("time to traffic"): docs/operations.md quotes it.
mod common;
mod dns_support;
mod live_common;

use std::time::{Duration, Instant};

use common::*;
use dns_support::*;
use live_common::{ConfigFile, api, start_file};
use serde_json::Value;
use switchyard::demo::Backend;

/// A config with `[admin]`, one listener, and pool "app" asking `dns`.
fn config(dns: &Dns, servers: &str, extra: &str) -> String {
    format!(
        r#"shutdown_delay = "0s"

[admin]
listen = "127.0.0.1:0"

[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "app"

[pool.app]
resolver = "{}"
{extra}
servers = [ {servers} ]
"#,
        dns.resolver()
    )
}

/// `switchyard check -c FILE`: exit success, stdout, stderr.
fn check(file: &ConfigFile) -> (bool, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["check", "-c"])
        .arg(&file.path)
        .output()
        .expect("run switchyard check");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// The servers of pool `app` as the admin API shows them.
async fn api_servers(lb: &switchyard::runtime::Runtime) -> Vec<Value> {
    let a = api(
        lb.admin_addr().unwrap(),
        "GET",
        "/api/pools/app",
        None,
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    a.json["servers"].as_array().unwrap().clone()
}

/// The server of the running pool at `addr`.
fn running(
    lb: &switchyard::runtime::Runtime,
    addr: &str,
) -> std::sync::Arc<switchyard::upstream::Server> {
    let addr: std::net::SocketAddr = addr.parse().unwrap();
    lb.pool("app")
        .unwrap()
        .servers()
        .iter()
        .find(|s| s.addr == addr)
        .unwrap_or_else(|| panic!("no server {addr} in pool app"))
        .clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (dnsmasq): scripts/test runs it"]
async fn a_name_with_three_addresses_spreads_traffic_over_all_three() {
    let (port, _b) = backends_on_one_port(&[1, 2, 3], Duration::ZERO).await;
    let hosts = [
        "127.0.0.1 app.test",
        "127.0.0.2 app.test",
        "127.0.0.3 app.test",
    ];
    let dns = Dns::start("three", &hosts, &[], 2).await;
    // The issue's spelling.
    let text = config(
        &dns,
        &format!("{{ addr = \"app.test:{port}\", resolve = true }}"),
        "",
    );
    let file = ConfigFile::new("dns-three", &text);
    let (ok, out, err) = check(&file);
    assert!(ok, "{out}{err}");
    let said = format!(
        "pool \"app\": app.test:{port} (resolve = true, asked 127.0.0.1:{}) → 127.0.0.1:{port}, 127.0.0.2:{port}, 127.0.0.3:{port}; asked again every 2s (TTL 2s)",
        dns.port
    );
    assert!(
        out.contains(&said),
        "check says which name gave what:\n{out}"
    );
    assert!(
        out.contains("ok: 1 listener(s), 1 pool(s), 3 server(s)"),
        "{out}"
    );

    let lb = start_file(&file).await;
    let web = lb.local_addr("web").unwrap();
    let mut names = Vec::new();
    for _ in 0..6 {
        names.push(get(web, "/").await.server());
    }
    let spread: Vec<(String, usize)> = tally(names).into_iter().collect();
    assert_eq!(
        spread,
        [("s1".into(), 2), ("s2".into(), 2), ("s3".into(), 2)],
        "nginx gave 2/2/2"
    );
    // GET /api/pools: each server, with the name it came from.
    let servers = api_servers(&lb).await;
    let shown: Vec<(&str, &str)> = servers
        .iter()
        .map(|s| {
            (
                s["addr"].as_str().unwrap(),
                s["resolved_from"].as_str().unwrap_or("-"),
            )
        })
        .collect();
    let from = format!("app.test:{port}");
    let want: Vec<String> = (1..=3).map(|i| format!("127.0.0.{i}:{port}")).collect();
    assert_eq!(
        shown,
        want.iter()
            .map(|a| (a.as_str(), from.as_str()))
            .collect::<Vec<_>>()
    );

    // Without resolve (nginx's `server app.test:PORT;`): resolved once, the same three.
    let fixed = start_lb(&text.replace(", resolve = true", "")).await;
    let web = fixed.local_addr("web").unwrap();
    let mut names = Vec::new();
    for _ in 0..6 {
        names.push(get(web, "/").await.server());
    }
    assert_eq!(
        tally(names).values().copied().collect::<Vec<_>>(),
        [2, 2, 2]
    );
    fixed.shutdown().await;
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (dnsmasq): scripts/test runs it"]
async fn an_added_address_gets_traffic_after_its_ttl_and_a_removed_one_drains() {
    let (port, b) = backends_on_one_port(&[1, 2, 3, 4], Duration::ZERO).await;
    let dns = Dns::start(
        "change",
        &["127.0.0.1 app.test", "127.0.0.2 app.test"],
        &[],
        2,
    )
    .await;
    let text = config(
        &dns,
        &format!("{{ addr = \"app.test:{port}\", resolve = true }}"),
        "",
    );
    let file = ConfigFile::new("dns-change", &text);
    let lb = start_file(&file).await;
    let web = lb.local_addr("web").unwrap();
    let s1 = running(&lb, &format!("127.0.0.1:{port}"));
    // Two slow requests: round robin sends one to each server, so one runs on 127.0.0.2.
    let slow: Vec<_> = (0..2)
        .map(|_| tokio::spawn(async move { get(web, "/sleep/6000").await }))
        .collect();
    wait_until(
        Duration::from_secs(5),
        "a slow request runs on s2",
        || async { b[1].requests() == 1 && b[0].requests() == 1 },
    )
    .await;

    let addr = |i: u8| format!("127.0.0.{i}");
    // Three changes: 127.0.0.2 replaced by .3; .4 added; .2 back and .3 gone.
    let rounds: [(&[u8], u8); 3] = [(&[1, 3], 3), (&[1, 3, 4], 4), (&[1, 2, 4], 2)];
    let mut took = Vec::new();
    for (i, (now, new)) in rounds.iter().enumerate() {
        let lines: Vec<String> = now
            .iter()
            .map(|l| format!("{} app.test", addr(*l)))
            .collect();
        let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
        let want: Vec<String> = now.iter().map(|l| addr(*l)).collect();
        let want: Vec<&str> = want.iter().map(String::as_str).collect();
        dns.set_hosts(&lines, "app.test", &want).await;
        // dnsmasq answers the new records from here.
        let changed = Instant::now();
        let name = format!("s{new}");
        let mut seen = None;
        for _ in 0..3000 {
            let a = get(web, "/").await;
            assert_eq!(a.status, 200, "no request fails during a DNS change");
            if a.server() == name {
                seen = Some(changed.elapsed());
                break;
            }
            if changed.elapsed() > Duration::from_secs(20) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let t = seen.unwrap_or_else(|| panic!("{name} got no request within 20 s"));
        println!("time to traffic, change {}: {t:?} (TTL 2s)", i + 1);
        took.push(t);
        if i == 0 {
            // The same answer took 127.0.0.2 away: the request running there goes on.
            assert!(
                slow.iter().all(|h| !h.is_finished()),
                "the slow requests still run when their server leaves"
            );
            let before = b[1].requests();
            for _ in 0..10 {
                assert_ne!(get(web, "/").await.server(), "s2", "s2 left the pool");
            }
            assert_eq!(b[1].requests(), before, "no new request reached s2");
        }
    }
    for h in slow {
        let a = h.await.unwrap();
        assert_eq!(
            a.status, 200,
            "the in-flight request on the removed server finished"
        );
    }
    // 127.0.0.1 stayed through every change: the same server, its counters going on.
    let now = running(&lb, &format!("127.0.0.1:{port}"));
    assert_eq!(now.id(), s1.id(), "a server that stays keeps its state");
    assert!(now.requests() >= 4, "{}", now.requests());
    let max = took.iter().max().unwrap();
    println!("time to traffic over {} changes: max {max:?}", took.len());
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (dnsmasq): scripts/test runs it"]
async fn a_reload_keeps_the_resolved_servers_state_and_needs_no_dns_for_them() {
    let (port, b) = backends_on_one_port(&[1, 2], Duration::ZERO).await;
    let extra = Backend::start("s9", Duration::ZERO).await.unwrap();
    let mut dns = Dns::start(
        "reload",
        &["127.0.0.1 app.test", "127.0.0.2 app.test"],
        &[],
        2,
    )
    .await;
    let text = config(
        &dns,
        &format!("{{ addr = \"app.test:{port}\", resolve = true }}"),
        "",
    );
    let file = ConfigFile::new("dns-reload", &text);
    let lb = start_file(&file).await;
    let (web, admin) = (lb.local_addr("web").unwrap(), lb.admin_addr().unwrap());
    for _ in 0..4 {
        assert_eq!(get(web, "/").await.status, 200);
    }
    assert_eq!((b[0].requests(), b[1].requests()), (2, 2));
    // An operator's change to a server from DNS.
    let s2 = format!("127.0.0.2:{port}");
    let a = api(
        admin,
        "PUT",
        &format!("/api/pools/app/servers/{s2}"),
        Some(r#"{"weight": 3}"#),
        None,
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.text);
    let before: Vec<(u64, u64)> = lb
        .pool("app")
        .unwrap()
        .servers()
        .iter()
        .map(|s| (s.id(), s.requests()))
        .collect();

    // No DNS server any more: the names followed keep their answer; the reload adds a
    // server written with its address and waits on no DNS.
    dns.stop().await;
    let with_extra = text.replace(
        " resolve = true }",
        &format!(
            " resolve = true }}, {{ addr = \"{}\", name = \"s9\" }}",
            extra.addr
        ),
    );
    assert_ne!(with_extra, text);
    file.write(&with_extra);
    // Had it asked, no answer would have failed the reload.
    let a = api(admin, "POST", "/api/reload", None, None).await;
    assert_eq!(a.status, 200, "{}", a.text);
    assert!(
        a.text.contains("a server from DNS"),
        "the operator's weight is kept: {}",
        a.text
    );
    let pool = lb.pool("app").unwrap();
    let after: Vec<(u64, u64)> = pool.servers()[..2]
        .iter()
        .map(|s| (s.id(), s.requests()))
        .collect();
    assert_eq!(after, before, "the same servers, their counters kept");
    assert_eq!(pool.servers().len(), 3);
    let servers = api_servers(&lb).await;
    assert_eq!(servers[1]["weight"], 3);
    assert_eq!(servers[1]["resolved_from"], format!("app.test:{port}"));
    assert_eq!(servers[2]["resolved_from"], Value::Null);
    // Weights 1, 3, 1: exactly 2, 6, 2 of ten.
    let mut names = Vec::new();
    for _ in 0..10 {
        names.push(get(web, "/").await.server());
    }
    let spread: Vec<(String, usize)> = tally(names).into_iter().collect();
    assert_eq!(
        spread,
        [("s1".into(), 2), ("s2".into(), 6), ("s9".into(), 2)]
    );
    // A server from DNS is not removed over the API: DNS decides.
    let a = api(
        admin,
        "DELETE",
        &format!("/api/pools/app/servers/{s2}"),
        None,
        None,
    )
    .await;
    assert_eq!(a.status, 409, "{}", a.text);
    assert!(a.text.contains("comes from DNS"), "{}", a.text);
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (dnsmasq): scripts/test runs it"]
async fn srv_records_give_ports_and_weights_and_a_higher_priority_is_a_backup() {
    let b = backends(3).await;
    let p: Vec<u16> = b.iter().map(|b| b.addr.port()).collect();
    let srv = [
        format!("_http._tcp.app.test,t.test,{},0,10", p[0]),
        format!("_http._tcp.app.test,t.test,{},0,30", p[1]),
        format!("_http._tcp.app.test,t.test,{},20,10", p[2]),
    ];
    let dns = Dns::start("srv", &["127.0.0.1 t.test"], &srv, 2).await;
    let text = config(
        &dns,
        "{ addr = \"_http._tcp.app.test\", resolve = true }",
        "",
    );
    let file = ConfigFile::new("dns-srv", &text);
    let (ok, out, err) = check(&file);
    assert!(ok, "{out}{err}");
    // Addresses in order (backups last), each with its record's port and weight.
    let mut primaries = [(p[0], 10), (p[1], 30)];
    primaries.sort();
    let listed: Vec<String> = primaries
        .iter()
        .map(|(port, w)| format!("127.0.0.1:{port} weight {w}"))
        .chain([format!("127.0.0.1:{} weight 10 backup", p[2])])
        .collect();
    let said = format!(
        "_http._tcp.app.test (SRV, resolve = true, asked 127.0.0.1:{}) → {}",
        dns.port,
        listed.join(", ")
    );
    assert!(out.contains(&said), "{out}");

    let lb = start_file(&file).await;
    let (web, admin) = (lb.local_addr("web").unwrap(), lb.admin_addr().unwrap());
    let mut names = Vec::new();
    for _ in 0..8 {
        names.push(get(web, "/").await.server());
    }
    let spread: Vec<(String, usize)> = tally(names).into_iter().collect();
    assert_eq!(
        spread,
        [("s1".into(), 2), ("s2".into(), 6)],
        "weights 10 and 30, each on its own port; the priority-20 target waits"
    );
    // The primaries out: the higher-priority record serves.
    for port in &p[..2] {
        let a = api(
            admin,
            "PUT",
            &format!("/api/pools/app/servers/127.0.0.1:{port}"),
            Some(r#"{"state": "maint"}"#),
            None,
        )
        .await;
        assert_eq!(a.status, 200, "{}", a.text);
    }
    for _ in 0..3 {
        assert_eq!(get(web, "/").await.server(), "s3");
    }
    lb.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (dnsmasq): scripts/test runs it"]
async fn a_name_that_does_not_resolve_is_an_error_unless_the_pool_waits() {
    let (port, _b) = backends_on_one_port(&[1], Duration::ZERO).await;
    let dns = Dns::start("late", &["127.0.0.1 other.test"], &[], 1).await;
    let text = config(
        &dns,
        &format!("{{ addr = \"late.test:{port}\", resolve = true }}"),
        "",
    );
    let file = ConfigFile::new("dns-late", &text);
    let line = text.lines().position(|l| l.contains("late.test")).unwrap() + 1;
    let column = text.lines().nth(line - 1).unwrap().find("\"late").unwrap() + 1;
    let want = format!(
        "error: {}:{line}:{column}: server addr \"late.test:{port}\": the name \"late.test\" does not resolve (NXDOMAIN: no such name, asked 127.0.0.1:{})\n  help: check the name (dig @127.0.0.1 -p {} late.test A), or write an IP address; to start without it and wait for DNS, set init_addr = \"none\" in [pool.app]",
        file.path.display(),
        dns.port,
        dns.port
    );
    let (ok, out, err) = check(&file);
    assert!(!ok, "{out}");
    assert!(err.contains(&want), "{err}");
    // `run` stops at the same error, before it listens.
    let mut run = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["run", "-c"])
        .arg(&file.path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = run.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = run.kill();
            panic!("run went on with a name that does not resolve");
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut run.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success());
    assert!(err.contains(&want), "{err}");

    // With init_addr = "none" the pool starts empty and waits.
    let waiting = config(
        &dns,
        &format!("{{ addr = \"late.test:{port}\", resolve = true }}"),
        "init_addr = \"none\"",
    );
    let file = ConfigFile::new("dns-late-none", &waiting);
    let (ok, out, err) = check(&file);
    assert!(ok, "{out}{err}");
    assert!(
        out.contains("→ no address (NXDOMAIN: no such name); init_addr = \"none\": the pool starts without it"),
        "{out}"
    );
    let lb = start_file(&file).await;
    let web = lb.local_addr("web").unwrap();
    assert_eq!(get(web, "/").await.status, 503, "no server yet");
    dns.set_hosts(
        &["127.0.0.1 other.test", "127.0.0.1 late.test"],
        "late.test",
        &["127.0.0.1"],
    )
    .await;
    let added = Instant::now();
    wait_until(Duration::from_secs(30), "late.test serves", || async {
        get(web, "/").await.status == 200
    })
    .await;
    println!(
        "time to traffic for a name that appeared: {:?} (asked again 1, 2, 4, 8 s after a miss)",
        added.elapsed()
    );
    assert_eq!(get(web, "/").await.server(), "s1");
    lb.shutdown().await;
}

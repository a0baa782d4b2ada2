//! A real DNS server for the discovery tests: `dnsmasq` on 127.0.0.1 and a free port,
//! answering for `*.test` from a hosts file the test rewrites (dnsmasq reads it again on
//! SIGHUP) and from `srv-host` lines, with the TTL the test chooses. And demo backends on
//! several loopback addresses sharing one port, as the servers of one name do.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use switchyard::demo::Backend;
use tokio::io::AsyncReadExt;
use tokio::process::{Child, Command};

/// A running `dnsmasq`; killed on drop.
pub struct Dns {
    pub port: u16,
    pub dir: PathBuf,
    ttl: u32,
    child: Option<Child>,
}

impl Dns {
    /// Start with `hosts` (lines of `ADDRESS NAME`), `srv` (dnsmasq's `srv-host=` values:
    /// `_http._tcp.app.test,t1.test,9001,0,10`), and `ttl` seconds on every answer.
    pub async fn start(tag: &str, hosts: &[&str], srv: &[String], ttl: u32) -> Dns {
        let dir = std::env::temp_dir().join(format!("switchyard-dns-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut dns = Dns {
            port: 0,
            dir,
            ttl,
            child: None,
        };
        dns.write_hosts(hosts);
        dns.write_srv(srv);
        dns.spawn().await;
        dns
    }

    fn write_hosts(&self, hosts: &[&str]) {
        let mut text = hosts.join("\n");
        text.push('\n');
        std::fs::write(self.dir.join("hosts"), text).unwrap();
    }

    fn write_srv(&self, srv: &[String]) {
        let text: String = srv.iter().map(|s| format!("srv-host={s}\n")).collect();
        std::fs::write(self.dir.join("srv.conf"), text).unwrap();
    }

    /// Start dnsmasq on a free port. It binds UDP and TCP; a port free for UDP a moment ago
    /// may be taken for TCP: then it exits, and another is tried.
    async fn spawn(&mut self) {
        let mut last = String::new();
        for _ in 0..10 {
            let port = free_udp_port();
            let mut child = Command::new("dnsmasq")
                .args([
                    "--no-daemon",
                    "--no-resolv",
                    "--no-hosts",
                    "--bind-interfaces",
                    "--listen-address=127.0.0.1",
                    &format!("--port={port}"),
                    // Names under .test are ours: an unknown one is NXDOMAIN, not REFUSED.
                    "--local=/test/",
                    &format!("--local-ttl={}", self.ttl),
                    &format!("--addn-hosts={}", self.dir.join("hosts").display()),
                    &format!("--conf-file={}", self.dir.join("srv.conf").display()),
                    "--pid-file=",
                    "--user=",
                    "--group=",
                ])
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .expect("cannot run dnsmasq; install it: apt-get install dnsmasq-base (scripts/test does)");
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    let mut err = String::new();
                    if let Some(mut e) = child.stderr.take() {
                        let _ = e.read_to_string(&mut err).await;
                    }
                    last = format!("dnsmasq on {port} exited ({status}): {err}");
                    break;
                }
                // Ready when it answers (NXDOMAIN is an answer).
                if dig(port, "ready.test", "A").await.is_some() {
                    self.port = port;
                    self.child = Some(child);
                    return;
                }
                assert!(
                    Instant::now() < deadline,
                    "dnsmasq on {port} did not answer"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("dnsmasq did not start: {last}");
    }

    /// `resolver = "..."` for a pool.
    pub fn resolver(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Replace the hosts file and have dnsmasq read it (SIGHUP); returns once dnsmasq
    /// answers `name` with exactly `expect` (sorted addresses).
    pub async fn set_hosts(&self, hosts: &[&str], name: &str, expect: &[&str]) {
        self.write_hosts(hosts);
        let pid = self
            .child
            .as_ref()
            .and_then(Child::id)
            .expect("dnsmasq runs");
        let ok = std::process::Command::new("kill")
            .args(["-HUP", &pid.to_string()])
            .status()
            .unwrap()
            .success();
        assert!(ok, "SIGHUP to dnsmasq");
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut want: Vec<String> = expect.iter().map(|s| s.to_string()).collect();
        want.sort();
        loop {
            let mut got = dig_all(self.port, name, "A").await;
            got.sort();
            if got == want {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "dnsmasq answers {got:?} for {name}, not {want:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stop dnsmasq (no DNS server answers on its port any more).
    pub async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill().await;
        }
    }
}

impl Drop for Dns {
    fn drop(&mut self) {
        if let Some(c) = &mut self.child {
            let _ = c.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

use crate::common::free_udp_port;

/// `dig @127.0.0.1 -p PORT NAME TYPE +short`: whether an answer came (of any status).
pub async fn dig(port: u16, name: &str, kind: &str) -> Option<String> {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), name, kind])
        .args(["+tries=1", "+time=1"])
        .output()
        .await
        .expect("cannot run dig; install it: apt-get install dnsutils (scripts/test does)");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    (out.status.success() && text.contains("status:")).then_some(text)
}

/// Every answer line of `dig +short`.
pub async fn dig_all(port: u16, name: &str, kind: &str) -> Vec<String> {
    let out = Command::new("dig")
        .args(["@127.0.0.1", "-p", &port.to_string(), name, kind])
        .args(["+short", "+tries=1", "+time=1"])
        .output()
        .await
        .expect("cannot run dig");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with(';'))
        .map(String::from)
        .collect()
}

/// Demo backends named `s{last}` on `127.0.0.{last}` for each of `lasts`, all on one port
/// (the servers of one DNS name share the port written after it). The port is chosen by
/// the kernel for the first; if another address has it taken, all start again on another.
pub async fn backends_on_one_port(lasts: &[u8], delay: Duration) -> (u16, Vec<Backend>) {
    for _ in 0..20 {
        let first = Backend::start_on(
            std::net::SocketAddr::from(([127, 0, 0, lasts[0]], 0)),
            &format!("s{}", lasts[0]),
            delay,
        )
        .await
        .expect("start backend");
        let port = first.addr.port();
        let mut all = vec![first];
        for &l in &lasts[1..] {
            match Backend::start_on(
                std::net::SocketAddr::from(([127, 0, 0, l], port)),
                &format!("s{l}"),
                delay,
            )
            .await
            {
                Ok(b) => all.push(b),
                Err(_) => break,
            }
        }
        if all.len() == lasts.len() {
            return (port, all);
        }
    }
    panic!("no port free on every address of {lasts:?}");
}

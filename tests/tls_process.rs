//! The `switchyard` process with an https listener, as an operator meets it: what a SIGHUP
//! says of certificates.

mod common;
mod tls_support;

use std::time::Duration;

use common::*;
use tls_support::{Pki, tls_entries};

fn https_config(
    b: &[switchyard::demo::Backend],
    pairs: &[(std::path::PathBuf, std::path::PathBuf)],
) -> String {
    format!(
        "shutdown_delay = \"0s\"\n[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\nprotocol = \"https\"\npool = \"p\"\n{}\n[pool.p]\nservers = {}\n",
        tls_entries(pairs),
        servers_toml(b, &[])
    )
}

/// nginx reloads certificates with its configuration: a refused reload is not followed by
/// "certificates reloaded" for the same files, nor is an accepted one whose files did not
/// change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sighup_reports_certificates_only_when_they_changed() {
    let pki = Pki::new();
    let pair = pki.leaf("shop", &["shop.test"]);
    let b = backends(1).await;
    let good = https_config(&b, std::slice::from_ref(&pair));
    let lb = LbProcess::start_logging(&good, "info");
    // After each SIGHUP, a SIGUSR1: its line says the SIGHUP was handled whole.
    let lb = &lb;
    let hup = |n: usize| async move {
        signal(&lb.child, "HUP");
        signal(&lb.child, "USR1");
        wait_for_count(lb, "the access log opened again", n).await;
    };
    std::fs::write(
        lb.config_path(),
        good.replace("[pool.p]", "[pool.p]\nbogus = 1"),
    )
    .unwrap();
    hup(1).await;
    assert_eq!(lb.logged("reload failed").len(), 1);
    std::fs::write(lb.config_path(), &good).unwrap();
    hup(2).await;
    for quiet in ["certificates reloaded", "took new certificates"] {
        assert_eq!(
            lb.logged(quiet),
            Vec::<String>::new(),
            "the same files are no news; the log:\n{}",
            lb.log.lock().unwrap().join("\n")
        );
    }
}

async fn wait_for_count(lb: &LbProcess, needle: &str, n: usize) {
    wait_until(Duration::from_secs(5), needle, || async {
        lb.logged(needle).len() >= n
    })
    .await;
}

/// Run `switchyard explain ARGS`: (exit code, stdout, stderr).
fn explain(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .arg("explain")
        .args(args)
        .output()
        .expect("run switchyard explain");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// `explain 'GET https://shop.test/login'` with an http and an https listener: the https
/// one on the URL's port (443 when it names none) is the one, as a client would reach it,
/// and the request is echoed with its scheme.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_picks_the_listener_by_the_urls_scheme_and_port() {
    let pki = Pki::new();
    let pair = pki.leaf("shop", &["shop.test"]);
    let b = backends(1).await;
    let config = |https: &str| {
        format!(
            "[[listener]]\nname = \"plain\"\nlisten = \"127.0.0.1:8080\"\npool = \"p\"\n\
             [[listener]]\nname = \"shop\"\nlisten = \"{https}\"\nprotocol = \"https\"\npool = \"p\"\n{}\n\
             [pool.p]\nservers = {}\n",
            tls_entries(std::slice::from_ref(&pair)),
            servers_toml(&b, &[])
        )
    };
    let file = pki.dir.join("sy.toml");
    for (https, url, listener) in [
        ("127.0.0.1:443", "https://shop.test/login", "shop"),
        ("127.0.0.1:38631", "https://shop.test:38631/login", "shop"),
        ("127.0.0.1:38631", "https://shop.test/login", "shop"),
        ("127.0.0.1:38631", "http://shop.test:8080/login", "plain"),
        ("127.0.0.2:8080", "https://shop.test:8080/login", "shop"),
        ("127.0.0.2:8080", "http://shop.test:8080/login", "plain"),
    ] {
        std::fs::write(&file, config(https)).unwrap();
        let (code, out, err) = explain(&["-c", file.to_str().unwrap(), &format!("GET {url}")]);
        assert_eq!(code, 0, "{https} {url}: {err}{out}");
        let first = out.lines().next().unwrap_or_default();
        assert!(
            first.starts_with(&format!("request   GET {url} "))
                && first.ends_with(&format!("listener {listener:?}")),
            "{https} {url} → {listener}: {out}"
        );
    }
}

/// The lines of `/metrics` on `admin` that start with `prefix`.
async fn metric_lines(admin: std::net::SocketAddr, prefix: &str) -> Vec<String> {
    let page = get(admin, "/metrics").await.text();
    page.lines()
        .filter(|l| l.starts_with(prefix))
        .map(str::to_string)
        .collect()
}

/// `plan` warns of a certificate about to expire; `/metrics` says when each one served
/// expires, so that an alert can too, and follows the files when they are renewed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_say_when_each_certificate_expires_and_follow_a_renewal() {
    let pki = Pki::new();
    let (shop, shop_at) = pki.leaf_until("shop", &["shop.test"], (2031, 3, 1));
    let (api, api_at) = pki.leaf_until("api", &["api.test", "www.api.test"], (2030, 1, 12));
    let b = backends(1).await;
    let config = format!(
        "{}[admin]\nlisten = \"127.0.0.1:0\"\n",
        https_config(&b, &[shop.clone(), api])
    );
    let lb = start_lb(&config).await;
    let admin = lb.admin_addr().unwrap();
    let name = "switchyard_tls_certificate_not_after_seconds";
    let mut lines = metric_lines(admin, name).await;
    lines.sort();
    assert_eq!(
        lines,
        [
            format!("{name}{{listener=\"web\",cert=\"1\",name=\"shop.test\"}} {shop_at}"),
            format!("{name}{{listener=\"web\",cert=\"2\",name=\"api.test\"}} {api_at}"),
        ]
    );
    // Renewed in place: the watcher loads the new pair, and the gauge follows.
    let (_, renewed_at) = pki.leaf_until("shop", &["shop.test"], (2032, 6, 30));
    let want = format!("{name}{{listener=\"web\",cert=\"1\",name=\"shop.test\"}} {renewed_at}");
    wait_until(Duration::from_secs(10), "the renewed expiry", || async {
        metric_lines(admin, name).await.contains(&want)
    })
    .await;
    lb.shutdown().await;
}

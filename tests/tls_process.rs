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

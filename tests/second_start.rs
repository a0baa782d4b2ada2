//! A second Switchyard started by mistake on the ports of a running one: refused, loudly,
//! naming the address (as nginx's "bind() to 0.0.0.0:80 failed (98: Address already in
//! use)"), while the first goes on running, ready and serving; `--share-ports` shares on purpose.
//! (A restart during the old process's `shutdown_delay` and `run --upgrade` still share
//! without asking: tests/upgrade.rs.)
mod common;
mod live_common;

use std::time::Duration;

use common::*;
use live_common::*;
use switchyard::demo::Backend;

fn config(port: u16, admin_port: u16, b: &[Backend]) -> String {
    format!(
        "shutdown_delay = \"0s\"\n[admin]\nlisten = \"127.0.0.1:{admin_port}\"\n{}",
        simple_config("round_robin", b, &[]).replace("127.0.0.1:0", &format!("127.0.0.1:{port}"))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_switchyard_on_the_same_port_refuses_to_start_and_says_why() {
    let b = backends(1).await;
    let (port, admin_port) = (free_port(), free_port());
    let file = ConfigFile::new("second", &config(port, admin_port, &b));
    let path = file.path.to_str().unwrap().to_string();
    let mut first = Proc::start(&["run", "-c", &path], &[]);
    assert_eq!(first.listener("web").await.port(), port);
    let admin = first.admin().await;

    let mut second = Proc::start(&["run", "-c", &path], &[]);
    let status = second
        .exited(Duration::from_secs(15))
        .await
        .expect("the second process stops by itself");
    assert!(!status.success(), "{status}");
    let log = second.log_text();
    assert!(
        log.contains(&format!(
            "bind() to 127.0.0.1:{port} failed (98: Address already in use)"
        )),
        "{log}"
    );
    assert!(
        log.contains("switchyard.toml:"),
        "names where the address is written: {log}"
    );
    assert!(
        log.contains("--share-ports") && log.contains("--upgrade"),
        "{log}"
    );
    assert!(!log.contains("listening on"), "nothing was bound: {log}");

    // The refused start took nothing of the first: it still runs, is still ready (not
    // marked draining), and answers on its port.
    assert!(first.running(), "the first process goes on");
    let ready = get(admin, "/health/ready").await;
    assert_eq!(ready.status, 200, "{}", ready.text());
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    assert_eq!(get(addr, "/").await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn share_ports_starts_a_second_process_on_purpose() {
    let b = backends(1).await;
    let (port, admin_port) = (free_port(), free_port());
    let file = ConfigFile::new("shared", &config(port, admin_port, &b));
    let path = file.path.to_str().unwrap().to_string();
    let first = Proc::start(&["run", "-c", &path], &[]);
    assert_eq!(first.listener("web").await.port(), port);
    let mut second = Proc::start(&["run", "--share-ports", "-c", &path], &[]);
    assert_eq!(second.listener("web").await.port(), port);
    second
        .line("admin endpoints on", Duration::from_secs(10))
        .await;
    assert!(second.running());
}

/// `switchyard demo` (the README's first command) started twice on its port: the second is
/// refused too, instead of taking half of the first one's connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_demo_on_the_same_port_is_refused() {
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let first = Proc::start(
        &["demo", "--listen", &listen, "--admin", "127.0.0.1:0"],
        &[],
    );
    first.line("listening on", Duration::from_secs(10)).await;
    let mut second = Proc::start(
        &["demo", "--listen", &listen, "--admin", "127.0.0.1:0"],
        &[],
    );
    let status = second
        .exited(Duration::from_secs(15))
        .await
        .expect("the second demo stops by itself");
    assert!(!status.success(), "{status}");
    let log = second.log_text();
    assert!(
        log.contains(&format!(
            "bind() to {listen} failed (98: Address already in use)"
        )),
        "{log}"
    );
}

//! The dashboard (`GET /` on the admin listener) in a real browser: headless Chromium from
//! Debian, driven over WebDriver, against a running Switchyard carrying traffic. The page
//! must list the servers, show their numbers moving, refuse a drain until the admin token is
//! entered, then drain the server through the admin API — and the balancer must stop
//! sending it new requests. A screenshot is saved beside the test binaries.
mod common;
mod live_common;
mod webdriver;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::*;
use live_common::{ConfigFile, start_file};
use webdriver::{Driver, Session};

const TOKEN: &str = "dashboard-test-token-5f1c0a";

/// Poll `cond` every 200 ms until it holds, or panic with `what` and the last value seen.
async fn eventually<F, Fut>(limit: Duration, what: &str, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let deadline = Instant::now() + limit;
    loop {
        match cond().await {
            Ok(()) => return,
            Err(seen) if Instant::now() > deadline => {
                panic!("{what} not within {limit:?}; last seen: {seen}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

/// A number as the page writes it (`1,234`), or None for `–`.
fn number(text: &str) -> Option<f64> {
    text.replace(',', "").trim().parse().ok()
}

async fn cell(s: &Session, server: &str, class: &str) -> String {
    s.text(&format!("tr[data-server=\"p/{server}\"] .{class}"))
        .await
        .unwrap_or_default()
}

/// Requests to `web` over fresh connections until `stop` or 60 s or 50,000 requests.
fn load(web: SocketAddr, stop: Arc<AtomicBool>) -> tokio::task::JoinHandle<usize> {
    tokio::spawn(async move {
        let until = Instant::now() + Duration::from_secs(60);
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) && Instant::now() < until && n < 50_000 {
            let a = get(web, "/").await;
            assert_eq!(a.status, 200);
            n += 1;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        n
    })
}

async fn status(admin: SocketAddr) -> serde_json::Value {
    serde_json::from_str(&get(admin, "/status").await.text()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (chromium, chromedriver): scripts/test runs it"]
async fn the_dashboard_shows_the_servers_moves_and_drains_in_a_real_browser() {
    let b = backends(3).await;
    let file = ConfigFile::new(
        "dashboard",
        &format!(
            r#"
[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "p"

[admin]
listen = "127.0.0.1:0"
token = "{TOKEN}"

[pool.p]
servers = {}
[pool.p.health]
type = "http"
path = "/health"
interval = "300ms"
"#,
            servers_toml(&b, &[])
        ),
    );
    let lb = start_file(&file).await;
    let admin = lb.admin_addr().unwrap();
    let web = lb.local_addr("web").unwrap();

    let driver = Driver::start().await;
    let s = driver.session(1400, 1100).await;
    s.goto(&format!("http://{admin}/")).await;

    // The servers, with their state and their checks.
    eventually(
        Duration::from_secs(20),
        "the three servers listed, healthy",
        || async {
            let mut seen = String::new();
            for n in ["s1", "s2", "s3"] {
                let h = cell(&s, n, "health").await;
                seen += &format!("{n}={h} ");
                if h != "healthy" {
                    return Err(seen);
                }
            }
            Ok(())
        },
    )
    .await;
    eventually(Duration::from_secs(10), "a passed check shown", || async {
        let c = cell(&s, "s1", "lastcheck").await;
        if c.contains("status 200") {
            Ok(())
        } else {
            Err(c)
        }
    })
    .await;
    assert_eq!(cell(&s, "s1", "admin").await, "ready");
    assert_eq!(cell(&s, "s2", "weight").await, "1");

    // The numbers move while traffic flows.
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = load(web, stop.clone());
    let before = number(&cell(&s, "s1", "requests").await).unwrap_or(0.0);
    eventually(
        Duration::from_secs(20),
        "s1's request count to grow on the page",
        || async {
            let now = cell(&s, "s1", "requests").await;
            match number(&now) {
                Some(n) if n >= before + 20.0 => Ok(()),
                _ => Err(now),
            }
        },
    )
    .await;
    eventually(
        Duration::from_secs(15),
        "requests per second above 0",
        || async {
            let rps = s.text("#rps").await.unwrap_or_default();
            match number(rps.trim_end_matches('k')) {
                Some(n) if n > 0.0 => Ok(()),
                _ => Err(rps),
            }
        },
    )
    .await;
    let chart = s
        .run("return document.querySelector('[data-pool=\"p\"] canvas').toDataURL().length")
        .await;
    assert!(
        chart.as_u64().unwrap() > 2000,
        "the traffic chart drew something: {chart}"
    );

    // Drain without the token: the API refuses and the page says why.
    let drain = "tr[data-server=\"p/s1\"] button[data-action=\"drain\"]";
    s.click(drain).await;
    eventually(
        Duration::from_secs(10),
        "the page to ask for the token",
        || async {
            let m = s.text("#message").await.unwrap_or_default();
            if m.contains("token") { Ok(()) } else { Err(m) }
        },
    )
    .await;
    assert_eq!(
        status(admin).await["pools"][0]["servers"][0]["admin_state"],
        "ready"
    );

    // With the token: s1 drains, on the page, in the API, and in the traffic.
    s.type_into("#token", TOKEN).await;
    s.click(drain).await;
    eventually(Duration::from_secs(10), "s1 shown draining", || async {
        let a = cell(&s, "s1", "admin").await;
        let m = s.text("#message").await.unwrap_or_default();
        if a == "drain" {
            Ok(())
        } else {
            Err(format!("{a}; the page says: {m}"))
        }
    })
    .await;
    let st = status(admin).await;
    assert_eq!(st["pools"][0]["servers"][0]["admin_state"], "drain");
    assert_eq!(st["pools"][0]["servers"][1]["admin_state"], "ready");
    let drained_at = st["pools"][0]["servers"][0]["requests"].as_u64().unwrap();
    eventually(
        Duration::from_secs(15),
        "s1's rate to fall to 0 while s2's goes on",
        || async {
            let (r1, r2) = (cell(&s, "s1", "srps").await, cell(&s, "s2", "srps").await);
            match (number(&r1), number(&r2)) {
                (Some(a), Some(b)) if a == 0.0 && b > 0.0 => Ok(()),
                _ => Err(format!("s1 {r1}, s2 {r2}")),
            }
        },
    )
    .await;
    let st = status(admin).await;
    assert_eq!(
        st["pools"][0]["servers"][0]["requests"].as_u64().unwrap(),
        drained_at,
        "no new request went to the draining server"
    );

    let shot = concat!(env!("CARGO_TARGET_TMPDIR"), "/dashboard.png");
    let png = s.screenshot(std::path::Path::new(shot)).await;
    assert!(
        png.starts_with(b"\x89PNG") && png.len() > 20_000,
        "{} bytes",
        png.len()
    );
    eprintln!("dashboard screenshot: {shot}");

    // And back: ready takes requests again.
    s.click("tr[data-server=\"p/s1\"] button[data-action=\"ready\"]")
        .await;
    eventually(Duration::from_secs(10), "s1 ready again", || async {
        let a = cell(&s, "s1", "admin").await;
        if a == "ready" { Ok(()) } else { Err(a) }
    })
    .await;

    stop.store(true, Ordering::Relaxed);
    let sent = traffic.await.unwrap();
    assert!(sent > 20, "{sent} requests");
    s.quit().await;
    drop(driver);
    lb.shutdown().await;
}

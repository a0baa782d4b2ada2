//! Sticky sessions end to end with a real client keeping its cookies: Switchyard's own
//! cookie, the application's JSESSIONID, the client address; and what happens when the
//! pinned server dies.
mod common;

use std::time::Duration;

use common::*;
use switchyard::runtime::Runtime;

fn config(b: &[switchyard::demo::Backend], sticky: &str) -> String {
    format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nservers = {}\n[pool.p.sticky]\n{sticky}\n",
        servers_toml(b, &[])
    )
}

fn set_cookie(a: &Answer) -> Option<String> {
    a.headers
        .get("set-cookie")
        .map(|v| v.to_str().unwrap().to_string())
}

/// `NAME=VALUE` of a Set-Cookie line.
fn pair(set_cookie: &str) -> String {
    set_cookie.split(';').next().unwrap().trim().to_string()
}

fn broken(lb: &Runtime) -> u64 {
    lb.upstream("p").unwrap().sticky().unwrap().broken()
}

#[tokio::test]
async fn cookie_pins_twenty_requests_and_without_it_they_spread() {
    let b = backends(3).await;
    let lb = start_lb(&config(
        &b,
        "mode = \"cookie\"\nname = \"SRV\"\nttl = \"1h\"",
    ))
    .await;
    let addr = lb.local_addr("web").unwrap();

    let first = get(addr, "/").await;
    let sc = set_cookie(&first).expect("first answer sets the cookie");
    let attrs: Vec<&str> = sc.split(';').map(str::trim).collect();
    assert!(attrs[0].starts_with("SRV="), "{sc}");
    for a in ["Path=/", "HttpOnly", "SameSite=Lax", "Max-Age=3600"] {
        assert!(attrs.contains(&a), "{a} missing in {sc}");
    }
    assert!(!attrs.contains(&"Secure"), "plain http: no Secure ({sc})");
    let value = attrs[0].trim_start_matches("SRV=");
    // Opaque: neither the address, the port nor the name of the server.
    let pinned = first.server();
    let backend = b.iter().find(|x| x.name() == pinned).unwrap();
    for leak in [
        backend.addr.to_string(),
        backend.addr.port().to_string(),
        pinned.clone(),
        "127.0.0.1".into(),
    ] {
        assert!(
            !value.contains(&leak),
            "cookie value {value:?} reveals {leak:?}"
        );
    }

    let cookie = attrs[0].to_string();
    for _ in 0..20 {
        let a = get_with(addr, "/", &[("cookie", &format!("theme=dark; {cookie}"))]).await;
        assert_eq!((a.status.as_u16(), a.server()), (200, pinned.clone()));
        assert!(set_cookie(&a).is_none(), "a good cookie is not set again");
    }

    let mut names = Vec::new();
    for _ in 0..21 {
        names.push(get(addr, "/").await.server());
    }
    let t = tally(names);
    assert_eq!(t.len(), 3, "{t:?}");
    assert!(t.values().all(|&n| n == 7), "{t:?}");
    assert_eq!(broken(&lb), 0);
}

#[tokio::test]
async fn a_stopped_pinned_server_moves_the_client_without_an_error() {
    let b = backends(3).await;
    let lb = start_lb(&config(&b, "mode = \"cookie\"")).await;
    let addr = lb.local_addr("web").unwrap();
    let first = get(addr, "/").await;
    let cookie = pair(&set_cookie(&first).unwrap());
    let pinned = first.server();
    b.iter().find(|x| x.name() == pinned).unwrap().stop();

    let moved = get_with(addr, "/", &[("cookie", &cookie)]).await;
    assert_eq!(moved.status, 200, "{}", moved.text());
    assert_ne!(moved.server(), pinned);
    let new_cookie = pair(&set_cookie(&moved).expect("re-stuck with a new cookie"));
    assert_ne!(new_cookie, cookie);
    assert_eq!(broken(&lb), 1);
    for _ in 0..10 {
        let a = get_with(addr, "/", &[("cookie", &new_cookie)]).await;
        assert_eq!((a.status.as_u16(), a.server()), (200, moved.server()));
    }
    // The old cookie never reaches the dead server again (passive checks took it out).
    let a = get_with(addr, "/", &[("cookie", &cookie)]).await;
    assert_eq!(a.status, 200);
    assert_ne!(a.server(), pinned);
}

#[tokio::test]
async fn an_app_session_cookie_pins_the_next_requests() {
    let b = backends(3).await;
    let lb = start_lb(&config(
        &b,
        "mode = \"app_cookie\"\nname = \"JSESSIONID\"\nttl = \"30m\"",
    ))
    .await;
    let addr = lb.local_addr("web").unwrap();
    // Warm round robin so the login does not land on s1 by chance alone.
    get(addr, "/").await;
    let login = get(addr, "/login").await;
    let server = login.server();
    let sc = set_cookie(&login).expect("the application's cookie passes through");
    let cookie = pair(&sc);
    assert_eq!(cookie, format!("JSESSIONID={server}-1"));
    for _ in 0..20 {
        let a = get_with(addr, "/", &[("cookie", &cookie)]).await;
        assert_eq!((a.status.as_u16(), a.server()), (200, server.clone()));
    }
    // A session the table does not hold is balanced once, then pinned to the server that
    // served it (HAProxy's `stick store-request`).
    let unknown = [("cookie", "JSESSIONID=never-issued")];
    let first = get_with(addr, "/", &unknown).await.server();
    for _ in 0..6 {
        assert_eq!(get_with(addr, "/", &unknown).await.server(), first);
    }
    assert_eq!(lb.upstream("p").unwrap().sticky().unwrap().table_len(), 2);
    assert_eq!(broken(&lb), 0, "a table miss is not a broken session");

    // The pinned server dies: the session moves once, then stays on the new server.
    b.iter().find(|x| x.name() == server).unwrap().stop();
    let moved = get_with(addr, "/", &[("cookie", &cookie)]).await;
    assert_eq!(moved.status, 200);
    assert_ne!(moved.server(), server);
    for _ in 0..5 {
        let a = get_with(addr, "/", &[("cookie", &cookie)]).await;
        assert_eq!((a.status.as_u16(), a.server()), (200, moved.server()));
    }
    assert_eq!(broken(&lb), 1);
}

/// After a restart the table is empty; the sessions the application issued before it pin
/// again from their first request on, without the application setting a new cookie.
#[tokio::test]
async fn app_sessions_pin_again_after_a_restart() {
    let b = backends(3).await;
    let cfg = config(
        &b,
        "mode = \"app_cookie\"\nname = \"JSESSIONID\"\nttl = \"30m\"",
    );
    let lb = start_lb(&cfg).await;
    let addr = lb.local_addr("web").unwrap();
    let cookies: Vec<String> = {
        let mut v = Vec::new();
        for _ in 0..3 {
            v.push(pair(&set_cookie(&get(addr, "/login").await).unwrap()));
        }
        v
    };
    lb.shutdown().await;

    let lb = start_lb(&cfg).await;
    let addr = lb.local_addr("web").unwrap();
    assert_eq!(lb.upstream("p").unwrap().sticky().unwrap().table_len(), 0);
    for cookie in &cookies {
        let first = get_with(addr, "/", &[("cookie", cookie)]).await;
        assert_eq!(first.status, 200);
        assert!(set_cookie(&first).is_none(), "no new cookie from the app");
        // Round robin over three servers would spread these; the session holds them.
        for _ in 0..6 {
            let a = get_with(addr, "/", &[("cookie", cookie)]).await;
            assert_eq!((a.status.as_u16(), a.server()), (200, first.server()));
        }
    }
    assert_eq!(lb.upstream("p").unwrap().sticky().unwrap().table_len(), 3);
}

/// A client stuck to a backup while the primary was down goes back to the primary once it
/// recovers, and stays there (a new cookie).
#[tokio::test]
async fn a_client_pinned_to_a_backup_returns_to_a_recovered_primary() {
    let b = backends(2).await;
    let toml = format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nservers = [{{ addr = \"{}\", name = \"s1\" }}, {{ addr = \"{}\", name = \"s2\", backup = true }}]\n[pool.p.health]\ntype = \"http\"\npath = \"/health\"\ninterval = \"250ms\"\ntimeout = \"250ms\"\nrise = 1\nfall = 2\n[pool.p.sticky]\nmode = \"cookie\"\n",
        b[0].addr, b[1].addr
    );
    let lb = start_lb(&toml).await;
    let addr = lb.local_addr("web").unwrap();
    let pool = lb.pool("p").unwrap();
    let primary = pool.servers()[0].clone();

    b[0].set_healthy(false);
    wait_until(Duration::from_secs(5), "s1 out", || async {
        !primary.is_available()
    })
    .await;
    let on_backup = get(addr, "/").await;
    assert_eq!(on_backup.server(), "s2");
    let backup_cookie = pair(&set_cookie(&on_backup).unwrap());
    for _ in 0..3 {
        let a = get_with(addr, "/", &[("cookie", &backup_cookie)]).await;
        assert_eq!(a.server(), "s2");
    }

    b[0].set_healthy(true);
    wait_until(Duration::from_secs(5), "s1 back", || async {
        primary.is_available()
    })
    .await;
    let back = get_with(addr, "/", &[("cookie", &backup_cookie)]).await;
    assert_eq!(
        (back.status.as_u16(), back.server()),
        (200, "s1".to_string())
    );
    let primary_cookie = pair(&set_cookie(&back).expect("re-stuck to the primary"));
    assert_ne!(primary_cookie, backup_cookie);
    for _ in 0..5 {
        let a = get_with(addr, "/", &[("cookie", &primary_cookie)]).await;
        assert_eq!(a.server(), "s1");
        let a = get_with(addr, "/", &[("cookie", &backup_cookie)]).await;
        assert_eq!(a.server(), "s1", "the old backup cookie no longer holds");
    }
}

#[tokio::test]
async fn source_ip_sticks_one_client_to_one_server() {
    let b = backends(3).await;
    let lb = start_lb(&config(&b, "mode = \"source_ip\"\nttl = \"10m\"")).await;
    let addr = lb.local_addr("web").unwrap();
    let mut names = Vec::new();
    for _ in 0..20 {
        // A new connection each time: the mapping is per address, not per connection.
        names.push(get(addr, "/").await.server());
    }
    let t = tally(names.clone());
    assert_eq!(t.len(), 1, "{t:?}");
    let pinned = names[0].clone();
    assert_eq!(lb.upstream("p").unwrap().sticky().unwrap().table_len(), 1);

    b.iter().find(|x| x.name() == pinned).unwrap().stop();
    let mut after = Vec::new();
    for _ in 0..10 {
        let a = get(addr, "/").await;
        assert_eq!(a.status, 200);
        after.push(a.server());
    }
    let t = tally(after);
    assert_eq!(t.len(), 1, "re-stuck to one live server: {t:?}");
    assert!(!t.contains_key(&pinned));
    assert_eq!(broken(&lb), 1);
}

#[tokio::test]
#[ignore = "end-to-end (curl): scripts/test runs it"]
async fn curl_with_a_cookie_jar_stays_on_one_server() {
    let b = backends(3).await;
    let lb = start_lb(&config(&b, "mode = \"cookie\"")).await;
    let url = format!("http://{}/", lb.local_addr("web").unwrap());
    let dir = std::env::temp_dir().join(format!("switchyard-sticky-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let jar = dir.join("jar.txt");
    let _ = std::fs::remove_file(&jar);
    let mut seen = Vec::new();
    for _ in 0..20 {
        let out = tokio::process::Command::new("curl")
            .args(["-sS", "--max-time", "10", "-b"])
            .arg(&jar)
            .arg("-c")
            .arg(&jar)
            .arg(&url)
            .output()
            .await
            .expect("curl must be installed (scripts/test installs it)");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let body = String::from_utf8_lossy(&out.stdout).into_owned();
        seen.push(body.split(':').next().unwrap().to_string());
    }
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(tally(seen).len(), 1);
}

//! Sticky cookies over a real https listener: the cookie Switchyard inserts carries `Secure`
//! when the client came over TLS, not over plain http, and it pins a real client (curl with a
//! cookie jar) over TLS. Certificates are made in the test with rcgen.
mod common;
mod tls_support;

use common::*;
use tls_support::*;

/// One sticky pool behind a plain `http` listener ("plain") and an `https` one ("secure").
fn config(pki: &Pki, b: &[switchyard::demo::Backend]) -> String {
    format!(
        r#"
[[listener]]
name = "plain"
listen = "127.0.0.1:0"
pool = "p"

[[listener]]
name = "secure"
listen = "127.0.0.1:0"
protocol = "https"
pool = "p"
{}
[pool.p]
servers = {}
[pool.p.sticky]
mode = "cookie"
name = "SRV"
"#,
        tls_entries(&[pki.leaf("www", &["www.example.com"])]),
        servers_toml(b, &[])
    )
}

/// The attributes of the `SRV` Set-Cookie line in a header dump, lower-cased; `None` when
/// the answer set no such cookie.
fn srv_cookie(dump: &str) -> Option<Vec<String>> {
    dump.lines()
        .filter_map(|l| l.strip_prefix("set-cookie:"))
        .find(|v| v.trim_start().starts_with("srv="))
        .map(|v| v.split(';').map(|a| a.trim().to_string()).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (curl): scripts/test runs it"]
async fn the_inserted_cookie_is_secure_over_tls_only_and_pins_a_tls_client() {
    let pki = Pki::new();
    let b = backends(3).await;
    let lb = start_lb(&config(&pki, &b)).await;
    let port = lb.local_addr("secure").unwrap().port();
    let resolve = format!("www.example.com:{port}:127.0.0.1");
    let jar = temp_dir("sticky-tls").join("jar.txt");
    let jar = jar.to_str().unwrap();

    // Ten requests with a cookie jar over TLS: the first sets a Secure cookie, the rest send
    // it back and all reach the same server (and are not given a new cookie).
    let mut servers = Vec::new();
    for i in 0..10 {
        let out = run_tool_async(
            "curl",
            &[
                "-sS",
                "--http1.1",
                "--cacert",
                pki.ca_pem.to_str().unwrap(),
                "--resolve",
                &resolve,
                "-b",
                jar,
                "-c",
                jar,
                "-D",
                "-",
                &format!("https://www.example.com:{port}/"),
            ],
        )
        .await;
        let text = String::from_utf8_lossy(&out.stdout).to_lowercase();
        assert!(
            out.status.success(),
            "curl over TLS: {}\n{text}",
            String::from_utf8_lossy(&out.stderr)
        );
        let cookie = srv_cookie(&text);
        if i == 0 {
            let attrs = cookie.unwrap_or_else(|| panic!("first TLS answer sets SRV:\n{text}"));
            assert!(
                attrs.iter().any(|a| a == "secure"),
                "TLS client: Secure expected in {attrs:?}"
            );
            assert!(attrs.iter().any(|a| a == "httponly"), "{attrs:?}");
        } else {
            assert!(
                cookie.is_none(),
                "request {i} was given a new cookie:\n{text}"
            );
        }
        let server = b
            .iter()
            .map(|x| x.name())
            .find(|n| text.contains(&format!("x-server: {n}")))
            .unwrap_or_else(|| panic!("no x-server in:\n{text}"));
        servers.push(server);
    }
    assert!(
        servers.iter().all(|s| *s == servers[0]),
        "one server for the cookie: {servers:?}"
    );

    // The same pool over plain http: the cookie is set without Secure (a browser would never
    // send a Secure cookie back over http, and stickiness would silently break).
    let plain = get(lb.local_addr("plain").unwrap(), "/").await;
    let sc = plain
        .headers
        .get("set-cookie")
        .expect("plain http answer sets the cookie")
        .to_str()
        .unwrap()
        .to_lowercase();
    assert!(sc.starts_with("srv="), "{sc}");
    assert!(
        !sc.split(';').any(|a| a.trim() == "secure"),
        "plain http: no Secure in {sc}"
    );
}

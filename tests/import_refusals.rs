//! What nginx refused or answered itself, after `switchyard import`: a location that
//! returns 403/404 or denies all is carried as a block rule with nginx's status (real
//! requests refused by the running import; HAProxy's `deny_status` alike), and one nginx answered itself (`return 200 "ok";`) is reported as a
//! warning naming the pool its requests now reach — never a quiet note.

mod common;

use std::time::Duration;

use switchyard::demo::Backend;
use switchyard::import::{self, Source};
use switchyard::runtime::Runtime;

const NGINX: &str = r#"
events {}
http {
    upstream web { server BACKEND; }
    server {
        listen 127.0.0.1:0;
        location / { proxy_pass http://web; }
        location ~ \.php$ { return 403; }
        location ~* ^/secret { return 404; }
        location = /healthz { return 200 "ok"; }
        location /private/ { return 444; }
        location /admin/ { deny all; }
    }
    server {
        listen 127.0.0.1:0;
        server_name old.test;
        return 410;
    }
}
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_refusing_locations_stay_refused_and_answered_ones_are_warned() {
    let backend = Backend::start("web1", Duration::ZERO).await.unwrap();
    let (dir, i, warnings) = imported("import-refusals", "nginx.conf", NGINX, &backend);
    assert!(
        warnings.iter().any(|w| w.contains("healthz")
            && w.contains("WILL now be proxied to pool \"web\"")
            && w.starts_with("warning: ")),
        "{warnings:?}"
    );
    // A whole server that only answers: its host now reaches the default server's pool.
    assert!(
        warnings
            .iter()
            .any(|w| w.contains("`return 410`") && w.contains("WILL now be proxied")),
        "{warnings:?}"
    );
    assert_eq!(warnings.len(), 2, "{warnings:?}");
    // 444 is nginx's close without an answer: 403, said; 404 is carried as it is.
    assert!(
        i.notes
            .iter()
            .any(|n| n.approximated && n.why.contains("not 444")),
        "{:?}",
        i.notes
    );
    assert!(
        !i.notes.iter().any(|n| n.why.contains("not 404")),
        "{:?}",
        i.notes
    );
    let plan = switchyard::config::load_str(&i.toml, "imported.toml").unwrap();
    let rt = Runtime::start(plan).await.unwrap();
    let addr = rt.local_addr("http-0").unwrap();
    let mut client = common::Client::connect(addr).await;
    for (path, status) in [
        ("/index.html", 200),
        ("/x/index.php", 403),
        ("/SECRET/a", 404),  // `return 404` carried as the rule's status
        ("/private/a", 403), // 444: nginx closes without an answer; 403, and a note says so
        ("/admin/", 403),
        ("/healthz", 200), // proxied now, as the warning says
    ] {
        let req = http::Request::get(path)
            .header("host", "shop.test")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let a = client.send(req).await;
        assert_eq!(a.status, status, "{path}\n{}", i.toml);
        if status == 200 {
            assert_eq!(a.server(), "web1", "{path}");
        }
    }
    // nginx answered old.test 410 itself; now its requests reach the default server's pool.
    let req = http::Request::get("/")
        .header("host", "old.test")
        .body(http_body_util::Full::new(bytes::Bytes::new()))
        .unwrap();
    assert_eq!(client.send(req).await.server(), "web1");
    rt.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Refusing locations that overlap answer as nginx picks: the longest prefix, a regex
/// before a prefix; not the first in the file.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overlapping_nginx_refusals_answer_the_status_nginx_picks() {
    let backend = Backend::start("web1", Duration::ZERO).await.unwrap();
    let conf = one_server(
        r#"        location /api/ { return 404; }
        location /api/internal/ { return 403; }
        location /old/ { return 410; }
        location ~ \.php$ { return 403; }
        location /down/ { return 503; }
"#,
    );
    let (dir, i, _) = imported("import-refusals-order", "nginx.conf", &conf, &backend);
    let plan = switchyard::config::load_str(&i.toml, "imported.toml").unwrap();
    let rt = Runtime::start(plan).await.unwrap();
    let addr = rt.local_addr("http-0").unwrap();
    let mut client = common::Client::connect(addr).await;
    for (path, status) in [
        ("/api/x", 404),
        ("/api/internal/x", 403),
        ("/old/a", 410),
        ("/old/a.php", 403),
        ("/a", 200),
        ("/down/x", 503),
    ] {
        let req = http::Request::get(path)
            .header("host", "shop.test")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let a = client.send(req).await;
        assert_eq!(a.status, status, "{path}\n{}", i.toml);
        // nginx's `return 503` says no Retry-After; a block rule's answer neither.
        assert!(
            a.headers.get("retry-after").is_none(),
            "{path}: {:?}",
            a.headers
        );
    }
    rt.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

const HAPROXY: &str = "
defaults
  mode http
  timeout connect 5s
frontend f
  bind 127.0.0.1:0
  http-request deny if { path_beg /admin/ /internal/ }
  http-request deny deny_status 404 if { path_end .php }
  http-request deny if { hdr_sub(user-agent) curl }
  acl blocked path_beg /private/
  http-request deny if blocked
  acl blocked path_beg /late/
  default_backend b
backend b
  server s1 BACKEND
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn haproxy_path_denies_stay_refused_and_others_are_warned() {
    let backend = Backend::start("b1", Duration::ZERO).await.unwrap();
    let (dir, i, warnings) = imported("import-refusals-haproxy", "haproxy.cfg", HAPROXY, &backend);
    assert!(
        warnings.len() == 1
            && warnings[0].contains("user-agent")
            && warnings[0].contains("WILL now be proxied"),
        "{warnings:?}"
    );
    let plan = switchyard::config::load_str(&i.toml, "imported.toml").unwrap();
    let rt = Runtime::start(plan).await.unwrap();
    let addr = rt.local_addr("f").unwrap();
    let mut client = common::Client::connect(addr).await;
    for (path, status) in [
        ("/", 200),
        ("/admin/x", 403),
        ("/internal/", 403),
        ("/a/b.php", 404),   // deny_status 404 carried
        ("/private/x", 403), // `deny if blocked`, a named path acl
        ("/late/x", 403),    // a line of that acl after the deny
        ("/admin", 200),
    ] {
        let req = http::Request::get(path)
            .header("host", "shop.test")
            .body(http_body_util::Full::new(bytes::Bytes::new()))
            .unwrap();
        let a = client.send(req).await;
        assert_eq!(a.status, status, "{path}\n{}", i.toml);
    }
    rt.shutdown().await;
    std::fs::remove_dir_all(&dir).unwrap();
}

/// A location whose `proxy_pass` rewrites the path (a URI part) or names a variable, or a
/// regular-expression location that proxies, is left out: nginx proxied its requests there,
/// Switchyard will send them where the address's other routes do, which is a warning, not a
/// quiet note.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nginx_locations_left_out_are_warned() {
    let backend = Backend::start("web1", Duration::ZERO).await.unwrap();
    let text = one_server(
        r#"        location /v2/ { proxy_pass http://web/; }
        location /v3/ { proxy_pass http://$backend_of_v3; }
        location /same/ { proxy_pass http://web/same/; }
        location ~ \.php$ { proxy_pass http://web; }
"#,
    );
    let (dir, _, warnings) = imported("import-left-out", "nginx.conf", &text, &backend);
    for (line, what) in [(8, "URI part"), (9, "variable"), (11, "regular-expression")] {
        assert!(
            warnings.iter().any(|w| w.starts_with("warning: ")
                && w.contains(&format!("nginx.conf:{line}:"))
                && w.contains(what)
                && w.contains("WILL now be proxied")),
            "{line}: {warnings:?}"
        );
    }
    // A URI part that is the location's own prefix changes nothing: carried, no warning.
    assert_eq!(warnings.len(), 3, "{warnings:?}");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// An nginx.conf of one server on upstream `web` (`BACKEND`), whose `location /` proxies
/// there, with `locations` after it: they start on line 8.
fn one_server(locations: &str) -> String {
    format!(
        "\nevents {{}}\nhttp {{\n    upstream web {{ server BACKEND; }}\n    server {{\n        listen 127.0.0.1:0;\n        location / {{ proxy_pass http://web; }}\n{locations}    }}\n}}\n"
    )
}

/// `text` (its `BACKEND` the backend's address) written to `name` in a new directory and
/// imported (the source told by the name): the directory, the import (checked), its warnings.
fn imported(
    tag: &str,
    name: &str,
    text: &str,
    backend: &Backend,
) -> (std::path::PathBuf, import::Imported, Vec<String>) {
    let dir = common::temp_dir(tag);
    let file = dir.join(name);
    std::fs::write(&file, text.replace("BACKEND", &backend.addr.to_string())).unwrap();
    let source = match name.ends_with(".cfg") {
        true => Source::Haproxy,
        false => Source::Nginx,
    };
    let i = import::import(&[file.as_path()], Some(source), "imported.toml").unwrap();
    assert_eq!(i.check, Ok(()), "{}", i.toml);
    let warnings = i
        .notes
        .iter()
        .filter(|n| n.warning)
        .map(|n| n.to_string())
        .collect();
    (dir, i, warnings)
}

//! `switchyard import`, directive by directive, without running anything: the reference
//! examples of nginx's documentation (their losses reported), stream blocks, location
//! settings, HAProxy ACLs, stickiness, retries and tcp options, and the command itself.
//! Side-by-side runs against nginx and HAProxy are in tests/import.rs.

mod common;
mod import_support;

use std::process::Command;

use import_support::{fill, fixture, import_ok, reported};
use switchyard::import::Imported;

#[test]
fn nginx_reference_examples_import_with_every_loss_reported() {
    let dir = common::temp_dir("import-nginx-ref");
    let b: Vec<String> = (0..6)
        .map(|i| format!("127.0.0.{}:{}", i + 2, 8000 + i))
        .collect();
    // The upstream module's example: a UNIX socket server (not carried), backups.
    let text = fill(
        &fixture("nginx/upstream_module.conf"),
        &[
            ("backend1.example.com".into(), b[0].clone()),
            ("backend2.example.com:8080".into(), b[1].clone()),
            ("backup1.example.com:8080".into(), b[2].clone()),
            ("backup2.example.com:8080".into(), b[3].clone()),
        ],
    );
    std::fs::write(dir.join("upstream.conf"), &text).unwrap();
    let i = import_ok(&[&dir.join("upstream.conf")]);
    assert!(reported(&i, 7, "unix:/tmp/backend3"), "{:?}", i.notes);
    assert!(i.toml.contains("weight = 5"), "{}", i.toml);
    assert_eq!(i.toml.matches("backup = true").count(), 2, "{}", i.toml);
    // The admin guide's methods: hash, random two, least_time, weights, slow start, sticky.
    let mut map: Vec<(String, String)> = (1..=4)
        .map(|k| (format!("backend{k}.example.com"), b[k - 1].clone()))
        .collect();
    map.push(("192.0.0.1".into(), b[5].clone()));
    std::fs::write(
        dir.join("guide.conf"),
        fill(&fixture("nginx/admin_guide.conf"), &map),
    )
    .unwrap();
    let i = import_ok(&[&dir.join("guide.conf")]);
    for (what, line) in [
        ("algorithm = \"hash\"", 0),
        ("hash_key = \"uri\"", 0),
        ("algorithm = \"p2c\"", 0),
        ("algorithm = \"least_time\"", 0),
        ("slow_start = \"30s\"", 0),
        ("mode = \"cookie\"", 0),
        ("name = \"srv_id\"", 0),
        ("ttl = \"1h\"", 0),
    ] {
        let _ = line;
        assert!(i.toml.contains(what), "{what} in\n{}", i.toml);
    }
    assert!(reported(&i, 41, "domain=.example.com"), "{:?}", i.notes);
    // NGINX Plus's max_conns and queue are Switchyard's: carried, the 503 (nginx: 502) said.
    assert!(i.toml.contains("max_conns = 3"), "{}", i.toml);
    assert!(i.toml.contains("queue_size = 100"), "{}", i.toml);
    assert!(i.toml.contains("queue_timeout = \"70s\""), "{}", i.toml);
    assert!(reported(&i, 45, "nginx: 502"), "{:?}", i.notes);
    assert!(!reported(&i, 47, "queue"), "{:?}", i.notes);
    // Longest prefix first, as nginx chooses among locations.
    let weights = i.toml.find("\"/weights/\"").unwrap();
    let time = i.toml.find("\"/time/\"").unwrap();
    assert!(weights < time, "{}", i.toml);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_command_writes_toml_to_stdout_or_a_file_and_the_report_to_stderr() {
    let dir = common::temp_dir("import-cli");
    let src = dir.join("haproxy.cfg");
    std::fs::write(&src, "defaults\n  mode http\nfrontend f\n  bind 127.0.0.1:18080\n  default_backend b\nbackend b\n  balance leastconn\n  server a 127.0.0.1:9001 check maxconn 10\n").unwrap();
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_switchyard"))
            .arg("import")
            .args(args)
            .arg(&src)
            .output()
            .unwrap()
    };
    let out = run(&[]);
    assert!(out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stdout.contains("algorithm = \"least_conn\""), "{stdout}");
    assert!(stdout.contains("max_conns = 10"), "{stdout}");
    // The TOML ends its last line, so the report on a terminal starts on its own.
    assert!(stdout.ends_with("\n"), "{stdout:?}");
    assert!(
        stderr.contains("haproxy.cfg:8: approximated: `maxconn 10`"),
        "{stderr}"
    );
    assert!(stderr.contains("switchyard check: ok"), "{stderr}");
    let toml = dir.join("out.toml");
    let out = run(&["--from", "haproxy", "-o", toml.to_str().unwrap()]);
    assert!(out.status.success());
    assert!(out.stdout.is_empty());
    let check = Command::new(env!("CARGO_BIN_EXE_switchyard"))
        .args(["check", "-c"])
        .arg(&toml)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "{}",
        String::from_utf8_lossy(&check.stderr)
    );
    // Something that is neither: a clear error.
    std::fs::write(&src, "hello\n").unwrap();
    let out = run(&[]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("pass --from nginx or --from haproxy"));
    let _ = std::fs::remove_dir_all(&dir);
}

/// Import `text` (written to a temp file named `name`) with `check` passing.
fn import_text(name: &str, text: &str) -> Imported {
    let dir = common::temp_dir("import-text");
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    let i = import_ok(&[&path]);
    let _ = std::fs::remove_dir_all(&dir);
    i
}

#[test]
fn nginx_stream_locations_timeouts_and_retries_map_onto_pools() {
    let i = import_text(
        "nginx.conf",
        r#"
stream {
    upstream redis { hash $remote_addr consistent; server 127.0.0.1:6379; server 127.0.0.1:6380; }
    upstream dns { server 127.0.0.1:5353; }
    server { listen 127.0.0.1:16379; proxy_pass redis; proxy_timeout 10m; proxy_connect_timeout 2s; proxy_protocol on; }
    server { listen 127.0.0.1:10053 udp; proxy_pass dns; proxy_timeout 20s; ssl_preread on; }
}
http {
    proxy_read_timeout 30s;
    upstream api { least_conn; server 127.0.0.1:9001 max_fails=3 fail_timeout=5s; server 127.0.0.1:9002 down; keepalive 16; }
    server {
        listen 127.0.0.1:18080;
        location / { proxy_pass http://api; proxy_next_upstream error timeout http_503; proxy_next_upstream_tries 2; }
        location /reports/ { proxy_pass http://api; proxy_read_timeout 5m; proxy_set_header Host $proxy_host; }
        location /tls/ { proxy_pass https://127.0.0.1:9443; }
        location ~ \.php$ { proxy_pass http://api; }
        location /files/ { root /srv; }
    }
}
"#,
    );
    let t = &i.toml;
    // stream: tcp and udp listeners, their timeouts, PROXY out; L4 pools without HTTP keys.
    assert!(
        t.contains("protocol = \"tcp\"") && t.contains("idle_timeout = \"10m\""),
        "{t}"
    );
    assert!(t.contains("proxy_protocol = \"v1\""), "{t}");
    assert!(
        t.contains("protocol = \"udp\"") && t.contains("session_timeout = \"20s\""),
        "{t}"
    );
    assert!(t.contains("hash_key = \"client_ip\""), "{t}");
    assert!(reported(&i, 6, "ssl_preread"), "{:?}", i.notes);
    // http: the inherited read timeout, the location's own, and a pool per set of settings.
    assert!(
        t.contains("[pool.api]") && t.contains("[pool.api-2]"),
        "{t}"
    );
    assert!(
        t.contains("read = \"30s\"") && t.contains("read = \"5m\""),
        "{t}"
    );
    assert!(t.contains("host_header = \"upstream\""), "{t}");
    assert!(
        t.contains("on = [\"error\", \"timeout\", \"503\"]") && t.contains("attempts = 1"),
        "{t}"
    );
    assert!(
        t.contains("max_fails = 3, fail_timeout = \"5s\"") && t.contains("down = true"),
        "{t}"
    );
    assert!(t.contains("keepalive = 16"), "{t}");
    // Upstream TLS without verification, as nginx does by default: said so.
    assert!(t.contains("insecure_skip_verify = true"), "{t}");
    assert!(reported(&i, 15, "proxy_ssl_verify"), "{:?}", i.notes);
    assert!(reported(&i, 16, "regular-expression"), "{:?}", i.notes);
    assert!(reported(&i, 17, "root /srv"), "{:?}", i.notes);
}

#[test]
fn haproxy_acls_stickiness_retries_and_tcp_options_map_onto_routes_and_pools() {
    let i = import_text(
        "haproxy.cfg",
        r#"
defaults
    mode http
    timeout connect 3s
    timeout server 20s
frontend www
    bind 127.0.0.1:18081
    acl api_host hdr(host) -i api.example.com
    acl api_host hdr(host) -i api.example.org
    acl shop hdr_dom(host) -i shop.example.com
    acl is_admin path_beg /admin
    acl post method POST
    use_backend api if api_host || { path_beg /api/ }
    use_backend shop if shop is_admin
    use_backend shop if !is_admin
    use_backend shop if post
    default_backend web
backend api
    balance uri
    retries 2
    option redispatch
    retry-on conn-failure response-timeout 503
    stick-table type ip size 100k expire 30m
    stick on src
    server a1 127.0.0.1:9101 check inter 3s rise 3 fall 2
    server a2 127.0.0.1:9102 check inter 3s rise 3 fall 2 weight 0
backend shop
    balance leastconn
    cookie JSESSIONID prefix nocache
    server s1 127.0.0.1:9201 slowstart 20s disabled
    server s2 127.0.0.1:9202 backup
backend web
    server w1 127.0.0.1:9301
listen redis
    mode tcp
    bind 127.0.0.1:16380
    balance source
    timeout client 1h
    server r1 127.0.0.1:6379 send-proxy-v2 check
"#,
    );
    let t = &i.toml;
    for want in [
        "host = \"api.example.com\"",
        "host = \"api.example.org\"",
        "path_prefix = \"/api/\"",
        "host = \"*.shop.example.com\"",
        "method = \"POST\"",
        "algorithm = \"hash\"\nhash_key = \"uri\"",
        "mode = \"source_ip\"",
        "size = 100000",
        "ttl = \"30m\"",
        "on = [\"connect_failure\", \"timeout\", \"503\"]",
        "interval = \"3s\"",
        "rise = 3",
        "fall = 2",
        "mode = \"app_cookie\"",
        "name = \"JSESSIONID\"",
        "slow_start = \"20s\"",
        "backup = true",
        "proxy_protocol = \"v2\"",
        "idle_timeout = \"1h\"",
        "max_fails = 0",
    ] {
        assert!(t.contains(want), "{want} in\n{t}");
    }
    // shop + admin: one route with both host alternatives and the path.
    assert_eq!(t.matches("path_prefix = \"/admin\"").count(), 2, "{t}");
    assert!(reported(&i, 15, "negated"), "{:?}", i.notes);
    assert!(reported(&i, 26, "weight 0"), "{:?}", i.notes);
    assert!(reported(&i, 37, "balance source"), "{:?}", i.notes);
}

#[test]
fn nginx_resolve_servers_and_resolvers_are_carried_into_pools() {
    let i = import_text(
        "nginx.conf",
        r#"
http {
    resolver 10.0.0.2 valid=10s ipv6=off;
    resolver_timeout 3s;
    upstream app {
        zone app 64k;
        server app.internal:8080 resolve;
        server 127.0.0.1:9001;
    }
    upstream own {
        resolver 127.0.0.1:5353;
        server own.internal resolve;
    }
    upstream fixed { server fixed.internal:80; }
    server { listen 127.0.0.1:8080; location / { proxy_pass http://app; } location /own/ { proxy_pass http://own; } location /fixed/ { proxy_pass http://fixed; } }
}
"#,
    );
    let t = &i.toml;
    for want in [
        "resolver = [\"10.0.0.2\"]",
        "resolver_timeout = \"3s\"",
        "resolver_valid = \"10s\"",
        "{ addr = \"app.internal:8080\", resolve = true }",
        "resolver = [\"127.0.0.1:5353\"]",
        "{ addr = \"own.internal:80\", resolve = true }",
        "{ addr = \"fixed.internal:80\" }",
    ] {
        assert!(t.contains(want), "{want} in\n{t}");
    }
    // The import is read back by `check`'s reader, which asks no DNS: the names need not
    // resolve here.
    assert!(i.check.is_ok(), "{:?}\n{t}", i.check);
    // A name without resolve is resolved by the C library, as nginx does: no resolver.
    let fixed = &t[t.find("[pool.fixed]").unwrap() + 1..];
    let fixed = &fixed[..fixed.find("\n[").unwrap_or(fixed.len())];
    assert!(!fixed.contains("resolver"), "{fixed}");
    assert!(reported(&i, 3, "valid=10s"), "{:?}", i.notes);
    assert!(reported(&i, 3, "ipv6=off"), "{:?}", i.notes);
}

#[test]
fn haproxy_client_limits_of_http_frontends_are_carried() {
    let i = import_text(
        "haproxy.cfg",
        r#"
defaults
    mode http
    timeout http-request 7s
    timeout http-keep-alive 3s
    timeout client 40s
frontend www
    bind 127.0.0.1:18082
    maxconn 5000
    default_backend web
backend web
    server w1 127.0.0.1:9301
"#,
    );
    let t = &i.toml;
    for want in [
        "max_connections = 5000",
        "client_header_timeout = \"7s\"",
        "keepalive_timeout = \"3s\"",
        "send_timeout = \"40s\"",
    ] {
        assert!(t.contains(want), "{want} in\n{t}");
    }
}

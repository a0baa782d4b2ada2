//! The plan of two inline configurations: each kind of change is a line, keys and
//! sessions moved are what the real pools say, certificates are read from real PEM files.

use super::*;

const OLD: &str = r#"
grace_period = "10s"

[[listener]]
name = "web"
listen = "127.0.0.1:8080"
pool = "web"

  [[listener.route]]
  path_prefix = "/api/"
  pool = "api"

  [[listener.route]]
  host = "old.example.com"
  pool = "web"

[[listener]]
name = "legacy"
listen = "127.0.0.1:8081"
pool = "web"

[[listener]]
name = "db"
protocol = "tcp"
listen = "127.0.0.1:5432"
pool = "cache"

[pool.web]
servers = [ { addr = "127.0.0.1:9001" }, { addr = "127.0.0.1:9002" }, { addr = "127.0.0.1:9003" } ]

[pool.api]
servers = [ { addr = "127.0.0.1:9011" }, { addr = "127.0.0.1:9012" } ]

[pool.cache]
algorithm = "hash"
servers = [
  { addr = "127.0.0.1:9021" }, { addr = "127.0.0.1:9022" }, { addr = "127.0.0.1:9023" },
  { addr = "127.0.0.1:9024" }, { addr = "127.0.0.1:9025" },
]
"#;

fn plan(src: &str) -> Plan {
    config::load_str(src, "t.toml").unwrap_or_else(|e| panic!("{e}\n{src}"))
}

fn report(old: &str, new: &str) -> Report {
    make(&plan(old), &plan(new), 1_900_000_000)
}

fn lines(r: &Report) -> Vec<&str> {
    r.sections
        .iter()
        .flat_map(|s| &s.lines)
        .map(String::as_str)
        .collect()
}

fn has(r: &Report, line: &str) {
    assert!(
        lines(r).contains(&line),
        "no line {line:?} in:\n{}",
        r.text()
    );
}

#[test]
fn the_same_file_plans_nothing() {
    let r = report(OLD, OLD);
    assert!(lines(&r).is_empty(), "{}", r.text());
    assert_eq!(r.summary(), "plan: no changes");
}

/// A `[log]`-only change is a change: it reopens the access log at the reload.
#[test]
fn a_log_change_is_a_line() {
    let new = OLD.replace(
        "grace_period = \"10s\"\n",
        "grace_period = \"10s\"\n[log]\naccess = \"off\"\nformat = \"json\"\n",
    );
    let r = report(OLD, &new);
    has(
        &r,
        "~ [log] access stderr → off, format combined → json: the access log is opened anew at the reload",
    );
    assert_eq!(r.summary(), "plan: 1 change(s)");
}

#[test]
fn every_kind_of_change_is_a_line() {
    let new = OLD
        .replace("grace_period = \"10s\"", "grace_period = \"30s\"")
        .replace("127.0.0.1:8081", "127.0.0.1:8082")
        .replace(
            "  [[listener.route]]\n  host = \"old.example.com\"\n  pool = \"web\"\n",
            "  [[listener.route]]\n  path_prefix = \"/api/v2/\"\n  pool = \"web\"\n",
        )
        .replace(
            "  path_prefix = \"/api/\"\n  pool = \"api\"\n",
            "  path_prefix = \"/api/\"\n  pool = \"web\"\n",
        )
        .replace(
            "{ addr = \"127.0.0.1:9002\" }, { addr = \"127.0.0.1:9003\" } ]",
            "{ addr = \"127.0.0.1:9002\", weight = 3 }, { addr = \"127.0.0.1:9003\", drain = true }, { addr = \"127.0.0.1:9004\" } ]",
        )
        .replace(
            "{ addr = \"127.0.0.1:9011\" }, { addr = \"127.0.0.1:9012\" } ]",
            "{ addr = \"127.0.0.1:9011\" } ]",
        )
        + "\n[[listener]]\nname = \"new\"\nlisten = \"127.0.0.1:8090\"\npool = \"api\"\n";
    let r = report(OLD, &new);
    has(&r, "+ listener \"new\" binds 127.0.0.1:8090 (http)");
    has(
        &r,
        "~ listener \"legacy\" moves 127.0.0.1:8081 (http) → 127.0.0.1:8082 (http): binds the new address; the old socket closes and its connections drain",
    );
    has(
        &r,
        "~ listener \"web\": route 1 (path_prefix = \"/api/\") now goes to pool \"web\" instead of pool \"api\"",
    );
    has(
        &r,
        "+ listener \"web\": route 2 added: path_prefix = \"/api/v2/\" → pool \"web\"",
    );
    has(
        &r,
        "- listener \"web\": route 2 removed: host = \"old.example.com\" → pool \"web\"",
    );
    has(
        &r,
        "! listener \"web\": route 2 (path_prefix = \"/api/v2/\" → pool \"web\") can never match: route 1 (path_prefix = \"/api/\") comes first and matches every request it would",
    );
    has(&r, "+ pool \"web\": server 127.0.0.1:9004 added");
    has(
        &r,
        "- pool \"api\": server 127.0.0.1:9012 removed (its requests in flight finish)",
    );
    has(
        &r,
        "~ pool \"web\": server 127.0.0.1:9002 re-weighted 1 → 3",
    );
    has(
        &r,
        "~ pool \"web\": server 127.0.0.1:9003 drained (ready → drain): no new clients",
    );
    has(&r, "~ grace_period 10s → 30s");
    // Round robin and least_conn pools keep no key: nothing to say of keys.
    assert!(r.moved.is_empty(), "{:?}", r.moved);
    assert_eq!(r.warnings(), 1);
    assert!(
        r.summary().starts_with("plan: 11 change(s), 1 warning(s)"),
        "{}",
        r.summary()
    );

    let r = report(&new, OLD);
    has(
        &r,
        "- listener \"new\" closes 127.0.0.1:8090 (http); its connections drain",
    );
    has(
        &r,
        "~ pool \"web\": server 127.0.0.1:9003 back in service (drain → ready)",
    );
}

#[test]
fn a_ring_losing_one_of_five_servers_moves_its_keys_and_no_more() {
    let remove = |src: &str| src.replace("{ addr = \"127.0.0.1:9025\" },\n", "");
    let r = report(OLD, &remove(OLD));
    let m = &r.moved[0];
    assert_eq!((m.pool.as_str(), m.what), ("cache", "keys"));
    assert!((0.15..0.25).contains(&m.share), "{m:?}");
    let line = r.sections[3].lines[0].clone();
    assert!(
        line.starts_with(&format!(
            "pool \"cache\" (hash on client_ip): {} of keys move; the least possible is {}",
            percent(m.share),
            percent(m.share)
        )),
        "a ring moves exactly the keys of the server that left: {line}"
    );
    assert!(r.over(0.10).len() == 1 && r.over(0.30).is_empty());
    // Marked down instead: the same keys move; ip_hash moves most of them when one is
    // removed, its own when it is marked down.
    let down = OLD.replace(
        "{ addr = \"127.0.0.1:9025\" }",
        "{ addr = \"127.0.0.1:9025\", down = true }",
    );
    assert!((report(OLD, &down).moved[0].share - m.share).abs() < 1e-9);
    let ip = OLD.replace("algorithm = \"hash\"", "algorithm = \"ip_hash\"");
    assert!(report(&ip, &remove(&ip)).moved[0].share > 0.5);
    assert!(
        report(
            &ip,
            &down.replace("algorithm = \"hash\"", "algorithm = \"ip_hash\"")
        )
        .moved[0]
            .share
            < 0.3
    );
    // A sixth server takes about a sixth of the keys, from every other one.
    let added = OLD.replace(
        "{ addr = \"127.0.0.1:9025\" },",
        "{ addr = \"127.0.0.1:9025\" }, { addr = \"127.0.0.1:9026\" },",
    );
    let share = report(OLD, &added).moved[0].share;
    assert!((0.10..0.23).contains(&share), "{share}");
}

#[test]
fn another_hash_key_or_algorithm_moves_most_keys() {
    // An HTTP listener in front of the cache pool, so that it may hash a URI.
    let old = OLD.replace("protocol = \"tcp\"\n", "");
    let uri = old.replace(
        "algorithm = \"hash\"",
        "algorithm = \"hash\"\nhash_key = \"uri\"",
    );
    let r = report(&old, &uri);
    let share = r.moved[0].share;
    // A client's new key lands on its old server by chance only: about 1 in 5.
    assert!((0.75..0.85).contains(&share), "{share}");
    assert!(
        r.text().contains("it hashes uri instead of client_ip"),
        "{}",
        r.text()
    );
    has(&r, "~ pool \"cache\": hash_key client_ip → uri");
    let rr = OLD.replace("algorithm = \"hash\"", "algorithm = \"round_robin\"");
    // From round robin to a hash, nothing was kept, so nothing moves: said, not left out.
    let r = report(&rr, OLD);
    has(
        &r,
        "pool \"cache\" (round_robin → hash on client_ip): no key was kept on a server before, so none moves; from now on each key stays on one server",
    );
    assert_eq!(r.moved[0].share, 0.0);
    let r = report(OLD, &rr);
    assert_eq!(r.moved[0].share, 1.0);
    assert!(
        r.text().contains("round_robin keeps no key on a server"),
        "{}",
        r.text()
    );
    let maglev = OLD.replace("algorithm = \"hash\"", "algorithm = \"maglev\"");
    assert!(report(OLD, &maglev).moved[0].share > 0.6);
}

#[test]
fn sticky_sessions_move_only_with_their_server() {
    let sticky = OLD.replace(
        "[pool.api]\n",
        "[pool.web.sticky]\nmode = \"cookie\"\n\n[pool.api]\n",
    );
    let share = |new: &str| report(&sticky, new).moved[0].share;
    let gone = sticky.replace(", { addr = \"127.0.0.1:9003\" } ]", " ]");
    assert!((share(&gone) - 1.0 / 3.0).abs() < 0.001, "{}", share(&gone));
    let weight = sticky.replace(
        "{ addr = \"127.0.0.1:9001\" }",
        "{ addr = \"127.0.0.1:9001\", weight = 9 }",
    );
    assert_eq!(share(&weight), 0.0, "a weight moves no session");
    let drain = sticky.replace(
        "{ addr = \"127.0.0.1:9003\" }",
        "{ addr = \"127.0.0.1:9003\", drain = true }",
    );
    assert_eq!(share(&drain), 0.0, "on_drain = stay");
    let moving = drain.replace(
        "mode = \"cookie\"",
        "mode = \"cookie\"\non_drain = \"move\"",
    );
    let r = report(
        &sticky.replace(
            "mode = \"cookie\"",
            "mode = \"cookie\"\non_drain = \"move\"",
        ),
        &moving,
    );
    assert!((r.moved[0].share - 1.0 / 3.0).abs() < 0.001);
    assert!(r.text().contains("its sticky clients move"), "{}", r.text());
    let renamed = sticky.replace(
        "{ addr = \"127.0.0.1:9001\" }",
        "{ addr = \"127.0.0.1:9001\", name = \"one\" }",
    );
    assert!(
        (share(&renamed) - 1.0 / 3.0).abs() < 0.001,
        "a cookie names the server by name"
    );
    let r = report(
        &sticky,
        &sticky.replace("mode = \"cookie\"", "mode = \"cookie\"\nname = \"ID\""),
    );
    assert_eq!(r.moved[0].share, 1.0);
    assert!(
        r.text().contains("clients' cookies are not read"),
        "{}",
        r.text()
    );
    let table = sticky.replace("mode = \"cookie\"", "mode = \"source_ip\"");
    let r = report(
        &table,
        &table.replace("mode = \"source_ip\"", "mode = \"source_ip\"\nsize = 100"),
    );
    assert!(r.text().contains("empty table"), "{}", r.text());
}

/// A self-signed pair for `names`, valid until `y-m-d`, written in `dir` as NAME.pem/.key.
fn pair(dir: &std::path::Path, file: &str, names: &[&str], (y, m, d): (i32, u8, u8)) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params =
        rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
            .unwrap();
    params.not_before = rcgen::date_time_ymd(2020, 1, 1);
    params.not_after = rcgen::date_time_ymd(y, m, d);
    let c = params.self_signed(&key).unwrap();
    std::fs::write(dir.join(format!("{file}.pem")), c.pem()).unwrap();
    std::fs::write(dir.join(format!("{file}.key")), key.serialize_pem()).unwrap();
}

#[test]
fn certificates_replaced_dropped_or_about_to_expire_are_named() {
    let dir = std::env::temp_dir().join(format!("switchyard-plan-certs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    pair(
        &dir,
        "old",
        &["example.com", "shop.example.com"],
        (2030, 1, 10),
    );
    pair(&dir, "new", &["example.com"], (2031, 1, 1));
    pair(&dir, "soon", &["api.example.com"], (2030, 1, 12));
    let https = |certs: &str| {
        format!(
            "[[listener]]\nname = \"tls\"\nprotocol = \"https\"\nlisten = \"127.0.0.1:8443\"\npool = \"web\"\n{certs}\n[pool.web]\nservers = [ {{ addr = \"127.0.0.1:9001\" }} ]\n"
        )
    };
    let cert = |f: &str| format!("  [[listener.tls]]\n  cert = \"{f}.pem\"\n  key = \"{f}.key\"\n");
    let name = dir.join("t.toml").display().to_string();
    let load = |src: String| config::load_str(&src, &name).unwrap_or_else(|e| panic!("{e}"));
    let old = load(https(&cert("old")));
    let new = load(https(&(cert("new") + &cert("soon"))));
    // 2030-01-01 00:00 UTC.
    let now = 1_893_456_000;
    let r = make(&old, &new, now);
    let text = r.text();
    let d = dir.display();
    has(
        &r,
        &format!(
            "~ listener \"tls\": certificate for example.com, shop.example.com replaced: {d}/old.pem (expires 2030-01-10) → {d}/new.pem (expires 2031-01-01)"
        ),
    );
    has(
        &r,
        &format!(
            "+ listener \"tls\": certificate {d}/soon.pem (api.example.com; expires 2030-01-12)"
        ),
    );
    has(
        &r,
        "! listener \"tls\": no longer has a certificate for shop.example.com: TLS clients asking for it get the default certificate and refuse it",
    );
    has(
        &r,
        &format!(
            "! listener \"tls\": certificate {d}/soon.pem (api.example.com) expires in 11 day(s), on 2030-01-12"
        ),
    );
    assert!(!text.contains("new.pem (example.com) expires in"), "{text}");
    // The old pair, were it kept, is past its date by February.
    let r = make(&old, &old, now + 40 * 86_400);
    has(
        &r,
        &format!(
            "! listener \"tls\": certificate {d}/old.pem (example.com, shop.example.com) EXPIRED on 2030-01-10 ({} day(s) ago)",
            31
        ),
    );
}

#[test]
fn dates_are_utc_days() {
    assert_eq!(certs::date(0), "1970-01-01");
    assert_eq!(certs::date(1_893_456_000), "2030-01-01");
    assert_eq!(certs::date(951_782_400), "2000-02-29");
    assert_eq!(certs::date(-1), "1969-12-31");
}

const GUARDED: &str = r#"
[[listener]]
name = "web"
listen = "127.0.0.1:8080"
pool = "app"
max_connections = 1000

  [[listener.limit]]
  key = "client_ip"
  rate = "50/s"
  burst = 10

  [[listener.route]]
  path_prefix = "/api/"
  pool = "app"
  allow = ["10.0.0.0/8"]

    [[listener.route.limit]]
    key = "client_ip"
    rate = "5/s"

[pool.app]
servers = [ { addr = "127.0.0.1:9001" }, { addr = "127.0.0.1:9002" } ]

  [pool.app.health]
  interval = "5s"
  timeout = "2s"

  [pool.app.sticky]
  mode = "cookie"
  ttl = "1h"
"#;

/// The trial's change: a rate limit, health interval and timeout and a sticky ttl, each said
/// with its values, one line per listener, route and pool.
#[test]
fn settings_are_said_key_by_key_with_before_and_after() {
    let new = GUARDED
        .replace("rate = \"50/s\"", "rate = \"1/m\"")
        .replace("rate = \"5/s\"", "rate = \"50/s\"\n    burst = 5")
        .replace(
            "max_connections = 1000",
            "max_connections = 500\nclient_header_timeout = \"10s\"",
        )
        .replace(
            "allow = [\"10.0.0.0/8\"]",
            "allow = [\"10.0.0.0/8\", \"192.168.0.0/16\"]",
        )
        .replace("interval = \"5s\"", "interval = \"2s\"")
        .replace(
            "timeout = \"2s\"",
            "timeout = \"500ms\"\n  path = \"/healthz\"",
        )
        .replace("ttl = \"1h\"", "ttl = \"30m\"\n  on_drain = \"move\"");
    let r = report(GUARDED, &new);
    assert_eq!(
        lines(&r),
        [
            "~ listener \"web\": limit rate 50/s → 1/m, max_connections 1000 → 500, client_header_timeout 1m → 10s",
            "~ listener \"web\": route 1 (path_prefix = \"/api/\"): allow [10.0.0.0/8] → [10.0.0.0/8, 192.168.0.0/16], limit rate 5/s → 50/s, limit burst 0 → 5",
            "~ pool \"app\": health path / → /healthz, health interval 5s → 2s, health timeout 2s → 500ms, sticky ttl 1h → 30m, sticky on_drain stay → move",
            "pool \"app\" (sticky cookie \"SRV\"): 0.0% of sessions move [100,000 sessions placed by the pool]",
        ],
        "{}",
        r.text()
    );
    assert_eq!(r.summary(), "plan: 3 change(s); no key or session moves");
    // The reload says the same.
    assert_eq!(
        r.diff.describe(),
        [
            "pool \"app\": health path / → /healthz, health interval 5s → 2s, health timeout 2s → 500ms, sticky ttl 1h → 30m, sticky on_drain stay → move",
            "listener \"web\": limit rate 50/s → 1/m, max_connections 1000 → 500, client_header_timeout 1m → 10s",
            "listener \"web\": route 1 (path_prefix = \"/api/\"): allow [10.0.0.0/8] → [10.0.0.0/8, 192.168.0.0/16], limit rate 5/s → 50/s, limit burst 0 → 5",
        ]
    );
}

/// Limits, blocks and sections added or removed whole; several limits are numbered.
#[test]
fn sections_added_or_removed_are_one_item_each() {
    let new = GUARDED
        .replace(
            "  burst = 10\n",
            "  burst = 10\n\n  [[listener.limit]]\n  rate = \"100/m\"\n  key = \"header:x-api-key\"\n\n  [[listener.block]]\n  method = [\"TRACE\"]\n",
        )
        .replace("    [[listener.route.limit]]\n    key = \"client_ip\"\n    rate = \"5/s\"\n", "")
        .replace("  [pool.app.health]\n  interval = \"5s\"\n  timeout = \"2s\"\n", "")
        .replace("[pool.app]\n", "[pool.app]\nqueue_size = 10\n");
    let r = report(GUARDED, &new);
    assert_eq!(
        lines(&r),
        [
            "~ listener \"web\": limit 2 added (rate 100/m, burst 0, key header:x-api-key), block added (method [TRACE])",
            "~ listener \"web\": route 1 (path_prefix = \"/api/\"): limit removed",
            "~ pool \"app\": health removed, queue_size 1024 → 10",
            "pool \"app\" (sticky cookie \"SRV\"): 0.0% of sessions move [100,000 sessions placed by the pool]",
        ],
        "{}",
        r.text()
    );
    let r = report(&new, GUARDED);
    has(
        &r,
        "~ pool \"app\": health added (http GET /, every 5s), queue_size 10 → 1024",
    );
}

#[test]
fn workers_are_said_running_or_in_the_old_file() {
    let (old, new) = (
        plan(&format!("workers = 3\n{OLD}")),
        plan(&format!("workers = 1\n{OLD}")),
    );
    let said = |r: &Report| -> String {
        lines(r)
            .into_iter()
            .find(|l| l.contains("workers"))
            .unwrap_or_default()
            .to_string()
    };
    assert!(
        said(&make(&old, &new, 0)).starts_with("~ workers = 1 in the file, 3 running: "),
        "{}",
        said(&make(&old, &new, 0))
    );
    let offline = said(&make_files(&old, &new, 0));
    assert!(
        offline.starts_with("~ workers = 1 in the new file, 3 in the old file: a reload cannot"),
        "{offline}"
    );
}

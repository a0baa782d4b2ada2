//! nginx's directives on who may send what, and on the client side of a connection:
//! `limit_req_zone` + `limit_req` → `[[listener.limit]]` (a route's for a location),
//! `allow`/`deny` → `allow`/`deny`, `client_max_body_size`, `limit_conn` on the client
//! address → `max_connections_per_client`, the client timeouts and buffers → the listener's
//! keys of those names, and `access_log` → `[log]`.

use super::model::{Config, Guard, Limit, Origin, absolute, q};
use super::nginx_parse::Directive;
use super::nginx_upstream::time;

/// A `limit_req_zone` or `limit_conn_zone`.
#[derive(Debug, Clone, PartialEq)]
struct Zone {
    name: String,
    /// Switchyard's key (`client_ip`, `header:NAME`, `cookie:NAME`); `None`: not one of them.
    key: Option<String>,
    /// `limit_req_zone`'s rate (`10/s`); `None` for `limit_conn_zone`.
    rate: Option<String>,
    /// Keys the zone holds (nginx: about 16,000 a megabyte).
    size: Option<u64>,
}

/// What a `server` or `location` inherits of these directives.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Front {
    zones: Vec<Zone>,
    pub guard: Guard,
    /// Listener keys, as TOML values (`keepalive_timeout = "65s"`).
    pub listener: Vec<(String, String)>,
    /// `limit_req_status` (nginx's default 503).
    status: Option<String>,
    /// Whether this level wrote `allow`/`deny` (they then replace the inherited ones, as
    /// nginx's array directives do), `limit_req`, and an `allow all`/`deny all`.
    acl_here: bool,
    limit_here: bool,
    all_seen: bool,
}

impl Front {
    /// Entering a `server` or `location`: its own lists replace the inherited ones.
    pub fn enter(&mut self) {
        self.acl_here = false;
        self.limit_here = false;
        self.all_seen = false;
    }
}

/// Directives read before the others of their block (nginx's order within a block does not
/// matter; the notes of `limit_req` name the status).
pub fn early_first(block: &[Directive]) -> Vec<&Directive> {
    const EARLY: [&str; 4] = [
        "limit_req_zone",
        "limit_conn_zone",
        "limit_req_status",
        "limit_conn_status",
    ];
    let (mut first, rest): (Vec<&Directive>, Vec<&Directive>) =
        block.iter().partition(|d| EARLY.contains(&d.name.as_str()));
    first.extend(rest);
    first
}

/// Apply `d` if it is one of these directives (`ctx`: `http`, `a server block`, `a
/// location`); `false` when it is not one.
pub fn setting(c: &mut Config, d: &Directive, f: &mut Front, ctx: &str) -> bool {
    let location = ctx == "a location";
    let first = d.args.first().map(String::as_str).unwrap_or("");
    match d.name.as_str() {
        "limit_req_zone" | "limit_conn_zone" => zone(c, d, f),
        "limit_req" => limit_req(c, d, f),
        "limit_req_status" => f.status = Some(first.to_string()),
        "limit_conn_status" if first == "503" => {}
        "limit_conn" => limit_conn(c, d, f, ctx),
        "allow" | "deny" => access(c, d, f),
        "client_max_body_size" => match size(first) {
            Some(0) => f.guard.body = Some("0".into()),
            Some(_) => f.guard.body = Some(q(&first.to_ascii_lowercase())),
            None => c.note(&d.at, d.text(), "not a size"),
        },
        "keepalive_timeout" | "send_timeout" | "client_header_timeout" | "keepalive_requests"
        | "client_body_buffer_size" | "large_client_header_buffers"
            if location =>
        {
            c.note(
                &d.at,
                d.text(),
                "in Switchyard a listener's key: write it in the server block (or http) to carry it",
            )
        }
        "keepalive_timeout" => {
            match time(first) {
                Some(t) if first != "0" => f.listener.push((d.name.clone(), q(&t))),
                _ => c.note(
                    &d.at,
                    d.text(),
                    "keep-alive cannot be turned off: keepalive_requests = 1 closes after each request",
                ),
            }
            if d.args.len() > 1 {
                c.approx(
                    &d.at,
                    d.text(),
                    "the second value (the Keep-Alive header's timeout=) is not sent",
                );
            }
        }
        "send_timeout" | "client_header_timeout" => match time(first) {
            Some(t) => f.listener.push((d.name.clone(), q(&t))),
            None => c.note(&d.at, d.text(), "not a time"),
        },
        "keepalive_requests" => match first.parse::<u64>() {
            Ok(n) if n > 0 => f.listener.push((d.name.clone(), n.to_string())),
            _ => c.note(&d.at, d.text(), "not a count of requests"),
        },
        "client_body_buffer_size" => match size(first) {
            Some(n) if (1024..=64 << 20).contains(&n) => f
                .listener
                .push(("request_buffer_size".into(), q(&first.to_ascii_lowercase()))),
            _ => c.note(
                &d.at,
                d.text(),
                "Switchyard's request_buffer_size is 1k to 64m",
            ),
        },
        "large_client_header_buffers" => {
            let n = first.parse::<u64>().ok();
            match (n, d.args.get(1).and_then(|s| size(s))) {
                (Some(n), Some(one)) if n > 0 && n.checked_mul(one).is_some() => {
                    f.listener.push(("max_uri_size".into(), one.to_string()));
                    f.listener
                        .push(("max_header_size".into(), (n * one).to_string()));
                    c.approx(
                        &d.at,
                        d.text(),
                        "max_uri_size is one buffer, max_header_size all of them (nginx bounds each header line by one buffer)",
                    );
                }
                _ => c.note(&d.at, d.text(), "not a count and a size"),
            }
        }
        "client_header_buffer_size" => c.note(
            &d.at,
            d.text(),
            "not needed: Switchyard reads a request head up to max_header_size (large_client_header_buffers is carried there)",
        ),
        "access_log" => access_log(c, d, ctx),
        "log_format" => c.note(
            &d.at,
            d.text(),
            "Switchyard writes nginx's combined line with its own fields after it, or JSON ([log] format); an access_log naming this format is approximated",
        ),
        "limit_req_log_level" | "limit_conn_log_level" | "limit_req_dry_run"
        | "limit_conn_dry_run" | "log_not_found" | "log_subrequest" | "open_log_file_cache" => {
            c.note(
                &d.at,
                d.text(),
                "no Switchyard equivalent: each request, refused ones too, is one access-log line with its status",
            )
        }
        _ => return false,
    }
    true
}

/// An nginx size (`10m`, `512k`, `1g`, bytes) in bytes.
fn size(s: &str) -> Option<u64> {
    let s = s.to_ascii_lowercase();
    let (num, mult) = match s.chars().last()? {
        'k' => (&s[..s.len() - 1], 1u64 << 10),
        'm' => (&s[..s.len() - 1], 1 << 20),
        'g' => (&s[..s.len() - 1], 1 << 30),
        _ => (&s[..], 1),
    };
    num.parse::<u64>().ok()?.checked_mul(mult)
}

/// nginx's key variable as Switchyard's limit key.
fn key(v: &str) -> Option<String> {
    match v {
        "$binary_remote_addr" | "$remote_addr" => Some("client_ip".into()),
        _ => {
            if let Some(h) = v.strip_prefix("$http_") {
                Some(format!("header:{}", h.replace('_', "-")))
            } else {
                v.strip_prefix("$cookie_")
                    .filter(|c| !c.is_empty())
                    .map(|c| format!("cookie:{c}"))
            }
        }
    }
}

fn zone(c: &mut Config, d: &Directive, f: &mut Front) {
    let mut z = Zone {
        name: String::new(),
        key: d.args.first().and_then(|k| key(k)),
        rate: None,
        size: None,
    };
    for a in &d.args[1.min(d.args.len())..] {
        if let Some(v) = a.strip_prefix("zone=") {
            let (name, sz) = v.split_once(':').unwrap_or((v, ""));
            z.name = name.to_string();
            // nginx: "one megabyte zone can keep about 16 thousand 64-byte states".
            z.size = size(sz).map(|b| (b / 64).clamp(1, 100_000_000));
        } else if let Some(r) = a.strip_prefix("rate=") {
            z.rate = r
                .strip_suffix("r/s")
                .map(|n| format!("{n}/s"))
                .or_else(|| r.strip_suffix("r/m").map(|n| format!("{n}/m")));
        } else if a == "sync" {
            c.note(
                &d.at,
                a,
                "each balancer counts alone unless you add [redis] with addr = \"host:6379\" and shared = true in the limit (docs/shared-state.md)",
            );
        }
    }
    if z.key.is_none() {
        c.note(
            &d.at,
            d.text(),
            "Switchyard limits by client address ($binary_remote_addr), a header ($http_NAME) or a cookie ($cookie_NAME); limits on this zone are not carried",
        );
    }
    if d.name == "limit_req_zone" && z.rate.is_none() {
        c.note(&d.at, d.text(), "no rate in r/s or r/m");
    }
    f.zones.retain(|o| o.name != z.name);
    f.zones.push(z);
}

fn limit_req(c: &mut Config, d: &Directive, f: &mut Front) {
    let mut zone = None;
    let mut burst = None;
    let mut nodelay = false;
    let mut delay = None;
    for a in &d.args {
        if let Some(z) = a.strip_prefix("zone=") {
            zone = Some(z.to_string());
        } else if let Some(b) = a.strip_prefix("burst=") {
            burst = b.parse::<u32>().ok();
        } else if let Some(n) = a.strip_prefix("delay=") {
            delay = Some(n.to_string());
        } else if a == "nodelay" {
            nodelay = true;
        }
    }
    let found = zone
        .as_ref()
        .and_then(|z| f.zones.iter().find(|x| x.name == *z && x.rate.is_some()));
    let Some(Zone {
        key: Some(key),
        rate: Some(rate),
        size,
        ..
    }) = found.cloned()
    else {
        let why = match found {
            Some(_) => "its zone's key or rate is not carried (reported at limit_req_zone)",
            None => "no limit_req_zone of that name in http",
        };
        c.note(&d.at, d.text(), why);
        return;
    };
    if !f.limit_here {
        f.guard.limits.clear();
        f.limit_here = true;
    }
    f.guard.limits.push(Limit {
        key,
        rate,
        burst: burst.filter(|b| *b > 0),
        size,
        at: d.at.clone(),
        zone: zone.unwrap_or_default(),
    });
    let status = f.status.clone().unwrap_or_else(|| "503".into());
    let mut why = Vec::new();
    if !nodelay {
        let delayed = match &delay {
            Some(n) => format!("past the first {n} over the rate"),
            None => "over the rate".into(),
        };
        why.push(format!(
            "nginx delays the requests {delayed} (up to burst) and refuses the rest; Switchyard passes up to burst at once and refuses the rest"
        ));
    }
    if status != "429" {
        why.push(format!(
            "refused with 429 and Retry-After (nginx: {status}, limit_req_status)"
        ));
    }
    if !why.is_empty() {
        c.approx(&d.at, d.text(), why.join("; "));
    }
}

fn limit_conn(c: &mut Config, d: &Directive, f: &mut Front, ctx: &str) {
    let location = ctx == "a location";
    let name = d.args.first().map(String::as_str).unwrap_or("");
    let n = d.args.get(1).and_then(|n| n.parse::<u64>().ok());
    let zone = f.zones.iter().find(|z| z.name == name && z.rate.is_none());
    match (zone.and_then(|z| z.key.as_deref()), n) {
        (Some("client_ip"), Some(n)) if !location => {
            f.listener
                .push(("max_connections_per_client".into(), n.to_string()));
            if ctx != "a stream server" {
                c.approx(
                    &d.at,
                    d.text(),
                    "max_connections_per_client counts a client address's connections (nginx: its requests in progress, each HTTP/2 stream); over it: 503 and a close on http, a close on https",
                );
            }
        }
        (Some("client_ip"), Some(_)) => c.note(
            &d.at,
            d.text(),
            "Switchyard's max_connections_per_client is a listener's: write limit_conn in the server block to carry it",
        ),
        (_, None) => c.note(&d.at, d.text(), "not a zone and a count"),
        _ => c.note(
            &d.at,
            d.text(),
            "Switchyard limits connections per client address only (max_connections_per_client); not on this zone's key",
        ),
    }
}

fn access(c: &mut Config, d: &Directive, f: &mut Front) {
    let what = d.args.first().map(String::as_str).unwrap_or("");
    if !f.acl_here {
        f.guard.allow.clear();
        f.guard.deny.clear();
        f.acl_here = true;
    }
    if what.starts_with("unix:") {
        c.note(
            &d.at,
            d.text(),
            "Switchyard does not listen on UNIX sockets",
        );
        return;
    }
    let allow = d.name == "allow";
    if f.all_seen {
        c.approx(
            &d.at,
            d.text(),
            "nginx never reaches a line after `allow all`/`deny all`; Switchyard lets the most specific block decide, so this one counts",
        );
    }
    if what == "all" {
        f.all_seen = true;
        // `allow X; deny all;`: with allow set, a client in no block is refused already.
        if !allow && f.guard.allow.is_empty() {
            f.guard.deny = vec!["0.0.0.0/0".into(), "::/0".into()];
        }
        return;
    }
    let (mine, other) = if allow {
        (&mut f.guard.allow, &f.guard.deny)
    } else {
        (&mut f.guard.deny, &f.guard.allow)
    };
    if !other.is_empty() && !f.all_seen {
        c.approx(
            &d.at,
            d.text(),
            "Switchyard lets the most specific block decide, nginx the first line that matches: the same unless a wider line comes before a narrower one",
        );
    }
    mine.push(what.to_string());
}

fn access_log(c: &mut Config, d: &Directive, ctx: &str) {
    let Some(path) = d.args.first().map(String::as_str) else {
        c.note(
            &d.at,
            d.text(),
            "access_log without a path (nginx refuses it too)",
        );
        return;
    };
    let target = match path {
        "off" => "off".to_string(),
        "/dev/stdout" => "stdout".into(),
        "/dev/stderr" => "stderr".into(),
        p if p.starts_with("syslog:") || p.starts_with("memory:") => {
            c.note(
                &d.at,
                d.text(),
                "Switchyard writes its access log to a file, stdout or stderr ([log] access), not to syslog",
            );
            return;
        }
        p => conf_path(c, p),
    };
    if c.log_access.as_ref().is_some_and(|a| *a != target) {
        c.note(
            &d.at,
            d.text(),
            "Switchyard has one access log ([log] access), for every listener: the first access_log is carried",
        );
        return;
    }
    c.log_access = Some(target.clone());
    let mut why = Vec::new();
    let options: Vec<&str> = d.args[1..]
        .iter()
        .map(String::as_str)
        .filter(|a| a.contains('=') || *a == "gzip")
        .collect();
    if !options.is_empty() {
        why.push(format!("{} not carried", options.join(" ")));
    }
    if target != "off" {
        c.log_format = Some("combined".into());
        match d.args.get(1).map(String::as_str) {
            None | Some("combined") => why.push(
                "nginx's combined line, with the balancer's fields after it (upstream=, request_time=, pool=, …)".into(),
            ),
            Some(name) if !name.contains('=') => why.push(format!(
                "written as nginx's combined line with the balancer's fields after it (upstream=, upstream_time=, request_time=, …), not as log_format {name}; [log] format = \"json\" gives JSON"
            )),
            Some(_) => {}
        }
    }
    if ctx != "http" {
        why.push(format!(
            "Switchyard's [log] is for every listener, not only {ctx}"
        ));
    }
    if !why.is_empty() {
        c.approx(&d.at, d.text(), why.join("; "));
    }
}

/// A zone whose limit ends up in several places of the TOML (several listeners, or routes
/// of one) is counted in each alone: said at the `limit_req`.
pub fn shared_zones(c: &mut Config) {
    let mut uses: Vec<(String, Origin, usize)> = Vec::new();
    let all = c.listeners.iter().flat_map(|l| {
        std::iter::once(&l.guard)
            .chain(l.routes.iter().map(|r| &r.guard))
            .flat_map(|g| g.limits.iter())
    });
    for l in all {
        match uses.iter_mut().find(|(z, _, _)| *z == l.zone) {
            Some(u) => u.2 += 1,
            None => uses.push((l.zone.clone(), l.at.clone(), 1)),
        }
    }
    for (zone, at, n) in uses.into_iter().filter(|u| u.2 > 1) {
        c.approx(
            &at,
            format!("limit_req zone={zone}"),
            format!("carried to {n} listeners or routes, each counting alone (nginx counts the zone once): a client may get up to {n} times the rate across them"),
        );
    }
}

/// A path of the configuration, absolute: relative ones are relative to the main file's
/// directory (nginx's conf prefix).
pub fn conf_path(c: &Config, p: &str) -> String {
    let path = std::path::Path::new(p);
    if path.is_absolute() {
        return p.to_string();
    }
    let main = c.sources.first().map(String::as_str).unwrap_or(".");
    let dir = std::path::Path::new(main)
        .parent()
        .unwrap_or(std::path::Path::new("."));
    absolute(dir).join(path).display().to_string()
}

#[cfg(test)]
mod tests {
    use crate::import::{Imported, Source, import};

    fn nginx(name: &str, text: &str) -> Imported {
        let dir = std::env::temp_dir().join(format!("sy-import-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("nginx.conf");
        std::fs::write(&file, text).unwrap();
        let i = import(&[file.as_path()], Some(Source::Nginx), "imported.toml").unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(i.check, Ok(()), "{}", i.toml);
        i
    }

    fn note(i: &Imported, line: usize) -> Option<&crate::import::Note> {
        i.notes.iter().find(|n| n.at.line == line)
    }

    const SITE: &str = "events { worker_connections 1024; }
http {
    limit_req_zone $binary_remote_addr zone=z:10m rate=10r/s;
    limit_conn_zone $binary_remote_addr zone=addr:10m;
    upstream app {
        server 127.0.0.1:9001 max_conns=100;
        server 127.0.0.1:9002;
    }
    access_log logs/access.log;
    client_max_body_size 10m;
    keepalive_timeout 65;
    server {
        listen 127.0.0.1:8080;
        limit_conn addr 10;
        location / {
            proxy_pass http://app;
        }
        location /api/ {
            limit_req zone=z burst=20 nodelay;
            allow 10.0.0.0/8;
            allow 127.0.0.1;
            deny all;
            proxy_pass http://app;
        }
        location /upload/ {
            client_max_body_size 100m;
            proxy_pass http://app;
        }
    }
}
";

    /// The trial's configuration: every directive that Switchyard has is carried, with
    /// the keys `check` reads, and no note says a feature is missing.
    #[test]
    fn limits_access_lists_body_sizes_logs_and_max_conns_are_carried() {
        let i = nginx("guard", SITE);
        for want in [
            "keepalive_timeout = \"65s\"",
            "max_connections_per_client = 10",
            "  [[listener.route.limit]]\n  key = \"client_ip\"\n  rate = \"10/s\"\n  burst = 20\n  size = 163840\n",
            "allow = [\"10.0.0.0/8\", \"127.0.0.1\"]",
            "client_max_body_size = \"100m\"",
            "client_max_body_size = \"10m\"",
            "max_conns = 100",
            "queue_size = 0",
            "\n[log]\naccess = ",
            "format = \"combined\"\n",
        ] {
            assert!(i.toml.contains(want), "{want} in\n{}", i.toml);
        }
        // `deny all` after the allows is what `allow` means already.
        assert!(!i.toml.contains("deny ="), "{}", i.toml);
        assert!(i.toml.ends_with('\n'));
        let limit = note(&i, 19).expect("the status is said");
        assert!(limit.approximated && limit.why.contains("429") && limit.why.contains("503"));
        assert!(note(&i, 6).is_some_and(|n| n.approximated && n.why.contains("502")));
        assert!(note(&i, 14).is_some_and(|n| n.approximated));
        for n in &i.notes {
            assert!(!n.why.contains("later work"), "{n}");
            assert!(!n.why.contains("no per-server"), "{n}");
        }
        // Nothing else here is lost.
        let lost: Vec<_> = i.notes.iter().filter(|n| !n.approximated).collect();
        assert_eq!(lost.len(), 1, "{lost:?}"); // worker_connections
    }

    /// Without nodelay nginx delays; with limit_req_status 429 and nodelay nothing differs.
    #[test]
    fn the_limit_note_says_what_differs_and_only_that() {
        let text = |opts: &str, status: &str| {
            format!(
                "http {{\n limit_req_zone $http_x_user zone=u:1m rate=30r/m;\n{status}\n upstream a {{ server 127.0.0.1:9001; }}\n server {{\n  listen 127.0.0.1:8080;\n  limit_req zone=u {opts};\n  location / {{ proxy_pass http://a; }}\n }}\n}}\n"
            )
        };
        let i = nginx("delay", &text("burst=5", ""));
        assert!(i.toml.contains("key = \"header:x-user\""), "{}", i.toml);
        assert!(i.toml.contains("rate = \"30/m\""), "{}", i.toml);
        let n = note(&i, 7).unwrap();
        assert!(n.why.contains("delays") && n.why.contains("503"), "{n}");
        let i = nginx(
            "nodelay",
            &text("burst=5 nodelay", " limit_req_status 429;"),
        );
        assert!(note(&i, 7).is_none(), "{:?}", i.notes);
        assert!(i.toml.contains("[[listener.limit]]"), "{}", i.toml);
    }

    /// A server's limit_req over locations that differ (here in body size) is carried to
    /// each route, and the report says each counts alone.
    #[test]
    fn a_zone_carried_to_several_routes_is_said_to_count_in_each() {
        let i = nginx(
            "zones",
            "http {\n limit_req_zone $binary_remote_addr zone=z:1m rate=5r/s;\n upstream a { server 127.0.0.1:9001; }\n server {\n  listen 127.0.0.1:8080;\n  limit_req zone=z burst=5 nodelay;\n  limit_req_status 429;\n  location / { proxy_pass http://a; }\n  location /up/ { client_max_body_size 1g; proxy_pass http://a; }\n }\n}\n",
        );
        assert_eq!(
            i.toml.matches("[[listener.route.limit]]").count(),
            2,
            "{}",
            i.toml
        );
        let n = note(&i, 6).expect("the zone's note");
        assert!(n.approximated && n.why.contains("2 times"), "{n}");
    }

    /// A level's own allow/deny replace the inherited ones, as in nginx; the order
    /// difference is said when it could matter.
    #[test]
    fn access_lists_are_inherited_and_replaced_as_nginx_does() {
        let i = nginx(
            "acl",
            "http {\n upstream a { server 127.0.0.1:9001; }\n server {\n  listen 127.0.0.1:8080;\n  deny 192.0.2.0/24;\n  location / { proxy_pass http://a; }\n  location /admin/ { allow 10.0.0.0/8; deny 10.9.0.0/16; proxy_pass http://a; }\n }\n}\n",
        );
        assert!(i.toml.contains("  deny = [\"192.0.2.0/24\"]"), "{}", i.toml);
        assert!(
            i.toml
                .contains("  allow = [\"10.0.0.0/8\"]\n  deny = [\"10.9.0.0/16\"]"),
            "{}",
            i.toml
        );
        assert!(note(&i, 7).is_some_and(|n| n.approximated && n.why.contains("most specific")));
    }

    /// Refusals land only where nginx refused: a longer prefix location under a refused
    /// prefix and a `^~` location keep proxying; a `return 403` next to `proxy_pass`
    /// refuses (the return runs first); a refusal in a server without `location /` beside
    /// another server is a warning (its other requests reach the default server's routes).
    #[test]
    fn refusals_follow_nginx_location_precedence() {
        let i = nginx(
            "prec",
            "http {\n upstream a { server 127.0.0.1:9001; }\n server {\n  listen 127.0.0.1:8080;\n  location / { proxy_pass http://a; }\n  location /admin { deny all; }\n  location /admin/health { proxy_pass http://a; }\n  location ^~ /static/ { proxy_pass http://a; }\n  location ~ \\.php$ { return 403; }\n  location /old { return 410; proxy_pass http://a; }\n }\n}\n",
        );
        let route = |path: &str| {
            let at = i
                .toml
                .find(&format!("path_prefix = \"{path}\""))
                .unwrap_or_else(|| panic!("{path} in {}", i.toml));
            let end = i.toml[at..]
                .find("[[listener.route]]")
                .map_or(i.toml.len(), |e| at + e);
            i.toml[at..end].to_string()
        };
        let health = route("/admin/health");
        assert!(!health.contains("^/admin"), "{health}");
        assert!(health.contains("\\.php$"), "{health}");
        let stat = route("/static/");
        assert!(
            stat.contains("^/admin") && !stat.contains("\\.php$"),
            "{stat}"
        );
        assert!(i.toml.contains("^/old"), "{}", i.toml);
        assert!(!i.notes.iter().any(|n| n.warning), "{:?}", i.notes);

        let two = nginx(
            "noroot",
            "http {\n upstream a { server 127.0.0.1:9001; }\n server {\n  listen 127.0.0.1:8080 default_server;\n  location / { proxy_pass http://a; }\n }\n server {\n  listen 127.0.0.1:8080;\n  server_name b.test;\n  location /api { proxy_pass http://a; }\n  location /admin { deny all; }\n }\n}\n",
        );
        assert!(
            two.notes
                .iter()
                .any(|n| n.at.line == 11 && n.warning && n.why.contains("location /")),
            "{:?}",
            two.notes
        );
    }
}

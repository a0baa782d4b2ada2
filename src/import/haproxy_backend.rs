//! A HAProxy `backend` (or the backend half of a `listen`, with its `defaults`) as a
//! Switchyard pool: `balance`, `server` and `default-server` lines (`check inter rise fall
//! weight backup disabled slowstart ssl`), `option httpchk` / `http-check`, `cookie` and
//! stick tables, `retries` / `retry-on`, timeouts.

use std::collections::HashMap;

use super::haproxy_parse::Line;
use super::model::{Config, Health, Origin, Pool, Retry, Server, Sticky, duration, q};

/// A HAProxy time (`5s`, bare milliseconds) in Switchyard's spelling.
pub fn time(s: &str) -> Option<String> {
    duration(s, "ms")
}

/// Per-server check settings as written, to agree on the pool's.
#[derive(Default)]
struct Checks {
    inter: Vec<String>,
    rise: Vec<u32>,
    fall: Vec<u32>,
    checked: usize,
    unchecked: Vec<Origin>,
}

/// The value most servers wrote.
fn common<T: Clone + Eq + std::hash::Hash>(v: &[T]) -> Option<T> {
    let mut counts: HashMap<&T, usize> = HashMap::new();
    for x in v {
        *counts.entry(x).or_default() += 1;
    }
    let best = counts.values().copied().max()?;
    v.iter().find(|x| counts[x] == best).cloned()
}

/// Build the pool; `used[i]` is set for each line the backend understood (or noted). With
/// it, the PROXY protocol version its servers are sent (`send-proxy`, `send-proxy-v2`).
pub fn backend(
    c: &mut Config,
    name: &str,
    tcp: bool,
    lines: &[Line],
    used: &mut [bool],
    at: &Origin,
) -> (Pool, Option<&'static str>) {
    let mut p = Pool {
        name: c.pool_name(name),
        l4: tcp,
        at: at.clone(),
        // HAProxy has no passive health checks unless told (`observe`): keep it so.
        max_fails: Some(0),
        ..Pool::default()
    };
    let mut default_server: Vec<String> = Vec::new();
    let mut checks = Checks::default();
    let mut httpchk: Option<Health> = None;
    let mut check_timeout = None;
    let mut retries: Option<u32> = None;
    let mut retry_on: Option<Vec<String>> = None;
    let mut redispatch = false;
    let mut queue_timeout = None;
    let mut retries_at = None;
    let mut proxy_send: Vec<String> = Vec::new();
    for (k, l) in lines.iter().enumerate() {
        let mut take = true;
        match (l.kw(), l.arg(1)) {
            ("balance", _) => balance(c, l, &mut p),
            ("hash-type", _) => {
                if l.arg(1) != "consistent" {
                    c.approx(&l.at, l.text(), "Switchyard's hash is always consistent (a ring): fewer keys move when servers change");
                }
            }
            ("default-server", _) => default_server = l.words[1..].to_vec(),
            ("server", _) => {
                let mut opts = default_server.clone();
                opts.extend(l.words.get(3..).unwrap_or_default().iter().cloned());
                if let Some(s) = server(c, l, &opts, &mut checks, &mut p, &mut proxy_send) {
                    p.servers.push(s);
                }
            }
            ("option", "httpchk") => {
                let mut h = Health {
                    kind: "http".into(),
                    ..Health::default()
                };
                match &l.words[2..] {
                    [] => {}
                    [uri] => h.path = Some(uri.clone()),
                    [m, uri, rest @ ..] => {
                        h.method = Some(m.clone());
                        h.path = Some(uri.clone());
                        if let Some(host) = rest.join(" ").split("Host:").nth(1) {
                            h.host = Some(host.trim().trim_start_matches('\\').trim().to_string());
                        }
                    }
                }
                httpchk = Some(h);
            }
            ("http-check", "send") => {
                let h = httpchk.get_or_insert_with(|| Health {
                    kind: "http".into(),
                    ..Health::default()
                });
                let w = &l.words[2..];
                for (i, word) in w.iter().enumerate() {
                    let next = w.get(i + 1).cloned();
                    match word.as_str() {
                        "meth" => h.method = next,
                        "uri" => h.path = next,
                        "hdr" if next.as_deref().is_some_and(|n| n.eq_ignore_ascii_case("host")) => {
                            h.host = w.get(i + 2).cloned()
                        }
                        _ => {}
                    }
                }
            }
            ("http-check", "expect") => {
                let h = httpchk.get_or_insert_with(|| Health {
                    kind: "http".into(),
                    ..Health::default()
                });
                match (l.arg(2), l.arg(3)) {
                    ("status", s) => h.expect = Some(s.to_string()),
                    _ => c.note(&l.at, l.text(), "Switchyard checks a status list (and expect_body, a substring); other expectations are not carried"),
                }
            }
            ("cookie", _) => cookie(c, l, &mut p),
            ("stick-table", _) => {}
            ("stick", _) => stick(c, l, lines, &mut p),
            ("retries", n) => {
                retries = n.parse().ok();
                retries_at = Some(l.clone());
            }
            ("retry-on", _) => retry_on = Some(retry_conditions(c, l)),
            ("option", "redispatch") => redispatch = true,
            ("timeout", "connect") => p.connect_timeout = time(l.arg(2)),
            ("timeout", "server") => {
                p.read_timeout = time(l.arg(2));
                p.send_timeout = time(l.arg(2));
            }
            ("timeout", "tunnel") => p.tunnel_idle_timeout = time(l.arg(2)),
            ("timeout", "check") => check_timeout = time(l.arg(2)),
            ("timeout", "queue") if !tcp => queue_timeout = time(l.arg(2)),
            ("timeout", "queue") => c.note(&l.at, l.text(), "a tcp connection is not queued in Switchyard: with every server at max_conns it is closed"),
            ("option", "http-server-close") | ("option", "httpclose") => p.keepalive = Some(0),
            ("http-reuse", mode) => {
                if mode == "never" {
                    p.keepalive = Some(0);
                }
            }
            ("fullconn", _) => c.note(&l.at, l.text(), "Switchyard's max_conns is fixed (a server's maxconn is carried there); no limit that grows with the load"),
            ("option", "allbackups") => c.note(&l.at, l.text(), "Switchyard balances over all backups when no primary can serve: allbackups is how it works"),
            _ => take = false,
        }
        if take {
            used[k] = true;
        }
    }
    // httpchk without any `check` server: HAProxy runs no checks either.
    if let Some(h) = httpchk
        && checks.checked > 0
    {
        p.health = Some(h);
    }
    if checks.checked > 0 {
        let h = p.health.get_or_insert_with(|| Health {
            kind: "tcp".into(),
            ..Health::default()
        });
        h.interval = common(&checks.inter);
        h.rise = common(&checks.rise);
        h.fall = common(&checks.fall);
        let interval = h.interval.clone().unwrap_or("2s".into());
        h.timeout = check_timeout.or_else(|| {
            // HAProxy times a check out after `inter` when `timeout check` is not set;
            // Switchyard's timeout may not exceed the interval.
            Some(interval.clone())
        });
        if h.interval.is_none() {
            h.interval = Some("2s".into());
        }
        for at in &checks.unchecked {
            c.approx(at, "server … (without check)", "Switchyard checks every server of a pool that has checks; HAProxy never checks this one");
        }
    }
    // HAProxy waits `timeout queue` in the queue, else `timeout connect`.
    if !tcp && p.servers.iter().any(|s| s.max_conns.is_some()) {
        p.queue_timeout = queue_timeout.or_else(|| p.connect_timeout.clone());
    }
    if retries.is_some() || retry_on.is_some() {
        p.retry = Some(Retry {
            attempts: Some(retries.unwrap_or(3).min(20)),
            on: Some(retry_on.unwrap_or_else(|| vec!["connect_failure".into()])),
            non_idempotent: false,
        });
        if !redispatch && let Some(l) = retries_at {
            c.approx(&l.at, l.text(), "HAProxy retries the same server (without option redispatch); Switchyard retries on another one");
        }
    } else if !tcp {
        // HAProxy's default: 3 retries of a failed connect.
        p.retry = Some(Retry {
            attempts: Some(3),
            on: Some(vec!["connect_failure".into()]),
            non_idempotent: false,
        });
    }
    let proxy = match proxy_send.first().map(String::as_str) {
        None => None,
        Some(v) => {
            if proxy_send.len() < p.servers.len() {
                c.approx(at, "send-proxy", "Switchyard sends PROXY headers per listener, to every server of the pool, not per server");
            }
            Some(if v == "send-proxy-v2" { "v2" } else { "v1" })
        }
    };
    (p, proxy)
}

fn balance(c: &mut Config, l: &Line, p: &mut Pool) {
    let (alg, key): (&str, Option<String>) = match l.arg(1) {
        "roundrobin" | "static-rr" => ("round_robin", None),
        "leastconn" => ("least_conn", None),
        "random" if l.arg(2).is_empty() || l.arg(2) == "1" => ("random", None),
        "random" => ("p2c", None),
        a if a.starts_with("random(") => (if a == "random(1)" { "random" } else { "p2c" }, None),
        "source" => {
            c.approx(&l.at, l.text(), "the whole client address is hashed on a consistent ring (hash on client_ip); HAProxy's default map-based hash moves more clients when servers change");
            ("hash", Some("client_ip".into()))
        }
        "uri" => {
            c.approx(&l.at, l.text(), "Switchyard's uri key is the path with the query string (HAProxy hashes the path only unless `whole`)");
            ("hash", Some("uri".into()))
        }
        "url_param" if !l.arg(2).is_empty() => ("hash", Some(format!("query:{}", l.arg(2)))),
        a if a.starts_with("hdr(") && a.ends_with(')') => (
            "hash",
            Some(format!(
                "header:{}",
                &a[4..a.len() - 1].to_ascii_lowercase()
            )),
        ),
        _ => {
            c.note(&l.at, l.text(), "no equivalent algorithm (Switchyard has round_robin, least_conn, least_time, p2c, random, ip_hash, hash, maglev); round_robin is used");
            return;
        }
    };
    p.algorithm = (alg != "round_robin").then(|| alg.to_string());
    p.hash_key = key;
    if p.l4 && p.hash_key.as_deref().is_some_and(|k| k != "client_ip") {
        c.note(
            &l.at,
            l.text(),
            "a tcp pool hashes only the client address; round_robin is used",
        );
        p.algorithm = None;
        p.hash_key = None;
    }
}

fn server(
    c: &mut Config,
    l: &Line,
    opts: &[String],
    checks: &mut Checks,
    p: &mut Pool,
    proxy_send: &mut Vec<String>,
) -> Option<Server> {
    let addr = l.arg(2);
    if addr.is_empty()
        || addr.contains('@') && !addr.starts_with("ipv4@") && !addr.starts_with("ipv6@")
    {
        c.note(
            &l.at,
            l.text(),
            "only host:port servers are carried (no UNIX sockets or other families)",
        );
        return None;
    }
    let addr = addr.trim_start_matches("ipv4@").trim_start_matches("ipv6@");
    let has_port = addr.rsplit_once(':').is_some_and(|(h, port)| {
        !port.is_empty()
            && port.chars().all(|c| c.is_ascii_digit())
            && (!h.contains(':') || h.ends_with(']'))
    });
    let addr = if has_port {
        addr.to_string()
    } else {
        c.approx(
            &l.at,
            l.text(),
            "no port: HAProxy uses the port the client connected to; :80 is written",
        );
        format!("{addr}:80")
    };
    let mut s = Server {
        addr,
        name: Some(l.arg(1).to_string()),
        at: l.at.clone(),
        ..Server::default()
    };
    let mut checked = false;
    let mut i = 0;
    while i < opts.len() {
        let o = opts[i].as_str();
        let v = opts.get(i + 1).map(String::as_str).unwrap_or("");
        let mut skip = 1;
        match o {
            "check" => checked = true,
            "no-check" => checked = false,
            "inter" | "fastinter" | "downinter" => {
                if o == "inter" {
                    checks.inter.extend(time(v));
                }
                skip = 2;
            }
            "rise" => {
                checks.rise.extend(v.parse::<u32>().ok());
                skip = 2;
            }
            "fall" => {
                checks.fall.extend(v.parse::<u32>().ok());
                skip = 2;
            }
            "weight" => {
                match v.parse::<u32>() {
                    Ok(0) => {
                        s.down = true;
                        c.approx(
                            &l.at,
                            format!("{o} {v}"),
                            "weight 0 (no new traffic) is written as down = true",
                        );
                    }
                    Ok(w) => s.weight = Some(w.min(1000)),
                    Err(_) => c.note(&l.at, format!("{o} {v}"), "not a weight"),
                }
                skip = 2;
            }
            "backup" => s.backup = true,
            "disabled" => s.down = true,
            "enabled" => s.down = false,
            "slowstart" => {
                s.slow_start = time(v);
                skip = 2;
            }
            "cookie" => {
                c.note(&l.at, format!("cookie {v}"), "Switchyard's sticky cookie value names the server by a hash of its name and address; existing clients' cookies are not recognised");
                skip = 2;
            }
            "ssl" => {
                if p.tls.is_none() {
                    p.tls = Some("{ }".into());
                }
            }
            "verify" => {
                if v == "none" {
                    p.tls = Some("{ insecure_skip_verify = true }".into());
                }
                skip = 2;
            }
            "ca-file" => {
                p.tls = Some(format!("{{ ca = {} }}", q(v)));
                skip = 2;
            }
            "send-proxy" | "send-proxy-v2" => proxy_send.push(o.to_string()),
            "maxconn" => {
                match v.parse::<u32>() {
                    Ok(0) => {}
                    Ok(n) => {
                        s.max_conns = Some(n);
                        let why = if p.l4 {
                            "a tcp connection is not queued: with every server at max_conns Switchyard closes it (HAProxy queues it)"
                        } else {
                            "with every server full, a request waits in the pool's queue (queue_size: 1024 unless maxqueue says; HAProxy's has no bound) up to queue_timeout, then 503 as in HAProxy"
                        };
                        c.approx(&l.at, format!("{o} {v}"), why);
                    }
                    Err(_) => c.note(&l.at, format!("{o} {v}"), "not a number"),
                }
                skip = 2;
            }
            "maxqueue" if !p.l4 => {
                match v.parse::<u32>() {
                    Ok(0) => {}
                    Ok(n) => {
                        let total = p.queue_size.unwrap_or(0).saturating_add(n).min(1_000_000);
                        p.queue_size = Some(total);
                        c.approx(&l.at, format!("{o} {v}"), "Switchyard's queue is the pool's: queue_size is the servers' maxqueue added up");
                    }
                    Err(_) => c.note(&l.at, format!("{o} {v}"), "not a number"),
                }
                skip = 2;
            }
            "minconn" | "maxqueue" => {
                let why = if o == "minconn" {
                    "Switchyard's max_conns is fixed (maxconn is carried there); no limit that grows with the load (minconn, fullconn)"
                } else {
                    "a tcp connection is not queued in Switchyard"
                };
                c.note(&l.at, format!("{o} {v}"), why);
                skip = 2;
            }
            "check-ssl" | "check-send-proxy" | "no-sslv3" | "no-tlsv10" | "no-tlsv11"
            | "resolve-prefer" | "init-addr" | "resolvers" | "port" | "addr" | "agent-check"
            | "agent-port" | "agent-inter" | "observe" | "error-limit" | "on-error"
            | "on-marked-down" | "on-marked-up" | "track" | "sni" | "alpn" | "proto" | "id"
            | "crt" | "pool-max-conn" | "pool-purge-delay" | "tfo" | "max-reuse" => {
                let takes_value = !matches!(
                    o,
                    "check-ssl"
                        | "check-send-proxy"
                        | "no-sslv3"
                        | "no-tlsv10"
                        | "no-tlsv11"
                        | "agent-check"
                        | "tfo"
                );
                let shown = if takes_value {
                    format!("{o} {v}")
                } else {
                    o.to_string()
                };
                c.note(&l.at, shown, "no Switchyard equivalent for a server");
                if takes_value {
                    skip = 2;
                }
            }
            _ => c.note(&l.at, o, "unknown server option"),
        }
        i += skip;
    }
    if checked {
        checks.checked += 1;
    } else {
        checks.unchecked.push(l.at.clone());
    }
    Some(s)
}

fn cookie(c: &mut Config, l: &Line, p: &mut Pool) {
    let name = l.arg(1).to_string();
    let mode = l.words.get(2..).unwrap_or_default();
    let mut s = Sticky {
        mode: "cookie".into(),
        name: Some(name),
        ..Sticky::default()
    };
    if mode.iter().any(|m| m == "prefix" || m == "rewrite") {
        s.mode = "app_cookie".into();
        c.approx(&l.at, l.text(), "Switchyard learns the application's cookie value in a table (app_cookie) instead of changing the cookie");
    } else if !mode.iter().any(|m| m == "insert") {
        c.approx(
            &l.at,
            l.text(),
            "Switchyard inserts its own cookie (as `insert`)",
        );
    }
    let mut i = 0;
    while i < mode.len() {
        match mode[i].as_str() {
            "insert" | "indirect" | "nocache" | "prefix" | "rewrite" | "httponly" => {}
            "maxlife" | "maxidle" => {
                if mode[i].as_str() == "maxlife" || s.ttl.is_none() {
                    s.ttl = mode.get(i + 1).and_then(|v| duration(v, "s"));
                }
                i += 1;
            }
            other => c.note(&l.at, other, "Switchyard's cookie is Path=/, HttpOnly, SameSite=Lax (Secure over TLS); this attribute is not carried"),
        }
        i += 1;
    }
    if s.mode == "cookie" && s.ttl.is_none() {
        c.approx(
            &l.at,
            l.text(),
            "without maxlife HAProxy's cookie lasts as long as the browser session; Switchyard's carries Max-Age = the sticky ttl, 1h unless the [pool.X.sticky] table sets ttl",
        );
    }
    p.sticky = Some(s);
}

fn stick(c: &mut Config, l: &Line, lines: &[Line], p: &mut Pool) {
    let table = lines.iter().find(|x| x.kw() == "stick-table");
    let size = table.and_then(|t| {
        let i = t.words.iter().position(|w| w == "size")?;
        let v = t.words.get(i + 1)?;
        let (n, mul) = match v.chars().last() {
            Some('k') => (&v[..v.len() - 1], 1_000),
            Some('m') => (&v[..v.len() - 1], 1_000_000),
            _ => (v.as_str(), 1),
        };
        n.parse::<u64>().ok().map(|n| n * mul)
    });
    let ttl = table.and_then(|t| {
        let i = t.words.iter().position(|w| w == "expire")?;
        time(t.words.get(i + 1)?)
    });
    let what = match (l.arg(1), l.arg(2)) {
        ("on", "src") | ("match", "src") | ("store-request", "src") => Some(("source_ip", None)),
        ("on", k) | ("match", k) | ("store-request", k) | ("store-response", k) => k
            .strip_prefix("req.cook(")
            .or_else(|| k.strip_prefix("res.cook("))
            .or_else(|| k.strip_prefix("cookie("))
            .and_then(|r| r.strip_suffix(')'))
            .map(|n| ("app_cookie", Some(n.to_string()))),
        _ => None,
    };
    match what {
        Some((mode, name)) => {
            if p.sticky.as_ref().is_some_and(|s| s.mode == mode) {
                return;
            }
            p.sticky = Some(Sticky {
                mode: mode.into(),
                name,
                ttl,
                size,
            });
        }
        None => c.note(
            &l.at,
            l.text(),
            "Switchyard sticks by client address (stick on src) or an application cookie only",
        ),
    }
}

fn retry_conditions(c: &mut Config, l: &Line) -> Vec<String> {
    let mut on = Vec::new();
    for w in &l.words[1..] {
        match w.as_str() {
            "conn-failure" => on.push("connect_failure".to_string()),
            "empty-response" | "junk-response" => on.push("reset".into()),
            "response-timeout" => on.push("timeout".into()),
            "all-retryable-errors" => on.extend(
                [
                    "connect_failure",
                    "reset",
                    "timeout",
                    "500",
                    "502",
                    "503",
                    "504",
                ]
                .map(String::from),
            ),
            "none" => {}
            s if matches!(
                s,
                "404" | "408" | "425" | "500" | "501" | "502" | "503" | "504"
            ) =>
            {
                if s == "408" || s == "425" || s == "501" {
                    c.note(
                        &l.at,
                        s,
                        "Switchyard retries on 5xx statuses, 403, 404 and 429 only",
                    );
                } else {
                    on.push(s.to_string());
                }
            }
            s => c.note(&l.at, s, "not a retry condition Switchyard knows"),
        }
    }
    on
}

//! A HAProxy configuration as Switchyard's: `backend`s become pools (`haproxy_backend.rs`),
//! `frontend`s one listener per `bind`, with `use_backend … if ACL` as routes (host, path
//! prefix, method, header, cookie; `||` gives one route per alternative) and
//! `default_backend` as the listener's pool; a `listen` section is both; a proxy's `defaults`
//! section is read before its own lines. HAProxy's default mode is tcp, as here.

use std::collections::HashMap;
use std::path::Path;

use super::haproxy_backend::{self, time};
use super::haproxy_guard;
use super::haproxy_parse::{Line, Section};
use super::model::{Config, Listener, Origin, Route, q};

/// What a pool is and how to reach it: (pool name, PROXY version sent, tcp).
type Backends = HashMap<String, (String, Option<&'static str>, bool)>;

struct Proxy<'a> {
    sec: &'a Section,
    /// The `defaults` lines, then the section's own.
    lines: Vec<Line>,
    tcp: bool,
}

pub fn import(sections: &[Section], skipped: &[(Line, String)], c: &mut Config) {
    for (l, why) in skipped {
        c.note(&l.at, l.text(), why.clone());
    }
    let mut named: HashMap<String, Vec<Line>> = HashMap::new();
    let mut last: Vec<Line> = Vec::new();
    let mut proxies = Vec::new();
    for s in sections {
        match s.kind.as_str() {
            "global" => global(c, s),
            "defaults" => {
                let mut lines = s
                    .from
                    .as_ref()
                    .and_then(|f| named.get(f))
                    .cloned()
                    .unwrap_or_default();
                lines.extend(s.lines.iter().cloned());
                if !s.name.is_empty() {
                    named.insert(s.name.clone(), lines.clone());
                }
                last = lines;
            }
            "listen" if stats_only(&s.lines) => c.note(
                &s.at,
                format!("listen {}", s.name),
                "the whole section: a stats page only (no server): no stats page here; the admin listener serves /metrics, /status and a dashboard: add [admin] with listen = \"127.0.0.1:9900\" (docs/admin.md)",
            ),
            "frontend" | "backend" | "listen" => {
                let mut lines = match &s.from {
                    Some(f) => named.get(f).cloned().unwrap_or_default(),
                    None => last.clone(),
                };
                lines.extend(s.lines.iter().cloned());
                let mode = lines
                    .iter()
                    .rev()
                    .find(|l| l.kw() == "mode")
                    .map(|l| l.arg(1).to_string());
                proxies.push(Proxy {
                    sec: s,
                    lines,
                    tcp: mode.as_deref() != Some("http"),
                });
            }
            other => {
                let why = match other {
                    "cache" => "Switchyard does not cache responses",
                    "userlist" => "Switchyard has no authentication",
                    "peers" => {
                        "not carried: Switchyard shares stick tables through Redis instead of peers; add [redis] with addr = \"host:6379\" and shared = true in the pool's [sticky] (docs/shared-state.md)"
                    }
                    "resolvers" => {
                        "not carried: give the pool resolver = \"IP:PORT\" and its servers resolve = true (hold valid → resolver_valid; init-addr none → init_addr = \"none\"); without them a server name is resolved at start and at each reload"
                    }
                    "http-errors" => "Switchyard writes its own error pages",
                    _ => "no Switchyard equivalent",
                };
                c.note(
                    &s.at,
                    format!("{} {}", s.kind, s.name),
                    format!("the whole section: {why}"),
                );
            }
        }
    }
    let mut used: Vec<Vec<bool>> = proxies.iter().map(|p| vec![false; p.lines.len()]).collect();
    let mut backends = Backends::new();
    for (k, p) in proxies.iter().enumerate() {
        if p.sec.kind != "frontend" {
            let (pool, proxy) =
                haproxy_backend::backend(c, &p.sec.name, p.tcp, &p.lines, &mut used[k], &p.sec.at);
            backends.insert(p.sec.name.clone(), (pool.name.clone(), proxy, p.tcp));
            c.pools.push(pool);
        }
    }
    for (k, p) in proxies.iter().enumerate() {
        if p.sec.kind != "backend" {
            let own = (p.sec.kind == "listen").then(|| p.sec.name.clone());
            frontend(c, p, own, &backends, &mut used[k]);
        }
    }
    // Every line neither half understood, once (a `defaults` line is seen by every proxy).
    let mut seen = std::collections::HashSet::new();
    for (k, p) in proxies.iter().enumerate() {
        for (i, l) in p.lines.iter().enumerate() {
            if !used[k][i]
                && seen.insert((l.at.clone(), l.text()))
                && !seen_by_other(&proxies, &used, l)
            {
                let why = reason(l, p.sec.kind.as_str());
                let refusal = matches!(l.kw(), "http-request" | "tcp-request")
                    && l.words.iter().any(|w| {
                        matches!(w.as_str(), "deny" | "reject" | "tarpit" | "silent-drop")
                    });
                match why {
                    Some(why) if refusal => c.warn(
                        &l.at,
                        l.text(),
                        format!(
                            "HAProxy refused these requests; they WILL now be proxied by {} {} as any other: {why}",
                            p.sec.kind, p.sec.name
                        ),
                    ),
                    Some(why) => c.note(&l.at, l.text(), why),
                    None => {}
                }
            }
        }
    }
}

/// Whether a `listen` section only serves HAProxy's stats page (`stats enable`, `stats uri`)
/// and sends nothing to a server: it becomes no listener and no pool.
fn stats_only(lines: &[Line]) -> bool {
    let stats = lines.iter().any(|l| l.kw() == "stats");
    let forwards = lines.iter().any(|l| {
        matches!(
            l.kw(),
            "server" | "server-template" | "use_backend" | "default_backend" | "dispatch"
        )
    });
    stats && !forwards
}

/// Whether another proxy used this `defaults` line (so it is carried).
fn seen_by_other(proxies: &[Proxy<'_>], used: &[Vec<bool>], l: &Line) -> bool {
    proxies.iter().zip(used).any(|(p, u)| {
        p.lines
            .iter()
            .zip(u)
            .any(|(x, &taken)| taken && x.at == l.at)
    })
}

fn global(c: &mut Config, s: &Section) {
    for l in &s.lines {
        match l.kw() {
            "nbthread" => c.workers = l.arg(1).parse().ok(),
            "maxconn" => c.note(&l.at, l.text(), "no global connection limit (each listener has its max_connections)"),
            "log" => c.note(&l.at, l.text(), LOG),
            k if k.starts_with("ssl-default") || k.starts_with("tune.ssl") => c.note(&l.at, l.text(), "TLS is rustls with its safe defaults: TLS 1.2 and 1.3, modern ciphers"),
            _ => c.note(&l.at, l.text(), "a process setting with no Switchyard equivalent (it runs in the foreground under its service manager)"),
        }
    }
}

const LOG: &str = "Switchyard writes its access log to standard error, or to a file or stdout ([log] access), not to syslog; its own messages go to standard error (--log-level)";

/// Why a line is not carried; `None` for lines that need no word (what Switchyard does anyway).
fn reason(l: &Line, kind: &str) -> Option<String> {
    let r = match (l.kw(), l.arg(1)) {
        ("mode", _) | ("option", "forwardfor") | ("option", "http-keep-alive") => return None,
        ("option", "httplog") | ("option", "tcplog") => {
            "Switchyard always writes one access line per request (tcp: per connection), nginx's combined line with its own fields or JSON ([log] format); not HAProxy's httplog/tcplog format"
        }
        ("log", _) => LOG,
        ("log-format", _) => {
            "Switchyard's line is nginx's combined with its own fields, or JSON ([log] format); a custom format is not carried"
        }
        ("option", "dontlognull") | ("option", "log-health-checks") | ("option", "logasap") => {
            "no Switchyard equivalent (its access log is [log])"
        }
        ("stats", _) => "no stats page: the admin listener serves /metrics and /status",
        ("monitor-uri", _) => {
            "the admin listener's /health/live and /health/ready answer orchestrators"
        }
        ("compression", _) => "Switchyard does not compress responses",
        ("http-request", "cache-use") | ("http-response", "cache-store") => {
            "Switchyard does not cache responses"
        }
        ("http-request", _) | ("tcp-request", _) => {
            "not carried: Switchyard refuses by client address (allow/deny: `deny if { src … }` is carried), by method, path or header (block rules, with their status) and by rate ([[listener.limit]]: `sc_http_req_rate(0) gt N` is carried); it does not rewrite requests or redirect (other than to https): write such rules by hand (docs/security.md)"
        }
        ("http-response", _) | ("http-after-response", _) | ("tcp-response", _) => {
            "Switchyard does not rewrite responses (it sets only hsts)"
        }
        ("timeout", "client-fin") | ("timeout", "server-fin") => {
            "Switchyard closes half-closed connections with the rest (no separate timeout)"
        }
        ("errorfile", _)
        | ("errorloc", _)
        | ("errorloc302", _)
        | ("errorloc303", _)
        | ("errorfiles", _) => "Switchyard writes its own error answers",
        ("capture", _) | ("declare", _) | ("unique-id-format", _) | ("unique-id-header", _) => {
            "no Switchyard equivalent"
        }
        ("option", "abortonclose")
        | ("option", "prefer-last-server")
        | ("option", "http-ignore-probes")
        | ("option", "socket-stats")
        | ("option", "splice-auto")
        | ("option", "tcpka")
        | ("option", "clitcpka")
        | ("option", "srvtcpka") => "no Switchyard equivalent",
        ("default_backend", _) | ("use_backend", _) if kind == "backend" => {
            "only a frontend routes"
        }
        _ => return Some(format!("no Switchyard equivalent in a {kind}")),
    };
    Some(r.to_string())
}

/// A route condition: everything set must hold.
#[derive(Debug, Clone, Default, PartialEq)]
struct Cond {
    host: Option<String>,
    path: Option<String>,
    method: Option<String>,
    header: Option<(String, String)>,
    cookie: Option<(String, String)>,
}

impl Cond {
    /// Both conditions at once; `None` when they cannot both hold in one route.
    fn and(&self, o: &Cond) -> Option<Cond> {
        fn one<T: Clone + PartialEq>(a: &Option<T>, b: &Option<T>) -> Option<Option<T>> {
            match (a, b) {
                (Some(x), Some(y)) if x != y => None,
                (Some(x), _) | (None, Some(x)) => Some(Some(x.clone())),
                (None, None) => Some(None),
            }
        }
        Some(Cond {
            host: one(&self.host, &o.host)?,
            path: one(&self.path, &o.path)?,
            method: one(&self.method, &o.method)?,
            header: one(&self.header, &o.header)?,
            cookie: one(&self.cookie, &o.cookie)?,
        })
    }
}

/// An ACL (`criterion [flags] values…`) as alternatives, or why it cannot be one.
fn acl(c: &mut Config, words: &[String], at: &Origin) -> Result<Vec<Cond>, String> {
    let Some(criterion) = words.first() else {
        return Err("an empty condition".into());
    };
    let mut matching = None;
    let mut values = Vec::new();
    let mut ignore_case = false;
    let mut i = 1;
    while i < words.len() {
        match words[i].as_str() {
            "-i" => ignore_case = true,
            "-m" => {
                matching = words.get(i + 1).cloned();
                i += 1;
            }
            "-f" => return Err("values read from a file are not carried".into()),
            "--" => {}
            v => values.push(v.to_string()),
        }
        i += 1;
    }
    let crit = criterion.as_str();
    let (base, arg) = match crit.split_once('(') {
        Some((b, a)) => (b, a.trim_end_matches(')').to_ascii_lowercase()),
        None => (crit, String::new()),
    };
    let kind = match (base, matching.as_deref()) {
        ("path_beg" | "url_beg", _) | ("path" | "url", Some("beg")) => "path_beg",
        ("path", None | Some("str")) => "path",
        ("hdr" | "req.hdr", _) if arg == "host" => match matching.as_deref() {
            None | Some("str") => "host",
            Some("dom") => "host_dom",
            Some("end") => "host_end",
            _ => "host_other",
        },
        ("hdr_dom", _) if arg == "host" => "host_dom",
        ("hdr_end", _) if arg == "host" => "host_end",
        ("hdr_beg", _) if arg == "host" => "host_other",
        ("hdr" | "req.hdr", None | Some("str")) => "header",
        ("method", _) => "method",
        ("req.cook" | "cook", None | Some("str")) => "cookie",
        _ => {
            return Err(format!(
                "Switchyard routes by host, path prefix, method, header and cookie; `{crit}` is not one of them"
            ));
        }
    };
    let mut out = Vec::new();
    for v in values {
        let cond = match kind {
            "path_beg" => Cond {
                path: Some(v),
                ..Cond::default()
            },
            "path" => {
                c.approx(
                    at,
                    format!("{crit} {v}"),
                    "an exact path becomes a path prefix (it also matches longer paths)",
                );
                Cond {
                    path: Some(v),
                    ..Cond::default()
                }
            }
            "host" => Cond {
                host: Some(v.split(':').next().unwrap_or(&v).to_ascii_lowercase()),
                ..Cond::default()
            },
            "host_dom" => {
                let d = v.trim_start_matches('.').to_ascii_lowercase();
                out.push(Cond {
                    host: Some(d.clone()),
                    ..Cond::default()
                });
                Cond {
                    host: Some(format!("*.{d}")),
                    ..Cond::default()
                }
            }
            "host_end" if v.starts_with('.') => Cond {
                host: Some(format!("*{}", v.to_ascii_lowercase())),
                ..Cond::default()
            },
            "host_end" | "host_other" => {
                return Err("Switchyard matches a host exactly or by a leading *. wildcard".into());
            }
            "header" => {
                if ignore_case {
                    c.approx(
                        at,
                        format!("{crit} -i {v}"),
                        "Switchyard compares a header value exactly (case-sensitive)",
                    );
                }
                Cond {
                    header: Some((arg.clone(), v)),
                    ..Cond::default()
                }
            }
            "method" => Cond {
                method: Some(v.to_ascii_uppercase()),
                ..Cond::default()
            },
            _ => Cond {
                cookie: Some((arg.clone(), v)),
                ..Cond::default()
            },
        };
        out.push(cond);
    }
    if out.is_empty() {
        return Err("an ACL without values (a presence test) has no equivalent".into());
    }
    Ok(out)
}

/// `if cond…` / `unless …`: the alternatives (OR of ANDs) as route conditions.
fn condition(
    c: &mut Config,
    words: &[String],
    acls: &HashMap<String, Result<Vec<Cond>, String>>,
    at: &Origin,
) -> Result<Vec<Cond>, String> {
    match words.first().map(String::as_str) {
        Some("if") => {}
        Some("unless") => return Err("a negated condition (unless) has no equivalent".into()),
        None => return Ok(vec![Cond::default()]),
        Some(_) => return Err("a condition Switchyard cannot read".into()),
    }
    let mut groups: Vec<Vec<Cond>> = Vec::new();
    let mut current = vec![Cond::default()];
    let mut i = 1;
    while i < words.len() {
        let w = words[i].as_str();
        let alternatives: Vec<Cond> = match w {
            "||" | "or" => {
                groups.push(std::mem::replace(&mut current, vec![Cond::default()]));
                i += 1;
                continue;
            }
            "{" => {
                let end = words[i..]
                    .iter()
                    .position(|x| x == "}")
                    .map(|e| i + e)
                    .ok_or("an unclosed { … }")?;
                let inner = acl(c, &words[i + 1..end], at)?;
                i = end + 1;
                inner
            }
            n if n.starts_with('!') => {
                return Err(format!("a negated condition ({n}) has no equivalent"));
            }
            n => {
                i += 1;
                match acls.get(n) {
                    Some(Ok(v)) => v.clone(),
                    Some(Err(e)) => return Err(format!("acl {n}: {e}")),
                    None => return Err(format!("no acl named {n}")),
                }
            }
        };
        current = current
            .iter()
            .flat_map(|a| alternatives.iter().filter_map(move |b| a.and(b)))
            .collect();
    }
    groups.push(current);
    Ok(groups.into_iter().flatten().collect())
}

struct Bind {
    addr: String,
    certs: Vec<String>,
    ssl: bool,
    at: Origin,
}

fn bind(c: &mut Config, l: &Line) -> Vec<Bind> {
    let mut out = Vec::new();
    let mut certs = Vec::new();
    let mut ssl = false;
    let mut i = 2;
    while i < l.words.len() {
        match l.arg(i) {
            "ssl" => ssl = true,
            "crt" => {
                certs.push(l.arg(i + 1).to_string());
                i += 1;
            }
            "alpn" | "name" => i += 1,
            "v4v6" | "v6only" | "defer-accept" | "tfo" | "transparent" => {}
            "accept-proxy" => c.note(&l.at, "accept-proxy", "set accept_proxy_protocol and trusted_proxies (the senders' addresses) on the listener by hand"),
            other => {
                c.note(&l.at, other, "a bind option Switchyard does not set");
            }
        }
        i += 1;
    }
    for a in l.arg(1).split(',') {
        let a = a.trim_start_matches("ipv4@").trim_start_matches("ipv6@");
        if a.contains('@') {
            c.note(
                &l.at,
                l.text(),
                "only TCP addresses are carried (no UNIX sockets, QUIC or file descriptors)",
            );
            continue;
        }
        let Some((host, port)) = a.rsplit_once(':') else {
            c.note(&l.at, l.text(), "a bind without a port");
            continue;
        };
        if port.contains('-') {
            c.note(
                &l.at,
                l.text(),
                "port ranges are not carried: one listener per port",
            );
            continue;
        }
        let addr = match host {
            "" | "*" | "0.0.0.0" => port.to_string(),
            h => format!("{h}:{port}"),
        };
        out.push(Bind {
            addr,
            certs: certs.clone(),
            ssl,
            at: l.at.clone(),
        });
    }
    out
}

/// `crt` files (cert and key in one PEM, or a directory of them), made absolute.
fn pairs(c: &mut Config, b: &Bind) -> Vec<(String, String)> {
    let base = super::model::absolute(Path::new(&b.at.file).parent().unwrap_or(Path::new(".")));
    let mut out = Vec::new();
    for crt in &b.certs {
        let p = base.join(crt);
        let p = p.as_path();
        if p.is_dir() {
            let mut files: Vec<_> = std::fs::read_dir(p)
                .into_iter()
                .flatten()
                .flatten()
                .map(|e| e.path())
                .filter(|f| f.extension().is_some_and(|x| x == "pem"))
                .collect();
            files.sort();
            for f in files {
                let s = f.display().to_string();
                out.push((s.clone(), s));
            }
        } else {
            let s = p.display().to_string();
            out.push((s.clone(), s));
        }
    }
    if out.is_empty() {
        c.note(
            &b.at,
            "bind … ssl",
            "no crt: an https listener needs a certificate",
        );
    }
    out
}

fn frontend(
    c: &mut Config,
    p: &Proxy<'_>,
    own: Option<String>,
    backends: &Backends,
    used: &mut [bool],
) {
    let mut binds = Vec::new();
    let mut acls: HashMap<String, Result<Vec<Cond>, String>> = HashMap::new();
    let mut routes = Vec::new();
    let mut default = own
        .as_ref()
        .and_then(|n| backends.get(n))
        .map(|b| b.0.clone());
    let mut redirect = false;
    let mut hsts = None;
    let mut extra = Vec::new();
    let mut access = haproxy_guard::Access::new(p.tcp);
    haproxy_guard::acls(&p.lines, &mut access);
    for (k, l) in p.lines.iter().enumerate() {
        if haproxy_guard::line(c, l, &mut access) {
            used[k] = true;
            continue;
        }
        let mut take = true;
        match (l.kw(), l.arg(1)) {
            ("bind", _) => binds.extend(bind(c, l)),
            ("acl", name) => {
                // Several lines of one name are alternatives (OR), as in HAProxy.
                let r = acl(c, &l.words[2..], &l.at);
                let merged = match (acls.remove(name), r) {
                    (None, r) => r,
                    (Some(Ok(mut a)), Ok(b)) => {
                        a.extend(b);
                        Ok(a)
                    }
                    (Some(Err(e)), _) | (_, Err(e)) => Err(e),
                };
                acls.insert(name.to_string(), merged);
            }
            ("use_backend", b) => {
                match (backends.get(b), condition(c, &l.words[2..], &acls, &l.at)) {
                    (Some(be), Ok(conds)) => {
                        for cond in conds {
                            routes.push(Route {
                                host: cond.host,
                                path_prefix: cond.path,
                                method: cond.method,
                                header: cond.header,
                                cookie: cond.cookie,
                                pool: be.0.clone(),
                                at: l.at.clone(),
                                ..Route::default()
                            });
                        }
                    }
                    (None, _) => c.note(
                        &l.at,
                        l.text(),
                        format!("no backend named {b} (dynamic names are not carried)"),
                    ),
                    (_, Err(why)) => {
                        c.note(&l.at, l.text(), format!("the rule is left out: {why}"))
                    }
                }
            }
            ("default_backend", b) => match backends.get(b) {
                Some(be) => default = Some(be.0.clone()),
                None => c.note(&l.at, l.text(), format!("no backend named {b}")),
            },
            ("http-request", "redirect") if l.arg(2) == "scheme" && l.arg(3) == "https" => {
                redirect = true;
                let code = l
                    .words
                    .iter()
                    .position(|w| w == "code")
                    .map(|i| l.arg(i + 1));
                if code != Some("308") {
                    c.approx(&l.at, l.text(), "Switchyard redirects plain-HTTP listeners to https with 308 (keeps the method)");
                }
            }
            ("http-response" | "http-after-response", "set-header")
                if l.arg(2).eq_ignore_ascii_case("strict-transport-security") =>
            {
                match l
                    .arg(3)
                    .split(';')
                    .find_map(|x| x.trim().strip_prefix("max-age="))
                    .and_then(|n| n.trim().parse::<u64>().ok())
                {
                    Some(n) => hsts = Some(format!("{n}s")),
                    None => c.note(&l.at, l.text(), "no max-age in the header"),
                }
            }
            ("maxconn", n) => extra.push(("max_connections".to_string(), n.to_string())),
            ("timeout", "http-request") if !p.tcp => {
                if let Some(t) = time(l.arg(2)) {
                    extra.push(("client_header_timeout".to_string(), q(&t)));
                }
            }
            ("timeout", "http-keep-alive") if !p.tcp => {
                if let Some(t) = time(l.arg(2)) {
                    extra.push(("keepalive_timeout".to_string(), q(&t)));
                }
            }
            ("timeout", "client") if !p.tcp => {
                if let Some(t) = time(l.arg(2)) {
                    c.approx(&l.at, l.text(), "send_timeout closes a client that takes no bytes of its answer; client_header_timeout and keepalive_timeout bound its silences");
                    extra.push(("send_timeout".to_string(), q(&t)));
                }
            }
            ("timeout", "client") if p.tcp => {
                if let Some(t) = time(l.arg(2)) {
                    c.approx(&l.at, l.text(), "a tcp listener's idle_timeout closes a connection with no byte in either direction");
                    extra.push(("idle_timeout".to_string(), q(&t)));
                }
            }
            _ => take = false,
        }
        if take {
            used[k] = true;
        }
    }
    haproxy_guard::finish(c, &mut access);
    if p.tcp {
        access.guard.limits.clear();
    }
    if let Some(limit) = access.guard.limits.first()
        && binds.len() > 1
    {
        c.approx(
            &limit.at,
            "stick-table … http_req_rate",
            format!("each of the {} listeners (one per bind) counts alone (HAProxy: one table): a client may get up to {} times the rate across them", binds.len(), binds.len()),
        );
    }
    if binds.is_empty() {
        if p.sec.kind == "frontend" {
            c.note(
                &p.sec.at,
                format!("frontend {}", p.sec.name),
                "no bind: no listener",
            );
        }
        return;
    }
    if default.is_none() && routes.is_empty() && !redirect {
        c.note(
            &p.sec.at,
            format!("{} {}", p.sec.kind, p.sec.name),
            "it sends no request to a backend that could be carried: no listener",
        );
        return;
    }
    if default.is_none() && !p.tcp {
        c.approx(
            &p.sec.at,
            format!("{} {}", p.sec.kind, p.sec.name),
            "a request no rule matches gets 404 here (HAProxy answers 503)",
        );
    }
    let proxy_version = default
        .as_ref()
        .and_then(|d| backends.values().find(|b| b.0 == *d))
        .and_then(|b| b.1);
    for b in &binds {
        let proto = match (p.tcp, b.ssl) {
            (true, true) => {
                c.note(
                    &b.at,
                    "bind … ssl (mode tcp)",
                    "TLS termination at L4 is not supported: use mode http, or pass TLS through",
                );
                "tcp"
            }
            (true, false) => "tcp",
            (false, true) => "https",
            (false, false) => "http",
        };
        let mut l = Listener {
            name: c.listener_name(&p.sec.name),
            listen: b.addr.clone(),
            protocol: proto.into(),
            pool: default.clone(),
            routes: if p.tcp { Vec::new() } else { routes.clone() },
            redirect_https: redirect && !b.ssl,
            hsts: if b.ssl { hsts.clone() } else { None },
            extra: extra.clone(),
            guard: access.guard.clone(),
            at: b.at.clone(),
            ..Listener::default()
        };
        if b.ssl && !p.tcp {
            l.tls = pairs(c, b);
        }
        if let Some(v) = proxy_version {
            if p.tcp {
                l.extra.push(("proxy_protocol".into(), q(v)));
            } else {
                c.note(
                    &b.at,
                    "send-proxy",
                    "Switchyard sends PROXY headers from tcp listeners only",
                );
            }
        }
        c.listeners.push(l);
    }
}

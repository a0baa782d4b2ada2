//! What an import builds: a Switchyard configuration as plain values (listeners, routes,
//! pools, servers), each remembering the line it came from, and the notes on what was not
//! carried over. `emit` writes it as Switchyard TOML, with a comment naming the source line
//! of each listener, route, pool and server.

use std::fmt::Write;

/// Where something was written: `file:line`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Default)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A directive (or part of one) that the import did not carry over, or carried over only
/// approximately; each is reported with its place and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Note {
    pub at: Origin,
    /// The directive as written (shortened).
    pub directive: String,
    pub why: String,
    /// Carried, but with a different meaning (said in `why`); otherwise not carried at all.
    pub approximated: bool,
    /// Requests the source refused, answered or let through are now treated otherwise (they
    /// reach a pool, or a block rule refuses them)
    /// (said in `why`): printed as a warning, never a quiet note.
    pub warning: bool,
}

impl std::fmt::Display for Note {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.approximated {
            "approximated"
        } else {
            "not carried"
        };
        let warning = if self.warning { "warning: " } else { "" };
        write!(
            f,
            "{warning}{}: {what}: `{}`: {}",
            self.at, self.directive, self.why
        )
    }
}

/// A rate limit: `[[listener.limit]]` or `[[listener.route.limit]]`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Limit {
    /// `client_ip`, `header:NAME`, `cookie:NAME`.
    pub key: String,
    /// `10/s`, `30/m`.
    pub rate: String,
    pub burst: Option<u32>,
    pub size: Option<u64>,
    /// Where the limit was written, and the zone (nginx) it counts in: not written out.
    pub at: Origin,
    pub zone: String,
}

/// Who may send what: access lists, rate limits and the body size, of a listener or a route.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Guard {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
    pub limits: Vec<Limit>,
    /// `client_max_body_size`, as a TOML value (`"10m"`, `0`).
    pub body: Option<String>,
    /// Block rules (`[[…block]]`): the path regexes they refuse, each with its status
    /// (403, the default, is not written).
    pub blocks: Vec<(String, u16)>,
}

impl Guard {
    pub fn is_empty(&self) -> bool {
        *self == Guard::default()
    }
}

#[derive(Debug, Clone, Default)]
pub struct Route {
    pub host: Option<String>,
    pub path_prefix: Option<String>,
    pub method: Option<String>,
    pub header: Option<(String, String)>,
    pub cookie: Option<(String, String)>,
    pub pool: String,
    pub guard: Guard,
    pub at: Origin,
}

#[derive(Debug, Clone, Default)]
pub struct Listener {
    pub name: String,
    pub listen: String,
    /// `http`, `https`, `tcp`, `udp`.
    pub protocol: String,
    pub pool: Option<String>,
    pub routes: Vec<Route>,
    /// (cert, key) PEM paths.
    pub tls: Vec<(String, String)>,
    pub redirect_https: bool,
    pub hsts: Option<String>,
    /// Other keys, as TOML values ready to write (`idle_timeout = "10m"`); a key written
    /// twice is written once, with its last value.
    pub extra: Vec<(String, String)>,
    pub guard: Guard,
    pub at: Origin,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Server {
    pub addr: String,
    pub name: Option<String>,
    pub weight: Option<u32>,
    pub backup: bool,
    pub down: bool,
    pub max_fails: Option<u32>,
    pub fail_timeout: Option<String>,
    pub slow_start: Option<String>,
    pub max_conns: Option<u32>,
    /// nginx's `resolve`: the name is asked again on its TTL.
    pub resolve: bool,
    pub at: Origin,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Health {
    /// `http` or `tcp`.
    pub kind: String,
    pub path: Option<String>,
    pub method: Option<String>,
    pub host: Option<String>,
    pub expect: Option<String>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub rise: Option<u32>,
    pub fall: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Retry {
    pub attempts: Option<u32>,
    pub on: Option<Vec<String>>,
    pub non_idempotent: bool,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sticky {
    /// `cookie`, `app_cookie`, `source_ip`.
    pub mode: String,
    pub name: Option<String>,
    pub ttl: Option<String>,
    pub size: Option<u64>,
}

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Pool {
    pub name: String,
    pub algorithm: Option<String>,
    pub hash_key: Option<String>,
    pub keepalive: Option<u64>,
    pub keepalive_timeout: Option<String>,
    pub connect_timeout: Option<String>,
    pub read_timeout: Option<String>,
    pub send_timeout: Option<String>,
    pub client_body_timeout: Option<String>,
    pub host_header_upstream: bool,
    pub max_fails: Option<u32>,
    pub fail_timeout: Option<String>,
    pub tunnel_idle_timeout: Option<String>,
    /// Upstream TLS as a TOML inline table (`{ insecure_skip_verify = true }`).
    pub tls: Option<String>,
    pub servers: Vec<Server>,
    /// nginx's `resolver` addresses (`valid=` as `resolver_valid`) and `resolver_timeout`.
    pub resolver: Vec<String>,
    pub resolver_valid: Option<String>,
    pub resolver_timeout: Option<String>,
    pub health: Option<Health>,
    pub retry: Option<Retry>,
    pub sticky: Option<Sticky>,
    pub queue_size: Option<u32>,
    pub queue_timeout: Option<String>,
    /// Reached only from tcp/udp listeners: HTTP keys are left out.
    pub l4: bool,
    pub at: Origin,
}

/// A whole imported configuration.
#[derive(Debug, Clone, Default)]
pub struct Config {
    pub workers: Option<u64>,
    pub listeners: Vec<Listener>,
    pub pools: Vec<Pool>,
    pub notes: Vec<Note>,
    /// `[log]`: `access` (a path, `stdout`, `stderr`, `off`) and `format`.
    pub log_access: Option<String>,
    pub log_format: Option<String>,
    /// The source files read, in order (for the header comment).
    pub sources: Vec<String>,
}

impl Config {
    pub fn note(&mut self, at: &Origin, directive: impl Into<String>, why: impl Into<String>) {
        self.push(at, directive.into(), why.into(), (false, false));
    }

    /// Not carried, and requests the source refused or answered itself now go to a pool:
    /// `why` says which.
    pub fn warn(&mut self, at: &Origin, directive: impl Into<String>, why: impl Into<String>) {
        self.push(at, directive.into(), why.into(), (false, true));
    }

    pub fn approx(&mut self, at: &Origin, directive: impl Into<String>, why: impl Into<String>) {
        self.push(at, directive.into(), why.into(), (true, false));
    }

    fn push(
        &mut self,
        at: &Origin,
        directive: String,
        why: String,
        (approximated, warning): (bool, bool),
    ) {
        self.notes.push(Note {
            at: at.clone(),
            directive: shorten(directive),
            why,
            approximated,
            warning,
        });
    }

    /// A listener name not used yet, from `base`.
    pub fn listener_name(&self, base: &str) -> String {
        unique(base, |n| self.listeners.iter().any(|l| l.name == n))
    }

    /// A pool name not used yet, from `base`.
    pub fn pool_name(&self, base: &str) -> String {
        unique(base, |n| self.pools.iter().any(|p| p.name == n))
    }
}

fn unique(base: &str, taken: impl Fn(&str) -> bool) -> String {
    let base: String = base
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let base = if base.is_empty() {
        "x".to_string()
    } else {
        base
    };
    if !taken(&base) {
        return base;
    }
    (2..)
        .map(|i| format!("{base}-{i}"))
        .find(|n| !taken(n))
        .expect("some name is free")
}

fn shorten(s: String) -> String {
    let one_line = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one_line.chars().count() > 90 {
        format!("{}…", one_line.chars().take(89).collect::<String>())
    } else {
        one_line
    }
}

/// `dir` made absolute (against the current directory), so that the imported file may be
/// written anywhere and still name the same certificates.
pub fn absolute(dir: &std::path::Path) -> std::path::PathBuf {
    if dir.is_absolute() {
        dir.to_path_buf()
    } else {
        std::env::current_dir()
            .map(|cwd| cwd.join(dir))
            .unwrap_or_else(|_| dir.to_path_buf())
    }
}

/// A TOML string.
pub fn q(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// A TOML key: bare when it can be.
fn key(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        s.to_string()
    } else {
        q(s)
    }
}

/// The configuration as Switchyard TOML.
pub fn emit(c: &Config, from: &str) -> String {
    let mut t = String::new();
    let _ = writeln!(
        t,
        "# Imported by `switchyard import` from {from}: {}.",
        c.sources.join(", ")
    );
    let _ = writeln!(
        t,
        "# What was not carried over is listed on standard error, with file:line and why."
    );
    if let Some(w) = c.workers {
        let _ = writeln!(t, "\nworkers = {w}");
    }
    for l in &c.listeners {
        let _ = writeln!(t, "\n# {}", l.at);
        let _ = writeln!(t, "[[listener]]");
        let _ = writeln!(t, "name = {}", q(&l.name));
        let _ = writeln!(t, "listen = {}", q(&l.listen));
        if l.protocol != "http" {
            let _ = writeln!(t, "protocol = {}", q(&l.protocol));
        }
        if let Some(p) = &l.pool {
            let _ = writeln!(t, "pool = {}", q(p));
        }
        if l.redirect_https {
            let _ = writeln!(t, "redirect_https = true");
        }
        if let Some(h) = &l.hsts {
            let _ = writeln!(t, "hsts = {}", q(h));
        }
        for (i, (k, v)) in l.extra.iter().enumerate() {
            if !l.extra[i + 1..].iter().any(|(later, _)| later == k) {
                let _ = writeln!(t, "{k} = {v}");
            }
        }
        guard_keys(&mut t, "", &l.guard);
        for (cert, k) in &l.tls {
            let _ = writeln!(
                t,
                "  [[listener.tls]]\n  cert = {}\n  key = {}",
                q(cert),
                q(k)
            );
        }
        limits(&mut t, "listener.limit", &l.guard);
        blocks(&mut t, "listener.block", &l.guard);
        for r in &l.routes {
            let _ = writeln!(t, "  # {}", r.at);
            let _ = writeln!(t, "  [[listener.route]]");
            if let Some(h) = &r.host {
                let _ = writeln!(t, "  host = {}", q(h));
            }
            if let Some(p) = &r.path_prefix {
                let _ = writeln!(t, "  path_prefix = {}", q(p));
            }
            if let Some(m) = &r.method {
                let _ = writeln!(t, "  method = {}", q(m));
            }
            if let Some((n, v)) = &r.header {
                let _ = writeln!(t, "  header = {{ name = {}, value = {} }}", q(n), q(v));
            }
            if let Some((n, v)) = &r.cookie {
                let _ = writeln!(t, "  cookie = {{ name = {}, value = {} }}", q(n), q(v));
            }
            let _ = writeln!(t, "  pool = {}", q(&r.pool));
            guard_keys(&mut t, "  ", &r.guard);
            limits(&mut t, "listener.route.limit", &r.guard);
            blocks(&mut t, "listener.route.block", &r.guard);
        }
    }
    for p in &c.pools {
        pool(&mut t, p);
    }
    if c.log_access.is_some() || c.log_format.is_some() {
        let _ = writeln!(t, "\n[log]");
        if let Some(a) = &c.log_access {
            let _ = writeln!(t, "access = {}", q(a));
        }
        if let Some(f) = &c.log_format {
            let _ = writeln!(t, "format = {}", q(f));
        }
    }
    if !t.ends_with('\n') {
        t.push('\n');
    }
    t
}

/// `allow`, `deny` and `client_max_body_size` of a listener or route.
fn guard_keys(t: &mut String, indent: &str, g: &Guard) {
    for (k, list) in [("allow", &g.allow), ("deny", &g.deny)] {
        if !list.is_empty() {
            let list: Vec<String> = list.iter().map(|a| q(a)).collect();
            let _ = writeln!(t, "{indent}{k} = [{}]", list.join(", "));
        }
    }
    if let Some(b) = &g.body {
        let _ = writeln!(t, "{indent}client_max_body_size = {b}");
    }
}

/// `[[listener.limit]]` or `[[listener.route.limit]]` tables.
fn limits(t: &mut String, table: &str, g: &Guard) {
    for l in &g.limits {
        let _ = writeln!(t, "  [[{table}]]");
        let _ = writeln!(t, "  key = {}", q(&l.key));
        let _ = writeln!(t, "  rate = {}", q(&l.rate));
        if let Some(b) = l.burst {
            let _ = writeln!(t, "  burst = {b}");
        }
        if let Some(n) = l.size {
            let _ = writeln!(t, "  size = {n}");
        }
    }
}

/// `[[listener.block]]` or `[[listener.route.block]]` tables, one per path regex, with its
/// `status` unless it is 403.
fn blocks(t: &mut String, table: &str, g: &Guard) {
    for (re, status) in &g.blocks {
        let _ = writeln!(t, "  [[{table}]]");
        let _ = writeln!(t, "  path_regex = {}", q(re));
        if *status != 403 {
            let _ = writeln!(t, "  status = {status}");
        }
    }
}

fn pool(t: &mut String, p: &Pool) {
    let _ = writeln!(t, "\n# {}", p.at);
    let _ = writeln!(t, "[pool.{}]", key(&p.name));
    let mut kv = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            let _ = writeln!(t, "{k} = {v}");
        }
    };
    kv("algorithm", p.algorithm.as_deref().map(q));
    kv("hash_key", p.hash_key.as_deref().map(q));
    if !p.l4 {
        kv("keepalive", p.keepalive.map(|n| n.to_string()));
        kv("keepalive_timeout", p.keepalive_timeout.as_deref().map(q));
        if p.host_header_upstream {
            kv("host_header", Some(q("upstream")));
        }
        kv(
            "tunnel_idle_timeout",
            p.tunnel_idle_timeout.as_deref().map(q),
        );
        kv("tls", p.tls.clone());
        kv("queue_size", p.queue_size.map(|n| n.to_string()));
        kv("queue_timeout", p.queue_timeout.as_deref().map(q));
    }
    let mut timeouts = Vec::new();
    let all = [
        ("connect", &p.connect_timeout, true),
        ("read", &p.read_timeout, false),
        ("send", &p.send_timeout, false),
        ("client_body", &p.client_body_timeout, false),
    ];
    for (k, v, l4_too) in all {
        if let Some(v) = v
            && (l4_too || !p.l4)
        {
            timeouts.push(format!("{k} = {}", q(v)));
        }
    }
    if !timeouts.is_empty() {
        let _ = writeln!(t, "timeouts = {{ {} }}", timeouts.join(", "));
    }
    let mut kv = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            let _ = writeln!(t, "{k} = {v}");
        }
    };
    kv("max_fails", p.max_fails.map(|n| n.to_string()));
    kv("fail_timeout", p.fail_timeout.as_deref().map(q));
    // The DNS keys only where Switchyard takes them: a pool with a server written with a
    // host name (`resolver`, `resolver_timeout`), one with `resolve` (`resolver_valid`).
    let named = p
        .servers
        .iter()
        .any(|s| s.addr.parse::<std::net::SocketAddr>().is_err());
    let resolving = p.servers.iter().any(|s| s.resolve);
    if named && !p.resolver.is_empty() {
        let list: Vec<String> = p.resolver.iter().map(|r| q(r)).collect();
        kv("resolver", Some(format!("[{}]", list.join(", "))));
    }
    if named {
        kv("resolver_timeout", p.resolver_timeout.as_deref().map(q));
    }
    if resolving {
        kv("resolver_valid", p.resolver_valid.as_deref().map(q));
    }
    let _ = writeln!(t, "servers = [");
    for s in &p.servers {
        let mut parts = vec![format!("addr = {}", q(&s.addr))];
        if let Some(n) = &s.name {
            parts.push(format!("name = {}", q(n)));
        }
        if let Some(w) = s.weight {
            parts.push(format!("weight = {w}"));
        }
        if s.backup {
            parts.push("backup = true".into());
        }
        if s.down {
            parts.push("down = true".into());
        }
        if let Some(m) = s.max_fails {
            parts.push(format!("max_fails = {m}"));
        }
        if let Some(f) = &s.fail_timeout {
            parts.push(format!("fail_timeout = {}", q(f)));
        }
        if let Some(f) = &s.slow_start {
            parts.push(format!("slow_start = {}", q(f)));
        }
        if let Some(n) = s.max_conns {
            parts.push(format!("max_conns = {n}"));
        }
        if s.resolve {
            parts.push("resolve = true".into());
        }
        let _ = writeln!(t, "  {{ {} }},  # {}", parts.join(", "), s.at);
    }
    let _ = writeln!(t, "]");
    if let Some(h) = &p.health {
        let _ = writeln!(t, "  [pool.{}.health]", key(&p.name));
        let mut kv = |k: &str, v: Option<String>| {
            if let Some(v) = v {
                let _ = writeln!(t, "  {k} = {v}");
            }
        };
        kv("type", Some(q(&h.kind)));
        kv("path", h.path.as_deref().map(q));
        kv("method", h.method.as_deref().map(q));
        kv("host", h.host.as_deref().map(q));
        kv("expect", h.expect.as_deref().map(q));
        kv("interval", h.interval.as_deref().map(q));
        kv("timeout", h.timeout.as_deref().map(q));
        kv("rise", h.rise.map(|n| n.to_string()));
        kv("fall", h.fall.map(|n| n.to_string()));
    }
    if let Some(r) = &p.retry
        && !p.l4
    {
        let _ = writeln!(t, "  [pool.{}.retry]", key(&p.name));
        if let Some(a) = r.attempts {
            let _ = writeln!(t, "  attempts = {a}");
        }
        if let Some(on) = &r.on {
            let list: Vec<String> = on.iter().map(|s| q(s)).collect();
            let _ = writeln!(t, "  on = [{}]", list.join(", "));
        }
        if r.non_idempotent {
            let _ = writeln!(t, "  non_idempotent = true");
        }
    }
    if let Some(s) = &p.sticky
        && !p.l4
    {
        let _ = writeln!(t, "  [pool.{}.sticky]", key(&p.name));
        let _ = writeln!(t, "  mode = {}", q(&s.mode));
        if let Some(n) = &s.name {
            let _ = writeln!(t, "  name = {}", q(n));
        }
        if let Some(ttl) = &s.ttl {
            let _ = writeln!(t, "  ttl = {}", q(ttl));
        }
        if let Some(n) = s.size {
            let _ = writeln!(t, "  size = {n}");
        }
    }
}

/// A duration of nginx or HAProxy in Switchyard's spelling: whole numbers with a unit.
/// nginx's bare numbers are seconds, HAProxy's milliseconds (`default_unit`).
pub fn duration(s: &str, default_unit: &str) -> Option<String> {
    let s = s.trim();
    if s.is_empty() {
        return None;
    }
    if s.chars().all(|c| c.is_ascii_digit()) {
        return Some(format!("{s}{default_unit}"));
    }
    // `1h30m`, `500ms`, `10s`, `1m 30s`: digits and units, which Switchyard reads alike
    // (us is HAProxy's microseconds: rounded up to whole milliseconds).
    let mut out = String::new();
    let mut num = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c.is_ascii_digit() {
            num.push(c);
            continue;
        }
        if c == ' ' {
            continue;
        }
        let mut unit = c.to_string();
        while let Some(&n) = chars.peek() {
            if n.is_ascii_alphabetic() {
                unit.push(n);
                chars.next();
            } else {
                break;
            }
        }
        if num.is_empty() {
            return None;
        }
        match unit.as_str() {
            "ms" | "s" | "m" | "h" | "d" | "w" | "y" => out.push_str(&format!("{num}{unit}")),
            "M" => out.push_str(&format!("{}d", num.parse::<u64>().ok()? * 30)),
            "us" => out.push_str(&format!("{}ms", num.parse::<u64>().ok()?.div_ceil(1000))),
            _ => return None,
        }
        num.clear();
    }
    if !num.is_empty() {
        out.push_str(&format!("{num}{default_unit}"));
    }
    (!out.is_empty()).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_of_both_products() {
        assert_eq!(duration("60", "s").as_deref(), Some("60s"));
        assert_eq!(duration("5000", "ms").as_deref(), Some("5000ms"));
        assert_eq!(duration("1m30s", "s").as_deref(), Some("1m30s"));
        assert_eq!(duration("1500us", "ms").as_deref(), Some("2ms"));
        assert_eq!(duration("x", "s"), None);
    }

    #[test]
    fn names_are_made_unique_and_safe() {
        let mut c = Config::default();
        c.pools.push(Pool {
            name: "api".into(),
            ..Pool::default()
        });
        assert_eq!(c.pool_name("api"), "api-2");
        assert_eq!(c.pool_name("10.0.0.1:80"), "10-0-0-1-80");
    }
}

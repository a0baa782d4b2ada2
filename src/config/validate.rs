//! From the TOML shape to a [`Plan`], checking every rule and collecting every error.
//!
//! Each check that fails adds a [`ConfigError`] with the span of the offending value and
//! carries on, so `switchyard check` can list all problems of a file in one run.

use std::collections::HashSet;
use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::Range;
use std::time::Duration;

use http::{HeaderName, Method};
use toml::Spanned;

use super::file::*;
use super::plan::*;
use super::{ConfigError, ConfigErrors, PassivePlan, parse_duration};

mod failover;
mod syntax;

mod l4;

/// Collects errors against one source text.
pub(crate) struct Checker<'a> {
    src: &'a str,
    file: &'a str,
    errors: Vec<ConfigError>,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(src: &'a str, file: &'a str) -> Self {
        Checker {
            src,
            file,
            errors: Vec::new(),
        }
    }

    /// 1-based line and column of a byte offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.src.len());
        let before = &self.src[..offset];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let column = before[line_start..].chars().count() + 1;
        (line, column)
    }

    pub(crate) fn error(
        &mut self,
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        let (line, column) = self.position(span.start);
        let help = help.into();
        self.errors.push(ConfigError {
            file: self.file.to_string(),
            line,
            column,
            message: message.into(),
            help: (!help.is_empty()).then_some(help),
        });
    }

    fn finish<T>(mut self, value: T) -> Result<T, ConfigErrors> {
        if self.errors.is_empty() {
            Ok(value)
        } else {
            self.errors.sort_by_key(|e| (e.line, e.column));
            Err(ConfigErrors(self.errors))
        }
    }

    /// A path as written in the file, relative to the file's own directory.
    pub(crate) fn path(&self, written: &str) -> std::path::PathBuf {
        let p = std::path::Path::new(written);
        match std::path::Path::new(self.file).parent() {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }

    pub(crate) fn duration(&mut self, v: &Spanned<String>, what: &str) -> Option<Duration> {
        match parse_duration(v.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(
                    v.span(),
                    format!("{what}: {e}"),
                    "write a number with a unit: \"250ms\", \"5s\", \"1m\", \"1h\"",
                );
                None
            }
        }
    }

    pub(crate) fn duration_or(
        &mut self,
        v: &Option<Spanned<String>>,
        what: &str,
        default: Duration,
    ) -> Duration {
        v.as_ref()
            .and_then(|v| self.duration(v, what))
            .unwrap_or(default)
    }

    fn int_in(&mut self, v: &Spanned<i64>, what: &str, lo: i64, hi: i64) -> Option<i64> {
        let n = *v.get_ref();
        if (lo..=hi).contains(&n) {
            Some(n)
        } else {
            self.error(
                v.span(),
                format!("{what} = {n} is out of range"),
                format!("use a whole number from {lo} to {hi}"),
            );
            None
        }
    }

    fn socket_addr(&mut self, v: &Spanned<String>, what: &str) -> Option<SocketAddr> {
        let s = v.get_ref().trim();
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Some(a);
        }
        // `listen = "8080"`, as nginx's `listen 8080;`: every IPv4 address.
        if what == "listen"
            && let Ok(port) = s.parse::<u16>()
        {
            return Some(SocketAddr::from(([0, 0, 0, 0], port)));
        }
        let host_port = s
            .rsplit_once(':')
            .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        let Some((host, _)) = host_port else {
            self.error(
                v.span(),
                format!("{what} {s:?} is not an address"),
                "write host:port, e.g. \"127.0.0.1:9001\" or \"[::1]:9001\"",
            );
            return None;
        };
        // A name such as `localhost:9001` is resolved once, here.
        let resolved = s.to_socket_addrs().ok().and_then(|mut it| it.next());
        if resolved.is_none() {
            self.error(
                v.span(),
                format!("{what} {s:?}: the name {host:?} does not resolve"),
                "check the name, or write an IP address such as \"127.0.0.1:9001\"",
            );
        }
        resolved
    }
}

pub(crate) fn validate(src: &str, file: &str) -> Result<Plan, ConfigErrors> {
    let mut c = Checker::new(src, file);
    let parsed: ConfigFile = match syntax::read(src) {
        Ok(f) => f,
        Err(errors) => {
            for e in errors {
                c.error(e.span, e.message, e.help);
            }
            return c.finish(Plan::empty());
        }
    };

    let workers = match &parsed.workers {
        Some(w) => c.int_in(w, "workers", 1, 1024).map_or(1, |n| n as usize),
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let grace_period = c.duration_or(
        &parsed.grace_period,
        "grace_period",
        Duration::from_secs(10),
    );

    let mut pools: Vec<PoolPlan> = parsed
        .pool
        .iter()
        .filter_map(|(name, p)| pool(&mut c, name, p))
        .collect();
    let pool_names: HashSet<&str> = parsed.pool.keys().map(String::as_str).collect();

    let mut listeners = Vec::new();
    let mut names = HashSet::new();
    let mut addrs = HashSet::new();
    for (i, l) in parsed.listener.iter().enumerate() {
        if let Some(plan) = listener(&mut c, i, l, &pool_names) {
            if !names.insert(plan.name.clone()) {
                let span = l.get_ref().name.as_ref().map_or(l.span(), |n| n.span());
                c.error(
                    span,
                    format!("listener name {:?} is used twice", plan.name),
                    "give every [[listener]] its own name",
                );
            }
            if plan.listen.port() != 0 && !addrs.insert(plan.listen) {
                c.error(
                    l.get_ref().listen.span(),
                    format!("two listeners listen on {}", plan.listen),
                    "give every [[listener]] its own address or port",
                );
            }
            listeners.push(plan);
        }
    }
    l4::check_pools(&mut c, &parsed, &mut pools);
    if parsed.listener.is_empty() {
        c.error(
            0..0,
            "the file has no [[listener]]",
            "add [[listener]] with name, listen = \"127.0.0.1:8080\" and pool = \"...\"",
        );
    }

    let admin = parsed
        .admin
        .as_ref()
        .and_then(|a| failover::admin(&mut c, a));

    c.finish(Plan {
        workers,
        grace_period,
        listeners,
        pools,
        admin,
    })
}

impl Plan {
    fn empty() -> Plan {
        Plan {
            workers: 1,
            grace_period: Duration::ZERO,
            listeners: Vec::new(),
            pools: Vec::new(),
            admin: None,
        }
    }
}

fn pool_ref(c: &mut Checker<'_>, v: &Spanned<String>, pools: &HashSet<&str>) -> Option<String> {
    let name = v.get_ref();
    if pools.contains(name.as_str()) {
        return Some(name.clone());
    }
    let mut known: Vec<&str> = pools.iter().copied().collect();
    known.sort_unstable();
    let help = if known.is_empty() {
        format!("define it: [pool.{name}] with servers = [{{ addr = \"host:port\" }}]")
    } else {
        format!("use one of: {}, or define [pool.{name}]", known.join(", "))
    };
    c.error(v.span(), format!("no pool named {name:?}"), help);
    None
}

fn listener(
    c: &mut Checker<'_>,
    index: usize,
    l: &Spanned<ListenerFile>,
    pools: &HashSet<&str>,
) -> Option<ListenerPlan> {
    let f = l.get_ref();
    let name = f
        .name
        .as_ref()
        .map_or_else(|| format!("listener{}", index + 1), |n| n.get_ref().clone());
    let listen = c.socket_addr(&f.listen, "listen");
    let protocol = match &f.protocol {
        None => Some(Protocol::Http),
        Some(p) => match p.get_ref().as_str() {
            "http" => Some(Protocol::Http),
            "tcp" => Some(Protocol::Tcp),
            "udp" => Some(Protocol::Udp),
            "https" => Some(Protocol::Https),
            other => {
                c.error(
                    p.span(),
                    format!("unknown protocol {other:?}"),
                    "use protocol = \"http\", \"https\", \"tcp\" or \"udp\"",
                );
                None
            }
        },
    };
    let default_pool = f.pool.as_ref().and_then(|p| pool_ref(c, p, pools));
    let mut routes = Vec::new();
    for r in &f.route {
        if let Some(route) = route(c, r, pools) {
            routes.push(route);
        }
    }
    let redirect_https = f.redirect_https.as_ref().is_some_and(|r| *r.get_ref());
    let (tls, hsts) = super::tls_check::listener_tls(c, f, protocol);
    if f.pool.is_none() && f.route.is_empty() && !redirect_https {
        c.error(
            l.span(),
            format!("listener {name:?} sends traffic nowhere"),
            "add pool = \"NAME\" (the default pool) or [[listener.route]] entries",
        );
    }
    let l4 = l4::listener_l4(c, f, protocol?);
    Some(ListenerPlan {
        name,
        listen: listen?,
        protocol: protocol?,
        default_pool,
        routes,
        l4,
        tls,
        redirect_https,
        hsts,
    })
}

fn route(c: &mut Checker<'_>, r: &Spanned<RouteFile>, pools: &HashSet<&str>) -> Option<RoutePlan> {
    let f = r.get_ref();
    let mut ok = true;
    let mut matcher = Matcher::default();
    if let Some(h) = &f.host {
        let host = h.get_ref().trim().to_ascii_lowercase();
        if host.is_empty() || host.contains('/') || host.contains(':') || host[1..].contains('*') {
            c.error(
                h.span(),
                format!("host {:?} is not a host name", h.get_ref()),
                "write a name without port or path: \"api.example.com\" or \"*.example.com\"",
            );
            ok = false;
        } else if let Some(rest) = host.strip_prefix("*.") {
            matcher.host = Some(HostMatch::Suffix(format!(".{rest}")));
        } else if host.starts_with('*') {
            c.error(
                h.span(),
                format!("wildcard host {:?} must start with \"*.\"", h.get_ref()),
                "write \"*.example.com\"",
            );
            ok = false;
        } else {
            matcher.host = Some(HostMatch::Exact(host));
        }
    }
    if let Some(p) = &f.path_prefix {
        if p.get_ref().starts_with('/') {
            matcher.path_prefix = Some(p.get_ref().clone());
        } else {
            c.error(
                p.span(),
                format!("path_prefix {:?} does not start with /", p.get_ref()),
                format!("write \"/{}\"", p.get_ref()),
            );
            ok = false;
        }
    }
    if let Some(m) = &f.method {
        match Method::from_bytes(m.get_ref().to_ascii_uppercase().as_bytes()) {
            Ok(method) => matcher.method = Some(method),
            Err(_) => {
                c.error(
                    m.span(),
                    format!("{:?} is not an HTTP method", m.get_ref()),
                    "write e.g. \"GET\" or \"POST\"",
                );
                ok = false;
            }
        }
    }
    if let Some(h) = &f.header {
        match HeaderName::from_bytes(h.get_ref().name.as_bytes()) {
            Ok(name) => matcher.header = Some((name, h.get_ref().value.clone())),
            Err(_) => {
                c.error(
                    h.span(),
                    format!("{:?} is not a header name", h.get_ref().name),
                    "write header = { name = \"x-canary\", value = \"1\" }",
                );
                ok = false;
            }
        }
    }
    if let Some(k) = &f.cookie {
        matcher.cookie = Some((k.get_ref().name.clone(), k.get_ref().value.clone()));
    }
    let target = match (&f.pool, &f.split) {
        (Some(p), None) => pool_ref(c, p, pools).map(Target::Pool),
        (None, Some(split)) => {
            let mut parts = Vec::new();
            let mut good = true;
            for s in split.get_ref() {
                let pool = pool_ref(c, &s.get_ref().pool, pools);
                let weight = c.int_in(&s.get_ref().weight, "weight", 1, 1_000_000);
                match (pool, weight) {
                    (Some(p), Some(w)) => parts.push((p, w as u32)),
                    _ => good = false,
                }
            }
            if split.get_ref().is_empty() {
                c.error(
                    split.span(),
                    "split is empty",
                    "write split = [ { pool = \"v1\", weight = 90 }, { pool = \"v2\", weight = 10 } ]",
                );
                good = false;
            }
            good.then_some(Target::Split(parts))
        }
        (Some(p), Some(_)) => {
            c.error(
                p.span(),
                "a route has both pool and split",
                "keep one: pool = \"NAME\" or split = [...]",
            );
            None
        }
        (None, None) => {
            c.error(
                r.span(),
                "a route has no pool",
                "add pool = \"NAME\" or split = [ { pool = \"NAME\", weight = 1 } ]",
            );
            None
        }
    };
    let target = target?;
    ok.then_some(RoutePlan { matcher, target })
}

fn pool(c: &mut Checker<'_>, name: &str, p: &Spanned<PoolFile>) -> Option<PoolPlan> {
    let f = p.get_ref();
    let algorithm = match &f.algorithm {
        None => Some(Algorithm::RoundRobin),
        Some(a) => {
            let alg = Algorithm::parse(a.get_ref());
            if alg.is_none() {
                c.error(
                    a.span(),
                    format!("unknown algorithm {:?}", a.get_ref()),
                    format!("use one of: {}", Algorithm::NAMES.join(", ")),
                );
            }
            alg
        }
    };
    let hash_key = match &f.hash_key {
        None => Some(HashKey::ClientIp),
        Some(k) => {
            let v = k.get_ref();
            let parsed = match v.split_once(':') {
                None if v == "client_ip" => Some(HashKey::ClientIp),
                None if v == "uri" => Some(HashKey::Uri),
                Some(("header", h)) => HeaderName::from_bytes(h.as_bytes())
                    .ok()
                    .map(HashKey::Header),
                Some(("cookie", n)) if !n.is_empty() => Some(HashKey::Cookie(n.to_string())),
                Some(("query", n)) if !n.is_empty() => Some(HashKey::Query(n.to_string())),
                _ => None,
            };
            if parsed.is_none() {
                c.error(
                    k.span(),
                    format!("hash_key {v:?} is not understood"),
                    "use client_ip, uri, header:NAME, cookie:NAME or query:NAME",
                );
            }
            if let (Some(alg), Some(_)) = (algorithm, &parsed)
                && !alg.uses_hash_key()
                && v != "client_ip"
            {
                c.error(
                    k.span(),
                    format!(
                        "hash_key is only used by algorithm = \"hash\" or \"maglev\", not {:?}",
                        alg.as_str()
                    ),
                    "set algorithm = \"hash\" or remove hash_key",
                );
            }
            parsed
        }
    };
    let keepalive = f.keepalive.as_ref().map_or(Some(32), |k| {
        c.int_in(k, "keepalive", 0, 100_000).map(|n| n as usize)
    });
    let keepalive_timeout = c.duration_or(
        &f.keepalive_timeout,
        "keepalive_timeout",
        Duration::from_secs(60),
    );
    let mut timeouts = Timeouts::default();
    if let Some(t) = &f.timeouts {
        let t = t.get_ref();
        timeouts.connect = c.duration_or(&t.connect, "timeouts.connect", timeouts.connect);
        timeouts.read = c.duration_or(&t.read, "timeouts.read", timeouts.read);
        timeouts.send = c.duration_or(&t.send, "timeouts.send", timeouts.send);
        timeouts.client_body =
            c.duration_or(&t.client_body, "timeouts.client_body", timeouts.client_body);
    }
    let host_header = match &f.host_header {
        None => Some(HostHeader::Keep),
        Some(h) => match h.get_ref().as_str() {
            "keep" | "client" => Some(HostHeader::Keep),
            "upstream" => Some(HostHeader::Upstream),
            other => {
                c.error(
                    h.span(),
                    format!("host_header {other:?} is not understood"),
                    "use \"keep\" (default) or \"upstream\"",
                );
                None
            }
        },
    };

    let pool_passive = failover::passive(c, &f.max_fails, &f.fail_timeout, PassivePlan::default());
    let pool_slow_start = failover::slow_start(c, &f.slow_start, Duration::ZERO);
    let health = f.health.as_ref().map(|h| failover::health(c, h));
    let retry = f
        .retry
        .as_ref()
        .map_or_else(Default::default, |r| failover::retry(c, r));
    let sticky = f.sticky.as_ref().and_then(|s| failover::sticky(c, s));

    let mut servers = Vec::new();
    let mut seen = HashSet::new();
    match &f.servers {
        None => c.error(
            p.span(),
            format!("pool {name:?} has no servers"),
            "add servers = [{ addr = \"host:port\" }]",
        ),
        Some(list) if list.get_ref().is_empty() => c.error(
            list.span(),
            format!("pool {name:?} has no servers"),
            "add servers = [{ addr = \"host:port\" }]",
        ),
        Some(list) => {
            for s in list.get_ref() {
                let sf = s.get_ref();
                let addr = c.socket_addr(&sf.addr, "server address");
                let weight = sf
                    .weight
                    .as_ref()
                    .map_or(Some(1), |w| c.int_in(w, "weight", 1, 1000))
                    .map(|w| w as u32);
                let passive = failover::passive(c, &sf.max_fails, &sf.fail_timeout, pool_passive);
                let slow_start = failover::slow_start(c, &sf.slow_start, pool_slow_start);
                let name = sf.name.as_ref().map_or_else(
                    || sf.addr.get_ref().trim().to_string(),
                    |n| n.get_ref().clone(),
                );
                if let Some(addr) = addr {
                    if !seen.insert(addr) {
                        c.error(
                            sf.addr.span(),
                            format!("server {addr} appears twice in pool {name:?}"),
                            "list each server once; raise its weight to give it more traffic",
                        );
                    }
                }
                if let (Some(addr), Some(weight)) = (addr, weight) {
                    servers.push(ServerPlan {
                        addr,
                        name,
                        weight,
                        backup: sf.backup.unwrap_or(false),
                        down: sf.down.unwrap_or(false),
                        passive,
                        slow_start,
                    });
                }
            }
        }
    }
    failover::single_server(&mut servers);
    let (upstream_protocol, tls, tunnel_idle_timeout) =
        super::tls_check::pool_transport(c, name, f);
    Some(PoolPlan {
        name: name.to_string(),
        algorithm: algorithm?,
        hash_key: hash_key?,
        keepalive: keepalive?,
        keepalive_timeout,
        timeouts,
        host_header: host_header?,
        servers,
        health,
        retry,
        sticky,
        upstream_protocol: upstream_protocol?,
        tls,
        tunnel_idle_timeout,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
[[listener]]
name = "web"
listen = "127.0.0.1:8080"
pool = "web"

  [[listener.route]]
  path_prefix = "/api/"
  pool = "api"

  [[listener.route]]
  host = "*.example.com"
  split = [ { pool = "web", weight = 90 }, { pool = "api", weight = 10 } ]

[pool.web]
servers = [ { addr = "127.0.0.1:9001" } ]

[pool.api]
algorithm = "least_conn"
keepalive = 16
timeouts = { connect = "5s", read = "60s", send = "1m" }
servers = [
  { addr = "127.0.0.1:9002", weight = 3 },
  { addr = "127.0.0.1:9003", weight = 2, backup = true },
]
"#;

    #[test]
    fn a_good_file_becomes_a_plan() {
        let plan = validate(GOOD, "good.toml").unwrap();
        assert_eq!(plan.listeners.len(), 1);
        let l = &plan.listeners[0];
        assert_eq!(l.default_pool.as_deref(), Some("web"));
        assert_eq!(l.routes.len(), 2);
        assert_eq!(
            l.routes[1].matcher.host,
            Some(HostMatch::Suffix(".example.com".into()))
        );
        let api = plan.pool("api").unwrap();
        assert_eq!(api.algorithm, Algorithm::LeastConn);
        assert_eq!(api.keepalive, 16);
        assert_eq!(api.timeouts.connect, Duration::from_secs(5));
        assert_eq!(api.servers[0].weight, 3);
        assert!(api.servers[1].backup);
    }

    #[test]
    fn every_error_is_reported_with_its_place() {
        let bad = r#"
[[listener]]
name = "web"
listen = "nowhere"
pool = "missing"

[pool.empty]
servers = []

[pool.z]
algorithm = "fastest"
servers = [ { addr = "127.0.0.1:1", weight = 0 } ]
"#;
        let errs = validate(bad, "bad.toml").unwrap_err().0;
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        assert_eq!(errs.len(), 5, "{text:#?}");
        assert!(
            text[0].starts_with("error: bad.toml:4:10: listen \"nowhere\" is not an address"),
            "{}",
            text[0]
        );
        assert!(
            text[1].contains("bad.toml:5:8: no pool named \"missing\""),
            "{}",
            text[1]
        );
        assert!(
            text[2].contains("bad.toml:8:11: pool \"empty\" has no servers"),
            "{}",
            text[2]
        );
        assert!(
            text[3].contains("bad.toml:11:13: unknown algorithm \"fastest\""),
            "{}",
            text[3]
        );
        assert!(
            text[4].contains("bad.toml:12:46: weight = 0 is out of range"),
            "{}",
            text[4]
        );
        assert!(errs.iter().all(|e| e.help.is_some()));
    }

    #[test]
    fn a_bare_port_listens_on_every_ipv4_address() {
        let src = "[[listener]]\nlisten = \"8080\"\npool = \"p\"\n[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n";
        let plan = validate(src, "f.toml").unwrap();
        assert_eq!(plan.listeners[0].listen, "0.0.0.0:8080".parse().unwrap());
        // Only listen: a server needs its host.
        let errs = validate(&src.replace("127.0.0.1:9", "9"), "f.toml")
            .unwrap_err()
            .0;
        assert!(errs[0].message.contains("is not an address"), "{errs:?}");
    }

    #[test]
    fn unknown_keys_are_named_with_their_place() {
        let bad = "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\nlisen = 1\n";
        let errs = validate(bad, "f.toml").unwrap_err().0;
        assert_eq!(errs.len(), 1);
        assert_eq!((errs[0].line, errs[0].column), (4, 1));
        assert!(
            errs[0].message.contains("unknown field `lisen`"),
            "{}",
            errs[0].message
        );
    }

    #[test]
    fn duplicate_listener_names_and_servers_are_errors() {
        let bad = r#"
[[listener]]
name = "a"
listen = "127.0.0.1:1"
pool = "p"
[[listener]]
name = "a"
listen = "127.0.0.1:2"
pool = "p"
[pool.p]
servers = [ { addr = "127.0.0.1:9" }, { addr = "127.0.0.1:9" } ]
"#;
        let errs = validate(bad, "f.toml").unwrap_err().0;
        let text = ConfigErrors(errs.clone()).to_string();
        assert_eq!(errs.len(), 2, "{text}");
        assert!(text.contains("appears twice"), "{text}");
        assert!(text.contains("listener name \"a\" is used twice"), "{text}");
    }
}

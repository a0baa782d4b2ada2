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

use super::duration::parse_duration_explained;
use super::file::*;
use super::plan::*;
use super::{ConfigError, ConfigErrors, PassivePlan};

mod algorithm;
mod failover;
mod syntax;
mod wrong_type;

mod l4;
mod live;

/// Collects errors against one source text.
pub(crate) struct Checker<'a> {
    src: &'a str,
    file: &'a str,
    errors: Vec<ConfigError>,
    /// Entries cut from the file for a shape error (see [`syntax::Cut`]).
    cuts: Vec<syntax::Cut>,
}

impl<'a> Checker<'a> {
    pub(crate) fn new(src: &'a str, file: &'a str) -> Self {
        Checker {
            src,
            file,
            errors: Vec::new(),
            cuts: Vec::new(),
        }
    }

    /// Whether the table spanning `table` lost an entry to a shape error (an unknown or
    /// misspelt key, a wrong type, an array element with a missing key). Checks that reason
    /// about a key of this table being absent stay quiet then: the key may be the one cut.
    pub(crate) fn shaky(&self, table: Range<usize>) -> bool {
        self.cuts.iter().any(|c| c.table.as_ref() == Some(&table))
    }

    /// Whether `key` (or an element of the array under it) was cut from the table spanning
    /// `table`, `None` for the top level.
    pub(crate) fn was_cut(&self, table: Option<Range<usize>>, key: &str) -> bool {
        self.cuts.iter().any(|c| c.table == table && c.key == key)
    }

    /// Whether `key` of the table spanning `table` was cut for a shape error, or is what a
    /// cut key was probably meant to be (`lisen` for `listen`): then its absence is no second
    /// mistake.
    pub(crate) fn misspelt(&self, table: Range<usize>, key: &str) -> bool {
        self.cuts.iter().any(|c| {
            c.table.as_ref() == Some(&table)
                && (c.key == key || c.suggested.as_deref() == Some(key))
        })
    }

    /// A key the entry cannot do without: its value, or `None` and an error at the entry
    /// (unless the key is [`Checker::misspelt`]: that error says it already). The caller
    /// goes on checking the rest of the entry.
    pub(crate) fn required<'v, T>(
        &mut self,
        v: &'v Option<Spanned<T>>,
        table: Range<usize>,
        key: &str,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Option<&'v Spanned<T>> {
        if v.is_none() {
            self.missing(table, key, message, help);
        }
        v.as_ref()
    }

    /// Report the missing `key` of the table spanning `table`, unless it is misspelt.
    pub(crate) fn missing(
        &mut self,
        table: Range<usize>,
        key: &str,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        if !self.misspelt(table.clone(), key) {
            self.error(table, message, help);
        }
    }

    /// `file:line:column` of a byte offset, for the runtime's own errors (a port taken).
    pub(crate) fn origin(&self, offset: usize) -> String {
        let (line, column) = self.position(offset);
        format!("{}:{line}:{column}", self.file)
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
            // Shape errors and the other checks come in two passes: one list, in file order,
            // each problem once.
            self.errors.sort_by_key(|e| (e.line, e.column));
            let mut seen = HashSet::new();
            self.errors
                .retain(|e| seen.insert((e.line, e.column, e.message.clone())));
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
        match parse_duration_explained(v.get_ref()) {
            Ok(d) => Some(d),
            Err(e) => {
                self.error(v.span(), format!("{what}: {}", e.message), e.help);
                None
            }
        }
    }

    /// A duration that must not be zero (a timeout, an interval, a lifetime), else `default`.
    pub(crate) fn positive_duration(
        &mut self,
        v: &Option<Spanned<String>>,
        what: &str,
        default: Duration,
        help: &str,
    ) -> Duration {
        let Some(v) = v else { return default };
        match self.duration(v, what) {
            Some(d) if d.is_zero() => {
                self.error(v.span(), format!("{what} must be longer than 0"), help);
                default
            }
            Some(d) => d,
            None => default,
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
    // Shape errors first; then whatever could be read is checked too, so one run reports a
    // typo and a zero weight alike.
    let read = syntax::read(src);
    for e in read.errors {
        c.error(e.span, e.message, e.help);
    }
    c.cuts = read.cuts;
    let Some(parsed) = read.file else {
        return c.finish(Plan::empty());
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
    let shutdown_delay = c.duration_or(
        &parsed.shutdown_delay,
        "shutdown_delay",
        Duration::from_secs(5),
    );

    let mut pools: Vec<PoolPlan> = parsed
        .pool
        .iter()
        .map(|(name, p)| pool(&mut c, name, p))
        .collect();
    let mut pool_names: HashSet<&str> = parsed.pool.keys().map(String::as_str).collect();
    // A pool cut for a shape error exists all the same: naming it is no second mistake.
    let cut_pools: Vec<String> = c
        .cuts
        .iter()
        .filter(|cut| cut.path.len() == 2 && cut.path[0] == "pool")
        .map(|cut| cut.path[1].clone())
        .collect();
    pool_names.extend(cut_pools.iter().map(String::as_str));

    let mut listeners = Vec::new();
    let mut names = HashSet::new();
    // (udp?, address, listener name) of the listeners so far, and where each `listen` is.
    let mut bound: Vec<(bool, SocketAddr, String)> = Vec::new();
    let mut listen_spans = Vec::new();
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
            let span = l.get_ref().listen.as_ref().map_or(l.span(), |v| v.span());
            let udp = plan.protocol == Protocol::Udp;
            if let Some((_, other, name)) = bound
                .iter()
                .find(|(u, a, _)| *u == udp && same_socket(*a, plan.listen))
            {
                let how = if *other == plan.listen {
                    format!("as listener {name:?} does")
                } else if plan.listen.ip().is_unspecified() {
                    format!("which covers listener {name:?} on {other}")
                } else {
                    format!("which listener {name:?} on {other} covers")
                };
                c.error(
                    span.clone(),
                    format!("listener {:?} listens on {}, {how}", plan.name, plan.listen),
                    "give every [[listener]] its own address or port (a tcp and a udp listener may share one)",
                );
            }
            if plan.listen.port() != 0 {
                bound.push((udp, plan.listen, plan.name.clone()));
            }
            listen_spans.push(span);
            listeners.push(plan);
        }
    }
    listens_on_a_server(&mut c, &listeners, &listen_spans, &pools);
    l4::check_pools(&mut c, &parsed, &mut pools);
    failover::sticky_cookies(&mut c, &parsed, &listeners);
    if parsed.listener.is_empty() && !c.was_cut(None, "listener") {
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
    if let (Some(a), Some(f)) = (&admin, &parsed.admin)
        && let Some((_, _, name)) = bound
            .iter()
            .find(|(udp, addr, _)| !udp && same_socket(*addr, a.listen))
    {
        let span = f.get_ref().listen.as_ref().map_or(f.span(), |v| v.span());
        c.error(
            span,
            format!("[admin] listens on {}, as listener {name:?} does", a.listen),
            "give [admin] an address or port of its own, e.g. listen = \"127.0.0.1:9900\"",
        );
    }

    c.finish(Plan {
        workers,
        grace_period,
        shutdown_delay,
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
            shutdown_delay: Duration::ZERO,
            listeners: Vec::new(),
            pools: Vec::new(),
            admin: None,
        }
    }
}

/// Whether two sockets of one transport cannot both be bound: the same address, or the same
/// port with one of them on every address of the family (`0.0.0.0`, `[::]`; IPv6 sockets
/// are v6-only, so `0.0.0.0:80` and `[::]:80` go together).
fn same_socket(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && a.is_ipv4() == b.is_ipv4()
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// A listener whose traffic comes back to itself: a server of a pool it sends to is on its
/// own address, or on the address of another listener of this config whose traffic leads
/// back to it. Chains that end elsewhere (a tcp listener sending PROXY headers to a local
/// https listener that sends to the real servers) are fine.
fn listens_on_a_server(
    c: &mut Checker<'_>,
    listeners: &[ListenerPlan],
    spans: &[Range<usize>],
    pools: &[PoolPlan],
) {
    let pool = |name: &str| pools.iter().find(|p| p.name == name);
    let pools_of = |l: &ListenerPlan| -> Vec<&PoolPlan> {
        let mut names: Vec<&str> = l.default_pool.iter().map(String::as_str).collect();
        for r in &l.routes {
            match &r.target {
                Target::Pool(p) => names.push(p),
                Target::Split(parts) => names.extend(parts.iter().map(|(p, _)| p.as_str())),
            }
        }
        names.sort_unstable();
        names.dedup();
        names.into_iter().filter_map(pool).collect()
    };
    // A server on listener `m`'s address, reached over the same transport.
    let lands_on = |m: &ListenerPlan, s: &ServerPlan| {
        m.listen.port() != 0
            && s.addr.port() == m.listen.port()
            && (s.addr.ip() == m.listen.ip()
                || (m.listen.ip().is_unspecified()
                    && s.addr.ip().is_loopback()
                    && s.addr.is_ipv4() == m.listen.is_ipv4()))
    };
    // hops[i]: (j, pool, server) for each listener j that listener i's servers land on.
    let hops: Vec<Vec<(usize, &PoolPlan, &ServerPlan)>> = listeners
        .iter()
        .map(|l| {
            let udp = l.protocol == Protocol::Udp;
            let mut out = Vec::new();
            for p in pools_of(l) {
                for s in &p.servers {
                    for (j, m) in listeners.iter().enumerate() {
                        if (m.protocol == Protocol::Udp) == udp && lands_on(m, s) {
                            out.push((j, p, s));
                        }
                    }
                }
            }
            out
        })
        .collect();
    let leads_back = |from: usize, to: usize| -> bool {
        let mut seen = vec![false; listeners.len()];
        let mut stack = vec![from];
        while let Some(k) = stack.pop() {
            if k == to {
                return true;
            }
            if !std::mem::replace(&mut seen[k], true) {
                stack.extend(hops[k].iter().map(|h| h.0));
            }
        }
        false
    };
    for (i, (l, span)) in listeners.iter().zip(spans).enumerate() {
        let Some(&(j, pool, server)) = hops[i].iter().find(|h| leads_back(h.0, i)) else {
            continue;
        };
        let message = if j == i {
            format!(
                "listener {:?} listens on {}, where server {:?} of pool {:?} is",
                l.name, l.listen, server.name, pool.name
            )
        } else {
            format!(
                "listener {:?} sends through pool {:?} (server {:?}) to listener {:?}, whose traffic comes back to it",
                l.name, pool.name, server.name, listeners[j].name
            )
        };
        c.error(
            span.clone(),
            message,
            "Switchyard would send to itself in a loop: give the listener (or the server) another port",
        );
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
    let listen_value = c.required(
        &f.listen,
        l.span(),
        "listen",
        format!("listener {name:?} has no listen address"),
        "add listen = \"127.0.0.1:8080\" (or a bare port, listen = \"8080\")",
    );
    let origin = listen_value.map(|v| c.origin(v.span().start));
    let listen = listen_value.and_then(|v| c.socket_addr(v, "listen"));
    let shaky = c.shaky(l.span());
    let protocol = match &f.protocol {
        // A protocol cut for a wrong type is unknown, not "http".
        None if c.was_cut(Some(l.span()), "protocol") => None,
        None => Some(Protocol::Http),
        Some(p) => match p.get_ref().to_ascii_lowercase().as_str() {
            // `"TCP"` is an error, but the listener is checked as the tcp listener it means,
            // so its other errors come in the same run.
            known @ ("http" | "tcp" | "udp" | "https") => {
                if p.get_ref() != known {
                    c.error(
                        p.span(),
                        format!("unknown protocol {:?}", p.get_ref()),
                        format!("names are lowercase: write protocol = {known:?}"),
                    );
                }
                Some(match known {
                    "http" => Protocol::Http,
                    "tcp" => Protocol::Tcp,
                    "udp" => Protocol::Udp,
                    _ => Protocol::Https,
                })
            }
            _ => {
                let other = p.get_ref();
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
    let (tls, hsts) = super::tls_check::listener_tls(c, f, protocol, shaky);
    let http = matches!(protocol, Some(Protocol::Http | Protocol::Https));
    // (tcp/udp listeners without pool get their own error in l4.rs.)
    if http && f.pool.is_none() && f.route.is_empty() && !redirect_https && !shaky {
        c.error(
            l.span(),
            format!("listener {name:?} sends traffic nowhere"),
            "add pool = \"NAME\" (the default pool) or [[listener.route]] entries",
        );
    }
    let l4 = l4::listener_l4(c, l, protocol?);
    // A listener without a usable address is still checked against the others (sticky
    // cookies): its error is recorded, so this plan is never run.
    let listen = listen.unwrap_or(SocketAddr::from(([0, 0, 0, 0], 0)));
    Some(ListenerPlan {
        name,
        listen,
        origin,
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
        if host.is_empty()
            || host.contains('/')
            || host.contains(':')
            || host.chars().skip(1).any(|ch| ch == '*')
        {
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
        match name_value(c, h, "header") {
            Some((n, v)) => match HeaderName::from_bytes(n.as_bytes()) {
                Ok(name) => matcher.header = Some((name, v)),
                Err(_) => {
                    c.error(
                        h.span(),
                        format!("{n:?} is not a header name"),
                        "write header = { name = \"x-canary\", value = \"1\" }",
                    );
                    ok = false;
                }
            },
            None => ok = false,
        }
    }
    if let Some(k) = &f.cookie {
        match name_value(c, k, "cookie") {
            Some(nv) => matcher.cookie = Some(nv),
            None => ok = false,
        }
    }
    let target = match (&f.pool, &f.split) {
        (Some(p), None) => pool_ref(c, p, pools).map(Target::Pool),
        (None, Some(split)) => {
            let shaky_split = c.was_cut(Some(r.span()), "split");
            let mut parts = Vec::new();
            let mut good = true;
            for s in split.get_ref() {
                let sf = s.get_ref();
                let help = "write { pool = \"NAME\", weight = 1 }";
                let pool = c
                    .required(
                        &sf.pool,
                        s.span(),
                        "pool",
                        "a part of split has no pool",
                        help,
                    )
                    .and_then(|p| pool_ref(c, p, pools));
                let weight = c
                    .required(
                        &sf.weight,
                        s.span(),
                        "weight",
                        "a part of split has no weight",
                        help,
                    )
                    .and_then(|w| c.int_in(w, "weight", 1, 1_000_000));
                match (pool, weight) {
                    (Some(p), Some(w)) => parts.push((p, w as u32)),
                    _ => good = false,
                }
            }
            if split.get_ref().is_empty() && !shaky_split {
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
            if !c.shaky(r.span()) {
                c.error(
                    r.span(),
                    "a route has no pool",
                    "add pool = \"NAME\" or split = [ { pool = \"NAME\", weight = 1 } ]",
                );
            }
            None
        }
    };
    let target = target?;
    ok.then_some(RoutePlan { matcher, target })
}

/// `header = { name, value }` or `cookie = { name, value }`: both are needed.
fn name_value(c: &mut Checker<'_>, v: &Spanned<NameValue>, what: &str) -> Option<(String, String)> {
    let f = v.get_ref();
    let help = format!("write {what} = {{ name = \"x-canary\", value = \"1\" }}");
    if f.name.is_none() {
        c.missing(
            v.span(),
            "name",
            format!("{what} has no name"),
            help.clone(),
        );
    }
    if f.value.is_none() {
        c.missing(v.span(), "value", format!("{what} has no value"), help);
    }
    Some((f.name.clone()?, f.value.clone()?))
}

/// A pool's plan. A wrong value is reported and replaced by its default, so the checks that
/// come after (L4 use, sticky cookies) still see the pool; with an error recorded, the plan
/// is never run.
fn pool(c: &mut Checker<'_>, name: &str, p: &Spanned<PoolFile>) -> PoolPlan {
    let f = p.get_ref();
    let shaky = c.shaky(p.span());
    let algorithm = match &f.algorithm {
        None => Some(Algorithm::RoundRobin),
        Some(a) => {
            let alg = Algorithm::parse(a.get_ref());
            if alg.is_none() {
                c.error(
                    a.span(),
                    format!("unknown algorithm {:?}", a.get_ref()),
                    algorithm::help(a.get_ref()),
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
                && !shaky
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
    let keepalive_timeout = c.positive_duration(
        &f.keepalive_timeout,
        "keepalive_timeout",
        Duration::from_secs(60),
        "write e.g. keepalive_timeout = \"60s\"; to keep no idle connection, set keepalive = 0",
    );
    let mut timeouts = Timeouts::default();
    if let Some(t) = &f.timeouts {
        let t = t.get_ref();
        // A zero timeout fails every connect or read at once; nginx rejects it too.
        let help = "write e.g. \"5s\"; a timeout of zero fails every try at once";
        timeouts.connect =
            c.positive_duration(&t.connect, "timeouts.connect", timeouts.connect, help);
        timeouts.read = c.positive_duration(&t.read, "timeouts.read", timeouts.read, help);
        timeouts.send = c.positive_duration(&t.send, "timeouts.send", timeouts.send, help);
        timeouts.client_body = c.positive_duration(
            &t.client_body,
            "timeouts.client_body",
            timeouts.client_body,
            help,
        );
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
        // Cut for a shape error (or misspelt), or emptied by one: that error says it
        // already. The servers that did parse are still checked.
        None if shaky => {}
        Some(list) if shaky && list.get_ref().is_empty() => {}
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
                let addr = c
                    .required(
                        &sf.addr,
                        s.span(),
                        "addr",
                        format!("a server of pool {name:?} has no addr"),
                        "write { addr = \"127.0.0.1:9001\" }",
                    )
                    .and_then(|a| c.socket_addr(a, "server address"));
                let weight = sf
                    .weight
                    .as_ref()
                    .map_or(Some(1), |w| c.int_in(w, "weight", 1, 1000))
                    .map(|w| w as u32);
                let passive = failover::passive(c, &sf.max_fails, &sf.fail_timeout, pool_passive);
                let slow_start = failover::slow_start(c, &sf.slow_start, pool_slow_start);
                let server_name = match (&sf.name, &sf.addr) {
                    (Some(n), _) => n.get_ref().clone(),
                    (None, Some(a)) => a.get_ref().trim().to_string(),
                    (None, None) => String::new(),
                };
                if let (Some(addr), Some(written)) = (addr, &sf.addr)
                    && !seen.insert(addr)
                {
                    c.error(
                        written.span(),
                        format!("server {addr} appears twice in pool {name:?}"),
                        "list each server once; raise its weight to give it more traffic",
                    );
                }
                if let (Some(addr), Some(weight)) = (addr, weight) {
                    servers.push(ServerPlan {
                        addr,
                        name: server_name,
                        weight,
                        backup: sf.backup.unwrap_or(false),
                        down: sf.down.unwrap_or(false),
                        drain: live::drain(c, sf),
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
    failover::grpc_check_needs_h2(c, name, f, health.as_ref(), upstream_protocol);
    PoolPlan {
        name: name.to_string(),
        algorithm: algorithm.unwrap_or(Algorithm::RoundRobin),
        hash_key: hash_key.unwrap_or(HashKey::ClientIp),
        keepalive: keepalive.unwrap_or(32),
        keepalive_timeout,
        timeouts,
        host_header: host_header.unwrap_or(HostHeader::Keep),
        servers,
        health,
        retry,
        sticky,
        upstream_protocol: upstream_protocol.unwrap_or(UpstreamProtocol::H1),
        tls,
        tunnel_idle_timeout,
    }
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
        let bad = "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\nlisen = 1\n[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n";
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
        assert!(
            text.contains("f.toml:11:48: server 127.0.0.1:9 appears twice in pool \"p\""),
            "{text}"
        );
        assert!(text.contains("listener name \"a\" is used twice"), "{text}");
    }

    #[test]
    fn shape_errors_and_other_errors_come_in_one_run() {
        let bad = r#"
[[listener]]
listen = "127.0.0.1:1"
pool = "web"
timeout = "5s"
  [[listener.route]]
  path_prefix = "/api/"
  pool = "api"

[pool.web]
servers = [ { addr = "127.0.0.1:9", weight = 0 } ]
"#;
        let errs = validate(bad, "f.toml").unwrap_err().0;
        let text = ConfigErrors(errs.clone()).to_string();
        assert_eq!(errs.len(), 3, "{text}");
        assert!(
            text.starts_with("error: f.toml:5:1: unknown field `timeout`"),
            "{text}"
        );
        assert!(
            errs[1]
                .to_string()
                .contains("f.toml:8:10: no pool named \"api\""),
            "{text}"
        );
        assert!(
            errs[2]
                .to_string()
                .contains("f.toml:11:46: weight = 0 is out of range"),
            "{text}"
        );
    }

    #[test]
    fn a_route_host_may_start_with_any_character() {
        // Once a panic: the wildcard check sliced the host at byte 1.
        for host in ["ü.example.com", "*ü.example.com", "é"] {
            let src = format!(
                "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n  [[listener.route]]\n  host = \"{host}\"\n  pool = \"p\"\n[pool.p]\nservers = [ {{ addr = \"127.0.0.1:9\" }} ]\n"
            );
            let _ = validate(&src, "f.toml");
        }
    }

    #[test]
    fn an_upper_case_protocol_is_an_error_and_the_listener_is_still_checked() {
        let src = r#"
[[listener]]
listen = "127.0.0.1:7000"
protocol = "TCP"
pool = "r"
[pool.r]
keepalive = 8
servers = [ { addr = "127.0.0.1:9" } ]
"#;
        let errs = validate(src, "f.toml").unwrap_err();
        let text = errs.to_string();
        assert_eq!(errs.0.len(), 2, "{text}");
        assert!(
            text.contains("f.toml:4:12: unknown protocol \"TCP\"")
                && text.contains("names are lowercase: write protocol = \"tcp\""),
            "{text}"
        );
        assert!(text.contains("keepalive in [pool.r] is for HTTP"), "{text}");
    }

    #[test]
    fn a_chain_of_local_listeners_is_fine_and_a_loop_is_not() {
        // tcp :7000 -> http :7001 -> the real server: a chain, as with PROXY headers.
        let chain = r#"
[[listener]]
name = "edge"
listen = "127.0.0.1:7000"
protocol = "tcp"
pool = "hop"
[[listener]]
name = "web"
listen = "127.0.0.1:7001"
pool = "app"
[pool.hop]
servers = [ { addr = "127.0.0.1:7001" } ]
[pool.app]
servers = [ { addr = "127.0.0.1:9" } ]
"#;
        assert!(validate(chain, "f.toml").is_ok());
        // :7000 -> :7001 -> :7000: each listener of the loop is named.
        let looped = chain.replace("addr = \"127.0.0.1:9\"", "addr = \"127.0.0.1:7000\"");
        let errs = validate(&looped, "f.toml").unwrap_err().0;
        let text = ConfigErrors(errs.clone()).to_string();
        assert_eq!(errs.len(), 2, "{text}");
        assert!(
            text.contains("listener \"edge\" sends through pool \"hop\" (server \"127.0.0.1:7001\") to listener \"web\", whose traffic comes back to it"),
            "{text}"
        );
        assert!(
            text.contains("listener \"web\" sends through pool \"app\""),
            "{text}"
        );
    }

    #[test]
    fn a_typo_in_a_pool_still_lets_its_servers_be_checked() {
        let bad = r#"
[[listener]]
listen = "127.0.0.1:1"
pool = "web"

[pool.web]
algoritm = "least_conn"
servers = [ { addr = "127.0.0.1:9", weight = 0 } ]
"#;
        let errs = validate(bad, "f.toml").unwrap_err().0;
        let text = ConfigErrors(errs.clone()).to_string();
        assert_eq!(errs.len(), 2, "{text}");
        assert!(
            text.contains("f.toml:7:1: unknown field `algoritm`"),
            "{text}"
        );
        assert!(
            text.contains("f.toml:8:46: weight = 0 is out of range"),
            "{text}"
        );
    }

    #[test]
    fn a_shape_error_brings_no_follow_on_errors() {
        let pool = "[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n";
        for (src, only) in [
            // A misspelt key is absent, but "has no servers" / "sends traffic nowhere" / "a
            // route has no pool" would blame the user twice for one typo.
            (
                "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n[pool.p]\nserver = [ { addr = \"127.0.0.1:9\" } ]\n"
                    .to_string(),
                "unknown field `server`",
            ),
            (
                format!("[[listener]]\nlisten = \"127.0.0.1:1\"\npol = \"p\"\n{pool}"),
                "unknown field `pol`",
            ),
            (
                format!(
                    "[[listener]]\nlisten = \"127.0.0.1:1\"\n[[listener.route]]\npol = \"p\"\n{pool}"
                ),
                "unknown field `pol`",
            ),
            (
                "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n[pool.p]\nservers = 3\n"
                    .to_string(),
                "servers must be an array",
            ),
            // A wrong-typed protocol is unknown, not "http": no "idle_timeout applies to tcp".
            (
                format!(
                    "[[listener]]\nlisten = \"127.0.0.1:1\"\nprotocol = 4\nidle_timeout = \"1m\"\npool = \"p\"\n{pool}"
                ),
                "protocol must be a string, in quotes",
            ),
            // The only listener has no address: not also "the file has no [[listener]]".
            (
                format!("[[listener]]\npool = \"p\"\n{pool}"),
                "listener \"listener1\" has no listen address",
            ),
            // A misspelt required key: not also "has no listen address" / "has no addr".
            (
                format!("[[listener]]\nlistn = \"127.0.0.1:1\"\npool = \"p\"\n{pool}"),
                "unknown field `listn`",
            ),
            (
                "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n[pool.p]\nservers = [ { adr = \"127.0.0.1:9\" } ]\n"
                    .to_string(),
                "unknown field `adr`",
            ),
            (
                format!("[[listener]]\nlisten = 1\npool = \"p\"\n{pool}"),
                "listen must be a string, in quotes",
            ),
            (
                format!(
                    "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n{pool}[pool.p.sticky]\nmod = \"cookie\"\n"
                ),
                "unknown field `mod`",
            ),
            // A wrong-typed interval is not compared with the timeout as the default.
            (
                format!(
                    "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n{pool}[pool.p.health]\ninterval = 1\ntimeout = \"3s\"\n"
                ),
                "interval = 1 needs a unit",
            ),
            // A pool that could not be read still exists for the routes that name it.
            (
                "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n[pool]\np = 1\n".to_string(),
                "p must be a table",
            ),
        ] {
            let errs = validate(&src, "f.toml").unwrap_err().0;
            let text = ConfigErrors(errs.clone()).to_string();
            assert_eq!(errs.len(), 1, "{src}\n{text}");
            assert!(errs[0].message.contains(only), "{src}\n{text}");
        }
    }

    #[test]
    fn one_error_hides_no_other_in_its_entry() {
        // The trial files of a user coming from nginx/HAProxy: a wrong type, an unknown
        // value or a misspelt required key each used to hide the rest of its table.
        let bad = r#"
[[listener]]
name = "site"
listen = "127.0.0.1:18090"
pool = "api"

[[listener]]
name = "raw"
listn = "127.0.0.1:18096"
protocol = "tcp"
pool = "apii"
hsts = "1h"

[pool.api]
keepalive = "32"
servers = [
  { addr = "127.0.0.1:18081", weight = 0, fail_timeout = "30" },
  { weight = 2 },
]

[[listener]]
name = "l4"
listen = "127.0.0.1:18097"
protocol = "tcp"
pool = "web"

[pool.web]
algorithm = "least_connections"
timeouts = { read = "5s" }
servers = [ { addr = "127.0.0.1:18082" } ]
[pool.web.sticky]
mode = "cookie"
[pool.web.retry]
attempts = 1
"#;
        let errs = validate(bad, "f.toml").unwrap_err().0;
        let text: Vec<String> = errs.iter().map(|e| e.to_string()).collect();
        let expected = [
            "f.toml:9:1: unknown field `listn`",
            "f.toml:11:8: no pool named \"apii\"",
            "f.toml:12:8: hsts is for http/https listeners, not this tcp listener",
            "f.toml:15:13: keepalive must be a whole number",
            "f.toml:17:40: weight = 0 is out of range",
            "f.toml:17:58: fail_timeout: \"30\" has no unit",
            "f.toml:18:3: a server of pool \"api\" has no addr",
            "f.toml:28:13: unknown algorithm \"least_connections\"",
            "f.toml:29:21: timeouts.read in [pool.web] is for HTTP",
            "f.toml:31:1: [pool.web.sticky] needs HTTP",
            "f.toml:33:1: [pool.web.retry] applies to HTTP requests",
        ];
        assert_eq!(errs.len(), expected.len(), "{text:#?}");
        for (got, want) in text.iter().zip(expected) {
            assert!(
                got.starts_with(&format!("error: {want}")),
                "{want}\n{text:#?}"
            );
        }
        assert!(text[3].contains("help: write keepalive = 32, without quotes"));
        assert!(text[7].contains("help: did you mean \"least_conn\"?"));
    }

    #[test]
    fn listeners_that_cannot_all_bind_are_errors() {
        let pool = "[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n";
        let l = |listen: &str, protocol: &str| {
            format!(
                "[[listener]]\nlisten = \"{listen}\"\nprotocol = \"{protocol}\"\npool = \"p\"\n"
            )
        };
        for (src, message) in [
            (
                format!(
                    "{}{}{pool}",
                    l("127.0.0.1:80", "http"),
                    l("127.0.0.1:80", "tcp")
                ),
                "listener \"listener2\" listens on 127.0.0.1:80, as listener \"listener1\" does",
            ),
            (
                format!(
                    "{}{}{pool}",
                    l("0.0.0.0:80", "http"),
                    l("127.0.0.1:80", "http")
                ),
                "listener \"listener2\" listens on 127.0.0.1:80, which listener \"listener1\" on 0.0.0.0:80 covers",
            ),
            (
                format!(
                    "{}{}{pool}",
                    l("127.0.0.1:53", "udp"),
                    l("0.0.0.0:53", "udp")
                ),
                "listener \"listener2\" listens on 0.0.0.0:53, which covers listener \"listener1\" on 127.0.0.1:53",
            ),
            (
                format!("{}{pool}", l("127.0.0.1:9", "http")),
                "listener \"listener1\" listens on 127.0.0.1:9, where server \"127.0.0.1:9\" of pool \"p\" is",
            ),
            (
                format!("{}{pool}", l("0.0.0.0:9", "tcp")),
                "listener \"listener1\" listens on 0.0.0.0:9, where server \"127.0.0.1:9\" of pool \"p\" is",
            ),
            (
                format!(
                    "{}{pool}[admin]\nlisten = \"127.0.0.1:80\"\n",
                    l("0.0.0.0:80", "http")
                ),
                "[admin] listens on 127.0.0.1:80, as listener \"listener1\" does",
            ),
        ] {
            let errs = validate(&src, "f.toml").unwrap_err().0;
            assert_eq!(errs.len(), 1, "{src}\n{errs:#?}");
            assert_eq!(errs[0].message, message, "{src}");
            assert!(errs[0].help.is_some());
        }
        // A tcp and a udp listener may share an address (DNS on 53); IPv4 and IPv6
        // wildcards are separate sockets (v6-only).
        for src in [
            format!(
                "{}{}{pool}",
                l("127.0.0.1:53", "tcp"),
                l("127.0.0.1:53", "udp")
            ),
            format!("{}{}{pool}", l("0.0.0.0:80", "http"), l("[::]:80", "http")),
        ] {
            assert!(validate(&src, "f.toml").is_ok(), "{src}");
        }
    }

    #[test]
    fn a_listener_knows_where_its_address_is_written() {
        let src = "[[listener]]\nname = \"web\"\n  listen = \"127.0.0.1:8080\"\npool = \"p\"\n[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n[admin]\nlisten = \"127.0.0.1:9900\"\n";
        let plan = validate(src, "dir/f.toml").unwrap();
        assert_eq!(plan.listeners[0].origin.as_deref(), Some("dir/f.toml:3:12"));
        assert_eq!(
            plan.admin.unwrap().origin.as_deref(),
            Some("dir/f.toml:8:10")
        );
    }

    #[test]
    fn zero_timeouts_are_errors() {
        let base = "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n";
        for (key, line) in [
            (
                "timeouts = { connect = \"0s\" }",
                "timeouts.connect must be longer than 0",
            ),
            (
                "timeouts = { read = \"0ms\" }",
                "timeouts.read must be longer than 0",
            ),
            (
                "timeouts = { send = \"0s\" }",
                "timeouts.send must be longer than 0",
            ),
            (
                "keepalive_timeout = \"0s\"",
                "keepalive_timeout must be longer than 0",
            ),
            (
                "tunnel_idle_timeout = \"0s\"",
                "tunnel_idle_timeout must be longer than 0",
            ),
            (
                "fail_timeout = \"0s\"",
                "fail_timeout = \"0s\" would never take",
            ),
        ] {
            let errs = validate(&format!("{base}{key}\n"), "f.toml").unwrap_err().0;
            assert_eq!(errs.len(), 1, "{key}: {errs:?}");
            assert_eq!(errs[0].line, 6, "{key}: {errs:?}");
            assert!(errs[0].message.contains(line), "{key}: {errs:?}");
            assert!(errs[0].help.is_some());
        }
        // Zero means something for these: stop at once, no ramp-up, forget HSTS.
        let ok = format!("grace_period = \"0s\"\n{base}slow_start = \"0s\"\n");
        assert!(validate(&ok, "f.toml").is_ok());
    }
}

//! Validation of the failure-handling sections: `[pool.NAME.health]`, `[pool.NAME.retry]`,
//! `[pool.NAME.sticky]`, passive health keys (`max_fails`, `fail_timeout`, `slow_start`) and
//! `[admin]`. Each function reports its errors to the [`Checker`] and returns a value (the
//! default where a key was wrong), so one run lists every problem.

use std::time::Duration;

use http::Method;
use toml::Spanned;

use super::super::file::{AdminFile, ConfigFile, HealthFile, PoolFile, RetryFile, StickyFile};
use super::super::plan::{HostMatch, ListenerPlan, Protocol, Target, UpstreamProtocol};
use super::super::{
    AdminPlan, HealthKind, HealthPlan, PassivePlan, RetryOn, RetryPlan, ServerPlan, StickyMode,
    StickyPlan,
};
use super::Checker;

/// `[admin]`.
pub(super) fn admin(c: &mut Checker<'_>, f: &Spanned<AdminFile>) -> Option<AdminPlan> {
    let listen = c.required(
        &f.get_ref().listen,
        f.span(),
        "listen",
        "[admin] has no listen address",
        "add listen = \"127.0.0.1:9900\"",
    )?;
    let origin = Some(c.origin(listen.span().start));
    let token = super::live::admin_token(c, f);
    let addr = c.socket_addr(listen, "admin listen")?;
    super::live::admin_access(c, f, listen, addr, token.is_some());
    Some(AdminPlan {
        listen: addr,
        origin,
        token,
    })
}

/// `max_fails` and `fail_timeout`, each falling back to `default` (the pool's, or nginx's).
pub(super) fn passive(
    c: &mut Checker<'_>,
    max_fails: &Option<Spanned<i64>>,
    fail_timeout: &Option<Spanned<String>>,
    default: PassivePlan,
) -> PassivePlan {
    PassivePlan {
        max_fails: max_fails
            .as_ref()
            .and_then(|m| c.int_in(m, "max_fails", 0, 1000))
            .map_or(default.max_fails, |n| n as u32),
        fail_timeout: match fail_timeout {
            Some(t) => match c.duration(t, "fail_timeout") {
                Some(d) if d.is_zero() => {
                    c.error(
                        t.span(),
                        "fail_timeout = \"0s\" would never take a failing server out",
                        "write a duration such as \"10s\", or set max_fails = 0 to turn passive checks off",
                    );
                    default.fail_timeout
                }
                Some(d) => d,
                None => default.fail_timeout,
            },
            None => default.fail_timeout,
        },
    }
}

/// nginx's rule: the only server of a pool is never taken out by passive checks nor
/// ramped up — there is nowhere else to send its traffic, so a 503 would help no one.
pub(super) fn single_server(servers: &mut [ServerPlan]) {
    if let [only] = servers {
        only.passive.max_fails = 0;
        only.slow_start = Duration::ZERO;
    }
}

/// `slow_start`, falling back to `default`.
pub(super) fn slow_start(
    c: &mut Checker<'_>,
    v: &Option<Spanned<String>>,
    default: Duration,
) -> Duration {
    c.duration_or(v, "slow_start", default)
}

/// `"200-399"`, `"200"`, `"200-299,302"` → inclusive ranges.
pub(crate) fn parse_expect(s: &str) -> Option<Vec<(u16, u16)>> {
    let mut out = Vec::new();
    for part in s.split(',') {
        let part = part.trim();
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
            None => {
                let n = part.parse().ok()?;
                (n, n)
            }
        };
        if !(100..=599).contains(&lo) || !(100..=599).contains(&hi) || lo > hi {
            return None;
        }
        out.push((lo, hi));
    }
    (!out.is_empty()).then_some(out)
}

/// The methods a probe may send: the standard ones that ask for a resource (not CONNECT,
/// which opens a tunnel and gets no status to judge).
const PROBE_METHODS: [(&str, Method); 8] = [
    ("GET", Method::GET),
    ("HEAD", Method::HEAD),
    ("OPTIONS", Method::OPTIONS),
    ("POST", Method::POST),
    ("PUT", Method::PUT),
    ("PATCH", Method::PATCH),
    ("DELETE", Method::DELETE),
    ("TRACE", Method::TRACE),
];

/// `[pool.NAME.health]`.
pub(super) fn health(c: &mut Checker<'_>, f: &Spanned<HealthFile>) -> HealthPlan {
    let h = f.get_ref();
    let mut plan = HealthPlan::default();
    if let Some(k) = &h.kind {
        match k.get_ref().as_str() {
            "http" => plan.kind = HealthKind::Http,
            "tcp" => plan.kind = HealthKind::Tcp,
            "grpc" => {
                plan.kind = HealthKind::Grpc {
                    service: h
                        .service
                        .as_ref()
                        .map_or_else(String::new, |s| s.get_ref().clone()),
                }
            }
            other => c.error(
                k.span(),
                format!("unknown health check type {other:?}"),
                "use type = \"http\", type = \"tcp\" or type = \"grpc\"",
            ),
        }
    }
    // Keys of another kind of check are a mistake the operator wants to hear about.
    match &plan.kind {
        HealthKind::Tcp => {
            let http_only = [
                ("path", &h.path),
                ("method", &h.method),
                ("host", &h.host),
                ("expect", &h.expect),
                ("expect_body", &h.expect_body),
            ];
            for (key, v) in http_only {
                if let Some(v) = v {
                    c.error(
                        v.span(),
                        format!("{key} is only used by type = \"http\" health checks"),
                        format!("remove {key}, or set type = \"http\""),
                    );
                }
            }
        }
        HealthKind::Grpc { .. } => {
            const PASSES: &str =
                "a gRPC check passes when the server answers SERVING with grpc-status 0";
            let http_only = [
                (
                    "path",
                    &h.path,
                    "a gRPC check always calls /grpc.health.v1.Health/Check; name the service it asks about with service = \"package.Service\"",
                ),
                ("method", &h.method, "a gRPC call is always a POST"),
                ("expect", &h.expect, PASSES),
                ("expect_body", &h.expect_body, PASSES),
            ];
            for (key, v, why) in http_only {
                if let Some(v) = v {
                    c.error(
                        v.span(),
                        format!("{key} is not used by type = \"grpc\" health checks"),
                        format!("remove {key}: {why}"),
                    );
                }
            }
        }
        HealthKind::Http => {}
    }
    if let Some(s) = &h.service
        && !matches!(plan.kind, HealthKind::Grpc { .. })
    {
        c.error(
            s.span(),
            "service is only used by type = \"grpc\" health checks",
            "remove service, or set type = \"grpc\"",
        );
    }
    if let Some(p) = &h.path {
        if p.get_ref().starts_with('/') {
            plan.path = p.get_ref().clone();
        } else {
            c.error(
                p.span(),
                format!("health path {:?} does not start with /", p.get_ref()),
                format!("write \"/{}\"", p.get_ref()),
            );
        }
    }
    if let Some(m) = &h.method {
        let upper = m.get_ref().to_ascii_uppercase();
        match PROBE_METHODS.iter().find(|(name, _)| *name == upper) {
            Some((_, method)) => plan.method = method.clone(),
            None => c.error(
                m.span(),
                format!("{:?} is not a method a health check can send", m.get_ref()),
                format!(
                    "use one of: {}",
                    PROBE_METHODS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ),
        }
    }
    if let Some(host) = &h.host {
        if http::HeaderValue::from_str(host.get_ref()).is_ok() && !host.get_ref().is_empty() {
            plan.host = Some(host.get_ref().clone());
        } else {
            c.error(
                host.span(),
                format!("host {:?} cannot be a Host header", host.get_ref()),
                "write a host name such as \"api.internal\"",
            );
        }
    }
    if let Some(e) = &h.expect {
        match parse_expect(e.get_ref()) {
            Some(ranges) => plan.expect = ranges,
            None => c.error(
                e.span(),
                format!("expect {:?} is not a list of statuses", e.get_ref()),
                "write statuses or ranges from 100 to 599, e.g. \"200\", \"200-399\" or \"200-299,302\"",
            ),
        }
    }
    if let Some(b) = &h.expect_body {
        if plan.method == Method::HEAD {
            c.error(
                b.span(),
                "expect_body with method = \"HEAD\": an answer to HEAD has no body",
                "remove expect_body, or use method = \"GET\"",
            );
        }
        plan.expect_body = Some(b.get_ref().clone());
    }
    let shaky = c.shaky(f.span());
    plan.interval = c.duration_or(&h.interval, "interval", plan.interval);
    // Unset, the timeout is 1s or the interval if that is shorter (HAProxy's `timeout check`
    // falls back to `inter` too): `interval = "500ms"` alone is a valid check.
    plan.timeout = c.duration_or(&h.timeout, "timeout", plan.timeout.min(plan.interval));
    if let Some(i) = &h.interval
        && plan.interval < Duration::from_millis(10)
    {
        c.error(
            i.span(),
            "a health check interval under 10ms would flood the servers",
            "write e.g. interval = \"2s\"",
        );
    }
    let zero_timeout = h.timeout.as_ref().filter(|_| plan.timeout.is_zero());
    if let Some(t) = zero_timeout {
        c.error(
            t.span(),
            "timeout = 0 fails every check",
            "write e.g. timeout = \"1s\"",
        );
    } else if plan.timeout > plan.interval && !shaky {
        // An explicit timeout, against an explicit or the default interval.
        let fmt = super::super::format_duration;
        let span = match (&h.timeout, &h.interval) {
            (Some(t), _) => t.span(),
            (None, Some(i)) => i.span(),
            (None, None) => f.span(),
        };
        let default = |v: &Option<Spanned<String>>| if v.is_none() { ", the default" } else { "" };
        c.error(
            span,
            format!(
                "timeout ({}{}) is longer than interval ({}{})",
                fmt(plan.timeout),
                default(&h.timeout),
                fmt(plan.interval),
                default(&h.interval),
            ),
            format!(
                "a check must end before the next starts: set timeout = \"{}\" or less (or leave it out: the default is 1s, or the interval when that is shorter), or raise interval",
                fmt(plan.interval)
            ),
        );
    }
    if let Some(r) = &h.rise {
        plan.rise = c.int_in(r, "rise", 1, 100).map_or(plan.rise, |n| n as u32);
    }
    if let Some(f) = &h.fall {
        plan.fall = c.int_in(f, "fall", 1, 100).map_or(plan.fall, |n| n as u32);
    }
    plan
}

/// A `type = "grpc"` check speaks HTTP/2, so its pool must speak HTTP/2 to its servers
/// (`protocol` is `None` when `upstream_protocol` was wrong, which is reported already).
pub(super) fn grpc_check_needs_h2(
    c: &mut Checker<'_>,
    pool: &str,
    f: &PoolFile,
    health: Option<&HealthPlan>,
    protocol: Option<UpstreamProtocol>,
) {
    let (Some(h), Some(HealthKind::Grpc { .. })) = (&f.health, health.map(|h| &h.kind)) else {
        return;
    };
    if protocol != Some(UpstreamProtocol::H1) {
        return;
    }
    let span = h.get_ref().kind.as_ref().map_or(h.span(), |k| k.span());
    let how = if f.upstream_protocol.is_some() {
        "upstream_protocol = \"h1\""
    } else {
        "HTTP/1.1, the default"
    };
    let want = if f.tls.is_some() { "h2" } else { "h2c" };
    c.error(
        span,
        format!(
            "a type = \"grpc\" health check speaks HTTP/2, but pool {pool:?} speaks {how} to its servers"
        ),
        format!(
            "set upstream_protocol = \"{want}\" in [pool.{pool}] (gRPC servers speak only HTTP/2), or use type = \"tcp\""
        ),
    );
}

/// `[pool.NAME.retry]`.
pub(super) fn retry(c: &mut Checker<'_>, f: &Spanned<RetryFile>) -> RetryPlan {
    let r = f.get_ref();
    let mut plan = RetryPlan::default();
    if let Some(a) = &r.attempts {
        plan.attempts = c
            .int_in(a, "attempts", 0, 20)
            .map_or(plan.attempts, |n| n as u32);
    }
    if let Some(on) = &r.on {
        plan.on = RetryOn {
            connect_failure: false,
            reset: false,
            timeout: false,
            statuses: Vec::new(),
            grpc_unavailable: false,
        };
        for cond in on.get_ref() {
            match cond.get_ref().as_str() {
                "connect_failure" => plan.on.connect_failure = true,
                "reset" => plan.on.reset = true,
                "timeout" => plan.on.timeout = true,
                "grpc_unavailable" => plan.on.grpc_unavailable = true,
                // nginx's `error`: the connection failed, before or after sending.
                "error" => {
                    plan.on.connect_failure = true;
                    plan.on.reset = true;
                }
                // Every server error status, 500 to 599.
                "5xx" => plan.on.statuses.extend(500..=599),
                s => match s.parse::<u16>() {
                    Ok(n) if (500..=599).contains(&n) || n == 429 || n == 404 || n == 403 => {
                        plan.on.statuses.push(n)
                    }
                    _ => c.error(
                        cond.span(),
                        format!("retry condition {s:?} is not understood"),
                        "use connect_failure, reset, timeout, error, grpc_unavailable, \"5xx\", or a status: \"502\", \"503\", \"504\" (any of 500-599, or 403, 404, 429)",
                    ),
                },
            }
        }
    }
    if let Some(n) = r.non_idempotent {
        plan.non_idempotent = n;
    }
    if let Some(b) = &r.budget {
        let v = *b.get_ref();
        if v.is_finite() && (0.0..=10.0).contains(&v) {
            plan.budget = v;
        } else {
            c.error(
                b.span(),
                format!("budget = {v} is out of range"),
                "write a share of the traffic from 0.0 to 10.0, e.g. budget = 0.2 for 20 %",
            );
        }
    }
    plan
}

/// `[pool.NAME.sticky]`.
pub(super) fn sticky(c: &mut Checker<'_>, f: &Spanned<StickyFile>) -> Option<StickyPlan> {
    let s = f.get_ref();
    let written = c.required(
        &s.mode,
        f.span(),
        "mode",
        "[sticky] has no mode",
        "add mode = \"cookie\" (Switchyard's cookie), \"app_cookie\" (the application's) or \"source_ip\"",
    );
    let mode = match written.map(|m| m.get_ref().as_str()) {
        None => None,
        Some("cookie") => Some(StickyMode::Cookie),
        Some("app_cookie") => Some(StickyMode::AppCookie),
        Some("source_ip") => Some(StickyMode::SourceIp),
        Some(other) => {
            c.error(
                written.map_or(f.span(), |m| m.span()),
                format!("unknown sticky mode {other:?}"),
                "use mode = \"cookie\", \"app_cookie\" or \"source_ip\"",
            );
            None
        }
    };
    let name = match (&s.name, mode) {
        (Some(n), Some(StickyMode::SourceIp)) => {
            c.error(
                n.span(),
                "name is not used by mode = \"source_ip\"",
                "remove name, or use mode = \"cookie\" / \"app_cookie\"",
            );
            String::new()
        }
        (Some(n), _) => {
            let v = n.get_ref();
            // RFC 6265 cookie-name is a token.
            let ok = !v.is_empty()
                && v.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
            if !ok {
                c.error(
                    n.span(),
                    format!("{v:?} is not a cookie name"),
                    "use letters, digits and - _ . only, e.g. name = \"SRV\"",
                );
            }
            v.clone()
        }
        (None, Some(StickyMode::AppCookie)) if c.shaky(f.span()) => String::new(),
        (None, Some(StickyMode::AppCookie)) => {
            c.error(
                f.span(),
                "mode = \"app_cookie\" needs the application's cookie name",
                "add name = \"JSESSIONID\" (or your application's session cookie)",
            );
            String::new()
        }
        (None, _) => "SRV".to_string(),
    };
    let ttl = c.duration_or(&s.ttl, "ttl", Duration::from_secs(3600));
    if let Some(t) = &s.ttl
        && ttl < Duration::from_secs(1)
    {
        c.error(
            t.span(),
            "ttl under 1s forgets every client at once",
            "write e.g. ttl = \"1h\"",
        );
    }
    let size = s
        .size
        .as_ref()
        .map_or(Some(65_536), |n| c.int_in(n, "size", 16, 10_000_000))
        .unwrap_or(65_536) as usize;
    let on_drain = super::live::on_drain(c, &s.on_drain);
    mode.map(|mode| StickyPlan {
        mode,
        name,
        ttl,
        size,
        on_drain,
    })
}

/// Two sticky pools that one listener reaches (default pool, routes, splits) must not share
/// a cookie name: both cookies are set with `Path=/`, so each pool's `Set-Cookie` replaces
/// the other's and a client moving between them loses its server every time. A
/// `mode = "cookie"` name equal to an `app_cookie` pool's would overwrite the application's
/// session cookie. Two `app_cookie` pools on one name are the applications' business.
pub(super) fn sticky_cookies(c: &mut Checker<'_>, parsed: &ConfigFile, listeners: &[ListenerPlan]) {
    // (pool, cookie name, mode, where to point) for the pools whose sticky section is sound.
    struct Sticky<'f> {
        pool: &'f str,
        cookie: String,
        mode: &'f str,
        span: std::ops::Range<usize>,
    }
    let all: Vec<Sticky<'_>> = parsed
        .pool
        .iter()
        .filter_map(|(pool, p)| {
            let s = p.get_ref().sticky.as_ref()?;
            let f = s.get_ref();
            let mode = f.mode.as_ref()?.get_ref().as_str();
            if c.shaky(s.span()) || !matches!(mode, "cookie" | "app_cookie") {
                return None;
            }
            let (cookie, span) = match &f.name {
                Some(n) => (n.get_ref().clone(), n.span()),
                None if mode == "cookie" => ("SRV".to_string(), s.span()),
                None => return None,
            };
            Some(Sticky {
                pool,
                cookie,
                mode,
                span,
            })
        })
        .collect();
    let mut reported = std::collections::HashSet::new();
    for l in listeners {
        if !matches!(l.protocol, Protocol::Http | Protocol::Https) {
            continue;
        }
        let mut reached: Vec<&str> = l.default_pool.iter().map(String::as_str).collect();
        // The exact hosts through which each pool is reached; `None` when some way to it
        // has no exact host (the default pool, a route without `host`, a wildcard).
        let mut hosts: std::collections::HashMap<&str, Option<std::collections::HashSet<&str>>> =
            std::collections::HashMap::new();
        for p in &reached {
            hosts.insert(p, None);
        }
        for r in &l.routes {
            let targets: Vec<&str> = match &r.target {
                Target::Pool(p) => vec![p.as_str()],
                Target::Split(parts) => parts.iter().map(|(p, _)| p.as_str()).collect(),
            };
            for p in targets {
                reached.push(p);
                let exact = match &r.matcher.host {
                    Some(HostMatch::Exact(h)) => Some(h.as_str()),
                    _ => None,
                };
                let entry = hosts
                    .entry(p)
                    .or_insert_with(|| Some(std::collections::HashSet::new()));
                match (entry.as_mut(), exact) {
                    (Some(set), Some(h)) => {
                        set.insert(h);
                    }
                    _ => *entry = None,
                }
            }
        }
        // Host-only cookies (no Domain) of pools that serve disjoint exact hosts never meet.
        let apart = |a: &str, b: &str| match (hosts.get(a), hosts.get(b)) {
            (Some(Some(x)), Some(Some(y))) => x.is_disjoint(y),
            _ => false,
        };
        let mut stickies: Vec<&Sticky<'_>> = Vec::new();
        for p in reached {
            if let Some(s) = all.iter().find(|s| s.pool == p)
                && !stickies.iter().any(|x| x.pool == p)
            {
                stickies.push(s);
            }
        }
        for (i, a) in stickies.iter().enumerate() {
            for b in stickies[i + 1..].iter() {
                if a.cookie != b.cookie
                    || (a.mode == "app_cookie" && b.mode == "app_cookie")
                    || apart(a.pool, b.pool)
                {
                    continue;
                }
                // Point at the later of the two in the file; report each pair once.
                let (first, second) = if a.span.start <= b.span.start {
                    (a, b)
                } else {
                    (b, a)
                };
                if !reported.insert((first.pool, second.pool)) {
                    continue;
                }
                let help = match (first.mode, second.mode) {
                    ("cookie", "cookie") => format!(
                        "give each pool its own cookie: name = \"{c}_{}\" in [pool.{}.sticky] and name = \"{c}_{}\" in [pool.{}.sticky]",
                        first.pool,
                        first.pool,
                        second.pool,
                        second.pool,
                        c = first.cookie
                    ),
                    _ => {
                        let ours = if first.mode == "cookie" {
                            first
                        } else {
                            second
                        };
                        format!(
                            "rename Switchyard's cookie: name = \"{}_{}\" in [pool.{}.sticky]; the application's cookie keeps its name",
                            ours.cookie, ours.pool, ours.pool
                        )
                    }
                };
                c.error(
                    second.span.clone(),
                    format!(
                        "pools {:?} and {:?} both use the sticky cookie {:?} on listener {:?}: each one's Set-Cookie (Path=/) replaces the other's, so clients lose their server",
                        first.pool, second.pool, first.cookie, l.name
                    ),
                    help,
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::validate;
    use super::*;

    const BASE: &str = "[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nservers = [ { addr = \"127.0.0.1:9001\" }, { addr = \"127.0.0.1:9002\", max_fails = 0, slow_start = \"5s\" } ]\n";

    #[test]
    fn defaults_are_nginx_s() {
        let plan = validate(BASE, "t.toml").unwrap();
        let p = plan.pool("p").unwrap();
        assert_eq!(p.health, None);
        assert_eq!(p.retry, RetryPlan::default());
        assert_eq!(p.servers[0].passive, PassivePlan::default());
        assert_eq!(p.servers[0].passive.max_fails, 1);
        assert_eq!(p.servers[0].passive.fail_timeout, Duration::from_secs(10));
        assert_eq!(p.servers[1].passive.max_fails, 0);
        assert_eq!(p.servers[1].slow_start, Duration::from_secs(5));
        assert_eq!(plan.admin, None);
    }

    #[test]
    fn full_sections_become_plans() {
        let src = format!(
            "{BASE}max_fails = 3\nfail_timeout = \"30s\"\n[pool.p.health]\ntype = \"http\"\npath = \"/health\"\nexpect = \"200-299,302\"\nexpect_body = \"ok\"\ninterval = \"3s\"\ntimeout = \"1s\"\nrise = 2\nfall = 3\n[pool.p.retry]\nattempts = 3\non = [\"connect_failure\", \"503\"]\nnon_idempotent = true\nbudget = 0.5\n[pool.p.sticky]\nmode = \"cookie\"\nname = \"SRV\"\nttl = \"2h\"\n[admin]\nlisten = \"127.0.0.1:9900\"\n"
        );
        let plan = validate(&src, "t.toml").unwrap();
        let p = plan.pool("p").unwrap();
        let h = p.health.as_ref().unwrap();
        assert_eq!(h.expect, vec![(200, 299), (302, 302)]);
        assert!(h.status_passes(302) && !h.status_passes(301));
        assert_eq!((h.rise, h.fall, h.interval), (2, 3, Duration::from_secs(3)));
        assert_eq!(p.retry.attempts, 3);
        assert!(p.retry.on.connect_failure && !p.retry.on.timeout && p.retry.on.status(503));
        assert!(!p.retry.on.status(502));
        assert!(p.retry.non_idempotent);
        assert_eq!(p.servers[0].passive.max_fails, 3);
        assert_eq!(p.servers[0].passive.fail_timeout, Duration::from_secs(30));
        // The server's own max_fails wins over the pool's.
        assert_eq!(p.servers[1].passive.max_fails, 0);
        let s = p.sticky.as_ref().unwrap();
        assert_eq!(
            (s.mode, s.name.as_str(), s.ttl),
            (StickyMode::Cookie, "SRV", Duration::from_secs(7200))
        );
        assert_eq!(plan.admin.unwrap().listen.port(), 9900);
    }

    #[test]
    fn mistakes_are_reported_with_their_place() {
        let src = format!(
            "{BASE}[pool.p.health]\ntype = \"udp\"\nexpect = \"2xx\"\ninterval = \"1s\"\ntimeout = \"5s\"\nrise = 0\n[pool.p.retry]\non = [\"bogus\"]\nbudget = -1.0\n[pool.p.sticky]\nmode = \"app_cookie\"\n"
        );
        let errs = validate(&src, "t.toml").unwrap_err();
        let text = errs.to_string();
        assert_eq!(errs.0.len(), 7, "{text}");
        assert!(
            text.contains("t.toml:7:8: unknown health check type \"udp\""),
            "{text}"
        );
        assert!(text.contains("t.toml:8:10: expect \"2xx\""), "{text}");
        assert!(
            text.contains("t.toml:10:11: timeout (5s) is longer than interval (1s)"),
            "{text}"
        );
        assert!(
            text.contains("t.toml:11:8: rise = 0 is out of range"),
            "{text}"
        );
        assert!(
            text.contains("t.toml:13:7: retry condition \"bogus\""),
            "{text}"
        );
        assert!(
            text.contains("t.toml:14:10: budget = -1 is out of range"),
            "{text}"
        );
        assert!(
            text.contains("needs the application's cookie name"),
            "{text}"
        );
    }

    #[test]
    fn a_single_server_is_never_taken_out_passively() {
        let src = "[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nmax_fails = 3\nslow_start = \"10s\"\nservers = [ { addr = \"127.0.0.1:9001\" } ]\n";
        let plan = validate(src, "t.toml").unwrap();
        let s = &plan.pool("p").unwrap().servers[0];
        assert_eq!((s.passive.max_fails, s.slow_start), (0, Duration::ZERO));
    }

    #[test]
    fn expect_lists() {
        assert_eq!(parse_expect("200"), Some(vec![(200, 200)]));
        assert_eq!(
            parse_expect(" 200-299 , 302"),
            Some(vec![(200, 299), (302, 302)])
        );
        for bad in ["", "2xx", "300-200", "99", "200-700", "200,"] {
            assert_eq!(parse_expect(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn probe_methods_and_timeouts() {
        let with = |health: &str| format!("{BASE}[pool.p.health]\n{health}");
        let errs = |health: &str| validate(&with(health), "t.toml").unwrap_err().to_string();
        let plan = validate(&with("method = \"head\"\n"), "t.toml").unwrap();
        assert_eq!(plan.pools[0].health.as_ref().unwrap().method, Method::HEAD);
        for m in ["OPTIONS", "POST", "DELETE"] {
            assert!(validate(&with(&format!("method = \"{m}\"\n")), "t.toml").is_ok());
        }
        for bad in ["FOO", "CONNECT", "G ET"] {
            let text = errs(&format!("method = \"{bad}\"\n"));
            assert!(
                text.contains(&format!(
                    "t.toml:7:10: \"{bad}\" is not a method a health check can send"
                )),
                "{text}"
            );
            assert!(text.contains("use one of: GET, HEAD"), "{text}");
        }
        let text = errs("method = \"HEAD\"\nexpect_body = \"ok\"\n");
        assert!(
            text.contains(
                "t.toml:8:15: expect_body with method = \"HEAD\": an answer to HEAD has no body"
            ),
            "{text}"
        );
        // A short interval alone shortens the default timeout (1s) to it.
        let short = validate(&with("interval = \"500ms\"\n"), "t.toml").unwrap();
        let h = short.pools[0].health.as_ref().unwrap();
        assert_eq!(
            (h.interval, h.timeout),
            (Duration::from_millis(500), Duration::from_millis(500))
        );
        // And a timeout against the default interval (2s).
        let text = errs("timeout = \"3s\"\n");
        assert!(
            text.contains("t.toml:7:11: timeout (3s) is longer than interval (2s, the default)"),
            "{text}"
        );
        // The fix it names is valid, as docs/health-and-stickiness.md says: at most interval.
        assert!(text.contains("set timeout = \"2s\" or less"), "{text}");
        assert!(validate(&with("timeout = \"2s\"\n"), "t.toml").is_ok());
        let text = errs("interval = \"500ms\"\ntimeout = \"1s\"\n");
        assert!(text.contains("set timeout = \"500ms\" or less"), "{text}");
        assert!(
            validate(
                &with("interval = \"500ms\"\ntimeout = \"500ms\"\n"),
                "t.toml"
            )
            .is_ok()
        );
        assert!(
            validate(
                &with("interval = \"500ms\"\ntimeout = \"200ms\"\n"),
                "t.toml"
            )
            .is_ok()
        );
        let text = errs("interval = \"0s\"\n");
        assert!(text.contains("interval under 10ms"), "{text}");
    }

    #[test]
    fn grpc_checks_need_an_h2_pool_and_no_http_keys() {
        let pool = |extra: &str, health: &str| {
            format!(
                "[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"g\"\n[pool.g]\n{extra}servers = [ {{ addr = \"127.0.0.1:9001\" }} ]\n[pool.g.health]\n{health}"
            )
        };
        let kind = |src: &str| {
            validate(src, "t.toml").unwrap().pools[0]
                .health
                .clone()
                .unwrap()
                .kind
        };
        let errs = |src: &str| validate(src, "t.toml").unwrap_err().to_string();
        let grpc = |service: &str| HealthKind::Grpc {
            service: service.into(),
        };
        // Over h2c and h2 (TLS), the whole server or one service.
        let h2c = "upstream_protocol = \"h2c\"\n";
        assert_eq!(kind(&pool(h2c, "type = \"grpc\"\n")), grpc(""));
        assert_eq!(
            kind(&pool(
                "upstream_protocol = \"h2\"\n",
                "type = \"grpc\"\nservice = \"test.Echo\"\nhost = \"g.internal\"\n"
            )),
            grpc("test.Echo")
        );
        // An HTTP/1.1 pool, by default or as written: the error is at `type`, with the fix.
        let text = errs(&pool("", "type = \"grpc\"\n"));
        assert!(
            text.contains("t.toml:7:8: a type = \"grpc\" health check speaks HTTP/2, but pool \"g\" speaks HTTP/1.1, the default to its servers"),
            "{text}"
        );
        assert!(
            text.contains("set upstream_protocol = \"h2c\" in [pool.g]"),
            "{text}"
        );
        let text = errs(&pool("upstream_protocol = \"h1\"\n", "type = \"grpc\"\n"));
        assert!(
            text.contains("t.toml:8:8: a type = \"grpc\" health check speaks HTTP/2, but pool \"g\" speaks upstream_protocol = \"h1\" to its servers"),
            "{text}"
        );
        // HTTP keys, each named where it is written.
        let errs_of = |src: &str| validate(src, "t.toml").unwrap_err();
        let e = errs_of(&pool(
            h2c,
            "type = \"grpc\"\npath = \"/health\"\nmethod = \"GET\"\nexpect = \"200\"\nexpect_body = \"ok\"\n",
        ));
        let text = e.to_string();
        assert_eq!(e.0.len(), 4, "{text}");
        for (line_col, key) in [
            ("9:8", "path"),
            ("10:10", "method"),
            ("11:10", "expect"),
            ("12:15", "expect_body"),
        ] {
            assert!(
                text.contains(&format!(
                    "t.toml:{line_col}: {key} is not used by type = \"grpc\" health checks"
                )),
                "{key}: {text}"
            );
        }
        assert!(
            text.contains("remove path: a gRPC check always calls /grpc.health.v1.Health/Check"),
            "{text}"
        );
        // `service` belongs to gRPC checks only.
        let text = errs(&pool(h2c, "path = \"/up\"\nservice = \"x\"\n"));
        assert!(
            text.contains("t.toml:9:11: service is only used by type = \"grpc\" health checks"),
            "{text}"
        );
    }

    const TWO_STICKY: &str = r#"
[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "a"
  [[listener.route]]
  path_prefix = "/b/"
  pool = "b"
[pool.a]
servers = [ { addr = "127.0.0.1:9001" } ]
[pool.a.sticky]
mode = "cookie"
[pool.b]
servers = [ { addr = "127.0.0.1:9002" } ]
[pool.b.sticky]
mode = "cookie"
"#;

    #[test]
    fn sticky_pools_of_one_listener_need_their_own_cookie() {
        // Both on the default name SRV.
        let errs = validate(TWO_STICKY, "t.toml").unwrap_err();
        let text = errs.to_string();
        assert_eq!(errs.0.len(), 1, "{text}");
        assert!(
            text.contains("t.toml:15:1: pools \"a\" and \"b\" both use the sticky cookie \"SRV\" on listener \"web\""),
            "{text}"
        );
        assert!(
            text.contains(
                "name = \"SRV_a\" in [pool.a.sticky] and name = \"SRV_b\" in [pool.b.sticky]"
            ),
            "{text}"
        );
        // The same name written out, reached through a split.
        let named = TWO_STICKY
            .replace(
                "pool = \"b\"\n",
                "split = [ { pool = \"a\", weight = 1 }, { pool = \"b\", weight = 1 } ]\n",
            )
            .replace("mode = \"cookie\"\n", "mode = \"cookie\"\nname = \"S\"\n");
        let text = validate(&named, "t.toml").unwrap_err().to_string();
        assert!(
            text.contains("t.toml:18:8: pools \"a\" and \"b\" both use the sticky cookie \"S\""),
            "{text}"
        );
        assert!(text.contains("name = \"S_a\" in [pool.a.sticky]"), "{text}");
        // Switchyard's cookie on the application's session cookie.
        let app = TWO_STICKY.replacen(
            "[pool.b.sticky]\nmode = \"cookie\"\n",
            "[pool.b.sticky]\nmode = \"app_cookie\"\nname = \"SRV\"\n",
            1,
        );
        let text = validate(&app, "t.toml").unwrap_err().to_string();
        assert!(
            text.contains("both use the sticky cookie \"SRV\""),
            "{text}"
        );
        assert!(
            text.contains("name = \"SRV_a\" in [pool.a.sticky]"),
            "{text}"
        );
        // Distinct names, or pools on different listeners, are fine.
        let distinct = TWO_STICKY.replacen(
            "mode = \"cookie\"\n",
            "mode = \"cookie\"\nname = \"SRV_a\"\n",
            1,
        );
        assert!(validate(&distinct, "t.toml").is_ok());
        let apart = TWO_STICKY.replace(
            "  [[listener.route]]\n  path_prefix = \"/b/\"\n  pool = \"b\"\n",
            "[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"b\"\n",
        );
        assert!(
            validate(&apart, "t.toml").is_ok(),
            "{:?}",
            validate(&apart, "t.toml")
        );
        // Virtual hosts: cookies carry no Domain, so pools behind disjoint exact hosts
        // never see each other's; a wildcard, or the listener's default pool, may.
        let vhosts = |a: &str, b: &str| {
            format!(
                "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\n  [[listener.route]]\n  host = \"{a}\"\n  pool = \"a\"\n  [[listener.route]]\n  host = \"{b}\"\n  pool = \"b\"\n{}",
                &TWO_STICKY[TWO_STICKY.find("[pool.a]").unwrap()..]
            )
        };
        assert!(validate(&vhosts("a.example.com", "b.example.com"), "t.toml").is_ok());
        for (a, b) in [
            ("a.example.com", "a.example.com"),
            ("*.example.com", "b.example.com"),
        ] {
            let text = validate(&vhosts(a, b), "t.toml").unwrap_err().to_string();
            assert!(
                text.contains("both use the sticky cookie \"SRV\""),
                "{a} {b}: {text}"
            );
        }
    }
}

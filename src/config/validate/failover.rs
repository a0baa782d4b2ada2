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
    c.socket_addr(listen, "admin listen").map(|addr| AdminPlan {
        listen: addr,
        origin,
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
    mode.map(|mode| StickyPlan {
        mode,
        name,
        ttl,
        size,
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

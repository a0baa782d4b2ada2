//! The failure-handling keys of a pool: passive health (`max_fails`, `fail_timeout`, on the
//! pool and on each server), `[pool.NAME.health]`, `[pool.NAME.retry]` and
//! `[pool.NAME.sticky]`. Each reader starts from the plan's `Default` and reports what it
//! cannot take, so one run lists every problem.

use std::time::Duration;

use http::Method;

use super::cursor::Table;
use super::value::{Bad, Parse, Val, bad, boolean, duration, float, int, list, slash_path};
use super::value::{string, word};
use crate::config::{
    HealthKind, HealthPlan, PassivePlan, RetryOn, RetryPlan, StickyMode, StickyPlan,
};

/// `max_fails` and `fail_timeout`, over the pool's (or nginx's) values in `p`.
pub(super) fn passive(t: &Table<'_>, p: &mut PassivePlan) {
    set!(t, p.max_fails, int(0, 1000));
    let never = "fail_timeout = \"0s\" would never take a failing server out";
    let help = "write a duration such as \"10s\", or set max_fails = 0 to turn passive checks off";
    set!(
        t,
        p.fail_timeout,
        duration.must(|d| !d.is_zero(), never, help)
    );
}

/// `"200-399"`, `"200"`, `"200-299,302"` → inclusive ranges.
pub(crate) fn parse_expect(s: &str) -> Option<Vec<(u16, u16)>> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim) {
        let (lo, hi) = match part.split_once('-') {
            Some((a, b)) => (a.trim().parse().ok()?, b.trim().parse().ok()?),
            None => (part.parse().ok()?, part.parse().ok()?),
        };
        if !(100..=599).contains(&lo) || !(100..=599).contains(&hi) || lo > hi {
            return None;
        }
        out.push((lo, hi));
    }
    (!out.is_empty()).then_some(out)
}

const PASSES: &str = "a gRPC check passes when the server answers SERVING with grpc-status 0";

/// The keys of an HTTP check, and why a gRPC check does not use one ("": it does).
#[rustfmt::skip]
const HTTP_CHECK_KEYS: [(&str, &str); 5] = [
    ("path", "a gRPC check always calls /grpc.health.v1.Health/Check; name the service it asks about with service = \"package.Service\""),
    ("method", "a gRPC call is always a POST"),
    ("host", ""),
    ("expect", PASSES),
    ("expect_body", PASSES),
];

/// `[pool.NAME.health]`.
pub(super) fn health(t: &Table<'_>) -> HealthPlan {
    let mut h = HealthPlan::default();
    t.set("type", &mut h.kind, word);
    set!(t, h.path, slash_path("health path"));
    set!(t, h.method, word);
    h.host = t.get("host", |v| match v.str()? {
        host if http::HeaderValue::from_str(host).is_ok() && !host.is_empty() => {
            Ok(host.to_string())
        }
        host => Err(bad(
            format!("host {host:?} cannot be a Host header"),
            "write a host name such as \"api.internal\"",
        )),
    });
    set!(t, h.expect, |v| {
        let e = v.str()?;
        let help = "write statuses or ranges from 100 to 599, e.g. \"200\", \"200-399\" or \"200-299,302\"";
        parse_expect(e).ok_or_else(|| bad(format!("expect {e:?} is not a list of statuses"), help))
    });
    h.expect_body = t.get("expect_body", string);
    let service = t.get("service", string);
    let flood = "a health check interval under 10ms would flood the servers";
    let interval = duration.must(
        |d| *d >= Duration::from_millis(10),
        flood,
        "write e.g. interval = \"2s\"",
    );
    let interval_known = set!(t, h.interval, interval);
    // Unset, the timeout is 1s or the interval if that is shorter (HAProxy's `timeout check`
    // falls back to `inter` too): `interval = "500ms"` alone is a valid check.
    h.timeout = h.timeout.min(h.interval);
    let timeout = duration.must(
        |d| !d.is_zero(),
        "timeout = 0 fails every check",
        "write e.g. timeout = \"1s\"",
    );
    let timeout_known = set!(t, h.timeout, timeout);
    set!(t, h.rise, int(1, 100));
    set!(t, h.fall, int(1, 100));

    // Keys of another kind of check are a mistake the operator wants to hear about.
    for (key, grpc_why) in HTTP_CHECK_KEYS
        .into_iter()
        .filter(|(k, _)| t.pos(k).is_some())
    {
        match h.kind {
            HealthKind::Tcp => {
                let message = format!("{key} is only used by type = \"http\" health checks");
                t.error_at(
                    key,
                    message,
                    format!("remove {key}, or set type = \"http\""),
                );
            }
            HealthKind::Grpc { .. } if !grpc_why.is_empty() => {
                let message = format!("{key} is not used by type = \"grpc\" health checks");
                t.error_at(key, message, format!("remove {key}: {grpc_why}"));
            }
            _ => {}
        }
    }
    match (&mut h.kind, service) {
        (HealthKind::Grpc { service }, written) => *service = written.unwrap_or_default(),
        (_, Some(_)) => {
            let message = "service is only used by type = \"grpc\" health checks";
            t.error_at("service", message, "remove service, or set type = \"grpc\"");
        }
        _ => {}
    }
    if h.expect_body.is_some() && h.method == Method::HEAD {
        let message = "expect_body with method = \"HEAD\": an answer to HEAD has no body";
        t.error_at(
            "expect_body",
            message,
            "remove expect_body, or use method = \"GET\"",
        );
    }
    if interval_known && timeout_known && h.timeout > h.interval {
        timeout_over_interval(t, &h);
    }
    t.finish();
    h
}

/// A check must end before the next starts.
fn timeout_over_interval(t: &Table<'_>, h: &HealthPlan) {
    let fmt = crate::config::format_duration;
    let default = |key| if t.has(key) { "" } else { ", the default" };
    let (timeout, interval) = (fmt(h.timeout), fmt(h.interval));
    let message = format!(
        "timeout ({timeout}{}) is longer than interval ({interval}{})",
        default("timeout"),
        default("interval")
    );
    let help = format!(
        "a check must end before the next starts: set timeout = \"{interval}\" or less (or leave it out: the default is 1s, or the interval when that is shorter), or raise interval"
    );
    let span = t.pos("timeout").or(t.pos("interval")).unwrap_or(t.span());
    match t.has("interval") {
        true => t.error(span, message, help),
        false => t.absent(&["interval"], span, message, help),
    }
}

/// `[pool.NAME.retry]`, over the defaults in `p`.
pub(super) fn retry(t: &Table<'_>, p: &mut RetryPlan) {
    set!(t, p.attempts, int(0, 20));
    if let Some(conditions) = t.get("on", list(condition)) {
        // `on` replaces the defaults.
        p.on = RetryOn::default();
        for c in conditions {
            p.on.connect_failure |= c.connect_failure;
            p.on.reset |= c.reset;
            p.on.timeout |= c.timeout;
            p.on.grpc_unavailable |= c.grpc_unavailable;
            p.on.statuses.extend(c.statuses);
        }
    }
    set!(t, p.non_idempotent, boolean);
    let help = "write a share of the traffic from 0.0 to 10.0, e.g. budget = 0.2 for 20 %";
    set!(t, p.budget, |v| match float(v)? {
        b if b.is_finite() && (0.0..=10.0).contains(&b) => Ok(b),
        b => Err(bad(format!("budget = {b} is out of range"), help)),
    });
    t.finish();
}

/// One condition of `on = [...]`, as the conditions it sets.
fn condition(v: &Val<'_>) -> Result<RetryOn, Bad> {
    let mut on = RetryOn::default();
    match v.str()? {
        "connect_failure" => on.connect_failure = true,
        "reset" => on.reset = true,
        "timeout" => on.timeout = true,
        "grpc_unavailable" => on.grpc_unavailable = true,
        // nginx's `error`: the connection failed, before or after sending.
        "error" => (on.connect_failure, on.reset) = (true, true),
        // Every server error status, 500 to 599.
        "5xx" => on.statuses.extend(500..=599),
        s => match s.parse::<u16>() {
            Ok(n) if (500..=599).contains(&n) || [403, 404, 429].contains(&n) => {
                on.statuses.push(n)
            }
            _ => {
                let help = "use connect_failure, reset, timeout, error, grpc_unavailable, \"5xx\", or a status: \"502\", \"503\", \"504\" (any of 500-599, or 403, 404, 429)";
                return Err(bad(
                    format!("retry condition {s:?} is not understood"),
                    help,
                ));
            }
        },
    }
    Ok(on)
}

/// `[pool.NAME.sticky]`; `None` without a mode, or with a name that cannot be read (the
/// cookie checks across pools then leave the pool out).
pub(super) fn sticky(t: &Table<'_>) -> Option<StickyPlan> {
    let mut s = StickyPlan::default();
    let help = "add mode = \"cookie\" (Switchyard's cookie), \"app_cookie\" (the application's) or \"source_ip\"";
    let mode = t.need("mode", word, "[sticky] has no mode", help);
    let name = t.get("name", string);
    let forgets = "ttl under 1s forgets every client at once";
    set!(
        t,
        s.ttl,
        duration.must(
            |d| *d >= Duration::from_secs(1),
            forgets,
            "write e.g. ttl = \"1h\"",
        )
    );
    set!(t, s.size, int(16, 10_000_000));
    set!(t, s.on_drain, word);
    set!(t, s.shared, boolean);
    if s.shared && mode == Some(StickyMode::Cookie) {
        let message = "shared = true with mode = \"cookie\": the cookie already names the server on every balancer";
        let help = "remove shared (balancers whose configs name the pool and its servers alike read each other's cookies)";
        t.error_at("shared", message, help);
        s.shared = false;
    }
    let name_known = name.is_some() || !t.has("name") && !t.meant("name");
    s.name = match (name, mode) {
        (Some(_), Some(StickyMode::SourceIp)) => {
            let help = "remove name, or use mode = \"cookie\" / \"app_cookie\"";
            t.error_at("name", "name is not used by mode = \"source_ip\"", help);
            String::new()
        }
        (Some(n), _) => {
            // RFC 6265 cookie-name is a token.
            let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
            if n.is_empty() || !n.bytes().all(token) {
                let help = "use letters, digits and - _ . only, e.g. name = \"SRV\"";
                t.error_at("name", format!("{n:?} is not a cookie name"), help);
            }
            n
        }
        (None, Some(StickyMode::AppCookie)) => {
            if !t.has("name") {
                let message = "mode = \"app_cookie\" needs the application's cookie name";
                let help = "add name = \"JSESSIONID\" (or your application's session cookie)";
                t.absent(&["name"], t.span(), message, help);
            }
            String::new()
        }
        (None, _) => s.name,
    };
    t.finish();
    s.mode = mode?;
    name_known.then_some(s)
}

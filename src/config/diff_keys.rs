//! What changed of a listener's, a route's or a pool's settings, key by key, as
//! `key before → after` (`health interval 2s → 5s`, `limit rate 50/s → 1/m`): for the reload
//! report and `switchyard plan`. Durations as [`format_duration`] writes them, rates as the
//! file does, other values as written in a config; a section added or removed whole is one
//! item (`sticky added (cookie "SRV")`).

use std::time::Duration;

use super::plan::{Cidr, L4Plan, ListenerPlan, PoolPlan, RoutePlan};
use super::plan_failover::{HealthKind, HealthPlan, RetryOn, RetryPlan, StickyPlan};
use super::protect::{BlockPlan, ForwardHeaders, GuardPlan, LimitKey, LimitPlan};
use super::words::Words;
use super::{ClientLimits, FitNote, HashKey, format_duration};

/// The items found so far, each `key before → after`.
#[derive(Default)]
struct Keys(Vec<String>);

impl Keys {
    fn key<T: PartialEq>(&mut self, key: &str, a: &T, b: &T, show: impl Fn(&T) -> String) {
        if a != b {
            self.0.push(format!("{key} {} → {}", show(a), show(b)));
        }
    }

    fn num<T: PartialEq + std::fmt::Display>(&mut self, key: &str, a: &T, b: &T) {
        self.key(key, a, b, T::to_string);
    }

    fn dur(&mut self, key: &str, a: &Duration, b: &Duration) {
        self.key(key, a, b, |d| format_duration(*d));
    }

    /// A `[section]` that may be absent: added, removed, or its keys one by one.
    fn section<T: PartialEq>(
        &mut self,
        key: &str,
        a: &Option<T>,
        b: &Option<T>,
        summary: impl Fn(&T) -> String,
        keys: impl Fn(&mut Keys, &T, &T),
    ) {
        match (a, b) {
            (None, Some(b)) => self.0.push(format!("{key} added ({})", summary(b))),
            (Some(_), None) => self.0.push(format!("{key} removed")),
            (Some(a), Some(b)) => {
                let mut inner = Keys::default();
                keys(&mut inner, a, b);
                self.0
                    .extend(inner.0.into_iter().map(|i| format!("{key} {i}")));
            }
            (None, None) => {}
        }
    }
}

fn cidrs(list: &[Cidr]) -> String {
    if list.is_empty() {
        return "none".into();
    }
    let all: Vec<String> = list
        .iter()
        .map(|c| format!("{}/{}", c.addr, c.prefix))
        .collect();
    format!("[{}]", all.join(", "))
}

fn on_off(b: &bool) -> String {
    b.to_string()
}

/// A listener's own settings (its routes, certificates, address and protocol are said
/// elsewhere).
pub fn listener(a: &ListenerPlan, b: &ListenerPlan) -> Vec<String> {
    let mut k = Keys::default();
    k.key(
        "redirect_https",
        &a.redirect_https,
        &b.redirect_https,
        on_off,
    );
    k.key("hsts", &a.hsts, &b.hsts, |h| {
        h.map_or("off".into(), format_duration)
    });
    guard(&mut k, &a.guard, &b.guard);
    k.key(
        "trusted_proxies",
        &a.trusted_proxies,
        &b.trusted_proxies,
        |c| cidrs(c),
    );
    k.key(
        "forward_headers",
        &a.forward_headers,
        &b.forward_headers,
        |f| {
            let on: Vec<&str> = ForwardHeaders::NAMES
                .iter()
                .filter(|(_, bit)| f.has(*bit))
                .map(|(n, _)| *n)
                .collect();
            format!("[{}]", on.join(", "))
        },
    );
    limits(&mut k, &a.limits, &b.limits);
    l4(&mut k, &a.l4, &b.l4);
    let key = match b.protocol {
        super::Protocol::Udp => "max_sessions ",
        _ => "max_connections ",
    };
    if let Some(item) = k.0.iter_mut().find(|i| i.starts_with(key)) {
        item.push_str(&derived(key.trim_end(), a.fitted.0, b.fitted.0));
    }
    k.0
}

/// Why a connection limit that the open-file limit lowers changed (`runtime::fds::fit`):
/// from the value written and the descriptors kept for the rest, the one that changed.
fn derived(key: &str, a: Option<FitNote>, b: Option<FitNote>) -> String {
    match (a, b) {
        (_, Some(b)) => {
            let kept = match a {
                Some(a) if a.reserved != b.reserved => format!("{} → {}", a.reserved, b.reserved),
                _ => b.reserved.to_string(),
            };
            let limit = match a {
                Some(a) if a.nofile != b.nofile => format!("{} → {}", a.nofile, b.nofile),
                _ => b.nofile.to_string(),
            };
            format!(
                " (derived: {key} = {} lowered to fit the open-file limit of {limit} descriptors, {kept} of them kept for the process, its listeners, the pools' idle connections and health checks, and the admin listener)",
                b.written
            )
        }
        (Some(_), None) => " (no longer lowered: it fits the open-file limit)".into(),
        (None, None) => String::new(),
    }
}

/// What changed of a route that keeps its conditions and its target.
pub fn route(a: &RoutePlan, b: &RoutePlan) -> Vec<String> {
    let mut k = Keys::default();
    k.key("name", &a.name, &b.name, |n| {
        n.as_ref()
            .map_or("none (its position)".into(), |n| format!("{n:?}"))
    });
    guard(&mut k, &a.guard, &b.guard);
    k.key(
        "client_max_body_size",
        &a.client_max_body_size,
        &b.client_max_body_size,
        |s| s.map_or("the listener's".into(), |s| s.to_string()),
    );
    k.0
}

fn limits(k: &mut Keys, a: &ClientLimits, b: &ClientLimits) {
    k.num("max_connections", &a.max_connections, &b.max_connections);
    k.num(
        "max_connections_per_client",
        &a.max_connections_per_client,
        &b.max_connections_per_client,
    );
    k.dur(
        "client_header_timeout",
        &a.client_header_timeout,
        &b.client_header_timeout,
    );
    k.dur(
        "keepalive_timeout",
        &a.keepalive_timeout,
        &b.keepalive_timeout,
    );
    k.num(
        "keepalive_requests",
        &a.keepalive_requests,
        &b.keepalive_requests,
    );
    k.dur(
        "tls_handshake_timeout",
        &a.tls_handshake_timeout,
        &b.tls_handshake_timeout,
    );
    k.dur("send_timeout", &a.send_timeout, &b.send_timeout);
    k.num("max_header_size", &a.max_header_size, &b.max_header_size);
    k.num("max_headers", &a.max_headers, &b.max_headers);
    k.num("max_uri_size", &a.max_uri_size, &b.max_uri_size);
    k.num(
        "client_max_body_size",
        &a.client_max_body_size,
        &b.client_max_body_size,
    );
    k.key(
        "request_buffering",
        &a.request_buffering,
        &b.request_buffering,
        on_off,
    );
    k.num(
        "request_buffer_size",
        &a.request_buffer_size,
        &b.request_buffer_size,
    );
}

fn l4(k: &mut Keys, a: &L4Plan, b: &L4Plan) {
    k.dur("idle_timeout", &a.idle_timeout, &b.idle_timeout);
    k.key(
        "proxy_protocol",
        &a.proxy_protocol,
        &b.proxy_protocol,
        |p| p.as_ref().map_or("off", |v| v.word()).into(),
    );
    // Whom it accepts them from is `trusted_proxies`, said above.
    k.key(
        "accept_proxy_protocol",
        &a.accept_proxy.is_some(),
        &b.accept_proxy.is_some(),
        on_off,
    );
    k.key("splice", &a.splice, &b.splice, on_off);
    k.dur("session_timeout", &a.session_timeout, &b.session_timeout);
    k.num("max_sessions", &a.max_sessions, &b.max_sessions);
}

/// `allow`, `deny`, the `limit`s and `block`s (by position: `limit 2 …` when there are
/// several).
fn guard(k: &mut Keys, a: &GuardPlan, b: &GuardPlan) {
    k.key("allow", &a.allow, &b.allow, |c| cidrs(c));
    k.key("deny", &a.deny, &b.deny, |c| cidrs(c));
    listed(k, "limit", &a.limits, &b.limits, limit, |k, a, b| {
        k.key("rate", &a.rate, &b.rate, ToString::to_string);
        k.num("burst", &a.burst, &b.burst);
        k.key("key", &a.key, &b.key, limit_key);
        k.num("size", &a.size, &b.size);
        k.key("shared", &a.shared, &b.shared, on_off);
    });
    listed(k, "block", &a.blocks, &b.blocks, block, |k, a, b| {
        k.key("method", &a.methods, &b.methods, |m| {
            format!("[{}]", m.join(", "))
        });
        k.key("path_regex", &a.path_regex, &b.path_regex, |r| {
            r.as_ref().map_or("none".into(), |r| format!("{r:?}"))
        });
        k.key("header", &a.header, &b.header, |h| {
            h.as_ref()
                .map_or("none".into(), |(n, r)| format!("{n} ~ {r:?}"))
        });
        k.num("status", &a.status, &b.status);
    });
}

/// A list compared by position: `limit rate 5/s → 50/s` (one on either side), `limit 2
/// added (…)`, `limit 2 removed (…)`.
fn listed<T: PartialEq>(
    k: &mut Keys,
    what: &str,
    a: &[T],
    b: &[T],
    summary: fn(&T) -> String,
    keys: impl Fn(&mut Keys, &T, &T),
) {
    let many = a.len().max(b.len()) > 1;
    for i in 0..a.len().max(b.len()) {
        let name = if many {
            format!("{what} {}", i + 1)
        } else {
            what.to_string()
        };
        k.section(
            &name,
            &a.get(i),
            &b.get(i),
            |x| summary(x),
            |k, a, b| keys(k, a, b),
        );
    }
}

/// What a limit counts by, as the file writes it: `client_ip`, `header:X-Api-Key`, …
pub fn limit_key(key: &LimitKey) -> String {
    match key {
        LimitKey::ClientIp => "client_ip".into(),
        LimitKey::Header(h) => format!("header:{h}"),
        LimitKey::Cookie(c) => format!("cookie:{c}"),
    }
}

fn limit(l: &LimitPlan) -> String {
    let shared = if l.shared { ", shared" } else { "" };
    format!(
        "rate {}, burst {}, key {}{shared}",
        l.rate,
        l.burst,
        limit_key(&l.key)
    )
}

fn block(b: &BlockPlan) -> String {
    let mut on = Vec::new();
    if !b.methods.is_empty() {
        on.push(format!("method [{}]", b.methods.join(", ")));
    }
    if let Some(r) = &b.path_regex {
        on.push(format!("path_regex {r:?}"));
    }
    if let Some((n, r)) = &b.header {
        on.push(format!("header {n} ~ {r:?}"));
    }
    if b.status != BlockPlan::DEFAULT_STATUS {
        on.push(format!("status {}", b.status));
    }
    on.join(", ")
}

/// What a `hash`/`maglev` pool hashes, as the file writes it: `client_ip`, `header:X-User`, …
pub fn hash_key(k: &HashKey) -> String {
    match k {
        HashKey::ClientIp => "client_ip".into(),
        HashKey::Uri => "uri".into(),
        HashKey::Header(h) => format!("header:{h}"),
        HashKey::Cookie(c) => format!("cookie:{c}"),
        HashKey::Query(q) => format!("query:{q}"),
    }
}

/// A pool's settings (not its servers).
pub fn pool(a: &PoolPlan, b: &PoolPlan) -> Vec<String> {
    let mut k = Keys::default();
    k.key("algorithm", &a.algorithm, &b.algorithm, |x| {
        x.as_str().into()
    });
    k.key("hash_key", &a.hash_key, &b.hash_key, hash_key);
    k.num("keepalive", &a.keepalive, &b.keepalive);
    k.dur(
        "keepalive_timeout",
        &a.keepalive_timeout,
        &b.keepalive_timeout,
    );
    let (ta, tb) = (&a.timeouts, &b.timeouts);
    k.dur("timeouts connect", &ta.connect, &tb.connect);
    k.dur("timeouts read", &ta.read, &tb.read);
    k.dur("timeouts send", &ta.send, &tb.send);
    k.dur("timeouts client_body", &ta.client_body, &tb.client_body);
    k.key("host_header", &a.host_header, &b.host_header, |h| {
        h.word().into()
    });
    k.section("health", &a.health, &b.health, health_summary, health);
    retry(&mut k, &a.retry, &b.retry);
    k.section("sticky", &a.sticky, &b.sticky, sticky_summary, sticky);
    k.key(
        "upstream_protocol",
        &a.upstream_protocol,
        &b.upstream_protocol,
        |p| p.word().into(),
    );
    k.section(
        "tls",
        &a.tls,
        &b.tls,
        |_| "re-encrypted to the servers".into(),
        |k, a, b| {
            let path = |p: &Option<std::path::PathBuf>| {
                p.as_ref()
                    .map_or("the system's".into(), |p| p.display().to_string())
            };
            k.key("ca", &a.ca, &b.ca, path);
            k.key("server_name", &a.server_name, &b.server_name, |n| {
                n.clone().unwrap_or_else(|| "the server's address".into())
            });
            k.key("client certificate", &a.client, &b.client, |c| {
                c.as_ref()
                    .map_or("none".into(), |c| c.cert.display().to_string())
            });
            k.key(
                "insecure_skip_verify",
                &a.insecure_skip_verify,
                &b.insecure_skip_verify,
                on_off,
            );
        },
    );
    k.dur(
        "tunnel_idle_timeout",
        &a.tunnel_idle_timeout,
        &b.tunnel_idle_timeout,
    );
    k.num("queue_size", &a.queue_size, &b.queue_size);
    k.dur("queue_timeout", &a.queue_timeout, &b.queue_timeout);
    let (da, db) = (&a.dns, &b.dns);
    k.key("resolver", &da.resolvers, &db.resolvers, |r| {
        let all: Vec<String> = r.iter().map(ToString::to_string).collect();
        format!("[{}]", all.join(", "))
    });
    k.dur("resolver_timeout", &da.timeout, &db.timeout);
    k.dur("resolver_valid", &da.valid, &db.valid);
    k.key("init_addr", &da.init_addr, &db.init_addr, |i| {
        i.word().into()
    });
    k.0
}

fn health_kind(k: &HealthKind) -> String {
    match k {
        HealthKind::Grpc { service } if !service.is_empty() => format!("grpc {service:?}"),
        k => k.word().into(),
    }
}

fn health_summary(h: &HealthPlan) -> String {
    match h.kind {
        HealthKind::Http => format!(
            "http {} {}, every {}",
            h.method,
            h.path,
            format_duration(h.interval)
        ),
        _ => format!(
            "{}, every {}",
            health_kind(&h.kind),
            format_duration(h.interval)
        ),
    }
}

fn health(k: &mut Keys, a: &HealthPlan, b: &HealthPlan) {
    k.key("type", &a.kind, &b.kind, health_kind);
    k.key("path", &a.path, &b.path, Clone::clone);
    k.num("method", &a.method, &b.method);
    k.key("host", &a.host, &b.host, |h| {
        h.clone().unwrap_or_else(|| "the server's".into())
    });
    k.key("expect", &a.expect, &b.expect, |e| {
        let all: Vec<String> = e
            .iter()
            .map(|(lo, hi)| match lo == hi {
                true => lo.to_string(),
                false => format!("{lo}-{hi}"),
            })
            .collect();
        format!("[{}]", all.join(", "))
    });
    k.key("expect_body", &a.expect_body, &b.expect_body, |e| {
        e.as_ref().map_or("none".into(), |e| format!("{e:?}"))
    });
    k.dur("interval", &a.interval, &b.interval);
    k.dur("timeout", &a.timeout, &b.timeout);
    k.num("rise", &a.rise, &b.rise);
    k.num("fall", &a.fall, &b.fall);
}

fn retry_on(on: &RetryOn) -> String {
    let mut all: Vec<String> = [
        (on.connect_failure, "connect_failure"),
        (on.reset, "reset"),
        (on.timeout, "timeout"),
        (on.grpc_unavailable, "grpc_unavailable"),
    ]
    .iter()
    .filter(|(on, _)| *on)
    .map(|(_, w)| w.to_string())
    .collect();
    if (500..=599).all(|s| on.statuses.contains(&s)) {
        all.push("5xx".into());
        all.extend(
            on.statuses
                .iter()
                .filter(|s| !(500..=599).contains(*s))
                .map(ToString::to_string),
        );
    } else {
        all.extend(on.statuses.iter().map(ToString::to_string));
    }
    format!("[{}]", all.join(", "))
}

fn retry(k: &mut Keys, a: &RetryPlan, b: &RetryPlan) {
    k.num("retry attempts", &a.attempts, &b.attempts);
    k.key("retry on", &a.on, &b.on, retry_on);
    k.key(
        "retry non_idempotent",
        &a.non_idempotent,
        &b.non_idempotent,
        on_off,
    );
    k.num("retry budget", &a.budget, &b.budget);
}

fn sticky_summary(s: &StickyPlan) -> String {
    match s.name.is_empty() {
        true => s.mode.as_str().into(),
        false => format!("{} {:?}", s.mode.as_str(), s.name),
    }
}

fn sticky(k: &mut Keys, a: &StickyPlan, b: &StickyPlan) {
    k.key("mode", &a.mode, &b.mode, |m| m.as_str().into());
    k.key("name", &a.name, &b.name, |n| format!("{n:?}"));
    k.dur("ttl", &a.ttl, &b.ttl);
    k.num("size", &a.size, &b.size);
    k.key("on_drain", &a.on_drain, &b.on_drain, |d| d.as_str().into());
    k.key("shared", &a.shared, &b.shared, on_off);
}

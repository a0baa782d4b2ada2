//! `GET /status`: the same live state as `/metrics`, as one JSON document for people and
//! scripts (`curl -s …/status | jq`): each pool with its servers and their state, each
//! listener with its counters.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use super::{ListenerStats, View, load};
use crate::upstream::Server;

/// The `/status` document.
pub fn render(state: &View) -> String {
    let (ready, _) = super::readiness(state.pools.iter().map(|u| &u.pool));
    let c = &state.config;
    let r = &state.reloads;
    let doc = json!({
        "version": env!("CARGO_PKG_VERSION"),
        "pid": std::process::id(),
        "ready": ready,
        "config": {
            "path": c.path,
            "sha256": c.sha256,
            "loaded_at_unix_ms": c.at.duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64,
            "api_changes": c.overrides,
            "reloads": {
                "ok": load(&r.ok),
                "error": load(&r.failed),
                "last_failed": r.last_failed.load(std::sync::atomic::Ordering::Relaxed),
            },
        },
        "pools": state.pools.iter().map(|u| {
            let p = &u.pool;
            json!({
                "name": p.name,
                "algorithm": p.algorithm.as_str(),
                "servers_usable": p.servers().iter().filter(|s| s.accepts_new()).count(),
                "sticky": match (&p.sticky, u.sticky()) {
                    (Some(plan), Some(s)) => json!({
                        "mode": plan.mode.as_str(),
                        "broken": s.broken(),
                        "table_entries": s.table_len(),
                    }),
                    _ => Value::Null,
                },
                "servers": p.servers().iter().map(|s| server(s)).collect::<Vec<_>>(),
            })
        }).collect::<Vec<_>>(),
        "listeners": state.listeners.iter().map(|l| {
            let mut v = json!({
                "name": l.name,
                "protocol": l.protocol.as_str(),
                "addr": l.addr.to_string(),
            });
            let counters = match &l.stats {
                ListenerStats::Http { proxy_in: None, .. } => Value::Null,
                ListenerStats::Http { proxy_in: Some(s), .. } => json!({
                    "proxy_protocol": {
                        "accepted": load(&s.accepted),
                        "untrusted": load(&s.untrusted),
                        "malformed": load(&s.malformed),
                    }
                }),
                ListenerStats::Tcp(s) => json!({
                    "accepted": load(&s.accepted),
                    "active": load(&s.active),
                    "rejected_over_limit": load(&s.rejected_over_limit),
                    "proxy_untrusted": load(&s.proxy_untrusted),
                    "proxy_malformed": load(&s.proxy_malformed),
                    "connect_failures": load(&s.connect_failures),
                    "no_server": load(&s.no_server),
                    "idle_timeouts": load(&s.idle_timeouts),
                    "bytes_client_to_server": load(&s.bytes_up),
                    "bytes_server_to_client": load(&s.bytes_down),
                    "spliced": load(&s.spliced),
                }),
                ListenerStats::Udp(s) => json!({
                    "sessions": load(&s.sessions),
                    "sessions_created": load(&s.sessions_created),
                    "sessions_expired": load(&s.sessions_expired),
                    "rejected_over_limit": load(&s.rejected_over_limit),
                    "no_server": load(&s.no_server),
                    "datagrams_client_to_server": load(&s.datagrams_up),
                    "datagrams_server_to_client": load(&s.datagrams_down),
                    "send_errors": load(&s.send_errors),
                }),
            };
            v["counters"] = counters;
            v
        }).collect::<Vec<_>>(),
    });
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

pub(super) fn server(s: &Server) -> Value {
    let [r1, r2, r3, r4, r5] = s.responses();
    let last_check = match s.last_check() {
        None => Value::Null,
        Some(c) => {
            let at = c.at.duration_since(UNIX_EPOCH).unwrap_or_default();
            let ago = SystemTime::now().duration_since(c.at).unwrap_or_default();
            json!({
                "result": if c.pass { "pass" } else { "fail" },
                "detail": c.detail,
                "at_unix_ms": at.as_millis() as u64,
                "ago_ms": ago.as_millis() as u64,
            })
        }
    };
    json!({
        "name": s.name,
        "addr": s.addr.to_string(),
        "state": s.health_state().as_str(),
        "admin_state": s.admin_state().as_str(),
        "usable": s.is_available(),
        "backup": s.backup,
        "weight": s.weight(),
        "slow_start": s.in_slow_start(),
        "in_flight": s.in_flight(),
        "requests": s.requests(),
        "failures": s.failures(),
        "responses": { "1xx": r1, "2xx": r2, "3xx": r3, "4xx": r4, "5xx": r5 },
        "latency_ewma_ms": s.latency_ewma_us() as f64 / 1000.0,
        "last_check": last_check,
    })
}

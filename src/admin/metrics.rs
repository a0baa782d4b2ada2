//! `GET /metrics`: every counter Switchyard keeps, read from the live atomics at the moment
//! of the request, in the Prometheus text format (`observe::metrics` writes it).
//!
//! Nothing is aggregated or stored here: a scrape loads each atomic once (relaxed), so the
//! proxies pay nothing for being observed. Counters start at zero with the process.

use std::time::UNIX_EPOCH;

use super::{ListenerStats, View};
use crate::observe::metrics::{Exposition, Family, Kind, Value};
use crate::proxy::tcp::TcpStats;
use crate::proxy::udp::UdpStats;
use crate::upstream::{HealthState, Server};

const STATES: [HealthState; 4] = [
    HealthState::Healthy,
    HealthState::Unhealthy,
    HealthState::Failed,
    HealthState::Disabled,
];

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

/// One server with the labels that name it.
struct Labeled<'a> {
    pool: &'a str,
    server: &'a Server,
    addr: String,
}

impl Labeled<'_> {
    fn labels(&self) -> [(&str, &str); 3] {
        [
            ("pool", self.pool),
            ("server", &self.server.name),
            ("addr", &self.addr),
        ]
    }

    /// The three labels and one more.
    fn with<'a>(&'a self, k: &'a str, v: &'a str) -> [(&'a str, &'a str); 4] {
        let [a, b, c] = self.labels();
        [a, b, c, (k, v)]
    }
}

/// The `/metrics` page.
pub fn render(state: &View) -> String {
    let mut e = Exposition::new();
    e.family(
        "switchyard_build_info",
        "Always 1; the version of the running binary is in the label.",
        Kind::Gauge,
        |f| f.sample(&[("version", env!("CARGO_PKG_VERSION"))], 1u64),
    );
    config(&mut e, state);
    servers(&mut e, state);
    pools(&mut e, state);
    tcp(&mut e, state);
    udp(&mut e, state);
    proxy_in(&mut e, state);
    connections(&mut e, state);
    e.finish()
}

/// The running configuration: where it came from, and how reloads went.
fn config(e: &mut Exposition, state: &View) {
    let r = &state.reloads;
    e.family(
        "switchyard_reloads_total",
        "Reloads of the config file (SIGHUP, switchyard reload, POST /api/reload), by result; a failed one changed nothing.",
        Kind::Counter,
        |f| {
            f.sample(&[("result", "ok")], load(&r.ok));
            f.sample(&[("result", "error")], load(&r.failed));
        },
    );
    e.family(
        "switchyard_config_last_reload_successful",
        "0 when the last reload failed (the configuration before it still runs), else 1.",
        Kind::Gauge,
        |f| {
            f.sample(
                &[],
                !r.last_failed.load(std::sync::atomic::Ordering::Relaxed),
            )
        },
    );
    let c = &state.config;
    e.family(
        "switchyard_config_info",
        "Always 1; the config file and its SHA-256 as last loaded (sha256sum prints the same) are in the labels.",
        Kind::Gauge,
        |f| {
            f.sample(
                &[
                    ("path", c.path.as_deref().unwrap_or("")),
                    ("sha256", c.sha256.as_deref().unwrap_or("")),
                ],
                1u64,
            )
        },
    );
    e.family(
        "switchyard_config_loaded_timestamp_seconds",
        "When the running configuration was applied (start, reload or admin API change), in seconds since the Unix epoch.",
        Kind::Gauge,
        |f| {
            let at = c.at.duration_since(UNIX_EPOCH).unwrap_or_default();
            f.sample(&[], at.as_secs_f64())
        },
    );
    e.family(
        "switchyard_config_api_changes",
        "Changes made over the admin API and kept on top of the config file (GET /api/config writes them out).",
        Kind::Gauge,
        |f| f.sample(&[], c.overrides),
    );
}

fn servers(e: &mut Exposition, state: &View) {
    let all: Vec<Labeled<'_>> = state
        .pools
        .iter()
        .flat_map(|u| {
            u.pool.servers().iter().map(|s| Labeled {
                pool: &u.pool.name,
                server: s,
                addr: s.addr.to_string(),
            })
        })
        .collect();
    each(
        e,
        &all,
        "switchyard_server_up",
        "1 when the server can take a request now (healthy: in rotation and not failed by passive checks), else 0.",
        Kind::Gauge,
        |s| s.is_available().into(),
    );
    e.family(
        "switchyard_server_state",
        "1 for the server's current state (healthy, unhealthy, failed, disabled), 0 for the others.",
        Kind::Gauge,
        |f| {
            for s in &all {
                let now = s.server.health_state();
                for st in STATES {
                    f.sample(&s.with("state", st.as_str()), now == st);
                }
            }
        },
    );
    each(
        e,
        &all,
        "switchyard_server_backup",
        "1 for a backup server (takes traffic only while no primary can), 0 for a primary.",
        Kind::Gauge,
        |s| s.backup.into(),
    );
    each(
        e,
        &all,
        "switchyard_server_weight",
        "The server's configured weight.",
        Kind::Gauge,
        |s| s.weight().into(),
    );
    each(
        e,
        &all,
        "switchyard_server_slow_start",
        "1 while the server ramps up after a recovery (slow_start), else 0.",
        Kind::Gauge,
        |s| s.in_slow_start().into(),
    );
    each(
        e,
        &all,
        "switchyard_server_in_flight",
        "Requests (L7) or connections and sessions (L4) now being served by the server.",
        Kind::Gauge,
        |s| s.in_flight().into(),
    );
    each(
        e,
        &all,
        "switchyard_server_requests_total",
        "Requests (L7) or connections and sessions (L4) sent to the server, counting every try.",
        Kind::Counter,
        |s| s.requests().into(),
    );
    e.family(
        "switchyard_server_responses_total",
        "HTTP response heads received from the server, by status class.",
        Kind::Counter,
        |f| {
            for s in &all {
                for (class, n) in CLASSES.iter().zip(s.server.responses()) {
                    f.sample(&s.with("class", class), n);
                }
            }
        },
    );
    each(
        e,
        &all,
        "switchyard_server_failures_total",
        "Failures of real traffic counted against the server by passive health (connect errors, timeouts, resets, statuses in the retry 'on' list).",
        Kind::Counter,
        |s| s.failures().into(),
    );
    each(
        e,
        &all,
        "switchyard_server_latency_ewma_seconds",
        "Moving average (weight 1/8) of the time to the response head (L7) or to connect (TCP); 0 before the first sample.",
        Kind::Gauge,
        |s| (s.latency_ewma_us() as f64 / 1e6).into(),
    );
    let checks: Vec<_> = all
        .iter()
        .filter_map(|s| s.server.last_check().map(|c| (s, c)))
        .collect();
    e.family(
        "switchyard_server_last_check_success",
        "1 when the server's last active health check passed, 0 when it failed; absent before the first check.",
        Kind::Gauge,
        |f| {
            for (s, c) in &checks {
                f.sample(&s.labels(), c.pass);
            }
        },
    );
    e.family(
        "switchyard_server_last_check_timestamp_seconds",
        "When the server's last active health check ended, in seconds since the Unix epoch.",
        Kind::Gauge,
        |f| {
            for (s, c) in &checks {
                let at = c.at.duration_since(UNIX_EPOCH).unwrap_or_default();
                f.sample(&s.labels(), at.as_secs_f64());
            }
        },
    );
}

/// One family with a sample per server.
fn each(
    e: &mut Exposition,
    all: &[Labeled<'_>],
    name: &str,
    help: &str,
    kind: Kind,
    value: impl Fn(&Server) -> Value,
) {
    e.family(name, help, kind, |f| {
        for s in all {
            f.sample(&s.labels(), value(s.server));
        }
    })
}

fn pools(e: &mut Exposition, state: &View) {
    let pools = &state.pools;
    e.family(
        "switchyard_pool_servers",
        "Servers configured in the pool (primaries and backups).",
        Kind::Gauge,
        |f| {
            for u in pools {
                f.sample(&[("pool", &u.pool.name)], u.pool.servers().len());
            }
        },
    );
    e.family(
        "switchyard_pool_servers_usable",
        "Servers of the pool that can take a request now; 0 means requests get 503.",
        Kind::Gauge,
        |f| {
            for u in pools {
                let n = u.pool.servers().iter().filter(|s| s.is_available()).count();
                f.sample(&[("pool", &u.pool.name)], n);
            }
        },
    );
    let sticky: Vec<_> = pools
        .iter()
        .filter_map(|u| {
            let mode = u.pool.sticky.as_ref()?.mode.as_str();
            Some((u.pool.name.as_str(), mode, u.sticky()?))
        })
        .collect();
    e.family(
        "switchyard_pool_sticky_broken_total",
        "Requests whose remembered server (cookie, app_cookie or source_ip) could not serve them and were moved to another server; pools with [sticky] only.",
        Kind::Counter,
        |f| {
            for (pool, mode, s) in &sticky {
                f.sample(&[("pool", pool), ("mode", mode)], s.broken());
            }
        },
    );
    e.family(
        "switchyard_pool_sticky_table_entries",
        "Entries in the pool's stick table (app_cookie, source_ip; always 0 for cookie).",
        Kind::Gauge,
        |f| {
            for (pool, mode, s) in &sticky {
                f.sample(&[("pool", pool), ("mode", mode)], s.table_len());
            }
        },
    );
}

/// The TCP listeners with their counters.
fn tcp_listeners(state: &View) -> Vec<(&str, &TcpStats)> {
    state
        .listeners
        .iter()
        .filter_map(|l| match &l.stats {
            ListenerStats::Tcp(s) => Some((l.name.as_str(), &**s)),
            _ => None,
        })
        .collect()
}

fn udp_listeners(state: &View) -> Vec<(&str, &UdpStats)> {
    state
        .listeners
        .iter()
        .filter_map(|l| match &l.stats {
            ListenerStats::Udp(s) => Some((l.name.as_str(), &**s)),
            _ => None,
        })
        .collect()
}

fn load(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(std::sync::atomic::Ordering::Relaxed)
}

/// One family with a sample per listener.
fn per_listener<T>(
    e: &mut Exposition,
    listeners: &[(&str, &T)],
    name: &str,
    help: &str,
    kind: Kind,
    value: impl Fn(&T) -> u64,
) {
    e.family(name, help, kind, |f: &mut Family<'_>| {
        for (l, s) in listeners {
            f.sample(&[("listener", l)], value(s));
        }
    });
}

fn tcp(e: &mut Exposition, state: &View) {
    let ls = tcp_listeners(state);
    let c = Kind::Counter;
    per_listener(
        e,
        &ls,
        "switchyard_tcp_connections_accepted_total",
        "Connections accepted by the TCP listener, including those closed at once for max_connections.",
        c,
        |s| load(&s.accepted),
    );
    per_listener(
        e,
        &ls,
        "switchyard_tcp_connections_active",
        "Connections of the TCP listener open now.",
        Kind::Gauge,
        |s| load(&s.active),
    );
    per_listener(
        e,
        &ls,
        "switchyard_tcp_connections_rejected_over_limit_total",
        "Connections closed at once because max_connections were open.",
        c,
        |s| load(&s.rejected_over_limit),
    );
    per_listener(
        e,
        &ls,
        "switchyard_tcp_proxy_untrusted_total",
        "Connections closed because the peer is not in trusted_proxies.",
        c,
        |s| load(&s.proxy_untrusted),
    );
    per_listener(
        e,
        &ls,
        "switchyard_tcp_proxy_malformed_total",
        "Connections closed because their PROXY header was malformed, missing or late.",
        c,
        |s| load(&s.proxy_malformed),
    );
    per_listener(
        e,
        &ls,
        "switchyard_tcp_connect_failures_total",
        "Connect attempts to servers that failed (refused or timed out); each then tries the next server.",
        c,
        |s| load(&s.connect_failures),
    );
    per_listener(
        e,
        &ls,
        "switchyard_tcp_no_server_total",
        "Client connections closed because no server of the pool could be reached.",
        c,
        |s| load(&s.no_server),
    );
    per_listener(
        e,
        &ls,
        "switchyard_tcp_idle_timeouts_total",
        "Connections closed by idle_timeout.",
        c,
        |s| load(&s.idle_timeouts),
    );
    e.family(
        "switchyard_tcp_bytes_total",
        "Bytes copied by the TCP listener, by direction (client_to_server, server_to_client).",
        c,
        |f| {
            for (l, s) in &ls {
                f.sample(
                    &[("listener", l), ("direction", "client_to_server")],
                    load(&s.bytes_up),
                );
                f.sample(
                    &[("listener", l), ("direction", "server_to_client")],
                    load(&s.bytes_down),
                );
            }
        },
    );
    per_listener(
        e,
        &ls,
        "switchyard_tcp_spliced_total",
        "Connection directions that switched to zero-copy splice(2).",
        c,
        |s| load(&s.spliced),
    );
}

fn udp(e: &mut Exposition, state: &View) {
    let ls = udp_listeners(state);
    let c = Kind::Counter;
    per_listener(
        e,
        &ls,
        "switchyard_udp_sessions",
        "Sessions (one per client address) in the UDP listener's table now.",
        Kind::Gauge,
        |s| load(&s.sessions),
    );
    per_listener(
        e,
        &ls,
        "switchyard_udp_sessions_created_total",
        "Sessions created by the UDP listener.",
        c,
        |s| load(&s.sessions_created),
    );
    per_listener(
        e,
        &ls,
        "switchyard_udp_sessions_expired_total",
        "Sessions ended because their client was quiet for session_timeout.",
        c,
        |s| load(&s.sessions_expired),
    );
    per_listener(
        e,
        &ls,
        "switchyard_udp_rejected_over_limit_total",
        "Datagrams of new clients dropped because max_sessions sessions were open.",
        c,
        |s| load(&s.rejected_over_limit),
    );
    per_listener(
        e,
        &ls,
        "switchyard_udp_no_server_total",
        "Datagrams dropped because no server of the pool was available.",
        c,
        |s| load(&s.no_server),
    );
    e.family(
        "switchyard_udp_datagrams_total",
        "Datagrams relayed by the UDP listener, by direction (client_to_server, server_to_client).",
        c,
        |f| {
            for (l, s) in &ls {
                f.sample(
                    &[("listener", l), ("direction", "client_to_server")],
                    load(&s.datagrams_up),
                );
                f.sample(
                    &[("listener", l), ("direction", "server_to_client")],
                    load(&s.datagrams_down),
                );
            }
        },
    );
    per_listener(
        e,
        &ls,
        "switchyard_udp_send_errors_total",
        "Datagrams that could not be sent (socket buffer full, or an error).",
        c,
        |s| load(&s.send_errors),
    );
}

fn proxy_in(e: &mut Exposition, state: &View) {
    let ls: Vec<_> = state
        .listeners
        .iter()
        .filter_map(|l| match &l.stats {
            ListenerStats::Http {
                proxy_in: Some(s), ..
            } => Some((l.name.as_str(), &**s)),
            _ => None,
        })
        .collect();
    let c = Kind::Counter;
    per_listener(
        e,
        &ls,
        "switchyard_http_proxy_protocol_accepted_total",
        "PROXY headers read and believed by the http/https listener (including LOCAL and UNKNOWN).",
        c,
        |s| load(&s.accepted),
    );
    per_listener(
        e,
        &ls,
        "switchyard_http_proxy_protocol_untrusted_total",
        "Connections of the http/https listener closed because the peer is not in trusted_proxies.",
        c,
        |s| load(&s.untrusted),
    );
    per_listener(
        e,
        &ls,
        "switchyard_http_proxy_protocol_malformed_total",
        "Connections of the http/https listener closed because the PROXY header was malformed, missing, cut short or late.",
        c,
        |s| load(&s.malformed),
    );
}

/// The connections of http/https listeners: open, the limit, and what the limits and
/// connection timeouts closed (`guard::conns`).
fn connections(e: &mut Exposition, state: &View) {
    let ls: Vec<_> = state
        .listeners
        .iter()
        .filter_map(|l| match &l.stats {
            ListenerStats::Http { conns, .. } => Some((l.name.as_str(), &**conns)),
            _ => None,
        })
        .collect();
    let (c, g) = (Kind::Counter, Kind::Gauge);
    per_listener(
        e,
        &ls,
        "switchyard_http_connections_open",
        "Client connections of the http/https listener open now.",
        g,
        |s| s.open() as u64,
    );
    per_listener(
        e,
        &ls,
        "switchyard_http_connections_max",
        "max_connections of the http/https listener (as lowered to fit the open-file limit).",
        g,
        |s| s.max() as u64,
    );
    e.family(
        "switchyard_http_connections_refused_total",
        "Connections closed at once (or answered 503) by the listener's limits, by the limit.",
        c,
        |f| {
            for (l, s) in &ls {
                let st = s.stats();
                f.sample(
                    &[("listener", l), ("limit", "max_connections")],
                    st.refused_listener(),
                );
                f.sample(
                    &[("listener", l), ("limit", "max_connections_per_client")],
                    st.refused_client(),
                );
            }
        },
    );
    per_listener(
        e,
        &ls,
        "switchyard_http_connections_reused_total",
        "Idle connections closed to admit a new one when the listener was full (nginx's reusable connections).",
        c,
        |s| s.stats().reused(),
    );
    e.family(
        "switchyard_http_connections_timed_out_total",
        "Connections closed by a timeout: client_header_timeout (no whole request head in time, TLS handshake and protocol detection included) or keepalive_timeout (idle between requests, or HTTP/2 with no stream open).",
        c,
        |f| {
            for (l, s) in &ls {
                let st = s.stats();
                f.sample(
                    &[("listener", l), ("timeout", "client_header_timeout")],
                    st.header_timeouts(),
                );
                f.sample(
                    &[("listener", l), ("timeout", "keepalive_timeout")],
                    st.idle_timeouts(),
                );
            }
        },
    );
    per_listener(
        e,
        &ls,
        "switchyard_http2_reset_floods_total",
        "HTTP/2 connections closed because the client reset more than 100 of its streams and more than a quarter of them (rapid reset).",
        c,
        |s| s.stats().reset_floods(),
    );
}

//! The metrics of each server of each pool, read from the server's own atomics
//! (`upstream::Server`, `upstream/state_cell.rs`).

use super::describe::{Json, Metric, Reader, unix_seconds};
use crate::observe::metrics::Kind;
use crate::upstream::{AdminState, HealthState, Server};

const STATES: [HealthState; 4] = [
    HealthState::Healthy,
    HealthState::Unhealthy,
    HealthState::Failed,
    HealthState::Disabled,
];

const ADMIN: [AdminState; 3] = [AdminState::Ready, AdminState::Drain, AdminState::Maint];

/// HAProxy's server status (its stats page's UP, DRAIN, DOWN, MAINT), lower case.
const STATUS: [&str; 4] = ["up", "drain", "down", "maint"];

/// One word for what the server does now, from its operator state and its health:
/// maintenance first (out at once, whatever the checks say); then down (failed by active
/// or passive checks: it serves nobody, not even the clients stuck to it, so a draining
/// server that is also down is `down`); then drain; else up.
fn status(s: &Server) -> &'static str {
    match (s.admin_state(), s.health_state()) {
        (AdminState::Maint, _) => "maint",
        (_, HealthState::Unhealthy | HealthState::Failed | HealthState::Disabled) => "down",
        (AdminState::Drain, HealthState::Healthy) => "drain",
        (AdminState::Ready, HealthState::Healthy) => "up",
    }
}

const CLASSES: [&str; 5] = ["1xx", "2xx", "3xx", "4xx", "5xx"];

pub static METRICS: &[Metric] = &[
    Metric {
        name: "switchyard_server_up",
        help: "1 when a request may be sent to the server now: not down or in maint, not failed by active checks, not out for a passive fail_timeout; else 0. A draining server is 1 (it still serves the clients stuck to it and the requests running); switchyard_server_status says drain.",
        kind: Kind::Gauge,
        labels: &[],
        json: Json::Flag("usable"),
        counted_in: "`Server::is_available`",
        read: Reader::Server(|_, s, o| o.value(s.is_available())),
    },
    Metric {
        name: "switchyard_server_status",
        help: "1 for the server's status, 0 for the others, as HAProxy's stats show it: up (takes new requests), drain (healthy, takes no new requests; sticky clients and running requests finish), down (failed by active or passive checks) or maint (down = true, or maint over the API).",
        kind: Kind::Gauge,
        labels: &["state"],
        json: Json::OneOf("status"),
        counted_in: "`Server::admin_state` and `Server::health_state`",
        read: Reader::Server(|_, s, o| {
            let now = status(s);
            for st in STATUS {
                o.sample(&[st], (st == now).into());
            }
        }),
    },
    Metric {
        name: "switchyard_server_state",
        help: "1 for the server's current health state, 0 for the others: healthy, unhealthy (active checks), failed (passive checks) or disabled (down = true, or maint).",
        kind: Kind::Gauge,
        labels: &["state"],
        json: Json::OneOf("state"),
        counted_in: "`Server::health_state`",
        read: Reader::Server(|_, s, o| {
            let now = s.health_state();
            for st in STATES {
                o.sample(&[st.as_str()], (st == now).into());
            }
        }),
    },
    Metric {
        name: "switchyard_server_admin_state",
        help: "1 for the state an operator set, 0 for the others: ready, drain (no new requests; running ones finish) or maint (out at once).",
        kind: Kind::Gauge,
        labels: &["state"],
        json: Json::OneOf("admin_state"),
        counted_in: "`Server::admin_state` (config `down`/`drain`, `PUT /api/pools/…`)",
        read: Reader::Server(|_, s, o| {
            let now = s.admin_state();
            for st in ADMIN {
                o.sample(&[st.as_str()], (st == now).into());
            }
        }),
    },
    Metric {
        name: "switchyard_server_backup",
        help: "1 for a backup server (takes traffic only while no primary can), 0 for a primary.",
        kind: Kind::Gauge,
        labels: &[],
        json: Json::Flag("backup"),
        counted_in: "`Server::backup`",
        read: Reader::Server(|_, s, o| o.value(s.backup)),
    },
    Metric {
        name: "switchyard_server_weight",
        help: "The server's weight (configured, or set over the admin API).",
        kind: Kind::Gauge,
        labels: &[],
        json: Json::Number("weight"),
        counted_in: "`Server::weight`",
        read: Reader::Server(|_, s, o| o.value(s.weight())),
    },
    Metric {
        name: "switchyard_server_slow_start",
        help: "1 while the server ramps up after a recovery (slow_start), else 0.",
        kind: Kind::Gauge,
        labels: &[],
        json: Json::Flag("slow_start"),
        counted_in: "`Server::in_slow_start`",
        read: Reader::Server(|_, s, o| o.value(s.in_slow_start())),
    },
    Metric {
        name: "switchyard_server_in_flight",
        help: "Requests (L7), connections (TCP) or sessions (UDP) being served by the server now, WebSocket tunnels included.",
        kind: Kind::Gauge,
        labels: &[],
        json: Json::Number("in_flight"),
        counted_in: "`Server::begin` and its guard's drop (proxy::http, proxy::tcp, proxy::udp)",
        read: Reader::Server(|_, s, o| o.value(s.in_flight())),
    },
    Metric {
        name: "switchyard_server_requests_total",
        help: "Requests (L7), connections (TCP) or sessions (UDP) sent to the server; every try of a retried request counts.",
        kind: Kind::Counter,
        labels: &[],
        json: Json::Number("requests"),
        counted_in: "`Server::begin`",
        read: Reader::Server(|_, s, o| o.value(s.requests())),
    },
    Metric {
        name: "switchyard_server_responses_total",
        help: "HTTP response heads received from the server, by status class (the server's own answers; a 502 or 504 Switchyard writes after a failure is not one).",
        kind: Kind::Counter,
        labels: &["class"],
        json: Json::Number("responses"),
        counted_in: "`Server::count_response` (proxy::http, when a response head arrives)",
        read: Reader::Server(|_, s, o| {
            for (class, n) in CLASSES.iter().zip(s.responses()) {
                o.sample(&[class], n.into());
            }
        }),
    },
    Metric {
        name: "switchyard_upstream_header_duration_seconds",
        help: "Time from sending a request to the server to its response head, every try (HTTP).",
        kind: Kind::Histogram,
        labels: &[],
        json: Json::Number("header_duration"),
        counted_in: "`Server::record_response_head` (proxy::http attempt and h1 exchange)",
        read: Reader::Server(|_, s, o| o.histogram(&[], &s.header_times())),
    },
    Metric {
        name: "switchyard_server_failures_total",
        help: "Failures of real traffic reported to passive health: connect errors, timeouts, resets, and statuses in the pool's retry 'on' list; counted whether or not they took the server out.",
        kind: Kind::Counter,
        labels: &[],
        json: Json::Number("failures"),
        counted_in: "`Server::report_failure` (proxy::http, proxy::tcp)",
        read: Reader::Server(|_, s, o| o.value(s.failures())),
    },
    Metric {
        name: "switchyard_server_latency_ewma_seconds",
        help: "Moving average (a new sample weighs 1/8) of the time to the response head (HTTP), to connect (TCP) or to the first answer (UDP), which least_time ranks by; 0 before the first sample.",
        kind: Kind::Gauge,
        labels: &[],
        json: Json::Millis("latency_ewma_ms"),
        counted_in: "`Server::record_latency`",
        read: Reader::Server(|_, s, o| o.value(s.latency_ewma_us() as f64 / 1e6)),
    },
    Metric {
        name: "switchyard_server_last_check_success",
        help: "1 when the server's last active health check passed, 0 when it failed; absent for pools without [pool.NAME.health] and before the first check.",
        kind: Kind::Gauge,
        labels: &[],
        json: Json::Flag("last_check.success"),
        counted_in: "`Server::record_check` (probe::check_loop)",
        read: Reader::Server(|_, s, o| {
            if let Some(c) = s.last_check() {
                o.value(c.pass);
            }
        }),
    },
    Metric {
        name: "switchyard_server_last_check_timestamp_seconds",
        help: "When the server's last active health check ended, in seconds since the Unix epoch.",
        kind: Kind::Gauge,
        labels: &[],
        json: Json::Millis("last_check.at_unix_ms"),
        counted_in: "`Server::record_check` (probe::check_loop)",
        read: Reader::Server(|_, s, o| {
            if let Some(c) = s.last_check() {
                o.value(unix_seconds(c.at));
            }
        }),
    },
    Metric {
        name: "switchyard_server_health_checks_total",
        help: "Active health checks of the server, by result (pass, fail); pools with [pool.NAME.health] only.",
        kind: Kind::Counter,
        labels: &["result"],
        json: Json::Number("checks"),
        counted_in: "`Server::count_check` (probe::check_loop)",
        read: Reader::Server(|u, s, o| {
            if u.pool.health.is_some() {
                let [fail, pass] = s.checks();
                o.sample(&["pass"], pass.into());
                o.sample(&["fail"], fail.into());
            }
        }),
    },
    Metric {
        name: "switchyard_server_health_check_duration_seconds",
        help: "How long the server's active health checks took, from connect to verdict (a timed-out one counts its timeout); pools with [pool.NAME.health] only.",
        kind: Kind::Histogram,
        labels: &[],
        json: Json::Number("check_duration"),
        counted_in: "`Server::count_check` (probe::check_loop)",
        read: Reader::Server(|u, s, o| {
            if u.pool.health.is_some() {
                o.histogram(&[], &s.check_durations());
            }
        }),
    },
];

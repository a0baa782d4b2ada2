//! The metrics of an http/https listener's client limits (`guard::ConnLimits`, counted by
//! `proxy::http::life` and the direct path's waits): its `max_connections` as running, the
//! connections refused or closed for room, the connections closed by its timeouts, and the
//! HTTP/2 connections closed for resetting too many of their streams.

use super::describe::{Json, Metric, Reader};
use crate::observe::metrics::Kind;

const C: Kind = Kind::Counter;
const G: Kind = Kind::Gauge;

pub static LIMITS: &[Metric] = &[
    Metric {
        name: "switchyard_http_connections_max",
        help: "The listener's max_connections, as running (lowered at start to fit the open-file limit when it had to be).",
        kind: G,
        labels: &[],
        json: Json::Number("max_connections"),
        counted_in: "`ConnLimits::max` (guard::conns), from the plan after `runtime::fds::fit`",
        read: Reader::Limits(|c, o| o.value(c.max() as u64)),
    },
    Metric {
        name: "switchyard_http_connections_admitted",
        help: "Connections the listener holds a place for now: from accept (before any TLS handshake) to close, those told to close for room until they have.",
        kind: G,
        labels: &[],
        json: Json::Number("admitted"),
        counted_in: "`ConnLimits::admit` and `ConnPermit`'s drop (guard::conns)",
        read: Reader::Limits(|c, o| o.value(c.open() as u64)),
    },
    Metric {
        name: "switchyard_http_connections_refused_total",
        help: "Connections closed at once (max_connections, none idle to close) or answered 503 and closed (max_connections_per_client), by the limit.",
        kind: C,
        labels: &["limit"],
        json: Json::Number("refused"),
        counted_in: "`ConnLimits::admit` (guard::conns), called by `proxy::http::life::admit`",
        read: Reader::Limits(|c, o| {
            let s = c.stats();
            o.sample(&["max_connections"], s.refused_listener().into());
            o.sample(&["max_connections_per_client"], s.refused_client().into());
        }),
    },
    Metric {
        name: "switchyard_http_connections_reused_total",
        help: "Idle connections closed to admit a new one when the listener was full (nginx's reusable connections).",
        kind: C,
        labels: &[],
        json: Json::Number("reused"),
        counted_in: "`ConnLimits::make_room` (guard::conns)",
        read: Reader::Limits(|c, o| o.value(c.stats().reused())),
    },
    Metric {
        name: "switchyard_http_connections_timed_out_total",
        help: "Connections closed by client_header_timeout (no whole request head in time; TLS handshake and protocol detection included) or keepalive_timeout (idle between requests, or HTTP/2 with no stream open), by the timeout.",
        kind: C,
        labels: &["timeout"],
        json: Json::Number("timed_out"),
        counted_in: "`proxy::http::h1::wait::head`, `h1::serve`, `life::drive`, `tls_serve`",
        read: Reader::Limits(|c, o| {
            let s = c.stats();
            o.sample(&["client_header_timeout"], s.header_timeouts().into());
            o.sample(&["keepalive_timeout"], s.idle_timeouts().into());
        }),
    },
    Metric {
        name: "switchyard_http2_reset_floods_total",
        help: "HTTP/2 connections closed because the client reset more than 100 of its streams, and more than a quarter of them (rapid reset, paced).",
        kind: C,
        labels: &[],
        json: Json::Number("reset_floods"),
        counted_in: "`proxy::http::life::drive`",
        read: Reader::Limits(|c, o| o.value(c.stats().reset_floods())),
    },
];

//! The metrics of http/https listeners: the answers clients got, by route, pool and status
//! code, with their durations (`proxy::http::stats::Row`, counted once per answer by
//! `Answered::done`), and the listener's connections, bytes and TLS handshakes
//! (`proxy::http::stats::HttpStats`).

use super::describe::{Json, Metric, Reader, load};
use crate::observe::metrics::Kind;

pub static ANSWERS: &[Metric] = &[
    Metric {
        name: "switchyard_requests_total",
        help: "Answers clients got, by status code: the servers' and the balancer's own (404 no route, 502 bad gateway, 503 no server, 504 timeout, 400/408/413/414/431 bad requests, heads refused before they were read whole included, and 503 to a client over max_connections_per_client, those no route took under route and pool -), one per request however many tries it took.",
        kind: Kind::Counter,
        labels: &["code"],
        json: Json::Number("requests"),
        counted_in: "`Answered::done` (proxy::http::stats), from the direct path, hyper's path and redirects",
        read: Reader::Answers(|r, o| {
            for (code, n) in r.codes() {
                let mut buf = [0u8; 3];
                let text = code_text(code, &mut buf);
                o.sample(&[text], n.into());
            }
        }),
    },
    Metric {
        name: "switchyard_request_duration_seconds",
        help: "From the request head to the last byte of the answer (HTTP/2 and HTTP/1.1 alike), every answer counted.",
        kind: Kind::Histogram,
        labels: &[],
        json: Json::Number("duration"),
        counted_in: "`Answered::done` (proxy::http::stats)",
        read: Reader::Answers(|r, o| o.histogram(&[], &r.durations())),
    },
];

pub static HTTP: &[Metric] = &[
    Metric {
        name: "switchyard_http_connections_open",
        help: "Client connections of the http/https listener open now (after the TLS handshake), WebSocket tunnels included.",
        kind: Kind::Gauge,
        labels: &[],
        json: Json::Number("open"),
        counted_in: "`HttpStats::open` (proxy::http serve_connection, tls_serve)",
        read: Reader::Http(|s, o| o.value(load(&s.open))),
    },
    Metric {
        name: "switchyard_http_connections_total",
        help: "Client connections the http/https listener served (after the TLS handshake).",
        kind: Kind::Counter,
        labels: &[],
        json: Json::Number("connections"),
        counted_in: "`HttpStats::open`",
        read: Reader::Http(|s, o| o.value(load(&s.connections))),
    },
    Metric {
        name: "switchyard_http_bytes_total",
        help: "Bytes read from clients (received) and written to them (sent), heads and bodies, after TLS.",
        kind: Kind::Counter,
        labels: &["direction"],
        json: Json::Number("bytes"),
        counted_in: "`CountedIo` around each client connection (proxy::http::stats)",
        read: Reader::Http(|s, o| {
            o.sample(&["received"], load(&s.bytes_in).into());
            o.sample(&["sent"], load(&s.bytes_out).into());
        }),
    },
    Metric {
        name: "switchyard_tls_handshakes_total",
        help: "TLS handshakes completed by the https listener (0 for http listeners).",
        kind: Kind::Counter,
        labels: &[],
        json: Json::Number("tls_handshakes"),
        counted_in: "proxy::http::tls_serve",
        read: Reader::Http(|s, o| o.value(load(&s.tls_handshakes))),
    },
    Metric {
        name: "switchyard_tls_handshake_failures_total",
        help: "TLS handshakes that failed (no shared version or cipher, an unknown name without a default certificate, garbage) or timed out.",
        kind: Kind::Counter,
        labels: &[],
        json: Json::Number("tls_failures"),
        counted_in: "proxy::http::tls_serve",
        read: Reader::Http(|s, o| o.value(load(&s.tls_failures))),
    },
];

/// A status code as three digits, without allocating.
fn code_text(code: u16, buf: &mut [u8; 3]) -> &str {
    buf[0] = b'0' + (code / 100 % 10) as u8;
    buf[1] = b'0' + (code / 10 % 10) as u8;
    buf[2] = b'0' + (code % 10) as u8;
    std::str::from_utf8(buf).unwrap_or("000")
}

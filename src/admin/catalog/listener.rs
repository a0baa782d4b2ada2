//! The metrics of the listeners: TCP and UDP counters (`proxy::tcp::TcpStats`,
//! `proxy::udp::UdpStats`) and the PROXY-protocol counters of http/https listeners
//! (`proxy::http::proxy_in::ProxyInStats`).

use super::describe::{Json, Metric, Reader, load};
use crate::observe::metrics::Kind;

const C: Kind = Kind::Counter;
const G: Kind = Kind::Gauge;

pub static TCP: &[Metric] = &[
    Metric {
        name: "switchyard_tcp_connections_accepted_total",
        help: "Connections accepted by the TCP listener, including those closed at once for max_connections.",
        kind: C,
        labels: &[],
        json: Json::Number("accepted"),
        counted_in: "proxy::tcp accept loop",
        read: Reader::Tcp(|s, o| o.value(load(&s.accepted))),
    },
    Metric {
        name: "switchyard_tcp_connections_active",
        help: "Connections of the TCP listener open now.",
        kind: G,
        labels: &[],
        json: Json::Number("active"),
        counted_in: "proxy::tcp accept loop and connection end",
        read: Reader::Tcp(|s, o| o.value(load(&s.active))),
    },
    Metric {
        name: "switchyard_tcp_connections_rejected_over_limit_total",
        help: "Connections closed at once because max_connections were open.",
        kind: C,
        labels: &[],
        json: Json::Number("rejected_over_limit"),
        counted_in: "proxy::tcp accept loop",
        read: Reader::Tcp(|s, o| o.value(load(&s.rejected_over_limit))),
    },
    Metric {
        name: "switchyard_tcp_connections_denied_total",
        help: "Connections closed at once because allow/deny refuse the client.",
        kind: C,
        labels: &[],
        json: Json::Number("denied"),
        counted_in: "proxy::tcp accept loop (after the PROXY header when one is read)",
        read: Reader::Tcp(|s, o| o.value(load(&s.denied))),
    },
    Metric {
        name: "switchyard_tcp_proxy_untrusted_total",
        help: "Connections closed because the peer is not in trusted_proxies.",
        kind: C,
        labels: &[],
        json: Json::Number("proxy_untrusted"),
        counted_in: "proxy::tcp, reading the PROXY header",
        read: Reader::Tcp(|s, o| o.value(load(&s.proxy_untrusted))),
    },
    Metric {
        name: "switchyard_tcp_proxy_malformed_total",
        help: "Connections closed because their PROXY header was malformed, missing or late.",
        kind: C,
        labels: &[],
        json: Json::Number("proxy_malformed"),
        counted_in: "proxy::tcp, reading the PROXY header",
        read: Reader::Tcp(|s, o| o.value(load(&s.proxy_malformed))),
    },
    Metric {
        name: "switchyard_tcp_connect_failures_total",
        help: "Connects to servers that failed (refused or timed out); each one then tries the next server.",
        kind: C,
        labels: &[],
        json: Json::Number("connect_failures"),
        counted_in: "proxy::tcp connect loop",
        read: Reader::Tcp(|s, o| o.value(load(&s.connect_failures))),
    },
    Metric {
        name: "switchyard_tcp_no_server_total",
        help: "Client connections closed because no server of the pool could be reached.",
        kind: C,
        labels: &[],
        json: Json::Number("no_server"),
        counted_in: "proxy::tcp connect loop",
        read: Reader::Tcp(|s, o| o.value(load(&s.no_server))),
    },
    Metric {
        name: "switchyard_tcp_idle_timeouts_total",
        help: "Connections closed by idle_timeout.",
        kind: C,
        labels: &[],
        json: Json::Number("idle_timeouts"),
        counted_in: "proxy::tcp copy loop",
        read: Reader::Tcp(|s, o| o.value(load(&s.idle_timeouts))),
    },
    Metric {
        name: "switchyard_tcp_bytes_total",
        help: "Bytes copied by the TCP listener, by direction (client_to_server, server_to_client).",
        kind: C,
        labels: &["direction"],
        json: Json::Number("bytes"),
        counted_in: "proxy::tcp copy and splice loops",
        read: Reader::Tcp(|s, o| {
            o.sample(&["client_to_server"], load(&s.bytes_up).into());
            o.sample(&["server_to_client"], load(&s.bytes_down).into());
        }),
    },
    Metric {
        name: "switchyard_tcp_spliced_total",
        help: "Connection directions that switched to zero-copy splice(2) (bulk transfers; short exchanges stay on the buffer).",
        kind: C,
        labels: &[],
        json: Json::Number("spliced"),
        counted_in: "proxy::tcp copy loop",
        read: Reader::Tcp(|s, o| o.value(load(&s.spliced))),
    },
];

pub static UDP: &[Metric] = &[
    Metric {
        name: "switchyard_udp_sessions",
        help: "Sessions (one per client address) in the UDP listener's table now.",
        kind: G,
        labels: &[],
        json: Json::Number("sessions"),
        counted_in: "proxy::udp session table",
        read: Reader::Udp(|s, o| o.value(load(&s.sessions))),
    },
    Metric {
        name: "switchyard_udp_sessions_created_total",
        help: "Sessions created by the UDP listener.",
        kind: C,
        labels: &[],
        json: Json::Number("sessions_created"),
        counted_in: "proxy::udp session table",
        read: Reader::Udp(|s, o| o.value(load(&s.sessions_created))),
    },
    Metric {
        name: "switchyard_udp_sessions_expired_total",
        help: "Sessions ended because their client was quiet for session_timeout.",
        kind: C,
        labels: &[],
        json: Json::Number("sessions_expired"),
        counted_in: "proxy::udp session expiry",
        read: Reader::Udp(|s, o| o.value(load(&s.sessions_expired))),
    },
    Metric {
        name: "switchyard_udp_rejected_over_limit_total",
        help: "Datagrams of new clients dropped because max_sessions sessions were open.",
        kind: C,
        labels: &[],
        json: Json::Number("rejected_over_limit"),
        counted_in: "proxy::udp receive loop",
        read: Reader::Udp(|s, o| o.value(load(&s.rejected_over_limit))),
    },
    Metric {
        name: "switchyard_udp_denied_total",
        help: "Datagrams dropped because allow/deny refuse their client (no session is made).",
        kind: C,
        labels: &[],
        json: Json::Number("denied"),
        counted_in: "proxy::udp receive loop",
        read: Reader::Udp(|s, o| o.value(load(&s.denied))),
    },
    Metric {
        name: "switchyard_udp_no_server_total",
        help: "Datagrams dropped because no server of the pool was available.",
        kind: C,
        labels: &[],
        json: Json::Number("no_server"),
        counted_in: "proxy::udp receive loop",
        read: Reader::Udp(|s, o| o.value(load(&s.no_server))),
    },
    Metric {
        name: "switchyard_udp_datagrams_total",
        help: "Datagrams relayed by the UDP listener, by direction (client_to_server, server_to_client).",
        kind: C,
        labels: &["direction"],
        json: Json::Number("datagrams"),
        counted_in: "proxy::udp receive loops",
        read: Reader::Udp(|s, o| {
            o.sample(&["client_to_server"], load(&s.datagrams_up).into());
            o.sample(&["server_to_client"], load(&s.datagrams_down).into());
        }),
    },
    Metric {
        name: "switchyard_udp_send_errors_total",
        help: "Datagrams that could not be sent (socket buffer full, or an error).",
        kind: C,
        labels: &[],
        json: Json::Number("send_errors"),
        counted_in: "proxy::udp send paths",
        read: Reader::Udp(|s, o| o.value(load(&s.send_errors))),
    },
];

pub static PROXY_IN: &[Metric] = &[
    Metric {
        name: "switchyard_http_proxy_protocol_accepted_total",
        help: "PROXY headers read and believed by the http/https listener (including LOCAL and UNKNOWN).",
        kind: C,
        labels: &[],
        json: Json::Number("accepted"),
        counted_in: "proxy::http::proxy_in",
        read: Reader::ProxyIn(|s, o| o.value(load(&s.accepted))),
    },
    Metric {
        name: "switchyard_http_proxy_protocol_untrusted_total",
        help: "Connections of the http/https listener closed because the peer is not in trusted_proxies.",
        kind: C,
        labels: &[],
        json: Json::Number("untrusted"),
        counted_in: "proxy::http::proxy_in",
        read: Reader::ProxyIn(|s, o| o.value(load(&s.untrusted))),
    },
    Metric {
        name: "switchyard_http_proxy_protocol_malformed_total",
        help: "Connections of the http/https listener closed because the PROXY header was malformed, missing, cut short or late.",
        kind: C,
        labels: &[],
        json: Json::Number("malformed"),
        counted_in: "proxy::http::proxy_in",
        read: Reader::ProxyIn(|s, o| o.value(load(&s.malformed))),
    },
];

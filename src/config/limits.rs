//! The limits a listener puts on its clients: how many may connect, how long a connection may
//! say nothing, how big a request may be. Each default is nginx's or HAProxy's (their names
//! are beside each key in docs/config.md); tcp listeners take the connection counts only.

use std::time::Duration;

/// The limits of one listener. `max_connections` and `max_connections_per_client` apply to
/// http, https and tcp listeners; the rest to http and https.
#[derive(Debug, Clone, PartialEq)]
pub struct ClientLimits {
    /// Connections open at once (HAProxy's `maxconn`). Lowered at start to what the process's
    /// open-file limit allows (`runtime::fds`), as HAProxy derives `maxconn` from `ulimit -n`.
    pub max_connections: usize,
    /// Connections open at once from one client address (nginx's `limit_conn` on
    /// `$binary_remote_addr`); 0: no limit.
    pub max_connections_per_client: u32,
    /// From accept to the end of the first request head, the PROXY header, TLS handshake and
    /// protocol detection included; for later requests, from their first byte (nginx's
    /// `client_header_timeout`, HAProxy's `timeout http-request`). Over it: 408 if part of a
    /// head came, else a silent close.
    pub client_header_timeout: Duration,
    /// How long a connection may wait for the first byte of its next request, or (HTTP/2)
    /// stay with no stream open; PINGs do not count (nginx's `keepalive_timeout`, which
    /// nginx also applies to HTTP/2; HAProxy's `timeout http-keep-alive`).
    pub keepalive_timeout: Duration,
    /// Requests served on one connection before it is closed (HTTP/1.1 `Connection: close`,
    /// HTTP/2 GOAWAY): nginx's `keepalive_requests`.
    pub keepalive_requests: u32,
    /// The TLS handshake of an https listener (nginx's `ssl_handshake_timeout`).
    pub tls_handshake_timeout: Duration,
    /// Between two writes to a client that takes no bytes (nginx's `send_timeout`, HAProxy's
    /// `timeout client`): then the connection is closed.
    pub send_timeout: Duration,
    /// The largest request head, request line and fields (HAProxy's `tune.bufsize`, nginx's
    /// `large_client_header_buffers`): 431 beyond it.
    pub max_header_size: usize,
    /// The most header fields in a request (HAProxy's `tune.http.maxhdr`): 431 beyond it.
    pub max_headers: usize,
    /// The longest request target (nginx: one of `large_client_header_buffers`): 414.
    pub max_uri_size: usize,
    /// The largest request body (nginx's `client_max_body_size`): 413; 0: no limit, as in
    /// nginx. A route may set its own.
    pub client_max_body_size: u64,
    /// Read a request body (up to `request_buffer_size`) before a server is chosen, so a slow
    /// upload holds no server connection (nginx's `proxy_request_buffering`, HAProxy's
    /// `option http-buffer-request`).
    pub request_buffering: bool,
    /// How much of a body is read before a server is chosen: a body this long or shorter is
    /// read whole; of a longer one, this much, and the rest streams.
    pub request_buffer_size: usize,
}

impl Default for ClientLimits {
    fn default() -> Self {
        ClientLimits {
            max_connections: 10_000,
            max_connections_per_client: 0,
            client_header_timeout: Duration::from_secs(60),
            keepalive_timeout: Duration::from_secs(75),
            keepalive_requests: 1000,
            tls_handshake_timeout: Duration::from_secs(10),
            send_timeout: Duration::from_secs(60),
            max_header_size: 64 * 1024,
            max_headers: 100,
            max_uri_size: 8 * 1024,
            client_max_body_size: 0,
            request_buffering: true,
            request_buffer_size: 64 * 1024,
        }
    }
}

/// The admin listener's limits: few connections, short patience (HAProxy's stats socket
/// takes 10 connections by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AdminLimits {
    pub max_connections: usize,
    /// From accept (or the end of the last answer) to a complete request head.
    pub client_header_timeout: Duration,
}

impl Default for AdminLimits {
    fn default() -> Self {
        AdminLimits {
            max_connections: 64,
            client_header_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a listener's `max_connections` (`max_sessions` for udp) is not what the file says:
/// `runtime::fds::fit` lowered it to fit the open-file limit. A note for the reload report,
/// not a setting: it never makes two plans differ (its `==` is always true), so a plan with
/// the same values runs unchanged whatever the note says.
#[derive(Debug, Clone, Copy, Default)]
pub struct Fitted(pub Option<FitNote>);

/// What a lowered value was derived from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FitNote {
    /// The value of the file (or its default).
    pub written: usize,
    /// The process's open-file limit.
    pub nofile: u64,
    /// The descriptors kept for the process, its listeners, the pools' idle connections and
    /// health checks, and the admin listener.
    pub reserved: u64,
}

impl PartialEq for Fitted {
    fn eq(&self, _: &Fitted) -> bool {
        true
    }
}

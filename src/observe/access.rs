//! One access-log line per request, through `tracing` (target `switchyard::access`), with
//! the upstream timings an operator needs to tell a slow server from a slow network.

use std::net::SocketAddr;
use std::time::Duration;

/// What happened to one request.
#[derive(Debug)]
pub struct AccessRecord<'a> {
    pub listener: &'a str,
    pub client: SocketAddr,
    pub method: &'a str,
    pub uri: &'a str,
    pub status: u16,
    pub pool: &'a str,
    /// `-` when no server was reached.
    pub server: &'a str,
    /// Tries made (1 without retries).
    pub attempts: u32,
    pub upstream_connect: Option<Duration>,
    /// Time to the upstream response head.
    pub upstream_header: Option<Duration>,
    /// Time from the request head to the response head.
    pub total: Duration,
}

fn ms(d: Option<Duration>) -> f64 {
    d.map_or(-1.0, |d| d.as_secs_f64() * 1000.0)
}

pub fn log(r: &AccessRecord<'_>) {
    tracing::info!(
        target: "switchyard::access",
        listener = r.listener,
        client = %r.client,
        method = r.method,
        uri = r.uri,
        status = r.status,
        pool = r.pool,
        server = r.server,
        attempts = r.attempts,
        upstream_connect_ms = ms(r.upstream_connect),
        upstream_header_ms = ms(r.upstream_header),
        total_ms = r.total.as_secs_f64() * 1000.0,
    );
}

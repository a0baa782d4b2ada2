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

/// Milliseconds to the microsecond (`0.090`), or `-` when there is no such time (no server
/// reached), as nginx writes `$upstream_connect_time`.
struct Ms(Option<Duration>);

impl std::fmt::Display for Ms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            Some(d) => write!(f, "{:.3}", d.as_secs_f64() * 1000.0),
            None => f.write_str("-"),
        }
    }
}

/// Whether access lines are written now (the log level lets them through): when not,
/// nothing is gathered or formatted for them.
pub fn enabled() -> bool {
    tracing::enabled!(target: "switchyard::access", tracing::Level::INFO)
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
        upstream_connect_ms = %Ms(r.upstream_connect),
        upstream_header_ms = %Ms(r.upstream_header),
        total_ms = %Ms(Some(r.total)),
    );
}

#[cfg(test)]
mod tests {
    use super::Ms;
    use std::time::Duration;

    #[test]
    fn milliseconds_print_to_the_microsecond() {
        assert_eq!(
            Ms(Some(Duration::from_nanos(89_895_996))).to_string(),
            "89.896"
        );
        assert_eq!(Ms(Some(Duration::from_micros(90))).to_string(), "0.090");
        assert_eq!(Ms(None).to_string(), "-");
    }
}

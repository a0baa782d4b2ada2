//! The access-log line of an L4 connection (TCP) or session (UDP): one line when it ends,
//! as nginx's `stream` module logs them (`$remote_addr [$time_local] $protocol $status
//! $bytes_sent $bytes_received $session_time`), then the balancer's own fields — or the same
//! fields as one JSON object.
//!
//! The status follows nginx's stream module: 200 served; 400 a PROXY header that could not
//! be read; 403 a peer not in `trusted_proxies`; 502 no server could be reached; 503 over
//! `max_connections` or `max_sessions`.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::line;
use crate::config::LogFormat;

/// One connection or session, at its end.
#[derive(Debug)]
pub struct StreamRecord<'a> {
    /// `TCP` or `UDP`.
    pub protocol: &'static str,
    pub listener: &'a str,
    pub pool: &'a str,
    /// The client (after a PROXY header, the one it names).
    pub client: SocketAddr,
    /// The server it was relayed to, if one was reached.
    pub upstream: Option<SocketAddr>,
    pub status: u16,
    /// Bytes (TCP) or datagrams (UDP) to the client, and from it.
    pub sent: u64,
    pub received: u64,
    /// From accept (or a session's first datagram) to the end.
    pub duration: Duration,
    /// Time to connect to the server (TCP).
    pub connect: Option<Duration>,
    /// How it ended: `done`, `error`, `idle_timeout`, `shutdown`, `no_server`,
    /// `over_limit`, `proxy_untrusted`, `proxy_malformed`, `expired`, `server_gone`.
    pub end: &'static str,
    /// When it ended.
    pub at: SystemTime,
}

impl StreamRecord<'_> {
    /// The line, `\n` included.
    pub fn write(&self, out: &mut Vec<u8>, format: LogFormat) {
        match format {
            LogFormat::Combined => self.text(out),
            LogFormat::Json => self.json(out),
        }
    }

    fn text(&self, out: &mut Vec<u8>) {
        line::ip(out, self.client.ip());
        out.push(b' ');
        line::time_local(out, self.at);
        out.push(b' ');
        out.extend_from_slice(self.protocol.as_bytes());
        out.push(b' ');
        line::uint(out, u64::from(self.status));
        out.push(b' ');
        line::uint(out, self.sent);
        out.push(b' ');
        line::uint(out, self.received);
        out.push(b' ');
        line::secs(out, self.duration);
        out.extend_from_slice(b" upstream=");
        match self.upstream {
            Some(a) => line::addr(out, a),
            None => out.push(b'-'),
        }
        out.extend_from_slice(b" upstream_connect_time=");
        line::secs_or_dash(out, self.connect);
        line::field(out, b"pool", self.pool.as_bytes());
        line::field(out, b"listener", self.listener.as_bytes());
        out.extend_from_slice(b" client_port=");
        line::uint(out, u64::from(self.client.port()));
        out.extend_from_slice(b" end=");
        out.extend_from_slice(self.end.as_bytes());
        out.push(b'\n');
    }

    fn json(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        line::json_key(out, "time");
        line::time_iso(out, self.at);
        line::json_key(out, "remote_addr");
        out.push(b'"');
        line::ip(out, self.client.ip());
        out.push(b'"');
        line::json_key(out, "remote_port");
        line::uint(out, u64::from(self.client.port()));
        line::json_key(out, "protocol");
        line::json_str(out, self.protocol.as_bytes());
        line::json_key(out, "status");
        line::uint(out, u64::from(self.status));
        line::json_key(out, "bytes_sent");
        line::uint(out, self.sent);
        line::json_key(out, "bytes_received");
        line::uint(out, self.received);
        line::json_key(out, "session_time");
        line::secs(out, self.duration);
        line::json_key(out, "upstream");
        match self.upstream {
            Some(a) => {
                out.push(b'"');
                line::addr(out, a);
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        line::json_key(out, "upstream_connect_time");
        line::json_secs(out, self.connect);
        line::json_key(out, "pool");
        line::json_str(out, self.pool.as_bytes());
        line::json_key(out, "listener");
        line::json_str(out, self.listener.as_bytes());
        line::json_key(out, "end");
        line::json_str(out, self.end.as_bytes());
        out.extend_from_slice(b"}\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> StreamRecord<'static> {
        StreamRecord {
            protocol: "TCP",
            listener: "redis",
            pool: "cache",
            client: "203.0.113.7:40000".parse().unwrap(),
            upstream: Some("10.0.0.5:6379".parse().unwrap()),
            status: 200,
            sent: 81_920,
            received: 5_120,
            duration: Duration::from_millis(2_250),
            connect: Some(Duration::from_micros(400)),
            end: "done",
            at: std::time::UNIX_EPOCH + Duration::from_secs(1_796_132_931),
        }
    }

    #[test]
    fn a_connection_reads_as_nginx_stream_logs_it() {
        let mut out = Vec::new();
        record().write(&mut out, LogFormat::Combined);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "203.0.113.7 [01/Dec/2026:13:48:51 +0000] TCP 200 81920 5120 2.250 upstream=10.0.0.5:6379 upstream_connect_time=0.000 pool=cache listener=redis client_port=40000 end=done\n"
        );
    }

    #[test]
    fn the_json_line_has_the_same_fields() {
        let mut out = Vec::new();
        let r = StreamRecord {
            upstream: None,
            connect: None,
            status: 502,
            end: "no_server",
            ..record()
        };
        r.write(&mut out, LogFormat::Json);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["time"], "2026-12-01T13:48:51.000Z");
        assert_eq!(v["remote_addr"], "203.0.113.7");
        assert_eq!(
            (v["status"].as_u64(), v["bytes_sent"].as_u64()),
            (Some(502), Some(81_920))
        );
        assert_eq!(v["session_time"].as_f64(), Some(2.25));
        assert!(v["upstream"].is_null() && v["upstream_connect_time"].is_null());
        assert_eq!(
            (v["pool"].as_str(), v["end"].as_str()),
            (Some("cache"), Some("no_server"))
        );
        assert!(out.ends_with(b"}\n"));
    }
}

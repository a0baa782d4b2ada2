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

use super::line::Line;
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
        let mut l = Line::new(out);
        l.ip(self.client.ip());
        l.byte(b' ');
        l.time_local(self.at);
        l.byte(b' ');
        l.raw(self.protocol.as_bytes());
        l.byte(b' ');
        l.uint(u64::from(self.status));
        l.byte(b' ');
        l.uint(self.sent);
        l.byte(b' ');
        l.uint(self.received);
        l.byte(b' ');
        l.secs(self.duration);
        l.text(b" upstream=");
        match self.upstream {
            Some(a) => l.addr(a),
            None => l.byte(b'-'),
        }
        l.text(b" upstream_connect_time=");
        l.secs_or_dash(self.connect);
        l.field(b"pool", self.pool.as_bytes());
        l.field(b"listener", self.listener.as_bytes());
        l.text(b" client_port=");
        l.uint(u64::from(self.client.port()));
        l.text(b" end=");
        l.raw(self.end.as_bytes());
        l.byte(b'\n');
    }

    fn json(&self, out: &mut Vec<u8>) {
        let mut l = Line::new(out);
        l.byte(b'{');
        l.json_key("time");
        l.time_iso(self.at);
        l.json_key("remote_addr");
        l.byte(b'"');
        l.ip(self.client.ip());
        l.byte(b'"');
        l.json_key("remote_port");
        l.uint(u64::from(self.client.port()));
        l.json_key("protocol");
        l.json_str(self.protocol.as_bytes());
        l.json_key("status");
        l.uint(u64::from(self.status));
        l.json_key("bytes_sent");
        l.uint(self.sent);
        l.json_key("bytes_received");
        l.uint(self.received);
        l.json_key("session_time");
        l.secs(self.duration);
        l.json_key("upstream");
        match self.upstream {
            Some(a) => {
                l.byte(b'"');
                l.addr(a);
                l.byte(b'"');
            }
            None => l.text(b"null"),
        }
        l.json_key("upstream_connect_time");
        l.json_secs(self.connect);
        l.json_key("pool");
        l.json_str(self.pool.as_bytes());
        l.json_key("listener");
        l.json_str(self.listener.as_bytes());
        l.json_key("end");
        l.json_str(self.end.as_bytes());
        l.text(b"}\n");
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

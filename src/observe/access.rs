//! The access-log line of one HTTP request: nginx's `combined` line, then the balancer's
//! own fields as `key=value` — or the same fields as one JSON object. Written when the
//! answer has been sent (its body included), into the log's buffer (`sink.rs`), by hand:
//! no `fmt` machinery, no allocation for the usual line.
//!
//! ```text
//! 203.0.113.7 - - [01/Dec/2026:13:48:51 +0000] "GET /api/v1?q=1 HTTP/1.1" 200 512 "-" "curl/8.5.0" upstream=10.0.0.11:8080 upstream_time=0.004 request_time=0.005 pool=api host=api.example.com listener=web upstream_connect_time=0.000 attempts=1
//! ```
//!
//! The request target is written in origin form (`/path?query`) whatever the client sent:
//! HTTP/2's `:path`, an HTTP/1.1 origin-form target, or the path of an absolute-form one;
//! the host is HTTP/2's `:authority`, the `Host` header, or the absolute form's authority.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use super::line;
use crate::config::LogFormat;

/// What happened to one request.
#[derive(Debug)]
pub struct AccessRecord<'a> {
    pub listener: &'a str,
    pub client: SocketAddr,
    pub method: &'a [u8],
    /// Origin form: `/path?query` (`*` for `OPTIONS *`).
    pub target: &'a [u8],
    /// `HTTP/1.0`, `HTTP/1.1`, `HTTP/2.0`.
    pub protocol: &'a str,
    pub host: &'a [u8],
    pub status: u16,
    /// Bytes of the answer's body sent to the client.
    pub body_bytes: u64,
    pub referer: &'a [u8],
    pub user_agent: &'a [u8],
    /// `-` when no route took it.
    pub pool: &'a str,
    /// The last server tried, if any.
    pub upstream: Option<SocketAddr>,
    /// Tries made (0 when no server was tried).
    pub attempts: u32,
    pub upstream_connect: Option<Duration>,
    /// From sending the request to the server to its response head (the last try).
    pub upstream_header: Option<Duration>,
    /// From the request head to the last byte of the answer.
    pub total: Duration,
    pub at: SystemTime,
}

impl AccessRecord<'_> {
    /// The line, `\n` included.
    pub fn write(&self, out: &mut Vec<u8>, format: LogFormat) {
        match format {
            LogFormat::Combined => self.combined(out),
            LogFormat::Json => self.json(out),
        }
    }

    fn combined(&self, out: &mut Vec<u8>) {
        line::ip(out, self.client.ip());
        out.extend_from_slice(b" - - ");
        line::time_local(out, self.at);
        out.extend_from_slice(b" \"");
        line::bare(out, self.method);
        out.push(b' ');
        line::bare(out, self.target);
        out.push(b' ');
        out.extend_from_slice(self.protocol.as_bytes());
        out.extend_from_slice(b"\" ");
        line::uint(out, u64::from(self.status));
        out.push(b' ');
        line::uint(out, self.body_bytes);
        out.push(b' ');
        dash_quoted(out, self.referer);
        out.push(b' ');
        dash_quoted(out, self.user_agent);
        out.extend_from_slice(b" upstream=");
        match self.upstream {
            Some(a) => line::addr(out, a),
            None => out.push(b'-'),
        }
        out.extend_from_slice(b" upstream_time=");
        line::secs_or_dash(out, self.upstream_header);
        out.extend_from_slice(b" request_time=");
        line::secs(out, self.total);
        line::field(out, b"pool", self.pool.as_bytes());
        line::field(out, b"host", self.host);
        line::field(out, b"listener", self.listener.as_bytes());
        out.extend_from_slice(b" upstream_connect_time=");
        line::secs_or_dash(out, self.upstream_connect);
        out.extend_from_slice(b" attempts=");
        line::uint(out, u64::from(self.attempts));
        out.push(b'\n');
    }

    fn json(&self, out: &mut Vec<u8>) {
        let text = |out: &mut Vec<u8>, key: &str, v: &[u8]| {
            line::json_key(out, key);
            line::json_str(out, v);
        };
        out.push(b'{');
        line::json_key(out, "time");
        line::time_iso(out, self.at);
        line::json_key(out, "remote_addr");
        out.push(b'"');
        line::ip(out, self.client.ip());
        out.push(b'"');
        text(out, "method", self.method);
        text(out, "uri", self.target);
        text(out, "protocol", self.protocol.as_bytes());
        line::json_key(out, "status");
        line::uint(out, u64::from(self.status));
        line::json_key(out, "body_bytes_sent");
        line::uint(out, self.body_bytes);
        text(out, "referer", self.referer);
        text(out, "user_agent", self.user_agent);
        line::json_key(out, "upstream");
        match self.upstream {
            Some(a) => {
                out.push(b'"');
                line::addr(out, a);
                out.push(b'"');
            }
            None => out.extend_from_slice(b"null"),
        }
        line::json_key(out, "upstream_time");
        line::json_secs(out, self.upstream_header);
        line::json_key(out, "request_time");
        line::secs(out, self.total);
        text(out, "pool", self.pool.as_bytes());
        text(out, "host", self.host);
        text(out, "listener", self.listener.as_bytes());
        line::json_key(out, "upstream_connect_time");
        line::json_secs(out, self.upstream_connect);
        line::json_key(out, "attempts");
        line::uint(out, u64::from(self.attempts));
        out.extend_from_slice(b"}\n");
    }
}

/// `"value"`, or `"-"` for an empty one (nginx writes a missing header so).
fn dash_quoted(out: &mut Vec<u8>, v: &[u8]) {
    if v.is_empty() {
        out.extend_from_slice(b"\"-\"");
    } else {
        line::quoted(out, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record() -> AccessRecord<'static> {
        AccessRecord {
            listener: "web",
            client: "203.0.113.7:5000".parse().unwrap(),
            method: b"GET",
            target: b"/api/v1?q=\"1\"",
            protocol: "HTTP/1.1",
            host: b"api.example.com",
            status: 200,
            body_bytes: 512,
            referer: b"",
            user_agent: b"curl/8.5.0",
            pool: "api",
            upstream: Some("10.0.0.11:8080".parse().unwrap()),
            attempts: 1,
            upstream_connect: Some(Duration::from_micros(90)),
            upstream_header: Some(Duration::from_micros(4_400)),
            total: Duration::from_micros(5_100),
            at: std::time::UNIX_EPOCH + Duration::from_secs(1_796_132_931),
        }
    }

    #[test]
    fn a_line_reads_as_nginx_combined_then_the_balancer_fields() {
        let mut out = Vec::new();
        record().write(&mut out, LogFormat::Combined);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "203.0.113.7 - - [01/Dec/2026:13:48:51 +0000] \"GET /api/v1?q=\\x221\\x22 HTTP/1.1\" 200 512 \"-\" \"curl/8.5.0\" upstream=10.0.0.11:8080 upstream_time=0.004 request_time=0.005 pool=api host=api.example.com listener=web upstream_connect_time=0.000 attempts=1\n"
        );
    }

    #[test]
    fn the_json_line_has_the_same_fields() {
        let mut out = Vec::new();
        let r = AccessRecord {
            upstream: None,
            upstream_header: None,
            upstream_connect: None,
            attempts: 0,
            status: 404,
            pool: "-",
            ..record()
        };
        r.write(&mut out, LogFormat::Json);
        let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
        assert_eq!(v["uri"], "/api/v1?q=\"1\"");
        assert_eq!(
            (v["status"].as_u64(), v["body_bytes_sent"].as_u64()),
            (Some(404), Some(512))
        );
        assert!(v["upstream"].is_null() && v["upstream_time"].is_null());
        assert_eq!(v["request_time"].as_f64(), Some(0.005));
        assert_eq!(
            (v["host"].as_str(), v["remote_addr"].as_str()),
            (Some("api.example.com"), Some("203.0.113.7"))
        );
    }
}

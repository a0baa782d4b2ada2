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

use super::line::Line;
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
        let mut l = Line::new(out);
        l.ip(self.client.ip());
        l.text(b" - - ");
        l.time_local(self.at);
        l.text(b" \"");
        l.bare(self.method);
        l.byte(b' ');
        l.bare(self.target);
        l.byte(b' ');
        l.raw(self.protocol.as_bytes());
        l.text(b"\" ");
        l.uint(u64::from(self.status));
        l.byte(b' ');
        l.uint(self.body_bytes);
        l.byte(b' ');
        dash_quoted(&mut l, self.referer);
        l.byte(b' ');
        dash_quoted(&mut l, self.user_agent);
        l.text(b" upstream=");
        match self.upstream {
            Some(a) => l.addr(a),
            None => l.byte(b'-'),
        }
        l.text(b" upstream_time=");
        l.secs_or_dash(self.upstream_header);
        l.text(b" request_time=");
        l.secs(self.total);
        l.field(b"pool", self.pool.as_bytes());
        l.field(b"host", self.host);
        l.field(b"listener", self.listener.as_bytes());
        l.text(b" upstream_connect_time=");
        l.secs_or_dash(self.upstream_connect);
        l.text(b" attempts=");
        l.uint(u64::from(self.attempts));
        l.byte(b'\n');
    }

    fn json(&self, out: &mut Vec<u8>) {
        let mut l = Line::new(out);
        let text = |l: &mut Line<'_>, key: &str, v: &[u8]| {
            l.json_key(key);
            l.json_str(v);
        };
        l.byte(b'{');
        l.json_key("time");
        l.time_iso(self.at);
        l.json_key("remote_addr");
        l.byte(b'"');
        l.ip(self.client.ip());
        l.byte(b'"');
        text(&mut l, "method", self.method);
        text(&mut l, "uri", self.target);
        text(&mut l, "protocol", self.protocol.as_bytes());
        l.json_key("status");
        l.uint(u64::from(self.status));
        l.json_key("body_bytes_sent");
        l.uint(self.body_bytes);
        text(&mut l, "referer", self.referer);
        text(&mut l, "user_agent", self.user_agent);
        l.json_key("upstream");
        match self.upstream {
            Some(a) => {
                l.byte(b'"');
                l.addr(a);
                l.byte(b'"');
            }
            None => l.text(b"null"),
        }
        l.json_key("upstream_time");
        l.json_secs(self.upstream_header);
        l.json_key("request_time");
        l.secs(self.total);
        text(&mut l, "pool", self.pool.as_bytes());
        text(&mut l, "host", self.host);
        text(&mut l, "listener", self.listener.as_bytes());
        l.json_key("upstream_connect_time");
        l.json_secs(self.upstream_connect);
        l.json_key("attempts");
        l.uint(u64::from(self.attempts));
        l.text(b"}\n");
    }
}

/// `"value"`, or `"-"` for an empty one (nginx writes a missing header so).
#[inline(always)]
fn dash_quoted(l: &mut Line<'_>, v: &[u8]) {
    if v.is_empty() {
        l.text(b"\"-\"");
    } else {
        l.quoted(v);
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

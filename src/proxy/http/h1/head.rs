//! Heads written by the direct HTTP/1 path, as bytes into buffers the connection keeps:
//! the request for the server (hop-by-hop fields dropped, the forwarding fields appended,
//! our own framing), the answer for the client, and our own answers (errors, redirects).
//! Also the [`RequestView`] of a parsed request head, for routing, hashing and stickiness.

use http::HeaderName;

use super::parse::{Field, Framing, RequestHead, ResponseHead, Span};
use crate::proxy::http::view::RequestView;

/// A parsed request head over the buffer it was read into.
pub struct HeadView<'a> {
    pub buf: &'a [u8],
    pub head: &'a RequestHead,
}

impl HeadView<'_> {
    fn text(&self, s: Span) -> &str {
        std::str::from_utf8(s.get(self.buf)).unwrap_or("")
    }

    /// The target in origin form (`/path?query`, or `*`), and the authority of an
    /// absolute-form target.
    pub fn origin(&self) -> (&str, Option<&str>) {
        let t = self.text(self.head.target);
        if t.starts_with('/') || t == "*" {
            return (t, None);
        }
        // absolute-form: scheme "://" authority [path-abempty] ["?" query]
        let Some((_, rest)) = t.split_once("://") else {
            return (t, None);
        };
        match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[i..], Some(&rest[..i])),
            Some(i) => (&rest[i..], Some(&rest[..i])),
            None => ("/", Some(rest)),
        }
    }

    pub fn method_bytes(&self) -> &[u8] {
        self.head.method.get(self.buf)
    }
}

impl RequestView for HeadView<'_> {
    fn method(&self) -> &str {
        self.text(self.head.method)
    }
    fn path(&self) -> &str {
        let pq = self.origin().0;
        pq.split_once('?').map_or(pq, |(p, _)| p)
    }
    fn path_and_query(&self) -> &str {
        self.origin().0
    }
    fn host_with_port(&self) -> Option<&str> {
        match self.head.host {
            Some(h) => Some(self.text(h)),
            None => self.origin().1,
        }
    }
    fn header_values<'s>(&'s self, name: &HeaderName) -> impl Iterator<Item = &'s [u8]> {
        let name = name.as_str().as_bytes();
        self.head
            .fields
            .iter()
            .filter(move |f| f.name.get(self.buf).eq_ignore_ascii_case(name))
            .map(|f| f.value.get(self.buf))
    }
}

/// Fields that describe one hop (RFC 9110 §7.6.1), the proxy ones, and those whose value we
/// write ourselves; a request and an answer drop them alike.
fn hop_by_hop(name: &[u8]) -> bool {
    let is = |n: &[u8]| name.eq_ignore_ascii_case(n);
    match name.len() {
        2 => is(b"te"),
        5 => is(b"proxy"),
        7 => is(b"upgrade"),
        10 => is(b"connection") || is(b"keep-alive"),
        14 => is(b"content-length"),
        16 => is(b"proxy-connection"),
        17 => is(b"transfer-encoding"),
        18 => is(b"proxy-authenticate"),
        19 => is(b"proxy-authorization"),
        25 => is(b"proxy-authentication-info"),
        _ => false,
    }
}

fn named_by_connection(buf: &[u8], tokens: &[Span], name: &[u8]) -> bool {
    tokens.iter().any(|t| t.get(buf).eq_ignore_ascii_case(name))
}

fn push_field(out: &mut Vec<u8>, buf: &[u8], f: &Field) {
    out.extend_from_slice(f.name.get(buf));
    out.extend_from_slice(b": ");
    out.extend_from_slice(f.value.get(buf));
    out.extend_from_slice(b"\r\n");
}

fn push_number(out: &mut Vec<u8>, n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = n;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// What the server's request head needs besides the client's head.
pub struct Forwarding<'a> {
    /// The client's address as text (formatted once per connection).
    pub client_ip: &'a str,
    pub scheme: &'a str,
    /// Write no `Host` (the pool sets it to the server per try).
    pub host_from_server: bool,
    pub framing: Framing,
    pub upgrading: bool,
}

/// The request head for the server into `out`, without its final empty line: origin-form
/// target, HTTP/1.1, the client's fields less the hop-by-hop ones, then `X-Forwarded-For`
/// (the client's list with the client last, on one line), `X-Real-IP`, `X-Forwarded-Proto`
/// and our framing.
pub fn request_out(out: &mut Vec<u8>, view: &HeadView<'_>, fw: &Forwarding<'_>) {
    let buf = view.buf;
    let head = view.head;
    let (target, authority) = view.origin();
    out.clear();
    out.extend_from_slice(view.method_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let mut xff_open = false;
    for f in &head.fields {
        let name = f.name.get(buf);
        if hop_by_hop(name) {
            if fw.upgrading && name.eq_ignore_ascii_case(b"upgrade") {
                push_field(out, buf, f);
            }
            continue;
        }
        if named_by_connection(buf, &head.connection_tokens, name)
            || name.eq_ignore_ascii_case(b"expect")
            || name.eq_ignore_ascii_case(b"x-real-ip")
            || name.eq_ignore_ascii_case(b"x-forwarded-proto")
            || (fw.host_from_server && name.eq_ignore_ascii_case(b"host"))
        {
            continue;
        }
        if name.eq_ignore_ascii_case(b"x-forwarded-for") {
            continue;
        }
        push_field(out, buf, f);
    }
    if head.host.is_none()
        && !fw.host_from_server
        && let Some(a) = authority
    {
        out.extend_from_slice(b"host: ");
        out.extend_from_slice(a.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"x-forwarded-for: ");
    for v in view.header_values(&X_FORWARDED_FOR) {
        let v = v.trim_ascii();
        if !v.is_empty() {
            if xff_open {
                out.extend_from_slice(b", ");
            }
            out.extend_from_slice(v);
            xff_open = true;
        }
    }
    if xff_open {
        out.extend_from_slice(b", ");
    }
    out.extend_from_slice(fw.client_ip.as_bytes());
    out.extend_from_slice(b"\r\nx-real-ip: ");
    out.extend_from_slice(fw.client_ip.as_bytes());
    out.extend_from_slice(b"\r\nx-forwarded-proto: ");
    out.extend_from_slice(fw.scheme.as_bytes());
    out.extend_from_slice(b"\r\n");
    if head.te_trailers {
        out.extend_from_slice(b"te: trailers\r\n");
    }
    match fw.framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            push_number(out, n);
            out.extend_from_slice(b"\r\n");
        }
        Framing::Chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty | Framing::Close => {}
    }
    if fw.upgrading {
        out.extend_from_slice(b"connection: upgrade\r\n");
    }
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// How the answer goes to the client.
pub struct AnswerOut<'a> {
    /// Its body as the client gets it.
    pub framing: Framing,
    /// Re-framed as chunked (a body with no length to an HTTP/1.1 client).
    pub chunked: bool,
    /// The request was HEAD (the server's length, if any, is passed on).
    pub head_request: bool,
    /// We close the client's connection after it.
    pub close: bool,
    /// An HTTP/1.0 client that asked to keep the connection.
    pub keep_alive_1_0: bool,
    pub upgrade: bool,
    pub set_cookie: Option<&'a str>,
    pub hsts: Option<&'a [u8]>,
}

/// The answer's head for the client into `out` (appended).
pub fn response_out(out: &mut Vec<u8>, buf: &[u8], head: &ResponseHead, a: &AnswerOut<'_>) {
    out.extend_from_slice(b"HTTP/1.1 ");
    push_number(out, u64::from(head.status));
    out.push(b' ');
    let reason = head.reason.get(buf);
    if reason.is_empty() {
        let canonical = http::StatusCode::from_u16(head.status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or("");
        out.extend_from_slice(canonical.as_bytes());
    } else {
        out.extend_from_slice(reason);
    }
    out.extend_from_slice(b"\r\n");
    let mut has_hsts = false;
    for f in &head.fields {
        let name = f.name.get(buf);
        if hop_by_hop(name) {
            if a.upgrade && name.eq_ignore_ascii_case(b"upgrade") {
                push_field(out, buf, f);
            }
            continue;
        }
        if named_by_connection(buf, &head.connection_tokens, name) {
            continue;
        }
        has_hsts |= name.eq_ignore_ascii_case(b"strict-transport-security");
        push_field(out, buf, f);
    }
    if let Some(c) = a.set_cookie {
        out.extend_from_slice(b"set-cookie: ");
        out.extend_from_slice(c.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let (Some(v), false) = (a.hsts, has_hsts) {
        out.extend_from_slice(b"strict-transport-security: ");
        out.extend_from_slice(v);
        out.extend_from_slice(b"\r\n");
    }
    let no_body_status = head.status < 200 || head.status == 204;
    match a.framing {
        Framing::Length(n) => {
            out.extend_from_slice(b"content-length: ");
            push_number(out, n);
            out.extend_from_slice(b"\r\n");
        }
        _ if a.chunked => out.extend_from_slice(b"transfer-encoding: chunked\r\n"),
        Framing::Empty if (a.head_request || head.status == 304) && !head.chunked => {
            // The length the body would have had.
            if let Some(n) = head.content_length {
                out.extend_from_slice(b"content-length: ");
                push_number(out, n);
                out.extend_from_slice(b"\r\n");
            }
        }
        Framing::Empty if !no_body_status && head.status != 304 && !a.head_request => {
            out.extend_from_slice(b"content-length: 0\r\n");
        }
        _ => {}
    }
    if a.upgrade {
        out.extend_from_slice(b"connection: upgrade\r\n");
    } else if a.close {
        out.extend_from_slice(b"connection: close\r\n");
    } else if a.keep_alive_1_0 {
        out.extend_from_slice(b"connection: keep-alive\r\n");
    }
    out.extend_from_slice(b"\r\n");
}

/// A short answer of our own (an error, a redirect): status, plain text, optional extra
/// field lines (each ending in CRLF).
pub fn own_answer(out: &mut Vec<u8>, status: u16, extra: &[u8], text: &str, close: bool) {
    let reason = http::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("Error");
    out.extend_from_slice(b"HTTP/1.1 ");
    push_number(out, u64::from(status));
    out.push(b' ');
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(extra);
    if !text.is_empty() {
        out.extend_from_slice(b"content-type: text/plain; charset=utf-8\r\n");
    }
    out.extend_from_slice(b"content-length: ");
    push_number(out, text.len() as u64);
    out.extend_from_slice(b"\r\n");
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(text.as_bytes());
}

#[cfg(test)]
mod tests {
    use super::super::parse;
    use super::*;

    #[test]
    fn the_servers_head_drops_hop_by_hop_and_appends_forwarding() {
        let buf = b"POST http://a.example/x?y=1 HTTP/1.1\r\nConnection: keep-alive, X-Secret\r\nX-Secret: 1\r\nX-Forwarded-For: 10.0.0.1\r\nTE: trailers, deflate\r\nUpgrade: h2c\r\nContent-Length: 5\r\nX-App: kept\r\n\r\n";
        let mut head = RequestHead::default();
        assert_eq!(parse::request(buf, &mut head), Ok(true));
        let view = HeadView { buf, head: &head };
        assert_eq!(view.host(), Some("a.example"));
        assert_eq!(view.path(), "/x");
        let mut out = Vec::new();
        request_out(
            &mut out,
            &view,
            &Forwarding {
                client_ip: "127.0.0.1",
                scheme: "http",
                host_from_server: false,
                framing: head.framing(),
                upgrading: false,
            },
        );
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "POST /x?y=1 HTTP/1.1\r\nX-App: kept\r\nhost: a.example\r\nx-forwarded-for: 10.0.0.1, 127.0.0.1\r\nx-real-ip: 127.0.0.1\r\nx-forwarded-proto: http\r\nte: trailers\r\ncontent-length: 5\r\n"
        );
    }
}

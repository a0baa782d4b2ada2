//! Heads written by the direct HTTP/1 path, as bytes into buffers the connection keeps:
//! the request for the server (hop-by-hop fields dropped, the forwarding fields appended,
//! our own framing), the answer for the client, and our own answers (errors, redirects).
//! Also the [`RequestView`] of a parsed request head, for routing, hashing and stickiness.

use http::HeaderName;

use super::parse::{Field, Framing, RequestHead, ResponseHead, Span};
use crate::config::ForwardHeaders;
use crate::proxy::http::forwarding::{Claim, claim, forwarded_element};
use crate::proxy::http::view::RequestView;

/// A parsed request head over the buffer it was read into.
pub struct HeadView<'a> {
    pub buf: &'a [u8],
    pub head: &'a RequestHead,
    /// The target as text (`None`: not UTF-8), and [`HeadView::origin`]: worked out once,
    /// as the checks, the router and the server's head each ask.
    target: Option<&'a str>,
    origin: (&'a str, Option<&'a str>),
}

impl<'a> HeadView<'a> {
    pub fn new(buf: &'a [u8], head: &'a RequestHead) -> HeadView<'a> {
        let target = std::str::from_utf8(head.target.get(buf)).ok();
        HeadView {
            buf,
            head,
            target,
            origin: origin_of(target.unwrap_or("")),
        }
    }

    fn text(&self, s: Span) -> &'a str {
        std::str::from_utf8(s.get(self.buf)).unwrap_or("")
    }

    /// The target as it was sent, when it is UTF-8.
    pub fn target(&self) -> Option<&'a str> {
        self.target
    }

    /// The target in origin form (`/path?query`, or `*`), and the authority of an
    /// absolute-form target.
    pub fn origin(&self) -> (&'a str, Option<&'a str>) {
        self.origin
    }

    pub fn method_bytes(&self) -> &[u8] {
        self.head.method.get(self.buf)
    }
}

/// [`HeadView::origin`] of target `t`.
fn origin_of(t: &str) -> (&str, Option<&str>) {
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

impl RequestView for HeadView<'_> {
    fn method(&self) -> &str {
        self.text(self.head.method)
    }
    fn path(&self) -> &str {
        // `http://a?q`: the path is `/` (as `http::Uri::path` has it).
        let pq = self.origin().0;
        match pq.split_once('?').map_or(pq, |(p, _)| p) {
            "" => "/",
            p => p,
        }
    }
    fn path_and_query(&self) -> &str {
        self.origin().0
    }
    fn host_with_port(&self) -> Option<&str> {
        // An absolute-form target's authority wins over Host (RFC 9112 §3.2.2); Host is
        // then replaced in the server's head.
        match self.origin().1 {
            Some(a) => Some(a),
            None => self.head.host.map(|h| self.text(h)),
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
pub fn hop_by_hop(name: &[u8]) -> bool {
    let is = |n: &[u8]| super::parse::is(name, n);
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

pub fn named_by_connection(buf: &[u8], tokens: &[Span], name: &[u8]) -> bool {
    tokens.iter().any(|t| t.get(buf).eq_ignore_ascii_case(name))
}

fn push_field(out: &mut Vec<u8>, buf: &[u8], f: &Field) {
    // Spelt as we would write it (`name: value` and CRLF, the usual line): one copy.
    let (name, value) = (f.name.range(), f.value.range());
    if value.start == name.end + 2
        && buf.get(name.end..value.start) == Some(&b": "[..])
        && buf.get(value.end..value.end + 2) == Some(&b"\r\n"[..])
    {
        out.extend_from_slice(&buf[name.start..value.end + 2]);
        return;
    }
    out.extend_from_slice(f.name.get(buf));
    out.extend_from_slice(b": ");
    out.extend_from_slice(f.value.get(buf));
    out.extend_from_slice(b"\r\n");
}

fn push_number(out: &mut Vec<u8>, n: u64) {
    // A status code, a short length or a port: no loop.
    let d = |v: u64| b'0' + (v % 10) as u8;
    match n {
        0..=9 => return out.push(d(n)),
        10..=99 => return out.extend_from_slice(&[d(n / 10), d(n)]),
        100..=999 => return out.extend_from_slice(&[d(n / 100), d(n / 10), d(n)]),
        _ => {}
    }
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
    /// The connection's peer as text (formatted once per connection).
    pub client_ip: &'a str,
    /// The client as the checks saw it: the peer, or what a trusted proxy said.
    pub real_ip: &'a str,
    /// The peer is one of `trusted_proxies`: its forwarding headers are kept (`forwarding.rs`).
    pub trusted: bool,
    /// `forward_headers`.
    pub set: ForwardHeaders,
    pub scheme: &'a str,
    /// The host the request was routed on (for `X-Forwarded-Host` and `Forwarded`).
    pub host: Option<&'a str>,
    /// The listener's port (for `X-Forwarded-Port`).
    pub port: u16,
    /// Write no `Host` (the pool sets it to the server per try).
    pub host_from_server: bool,
    pub framing: Framing,
    pub upgrading: bool,
}

fn push_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// The request head for the server into `out`, without its final empty line: origin-form
/// target, HTTP/1.1, the client's fields less the hop-by-hop ones and, unless the peer is a
/// trusted proxy, less every forwarding header (`forwarding.rs`); the host routed on (an
/// absolute-form target's authority replaces `Host`; `Connection: Host` does not remove
/// it); then the forwarding headers of `forward_headers` and our framing.
pub fn request_out(out: &mut Vec<u8>, view: &HeadView<'_>, fw: &Forwarding<'_>) {
    let buf = view.buf;
    let head = view.head;
    let (target, authority) = view.origin();
    out.clear();
    out.extend_from_slice(view.method_bytes());
    out.push(b' ');
    if target.starts_with('?') {
        // `http://a?q` goes on as `/?q`.
        out.push(b'/');
    }
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    let set = fw.set;
    let own_host = fw.host_from_server || authority.is_some();
    // The claims of a trusted proxy that go on as they came (their bits).
    let mut kept = 0u8;
    for f in &head.fields {
        let name = f.name.get(buf);
        if hop_by_hop(name) {
            if fw.upgrading && name.eq_ignore_ascii_case(b"upgrade") {
                push_field(out, buf, f);
            }
            continue;
        }
        if let Some(c) = claim(name) {
            let bit = c.bit();
            // X-Forwarded-For and X-Real-IP are written anew below when set.
            let rewritten = matches!(c, Claim::For | Claim::RealIp) && set.has(bit);
            if fw.trusted && !rewritten {
                kept |= bit;
                push_field(out, buf, f);
            }
            continue;
        }
        let host = name.len() == 4 && name.eq_ignore_ascii_case(b"host");
        if (host && own_host)
            || (name.len() == 6 && name.eq_ignore_ascii_case(b"expect"))
            || (!host && named_by_connection(buf, &head.connection_tokens, name))
        {
            continue;
        }
        push_field(out, buf, f);
    }
    if !fw.host_from_server
        && let Some(a) = authority
    {
        push_line(out, b"host: ", a.as_bytes());
    }
    if set.has(ForwardHeaders::X_FORWARDED_FOR) {
        // The list as it came (from anyone: nginx's `$proxy_add_x_forwarded_for`), then
        // the peer, on one line.
        out.extend_from_slice(b"x-forwarded-for: ");
        for v in view.header_values(&X_FORWARDED_FOR) {
            let v = v.trim_ascii();
            if !v.is_empty() {
                out.extend_from_slice(v);
                out.extend_from_slice(b", ");
            }
        }
        push_line(out, fw.client_ip.as_bytes(), b"");
    }
    if set.has(ForwardHeaders::X_REAL_IP) {
        push_line(out, b"x-real-ip: ", fw.real_ip.as_bytes());
    }
    let mine = |bit: u8| set.has(bit) && kept & bit == 0;
    if mine(ForwardHeaders::X_FORWARDED_PROTO) {
        push_line(out, b"x-forwarded-proto: ", fw.scheme.as_bytes());
    }
    if mine(ForwardHeaders::X_FORWARDED_HOST)
        && let Some(h) = fw.host
    {
        push_line(out, b"x-forwarded-host: ", h.as_bytes());
    }
    if mine(ForwardHeaders::X_FORWARDED_PORT) {
        out.extend_from_slice(b"x-forwarded-port: ");
        push_number(out, u64::from(fw.port));
        out.extend_from_slice(b"\r\n");
    }
    if set.has(ForwardHeaders::FORWARDED) {
        // A trusted proxy's `Forwarded` lines went on above; ours is the next element of
        // the same list (several lines are one list, RFC 9110 §5.3).
        let mut element = String::new();
        if let Ok(peer) = fw.client_ip.parse() {
            forwarded_element(&mut element, peer, fw.scheme, fw.host);
        }
        push_line(out, b"forwarded: ", element.as_bytes());
    }
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
    /// `X-Switchyard-Explain` (`trace.rs`), replacing one the server sent.
    pub trace: Option<&'a str>,
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
        if a.trace.is_some() && name.eq_ignore_ascii_case(b"x-switchyard-explain") {
            continue;
        }
        push_field(out, buf, f);
    }
    if let Some(t) = a.trace {
        out.extend_from_slice(b"x-switchyard-explain: ");
        out.extend_from_slice(t.as_bytes());
        out.extend_from_slice(b"\r\n");
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
        let view = HeadView::new(buf, &head);
        assert_eq!(view.host(), Some("a.example"));
        assert_eq!(view.path(), "/x");
        let mut out = Vec::new();
        let fw = |trusted| Forwarding {
            client_ip: "127.0.0.1",
            real_ip: "10.0.0.1",
            trusted,
            set: ForwardHeaders::default(),
            scheme: "http",
            host: Some("a.example"),
            port: 80,
            host_from_server: false,
            framing: head.framing(),
            upgrading: false,
        };
        request_out(&mut out, &view, &fw(true));
        let text = String::from_utf8(out.clone()).unwrap();
        assert_eq!(
            text,
            "POST /x?y=1 HTTP/1.1\r\nX-App: kept\r\nhost: a.example\r\nx-forwarded-for: 10.0.0.1, 127.0.0.1\r\nx-real-ip: 10.0.0.1\r\nx-forwarded-proto: http\r\nte: trailers\r\ncontent-length: 5\r\n"
        );
        // From a peer that is not a trusted proxy, X-Forwarded-For is appended to all the
        // same (only its last entry is vouched for); without it in forward_headers, it goes.
        request_out(&mut out, &view, &fw(false));
        let text = String::from_utf8(out.clone()).unwrap();
        assert!(
            text.contains("\r\nx-forwarded-for: 10.0.0.1, 127.0.0.1\r\n"),
            "{text}"
        );
        let fw_none = Forwarding {
            set: ForwardHeaders(ForwardHeaders::X_REAL_IP),
            ..fw(false)
        };
        request_out(&mut out, &view, &fw_none);
        let text = String::from_utf8(out).unwrap();
        assert!(!text.contains("x-forwarded-for"), "{text}");
    }
}

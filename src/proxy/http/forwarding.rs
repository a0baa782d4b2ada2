//! Forwarding headers: what the server is told about the client, and what a client may not
//! tell it.
//!
//! Headers that claim who the client is or what it asked for (`X-Real-IP`,
//! `X-Forwarded-Proto/Host/Port`, `Forwarded`, `True-Client-IP`, `X-Client-IP`,
//! `CF-Connecting-IP`, …, in any case and with `_` for `-`, since CGI-style servers read
//! `X_Real_IP` as `X-Real-IP`) are removed from a request whose peer is not one of the
//! listener's `trusted_proxies`: a client cannot spoof its address, scheme or host to the
//! servers. From a trusted proxy they are kept, and ours extend theirs. `X-Forwarded-For` is
//! the exception, as in nginx and HAProxy: when the listener writes it, it is a list the peer
//! is appended to, whoever sent the start of it (its last entry is the one we vouch for; we
//! believe the rest only from a trusted proxy, `protect::real_client`); when the listener
//! does not write it, an untrusted client's is removed like the others.
//!
//! Then the listener writes the headers of its `forward_headers` (default the first three):
//! - `X-Forwarded-For`: the list as it came, then the peer (HAProxy's `option forwardfor`,
//!   nginx's `$proxy_add_x_forwarded_for`);
//! - `X-Real-IP`: the client (the peer, or the address a trusted proxy gave: nginx's
//!   `$remote_addr` under `real_ip`);
//! - `X-Forwarded-Proto`, `X-Forwarded-Host`, `X-Forwarded-Port`: the scheme, the host the
//!   request was routed on, the listener's port; a trusted proxy's own values are kept;
//! - `Forwarded` (RFC 7239, HAProxy's `option forwarded`): `for=` the peer, `proto=`,
//!   `host=`, appended to a trusted proxy's list.

use std::fmt::Write as _;
use std::net::IpAddr;

use http::header::{HeaderMap, HeaderName, HeaderValue};

use crate::config::ForwardHeaders;

/// What a forwarding header claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Claim {
    For,
    RealIp,
    Proto,
    Host,
    Port,
    Forwarded,
    /// Another header naming the client (`True-Client-IP`, …): only ever removed.
    Other,
}

/// `name` equals `lower` ignoring ASCII case, `_` standing for `-`.
fn same(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len()
        && name
            .iter()
            .zip(lower)
            .all(|(&a, &b)| a.to_ascii_lowercase() == b || (a == b'_' && b == b'-'))
}

/// The claim a header name makes, if it is a forwarding header (matched by length first:
/// most fields are none and cost one comparison of lengths).
#[inline]
pub fn claim(name: &[u8]) -> Option<Claim> {
    let is = |lower: &[u8]| same(name, lower);
    match name.len() {
        9 if is(b"x-real-ip") => Some(Claim::RealIp),
        9 if is(b"forwarded") => Some(Claim::Forwarded),
        11 if is(b"x-client-ip") => Some(Claim::Other),
        14 if is(b"true-client-ip") => Some(Claim::Other),
        15 if is(b"x-forwarded-for") => Some(Claim::For),
        15 if is(b"x-forwarded-ssl") => Some(Claim::Other),
        16 if is(b"x-forwarded-host") => Some(Claim::Host),
        16 if is(b"x-forwarded-port") => Some(Claim::Port),
        16 if is(b"cf-connecting-ip") || is(b"fastly-client-ip") => Some(Claim::Other),
        17 if is(b"x-forwarded-proto") => Some(Claim::Proto),
        18 if is(b"x-forwarded-scheme") || is(b"x-forwarded-server") => Some(Claim::Other),
        19 if is(b"x-cluster-client-ip") => Some(Claim::Other),
        _ => None,
    }
}

/// One `Forwarded` element (RFC 7239 §4): `for=` the peer (quoted and bracketed when IPv6),
/// `proto=`, and `host=` (quoted when it is not a token, as with a port).
pub fn forwarded_element(out: &mut String, peer: IpAddr, scheme: &str, host: Option<&str>) {
    match peer {
        IpAddr::V4(a) => {
            let _ = write!(out, "for={a}");
        }
        IpAddr::V6(a) => {
            let _ = write!(out, "for=\"[{a}]\"");
        }
    }
    let _ = write!(out, ";proto={scheme}");
    if let Some(h) = host {
        let token = h
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if token {
            let _ = write!(out, ";host={h}");
        } else if !h.contains(['"', '\\']) {
            let _ = write!(out, ";host=\"{h}\"");
        }
    }
}

impl Claim {
    /// The bit of `forward_headers` that writes what the claim says (none for `Other`).
    pub fn bit(self) -> u8 {
        match self {
            Claim::For => ForwardHeaders::X_FORWARDED_FOR,
            Claim::RealIp => ForwardHeaders::X_REAL_IP,
            Claim::Proto => ForwardHeaders::X_FORWARDED_PROTO,
            Claim::Host => ForwardHeaders::X_FORWARDED_HOST,
            Claim::Port => ForwardHeaders::X_FORWARDED_PORT,
            Claim::Forwarded => ForwardHeaders::FORWARDED,
            Claim::Other => 0,
        }
    }
}

/// What one request's forwarding headers depend on.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding<'a> {
    /// The connection's peer (after a PROXY header).
    pub peer: IpAddr,
    /// The client: the peer, or the address a trusted proxy's `X-Forwarded-For` gives.
    pub client: IpAddr,
    /// The peer is one of `trusted_proxies` (and the listener reads no PROXY header).
    pub trusted: bool,
    pub scheme: &'static str,
    /// The host the request was routed on, with its port.
    pub host: Option<&'a str>,
    /// The listener's port.
    pub port: u16,
    pub set: ForwardHeaders,
}

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
static FORWARDED: HeaderName = HeaderName::from_static("forwarded");

/// An address as text, IPv4 written by hand (`Display` for `Ipv4Addr` goes through the
/// formatter's padding machinery, a few hundred instructions a request), into `buf`.
fn ip_text(ip: IpAddr, buf: &mut [u8; 48]) -> &[u8] {
    match ip {
        IpAddr::V4(a) => {
            let mut n = 0;
            for (i, octet) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    buf[n] = b'.';
                    n += 1;
                }
                if octet >= 100 {
                    buf[n] = b'0' + octet / 100;
                    n += 1;
                }
                if octet >= 10 {
                    buf[n] = b'0' + octet / 10 % 10;
                    n += 1;
                }
                buf[n] = b'0' + octet % 10;
                n += 1;
            }
            &buf[..n]
        }
        IpAddr::V6(a) => {
            let mut w = &mut buf[..];
            let _ = std::io::Write::write_fmt(&mut w, format_args!("{a}"));
            let left = w.len();
            &buf[..48 - left]
        }
    }
}

/// What [`Forwarding::passes`] saw of a request's fields, for [`Forwarding::write`].
#[derive(Debug, Default)]
pub struct Seen {
    /// The bits of a trusted proxy's claims that went on as they came.
    kept: u8,
    /// The request has `X-Forwarded-For` lines (joined into ours).
    xff: bool,
}

impl Forwarding<'_> {
    /// Whether the listener writes a header that names the host (`X-Forwarded-Host`,
    /// `Forwarded`).
    pub fn wants_host(&self) -> bool {
        self.set.has(ForwardHeaders::X_FORWARDED_HOST) || self.set.has(ForwardHeaders::FORWARDED)
    }

    /// For a request head written as bytes from a `HeaderMap` (hyper's engine to an HTTP/1.1
    /// server, `h1/client.rs`; the same rules as [`rewrite`] and as the direct path's
    /// `h1/head.rs`): whether the client's field `name` goes on as it came. A forwarding
    /// header does only from a trusted proxy, and not when ours replaces it (`X-Forwarded-For`,
    /// `X-Real-IP`).
    #[inline]
    pub fn passes(&self, name: &[u8], seen: &mut Seen) -> bool {
        let Some(c) = claim(name) else {
            return true;
        };
        let bit = c.bit();
        let rewritten = matches!(c, Claim::For | Claim::RealIp) && self.set.has(bit);
        seen.xff |= c == Claim::For;
        if self.trusted && !rewritten {
            seen.kept |= bit;
            return true;
        }
        false
    }

    /// Our forwarding headers as bytes, after the client's fields that [`Self::passes`] let
    /// through: `X-Forwarded-For` the list as it came (`headers`' lines, from anyone) then the
    /// peer on one line; the others as [`rewrite`] writes them, a trusted proxy's
    /// `X-Forwarded-Proto/Host/Port` kept instead of ours, our `Forwarded` element on a line
    /// after a trusted proxy's (one list, RFC 9110 §5.3).
    pub fn write(&self, out: &mut Vec<u8>, headers: &HeaderMap, seen: &Seen) {
        let set = self.set;
        let mut buf = [0u8; 48];
        // The peer's text, written once when the client is the peer (most requests).
        let mut peer_len = 0;
        if set.has(ForwardHeaders::X_FORWARDED_FOR) {
            out.extend_from_slice(b"x-forwarded-for: ");
            if seen.xff {
                for v in headers.get_all(&X_FORWARDED_FOR) {
                    let v = v.as_bytes().trim_ascii();
                    if !v.is_empty() {
                        out.extend_from_slice(v);
                        out.extend_from_slice(b", ");
                    }
                }
            }
            let peer = ip_text(self.peer, &mut buf);
            peer_len = peer.len();
            out.extend_from_slice(peer);
            out.extend_from_slice(b"\r\n");
        }
        let mut line = |name: &[u8], value: &[u8]| {
            out.extend_from_slice(name);
            out.extend_from_slice(value);
            out.extend_from_slice(b"\r\n");
        };
        if set.has(ForwardHeaders::X_REAL_IP) {
            let client = if peer_len > 0 && self.client == self.peer {
                &buf[..peer_len]
            } else {
                ip_text(self.client, &mut buf)
            };
            line(b"x-real-ip: ", client);
        }
        let mine = |bit: u8| set.has(bit) && seen.kept & bit == 0;
        if mine(ForwardHeaders::X_FORWARDED_PROTO) {
            line(b"x-forwarded-proto: ", self.scheme.as_bytes());
        }
        if mine(ForwardHeaders::X_FORWARDED_HOST)
            && let Some(h) = self.host
        {
            line(b"x-forwarded-host: ", h.as_bytes());
        }
        if mine(ForwardHeaders::X_FORWARDED_PORT) {
            let mut port = [0u8; 5];
            let mut i = port.len();
            let mut n = self.port;
            loop {
                i -= 1;
                port[i] = b'0' + (n % 10) as u8;
                n /= 10;
                if n == 0 {
                    break;
                }
            }
            line(b"x-forwarded-port: ", &port[i..]);
        }
        if set.has(ForwardHeaders::FORWARDED) {
            let mut element = String::new();
            forwarded_element(&mut element, self.peer, self.scheme, self.host);
            line(b"forwarded: ", element.as_bytes());
        }
    }
}

/// Rewrite the forwarding headers of a request (hyper's engine to HTTP/2 servers and for
/// WebSocket upgrades) by the rules of the bytes written to HTTP/1.1 servers: the client's
/// fields that [`Forwarding::passes`] refuses go (in any spelling: a CGI-style server reads
/// `x_forwarded_for` as `X-Forwarded-For`), then what [`Forwarding::write`] writes is added.
/// One rule set for the three writers (this, `write`, and the direct path's `h1/head.rs`).
pub fn rewrite(headers: &mut HeaderMap, f: &Forwarding<'_>) {
    let mut seen = Seen::default();
    let mut refused: Vec<HeaderName> = Vec::new();
    // Most requests carry no claim: looked for first.
    if headers
        .keys()
        .any(|n| claim(n.as_str().as_bytes()).is_some())
    {
        for n in headers.keys() {
            if !f.passes(n.as_str().as_bytes(), &mut seen) {
                refused.push(n.clone());
            }
        }
    }
    // Written before the refused go: `write` reads the client's X-Forwarded-For list.
    let mut out = Vec::with_capacity(160);
    f.write(&mut out, headers, &seen);
    for n in &refused {
        headers.remove(n);
    }
    headers.reserve(4);
    for line in out.split(|&b| b == b'\n') {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii_start());
        let name = match name {
            b"x-forwarded-for" => &X_FORWARDED_FOR,
            b"x-real-ip" => &X_REAL_IP,
            b"x-forwarded-proto" => &X_FORWARDED_PROTO,
            b"x-forwarded-host" => &X_FORWARDED_HOST,
            b"x-forwarded-port" => &X_FORWARDED_PORT,
            b"forwarded" => &FORWARDED,
            _ => continue,
        };
        if let Ok(v) = HeaderValue::from_bytes(value) {
            headers.append(name.clone(), v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_as_text() {
        for a in [
            "0.0.0.0",
            "1.2.3.4",
            "10.100.255.9",
            "127.0.0.1",
            "255.255.255.255",
            "::1",
            "2001:db8::7",
            "::ffff:192.0.2.128",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let ip: IpAddr = a.parse().unwrap();
            let mut buf = [0u8; 48];
            assert_eq!(ip_text(ip, &mut buf), ip.to_string().as_bytes(), "{a}");
        }
    }

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    const SPOOF: &[(&str, &str)] = &[
        ("x-forwarded-for", "10.0.0.1"),
        ("x-forwarded-for", "10.0.0.2"),
        ("x-real-ip", "10.0.0.3"),
        ("x_real_ip", "10.0.0.4"),
        ("x_forwarded_for", "10.0.0.8"),
        ("X_Forwarded_Proto", "gopher"),
        ("true-client-ip", "10.0.0.5"),
        ("forwarded", "for=10.0.0.6"),
        ("x-forwarded-host", "evil.example"),
        ("x-forwarded-proto", "https"),
        ("x-kept", "yes"),
    ];

    #[test]
    fn an_untrusted_client_cannot_claim_anything() {
        let mut h = map(SPOOF);
        let f = Forwarding {
            peer: ip("192.0.2.7"),
            client: ip("192.0.2.7"),
            trusted: false,
            scheme: "http",
            host: Some("shop.example:8080"),
            port: 8080,
            set: ForwardHeaders::default(),
        };
        rewrite(&mut h, &f);
        let mut names: Vec<_> = h.keys().map(|k| k.as_str()).collect();
        names.sort();
        assert_eq!(
            names,
            [
                "x-forwarded-for",
                "x-forwarded-proto",
                "x-kept",
                "x-real-ip"
            ]
        );
        assert_eq!(
            h["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 192.0.2.7",
            "appended to, as nginx and HAProxy do; only its last entry is vouched for"
        );
        assert_eq!(h["x-real-ip"], "192.0.2.7");
        assert_eq!(h["x-forwarded-proto"], "http");
        let mut h = map(SPOOF);
        rewrite(
            &mut h,
            &Forwarding {
                set: ForwardHeaders(ForwardHeaders::X_REAL_IP),
                ..f
            },
        );
        assert!(!h.contains_key("x-forwarded-for"), "not written: removed");
    }

    #[test]
    fn a_trusted_proxy_is_extended() {
        let mut h = map(SPOOF);
        let f = Forwarding {
            peer: ip("10.9.9.9"),
            client: ip("10.0.0.2"),
            trusted: true,
            scheme: "http",
            host: Some("shop.example:8080"),
            port: 8080,
            set: ForwardHeaders(0x3f),
        };
        rewrite(&mut h, &f);
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 10.0.0.2, 10.9.9.9");
        assert_eq!(h["x-real-ip"], "10.0.0.2");
        assert_eq!(h["x-forwarded-proto"], "https", "the proxy's own is kept");
        assert_eq!(
            h["x-forwarded-host"], "evil.example",
            "the proxy's own is kept"
        );
        assert_eq!(h["x-forwarded-port"], "8080");
        // Ours on a line after the proxy's: one list (RFC 9110 §5.3), as on the direct path.
        let forwarded: Vec<_> = h.get_all("forwarded").iter().collect();
        assert_eq!(
            forwarded,
            [
                "for=10.0.0.6",
                "for=10.9.9.9;proto=http;host=\"shop.example:8080\""
            ]
        );
        assert_eq!(h["true-client-ip"], "10.0.0.5");
        assert_eq!(
            h.get_all("x_forwarded_for").iter().count(),
            0,
            "ours replaces the list in every spelling"
        );
        let mut v6 = String::new();
        forwarded_element(&mut v6, ip("2001:db8::1"), "https", Some("a.example"));
        assert_eq!(v6, "for=\"[2001:db8::1]\";proto=https;host=a.example");
    }

    /// The fields as one list per name (several lines are one list, RFC 9110 §5.3).
    fn lists(h: &HeaderMap) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = h
            .keys()
            .map(|k| {
                let vals: Vec<&str> = h.get_all(k).iter().map(|v| v.to_str().unwrap()).collect();
                (k.to_string(), vals.join(", "))
            })
            .collect();
        out.sort();
        out
    }

    #[test]
    fn written_as_bytes_they_say_what_rewrite_says() {
        let all = ForwardHeaders(0x3f);
        let cases = [
            (false, ForwardHeaders::default()),
            (false, all),
            (false, ForwardHeaders(ForwardHeaders::X_REAL_IP)),
            (true, ForwardHeaders::default()),
            (true, all),
        ];
        for (trusted, set) in cases {
            let f = Forwarding {
                peer: ip("10.9.9.9"),
                client: ip(if trusted { "10.0.0.2" } else { "10.9.9.9" }),
                trusted,
                scheme: "https",
                host: Some("shop.example:8080"),
                port: 8080,
                set,
            };
            let src = map(SPOOF);
            let mut rewritten = src.clone();
            rewrite(&mut rewritten, &f);
            let mut seen = Seen::default();
            let mut out = Vec::new();
            for (n, v) in &src {
                if f.passes(n.as_str().as_bytes(), &mut seen) {
                    out.extend_from_slice(n.as_str().as_bytes());
                    out.extend_from_slice(b": ");
                    out.extend_from_slice(v.as_bytes());
                    out.extend_from_slice(b"\r\n");
                }
            }
            f.write(&mut out, &src, &seen);
            let text = String::from_utf8(out).unwrap();
            let mut written = HeaderMap::new();
            for line in text.split_terminator("\r\n") {
                let (n, v) = line.split_once(": ").unwrap();
                written.append(
                    HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    HeaderValue::from_str(v).unwrap(),
                );
            }
            assert_eq!(lists(&written), lists(&rewritten), "{trusted} {set:?}");
        }
    }

    #[test]
    fn claims_are_named_in_any_spelling() {
        for n in [
            "X-Forwarded-For",
            "x_forwarded_for",
            "X_REAL_IP",
            "Forwarded",
        ] {
            assert!(claim(n.as_bytes()).is_some(), "{n}");
        }
        for n in ["x-forwarded", "host", "x-real-ipx", "forwarde"] {
            assert!(claim(n.as_bytes()).is_none(), "{n}");
        }
    }
}

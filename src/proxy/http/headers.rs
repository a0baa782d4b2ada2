//! Header rewriting between client and server: hop-by-hop removal and the forwarding headers.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");
static PROXY_AUTHENTICATION_INFO: HeaderName = HeaderName::from_static("proxy-authentication-info");
static PROXY: HeaderName = HeaderName::from_static("proxy");

/// Remove the headers that describe one hop (RFC 9110 §7.6.1): those `Connection` names,
/// then `Connection`, `Keep-Alive`, `TE`, `Trailer`, `Transfer-Encoding` and `Upgrade`, and
/// the proxy ones: `Proxy-Connection` (the old spelling of `Connection`), the credentials
/// and challenges of proxy authentication, which are meant for the proxy next to the client
/// (`Proxy-Authorization`, `Proxy-Authenticate`, `Proxy-Authentication-Info`, RFC 9110
/// §11.7), and `Proxy`, which is no header of HTTP but the "httpoxy" attack (CGI turns it
/// into `HTTP_PROXY`; nginx and HAProxy advise removing it). Other names that merely start
/// with `proxy` are the application's, end to end, and cross. When `upgrading`, `Upgrade`
/// and `Connection: upgrade` are kept for the next hop.
pub fn remove_hop_by_hop(headers: &mut HeaderMap, upgrading: bool) {
    // Most messages carry none of these names, or only `Connection` (a server's
    // `keep-alive`): one pass over the names present finds them, and only those are removed
    // (a removal hashes its name; without `Connection` no other name can be listed).
    let mut present: [Option<HeaderName>; 11] = Default::default();
    let mut n = 0;
    for name in headers.keys() {
        if n < present.len() && is_hop_by_hop(name) {
            present[n] = Some(name.clone());
            n += 1;
        }
    }
    if n == 0 {
        if upgrading {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        return;
    }
    if present[..n]
        .iter()
        .flatten()
        .any(|p| *p == header::CONNECTION)
    {
        let named: Vec<HeaderName> = headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            // The usual token: `Keep-Alive` goes below when present.
            .filter(|t| !t.eq_ignore_ascii_case("keep-alive"))
            .filter_map(|t| HeaderName::from_bytes(t.as_bytes()).ok())
            .collect();
        for name in named {
            // Host is what the request was routed on: `Connection: Host` must not take it
            // away from the server (issue 15.3).
            if (upgrading && name == header::UPGRADE) || name == header::HOST {
                continue;
            }
            headers.remove(&name);
        }
    }
    for name in present[..n].iter().flatten() {
        if !(upgrading && *name == header::UPGRADE) {
            headers.remove(name);
        }
    }
    if upgrading {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    }
}

/// Whether `name` is one [`remove_hop_by_hop`] removes whatever `Connection` says.
fn is_hop_by_hop(name: &HeaderName) -> bool {
    *name == header::CONNECTION
        || *name == KEEP_ALIVE
        || *name == PROXY_CONNECTION
        || *name == header::PROXY_AUTHENTICATE
        || *name == header::PROXY_AUTHORIZATION
        || *name == PROXY_AUTHENTICATION_INFO
        || *name == PROXY
        || *name == header::TE
        || *name == header::TRAILER
        || *name == header::TRANSFER_ENCODING
        || *name == header::UPGRADE
}

/// Whether a request asks to switch protocols (`Connection: upgrade` with `Upgrade`).
pub fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Whether one `Upgrade` value offers WebSocket (`websocket`, or `websocket/13`) among its
/// protocols. Only a WebSocket upgrade may become a tunnel: an `h2c` offer would open one
/// that skips routing, header rewriting and the access log for every later request on it
/// (issue 15.2), so it is dropped as the hop-by-hop header it is.
pub fn offers_websocket(value: &[u8]) -> bool {
    value.split(|&b| b == b',').any(|p| {
        let p = p.trim_ascii();
        let name = p.split(|&b| b == b'/').next().unwrap_or(p);
        name.eq_ignore_ascii_case(b"websocket")
    })
}

/// Whether a request asks to switch to WebSocket: `Connection: upgrade` and an `Upgrade`
/// that offers it.
pub fn wants_websocket(headers: &HeaderMap) -> bool {
    wants_upgrade(headers)
        && headers
            .get_all(header::UPGRADE)
            .iter()
            .any(|v| offers_websocket(v.as_bytes()))
}

/// Whether a `Host` (or `:authority`) value is a host as RFC 3986 writes one, with an
/// optional port: a registered name (letters, digits, `-._~`, sub-delims, `%`), or an
/// IP literal in brackets; no `/`, `\`, `@`, space or control byte, no `..`, no port over
/// 65535 (nginx refuses those with 400 too). An empty value names no host and is refused as
/// well.
pub fn valid_host(h: &[u8]) -> bool {
    let (host, port) = match h.first() {
        None => return false,
        Some(b'[') => match h.iter().position(|&b| b == b']') {
            Some(end) => {
                let inside = &h[1..end];
                let ok = !inside.is_empty()
                    && inside
                        .iter()
                        .all(|&b| b.is_ascii_hexdigit() || b == b':' || b == b'.');
                if !ok {
                    return false;
                }
                (&h[..=end], &h[end + 1..])
            }
            None => return false,
        },
        Some(_) => match h.iter().rposition(|&b| b == b':') {
            Some(i) => (&h[..i], &h[i..]),
            None => (h, &h[h.len()..]),
        },
    };
    let port_ok = match port.split_first() {
        None => true,
        // A port is 0 to 65535 (`a:99999` names no port; nginx answers 400).
        Some((b':', digits)) => {
            digits.len() <= 5
                && digits.iter().all(u8::is_ascii_digit)
                && digits
                    .iter()
                    .fold(0u32, |n, &d| n * 10 + u32::from(d - b'0'))
                    <= 65535
        }
        Some(_) => false,
    };
    let name_ok = host.first() == Some(&b'[') || (!host.is_empty() && reg_name(host));
    port_ok && name_ok
}

/// The bytes of a registered name (RFC 3986 §3.2.2): letters, digits, `-._~`, the
/// sub-delims and `%`; one table lookup a byte, as this runs for every request.
static REG_NAME: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric();
        b += 1;
    }
    let extra = b"-._~!$&'()*+,;=%";
    let mut i = 0;
    while i < extra.len() {
        t[extra[i] as usize] = true;
        i += 1;
    }
    t
};

/// Whether `host` is a registered name with no `..`.
fn reg_name(host: &[u8]) -> bool {
    let mut dot = false;
    for &b in host {
        if !REG_NAME[b as usize] || (dot && b == b'.') {
            return false;
        }
        dot = b == b'.';
    }
    true
}

/// Whether every transfer coding of these `Transfer-Encoding` values is `chunked`. Another
/// (`gzip, chunked`) would be lost when the body is re-framed for the next hop.
pub fn only_chunked<'v>(values: impl Iterator<Item = &'v [u8]>) -> bool {
    values
        .flat_map(|v| v.split(|&b| b == b','))
        .map(<[u8]>::trim_ascii)
        .filter(|c| !c.is_empty())
        .all(|c| c.eq_ignore_ascii_case(b"chunked"))
}

/// A response with both `Transfer-Encoding` and `Content-Length`: the length is dropped (RFC
/// 9112 §6.3: the coding decides, and the length must not reach the next hop beside
/// another framing).
pub fn drop_length_beside_coding(headers: &mut HeaderMap) {
    if headers.contains_key(header::TRANSFER_ENCODING) {
        headers.remove(header::CONTENT_LENGTH);
    }
}

/// HTTP/2 `cookie` fields, which a client may send one crumb each (RFC 9113 §8.2.3), joined
/// with `; ` into one `Cookie` line for an HTTP/1.1 server.
pub fn join_cookies(headers: &mut HeaderMap) {
    let mut all = headers.get_all(header::COOKIE).iter();
    let (Some(first), Some(_)) = (all.next(), all.next()) else {
        return;
    };
    let mut joined = first.as_bytes().to_vec();
    for v in headers.get_all(header::COOKIE).iter().skip(1) {
        joined.extend_from_slice(b"; ");
        joined.extend_from_slice(v.as_bytes());
    }
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(header::COOKIE, v);
    }
}

/// The value of cookie `name` in the request's `Cookie` headers.
pub fn cookie<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find_map(|v| cookie_in(v, name))
}

/// The value of cookie `name` in one `Cookie` header value.
pub fn cookie_in<'v>(value: &'v str, name: &str) -> Option<&'v str> {
    value
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"'))
}

/// The request's host name without port: the target's authority (HTTP/2's :authority, an
/// absolute-form target), else `Host`.
pub fn request_host<'a>(headers: &'a HeaderMap, uri: &'a http::Uri) -> Option<&'a str> {
    let raw = uri
        .authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))?;
    Some(strip_port(raw))
}

/// A host without its port (`[v6]:port` too).
pub fn strip_port(host: &str) -> &str {
    let (from, to) = host_span(host.as_bytes());
    &host[from..to]
}

/// [`strip_port`] of bytes (the access log's host, taken without a UTF-8 check).
pub fn strip_port_bytes(host: &[u8]) -> &[u8] {
    let (from, to) = host_span(host);
    &host[from..to]
}

/// Where the host of `host:port` or `[v6]:port` lies (bounds at ASCII bytes, so char
/// boundaries too). By bytes: `rsplit_once(':')` goes through the generic pattern search.
fn host_span(b: &[u8]) -> (usize, usize) {
    if b.first() == Some(&b'[') {
        let end = b.iter().position(|&c| c == b']').unwrap_or(b.len());
        return (1, end);
    }
    match b.iter().rposition(|&c| c == b':') {
        Some(i) if b[i + 1..].iter().all(u8::is_ascii_digit) => (0, i),
        _ => (0, b.len()),
    }
}

/// [`remove_hop_by_hop`], keeping the two hop-by-hop headers trailers need end to end:
/// `TE: trailers` (HTTP/1.1 servers send trailers only when asked; gRPC servers require it)
/// and `Trailer` (hyper's HTTP/1.1 encoder sends only the trailer fields it declares).
pub fn strip_hop_by_hop(headers: &mut http::HeaderMap, upgrading: bool) {
    if !headers.keys().any(is_hop_by_hop) {
        // No `TE`, no `Trailer`: nothing to keep.
        return remove_hop_by_hop(headers, upgrading);
    }
    let te_trailers = headers
        .get_all(header::TE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|t| t.trim().eq_ignore_ascii_case("trailers"));
    let trailer: Vec<HeaderValue> = headers.get_all(header::TRAILER).iter().cloned().collect();
    remove_hop_by_hop(headers, upgrading);
    if te_trailers {
        headers.insert(header::TE, HeaderValue::from_static("trailers"));
    }
    for v in trailer {
        headers.append(header::TRAILER, v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn hop_by_hop_headers_and_those_connection_names_go() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret"),
            ("x-secret", "1"),
            ("keep-alive", "timeout=5"),
            ("te", "trailers"),
            ("transfer-encoding", "chunked"),
            ("upgrade", "websocket"),
            ("proxy-authorization", "x"),
            ("proxy-connection", "keep-alive"),
            ("proxy-authenticate", "Basic"),
            ("proxy-authentication-info", "x"),
            ("proxy", "http://evil.example/"),
            ("x-kept", "yes"),
            ("proxy-app-id", "end to end"),
        ]);
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 2, "{h:?}");
        assert_eq!(h["x-kept"], "yes");
        assert_eq!(h["proxy-app-id"], "end to end");
    }

    #[test]
    fn upgrade_survives_when_upgrading() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(wants_upgrade(&h));
        remove_hop_by_hop(&mut h, true);
        assert_eq!(h["upgrade"], "websocket");
        assert_eq!(h["connection"], "upgrade");
    }

    #[test]
    fn connection_cannot_name_host_away() {
        let mut h = map(&[("connection", "Host, x-a"), ("host", "a"), ("x-a", "1")]);
        remove_hop_by_hop(&mut h, false);
        assert_eq!(h.len(), 1);
        assert_eq!(h["host"], "a");
    }

    #[test]
    fn hosts_are_checked_as_rfc_3986_writes_them() {
        for good in [
            "a",
            "shop.example.com",
            "shop.example.com:8080",
            "127.0.0.1:80",
            "[::1]",
            "[2001:db8::1]:443",
            "xn--bcher-kva.example",
            "a:",
            "a:65535",
            "[::1]:0",
        ] {
            assert!(valid_host(good.as_bytes()), "{good}");
        }
        for bad in [
            "",
            "a b",
            "a/b",
            "a\\b",
            "a@b",
            "a..b",
            "[::1",
            "[zz]",
            "a:80x",
            "a:123456",
            "a\tb",
            "[::1]x",
            "a:99999",
            "a:65536",
            "[::1]:70000",
        ] {
            assert!(!valid_host(bad.as_bytes()), "{bad}");
        }
    }

    #[test]
    fn websocket_offers_and_codings() {
        assert!(offers_websocket(b"WebSocket"));
        assert!(offers_websocket(b"h2c, websocket/13"));
        assert!(!offers_websocket(b"h2c"));
        assert!(!offers_websocket(b"notwebsocket"));
        assert!(only_chunked([&b"chunked"[..]].into_iter()));
        assert!(!only_chunked([&b"gzip, chunked"[..]].into_iter()));
        assert!(!only_chunked([&b"gzip"[..], b"chunked"].into_iter()));
        let mut h = map(&[("cookie", "a=1"), ("cookie", "b=2"), ("cookie", "c=3")]);
        join_cookies(&mut h);
        let all: Vec<_> = h.get_all("cookie").iter().collect();
        assert_eq!(all, ["a=1; b=2; c=3"]);
        let mut h = map(&[("content-length", "100"), ("transfer-encoding", "chunked")]);
        drop_length_beside_coding(&mut h);
        assert!(!h.contains_key("content-length"));
    }

    #[test]
    fn cookies_and_hosts_are_read() {
        let h = map(&[
            ("cookie", "a=1; beta=yes"),
            ("host", "Shop.Example.com:8080"),
        ]);
        assert_eq!(cookie(&h, "beta"), Some("yes"));
        assert_eq!(cookie(&h, "b"), None);
        let uri: http::Uri = "/".parse().unwrap();
        assert_eq!(request_host(&h, &uri), Some("Shop.Example.com"));
        assert_eq!(strip_port("[::1]:80"), "::1");
        // As `rsplit_once(':')` and `split(']')` did before they were done by bytes.
        for (host, want) in [
            ("a.example:8080", "a.example"),
            ("a.example", "a.example"),
            ("a.example:", "a.example"),
            ("a:b:80", "a:b"),
            ("a.example:8x", "a.example:8x"),
            ("[::1]", "::1"),
            ("[::1", "::1"),
            ("", ""),
            ("h\u{e9}te:1", "h\u{e9}te"),
        ] {
            assert_eq!(strip_port(host), want, "{host}");
            assert_eq!(strip_port_bytes(host.as_bytes()), want.as_bytes(), "{host}");
        }
    }
}

//! Header rewriting between client and server: hop-by-hop removal and the forwarding headers.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
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
    // Most messages carry none of these names: one pass over the names present costs less
    // than a lookup for each (and without `Connection` no other name can be listed).
    if !headers.keys().any(is_hop_by_hop) {
        if upgrading {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
        }
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|t| HeaderName::from_bytes(t.trim().as_bytes()).ok())
        .collect();
    for name in named {
        if upgrading && name == header::UPGRADE {
            continue;
        }
        headers.remove(&name);
    }
    for name in [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
        &PROXY_AUTHENTICATION_INFO,
        &PROXY,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
    ] {
        headers.remove(name);
    }
    if upgrading {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
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

/// Append the client to `X-Forwarded-For`, and set `X-Real-IP` and `X-Forwarded-Proto`,
/// as nginx's `$proxy_add_x_forwarded_for`, `$remote_addr` and `$scheme`. Several
/// `X-Forwarded-For` lines are one list (RFC 9110 §5.3): they are joined in order, and the
/// client goes last, on one line.
pub fn add_forwarding(headers: &mut HeaderMap, client: IpAddr, scheme: &'static str) {
    let ip = client.to_string();
    if !headers.contains_key(&X_FORWARDED_FOR) {
        // The usual case: both headers carry the one formatted address.
        if let Ok(v) = HeaderValue::try_from(ip) {
            headers.insert(X_FORWARDED_FOR.clone(), v.clone());
            headers.insert(X_REAL_IP.clone(), v);
        }
        headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(scheme));
        return;
    }
    let mut xff: Vec<&str> = headers
        .get_all(&X_FORWARDED_FOR)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .collect();
    xff.push(&ip);
    let xff = xff.join(", ");
    // Both strings are built from a valid header value and an IP address: always valid.
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    if let Ok(v) = HeaderValue::from_str(&ip) {
        headers.insert(X_REAL_IP.clone(), v);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(scheme));
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

/// The request's host name without port, from `Host` or (HTTP/2) the URI authority.
pub fn request_host<'a>(headers: &'a HeaderMap, uri: &'a http::Uri) -> Option<&'a str> {
    let raw = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))?;
    Some(strip_port(raw))
}

/// A host without its port (`[v6]:port` too).
pub fn strip_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        // [v6]:port
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => host,
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
    fn forwarding_headers_append() {
        let mut h = map(&[("x-forwarded-for", "10.0.0.1")]);
        add_forwarding(&mut h, "127.0.0.1".parse().unwrap(), "http");
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-real-ip"], "127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");

        let mut h = map(&[
            ("x-forwarded-for", "10.0.0.1, 10.0.0.2"),
            ("x-forwarded-for", "10.0.0.3"),
            ("x-forwarded-for", " "),
        ]);
        add_forwarding(&mut h, "127.0.0.1".parse().unwrap(), "http");
        let all: Vec<_> = h.get_all("x-forwarded-for").iter().collect();
        assert_eq!(all, ["10.0.0.1, 10.0.0.2, 10.0.0.3, 127.0.0.1"]);
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
    }
}

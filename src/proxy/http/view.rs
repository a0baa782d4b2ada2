//! What routing, hashing and stickiness read of a request, whichever engine parsed it:
//! hyper's `http::Request` or the direct HTTP/1 path's head in its connection buffer.
//! [`RequestView`] is that read-only view; nothing here allocates.

use http::HeaderName;

use super::headers::{cookie_in, strip_port};
use crate::config::HashKey;

/// A request as the router, the hashing pools and sticky sessions see it.
pub trait RequestView {
    fn method(&self) -> &str;
    /// The path, without the query.
    fn path(&self) -> &str;
    /// The path and query (`/a?b=1`).
    fn path_and_query(&self) -> &str;
    /// The host the request names (the target's authority, else `Host`), with its port.
    fn host_with_port(&self) -> Option<&str>;
    /// The values of header `name`, in order.
    fn header_values<'s>(&'s self, name: &HeaderName) -> impl Iterator<Item = &'s [u8]>;

    /// The host without its port.
    fn host(&self) -> Option<&str> {
        self.host_with_port().map(strip_port)
    }

    /// The query, if any.
    fn query(&self) -> Option<&str> {
        self.path_and_query().split_once('?').map(|(_, q)| q)
    }

    /// The value of cookie `name` in the `Cookie` headers.
    fn cookie(&self, name: &str) -> Option<&str> {
        self.header_values(&http::header::COOKIE)
            .filter_map(|v| std::str::from_utf8(v).ok())
            .find_map(|v| cookie_in(v, name))
    }
}

impl<B> RequestView for http::Request<B> {
    fn method(&self) -> &str {
        self.method().as_str()
    }
    fn path(&self) -> &str {
        self.uri().path()
    }
    fn path_and_query(&self) -> &str {
        self.uri()
            .path_and_query()
            .map_or(self.uri().path(), |pq| pq.as_str())
    }
    fn host_with_port(&self) -> Option<&str> {
        // HTTP/2's :authority and an absolute-form target's authority win over `Host` (RFC
        // 9113 §8.3.1, RFC 9112 §3.2.2); a `Host` that differs from :authority was refused.
        self.uri().authority().map(|a| a.as_str()).or_else(|| {
            self.headers()
                .get(http::header::HOST)
                .and_then(|v| v.to_str().ok())
        })
    }
    fn header_values<'s>(&'s self, name: &HeaderName) -> impl Iterator<Item = &'s [u8]> {
        self.headers().get_all(name).iter().map(|v| v.as_bytes())
    }
}

/// The bytes a hashing pool hashes for this request; `None` means the client address.
pub fn hash_key<'r>(key: &HashKey, req: &'r impl RequestView) -> Option<&'r [u8]> {
    match key {
        HashKey::ClientIp => None,
        HashKey::Uri => Some(req.path_and_query().as_bytes()),
        HashKey::Header(name) => req.header_values(name).next(),
        HashKey::Cookie(name) => req.cookie(name).map(str::as_bytes),
        HashKey::Query(name) => req.query().and_then(|q| {
            q.split('&')
                .filter_map(|kv| kv.split_once('=').or(Some((kv, ""))))
                .find(|(k, _)| k == name)
                .map(|(_, v)| v.as_bytes())
        }),
    }
}

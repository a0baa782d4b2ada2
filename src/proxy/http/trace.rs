//! `X-Switchyard-Explain: 1`: a request from a trusted peer may ask for a short trace of how
//! it was balanced, added to its answer as the `X-Switchyard-Explain` response header: the
//! route, the pool, and for each try the server and why (sticky, or the algorithm's own
//! explanation of its pick, taken just before the pick under the same `tried` list), and how
//! the try ended when another followed. Both engines (hyper's `handle` and the direct
//! HTTP/1 path) honour it, and the retry loop (`retry.rs`) writes the tries.
//!
//! Trusted: the listener's `trusted_proxies`. Today a listener names them only with
//! `accept_proxy_protocol`, whose connections from any other peer are closed before a request
//! is read, so every request of such a listener comes from a trusted peer and may ask; a
//! listener without `trusted_proxies` never adds the trace. The front proxy is expected to
//! drop the header from its own untrusted clients, as it does with `X-Forwarded-For`.
//!
//! Costs nothing unless asked: a request that asks from a trusted peer pays one explanation
//! per try (the balancer's peek; no state changes) and a lock around a few strings.

use std::sync::Mutex;

use super::Site;
use super::view::RequestView;

/// The request and response header.
pub const HEADER: http::HeaderName = http::HeaderName::from_static("x-switchyard-explain");

/// The longest trace sent, in bytes (a header, not a report: `GET /api/explain` is that).
const MAX: usize = 1024;

/// The trace of one request, written by the router and the retry loop.
#[derive(Debug, Default)]
pub struct Trace(Mutex<Vec<String>>);

impl Trace {
    /// A trace when `req` asks for one (`X-Switchyard-Explain: 1`) on a listener whose peers
    /// are trusted; its route named first.
    pub fn asked(site: &Site, req: &impl RequestView) -> Option<Trace> {
        // The listener first: on one without trusted peers, no header is even looked for.
        let trusting = site.proxy_in.is_some() || !site.trusted.is_empty();
        if !trusting || !req.header_values(&HEADER).any(|v| v.trim_ascii() == b"1") {
            return None;
        }
        let t = Trace::default();
        let raw = req.path().as_bytes();
        let mut buf = Vec::new();
        let path = super::path::normalise(raw, &mut buf).unwrap_or(raw);
        t.note(match site.router.matched(req, path) {
            Some(i) => format!("route {}", i + 1),
            None => "route default".to_string(),
        });
        Some(t)
    }

    pub fn note(&self, text: impl Into<String>) {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(text.into());
    }

    /// The header's value: the notes joined by `; `, printable ASCII only, at most [`MAX`]
    /// bytes.
    pub fn value(&self) -> String {
        let notes = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut v: String = notes
            .join("; ")
            .chars()
            .map(|c| {
                if c == ' ' || c.is_ascii_graphic() {
                    c
                } else {
                    '?'
                }
            })
            .collect();
        if v.len() > MAX {
            v.truncate(MAX - 3);
            v.push_str("...");
        }
        v
    }

    /// [`Trace::value`] as a header value.
    pub fn header_value(&self) -> http::HeaderValue {
        http::HeaderValue::from_str(&self.value())
            .unwrap_or_else(|_| http::HeaderValue::from_static("?"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_printable_and_bounded() {
        let t = Trace::default();
        t.note("route 1");
        t.note("try 1: s1 \u{2192} \r\n");
        assert_eq!(t.value(), "route 1; try 1: s1 ? ??");
        t.note("x".repeat(2000));
        assert_eq!(t.value().len(), MAX);
        assert!(t.value().ends_with("..."));
        assert_eq!(t.header_value().len(), MAX);
    }
}

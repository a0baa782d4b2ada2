//! What the direct path reads off a request head before routing it: the checks every
//! request must pass (as hyper's engine makes them), and the fields its access-log line
//! keeps.

use super::head::HeadView;
use crate::proxy::http::headers;
use crate::proxy::http::view::RequestView;

/// What a request must be before anything else looks at it (hyper's engine checks the same
/// in `handle`): one valid host, the target's when it is absolute-form, a `Host` on
/// HTTP/1.1 (RFC 9112 §3.2); a method we carry (no `CONNECT`: 405); `*` only with
/// `OPTIONS` (RFC 9112 §3.2.4); a target in origin form (`/…`) or absolute form
/// (`scheme://authority` then nothing, `/…` or `?…`), as hyper's `Uri` takes it: anything
/// else (`admin`, `x/../admin`) would match no route's path and is refused (400); a body
/// framing we can pass on whole (no transfer coding but `chunked`: 501). Each closes the
/// connection.
pub fn own_checks(view: &HeadView<'_>, http10: bool) -> Option<(u16, &'static str)> {
    let head = view.head;
    if head.hosts > 1 {
        return Some((400, "more than one Host"));
    }
    match (view.origin().1, head.host) {
        (Some(a), _) if !headers::valid_host(a.as_bytes()) => {
            return Some((400, "invalid host in the target"));
        }
        (None, Some(h)) if !headers::valid_host(h.get(view.buf)) => {
            return Some((400, "invalid Host"));
        }
        (None, None) if !http10 => return Some((400, "no Host")),
        _ => {}
    }
    if view.method_bytes() == b"CONNECT" {
        return Some((405, "CONNECT is not proxied"));
    }
    if head.target.get(view.buf) == b"*" && view.method_bytes() != b"OPTIONS" {
        return Some((400, "the asterisk-form target is for OPTIONS only"));
    }
    if !known_form(view) {
        return Some((400, "a request target in neither origin nor absolute form"));
    }
    if head.chunked && !headers::only_chunked(view.header_values(&http::header::TRANSFER_ENCODING))
    {
        return Some((501, "a transfer coding other than chunked"));
    }
    None
}

/// The target is `*`, in origin form, or in absolute form with a scheme (RFC 3986 §3.1)
/// and an authority ([`HeadView::origin`] has split off the rest, which starts with `/`
/// or `?` or is empty).
fn known_form(view: &HeadView<'_>) -> bool {
    let Some(t) = view.target() else {
        return false;
    };
    if t.starts_with('/') || t == "*" {
        return true;
    }
    let Some((scheme, _)) = t.split_once("://") else {
        return false;
    };
    let mut s = scheme.bytes();
    s.next().is_some_and(|b| b.is_ascii_alphabetic())
        && s.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        && view.origin().1.is_some_and(|a| !a.is_empty())
}

/// The access log's fields of a request: its first Referer and User-Agent (in one pass
/// over the fields) and its host, into `(referer, user_agent, host)` (cleared first).
pub fn log_fields(
    view: &HeadView<'_>,
    (referer, ua, host): (&mut Vec<u8>, &mut Vec<u8>, &mut Vec<u8>),
) {
    let (buf, req) = (view.buf, view.head);
    referer.clear();
    ua.clear();
    let (mut seen_referer, mut seen_ua) = (false, false);
    for f in &req.fields {
        let name = f.name.get(buf);
        let (seen, into) = match name.len() {
            7 if name.eq_ignore_ascii_case(b"referer") => (&mut seen_referer, &mut *referer),
            10 if name.eq_ignore_ascii_case(b"user-agent") => (&mut seen_ua, &mut *ua),
            _ => continue,
        };
        if !*seen {
            *seen = true;
            into.extend_from_slice(f.value.get(buf));
        }
    }
    host.clear();
    // `view.host()`, without parsing the target when it is not absolute-form.
    let named = match req.target.get(buf).first() {
        Some(b'/') => req.host.map(|h| h.get(buf)).map(|h| {
            match h.is_ascii() || std::str::from_utf8(h).is_ok() {
                true => headers::strip_port_bytes(h),
                false => b"",
            }
        }),
        _ => view.host().map(str::as_bytes),
    };
    if let Some(h) = named {
        host.extend_from_slice(h);
    }
}

#[cfg(test)]
mod tests {
    use super::super::parse::{self, RequestHead};
    use super::*;

    fn check(target: &str) -> Option<(u16, &'static str)> {
        let buf = format!("GET {target} HTTP/1.1\r\nHost: a\r\n\r\n");
        let mut head = RequestHead::default();
        assert_eq!(
            parse::request(buf.as_bytes(), &mut head),
            Ok(true),
            "{target}"
        );
        own_checks(&HeadView::new(buf.as_bytes(), &head), false)
    }

    #[test]
    fn only_origin_and_absolute_form_targets_pass() {
        for ok in [
            "/",
            "/a?b",
            "//x",
            "http://a",
            "http://a/x",
            "http://a?q",
            "h2+x.y-z://a/",
        ] {
            assert_eq!(check(ok), None, "{ok}");
        }
        for bad in [
            "admin",
            "x/../admin",
            "?q",
            "http:/a",
            "1http://a/",
            "ht/tp://a/",
            "://a/",
            "http:///x",
            "a:80",
        ] {
            assert_eq!(check(bad).map(|c| c.0), Some(400), "{bad}");
        }
    }
}

//! What the direct path reads off a request head before routing it: the checks every
//! request must pass (as hyper's engine makes them), and the fields its access-log line
//! keeps.

use super::head::HeadView;
use crate::proxy::http::headers;
use crate::proxy::http::view::RequestView;

/// What a request must be before anything else looks at it (hyper's engine checks the same
/// in `handle`): one valid host, the target's when it is absolute-form, a `Host` on
/// HTTP/1.1 (RFC 9112 §3.2); a method we carry (no `CONNECT`: 405); `*` only with
/// `OPTIONS` (RFC 9112 §3.2.4); a body framing we can
/// pass on whole (no transfer coding but `chunked`: 501). Each closes the connection.
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
    if head.chunked && !headers::only_chunked(view.header_values(&http::header::TRANSFER_ENCODING))
    {
        return Some((501, "a transfer coding other than chunked"));
    }
    None
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

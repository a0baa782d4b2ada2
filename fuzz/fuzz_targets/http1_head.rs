//! The direct path's HTTP/1 head handling: any bytes parse as a request head, "need more",
//! or an error, never a panic. A parsed head that passes the connection's own checks
//! (`own_checks`), written for the server (`request_out`, under settings taken from the
//! first byte), is one complete head in strict syntax (CRLF only) of exactly its length, with
//! at most one Host and, unless the peer is trusted, no forwarding header but the ones the
//! listener writes, each once. The path the routes see (`path::normalise`) has no empty, `.`
//! or `..` segment. Response heads parse or fail.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::config::ForwardHeaders;
use switchyard::proxy::http::forwarding::{Claim, claim};
use switchyard::proxy::http::h1::checks::own_checks;
use switchyard::proxy::http::h1::head::{Forwarding, HeadView, request_out};
use switchyard::proxy::http::h1::parse::{self, RequestHead, ResponseHead};
use switchyard::proxy::http::path;
use switchyard::proxy::http::view::RequestView;

fuzz_target!(|data: &[u8]| {
    let Some((&flags, buf)) = data.split_first() else {
        return;
    };
    let mut resp = ResponseHead::default();
    if let Ok(true) = parse::response(buf, &mut resp) {
        assert!(resp.len <= buf.len());
    }
    let mut head = RequestHead::default();
    let Ok(true) = parse::request(buf, &mut head) else {
        return;
    };
    assert!(head.len <= buf.len());
    let view = HeadView::new(buf, &head);
    // What the connection refuses before anything is written for a server (two Hosts, a
    // bad one, CONNECT, a coding other than chunked) goes no further here either.
    if own_checks(&view, head.minor == 0).is_some() {
        return;
    }
    let trusted = flags & 1 != 0;
    let set = ForwardHeaders((flags >> 2) & 0x3f);
    let fw = Forwarding {
        client_ip: "192.0.2.1",
        real_ip: "198.51.100.2",
        trusted,
        set,
        scheme: "http",
        host: view.host_with_port(),
        port: 8080,
        host_from_server: flags & 2 != 0,
        framing: head.framing(),
        upgrading: false,
    };
    let mut out = Vec::new();
    request_out(&mut out, &view, &fw);
    out.extend_from_slice(b"\r\n");
    let mut fields = [httparse::EMPTY_HEADER; 1024];
    let mut again = httparse::Request::new(&mut fields);
    match again.parse(&out) {
        Ok(httparse::Status::Complete(n)) => assert_eq!(n, out.len(), "one head, all of it"),
        other => panic!("the head for the server does not parse: {other:?}"),
    }
    assert!(
        !out.windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r'),
        "bare LF in the head for the server"
    );
    let hosts = again
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("host"))
        .count();
    assert!(hosts <= 1, "{hosts} Host lines");
    if !trusted {
        let mut seen = [0u8; 7];
        for h in again.headers.iter() {
            if let Some(c) = claim(h.name.as_bytes()) {
                assert_ne!(c, Claim::Other, "{} went on from an untrusted peer", h.name);
                seen[c as usize] += 1;
                assert_eq!(seen[c as usize], 1, "{} twice", h.name);
            }
        }
    }
    let target = view.path().as_bytes();
    let mut norm = Vec::new();
    if target.first() == Some(&b'/')
        && let Ok(n) = path::normalise(target, &mut norm)
    {
        assert_eq!(n.first(), Some(&b'/'));
        for segment in n[1..].split(|&b| b == b'/').rev().skip(1) {
            assert!(
                !matches!(segment, b"" | b"." | b".."),
                "segment {segment:?} in {n:?}"
            );
        }
    }
});

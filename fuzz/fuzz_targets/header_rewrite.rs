//! Header rewriting on hyper's engine: any fields (one `name: value` a line, the first byte
//! choosing the settings) go through the forwarding headers (`forwarding::rewrite`), the
//! hop-by-hop removal, the cookie join and the length drop without a panic. After them: from
//! an untrusted peer no forwarding header but the ones the listener writes, each once;
//! X-Forwarded-For one line ending with the peer; `Connection` never takes
//! Host away; one Cookie line at most; no Content-Length beside Transfer-Encoding.
#![no_main]

use http::header::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use switchyard::config::ForwardHeaders;
use switchyard::proxy::http::forwarding::{Claim, Forwarding, claim, rewrite};
use switchyard::proxy::http::headers::{drop_length_beside_coding, join_cookies, remove_hop_by_hop};

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else {
        return;
    };
    let mut h = HeaderMap::new();
    for line in rest.split(|&b| b == b'\n') {
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(&line[..colon]),
            HeaderValue::from_bytes(line[colon + 1..].trim_ascii()),
        ) else {
            continue;
        };
        h.append(name, value);
    }
    let had_host = h.contains_key(http::header::HOST);
    let trusted = flags & 1 != 0;
    let set = ForwardHeaders((flags >> 2) & 0x3f);
    remove_hop_by_hop(&mut h, flags & 2 != 0);
    assert_eq!(h.contains_key(http::header::HOST), had_host, "Connection took Host away");
    join_cookies(&mut h);
    assert!(h.get_all(http::header::COOKIE).iter().count() <= 1);
    drop_length_beside_coding(&mut h);
    assert!(
        !(h.contains_key(http::header::TRANSFER_ENCODING)
            && h.contains_key(http::header::CONTENT_LENGTH))
    );
    let peer = "192.0.2.1".parse().unwrap();
    let host = h
        .get(http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let f = Forwarding {
        peer,
        client: "198.51.100.2".parse().unwrap(),
        trusted,
        scheme: "https",
        host: host.as_deref(),
        port: 443,
        set,
    };
    rewrite(&mut h, &f);
    let xff: Vec<&HeaderValue> = h.get_all("x-forwarded-for").iter().collect();
    if set.has(ForwardHeaders::X_FORWARDED_FOR) {
        assert_eq!(xff.len(), 1);
        let v = xff[0].as_bytes();
        assert!(v.ends_with(b"192.0.2.1"), "{v:?}");
    }
    if !trusted {
        for (name, _) in h.iter() {
            match claim(name.as_str().as_bytes()) {
                None => {}
                Some(Claim::Other) => panic!("{name} went on from an untrusted peer"),
                Some(_) => assert_eq!(h.get_all(name).iter().count(), 1, "{name}"),
            }
        }
    }
});

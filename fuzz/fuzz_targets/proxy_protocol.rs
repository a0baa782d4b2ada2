//! The PROXY protocol parser: any bytes give a header, "need more", or an error, never a
//! panic; a header never claims more bytes than it was given, and a parsed header encoded
//! again (v1 and v2) parses back to the same addresses.
#![no_main]

use libfuzzer_sys::fuzz_target;
use switchyard::config::ProxyVersion;
use switchyard::proxy::proxy_protocol::{Header, encode, parse};

fuzz_target!(|data: &[u8]| {
    if let Ok(Some((header, used))) = parse(data) {
        assert!(used <= data.len());
        if let Header::Proxied {
            source,
            destination,
        } = header
        {
            for version in [ProxyVersion::V1, ProxyVersion::V2] {
                let again = encode(version, source, destination);
                let (back, n) = parse(&again).unwrap().unwrap();
                assert_eq!(n, again.len());
                assert_eq!(back, header, "{version:?}");
            }
        }
    }
});

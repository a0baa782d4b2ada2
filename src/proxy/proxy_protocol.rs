//! The PROXY protocol (v1 text, v2 binary): the header an L4 hop puts in front of a
//! connection so the next hop learns the original client and destination addresses.
//!
//! [`encode`] writes the header the TCP listener sends to a server (`proxy_protocol = "v1"`
//! or `"v2"`). [`parse`] reads one from the first bytes a client sent (a listener with
//! `accept_proxy_protocol = true`); [`read_header`] drives it over a socket and returns the
//! bytes that followed the header, which belong to the payload; [`read_header_exact`] reads
//! exactly the header and leaves the payload in the socket (HTTP and HTTPS listeners). The parser is written for
//! hostile input: it checks every length before slicing, caps the header size, and returns
//! an error instead of panicking. Spec: <https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use crate::config::ProxyVersion;

/// The 12-byte signature that starts a v2 header.
pub const V2_SIGNATURE: [u8; 12] = *b"\r\n\r\n\0\r\nQUIT\n";
/// The longest v1 line, CRLF included (spec §2.1).
pub const V1_MAX: usize = 107;
/// The largest v2 header we accept (16 fixed bytes + addresses + TLVs). The spec allows up to
/// 64 KiB of TLVs; real senders (HAProxy, AWS NLB, Envoy) stay far below this.
pub const V2_MAX: usize = 16 + 4096;

/// What a PROXY header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// A proxied connection: the original client (`source`) and what it connected to.
    Proxied {
        source: SocketAddr,
        destination: SocketAddr,
    },
    /// v2 `LOCAL` (a health check from the proxy itself) or v1 `UNKNOWN`: use the peer's
    /// own address.
    Local,
}

/// Why a header was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("not a PROXY protocol header")]
    NotProxy,
    #[error("malformed PROXY v1 header: {0}")]
    V1(&'static str),
    #[error("malformed PROXY v2 header: {0}")]
    V2(&'static str),
    #[error("PROXY header longer than {0} bytes")]
    TooLong(usize),
}

/// The header for a connection from `source` to `destination`, in `version`.
///
/// Mixed families (an IPv4 client on an IPv6 listener) are written as IPv6 with the IPv4
/// address mapped, as HAProxy does; the spec requires both addresses in one family.
pub fn encode(version: ProxyVersion, source: SocketAddr, destination: SocketAddr) -> Vec<u8> {
    let (source, destination) = same_family(source, destination);
    match version {
        ProxyVersion::V1 => {
            let fam = if source.is_ipv4() { "TCP4" } else { "TCP6" };
            format!(
                "PROXY {fam} {} {} {} {}\r\n",
                source.ip(),
                destination.ip(),
                source.port(),
                destination.port()
            )
            .into_bytes()
        }
        ProxyVersion::V2 => {
            let mut out = Vec::with_capacity(52);
            out.extend_from_slice(&V2_SIGNATURE);
            out.push(0x21); // version 2, command PROXY
            match (source.ip(), destination.ip()) {
                (IpAddr::V4(s), IpAddr::V4(d)) => {
                    out.push(0x11); // AF_INET, STREAM
                    out.extend_from_slice(&12u16.to_be_bytes());
                    out.extend_from_slice(&s.octets());
                    out.extend_from_slice(&d.octets());
                }
                (s, d) => {
                    out.push(0x21); // AF_INET6, STREAM
                    out.extend_from_slice(&36u16.to_be_bytes());
                    out.extend_from_slice(&v6(s).octets());
                    out.extend_from_slice(&v6(d).octets());
                }
            }
            out.extend_from_slice(&source.port().to_be_bytes());
            out.extend_from_slice(&destination.port().to_be_bytes());
            out
        }
    }
}

fn v6(ip: IpAddr) -> Ipv6Addr {
    match ip {
        IpAddr::V4(a) => a.to_ipv6_mapped(),
        IpAddr::V6(a) => a,
    }
}

fn same_family(a: SocketAddr, b: SocketAddr) -> (SocketAddr, SocketAddr) {
    if a.is_ipv4() == b.is_ipv4() {
        (a, b)
    } else {
        (
            SocketAddr::new(IpAddr::V6(v6(a.ip())), a.port()),
            SocketAddr::new(IpAddr::V6(v6(b.ip())), b.port()),
        )
    }
}

/// Parse a header at the start of `buf`.
///
/// `Ok(None)`: `buf` is a valid beginning but too short; read more. `Ok(Some((h, n)))`:
/// the header took the first `n` bytes. `Err`: not a valid header (close the connection).
pub fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, ParseError> {
    const V1_PREFIX: &[u8] = b"PROXY ";
    if buf.len() < V1_PREFIX.len().min(V2_SIGNATURE.len()) {
        // Too short to tell; but it must already agree with one of the two prefixes.
        if V1_PREFIX.starts_with(buf) || V2_SIGNATURE.starts_with(buf) {
            return Ok(None);
        }
        return Err(ParseError::NotProxy);
    }
    if buf.starts_with(V1_PREFIX) {
        return parse_v1(buf);
    }
    let n = buf.len().min(V2_SIGNATURE.len());
    if buf[..n] != V2_SIGNATURE[..n] {
        return Err(ParseError::NotProxy);
    }
    if buf.len() < 16 {
        return Ok(None);
    }
    parse_v2(buf)
}

fn parse_v1(buf: &[u8]) -> Result<Option<(Header, usize)>, ParseError> {
    let window = &buf[..buf.len().min(V1_MAX)];
    let Some(end) = window.windows(2).position(|w| w == b"\r\n") else {
        return if buf.len() >= V1_MAX {
            Err(ParseError::TooLong(V1_MAX))
        } else if window.contains(&b'\n') {
            Err(ParseError::V1("line ends without CR LF"))
        } else {
            Ok(None)
        };
    };
    let line = std::str::from_utf8(&buf[6..end]).map_err(|_| ParseError::V1("not ASCII"))?;
    let parts: Vec<&str> = line.split(' ').collect();
    let header = match parts.first().copied() {
        Some("UNKNOWN") => Header::Local,
        Some(fam @ ("TCP4" | "TCP6")) => {
            if parts.len() != 5 {
                return Err(ParseError::V1("expected 4 fields after the family"));
            }
            let want_v4 = fam == "TCP4";
            let ip = |s: &str| -> Result<IpAddr, ParseError> {
                let ip: IpAddr = if want_v4 {
                    s.parse::<Ipv4Addr>().map(IpAddr::V4)
                } else {
                    s.parse::<Ipv6Addr>().map(IpAddr::V6)
                }
                .map_err(|_| ParseError::V1("bad address"))?;
                Ok(ip)
            };
            let port = |s: &str| -> Result<u16, ParseError> {
                // No sign, no leading zeros (spec), digits only.
                if s.is_empty()
                    || s.len() > 5
                    || !s.bytes().all(|b| b.is_ascii_digit())
                    || (s.len() > 1 && s.starts_with('0'))
                {
                    return Err(ParseError::V1("bad port"));
                }
                s.parse().map_err(|_| ParseError::V1("bad port"))
            };
            Header::Proxied {
                source: SocketAddr::new(ip(parts[1])?, port(parts[3])?),
                destination: SocketAddr::new(ip(parts[2])?, port(parts[4])?),
            }
        }
        _ => return Err(ParseError::V1("unknown family")),
    };
    Ok(Some((header, end + 2)))
}

fn parse_v2(buf: &[u8]) -> Result<Option<(Header, usize)>, ParseError> {
    let ver_cmd = buf[12];
    let fam = buf[13];
    let len = usize::from(u16::from_be_bytes([buf[14], buf[15]]));
    if ver_cmd >> 4 != 2 {
        return Err(ParseError::V2("version is not 2"));
    }
    let total = 16 + len;
    if total > V2_MAX {
        return Err(ParseError::TooLong(V2_MAX));
    }
    if buf.len() < total {
        return Ok(None);
    }
    let body = &buf[16..total];
    let header = match ver_cmd & 0x0f {
        0x0 => Header::Local,
        0x1 => match fam {
            // AF_INET with STREAM or DGRAM.
            0x11 | 0x12 => {
                if body.len() < 12 {
                    return Err(ParseError::V2("IPv4 addresses cut short"));
                }
                let ip = |o: usize| {
                    IpAddr::V4(Ipv4Addr::new(
                        body[o],
                        body[o + 1],
                        body[o + 2],
                        body[o + 3],
                    ))
                };
                let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
                Header::Proxied {
                    source: SocketAddr::new(ip(0), port(8)),
                    destination: SocketAddr::new(ip(4), port(10)),
                }
            }
            0x21 | 0x22 => {
                if body.len() < 36 {
                    return Err(ParseError::V2("IPv6 addresses cut short"));
                }
                let ip = |o: usize| {
                    let mut a = [0u8; 16];
                    a.copy_from_slice(&body[o..o + 16]);
                    IpAddr::V6(Ipv6Addr::from(a))
                };
                let port = |o: usize| u16::from_be_bytes([body[o], body[o + 1]]);
                Header::Proxied {
                    source: SocketAddr::new(ip(0), port(32)),
                    destination: SocketAddr::new(ip(16), port(34)),
                }
            }
            // UNSPEC or AF_UNIX: no usable IP address; the peer's own address stands.
            0x00 | 0x31 | 0x32 => Header::Local,
            _ => return Err(ParseError::V2("unknown address family or transport")),
        },
        _ => return Err(ParseError::V2("unknown command")),
    };
    Ok(Some((header, total)))
}

/// Why [`read_header`] gave up.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Parse(#[from] ParseError),
    #[error("no complete PROXY header within {0:?}")]
    Timeout(Duration),
    #[error("connection closed before a complete PROXY header")]
    Closed,
    #[error("read failed: {0}")]
    Io(#[from] std::io::Error),
}

/// Read one PROXY header from `stream` within `limit`. Returns the header and the bytes read
/// past it (the start of the payload, to be passed on).
pub async fn read_header(
    stream: &mut TcpStream,
    limit: Duration,
) -> Result<(Header, Vec<u8>), ReadError> {
    let work = async {
        let mut buf = Vec::with_capacity(256);
        let mut chunk = [0u8; 512];
        loop {
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Err(ReadError::Closed);
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some((h, used)) = parse(&buf)? {
                return Ok((h, buf.split_off(used)));
            }
            if buf.len() > V2_MAX {
                return Err(ParseError::TooLong(V2_MAX).into());
            }
        }
    };
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| ReadError::Timeout(limit))?
}

/// Read one PROXY header from `stream` within `limit`, taking no byte past it: what follows
/// stays in the socket for whoever reads next (hyper, or a TLS handshake), so no wrapper
/// stream is needed to give early bytes back. Bytes are peeked first, and only those known
/// to belong to the header are consumed: an incomplete parse means everything seen so far is
/// header, and a complete one says exactly how long it is.
pub async fn read_header_exact(
    stream: &mut TcpStream,
    limit: Duration,
) -> Result<Header, ReadError> {
    let work = async {
        // The header bytes consumed so far (each a prefix of a valid header).
        let mut taken: Vec<u8> = Vec::with_capacity(64);
        let mut peeked = [0u8; 512];
        loop {
            // Waits for bytes beyond those taken: peeking never spins on old data.
            let n = stream.peek(&mut peeked).await?;
            if n == 0 {
                return Err(ReadError::Closed);
            }
            let seen = [taken.as_slice(), &peeked[..n]].concat();
            match parse(&seen)? {
                Some((header, used)) => {
                    let rest = used - taken.len();
                    stream.read_exact(&mut peeked[..rest]).await?;
                    return Ok(header);
                }
                None if seen.len() > V2_MAX => return Err(ParseError::TooLong(V2_MAX).into()),
                None => {
                    stream.read_exact(&mut peeked[..n]).await?;
                    taken.extend_from_slice(&peeked[..n]);
                }
            }
        }
    };
    tokio::time::timeout(limit, work)
        .await
        .map_err(|_| ReadError::Timeout(limit))?
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    fn sa(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    #[test]
    fn v1_round_trip_and_exact_bytes() {
        let h = encode(
            ProxyVersion::V1,
            sa("192.0.2.1:56324"),
            sa("198.51.100.2:443"),
        );
        assert_eq!(h, b"PROXY TCP4 192.0.2.1 198.51.100.2 56324 443\r\n");
        let mut with_payload = h.clone();
        with_payload.extend_from_slice(b"GET /");
        let (got, used) = parse(&with_payload).unwrap().unwrap();
        assert_eq!(used, h.len());
        assert_eq!(
            got,
            Header::Proxied {
                source: sa("192.0.2.1:56324"),
                destination: sa("198.51.100.2:443")
            }
        );
        let h6 = encode(ProxyVersion::V1, sa("[2001:db8::1]:1"), sa("[::1]:2"));
        assert_eq!(h6, b"PROXY TCP6 2001:db8::1 ::1 1 2\r\n");
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n").unwrap(),
            Some((Header::Local, 15))
        );
    }

    #[test]
    fn v2_round_trip_and_exact_bytes() {
        let h = encode(
            ProxyVersion::V2,
            sa("192.0.2.1:258"),
            sa("198.51.100.2:443"),
        );
        let mut want = V2_SIGNATURE.to_vec();
        want.extend_from_slice(&[
            0x21, 0x11, 0, 12, 192, 0, 2, 1, 198, 51, 100, 2, 1, 2, 1, 187,
        ]);
        assert_eq!(h, want);
        let (got, used) = parse(&h).unwrap().unwrap();
        assert_eq!(used, 28);
        assert_eq!(
            got,
            Header::Proxied {
                source: sa("192.0.2.1:258"),
                destination: sa("198.51.100.2:443")
            }
        );
        let mixed = encode(ProxyVersion::V2, sa("192.0.2.1:1"), sa("[2001:db8::2]:2"));
        assert_eq!(mixed.len(), 16 + 36);
        let (got, _) = parse(&mixed).unwrap().unwrap();
        assert_eq!(
            got,
            Header::Proxied {
                source: sa("[::ffff:192.0.2.1]:1"),
                destination: sa("[2001:db8::2]:2")
            }
        );
    }

    #[test]
    fn v2_local_and_tlvs() {
        let mut h = V2_SIGNATURE.to_vec();
        h.extend_from_slice(&[0x20, 0x00, 0, 0]);
        assert_eq!(parse(&h).unwrap(), Some((Header::Local, 16)));
        // PROXY over IPv4 with a 7-byte TLV after the addresses: skipped.
        let mut h = encode(ProxyVersion::V2, sa("10.0.0.1:1"), sa("10.0.0.2:2"));
        h[15] = 12 + 7;
        h.extend_from_slice(&[0x04, 0, 4, b'a', b'b', b'c', b'd']);
        let (got, used) = parse(&h).unwrap().unwrap();
        assert_eq!(used, h.len());
        assert!(matches!(got, Header::Proxied { .. }));
    }

    #[test]
    fn partial_headers_ask_for_more() {
        for h in [
            encode(ProxyVersion::V1, sa("10.0.0.1:1"), sa("10.0.0.2:2")),
            encode(ProxyVersion::V2, sa("[::1]:1"), sa("[::2]:2")),
        ] {
            for cut in 0..h.len() {
                assert_eq!(parse(&h[..cut]), Ok(None), "cut at {cut}");
            }
        }
    }

    #[test]
    fn malformed_headers_are_refused() {
        let bad: &[&[u8]] = &[
            b"GET / HTTP/1.1\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n",
            b"PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 ::1 ::2 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n",
            b"\r\n\r\n\0\r\nQUIT\n\x31\x11\0\x0c",
            b"\r\n\r\n\0\r\nQUIT\n\x21\x11\0\x04abcd",
            b"\r\n\r\n\0\r\nQUIT\n\x22\x11\0\x0c123456789012",
            b"\r\n\r\n\0\r\nQUIT\n\x21\x11\xff\xff",
        ];
        for b in bad {
            assert!(
                parse(b).is_err(),
                "{:?} accepted",
                String::from_utf8_lossy(b)
            );
        }
        let long = [b"PROXY TCP4 ".as_slice(), &[b'1'; 120]].concat();
        assert_eq!(parse(&long), Err(ParseError::TooLong(V1_MAX)));
    }

    /// `read_header_exact` takes the header, however it is split, and leaves the payload in
    /// the socket; a payload without a header is refused.
    #[tokio::test]
    async fn exact_read_leaves_the_payload_in_the_socket() {
        use tokio::io::AsyncWriteExt;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        for (header, split) in [
            (
                encode(ProxyVersion::V1, sa("192.0.2.1:1"), sa("192.0.2.2:2")),
                7,
            ),
            (
                encode(ProxyVersion::V2, sa("[2001:db8::1]:1"), sa("[::1]:2")),
                20,
            ),
        ] {
            let mut client = TcpStream::connect(addr).await.unwrap();
            let (mut server, _) = listener.accept().await.unwrap();
            client.write_all(&header[..split]).await.unwrap();
            let reader = tokio::spawn(async move {
                let h = read_header_exact(&mut server, Duration::from_secs(5)).await;
                (h, server)
            });
            tokio::task::yield_now().await;
            let mut rest = header[split..].to_vec();
            rest.extend_from_slice(b"GET / HTTP/1.1\r\n");
            client.write_all(&rest).await.unwrap();
            let (h, mut server) = reader.await.unwrap();
            assert!(matches!(h.unwrap(), Header::Proxied { .. }));
            let mut payload = [0u8; 16];
            server.read_exact(&mut payload).await.unwrap();
            assert_eq!(&payload, b"GET / HTTP/1.1\r\n");
        }
        let mut client = TcpStream::connect(addr).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        client.write_all(b"GET / HTTP/1.1\r\n").await.unwrap();
        assert!(matches!(
            read_header_exact(&mut server, Duration::from_secs(5)).await,
            Err(ReadError::Parse(ParseError::NotProxy))
        ));
    }

    /// Fuzz-style: random and mutated input never panics, and anything accepted reports a
    /// length inside the input.
    #[test]
    fn random_input_never_panics() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(4);
        let seeds = [
            encode(ProxyVersion::V1, sa("10.0.0.1:1"), sa("10.0.0.2:2")),
            encode(ProxyVersion::V2, sa("[::1]:1"), sa("[::2]:2")),
            encode(ProxyVersion::V2, sa("10.0.0.1:1"), sa("10.0.0.2:2")),
        ];
        for i in 0..200_000 {
            let mut b = seeds[i % seeds.len()].clone();
            match rng.random_range(0..4) {
                0 => {
                    let len = rng.random_range(0..80);
                    b = (0..len).map(|_| rng.random()).collect();
                }
                1 => {
                    let at = rng.random_range(0..b.len());
                    b[at] = rng.random();
                }
                2 => b.truncate(rng.random_range(0..b.len())),
                _ => {
                    let at = rng.random_range(0..b.len());
                    b.insert(at, rng.random());
                }
            }
            if let Ok(Some((_, used))) = parse(&b) {
                assert!(used <= b.len());
            }
        }
    }
}

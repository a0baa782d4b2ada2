//! HTTP/1.x heads read with `httparse` (the parser hyper uses), and the message-length rules
//! of RFC 9112 §6 applied to them, as strictly as hyper applies them or more.
//!
//! A head is kept as byte ranges into the connection's read buffer ([`Span`]), so reading
//! one allocates nothing; the ranges are valid until the buffer is consumed past the head.

use std::mem::MaybeUninit;
use std::ops::Range;

/// The largest request or response head we read (HAProxy's `tune.bufsize` is 16 KiB, nginx's
/// `large_client_header_buffers` 4 × 8 KiB; hyper takes up to ~400 KiB).
pub const MAX_HEAD: usize = 64 * 1024;
/// The most header lines in a head (hyper's limit too).
pub const MAX_HEADERS: usize = 100;

/// A byte range of the buffer a head was read from.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Span {
    pub start: u32,
    pub end: u32,
}

impl Span {
    fn of(base: &[u8], part: &[u8]) -> Span {
        let start = part.as_ptr() as usize - base.as_ptr() as usize;
        Span {
            start: start as u32,
            end: (start + part.len()) as u32,
        }
    }

    pub fn range(self) -> Range<usize> {
        self.start as usize..self.end as usize
    }

    pub fn get(self, buf: &[u8]) -> &[u8] {
        &buf[self.range()]
    }

    pub fn is_empty(self) -> bool {
        self.start == self.end
    }
}

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body.
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// Until the server closes (responses only).
    Close,
}

/// One header line.
#[derive(Debug, Clone, Copy, Default)]
pub struct Field {
    pub name: Span,
    pub value: Span,
}

/// Why a head cannot be used, and the status that says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// 400: malformed, or ambiguous framing.
    Bad(&'static str),
    /// 431: the head or its number of lines is over the limit.
    TooLarge,
    /// 414: the request line alone is over the limit.
    UriTooLong,
}

impl HeadError {
    pub fn status(self) -> u16 {
        match self {
            HeadError::Bad(_) => 400,
            HeadError::TooLarge => 431,
            HeadError::UriTooLong => 414,
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            HeadError::Bad(why) => why,
            HeadError::TooLarge => "request header fields too large",
            HeadError::UriTooLong => "request target too long",
        }
    }
}

/// A parsed request head.
#[derive(Debug, Default)]
pub struct RequestHead {
    /// Bytes of the head, the empty line included.
    pub len: usize,
    pub method: Span,
    pub target: Span,
    /// `HTTP/1.{minor}`.
    pub minor: u8,
    pub fields: Vec<Field>,
    pub framing_length: Option<u64>,
    pub chunked: bool,
    pub keep_alive: bool,
    pub expect_continue: bool,
    /// `Connection: upgrade` with an `Upgrade` field.
    pub upgrade: bool,
    /// `TE` names `trailers`.
    pub te_trailers: bool,
    pub host: Option<Span>,
    /// More than one `Host` line.
    pub hosts: u8,
    /// The tokens of `Connection` (the fields they name are hop-by-hop).
    pub connection_tokens: Vec<Span>,
}

impl RequestHead {
    pub fn framing(&self) -> Framing {
        if self.chunked {
            Framing::Chunked
        } else {
            match self.framing_length {
                None | Some(0) => Framing::Empty,
                Some(n) => Framing::Length(n),
            }
        }
    }
}

/// A parsed response head.
#[derive(Debug, Default)]
pub struct ResponseHead {
    pub len: usize,
    pub status: u16,
    pub reason: Span,
    pub minor: u8,
    pub fields: Vec<Field>,
    pub content_length: Option<u64>,
    pub chunked: bool,
    /// A `Transfer-Encoding` that does not end in chunked: the body runs to the close.
    pub other_coding: bool,
    pub keep_alive: bool,
    pub connection_tokens: Vec<Span>,
}

impl ResponseHead {
    /// The body's delimitation for a response to a request with `method_head`.
    pub fn framing(&self, method_head: bool) -> Framing {
        if method_head || self.status < 200 || self.status == 204 || self.status == 304 {
            Framing::Empty
        } else if self.chunked {
            Framing::Chunked
        } else if self.other_coding {
            Framing::Close
        } else {
            match self.content_length {
                Some(0) => Framing::Empty,
                Some(n) => Framing::Length(n),
                None => Framing::Close,
            }
        }
    }
}

/// A decimal length as RFC 9110 §8.6 writes it: digits only, no sign, no overflow.
pub fn digits(v: &[u8]) -> Option<u64> {
    if v.is_empty() || v.len() > 19 {
        return None;
    }
    let mut n: u64 = 0;
    for &b in v {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
    }
    Some(n)
}

/// Comma-separated tokens of a field value, trimmed, as spans of `buf`.
fn tokens(buf: &[u8], value: Span, out: &mut Vec<Span>) {
    let mut start = value.start as usize;
    let end = value.end as usize;
    while start <= end {
        let stop = buf[start..end]
            .iter()
            .position(|&b| b == b',')
            .map_or(end, |p| start + p);
        let mut a = start;
        let mut z = stop;
        while a < z && (buf[a] == b' ' || buf[a] == b'\t') {
            a += 1;
        }
        while z > a && (buf[z - 1] == b' ' || buf[z - 1] == b'\t') {
            z -= 1;
        }
        if a < z {
            out.push(Span {
                start: a as u32,
                end: z as u32,
            });
        }
        start = stop + 1;
    }
}

/// Whether `name` is `lower` (in lowercase) in any case: `eq_ignore_ascii_case` without a
/// branch per byte (it costs about six instructions a byte, on every field of every head).
pub fn is(name: &[u8], lower: &[u8]) -> bool {
    name.len() == lower.len()
        && name.iter().zip(lower).fold(0, |differ, (&a, &b)| {
            let fold = if b.is_ascii_lowercase() { 0x20 } else { 0 };
            differ | ((a | fold) ^ b)
        }) == 0
}

/// Whether the last coding of a `Transfer-Encoding` value is `chunked`.
fn ends_chunked(v: &[u8]) -> bool {
    let last = v.rsplit(|&b| b == b',').next().unwrap_or(v);
    last.trim_ascii().eq_ignore_ascii_case(b"chunked")
}

/// The size limits of a request head: a listener's `max_header_size`, `max_headers` and
/// `max_uri_size`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeadLimits {
    /// Bytes of the whole head: 431 beyond.
    pub size: usize,
    /// Header lines: 431 beyond.
    pub fields: usize,
    /// Bytes of the request target: 414 beyond.
    pub uri: usize,
}

impl Default for HeadLimits {
    fn default() -> Self {
        HeadLimits {
            size: MAX_HEAD,
            fields: MAX_HEADERS,
            uri: MAX_HEAD,
        }
    }
}

/// Parse the request head at the start of `buf` into `head`. `Ok(false)`: not all there yet.
pub fn request(buf: &[u8], head: &mut RequestHead) -> Result<bool, HeadError> {
    request_within(buf, head, HeadLimits::default())
}

/// [`request`] under `limits`: 431 for a head or a count of lines over them, 414 for a
/// target over its limit (as soon as the request line is seen to be too long).
pub fn request_within(
    buf: &[u8],
    head: &mut RequestHead,
    limits: HeadLimits,
) -> Result<bool, HeadError> {
    // Field slots left uninitialised: httparse writes the ones it fills (setting 100 empty
    // slots first had cost about a tenth of the request's user-space instructions).
    let mut stack = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut heap;
    let fields: &mut [MaybeUninit<httparse::Header<'_>>] = if limits.fields <= MAX_HEADERS {
        &mut stack[..limits.fields]
    } else {
        heap = vec![MaybeUninit::uninit(); limits.fields];
        &mut heap
    };
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(buf, fields) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => {
            // A request line longer than the target may be is refused before it ends
            // (method and version take less than 32 bytes).
            let long_line = buf.len() > limits.uri + 32 && !buf.contains(&b'\n');
            if long_line || buf.len() >= limits.size {
                // The request line alone did not fit: the target is what is too long.
                let line_done = buf.contains(&b'\n');
                return Err(if line_done {
                    HeadError::TooLarge
                } else {
                    HeadError::UriTooLong
                });
            }
            return Ok(false);
        }
        Err(httparse::Error::TooManyHeaders) => return Err(HeadError::TooLarge),
        Err(_) => return Err(HeadError::Bad("malformed request head")),
    };
    if len > limits.size {
        return Err(HeadError::TooLarge);
    }
    if req.path.map_or(0, str::len) > limits.uri {
        return Err(HeadError::UriTooLong);
    }
    let method = req.method.unwrap_or_default();
    let target = req.path.unwrap_or_default();
    head.len = len;
    head.method = Span::of(buf, method.as_bytes());
    head.target = Span::of(buf, target.as_bytes());
    head.minor = req.version.unwrap_or(1);
    head.fields.clear();
    head.connection_tokens.clear();
    head.framing_length = None;
    head.chunked = false;
    head.expect_continue = false;
    head.te_trailers = false;
    head.host = None;
    head.hosts = 0;
    let http11 = head.minor == 1;
    let mut keep_alive = http11;
    let mut close = false;
    let mut te = false;
    let mut cl = false;
    let mut upgrade_field = false;
    let mut upgrade_token = false;
    for f in req.headers.iter() {
        let name = f.name.as_bytes();
        let value = f.value;
        let field = Field {
            name: Span::of(buf, name),
            value: Span::of(buf, value),
        };
        head.fields.push(field);
        match name.len() {
            4 if is(name, b"host") => {
                head.hosts = head.hosts.saturating_add(1);
                if head.host.is_none() {
                    head.host = Some(field.value);
                }
            }
            14 if is(name, b"content-length") => {
                cl = true;
                if te {
                    continue;
                }
                let n = digits(value).ok_or(HeadError::Bad("invalid Content-Length"))?;
                if head.framing_length.is_some_and(|prev| prev != n) {
                    return Err(HeadError::Bad("conflicting Content-Length"));
                }
                head.framing_length = Some(n);
            }
            17 if is(name, b"transfer-encoding") => {
                if !http11 {
                    return Err(HeadError::Bad("Transfer-Encoding in an HTTP/1.0 request"));
                }
                te = true;
                head.framing_length = None;
                head.chunked = ends_chunked(value);
            }
            10 if is(name, b"connection") => {
                let from = head.connection_tokens.len();
                tokens(buf, field.value, &mut head.connection_tokens);
                for t in &head.connection_tokens[from..] {
                    let t = t.get(buf);
                    if is(t, b"close") {
                        close = true;
                    } else if is(t, b"keep-alive") {
                        keep_alive = true;
                    } else if is(t, b"upgrade") {
                        upgrade_token = true;
                    }
                }
            }
            6 if is(name, b"expect") => {
                head.expect_continue = value.eq_ignore_ascii_case(b"100-continue");
            }
            7 if is(name, b"upgrade") => upgrade_field = true,
            2 if is(name, b"te") => {
                head.te_trailers |= value
                    .split(|&b| b == b',')
                    .any(|t| is(t.trim_ascii(), b"trailers"));
            }
            _ => {}
        }
    }
    if te && !head.chunked {
        return Err(HeadError::Bad("Transfer-Encoding does not end in chunked"));
    }
    head.keep_alive = keep_alive && !close && !(te && cl);
    head.upgrade = upgrade_field && upgrade_token && http11;
    Ok(true)
}

/// Parse the response head at the start of `buf` into `head`. `Ok(false)`: not all there.
pub fn response(buf: &[u8], head: &mut ResponseHead) -> Result<bool, &'static str> {
    let mut fields = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut []);
    let len = match httparse::ParserConfig::default().parse_response_with_uninit_headers(
        &mut resp,
        buf,
        &mut fields,
    ) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) if buf.len() >= MAX_HEAD => {
            return Err("response head too large");
        }
        Ok(httparse::Status::Partial) => return Ok(false),
        Err(_) => return Err("malformed response head"),
    };
    head.len = len;
    head.status = resp.code.unwrap_or(0);
    head.reason = Span::of(buf, resp.reason.unwrap_or_default().as_bytes());
    if resp.reason.is_none() {
        head.reason = Span::default();
    }
    head.minor = resp.version.unwrap_or(1);
    head.fields.clear();
    head.connection_tokens.clear();
    head.content_length = None;
    head.chunked = false;
    head.other_coding = false;
    let mut keep_alive = head.minor == 1;
    let mut close = false;
    let mut te = false;
    for f in resp.headers.iter() {
        let name = f.name.as_bytes();
        let value = f.value;
        let field = Field {
            name: Span::of(buf, name),
            value: Span::of(buf, value),
        };
        head.fields.push(field);
        match name.len() {
            14 if is(name, b"content-length") => {
                // A list of equal values is one length (RFC 9110 §8.6); anything else is no
                // length at all.
                for part in value.split(|&b| b == b',') {
                    let n = digits(part.trim_ascii()).ok_or("invalid Content-Length")?;
                    if head.content_length.is_some_and(|prev| prev != n) {
                        return Err("conflicting Content-Length");
                    }
                    head.content_length = Some(n);
                }
            }
            17 if is(name, b"transfer-encoding") => {
                te = true;
                head.chunked = ends_chunked(value);
            }
            10 if is(name, b"connection") => {
                let from = head.connection_tokens.len();
                tokens(buf, field.value, &mut head.connection_tokens);
                for t in &head.connection_tokens[from..] {
                    let t = t.get(buf);
                    if is(t, b"close") {
                        close = true;
                    } else if is(t, b"keep-alive") {
                        keep_alive = true;
                    }
                }
            }
            _ => {}
        }
    }
    // RFC 9112 §6.3: Transfer-Encoding overrides Content-Length (which is then dropped), and
    // a coding other than chunked last means the body runs to the close.
    head.other_coding = te && !head.chunked;
    head.keep_alive = keep_alive && !close && !head.other_coding;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn is_agrees_with_eq_ignore_ascii_case_for_every_byte() {
        for lower in [&b"content-length"[..], b"te", b"keep-alive", b"x-1_z"] {
            assert!(is(lower, lower));
            assert!(is(&lower.to_ascii_uppercase(), lower));
            assert!(!is(&lower[1..], lower));
            for at in 0..lower.len() {
                for byte in 0..=255u8 {
                    let mut name = lower.to_vec();
                    name[at] = byte;
                    assert_eq!(
                        is(&name, lower),
                        name.eq_ignore_ascii_case(lower),
                        "{name:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn lengths_are_digits_only() {
        assert_eq!(digits(b"005"), Some(5));
        for bad in [
            &b""[..],
            b"+5",
            b"-1",
            b"0x5",
            b" 5",
            b"99999999999999999999",
        ] {
            assert_eq!(digits(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn a_request_head_reads_its_framing() {
        let mut h = RequestHead::default();
        let buf = b"POST /a?b HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive, X-Y\r\n\r\n";
        assert_eq!(request(buf, &mut h), Ok(true));
        assert_eq!(h.len, buf.len());
        assert_eq!(h.framing(), Framing::Chunked);
        assert!(!h.keep_alive, "CL and TE: close afterwards");
        assert_eq!(h.target.get(buf), b"/a?b");
        assert_eq!(h.connection_tokens.len(), 2);
        assert_eq!(h.connection_tokens[1].get(buf), b"X-Y");
        let mut h = RequestHead::default();
        assert_eq!(request(b"GET / HTTP/1.1\r\nHost: x\r\n", &mut h), Ok(false));
        assert!(matches!(
            request(
                b"GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                &mut h
            ),
            Err(HeadError::Bad(_))
        ));
    }

    #[test]
    fn a_response_with_length_and_chunked_is_chunked() {
        let mut h = ResponseHead::default();
        let buf = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert_eq!(response(buf, &mut h), Ok(true));
        assert_eq!(h.framing(false), Framing::Chunked);
        assert_eq!(h.framing(true), Framing::Empty);
        assert_eq!(h.reason.get(buf), b"OK");
    }
}

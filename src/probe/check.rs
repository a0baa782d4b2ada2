//! One active probe: a TCP connect, or an HTTP request whose status (and optionally body) is
//! checked. The whole probe is bounded by the check's timeout; a probe that times out fails.
//!
//! An HTTP probe speaks what the pool's traffic speaks ([`ProbeTransport`]): TLS with the
//! pool's client configuration (CA or system roots, client certificate, `server_name` as SNI)
//! when the pool re-encrypts, and HTTP/2 when the pool's `upstream_protocol` is `h2`/`h2c`
//! (over TLS the server must agree to ALPN `h2`, as for the pool's own connections). A TCP
//! probe is a plain connect whatever the pool speaks.
//!
//! A gRPC probe calls `grpc.health.v1.Health/Check` over HTTP/2 on the same transport (h2c,
//! or TLS with ALPN `h2`) and passes only on HTTP 200, `grpc-status: 0` and `SERVING`. Its
//! two messages are one field each, so they are encoded and decoded here by hand
//! ([`encode_check_request`], [`decode_check_response`]) rather than with a protobuf crate.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{HeaderMap, Method, Request, Response, StatusCode, Version, header};
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Body, Incoming};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;

use crate::config::{HealthKind, HealthPlan};

/// The most body a probe reads looking for `expect_body` (or a gRPC answer).
const MAX_BODY: usize = 64 * 1024;

/// The method every gRPC check calls.
const GRPC_CHECK: &str = "/grpc.health.v1.Health/Check";

/// How HTTP probes reach the servers of a pool: the same way its requests do.
#[derive(Clone, Default)]
pub struct ProbeTransport {
    /// TLS as the pool re-encrypts; `None`: cleartext.
    pub tls: Option<ProbeTls>,
    /// HTTP/2 (the pool's `upstream_protocol` is `h2` or `h2c`) instead of HTTP/1.1.
    pub h2: bool,
}

/// The pool's TLS client side, shared with its request path.
#[derive(Clone)]
pub struct ProbeTls {
    /// Built from the pool's `tls` (roots, client certificate, ALPN for its protocol).
    pub connector: TlsConnector,
    /// SNI and the name verified; `None`: the server's IP address.
    pub server_name: Option<String>,
}

impl std::fmt::Debug for ProbeTransport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProbeTransport")
            .field("tls", &self.tls.as_ref().map(|t| &t.server_name))
            .field("h2", &self.h2)
            .finish()
    }
}

/// The verdict of one probe and a few words on why, for logs and the admin view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckResult {
    pub pass: bool,
    pub detail: String,
}

impl CheckResult {
    fn fail(detail: impl Into<String>) -> CheckResult {
        CheckResult {
            pass: false,
            detail: detail.into(),
        }
    }
}

/// Probe `addr` as `plan` says, within `plan.timeout`, over cleartext HTTP/1.1.
pub async fn probe(plan: &HealthPlan, addr: SocketAddr) -> CheckResult {
    probe_with(plan, addr, &ProbeTransport::default()).await
}

/// Probe `addr` as `plan` says, within `plan.timeout`, the way `transport` says.
pub async fn probe_with(
    plan: &HealthPlan,
    addr: SocketAddr,
    transport: &ProbeTransport,
) -> CheckResult {
    match tokio::time::timeout(plan.timeout, run(plan, addr, transport)).await {
        Ok(o) => o,
        Err(_) => CheckResult::fail(format!("timed out after {:?}", plan.timeout)),
    }
}

async fn run(plan: &HealthPlan, addr: SocketAddr, transport: &ProbeTransport) -> CheckResult {
    let stream = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return CheckResult::fail(format!("connect: {e}")),
    };
    if plan.kind == HealthKind::Tcp {
        return CheckResult {
            pass: true,
            detail: "connected".into(),
        };
    }
    if matches!(plan.kind, HealthKind::Grpc { .. }) && !transport.h2 {
        // Validation rules this out; a plan built by hand still gets a clear verdict.
        return CheckResult::fail(
            "a gRPC check needs HTTP/2: the pool's upstream_protocol must be \"h2\" or \"h2c\"",
        );
    }
    let _ = stream.set_nodelay(true);
    let Some(tls) = &transport.tls else {
        return exchange(plan, addr, stream, transport.h2, "http").await;
    };
    let name = match crate::tls::server_name_for(tls.server_name.as_deref(), addr) {
        Ok(n) => n,
        Err(e) => return CheckResult::fail(format!("TLS: {e}")),
    };
    let stream = match tls.connector.connect(name, stream).await {
        Ok(s) => s,
        Err(e) => return CheckResult::fail(format!("TLS handshake: {e}")),
    };
    if transport.h2 && stream.get_ref().1.alpn_protocol() != Some(b"h2") {
        return CheckResult::fail("the server did not agree to HTTP/2 (ALPN h2)");
    }
    exchange(plan, addr, stream, transport.h2, "https").await
}

/// One request over `stream` (HTTP/1.1, or HTTP/2 when `h2`), judged by `plan`.
async fn exchange<S>(
    plan: &HealthPlan,
    addr: SocketAddr,
    stream: S,
    h2: bool,
    scheme: &str,
) -> CheckResult
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let host = plan.host.clone().unwrap_or_else(|| addr.to_string());
    if let HealthKind::Grpc { service } = &plan.kind {
        let req = Request::builder()
            .method(Method::POST)
            .uri(format!("{scheme}://{host}{GRPC_CHECK}"))
            .version(Version::HTTP_2)
            .header(header::CONTENT_TYPE, "application/grpc")
            .header(header::TE, "trailers")
            .header(header::USER_AGENT, "switchyard-health-check")
            // The server may stop working on a call the probe has given up on.
            .header("grpc-timeout", grpc_timeout(plan.timeout))
            .body(Full::new(grpc_frame(&encode_check_request(service))));
        let req = match req {
            Ok(r) => r,
            Err(e) => return CheckResult::fail(format!("request: {e}")),
        };
        return match send(stream, req, true).await {
            Err(o) => o,
            Ok((resp, conn)) => {
                let outcome = judge_grpc(service, resp).await;
                conn.abort();
                outcome
            }
        };
    }
    let req = if h2 {
        // HTTP/2 carries the host in :authority and forbids connection-specific headers.
        Request::builder()
            .method(plan.method.clone())
            .uri(format!("{scheme}://{host}{}", plan.path))
            .version(Version::HTTP_2)
            .header(header::USER_AGENT, "switchyard-health-check")
            .body(Empty::<Bytes>::new())
    } else {
        Request::builder()
            .method(plan.method.clone())
            .uri(plan.path.as_str())
            .header(header::HOST, host)
            .header(header::USER_AGENT, "switchyard-health-check")
            // One request per connection: a probe must not hold a slot of the server's
            // keep-alive pool between checks.
            .header(header::CONNECTION, "close")
            .body(Empty::<Bytes>::new())
    };
    let req = match req {
        Ok(r) => r,
        Err(e) => return CheckResult::fail(format!("request: {e}")),
    };
    match send(stream, req, h2).await {
        Err(o) => o,
        Ok((resp, conn)) => {
            let outcome = judge(plan, resp).await;
            conn.abort();
            outcome
        }
    }
}

/// Open an HTTP/1.1 (or, when `h2`, HTTP/2) connection over `stream` and send `req`. The
/// connection task comes back with the response: the caller aborts it once the answer is
/// judged, so it ends with the probe.
async fn send<S, B>(
    stream: S,
    req: Request<B>,
    h2: bool,
) -> Result<(Response<Incoming>, JoinHandle<hyper::Result<()>>), CheckResult>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    B: Body + Send + Unpin + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let (sent, conn) = if h2 {
        let (mut sender, conn) = http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
            .await
            .map_err(|e| CheckResult::fail(format!("HTTP/2 handshake: {e}")))?;
        let conn = tokio::spawn(conn);
        (sender.send_request(req).await, conn)
    } else {
        let (mut sender, conn) = http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| CheckResult::fail(format!("handshake: {e}")))?;
        let conn = tokio::spawn(conn);
        (sender.send_request(req).await, conn)
    };
    match sent {
        Ok(resp) => Ok((resp, conn)),
        Err(e) => {
            conn.abort();
            Err(CheckResult::fail(format!("request: {e}")))
        }
    }
}

async fn judge(plan: &HealthPlan, resp: Response<Incoming>) -> CheckResult {
    let status = resp.status().as_u16();
    if !plan.status_passes(status) {
        return CheckResult::fail(format!("status {status}"));
    }
    let Some(want) = &plan.expect_body else {
        return CheckResult {
            pass: true,
            detail: format!("status {status}"),
        };
    };
    match read_bounded(resp.into_body()).await {
        Ok(body) if contains(&body, want.as_bytes()) => CheckResult {
            pass: true,
            detail: format!("status {status}, body matched"),
        },
        Ok(_) => CheckResult::fail(format!("status {status}, body lacks {want:?}")),
        Err(e) => CheckResult::fail(format!("body: {e}")),
    }
}

async fn read_bounded(mut body: Incoming) -> Result<Vec<u8>, hyper::Error> {
    let mut out = Vec::new();
    while let Some(frame) = body.frame().await {
        if let Some(d) = frame?.data_ref() {
            let room = MAX_BODY - out.len();
            out.extend_from_slice(&d[..d.len().min(room)]);
            if out.len() >= MAX_BODY {
                break;
            }
        }
    }
    Ok(out)
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || hay.windows(needle.len()).any(|w| w == needle)
}

/// `grpc-timeout` for a probe bounded by `timeout`: milliseconds, at most 8 digits.
fn grpc_timeout(timeout: std::time::Duration) -> String {
    format!("{}m", timeout.as_millis().clamp(1, 99_999_999))
}

/// A gRPC message on the wire: not compressed (flag 0), a 4-byte big-endian length, the
/// message.
fn grpc_frame(message: &[u8]) -> Bytes {
    let mut out = Vec::with_capacity(5 + message.len());
    out.push(0);
    out.extend_from_slice(&(message.len() as u32).to_be_bytes());
    out.extend_from_slice(message);
    out.into()
}

/// The one message of a unary answer, out of its frame.
fn grpc_unframe(data: &[u8]) -> Result<&[u8], String> {
    let Some((head, rest)) = data.split_first_chunk::<5>() else {
        return Err(if data.is_empty() {
            "no HealthCheckResponse before the trailers".into()
        } else {
            format!(
                "a message frame of {} bytes, shorter than its 5-byte head",
                data.len()
            )
        });
    };
    match head[0] {
        0 => {}
        1 => return Err("a compressed message, though the probe asked for none".into()),
        f => return Err(format!("message flag {f}, not 0 or 1")),
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    match rest.len().cmp(&len) {
        std::cmp::Ordering::Equal => Ok(rest),
        std::cmp::Ordering::Less => Err(format!(
            "a message of {} bytes, cut short of its {len}",
            rest.len()
        )),
        std::cmp::Ordering::Greater => {
            Err("more than one message in the answer to a unary call".into())
        }
    }
}

/// `grpc.health.v1.HealthCheckRequest { string service = 1; }`. In proto3 an empty string is
/// the default and is not written, so the whole server's check is an empty message.
pub(crate) fn encode_check_request(service: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(service.len() + 6);
    if !service.is_empty() {
        out.push(0x0a); // field 1, wire type 2 (length-delimited)
        put_varint(&mut out, service.len() as u64);
        out.extend_from_slice(service.as_bytes());
    }
    out
}

/// `HealthCheckResponse.ServingStatus`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ServingStatus {
    Unknown,
    Serving,
    NotServing,
    ServiceUnknown,
    /// A value this version of the protocol does not define.
    Other(u64),
}

impl std::fmt::Display for ServingStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ServingStatus::Unknown => f.write_str("UNKNOWN"),
            ServingStatus::Serving => f.write_str("SERVING"),
            ServingStatus::NotServing => f.write_str("NOT_SERVING"),
            ServingStatus::ServiceUnknown => f.write_str("SERVICE_UNKNOWN"),
            ServingStatus::Other(n) => write!(f, "serving status {n}"),
        }
    }
}

/// `grpc.health.v1.HealthCheckResponse { ServingStatus status = 1; }`. Unknown fields are
/// skipped as protobuf says; a missing status is its default, `UNKNOWN`; the last one wins.
pub(crate) fn decode_check_response(mut buf: &[u8]) -> Result<ServingStatus, &'static str> {
    let mut status = 0;
    while !buf.is_empty() {
        let tag = get_varint(&mut buf)?;
        match (tag >> 3, tag & 7) {
            (0, _) => return Err("field number 0"),
            (1, 0) => status = get_varint(&mut buf)?,
            (1, _) => return Err("field 1 (status) is not a varint"),
            (_, 0) => {
                get_varint(&mut buf)?;
            }
            (_, 1) => skip(&mut buf, 8)?,
            (_, 2) => {
                let len = get_varint(&mut buf)?;
                skip(
                    &mut buf,
                    usize::try_from(len).map_err(|_| "a field longer than memory")?,
                )?;
            }
            (_, 5) => skip(&mut buf, 4)?,
            _ => return Err("a field of an unknown wire type"),
        }
    }
    Ok(match status {
        0 => ServingStatus::Unknown,
        1 => ServingStatus::Serving,
        2 => ServingStatus::NotServing,
        3 => ServingStatus::ServiceUnknown,
        n => ServingStatus::Other(n),
    })
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(buf: &mut &[u8]) -> Result<u64, &'static str> {
    let mut v = 0u64;
    for i in 0..10 {
        let (&b, rest) = buf.split_first().ok_or("a varint cut short")?;
        *buf = rest;
        // The tenth byte holds the 64th bit only.
        if i == 9 && b > 1 {
            break;
        }
        v |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err("a varint longer than 64 bits")
}

fn skip(buf: &mut &[u8], n: usize) -> Result<(), &'static str> {
    if buf.len() < n {
        return Err("a field cut short");
    }
    *buf = &buf[n..];
    Ok(())
}

/// The names of gRPC status codes, for the check's message.
fn grpc_code_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    ];
    NAMES
        .get(code as usize)
        .copied()
        .unwrap_or("not a gRPC code")
}

/// `grpc-status` (and `grpc-message`) of `fields`: `None` when the call succeeded, else why
/// the check failed.
fn grpc_call_failed(service: &str, fields: &HeaderMap) -> Option<CheckResult> {
    let Some(raw) = fields.get("grpc-status") else {
        return Some(CheckResult::fail(
            "no grpc-status: the call ended without one",
        ));
    };
    let code = match raw.to_str().ok().and_then(|s| s.parse::<u32>().ok()) {
        Some(0) => return None,
        Some(code) => code,
        None => {
            return Some(CheckResult::fail(format!(
                "grpc-status {raw:?} is not a number"
            )));
        }
    };
    let mut detail = format!("grpc-status {code} ({})", grpc_code_name(code));
    if let Some(m) = fields.get("grpc-message") {
        let m = percent_decode(m.as_bytes());
        if !m.is_empty() {
            detail.push_str(": ");
            detail.extend(m.chars().take(200));
        }
    }
    match code {
        5 => detail.push_str(&format!(" (the server does not know service {service:?})")),
        12 => detail.push_str(" (the server has no grpc.health.v1.Health service)"),
        _ => {}
    }
    Some(CheckResult::fail(detail))
}

/// `grpc-message` is percent-encoded UTF-8.
fn percent_decode(v: &[u8]) -> String {
    let mut out = Vec::with_capacity(v.len());
    let mut i = 0;
    while i < v.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        if v[i] == b'%'
            && let (Some(h), Some(l)) = (
                v.get(i + 1).and_then(|&b| hex(b)),
                v.get(i + 2).and_then(|&b| hex(b)),
            )
        {
            out.push((h * 16 + l) as u8);
            i += 3;
        } else {
            out.push(v[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Judge the answer to a `Health/Check` call for `service`.
async fn judge_grpc(service: &str, resp: Response<Incoming>) -> CheckResult {
    let status = resp.status();
    if status != StatusCode::OK {
        return CheckResult::fail(format!(
            "HTTP status {} (a gRPC server answers 200)",
            status.as_u16()
        ));
    }
    let content_type = resp.headers().get(header::CONTENT_TYPE);
    if !content_type.is_some_and(|v| v.as_bytes().starts_with(b"application/grpc")) {
        return CheckResult::fail(format!(
            "content-type {content_type:?}, not application/grpc: is this a gRPC server?"
        ));
    }
    // A trailers-only answer: the call ended in the headers, with no message.
    if resp.headers().contains_key("grpc-status") {
        return grpc_call_failed(service, resp.headers()).unwrap_or_else(|| {
            CheckResult::fail("grpc-status 0 but no HealthCheckResponse (trailers only)")
        });
    }
    let mut body = resp.into_body();
    let mut data = Vec::new();
    let mut trailers = None;
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(f) => f,
            Err(e) => return CheckResult::fail(format!("body: {e}")),
        };
        match frame.into_data() {
            Ok(d) if data.len() + d.len() > MAX_BODY => {
                return CheckResult::fail("an answer over 64 KiB: not a HealthCheckResponse");
            }
            Ok(d) => data.extend_from_slice(&d),
            Err(frame) => trailers = frame.into_trailers().ok(),
        }
    }
    let Some(trailers) = trailers else {
        return CheckResult::fail("no grpc-status: the answer ended without trailers");
    };
    if let Some(failed) = grpc_call_failed(service, &trailers) {
        return failed;
    }
    let message = match grpc_unframe(&data) {
        Ok(m) => m,
        Err(e) => return CheckResult::fail(format!("malformed answer: {e}")),
    };
    let of = if service.is_empty() {
        String::new()
    } else {
        format!(" (service {service:?})")
    };
    match decode_check_response(message) {
        Ok(ServingStatus::Serving) => CheckResult {
            pass: true,
            detail: format!("SERVING{of}"),
        },
        Ok(other) => CheckResult::fail(format!("{other}{of}")),
        Err(e) => CheckResult::fail(format!("malformed HealthCheckResponse: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_requests_are_field_one_as_a_string() {
        assert_eq!(encode_check_request(""), b"");
        assert_eq!(encode_check_request("a.B"), b"\x0a\x03a.B");
        // A length past 127 takes a two-byte varint.
        let long = "s".repeat(300);
        let enc = encode_check_request(&long);
        assert_eq!(&enc[..3], &[0x0a, 0xac, 0x02]);
        assert_eq!(&enc[3..], long.as_bytes());
        assert_eq!(
            &grpc_frame(b"\x0a\x03a.B")[..],
            b"\x00\x00\x00\x00\x05\x0a\x03a.B"
        );
    }

    #[test]
    fn check_responses_decode_and_bad_ones_are_errors() {
        use ServingStatus::*;
        assert_eq!(decode_check_response(b""), Ok(Unknown));
        assert_eq!(decode_check_response(b"\x08\x01"), Ok(Serving));
        assert_eq!(decode_check_response(b"\x08\x02"), Ok(NotServing));
        assert_eq!(decode_check_response(b"\x08\x03"), Ok(ServiceUnknown));
        assert_eq!(decode_check_response(b"\x08\x07"), Ok(Other(7)));
        // Multi-byte varint; unknown fields of each wire type skipped; the last status wins.
        assert_eq!(decode_check_response(b"\x08\x81\x01"), Ok(Other(129)));
        let mixed = b"\x10\x05\x19\x01\x02\x03\x04\x05\x06\x07\x08\x22\x02hi\x2d\x01\x02\x03\x04\x08\x02\x08\x01";
        assert_eq!(decode_check_response(mixed), Ok(Serving));
        // A negative enum (int32 -1) is a ten-byte varint: not SERVING.
        let neg = b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01";
        assert_eq!(decode_check_response(neg), Ok(Other(u64::MAX)));
        for bad in [
            &b"\x08"[..],                                        // value missing
            b"\x08\x80",                                         // varint cut short
            b"\x0a\x01\x01",                                     // status as a string
            b"\x22\x05hi",                                       // length past the end
            b"\x1b",                                             // wire type 3 (group)
            b"\x00\x01",                                         // field 0
            b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\x02",     // over 64 bits
            b"\x08\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01", // eleven bytes
        ] {
            assert!(decode_check_response(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn frames_must_hold_exactly_one_plain_message() {
        assert_eq!(
            grpc_unframe(b"\x00\x00\x00\x00\x02\x08\x01"),
            Ok(&b"\x08\x01"[..])
        );
        assert_eq!(grpc_unframe(b"\x00\x00\x00\x00\x00"), Ok(&b""[..]));
        for bad in [
            &b""[..],
            b"\x00\x00\x00",
            b"\x01\x00\x00\x00\x02\x08\x01",
            b"\x07\x00\x00\x00\x02\x08\x01",
            b"\x00\x00\x00\x00\x03\x08\x01",
            b"\x00\x00\x00\x00\x01\x08\x01",
        ] {
            assert!(grpc_unframe(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn grpc_status_and_message_make_the_detail() {
        let fields = |pairs: &[(&'static str, &'static str)]| {
            let mut h = HeaderMap::new();
            for (k, v) in pairs {
                h.insert(*k, http::HeaderValue::from_static(v));
            }
            h
        };
        assert_eq!(grpc_call_failed("", &fields(&[("grpc-status", "0")])), None);
        let o = grpc_call_failed("x.Y", &fields(&[("grpc-status", "5")])).unwrap();
        assert_eq!(
            o.detail,
            "grpc-status 5 (NOT_FOUND) (the server does not know service \"x.Y\")"
        );
        let o = grpc_call_failed(
            "",
            &fields(&[
                ("grpc-status", "14"),
                ("grpc-message", "going%20away%E2%80%A6"),
            ]),
        )
        .unwrap();
        assert_eq!(o.detail, "grpc-status 14 (UNAVAILABLE): going away…");
        assert!(!grpc_call_failed("", &fields(&[])).unwrap().pass);
        assert!(
            !grpc_call_failed("", &fields(&[("grpc-status", "x")]))
                .unwrap()
                .pass
        );
        assert_eq!(
            grpc_timeout(std::time::Duration::from_millis(1500)),
            "1500m"
        );
        assert_eq!(
            grpc_timeout(std::time::Duration::from_secs(1 << 30)),
            "99999999m"
        );
    }
}

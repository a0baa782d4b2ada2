//! One active probe: a TCP connect, or an HTTP request whose status (and optionally body) is
//! checked. The whole probe is bounded by the check's timeout; a probe that times out fails.
//!
//! An HTTP probe speaks what the pool's traffic speaks ([`ProbeTransport`]): TLS with the
//! pool's client configuration (CA or system roots, client certificate, `server_name` as SNI)
//! when the pool re-encrypts, and HTTP/2 when the pool's `upstream_protocol` is `h2`/`h2c`
//! (over TLS the server must agree to ALPN `h2`, as for the pool's own connections). A TCP
//! probe is a plain connect whatever the pool speaks.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, Response, Version, header};
use http_body_util::{BodyExt, Empty};
use hyper::body::Incoming;
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

use crate::config::{HealthKind, HealthPlan};

/// The most body a probe reads looking for `expect_body`.
const MAX_BODY: usize = 64 * 1024;

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
pub struct Outcome {
    pub pass: bool,
    pub detail: String,
}

impl Outcome {
    fn fail(detail: impl Into<String>) -> Outcome {
        Outcome {
            pass: false,
            detail: detail.into(),
        }
    }
}

/// Probe `addr` as `plan` says, within `plan.timeout`, over cleartext HTTP/1.1.
pub async fn probe(plan: &HealthPlan, addr: SocketAddr) -> Outcome {
    probe_with(plan, addr, &ProbeTransport::default()).await
}

/// Probe `addr` as `plan` says, within `plan.timeout`, the way `transport` says.
pub async fn probe_with(
    plan: &HealthPlan,
    addr: SocketAddr,
    transport: &ProbeTransport,
) -> Outcome {
    match tokio::time::timeout(plan.timeout, run(plan, addr, transport)).await {
        Ok(o) => o,
        Err(_) => Outcome::fail(format!("timed out after {:?}", plan.timeout)),
    }
}

async fn run(plan: &HealthPlan, addr: SocketAddr, transport: &ProbeTransport) -> Outcome {
    let stream = match TcpStream::connect(addr).await {
        Ok(s) => s,
        Err(e) => return Outcome::fail(format!("connect: {e}")),
    };
    if plan.kind == HealthKind::Tcp {
        return Outcome {
            pass: true,
            detail: "connected".into(),
        };
    }
    let _ = stream.set_nodelay(true);
    let Some(tls) = &transport.tls else {
        return exchange(plan, addr, stream, transport.h2, "http").await;
    };
    let name = match crate::tls::server_name_for(tls.server_name.as_deref(), addr) {
        Ok(n) => n,
        Err(e) => return Outcome::fail(format!("TLS: {e}")),
    };
    let stream = match tls.connector.connect(name, stream).await {
        Ok(s) => s,
        Err(e) => return Outcome::fail(format!("TLS handshake: {e}")),
    };
    if transport.h2 && stream.get_ref().1.alpn_protocol() != Some(b"h2") {
        return Outcome::fail("the server did not agree to HTTP/2 (ALPN h2)");
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
) -> Outcome
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let host = plan.host.clone().unwrap_or_else(|| addr.to_string());
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
        Err(e) => return Outcome::fail(format!("request: {e}")),
    };
    // The connection task ends with the probe: aborted once the answer is judged.
    let (sent, conn) = if h2 {
        let (mut sender, conn) =
            match http2::handshake(TokioExecutor::new(), TokioIo::new(stream)).await {
                Ok(pair) => pair,
                Err(e) => return Outcome::fail(format!("HTTP/2 handshake: {e}")),
            };
        let conn = tokio::spawn(conn);
        (sender.send_request(req).await, conn)
    } else {
        let (mut sender, conn) = match http1::handshake(TokioIo::new(stream)).await {
            Ok(pair) => pair,
            Err(e) => return Outcome::fail(format!("handshake: {e}")),
        };
        let conn = tokio::spawn(conn);
        (sender.send_request(req).await, conn)
    };
    let outcome = match sent {
        Err(e) => Outcome::fail(format!("request: {e}")),
        Ok(resp) => judge(plan, resp).await,
    };
    conn.abort();
    outcome
}

async fn judge(plan: &HealthPlan, resp: Response<Incoming>) -> Outcome {
    let status = resp.status().as_u16();
    if !plan.status_passes(status) {
        return Outcome::fail(format!("status {status}"));
    }
    let Some(want) = &plan.expect_body else {
        return Outcome {
            pass: true,
            detail: format!("status {status}"),
        };
    };
    match read_bounded(resp.into_body()).await {
        Ok(body) if contains(&body, want.as_bytes()) => Outcome {
            pass: true,
            detail: format!("status {status}, body matched"),
        },
        Ok(_) => Outcome::fail(format!("status {status}, body lacks {want:?}")),
        Err(e) => Outcome::fail(format!("body: {e}")),
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

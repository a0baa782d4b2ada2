//! One active probe: a TCP connect, or an HTTP/1.1 request whose status (and optionally
//! body) is checked. The whole probe is bounded by the check's timeout; a probe that times
//! out fails.

use std::net::SocketAddr;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use crate::config::{HealthKind, HealthPlan};

/// The most body a probe reads looking for `expect_body`.
const MAX_BODY: usize = 64 * 1024;

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

/// Probe `addr` as `plan` says, within `plan.timeout`.
pub async fn probe(plan: &HealthPlan, addr: SocketAddr) -> Outcome {
    match tokio::time::timeout(plan.timeout, run(plan, addr)).await {
        Ok(o) => o,
        Err(_) => Outcome::fail(format!("timed out after {:?}", plan.timeout)),
    }
}

async fn run(plan: &HealthPlan, addr: SocketAddr) -> Outcome {
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
    let (mut sender, conn) = match http1::handshake(TokioIo::new(stream)).await {
        Ok(pair) => pair,
        Err(e) => return Outcome::fail(format!("handshake: {e}")),
    };
    // The connection task ends with the probe (the sender is dropped when we return).
    let conn = tokio::spawn(conn);
    let host = plan.host.clone().unwrap_or_else(|| addr.to_string());
    let req = Request::builder()
        .method(plan.method.clone())
        .uri(plan.path.as_str())
        .header(header::HOST, host)
        .header(header::USER_AGENT, "switchyard-health-check")
        // One request per connection: a probe must not hold a slot of the server's
        // keep-alive pool between checks.
        .header(header::CONNECTION, "close")
        .body(Empty::<Bytes>::new());
    let req = match req {
        Ok(r) => r,
        Err(e) => return Outcome::fail(format!("request: {e}")),
    };
    let outcome = match sender.send_request(req).await {
        Err(e) => Outcome::fail(format!("request: {e}")),
        Ok(resp) => {
            let status = resp.status().as_u16();
            if !plan.status_passes(status) {
                Outcome::fail(format!("status {status}"))
            } else if let Some(want) = &plan.expect_body {
                match read_bounded(resp.into_body()).await {
                    Ok(body) if contains(&body, want.as_bytes()) => Outcome {
                        pass: true,
                        detail: format!("status {status}, body matched"),
                    },
                    Ok(_) => Outcome::fail(format!("status {status}, body lacks {want:?}")),
                    Err(e) => Outcome::fail(format!("body: {e}")),
                }
            } else {
                Outcome {
                    pass: true,
                    detail: format!("status {status}"),
                }
            }
        }
    };
    conn.abort();
    outcome
}

async fn read_bounded(mut body: hyper::body::Incoming) -> Result<Vec<u8>, hyper::Error> {
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

//! A fixed-count HTTP/1.1 keep-alive load for `bench/callgrind.sh`: exactly REQUESTS
//! requests of `GET /` over CONNS connections, each waiting for its answer (read by
//! `Content-Length` or chunked framing) before the next. A fixed count makes instruction
//! counts per request repeatable, where wrk runs for a time.
//!
//! With `--rate R` (`RATE=R bench/http.sh`) the load is open: R requests a second in all,
//! each connection sending its share on a fixed schedule whatever the answers do, and the
//! latencies are printed as percentiles. The same offered load through every balancer makes
//! their latencies comparable, where a closed loop (wrk) offers each as much as it takes. A
//! request that could not leave on time because its connection still waited for the answer
//! before counts from when it should have left (coordinated omission, as wrk2 counts it);
//! one that waited only for its time to come counts from when it was written. tokio's timer
//! has millisecond ticks, so requests due within one tick leave together (at 30,000/s about
//! 30 at a time), as with wrk2: the same for every balancer measured.
//!
//! ```text
//! h1load ADDR REQUESTS CONNS                  # prints requests=N errors=E secs=S
//! h1load ADDR REQUESTS CONNS CERT.pem NAME    # over TLS (rustls, ring), trusting CERT.pem
//!                                             # and sending NAME as SNI; HTTP/1.1 by ALPN
//! h1load ADDR REQUESTS CONNS --rate R         # open load; adds p50= p90= p99= p999= max=
//!                                             # (milliseconds)
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

fn main() {
    let mut args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!("usage: h1load ADDR REQUESTS CONNS [CERT.pem SERVER_NAME | --rate R]");
        std::process::exit(2)
    };
    let rate: Option<f64> = match args.iter().position(|a| a == "--rate") {
        Some(i) => {
            let r = args.get(i + 1).and_then(|a| a.parse().ok());
            args.drain(i..(i + 2).min(args.len()));
            Some(r.filter(|r: &f64| *r > 0.0).unwrap_or_else(|| usage()))
        }
        None => None,
    };
    let addr: SocketAddr = args
        .first()
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage());
    let total: u64 = args
        .get(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage());
    let conns: u64 = args
        .get(2)
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| usage());
    let tls = match (args.get(3), args.get(4)) {
        (Some(cert), Some(name)) => Some(tls(cert, name)),
        (None, None) => None,
        _ => usage(),
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    // Closed loop: the connections share the count, each taking the next request while any
    // is left. Open (`--rate`): each has its own share, so a connection that falls behind
    // still sends (and counts) its late requests at the end.
    let shared = Arc::new(AtomicU64::new(total));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut latencies: Vec<u32> = Vec::new();
    let mut counts = Vec::new();
    rt.block_on(async {
        let start = tokio::time::Instant::now();
        let mut tasks = Vec::new();
        for j in 0..conns {
            let left = match rate {
                Some(_) => Arc::new(AtomicU64::new(total / conns + u64::from(j < total % conns))),
                None => shared.clone(),
            };
            counts.push(left.clone());
            let (errors, tls) = (errors.clone(), tls.clone());
            // Connection j's k-th request leaves at start + (k * CONNS + j) / RATE.
            let schedule = rate.map(|r| Schedule {
                first: start + Duration::from_secs_f64(j as f64 / r),
                every: Duration::from_secs_f64(conns as f64 / r),
            });
            tasks.push(tokio::spawn(async move {
                let mut took = Vec::new();
                if let Err(e) = one_connection(addr, tls, &left, schedule, &mut took).await {
                    eprintln!("h1load: {e}");
                    errors.fetch_add(1, Ordering::Relaxed);
                }
                took
            }));
        }
        for t in tasks {
            latencies.extend(t.await.unwrap_or_default());
        }
    });
    let mut line = format!(
        "requests={} errors={} secs={:.3}",
        total
            - match rate {
                Some(_) => counts.iter().map(|c| c.load(Ordering::Relaxed)).sum(),
                None => shared.load(Ordering::Relaxed),
            },
        errors.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
    if rate.is_some() {
        latencies.sort_unstable();
        let at = |q: f64| {
            let i = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len().max(1));
            latencies
                .get(i - 1)
                .map_or(0.0, |&us| f64::from(us) / 1000.0)
        };
        for (name, q) in [
            ("p50", 0.5),
            ("p90", 0.9),
            ("p99", 0.99),
            ("p999", 0.999),
            ("max", 1.0),
        ] {
            line += &format!(" {name}={:.3}", at(q));
        }
    }
    println!("{line}");
}

/// When a connection's requests are due (`--rate`).
#[derive(Clone, Copy)]
struct Schedule {
    first: tokio::time::Instant,
    every: Duration,
}

/// A TLS client trusting only `cert` (the server's own, self-signed), sending `name`.
fn tls(cert: &str, name: &str) -> (TlsConnector, ServerName<'static>) {
    let mut roots = rustls::RootCertStore::empty();
    for c in rustls::pki_types::CertificateDer::pem_file_iter(cert).expect("CERT.pem") {
        roots
            .add(c.expect("a PEM certificate"))
            .expect("a usable certificate");
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut cfg = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
    let name = ServerName::try_from(name.to_string()).expect("SERVER_NAME");
    (TlsConnector::from(Arc::new(cfg)), name)
}

async fn one_connection(
    addr: SocketAddr,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    left: &AtomicU64,
    schedule: Option<Schedule>,
    took: &mut Vec<u32>,
) -> std::io::Result<()> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    match tls {
        Some((connector, name)) => {
            let s = connector.connect(name, s).await?;
            requests(s, left, schedule, took).await
        }
        None => requests(s, left, schedule, took).await,
    }
}

/// Requests one after another over `s` while any are left to send, each when it is due
/// (with a schedule), its latency in microseconds pushed to `took`.
async fn requests<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    left: &AtomicU64,
    schedule: Option<Schedule>,
    took: &mut Vec<u32>,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(16384);
    let mut tmp = [0u8; 16384];
    let mut due = schedule.map(|s| s.first);
    while left
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
    {
        // Late (the answer before came after this one was due): counted from when it was
        // due; early: sent when due, counted from then.
        let from = match due {
            Some(d) if d > tokio::time::Instant::now() => {
                tokio::time::sleep_until(d).await;
                tokio::time::Instant::now()
            }
            Some(d) => d,
            None => tokio::time::Instant::now(),
        };
        s.write_all(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
            .await?;
        loop {
            if let Some(n) = complete(&buf)? {
                buf.drain(..n);
                break;
            }
            let n = s.read(&mut tmp).await?;
            if n == 0 {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            buf.extend_from_slice(&tmp[..n]);
        }
        if let (Some(d), Some(s)) = (&mut due, schedule) {
            took.push(from.elapsed().as_micros().min(u128::from(u32::MAX)) as u32);
            *d += s.every;
        }
    }
    Ok(())
}

/// The length of the answer at the start of `b`, once it is all there.
fn complete(b: &[u8]) -> std::io::Result<Option<usize>> {
    let Some(end) = b.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&b[..end])
        .unwrap_or("")
        .to_ascii_lowercase();
    if !head.starts_with("http/1.1 200") {
        return Err(std::io::Error::other(format!("answer {head:?}")));
    }
    let body = end + 4;
    if let Some(cl) = head.lines().find_map(|l| l.strip_prefix("content-length:")) {
        let n: usize = cl.trim().parse().map_err(std::io::Error::other)?;
        return Ok((b.len() >= body + n).then_some(body + n));
    }
    // Chunked: find the last chunk.
    Ok(b[body..]
        .windows(5)
        .position(|w| w == b"0\r\n\r\n")
        .map(|p| body + p + 5))
}

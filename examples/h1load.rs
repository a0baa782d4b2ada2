//! A fixed-count HTTP/1.1 keep-alive load for `bench/callgrind.sh`: exactly REQUESTS
//! requests of `GET /` over CONNS connections, each waiting for its answer (read by
//! `Content-Length` or chunked framing) before the next. A fixed count makes instruction
//! counts per request repeatable, where wrk runs for a time.
//!
//! ```text
//! h1load ADDR REQUESTS CONNS                  # prints requests=N errors=E secs=S
//! h1load ADDR REQUESTS CONNS CERT.pem NAME    # over TLS (rustls, ring), trusting CERT.pem
//!                                             # and sending NAME as SNI; HTTP/1.1 by ALPN
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let usage = || -> ! {
        eprintln!("usage: h1load ADDR REQUESTS CONNS [CERT.pem SERVER_NAME]");
        std::process::exit(2)
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
    let left = Arc::new(AtomicU64::new(total));
    let errors = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    rt.block_on(async {
        let mut tasks = Vec::new();
        for _ in 0..conns {
            let (left, errors, tls) = (left.clone(), errors.clone(), tls.clone());
            tasks.push(tokio::spawn(async move {
                if let Err(e) = one_connection(addr, tls, &left).await {
                    eprintln!("h1load: {e}");
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }));
        }
        for t in tasks {
            let _ = t.await;
        }
    });
    println!(
        "requests={} errors={} secs={:.3}",
        total - left.load(Ordering::Relaxed),
        errors.load(Ordering::Relaxed),
        started.elapsed().as_secs_f64()
    );
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
) -> std::io::Result<()> {
    let s = TcpStream::connect(addr).await?;
    s.set_nodelay(true)?;
    match tls {
        Some((connector, name)) => requests(connector.connect(name, s).await?, left).await,
        None => requests(s, left).await,
    }
}

/// Requests one after another over `s` while any are left to send.
async fn requests<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    left: &AtomicU64,
) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(16384);
    let mut tmp = [0u8; 16384];
    while left
        .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1))
        .is_ok()
    {
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

//! TLS helpers for the integration tests: a throwaway CA and leaf certificates made with
//! rcgen in a temporary directory, and a Rust TLS client (rustls + hyper) that reports which
//! certificate and protocol the server chose.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use rustls::RootCertStore;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

static DIRS: AtomicU32 = AtomicU32::new(0);

/// A temporary directory holding a CA and the certificates it signed; removed on drop.
pub struct Pki {
    pub dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
    pub ca_pem: PathBuf,
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Pki {
    pub fn new() -> Pki {
        let dir = std::env::temp_dir().join(format!(
            "switchyard-test-{}-{}",
            std::process::id(),
            DIRS.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "Switchyard Test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca_pem = dir.join("ca.pem");
        std::fs::write(&ca_pem, ca.pem()).unwrap();
        Pki { dir, ca, ca_pem }
    }

    /// A leaf for `names` (the first is also its CN), written as `FILE.pem` and `FILE.key`.
    pub fn leaf(&self, file: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let (cert, key) = self.leaf_pem(names);
        self.write(file, &cert, &key)
    }

    /// PEM text of a new leaf for `names` and its key.
    pub fn leaf_pem(&self, names: &[&str]) -> (String, String) {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(
            DnType::CommonName,
            names.first().copied().unwrap_or("no-name"),
        );
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    /// A leaf for `names` valid until `(year, month, day)` at midnight UTC, written as
    /// `FILE.pem` and `FILE.key`; and that moment in Unix seconds.
    pub fn leaf_until(
        &self,
        file: &str,
        names: &[&str],
        ymd: (i32, u8, u8),
    ) -> ((PathBuf, PathBuf), i64) {
        let mut params =
            CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.not_after = rcgen::date_time_ymd(ymd.0, ymd.1, ymd.2);
        let at = params.not_after.unix_timestamp();
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.ca).unwrap();
        (self.write(file, &cert.pem(), &key.serialize_pem()), at)
    }

    pub fn write(&self, file: &str, cert: &str, key: &str) -> (PathBuf, PathBuf) {
        let c = self.dir.join(format!("{file}.pem"));
        let k = self.dir.join(format!("{file}.key"));
        std::fs::write(&c, cert).unwrap();
        std::fs::write(&k, key).unwrap();
        (c, k)
    }
}

/// `[[listener.tls]]` entries for pairs.
pub fn tls_entries(pairs: &[(PathBuf, PathBuf)]) -> String {
    pairs
        .iter()
        .map(|(c, k)| {
            format!(
                "  [[listener.tls]]\n  cert = \"{}\"\n  key = \"{}\"\n",
                c.display(),
                k.display()
            )
        })
        .collect()
}

/// What a TLS request saw.
#[derive(Debug)]
pub struct TlsAnswer {
    pub status: StatusCode,
    pub headers: http::HeaderMap,
    pub body: String,
    /// DNS names of the certificate the server presented.
    pub cert_names: Vec<String>,
    pub alpn: Option<String>,
    pub version: http::Version,
}

/// A client config trusting `ca` with ALPN `alpn`.
pub fn client_config(ca: &Path, alpn: &[&str]) -> Arc<rustls::ClientConfig> {
    let mut roots = RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    cfg.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    Arc::new(cfg)
}

/// GET `path` over TLS with SNI `sni`, verifying against `ca`; HTTP/2 if the server picks
/// `h2` from `alpn`, else HTTP/1.1.
pub async fn https_get(
    addr: SocketAddr,
    ca: &Path,
    sni: &str,
    alpn: &[&str],
    path: &str,
) -> TlsAnswer {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let connector = TlsConnector::from(client_config(ca, alpn));
    let tls = tokio::time::timeout(
        Duration::from_secs(10),
        connector.connect(ServerName::try_from(sni.to_string()).unwrap(), tcp),
    )
    .await
    .expect("handshake in time")
    .expect("TLS handshake");
    let (_, conn) = tls.get_ref();
    let cert_names = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .map(|c| switchyard::tls::dns_names(c))
        .unwrap_or_default();
    let alpn = conn
        .alpn_protocol()
        .map(|p| String::from_utf8_lossy(p).into_owned());
    let req = Request::get(format!("https://{sni}{path}"))
        .header("host", sni)
        .body(Full::new(Bytes::new()))
        .unwrap();
    let resp = if alpn.as_deref() == Some("h2") {
        let (mut sender, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tls))
                .await
                .expect("h2 handshake");
        tokio::spawn(conn);
        let mut req = req;
        req.headers_mut().remove("host");
        sender.send_request(req).await.expect("response")
    } else {
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
            .await
            .expect("h1 handshake");
        tokio::spawn(conn);
        let (mut parts, body) = req.into_parts();
        parts.uri = path.parse().unwrap();
        sender
            .send_request(Request::from_parts(parts, body))
            .await
            .expect("response")
    };
    let version = resp.version();
    let (parts, body) = resp.into_parts();
    let body = body.collect().await.expect("body").to_bytes();
    TlsAnswer {
        status: parts.status,
        headers: parts.headers,
        body: String::from_utf8_lossy(&body).into_owned(),
        cert_names,
        alpn,
        version,
    }
}

/// Run a command with a time limit; panics (never skips) if the tool is missing.
pub fn run_tool(program: &str, args: &[&str], stdin: &[u8]) -> std::process::Output {
    use std::io::Write;
    use std::process::{Command, Stdio};
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("{program} is needed by this test and could not be started ({e}); scripts/test installs it")
        });
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin).unwrap();
    drop(input);
    let pid = child.id();
    // A watchdog: a hung tool is killed after 60 s, so the test fails instead of hanging.
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let watchdog = std::thread::spawn(move || {
        if rx.recv_timeout(Duration::from_secs(60)).is_err() {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
    });
    let out = child.wait_with_output().expect("tool output");
    let _ = tx.send(());
    let _ = watchdog.join();
    out
}

/// Like [`run_tool`], from async code (runs on a blocking thread).
pub async fn run_tool_async(program: &str, args: &[&str]) -> std::process::Output {
    let program = program.to_string();
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run_tool(&program, &refs, b"")
    })
    .await
    .unwrap()
}

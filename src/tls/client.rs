//! The client side, for pools that re-encrypt to their servers (`[pool.NAME] tls = {...}`):
//! verification against a given CA or the system roots, an optional client certificate
//! (mTLS), ALPN for the upstream protocol, and the explicit, loud opt-out of verification.

use std::path::PathBuf;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};

use super::{CertPair, TlsError, provider};

/// How a pool talks TLS to its servers.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct UpstreamTlsOptions {
    /// PEM file of the CAs to trust; `None`: the system roots.
    pub ca: Option<PathBuf>,
    /// SNI and the name verified; `None`: the server's IP address.
    pub server_name: Option<String>,
    /// Client certificate and key for mTLS.
    pub client: Option<CertPair>,
    /// Accept any server certificate. Never a default; logged loudly.
    pub insecure_skip_verify: bool,
}

fn read_certs(path: &PathBuf) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem = std::fs::read(path).map_err(|e| TlsError::Read {
        path: path.clone(),
        kind: e.kind(),
        cause: e.to_string(),
    })?;
    let certs: Vec<_> = CertificateDer::pem_slice_iter(&pem)
        .filter_map(Result::ok)
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { path: path.clone() });
    }
    Ok(certs)
}

/// Build the client configuration of a pool. `alpn` is what the pool speaks
/// (`["h2"]` or `["http/1.1"]`). `pool` names it in the warning about skipped verification.
pub fn client_config(
    pool: &str,
    opts: &UpstreamTlsOptions,
    alpn: &[&[u8]],
) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = if opts.insecure_skip_verify {
        tracing::warn!(
            pool,
            "INSECURE: tls.insecure_skip_verify = true: server certificates of this pool are NOT \
             verified; anyone on the path can impersonate its servers. Use tls.ca instead."
        );
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AcceptAnyCert(provider())))
    } else {
        let mut roots = RootCertStore::empty();
        match &opts.ca {
            Some(path) => {
                for c in read_certs(path)? {
                    roots.add(c).map_err(|e| {
                        TlsError::Config(format!(
                            "{}: not a usable CA certificate: {e}",
                            path.display()
                        ))
                    })?;
                }
            }
            None => {
                let found = rustls_native_certs::load_native_certs();
                let (added, _) = roots.add_parsable_certificates(found.certs);
                if added == 0 {
                    return Err(TlsError::Config(format!(
                        "pool {pool:?}: no system CA certificates found{}; set tls.ca",
                        found
                            .errors
                            .first()
                            .map(|e| format!(" ({e})"))
                            .unwrap_or_default()
                    )));
                }
            }
        }
        builder.with_root_certificates(roots)
    };
    let mut cfg = match &opts.client {
        None => builder.with_no_client_auth(),
        Some(pair) => {
            let chain = read_certs(&pair.cert)?;
            let key = PrivateKeyDer::from_pem_file(&pair.key).map_err(|e| TlsError::NoKey {
                path: pair.key.clone(),
                cause: e.to_string(),
            })?;
            builder
                .with_client_auth_cert(chain, key)
                .map_err(|e| TlsError::BadKey {
                    key: pair.key.clone(),
                    cause: e.to_string(),
                })?
        }
    };
    cfg.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Ok(Arc::new(cfg))
}

/// The name a connection to `addr` presents and verifies.
pub fn server_name_for(
    opts_name: Option<&str>,
    addr: std::net::SocketAddr,
) -> Result<ServerName<'static>, TlsError> {
    match opts_name {
        Some(n) => ServerName::try_from(n.to_string())
            .map_err(|_| TlsError::Config(format!("{n:?} is not a valid server name"))),
        None => Ok(ServerName::IpAddress(addr.ip().into())),
    }
}

/// `insecure_skip_verify`: accepts any certificate, still checks the handshake signatures
/// (so the connection is at least encrypted to whoever holds the presented key).
#[derive(Debug)]
struct AcceptAnyCert(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAnyCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

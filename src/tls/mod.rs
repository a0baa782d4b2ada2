//! TLS: certificates and keys from PEM files, the SNI resolver that picks one per handshake,
//! the server configuration (TLS 1.2 and 1.3, ALPN `h2` + `http/1.1`), certificate reload
//! when the files change, and the client configuration for re-encrypting to servers.
//!
//! Data flow: `config::read` calls [`load_pair`] at `check` time so a missing file, a key
//! that does not match or a certificate without a name is a config error with a path. At
//! start, `runtime` builds a [`SniResolver`] per `https` listener from the same pairs, hands
//! [`server_config`] to the serve loop, and runs [`watch`] to swap in new pairs when the files
//! change. Pools with `tls = { ... }` get a [`client_config`]. rustls with the `ring`
//! provider throughout; this module uses nothing else of ours.

mod cert;
mod client;
mod reload;
mod resolver;

use std::path::PathBuf;
use std::sync::Arc;

pub use cert::{CertPair, LoadedCert, dns_names, load_pair, not_after};
pub use client::{UpstreamTlsOptions, client_config, server_name_for};
pub use reload::{reload, watch};
pub use resolver::{CertStore, ServerConfigs, SniResolver, server_config};

/// What can go wrong with certificates and keys; each names the file an operator must fix.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {path}: {cause}")]
    Read {
        path: PathBuf,
        /// Why, for the help: a missing file and an unreadable one are fixed differently.
        kind: std::io::ErrorKind,
        cause: String,
    },
    #[error("{path} holds no PEM certificate")]
    NoCertificate { path: PathBuf },
    #[error("{path} holds no PEM private key: {cause}")]
    NoKey { path: PathBuf, cause: String },
    #[error("the key in {key} does not match the certificate in {cert}")]
    KeyMismatch { cert: PathBuf, key: PathBuf },
    #[error("the key in {key} cannot be used: {cause}")]
    BadKey { key: PathBuf, cause: String },
    #[error(
        "the certificate in {path} names no host (no DNS name in subjectAltName), so no client could verify it"
    )]
    NoName { path: PathBuf },
    #[error("TLS configuration: {0}")]
    Config(String),
}

/// The crypto provider everything here uses: rustls with ring.
pub fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

//! Choosing a certificate per TLS handshake from the client's SNI name, and the server
//! configuration around it.
//!
//! Exact names win over wildcards; `*.example.com` covers `a.example.com` but not
//! `example.com` or `a.b.example.com` (RFC 6125). A client without SNI, or with a name no
//! certificate covers, gets the first pair of the listener (nginx's default server). The store
//! sits behind an `ArcSwap`, so a reload swaps it while handshakes in progress keep theirs.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

use super::{LoadedCert, TlsError, provider};

/// The certificates of one listener, indexed by name.
#[derive(Debug)]
pub struct CertStore {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// `example.com` for a certificate naming `*.example.com`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    default: Arc<CertifiedKey>,
    /// The names of each pair, in file order (for logs).
    pub names: Vec<Vec<String>>,
    /// Each pair's leaf notAfter (Unix seconds), in file order, for the expiry metric.
    pub not_after: Vec<Option<i64>>,
    /// Each pair's certificate chain, in file order: what a reload compares to tell
    /// whether anything changed.
    chains: Vec<Vec<rustls::pki_types::CertificateDer<'static>>>,
}

impl CertStore {
    /// Index `certs`; the first is the default. `None` when `certs` is empty.
    pub fn new(certs: &[LoadedCert]) -> Option<CertStore> {
        let default = certs.first()?.key.clone();
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for c in certs {
            for name in &c.names {
                // On a name two pairs share, the first listed wins, as the default does.
                if let Some(parent) = name.strip_prefix("*.") {
                    wildcard
                        .entry(parent.to_string())
                        .or_insert_with(|| c.key.clone());
                } else {
                    exact.entry(name.clone()).or_insert_with(|| c.key.clone());
                }
            }
        }
        Some(CertStore {
            exact,
            wildcard,
            default,
            names: certs.iter().map(|c| c.names.clone()).collect(),
            not_after: certs.iter().map(|c| c.not_after).collect(),
            chains: certs.iter().map(|c| c.key.cert.clone()).collect(),
        })
    }

    /// Whether `other` serves the same certificates, in the same order.
    pub fn same_certificates(&self, other: &CertStore) -> bool {
        self.chains == other.chains
    }

    /// The pair for a client's SNI name (`None`: no SNI).
    pub fn find(&self, sni: Option<&str>) -> &Arc<CertifiedKey> {
        let Some(name) = sni else {
            return &self.default;
        };
        let lower;
        let name = if name.bytes().any(|b| b.is_ascii_uppercase()) {
            lower = name.to_ascii_lowercase();
            lower.as_str()
        } else {
            name
        };
        let name = name.strip_suffix('.').unwrap_or(name);
        if let Some(k) = self.exact.get(name) {
            return k;
        }
        if let Some((_, parent)) = name.split_once('.')
            && let Some(k) = self.wildcard.get(parent)
        {
            return k;
        }
        &self.default
    }
}

/// The rustls resolver of one listener; [`SniResolver::store`] swaps its certificates.
#[derive(Debug)]
pub struct SniResolver {
    current: ArcSwap<CertStore>,
}

impl SniResolver {
    pub fn new(store: CertStore) -> SniResolver {
        SniResolver {
            current: ArcSwap::from_pointee(store),
        }
    }

    /// Serve `store` from the next handshake on.
    pub fn store(&self, store: CertStore) {
        self.current.store(Arc::new(store));
    }

    /// The certificates now served.
    pub fn current(&self) -> Arc<CertStore> {
        self.current.load_full()
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current.load().find(hello.server_name()).clone())
    }
}

/// The server side of an `https` listener: TLS 1.3 and 1.2, ALPN `h2` then `http/1.1`,
/// certificates from `resolver`, session resumption by tickets and a session cache.
///
/// The cipher suite is AES-128-GCM (with SHA-256) when the client offers it, as Go's and
/// Caddy's servers choose: the same security level for TLS as AES-256, 10 AES rounds instead
/// of 14, and a key schedule on SHA-256, which CPUs with the SHA extensions hash in hardware
/// (SHA-384's is software on AMD with ring). A client that lists ChaCha20-Poly1305 before
/// any AES-GCM suite most likely has no AES instructions and keeps its own order; so do all
/// clients when this machine has none ([`ServerConfigs::for_hello`]).
pub fn server_config(resolver: Arc<SniResolver>) -> Result<ServerConfigs, TlsError> {
    let mut cfg = ServerConfig::builder_with_provider(Arc::new(server_provider()))
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg.ticketer = rustls::crypto::ring::Ticketer::new()
        .map_err(|e| TlsError::Config(format!("session tickets: {e}")))?;
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(20_000);
    // Both share the resolver, the ticket keys and the session cache: a session made under
    // one resumes under the other.
    let client_order = Arc::new(cfg.clone());
    cfg.ignore_client_order = aes_in_hardware();
    Ok(ServerConfigs {
        server_order: Arc::new(cfg),
        client_order,
    })
}

/// The two configurations of a listener, one chosen per handshake from the ClientHello.
#[derive(Clone, Debug)]
pub struct ServerConfigs {
    /// AES-128-GCM first, whatever the client's order.
    pub server_order: Arc<ServerConfig>,
    /// The client's order (a client that prefers ChaCha20).
    pub client_order: Arc<ServerConfig>,
}

impl ServerConfigs {
    /// Go's rule (`crypto/tls`, `aesgcmPreferred`): the first AEAD the client lists decides;
    /// ChaCha20 there means the client has no AES instructions, so its order is kept.
    pub fn for_hello(&self, hello: &ClientHello<'_>) -> &Arc<ServerConfig> {
        use rustls::CipherSuite as C;
        let first = hello.cipher_suites().iter().find(|s| {
            matches!(
                s,
                C::TLS13_AES_128_GCM_SHA256
                    | C::TLS13_AES_256_GCM_SHA384
                    | C::TLS13_CHACHA20_POLY1305_SHA256
                    | C::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256
                    | C::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384
                    | C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
                    | C::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256
                    | C::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
                    | C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256
            )
        });
        match first {
            Some(
                C::TLS13_CHACHA20_POLY1305_SHA256
                | C::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
                | C::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
            ) => &self.client_order,
            _ => &self.server_order,
        }
    }
}

/// ring's suites (those rustls enables by default), AES-128-GCM first, then AES-256-GCM,
/// then ChaCha20-Poly1305, in each TLS version.
fn server_provider() -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::cipher_suite as cs;
    rustls::crypto::CryptoProvider {
        cipher_suites: vec![
            cs::TLS13_AES_128_GCM_SHA256,
            cs::TLS13_AES_256_GCM_SHA384,
            cs::TLS13_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
            cs::TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
            cs::TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
        ],
        ..(*provider()).clone()
    }
}

/// Whether this CPU encrypts AES-GCM in hardware (else ChaCha20 is as fast, and every
/// client keeps its order).
fn aes_in_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    return std::arch::is_x86_feature_detected!("aes")
        && std::arch::is_x86_feature_detected!("pclmulqdq");
    #[cfg(target_arch = "aarch64")]
    return std::arch::is_aarch64_feature_detected!("aes");
    #[allow(unreachable_code)]
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::{CertPair, load_pair};

    fn cert(dir: &std::path::Path, file: &str, names: &[&str]) -> LoadedCert {
        let key = rcgen::KeyPair::generate().unwrap();
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .unwrap();
        let c = params.self_signed(&key).unwrap();
        let pair = CertPair {
            cert: dir.join(format!("{file}.pem")),
            key: dir.join(format!("{file}.key")),
        };
        std::fs::write(&pair.cert, c.pem()).unwrap();
        std::fs::write(&pair.key, key.serialize_pem()).unwrap();
        load_pair(&pair).unwrap()
    }

    #[test]
    fn exact_names_beat_wildcards_and_unknown_names_get_the_first_pair() {
        let dir = std::env::temp_dir().join(format!("switchyard-resolver-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let certs = [
            cert(&dir, "a", &["a.example.com", "example.com"]),
            cert(&dir, "wild", &["*.example.com"]),
            cert(&dir, "b", &["b.example.com"]),
            cert(&dir, "dup", &["b.example.com"]),
        ];
        let _ = std::fs::remove_dir_all(&dir);
        let store = CertStore::new(&certs).unwrap();
        let is = |sni: Option<&str>, i: usize| Arc::ptr_eq(store.find(sni), &certs[i].key);
        assert!(is(Some("a.example.com"), 0));
        assert!(is(Some("example.com"), 0));
        assert!(
            is(Some("b.example.com"), 2),
            "exact beats wildcard; first of two wins"
        );
        assert!(is(Some("c.example.com"), 1));
        assert!(
            is(Some("C.Example.COM."), 1),
            "case and a trailing dot do not matter"
        );
        assert!(
            is(Some("x.c.example.com"), 0),
            "a wildcard covers one label only"
        );
        assert!(is(Some("other.org"), 0));
        assert!(is(None, 0));
        assert_eq!(store.names[1], ["*.example.com"]);
    }
}

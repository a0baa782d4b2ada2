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
        })
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
pub fn server_config(resolver: Arc<SniResolver>) -> Result<Arc<ServerConfig>, TlsError> {
    let mut cfg = ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    cfg.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    cfg.ticketer = rustls::crypto::ring::Ticketer::new()
        .map_err(|e| TlsError::Config(format!("session tickets: {e}")))?;
    cfg.session_storage = rustls::server::ServerSessionMemoryCache::new(20_000);
    Ok(Arc::new(cfg))
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

//! One certificate chain and its key, read from PEM files and checked: the key parses and
//! matches the leaf certificate, and the leaf names at least one DNS host.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::sign::CertifiedKey;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::{TlsError, provider};

/// Where a certificate chain and its key live.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertPair {
    /// Full chain, leaf first, PEM.
    pub cert: PathBuf,
    /// The leaf's private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// A pair ready to serve.
#[derive(Debug, Clone)]
pub struct LoadedCert {
    pub key: Arc<CertifiedKey>,
    /// DNS names from the leaf's subjectAltName, lower case; wildcards as `*.example.com`.
    pub names: Vec<String>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        path: path.to_path_buf(),
        cause: e.to_string(),
    })
}

/// Read and check one pair.
pub fn load_pair(pair: &CertPair) -> Result<LoadedCert, TlsError> {
    let cert_pem = read(&pair.cert)?;
    let key_pem = read(&pair.key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsError::NoCertificate {
            path: pair.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::NoKey {
        path: pair.key.clone(),
        cause: e.to_string(),
    })?;
    let names = dns_names(&chain[0]);
    let key = CertifiedKey::from_der(chain, key, &provider()).map_err(|e| match e {
        rustls::Error::InconsistentKeys(_) => TlsError::KeyMismatch {
            cert: pair.cert.clone(),
            key: pair.key.clone(),
        },
        other => TlsError::BadKey {
            key: pair.key.clone(),
            cause: other.to_string(),
        },
    })?;
    if names.is_empty() {
        return Err(TlsError::NoName {
            path: pair.cert.clone(),
        });
    }
    Ok(LoadedCert {
        key: Arc::new(key),
        names,
    })
}

/// One DER element: tag, contents, and what follows it.
fn der_next(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&len0, rest) = rest.split_first()?;
    let (len, rest) = if len0 < 0x80 {
        (len0 as usize, rest)
    } else {
        let n = (len0 & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n].iter().fold(0usize, |l, &b| (l << 8) | b as usize);
        (len, &rest[n..])
    };
    if rest.len() < len {
        return None;
    }
    Some((tag, &rest[..len], &rest[len..]))
}

/// The DNS names of a certificate's subjectAltName extension (lower case), in order.
///
/// A short DER walk instead of a full X.509 parser: Certificate → tbsCertificate → [3]
/// extensions → the extension with OID 2.5.29.17 → GeneralNames → dNSName ([2]). The common
/// name is ignored, as browsers and rustls's verifier ignore it. Malformed input gives fewer
/// names, never a panic.
pub fn dns_names(cert: &[u8]) -> Vec<String> {
    const SAN_OID: &[u8] = &[0x55, 0x1d, 0x11];
    let mut out = Vec::new();
    let Some((0x30, cert, _)) = der_next(cert) else {
        return out;
    };
    let Some((0x30, tbs, _)) = der_next(cert) else {
        return out;
    };
    let mut rest = tbs;
    while let Some((tag, content, r)) = der_next(rest) {
        rest = r;
        if tag != 0xa3 {
            continue;
        }
        let Some((0x30, mut exts, _)) = der_next(content) else {
            continue;
        };
        while let Some((0x30, ext, r)) = der_next(exts) {
            exts = r;
            let Some((0x06, oid, mut after)) = der_next(ext) else {
                continue;
            };
            if oid != SAN_OID {
                continue;
            }
            if let Some((0x01, _, r)) = der_next(after) {
                after = r; // the `critical` flag
            }
            let Some((0x04, octets, _)) = der_next(after) else {
                continue;
            };
            let Some((0x30, mut names, _)) = der_next(octets) else {
                continue;
            };
            while let Some((tag, value, r)) = der_next(names) {
                names = r;
                if tag == 0x82
                    && let Ok(s) = std::str::from_utf8(value)
                {
                    out.push(s.to_ascii_lowercase());
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_gives_no_names_and_no_panic() {
        for input in [
            &[][..],
            &[0x30],
            &[0x30, 0x84, 0xff, 0xff, 0xff, 0xff],
            &[0x30, 0x03, 0x30, 0x01],
            &[0xa3, 0x80, 0x00],
        ] {
            assert!(dns_names(input).is_empty());
        }
    }

    #[test]
    fn long_lengths_are_read() {
        // SEQUENCE with a two-byte length holding one OCTET STRING of 200 bytes.
        let mut v = vec![0x30, 0x82, 0x00, 0xcb, 0x04, 0x81, 0xc8];
        v.extend(std::iter::repeat_n(7u8, 200));
        let (tag, content, rest) = der_next(&v).unwrap();
        assert_eq!((tag, content.len(), rest.len()), (0x30, 203, 0));
    }
}

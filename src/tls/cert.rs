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
    /// The leaf's notAfter, in seconds since the Unix epoch (`None`: not readable).
    pub not_after: Option<i64>,
}

fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|e| TlsError::Read {
        path: path.to_path_buf(),
        kind: e.kind(),
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
    let not_after = key.cert.first().and_then(|leaf| not_after(leaf));
    Ok(LoadedCert {
        key: Arc::new(key),
        names,
        not_after,
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

/// When a certificate stops being valid: its validity's notAfter, in seconds since the Unix
/// epoch (before 1970 is negative).
///
/// The same short DER walk as [`dns_names`]: tbsCertificate → (version) → serialNumber →
/// signature → issuer → validity → notAfter, a UTCTime (`YYMMDDHHMMSSZ`, years 1950–2049,
/// RFC 5280 §4.1.2.5.1) or a GeneralizedTime (`YYYYMMDDHHMMSSZ`). `None` for anything else.
pub fn not_after(cert: &[u8]) -> Option<i64> {
    let (0x30, cert, _) = der_next(cert)? else {
        return None;
    };
    let (0x30, tbs, _) = der_next(cert)? else {
        return None;
    };
    let mut rest = tbs;
    let (tag, _, r) = der_next(rest)?;
    if tag == 0xa0 {
        rest = r; // the version
    }
    for expected in [0x02, 0x30, 0x30] {
        // serialNumber, signature, issuer
        let (tag, _, r) = der_next(rest)?;
        if tag != expected {
            return None;
        }
        rest = r;
    }
    let (0x30, validity, _) = der_next(rest)? else {
        return None;
    };
    let (_, _, after) = der_next(validity)?; // notBefore
    let (tag, time, _) = der_next(after)?;
    let digits = std::str::from_utf8(time).ok()?.strip_suffix('Z')?;
    if !digits.is_ascii() {
        return None;
    }
    let (year, rest) = match (tag, digits.len()) {
        (0x17, 12) => {
            let yy: i64 = digits[..2].parse().ok()?;
            (if yy >= 50 { 1900 + yy } else { 2000 + yy }, &digits[2..])
        }
        (0x18, 14) => (digits[..4].parse().ok()?, &digits[4..]),
        _ => return None,
    };
    if !rest.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = |i: usize| -> i64 { rest[i..i + 2].parse().unwrap_or(0) };
    let (month, day, hour, minute, second) = (n(0), n(2), n(4), n(6), n(8));
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 {
        return None;
    }
    Some(days_from_civil(year, month, day) * 86_400 + hour * 3_600 + minute * 60 + second)
}

/// Days from 1970-01-01 to a date of the proleptic Gregorian calendar (Howard Hinnant's
/// `days_from_civil`).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_count_from_the_epoch() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2038, 1, 19), 24_855);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn not_after_is_read_from_both_time_forms_and_garbage_gives_none() {
        let validity = |tag: u8, text: &str| {
            let mut tbs = vec![0xa0, 0x03, 0x02, 0x01, 0x02]; // [0] version 3
            tbs.extend([0x02, 0x01, 0x07]); // serial 7
            tbs.extend([0x30, 0x00, 0x30, 0x00]); // signature, issuer (empty here)
            let mut v = vec![0x17, 13];
            v.extend(b"250101000000Z");
            v.push(tag);
            v.push(text.len() as u8);
            v.extend(text.as_bytes());
            tbs.extend([0x30, v.len() as u8]);
            tbs.extend(v);
            let mut cert = vec![0x30, tbs.len() as u8];
            cert.extend(tbs);
            let mut outer = vec![0x30, cert.len() as u8];
            outer.extend(cert);
            outer
        };
        assert_eq!(
            not_after(&validity(0x17, "380119031407Z")),
            Some(2_147_483_647)
        );
        assert_eq!(
            not_after(&validity(0x18, "20380119031407Z")),
            Some(2_147_483_647)
        );
        assert_eq!(
            not_after(&validity(0x17, "491231235959Z")),
            Some(2_524_607_999)
        );
        assert_eq!(
            not_after(&validity(0x17, "500101000000Z")),
            Some(-631_152_000)
        );
        assert_eq!(not_after(&validity(0x17, "381319031407Z")), None);
        assert_eq!(not_after(&validity(0x17, "3801190314Z")), None);
        assert_eq!(not_after(&validity(0x18, "2038011903140Z")), None);
        assert_eq!(not_after(&[0x30, 0x02, 0x30, 0x00]), None);
    }

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

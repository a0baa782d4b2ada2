//! Validation of the TLS and protocol keys: `[[listener.tls]]`, `redirect_https` and `hsts`
//! on listeners; `upstream_protocol`, `tls = {...}` and `tunnel_idle_timeout` on pools.
//!
//! Certificates and keys are loaded here, at `check` time, so that a missing file, a key that
//! does not match its certificate or a certificate that names no host is reported with the
//! line of the config that points at it and the path of the file.

use std::path::Path;
use std::time::Duration;

use toml::Spanned;

use super::file::{ListenerFile, PoolFile};
use super::plan::{Protocol, UpstreamProtocol};
use super::validate::Checker;
use crate::tls::{CertPair, TlsError, UpstreamTlsOptions};

const CERT_HELP: &str = "write cert = \"PATH\" (PEM, full chain, leaf first) and key = \"PATH\" (PEM private key of that leaf); make one with: openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=example.com -addext subjectAltName=DNS:example.com -keyout key.pem -out cert.pem";

/// The certificate pairs and HSTS max-age of a listener. `shaky`: the listener lost a key to
/// a shape error (it may be a misspelt `tls`).
pub(crate) fn listener_tls(
    c: &mut Checker<'_>,
    f: &ListenerFile,
    protocol: Option<Protocol>,
    shaky: bool,
) -> (Vec<CertPair>, Option<Duration>) {
    let mut pairs = Vec::new();
    if matches!(protocol, Some(Protocol::Tcp | Protocol::Udp)) {
        // validate/l4.rs says these keys do not belong there; loading the files would only
        // add errors about keys that should go.
        return (pairs, None);
    }
    for entry in &f.tls {
        let t = entry.get_ref();
        let cert = c.required(
            &t.cert,
            entry.span(),
            "cert",
            "[[listener.tls]] has no cert",
            CERT_HELP,
        );
        let key = c.required(
            &t.key,
            entry.span(),
            "key",
            "[[listener.tls]] has no key",
            CERT_HELP,
        );
        let (Some(cert), Some(key)) = (cert, key) else {
            continue;
        };
        let pair = CertPair {
            cert: c.path(cert.get_ref()),
            key: c.path(key.get_ref()),
        };
        if let Err(e) = crate::tls::load_pair(&pair) {
            // Point at the key line when the key is what's wrong.
            let span = match &e {
                TlsError::Read { path, .. } if *path == pair.key => key.span(),
                TlsError::NoKey { .. } | TlsError::BadKey { .. } => key.span(),
                _ => cert.span(),
            };
            let help = match &e {
                TlsError::KeyMismatch { .. } => {
                    "use the key the certificate was made for (compare `openssl x509 -noout -pubkey -in CERT` with `openssl pkey -pubout -in KEY`)"
                }
                TlsError::NoName { .. } => {
                    "issue the certificate with subjectAltName DNS names, e.g. -addext subjectAltName=DNS:example.com,DNS:*.example.com"
                }
                _ => CERT_HELP,
            };
            c.error(span, e.to_string(), help);
        }
        pairs.push(pair);
    }
    match protocol {
        Some(Protocol::Https) if f.tls.is_empty() && !shaky => c.error(
            f.protocol.as_ref().map_or(0..0, |p| p.span()),
            "an https listener needs at least one certificate",
            "add [[listener.tls]] with cert = \"PATH\" and key = \"PATH\" below this listener",
        ),
        Some(Protocol::Http) if !f.tls.is_empty() => c.error(
            f.tls[0].span(),
            "[[listener.tls]] on a listener that does not speak TLS",
            "set protocol = \"https\" on this listener, or remove the [[listener.tls]] entries",
        ),
        _ => {}
    }
    if let Some(r) = &f.redirect_https
        && *r.get_ref()
        && protocol == Some(Protocol::Https)
    {
        c.error(
            r.span(),
            "redirect_https on an https listener would redirect to itself forever",
            "put redirect_https = true on the plain http listener",
        );
    }
    let hsts = f.hsts.as_ref().and_then(|h| {
        let d = c.duration(h, "hsts")?;
        if protocol == Some(Protocol::Http) {
            c.error(
                h.span(),
                "hsts on a plain http listener: browsers ignore Strict-Transport-Security over http",
                "move hsts = \"1y\" to the https listener",
            );
        }
        Some(d)
    });
    (pairs, hsts)
}

fn opt_path(c: &Checker<'_>, v: &Option<Spanned<String>>) -> Option<std::path::PathBuf> {
    v.as_ref().map(|p| c.path(p.get_ref()))
}

/// A pool's `upstream_protocol`, `tls` and `tunnel_idle_timeout`.
pub(crate) fn pool_transport(
    c: &mut Checker<'_>,
    pool: &str,
    f: &PoolFile,
) -> (
    Option<UpstreamProtocol>,
    Option<UpstreamTlsOptions>,
    Duration,
) {
    let protocol = match &f.upstream_protocol {
        None => Some(UpstreamProtocol::H1),
        Some(p) => match p.get_ref().as_str() {
            "h1" | "http/1.1" => Some(UpstreamProtocol::H1),
            "h2" => Some(UpstreamProtocol::H2),
            "h2c" => Some(UpstreamProtocol::H2c),
            other => {
                c.error(
                    p.span(),
                    format!("upstream_protocol {other:?} is not understood"),
                    "use \"h1\" (default), \"h2\" (HTTP/2; over TLS when the pool has tls) or \"h2c\" (cleartext HTTP/2)",
                );
                None
            }
        },
    };
    let tunnel_idle_timeout = c.positive_duration(
        &f.tunnel_idle_timeout,
        "tunnel_idle_timeout",
        Duration::from_secs(3600),
        "write e.g. tunnel_idle_timeout = \"1h\"; zero would close every WebSocket at once",
    );
    let Some(t) = &f.tls else {
        return (protocol, None, tunnel_idle_timeout);
    };
    let tf = t.get_ref();
    if protocol == Some(UpstreamProtocol::H2c) {
        c.error(
            f.upstream_protocol.as_ref().map_or(t.span(), |p| p.span()),
            "upstream_protocol = \"h2c\" is cleartext, but the pool has tls",
            "use upstream_protocol = \"h2\" for HTTP/2 over TLS",
        );
    }
    let client = match (&tf.client_cert, &tf.client_key) {
        (Some(cert), Some(key)) => Some(CertPair {
            cert: c.path(cert.get_ref()),
            key: c.path(key.get_ref()),
        }),
        (None, None) => None,
        // One of the two cut for a shape error: that error says it.
        (Some(_), None) | (None, Some(_)) if c.shaky(t.span()) => None,
        (Some(s), None) | (None, Some(s)) => {
            c.error(
                s.span(),
                "client_cert and client_key go together",
                "give both client_cert = \"PATH\" and client_key = \"PATH\", or neither",
            );
            None
        }
    };
    let opts = UpstreamTlsOptions {
        ca: opt_path(c, &tf.ca),
        server_name: tf.server_name.as_ref().map(|n| n.get_ref().clone()),
        client,
        insecure_skip_verify: tf
            .insecure_skip_verify
            .as_ref()
            .is_some_and(|v| *v.get_ref()),
    };
    if let Some(n) = &tf.server_name
        && rustls_pki_types::ServerName::try_from(n.get_ref().as_str()).is_err()
    {
        c.error(
            n.span(),
            format!("server_name {:?} is not a host name", n.get_ref()),
            "write the name the servers' certificates carry, e.g. \"backend.internal\"",
        );
    }
    if let Err(e) = crate::tls::client_config(pool, &opts, &[]) {
        let is = |v: &Option<Spanned<String>>, p: &Path| {
            v.as_ref().is_some_and(|x| c.path(x.get_ref()) == p)
        };
        let span = match &e {
            TlsError::Read { path, .. } | TlsError::NoCertificate { path } => {
                [&tf.ca, &tf.client_cert, &tf.client_key]
                    .into_iter()
                    .find(|v| is(v, path))
                    .and_then(|v| v.as_ref().map(|x| x.span()))
            }
            TlsError::NoKey { .. } | TlsError::BadKey { .. } => {
                tf.client_key.as_ref().map(|x| x.span())
            }
            _ => None,
        }
        .unwrap_or(t.span());
        c.error(
            span,
            format!("pool {pool:?} tls: {e}"),
            "ca = \"PATH\" is a PEM file of CA certificates; client_cert/client_key are PEM files of one pair",
        );
    }
    (protocol, Some(opts), tunnel_idle_timeout)
}

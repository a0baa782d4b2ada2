//! HTTPS: the serve loop of `protocol = "https"` listeners, and the two listener policies
//! that go with TLS: `redirect_https` (308 to the https URL) and `hsts`.
//!
//! A connection is accepted and admitted under the listener's limits (`life::admit`), the
//! TLS handshake runs in its own task (bounded by `tls_handshake_timeout` and by the
//! `client_header_timeout` counted from the accept; a connection still in its handshake is
//! idle and may be closed to make room), so a slow client holds nothing of the accept loop,
//! and the decrypted stream goes to the direct path or to hyper as cleartext connections
//! do: ALPN `h2` gets HTTP/2, `http/1.1` or no ALPN gets HTTP/1.1. Requests then take the common path,
//! [`super::handle`], with `Site::scheme = "https"` (so `X-Forwarded-Proto: https`). With
//! `accept_proxy_protocol`, the PROXY header is read before the handshake (`proxy_in.rs`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use rustls::server::Acceptor;
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::LazyConfigAcceptor;

use super::Site;
use super::body::{ProxyBody, full};
use super::headers::request_host;
use super::life::{self, Life};
use super::transport::SendTimed;
use crate::guard::ConnStats;
use crate::shutdown::Shutdown;
use crate::tls::ServerConfigs;

/// Accept TLS connections on `listener` and serve them with the current `site` until
/// `shutdown` fires; then stop accepting (serving what the kernel already queued, as
/// [`super::serve`] does) and give open connections `grace` to finish.
pub async fn serve_tls(
    listener: Arc<TcpListener>,
    site: Arc<ArcSwap<Site>>,
    tls: ServerConfigs,
    shutdown: Shutdown,
    grace: Duration,
) {
    let l = super::h1::Listener {
        site,
        tunnels: super::Tunnels::default(),
        direct: super::h1::DirectConns::default(),
    };
    let start = |stream: TcpStream, client: SocketAddr| {
        tls_connection(stream, client, l.clone(), tls.clone())
    };
    loop {
        tokio::select! {
            accepted = super::accept(&listener, &l) => {
                match accepted {
                    Ok((stream, client)) => start(stream, client),
                    Err(e) => {
                        crate::warn_every!(Duration::from_secs(10), "accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                    }
                }
            }
            _ = shutdown.stopped() => break,
        }
    }
    for (stream, client) in crate::proxy::listen::last_accepts(&listener) {
        start(stream, client);
    }
    drop(listener);
    super::drain(&l, grace).await;
}

/// One accepted connection: admitted under the listener's limits (after its PROXY header
/// when the listener takes one, with the client it names), the TLS handshake (bounded),
/// then the direct path for HTTP/1.1 (or no ALPN) when the site takes it, else hyper (ALPN
/// h2 always).
fn tls_connection(
    mut stream: TcpStream,
    peer: SocketAddr,
    l: super::h1::Listener,
    tls: ServerConfigs,
) {
    let accepted = tokio::time::Instant::now();
    let _ = stream.set_nodelay(true);
    let site = l.site.load_full();
    let mut admitted = None;
    if site.proxy_in.is_none() {
        let Some(pair) = life::admit(&site, stream, peer, true) else {
            return;
        };
        (stream, admitted) = (pair.0, Some(pair.1));
    }
    tokio::spawn(async move {
        // A PROXY header, when the listener takes one, comes before TLS.
        let policy = site.proxy_in.clone();
        let Some(client) = super::proxy_in::client_of(policy.as_deref(), &mut stream, peer).await
        else {
            return;
        };
        let permit = match admitted {
            Some(p) => p,
            None => match life::admit(&site, stream, client, true) {
                Some((s, p)) => {
                    stream = s;
                    p
                }
                None => return,
            },
        };
        let life = Life::new(permit, accepted, &site.limits);
        let stats = site.stats.clone();
        let handshake_by =
            (accepted + site.limits.tls_handshake_timeout).min(life.first_deadline());
        // The ClientHello first, to choose the configuration (the cipher suite order).
        let handshake = async {
            let start = LazyConfigAcceptor::new(Acceptor::default(), stream).await?;
            let config = tls.for_hello(&start.client_hello()).clone();
            start.into_stream(config).await
        };
        let handshake = tokio::time::timeout_at(handshake_by, handshake);
        let tls = tokio::select! {
            r = handshake => match r {
                Ok(Ok(s)) => s,
                Ok(Err(e)) => {
                    stats.tls_failures.fetch_add(1, Ordering::Relaxed);
                    tracing::debug!(%client, "TLS handshake failed: {e}");
                    return;
                }
                Err(_) => {
                    stats.tls_failures.fetch_add(1, Ordering::Relaxed);
                    ConnStats::count(&life.stats().header_timeouts);
                    tracing::debug!(%client, "TLS handshake timed out");
                    return;
                }
            },
            // Still in its handshake, the connection is idle: a full listener may take it.
            _ = life.permit.reused() => return,
        };
        stats.tls_handshakes.fetch_add(1, Ordering::Relaxed);
        let h2 = tls.get_ref().1.alpn_protocol() == Some(b"h2");
        let io = super::stats::CountedIo::new(tls, &stats);
        let io = SendTimed::new(io, site.limits.send_timeout);
        let (_open, stopping) = l.direct.track();
        if site.direct && !h2 {
            return super::h1::serve(io, client, &l, life, stopping).await;
        }
        life::drive(io, client, (&l.site, &l.tunnels), life, stopping).await;
    });
}

/// The https URL of a request: same host and path, scheme https, `port` unless 443.
pub fn https_url<B>(req: &Request<B>, port: u16) -> Option<String> {
    let host = request_host(req.headers(), req.uri())?;
    let pq = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    https_url_of(host, port, pq)
}

/// The https URL for `host` (without port), `port` unless 443, and the path and query.
pub fn https_url_of(host: &str, port: u16, pq: &str) -> Option<String> {
    if host.is_empty() {
        return None;
    }
    let host = if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_string()
    };
    let authority = if port == 443 {
        host
    } else {
        format!("{host}:{port}")
    };
    // Only a valid authority goes into Location: the Host header is the client's text.
    authority.parse::<http::uri::Authority>().ok()?;
    Some(format!("https://{authority}{pq}"))
}

/// `redirect_https`: 308 Permanent Redirect (method and body kept, unlike 301) to the https
/// URL, or 400 when the request names no usable host.
pub fn redirect<B>(
    site: &Site,
    client: SocketAddr,
    req: &Request<B>,
    port: u16,
) -> Response<ProxyBody> {
    let started = Instant::now();
    let resp = match https_url(req, port).and_then(|u| HeaderValue::from_str(&u).ok()) {
        Some(location) => {
            let mut r = Response::new(full(Bytes::new()));
            *r.status_mut() = StatusCode::PERMANENT_REDIRECT;
            r.headers_mut().insert(header::LOCATION, location);
            r
        }
        None => {
            let mut r = Response::new(full("400 Bad Request: no host to redirect to\n"));
            *r.status_mut() = StatusCode::BAD_REQUEST;
            r
        }
    };
    let target = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
    let host = super::view::RequestView::host(req).unwrap_or("");
    super::stats::Answered {
        row: &site.router.none_row,
        listener: &site.listener,
        client,
        method: req.method().as_str().as_bytes(),
        target: target.as_bytes(),
        protocol: if req.version() == http::Version::HTTP_2 {
            "HTTP/2.0"
        } else {
            "HTTP/1.1"
        },
        host: host.as_bytes(),
        referer: b"",
        user_agent: b"",
        status: resp.status().as_u16(),
        body_bytes: 0,
        upstream: None,
        attempts: 0,
        upstream_connect: None,
        upstream_header: None,
        started,
    }
    .done(&site.log);
    resp
}

/// The `Strict-Transport-Security` value for a max-age.
pub fn hsts_value(max_age: Duration) -> HeaderValue {
    HeaderValue::from_str(&format!("max-age={}", max_age.as_secs()))
        .unwrap_or_else(|_| HeaderValue::from_static("max-age=31536000"))
}

/// Add `Strict-Transport-Security` unless the server already set one.
pub fn with_hsts(hsts: Option<&HeaderValue>, mut resp: Response<ProxyBody>) -> Response<ProxyBody> {
    if let Some(v) = hsts {
        resp.headers_mut()
            .entry(header::STRICT_TRANSPORT_SECURITY)
            .or_insert_with(|| v.clone());
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(host: &str, path: &str) -> Request<()> {
        Request::get(path).header("host", host).body(()).unwrap()
    }

    #[test]
    fn https_urls_keep_host_and_path() {
        assert_eq!(
            https_url(&req("example.com:8080", "/a?b=1"), 443).as_deref(),
            Some("https://example.com/a?b=1")
        );
        assert_eq!(
            https_url(&req("example.com", "/"), 8443).as_deref(),
            Some("https://example.com:8443/")
        );
        assert_eq!(
            https_url(&req("[::1]:80", "/x"), 443).as_deref(),
            Some("https://[::1]/x")
        );
        assert_eq!(https_url(&req("bad host/", "/"), 443), None);
    }

    #[test]
    fn hsts_is_max_age_in_seconds() {
        assert_eq!(
            hsts_value(Duration::from_secs(365 * 86400)),
            "max-age=31536000"
        );
    }
}

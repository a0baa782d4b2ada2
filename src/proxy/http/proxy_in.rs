//! The PROXY protocol in front of `http` and `https` listeners (`accept_proxy_protocol =
//! true` with `trusted_proxies`), as nginx's `listen … proxy_protocol` and HAProxy's
//! `accept-proxy`.
//!
//! Data flow: the accept loops (`serve` in `mod.rs`, `serve_tls` in `tls_serve.rs`) hand each
//! new connection to [`ProxyIn::client`] before hyper, and before the TLS handshake on an
//! https listener. It refuses a peer outside `trusted_proxies`, reads exactly one v1 or v2
//! header ([`proxy_protocol::read_header_exact`], which leaves the HTTP or TLS bytes in the
//! socket), and returns the address the header carries. That address is then *the* client
//! for the connection's requests: `X-Forwarded-For`, `X-Real-IP`, `ip_hash` / `hash` on
//! `client_ip`, `source_ip` stickiness and the access log all read it from there. An
//! untrusted peer, or a malformed, oversized, incomplete or late header, closes the
//! connection and is counted; nothing of it reaches hyper or a server. v2 `LOCAL` and v1
//! `UNKNOWN` (health checks of the proxy in front) keep the peer's own address.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::net::TcpStream;

use crate::config::Cidr;
use crate::proxy::proxy_protocol::{self, Header};

/// How long a trusted peer may take to send its header (as on TCP listeners).
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);

/// Counters of one listener's PROXY headers.
#[derive(Debug, Default)]
pub struct ProxyInStats {
    /// Headers read and believed (including `LOCAL` / `UNKNOWN`).
    pub accepted: AtomicU64,
    /// Connections closed because the peer is not in `trusted_proxies`.
    pub untrusted: AtomicU64,
    /// Connections closed because the header was malformed, missing, cut short or late.
    pub malformed: AtomicU64,
}

impl ProxyInStats {
    pub fn accepted(&self) -> u64 {
        self.accepted.load(Ordering::Relaxed)
    }
    pub fn untrusted(&self) -> u64 {
        self.untrusted.load(Ordering::Relaxed)
    }
    pub fn malformed(&self) -> u64 {
        self.malformed.load(Ordering::Relaxed)
    }
}

/// A listener's PROXY-protocol policy: who may send the header, and its counters.
#[derive(Debug)]
pub struct ProxyIn {
    pub listener: String,
    pub trusted: Vec<Cidr>,
    pub stats: Arc<ProxyInStats>,
}

impl ProxyIn {
    /// The client of a connection from `peer`: the source its PROXY header names (or `peer`
    /// for `LOCAL` / `UNKNOWN`). `None` when the connection must be closed: untrusted peer,
    /// bad or late header. Consumes exactly the header from `stream`.
    pub async fn client(&self, stream: &mut TcpStream, peer: SocketAddr) -> Option<SocketAddr> {
        if !self.trusted.iter().any(|b| b.contains(peer.ip())) {
            self.stats.untrusted.fetch_add(1, Ordering::Relaxed);
            crate::warn_every!(Duration::from_secs(10), listener = %self.listener, %peer, "closed: peer is not in trusted_proxies");
            return None;
        }
        match proxy_protocol::read_header_exact(stream, HEADER_TIMEOUT).await {
            Ok(header) => {
                self.stats.accepted.fetch_add(1, Ordering::Relaxed);
                Some(match header {
                    Header::Proxied { source, .. } => source,
                    Header::Local => peer,
                })
            }
            Err(e) => {
                self.stats.malformed.fetch_add(1, Ordering::Relaxed);
                crate::warn_every!(Duration::from_secs(10), listener = %self.listener, %peer, "closed: {e}");
                None
            }
        }
    }
}

/// For an accept loop: the client address of a new connection under `policy` (the peer
/// itself when the listener does not accept PROXY headers); `None` means close it.
pub async fn client_of(
    policy: Option<&ProxyIn>,
    stream: &mut TcpStream,
    peer: SocketAddr,
) -> Option<SocketAddr> {
    match policy {
        None => Some(peer),
        Some(p) => p.client(stream, peer).await,
    }
}

/// The cleartext accept loop's path for a listener with a PROXY policy: read the header in
/// the connection's own task (a slow or silent peer holds nothing of the accept loop), admit
/// the connection under the listener's limits with the client the header names, then serve
/// it as `serve` does.
pub fn spawn_cleartext(
    policy: Arc<ProxyIn>,
    mut stream: TcpStream,
    peer: SocketAddr,
    l: super::h1::Listener,
    accepted: tokio::time::Instant,
) {
    tokio::spawn(async move {
        let Some(client) = policy.client(&mut stream, peer).await else {
            return;
        };
        let site = l.site.load_full();
        let Some((stream, permit)) = super::life::admit(&site, stream, client, false) else {
            return;
        };
        let life = super::life::Life::new(permit, accepted, &site.limits);
        let io = super::transport::SendTimed::new(stream, site.limits.send_timeout);
        super::serve_connection(io, client, l, life).await;
    });
}

//! Balancing algorithms: one small type per file behind [`Balancer`], and [`build`], the one
//! place that maps a configured [`Algorithm`] to code.
//!
//! A balancer is built from the servers in rotation of a pool (primaries or backups) and
//! rebuilt when that set changes; hashing algorithms pay their build cost there, never per
//! request. At pick time a balancer reads live load from the servers' atomics and skips
//! servers the [`PickContext`] rules out (already tried by this request, or not available
//! now), so retries and passive failures need no second selection path.

mod round_robin;

use std::net::IpAddr;
use std::sync::Arc;

pub use round_robin::{RoundRobin, smooth_sequence};

use crate::config::Algorithm;
use crate::upstream::Server;

/// What an algorithm may look at for one pick.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickContext<'a> {
    /// The client's address (after PROXY protocol / trusted forwarding, if any).
    pub client: Option<IpAddr>,
    /// The request's hash key (cookie value, header, URI, …) for hashing algorithms; when
    /// `None` they hash the client address.
    pub hash_key: Option<&'a [u8]>,
    /// Servers this request has already tried; never picked again.
    pub tried: &'a [Arc<Server>],
}

impl PickContext<'_> {
    /// Whether `server` may be picked for this request now (available, admitted by slow
    /// start, not tried yet).
    pub fn eligible(&self, server: &Server) -> bool {
        server.admits_pick() && !self.tried.iter().any(|t| t.id() == server.id())
    }
}

/// A balancing algorithm over a fixed set of servers.
pub trait Balancer: Send + Sync {
    /// One server for this request, or `None` when nothing is eligible.
    fn pick(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>>;
}

/// The balancer for `algorithm` over `servers` (those in rotation; may be empty).
pub fn build(algorithm: Algorithm, servers: &[Arc<Server>]) -> Box<dyn Balancer> {
    match algorithm {
        Algorithm::RoundRobin
        | Algorithm::LeastConn
        | Algorithm::LeastTime
        | Algorithm::P2c
        | Algorithm::Random
        | Algorithm::IpHash
        | Algorithm::Hash
        | Algorithm::Maglev => Box::new(RoundRobin::new(servers)),
    }
}

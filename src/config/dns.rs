//! The plan types of DNS discovery: servers written with a host name, and how a pool resolves
//! them (`resolver`, `resolver_timeout`, `resolver_valid`, `init_addr`), each default in a
//! `Default` impl.
//!
//! The reader only checks how a name is written: it asks no DNS server. `discovery` resolves
//! the names of a plan (at `check`, at start, at each reload, and while running for the
//! servers with `resolve = true`) and puts one [`ServerPlan`] per address into the pool's
//! `servers`, in the place the name is written.

use std::net::SocketAddr;
use std::time::Duration;

use super::plan::ServerPlan;
use super::words::{Words, as_str};

/// The shortest time between two questions about one name, whatever its TTL (a TTL of 0 is
/// common with Consul and Kubernetes): a DNS server is never asked more than once a second
/// per name and pool.
pub const RESOLVE_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// A server entry whose `addr` is a host name (`app.test:8080`) or an SRV name
/// (`_http._tcp.app.test`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedServer {
    /// As written, trimmed: `app.test:8080`, `_http._tcp.app.test`.
    pub written: String,
    /// The name to ask for: `app.test`, `_http._tcp.app.test`.
    pub host: String,
    /// The port written; `None` for an SRV name, whose records give ports and weights.
    pub port: Option<u16>,
    /// `resolve = true`: asked again while running, on the answer's TTL (nginx's `resolve`).
    /// Without it, the name is resolved at start and at each reload only (as nginx does).
    pub resolve: bool,
    /// What the entry says besides its address (name, weight, backup, down, drain, passive
    /// checks, slow start); each address becomes a copy of it.
    pub server: ServerPlan,
    /// How many servers written with an address come before it: where its servers go in
    /// the pool's `servers`.
    pub at: usize,
    /// Where its `addr` is written, for an error found when it is resolved.
    pub origin: Origin,
}

impl NamedServer {
    /// Whether SRV records give its ports and weights.
    pub fn is_srv(&self) -> bool {
        self.port.is_none()
    }
}

/// Where a value is written (`file:line:column`), for an error found after reading. Not part
/// of what a plan means: any two are equal, so an edit that moves lines changes nothing.
#[derive(Debug, Clone, Default, Eq)]
pub struct Origin {
    pub file: String,
    /// 1-based; 0 when unknown (a plan made in code).
    pub line: usize,
    pub column: usize,
}

impl PartialEq for Origin {
    fn eq(&self, _: &Origin) -> bool {
        true
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// How a pool resolves the names of its servers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsPlan {
    /// `resolver`: the DNS servers to ask (nginx's `resolver`, HAProxy's `nameserver`).
    /// Empty: the system's — `/etc/resolv.conf` for `resolve = true` and SRV names, and the
    /// C library (`getaddrinfo`, so `/etc/hosts` too) for the others.
    pub resolvers: Vec<SocketAddr>,
    /// `resolver_timeout`: how long one question may take (nginx's `resolver_timeout`).
    pub timeout: Duration,
    /// `resolver_valid`: the longest an answer is used before the name is asked again, even
    /// when its TTL is longer (nginx's `valid=`, HAProxy's `hold valid`). A shorter TTL is
    /// followed, down to [`RESOLVE_MIN_INTERVAL`].
    pub valid: Duration,
    /// `init_addr`: what a `resolve = true` name that does not resolve at start does.
    pub init_addr: InitAddr,
}

impl Default for DnsPlan {
    fn default() -> Self {
        DnsPlan {
            resolvers: Vec::new(),
            timeout: Duration::from_secs(5),
            // nginx's documentation writes `valid=30s`; HAProxy's `hold valid` is 10s.
            valid: Duration::from_secs(30),
            init_addr: InitAddr::default(),
        }
    }
}

impl DnsPlan {
    /// How long to use an answer whose TTL is `ttl`: the TTL, bounded below by
    /// [`RESOLVE_MIN_INTERVAL`] and above by `resolver_valid`.
    pub fn interval(&self, ttl: Duration) -> Duration {
        ttl.clamp(RESOLVE_MIN_INTERVAL, self.valid.max(RESOLVE_MIN_INTERVAL))
    }
}

/// What a `resolve = true` name that gives no address at start does (HAProxy's `init-addr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum InitAddr {
    /// It is an error, as a name that does not resolve is for nginx (`check` and `run` fail).
    #[default]
    Resolve,
    /// The pool starts without its addresses and waits for DNS (HAProxy's `init-addr none`;
    /// nginx's `resolve` servers start empty too).
    None,
}

as_str!(InitAddr);

impl Words for InitAddr {
    const WORDS: &[(&str, Self)] = &[("resolve", InitAddr::Resolve), ("none", InitAddr::None)];
    const UNKNOWN: &str = "init_addr {} is not understood";
    const HELP: &str = "use \"resolve\" (default: a name must resolve at start) or \"none\" (start without its addresses and wait for DNS)";
}

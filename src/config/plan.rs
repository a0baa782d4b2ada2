//! The runtime form of a configuration: plain, checked values.
//!
//! Everything after [`crate::config::load_str`] trusts a `Plan`: addresses are parsed,
//! durations are `Duration`s, every pool a route names exists. These types never derive
//! `Deserialize`: `read/` fills them from the TOML tree. A key that is not written keeps the
//! value of the `Default` impl here, the one place defaults live.

use std::net::SocketAddr;
use std::time::Duration;

use http::{HeaderName, Method};

use super::suggest;
use super::words::{Words, as_str, words_of};
use super::{
    AdminPlan, ClientLimits, DnsPlan, ForwardHeaders, GuardPlan, HealthPlan, NamedServer,
    PassivePlan, RedisPlan, RetryPlan, StickyPlan,
};

/// A whole, validated configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// Tokio worker threads.
    pub workers: usize,
    /// How long in-flight requests may run after a shutdown signal.
    pub grace_period: Duration,
    /// After SIGTERM, how long `/health/ready` answers 503 while every listener still
    /// accepts, before they close (so health checkers in front notice first). Not written:
    /// 5s with `[admin]`, 0 without (`read/mod.rs`).
    pub shutdown_delay: Duration,
    pub listeners: Vec<ListenerPlan>,
    /// Pools in file order.
    pub pools: Vec<PoolPlan>,
    /// The admin listener (`/health/live`, `/health/ready`), if configured.
    pub admin: Option<AdminPlan>,
    /// `[redis]`: the state shared with other balancers (`shared = true` tables), if any.
    pub redis: Option<RedisPlan>,
    /// `[log]`: the access log.
    pub log: LogPlan,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            workers: std::thread::available_parallelism().map_or(1, |n| n.get()),
            grace_period: Duration::from_secs(10),
            // Long enough for a balancer or orchestrator in front that checks every second
            // or two to see /health/ready fail and stop sending.
            shutdown_delay: Duration::from_secs(5),
            listeners: Vec::new(),
            pools: Vec::new(),
            admin: None,
            redis: None,
            log: LogPlan::default(),
        }
    }
}

/// `[log]`: where the access log goes and how its lines read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPlan {
    pub access: AccessTarget,
    pub format: LogFormat,
    /// Bytes of lines one thread may hold until the writer takes them (every 50 ms); a line
    /// that would go past it is dropped and counted, so a slow disk never slows a request.
    pub buffer: usize,
}

impl Default for LogPlan {
    fn default() -> LogPlan {
        LogPlan {
            access: AccessTarget::Stderr,
            format: LogFormat::Combined,
            buffer: 256 * 1024,
        }
    }
}

/// `[log] access`: a file (reopened on SIGUSR1, for logrotate), the process's standard
/// output or error (which follow `--log-level`, as the other log lines do: target
/// `switchyard::access` at INFO), or nowhere.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AccessTarget {
    Off,
    Stdout,
    Stderr,
    /// Relative paths are taken from the config file's directory.
    File(std::path::PathBuf),
}

/// `[log] format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// nginx's `combined` line, then `key=value` fields of the balancer's own.
    Combined,
    /// One JSON object per line with the same fields.
    Json,
}

impl Words for LogFormat {
    const WORDS: &[(&str, Self)] = &[("combined", LogFormat::Combined), ("json", LogFormat::Json)];
    const UNKNOWN: &str = "unknown log format {}";
    const HELP: &str = "use format = \"combined\" (nginx's line with upstream fields) or \"json\"";
}

as_str!(Protocol, Algorithm, UpstreamProtocol);

impl Plan {
    /// The pool named `name`.
    pub fn pool(&self, name: &str) -> Option<&PoolPlan> {
        self.pools.iter().find(|p| p.name == name)
    }
}

/// What a listener speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Protocol {
    /// HTTP/1.1 and cleartext HTTP/2 (prior knowledge).
    #[default]
    Http,
    /// L4: TCP connections copied byte for byte to a pool's server.
    Tcp,
    /// L4: UDP datagrams, a session per client address.
    Udp,
    /// TLS, then HTTP/1.1 or HTTP/2 as ALPN says.
    Https,
}

impl Words for Protocol {
    const WORDS: &[(&str, Self)] = &[
        ("http", Protocol::Http),
        ("tcp", Protocol::Tcp),
        ("udp", Protocol::Udp),
        ("https", Protocol::Https),
    ];
    const UNKNOWN: &str = "unknown protocol {}";
    const HELP: &str = "use protocol = \"http\", \"https\", \"tcp\" or \"udp\"";
}

/// A `[[listener]]`.
#[derive(Debug, Clone, PartialEq)]
pub struct ListenerPlan {
    pub name: String,
    pub listen: SocketAddr,
    /// Where `listen` is written (`file:line:column`), so that an error binding it at run
    /// time points at the line to change; `None` for a plan made in code (the demo).
    pub origin: Option<String>,
    pub protocol: Protocol,
    /// Where a request goes when no route matches.
    pub default_pool: Option<String>,
    /// First match wins.
    pub routes: Vec<RoutePlan>,
    /// Settings of `tcp`/`udp` listeners (defaults on `http` ones).
    pub l4: L4Plan,
    /// `https` listeners: certificate/key pairs, the first the default for clients without SNI.
    pub tls: Vec<crate::tls::CertPair>,
    /// Answer every request with 308 to the same URL over https.
    pub redirect_https: bool,
    /// `Strict-Transport-Security: max-age=...` on answers over TLS.
    pub hsts: Option<Duration>,
    /// `allow`, `deny` (every protocol), `[[listener.limit]]`, `[[listener.block]]` (http,
    /// https): checked for every request or connection, before routing.
    pub guard: GuardPlan,
    /// `trusted_proxies`: the peers that may say who the client is: by a PROXY header when
    /// `accept_proxy_protocol` (then in `l4.accept_proxy` too), else, on http/https, by
    /// `X-Forwarded-For`; their forwarding headers are kept. Empty: nobody.
    pub trusted_proxies: Vec<Cidr>,
    /// `forward_headers`: which forwarding headers the listener writes.
    pub forward_headers: ForwardHeaders,
    /// Connection counts (every TCP listener), timeouts and request sizes (http/https).
    pub limits: ClientLimits,
    /// Set when `max_connections` (`max_sessions`) was lowered to fit the open-file limit:
    /// from what, for the reload report.
    pub fitted: super::Fitted,
}

impl Default for ListenerPlan {
    fn default() -> Self {
        ListenerPlan {
            name: String::new(),
            listen: SocketAddr::from(([0, 0, 0, 0], 0)),
            origin: None,
            protocol: Protocol::default(),
            default_pool: None,
            routes: Vec::new(),
            l4: L4Plan::default(),
            tls: Vec::new(),
            redirect_https: false,
            hsts: None,
            guard: GuardPlan::default(),
            trusted_proxies: Vec::new(),
            forward_headers: ForwardHeaders::default(),
            limits: ClientLimits::default(),
            fitted: Default::default(),
        }
    }
}

impl ListenerPlan {
    /// An `http` listener named `name` on `listen` sending everything to `pool`: the start
    /// of a plan made in code (the demo, tests), with every other setting at its default.
    pub fn http(name: &str, listen: SocketAddr, pool: &str) -> ListenerPlan {
        ListenerPlan {
            name: name.into(),
            listen,
            default_pool: Some(pool.into()),
            ..ListenerPlan::default()
        }
    }
}

/// A `[[listener.route]]`: where matching requests go.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutePlan {
    /// `name`: the route's label in metrics, `/status` and `explain`; `None`: its position
    /// (`1`, `2`, …). Unique in its listener, never all digits, `default` or `-`.
    pub name: Option<String>,
    pub matcher: Matcher,
    pub target: Target,
    /// `allow`, `deny`, `[[listener.route.limit]]`, `[[listener.route.block]]`: checked for
    /// the requests this route takes, after the listener's.
    pub guard: GuardPlan,
    /// `client_max_body_size` for this route (nginx's, per `location`); `None`: the
    /// listener's; `Some(0)`: no limit.
    pub client_max_body_size: Option<u64>,
}

impl RoutePlan {
    /// The route's label as the `i`th (0-based) of its listener: its `name`, or its
    /// position counted from 1.
    pub fn label(&self, i: usize) -> String {
        self.name.clone().unwrap_or_else(|| (i + 1).to_string())
    }
}

/// All present conditions must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Matcher {
    pub host: Option<HostMatch>,
    pub path_prefix: Option<String>,
    pub method: Option<Method>,
    pub header: Option<(HeaderName, String)>,
    pub cookie: Option<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostMatch {
    /// `api.example.com` (lower case, no port).
    Exact(String),
    /// `*.example.com`: stored as `.example.com`; matches any name ending with it.
    Suffix(String),
}

impl HostMatch {
    /// `host` is the request's host without port, any case.
    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostMatch::Exact(h) => host.eq_ignore_ascii_case(h),
            HostMatch::Suffix(s) => {
                host.len() > s.len()
                    && host.as_bytes()[host.len() - s.len()..].eq_ignore_ascii_case(s.as_bytes())
            }
        }
    }
}

/// Where a route sends a request.
#[derive(Debug, Clone, PartialEq)]
pub enum Target {
    Pool(String),
    /// Weighted split over pools (canary, A/B); weights are > 0.
    Split(Vec<(String, u32)>),
}

/// The balancing algorithm of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Algorithm {
    /// Smooth weighted round robin (nginx).
    #[default]
    RoundRobin,
    /// Fewest active requests relative to weight.
    LeastConn,
    /// Lowest response-time EWMA combined with in-flight requests.
    LeastTime,
    /// Power of two choices.
    P2c,
    /// Weighted random.
    Random,
    /// Client address hash (nginx `ip_hash`).
    IpHash,
    /// Consistent hashing on a ketama ring.
    Hash,
    /// Maglev lookup table.
    Maglev,
}

impl Words for Algorithm {
    const WORDS: &[(&str, Self)] = &[
        ("round_robin", Algorithm::RoundRobin),
        ("weighted_round_robin", Algorithm::RoundRobin),
        ("least_conn", Algorithm::LeastConn),
        ("least_time", Algorithm::LeastTime),
        ("p2c", Algorithm::P2c),
        ("random", Algorithm::Random),
        ("ip_hash", Algorithm::IpHash),
        ("hash", Algorithm::Hash),
        ("maglev", Algorithm::Maglev),
    ];
    const UNKNOWN: &str = "unknown algorithm {}";
    fn help(written: &str) -> String {
        suggest::algorithm(written, Algorithm::NAMES)
    }
}

impl Algorithm {
    /// Every word `algorithm` takes.
    pub const NAMES: &'static [&'static str] = &words_of::<_, 9>(<Algorithm as Words>::WORDS);

    /// The algorithm a word names.
    pub fn parse(s: &str) -> Option<Algorithm> {
        Algorithm::from_word(s)
    }

    /// The help for a word that is no algorithm: a did-you-mean (HAProxy's and nginx's
    /// names included), or the list, as `check` gives it.
    pub fn help_for(written: &str) -> String {
        suggest::algorithm(written, Algorithm::NAMES)
    }

    /// Whether the algorithm looks at `PickContext::hash_key`.
    pub fn uses_hash_key(&self) -> bool {
        matches!(self, Algorithm::Hash | Algorithm::Maglev)
    }
}

/// What a `hash`/`maglev` pool hashes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum HashKey {
    #[default]
    ClientIp,
    Uri,
    Header(HeaderName),
    Cookie(String),
    Query(String),
}

/// What `Host` header the upstream sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum HostHeader {
    /// The client's `Host`, unchanged (default).
    #[default]
    Keep,
    /// The server's address (`host:port`).
    Upstream,
}

impl Words for HostHeader {
    const WORDS: &[(&str, Self)] = &[
        ("keep", HostHeader::Keep),
        ("client", HostHeader::Keep),
        ("upstream", HostHeader::Upstream),
    ];
    const UNKNOWN: &str = "host_header {} is not understood";
    const HELP: &str = "use \"keep\" (default) or \"upstream\"";
}

/// How long each step of an exchange with a server may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    /// TCP connect to a server.
    pub connect: Duration,
    /// Between two reads from the server: for the response head from the end of the
    /// request body, then between two reads of the response body.
    pub read: Duration,
    /// Between two successful writes of the request to the server.
    pub send: Duration,
    /// Between two reads of the request body from the client (nginx's
    /// `client_body_timeout`); exceeded → 408.
    pub client_body: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        // nginx's proxy_connect_timeout / proxy_read_timeout / proxy_send_timeout /
        // client_body_timeout defaults.
        Timeouts {
            connect: Duration::from_secs(60),
            read: Duration::from_secs(60),
            send: Duration::from_secs(60),
            client_body: Duration::from_secs(60),
        }
    }
}

/// A `[pool.NAME]`.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolPlan {
    pub name: String,
    pub algorithm: Algorithm,
    pub hash_key: HashKey,
    /// Idle upstream connections kept per server.
    pub keepalive: usize,
    /// How long an idle upstream connection is kept.
    pub keepalive_timeout: Duration,
    pub timeouts: Timeouts,
    pub host_header: HostHeader,
    /// The servers to run: those written with an address, and, once `discovery` has resolved
    /// them, one per address of each name in `named`, in the order written.
    pub servers: Vec<ServerPlan>,
    /// The servers written with a host name or an SRV name, as written.
    pub named: Vec<NamedServer>,
    /// How those names are resolved.
    pub dns: DnsPlan,
    /// Active health checks, if configured.
    pub health: Option<HealthPlan>,
    pub retry: RetryPlan,
    pub sticky: Option<StickyPlan>,
    /// What the pool speaks to its servers.
    pub upstream_protocol: UpstreamProtocol,
    /// Re-encrypt to the servers.
    pub tls: Option<crate::tls::UpstreamTlsOptions>,
    /// An upgraded connection (WebSocket) with no bytes either way for this long is closed.
    pub tunnel_idle_timeout: Duration,
    /// Requests that may wait for a server below its `max_conns` (HAProxy's queue, nginx's
    /// `queue N`); 0: none wait, a full pool answers 503 at once.
    pub queue_size: usize,
    /// How long a request may wait there (HAProxy's `timeout queue`, nginx's `queue …
    /// timeout=`); then 503.
    pub queue_timeout: Duration,
}

impl PoolPlan {
    /// nginx's rule: the only server of a pool is never taken out by passive checks nor
    /// ramped up: there is nowhere else to send its traffic, so a 503 would help no one.
    pub fn lone_server_rule(&mut self) {
        if let [only] = self.servers.as_mut_slice() {
            only.passive.max_fails = 0;
            only.slow_start = Duration::ZERO;
        }
    }
}

impl Default for PoolPlan {
    fn default() -> Self {
        PoolPlan {
            name: String::new(),
            algorithm: Algorithm::default(),
            hash_key: HashKey::default(),
            keepalive: 32,
            keepalive_timeout: Duration::from_secs(60),
            timeouts: Timeouts::default(),
            host_header: HostHeader::default(),
            servers: Vec::new(),
            named: Vec::new(),
            dns: DnsPlan::default(),
            health: None,
            retry: RetryPlan::default(),
            sticky: None,
            upstream_protocol: UpstreamProtocol::default(),
            tls: None,
            tunnel_idle_timeout: Duration::from_secs(3600),
            // HAProxy's queue has no bound by default; a bound keeps a flood from holding
            // memory and sockets while it waits.
            queue_size: 1024,
            // nginx's `queue … timeout=` default.
            queue_timeout: Duration::from_secs(60),
        }
    }
}

impl PoolPlan {
    /// A pool named `name` over `servers`, every other setting at its default.
    pub fn of(name: &str, servers: Vec<ServerPlan>) -> PoolPlan {
        PoolPlan {
            name: name.into(),
            servers,
            ..PoolPlan::default()
        }
    }
}

/// The protocol a pool speaks to its servers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum UpstreamProtocol {
    /// HTTP/1.1, a keep-alive pool of connections (default).
    #[default]
    H1,
    /// HTTP/2: over TLS with ALPN `h2` when the pool has `tls`, else cleartext with prior
    /// knowledge. One multiplexed connection per server.
    H2,
    /// Cleartext HTTP/2 with prior knowledge (gRPC servers without TLS).
    H2c,
}

impl Words for UpstreamProtocol {
    const WORDS: &[(&str, Self)] = &[
        ("h1", UpstreamProtocol::H1),
        ("http/1.1", UpstreamProtocol::H1),
        ("h2", UpstreamProtocol::H2),
        ("h2c", UpstreamProtocol::H2c),
    ];
    const UNKNOWN: &str = "upstream_protocol {} is not understood";
    const HELP: &str = "use \"h1\" (default), \"h2\" (HTTP/2; over TLS when the pool has tls) or \"h2c\" (cleartext HTTP/2)";
}

impl UpstreamProtocol {
    /// Whether requests go over one multiplexed HTTP/2 connection per server.
    pub fn is_h2(&self) -> bool {
        !matches!(self, UpstreamProtocol::H1)
    }
}

/// One server of a pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerPlan {
    pub addr: SocketAddr,
    /// Shown in logs and metrics; defaults to the address as written.
    pub name: String,
    /// 1..=1000.
    pub weight: u32,
    pub backup: bool,
    /// `down = true`: maintenance, out of service (HAProxy's `maint`).
    pub down: bool,
    /// `drain = true`: no new requests; its sticky clients and in-flight requests stay.
    pub drain: bool,
    /// Passive health (per server, else the pool's, else nginx's defaults).
    pub passive: PassivePlan,
    /// Ramp-up time after recovering; zero for none.
    pub slow_start: Duration,
    /// Requests (or L4 connections) at once; 0: no limit (nginx's `max_conns`, HAProxy's
    /// `maxconn`).
    pub max_conns: u32,
    /// The name it was resolved from, as written (`app.test:8080`), for a server that
    /// `discovery` made from a [`NamedServer`]; `None` for one written with its address.
    pub from: Option<String>,
}

impl Default for ServerPlan {
    fn default() -> Self {
        ServerPlan {
            addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            name: String::new(),
            weight: 1,
            backup: false,
            down: false,
            drain: false,
            passive: PassivePlan::default(),
            slow_start: Duration::ZERO,
            max_conns: 0,
            from: None,
        }
    }
}

impl ServerPlan {
    /// A server at `addr`, named by it, every other setting at its default.
    pub fn at(addr: SocketAddr) -> ServerPlan {
        ServerPlan {
            addr,
            name: addr.to_string(),
            ..ServerPlan::default()
        }
    }

    /// The same server under another name.
    pub fn named(self, name: &str) -> ServerPlan {
        ServerPlan {
            name: name.into(),
            ..self
        }
    }

    /// The same server with another weight.
    pub fn weight(self, weight: u32) -> ServerPlan {
        ServerPlan { weight, ..self }
    }
}

/// A PROXY protocol version (<https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyVersion {
    /// The text header: `PROXY TCP4 src dst sport dport\r\n`.
    V1,
    /// The binary header.
    V2,
}

impl Words for ProxyVersion {
    const WORDS: &[(&str, Self)] = &[
        ("v1", ProxyVersion::V1),
        ("1", ProxyVersion::V1),
        ("v2", ProxyVersion::V2),
        ("2", ProxyVersion::V2),
    ];
    const UNKNOWN: &str = "proxy_protocol {} is not a PROXY protocol version";
    const HELP: &str = "use proxy_protocol = \"v1\" or \"v2\"";
    /// The word is named in lower case, as it would be read.
    fn unknown(written: &str) -> (String, String) {
        let message = Self::UNKNOWN.replace("{}", &format!("{:?}", Self::normal(written)));
        (message, Self::HELP.into())
    }
    fn normal(written: &str) -> String {
        written.to_ascii_lowercase()
    }
}

/// An address block such as `10.0.0.0/8`, for `trusted_proxies`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    /// The network address with host bits cleared.
    pub addr: std::net::IpAddr,
    pub prefix: u8,
}

impl Cidr {
    /// Parse `a.b.c.d/n`, `x::y/n`, or a bare address (a /32 or /128).
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: std::net::IpAddr = a.trim().parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.trim().parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Cidr {
            addr: mask(addr, prefix),
            prefix,
        })
    }

    /// Whether `ip` is inside the block; an IPv4-mapped IPv6 address counts as IPv4.
    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        let ip = match ip {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, std::net::IpAddr::V4),
            v4 => v4,
        };
        ip.is_ipv4() == self.addr.is_ipv4() && mask(ip, self.prefix) == self.addr
    }
}

fn mask(ip: std::net::IpAddr, prefix: u8) -> std::net::IpAddr {
    use std::net::IpAddr;
    match ip {
        IpAddr::V4(a) => {
            let m = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(a) & m).into())
        }
        IpAddr::V6(a) => {
            let m = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(a) & m).into())
        }
    }
}

/// The L4 settings of a listener. On an `http` / `https` listener only `accept_proxy` is
/// used (PROXY headers in front of HTTP); the rest stay at their defaults.
#[derive(Debug, Clone, PartialEq)]
pub struct L4Plan {
    /// TCP: close a connection with no byte either way for this long.
    pub idle_timeout: Duration,
    /// TCP: the PROXY header sent to the server before any client byte.
    pub proxy_protocol: Option<ProxyVersion>,
    /// TCP, HTTP, HTTPS: expect a PROXY header (v1 or v2) from these peers only; `None`
    /// when off.
    pub accept_proxy: Option<Vec<Cidr>>,
    /// TCP: copy with splice(2) on Linux (zero-copy) instead of through a user buffer.
    pub splice: bool,
    /// UDP: a client's session lives this long after its last datagram.
    pub session_timeout: Duration,
    /// UDP: sessions at once; datagrams of new clients beyond it are dropped. Each session
    /// holds a socket: lowered at start to what the open-file limit allows (`runtime::fds`).
    pub max_sessions: usize,
}

impl Default for L4Plan {
    fn default() -> Self {
        L4Plan {
            // nginx's proxy_timeout.
            idle_timeout: Duration::from_secs(600),
            proxy_protocol: None,
            accept_proxy: None,
            splice: true,
            session_timeout: Duration::from_secs(30),
            max_sessions: 100_000,
        }
    }
}

//! Plan types for failure handling and stickiness: active health checks, passive health
//! (`max_fails`/`fail_timeout`), retries, sticky sessions, the admin listener, and the
//! Redis that several balancers share state through.
//!
//! Filled by `read/failover.rs` from the `[pool.NAME.health]`, `[pool.NAME.retry]`,
//! `[pool.NAME.sticky]` sections and by `read/mod.rs` from `[admin]` and `[redis]`; read by
//! `upstream`, `health`, `proxy::http`, `admin` and `cluster`. Plain values only; the defaults live in the `Default` impls so the docs,
//! the reader and the tests agree.

use std::net::SocketAddr;
use std::time::Duration;

use http::Method;

use super::words::{Words, as_str};

/// How an active probe talks to a server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HealthKind {
    /// A TCP connect that succeeds within the timeout passes.
    Tcp,
    /// An HTTP request (HTTP/1.1, or HTTP/2 for an `h2`/`h2c` pool) whose status is in
    /// `expect` (and whose body contains `expect_body`, when set) passes.
    Http,
    /// A `grpc.health.v1.Health/Check` call over HTTP/2 for `service` (`""`: the whole
    /// server) passes when it ends with `grpc-status: 0` and the answer is `SERVING`.
    Grpc { service: String },
}

impl Words for HealthKind {
    const WORDS: &[(&str, Self)] = &[
        ("http", HealthKind::Http),
        ("tcp", HealthKind::Tcp),
        (
            "grpc",
            HealthKind::Grpc {
                service: String::new(),
            },
        ),
    ];
    const UNKNOWN: &str = "unknown health check type {}";
    const HELP: &str = "use type = \"http\", type = \"tcp\" or type = \"grpc\"";
}

/// The methods a health probe may send: the standard ones that ask for a resource (not
/// CONNECT, which opens a tunnel and gets no status to judge), in any case.
impl Words for Method {
    const WORDS: &[(&str, Self)] = &[
        ("GET", Method::GET),
        ("HEAD", Method::HEAD),
        ("OPTIONS", Method::OPTIONS),
        ("POST", Method::POST),
        ("PUT", Method::PUT),
        ("PATCH", Method::PATCH),
        ("DELETE", Method::DELETE),
        ("TRACE", Method::TRACE),
    ];
    const UNKNOWN: &str = "{} is not a method a health check can send";
    fn help(_: &str) -> String {
        let all: Vec<&str> = Self::WORDS.iter().map(|(w, _)| *w).collect();
        format!("use one of: {}", all.join(", "))
    }
    fn normal(written: &str) -> String {
        written.to_ascii_uppercase()
    }
}

/// `[pool.NAME.health]`: one checker per server.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthPlan {
    pub kind: HealthKind,
    pub path: String,
    pub method: Method,
    /// `Host` header of the probe; the server's address when `None`.
    pub host: Option<String>,
    /// Inclusive status ranges that pass.
    pub expect: Vec<(u16, u16)>,
    /// A substring the probe's body must contain.
    pub expect_body: Option<String>,
    pub interval: Duration,
    pub timeout: Duration,
    /// Passes in a row to come back.
    pub rise: u32,
    /// Failures in a row to be taken out.
    pub fall: u32,
}

impl Default for HealthPlan {
    fn default() -> Self {
        // HAProxy's inter/rise/fall; nginx Plus' "GET /" expecting 2xx/3xx.
        HealthPlan {
            kind: HealthKind::Http,
            path: "/".into(),
            method: Method::GET,
            host: None,
            expect: vec![(200, 399)],
            expect_body: None,
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            rise: 2,
            fall: 3,
        }
    }
}

impl HealthPlan {
    /// Whether `status` is one the probe accepts.
    pub fn status_passes(&self, status: u16) -> bool {
        self.expect
            .iter()
            .any(|&(lo, hi)| (lo..=hi).contains(&status))
    }
}

/// What makes a try fail and another server be tried (`on = [...]`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RetryOn {
    /// The TCP connect failed or timed out: the request never reached the server.
    pub connect_failure: bool,
    /// The server closed or reset the connection before the response head.
    pub reset: bool,
    /// No response head within the read timeout.
    pub timeout: bool,
    /// Response statuses that count as failures.
    pub statuses: Vec<u16>,
    /// `grpc_unavailable`: a gRPC answer with `grpc-status: 14` in its headers (a
    /// trailers-only response: the server refused the call before answering it).
    pub grpc_unavailable: bool,
}

impl RetryOn {
    /// Whether a response with `status` counts as a failure.
    pub fn status(&self, status: u16) -> bool {
        self.statuses.contains(&status)
    }
}

/// `[pool.NAME.retry]`.
#[derive(Debug, Clone, PartialEq)]
pub struct RetryPlan {
    /// Extra tries after the first.
    pub attempts: u32,
    pub on: RetryOn,
    /// Whether POST, PATCH (and other non-idempotent methods) are tried again once the
    /// request has reached a server.
    pub non_idempotent: bool,
    /// Retries may add at most this share to the pool's requests (0.2 = 20 %).
    pub budget: f64,
}

impl Default for RetryPlan {
    fn default() -> Self {
        // nginx retries `error timeout` on the next server by default; so do we, twice.
        RetryPlan {
            attempts: 2,
            on: RetryOn {
                connect_failure: true,
                reset: true,
                timeout: true,
                statuses: Vec::new(),
                grpc_unavailable: false,
            },
            non_idempotent: false,
            budget: 0.2,
        }
    }
}

/// Passive health: nginx's `max_fails` / `fail_timeout`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PassivePlan {
    /// Failures within `fail_timeout` that take a server out; 0 turns passive checks off.
    pub max_fails: u32,
    /// The window for counting failures, and how long the server then stays out.
    pub fail_timeout: Duration,
}

impl Default for PassivePlan {
    fn default() -> Self {
        PassivePlan {
            max_fails: 1,
            fail_timeout: Duration::from_secs(10),
        }
    }
}

/// How a sticky pool remembers a client's server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StickyMode {
    /// Switchyard sets its own cookie naming the server (opaquely).
    Cookie,
    /// The application's session cookie, learned from responses, in a stick table.
    AppCookie,
    /// The client address, in a stick table.
    SourceIp,
}

impl Words for StickyMode {
    const WORDS: &[(&str, Self)] = &[
        ("cookie", StickyMode::Cookie),
        ("app_cookie", StickyMode::AppCookie),
        ("source_ip", StickyMode::SourceIp),
    ];
    const UNKNOWN: &str = "unknown sticky mode {}";
    const HELP: &str = "use mode = \"cookie\", \"app_cookie\" or \"source_ip\"";
}

/// `[pool.NAME.sticky]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StickyPlan {
    pub mode: StickyMode,
    /// The cookie's name (`cookie`, `app_cookie`); unused for `source_ip`.
    pub name: String,
    /// Cookie `Max-Age`; for the tables, how long an unused mapping is kept.
    pub ttl: Duration,
    /// Most entries a stick table holds; the oldest go first.
    pub size: usize,
    /// What the clients of a draining server do.
    pub on_drain: OnDrain,
    /// `shared = true`: the table (`app_cookie`, `source_ip`) is kept in `[redis]` too, so
    /// every balancer sharing that Redis agrees (`cluster`).
    pub shared: bool,
}

/// `[sticky] on_drain`: whether a draining server keeps its sticky clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnDrain {
    /// They stay until the server is out of service (HAProxy and nginx keep persistent
    /// clients on a draining server).
    #[default]
    Stay,
    /// They go to another server at their next request (the session moves).
    Move,
}

as_str!(StickyMode, OnDrain);

impl Words for OnDrain {
    const WORDS: &[(&str, Self)] = &[("stay", OnDrain::Stay), ("move", OnDrain::Move)];
    const UNKNOWN: &str = "on_drain {} is not understood";
    const HELP: &str =
        "use on_drain = \"stay\" (a draining server keeps its sticky clients) or \"move\"";
}

impl Default for StickyPlan {
    fn default() -> Self {
        // HAProxy's `cookie SRV insert`; a table the size of HAProxy's examples.
        StickyPlan {
            mode: StickyMode::Cookie,
            name: "SRV".into(),
            ttl: Duration::from_secs(3600),
            size: 65_536,
            on_drain: OnDrain::Stay,
            shared: false,
        }
    }
}

/// `[admin]`: Switchyard's own endpoints.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminPlan {
    pub listen: SocketAddr,
    /// Where `listen` is written (`file:line:column`), for an error binding it.
    pub origin: Option<String>,
    /// `token`: every `/api/` request must carry `Authorization: Bearer TOKEN`.
    pub token: Option<String>,
    /// `max_connections`, `client_header_timeout`.
    pub limits: super::AdminLimits,
}

impl AdminPlan {
    /// An admin listener on `listen` with every other setting at its default (no token).
    pub fn at(listen: SocketAddr) -> AdminPlan {
        AdminPlan {
            listen,
            origin: None,
            token: None,
            limits: super::AdminLimits::default(),
        }
    }
}

/// `[redis]`: where the state several active balancers share lives (`cluster`), and how long
/// to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisPlan {
    /// `host:port`, or a `redis://[user:password@]host:port[/db]` URL.
    pub addr: String,
    /// Put before every key and channel name, so balancer groups can share one Redis.
    pub prefix: String,
    /// The most a request waits on Redis (the read-through of a sticky key).
    pub timeout: Duration,
    /// The most a background call waits (connect, the writer's pipelines, the rate sync,
    /// the catch-up); one that takes longer takes the link down.
    pub io_timeout: Duration,
    /// How often shared rate limits are synchronised.
    pub sync_interval: Duration,
    /// Writes waiting for the writer, at most; more are dropped and counted.
    pub queue: usize,
}

impl Default for RedisPlan {
    fn default() -> RedisPlan {
        RedisPlan {
            addr: "127.0.0.1:6379".into(),
            prefix: "switchyard:".into(),
            timeout: Duration::from_millis(5),
            io_timeout: Duration::from_secs(1),
            sync_interval: Duration::from_millis(100),
            queue: 10_000,
        }
    }
}

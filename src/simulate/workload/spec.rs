//! The checked workload: plain values that `engine.rs` runs, and the errors of a file.

use std::time::Duration;

use crate::config::{Algorithm, PoolPlan};

/// A service-time (or latency) distribution.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Dist {
    /// Always this long.
    Fixed(Duration),
    /// Exponential with this mean.
    Exp(Duration),
    /// Log-normal through this median and 99th percentile.
    LogNormal { median: Duration, p99: Duration },
    /// Uniform between the two.
    Uniform(Duration, Duration),
}

impl Dist {
    /// The mean, for capacity estimates.
    pub fn mean(&self) -> Duration {
        match *self {
            Dist::Fixed(d) | Dist::Exp(d) => d,
            Dist::LogNormal { median, p99 } => {
                let sigma = (p99.as_secs_f64() / median.as_secs_f64()).ln() / Z99;
                median.mul_f64((sigma * sigma / 2.0).exp())
            }
            Dist::Uniform(a, b) => (a + b) / 2,
        }
    }
}

/// The 99th percentile of the standard normal distribution.
pub const Z99: f64 = 2.326_347_874;

/// What an event does to a server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Action {
    /// Refuses connections: each try fails at once (passive health, retries).
    Fail,
    /// Accepts and never answers: each try ends at the pool's read timeout.
    Hang,
    /// Serves again (after `fail` or `hang`).
    Recover,
    /// Serves at this speed from now on (1.0 is normal; 0.2 is five times slower).
    Slow(f64),
    /// Removed from the pool's configuration (a reload without it).
    Leave,
    /// Added back to the configuration (a reload with it).
    Join,
    /// Marked `down` by an operator (stays in the configuration).
    Down,
    /// `down` lifted.
    Up,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub at: Duration,
    /// Index into [`Workload::servers`].
    pub server: usize,
    pub action: Action,
}

/// How one server behaves.
#[derive(Debug, Clone, PartialEq)]
pub struct ServerModel {
    pub name: String,
    /// Service time is divided by this.
    pub speed: f64,
    /// Requests served at once; more wait in the server's queue. 0: no limit.
    pub concurrency: usize,
    /// Most requests waiting; one more gets a 503. 0: no limit.
    pub queue: usize,
}

/// A kind of request: its share of the traffic and its service time on a server of speed 1.
#[derive(Debug, Clone, PartialEq)]
pub struct Class {
    pub share: f64,
    pub service: Dist,
}

/// What "wins" means in the advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Goal {
    P50,
    P99,
    P999,
    Errors,
    KeysMoved,
}

impl Goal {
    pub fn as_str(&self) -> &'static str {
        match self {
            Goal::P50 => "p50",
            Goal::P99 => "p99",
            Goal::P999 => "p999",
            Goal::Errors => "errors",
            Goal::KeysMoved => "keys_moved",
        }
    }
}

/// A checked workload, ready to run.
#[derive(Debug, Clone)]
pub struct Workload {
    pub file: String,
    pub algorithms: Vec<Algorithm>,
    pub goal: Goal,
    pub seed: u64,
    pub requests: u64,
    /// Mean arrivals per second.
    pub rate: f64,
    /// Coefficient of variation of the gaps between arrivals: 0 even, 1 Poisson, >1 bursts.
    pub burstiness: f64,
    pub keys: u64,
    /// Zipf exponent of key popularity; 0 is uniform.
    pub key_skew: f64,
    pub mix: Vec<Class>,
    /// The pool (its `algorithm` is replaced by each one simulated).
    pub pool: PoolPlan,
    /// One model per server of `pool.servers`, in the same order.
    pub servers: Vec<ServerModel>,
    /// Sorted by time.
    pub events: Vec<Event>,
}

/// One problem in a workload file: a config error's shape (file:line:column, the fix),
/// printed the same way.
pub type WorkloadError = crate::config::ConfigError;

/// Every problem of one file.
pub type WorkloadErrors = crate::config::ConfigErrors;

/// Whether the algorithm keeps a key on one server (and so "keys moved" means something).
pub fn is_hashing(a: Algorithm) -> bool {
    matches!(a, Algorithm::IpHash | Algorithm::Hash | Algorithm::Maglev)
}

/// `250us`, `10ms`, `1.5s`, `2m`, `1h`: a non-negative number (fractions allowed: this is a
/// model) and a unit.
pub fn parse_time(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !(c.is_ascii_digit() || c == '.'))?;
    let (num, unit) = s.split_at(split);
    let x: f64 = num.parse().ok()?;
    let scale = match unit.trim() {
        "us" | "µs" => 1e-6,
        "ms" => 1e-3,
        "s" => 1.0,
        "m" => 60.0,
        "h" => 3600.0,
        _ => return None,
    };
    let secs = x * scale;
    (secs.is_finite() && secs < 1e9).then(|| Duration::from_secs_f64(secs))
}

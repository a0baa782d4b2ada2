//! The workload file of `switchyard simulate`: a small TOML file that says what traffic
//! arrives, which pool it meets (inline, or a pool of a real Switchyard config), how each
//! server behaves, and what happens to the servers during the run.
//!
//! Read with serde (unknown keys are errors), then checked value by value, every problem
//! at once, each with `file:line:column` and the fix, as Switchyard's own config errors.
//! The result is a [`Workload`] of plain values; `engine.rs` runs it.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use toml::Spanned;

use crate::config::{Algorithm, PoolPlan};

type S<T> = Spanned<T>;

// ---------------------------------------------------------------------------------------
// The file, as serde reads it.

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    algorithms: Option<S<Vec<S<String>>>>,
    goal: Option<S<String>>,
    seed: Option<S<i64>>,
    traffic: Option<S<TrafficFile>>,
    pool: Option<S<PoolFile>>,
    #[serde(default)]
    server: Vec<S<ServerFile>>,
    #[serde(default)]
    event: Vec<S<EventFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct TrafficFile {
    requests: Option<S<i64>>,
    rate: Option<S<f64>>,
    burstiness: Option<S<f64>>,
    keys: Option<S<i64>>,
    key_skew: Option<S<f64>>,
    service: Option<S<toml::Value>>,
    #[serde(default)]
    mix: Vec<S<MixFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MixFile {
    share: Option<S<f64>>,
    service: Option<S<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PoolFile {
    config: Option<S<String>>,
    name: Option<S<String>>,
    hash_key: Option<S<String>>,
    max_fails: Option<S<i64>>,
    fail_timeout: Option<S<String>>,
    slow_start: Option<S<String>>,
    retries: Option<S<i64>>,
    sticky: Option<S<String>>,
    health: Option<S<HealthFile>>,
    read_timeout: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthFile {
    interval: Option<S<String>>,
    rise: Option<S<i64>>,
    fall: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ServerFile {
    name: Option<S<String>>,
    count: Option<S<i64>>,
    weight: Option<S<i64>>,
    backup: Option<bool>,
    down: Option<bool>,
    speed: Option<S<f64>>,
    concurrency: Option<S<i64>>,
    queue: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct EventFile {
    at: Option<S<String>>,
    server: Option<S<String>>,
    #[serde(rename = "do")]
    action: Option<S<String>>,
    speed: Option<S<f64>>,
}

// ---------------------------------------------------------------------------------------
// The checked workload.

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

/// One problem in a workload file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadError {
    pub file: String,
    pub line: usize,
    pub column: usize,
    pub message: String,
    pub help: Option<String>,
}

impl fmt::Display for WorkloadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "error: {}: {}", self.file, self.message)?;
        } else {
            write!(
                f,
                "error: {}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )?;
        }
        if let Some(h) = &self.help {
            write!(f, "\n  help: {h}")?;
        }
        Ok(())
    }
}

/// Every problem of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkloadErrors(pub Vec<WorkloadError>);

impl fmt::Display for WorkloadErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for WorkloadErrors {}

/// Read and check a workload file. A pool `config = "..."` is read relative to it.
pub fn load_file(path: &Path) -> Result<Workload, WorkloadErrors> {
    let name = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| {
        WorkloadErrors(vec![WorkloadError {
            file: name.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read the workload: {e}"),
            help: Some("pass an existing file, e.g. examples/simulate/slow-server.toml".into()),
        }])
    })?;
    load_str(&src, &name, path.parent())
}

/// Read and check workload text; `dir` is where a pool `config` path is relative to.
pub fn load_str(src: &str, file: &str, dir: Option<&Path>) -> Result<Workload, WorkloadErrors> {
    let mut c = Checker {
        src,
        file,
        errors: Vec::new(),
    };
    let parsed: File = match toml::from_str(src) {
        Ok(f) => f,
        Err(e) => {
            let help = if e.message().contains("unknown field") {
                "see docs/simulate.md for the keys of a workload file"
            } else {
                "fix the TOML syntax here"
            };
            c.error(
                e.span().unwrap_or(0..0),
                e.message().trim().to_string(),
                help,
            );
            return Err(WorkloadErrors(c.errors));
        }
    };
    let w = c.workload(parsed, dir);
    match w {
        Some(w) if c.errors.is_empty() => Ok(w),
        _ => Err(WorkloadErrors(c.errors)),
    }
}

struct Checker<'a> {
    src: &'a str,
    file: &'a str,
    errors: Vec<WorkloadError>,
}

/// A name of the simulator's own for an inline pool's servers: documentation addresses
/// (192.0.2.0/24, RFC 5737) that no real server has.
fn inline_addr(i: usize) -> String {
    format!("192.0.2.{}:{}", 1 + i / 200, 10_000 + i)
}

impl Checker<'_> {
    fn error(&mut self, span: Range<usize>, message: String, help: impl Into<String>) {
        let at = span.start.min(self.src.len());
        let before = &self.src[..at];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        self.errors.push(WorkloadError {
            file: self.file.to_string(),
            line,
            column,
            message,
            help: Some(help.into()),
        });
    }

    fn int(&mut self, v: &S<i64>, what: &str, lo: i64, hi: i64) -> Option<u64> {
        let n = *v.get_ref();
        if (lo..=hi).contains(&n) {
            Some(n as u64)
        } else {
            self.error(
                v.span(),
                format!("{what} = {n} is out of range"),
                format!("use a whole number from {lo} to {hi}"),
            );
            None
        }
    }

    fn float(&mut self, v: &S<f64>, what: &str, lo: f64, hi: f64) -> Option<f64> {
        let x = *v.get_ref();
        if x.is_finite() && x >= lo && x <= hi {
            Some(x)
        } else {
            self.error(
                v.span(),
                format!("{what} = {x} is out of range"),
                format!("use a number from {lo} to {hi}"),
            );
            None
        }
    }

    fn duration(&mut self, v: &S<String>, what: &str) -> Option<Duration> {
        match parse_time(v.get_ref()) {
            Some(d) => Some(d),
            None => {
                self.error(
                    v.span(),
                    format!("{what} = {:?} is not a duration", v.get_ref()),
                    "write a number with a unit: \"250us\", \"10ms\", \"1.5s\", \"2m\"",
                );
                None
            }
        }
    }

    fn dist(&mut self, v: &S<toml::Value>, what: &str) -> Option<Dist> {
        let bad = |c: &mut Self| {
            c.error(
                v.span(),
                format!("{what} is not a service time"),
                "write \"10ms\" (always), { mean = \"10ms\" } (exponential), \
                 { median = \"10ms\", p99 = \"80ms\" } (log-normal) or { min = \"5ms\", max = \"15ms\" }",
            );
            None
        };
        let time = |x: &toml::Value| x.as_str().and_then(parse_time);
        match v.get_ref() {
            toml::Value::String(s) => match parse_time(s) {
                Some(d) if !d.is_zero() => Some(Dist::Fixed(d)),
                _ => bad(self),
            },
            toml::Value::Table(t) => {
                let keys: Vec<&str> = t.keys().map(String::as_str).collect();
                let get = |k: &str| t.get(k).and_then(time);
                match keys.as_slice() {
                    ["mean"] => get("mean").filter(|d| !d.is_zero()).map(Dist::Exp),
                    ["median", "p99"] | ["p99", "median"] => match (get("median"), get("p99")) {
                        (Some(m), Some(p)) if !m.is_zero() && p >= m => {
                            Some(Dist::LogNormal { median: m, p99: p })
                        }
                        _ => None,
                    },
                    ["max", "min"] | ["min", "max"] => match (get("min"), get("max")) {
                        (Some(a), Some(b)) if a <= b && !b.is_zero() => Some(Dist::Uniform(a, b)),
                        _ => None,
                    },
                    _ => None,
                }
                .or_else(|| bad(self))
            }
            _ => bad(self),
        }
    }

    fn workload(&mut self, f: File, dir: Option<&Path>) -> Option<Workload> {
        let algorithms = match &f.algorithms {
            None => Vec::new(),
            Some(list) => {
                let mut v = Vec::new();
                for a in list.get_ref() {
                    match Algorithm::parse(a.get_ref()) {
                        Some(x) if !v.contains(&x) => v.push(x),
                        Some(_) => {}
                        None => self.error(
                            a.span(),
                            format!("unknown algorithm {:?}", a.get_ref()),
                            format!("use one of: {}", Algorithm::NAMES.join(", ")),
                        ),
                    }
                }
                if v.is_empty() && list.get_ref().is_empty() {
                    self.error(
                        list.span(),
                        "algorithms is empty".into(),
                        "name at least one, e.g. algorithms = [\"round_robin\", \"least_conn\"], or leave the key out for all",
                    );
                }
                v
            }
        };
        let goal = match &f.goal {
            None => None,
            Some(g) => match g.get_ref().as_str() {
                "p50" => Some(Goal::P50),
                "p99" => Some(Goal::P99),
                "p999" => Some(Goal::P999),
                "errors" => Some(Goal::Errors),
                "keys_moved" => Some(Goal::KeysMoved),
                other => {
                    self.error(
                        g.span(),
                        format!("unknown goal {other:?}"),
                        "use one of: p50, p99, p999, errors, keys_moved",
                    );
                    None
                }
            },
        };
        let seed = f
            .seed
            .as_ref()
            .and_then(|s| self.int(s, "seed", 0, i64::MAX))
            .unwrap_or(1);
        let t = self.traffic(f.traffic.as_ref());
        let (pool, names, inline_ok) = self.pool(f.pool.as_ref(), &f.server, dir)?;
        let servers = self.models(&f.server, &pool, inline_ok);
        let events = self.events(&f.event, &names);
        let (requests, rate, burstiness, keys, key_skew, mix) = t?;
        let algorithms = if algorithms.is_empty() && f.algorithms.is_none() {
            default_algorithms(&pool)
        } else {
            algorithms
        };
        let goal = goal.unwrap_or(
            if events.iter().any(|e| e.action == Action::Leave)
                && algorithms.iter().all(|a| is_hashing(*a))
            {
                Goal::KeysMoved
            } else {
                Goal::P99
            },
        );
        Some(Workload {
            file: self.file.to_string(),
            algorithms,
            goal,
            seed,
            requests,
            rate,
            burstiness,
            keys,
            key_skew,
            mix,
            pool,
            servers: servers?,
            events,
        })
    }

    #[allow(clippy::type_complexity)]
    fn traffic(
        &mut self,
        t: Option<&S<TrafficFile>>,
    ) -> Option<(u64, f64, f64, u64, f64, Vec<Class>)> {
        let Some(t) = t else {
            self.error(
                0..0,
                "the workload has no [traffic]".into(),
                "add [traffic] with requests = 100000, rate = 1000 and service = \"10ms\"",
            );
            return None;
        };
        let span = t.span();
        let t = t.get_ref();
        let requests = t
            .requests
            .as_ref()
            .map_or(Some(100_000), |v| self.int(v, "requests", 1, 100_000_000));
        let rate = t
            .rate
            .as_ref()
            .map_or(Some(1000.0), |v| self.float(v, "rate", 0.001, 1e8));
        let burstiness = t
            .burstiness
            .as_ref()
            .map_or(Some(1.0), |v| self.float(v, "burstiness", 0.0, 10.0));
        let keys = t
            .keys
            .as_ref()
            .map_or(Some(10_000), |v| self.int(v, "keys", 1, 10_000_000));
        let key_skew = t
            .key_skew
            .as_ref()
            .map_or(Some(0.0), |v| self.float(v, "key_skew", 0.0, 5.0));
        let mix = match (&t.service, t.mix.is_empty()) {
            (Some(s), true) => self.dist(s, "service").map(|d| {
                vec![Class {
                    share: 1.0,
                    service: d,
                }]
            }),
            (None, false) => {
                let mut v = Vec::new();
                let mut ok = true;
                for m in &t.mix {
                    let share = match &m.get_ref().share {
                        Some(s) => self.float(s, "share", 0.0, 1e9),
                        None => {
                            self.error(
                                m.span(),
                                "this [[traffic.mix]] has no share".into(),
                                "add share = 0.9 (shares are relative to each other)",
                            );
                            None
                        }
                    };
                    let service = match &m.get_ref().service {
                        Some(s) => self.dist(s, "service"),
                        None => {
                            self.error(
                                m.span(),
                                "this [[traffic.mix]] has no service".into(),
                                "add service = \"10ms\"",
                            );
                            None
                        }
                    };
                    match (share, service) {
                        (Some(share), Some(service)) => v.push(Class { share, service }),
                        _ => ok = false,
                    }
                }
                let total: f64 = v.iter().map(|c| c.share).sum();
                if ok && total <= 0.0 {
                    self.error(
                        t.mix[0].span(),
                        "the shares of [[traffic.mix]] add up to 0".into(),
                        "give at least one kind of request a share above 0",
                    );
                    ok = false;
                }
                ok.then_some(v)
            }
            (Some(s), false) => {
                self.error(
                    s.span(),
                    "[traffic] has both service and [[traffic.mix]]".into(),
                    "keep one: service for one kind of request, [[traffic.mix]] for several",
                );
                None
            }
            (None, true) => {
                self.error(
                    span,
                    "[traffic] says nothing of what a request costs".into(),
                    "add service = \"10ms\" (time on a server of speed 1), or [[traffic.mix]] entries",
                );
                None
            }
        };
        Some((requests?, rate?, burstiness?, keys?, key_skew?, mix?))
    }

    /// The pool, the name of each of its servers, and whether servers are written inline.
    fn pool(
        &mut self,
        p: Option<&S<PoolFile>>,
        servers: &[S<ServerFile>],
        dir: Option<&Path>,
    ) -> Option<(PoolPlan, Vec<String>, bool)> {
        let empty = PoolFile {
            config: None,
            name: None,
            hash_key: None,
            max_fails: None,
            fail_timeout: None,
            slow_start: None,
            retries: None,
            sticky: None,
            health: None,
            read_timeout: None,
        };
        let (span, p) = match p {
            Some(p) => (p.span(), p.get_ref()),
            None => (0..0, &empty),
        };
        if let Some(config) = &p.config {
            if let Some(k) = [
                p.hash_key.as_ref().map(|v| v.span()),
                p.max_fails.as_ref().map(|v| v.span()),
                p.fail_timeout.as_ref().map(|v| v.span()),
                p.slow_start.as_ref().map(|v| v.span()),
                p.retries.as_ref().map(|v| v.span()),
                p.sticky.as_ref().map(|v| v.span()),
                p.health.as_ref().map(|v| v.span()),
                p.read_timeout.as_ref().map(|v| v.span()),
            ]
            .into_iter()
            .flatten()
            .next()
            {
                self.error(
                    k,
                    "a pool read from config takes its settings from that file".into(),
                    "change the setting in the config file, or write the pool inline without config",
                );
            }
            let path: PathBuf = dir.unwrap_or(Path::new(".")).join(config.get_ref());
            let plan = match crate::config::load_file(&path) {
                Ok(plan) => plan,
                Err(errors) => {
                    self.error(
                        config.span(),
                        format!("the config {} has errors:\n{errors}", path.display()),
                        format!("run switchyard check -c {}", path.display()),
                    );
                    return None;
                }
            };
            let pool = match &p.name {
                Some(n) => match plan.pool(n.get_ref()) {
                    Some(pool) => pool.clone(),
                    None => {
                        let names: Vec<&str> = plan.pools.iter().map(|p| p.name.as_str()).collect();
                        self.error(
                            n.span(),
                            format!("{} has no pool {:?}", path.display(), n.get_ref()),
                            format!("use one of: {}", names.join(", ")),
                        );
                        return None;
                    }
                },
                None => plan.pools.first()?.clone(),
            };
            let names = pool.servers.iter().map(|s| s.name.clone()).collect();
            return Some((pool, names, false));
        }
        if let Some(n) = &p.name {
            self.error(
                n.span(),
                "name picks a pool of a config file, and there is no config".into(),
                "add config = \"path/to/switchyard.toml\", or leave name out for an inline pool",
            );
        }
        // Inline: servers from [[server]], settings from [pool], through Switchyard's own
        // config reader, so every default and check is the real one.
        let mut entries = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for s in servers {
            let f = s.get_ref();
            let count = f
                .count
                .as_ref()
                .map_or(Some(1), |c| self.int(c, "count", 1, 10_000))
                .unwrap_or(1);
            let base = f.name.as_ref().map(|n| n.get_ref().clone());
            let weight = f
                .weight
                .as_ref()
                .map_or(Some(1), |w| self.int(w, "weight", 1, 1000))
                .unwrap_or(1);
            for k in 0..count {
                let name = match (&base, count) {
                    (Some(b), 1) => b.clone(),
                    (Some(b), _) => format!("{b}{}", k + 1),
                    (None, _) => format!("s{}", names.len() + 1),
                };
                if names.contains(&name) {
                    self.error(
                        s.span(),
                        format!("two servers are named {name:?}"),
                        "give each [[server]] its own name",
                    );
                }
                entries.push(format!(
                    "{{ addr = \"{}\", name = {}, weight = {weight}, backup = {}, down = {} }}",
                    inline_addr(entries.len()),
                    toml_str(&name),
                    f.backup.unwrap_or(false),
                    f.down.unwrap_or(false)
                ));
                names.push(name);
            }
        }
        if entries.is_empty() {
            self.error(
                span,
                "the pool has no servers".into(),
                "add [[server]] entries (name, weight, speed, concurrency; count = N for N alike), \
                 or config = \"switchyard.toml\" in [pool]",
            );
            return None;
        }
        let mut keys = String::new();
        let mut line = |k: &str, v: String| keys.push_str(&format!("{k} = {v}\n"));
        if let Some(v) = &p.hash_key {
            // Switchyard takes hash_key only with a hashing algorithm; each run sets its own.
            line("algorithm", "\"hash\"".into());
            line("hash_key", toml_str(v.get_ref()));
        }
        if let Some(v) = &p.max_fails {
            line("max_fails", self.int(v, "max_fails", 0, 1000)?.to_string());
        }
        for (k, v) in [
            ("fail_timeout", &p.fail_timeout),
            ("slow_start", &p.slow_start),
        ] {
            if let Some(v) = v {
                line(k, toml_str(v.get_ref()));
            }
        }
        if let Some(v) = &p.read_timeout {
            line(
                "timeouts",
                format!("{{ read = {} }}", toml_str(v.get_ref())),
            );
        }
        if let Some(v) = &p.retries {
            line(
                "retry",
                format!("{{ attempts = {} }}", self.int(v, "retries", 0, 100)?),
            );
        }
        if let Some(v) = &p.sticky {
            line("sticky", format!("{{ mode = {} }}", toml_str(v.get_ref())));
        }
        if let Some(h) = &p.health {
            let h = h.get_ref();
            let mut parts = vec!["type = \"tcp\"".to_string()];
            if let Some(v) = &h.interval {
                parts.push(format!("interval = {}", toml_str(v.get_ref())));
                parts.push(format!("timeout = {}", toml_str(v.get_ref())));
            }
            for (k, v) in [("rise", &h.rise), ("fall", &h.fall)] {
                if let Some(v) = v {
                    parts.push(format!("{k} = {}", self.int(v, k, 1, 1000)?));
                }
            }
            line("health", format!("{{ {} }}", parts.join(", ")));
        }
        let text = format!(
            "[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"sim\"\n[pool.sim]\n{keys}servers = [\n  {}\n]\n",
            entries.join(",\n  ")
        );
        match crate::config::load_str(&text, "pool") {
            Ok(plan) => Some((plan.pools[0].clone(), names, true)),
            Err(errors) => {
                // A value Switchyard's reader refused (a bad hash_key, duration, sticky mode):
                // point at [pool] with its words.
                for e in errors.0 {
                    self.error(
                        span.clone(),
                        format!("in [pool]: {}", e.message),
                        e.help
                            .unwrap_or_else(|| "see docs/config.md for the pool keys".into()),
                    );
                }
                None
            }
        }
    }

    fn models(
        &mut self,
        servers: &[S<ServerFile>],
        pool: &PoolPlan,
        inline: bool,
    ) -> Option<Vec<ServerModel>> {
        let mut models: Vec<ServerModel> = pool
            .servers
            .iter()
            .map(|s| ServerModel {
                name: s.name.clone(),
                speed: 1.0,
                concurrency: 0,
                queue: 0,
            })
            .collect();
        let mut next = 0;
        let mut ok = true;
        for s in servers {
            let f = s.get_ref();
            let count = if inline {
                f.count
                    .as_ref()
                    .map_or(1, |c| *c.get_ref().max(&1) as usize)
            } else {
                for (k, span) in [
                    ("count", f.count.as_ref().map(|v| v.span())),
                    ("weight", f.weight.as_ref().map(|v| v.span())),
                ] {
                    if let Some(span) = span {
                        self.error(
                            span,
                            format!("{k} of a server of a config pool comes from the config"),
                            "change it in the config file, or leave it out here",
                        );
                    }
                }
                1
            };
            let targets: Vec<usize> = if inline {
                let r = next..(next + count).min(models.len());
                next += count;
                r.collect()
            } else {
                let Some(name) = &f.name else {
                    self.error(
                        s.span(),
                        "a [[server]] of a config pool needs name".into(),
                        "add name = \"...\": a server's name (or address) in the config",
                    );
                    ok = false;
                    continue;
                };
                match pool.servers.iter().position(|p| {
                    p.name == *name.get_ref() || p.addr.to_string() == *name.get_ref()
                }) {
                    Some(i) => vec![i],
                    None => {
                        let names: Vec<&str> =
                            pool.servers.iter().map(|s| s.name.as_str()).collect();
                        self.error(
                            name.span(),
                            format!("pool {:?} has no server {:?}", pool.name, name.get_ref()),
                            format!("use one of: {}", names.join(", ")),
                        );
                        ok = false;
                        continue;
                    }
                }
            };
            let speed = f
                .speed
                .as_ref()
                .map_or(Some(1.0), |v| self.float(v, "speed", 0.001, 1000.0));
            let concurrency = f
                .concurrency
                .as_ref()
                .map_or(Some(0), |v| self.int(v, "concurrency", 0, 1_000_000));
            let queue = f
                .queue
                .as_ref()
                .map_or(Some(0), |v| self.int(v, "queue", 0, 100_000_000));
            let (Some(speed), Some(concurrency), Some(queue)) = (speed, concurrency, queue) else {
                ok = false;
                continue;
            };
            for i in targets {
                let m = &mut models[i];
                m.speed = speed;
                m.concurrency = concurrency as usize;
                m.queue = queue as usize;
            }
        }
        ok.then_some(models)
    }

    fn events(&mut self, events: &[S<EventFile>], names: &[String]) -> Vec<Event> {
        let mut out = Vec::new();
        for e in events {
            let f = e.get_ref();
            let need = |c: &mut Self, k: &str, help: &str| {
                c.error(
                    e.span(),
                    format!("this [[event]] has no {k}"),
                    help.to_string(),
                );
            };
            let at = match &f.at {
                Some(v) => self.duration(v, "at"),
                None => {
                    need(
                        self,
                        "at",
                        "add at = \"30s\" (time since the first request)",
                    );
                    None
                }
            };
            let server = match &f.server {
                Some(v) => match names.iter().position(|n| n == v.get_ref()) {
                    Some(i) => Some(i),
                    None => {
                        self.error(
                            v.span(),
                            format!("no server is named {:?}", v.get_ref()),
                            format!("use one of: {}", names.join(", ")),
                        );
                        None
                    }
                },
                None => {
                    need(self, "server", "add server = \"NAME\"");
                    None
                }
            };
            let action = match &f.action {
                Some(v) => match (v.get_ref().as_str(), &f.speed) {
                    ("fail", None) => Some(Action::Fail),
                    ("hang", None) => Some(Action::Hang),
                    ("recover", None) => Some(Action::Recover),
                    ("leave", None) => Some(Action::Leave),
                    ("join", None) => Some(Action::Join),
                    ("down", None) => Some(Action::Down),
                    ("up", None) => Some(Action::Up),
                    ("slow", Some(s)) => self.float(s, "speed", 0.001, 1000.0).map(Action::Slow),
                    ("slow", None) => {
                        self.error(
                            v.span(),
                            "do = \"slow\" needs speed".into(),
                            "add speed = 0.2 (a fifth of the normal speed)",
                        );
                        None
                    }
                    (_, Some(s)) if ACTIONS.contains(&v.get_ref().as_str()) => {
                        self.error(
                            s.span(),
                            "speed goes only with do = \"slow\"".into(),
                            "remove speed, or write do = \"slow\"",
                        );
                        None
                    }
                    (other, _) => {
                        self.error(
                            v.span(),
                            format!("unknown event {other:?}"),
                            format!("use one of: {}", ACTIONS.join(", ")),
                        );
                        None
                    }
                },
                None => {
                    need(
                        self,
                        "do",
                        "add do = \"fail\" (or hang, recover, slow, leave, join, down, up)",
                    );
                    None
                }
            };
            if let (Some(at), Some(server), Some(action)) = (at, server, action) {
                out.push(Event { at, server, action });
            }
        }
        out.sort_by_key(|e| e.at);
        out
    }
}

const ACTIONS: &[&str] = &[
    "fail", "hang", "recover", "slow", "leave", "join", "down", "up",
];

/// Whether the algorithm keeps a key on one server (and so "keys moved" means something).
pub fn is_hashing(a: Algorithm) -> bool {
    matches!(a, Algorithm::IpHash | Algorithm::Hash | Algorithm::Maglev)
}

/// Without `algorithms`: all of them, except that a pool hashing a key other than the
/// client address is not offered `ip_hash` (which hashes only the address).
fn default_algorithms(pool: &PoolPlan) -> Vec<Algorithm> {
    Algorithm::NAMES
        .iter()
        .filter_map(|n| Algorithm::parse(n))
        .fold(Vec::new(), |mut v, a| {
            if !v.contains(&a) {
                v.push(a);
            }
            v
        })
        .into_iter()
        .filter(|a| *a != Algorithm::IpHash || pool.hash_key == crate::config::HashKey::ClientIp)
        .collect()
}

/// A TOML string literal.
fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn errors(src: &str) -> String {
        load_str(src, "w.toml", None).unwrap_err().to_string()
    }

    #[test]
    fn an_inline_workload_reads_with_defaults() {
        let w = load_str(
            "[traffic]\nservice = \"10ms\"\n[[server]]\nname = \"a\"\ncount = 3\n[[server]]\nname = \"slow\"\nspeed = 0.2\nconcurrency = 4\n",
            "w.toml",
            None,
        )
        .unwrap();
        assert_eq!(w.requests, 100_000);
        assert_eq!(w.servers.len(), 4);
        assert_eq!(w.servers[0].name, "a1");
        assert_eq!((w.servers[3].speed, w.servers[3].concurrency), (0.2, 4));
        assert_eq!(w.pool.servers.len(), 4);
        assert_eq!(w.goal, Goal::P99);
        assert!(w.algorithms.contains(&Algorithm::LeastTime));
    }

    #[test]
    fn every_mistake_is_named_with_its_line_and_a_fix() {
        let text = errors(
            "algorithms = [\"least_connections\"]\n[traffic]\nrate = -1.0\nservice = \"10 parsecs\"\n[[server]]\nname = \"a\"\n[[event]]\nat = \"1s\"\nserver = \"b\"\ndo = \"explode\"\n",
        );
        assert!(
            text.contains("w.toml:1:15: unknown algorithm \"least_connections\""),
            "{text}"
        );
        assert!(
            text.contains("w.toml:3:8: rate = -1 is out of range"),
            "{text}"
        );
        assert!(
            text.contains("w.toml:4:11: service is not a service time"),
            "{text}"
        );
        assert!(
            text.contains("w.toml:9:10: no server is named \"b\""),
            "{text}"
        );
        assert!(text.contains("help: use one of: a"), "{text}");
        assert!(
            text.contains("w.toml:10:6: unknown event \"explode\""),
            "{text}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_pool_values_point_at_their_place() {
        let text = errors("[traffic]\nservise = \"10ms\"\n");
        assert!(
            text.contains("w.toml:2:1: unknown field `servise`"),
            "{text}"
        );
        let text = errors(
            "[traffic]\nservice = \"10ms\"\n[pool]\nhash_key = \"cookies:x\"\n[[server]]\nname = \"a\"\n",
        );
        assert!(text.contains("w.toml:3:1: in [pool]:"), "{text}");
    }

    #[test]
    fn times_and_distributions() {
        assert_eq!(parse_time("250us"), Some(Duration::from_micros(250)));
        assert_eq!(parse_time("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_time("10"), None);
        let d = Dist::LogNormal {
            median: Duration::from_millis(10),
            p99: Duration::from_millis(10),
        };
        assert_eq!(d.mean(), Duration::from_millis(10));
    }
}

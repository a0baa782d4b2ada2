//! The TOML shape of a configuration file, as serde reads it.
//!
//! Every struct denies unknown keys, and every value an operator can get wrong keeps its
//! span so `validate.rs` can point at the exact line and column. Nothing here is checked
//! beyond its TOML type: numbers stay `i64` so that `weight = 0` or `weight = -1` reach
//! validation and get a message that says what to write instead. Keys an entry cannot do
//! without (`listen`, `addr`, `mode`, …) are `Option`s too: validation reports a missing one
//! and still checks the rest of the entry, where serde would drop the entry whole.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub workers: Option<S<i64>>,
    pub grace_period: Option<S<String>>,
    /// How long `/health/ready` answers 503 after SIGTERM before the listeners close.
    pub shutdown_delay: Option<S<String>>,
    #[serde(default)]
    pub listener: Vec<S<ListenerFile>>,
    #[serde(default)]
    pub pool: BTreeMap<String, S<PoolFile>>,
    pub admin: Option<S<AdminFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    pub name: Option<S<String>>,
    /// Required.
    pub listen: Option<S<String>>,
    pub protocol: Option<S<String>>,
    pub pool: Option<S<String>>,
    #[serde(default)]
    pub route: Vec<S<RouteFile>>,
    // L4 keys (protocol = "tcp" | "udp"); checked in validate/l4.rs.
    pub idle_timeout: Option<S<String>>,
    pub max_connections: Option<S<i64>>,
    pub proxy_protocol: Option<S<String>>,
    pub accept_proxy_protocol: Option<S<bool>>,
    pub trusted_proxies: Option<S<Vec<S<String>>>>,
    pub splice: Option<S<bool>>,
    pub session_timeout: Option<S<String>>,
    pub max_sessions: Option<S<i64>>,
    /// `[[listener.tls]]` certificate/key pairs of an `https` listener.
    #[serde(default)]
    pub tls: Vec<S<TlsCertFile>>,
    pub redirect_https: Option<S<bool>>,
    pub hsts: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCertFile {
    /// Required.
    pub cert: Option<S<String>>,
    /// Required.
    pub key: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamTlsFile {
    pub ca: Option<S<String>>,
    pub server_name: Option<S<String>>,
    pub client_cert: Option<S<String>>,
    pub client_key: Option<S<String>>,
    pub insecure_skip_verify: Option<S<bool>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteFile {
    pub host: Option<S<String>>,
    pub path_prefix: Option<S<String>>,
    pub method: Option<S<String>>,
    pub header: Option<S<NameValue>>,
    pub cookie: Option<S<NameValue>>,
    pub pool: Option<S<String>>,
    pub split: Option<S<Vec<S<SplitFile>>>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NameValue {
    /// Required.
    pub name: Option<String>,
    /// Required.
    pub value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitFile {
    /// Required.
    pub pool: Option<S<String>>,
    /// Required.
    pub weight: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PoolFile {
    pub algorithm: Option<S<String>>,
    pub hash_key: Option<S<String>>,
    pub keepalive: Option<S<i64>>,
    pub keepalive_timeout: Option<S<String>>,
    pub timeouts: Option<S<TimeoutsFile>>,
    pub host_header: Option<S<String>>,
    pub servers: Option<S<Vec<S<ServerFile>>>>,
    pub max_fails: Option<S<i64>>,
    pub fail_timeout: Option<S<String>>,
    pub slow_start: Option<S<String>>,
    pub health: Option<S<HealthFile>>,
    pub retry: Option<S<RetryFile>>,
    pub sticky: Option<S<StickyFile>>,
    pub upstream_protocol: Option<S<String>>,
    pub tls: Option<S<UpstreamTlsFile>>,
    pub tunnel_idle_timeout: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TimeoutsFile {
    pub connect: Option<S<String>>,
    pub read: Option<S<String>>,
    pub send: Option<S<String>>,
    pub client_body: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    /// Required.
    pub addr: Option<S<String>>,
    pub name: Option<S<String>>,
    pub weight: Option<S<i64>>,
    pub backup: Option<bool>,
    pub down: Option<bool>,
    /// Draining: no new requests; sticky clients stay unless `[sticky] on_drain = "move"`.
    pub drain: Option<S<bool>>,
    pub max_fails: Option<S<i64>>,
    pub fail_timeout: Option<S<String>>,
    pub slow_start: Option<S<String>>,
}

/// `[pool.NAME.health]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthFile {
    #[serde(rename = "type")]
    pub kind: Option<S<String>>,
    pub path: Option<S<String>>,
    pub method: Option<S<String>>,
    pub host: Option<S<String>>,
    pub expect: Option<S<String>>,
    pub expect_body: Option<S<String>>,
    /// The gRPC service a `type = "grpc"` check asks about.
    pub service: Option<S<String>>,
    pub interval: Option<S<String>>,
    pub timeout: Option<S<String>>,
    pub rise: Option<S<i64>>,
    pub fall: Option<S<i64>>,
}

/// `[pool.NAME.retry]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryFile {
    pub attempts: Option<S<i64>>,
    pub on: Option<S<Vec<S<String>>>>,
    pub non_idempotent: Option<bool>,
    pub budget: Option<S<f64>>,
}

/// `[pool.NAME.sticky]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StickyFile {
    /// Required.
    pub mode: Option<S<String>>,
    pub name: Option<S<String>>,
    pub ttl: Option<S<String>>,
    pub size: Option<S<i64>>,
    /// What a draining server's sticky clients do: `stay` (HAProxy, nginx) or `move`.
    pub on_drain: Option<S<String>>,
}

/// `[admin]`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminFile {
    /// Required.
    pub listen: Option<S<String>>,
    /// With a token, every `/api/` request needs `Authorization: Bearer TOKEN`.
    pub token: Option<S<String>>,
}

//! The TOML shape of a configuration file, as serde reads it.
//!
//! Every struct denies unknown keys, and every value an operator can get wrong keeps its
//! span so `validate.rs` can point at the exact line and column. Nothing here is checked
//! beyond its TOML type: numbers stay `i64` so that `weight = 0` or `weight = -1` reach
//! validation and get a message that says what to write instead.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

pub type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigFile {
    pub workers: Option<S<i64>>,
    pub grace_period: Option<S<String>>,
    #[serde(default)]
    pub listener: Vec<S<ListenerFile>>,
    #[serde(default)]
    pub pool: BTreeMap<String, S<PoolFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenerFile {
    pub name: Option<S<String>>,
    pub listen: S<String>,
    pub protocol: Option<S<String>>,
    pub pool: Option<S<String>>,
    #[serde(default)]
    pub route: Vec<S<RouteFile>>,
    /// `[[listener.tls]]` certificate/key pairs of an `https` listener.
    #[serde(default)]
    pub tls: Vec<S<TlsCertFile>>,
    pub redirect_https: Option<S<bool>>,
    pub hsts: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsCertFile {
    pub cert: S<String>,
    pub key: S<String>,
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
    pub name: String,
    pub value: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SplitFile {
    pub pool: S<String>,
    pub weight: S<i64>,
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
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerFile {
    pub addr: S<String>,
    pub name: Option<S<String>>,
    pub weight: Option<S<i64>>,
    pub backup: Option<bool>,
    pub down: Option<bool>,
}

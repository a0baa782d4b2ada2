//! The workload file as serde reads it: every table denies unknown keys, and every value
//! an operator can get wrong keeps its span for `check.rs` to point at.

use serde::Deserialize;
use toml::Spanned;

pub(super) type S<T> = Spanned<T>;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct File {
    pub(super) algorithms: Option<S<Vec<S<String>>>>,
    pub(super) goal: Option<S<String>>,
    pub(super) seed: Option<S<i64>>,
    pub(super) traffic: Option<S<TrafficFile>>,
    pub(super) pool: Option<S<PoolFile>>,
    #[serde(default)]
    pub(super) server: Vec<S<ServerFile>>,
    #[serde(default)]
    pub(super) event: Vec<S<EventFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TrafficFile {
    pub(super) requests: Option<S<i64>>,
    pub(super) rate: Option<S<f64>>,
    pub(super) burstiness: Option<S<f64>>,
    pub(super) keys: Option<S<i64>>,
    pub(super) key_skew: Option<S<f64>>,
    pub(super) service: Option<S<toml::Value>>,
    #[serde(default)]
    pub(super) mix: Vec<S<MixFile>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct MixFile {
    pub(super) share: Option<S<f64>>,
    pub(super) service: Option<S<toml::Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PoolFile {
    pub(super) config: Option<S<String>>,
    pub(super) name: Option<S<String>>,
    pub(super) hash_key: Option<S<String>>,
    pub(super) max_fails: Option<S<i64>>,
    pub(super) fail_timeout: Option<S<String>>,
    pub(super) slow_start: Option<S<String>>,
    pub(super) retries: Option<S<i64>>,
    pub(super) sticky: Option<S<String>>,
    pub(super) health: Option<S<HealthFile>>,
    pub(super) read_timeout: Option<S<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct HealthFile {
    pub(super) interval: Option<S<String>>,
    pub(super) rise: Option<S<i64>>,
    pub(super) fall: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct ServerFile {
    pub(super) name: Option<S<String>>,
    pub(super) count: Option<S<i64>>,
    pub(super) weight: Option<S<i64>>,
    pub(super) backup: Option<bool>,
    pub(super) down: Option<bool>,
    pub(super) speed: Option<S<f64>>,
    pub(super) concurrency: Option<S<i64>>,
    pub(super) queue: Option<S<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct EventFile {
    pub(super) at: Option<S<String>>,
    pub(super) server: Option<S<String>>,
    #[serde(rename = "do")]
    pub(super) action: Option<S<String>>,
    pub(super) speed: Option<S<f64>>,
}

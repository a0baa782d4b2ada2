//! The metrics of the process and its running configuration (`admin::Loaded`,
//! `admin::Reloads`, counted by the runtime's control task).

use std::sync::atomic::Ordering;

use super::describe::{Json, Metric, Reader, load, unix_seconds};
use crate::observe::metrics::Kind;

pub static METRICS: &[Metric] = &[
    Metric {
        name: "switchyard_build_info",
        help: "Always 1; the version of the running binary is in the label.",
        kind: Kind::Gauge,
        labels: &["version"],
        json: Json::Labels(""),
        counted_in: "the crate's version",
        read: Reader::Process(|_, o| o.sample(&[env!("CARGO_PKG_VERSION")], 1u64.into())),
    },
    Metric {
        name: "switchyard_reloads_total",
        help: "Reloads of the config file (SIGHUP, switchyard reload, POST /api/reload), by result (ok, error); a failed one changed nothing.",
        kind: Kind::Counter,
        labels: &["result"],
        json: Json::Number("config.reloads"),
        counted_in: "`Reloads::count` (runtime::control)",
        read: Reader::Process(|v, o| {
            o.sample(&["ok"], load(&v.reloads.ok).into());
            o.sample(&["error"], load(&v.reloads.failed).into());
        }),
    },
    Metric {
        name: "switchyard_config_last_reload_successful",
        help: "0 when the last reload failed (the configuration before it still runs), else 1.",
        kind: Kind::Gauge,
        labels: &[],
        json: Json::Flag("config.last_reload_successful"),
        counted_in: "`Reloads::count` (runtime::control)",
        read: Reader::Process(|v, o| o.value(!v.reloads.last_failed.load(Ordering::Relaxed))),
    },
    Metric {
        name: "switchyard_config_info",
        help: "Always 1; the config file and its SHA-256 as last loaded (sha256sum prints the same) are in the labels.",
        kind: Kind::Gauge,
        labels: &["path", "sha256"],
        json: Json::Labels("config"),
        counted_in: "`Loaded` (runtime, at start and each reload)",
        read: Reader::Process(|v, o| {
            let c = &v.config;
            o.sample(
                &[
                    c.path.as_deref().unwrap_or(""),
                    c.sha256.as_deref().unwrap_or(""),
                ],
                1u64.into(),
            )
        }),
    },
    Metric {
        name: "switchyard_config_loaded_timestamp_seconds",
        help: "When the running configuration was applied (start, reload or admin API change), in seconds since the Unix epoch.",
        kind: Kind::Gauge,
        labels: &[],
        json: Json::Millis("config.loaded_at_unix_ms"),
        counted_in: "`Loaded::at` (runtime, at each change)",
        read: Reader::Process(|v, o| o.value(unix_seconds(v.config.at))),
    },
    Metric {
        name: "switchyard_config_api_changes",
        help: "Changes made over the admin API and kept on top of the config file (GET /api/config writes them out).",
        kind: Kind::Gauge,
        labels: &[],
        json: Json::Number("config.api_changes"),
        counted_in: "runtime::overrides",
        read: Reader::Process(|v, o| o.value(v.config.overrides)),
    },
    Metric {
        name: "switchyard_workers",
        help: "Worker threads running (workers); made at start, so a reload of a file that says another number leaves it (restart or upgrade to change it).",
        kind: Kind::Gauge,
        labels: &[],
        json: Json::Number("config.workers"),
        counted_in: "the running plan (runtime::running keeps the count made at start)",
        read: Reader::Process(|v, o| o.value(v.plan.workers)),
    },
    Metric {
        name: "switchyard_access_log_lines_total",
        help: "Access-log lines taken to be written (one per HTTP request, TCP connection or UDP session while [log] access is not off).",
        kind: Kind::Counter,
        labels: &[],
        json: Json::Number("access_log.lines"),
        counted_in: "`AccessLog::write` (observe::sink)",
        read: Reader::Process(|v, o| o.value(load(&v.access_log.counters().lines))),
    },
    Metric {
        name: "switchyard_access_log_dropped_total",
        help: "Access-log lines lost, by reason: buffer_full (the writer fell behind and a thread's [log] buffer was full; the request was not slowed), write_error (the write failed: disk full, a closed pipe).",
        kind: Kind::Counter,
        labels: &["reason"],
        json: Json::Number("access_log.dropped"),
        counted_in: "`AccessLog::write` and its writer thread (observe::sink)",
        read: Reader::Process(|v, o| {
            let c = v.access_log.counters();
            o.sample(&["buffer_full"], load(&c.dropped_full).into());
            o.sample(&["write_error"], load(&c.dropped_write).into());
        }),
    },
    Metric {
        name: "switchyard_tls_certificate_not_after_seconds",
        help: "When each certificate an https listener serves expires (its notAfter), in seconds since the Unix epoch, by listener, cert (its place in the listener's [[listener.tls]] list, from 1: two pairs may name the same host) and name (the first DNS name of its subjectAltName); updated when certificates are loaded or reloaded.",
        kind: Kind::Gauge,
        labels: &["listener", "cert", "name"],
        json: Json::Number("tls_certificate_not_after"),
        counted_in: "`tls::load_pair` (at start, on reload and when the files change)",
        read: Reader::Process(|v, o| {
            for l in &v.listeners {
                let Some(certs) = &l.certs else { continue };
                let store = certs.current();
                for (i, (names, t)) in store.names.iter().zip(&store.not_after).enumerate() {
                    let Some(t) = t else { continue };
                    let name = names.first().map_or("", String::as_str);
                    let cert = (i + 1).to_string();
                    o.sample(&[l.name.as_str(), &cert, name], ((*t).max(0) as u64).into());
                }
            }
        }),
    },
];

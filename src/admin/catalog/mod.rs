//! Every metric Switchyard exposes, described once: name, help, kind, labels, its key in
//! `/status`, the code that counts it, and how its value is read from the live state. The
//! Prometheus page (`admin/metrics.rs`), the `/status` JSON (`admin/status.rs`) and the list
//! in `docs/admin.md` (`docs.rs`, kept equal by a test) are all made from [`ALL`].
//!
//! To add a metric: count it where it happens (an atomic beside the thing it is about), then
//! add one [`Metric`] to the table of its scope below. Nothing else changes.
//!
//! - `describe.rs`: what a description is; the scopes; the readers; walking the view.
//! - `server.rs`, `pool.rs`, `http.rs`, `limits.rs`, `listener.rs`, `process.rs`: the
//!   tables, by scope.
//! - `docs.rs`: the docs' list, generated.

mod describe;
mod docs;
mod http;
mod limits;
mod listener;
mod pool;
mod process;
mod server;

pub use describe::{Instance, Json, Metric, Out, Reader, Scope, Subject, answer_rows, instances};
pub use docs::{BEGIN, END, markdown};

/// Every metric, in the order of the page and of the docs.
pub static ALL: &[&[Metric]] = &[
    server::METRICS,
    pool::METRICS,
    pool::STICKY,
    http::ANSWERS,
    http::HTTP,
    limits::LIMITS,
    listener::TCP,
    listener::UDP,
    listener::PROXY_IN,
    process::METRICS,
];

/// Every metric, one by one.
pub fn all() -> impl Iterator<Item = &'static Metric> {
    ALL.iter().flat_map(|m| m.iter())
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;
    use crate::observe::metrics::Kind;

    fn valid_name(name: &str) -> bool {
        let mut c = name.chars();
        c.next().is_some_and(|c| c.is_ascii_lowercase())
            && c.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    }

    #[test]
    fn names_follow_prometheus_conventions_and_appear_once() {
        let mut names = HashSet::new();
        for m in all() {
            assert!(names.insert(m.name), "{} twice", m.name);
            assert!(
                m.name.starts_with("switchyard_") && valid_name(m.name),
                "{}",
                m.name
            );
            assert_eq!(
                m.kind == Kind::Counter,
                m.name.ends_with("_total"),
                "{}: counters, and only they, end in _total",
                m.name
            );
            if m.kind == Kind::Histogram {
                assert!(m.name.ends_with("_seconds"), "{}: a unit", m.name);
            }
            for suffix in ["_count", "_sum", "_bucket"] {
                assert!(!m.name.ends_with(suffix), "{}: reserved suffix", m.name);
            }
            assert!(
                m.help.ends_with('.') && !m.help.contains('\n'),
                "{}",
                m.name
            );
            assert!(!m.counted_in.is_empty(), "{}", m.name);
            let scope = m.scope().labels();
            for l in m.labels {
                assert!(valid_name(l) && *l != "le", "{}: label {l}", m.name);
                assert!(!scope.contains(l), "{}: label {l} twice", m.name);
            }
        }
        // Names are also the same words in every scope: a label `pool` is a pool's name.
        assert!(names.len() > 40, "{} metrics", names.len());
    }

    #[test]
    fn status_keys_are_unique_in_their_object() {
        let mut keys = HashSet::new();
        for m in all() {
            assert!(
                keys.insert((m.scope(), m.json.key())),
                "{}: key {:?} taken in {:?}",
                m.name,
                m.json.key(),
                m.scope()
            );
            match m.json {
                Json::OneOf(_) => assert_eq!(m.labels.len(), 1, "{}", m.name),
                Json::Labels(_) => assert!(!m.labels.is_empty(), "{}", m.name),
                _ => {}
            }
        }
    }
}

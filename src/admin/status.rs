//! `GET /status`: the same live state as `/metrics`, as one JSON document for people,
//! scripts and the dashboard (`curl -s …/status | jq`): each pool with its servers, each
//! listener with its counters, the running configuration. Names, addresses and the last
//! check's words are written here; every number comes from the catalog (`catalog/`), each
//! under its metric's key.

use std::time::SystemTime;

use serde_json::{Map, Value, json};

use super::catalog::{self, Json, Metric, Out, Scope, Subject};
use super::{ListenerStats, View};
use crate::observe::histogram::Snapshot;
use crate::observe::metrics::Value as Sample;
use crate::proxy::http::Upstream;
use crate::upstream::Server;

/// The `/status` document; `draining` once a shutdown has begun (its `ready` is then false,
/// as `/health/ready` answers 503).
pub fn render(view: &View, draining: bool) -> String {
    let (ready, _) = super::readiness(view.pools.iter().map(|u| &u.pool));
    let ready = ready && !draining;
    let mut doc = json!({
        "pid": std::process::id(),
        "ready": ready,
        "config": {},
    });
    fill(&mut doc, Scope::Process, Subject::Process(view));
    doc["pools"] = view.pools.iter().map(|u| pool(u)).collect();
    doc["listeners"] = view
        .listeners
        .iter()
        .map(|l| {
            let mut answers = Vec::new();
            let counters = match &l.stats {
                ListenerStats::Http {
                    proxy_in,
                    http,
                    conns,
                } => {
                    let mut c = object(Scope::Http, Subject::Http(http));
                    c["limits"] = object(Scope::Limits, Subject::Limits(conns));
                    if let Some(s) = proxy_in {
                        c["proxy_protocol"] = object(Scope::ProxyIn, Subject::ProxyIn(s));
                    }
                    for r in http.rows() {
                        let mut a = json!({ "route": r.route, "pool": r.pool });
                        fill(&mut a, Scope::Answers, Subject::Answers(&r));
                        answers.push(a);
                    }
                    c
                }
                ListenerStats::Tcp(s) => object(Scope::Tcp, Subject::Tcp(s)),
                ListenerStats::Udp(s) => object(Scope::Udp, Subject::Udp(s)),
            };
            let mut v = json!({
                "name": l.name,
                "protocol": l.protocol.as_str(),
                "addr": l.addr.to_string(),
                "counters": counters,
            });
            if !answers.is_empty() {
                v["answers"] = answers.into();
            }
            v
        })
        .collect();
    let mut text = serde_json::to_string_pretty(&doc).unwrap_or_default();
    text.push('\n');
    text
}

fn pool(u: &Upstream) -> Value {
    let p = &u.pool;
    let mut v = json!({
        "name": p.name,
        "algorithm": p.algorithm.as_str(),
        "sticky": null,
        "servers": p.servers().iter().map(|s| server(u, s)).collect::<Vec<_>>(),
    });
    fill(&mut v, Scope::Pool, Subject::Pool(u));
    if let (Some(plan), Some(s)) = (&p.sticky, u.sticky()) {
        let mut st = json!({ "mode": plan.mode.as_str() });
        fill(&mut st, Scope::Sticky, Subject::Sticky(s));
        v["sticky"] = st;
    }
    v
}

/// One server: its name and address, the last check's words, and its metrics.
pub(super) fn server(u: &Upstream, s: &Server) -> Value {
    let last_check = match s.last_check() {
        None => Value::Null,
        Some(c) => {
            let ago = SystemTime::now().duration_since(c.at).unwrap_or_default();
            json!({ "detail": c.detail, "ago_ms": ago.as_millis() as u64 })
        }
    };
    let mut v = json!({
        "name": s.name,
        "addr": s.addr.to_string(),
        "last_check": last_check,
    });
    fill(&mut v, Scope::Server, Subject::Server(u, s));
    v
}

fn object(scope: Scope, subject: Subject<'_>) -> Value {
    let mut v = json!({});
    fill(&mut v, scope, subject);
    v
}

/// Write the metrics of `scope` read from `subject` into `obj`, each under its key.
fn fill(obj: &mut Value, scope: Scope, subject: Subject<'_>) {
    for m in catalog::all().filter(|m| m.scope() == scope) {
        m.read(subject, &mut JsonOut { obj, metric: m });
    }
}

/// A reader's samples written into a JSON object as the metric's [`Json`] says.
struct JsonOut<'a> {
    obj: &'a mut Value,
    metric: &'static Metric,
}

impl Out for JsonOut<'_> {
    fn sample(&mut self, labels: &[&str], value: Sample) {
        let key = self.metric.json.key();
        let number = match value {
            Sample::Int(n) => json!(n),
            Sample::Float(f) => json!(f),
        };
        let truth = match value {
            Sample::Int(n) => n != 0,
            Sample::Float(f) => f != 0.0,
        };
        match self.metric.json {
            Json::Number(_) => set(self.obj, key, labels, number),
            Json::Flag(_) => set(self.obj, key, labels, json!(truth)),
            Json::Millis(_) => {
                let secs = match value {
                    Sample::Int(n) => n as f64,
                    Sample::Float(f) => f,
                };
                set(self.obj, key, labels, json!((secs * 1e6).round() / 1e3));
            }
            Json::OneOf(_) => {
                if truth {
                    set(self.obj, key, &[], json!(labels.first().copied()));
                }
            }
            Json::Labels(_) => {
                for (name, v) in self.metric.labels.iter().zip(labels) {
                    set(self.obj, key, &[name], json!(v));
                }
            }
        }
    }

    fn histogram(&mut self, labels: &[&str], h: &Snapshot) {
        let buckets: Map<String, Value> = h
            .cumulative()
            .map(|(le, n)| {
                let le = if le.is_infinite() {
                    "+Inf".to_string()
                } else {
                    le.to_string()
                };
                (le, json!(n))
            })
            .collect();
        let v = json!({ "count": h.count(), "sum": h.sum, "buckets": buckets });
        set(self.obj, self.metric.json.key(), labels, v);
    }
}

/// `obj[a][b]…[labels…] = v` for a dotted `key` (empty parts skipped), making the objects
/// on the way (a `null` there becomes one).
fn set(obj: &mut Value, key: &str, labels: &[&str], v: Value) {
    let path: Vec<&str> = key
        .split('.')
        .filter(|k| !k.is_empty())
        .chain(labels.iter().copied())
        .collect();
    let mut at = obj;
    for (i, k) in path.iter().enumerate() {
        if !at.is_object() {
            *at = json!({});
        }
        let Value::Object(m) = at else { return };
        if i + 1 == path.len() {
            m.insert(k.to_string(), v);
            return;
        }
        at = m.entry(k.to_string()).or_insert(Value::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dotted_keys_and_labels_make_nested_objects() {
        let mut v = json!({ "last_check": null });
        set(&mut v, "last_check.success", &[], json!(true));
        set(&mut v, "responses", &["2xx"], json!(4));
        set(&mut v, "responses", &["5xx"], json!(1));
        set(&mut v, "", &["version"], json!("1.0"));
        assert_eq!(
            v,
            json!({
                "last_check": { "success": true },
                "responses": { "2xx": 4, "5xx": 1 },
                "version": "1.0",
            })
        );
    }
}

//! `GET /metrics`: every metric of the catalog (`catalog/`), read from the live atomics at
//! the moment of the request, in the Prometheus text format (`observe::metrics` writes it).
//!
//! Nothing is aggregated or stored here: a scrape loads each atomic once (relaxed), so the
//! proxies pay nothing for being observed. Counters start at zero with the process.

use super::View;
use super::catalog::{self, Instance, Metric, Out, Scope};
use crate::observe::histogram::Snapshot;
use crate::observe::metrics::{Exposition, Family, Value};

/// The `/metrics` page.
pub fn render(view: &View) -> String {
    let rows = catalog::answer_rows(view);
    let things: Vec<Vec<Instance<'_>>> = Scope::ALL
        .iter()
        .map(|s| catalog::instances(view, *s, &rows))
        .collect();
    let mut e = Exposition::new();
    for m in catalog::all() {
        let scope = m.scope();
        let of_scope = &things[Scope::ALL.iter().position(|s| *s == scope).unwrap_or(0)];
        e.family(m.name, m.help, m.kind, |f| {
            for i in of_scope {
                m.read(
                    i.subject,
                    &mut Prom {
                        f,
                        metric: m,
                        scope: scope.labels(),
                        values: &i.labels,
                    },
                );
            }
        });
    }
    e.finish()
}

/// A reader's samples written as lines of one family, with the scope's labels first.
struct Prom<'a, 'b> {
    f: &'a mut Family<'b>,
    metric: &'static Metric,
    scope: &'static [&'static str],
    values: &'a [String],
}

/// The scope's labels with their values, then the metric's own with `own`.
fn labels<'s>(
    metric: &'static Metric,
    scope: &'static [&'static str],
    values: &'s [String],
    own: &[&'s str],
) -> Vec<(&'s str, &'s str)> {
    debug_assert_eq!(own.len(), metric.labels.len(), "{}", metric.name);
    scope
        .iter()
        .copied()
        .zip(values.iter().map(String::as_str))
        .chain(metric.labels.iter().copied().zip(own.iter().copied()))
        .collect()
}

impl Out for Prom<'_, '_> {
    fn sample(&mut self, own: &[&str], value: Value) {
        let l = labels(self.metric, self.scope, self.values, own);
        self.f.sample(&l, value);
    }

    fn histogram(&mut self, own: &[&str], h: &Snapshot) {
        let l = labels(self.metric, self.scope, self.values, own);
        self.f.histogram(&l, h);
    }
}

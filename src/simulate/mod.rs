//! `switchyard simulate`: which algorithm should I use? Runs Switchyard's own balancers
//! (the `Pool` and `Balancer`s the proxy uses, over real `Server`s) against a modelled
//! workload in virtual time, and reports per algorithm the requests and peak load of each
//! server, latency percentiles, errors and the keys moved when a server leaves, with a line
//! of advice and an SVG chart.
//!
//! Data flow: `workload/` reads and checks the TOML file (the pool inline, or from a real
//! config through `config::load_file`) → `engine.rs` runs one algorithm (arrivals and
//! service times from `model.rs`, sticky sessions in `sticky.rs`) → `keys.rs` measures keys
//! moved with real pools → `report.rs` makes the table and the advice, `chart.rs` the SVG.

mod chart;
mod engine;
mod keys;
mod model;
mod report;
mod sticky;
mod workload;

pub use chart::svg;
pub use keys::{MAX_KEYS, Moved, SessionsMoved, moved_between, sessions_moved};
pub use report::{AlgoResult, KeysMoved, Latency, Report, ServerResult, fmt_time, thousands};
pub use workload::{
    Action, Dist, Event, Goal, ServerModel, Workload, WorkloadError, WorkloadErrors, load_file,
    load_str,
};

use crate::config::Algorithm;

/// Simulate every algorithm of the workload (or `only` these) and report. Each algorithm
/// runs on a thread of its own (with its own paused clock), so this may be called from
/// anywhere, an async context included.
pub fn run(w: &Workload, only: Option<&[Algorithm]>) -> Report {
    let algorithms: Vec<Algorithm> = match only {
        Some(a) => a.to_vec(),
        None => w.algorithms.clone(),
    };
    // Keys moved: the server of the first `leave` event, else the last server.
    let leaving = w
        .events
        .iter()
        .find(|e| e.action == Action::Leave)
        .map_or(w.servers.len() - 1, |e| e.server);
    let results = std::thread::scope(|scope| {
        let runs: Vec<_> = algorithms
            .iter()
            .map(|&a| {
                scope.spawn(move || {
                    let mut r = engine::run(w, a);
                    if w.servers.len() > 1 {
                        r.keys_moved = keys::keys_moved(w, a, leaving);
                    }
                    r
                })
            })
            .collect();
        runs.into_iter()
            .map(|h| h.join().expect("a simulation thread panicked"))
            .collect()
    });
    Report {
        title: title(w),
        goal: w.goal,
        leaving: (w.servers.len() > 1).then(|| w.servers[leaving].name.clone()),
        results,
    }
}

fn title(w: &Workload) -> String {
    let arrivals = match w.burstiness {
        0.0 => "evenly spaced".to_string(),
        b if (b - 1.0).abs() < 1e-9 => "Poisson".to_string(),
        b => format!("burstiness {b}"),
    };
    let service: Vec<String> = w
        .mix
        .iter()
        .map(|c| {
            let share = c.share / w.mix.iter().map(|c| c.share).sum::<f64>();
            let d = match c.service {
                Dist::Fixed(d) => fmt_time(d),
                Dist::Exp(d) => format!("exp. mean {}", fmt_time(d)),
                Dist::LogNormal { median, p99 } => {
                    format!("median {}, p99 {}", fmt_time(median), fmt_time(p99))
                }
                Dist::Uniform(a, b) => format!("{}..{}", fmt_time(a), fmt_time(b)),
            };
            if w.mix.len() > 1 {
                format!("{:.0}% {d}", share * 100.0)
            } else {
                d
            }
        })
        .collect();
    format!(
        "{}: {} requests at {}/s ({arrivals}), {} servers, service {}, {} keys",
        w.file,
        thousands(w.requests),
        thousands(w.rate.round() as u64),
        w.servers.len(),
        service.join(" + "),
        thousands(w.keys)
    )
}

//! What a simulation found: per algorithm, requests and peak load per server, latency
//! percentiles, errors, keys moved; as a terminal table and a line of advice (which
//! algorithm wins this workload, by how much).

use std::fmt::Write;
use std::time::Duration;

use super::workload::Goal;
use crate::config::Algorithm;

/// One server's part in one run.
#[derive(Debug, Clone)]
pub struct ServerResult {
    pub name: String,
    /// Tries sent to it (a retried request counts once per server it reached).
    pub requests: u64,
    /// Of those, tries that failed (refused, timed out, or a 503 counted as failure).
    pub failed: u64,
    /// The most requests in flight on it at once (the balancer's own count).
    pub peak_in_flight: u32,
}

/// Latency percentiles of whole requests (arrival to final answer, retries included).
#[derive(Debug, Clone, Copy, Default)]
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
    pub p999: Duration,
    pub mean: Duration,
}

impl Latency {
    /// From per-request latencies in µs (sorted in place).
    pub fn of(us: &mut [u32]) -> Latency {
        if us.is_empty() {
            return Latency::default();
        }
        us.sort_unstable();
        let at = |q: f64| {
            let i = ((us.len() as f64 * q).ceil() as usize).clamp(1, us.len()) - 1;
            Duration::from_micros(u64::from(us[i]))
        };
        let sum: u64 = us.iter().map(|&x| u64::from(x)).sum();
        Latency {
            p50: at(0.50),
            p99: at(0.99),
            p999: at(0.999),
            mean: Duration::from_micros(sum / us.len() as u64),
        }
    }
}

/// Share of keys that change server when one server leaves, for a hashing algorithm.
#[derive(Debug, Clone, Copy)]
pub struct KeysMoved {
    /// Removed from the configuration (a reload without it).
    pub removed: f64,
    /// Marked `down` (kept in the configuration).
    pub down: f64,
    /// Keys that lived on the leaving server: what must move, the least possible.
    pub minimum: f64,
}

/// One algorithm's run.
#[derive(Debug, Clone)]
pub struct AlgoResult {
    pub algorithm: Algorithm,
    pub servers: Vec<ServerResult>,
    pub latency: Latency,
    pub requests: u64,
    /// Requests whose final answer was an error (no server, refused, timed out, 503).
    pub errors: u64,
    /// Tries after the first.
    pub retries: u64,
    /// Sticky pools: requests that lost their server.
    pub sticky_moved: Option<u64>,
    /// Hashing algorithms.
    pub keys_moved: Option<KeysMoved>,
    pub virtual_time: Duration,
    /// How long the simulation took to run.
    pub wall: Duration,
}

/// Every algorithm's run over one workload.
#[derive(Debug, Clone)]
pub struct Report {
    /// One line saying what was simulated.
    pub title: String,
    pub goal: Goal,
    /// The server whose leaving "keys moved" measures.
    pub leaving: Option<String>,
    pub results: Vec<AlgoResult>,
}

/// `850 us`, `12.3 ms`, `1.25 s`.
pub fn fmt_time(d: Duration) -> String {
    let us = d.as_micros();
    if us < 1000 {
        format!("{us} us")
    } else if us < 1_000_000 {
        format!("{:.1} ms", us as f64 / 1000.0)
    } else {
        format!("{:.2} s", us as f64 / 1e6)
    }
}

/// `1,234,567`.
pub fn thousands(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::new();
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

fn pct(x: f64) -> String {
    format!("{:.1}%", x * 100.0)
}

/// The simplest first: among algorithms that tie, the advice names the simplest.
const SIMPLEST: [Algorithm; 8] = [
    Algorithm::RoundRobin,
    Algorithm::Random,
    Algorithm::LeastConn,
    Algorithm::P2c,
    Algorithm::LeastTime,
    Algorithm::Hash,
    Algorithm::Maglev,
    Algorithm::IpHash,
];

impl Report {
    /// The terminal table: one row per algorithm, then requests per server.
    pub fn table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(t, "{}", self.title);
        let _ = writeln!(t);
        let keys = self.results.iter().any(|r| r.keys_moved.is_some());
        let sticky = self.results.iter().any(|r| r.sticky_moved.is_some());
        let _ = write!(
            t,
            "{:<12} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}",
            "algorithm", "mean", "p50", "p99", "p999", "errors", "retries"
        );
        if sticky {
            let _ = write!(t, " {:>13}", "sticky moved");
        }
        if keys {
            let leaving = self.leaving.as_deref().unwrap_or("a server");
            let _ = write!(t, "  keys moved when {leaving} leaves (removed / down)");
        }
        let _ = writeln!(t);
        for r in &self.results {
            let l = &r.latency;
            let _ = write!(
                t,
                "{:<12} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}",
                r.algorithm.as_str(),
                fmt_time(l.mean),
                fmt_time(l.p50),
                fmt_time(l.p99),
                fmt_time(l.p999),
                thousands(r.errors),
                thousands(r.retries)
            );
            if sticky {
                let _ = write!(t, " {:>13}", r.sticky_moved.map_or("-".into(), thousands));
            }
            if keys {
                match r.keys_moved {
                    Some(k) => {
                        let _ = write!(t, "  {} / {}", pct(k.removed), pct(k.down));
                    }
                    None => {
                        let _ = write!(t, "  - (no affinity)");
                    }
                }
            }
            let _ = writeln!(t);
        }
        let _ = writeln!(t);
        t.push_str(&self.per_server());
        t
    }

    fn per_server(&self) -> String {
        let mut t = String::new();
        let Some(first) = self.results.first() else {
            return t;
        };
        if first.servers.len() > 16 {
            let _ = writeln!(t, "requests per server ({} servers):", first.servers.len());
            for r in &self.results {
                let total: u64 = r.servers.iter().map(|s| s.requests).sum::<u64>().max(1);
                let min = r
                    .servers
                    .iter()
                    .min_by_key(|s| s.requests)
                    .expect("servers");
                let max = r
                    .servers
                    .iter()
                    .max_by_key(|s| s.requests)
                    .expect("servers");
                let peak = r
                    .servers
                    .iter()
                    .map(|s| s.peak_in_flight)
                    .max()
                    .unwrap_or(0);
                let _ = writeln!(
                    t,
                    "  {:<12} least {} ({}, {}), most {} ({}, {}), peak in flight {}",
                    r.algorithm.as_str(),
                    thousands(min.requests),
                    pct(min.requests as f64 / total as f64),
                    min.name,
                    thousands(max.requests),
                    pct(max.requests as f64 / total as f64),
                    max.name,
                    peak
                );
            }
            return t;
        }
        let _ = writeln!(t, "requests per server (share, peak in flight):");
        let width = 24;
        let _ = write!(t, "{:<10}", "server");
        for r in &self.results {
            let _ = write!(t, "{:>width$}", r.algorithm.as_str());
        }
        let _ = writeln!(t);
        for (i, s) in first.servers.iter().enumerate() {
            let _ = write!(t, "{:<10}", s.name);
            for r in &self.results {
                let total: u64 = r.servers.iter().map(|s| s.requests).sum::<u64>().max(1);
                let x = &r.servers[i];
                let cell = format!(
                    "{} {} {}",
                    thousands(x.requests),
                    pct(x.requests as f64 / total as f64),
                    x.peak_in_flight
                );
                let _ = write!(t, "{cell:>width$}");
            }
            let _ = writeln!(t);
        }
        t
    }

    fn metric(&self, r: &AlgoResult) -> Option<f64> {
        match self.goal {
            Goal::P50 => Some(r.latency.p50.as_secs_f64()),
            Goal::P99 => Some(r.latency.p99.as_secs_f64()),
            Goal::P999 => Some(r.latency.p999.as_secs_f64()),
            Goal::Errors => Some(r.errors as f64),
            Goal::KeysMoved => r.keys_moved.map(|k| k.removed),
        }
    }

    fn show(&self, r: &AlgoResult) -> String {
        match self.goal {
            Goal::P50 => fmt_time(r.latency.p50),
            Goal::P99 => fmt_time(r.latency.p99),
            Goal::P999 => fmt_time(r.latency.p999),
            Goal::Errors => format!("{} errors", thousands(r.errors)),
            Goal::KeysMoved => r.keys_moved.map_or("-".into(), |k| pct(k.removed)),
        }
    }

    /// Which algorithm wins this workload and by how much, in one or two sentences.
    pub fn advice(&self) -> String {
        // Errors come first: a fast answer that is an error is no win.
        let min_errors = self.results.iter().map(|r| r.errors).min().unwrap_or(0);
        let slack = |r: &AlgoResult| (r.requests / 1000).max(1);
        let mut ranked: Vec<(&AlgoResult, bool, f64)> = self
            .results
            .iter()
            .filter_map(|r| {
                let more_errors = self.goal != Goal::Errors && r.errors > min_errors + slack(r);
                self.metric(r).map(|m| (r, more_errors, m))
            })
            .collect();
        ranked.sort_by(|a, b| (a.1, a.2).partial_cmp(&(b.1, b.2)).expect("finite"));
        let Some(&(best, _, m0)) = ranked.first() else {
            return "advice: none of these algorithms keeps keys on servers; add ip_hash, hash or maglev to compare keys moved".into();
        };
        let what = match self.goal {
            Goal::KeysMoved => format!(
                "keys moved when {} leaves",
                self.leaving.as_deref().unwrap_or("a server")
            ),
            g => g.as_str().to_string(),
        };
        let ratio = |m: f64| if m0 > 0.0 { m / m0 } else { f64::INFINITY };
        // Within 5 % of the best (and no more errors): a tie, and the simplest is named.
        let tied: Vec<&AlgoResult> = ranked
            .iter()
            .filter(|(_, worse, m)| !worse && (*m <= m0 * 1.05 || (*m - m0).abs() < 1e-9))
            .map(|(r, _, _)| *r)
            .collect();
        let mut out = String::from("advice: ");
        if tied.len() > 1 && ranked.len() > 1 {
            let simplest = SIMPLEST
                .iter()
                .find(|a| tied.iter().any(|r| r.algorithm == **a))
                .expect("tied algorithms are known");
            let names: Vec<&str> = tied.iter().map(|r| r.algorithm.as_str()).collect();
            let _ = write!(
                out,
                "{} are within 5% of each other on {what} ({}): any will do, and {} is the simplest",
                names.join(", "),
                tied.iter()
                    .map(|r| self.show(r))
                    .collect::<Vec<_>>()
                    .join(", "),
                simplest.as_str()
            );
            if let Some((worst, _, m)) = ranked
                .last()
                .filter(|(r, _, _)| !tied.iter().any(|t| t.algorithm == r.algorithm))
            {
                let _ = write!(
                    out,
                    "; {} is {:.1}x worse ({})",
                    worst.algorithm.as_str(),
                    ratio(*m),
                    self.show(worst)
                );
            }
            out.push('.');
            return out;
        }
        let _ = write!(
            out,
            "{} wins on {what}: {}",
            best.algorithm.as_str(),
            self.show(best)
        );
        if let Some((next, next_worse, m)) = ranked.get(1) {
            if *next_worse {
                let _ = write!(
                    out,
                    "; the others that come close have more errors ({} has {})",
                    next.algorithm.as_str(),
                    thousands(next.errors)
                );
            } else {
                let _ = write!(
                    out,
                    ", {:.2}x better than the runner-up {} ({})",
                    ratio(*m),
                    next.algorithm.as_str(),
                    self.show(next)
                );
            }
        }
        if let Some((rr, _, m)) = ranked.iter().find(|(r, _, _)| {
            r.algorithm == Algorithm::RoundRobin && best.algorithm != Algorithm::RoundRobin
        }) && ranked
            .get(1)
            .is_none_or(|n| n.0.algorithm != Algorithm::RoundRobin)
        {
            let _ = write!(
                out,
                " and {:.1}x better than the default round_robin ({})",
                ratio(*m),
                self.show(rr)
            );
        }
        if let (Goal::KeysMoved, Some(k)) = (self.goal, best.keys_moved) {
            let _ = write!(
                out,
                " (the least possible is {}: the keys that lived there); marking it down instead of removing it moves {} with {}",
                pct(k.minimum),
                pct(k.down),
                best.algorithm.as_str()
            );
        }
        out.push('.');
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn result(a: Algorithm, p99_ms: u64, errors: u64) -> AlgoResult {
        AlgoResult {
            algorithm: a,
            servers: vec![],
            latency: Latency {
                p99: Duration::from_millis(p99_ms),
                ..Latency::default()
            },
            requests: 10_000,
            errors,
            retries: 0,
            sticky_moved: None,
            keys_moved: None,
            virtual_time: Duration::ZERO,
            wall: Duration::ZERO,
        }
    }

    fn report(results: Vec<AlgoResult>) -> Report {
        Report {
            title: String::new(),
            goal: Goal::P99,
            leaving: None,
            results,
        }
    }

    #[test]
    fn the_advice_names_the_winner_and_the_ratios() {
        let r = report(vec![
            result(Algorithm::RoundRobin, 80, 0),
            result(Algorithm::LeastTime, 20, 0),
            result(Algorithm::P2c, 25, 0),
        ]);
        assert_eq!(
            r.advice(),
            "advice: least_time wins on p99: 20.0 ms, 1.25x better than the runner-up p2c (25.0 ms) and 4.0x better than the default round_robin (80.0 ms)."
        );
    }

    #[test]
    fn a_tie_names_the_simplest_and_errors_count_first() {
        let r = report(vec![
            result(Algorithm::LeastConn, 20, 0),
            result(Algorithm::RoundRobin, 20, 0),
            result(Algorithm::Random, 40, 0),
        ]);
        let a = r.advice();
        assert!(a.contains("least_conn, round_robin are within 5%"), "{a}");
        assert!(a.contains("round_robin is the simplest"), "{a}");
        assert!(a.contains("random is 2.0x worse"), "{a}");
        let r = report(vec![
            result(Algorithm::RoundRobin, 10, 500),
            result(Algorithm::LeastConn, 30, 0),
        ]);
        assert!(
            r.advice().starts_with("advice: least_conn wins"),
            "{}",
            r.advice()
        );
    }

    #[test]
    fn percentiles_and_formats() {
        let mut v: Vec<u32> = (1..=1000).collect();
        let l = Latency::of(&mut v);
        assert_eq!(l.p50, Duration::from_micros(500));
        assert_eq!(l.p99, Duration::from_micros(990));
        assert_eq!(l.p999, Duration::from_micros(999));
        assert_eq!(thousands(1_234_567), "1,234,567");
        assert_eq!(fmt_time(Duration::from_micros(12_345)), "12.3 ms");
    }
}

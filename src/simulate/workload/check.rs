//! The checks every part of a workload shares: a `Checker` collects each problem with its
//! file, line, column and fix; numbers in range, durations, service-time distributions.

use std::ops::Range;
use std::time::Duration;

use super::file::S;
use super::spec::{Dist, WorkloadError, parse_time};

pub(super) struct Checker<'a> {
    pub(super) src: &'a str,
    pub(super) file: &'a str,
    pub(super) errors: Vec<WorkloadError>,
}

/// A name of the simulator's own for an inline pool's servers: documentation addresses
/// (192.0.2.0/24, RFC 5737) that no real server has.
pub(super) fn inline_addr(i: usize) -> String {
    format!("192.0.2.{}:{}", 1 + i / 200, 10_000 + i)
}

impl Checker<'_> {
    pub(super) fn error(&mut self, span: Range<usize>, message: String, help: impl Into<String>) {
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

    pub(super) fn int(&mut self, v: &S<i64>, what: &str, lo: i64, hi: i64) -> Option<u64> {
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

    pub(super) fn float(&mut self, v: &S<f64>, what: &str, lo: f64, hi: f64) -> Option<f64> {
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

    pub(super) fn duration(&mut self, v: &S<String>, what: &str) -> Option<Duration> {
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

    pub(super) fn dist(&mut self, v: &S<toml::Value>, what: &str) -> Option<Dist> {
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
}

/// A TOML string literal.
pub(super) fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

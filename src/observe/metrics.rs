//! The Prometheus text exposition format (version 0.0.4), written by hand: a family is its
//! `# HELP` and `# TYPE` lines followed by its samples, `name{label="value",…} value`.
//!
//! The writer owns the rules that are easy to get wrong by hand: label values and help text
//! escaped, every sample of a family right after its header, numbers spelled the way
//! Prometheus parses them. What to expose is the caller's business (`admin::metrics`).

use std::fmt::Write as _;

use super::histogram::Snapshot;

/// The content type of [`Exposition::finish`]'s text.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The kind a family declares in its `# TYPE` line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Only goes up (resets to zero when the process restarts); the name ends in `_total`.
    Counter,
    /// Goes up and down.
    Gauge,
    /// Observations counted by bucket (`_bucket{le=…}`, cumulative), with `_sum` and
    /// `_count`: see [`Family::histogram`].
    Histogram,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One sample's value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Value {
    Int(u64),
    Float(f64),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Int(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::Int(v.into())
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::Int(v as u64)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Int(v.into())
    }
}

impl From<f64> for Value {
    fn from(v: f64) -> Value {
        Value::Float(v)
    }
}

/// A metrics page being written.
#[derive(Debug, Default)]
pub struct Exposition {
    out: String,
}

/// The samples of one family; see [`Exposition::family`].
pub struct Family<'a> {
    out: &'a mut String,
    name: &'a str,
}

impl Exposition {
    pub fn new() -> Exposition {
        Exposition::default()
    }

    /// Write the header of family `name` and let `samples` write its samples; a family
    /// that gets no sample is left out whole. `name` must match `[a-zA-Z_:][a-zA-Z0-9_:]*`
    /// (the callers' names are constants); a counter's name ends in `_total`.
    pub fn family(
        &mut self,
        name: &str,
        help: &str,
        kind: Kind,
        samples: impl FnOnce(&mut Family<'_>),
    ) {
        debug_assert!(valid_name(name), "bad metric name {name:?}");
        debug_assert!(kind != Kind::Counter || name.ends_with("_total"), "{name}");
        debug_assert!(
            kind == Kind::Counter || !name.ends_with("_total"),
            "{name}: only counters end in _total"
        );
        let start = self.out.len();
        let _ = writeln!(self.out, "# HELP {name} {}", escape_help(help));
        let _ = writeln!(self.out, "# TYPE {name} {}", kind.as_str());
        let header = self.out.len();
        samples(&mut Family {
            out: &mut self.out,
            name,
        });
        if self.out.len() == header {
            self.out.truncate(start);
        }
    }

    /// The page.
    pub fn finish(self) -> String {
        self.out
    }
}

impl Family<'_> {
    /// One sample with these labels (names are constants of the caller; values are escaped).
    pub fn sample(&mut self, labels: &[(&str, &str)], value: impl Into<Value>) {
        self.line("", labels, None, value.into());
    }

    /// A histogram's samples with these labels: one cumulative `_bucket` per bound (`le`,
    /// `+Inf` last), then `_sum` and `_count`.
    pub fn histogram(&mut self, labels: &[(&str, &str)], h: &Snapshot) {
        for (bound, n) in h.cumulative() {
            let mut le = String::new();
            write_float(&mut le, bound);
            self.line("_bucket", labels, Some(&le), Value::Int(n));
        }
        self.line("_sum", labels, None, Value::Float(h.sum));
        self.line("_count", labels, None, Value::Int(h.count()));
    }

    fn line(&mut self, suffix: &str, labels: &[(&str, &str)], le: Option<&str>, value: Value) {
        self.out.push_str(self.name);
        self.out.push_str(suffix);
        let le = le.map(|v| ("le", v));
        if !labels.is_empty() || le.is_some() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().chain(le.as_ref()).enumerate() {
                debug_assert!(valid_label(k), "bad label name {k:?}");
                if i > 0 {
                    self.out.push(',');
                }
                self.out.push_str(k);
                self.out.push_str("=\"");
                escape_label_into(self.out, v);
                self.out.push('"');
            }
            self.out.push('}');
        }
        self.out.push(' ');
        match value {
            Value::Int(v) => {
                let _ = write!(self.out, "{v}");
            }
            Value::Float(v) => write_float(self.out, v),
        }
        self.out.push('\n');
    }
}

/// Go's `ParseFloat` spellings, which Prometheus reads: `NaN`, `+Inf`, `-Inf`; finite
/// values as Rust writes them (never in exponent form, always parseable).
fn write_float(out: &mut String, v: f64) {
    if v.is_nan() {
        out.push_str("NaN");
    } else if v == f64::INFINITY {
        out.push_str("+Inf");
    } else if v == f64::NEG_INFINITY {
        out.push_str("-Inf");
    } else {
        let _ = write!(out, "{v}");
    }
}

/// In a label value: backslash, double quote and line feed escaped.
fn escape_label_into(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// In help text: backslash and line feed escaped (a double quote stays).
fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

fn valid_label(name: &str) -> bool {
    !name.starts_with("__") && !name.contains(':') && valid_name(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn families_have_help_and_type_before_their_samples_and_empty_ones_are_left_out() {
        let mut e = Exposition::new();
        e.family("x_requests_total", "Requests.", Kind::Counter, |f| {
            f.sample(&[("pool", "a")], 3u64);
            f.sample(&[("pool", "b")], 0u64);
        });
        e.family("x_up", "Up.", Kind::Gauge, |f| f.sample(&[], true));
        e.family("x_none_total", "Nothing.", Kind::Counter, |_| {});
        assert_eq!(
            e.finish(),
            "# HELP x_requests_total Requests.\n# TYPE x_requests_total counter\n\
             x_requests_total{pool=\"a\"} 3\nx_requests_total{pool=\"b\"} 0\n\
             # HELP x_up Up.\n# TYPE x_up gauge\nx_up 1\n"
        );
    }

    #[test]
    fn label_values_and_help_are_escaped() {
        let mut e = Exposition::new();
        e.family("x_g", "a \\ b\nc \"d\"", Kind::Gauge, |f| {
            f.sample(&[("server", "s\"1\\\n"), ("addr", "[::1]:80")], 1.5)
        });
        assert_eq!(
            e.finish(),
            "# HELP x_g a \\\\ b\\nc \"d\"\n# TYPE x_g gauge\n\
             x_g{server=\"s\\\"1\\\\\\n\",addr=\"[::1]:80\"} 1.5\n"
        );
    }

    #[test]
    fn floats_are_spelled_as_prometheus_reads_them() {
        let mut s = String::new();
        for v in [
            0.000_012,
            1e21,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            0.0,
        ] {
            write_float(&mut s, v);
            s.push(' ');
        }
        assert_eq!(s, "0.000012 1000000000000000000000 NaN +Inf -Inf 0 ");
    }

    #[test]
    fn a_histogram_is_cumulative_buckets_then_sum_and_count() {
        let h = super::super::histogram::Histogram::new();
        h.record(std::time::Duration::from_micros(700));
        h.record(std::time::Duration::from_secs(100));
        let mut e = Exposition::new();
        e.family("x_seconds", "Time.", Kind::Histogram, |f| {
            f.histogram(&[("pool", "a")], &h.snapshot())
        });
        let text = e.finish();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[1], "# TYPE x_seconds histogram");
        assert_eq!(lines[2], "x_seconds_bucket{pool=\"a\",le=\"0.0005\"} 0");
        assert_eq!(lines[3], "x_seconds_bucket{pool=\"a\",le=\"0.001\"} 1");
        assert_eq!(lines[17], "x_seconds_bucket{pool=\"a\",le=\"60\"} 1");
        assert_eq!(lines[18], "x_seconds_bucket{pool=\"a\",le=\"+Inf\"} 2");
        assert_eq!(lines[19], "x_seconds_sum{pool=\"a\"} 100.0007");
        assert_eq!(lines[20], "x_seconds_count{pool=\"a\"} 2");
        assert_eq!(lines.len(), 21);
    }

    #[test]
    fn names_are_checked() {
        assert!(valid_name("switchyard_server_up") && valid_name("a:b_c1"));
        assert!(!valid_name("1a") && !valid_name("a-b") && !valid_name(""));
        assert!(valid_label("pool") && !valid_label("__name") && !valid_label("a:b"));
    }
}

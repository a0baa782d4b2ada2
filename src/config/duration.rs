//! Durations as operators write them: `250ms`, `5s`, `1m30s`, `1m 30s`, `1h`, `2d`.
//!
//! Whole numbers only, as HAProxy and nginx: `"1.5s"` is an error that says to write
//! `"1500ms"`. A duration longer than ten years is an error too: no timeout, interval or
//! lifetime means that, and it would overflow what it reaches (a cookie's `Max-Age`).

use std::time::Duration;

/// The longest duration accepted: ten years of 365 days.
pub const MAX_DURATION: Duration = Duration::from_secs(10 * 365 * 86_400);

const UNITS: &str = "ms, s, m, h, d, w, y";

/// What is wrong with a duration and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DurationError {
    pub message: String,
    pub help: String,
}

/// Parse a duration such as `"250ms"`, `"5s"`, `"1m30s"`, `"1m 30s"`, `"1h"` or `"2d"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    parse_duration_explained(s).map_err(|e| e.message)
}

/// [`parse_duration`], with the fix to suggest when the text is not a duration.
pub fn parse_duration_explained(s: &str) -> Result<Duration, DurationError> {
    let fail = |message: String, help: String| Err(DurationError { message, help });
    let t = s.trim();
    if t.is_empty() {
        return fail("empty duration".into(), "write e.g. \"5s\"".into());
    }
    let bytes = t.as_bytes();
    // Milliseconds, exact (scaled by 10^frac_digits while a fraction is seen), in u128 so
    // that no sum or product of the digits written can overflow before the length check.
    let mut total_ms: u128 = 0;
    let mut fraction = false;
    let mut inexact = false;
    let mut i = 0;
    while i < bytes.len() {
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            let help = if t.starts_with('-') {
                "a duration cannot be negative; write e.g. \"5s\"".to_string()
            } else {
                format!(
                    "write a whole number with a unit, e.g. \"5s\" or \"1m30s\" (units: {UNITS})"
                )
            };
            return fail(format!("{s:?} is not a duration"), help);
        }
        let whole = &t[start..i];
        let mut frac = "";
        if i < bytes.len() && bytes[i] == b'.' {
            let fstart = i + 1;
            i = fstart;
            while i < bytes.len() && bytes[i].is_ascii_digit() {
                i += 1;
            }
            frac = &t[fstart..i];
            fraction = true;
        }
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = &t[ustart..i];
        let unit_ms: u128 = match unit {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            // Weeks and years, for `hsts = "1y"` (a year of 365 days, as max-age=31536000).
            "w" => 7 * 86_400_000,
            "y" => 365 * 86_400_000,
            "" => {
                let number = &t[start..ustart].trim_end();
                let help = if t.len() == number.len() && !fraction {
                    format!("write \"{number}s\" (seconds) or \"{number}ms\"; units: {UNITS}")
                } else {
                    format!("write a unit after {number}: {UNITS}")
                };
                let message = if t.len() == number.len() {
                    format!("{s:?} has no unit")
                } else {
                    format!("{s:?}: {number} has no unit")
                };
                return fail(message, help);
            }
            u => {
                let lower = u.to_ascii_lowercase();
                let near = match lower.as_str() {
                    "ms" | "s" | "m" | "h" | "d" | "w" | "y" => Some(lower.as_str()),
                    "sec" | "secs" | "second" | "seconds" => Some("s"),
                    "min" | "mins" | "minute" | "minutes" => Some("m"),
                    "msec" | "msecs" | "millis" | "milliseconds" => Some("ms"),
                    "hr" | "hrs" | "hour" | "hours" => Some("h"),
                    "day" | "days" => Some("d"),
                    _ => None,
                };
                let help = match near {
                    Some(n) => format!(
                        "write \"{}{n}\" (units: {UNITS})",
                        t[start..ustart].trim_end()
                    ),
                    None => format!("units: {UNITS}, e.g. \"250ms\", \"5s\", \"1m30s\""),
                };
                return fail(format!("{s:?}: unknown unit {u:?} (units: {UNITS})"), help);
            }
        };
        // More digits than ten years in milliseconds has: too long, whatever the unit.
        if whole.len() > 15 {
            return too_long(s);
        }
        let whole: u128 = whole.parse().unwrap_or(u128::MAX);
        let frac = &frac[..frac.len().min(9)];
        let scale = 10u128.pow(frac.len() as u32);
        let frac_n: u128 = if frac.is_empty() {
            0
        } else {
            frac.parse().unwrap_or(0)
        };
        let part = whole * unit_ms + frac_n * unit_ms / scale;
        if !(frac_n * unit_ms).is_multiple_of(scale) {
            inexact = true;
        }
        total_ms += part;
        if total_ms > MAX_DURATION.as_millis() {
            return too_long(s);
        }
    }
    let total = Duration::from_millis(total_ms as u64);
    if fraction {
        let help = if inexact {
            format!(
                "write a whole number of milliseconds, e.g. \"{}ms\"",
                total_ms
            )
        } else {
            format!("write \"{}\"", format_duration(total))
        };
        return fail(format!("{s:?}: fractions are not supported"), help);
    }
    Ok(total)
}

fn too_long(s: &str) -> Result<Duration, DurationError> {
    Err(DurationError {
        message: format!("{s:?} is too long (more than 10 years)"),
        help: "write a duration of at most \"10y\", e.g. \"1h\" or \"30d\"".into(),
    })
}

/// The shortest exact spelling of a duration, for logs (`1500ms`, `5s`, `2m`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if !ms.is_multiple_of(1000) {
        format!("{ms}ms")
    } else if ms.is_multiple_of(3_600_000) && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms.is_multiple_of(60_000) && ms > 0 {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}

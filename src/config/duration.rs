//! Durations as operators write them: `250ms`, `5s`, `1m30s`, `1h`, `2d`.

use std::time::Duration;

/// Parse a duration such as `"250ms"`, `"5s"`, `"1m30s"`, `"1h"` or `"2d"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let t = s.trim();
    if t.is_empty() {
        return Err("empty duration".into());
    }
    let bytes = t.as_bytes();
    let mut total = Duration::ZERO;
    let mut i = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(format!("{s:?} is not a duration"));
        }
        let n: u64 = t[start..i]
            .parse()
            .map_err(|_| format!("{s:?}: number too large"))?;
        while i < bytes.len() && bytes[i] == b' ' {
            i += 1;
        }
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let part = match &t[ustart..i] {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "d" => Duration::from_secs(n.saturating_mul(86400)),
            // Weeks and years, for `hsts = "1y"` (a year of 365 days, as max-age=31536000).
            "w" => Duration::from_secs(n.saturating_mul(7 * 86400)),
            "y" => Duration::from_secs(n.saturating_mul(365 * 86400)),
            "" => return Err(format!("{s:?} has no unit")),
            u => {
                return Err(format!(
                    "{s:?}: unknown unit {u:?} (units: ms, s, m, h, d, w, y)"
                ));
            }
        };
        total = total.saturating_add(part);
    }
    Ok(total)
}

/// The shortest exact spelling of a duration, for logs (`1500ms`, `5s`, `2m`).
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 != 0 {
        format!("{ms}ms")
    } else if ms % 3_600_000 == 0 && ms > 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 && ms > 0 {
        format!("{}m", ms / 60_000)
    } else {
        format!("{}s", ms / 1000)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_usual_spellings() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("5s"), Ok(Duration::from_secs(5)));
        assert_eq!(parse_duration("1m30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h"), Ok(Duration::from_secs(3600)));
        assert_eq!(parse_duration("2d"), Ok(Duration::from_secs(172_800)));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in ["", "5", "s", "5x", "-1s", "1.5s"] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn an_unknown_unit_is_named() {
        let e = parse_duration("1 sec").unwrap_err();
        assert!(e.contains("unknown unit \"sec\""), "{e}");
        assert_eq!(parse_duration("1 s"), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn formats_back() {
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
    }
}

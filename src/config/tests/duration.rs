//! The tests of durations (once in `duration.rs`), moved here verbatim.

use crate::config::duration::*;
use std::time::Duration;

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
        assert_eq!(parse_duration("10y"), Ok(MAX_DURATION));
    }

    #[test]
    fn compound_durations_may_have_spaces() {
        // nginx writes `1h 30m`.
        assert_eq!(parse_duration("1m 30s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h 30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(
            parse_duration(" 1h  30m 5s "),
            Ok(Duration::from_secs(5405))
        );
        assert_eq!(parse_duration("1s 500ms"), Ok(Duration::from_millis(1500)));
    }

    #[test]
    fn rejects_what_is_not_a_duration() {
        for bad in ["", "5", "s", "5x", "-1s", "1.5s", "1m30", "5s x", "."] {
            assert!(parse_duration(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn a_fraction_is_rejected_with_the_whole_spelling() {
        let e = parse_duration_explained("1.5s").unwrap_err();
        assert_eq!(e.message, "\"1.5s\": fractions are not supported");
        assert_eq!(e.help, "write \"1500ms\"");
        assert_eq!(
            parse_duration_explained("1.5m").unwrap_err().help,
            "write \"90s\""
        );
        assert_eq!(
            parse_duration_explained("0.5h").unwrap_err().help,
            "write \"30m\""
        );
        assert_eq!(
            parse_duration_explained("1m 0.5s").unwrap_err().help,
            "write \"60500ms\""
        );
        let e = parse_duration_explained("1.0005s").unwrap_err();
        assert!(e.help.contains("whole number of milliseconds"), "{e:?}");
    }

    #[test]
    fn a_missing_unit_suggests_one() {
        let e = parse_duration_explained("30").unwrap_err();
        assert_eq!(e.message, "\"30\" has no unit");
        assert!(
            e.help.starts_with("write \"30s\" (seconds) or \"30ms\""),
            "{e:?}"
        );
        let e = parse_duration_explained("1m30").unwrap_err();
        assert_eq!(e.message, "\"1m30\": 30 has no unit");
    }

    #[test]
    fn an_unknown_unit_is_named() {
        let e = parse_duration_explained("1 sec").unwrap_err();
        assert!(e.message.contains("unknown unit \"sec\""), "{e:?}");
        assert!(e.help.starts_with("write \"1s\""), "{e:?}");
        assert_eq!(parse_duration("1 s"), Ok(Duration::from_secs(1)));
    }

    #[test]
    fn absurd_lengths_are_errors_not_overflows() {
        for bad in [
            "99999999999999s",
            "10y 1ms",
            "3651d",
            "999999999999999999999999999999999999999y",
            "18446744073709551615ms",
        ] {
            let e = parse_duration_explained(bad).unwrap_err();
            assert!(
                e.message.ends_with("is too long (more than 10 years)"),
                "{bad}: {e:?}"
            );
        }
    }

    #[test]
    fn formats_back() {
        assert_eq!(format_duration(Duration::from_millis(1500)), "1500ms");
        assert_eq!(format_duration(Duration::from_secs(120)), "2m");
        assert_eq!(format_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(format_duration(Duration::from_secs(5)), "5s");
    }
}

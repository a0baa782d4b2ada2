//! The pieces access-log lines are made of, written by hand into a byte buffer (no `fmt`
//! machinery, no floats, no allocation): nginx's `[time_local]`, ISO 8601 times, quoted
//! strings escaped as nginx escapes them, JSON strings, seconds to the millisecond.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// The civil date and time (UTC) of `secs` since the epoch: year, month 1-12, day, h, m, s
/// (Howard Hinnant's days-to-civil).
fn civil(secs: u64) -> (u64, u64, u64, u64, u64, u64) {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (
        y as u64,
        m as u64,
        d as u64,
        rem / 3600,
        rem / 60 % 60,
        rem % 60,
    )
}

fn digits(out: &mut Vec<u8>, v: u64, width: usize) {
    let mut buf = [b'0'; 20];
    let mut v = v;
    for i in (0..width).rev() {
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&buf[..width]);
}

/// nginx's `$time_local` in brackets, in UTC: `[01/Dec/2026:13:48:51 +0000]`.
pub fn time_local(out: &mut Vec<u8>, at: SystemTime) {
    let secs = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (y, m, d, hh, mm, ss) = civil(secs);
    out.push(b'[');
    digits(out, d, 2);
    out.push(b'/');
    out.extend_from_slice(MONTHS[(m - 1) as usize]);
    out.push(b'/');
    digits(out, y, 4);
    out.push(b':');
    digits(out, hh, 2);
    out.push(b':');
    digits(out, mm, 2);
    out.push(b':');
    digits(out, ss, 2);
    out.extend_from_slice(b" +0000]");
}

/// ISO 8601 in UTC to the millisecond, quoted: `"2026-12-01T13:48:51.123Z"`.
pub fn time_iso(out: &mut Vec<u8>, at: SystemTime) {
    let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
    let (y, m, d, hh, mm, ss) = civil(since.as_secs());
    out.push(b'"');
    digits(out, y, 4);
    out.push(b'-');
    digits(out, m, 2);
    out.push(b'-');
    digits(out, d, 2);
    out.push(b'T');
    digits(out, hh, 2);
    out.push(b':');
    digits(out, mm, 2);
    out.push(b':');
    digits(out, ss, 2);
    out.push(b'.');
    digits(out, u64::from(since.subsec_millis()), 3);
    out.extend_from_slice(b"Z\"");
}

/// A number.
pub fn uint(out: &mut Vec<u8>, v: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[i..]);
}

/// Seconds to the millisecond, as nginx writes `$request_time`: `0.003`, `12.500`.
pub fn secs(out: &mut Vec<u8>, d: Duration) {
    let ms = d.as_millis().min(u128::from(u64::MAX)) as u64;
    uint(out, ms / 1000);
    out.push(b'.');
    digits(out, ms % 1000, 3);
}

/// Seconds, or `-` when there is no such time (no server reached), as nginx writes
/// `$upstream_response_time`.
pub fn secs_or_dash(out: &mut Vec<u8>, d: Option<Duration>) {
    match d {
        Some(d) => secs(out, d),
        None => out.push(b'-'),
    }
}

/// A string in double quotes as nginx's default `escape` writes it: `"` and `\` and bytes
/// outside printable ASCII as `\xHH`; `-` for an empty one unquoted is the caller's choice.
pub fn quoted(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    bare(out, s);
    out.push(b'"');
}

/// [`quoted`] without the quotes: for fields that cannot hold a space (a host, a pool).
pub fn bare(out: &mut Vec<u8>, s: &[u8]) {
    if s.iter()
        .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.extend_from_slice(s);
        return;
    }
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in s {
        if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' {
            out.push(b);
        } else {
            out.extend_from_slice(&[
                b'\\',
                b'x',
                HEX[usize::from(b >> 4)],
                HEX[usize::from(b & 15)],
            ]);
        }
    }
}

/// A `key=value` field for a value that may hold anything: spaces, quotes and controls
/// escaped as in [`bare`] (a space as `\x20`), `-` when empty.
pub fn field(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    out.push(b' ');
    out.extend_from_slice(key);
    out.push(b'=');
    if value.is_empty() {
        out.push(b'-');
    } else if value.contains(&b' ') {
        for part in value.split(|&b| b == b' ').enumerate() {
            if part.0 > 0 {
                out.extend_from_slice(b"\\x20");
            }
            bare(out, part.1);
        }
    } else {
        bare(out, value);
    }
}

/// A JSON string (quotes, backslashes and controls escaped; bytes that are not UTF-8 as
/// U+FFFD).
pub fn json_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    let text = String::from_utf8_lossy(s);
    for c in text.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            '\n' => out.extend_from_slice(b"\\n"),
            '\r' => out.extend_from_slice(b"\\r"),
            '\t' => out.extend_from_slice(b"\\t"),
            c if (c as u32) < 0x20 => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                let v = c as usize;
                out.extend_from_slice(b"\\u00");
                out.push(HEX[v >> 4]);
                out.push(HEX[v & 15]);
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// `"key":` after a `{` or a previous field.
pub fn json_key(out: &mut Vec<u8>, key: &str) {
    if out.last() != Some(&b'{') {
        out.push(b',');
    }
    out.push(b'"');
    out.extend_from_slice(key.as_bytes());
    out.extend_from_slice(b"\":");
}

/// Seconds to the millisecond as a JSON number, or `null`.
pub fn json_secs(out: &mut Vec<u8>, d: Option<Duration>) {
    match d {
        Some(d) => secs(out, d),
        None => out.extend_from_slice(b"null"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Vec<u8>)) -> String {
        let mut out = Vec::new();
        f(&mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn times_read_as_nginx_and_iso_8601_write_them() {
        let at = UNIX_EPOCH + Duration::from_millis(1_796_132_931_123);
        assert_eq!(s(|o| time_local(o, at)), "[01/Dec/2026:13:48:51 +0000]");
        assert_eq!(s(|o| time_iso(o, at)), "\"2026-12-01T13:48:51.123Z\"");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(s(|o| time_local(o, leap)), "[29/Feb/2000:00:00:00 +0000]");
    }

    #[test]
    fn seconds_to_the_millisecond() {
        assert_eq!(s(|o| secs(o, Duration::from_micros(3_499))), "0.003");
        assert_eq!(s(|o| secs(o, Duration::from_millis(12_500))), "12.500");
        assert_eq!(s(|o| secs_or_dash(o, None)), "-");
        assert_eq!(s(|o| json_secs(o, None)), "null");
    }

    #[test]
    fn strings_are_escaped_as_nginx_and_json_want() {
        assert_eq!(s(|o| quoted(o, b"/a b?c=1")), "\"/a b?c=1\"");
        assert_eq!(
            s(|o| quoted(o, b"a\"b\\c\n\xff")),
            "\"a\\x22b\\x5Cc\\x0A\\xFF\""
        );
        assert_eq!(s(|o| field(o, b"host", b"")), " host=-");
        assert_eq!(s(|o| field(o, b"pool", b"a b")), " pool=a\\x20b");
        let j = s(|o| json_str(o, "a\"b\\\n\u{1}é".as_bytes()));
        assert_eq!(j, "\"a\\\"b\\\\\\n\\u0001é\"");
        let parsed: String = serde_json::from_str(&j).unwrap();
        assert_eq!(parsed, "a\"b\\\n\u{1}é");
    }
}

//! The pieces access-log lines are made of, written by hand (no `fmt` machinery, no
//! floats, no allocation): nginx's `[time_local]`, ISO 8601 times, quoted strings escaped as
//! nginx escapes them, JSON strings, seconds to the millisecond, addresses.
//!
//! A line is written on the request path, so [`Line`] takes the short way: the pieces of
//! known bounds (numbers, times, addresses, fixed text, short strings) gather in a buffer on
//! the stack and go to the log's buffer together, a time is formatted once per second per
//! thread and copied after that, numbers go two digits at a time, and a string is scanned
//! once against a byte table and copied whole when nothing in it needs escaping (the usual
//! case).

use std::cell::Cell;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// `00` to `99`, two bytes each.
const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// `0` to `255` in 1 to 3 digits, padded to 3 bytes, with how many they are.
const OCTETS: [([u8; 3], usize); 256] = {
    let mut t = [([0u8; 3], 0); 256];
    let mut v = 0;
    while v < 256 {
        let d = [
            b'0' + (v / 100) as u8,
            b'0' + (v / 10 % 10) as u8,
            b'0' + (v % 10) as u8,
        ];
        t[v] = match v {
            0..=9 => ([d[2], 0, 0], 1),
            10..=99 => ([d[1], d[2], 0], 2),
            _ => (d, 3),
        };
        v += 1;
    }
    t
};

/// A byte that a quoted string (and a JSON string) carries as it is: printable ASCII but
/// `"` and `\`.
const QUOTED: u8 = 1;
/// A byte that a `key=value` field carries as it is: [`QUOTED`] but the space.
const FIELD: u8 = 2;
const CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0x20;
    while b < 0x7f {
        if b != b'"' as usize && b != b'\\' as usize {
            t[b] = QUOTED | FIELD;
        }
        b += 1;
    }
    t[b' ' as usize] = QUOTED;
    t
};

/// Whether every byte of `s` is of `class`.
fn all(s: &[u8], class: u8) -> bool {
    s.iter().all(|&b| CLASS[usize::from(b)] & class != 0)
}

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

/// `v % 100` as two digits.
fn pair(v: u64) -> [u8; 2] {
    let i = (v % 100) as usize * 2;
    [PAIRS[i], PAIRS[i + 1]]
}

thread_local! {
    /// The second [`Line::time_local`] last wrote on this thread (from, until), and its
    /// text.
    static LOCAL_TIME: Cell<(SystemTime, SystemTime, [u8; 28])> =
        const { Cell::new((UNIX_EPOCH, UNIX_EPOCH, [0; 28])) };
    /// The second [`Line::time_iso`] last wrote on this thread, and its text up to the
    /// seconds.
    static ISO_TIME: Cell<(u64, [u8; 20])> = const { Cell::new((u64::MAX, [0; 20])) };
}

/// `$time_local` of `at`, formatted (and kept for the rest of its second on this thread).
#[cold]
#[inline(never)]
fn local_time(at: SystemTime) -> [u8; 28] {
    let secs = at.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
    let (y, m, d, hh, mm, ss) = civil(secs);
    let [y1, y2] = pair(y / 100);
    let [y3, y4] = pair(y);
    let [d1, d2] = pair(d);
    let [mo1, mo2, mo3] = *MONTHS[(m - 1) as usize];
    let ([h1, h2], [m1, m2], [s1, s2]) = (pair(hh), pair(mm), pair(ss));
    let mut text = *b"[dd/Mon/yyyy:hh:mm:ss +0000]";
    text[1..21].copy_from_slice(&[
        d1, d2, b'/', mo1, mo2, mo3, b'/', y1, y2, y3, y4, b':', h1, h2, b':', m1, m2, b':', s1, s2,
    ]);
    let from = UNIX_EPOCH + Duration::from_secs(secs);
    LOCAL_TIME.set((from, from + Duration::from_secs(1), text));
    text
}

/// The stack buffer of a [`Line`].
const ROOM: usize = 256;
/// The most a string may have to be checked and copied into that buffer; a longer one goes
/// to the log's buffer directly.
const SHORT: usize = 48;

/// One line being appended to a log's buffer. Bounded pieces gather in a buffer on the
/// stack, so each costs a few moves rather than a length and capacity check of the vector
/// per byte or a call to `memcpy`; they go to the vector when the buffer is full, before an
/// unbounded piece, and when the `Line` is dropped.
pub struct Line<'a> {
    out: &'a mut Vec<u8>,
    buf: [u8; ROOM],
    n: usize,
}

impl Drop for Line<'_> {
    fn drop(&mut self) {
        self.flush();
    }
}

impl<'a> Line<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> Line<'a> {
        Line {
            out,
            buf: [0; ROOM],
            n: 0,
        }
    }

    fn flush(&mut self) {
        self.out.extend_from_slice(&self.buf[..self.n]);
        self.n = 0;
    }

    /// Room for a piece of at most `k` bytes (`k` <= [`ROOM`]).
    #[inline(always)]
    fn room(&mut self, k: usize) {
        if self.n + k > ROOM {
            self.flush();
        }
    }

    /// Fixed text.
    #[inline(always)]
    pub fn text<const K: usize>(&mut self, s: &[u8; K]) {
        self.room(K);
        self.buf[self.n..self.n + K].copy_from_slice(s);
        self.n += K;
    }

    #[inline(always)]
    pub fn byte(&mut self, b: u8) {
        self.text(&[b]);
    }

    /// Bytes written as they are (a protocol name, a word of ours).
    #[inline(always)]
    pub fn raw(&mut self, s: &[u8]) {
        if s.len() <= SHORT {
            self.room(SHORT);
            self.buf[self.n..self.n + s.len()].copy_from_slice(s);
            self.n += s.len();
        } else {
            self.flush();
            self.out.extend_from_slice(s);
        }
    }

    /// A number.
    #[inline(always)]
    pub fn uint(&mut self, v: u64) {
        self.room(20);
        let at = self.n;
        if v < 10 {
            self.buf[at] = b'0' + v as u8;
            self.n += 1;
            return;
        }
        let n = v.ilog10() as usize + 1;
        let (mut i, mut v) = (at + n, v);
        while i >= at + 2 {
            self.buf[i - 2..i].copy_from_slice(&pair(v));
            v /= 100;
            i -= 2;
        }
        if i > at {
            self.buf[at] = b'0' + v as u8;
        }
        self.n = at + n;
    }

    /// Seconds to the millisecond, as nginx writes `$request_time`: `0.003`, `12.500`.
    #[inline(always)]
    pub fn secs(&mut self, d: Duration) {
        let (s, ms) = (d.as_secs(), u64::from(d.subsec_millis()));
        let [a, b] = pair(ms);
        if s < 10 {
            self.text(&[b'0' + s as u8, b'.', b'0' + (ms / 100) as u8, a, b]);
        } else {
            self.uint(s);
            self.text(&[b'.', b'0' + (ms / 100) as u8, a, b]);
        }
    }

    /// Seconds, or `-` when there is no such time (no server reached), as nginx writes
    /// `$upstream_response_time`.
    #[inline(always)]
    pub fn secs_or_dash(&mut self, d: Option<Duration>) {
        match d {
            Some(d) => self.secs(d),
            None => self.byte(b'-'),
        }
    }

    /// Seconds to the millisecond as a JSON number, or `null`.
    pub fn json_secs(&mut self, d: Option<Duration>) {
        match d {
            Some(d) => self.secs(d),
            None => self.text(b"null"),
        }
    }

    /// An IPv4 address, dotted.
    #[inline(always)]
    fn ipv4(&mut self, ip: Ipv4Addr) {
        self.room(16);
        let mut n = self.n;
        for (i, o) in ip.octets().into_iter().enumerate() {
            if i > 0 {
                self.buf[n] = b'.';
                n += 1;
            }
            let (digits, len) = OCTETS[usize::from(o)];
            self.buf[n..n + 3].copy_from_slice(&digits);
            n += len;
        }
        self.n = n;
    }

    /// An IP address as `IpAddr`'s `Display` writes it (IPv4 by hand, IPv6 through `fmt`).
    #[inline(always)]
    pub fn ip(&mut self, ip: IpAddr) {
        match ip {
            IpAddr::V4(v4) => self.ipv4(v4),
            IpAddr::V6(v6) => self.display(v6),
        }
    }

    /// An address and port as `SocketAddr`'s `Display` writes it (`[v6]:port` too).
    #[inline(always)]
    pub fn addr(&mut self, a: SocketAddr) {
        match a {
            SocketAddr::V4(v4) => {
                self.ipv4(*v4.ip());
                self.byte(b':');
                self.uint(u64::from(v4.port()));
            }
            SocketAddr::V6(v6) => self.display(v6),
        }
    }

    /// What `Display` writes (an IPv6 address: rare).
    #[cold]
    #[inline(never)]
    fn display(&mut self, v: impl std::fmt::Display) {
        self.flush();
        let _ = write!(self.out, "{v}");
    }

    /// nginx's `$time_local` in brackets, in UTC: `[01/Dec/2026:13:48:51 +0000]`.
    #[inline(always)]
    pub fn time_local(&mut self, at: SystemTime) {
        let (from, until, text) = LOCAL_TIME.get();
        if from <= at && at < until {
            self.text(&text);
        } else {
            self.text(&local_time(at));
        }
    }

    /// ISO 8601 in UTC to the millisecond, quoted: `"2026-12-01T13:48:51.123Z"`.
    pub fn time_iso(&mut self, at: SystemTime) {
        let since = at.duration_since(UNIX_EPOCH).unwrap_or_default();
        let secs = since.as_secs();
        let (last, mut text) = ISO_TIME.get();
        if last != secs {
            let (y, m, d, hh, mm, ss) = civil(secs);
            let [y1, y2] = pair(y / 100);
            let [y3, y4] = pair(y);
            let ([mo1, mo2], [d1, d2]) = (pair(m), pair(d));
            let ([h1, h2], [m1, m2], [s1, s2]) = (pair(hh), pair(mm), pair(ss));
            text = [
                b'"', y1, y2, y3, y4, b'-', mo1, mo2, b'-', d1, d2, b'T', h1, h2, b':', m1, m2,
                b':', s1, s2,
            ];
            ISO_TIME.set((secs, text));
        }
        self.text(&text);
        let ms = u64::from(since.subsec_millis());
        let [a, b] = pair(ms);
        self.text(&[b'.', b'0' + (ms / 100) as u8, a, b, b'Z', b'"']);
    }

    /// A string in double quotes as nginx's default `escape` writes it: `"` and `\` and
    /// bytes outside printable ASCII as `\xHH`; `-` for an empty one unquoted is the
    /// caller's choice.
    #[inline(always)]
    pub fn quoted(&mut self, s: &[u8]) {
        self.byte(b'"');
        self.escaped(s, QUOTED);
        self.byte(b'"');
    }

    /// [`Line::quoted`] without the quotes: for fields that cannot hold a space (a method,
    /// a target).
    #[inline(always)]
    pub fn bare(&mut self, s: &[u8]) {
        self.escaped(s, QUOTED);
    }

    /// A ` key=value` field for a value that may hold anything: spaces, quotes and controls
    /// escaped as in [`Line::bare`] (a space as `\x20`), `-` when empty.
    #[inline(always)]
    pub fn field<const K: usize>(&mut self, key: &[u8; K], value: &[u8]) {
        self.byte(b' ');
        self.text(key);
        self.byte(b'=');
        if value.is_empty() {
            self.byte(b'-');
        } else {
            self.escaped(value, FIELD);
        }
    }

    /// `s` with each byte not of `class` as `\xHH`.
    #[inline(always)]
    fn escaped(&mut self, s: &[u8], class: u8) {
        if s.len() <= SHORT {
            // Checked and copied in one pass (a host, a pool, a method, a short path).
            self.room(SHORT);
            let n = self.n;
            let plain = s.iter().zip(&mut self.buf[n..n + SHORT]).all(|(&b, to)| {
                *to = b;
                CLASS[usize::from(b)] & class != 0
            });
            if plain {
                self.n += s.len();
                return;
            }
        }
        self.escaped_long(s, class);
    }

    /// [`Line::escaped`] for a long string, or one that needs escaping.
    #[inline(never)]
    fn escaped_long(&mut self, s: &[u8], class: u8) {
        self.flush();
        if s.len() > SHORT && all(s, class) {
            self.out.extend_from_slice(s);
            return;
        }
        const HEX: &[u8; 16] = b"0123456789ABCDEF";
        for &b in s {
            if CLASS[usize::from(b)] & class != 0 {
                self.out.push(b);
            } else {
                self.out.extend_from_slice(&[
                    b'\\',
                    b'x',
                    HEX[usize::from(b >> 4)],
                    HEX[usize::from(b & 15)],
                ]);
            }
        }
    }

    /// A JSON string (quotes, backslashes and controls escaped; bytes that are not UTF-8 as
    /// U+FFFD).
    pub fn json_str(&mut self, s: &[u8]) {
        self.byte(b'"');
        if s.len() <= SHORT {
            self.room(SHORT);
            let n = self.n;
            let plain = s.iter().zip(&mut self.buf[n..n + SHORT]).all(|(&b, to)| {
                *to = b;
                CLASS[usize::from(b)] & QUOTED != 0
            });
            if plain {
                self.n += s.len();
                return self.byte(b'"');
            }
        }
        self.flush();
        let out = &mut *self.out;
        if all(s, QUOTED) {
            out.extend_from_slice(s);
            return self.byte(b'"');
        }
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
        self.byte(b'"');
    }

    /// `"key":` after a `{` or a previous field.
    pub fn json_key(&mut self, key: &str) {
        let last = match self.n {
            0 => self.out.last().copied(),
            n => Some(self.buf[n - 1]),
        };
        if last != Some(b'{') {
            self.byte(b',');
        }
        self.byte(b'"');
        self.raw(key.as_bytes());
        self.text(b"\":");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(f: impl FnOnce(&mut Line<'_>)) -> String {
        let mut out = Vec::new();
        f(&mut Line::new(&mut out));
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn times_read_as_nginx_and_iso_8601_write_them() {
        let at = UNIX_EPOCH + Duration::from_millis(1_796_132_931_123);
        assert_eq!(s(|o| o.time_local(at)), "[01/Dec/2026:13:48:51 +0000]");
        assert_eq!(s(|o| o.time_iso(at)), "\"2026-12-01T13:48:51.123Z\"");
        let leap = UNIX_EPOCH + Duration::from_secs(951_782_400);
        assert_eq!(s(|o| o.time_local(leap)), "[29/Feb/2000:00:00:00 +0000]");
    }

    #[test]
    fn seconds_to_the_millisecond() {
        assert_eq!(s(|o| o.secs(Duration::from_micros(3_499))), "0.003");
        assert_eq!(s(|o| o.secs(Duration::from_millis(12_500))), "12.500");
        assert_eq!(s(|o| o.secs_or_dash(None)), "-");
        assert_eq!(s(|o| o.json_secs(None)), "null");
    }

    #[test]
    fn strings_are_escaped_as_nginx_and_json_want() {
        assert_eq!(s(|o| o.quoted(b"/a b?c=1")), "\"/a b?c=1\"");
        assert_eq!(
            s(|o| o.quoted(b"a\"b\\c\n\xff")),
            "\"a\\x22b\\x5Cc\\x0A\\xFF\""
        );
        assert_eq!(s(|o| o.field(b"host", b"")), " host=-");
        assert_eq!(s(|o| o.field(b"pool", b"a b")), " pool=a\\x20b");
        let j = s(|o| o.json_str("a\"b\\\n\u{1}é".as_bytes()));
        assert_eq!(j, "\"a\\\"b\\\\\\n\\u0001é\"");
        let parsed: String = serde_json::from_str(&j).unwrap();
        assert_eq!(parsed, "a\"b\\\n\u{1}é");
    }

    #[test]
    fn numbers_and_seconds_read_as_display_writes_them() {
        let mut values: Vec<u64> = (0..=12_000).collect();
        let mut x = 1u64;
        for _ in 0..2_000 {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            values.extend([x, x >> 17, x >> 40]);
        }
        values.extend(
            (0..20)
                .map(|p| 10u64.pow(p))
                .flat_map(|v| [v - 1, v, v + 1]),
        );
        values.push(u64::MAX);
        for v in values {
            assert_eq!(s(|o| o.uint(v)), v.to_string());
            let ms = v.min(u64::MAX / 2);
            let d = Duration::from_millis(ms) + Duration::from_micros(v % 1000);
            assert_eq!(
                s(|o| o.secs(d)),
                format!("{}.{:03}", ms / 1000, ms % 1000),
                "{d:?}"
            );
        }
    }

    #[test]
    fn a_line_longer_than_its_stack_buffer_is_whole_and_in_order() {
        let mut want = String::new();
        let got = s(|o| {
            for i in 0..200u64 {
                let v = i * 1_000_003;
                o.uint(v);
                o.field(b"k", b"a b");
                o.addr(SocketAddr::from(([10, 0, i as u8, 1], 8080)));
                want.push_str(&format!("{v} k=a\\x20b10.0.{i}.1:8080"));
                if i % 50 == 0 {
                    o.bare(&[b'y'; 300]);
                    want.push_str(&"y".repeat(300));
                }
            }
        });
        assert_eq!(got, want);
    }

    #[test]
    fn addresses_read_as_display_writes_them() {
        let mut x = 7u64;
        for i in 0..5_000u64 {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1442695040888963407);
            let v4 = std::net::Ipv4Addr::from((x >> 32) as u32 >> (i % 32));
            let a = SocketAddr::from((v4, (x >> 7) as u16));
            assert_eq!(s(|o| o.ip(a.ip())), a.ip().to_string());
            assert_eq!(s(|o| o.addr(a)), a.to_string());
        }
        for a in [
            "[::1]:8080",
            "[2001:db8::7]:443",
            "0.0.0.0:0",
            "255.255.255.255:65535",
        ] {
            let a: SocketAddr = a.parse().unwrap();
            assert_eq!(s(|o| o.addr(a)), a.to_string());
            assert_eq!(s(|o| o.ip(a.ip())), a.ip().to_string());
        }
    }

    #[test]
    fn a_time_kept_for_its_second_is_the_time_of_each_call() {
        // Seconds in and out of order, repeated, across days, months and years: each line
        // gets its own time, never the one kept from the call before.
        let reference = |secs: u64, ms: u32| {
            let (y, m, d, hh, mm, ss) = civil(secs);
            let mon = std::str::from_utf8(MONTHS[(m - 1) as usize]).unwrap();
            (
                format!("[{d:02}/{mon}/{y:04}:{hh:02}:{mm:02}:{ss:02} +0000]"),
                format!("\"{y:04}-{m:02}-{d:02}T{hh:02}:{mm:02}:{ss:02}.{ms:03}Z\""),
            )
        };
        let base = 1_796_132_931u64;
        let mut seen = 0;
        for step in [
            0, 0, 1, 1, 59, 3_600, 86_399, 86_400, 0, 2_678_400, 31_536_000,
        ] {
            for secs in [base + step, base.wrapping_sub(step), base + step * 7] {
                for ms in [0u32, 1, 999, 0] {
                    let at =
                        UNIX_EPOCH + Duration::from_secs(secs) + Duration::from_millis(ms.into());
                    let (local, iso) = reference(secs, ms);
                    assert_eq!(s(|o| o.time_local(at)), local);
                    assert_eq!(s(|o| o.time_iso(at)), iso);
                    seen += 1;
                }
            }
        }
        assert_eq!(seen, 132);
    }

    #[test]
    fn every_byte_is_escaped_as_before() {
        // The escaping written byte by byte, as it was before the fast paths.
        fn slow(s: &[u8], space: bool) -> String {
            let mut out = String::new();
            for &b in s {
                if (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\' && (space || b != b' ') {
                    out.push(char::from(b));
                } else {
                    out.push_str(&format!("\\x{b:02X}"));
                }
            }
            out
        }
        let mut strings: Vec<Vec<u8>> = (0..=255u8).map(|b| vec![b]).collect();
        strings.extend((0..=255u8).map(|b| vec![b'a', b, b' ', b'z']));
        strings.push(b"Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/120.0".to_vec());
        strings.push("caf\u{e9} \"q\" \\ \t".as_bytes().to_vec());
        // Longer than what is checked on the stack, plain and not.
        strings.extend((0..=255u8).step_by(7).map(|b| {
            let mut v = vec![b'x'; 90];
            v[45] = b;
            v
        }));
        for v in strings {
            assert_eq!(s(|o| o.bare(&v)), slow(&v, true), "{v:?}");
            assert_eq!(s(|o| o.quoted(&v)), format!("\"{}\"", slow(&v, true)));
            assert_eq!(s(|o| o.field(b"k", &v)), format!(" k={}", slow(&v, false)));
            let j = s(|o| o.json_str(&v));
            let parsed: String = serde_json::from_str(&j).unwrap();
            assert_eq!(parsed, String::from_utf8_lossy(&v), "{j}");
        }
    }
}

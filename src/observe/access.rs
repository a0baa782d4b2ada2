//! One access-log line per request, with the upstream timings an operator needs to tell a
//! slow server from a slow network.
//!
//! Cheap by design: whether lines are written at all is the log filter's say (target
//! `switchyard::access` at INFO, so `--log-level warn` turns them off and then nothing is
//! gathered or formatted). A line is formatted by hand (no `fmt` machinery, no floats) into
//! the calling thread's own buffer, under a lock only that thread and the writer take; a
//! writer thread swaps the buffers out every [`FLUSH_EVERY`] (sooner when one fills) and
//! writes them to stderr in one write each, off the request path. The line reads as the
//! other log lines do:
//!
//! ```text
//! 2026-12-01T14:48:51.123456Z  INFO access: listener="web" client=127.0.0.1:5000 method="GET" uri="/" status=200 pool="p" server="s1" attempts=1 upstream_connect_ms=0.090 upstream_header_ms=0.350 total_ms=0.412
//! ```

use std::cell::RefCell;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// What happened to one request.
#[derive(Debug)]
pub struct AccessRecord<'a> {
    pub listener: &'a str,
    pub client: SocketAddr,
    /// `client` as text, when the caller keeps it formatted (once per connection).
    pub client_text: Option<&'a str>,
    pub method: &'a str,
    pub uri: &'a str,
    pub status: u16,
    pub pool: &'a str,
    /// `-` when no server was reached.
    pub server: &'a str,
    /// Tries made (1 without retries).
    pub attempts: u32,
    pub upstream_connect: Option<Duration>,
    /// Time to the upstream response head.
    pub upstream_header: Option<Duration>,
    /// Time from the request head to the response head.
    pub total: Duration,
}

/// How often the writer takes the lines gathered.
pub const FLUSH_EVERY: Duration = Duration::from_millis(50);
/// A thread's buffer this full wakes the writer at once.
const WAKE_AT: usize = 256 * 1024;

/// Whether access lines are written now (the log level lets them through): when not,
/// nothing is gathered or formatted for them.
pub fn enabled() -> bool {
    tracing::enabled!(target: "switchyard::access", tracing::Level::INFO)
}

type Buffer = Arc<Mutex<Vec<u8>>>;

/// The buffers of every thread that logged, and the writer's wake-up.
struct Sink {
    buffers: Mutex<Vec<Buffer>>,
    wake: std::sync::mpsc::SyncSender<()>,
}

fn sink() -> &'static Sink {
    static SINK: OnceLock<Sink> = OnceLock::new();
    SINK.get_or_init(|| {
        let (wake, woken) = std::sync::mpsc::sync_channel(1);
        std::thread::Builder::new()
            .name("switchyard-log".into())
            .spawn(move || {
                let mut spare = Vec::new();
                loop {
                    let stop = matches!(
                        woken.recv_timeout(FLUSH_EVERY),
                        Err(std::sync::mpsc::RecvTimeoutError::Disconnected)
                    );
                    flush_into(&mut spare);
                    if stop {
                        return;
                    }
                }
            })
            .expect("start the access-log writer");
        Sink {
            buffers: Mutex::new(Vec::new()),
            wake,
        }
    })
}

/// Take every thread's lines (swapping in `spare`) and write them.
fn flush_into(spare: &mut Vec<u8>) {
    let buffers: Vec<Buffer> = sink()
        .buffers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    for b in buffers {
        {
            let mut lines = b.lock().unwrap_or_else(|e| e.into_inner());
            if lines.is_empty() {
                continue;
            }
            std::mem::swap(&mut *lines, spare);
        }
        let _ = std::io::stderr().lock().write_all(spare);
        spare.clear();
    }
}

/// Write what has been gathered now (at exit).
pub fn flush() {
    flush_into(&mut Vec::new());
}

thread_local! {
    static LOCAL: RefCell<Option<(Buffer, Stamp)>> = const { RefCell::new(None) };
}

/// The formatted date and time of the current second, kept per thread.
struct Stamp {
    second: u64,
    text: [u8; 19],
}

impl Stamp {
    /// `YYYY-MM-DDTHH:MM:SS` of `secs` since the epoch (UTC).
    fn of(secs: u64) -> Stamp {
        let days = (secs / 86400) as i64;
        let rem = secs % 86400;
        // Civil from days (Howard Hinnant's algorithm).
        let z = days + 719_468;
        let era = z.div_euclid(146_097);
        let doe = z.rem_euclid(146_097);
        let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
        let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
        let mp = (5 * doy + 2) / 153;
        let d = doy - (153 * mp + 2) / 5 + 1;
        let m = if mp < 10 { mp + 3 } else { mp - 9 };
        let y = yoe + era * 400 + i64::from(m <= 2);
        let mut text = *b"0000-00-00T00:00:00";
        let mut put = |at: usize, v: u64, width: usize| {
            let mut v = v;
            for i in (0..width).rev() {
                text[at + i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
        };
        put(0, y as u64, 4);
        put(5, m as u64, 2);
        put(8, d as u64, 2);
        put(11, rem / 3600, 2);
        put(14, rem / 60 % 60, 2);
        put(17, rem % 60, 2);
        Stamp { second: secs, text }
    }
}

fn push_uint(out: &mut Vec<u8>, v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut v = v;
    loop {
        i -= 1;
        digits[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

/// Milliseconds to the microsecond (`0.090`), or `-` when there is no such time (no server
/// reached), as nginx writes `$upstream_connect_time`.
fn push_ms(out: &mut Vec<u8>, d: Option<Duration>) {
    let Some(d) = d else {
        out.push(b'-');
        return;
    };
    // Rounded to the microsecond as `{:.3}` of milliseconds would (half up from nanos).
    let us = ((d.as_nanos() + 500) / 1000).min(u128::from(u64::MAX)) as u64;
    push_uint(out, us / 1000);
    out.push(b'.');
    let frac = us % 1000;
    out.push(b'0' + (frac / 100) as u8);
    out.push(b'0' + (frac / 10 % 10) as u8);
    out.push(b'0' + (frac % 10) as u8);
}

/// A string field as `Debug` writes it (quoted; quotes, backslashes and controls escaped).
fn push_quoted(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    // The usual case: printable ASCII with nothing to escape, copied whole.
    if s.bytes()
        .all(|b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\')
    {
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
        return;
    }
    for c in s.chars() {
        match c {
            '"' => out.extend_from_slice(b"\\\""),
            '\\' => out.extend_from_slice(b"\\\\"),
            c if c.is_control() => {
                for e in c.escape_debug() {
                    let mut b = [0u8; 4];
                    out.extend_from_slice(e.encode_utf8(&mut b).as_bytes());
                }
            }
            c => {
                let mut b = [0u8; 4];
                out.extend_from_slice(c.encode_utf8(&mut b).as_bytes());
            }
        }
    }
    out.push(b'"');
}

/// One line for `r`, appended to `out`, stamped `now`.
fn format_line(out: &mut Vec<u8>, stamp: &mut Stamp, now: Duration, r: &AccessRecord<'_>) {
    if now.as_secs() != stamp.second {
        *stamp = Stamp::of(now.as_secs());
    }
    out.extend_from_slice(&stamp.text);
    out.push(b'.');
    let micros = now.subsec_micros();
    let mut frac = [b'0'; 6];
    let mut v = micros;
    for i in (0..6).rev() {
        frac[i] = b'0' + (v % 10) as u8;
        v /= 10;
    }
    out.extend_from_slice(&frac);
    out.extend_from_slice(b"Z  INFO access: listener=");
    push_quoted(out, r.listener);
    out.extend_from_slice(b" client=");
    match r.client_text {
        Some(t) => out.extend_from_slice(t.as_bytes()),
        None => {
            let _ = write!(out, "{}", r.client);
        }
    }
    out.extend_from_slice(b" method=");
    push_quoted(out, r.method);
    out.extend_from_slice(b" uri=");
    push_quoted(out, r.uri);
    out.extend_from_slice(b" status=");
    push_uint(out, u64::from(r.status));
    out.extend_from_slice(b" pool=");
    push_quoted(out, r.pool);
    out.extend_from_slice(b" server=");
    push_quoted(out, r.server);
    out.extend_from_slice(b" attempts=");
    push_uint(out, u64::from(r.attempts));
    out.extend_from_slice(b" upstream_connect_ms=");
    push_ms(out, r.upstream_connect);
    out.extend_from_slice(b" upstream_header_ms=");
    push_ms(out, r.upstream_header);
    out.extend_from_slice(b" total_ms=");
    push_ms(out, Some(r.total));
    out.push(b'\n');
}

/// Gather one line (when the log filter lets access lines through).
pub fn log(r: &AccessRecord<'_>) {
    if !enabled() {
        return;
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    LOCAL.with(|local| {
        let mut local = local.borrow_mut();
        let (buffer, stamp) = local.get_or_insert_with(|| {
            let b: Buffer = Arc::default();
            sink()
                .buffers
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(b.clone());
            (b, Stamp::of(0))
        });
        let mut lines = buffer.lock().unwrap_or_else(|e| e.into_inner());
        format_line(&mut lines, stamp, now, r);
        if lines.len() >= WAKE_AT {
            let _ = sink().wake.try_send(());
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(d: Option<Duration>) -> String {
        let mut out = Vec::new();
        push_ms(&mut out, d);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn milliseconds_print_to_the_microsecond() {
        assert_eq!(ms(Some(Duration::from_nanos(89_895_996))), "89.896");
        assert_eq!(ms(Some(Duration::from_micros(90))), "0.090");
        assert_eq!(ms(None), "-");
    }

    #[test]
    fn a_line_reads_as_the_other_log_lines() {
        let mut out = Vec::new();
        let mut stamp = Stamp::of(0);
        let now = Duration::from_secs(1_796_132_931) + Duration::from_micros(123_456);
        format_line(
            &mut out,
            &mut stamp,
            now,
            &AccessRecord {
                listener: "web",
                client: "127.0.0.1:5000".parse().unwrap(),
                client_text: None,
                method: "GET",
                uri: "/a\"b",
                status: 200,
                pool: "p",
                server: "s1",
                attempts: 1,
                upstream_connect: Some(Duration::from_micros(90)),
                upstream_header: None,
                total: Duration::from_micros(412),
            },
        );
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "2026-12-01T13:48:51.123456Z  INFO access: listener=\"web\" client=127.0.0.1:5000 method=\"GET\" uri=\"/a\\\"b\" status=200 pool=\"p\" server=\"s1\" attempts=1 upstream_connect_ms=0.090 upstream_header_ms=- total_ms=0.412\n"
        );
    }
}

//! `switchyard probe`: ask a running Switchyard whether it is ready, for keepalived's
//! `track_script`, systemd, cron or a person at a shell.
//!
//! One blocking HTTP/1.1 `GET /health/ready` to the admin listener, with one deadline over
//! connect, write and read, and no runtime, thread or log: keepalived runs it every second.
//! The answer becomes an exit status in the manner of PostgreSQL's `pg_isready`:
//!
//! | exit | meaning |
//! |---|---|
//! | 0 | ready: `/health/ready` answered 200 |
//! | 1 | not ready: it answered, with another status (a pool without a usable server, draining) |
//! | 2 | no answer: nothing listens, the deadline passed, or the answer was not HTTP |
//! | 3 | not asked: the config cannot be read or has no `[admin]`, or the address is wrong |
//!
//! The address comes from `--admin ADDR` or from the `[admin] listen` of the config file.
//! Only that key is read: the probe must not fail because a certificate named elsewhere in
//! the file is unreadable to the probe's user, nor pay for validating every pool.

use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, ToSocketAddrs};
use std::path::Path;
use std::time::{Duration, Instant};

/// The path asked.
pub const READY_PATH: &str = "/health/ready";

/// The most of an answer read: the status line and the first line of the body are all that
/// is used, and an admin listener's readiness body is one line per server.
const MAX_ANSWER: usize = 64 * 1024;

/// What the admin listener said, or why it said nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Probe {
    /// `200`: the first line of the body (`ready`).
    Ready(String),
    /// Another status, with the first line of the body (`not ready: draining …`).
    NotReady { status: u16, reason: String },
    /// No HTTP answer before the deadline: why.
    NoAnswer(String),
}

impl Probe {
    /// The exit status for this outcome (see the module's table).
    pub fn exit_code(&self) -> u8 {
        match self {
            Probe::Ready(_) => 0,
            Probe::NotReady { .. } => 1,
            Probe::NoAnswer(_) => 2,
        }
    }

    /// One line for a person: `127.0.0.1:9900: ready`.
    pub fn describe(&self, addr: SocketAddr) -> String {
        match self {
            Probe::Ready(line) => format!("{addr}: {line}"),
            Probe::NotReady { status, reason } => format!("{addr}: {status} {reason}"),
            Probe::NoAnswer(why) => format!("{addr}: no answer: {why}"),
        }
    }
}

/// Why the probe could not ask at all (exit 3).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not valid TOML: {message}")]
    Toml { path: String, message: String },
    #[error(
        "{path} has no [admin] listen address: add [admin] with listen = \"127.0.0.1:9900\" \
         (and restart Switchyard), or pass --admin ADDR"
    )]
    NoAdmin { path: String },
    #[error("admin address {value:?} is not host:port, e.g. \"127.0.0.1:9900\"")]
    BadAddress { value: String },
}

/// The admin listener's address as written in the config file at `path`.
pub fn admin_addr_from_file(path: &Path) -> Result<SocketAddr, ProbeError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|source| ProbeError::Read {
        path: name.clone(),
        source,
    })?;
    admin_addr_from_toml(&text, &name)
}

/// [`admin_addr_from_file`] on text already read; `file` names it in errors.
pub fn admin_addr_from_toml(text: &str, file: &str) -> Result<SocketAddr, ProbeError> {
    // Only [admin] listen: every other key of the file is left to `check` and `run`.
    #[derive(serde::Deserialize)]
    struct File {
        admin: Option<Admin>,
    }
    #[derive(serde::Deserialize)]
    struct Admin {
        listen: Option<String>,
    }
    let parsed: File = toml::from_str(text).map_err(|e| ProbeError::Toml {
        path: file.to_string(),
        message: e.message().to_string(),
    })?;
    match parsed.admin.and_then(|a| a.listen) {
        Some(listen) => admin_addr(&listen),
        None => Err(ProbeError::NoAdmin {
            path: file.to_string(),
        }),
    }
}

/// Where to connect for a listener written as `value` (`127.0.0.1:9900`, `[::1]:9900`,
/// `localhost:9900`): a listener on every address (`0.0.0.0`, `[::]`) is asked on loopback.
pub fn admin_addr(value: &str) -> Result<SocketAddr, ProbeError> {
    let bad = || ProbeError::BadAddress {
        value: value.to_string(),
    };
    let mut addr = match value.trim().parse::<SocketAddr>() {
        Ok(a) => a,
        // A name is looked up once, as `check` does for [admin] listen.
        Err(_) => value
            .trim()
            .to_socket_addrs()
            .map_err(|_| bad())?
            .next()
            .ok_or_else(bad)?,
    };
    if addr.ip().is_unspecified() {
        addr.set_ip(match addr.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::LOCALHOST),
        });
    }
    Ok(addr)
}

/// Ask `addr` for `/health/ready`, giving up after `timeout` in all.
pub fn ask(addr: SocketAddr, timeout: Duration) -> Probe {
    let deadline = Instant::now() + timeout;
    match exchange(addr, deadline) {
        Ok(answer) => classify(&answer),
        // A socket timeout reads as WouldBlock on Unix, TimedOut elsewhere.
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            Probe::NoAnswer(format!("nothing within {} ms", timeout.as_millis()))
        }
        Err(e) => Probe::NoAnswer(e.to_string()),
    }
}

/// What is left before `deadline`, or a timeout error once it has passed (a zero timeout
/// would mean "none" to the socket calls).
fn left(deadline: Instant) -> std::io::Result<Duration> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        Err(ErrorKind::TimedOut.into())
    } else {
        Ok(d)
    }
}

/// Send the request and read the answer until the server closes (the request asks it to)
/// or `MAX_ANSWER` bytes have come.
fn exchange(addr: SocketAddr, deadline: Instant) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect_timeout(&addr, left(deadline)?)?;
    stream.set_nodelay(true)?;
    stream.set_write_timeout(Some(left(deadline)?))?;
    let request = format!(
        "GET {READY_PATH} HTTP/1.1\r\nHost: {addr}\r\nUser-Agent: switchyard-probe\r\n\
         Connection: close\r\n\r\n"
    );
    stream.write_all(request.as_bytes())?;
    let mut answer = Vec::with_capacity(1024);
    let mut buf = [0u8; 4096];
    while answer.len() < MAX_ANSWER {
        stream.set_read_timeout(Some(left(deadline)?))?;
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&buf[..n]);
    }
    Ok(answer)
}

/// The outcome of a whole answer: its status code and the first line of its body.
fn classify(answer: &[u8]) -> Probe {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status_line = head.lines().next().unwrap_or("");
    let mut parts = status_line.split_whitespace();
    let status = match (parts.next(), parts.next().map(str::parse::<u16>)) {
        (Some(v), Some(Ok(code))) if v.starts_with("HTTP/") => code,
        _ if answer.is_empty() => return Probe::NoAnswer("closed without answering".into()),
        _ => {
            let shown: String = status_line.chars().take(60).collect();
            return Probe::NoAnswer(format!("not an HTTP answer: {shown:?}"));
        }
    };
    let first = body.lines().next().unwrap_or("").trim().to_string();
    if status == 200 {
        Probe::Ready(if first.is_empty() {
            "ready".into()
        } else {
            first
        })
    } else {
        Probe::NotReady {
            status,
            reason: first,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_address_comes_from_admin_listen_alone() {
        // Unknown keys and sections elsewhere are not the probe's business.
        let text = "[[listener]]\nlisten = \"10.0.0.10:80\"\npool = \"p\"\nsome_future_key = 1\n\
                    [admin]\nlisten = \"127.0.0.1:9900\"\n";
        assert_eq!(
            admin_addr_from_toml(text, "a.toml").unwrap(),
            "127.0.0.1:9900".parse().unwrap()
        );
    }

    #[test]
    fn a_listener_on_every_address_is_asked_on_loopback() {
        assert_eq!(
            admin_addr("0.0.0.0:9900").unwrap(),
            "127.0.0.1:9900".parse().unwrap()
        );
        assert_eq!(
            admin_addr("[::]:9900").unwrap(),
            "[::1]:9900".parse().unwrap()
        );
        assert_eq!(admin_addr("localhost:9900").unwrap().port(), 9900);
    }

    #[test]
    fn a_config_without_admin_says_what_to_add() {
        let e = admin_addr_from_toml("[pool.p]\n", "s.toml").unwrap_err();
        let text = e.to_string();
        assert!(text.contains("s.toml has no [admin] listen"), "{text}");
        assert!(text.contains("--admin ADDR"), "{text}");
        let e = admin_addr_from_toml("[admin]\nlisten = \"nowhere\"\n", "s.toml").unwrap_err();
        assert!(matches!(e, ProbeError::BadAddress { .. }), "{e}");
        let e = admin_addr_from_toml("[admin\n", "s.toml").unwrap_err();
        assert!(matches!(e, ProbeError::Toml { .. }), "{e}");
    }

    #[test]
    fn answers_are_classified_by_status() {
        let ok = b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nready\npool=p server=a\n";
        assert_eq!(classify(ok), Probe::Ready("ready".into()));
        let draining =
            b"HTTP/1.1 503 Service Unavailable\r\n\r\nnot ready: draining (shutting down)\n";
        assert_eq!(
            classify(draining),
            Probe::NotReady {
                status: 503,
                reason: "not ready: draining (shutting down)".into()
            }
        );
        assert_eq!(classify(draining).exit_code(), 1);
        assert!(matches!(classify(b""), Probe::NoAnswer(_)));
        assert!(matches!(
            classify(b"SSH-2.0-OpenSSH\r\n"),
            Probe::NoAnswer(_)
        ));
        assert_eq!(classify(b"SSH-2.0-OpenSSH\r\n").exit_code(), 2);
    }
}

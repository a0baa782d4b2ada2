//! What can stop a configuration from starting or a change from being applied.

use std::net::SocketAddr;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// `origin`: where the address is written (`file:line:column`), when it came from a file.
    #[error("{}listener {name:?} cannot listen on {addr}: {source}\n  help: {}", origin.as_ref().map_or(String::new(), |o| format!("{o}: ")), bind_help(*addr, *udp, source))]
    Bind {
        name: String,
        addr: SocketAddr,
        origin: Option<String>,
        udp: bool,
        source: std::io::Error,
    },
    /// Another process already listens on a fixed address (a start, not an upgrade or a
    /// reload: `exclusive.rs`), which SO_REUSEPORT would silently share.
    #[error("{}listener {name:?}: bind() to {addr} failed ({}): another process listens there\n  help: {}", origin.as_ref().map_or(String::new(), |o| format!("{o}: ")), errno(cause), in_use_help(*addr, *udp))]
    InUse {
        name: String,
        addr: SocketAddr,
        origin: Option<String>,
        udp: bool,
        /// Not a `source`: the message says it already, as nginx writes it.
        cause: std::io::Error,
    },
    #[error("TLS of {what}: {source}")]
    Tls {
        what: String,
        source: crate::tls::TlsError,
    },
    /// `[redis] addr` that the Redis client cannot take (the config reader checks the
    /// shape; a plan made in code may still hold one).
    #[error("{0}")]
    Redis(#[from] crate::cluster::ClusterError),
    #[error("the access log {}: {source}\n  help: {}", path.display(), log_help(source))]
    AccessLog {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    /// A server's host name gives no address (and its pool does not wait for one): each
    /// error with its file:line:column and the fix, as `check` says it.
    #[error("{0}")]
    Resolve(crate::config::ConfigErrors),
    /// The process is shutting down: it takes no change any more.
    #[error("shutting down: no change is taken any more")]
    ShuttingDown,
}

/// What to do when an address cannot be bound.
fn bind_help(addr: SocketAddr, udp: bool, e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    let port = addr.port();
    match e.kind() {
        ErrorKind::AddrInUse => {
            let ss = if udp { "ss -lunp" } else { "ss -ltnp" };
            format!(
                "another process listens there ({ss} 'sport = :{port}' shows which), or choose another port"
            )
        }
        ErrorKind::PermissionDenied if port < 1024 => {
            "ports below 1024 need root or CAP_NET_BIND_SERVICE (setcap 'cap_net_bind_service=+ep' on the binary), or choose a port above 1023".to_string()
        }
        ErrorKind::AddrNotAvailable => format!(
            "{} is not an address of this machine (ip -brief addr lists them); listen on one of those, or on {} for every address",
            addr.ip(),
            if addr.is_ipv4() { "0.0.0.0" } else { "[::]" }
        ),
        _ => "choose another address or port".to_string(),
    }
}

/// `98: Address already in use`, as nginx writes it.
fn errno(e: &std::io::Error) -> String {
    let text = e.to_string();
    let text = text
        .split(" (os error")
        .next()
        .unwrap_or_default()
        .to_string();
    match e.raw_os_error() {
        Some(n) => format!("{n}: {text}"),
        None => text,
    }
}

/// What to do when another process listens on a start's address.
fn in_use_help(addr: SocketAddr, udp: bool) -> String {
    let ss = if udp { "ss -lunp" } else { "ss -ltnp" };
    format!(
        "`{ss} 'sport = :{port}'` shows which. If it is a Switchyard, starting a second one would share the port's connections between two configurations (SO_REUSEPORT): stop it first, or change a running one with `switchyard reload` or replace it with `switchyard run --upgrade` (docs/operations.md); otherwise choose another port. To share the port on purpose, start with `switchyard run --share-ports`",
        port = addr.port()
    )
}

/// What to do when the access log cannot be opened.
fn log_help(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "create its directory, or set [log] access to another path (or \"stdout\", \"stderr\", \"off\")".into(),
        std::io::ErrorKind::PermissionDenied => "let the user Switchyard runs as write there, or set [log] access to another path".into(),
        _ => "set [log] access to a file Switchyard can append to".into(),
    }
}

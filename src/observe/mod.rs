//! What Switchyard tells about itself: its own log (`init_logging`), the access log, the
//! Prometheus text format the admin listener's `/metrics` is written in, and warnings said
//! once per interval with a count (`throttle.rs`, [`warn_every!`](crate::warn_every)).

pub mod access;
pub mod histogram;
pub mod line;
pub mod metrics;
pub mod sink;
pub mod stream;
pub mod throttle;

/// The process's own log on standard error: `level` (`--log-level`), else `RUST_LOG`, else
/// `info`; colours only on a terminal.
pub fn init_logging(level: Option<&str>) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

//! The data path: L7 HTTP proxying (`http/`); L4 TCP (`tcp.rs`) and UDP (`udp.rs`), with
//! the PROXY protocol (`proxy_protocol.rs`).
//!
//! A listener accepts a connection, hands it to its protocol's serve loop, and stops
//! accepting when the runtime's shutdown signal fires; connections in flight are let finish.

pub mod http;
pub mod listen;
pub mod proxy_protocol;
#[cfg(target_os = "linux")]
pub(crate) mod splice;
pub mod tcp;
pub mod udp;

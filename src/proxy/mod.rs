//! The data path: L7 HTTP proxying (`http/`); L4 joins here later.
//!
//! A listener accepts a connection, hands it to its protocol's serve loop, and stops
//! accepting when the runtime's shutdown signal fires; connections in flight are let finish.

pub mod http;
pub mod listen;

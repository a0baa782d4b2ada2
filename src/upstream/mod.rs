//! Upstream servers and the pools that group them.
//!
//! A [`Server`] is one backend address with its live state in atomics (requests in flight,
//! latency EWMA, health, `max_conns`). A [`Pool`] owns its servers, a balancer built over the
//! ones in rotation, which it rebuilds and swaps when that set changes, and the [`Queue`] of
//! requests waiting for a server below its `max_conns`. Nothing here touches a
//! socket: the proxy reports outcomes, health checkers report probe results.

pub mod health;
mod pool;
mod queue;
mod server;
mod server_health;
pub mod stick_table;

pub use health::{CheckRecord, Transition};
pub use pool::Pool;
pub use queue::{Queue, QueueRefused};
pub use server::{AdminState, InFlight, Server};
pub use server_health::HealthState;
pub use stick_table::StickTable;

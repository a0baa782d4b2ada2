//! Upstream servers and the pools that group them.
//!
//! A [`Server`] is one backend address with its live state in atomics (requests in flight,
//! latency EWMA, health, `max_conns`). A [`Pool`] owns its servers, a balancer built over the
//! ones in rotation, which it rebuilds and swaps when that set changes, and the [`Queue`] of
//! requests waiting for a server below its `max_conns`. Nothing here touches a
//! socket: the proxy reports outcomes, health checkers report probe results.

mod pool;
mod queue;
mod server;
pub mod state;
mod state_cell;
pub mod stick_table;

pub use pool::{Pool, PoolExplanation};
pub use queue::{Queue, QueueRefused};
pub use server::{AdminState, InFlight, LoadWatch, Server};
pub use state::{CheckRecord, Transition};
pub use state_cell::HealthState;
pub use stick_table::StickTable;

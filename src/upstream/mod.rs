//! Upstream servers and the pools that group them.
//!
//! A [`Server`] is one backend address with its live state in atomics (requests in flight,
//! latency EWMA, health). A [`Pool`] owns its servers and a balancer built over the ones in
//! rotation; it rebuilds and swaps the balancer when that set changes. Nothing here touches a
//! socket: the proxy reports outcomes, health checkers report probe results.

mod pool;
mod server;
pub mod state;
mod state_cell;
pub mod stick_table;

pub use pool::Pool;
pub use server::{AdminState, InFlight, LoadWatch, Server};
pub use state::{CheckRecord, Transition};
pub use state_cell::HealthState;
pub use stick_table::StickTable;

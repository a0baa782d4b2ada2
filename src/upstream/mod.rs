//! Upstream servers and the pools that group them.
//!
//! A [`Server`] is one backend address with its live state in atomics (requests in flight,
//! latency EWMA, health). A [`Pool`] owns its servers and a balancer built over the ones in
//! rotation; it rebuilds and swaps the balancer when that set changes. Nothing here touches a
//! socket: the proxy reports outcomes, health checkers report probe results.

pub mod health;
mod pool;
mod server;
mod server_health;
pub mod stick_table;

pub use health::{CheckRecord, Transition};
pub use pool::Pool;
pub use server::{AdminState, InFlight, LoadWatch, Server};
pub use server_health::HealthState;
pub use stick_table::StickTable;

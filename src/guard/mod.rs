//! What protects the servers behind Switchyard: access control by client address
//! (`acl.rs`), connection limits per listener and per client (`conns.rs`), rate limits keyed
//! by client, header or cookie (`rate.rs`, GCRA in a fixed-size table) and request rules
//! that refuse (`rules.rs`). Each is a plain value checked by the proxy where the request or
//! connection is; none does I/O or takes a lock per request.

pub mod acl;
pub mod conns;
pub mod rate;
pub mod rules;

pub use acl::Acl;
pub use conns::{ConnLimits, ConnPermit, ConnStats, Refused};
pub use rate::{Decision, Rate, RateLimiter};
pub use rules::RequestRule;

//! What Switchyard tells about itself: the access log, and the Prometheus text format the
//! admin listener's `/metrics` is written in.

pub mod access;
pub mod histogram;
pub mod line;
pub mod metrics;
pub mod sink;
pub mod stream;

//! What Switchyard tells about itself: the access log (and, later, metrics).

pub mod access;

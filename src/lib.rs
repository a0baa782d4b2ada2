//! Switchyard: a software load balancer for L4 (TCP, UDP) and L7 (HTTP) traffic.
//!
//! The crate is a library with a thin binary (`src/main.rs`). A TOML file goes through
//! [`config`] (parse, validate, every error at once) into a [`config::Plan`]; [`runtime`]
//! turns the plan into listeners and pools; requests then flow through [`proxy`], which asks
//! a pool's [`balance::Balancer`] for a server from [`upstream`]. See `DESIGN.md` beside
//! the repository for the map.
#![deny(unsafe_code)]

pub mod admin;
pub mod balance;
pub mod cluster;
pub mod config;
pub mod demo;
pub mod discovery;
pub mod error;
pub mod explain;
pub mod guard;
pub mod import;
pub mod observe;
pub mod plan;
pub mod probe;
pub mod proxy;
pub mod runtime;
pub mod shutdown;
pub mod simulate;
pub mod tls;
pub mod upstream;

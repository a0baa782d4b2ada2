//! The config tests, kept apart from the reader so that they outlive any rewrite of it: the
//! test bodies call only the public entry points (`config::load_str`, the errors' `Display`)
//! and the few thin wrappers below, which keep the names the tests were written against.

mod algorithm;
mod duration;
mod failover;
mod l4;
mod syntax;
mod validate;

use super::{ConfigErrors, Plan};

/// `config::load_str`, under the name the tests use.
pub(crate) fn validate(src: &str, file: &str) -> Result<Plan, ConfigErrors> {
    super::load_str(src, file)
}

pub(crate) use super::validate::{did_you_mean, help, parse_expect, read};

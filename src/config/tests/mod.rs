//! The config tests, kept apart from the reader so that they outlive any rewrite of it: the
//! test bodies call only the public entry points (`config::load_str`, the errors' `Display`)
//! and the few thin wrappers below, which keep the names the tests were written against.

mod algorithm;
mod dns;
mod duration;
mod failover;
mod l4;
mod live;
mod log;
mod protect;
mod syntax;
mod validate;

use std::ops::Range;

use super::read::Kind;
use super::{Algorithm, ConfigErrors, Plan};

pub(crate) use super::read::parse_expect;

/// `config::load_str`, under the name the tests use.
pub(crate) fn validate(src: &str, file: &str) -> Result<Plan, ConfigErrors> {
    super::load_str(src, file)
}

/// The help for an unknown `algorithm`.
pub(crate) fn help(written: &str) -> String {
    super::suggest::algorithm(written, Algorithm::NAMES)
}

/// For "unknown field `lisen`, expected one of `name`, `listen`, …": the allowed key closest
/// to the typo.
pub(crate) fn did_you_mean(message: &str) -> Option<String> {
    let mut quoted = message.split('`').skip(1).step_by(2);
    let typo = quoted.next()?;
    let allowed: Vec<&str> = quoted.collect();
    super::suggest::nearest(typo, &allowed).map(str::to_string)
}

/// What the tests of TOML shape look at: the shape errors alone (syntax, unknown keys, wrong
/// types), the listeners as far as they could be read, and each unknown key with the key it
/// probably means.
pub(crate) struct ShapeRead {
    pub errors: Vec<ShapeError>,
    /// `None` after a syntax error.
    pub file: Option<File>,
    pub cuts: Vec<UnknownKey>,
}

#[derive(Debug)]
pub(crate) struct ShapeError {
    pub span: Range<usize>,
    pub message: String,
    pub help: String,
}

pub(crate) struct File {
    pub listener: Vec<Entry>,
}

/// A listener as read: its pool and where its `listen` is, if written.
pub(crate) struct Entry {
    pub pool: Option<String>,
    pub listen: Option<String>,
}

impl Entry {
    pub(crate) fn get_ref(&self) -> &Entry {
        self
    }
}

/// An unknown key and the key it probably means.
pub(crate) struct UnknownKey {
    pub key: String,
    pub suggested: Option<String>,
}

/// Read `src`, keeping what the shape tests look at.
pub(crate) fn read(src: &str) -> ShapeRead {
    let (plan, errors) = super::read::read(src, "t.toml");
    // Byte offset of a 1-based line and column.
    let offset = |line: usize, column: usize| {
        let start: usize = src.split_inclusive('\n').take(line - 1).map(str::len).sum();
        let rest = &src[start..];
        start
            + rest
                .char_indices()
                .nth(column - 1)
                .map_or(rest.len(), |(i, _)| i)
    };
    let errors: Vec<ShapeError> = errors
        .into_iter()
        .filter(|(kind, _)| *kind == Kind::Shape)
        .map(|(_, e)| {
            let at = offset(e.line, e.column);
            ShapeError {
                span: at..at,
                message: e.message,
                help: e.help.unwrap_or_default(),
            }
        })
        .collect();
    let cuts = errors
        .iter()
        .filter_map(|e| {
            let key = e
                .message
                .strip_prefix("unknown field `")?
                .split('`')
                .next()?;
            let suggested = e
                .help
                .strip_prefix("did you mean `")
                .and_then(|h| h.strip_suffix("`?"));
            Some(UnknownKey {
                key: key.into(),
                suggested: suggested.map(str::to_string),
            })
        })
        .collect();
    let listener = plan
        .listeners
        .into_iter()
        .map(|l| Entry {
            pool: l.default_pool,
            listen: l.origin,
        })
        .collect();
    let file = toml::de::DeTable::parse(src)
        .is_ok()
        .then_some(File { listener });
    ShapeRead { errors, file, cuts }
}

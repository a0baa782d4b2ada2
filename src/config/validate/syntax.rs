//! Reading the TOML into the file structs while collecting every shape error (unknown key,
//! wrong type, missing key), not only the first one serde stops at.
//!
//! The document is parsed once into toml's span-keeping tree (recovering past syntax
//! errors). Then it is deserialized; when that fails (an unknown key, a wrong type, a missing
//! key), the error is recorded, the entry it points at is cut from the tree, and the rest is
//! deserialized again, until it goes through or nothing more can be cut.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use super::super::file::ConfigFile;

/// One problem serde found: its place, message and the fix to suggest.
pub(crate) struct ShapeError {
    pub span: Range<usize>,
    pub message: String,
    pub help: String,
}

/// At most this many shape errors are collected from one file.
const MAX_ERRORS: usize = 100;

pub(crate) fn read(src: &str) -> Result<ConfigFile, Vec<ShapeError>> {
    let (mut doc, syntax) = DeTable::parse_recoverable(src);
    if let Some(first) = syntax.first() {
        // Past the first syntax error, what the parser recovers is guesswork: one error that
        // is surely right beats a cascade of doubtful ones.
        return Err(vec![shape_error(first)]);
    }
    let mut errors = Vec::new();
    while errors.len() < MAX_ERRORS {
        let de = toml::de::Deserializer::from(doc.clone());
        match ConfigFile::deserialize(de) {
            Ok(file) if errors.is_empty() => return Ok(file),
            Ok(_) => break,
            Err(e) => {
                let error = shape_error(&e);
                let at = error.span.start;
                errors.push(error);
                if !prune(doc.get_mut(), at) {
                    break;
                }
            }
        }
    }
    Err(errors)
}

fn shape_error(e: &toml::de::Error) -> ShapeError {
    let message = e.message().trim().to_string();
    let help = if message.starts_with("unknown field") {
        match did_you_mean(&message) {
            Some(near) => {
                return ShapeError {
                    span: e.span().unwrap_or(0..0),
                    help: format!("did you mean `{near}`?"),
                    message,
                };
            }
            None => "remove the key or fix its spelling (the keys allowed here are listed above)",
        }
    } else if message.contains("duplicate key") {
        "each name may appear once; rename or merge the two"
    } else if message.starts_with("missing field") {
        "add the key; it has no default"
    } else if message.starts_with("invalid type") {
        "write a value of the type named above, e.g. a number without quotes or a string in quotes"
    } else {
        "see the configuration reference in docs/config.md"
    };
    ShapeError {
        span: e.span().unwrap_or(0..0),
        message,
        help: help.to_string(),
    }
}

/// For "unknown field `lisen`, expected one of `name`, `listen`, …": the allowed key closest
/// to the typo, when it is close (at most two edits, and fewer than half the letters).
fn did_you_mean(message: &str) -> Option<String> {
    let mut quoted = message.split('`').skip(1).step_by(2);
    let typo = quoted.next()?;
    quoted
        .map(|k| (edit_distance(typo, k), k))
        .filter(|(d, _)| *d <= 2 && *d * 2 < typo.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.to_string())
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cur = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb)).min(row[j] + 1).min(cur + 1);
            prev = cur;
        }
    }
    row[b.len()]
}

fn covers(span: &Range<usize>, at: usize) -> bool {
    span.start <= at && (at < span.end || span.start == span.end)
}

/// Cut the innermost entry at byte `at` from `table`. Returns whether something was cut.
///
/// The whole tree is searched: the element of an array of tables spans only its
/// `[[header]]`, not the keys below it, so spans cannot guide the descent.
fn prune(table: &mut DeTable<'_>, at: usize) -> bool {
    let mut cut: Option<String> = None;
    for (key, value) in table.iter_mut() {
        if covers(&key.span(), at) {
            cut = Some(key.get_ref().to_string());
            break;
        }
        let deeper = match value.get_mut() {
            DeValue::Table(t) => prune(t, at),
            DeValue::Array(a) => prune_array(a, at),
            _ => false,
        };
        if deeper {
            return true;
        }
        if covers(&value.span(), at) {
            cut = Some(key.get_ref().to_string());
            break;
        }
    }
    match cut {
        Some(key) => table.remove(key.as_str()).is_some(),
        None => false,
    }
}

fn prune_array(array: &mut DeArray<'_>, at: usize) -> bool {
    let mut index = None;
    for (i, v) in array.as_mut().iter_mut().enumerate() {
        let deeper = match v.get_mut() {
            DeValue::Table(t) => prune(t, at),
            DeValue::Array(a) => prune_array(a, at),
            _ => false,
        };
        if deeper {
            return true;
        }
        if covers(&v.span(), at) {
            index = Some(i);
            break;
        }
    }
    let Some(index) = index else {
        return false;
    };
    let kept: Vec<Spanned<DeValue<'_>>> = array
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != index)
        .map(|(_, v)| v.clone())
        .collect();
    let mut rebuilt = DeArray::new();
    for v in kept {
        rebuilt.push(v);
    }
    *array = rebuilt;
    true
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_key() {
        let m = "unknown field `lisen`, expected one of `name`, `listen`, `pool`";
        assert_eq!(did_you_mean(m).as_deref(), Some("listen"));
        let m = "unknown field `wieght`, expected one of `addr`, `weight`";
        assert_eq!(did_you_mean(m).as_deref(), Some("weight"));
        let m = "unknown field `colour`, expected one of `addr`, `weight`";
        assert_eq!(did_you_mean(m), None);
    }

    #[test]
    fn every_shape_error_is_collected() {
        let src = "wokers = 2\n[[listener]]\nlisen = \"x\"\npool = \"p\"\n[pool.p]\nkeepalive = \"3\"\nservers = [ { addr = \"a:1\", wieght = 1 } ]\n";
        let errors = read(src).expect_err("errors");
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(errors.len(), 5, "{messages:#?}");
        for part in [
            "`wokers`",
            "`lisen`",
            "missing field `listen`",
            "string \"3\"",
            "`wieght`",
        ] {
            assert!(
                messages.iter().any(|m| m.contains(part)),
                "{part} not in {messages:#?}"
            );
        }
    }
}

//! Reading the TOML into the file structs while collecting every shape error (unknown key,
//! wrong type, missing key), not only the first one serde stops at.
//!
//! The document is parsed once into toml's span-keeping tree (recovering past syntax
//! errors). Then it is deserialized; when that fails (an unknown key, a wrong type), the
//! error is recorded, the one key it points at is cut from the tree (an array element, when
//! the element itself has the wrong type), and the rest is deserialized again, until it goes
//! through or nothing more can be cut. The rest of the table keeps its keys, so they are
//! checked in the same run. Keys an entry cannot do without (`listen`, `addr`, …) are
//! `Option`s in `file.rs` and reported by `validate.rs`, so a missing one does not cut the
//! whole entry either. What goes through is handed on with the list of cuts, so
//! `validate.rs` knows where a key may be missing only because it was misspelt.

use std::ops::Range;

use serde::Deserialize;
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use super::super::file::ConfigFile;
use super::wrong_type::{self, Found};

/// One problem serde found: its place, message and the fix to suggest.
#[derive(Debug)]
pub(crate) struct ShapeError {
    pub span: Range<usize>,
    pub message: String,
    pub help: String,
}

/// An entry cut from the document so the rest could be read: `key` of the table spanning
/// `table` (`None`: the top level), the whole key or one element of the array under it.
///
/// Validation asks these before a check that reasons about a key being absent ("has no
/// servers", "sends traffic nowhere", "timeout is longer than the default interval"): in a
/// table that lost an entry, the key may be there, misspelt, so such a check stays quiet.
#[derive(Debug, Clone)]
pub(crate) struct Cut {
    pub table: Option<Range<usize>>,
    pub key: String,
    /// The keys from the top level to `key`, `[]` for an array element (`pool`, `web`).
    pub path: Vec<String>,
    /// The key this one was probably meant to be ("did you mean `listen`?").
    pub suggested: Option<String>,
    /// What the cut entry held, to say what to write instead.
    pub found: Found,
}

/// What could be read: the file with the bad entries cut (`None` when nothing could be
/// read), the shape errors, and what was cut.
pub(crate) struct Read {
    pub file: Option<ConfigFile>,
    pub errors: Vec<ShapeError>,
    pub cuts: Vec<Cut>,
}

/// At most this many shape errors are collected from one file.
const MAX_ERRORS: usize = 100;

pub(crate) fn read(src: &str) -> Read {
    let (mut doc, syntax) = DeTable::parse_recoverable(src);
    // The earliest in the file: the parser may find a later error first (an unterminated
    // string swallows the lines after it, and what breaks there is reported before it).
    if let Some(first) = syntax
        .iter()
        .min_by_key(|e| e.span().map_or(usize::MAX, |s| s.start))
    {
        // Past the first syntax error, what the parser recovers is guesswork: one error that
        // is surely right beats a cascade of doubtful ones.
        return Read {
            file: None,
            errors: vec![shape_error(first)],
            cuts: Vec::new(),
        };
    }
    let mut errors = Vec::new();
    let mut cuts = Vec::new();
    let mut file = None;
    while errors.len() < MAX_ERRORS {
        let de = toml::de::Deserializer::from(doc.clone());
        match ConfigFile::deserialize(de) {
            Ok(f) => {
                file = Some(f);
                break;
            }
            Err(e) => {
                let mut error = shape_error(&e);
                let at = error.span.start;
                let Some(mut cut) = prune(doc.get_mut(), None, &mut Vec::new(), at) else {
                    errors.push(error);
                    break;
                };
                cut.suggested = error
                    .help
                    .strip_prefix("did you mean `")
                    .and_then(|h| h.strip_suffix("`?"))
                    .map(str::to_string);
                if let Some((message, help)) = wrong_type::explain(&error.message, &cut) {
                    error.message = message;
                    error.help = help;
                }
                errors.push(error);
                cuts.push(cut);
            }
        }
    }
    Read { file, errors, cuts }
}

fn shape_error(e: &toml::de::Error) -> ShapeError {
    let message = e.message().trim().to_string();
    let help = if message.starts_with("unknown field") {
        if let Some(help) = other_spelling(&message) {
            return ShapeError {
                span: e.span().unwrap_or(0..0),
                help,
                message,
            };
        }
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
    } else if message.contains("basic string") || message.contains("literal string") {
        "close the string with its quote on the same line (a \\\" inside needs a backslash)"
    } else if message.starts_with("unclosed") {
        "close it with the bracket named above"
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

/// nginx's and HAProxy's names for keys that are spelt otherwise here, when the key they
/// mean is allowed where they were written. A help starting "did you mean `k`?" also tells
/// the validator that `k` was meant (so "missing `k`" is not said twice).
fn other_spelling(message: &str) -> Option<String> {
    let mut quoted = message.split('`').skip(1).step_by(2);
    let written = quoted.next()?;
    let allowed: Vec<&str> = quoted.collect();
    let meant = match written {
        "address" | "server" | "host" if allowed.contains(&"addr") => "addr",
        "balance" | "lb_method" | "lb_policy" if allowed.contains(&"algorithm") => "algorithm",
        "proxy_timeout" | "timeout_client" | "timeout" if allowed.contains(&"idle_timeout") => {
            "idle_timeout"
        }
        "maxconn" if allowed.contains(&"max_connections") => "max_connections",
        "proxy_connect_timeout" | "proxy_read_timeout" | "proxy_send_timeout"
            if allowed.contains(&"timeouts") =>
        {
            let which = written
                .trim_start_matches("proxy_")
                .trim_end_matches("_timeout");
            return Some(format!(
                "did you mean `timeouts`? nginx's {written} is timeouts = {{ {which} = \"60s\" }} here"
            ));
        }
        "timeouts" | "proxy_connect_timeout" | "proxy_read_timeout" | "proxy_send_timeout" => {
            return Some(
                "timeouts are set per pool: timeouts = { connect = \"5s\", read = \"60s\", send = \"60s\" } in [pool.NAME] (a slow route gets a pool of its own)".into(),
            );
        }
        _ => return None,
    };
    Some(format!("did you mean `{meant}`?"))
}

/// For "unknown field `lisen`, expected one of `name`, `listen`, …": the allowed key closest
/// to the typo, when it is close (at most two edits, and fewer than half the letters).
pub(crate) fn did_you_mean(message: &str) -> Option<String> {
    let mut quoted = message.split('`').skip(1).step_by(2);
    let typo = quoted.next()?;
    quoted
        .map(|k| (edit_distance(typo, k), k))
        .filter(|(d, _)| *d <= 2 && *d * 2 < typo.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k.to_string())
}

pub(super) fn edit_distance(a: &str, b: &str) -> usize {
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

/// Cut the innermost entry at byte `at` from `table` (spanning `span`, `None` at the top
/// level; `path` leads to it). Returns what was cut.
///
/// The whole tree is searched: the element of an array of tables spans only its
/// `[[header]]`, not the keys below it, so spans cannot guide the descent.
fn prune(
    table: &mut DeTable<'_>,
    span: Option<Range<usize>>,
    path: &mut Vec<String>,
    at: usize,
) -> Option<Cut> {
    let mut cut: Option<String> = None;
    for (key, value) in table.iter_mut() {
        if covers(&key.span(), at) {
            cut = Some(key.get_ref().to_string());
            break;
        }
        let value_span = value.span();
        path.push(key.get_ref().to_string());
        let deeper = match value.get_mut() {
            DeValue::Table(t) => prune(t, Some(value_span.clone()), path, at),
            DeValue::Array(a) => prune_array(a, span.clone(), path, at),
            _ => None,
        };
        path.pop();
        if deeper.is_some() {
            return deeper;
        }
        if covers(&value_span, at) {
            cut = Some(key.get_ref().to_string());
            break;
        }
    }
    let key = cut?;
    let removed = table.remove(key.as_str())?;
    let mut path = path.clone();
    path.push(key.clone());
    Some(Cut {
        table: span,
        key,
        path,
        suggested: None,
        found: Found::of(removed.get_ref()),
    })
}

/// Like [`prune`] for the array under `path`'s last key, in the table spanning `holder`.
fn prune_array(
    array: &mut DeArray<'_>,
    holder: Option<Range<usize>>,
    path: &mut Vec<String>,
    at: usize,
) -> Option<Cut> {
    let mut index = None;
    for (i, v) in array.as_mut().iter_mut().enumerate() {
        let span = v.span();
        path.push("[]".into());
        let deeper = match v.get_mut() {
            DeValue::Table(t) => prune(t, Some(span.clone()), path, at),
            DeValue::Array(a) => prune_array(a, holder.clone(), path, at),
            _ => None,
        };
        path.pop();
        if deeper.is_some() {
            return deeper;
        }
        if covers(&span, at) {
            index = Some(i);
            break;
        }
    }
    let index = index?;
    let found = Found::of(array[index].get_ref());
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
    let mut path = path.clone();
    path.push("[]".into());
    Some(Cut {
        table: holder,
        key: path[path.len() - 2].clone(),
        path,
        suggested: None,
        found,
    })
}

//! Helpers shared by the import tests: the fixtures of tests/import/, filling in their
//! placeholders, importing with `check` passing, finding a note of the report.
#![allow(dead_code)]

use std::path::Path;

use switchyard::import::{self, Imported};

pub const FIXTURES: &str = "tests/import";

/// `text` with each `from` replaced by its `to`.
pub fn fill(text: &str, map: &[(String, String)]) -> String {
    map.iter().fold(text.to_string(), |t, (from, to)| {
        t.replace(from.as_str(), to)
    })
}

pub fn fixture(path: &str) -> String {
    std::fs::read_to_string(Path::new(FIXTURES).join(path)).unwrap()
}

/// Import files, and insist that Switchyard's `check` accepts the result.
pub fn import_ok(files: &[&Path]) -> Imported {
    let imported = import::import(files, None, "imported.toml").unwrap_or_else(|e| panic!("{e}"));
    if let Err(e) = &imported.check {
        panic!("check rejects the import:\n{e}\n---\n{}", imported.toml);
    }
    imported
}

pub fn reported(i: &Imported, line: usize, words: &str) -> bool {
    i.notes
        .iter()
        .any(|n| n.at.line == line && (n.directive.contains(words) || n.why.contains(words)))
}

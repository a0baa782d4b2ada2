//! Where the reader's findings go: every error (with its line and column), and the position
//! of every value read, by its path (`pool.web.tls`, `listener.0.listen`), so that the checks
//! across listeners and pools (`cross.rs`) can run on the typed [`Plan`](crate::config::Plan)
//! and still point at the line to change.

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::ops::Range;
use std::path::PathBuf;

use crate::config::{ConfigError, Origin};

/// What kind of mistake an error is. Of two errors at one place, the shape one comes first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Kind {
    /// TOML syntax, an unknown key, or a value of the wrong TOML type.
    Shape,
    /// A value of the right type that breaks a rule (out of range, no such pool, ...).
    Rule,
}

/// The errors and positions found in one source text.
pub(crate) struct Report<'s> {
    src: &'s str,
    file: &'s str,
    errors: RefCell<Vec<(Kind, ConfigError)>>,
    positions: RefCell<HashMap<String, Range<usize>>>,
}

impl<'s> Report<'s> {
    pub(crate) fn new(src: &'s str, file: &'s str) -> Self {
        Report {
            src,
            file,
            errors: RefCell::default(),
            positions: RefCell::default(),
        }
    }

    /// Record an error at `span` (an empty help is none).
    pub(crate) fn error(&self, kind: Kind, span: Range<usize>, message: String, help: String) {
        let (line, column) = self.line_column(span.start);
        self.errors.borrow_mut().push((
            kind,
            ConfigError {
                file: self.file.to_string(),
                line,
                column,
                message,
                help: (!help.is_empty()).then_some(help),
            },
        ));
    }

    /// Remember where the value at `path` is written.
    pub(crate) fn mark(&self, path: String, span: Range<usize>) {
        self.positions.borrow_mut().insert(path, span);
    }

    /// Where the value at `path` is written, if it was read with the right type.
    pub(crate) fn at(&self, path: &str) -> Option<Range<usize>> {
        self.positions.borrow().get(path).cloned()
    }

    /// Where a byte offset is (`file:line:column` as it prints), for errors found after
    /// reading (a port taken, a name that does not resolve).
    pub(crate) fn origin(&self, offset: usize) -> Origin {
        let (line, column) = self.line_column(offset);
        let file = self.file.to_string();
        Origin { file, line, column }
    }

    /// A path as written in the file, relative to the file's own directory.
    pub(crate) fn path(&self, written: &str) -> PathBuf {
        let p = std::path::Path::new(written);
        match std::path::Path::new(self.file).parent() {
            Some(dir) if p.is_relative() => dir.join(p),
            _ => p.to_path_buf(),
        }
    }

    /// 1-based line and column (in characters) of a byte offset.
    fn line_column(&self, offset: usize) -> (usize, usize) {
        let before = &self.src[..offset.min(self.src.len())];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        (line, before[line_start..].chars().count() + 1)
    }

    /// Every error, in file order, each once.
    pub(crate) fn errors(self) -> Vec<(Kind, ConfigError)> {
        let mut errors = self.errors.into_inner();
        errors.sort_by_key(|(kind, e)| (e.line, e.column, *kind));
        let mut seen = HashSet::new();
        errors.retain(|(_, e)| seen.insert((e.line, e.column, e.message.clone())));
        errors
    }
}

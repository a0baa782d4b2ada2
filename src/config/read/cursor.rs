//! A cursor over one table of the parsed TOML tree: typed accessors that record their own
//! errors, so that reading a key is one line (`t.set("keepalive", &mut p.keepalive, int(0,
//! 100_000))`), and [`Table::finish`], which reports every key that was not read as unknown,
//! with a did-you-mean.
//!
//! The keys a table allows are the keys its reader reads, in the order it reads them (that
//! order is the list an unknown-key error gives), so a reader reads every key of its table,
//! whatever the other keys say. A check about a key being absent ("has no listen address")
//! goes through [`Table::absent`]: it is dropped when the key is there misspelt (`lisen`) or
//! written wrong, whose own error already says it.

use std::cell::{Cell, RefCell};
use std::ops::Range;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use super::report::{Kind, Report};
use super::value::{Bad, Ty, Val};
use crate::config::suggest;

/// One table being read.
pub(crate) struct Table<'a> {
    report: &'a Report<'a>,
    map: &'a DeTable<'a>,
    span: Range<usize>,
    /// Where the table is: `pool.web.health`, `listener.0`; empty at the top level.
    path: String,
    /// The keys read so far, in order: the keys this table allows.
    read: RefCell<Vec<String>>,
    /// The keys written with a value that could not be read.
    bad: RefCell<Vec<String>>,
    /// Errors about absent keys, for [`Table::finish`] to report.
    absent: RefCell<Vec<Absent>>,
    finished: Cell<bool>,
}

struct Unknown {
    span: Range<usize>,
    message: String,
    near: Option<String>,
    help: String,
}

struct Absent {
    keys: Vec<String>,
    span: Range<usize>,
    message: String,
    help: String,
}

impl<'a> Table<'a> {
    /// The top level of the document.
    pub(crate) fn root(report: &'a Report<'a>, doc: &'a Spanned<DeTable<'a>>) -> Self {
        Table::new(report, doc.get_ref(), doc.span(), String::new())
    }

    fn new(report: &'a Report<'a>, map: &'a DeTable<'a>, span: Range<usize>, path: String) -> Self {
        Table {
            report,
            map,
            span,
            path,
            read: RefCell::default(),
            bad: RefCell::default(),
            absent: RefCell::default(),
            finished: Cell::new(false),
        }
    }

    /// Where the table is written (its `[header]`, or the inline table).
    pub(crate) fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    pub(crate) fn report(&self) -> &'a Report<'a> {
        self.report
    }

    fn child(&self, key: &str) -> String {
        match self.path.is_empty() {
            true => key.to_string(),
            false => format!("{}.{key}", self.path),
        }
    }

    /// Whether `key` is written, whatever its value.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Where the value of `key` is written, whatever it is.
    pub(crate) fn at(&self, key: &str) -> Option<Range<usize>> {
        self.map.get(key).map(Spanned::span)
    }

    /// Where the value at `path` below this table (`"tls"`, `"health.type"`) is written, if
    /// it was read with the right type.
    pub(crate) fn pos(&self, path: &str) -> Option<Range<usize>> {
        self.report.at(&self.child(path))
    }

    /// Where the first table of the array of tables under `key` is written (an array of
    /// tables is pointed at by its first entry).
    pub(crate) fn first(&self, key: &str) -> Option<Range<usize>> {
        let first = self.map.get(key)?.get_ref().as_array()?.first()?;
        first.get_ref().is_table().then(|| first.span())
    }

    /// The string written for `key`, if it is one.
    pub(crate) fn text(&self, key: &str) -> Option<&'a str> {
        self.map.get(key).and_then(|v| v.get_ref().as_str())
    }

    /// How many elements the array written for `key` has, if it is one.
    pub(crate) fn count(&self, key: &str) -> Option<usize> {
        self.map
            .get(key)
            .and_then(|v| v.get_ref().as_array())
            .map(|a| a.len())
    }

    /// The keys of the table under `key`, without reading it.
    pub(crate) fn table_keys(&self, key: &str) -> Vec<&'a str> {
        let table = self.map.get(key).and_then(|v| v.get_ref().as_table());
        table.map_or_else(Vec::new, |t| {
            t.keys().map(|k| k.get_ref().as_ref()).collect()
        })
    }

    /// Every key written, in order.
    pub(crate) fn keys(&self) -> Vec<&'a str> {
        self.map.keys().map(|k| k.get_ref().as_ref()).collect()
    }

    /// The value of `key`, and the key counted as allowed here.
    fn take<'s>(&'s self, key: &'s str) -> Option<Val<'s>> {
        if !self.read.borrow().iter().any(|k| k == key) {
            self.read.borrow_mut().push(key.to_string());
        }
        let v = self.map.get(key)?;
        Some(Val {
            report: self.report,
            key,
            value: v.get_ref(),
            span: v.span(),
            path: &self.path,
            element: false,
        })
    }

    /// `key` read with `p`: `None` when it is not written, `Err` when it could not be read
    /// (reported).
    fn read_with<T>(
        &self,
        key: &str,
        p: impl Fn(&Val<'_>) -> Result<T, Bad>,
    ) -> Option<Result<T, ()>> {
        let v = self.take(key)?;
        let got = p(&v);
        if !matches!(got, Err(Bad::Type(_))) {
            self.report.mark(self.child(key), v.span.clone());
        }
        Some(got.map_err(|bad| {
            self.bad.borrow_mut().push(key.to_string());
            v.report(bad)
        }))
    }

    /// The value of `key` read with `p`, or `None` when it is not written or could not be
    /// read (reported).
    pub(crate) fn get<T>(&self, key: &str, p: impl Fn(&Val<'_>) -> Result<T, Bad>) -> Option<T> {
        self.read_with(key, p)?.ok()
    }

    /// Set `field` to the value of `key` read with `p`, when it is written and can be read.
    /// Returns whether the field holds what the file means: false when the value was wrong.
    pub(crate) fn set<T>(
        &self,
        key: &str,
        field: &mut T,
        p: impl Fn(&Val<'_>) -> Result<T, Bad>,
    ) -> bool {
        match self.read_with(key, p) {
            Some(Ok(v)) => *field = v,
            Some(Err(())) => return false,
            None => {}
        }
        true
    }

    /// A key the table cannot do without: its value, or `None` and, when it is not written,
    /// `message` at the table.
    pub(crate) fn need<T>(
        &self,
        key: &str,
        p: impl Fn(&Val<'_>) -> Result<T, Bad>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) -> Option<T> {
        let found = self.read_with(key, p);
        if found.is_none() {
            self.absent(&[key], self.span(), message, help);
        }
        found?.ok()
    }

    /// Read only the TOML type of `key` (read with `p`), for a key that does not apply here
    /// and whose value is not checked: whether it is written with the right type.
    pub(crate) fn check<T>(&self, key: &str, p: impl Fn(&Val<'_>) -> Result<T, Bad>) -> bool {
        let Some(v) = self.take(key) else {
            return false;
        };
        // The parser runs on its own: what it finds inside the value is not reported.
        let quiet = Report::new("", "");
        match p(&Val {
            report: &quiet,
            ..v.clone()
        }) {
            Err(Bad::Type(ty)) => {
                self.bad.borrow_mut().push(key.to_string());
                v.report(Bad::Type(ty));
                false
            }
            _ => true,
        }
    }

    /// The table under `key` (a `[section]` or an inline table).
    pub(crate) fn table(&self, key: &str) -> Option<Table<'a>> {
        let v = self.take(key)?;
        let Some(DeValue::Table(t)) = self.map.get(key).map(Spanned::get_ref) else {
            self.bad.borrow_mut().push(key.to_string());
            v.report(Bad::Type(Ty::Table));
            return None;
        };
        self.report.mark(self.child(key), v.span.clone());
        Some(Table::new(self.report, t, v.span, self.child(key)))
    }

    /// The tables of the array under `key` (`[[listener]]`, `servers = [{...}]`), each with
    /// its index in the array.
    pub(crate) fn tables(&self, key: &str) -> Vec<(usize, Table<'a>)> {
        let Some(v) = self.take(key) else {
            return Vec::new();
        };
        let Some(DeValue::Array(items)) = self.map.get(key).map(Spanned::get_ref) else {
            self.bad.borrow_mut().push(key.to_string());
            v.report(Bad::Type(Ty::Array));
            return Vec::new();
        };
        self.report.mark(self.child(key), v.span.clone());
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            match item.get_ref() {
                DeValue::Table(t) => {
                    let path = format!("{}.{i}", self.child(key));
                    self.report.mark(path.clone(), item.span());
                    out.push((i, Table::new(self.report, t, item.span(), path)));
                }
                _ => {
                    self.bad.borrow_mut().push(key.to_string());
                    v.element(item).report(Bad::Type(Ty::Table));
                }
            }
        }
        out
    }

    /// An error about this table's values.
    pub(crate) fn error(
        &self,
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.report
            .error(Kind::Rule, span, message.into(), help.into());
    }

    /// An error about `keys` being absent, reported by [`Table::finish`] unless one of them
    /// is written wrong or misspelt (its own error says so already).
    pub(crate) fn absent(
        &self,
        keys: &[&str],
        span: Range<usize>,
        message: impl Into<String>,
        help: impl Into<String>,
    ) {
        self.absent.borrow_mut().push(Absent {
            keys: keys.iter().map(|k| k.to_string()).collect(),
            span,
            message: message.into(),
            help: help.into(),
        });
    }

    /// Each key written but not read: its place, the message, the key it probably means and
    /// the help.
    fn unknown(&self) -> Vec<Unknown> {
        let read = self.read.borrow();
        let allowed: Vec<&str> = read.iter().map(String::as_str).collect();
        let unread = self
            .map
            .keys()
            .filter(|k| !allowed.contains(&k.get_ref().as_ref()));
        unread
            .map(|k| {
                let (near, help) = suggest::key(k.get_ref(), &allowed);
                let message = unknown_key(k.get_ref(), &allowed);
                Unknown {
                    span: k.span(),
                    message,
                    near,
                    help,
                }
            })
            .collect()
    }

    /// Whether a key written but not read probably means `key` (once every key is read).
    pub(crate) fn meant(&self, key: &str) -> bool {
        self.unknown()
            .iter()
            .any(|u| u.near.as_deref() == Some(key))
    }

    /// Report each key written but not read as unknown, with the key it probably means, and
    /// the errors about absent keys that no misspelt key explains.
    pub(crate) fn finish(&self) {
        let mut meant = self.bad.borrow().clone();
        for u in self.unknown() {
            meant.extend(u.near);
            self.report.error(Kind::Shape, u.span, u.message, u.help);
        }
        for a in self.absent.take() {
            if !a.keys.iter().any(|k| meant.iter().any(|m| m == k)) {
                self.report.error(Kind::Rule, a.span, a.message, a.help);
            }
        }
        self.finished.set(true);
    }
}

impl Drop for Table<'_> {
    fn drop(&mut self) {
        // A table read without `finish` would let unknown keys pass silently.
        debug_assert!(
            self.finished.get() || std::thread::panicking(),
            "[{}] was read without finish()",
            self.path
        );
    }
}

/// "unknown field `x`, expected one of `a`, `b`, `c`" (serde's words, which `check` has
/// always printed).
fn unknown_key(key: &str, allowed: &[&str]) -> String {
    let quoted: Vec<String> = allowed.iter().map(|k| format!("`{k}`")).collect();
    match quoted.as_slice() {
        [] => format!("unknown field `{key}`, there are no fields"),
        [one] => format!("unknown field `{key}`, expected {one}"),
        [a, b] => format!("unknown field `{key}`, expected {a} or {b}"),
        all => format!("unknown field `{key}`, expected one of {}", all.join(", ")),
    }
}

//! A cursor over one table of the parsed TOML tree: typed accessors that record their own
//! errors, so that reading a key is one line (`t.set("keepalive", &mut p.keepalive, int(0,
//! 100_000))`, or `set!(t, p.keepalive, int(0, 100_000))` where the key is the field's
//! name), and [`Table::finish`], which reports every key that was not read as unknown, with
//! a did-you-mean.
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

/// An error to report: where, what is wrong, and what to write instead.
type Error = (Range<usize>, String, String);

/// One table being read.
pub(crate) struct Table<'a> {
    report: &'a Report<'a>,
    map: &'a DeTable<'a>,
    span: Range<usize>,
    /// Where the table is: `pool.web.health`, `listener.0`; empty at the top level.
    path: String,
    /// Put before a key where a message names its value (`timeouts.`).
    prefix: &'static str,
    /// The keys read so far, in order: the keys this table allows.
    read: RefCell<Vec<String>>,
    /// The keys written with a value that could not be read.
    bad: RefCell<Vec<String>>,
    /// Errors about absent keys (the keys, and the error), for [`Table::finish`].
    absent: RefCell<Vec<(Vec<String>, Error)>>,
    finished: Cell<bool>,
}

impl<'a> Table<'a> {
    /// The top level of the document.
    pub(crate) fn root(report: &'a Report<'a>, doc: &'a Spanned<DeTable<'a>>) -> Self {
        Table::new(report, doc.get_ref(), doc.span(), String::new())
    }

    fn new(report: &'a Report<'a>, map: &'a DeTable<'a>, span: Range<usize>, path: String) -> Self {
        let (read, bad, absent) = Default::default();
        let finished = Cell::new(false);
        Table {
            report,
            map,
            span,
            path,
            prefix: "",
            read,
            bad,
            absent,
            finished,
        }
    }

    /// This table, its values named `{prefix}{key}` in messages (`timeouts.read`).
    pub(crate) fn named(mut self, prefix: &'static str) -> Self {
        self.prefix = prefix;
        self
    }

    /// Where the table is written (its `[header]`, or the inline table).
    pub(crate) fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    pub(crate) fn report(&self) -> &'a Report<'a> {
        self.report
    }

    fn child(&self, key: &str) -> String {
        match self.path.as_str() {
            "" => key.to_string(),
            path => format!("{path}.{key}"),
        }
    }

    /// Whether `key` is written, whatever its value.
    pub(crate) fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// Where the value of `key` is written, whatever it is; an array of tables is pointed at
    /// by its first table.
    pub(crate) fn at(&self, key: &str) -> Option<Range<usize>> {
        let v = self.map.get(key)?;
        let first = v
            .get_ref()
            .as_array()
            .and_then(|a| a.first())
            .filter(|f| f.get_ref().is_table());
        Some(first.unwrap_or(v).span())
    }

    /// Where the value at `path` below this table (`"tls"`, `"health.type"`) is written, if
    /// it was read with the right type.
    pub(crate) fn pos(&self, path: &str) -> Option<Range<usize>> {
        self.report.at(&self.child(path))
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
        let (path, prefix) = (self.path.as_str(), self.prefix);
        let (value, span) = (v.get_ref(), v.span());
        Some(Val {
            report: self.report,
            key,
            value,
            span,
            path,
            prefix,
            element: false,
        })
    }

    /// Record that `key` could not be read, and why.
    fn bad(&self, key: &str, v: &Val<'_>, why: Bad) {
        self.bad.borrow_mut().push(key.to_string());
        v.report(why);
    }

    /// `key` read with `p`: `None` when it is not written, `Err` when it could not be read
    /// (reported).
    fn read<T>(&self, key: &str, p: impl Fn(&Val<'_>) -> Result<T, Bad>) -> Option<Result<T, ()>> {
        let v = self.take(key)?;
        let got = p(&v);
        if !matches!(got, Err(Bad::Type(_))) {
            self.report.mark(self.child(key), v.span.clone());
        }
        let got = match got {
            Err(Bad::Type(Ty::Str)) => Err(quoted_number(&v, &p).unwrap_or(Bad::Type(Ty::Str))),
            got => got,
        };
        Some(got.map_err(|why| self.bad(key, &v, why)))
    }

    /// The value of `key` read with `p`, or `None` when it is not written or could not be
    /// read (reported).
    pub(crate) fn get<T>(&self, key: &str, p: impl Fn(&Val<'_>) -> Result<T, Bad>) -> Option<T> {
        self.read(key, p)?.ok()
    }

    /// Set `field` to the value of `key` read with `p`, when it is written and can be read.
    /// Returns whether the field holds what the file means: false when the value was wrong.
    pub(crate) fn set<T>(
        &self,
        key: &str,
        field: &mut T,
        p: impl Fn(&Val<'_>) -> Result<T, Bad>,
    ) -> bool {
        match self.read(key, p) {
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
        let found = self.read(key, p);
        if found.is_none() {
            self.absent(&[key], self.span(), message, help);
        }
        found?.ok()
    }

    /// Read only the TOML type of `key` (with `p`, whose own findings are dropped), for a key
    /// that does not apply here: whether it is written with the right type.
    pub(crate) fn check<T>(&self, key: &str, p: impl Fn(&Val<'_>) -> Result<T, Bad>) -> bool {
        let Some(v) = self.take(key) else {
            return false;
        };
        let quiet = Report::new("", "");
        match p(&Val {
            report: &quiet,
            ..v.clone()
        }) {
            Err(Bad::Type(ty)) => self.bad(key, &v, Bad::Type(ty)),
            _ => return true,
        }
        false
    }

    /// The table under `key` (a `[section]` or an inline table).
    pub(crate) fn table(&self, key: &str) -> Option<Table<'a>> {
        let v = self.take(key)?;
        let Some(DeValue::Table(t)) = self.map.get(key).map(Spanned::get_ref) else {
            self.bad(key, &v, Bad::Type(Ty::Table));
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
            self.bad(key, &v, Bad::Type(Ty::Array));
            return Vec::new();
        };
        self.report.mark(self.child(key), v.span.clone());
        let mut out = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let DeValue::Table(t) = item.get_ref() else {
                self.bad(key, &v.element(item), Bad::Type(Ty::Table));
                continue;
            };
            let path = format!("{}.{i}", self.child(key));
            self.report.mark(path.clone(), item.span());
            out.push((i, Table::new(self.report, t, item.span(), path)));
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

    /// An error at the value of `key` (a path below this table, e.g. `"tls.0"`).
    pub(crate) fn error_at(&self, key: &str, message: impl Into<String>, help: impl Into<String>) {
        self.error(self.pos(key).unwrap_or(self.span()), message, help);
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
        let keys = keys.iter().map(|k| k.to_string()).collect();
        let error = (span, message.into(), help.into());
        self.absent.borrow_mut().push((keys, error));
    }

    /// Each key written but not read: where it is, the key it probably means, the message
    /// and the help.
    fn unknown(&self) -> Vec<(Range<usize>, Option<String>, String, String)> {
        let read = self.read.borrow();
        let allowed: Vec<&str> = read.iter().map(String::as_str).collect();
        let unread = self
            .map
            .keys()
            .filter(|k| !allowed.contains(&k.get_ref().as_ref()));
        let unknown = |key: &Spanned<std::borrow::Cow<'_, str>>| {
            let (near, help) = suggest::key(key.get_ref(), &allowed);
            (key.span(), near, unknown_key(key.get_ref(), &allowed), help)
        };
        unread.map(unknown).collect()
    }

    /// Whether a key written but not read probably means `key` (once every key is read).
    pub(crate) fn meant(&self, key: &str) -> bool {
        self.unknown().iter().any(|u| u.1.as_deref() == Some(key))
    }

    /// Report each key written but not read as unknown, with the key it probably means, and
    /// the errors about absent keys that no misspelt key explains.
    pub(crate) fn finish(&self) {
        let mut meant = self.bad.borrow().clone();
        for (span, near, message, help) in self.unknown() {
            meant.extend(near);
            self.report.error(Kind::Shape, span, message, help);
        }
        for (keys, (span, message, help)) in self.absent.take() {
            if !keys.iter().any(|k| meant.contains(k)) {
                self.report.error(Kind::Rule, span, message, help);
            }
        }
        self.finished.set(true);
    }
}

impl Drop for Table<'_> {
    fn drop(&mut self) {
        // A table read without `finish` would let unknown keys pass silently.
        let done = self.finished.get() || std::thread::panicking();
        debug_assert!(done, "[{}] was read without finish()", self.path);
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

/// A number written where a string is read (`rate = 20`): the help says to quote it only
/// when the quoted number is a valid value; otherwise it gives the parser's own fix for
/// the quoted text (`write rate = "20/s"`), so the help is never itself an error.
fn quoted_number<T>(v: &Val<'_>, p: &impl Fn(&Val<'_>) -> Result<T, Bad>) -> Option<Bad> {
    let text = match v.value {
        DeValue::Integer(i) => i.as_str().replace('_', ""),
        DeValue::Float(f) => f.as_str().replace('_', ""),
        _ => return None,
    };
    let quiet = Report::new("", "");
    let quoted = DeValue::String(std::borrow::Cow::Owned(text.clone()));
    let again = Val {
        report: &quiet,
        key: v.key,
        value: &quoted,
        span: v.span.clone(),
        path: v.path,
        prefix: v.prefix,
        element: v.element,
    };
    match p(&again) {
        Err(Bad::Value(_, help)) => {
            let key = v.key;
            let help = match help.strip_prefix("write ") {
                Some(fix) if fix.starts_with('"') => format!("write {key} = {fix}"),
                _ => help,
            };
            Some(Bad::Value(
                format!("{key} must be a string, in quotes, and {text:?} is not a valid one"),
                help,
            ))
        }
        _ => None,
    }
}

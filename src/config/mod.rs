//! Configuration: TOML text in, a checked [`Plan`] out, or every error at once, each with
//! file:line:column and the fix.
//!
//! - `plan.rs`, `plan_failover.rs`, `dns.rs`: the plan, plain runtime values; every default is in
//!   a `Default` impl there. A server written with a host name is kept as written
//!   (`dns.rs`: `NamedServer`); `discovery` resolves it: this module asks no DNS server.
//! - `read/`: the reader. It walks toml's parsed tree with a cursor (`read/cursor.rs`) whose
//!   accessors turn a value into a plan value and record their own errors; `finish()`
//!   reports the keys nobody read, with a did-you-mean (`suggest.rs`). The rules across
//!   listeners and pools run on the plan (`read/cross.rs`), pointing at the lines through
//!   the positions the reader kept.
//! - `words.rs`: settings spelled as one of a few words (`algorithm`, `protocol`, ...).
//! - `duration.rs`: `"250ms"`, `"1m30s"`.
//! - `diff.rs`: what a new plan changes of the running one, for a reload; `routes.rs`:
//!   routes compared (added, removed, retargeted) and routes that can never match.
//!
//! To add a key: a field in the plan type, with its default in the type's `Default` impl,
//! and one line in the reader of its table, placed where the key should appear in the list
//! an unknown-key error gives, e.g. in `read/mod.rs` `set!(t, plan.shutdown_delay,
//! duration);` (or `t.set("key", &mut field, parser)` where the key and the field are named
//! apart). The parsers of `read/value.rs` (`int(lo, hi)`, `duration`, `positive(help)`,
//! `addr(what)`, `size(lo, hi)`, `word`, `list(p)`, `slash_path(what)`, or any closure over a
//! `Val`, with `.must(rule, message, help)`) say in the operator's words what is wrong. A
//! listener key that only some protocols take also goes in `PROTOCOL_KEYS`
//! (`read/listener.rs`) and is read with `set!(on, ...)`; a pool key that only HTTP reads
//! also goes in `HTTP_POOL_KEYS` (`read/cross.rs`). A new table (`[[listener.limit]]`):
//! `t.tables("limit")` or `t.table("log")` in its parent's reader, a reader of its own, and
//! `finish()` at its end.
//!
//! To add a choice of words: implement `words::Words` for the plan enum (its words, and in
//! `UNKNOWN` and `HELP` what to say for another) and read it with `word`. To add a rule across
//! listeners and pools: a function in `read/cross.rs` over the plan, pointing at
//! `r.at("pool.NAME.key")`.

pub mod diff;
mod diff_keys;
mod diff_servers;
mod dns;
mod duration;
mod limits;
mod plan;
mod plan_failover;
mod protect;
mod read;
pub mod routes;
mod suggest;
mod warn;
mod words;

#[cfg(test)]
mod tests;

use std::fmt;
use std::path::Path;

pub use diff::PlanDiff;
pub use diff_keys::{hash_key, limit_key};
pub use dns::*;
pub use duration::{format_duration, parse_duration};
pub use limits::*;
pub use plan::*;
pub use plan_failover::*;
pub use protect::*;
pub use warn::warnings;

/// One problem in a configuration file, pointing at where it is and saying what to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The file as named to [`load_str`] or [`load_file`].
    pub file: String,
    /// 1-based; 0 when the problem has no place in the file (it could not be read).
    pub line: usize,
    /// 1-based, in characters.
    pub column: usize,
    /// What is wrong.
    pub message: String,
    /// What to write instead.
    pub help: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "error: {}: {}", self.file, self.message)?;
        } else {
            write!(
                f,
                "error: {}:{}:{}: {}",
                self.file, self.line, self.column, self.message
            )?;
        }
        if let Some(help) = &self.help {
            write!(f, "\n  help: {help}")?;
        }
        Ok(())
    }
}

/// Every problem found in one file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// Parse and validate TOML text. `file` names the source in error messages.
///
/// ```
/// let plan = switchyard::config::load_str(
///     r#"
/// [[listener]]
/// listen = "127.0.0.1:8080"
/// pool = "web"
///
/// [pool.web]
/// algorithm = "least_conn"
/// servers = [{ addr = "127.0.0.1:9001", weight = 3 }, { addr = "127.0.0.1:9002" }]
/// "#,
///     "inline.toml",
/// )
/// .unwrap();
/// assert_eq!(plan.pools[0].servers[0].weight, 3);
///
/// // Every problem at once, each with file:line:column and a fix.
/// let errors = switchyard::config::load_str("[pool.web]\nservers = []\n", "bad.toml").unwrap_err();
/// let text = errors.to_string();
/// assert!(text.contains("error: bad.toml:2:11: pool \"web\" has no servers"), "{text}");
/// assert!(text.contains("the file has no [[listener]]"), "{text}");
/// ```
pub fn load_str(src: &str, file: &str) -> Result<Plan, ConfigErrors> {
    let (plan, errors) = read::read(src, file);
    match errors.is_empty() {
        true => Ok(plan),
        false => Err(ConfigErrors(errors.into_iter().map(|(_, e)| e).collect())),
    }
}

/// Read, parse and validate a file: the plan as far as it could be read, and every error
/// (a plan with errors is never run; `check` still asks the DNS names it holds, to report
/// every problem in one run).
pub fn read_file(path: &Path) -> (Plan, Vec<ConfigError>) {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(src) => {
            let (plan, errors) = read::read(&src, &name);
            (plan, errors.into_iter().map(|(_, e)| e).collect())
        }
        Err(_) => (
            Plan::default(),
            load_file(path).err().map_or_else(Vec::new, |e| e.0),
        ),
    }
}

/// Read, parse and validate a file.
pub fn load_file(path: &Path) -> Result<Plan, ConfigErrors> {
    let name = path.display().to_string();
    match std::fs::read_to_string(path) {
        Ok(src) => load_str(&src, &name),
        Err(e) => Err(ConfigErrors(vec![ConfigError {
            file: name,
            line: 0,
            column: 0,
            message: format!("cannot read the file: {e}"),
            help: Some("pass an existing file with -c PATH".into()),
        }])),
    }
}

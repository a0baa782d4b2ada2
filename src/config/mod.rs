//! Configuration: TOML text in, a checked [`Plan`] out, or every error at once.
//!
//! `file.rs` is the TOML shape (serde, spans kept); `validate.rs` turns it into the plain
//! runtime values of `plan.rs`, collecting every problem with its file, line, column and a fix;
//! `diff.rs` says what a new plan changes of the running one (for a reload).

pub mod diff;
mod duration;
mod failover;
mod file;
mod plan;
mod tls_check;
mod validate;

use std::fmt;
use std::path::Path;

pub use diff::PlanDiff;
pub use duration::{format_duration, parse_duration};
pub use failover::*;
pub use plan::*;

/// One problem in a configuration file, pointing at where it is and saying what to write.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based; 0 when the problem has no place in the file (it could not be read).
    pub line: usize,
    pub column: usize,
    pub message: String,
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
    validate::validate(src, file)
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

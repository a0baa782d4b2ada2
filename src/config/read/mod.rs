//! The config reader: TOML text in, a [`Plan`] and every error out.
//!
//! The text is parsed once into toml's span-keeping tree; past a syntax error only the
//! earliest is reported (what the parser recovers after it is guesswork). Then each table is
//! read with a cursor ([`cursor::Table`]) whose accessors turn values into plan values and
//! record their own errors, and whose `finish()` reports the keys nobody read. The top level
//! and `[admin]` are read here, `[[listener]]` in `listener.rs`, `[pool.NAME]` in `pool.rs`
//! (its failure-handling sections in `failover.rs`); the rules that span listeners and pools
//! run last, on the plan, in `cross.rs`. The module docs of `config` say how to add a key.

mod cross;
mod cursor;
mod failover;
mod guard;
mod listener;
mod pool;
mod report;
mod value;

use toml::de::DeTable;

use crate::config::{AccessTarget, AdminLimits, AdminPlan, ConfigError, LogPlan, Plan, Protocol};
use cursor::Table;
#[cfg(test)]
pub(crate) use failover::parse_expect;
pub(crate) use report::Kind;
use report::Report;
use value::{Bad, Val, addr, bad, duration, int, positive, word};

/// The plan and every error, in file order, each with its kind. With an error the plan is
/// only as good as what could be read.
pub(crate) fn read(src: &str, file: &str) -> (Plan, Vec<(Kind, ConfigError)>) {
    let report = Report::new(src, file);
    let (doc, syntax) = DeTable::parse_recoverable(src);
    // The earliest in the file: the parser may find a later error first (an unterminated
    // string swallows the lines after it, and what breaks there is reported before it).
    if let Some(first) = syntax
        .iter()
        .min_by_key(|e| e.span().map_or(usize::MAX, |s| s.start))
    {
        let message = first.message().trim().to_string();
        let help = syntax_help(&message).to_string();
        report.error(Kind::Shape, first.span().unwrap_or(0..0), message, help);
        return (Plan::default(), report.errors());
    }
    let (mut plan, seen) = top(&Table::root(&report, &doc));
    cross::check(&report, &mut plan, &seen);
    (plan, report.errors())
}

/// The top level, and the tables below it.
fn top(t: &Table<'_>) -> (Plan, cross::Seen) {
    let mut plan = Plan::default();
    t.set("workers", &mut plan.workers, int(1, 1024));
    t.set("grace_period", &mut plan.grace_period, duration);
    t.set("shutdown_delay", &mut plan.shutdown_delay, duration);
    // Pools first (their errors come first where two share a place), then the listeners,
    // which know a pool by its name whatever is wrong inside it.
    let listeners = t.tables("listener");
    let pools = t.table("pool");
    let pool_names = pools.as_ref().map_or_else(Vec::new, Table::keys);
    if let Some(pools) = &pools {
        for name in &pool_names {
            plan.pools
                .extend(pools.table(name).map(|p| pool::read(&p, name)));
        }
        pools.finish();
    }
    let lost_listener = listeners.len() < t.count("listener").unwrap_or(0);
    let mut seen = cross::Seen {
        lost_listener,
        ..Default::default()
    };
    for (i, l) in listeners {
        let written = l.text("protocol").unwrap_or_default().to_string();
        let (listener, named) = listener::read(&l, i, &pool_names);
        match &listener {
            Some(l) if matches!(l.protocol, Protocol::Tcp | Protocol::Udp) => {}
            _ => seen.http_pools.extend(named),
        }
        if let Some(listener) = listener {
            seen.listeners.push((format!("listener.{i}"), written));
            plan.listeners.push(listener);
        }
    }
    if t.count("listener") == Some(0) || !t.has("listener") {
        let help = "add [[listener]] with name, listen = \"127.0.0.1:8080\" and pool = \"...\"";
        t.error(0..0, "the file has no [[listener]]", help);
    }
    plan.admin = t.table("admin").and_then(|a| admin(&a));
    if let Some(l) = t.table("log") {
        plan.log = log(&l);
    }
    t.finish();
    (plan, seen)
}

/// `[admin]`.
fn admin(t: &Table<'_>) -> Option<AdminPlan> {
    let help = "add listen = \"127.0.0.1:9900\"";
    let listen = t.need(
        "listen",
        addr("admin listen"),
        "[admin] has no listen address",
        help,
    );
    let origin = t.pos("listen").map(|s| t.report().origin(s.start));
    let token = t.get("token", token);
    let mut limits = AdminLimits::default();
    t.set(
        "max_connections",
        &mut limits.max_connections,
        int(1, 100_000),
    );
    let help = "write e.g. \"10s\"";
    t.set(
        "client_header_timeout",
        &mut limits.client_header_timeout,
        positive(help),
    );
    // The API changes pools and reloads the config: only this machine may reach it, or
    // whoever holds the token (a wrong token has its own error).
    if let Some(addr) = listen
        && !addr.ip().is_loopback()
        && !t.has("token")
    {
        let help = format!(
            "add token = \"...\" (make one with: openssl rand -hex 32), so every /api/ request needs Authorization: Bearer TOKEN; or listen on 127.0.0.1:{}",
            addr.port()
        );
        let message =
            format!("[admin] listens on {addr}, which is not a loopback address, without a token");
        t.error_at("listen", message, help);
    }
    t.finish();
    Some(AdminPlan {
        listen: listen?,
        origin,
        token,
        limits,
    })
}

/// `[log]`.
fn log(t: &Table<'_>) -> LogPlan {
    let mut plan = LogPlan::default();
    let report = t.report();
    t.set("access", &mut plan.access, |v| {
        Ok(match v.str()? {
            "off" => AccessTarget::Off,
            "stdout" => AccessTarget::Stdout,
            "stderr" => AccessTarget::Stderr,
            "" => {
                return Err(bad(
                    "access is empty",
                    "write a file path, or \"stdout\", \"stderr\" or \"off\"",
                ));
            }
            path => AccessTarget::File(report.path(path)),
        })
    });
    t.set("format", &mut plan.format, word);
    t.set("buffer", &mut plan.buffer, int(4096, 64 << 20));
    t.finish();
    plan
}

/// `[admin] token`: an RFC 6750 bearer token, long enough not to be guessed.
fn token(v: &Val<'_>) -> Result<String, Bad> {
    let token = v.str()?;
    let help = "make one with: openssl rand -hex 32";
    let b64 = token.trim_end_matches('=');
    let allowed = |b: u8| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b);
    if !b64.is_empty() && !b64.bytes().all(allowed) {
        let message = "token has characters a bearer token cannot carry";
        return Err(bad(
            message,
            format!("use letters, digits and - . _ ~ + / only; {help}"),
        ));
    }
    if token.len() < 16 {
        let n = token.len();
        return Err(bad(
            format!("token is {n} characters long; at least 16 are needed"),
            help,
        ));
    }
    Ok(token.to_string())
}

/// What to do about a TOML syntax error.
fn syntax_help(message: &str) -> &'static str {
    if message.contains("duplicate key") {
        "each name may appear once; rename or merge the two"
    } else if message.contains("basic string") || message.contains("literal string") {
        "close the string with its quote on the same line (a \\\" inside needs a backslash)"
    } else if message.starts_with("unclosed") {
        "close it with the bracket named above"
    } else {
        "see the configuration reference in docs/config.md"
    }
}

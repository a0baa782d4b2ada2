//! The config reader: TOML text in, a [`Plan`] and every error out.
//!
//! The text is parsed once into toml's span-keeping tree; past a syntax error only the
//! earliest is reported (what the parser recovers after it is guesswork). Then each table is
//! read with a cursor ([`cursor::Table`]) whose accessors turn values into plan values and
//! record their own errors, and whose `finish()` reports the keys nobody read. The top level,
//! `[admin]` and `[redis]` are read here, `[[listener]]` in `listener.rs`, `[pool.NAME]` in `pool.rs`
//! (its failure-handling sections in `failover.rs`); the rules that span listeners and pools
//! run last, on the plan, in `cross.rs`. The module docs of `config` say how to add a key.

/// `set!(t, p.keepalive, int(0, 100_000))`: [`cursor::Table::set`] for a key spelled as its
/// field (`t.set("keepalive", &mut p.keepalive, ...)`), so the name is written once. A key
/// named otherwise (`type` → `kind`) is read with `t.set` itself.
macro_rules! set {
    ($t:expr, $s:ident . $key:ident, $p:expr) => {
        $t.set(stringify!($key), &mut $s.$key, $p)
    };
}

mod cross;
mod cursor;
mod failover;
mod guard;
mod listener;
mod pool;
mod report;
mod value;

use toml::de::DeTable;

use std::time::Duration;

use crate::config::{
    AccessTarget, AdminLimits, AdminPlan, ConfigError, LogPlan, Plan, Protocol, RedisPlan,
};
use cursor::Table;
#[cfg(test)]
pub(crate) use failover::parse_expect;
pub(crate) use report::Kind;
use report::Report;
use value::{Bad, Parse, Val, addr, bad, duration, int, positive, string, word};

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
        let at = first.span().map_or(0, |s| s.start).min(src.len());
        let help = match foreign(src, at, file) {
            Some(product) => format!(
                "this looks like {product} config, not Switchyard's TOML; convert it with: switchyard import {file} -o switchyard.toml (docs/import.md)"
            ),
            None => syntax_help(&message).to_string(),
        };
        report.error(Kind::Shape, first.span().unwrap_or(0..0), message, help);
        return (Plan::default(), report.errors());
    }
    let (mut plan, seen) = top(&Table::root(&report, &doc));
    cross::check(&report, &mut plan, &seen);
    // nginx's [upstream.NAME] (HAProxy's [backend.NAME]) is an unknown key whose help says
    // "did you mean `pool`?": "no pool named NAME" where it is sent to would only repeat it.
    let foreign: Vec<String> = ["upstream", "upstreams", "backend", "backends"]
        .iter()
        .filter_map(|k| doc.get_ref().get(*k))
        .filter_map(|v| v.get_ref().as_table())
        .flat_map(|t| t.keys().map(|name| listener::no_pool(name.get_ref())))
        .collect();
    let mut errors = report.errors();
    errors.retain(|(_, e)| !foreign.contains(&e.message));
    (plan, errors)
}

/// The top level, and the tables below it.
fn top(t: &Table<'_>) -> (Plan, cross::Seen) {
    let mut plan = Plan::default();
    set!(t, plan.workers, int(1, 1024));
    set!(t, plan.grace_period, duration);
    set!(t, plan.shutdown_delay, duration);
    // Pools first (their errors come first where two share a place), then the listeners,
    // which know a pool by its name whatever is wrong inside it.
    let listeners = t.tables("listener");
    let pools = t.table("pool");
    let pool_names = pools.as_ref().map_or_else(Vec::new, Table::keys);
    let mut near_misses = Vec::new();
    if let Some(pools) = &pools {
        for name in &pool_names {
            if let Some(p) = pools.table(name) {
                let (pool, near_miss) = pool::read(&p, name, &pool_names);
                plan.pools.push(pool);
                near_misses.extend(near_miss);
            }
        }
        pools.finish();
    }
    let lost_listener = listeners.len() < t.count("listener").unwrap_or(0);
    let mut seen = cross::Seen {
        lost_listener,
        near_misses,
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
        // Not when a misspelt key means it (`[[listner]]`): its own error says so.
        t.absent(&["listener"], 0..0, "the file has no [[listener]]", help);
    }
    plan.admin = t.table("admin").and_then(|a| admin(&a));
    // Without [admin] there is no /health/ready for a balancer in front to see turn 503, so
    // the default wait would only delay the stop: none, as nginx and HAProxy (`grace` 0)
    // stop. Written, it is kept (a preStop-like pause, or a restart sharing the ports).
    if plan.admin.is_none() && !t.has("shutdown_delay") {
        plan.shutdown_delay = std::time::Duration::ZERO;
    }
    plan.redis = t.table("redis").and_then(|r| redis(&r));
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
    let origin = t
        .pos("listen")
        .map(|s| t.report().origin(s.start).to_string());
    let token = t.get("token", token);
    let mut limits = AdminLimits::default();
    set!(t, limits.max_connections, int(1, 100_000));
    let help = "write e.g. \"10s\"";
    set!(t, limits.client_header_timeout, positive(help));
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

/// `[redis]`: where the state shared with other balancers lives (`cluster`).
fn redis(t: &Table<'_>) -> Option<RedisPlan> {
    let mut r = RedisPlan::default();
    let help = "add addr = \"127.0.0.1:6379\" (or \"redis://:password@host:6379/0\")";
    let addr = t.need("addr", redis_addr, "[redis] has no addr", help);
    let mixed =
        "prefix = \"\" would mix Switchyard's keys and channels with everything else in that Redis";
    let prefix = string.must(
        |p| !p.is_empty(),
        mixed,
        "write e.g. prefix = \"switchyard:\"",
    );
    set!(t, r.prefix, prefix);
    set!(t, r.timeout, positive("write e.g. timeout = \"5ms\""));
    set!(t, r.io_timeout, positive("write e.g. io_timeout = \"1s\""));
    let flood = "a sync_interval under 10ms would flood Redis";
    let every = duration.must(
        |d| *d >= Duration::from_millis(10),
        flood,
        "write e.g. sync_interval = \"100ms\"",
    );
    set!(t, r.sync_interval, every);
    set!(t, r.queue, int(1, 10_000_000));
    if t.has("timeout") && r.timeout > r.io_timeout {
        let message = "timeout (what a request waits on Redis) is longer than io_timeout (what finds Redis gone)";
        t.error_at(
            "timeout",
            message,
            "keep timeout a few milliseconds, under io_timeout",
        );
    }
    t.finish();
    r.addr = addr?;
    Some(r)
}

/// `[redis] addr`: `host:port`, or `redis://[user:password@]host:port[/db]`. Not resolved
/// here: the link connects in the background, and a balancer starts with Redis away.
fn redis_addr(v: &Val<'_>) -> Result<String, Bad> {
    let s = v.str()?.trim();
    let help = "write host:port (\"10.0.0.5:6379\") or redis://[:password@]host:port[/db]";
    let (rest, url) = match s.split_once("://") {
        Some(("redis", rest)) => (rest, true),
        Some((scheme, _)) => {
            let message =
                format!("redis addr {s:?}: {scheme}:// is not supported (no TLS, no unix sockets)");
            return Err(bad(message, help));
        }
        None => (s, false),
    };
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let (host_port, db) = rest.split_once('/').unwrap_or((rest, ""));
    let host_port_ok = host_port
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
    let db_ok = db.is_empty() || (url && db.parse::<u32>().is_ok());
    if !host_port_ok || !db_ok {
        return Err(bad(format!("redis addr {s:?} is not an address"), help));
    }
    Ok(s.to_string())
}

/// `[log]`.
fn log(t: &Table<'_>) -> LogPlan {
    let mut plan = LogPlan::default();
    let report = t.report();
    set!(t, plan.access, |v| {
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
    set!(t, plan.format, word);
    set!(t, plan.buffer, int(4096, 64 << 20));
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

/// Whether the line of a syntax error at `at` is nginx's (`http {`, `listen 80;`) or
/// HAProxy's (`frontend www` with other sections, or in a `.cfg` file): "an nginx" or
/// "a HAProxy".
fn foreign(src: &str, at: usize, file: &str) -> Option<&'static str> {
    const NGINX: &[&str] = &[
        "http",
        "events",
        "server",
        "upstream",
        "stream",
        "location",
        "worker_processes",
        "user",
        "pid",
        "error_log",
        "include",
        "map",
        "listen",
        "proxy_pass",
        "load_module",
        "worker_rlimit_nofile",
        "mail",
    ];
    const HAPROXY: &[&str] = &[
        "global",
        "defaults",
        "frontend",
        "backend",
        "listen",
        "resolvers",
        "peers",
        "userlist",
        "cache",
        "program",
        "mailers",
        "ring",
    ];
    let start = src[..at].rfind('\n').map_or(0, |i| i + 1);
    let line = src[start..].lines().next().unwrap_or("").trim();
    let first = line.split_whitespace().next().unwrap_or("");
    if NGINX.contains(&first) && line.ends_with(['{', '}', ';']) {
        return Some("an nginx");
    }
    let sections = src
        .lines()
        .filter(|l| {
            let w = l.split_whitespace().next().unwrap_or("");
            !l.starts_with(char::is_whitespace) && HAPROXY.contains(&w) && !l.contains('=')
        })
        .count();
    let haproxy_line = HAPROXY.contains(&first) && !line.contains(['=', '{', '[']);
    (haproxy_line && (sections >= 2 || file.ends_with(".cfg"))).then_some("a HAProxy")
}

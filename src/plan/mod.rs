//! `switchyard plan`: what a new configuration would change, before it is made: listeners
//! bound or closed, routes added, removed or shadowed, servers added, removed, re-weighted,
//! drained, certificates that change or expire soon, and for hashing and sticky pools the
//! share of keys and sessions that would move.
//!
//! Data flow: two checked [`Plan`]s (two files, or the running configuration from the
//! admin API's `GET /api/config` and a file) → [`config::PlanDiff`] (the diff the runtime's
//! reload acts on, so the plan says what a reload does) → one [`Section`] per kind of
//! change: `mod.rs` listeners, routes, pools and servers; `keys.rs` keys and sessions moved,
//! computed with the real pools by `simulate::moved_between` and `simulate::sessions_moved`;
//! `certs.rs` certificates (read with `tls`). `cli.rs` runs the `plan` and `reload`
//! commands: it reads the files, asks the admin API, prints the report and gives the exit
//! status.

pub mod certs;
pub mod cli;
mod keys;

use crate::config::diff::{AdminChange, ListenerChange, PoolChange, RedisChange, ServerChange};
use crate::config::routes::{self, RouteChange};
use crate::config::{
    self, AccessTarget, ListenerPlan, LogFormat, LogPlan, Plan, PlanDiff, Protocol, format_duration,
};

/// Certificates that expire within this many days are named.
pub const EXPIRY_WARNING_DAYS: i64 = 30;

/// What a change of configuration would do.
#[derive(Debug, Clone)]
pub struct Report {
    /// The diff a reload acts on.
    pub diff: PlanDiff,
    /// Listeners, routes, pools and servers, keys moved, certificates, the rest: each line
    /// starts with `+` (added), `-` (removed), `~` (changed) or `!` (a warning).
    pub sections: Vec<Section>,
    /// Each hashing or sticky pool of both plans that the change touches.
    pub moved: Vec<PoolMoved>,
}

/// One kind of change, with a line per change.
#[derive(Debug, Clone, PartialEq)]
pub struct Section {
    pub title: &'static str,
    pub lines: Vec<String>,
}

/// The keys (hashing pools) or sessions (sticky pools) of one pool that would move.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolMoved {
    pub pool: String,
    /// 0.0 to 1.0.
    pub share: f64,
    /// `keys` or `sessions`.
    pub what: &'static str,
}

impl Report {
    /// The pool whose keys or sessions move most, if any would.
    pub fn most_moved(&self) -> Option<&PoolMoved> {
        self.moved
            .iter()
            .filter(|m| m.share > 0.0)
            .max_by(|a, b| a.share.total_cmp(&b.share))
    }

    /// The pools above `limit` (a share, 0.0 to 1.0).
    pub fn over(&self, limit: f64) -> Vec<&PoolMoved> {
        self.moved.iter().filter(|m| m.share > limit).collect()
    }

    fn count(&self, f: impl Fn(&str) -> bool) -> usize {
        self.sections
            .iter()
            .flat_map(|s| &s.lines)
            .filter(|l| f(l))
            .count()
    }

    /// Lines of change (`+`, `-`, `~`).
    pub fn changes(&self) -> usize {
        self.count(|l| l.starts_with(['+', '-', '~']))
    }

    /// Warning lines (`!`): shadowed routes, certificates about to expire, …
    pub fn warnings(&self) -> usize {
        self.count(|l| l.starts_with('!'))
    }

    /// The report as printed: a title per section, a line per change, then a summary.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for s in self.sections.iter().filter(|s| !s.lines.is_empty()) {
            out.push_str(s.title);
            out.push('\n');
            for l in &s.lines {
                out.push_str("  ");
                out.push_str(l);
                out.push('\n');
            }
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    /// One line: how many changes and warnings, and the most keys moved.
    pub fn summary(&self) -> String {
        let (c, w) = (self.changes(), self.warnings());
        let mut s = if c == 0 {
            "plan: no changes".to_string()
        } else {
            format!("plan: {c} change(s)")
        };
        if w > 0 {
            s.push_str(&format!(", {w} warning(s)"));
        }
        match self.most_moved() {
            Some(m) => s.push_str(&format!(
                "; most {} moved: {} (pool {:?})",
                m.what,
                percent(m.share),
                m.pool
            )),
            None if !self.moved.is_empty() => s.push_str("; no key or session moves"),
            None => {}
        }
        s
    }
}

/// A share as a percentage with one decimal: `20.1%`.
pub fn percent(share: f64) -> String {
    format!("{:.1}%", share * 100.0)
}

/// What `new` would change of `old`. `now`: seconds since the Unix epoch, for certificate
/// expiry. Reads the certificate files the plans name; builds pools to ask their balancers.
pub fn make(old: &Plan, new: &Plan, now: i64) -> Report {
    make_as(old, new, now, ("in the file", "running"))
}

/// [`make`] for two files (`switchyard plan OLD NEW`): nothing is running, and `workers`
/// is said as the old file's.
pub fn make_files(old: &Plan, new: &Plan, now: i64) -> Report {
    make_as(old, new, now, ("in the new file", "in the old file"))
}

/// `is`: what `new` and `old` are, for the `workers` line (`in the file`, `running`).
fn make_as(old: &Plan, new: &Plan, now: i64, is: (&str, &str)) -> Report {
    let diff = PlanDiff::between(old, new);
    let (keys, moved) = keys::section(old, new, &diff);
    let sections = vec![
        Section {
            title: "listeners",
            lines: listeners(old, new, &diff),
        },
        Section {
            title: "routes",
            lines: route_lines(old, new, &diff),
        },
        Section {
            title: "pools and servers",
            lines: pools(old, new, &diff),
        },
        Section {
            title: "keys moved",
            lines: keys,
        },
        Section {
            title: "certificates",
            lines: certs::section(old, new, now),
        },
        Section {
            title: "other",
            lines: other(old, new, &diff, is),
        },
    ];
    Report {
        diff,
        sections,
        moved,
    }
}

fn listener<'a>(p: &'a Plan, name: &str) -> Option<&'a ListenerPlan> {
    p.listeners.iter().find(|l| l.name == name)
}

fn listeners(old: &Plan, new: &Plan, diff: &PlanDiff) -> Vec<String> {
    let mut out = Vec::new();
    for (name, change) in &diff.listeners {
        let (o, n) = (listener(old, name), listener(new, name));
        let line = match (change, o, n) {
            (ListenerChange::Added, _, Some(n)) => format!(
                "+ listener {name:?} binds {} ({})",
                n.listen,
                n.protocol.as_str()
            ),
            (ListenerChange::Removed, Some(o), _) => format!(
                "- listener {name:?} closes {} ({}); its connections drain",
                o.listen,
                o.protocol.as_str()
            ),
            (ListenerChange::Moved, Some(o), Some(n)) => format!(
                "~ listener {name:?} moves {} ({}) → {} ({}): binds the new address; the old socket closes and its connections drain",
                o.listen,
                o.protocol.as_str(),
                n.listen,
                n.protocol.as_str()
            ),
            (ListenerChange::Reprotocol, Some(o), Some(n)) => format!(
                "~ listener {name:?} on {}: {} → {} (the same socket; connections of the old protocol drain)",
                n.listen,
                o.protocol.as_str(),
                n.protocol.as_str()
            ),
            _ => String::new(),
        };
        if !line.is_empty() {
            out.push(line);
        }
        if let Some(d) = diff.detail(name)
            && !d.settings.is_empty()
        {
            out.push(format!("~ listener {name:?}: {}", d.settings.join(", ")));
        }
    }
    let admin = |p: &Plan| p.admin.as_ref().map(|a| a.listen);
    match (diff.admin, admin(old), admin(new)) {
        (AdminChange::Added, _, Some(a)) => out.push(format!("+ [admin] binds {a}")),
        (AdminChange::Removed, Some(a), _) => out.push(format!("- [admin] closes {a}")),
        (AdminChange::Moved, Some(a), Some(b)) => out.push(format!("~ [admin] moves {a} → {b}")),
        (AdminChange::Changed, ..) => out.push("~ [admin] token changed".into()),
        _ => {}
    }
    out
}

fn route_lines(old: &Plan, new: &Plan, diff: &PlanDiff) -> Vec<String> {
    let mut out = Vec::new();
    for (name, d) in &diff.details {
        for c in &d.routes {
            let sign = match c {
                RouteChange::Added { .. } => '+',
                RouteChange::Removed { .. } => '-',
                _ => '~',
            };
            out.push(format!("{sign} listener {name:?}: {}", c.describe()));
        }
        for r in &d.route_settings {
            out.push(format!("~ listener {name:?}: {r}"));
        }
    }
    // Warnings on the new plan, saying whether the old one had them already.
    for l in &new.listeners {
        if !matches!(l.protocol, Protocol::Http | Protocol::Https) {
            continue;
        }
        let before = listener(old, &l.name);
        for s in routes::shadowed(l) {
            let (r, by) = (&l.routes[s.route - 1], &l.routes[s.by - 1]);
            let already = before.is_some_and(|b| {
                routes::shadowed(b)
                    .iter()
                    .any(|x| b.routes[x.route - 1] == *r && b.routes[x.by - 1] == *by)
            });
            out.push(format!(
                "! listener {:?}: route {} ({}) can never match: route {} ({}) comes first and matches every request it would{}",
                l.name,
                s.route,
                routes::describe(r),
                s.by,
                routes::conditions(&by.matcher),
                if already { " (so already before)" } else { "" }
            ));
        }
        if let (Some(i), Some(p)) = (routes::catch_all(l), &l.default_pool) {
            out.push(format!(
                "! listener {:?}: its default pool {p:?} is never used: route {i} matches every request",
                l.name
            ));
        }
    }
    out
}

fn pools(old: &Plan, new: &Plan, diff: &PlanDiff) -> Vec<String> {
    let mut out = Vec::new();
    for (name, change) in &diff.pools {
        let (o, n) = (old.pool(name), new.pool(name));
        let server_name = |addr: std::net::SocketAddr, p: Option<&config::PoolPlan>| {
            p.and_then(|p| p.servers.iter().find(|s| s.addr == addr))
                .filter(|s| s.name != s.addr.to_string())
                .map_or(String::new(), |s| format!(" ({})", s.name))
        };
        match change {
            PoolChange::Same => {}
            PoolChange::Added => {
                if let Some(n) = n {
                    out.push(format!(
                        "+ pool {name:?} ({}, {} server(s))",
                        n.algorithm.as_str(),
                        n.servers.len()
                    ));
                }
            }
            PoolChange::Removed => out.push(format!("- pool {name:?}")),
            PoolChange::Servers(changes) => out.extend(server_lines(name, n, changes)),
            PoolChange::Rebuilt(r) => {
                for a in &r.added {
                    let s = n.and_then(|n| n.servers.iter().find(|s| s.addr == *a));
                    let mut how = Vec::new();
                    if let Some(s) = s {
                        if s.weight != 1 {
                            how.push(format!("weight {}", s.weight));
                        }
                        if s.backup {
                            how.push("backup".into());
                        }
                        if s.down || s.drain {
                            how.push(if s.down { "maint" } else { "drain" }.into());
                        }
                    }
                    let how = if how.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", how.join(", "))
                    };
                    out.push(format!(
                        "+ pool {name:?}: server {a}{} added{how}",
                        server_name(*a, n)
                    ));
                }
                for a in &r.removed {
                    out.push(format!(
                        "- pool {name:?}: server {a}{} removed (its requests in flight finish)",
                        server_name(*a, o)
                    ));
                }
                // `algorithm` and `hash_key` on lines of their own (they move keys); the
                // other keys on one line, each `key before → after`.
                let (own, mut rest): (Vec<&String>, Vec<&String>) = r
                    .changes
                    .iter()
                    .partition(|c| c.starts_with("algorithm ") || c.starts_with("hash_key "));
                for c in own {
                    out.push(format!("~ pool {name:?}: {c}"));
                }
                let whole: Vec<String> = r
                    .settings
                    .iter()
                    .filter(|k| matches!(**k, "server order" | "redis"))
                    .map(|k| format!("{k} changed"))
                    .collect();
                rest.extend(&whole);
                if !rest.is_empty() {
                    let rest: Vec<&str> = rest.iter().map(|s| s.as_str()).collect();
                    out.push(format!("~ pool {name:?}: {}", rest.join(", ")));
                }
                out.extend(server_lines(name, n, &r.servers));
                if !r.keep_conns {
                    out.push(format!(
                        "~ pool {name:?}: its idle connections to the servers are closed (another protocol or TLS towards them)"
                    ));
                }
            }
        }
    }
    out
}

fn server_lines(pool: &str, p: Option<&config::PoolPlan>, changes: &[ServerChange]) -> Vec<String> {
    let on_drain = p
        .and_then(|p| p.sticky.as_ref())
        .map(|s| s.on_drain == config::OnDrain::Move);
    let mut out = Vec::new();
    for c in changes {
        let at = format!("~ pool {pool:?}: server {}", c.addr);
        if let Some((a, b)) = c.weight {
            out.push(format!("{at} re-weighted {a} → {b}"));
        }
        match c.state {
            Some((a, "drain")) => out.push(format!(
                "{at} drained ({a} → drain): no new clients{}",
                match on_drain {
                    Some(true) => "; its sticky clients move (on_drain = \"move\")",
                    Some(false) => "; its sticky clients stay",
                    None => "",
                }
            )),
            Some((a, "maint")) => out.push(format!(
                "{at} taken out of service ({a} → maint): its clients move, its requests in flight finish"
            )),
            Some((a, b)) => out.push(format!("{at} back in service ({a} → {b})")),
            None => {}
        }
        for other in c
            .changes
            .iter()
            .filter(|t| !t.starts_with("weight ") && !t.starts_with("state "))
        {
            out.push(format!("{at}: {other}"));
        }
    }
    out
}

fn other(old: &Plan, new: &Plan, diff: &PlanDiff, is: (&str, &str)) -> Vec<String> {
    let mut out = Vec::new();
    if diff.log {
        out.push(format!(
            "~ [log] {}: the access log is opened anew at the reload",
            log_changes(&old.log, &new.log).join(", ")
        ));
    }
    match &diff.redis {
        RedisChange::Same => {}
        RedisChange::Added => out.push("+ [redis] a link to Redis; shared tables use it".into()),
        RedisChange::Removed => out.push("- [redis] its link closes".into()),
        RedisChange::Changed(keys) => out.push(format!(
            "~ [redis] {} changed: a new link; shared tables move to it, their entries kept",
            keys.join(", ")
        )),
    }
    if let Some((a, b)) = diff.grace_period {
        out.push(format!(
            "~ grace_period {} → {}",
            format_duration(a),
            format_duration(b)
        ));
    }
    if let Some((a, b)) = diff.shutdown_delay {
        out.push(format!(
            "~ shutdown_delay {} → {}",
            format_duration(a),
            format_duration(b)
        ));
    }
    if let Some((a, b)) = diff.workers {
        out.push(format!(
            "~ workers = {b} {}, {a} {}: a reload cannot change it; restart or upgrade (SIGUSR2, run --upgrade) to run {b}",
            is.0, is.1
        ));
    }
    out
}

/// `access stderr → logs/access.log`, … for each `[log]` key that differs.
fn log_changes(o: &LogPlan, n: &LogPlan) -> Vec<String> {
    let access = |a: &AccessTarget| match a {
        AccessTarget::Off => "off".to_string(),
        AccessTarget::Stdout => "stdout".into(),
        AccessTarget::Stderr => "stderr".into(),
        AccessTarget::File(p) => p.display().to_string(),
    };
    let mut out = Vec::new();
    if o.access != n.access {
        out.push(format!(
            "access {} → {}",
            access(&o.access),
            access(&n.access)
        ));
    }
    if o.format != n.format {
        let format = |f: LogFormat| match f {
            LogFormat::Combined => "combined",
            LogFormat::Json => "json",
        };
        out.push(format!(
            "format {} → {}",
            format(o.format),
            format(n.format)
        ));
    }
    if o.buffer != n.buffer {
        out.push(format!("buffer {} → {} bytes", o.buffer, n.buffer));
    }
    out
}

#[cfg(test)]
mod tests;

//! A HAProxy frontend's rules on who may send: `http-request deny if { src … }` (or an
//! `acl NAME src …` named there), `… unless`, `http-request allow if …` before a bare
//! `http-request deny`, `tcp-request connection|content reject if …` → the listener's
//! `allow`/`deny`; `http-request deny [deny_status N] if { path_beg … }` (or an `acl NAME
//! path_beg …` named alone there) → `[[listener.block]]` with its `status`; and the common
//! rate limit, `stick-table type ip … store http_req_rate(T)` + `http-request track-sc0
//! src` + `http-request deny … if { sc_http_req_rate(0) gt N }` → a `[[listener.limit]]`.

use std::collections::HashMap;

use super::haproxy_parse::Line;
use super::model::{Config, Guard, Limit};

#[derive(Debug, Default)]
pub struct Access {
    /// `acl NAME src A B`: the address blocks (`None`: some could not be carried).
    srcs: HashMap<String, Option<Vec<String>>>,
    /// `acl NAME path_beg /a /b` (`path_end`, `path`, `path_sub`, `path_reg`): one block
    /// rule's path regex per value (`None`: some could not be carried).
    paths: HashMap<String, Option<Vec<String>>>,
    /// ACL names with a line of another criterion (`hdr(host) …`): a deny on such a name
    /// matches more than its paths or sources, so it is not carried.
    others: std::collections::HashSet<String>,
    /// `http-request allow if SRC` waiting for the bare `http-request deny` that makes it
    /// an allow list.
    pending_allow: Vec<(Line, Vec<String>)>,
    /// The first `http-request allow|return|redirect` that does not only name sources:
    /// HAProxy answered or let through some requests there before any later deny (not
    /// `redirect scheme https`: carried as `redirect_https`, which answers before blocks).
    let_through: Option<Line>,
    /// The first `http-request allow if SRC`: those sources pass a later deny on paths too.
    src_allow: Option<Line>,
    /// `stick-table type ip size N store http_req_rate(T)`: (size, period in seconds).
    table: Option<(Option<u64>, u64)>,
    tracked: bool,
    /// The table and tracking lines, reported unless a rate rule used them.
    unused: Vec<Line>,
    /// A tcp frontend (its listeners close a refused connection, as HAProxy).
    pub tcp: bool,
    pub guard: Guard,
}

impl Access {
    pub fn new(tcp: bool) -> Access {
        Access {
            tcp,
            ..Access::default()
        }
    }
}

/// Every `acl` line of the frontend, read before its rules: the lines of one name make one
/// ACL in HAProxy wherever they are written, so a line after the deny that names it
/// extends it too.
pub fn acls(lines: &[Line], a: &mut Access) {
    for l in lines {
        let w: Vec<&str> = l.words.iter().map(String::as_str).collect();
        match w.as_slice() {
            ["acl", name, "src", values @ ..] => {
                let blocks = (!values.iter().any(|v| v.starts_with('-')))
                    .then(|| values.iter().map(|v| v.to_string()).collect::<Vec<_>>());
                let merged = joined(a.srcs.remove(*name), blocks);
                a.srcs.insert(name.to_string(), merged);
            }
            ["acl", name, crit, values @ ..] if crit.starts_with("path") => {
                let merged = joined(a.paths.remove(*name), path_blocks(crit, values));
                a.paths.insert(name.to_string(), merged);
            }
            ["acl", name, ..] => {
                a.others.insert(name.to_string());
            }
            _ => {}
        }
    }
}

/// One more line of an ACL (`had`: its lines before, if any) joined to it; `None` once a
/// line could not be carried.
fn joined(had: Option<Option<Vec<String>>>, more: Option<Vec<String>>) -> Option<Vec<String>> {
    match (had, more) {
        (None, b) => b,
        (Some(Some(mut x)), Some(y)) => {
            x.extend(y);
            Some(x)
        }
        _ => None,
    }
}

/// Read `l` if it is one of these rules; `true` when it was carried or noted here. `acl`
/// lines were read by [`acls`] and are left to the routing too (`false`).
pub fn line(c: &mut Config, l: &Line, a: &mut Access) -> bool {
    let w: Vec<&str> = l.words.iter().map(String::as_str).collect();
    if let [
        "http-request",
        verb @ ("allow" | "return" | "redirect"),
        rest @ ..,
    ] = w.as_slice()
    {
        let sources = match rest {
            ["if", cond @ ..] if *verb == "allow" => matches!(src(a, cond), Some((false, _))),
            _ => false,
        };
        let https = *verb == "redirect" && rest.starts_with(&["scheme", "https"]);
        if sources && a.src_allow.is_none() {
            a.src_allow = Some(l.clone());
        } else if !sources && !https && a.let_through.is_none() {
            a.let_through = Some(l.clone());
        }
    }
    match w.as_slice() {
        // Read before the frontend's other lines (`acls`).
        ["acl", ..] => false,
        ["stick-table", rest @ ..] => {
            let period = rest
                .iter()
                .find_map(|x| x.strip_prefix("http_req_rate(")?.strip_suffix(')'))
                .and_then(seconds);
            let ip = rest
                .windows(2)
                .any(|p| p[0] == "type" && p[1].starts_with("ip"));
            match period {
                Some(t) if ip => {
                    let size = rest
                        .windows(2)
                        .find(|p| p[0] == "size")
                        .and_then(|p| count(p[1]));
                    a.table = Some((size, t));
                    a.unused.push(l.clone());
                    true
                }
                _ => false,
            }
        }
        ["http-request" | "tcp-request", "track-sc0", "src"]
        | ["tcp-request", "connection" | "content", "track-sc0", "src"] => {
            a.tracked = true;
            if a.table.is_some() {
                a.unused.push(l.clone());
            }
            a.table.is_some()
        }
        ["http-request", "deny", rest @ ..] => {
            let carried = deny(c, l, a, rest, true);
            // A bare deny completes the allow list of the sources allowed before it.
            let before = match (&a.let_through, rest.is_empty()) {
                (Some(b), _) => Some(b),
                (None, false) => a.src_allow.as_ref(),
                (None, true) => None,
            };
            if let (true, Some(before)) = (carried, before) {
                c.warn(
                    &l.at,
                    l.text(),
                    format!(
                        "carried, but HAProxy let requests through or answered them at line {} (`{}`) before this rule, and Switchyard refuses before routing: it may now refuse requests HAProxy let through; check that rule's requests",
                        before.at.line,
                        before.text()
                    ),
                );
            }
            carried
        }
        ["tcp-request", "connection" | "content", "reject", rest @ ..] => {
            deny(c, l, a, rest, false)
        }
        ["http-request", "allow", "if", cond @ ..] => match src(a, cond) {
            Some((false, blocks)) => {
                a.pending_allow.push((l.clone(), blocks));
                true
            }
            _ => false,
        },
        _ => false,
    }
}

/// `deny_status N`, then `if`/`unless` and one source condition (or a rate condition).
fn deny(c: &mut Config, l: &Line, a: &mut Access, rest: &[&str], http: bool) -> bool {
    let mut status = "403";
    let mut rest = rest;
    if let ["deny_status", n, more @ ..] = rest {
        status = n;
        rest = more;
    }
    let tcp = a.tcp;
    let status_note = |c: &mut Config| {
        if status != "403" {
            c.approx(
                &l.at,
                l.text(),
                format!("refused with 403 (HAProxy: {status})"),
            );
        } else if !http && !tcp {
            c.approx(
                &l.at,
                l.text(),
                "an http listener answers 403 and keeps the connection (HAProxy closes it); a tcp listener closes it",
            );
        }
    };
    match rest {
        [] if http && !a.pending_allow.is_empty() => {
            for (_, blocks) in std::mem::take(&mut a.pending_allow) {
                a.guard.allow.extend(blocks);
            }
            status_note(c);
            true
        }
        ["if", cond @ ..] if rate(c, l, a, cond, status) => true,
        ["if", "{", crit, values @ .., "}"] if http && path_blocks(crit, values).is_some() => {
            let blocks = path_blocks(crit, values).expect("checked");
            block(c, l, a, blocks, status);
            true
        }
        // `acl blocked path_beg /admin` + `deny if blocked`: as the inline form (one name
        // alone; `!NAME`, `unless` and several conditions are not carried).
        ["if", name] if http && named_paths(a, name).is_some() => {
            let blocks = named_paths(a, name).expect("checked");
            block(c, l, a, blocks, status);
            true
        }
        ["if" | "unless", cond @ ..] => match src(a, cond) {
            Some((negated, blocks)) => {
                if negated == (rest[0] == "if") {
                    a.guard.allow.extend(blocks);
                } else {
                    a.guard.deny.extend(blocks);
                }
                status_note(c);
                true
            }
            None => false,
        },
        _ => false,
    }
}

/// Block rules refusing `regexes` with `status` (`deny_status`), carried when a block rule
/// takes it (400 to 599; else 403 and a note).
fn block(c: &mut Config, l: &Line, a: &mut Access, regexes: Vec<String>, status: &str) {
    let n = status
        .parse::<u16>()
        .ok()
        .filter(|n| (400..=599).contains(n));
    if n.is_none() {
        c.approx(
            &l.at,
            l.text(),
            format!("refused with 403 (HAProxy: {status}; a block rule answers 400 to 599)"),
        );
    }
    let n = n.unwrap_or(403);
    a.guard.blocks.extend(regexes.into_iter().map(|r| (r, n)));
}

/// `{ path_beg /a /b }`, `path_end`, `path` (exact), `path_reg`, `path_sub`: one block
/// rule's path regex per value; `None` for anything else (flags included).
fn path_blocks(crit: &str, values: &[&str]) -> Option<Vec<String>> {
    // One condition only: `{ path_beg /a } || { path_end .php }` or `{ path_beg /a }
    // !{ src 10.0.0.0/8 }` would read the words of the others as paths (and block what
    // HAProxy let through): such a rule is reported, not carried.
    let other = |v: &&str| matches!(*v, "{" | "}" | "||" | "or" | "if" | "unless");
    if values.is_empty()
        || values
            .iter()
            .any(|v| v.starts_with('-') || v.starts_with('!') || other(v))
    {
        return None;
    }
    let one = |v: &str| match crit {
        "path_beg" => Some(format!("^{}", regex::escape(v))),
        "path_end" => Some(format!("{}$", regex::escape(v))),
        "path" => Some(format!("^{}$", regex::escape(v))),
        "path_sub" => Some(regex::escape(v)),
        "path_reg" if regex::Regex::new(v).is_ok() => Some(v.to_string()),
        _ => None,
    };
    values.iter().map(|v| one(v)).collect()
}

/// The block rules' regexes of an ACL that only matches paths (every line of it a path
/// criterion this import carries).
fn named_paths(a: &Access, name: &str) -> Option<Vec<String>> {
    if a.srcs.contains_key(name) || a.others.contains(name) {
        return None;
    }
    a.paths.get(name).cloned().flatten()
}

/// One source condition: `{ src A B }`, `NAME` or `!NAME` (an `acl NAME src …`);
/// (negated, blocks).
fn src(a: &Access, cond: &[&str]) -> Option<(bool, Vec<String>)> {
    match cond {
        ["{", "src", values @ .., "}"] if !values.iter().any(|v| v.starts_with('-')) => {
            Some((false, values.iter().map(|v| v.to_string()).collect()))
        }
        [name] => {
            let (negated, name) = match name.strip_prefix('!') {
                Some(n) => (true, n),
                None => (false, *name),
            };
            // A name with lines of other criteria matches more than its sources.
            if a.others.contains(name) || a.paths.contains_key(name) {
                return None;
            }
            a.srcs.get(name).cloned().flatten().map(|b| (negated, b))
        }
        _ => None,
    }
}

/// `{ sc_http_req_rate(0) gt N }` (or `sc0_http_req_rate`, `ge`) with the table tracked
/// by source: a limit of N requests per period.
fn rate(c: &mut Config, l: &Line, a: &mut Access, cond: &[&str], status: &str) -> bool {
    let ["{", what, op, n, "}"] = cond else {
        return false;
    };
    let (Some((size, period)), true) = (a.table, a.tracked) else {
        return false;
    };
    let n: u64 = match (n.parse::<u64>(), *op) {
        (Ok(n), "gt") => n,
        (Ok(n), "ge") if n > 0 => n - 1,
        _ => return false,
    };
    if !matches!(
        *what,
        "sc_http_req_rate(0)" | "sc0_http_req_rate" | "sc0_http_req_rate()"
    ) || n == 0
    {
        return false;
    }
    // N requests a period: the rate, with N - 1 of them at once as the burst.
    let per = |unit: u64, word: &str| {
        let n = n.checked_mul(unit / period)?;
        Some(format!("{n}/{word}"))
    };
    let rate = if period == 1 {
        Some(format!("{n}/s"))
    } else if 60u64.is_multiple_of(period) {
        per(60, "m")
    } else if 3600u64.is_multiple_of(period) {
        per(3600, "h")
    } else {
        None
    };
    let Some(rate) = rate else {
        return false;
    };
    a.unused.clear();
    a.guard.limits.push(Limit {
        key: "client_ip".into(),
        rate,
        burst: (n > 1).then(|| u32::try_from(n - 1).unwrap_or(u32::MAX)),
        size,
        at: l.at.clone(),
        zone: String::new(),
    });
    let status = if status == "429" {
        String::new()
    } else {
        format!("; refused with 429 and Retry-After (HAProxy: {status}, deny_status)")
    };
    c.approx(
        &l.at,
        l.text(),
        format!("a steady rate with {n} at once (GCRA) instead of HAProxy's sliding count over the period{status}"),
    );
    true
}

/// A HAProxy period (`10s`, `1m`, bare milliseconds) in whole seconds.
fn seconds(s: &str) -> Option<u64> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().ok()?;
    let secs = match unit {
        "" | "ms" if n.is_multiple_of(1000) => n / 1000,
        "s" => n,
        "m" => n.checked_mul(60)?,
        "h" => n.checked_mul(3600)?,
        _ => return None,
    };
    (secs > 0).then_some(secs)
}

/// A stick-table size (`100k`, `1m`, a number) as a count of keys.
fn count(s: &str) -> Option<u64> {
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: u64 = num.parse().ok()?;
    let n = match unit {
        "" => n,
        "k" => n.checked_mul(1000)?,
        "m" => n.checked_mul(1_000_000)?,
        "g" => n.checked_mul(1_000_000_000)?,
        _ => return None,
    };
    Some(n.clamp(1, 100_000_000))
}

/// Notes for what was read but not used: an `allow if` with no bare deny after it, a
/// table no rate rule used.
pub fn finish(c: &mut Config, a: &mut Access) {
    for l in std::mem::take(&mut a.unused) {
        c.note(
            &l.at,
            l.text(),
            "a stick table is carried as a rate limit only with `http-request deny if { sc_http_req_rate(0) gt N }`; write [[listener.limit]] by hand (docs/security.md)",
        );
    }
    for (l, _) in std::mem::take(&mut a.pending_allow) {
        c.note(
            &l.at,
            l.text(),
            "without a bare `http-request deny` after it this rule refuses no one: not carried",
        );
    }
}

#[cfg(test)]
mod tests {
    use crate::import::{Imported, Source, import};

    fn haproxy(name: &str, text: &str) -> Imported {
        let dir = std::env::temp_dir().join(format!("sy-import-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("haproxy.cfg");
        std::fs::write(&file, text).unwrap();
        let i = import(&[file.as_path()], Some(Source::Haproxy), "imported.toml").unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(i.check, Ok(()), "{}", i.toml);
        i
    }

    const CFG: &str = "defaults
  mode http
  timeout connect 5s
frontend f
  bind 127.0.0.1:18080
  acl bad src 192.0.2.0/24 198.51.100.7
  http-request deny if bad
  tcp-request connection reject if { src 203.0.113.0/24 }
  stick-table type ip size 100k expire 30s store http_req_rate(10s)
  http-request track-sc0 src
  http-request deny deny_status 429 if { sc_http_req_rate(0) gt 20 }
  default_backend b
backend b
  timeout queue 10s
  server a 127.0.0.1:9001 maxconn 50
  server b2 127.0.0.1:9002 maxconn 50
";

    #[test]
    fn deny_by_source_rate_tables_maxconn_and_the_queue_are_carried() {
        let i = haproxy("guard", CFG);
        for want in [
            "deny = [\"192.0.2.0/24\", \"198.51.100.7\", \"203.0.113.0/24\"]",
            "  [[listener.limit]]\n  key = \"client_ip\"\n  rate = \"120/m\"\n  burst = 19\n  size = 100000\n",
            "queue_timeout = \"10s\"",
            "{ addr = \"127.0.0.1:9001\", name = \"a\", max_conns = 50 }",
        ] {
            assert!(i.toml.contains(want), "{want} in\n{}", i.toml);
        }
        // Carried: the acl, both deny rules, the table and its tracking say nothing.
        for line in [6, 7, 9, 10] {
            assert!(!i.notes.iter().any(|n| n.at.line == line), "{:?}", i.notes);
        }
        assert!(i.notes.iter().any(|n| n.at.line == 11 && n.approximated));
        assert!(
            i.notes
                .iter()
                .any(|n| n.at.line == 15 && n.approximated && n.why.contains("queue"))
        );
    }

    /// `acl NAME path_beg …` named alone in a deny is carried as the inline form is (with
    /// its `deny_status`); `!NAME`, `unless NAME`, two names, and a name that also has a
    /// line of another criterion are reported, not carried.
    #[test]
    fn a_deny_on_a_named_path_acl_is_a_block_rule() {
        let cfg = |rule: &str, more: &str| {
            format!(
                "defaults\n  mode http\n  timeout connect 4s\nfrontend f\n  bind 127.0.0.1:18080\n  acl blocked path_beg /admin /internal\n  acl blocked path_end .php\n  acl api path_beg /api\n{more}  {rule}\n  default_backend b\nbackend b\n  server a 127.0.0.1:9001\n"
            )
        };
        let i = haproxy(
            "named",
            &cfg("http-request deny deny_status 404 if blocked", ""),
        );
        for want in [
            "path_regex = \"^/admin\"\n  status = 404",
            "path_regex = \"^/internal\"\n  status = 404",
            "path_regex = '\\.php$'\n  status = 404",
        ] {
            assert!(i.toml.contains(want), "{want} in\n{}", i.toml);
        }
        assert!(i.notes.iter().all(|n| !n.warning), "{:?}", i.notes);
        for (rule, more) in [
            ("http-request deny if !blocked", ""),
            ("http-request deny unless blocked", ""),
            ("http-request deny if blocked api", ""),
            ("http-request deny if blocked || api", ""),
            (
                "http-request deny if blocked",
                "  acl blocked hdr(host) a.test\n",
            ),
        ] {
            let i = haproxy("named-not", &cfg(rule, more));
            assert!(!i.toml.contains("block"), "{rule}:\n{}", i.toml);
            assert!(
                i.notes
                    .iter()
                    .any(|n| n.warning && n.directive.contains("deny")),
                "{rule}: {:?}",
                i.notes
            );
        }
    }

    /// A deny on several conditions is not read as one path condition (its other words
    /// would become paths): reported as not carried, and no block rule is written.
    #[test]
    fn a_deny_on_several_conditions_is_reported_not_carried() {
        for cond in [
            "{ path_beg /admin } || { path_end .php }",
            "{ path_beg /admin } !{ src 10.0.0.0/8 }",
            "{ path_sub src } { src 10.0.0.0/8 }",
        ] {
            let i = haproxy(
                "multi",
                &format!(
                    "defaults\n  mode http\n  timeout connect 4s\nfrontend f\n  bind 127.0.0.1:18080\n  http-request deny if {cond}\n  default_backend b\nbackend b\n  server a 127.0.0.1:9001\n"
                ),
            );
            assert!(!i.toml.contains("block"), "{cond}:\n{}", i.toml);
            assert!(
                i.notes.iter().any(|n| n.at.line == 6 && n.warning),
                "{cond}: {:?}",
                i.notes
            );
        }
    }

    /// `deny if !ok` / `allow if ok` + `deny`: an allow list; a table without a rate rule
    /// is reported; without `timeout queue` the wait is `timeout connect`, as in HAProxy.
    #[test]
    fn allow_lists_and_unused_tables() {
        let i = haproxy(
            "allow",
            "defaults\n  mode http\n  timeout connect 4s\nfrontend f\n  bind 127.0.0.1:18080\n  acl ok src 10.0.0.0/8\n  http-request allow if ok\n  http-request deny\n  stick-table type ip size 1k store http_req_rate(10s)\n  default_backend b\nbackend b\n  server a 127.0.0.1:9001 maxconn 5\n",
        );
        assert!(i.toml.contains("allow = [\"10.0.0.0/8\"]"), "{}", i.toml);
        assert!(i.toml.contains("queue_timeout = \"4s\""), "{}", i.toml);
        assert!(i.notes.iter().any(|n| n.at.line == 9 && !n.approximated));
        assert!(!i.notes.iter().any(|n| n.at.line == 7 || n.at.line == 8));
    }

    /// An `acl` line written after the deny that names it extends the ACL (HAProxy reads
    /// ACLs at request time): a later path line is blocked too, a later line of another
    /// criterion makes the deny reported, not carried; a source ACL alike.
    #[test]
    fn acl_lines_after_the_deny_count() {
        let cfg = |more: &str| {
            format!(
                "defaults\n  mode http\n  timeout connect 4s\nfrontend f\n  bind 127.0.0.1:18080\n  acl blocked path_beg /a\n  http-request deny if blocked\n  http-request deny if bad\n  acl blocked path_beg /b\n  acl bad src 192.0.2.0/24\n{more}  default_backend b\nbackend b\n  server a 127.0.0.1:9001\n"
            )
        };
        let i = haproxy("late-acl", &cfg(""));
        for want in [
            "path_regex = \"^/a\"",
            "path_regex = \"^/b\"",
            "deny = [\"192.0.2.0/24\"]",
        ] {
            assert!(i.toml.contains(want), "{want} in\n{}", i.toml);
        }
        assert!(i.notes.iter().all(|n| !n.warning), "{:?}", i.notes);
        let i = haproxy(
            "late-acl-other",
            &cfg("  acl blocked hdr(host) evil.test\n  acl bad hdr(host) evil.test\n"),
        );
        assert!(!i.toml.contains("path_regex"), "{}", i.toml);
        assert!(!i.toml.contains("192.0.2.0/24"), "{}", i.toml);
        for line in [7, 8] {
            assert!(
                i.notes.iter().any(|n| n.at.line == line && n.warning),
                "line {line}: {:?}",
                i.notes
            );
        }
    }

    /// An `http-request allow|return|redirect` (not only on sources) before a carried deny:
    /// HAProxy let some requests through there that the block rule now refuses: warned.
    #[test]
    fn a_deny_after_an_allow_or_answer_is_warned() {
        let cfg = |before: &str| {
            format!(
                "defaults\n  mode http\n  timeout connect 4s\nfrontend f\n  bind 127.0.0.1:18080\n  acl ok src 10.0.0.0/8\n{before}  http-request deny if {{ path_beg /admin }}\n  default_backend b\nbackend b\n  server a 127.0.0.1:9001\n"
            )
        };
        for before in [
            "  http-request allow if { path_beg /admin/public }\n",
            "  http-request return status 200 if { path /admin/ping }\n",
            "  http-request redirect location /login if { path_beg /admin/old }\n",
        ] {
            let i = haproxy("let-through", &cfg(before));
            assert!(i.toml.contains("path_regex = \"^/admin\""), "{}", i.toml);
            let w: Vec<String> = i
                .notes
                .iter()
                .filter(|n| n.warning && n.at.line == 8)
                .map(|n| n.to_string())
                .collect();
            assert!(
                w.len() == 1
                    && w[0].starts_with("warning: ")
                    && w[0].contains("may now refuse requests HAProxy let through"),
                "{before}: {:?}",
                i.notes
            );
        }
        // Sources allowed before a deny on paths pass it in HAProxy: warned too.
        let i = haproxy("let-through-src", &cfg("  http-request allow if ok\n"));
        assert!(
            i.notes
                .iter()
                .any(|n| n.warning && n.why.contains("may now refuse")),
            "{:?}",
            i.notes
        );
        // Not the https redirect (answered before any block rule), nor an allow list's
        // closing bare deny.
        let quiet = [
            cfg("  http-request redirect scheme https unless { ssl_fc }\n"),
            "defaults\n  mode http\n  timeout connect 4s\nfrontend f\n  bind 127.0.0.1:18080\n  acl ok src 10.0.0.0/8\n  http-request allow if ok\n  http-request deny\n  default_backend b\nbackend b\n  server a 127.0.0.1:9001\n".to_string(),
        ];
        for text in quiet {
            let i = haproxy("quiet", &text);
            assert!(
                !i.notes.iter().any(|n| n.why.contains("may now refuse")),
                "{text}: {:?}",
                i.notes
            );
        }
    }
}

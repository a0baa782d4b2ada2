//! DNS discovery: servers written with a host name (`app.test:8080`) or an SRV name
//! (`_http._tcp.app.test`) made into servers, one per address, and kept up to date.
//!
//! The config reader only checks how a name is written ([`crate::config::NamedServer`]).
//! Here:
//! - [`resolve`] asks every name of a plan (at `check`, at start, at each reload), or keeps
//!   the running answer of a `resolve = true` name that a reload did not change; a name
//!   without an address is an error with its file:line:column and the fix, unless the pool
//!   says `init_addr = "none"`.
//! - [`Book`] (`book.rs`) holds the answers and says when each `resolve = true` name is due
//!   again (its TTL, bounded); the runtime asks those with [`ask`] (`ask.rs`) and records
//!   the answers.
//! - [`expand`] (`expand.rs`) makes the plan to run: the written plan with each name's
//!   addresses in its place. The runtime applies it with `Runtime::apply`'s diff, as a
//!   reload: servers that stay keep their state, removed ones drain.
//!
//! Nothing here touches a pool or a server: the answers become a [`Plan`].

mod answer;
mod ask;
mod book;
mod expand;

use futures_util::future::join_all;
use tokio::time::Instant;

pub use answer::{Answer, Asked, Lookup, Question, Target};
pub use ask::ask;
pub use book::{Book, Entry, Key};
pub use expand::{Tweak, expand};

use crate::config::{ConfigError, InitAddr, NamedServer, Plan, PoolPlan, format_duration};

/// How a note ends for a name whose running answer a reload kept.
pub const KEPT: &str = "; kept from the running configuration";

/// The answers for a plan, and one line per name saying what it resolved to (for `check`
/// and the log).
#[derive(Debug, Clone, Default)]
pub struct Resolved {
    pub book: Book,
    pub notes: Vec<String>,
}

/// Resolve every name of `plan`. A `resolve = true` name that `previous` (the running
/// configuration's book) already has, asked the same way, keeps its answer and its schedule:
/// a reload does not wait on DNS for it. Every other name is asked now, all at once. A name
/// that gives no address is an error, unless it has `resolve = true` and its pool
/// `init_addr = "none"` (then the pool starts without it and waits).
pub async fn resolve(plan: &Plan, previous: &Book) -> Result<Resolved, Vec<ConfigError>> {
    let now = Instant::now();
    let mut book = Book::default();
    let mut asking = Vec::new();
    for p in &plan.pools {
        for n in &p.named {
            let key = Key {
                pool: p.name.clone(),
                question: Question::of(n, &p.dns),
            };
            let mut entry = Entry::new(&n.written, n.resolve, &p.dns);
            match previous.entries.get(&key) {
                Some(old) if n.resolve && old.answer.is_some() => {
                    entry.answer.clone_from(&old.answer);
                    entry.misses = old.misses;
                    entry.next = old.next.or(Some(now));
                    book.entries.insert(key, entry);
                }
                _ => {
                    book.entries.insert(key.clone(), entry);
                    asking.push((p, n, key));
                }
            }
        }
    }
    let answers = join_all(asking.iter().map(|(_, _, k)| ask(&k.question))).await;
    // The next questions count from the answers.
    let now = Instant::now();
    let mut errors = Vec::new();
    let mut fresh = std::collections::HashSet::new();
    for ((p, n, key), lookup) in asking.iter().zip(answers) {
        let entry = book.entries.get_mut(key).expect("inserted above");
        let failed = lookup.as_ref().err().cloned();
        entry.take(lookup, now);
        fresh.insert(key.clone());
        if entry.targets().is_empty() && !(n.resolve && p.dns.init_addr == InitAddr::None) {
            errors.push(no_address(p, n, key, entry, failed));
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    let mut notes = Vec::new();
    for p in &plan.pools {
        for n in &p.named {
            let key = Key {
                pool: p.name.clone(),
                question: Question::of(n, &p.dns),
            };
            if let Some(e) = book.entries.get(&key) {
                notes.push(note(p, n, &key, e, fresh.contains(&key)));
            }
        }
    }
    Ok(Resolved { book, notes })
}

/// What `switchyard check` does with a plan's names: resolve them once, as `run` does at
/// start (on a runtime of its own, so it is called outside one), and give the plan with
/// their addresses and one note per name saying what it resolved to.
pub fn resolve_now(plan: &Plan) -> Result<(Plan, Vec<String>), Vec<ConfigError>> {
    if plan.pools.iter().all(|p| p.named.is_empty()) {
        return Ok((plan.clone(), Vec::new()));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            vec![ConfigError {
                file: "DNS".into(),
                line: 0,
                column: 0,
                message: format!("cannot start a resolver: {e}"),
                help: None,
            }]
        })?;
    let resolved = rt.block_on(resolve(plan, &Book::default()))?;
    Ok((apply(plan, &resolved.book, &[]), resolved.notes))
}

/// `check`'s report of a file: its plan with the host names resolved (and a note per name),
/// or every problem in one run, in file order: the file's errors and the names of its
/// servers that give no address, each with file:line:column and the fix.
pub fn check_file(
    path: &std::path::Path,
) -> Result<(Plan, Vec<String>), crate::config::ConfigErrors> {
    let (plan, mut errors) = crate::config::read_file(path);
    match resolve_now(&plan) {
        Ok(resolved) if errors.is_empty() => return Ok(resolved),
        Ok(_) => {}
        Err(dns) => errors.extend(dns),
    }
    // Stable: two errors at one place keep the order each list gave them.
    errors.sort_by_key(|e| (e.line, e.column));
    Err(crate::config::ConfigErrors(errors))
}

/// The plan to run: `plan` with the addresses of `book` (and the operator's `tweaks`).
pub fn apply(plan: &Plan, book: &Book, tweaks: &[Tweak]) -> Plan {
    expand(plan, |pool, q| book.targets(pool, q), tweaks)
}

/// `pool "web": app.test:8080 (resolve = true, asked 127.0.0.1:5353) → 10.0.0.1:8080, …`.
fn note(p: &PoolPlan, n: &NamedServer, key: &Key, e: &Entry, fresh: bool) -> String {
    let how = if n.resolve { "resolve = true, " } else { "" };
    let srv = if n.is_srv() { "SRV, " } else { "" };
    let what = e
        .answer
        .as_ref()
        .map_or("not asked yet".into(), Answer::describe);
    let when = match (n.resolve, e.answer.as_ref().and_then(|a| a.ttl)) {
        (false, _) => "resolved at start and at each reload".to_string(),
        (true, _) if e.targets().is_empty() => format!(
            "init_addr = \"none\": the pool starts without it and asks again from {} to {}",
            format_duration(crate::config::RESOLVE_MIN_INTERVAL),
            format_duration(p.dns.valid)
        ),
        (true, Some(ttl)) => format!(
            "asked again every {} (TTL {})",
            format_duration(p.dns.interval(ttl)),
            format_duration(ttl)
        ),
        (true, None) => format!("asked again every {}", format_duration(p.dns.valid)),
    };
    let kept = if fresh { "" } else { KEPT };
    format!(
        "pool {:?}: {} ({srv}{how}asked {}) → {what}; {when}{kept}",
        p.name, n.written, key.question.asked
    )
}

/// The error for a name that gave no address at start.
fn no_address(
    p: &PoolPlan,
    n: &NamedServer,
    key: &Key,
    e: &Entry,
    failed: Option<String>,
) -> ConfigError {
    let q = &key.question;
    let message = match (&failed, e.answer.as_ref().and_then(|a| a.none.clone())) {
        (Some(err), _) => format!(
            "server addr {:?}: no answer about {:?} from {}: {err}",
            n.written, q.host, q.asked
        ),
        (None, why) => format!(
            "server addr {:?}: the name {:?} does not resolve ({}, asked {})",
            n.written,
            q.host,
            why.unwrap_or_else(|| "no address".into()),
            q.asked
        ),
    };
    let wait = match n.resolve {
        true => format!(
            "to start without it and wait for DNS, set init_addr = \"none\" in [pool.{}]",
            p.name
        ),
        false => format!(
            "to start without it and wait for DNS, add resolve = true to the server and init_addr = \"none\" to [pool.{}]",
            p.name
        ),
    };
    let check = match failed {
        Some(_) => "check that the DNS server answers",
        None => "check the name",
    };
    ConfigError {
        file: n.origin.file.clone(),
        line: n.origin.line,
        column: n.origin.column,
        message,
        help: Some(format!(
            "{check} ({}), or write an IP address; {wait}",
            q.dig()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(pool: &str) -> Plan {
        let src = format!("[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\n{pool}");
        crate::config::load_str(&src, "t.toml").unwrap_or_else(|e| panic!("{e}"))
    }

    #[tokio::test]
    async fn a_name_without_resolve_or_resolver_asks_the_c_library_for_every_address() {
        let p = plan("servers = [ { addr = \"localhost:9\" } ]\n");
        let r = resolve(&p, &Book::default()).await.unwrap();
        let run = apply(&p, &r.book, &[]);
        let addrs: Vec<String> = run.pools[0]
            .servers
            .iter()
            .map(|s| s.addr.to_string())
            .collect();
        assert!(addrs.contains(&"127.0.0.1:9".to_string()), "{addrs:?}");
        assert!(
            r.notes[0].starts_with(
                "pool \"p\": localhost:9 (asked the system's resolver (getaddrinfo)) → "
            ) && r.notes[0].ends_with("; resolved at start and at each reload"),
            "{:?}",
            r.notes
        );
        assert_eq!(r.book.watched(), 0);
    }

    #[tokio::test]
    async fn a_dns_server_that_does_not_answer_is_an_error_at_the_line_with_the_fix() {
        // Nothing listens on UDP port 9 of 127.0.0.1 (discard): refused, or no answer.
        let p = plan(
            "resolver = \"127.0.0.1:9\"\nresolver_timeout = \"1s\"\nservers = [ { addr = \"app.test:80\", resolve = true } ]\n",
        );
        let e = resolve(&p, &Book::default()).await.unwrap_err();
        let text = crate::config::ConfigErrors(e).to_string();
        assert!(
            text.starts_with(
                "error: t.toml:7:22: server addr \"app.test:80\": no answer about \"app.test\" from 127.0.0.1:9: "
            ),
            "{text}"
        );
        assert!(
            text.contains("help: check that the DNS server answers (dig @127.0.0.1 -p 9 app.test A), or write an IP address; to start without it and wait for DNS, set init_addr = \"none\" in [pool.p]"),
            "{text}"
        );
        // Waiting instead: no error, no server yet, asked again in a second.
        let p = plan(
            "resolver = \"127.0.0.1:9\"\nresolver_timeout = \"1s\"\ninit_addr = \"none\"\nservers = [ { addr = \"app.test:80\", resolve = true } ]\n",
        );
        let r = resolve(&p, &Book::default()).await.unwrap();
        assert!(apply(&p, &r.book, &[]).pools[0].servers.is_empty());
        assert_eq!(r.book.watched(), 1);
        let (due, next) = r.book.due(Instant::now());
        assert!(due.is_empty() && next.is_some());
    }
}

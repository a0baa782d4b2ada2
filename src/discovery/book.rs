//! The book of answers: for each named server of each pool, the addresses in use, when its
//! name was asked, and when to ask again. Plain data with the clock passed in; the runtime
//! asks the questions that are due (`ask.rs`) and records what comes back.
//!
//! When a `resolve = true` name is asked again:
//! - after an answer with addresses: when its TTL runs out, bounded by the pool's
//!   [`DnsPlan::interval`] (at least 1 s, at most `resolver_valid`, 30 s by default);
//! - after an answer of no address, or no answer: 1 s, then 2, 4, 8, 16 s, at most
//!   `resolver_valid`, until one comes.
//!
//! An answer with other addresses replaces the ones in use (the pool then changes as on a
//! reload); an answer of no address (NXDOMAIN, no record) empties them, as nginx does; no
//! answer at all (a time-out, SERVFAIL, no DNS server) keeps them, and is logged.

use std::collections::HashMap;
use std::time::Duration;

use tokio::time::Instant;

use super::answer::{Answer, Lookup, Question, Target};
use crate::config::{DnsPlan, RESOLVE_MIN_INTERVAL};

/// A named server of a pool.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub pool: String,
    pub question: Question,
}

/// What is known of one name.
#[derive(Debug, Clone)]
pub struct Entry {
    /// The name as written, for logs.
    pub written: String,
    /// Asked again while running.
    pub resolve: bool,
    pub dns: DnsPlan,
    /// The answer in use; `None` until one came.
    pub answer: Option<Answer>,
    /// When to ask again (`resolve = true` only).
    pub next: Option<Instant>,
    /// Questions in a row that got no answer or one of no address.
    pub misses: u32,
}

impl Entry {
    pub fn new(written: &str, resolve: bool, dns: &DnsPlan) -> Entry {
        Entry {
            written: written.to_string(),
            resolve,
            dns: dns.clone(),
            answer: None,
            next: None,
            misses: 0,
        }
    }

    /// The addresses in use.
    pub fn targets(&self) -> &[Target] {
        self.answer.as_ref().map_or(&[], |a| a.targets.as_slice())
    }

    /// How long after a miss to ask again: 1 s, doubling, at most `resolver_valid`.
    fn backoff(&self) -> Duration {
        let doubled = RESOLVE_MIN_INTERVAL * (1u32 << self.misses.saturating_sub(1).min(4));
        self.dns.interval(doubled)
    }

    /// Take `lookup`, asked at `now`; returns a line saying how the addresses changed, if
    /// they did.
    pub fn take(&mut self, lookup: Lookup, now: Instant) -> Option<String> {
        let before: Vec<Target> = self.targets().to_vec();
        match lookup {
            Ok(answer) if !answer.targets.is_empty() => {
                self.misses = 0;
                let ttl = answer.ttl.unwrap_or(self.dns.valid);
                self.next = self.resolve.then(|| now + self.dns.interval(ttl));
                self.answer = Some(answer);
            }
            Ok(answer) => {
                self.misses += 1;
                self.next = self.resolve.then(|| now + self.backoff());
                self.answer = Some(answer);
            }
            Err(e) => {
                self.misses += 1;
                self.next = self.resolve.then(|| now + self.backoff());
                let kept = match before.len() {
                    0 => "no address yet".to_string(),
                    n => format!("keeping its {n} address(es)"),
                };
                tracing::warn!(
                    "DNS: {}: no answer ({e}); {kept}; asking again in {}",
                    self.written,
                    crate::config::format_duration(self.backoff())
                );
                return None;
            }
        }
        let after = self.targets();
        if before == after {
            return None;
        }
        let added: Vec<String> = after
            .iter()
            .filter(|t| !before.contains(t))
            .map(Target::to_string)
            .collect();
        let removed: Vec<String> = before
            .iter()
            .filter(|t| !after.contains(t))
            .map(Target::to_string)
            .collect();
        let mut what = Vec::new();
        if !added.is_empty() {
            what.push(format!("added {}", added.join(", ")));
        }
        if !removed.is_empty() {
            what.push(format!("removed {} (drains)", removed.join(", ")));
        }
        let now_in_use = self.answer.as_ref().map_or(String::new(), Answer::describe);
        Some(format!(
            "{} → {now_in_use} ({})",
            self.written,
            what.join("; ")
        ))
    }
}

/// Every name of the running configuration.
#[derive(Debug, Clone, Default)]
pub struct Book {
    pub entries: HashMap<Key, Entry>,
}

impl Book {
    /// The addresses in use for `question` in `pool` (none when unknown).
    pub fn targets(&self, pool: &str, question: &Question) -> &[Target] {
        let key = Key {
            pool: pool.to_string(),
            question: question.clone(),
        };
        self.entries.get(&key).map_or(&[], Entry::targets)
    }

    /// The names due to be asked at `now`, and when the next one is due after them.
    pub fn due(&self, now: Instant) -> (Vec<Key>, Option<Instant>) {
        let mut due = Vec::new();
        let mut next: Option<Instant> = None;
        for (k, e) in &self.entries {
            match e.next {
                Some(t) if t <= now => due.push(k.clone()),
                Some(t) => next = Some(next.map_or(t, |n| n.min(t))),
                None => {}
            }
        }
        (due, next)
    }

    /// Record what `key`'s question got at `now`; a line saying how its addresses changed, if
    /// they did. A key no longer in the book (a reload took its server away) is ignored.
    pub fn record(&mut self, key: &Key, lookup: Lookup, now: Instant) -> Option<String> {
        self.entries.get_mut(key)?.take(lookup, now)
    }

    /// How many names are asked again while running.
    pub fn watched(&self) -> usize {
        self.entries.values().filter(|e| e.resolve).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::discovery::answer::Asked;

    fn key() -> Key {
        Key {
            pool: "web".into(),
            question: Question {
                host: "app.test".into(),
                port: Some(80),
                asked: Asked::Servers(vec!["127.0.0.1:53".parse().unwrap()]),
                timeout: Duration::from_secs(5),
            },
        }
    }

    fn answer(last: &[u8], ttl: u64) -> Lookup {
        let t = last
            .iter()
            .map(|l| Target {
                backup: false,
                addr: std::net::SocketAddr::from(([10, 0, 0, *l], 80)),
                weight: None,
            })
            .collect();
        Ok(Answer::of(t, Some(Duration::from_secs(ttl))))
    }

    fn book() -> Book {
        let mut b = Book::default();
        b.entries
            .insert(key(), Entry::new("app.test:80", true, &DnsPlan::default()));
        b
    }

    #[tokio::test(start_paused = true)]
    async fn the_ttl_decides_when_to_ask_again_within_one_second_and_resolver_valid() {
        let mut b = book();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert!(b.record(&key(), answer(&[1, 2], 5), t0).is_some());
        assert_eq!(b.due(t0 + s(4)), (vec![], Some(t0 + s(5))));
        assert_eq!(b.due(t0 + s(5)).0, [key()]);
        // TTL 0 (Consul, Kubernetes): once a second at most.
        b.record(&key(), answer(&[1, 2], 0), t0 + s(5));
        assert_eq!(b.due(t0 + s(5)).1, Some(t0 + s(6)));
        // A day-long TTL: resolver_valid (30 s) at most.
        b.record(&key(), answer(&[1, 2], 86_400), t0 + s(6));
        assert_eq!(b.due(t0 + s(6)).1, Some(t0 + s(36)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_failure_keeps_the_addresses_and_no_address_empties_them_with_backoff() {
        let mut b = book();
        let t0 = Instant::now();
        let s = Duration::from_secs;
        b.record(&key(), answer(&[1, 2], 5), t0);
        assert_eq!(b.record(&key(), Err("timed out".into()), t0 + s(5)), None);
        assert_eq!(b.targets("web", &key().question).len(), 2, "kept");
        assert_eq!(b.due(t0 + s(5)).1, Some(t0 + s(6)));
        b.record(&key(), Err("timed out".into()), t0 + s(6));
        assert_eq!(b.due(t0 + s(6)).1, Some(t0 + s(8)), "backs off: 2 s");
        let change = b
            .record(&key(), Ok(Answer::none("NXDOMAIN", None)), t0 + s(8))
            .unwrap();
        assert!(b.targets("web", &key().question).is_empty());
        assert!(
            change.contains("removed 10.0.0.1:80, 10.0.0.2:80 (drains)"),
            "{change}"
        );
        assert_eq!(b.due(t0 + s(8)).1, Some(t0 + s(12)), "then 4 s");
        let change = b.record(&key(), answer(&[2, 3], 5), t0 + s(12)).unwrap();
        assert_eq!(
            change,
            "app.test:80 → 10.0.0.2:80, 10.0.0.3:80 (added 10.0.0.2:80, 10.0.0.3:80)"
        );
        // The same addresses again: no change.
        assert_eq!(b.record(&key(), answer(&[3, 2], 5), t0 + s(17)), None);
        assert_eq!(b.due(t0 + s(17)).1, Some(t0 + s(22)), "misses forgotten");
    }

    #[test]
    fn a_name_no_longer_in_the_book_is_ignored() {
        let mut b = Book::default();
        assert_eq!(b.record(&key(), answer(&[1], 5), Instant::now()), None);
        assert!(b.entries.is_empty());
    }
}

//! What is asked of DNS for one named server of a pool ([`Question`]), and what comes back
//! ([`Answer`]): plain values, shared by the asking (`ask.rs`), the book of answers
//! (`book.rs`) and the expansion into servers (`expand.rs`).

use std::net::SocketAddr;
use std::time::Duration;

use crate::config::{DnsPlan, NamedServer};

/// Who is asked.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Asked {
    /// The C library (`getaddrinfo`: `/etc/hosts`, then the system's DNS): a name without
    /// `resolve` in a pool without `resolver`, as nginx resolves names when it loads its
    /// configuration.
    Libc,
    /// The DNS servers of `/etc/resolv.conf`, asked directly (TTLs, SRV records).
    System,
    /// The pool's `resolver`.
    Servers(Vec<SocketAddr>),
}

impl std::fmt::Display for Asked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Asked::Libc => write!(f, "the system's resolver (getaddrinfo)"),
            Asked::System => write!(f, "the system's DNS servers (/etc/resolv.conf)"),
            Asked::Servers(list) => {
                let list: Vec<String> = list.iter().map(SocketAddr::to_string).collect();
                write!(f, "{}", list.join(", "))
            }
        }
    }
}

/// One question about one name.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Question {
    /// The name, in lower case (`app.test`, `_http._tcp.app.test`).
    pub host: String,
    /// `None`: SRV records, which give ports and weights.
    pub port: Option<u16>,
    pub asked: Asked,
    /// How long the question may take in all.
    pub timeout: Duration,
}

impl Question {
    /// The question a named server of a pool with `dns` asks.
    pub fn of(n: &NamedServer, dns: &DnsPlan) -> Question {
        let asked = if !dns.resolvers.is_empty() {
            Asked::Servers(dns.resolvers.clone())
        } else if n.resolve || n.is_srv() {
            Asked::System
        } else {
            Asked::Libc
        };
        Question {
            host: n.host.to_ascii_lowercase(),
            port: n.port,
            asked,
            timeout: dns.timeout,
        }
    }

    /// The `dig` command that asks the same, for a help line.
    pub fn dig(&self) -> String {
        let kind = if self.port.is_none() { "SRV" } else { "A" };
        match &self.asked {
            Asked::Servers(list) => {
                let s = list[0];
                let port = if s.port() == 53 {
                    String::new()
                } else {
                    format!(" -p {}", s.port())
                };
                format!("dig @{}{port} {} {kind}", s.ip(), self.host)
            }
            Asked::Libc => format!("getent ahosts {}", self.host),
            Asked::System => format!("dig {} {kind}", self.host),
        }
    }
}

/// One address a name gave.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Target {
    /// SRV: a target of a higher priority number than the lowest (used when none of the lowest
    /// can serve, as a backup server).
    pub backup: bool,
    pub addr: SocketAddr,
    /// SRV: the record's weight (0 counted as 1, at most 1000); `None` for A/AAAA.
    pub weight: Option<u32>,
}

impl std::fmt::Display for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.addr)?;
        if let Some(w) = self.weight {
            write!(f, " weight {w}")?;
        }
        if self.backup {
            write!(f, " backup")?;
        }
        Ok(())
    }
}

/// What DNS said of a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    /// Sorted (backups last), each address once. Empty: the name has no address (NXDOMAIN,
    /// no A/AAAA record, SRV records of no reachable target); then `none` says which.
    pub targets: Vec<Target>,
    /// The shortest TTL of the records (for no address: the negative TTL, if the server gave
    /// one); `None` from `getaddrinfo`, which gives none.
    pub ttl: Option<Duration>,
    /// Why there is no address.
    pub none: Option<String>,
}

impl Answer {
    /// An answer with addresses, put in order.
    pub fn of(mut targets: Vec<Target>, ttl: Option<Duration>) -> Answer {
        targets.sort();
        let mut seen = std::collections::HashSet::new();
        targets.retain(|t| seen.insert(t.addr));
        Answer {
            targets,
            ttl,
            none: None,
        }
    }

    /// No address, and why.
    pub fn none(why: impl Into<String>, ttl: Option<Duration>) -> Answer {
        Answer {
            targets: Vec::new(),
            ttl,
            none: Some(why.into()),
        }
    }

    /// The addresses on one line: `127.0.0.1:8080, 127.0.0.2:8080`.
    pub fn describe(&self) -> String {
        match (&self.none, self.targets.is_empty()) {
            (Some(why), true) => format!("no address ({why})"),
            (None, true) => "no address".into(),
            _ => {
                let t: Vec<String> = self.targets.iter().map(Target::to_string).collect();
                t.join(", ")
            }
        }
    }
}

/// The outcome of one question: an answer (perhaps of no address), or no answer at all
/// (a time-out, SERVFAIL, REFUSED, no DNS server reachable), said in words.
pub type Lookup = Result<Answer, String>;

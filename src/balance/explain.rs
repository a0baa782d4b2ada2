//! What a balancer would pick for a request now, and what it looked at to decide: the
//! [`Explanation`] that [`Balancer::explain`](super::Balancer::explain) returns.
//!
//! Explaining must not disturb traffic. A pick changes state: round robin's turn moves, the
//! random source of `p2c` and `random` advances, slow start counts an ask. An explanation
//! reads that state without changing it — a *peek* — and runs the algorithm's own decision
//! over it (the same function a pick runs, handed a side-effect-free eligibility test and the
//! random numbers the next pick would draw). So the server explained is the one the next
//! pick takes, unless another request picks or the load moves in between. Every algorithm
//! here peeks; none needs a copy of itself ([`How::Copy`] is for one that would).

use std::sync::Arc;

use crate::upstream::Server;

/// One figure an algorithm looked at.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Num(u64),
    Text(String),
    Flag(bool),
}

impl From<u64> for Value {
    fn from(v: u64) -> Value {
        Value::Num(v)
    }
}

impl From<u32> for Value {
    fn from(v: u32) -> Value {
        Value::Num(u64::from(v))
    }
}

impl From<usize> for Value {
    fn from(v: usize) -> Value {
        Value::Num(v as u64)
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Value {
        Value::Flag(v)
    }
}

impl From<String> for Value {
    fn from(v: String) -> Value {
        Value::Text(v)
    }
}

impl From<&str> for Value {
    fn from(v: &str) -> Value {
        Value::Text(v.to_string())
    }
}

impl std::fmt::Display for Value {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Value::Num(n) => write!(f, "{n}"),
            Value::Text(t) => f.write_str(t),
            Value::Flag(b) => write!(f, "{b}"),
        }
    }
}

/// Named figures, in the order they were looked at.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Facts(pub Vec<(&'static str, Value)>);

impl Facts {
    pub fn add(&mut self, name: &'static str, value: impl Into<Value>) -> &mut Facts {
        self.0.push((name, value.into()));
        self
    }

    pub fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }
}

/// What an algorithm read of one server.
#[derive(Debug, Clone)]
pub struct ServerFacts {
    pub server: Arc<Server>,
    pub facts: Facts,
}

/// How an explanation was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum How {
    /// The balancer's live state read, nothing changed.
    Peek,
    /// The decision run on a copy of the balancer's state.
    Copy,
}

impl How {
    pub fn as_str(&self) -> &'static str {
        match self {
            How::Peek => "peek",
            How::Copy => "copy",
        }
    }
}

/// What a balancer would do for one request now.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The algorithm, as a config names it.
    pub algorithm: &'static str,
    pub how: How,
    /// Figures of the balancer as a whole (the turn, the hash of the key, the slot).
    pub facts: Facts,
    /// What it read of each server it looked at, in its own order.
    pub servers: Vec<ServerFacts>,
    /// What it did, step by step, in words.
    pub steps: Vec<String>,
    /// The server it would pick; `None` when nothing is eligible.
    pub pick: Option<Arc<Server>>,
}

impl Explanation {
    pub fn new(algorithm: &'static str) -> Explanation {
        Explanation {
            algorithm,
            how: How::Peek,
            facts: Facts::default(),
            servers: Vec::new(),
            steps: Vec::new(),
            pick: None,
        }
    }

    /// What a balancer without an explanation of its own says.
    pub fn unexplained() -> Explanation {
        let mut e = Explanation::new("?");
        e.steps
            .push("this balancer does not explain its picks".to_string());
        e
    }

    /// Figures for `server`, added to the list.
    pub fn server(&mut self, server: &Arc<Server>) -> &mut Facts {
        self.servers.push(ServerFacts {
            server: server.clone(),
            facts: Facts::default(),
        });
        &mut self.servers.last_mut().expect("just pushed").facts
    }

    pub fn step(&mut self, text: impl Into<String>) {
        self.steps.push(text.into());
    }
}

/// A server's name for the steps of an explanation.
pub fn label(s: &Server) -> String {
    if s.name == s.addr.to_string() {
        s.name.clone()
    } else {
        format!("{} ({})", s.name, s.addr)
    }
}

/// Why `ctx` would turn `s` away now, in a few words; `None` when it would not.
pub fn refusal(ctx: &super::PickContext<'_>, s: &Server) -> Option<&'static str> {
    if ctx.tried.iter().any(|t| t.id() == s.id()) {
        Some("already tried")
    } else if !s.accepts_new() {
        Some(match s.admin_state() {
            crate::upstream::AdminState::Maint => "in maintenance",
            crate::upstream::AdminState::Drain => "draining",
            crate::upstream::AdminState::Ready if !s.is_available() => s.health_state().as_str(),
            crate::upstream::AdminState::Ready => "out of rotation",
        })
    } else if !s.would_admit_pick() {
        Some("slow start turns this ask away")
    } else {
        None
    }
}

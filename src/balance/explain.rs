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

thread_local! {
    /// The asks an explanation has made of each ramping server so far (server id, asks): a
    /// pick that asks a server twice (a walk, then its fallback) counts two asks of slow
    /// start, and the second may be admitted where the first was not; the explanation,
    /// which counts nothing on the server, counts here. Explanations run on one thread
    /// without awaiting, so a thread's ledger is one explanation's.
    static ASKS: std::cell::RefCell<Vec<(u64, u64)>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Start an explanation's ledger of slow-start asks afresh (before each explanation).
pub fn fresh() {
    ASKS.with(|a| a.borrow_mut().clear());
}

/// What a pick's ask of `s` would answer now, counting it in the ledger as the pick would
/// count it on the server (only asks that reach slow start count).
pub(super) fn ask(s: &Server) -> bool {
    if !s.accepts_new() || !s.in_slow_start() {
        return s.would_admit_pick();
    }
    let asked = ASKS.with(|a| {
        let mut a = a.borrow_mut();
        match a.iter_mut().find(|(id, _)| *id == s.id()) {
            Some((_, n)) => {
                *n += 1;
                *n - 1
            }
            None => {
                a.push((s.id(), 1));
                0
            }
        }
    });
    s.would_admit_pick_after(asked)
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
    } else if s.in_slow_start() {
        Some("slow start turns this ask away")
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    //! An explanation names the server the pick right after it takes, for every algorithm,
    //! under random weights, loads, latencies, servers down, draining, failed passively or
    //! slow-starting, retries' tried lists, keys and clients; and explaining changes nothing.

    use std::net::IpAddr;
    use std::sync::Arc;
    use std::time::Duration;

    use tokio::time::Instant;

    use crate::balance::testing::Rng;
    use crate::balance::{PickContext, build_tier};
    use crate::config::{Algorithm, ServerPlan};
    use crate::upstream::{AdminState, InFlight, Server};

    const ALGORITHMS: [Algorithm; 8] = [
        Algorithm::RoundRobin,
        Algorithm::LeastConn,
        Algorithm::LeastTime,
        Algorithm::P2c,
        Algorithm::Random,
        Algorithm::IpHash,
        Algorithm::Hash,
        Algorithm::Maglev,
    ];

    fn pool(rng: &mut Rng, n: usize) -> Vec<Arc<Server>> {
        (0..n)
            .map(|i| {
                let mut plan = ServerPlan::at(format!("127.0.0.1:{}", 2000 + i).parse().unwrap())
                    .weight(1 + rng.below(5) as u32);
                if rng.below(5) == 0 {
                    plan.slow_start = Duration::from_secs(60);
                }
                let s = Arc::new(Server::new(&plan));
                if !plan.slow_start.is_zero() {
                    s.start_slow_start(Instant::now());
                }
                if rng.below(8) == 0 {
                    s.set_admin_state(AdminState::Maint);
                }
                s
            })
            .collect()
    }

    #[test]
    fn the_server_explained_is_the_one_picked_next() {
        let mut rng = Rng::new(11);
        for algorithm in ALGORITHMS {
            for size in [1, 3, 7, 40] {
                let servers = pool(&mut rng, size);
                let b = build_tier(algorithm, &servers);
                // Changes after the build, seen only at pick time.
                for s in &servers {
                    match rng.below(10) {
                        0 => s.set_admin_state(AdminState::Drain),
                        1 => {
                            s.report_failure(Instant::now());
                        }
                        _ => {}
                    }
                    s.record_latency(Duration::from_micros(100 + rng.below(5_000)));
                }
                let mut held: Vec<InFlight> = Vec::new();
                for round in 0..200 {
                    if rng.below(3) == 0 && !held.is_empty() {
                        held.swap_remove(rng.below(held.len() as u64) as usize);
                    } else {
                        let s = &servers[rng.below(size as u64) as usize];
                        held.push(s.begin());
                    }
                    let tried: Vec<Arc<Server>> = servers
                        .iter()
                        .filter(|_| rng.below(6) == 0)
                        .cloned()
                        .collect();
                    let key = rng.below(1 << 20).to_be_bytes();
                    let client = IpAddr::from([10, rng.below(4) as u8, 7, rng.below(256) as u8]);
                    let ctx = PickContext {
                        client: Some(client),
                        hash_key: (rng.below(2) == 0).then_some(&key[..]),
                        tried: &tried,
                    };
                    let name = |s: &Option<Arc<Server>>| s.as_ref().map(|s| s.addr);
                    super::fresh();
                    let first = b.explain(&ctx);
                    super::fresh();
                    let again = b.explain(&ctx);
                    assert_eq!(name(&first.pick), name(&again.pick), "{algorithm:?}");
                    let picked = b.pick(&ctx);
                    assert_eq!(
                        name(&first.pick),
                        name(&picked),
                        "{algorithm:?}, {size} servers, round {round}: {:#?}",
                        first.steps
                    );
                    if let Some(p) = &picked {
                        assert!(p.accepts_new(), "{algorithm:?}");
                        assert!(!tried.iter().any(|t| t.id() == p.id()), "{algorithm:?}");
                    }
                }
            }
        }
    }
}

//! The discrete-event simulation of one algorithm over one workload, in virtual time.
//!
//! The pool is Switchyard's own [`Pool`] (built by `balance::build_tier` over real
//! [`Server`]s), so every pick is the real algorithm reading real load: a try holds the
//! server's [`InFlight`](crate::upstream::InFlight) from the pick to its answer, and its time
//! to the answer feeds `record_latency`, as `proxy::http::forward` does. Passive health,
//! slow start and active health thresholds are the real state machines too; they read
//! tokio's clock, so the run happens inside a current-thread runtime whose clock is paused
//! and advanced to each event's time before the pool is asked anything.
//!
//! What is modelled is the world around the balancer: arrivals, each server's speed,
//! concurrency and queue, its failures, and the proxy's try loop (the same order as
//! `proxy::http::retry`: pick a server not tried yet, judge the outcome, report it to
//! passive health, try again when `retry.on` allows). The retry budget is not modelled.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use super::model::{Draws, client_of, key_bytes};
use super::report::{AlgoResult, Latency, ServerResult};
use super::sticky::{Lookup, Sticky};
use super::workload::{Action, Workload};
use crate::balance::PickContext;
use crate::config::{Algorithm, HashKey, PoolPlan};
use crate::upstream::{InFlight, Pool, Server};

/// Run `w` with `algorithm` in a paused current-thread runtime of its own.
pub fn run(w: &Workload, algorithm: Algorithm) -> AlgoResult {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .start_paused(true)
        .build()
        .expect("a current-thread runtime builds");
    let started = std::time::Instant::now();
    let mut result = rt.block_on(async {
        let mut e = Engine::new(w, algorithm);
        e.run().await;
        e.finish_result()
    });
    result.wall = started.elapsed();
    result
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Ev {
    Arrival,
    /// Server `server` finished the job of try `try_id` (request slot `slot`).
    ServerDone {
        server: u32,
        slot: u32,
        try_id: u64,
    },
    /// Try `try_id` has waited `timeouts.read` for its answer.
    Deadline {
        slot: u32,
        try_id: u64,
    },
    /// The workload's event number `n`.
    Fault(u32),
    /// Active health probes of every server.
    Probe,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    None,
    Fail,
    Hang,
}

struct ServerState {
    speed: f64,
    fault: Fault,
    /// In the pool's configuration (not `leave`d).
    configured: bool,
    down: bool,
    busy: usize,
    queue: VecDeque<(u32, u64, u64)>,
    tries: u64,
    failed: u64,
    peak: u32,
}

struct Req {
    arrived: u64,
    key: u64,
    service: u64,
    try_id: u64,
    try_started: u64,
    tries: u32,
    tried: Vec<Arc<Server>>,
    current: Option<(usize, InFlight)>,
    sticky: Option<Lookup>,
}

enum TryResult {
    Answer,
    /// A 503 from a full server queue.
    Full,
    Refused,
    Timeout,
}

struct Engine<'w> {
    w: &'w Workload,
    plan: PoolPlan,
    pool: Pool,
    /// The live `Server` of each workload server, while it is in the pool.
    live: Vec<Option<Arc<Server>>>,
    by_id: HashMap<u64, usize>,
    st: Vec<ServerState>,
    heap: BinaryHeap<Reverse<(u64, u64, Ev)>>,
    seq: u64,
    reqs: Vec<Option<Req>>,
    free: Vec<u32>,
    draws: Draws,
    sticky: Option<Sticky>,
    t0: Instant,
    /// Virtual time the tokio clock shows, in ns after `t0`.
    clock: u64,
    now: u64,
    next_try: u64,
    arrived: u64,
    finished: u64,
    latencies: Vec<u32>,
    errors: u64,
    retries: u64,
    read_timeout: u64,
}

impl<'w> Engine<'w> {
    fn new(w: &'w Workload, algorithm: Algorithm) -> Engine<'w> {
        let mut plan = w.pool.clone();
        plan.algorithm = algorithm;
        let pool = Pool::new(&plan, None);
        let st = w
            .servers
            .iter()
            .zip(&plan.servers)
            .map(|(m, p)| ServerState {
                speed: m.speed,
                fault: Fault::None,
                configured: true,
                down: p.down,
                busy: 0,
                queue: VecDeque::new(),
                tries: 0,
                failed: 0,
                peak: 0,
            })
            .collect();
        let mut e = Engine {
            w,
            read_timeout: plan.timeouts.read.as_nanos() as u64,
            sticky: plan.sticky.as_ref().map(Sticky::new),
            plan,
            live: Vec::new(),
            by_id: HashMap::new(),
            pool,
            st,
            heap: BinaryHeap::new(),
            seq: 0,
            reqs: Vec::new(),
            free: Vec::new(),
            draws: Draws::new(w, w.seed),
            t0: Instant::now(),
            clock: 0,
            now: 0,
            next_try: 0,
            arrived: 0,
            finished: 0,
            latencies: Vec::with_capacity(w.requests as usize),
            errors: 0,
            retries: 0,
        };
        e.index_servers();
        e
    }

    fn index_servers(&mut self) {
        self.live = vec![None; self.w.servers.len()];
        self.by_id.clear();
        for s in self.pool.servers() {
            if let Some(i) = self.plan.servers.iter().position(|p| p.addr == s.addr) {
                self.live[i] = Some(s.clone());
                self.by_id.insert(s.id(), i);
            }
        }
    }

    fn at(&mut self, t: u64, ev: Ev) {
        self.seq += 1;
        self.heap.push(Reverse((t, self.seq, ev)));
    }

    fn instant(&self) -> Instant {
        self.t0 + Duration::from_nanos(self.now)
    }

    /// Bring tokio's clock to the current virtual time (the pool's state machines read it).
    async fn sync_clock(&mut self) {
        if self.now > self.clock {
            tokio::time::advance(Duration::from_nanos(self.now - self.clock)).await;
            self.clock = self.now;
        }
    }

    async fn run(&mut self) {
        self.at(0, Ev::Arrival);
        for (n, e) in self.w.events.iter().enumerate() {
            self.at(e.at.as_nanos() as u64, Ev::Fault(n as u32));
        }
        if let Some(h) = &self.plan.health {
            self.at(h.interval.as_nanos() as u64, Ev::Probe);
        }
        while self.finished < self.w.requests {
            let Some(Reverse((t, _, ev))) = self.heap.pop() else {
                break;
            };
            self.now = t;
            match ev {
                Ev::Arrival => self.arrival().await,
                Ev::ServerDone {
                    server,
                    slot,
                    try_id,
                } => self.server_done(server as usize, slot, try_id).await,
                Ev::Deadline { slot, try_id } => {
                    if self.live_try(slot, try_id) {
                        self.outcome(slot, TryResult::Timeout).await;
                    }
                }
                Ev::Fault(n) => self.fault(n as usize).await,
                Ev::Probe => self.probe(),
            }
        }
    }

    async fn arrival(&mut self) {
        self.arrived += 1;
        if self.arrived < self.w.requests {
            let gap = self.draws.gap();
            self.at(self.now + gap, Ev::Arrival);
        }
        let req = Req {
            arrived: self.now,
            key: self.draws.key(),
            service: self.draws.service(),
            try_id: 0,
            try_started: 0,
            tries: 0,
            tried: Vec::new(),
            current: None,
            sticky: None,
        };
        let slot = match self.free.pop() {
            Some(s) => {
                self.reqs[s as usize] = Some(req);
                s
            }
            None => {
                self.reqs.push(Some(req));
                (self.reqs.len() - 1) as u32
            }
        };
        self.start_try(slot).await;
    }

    fn live_try(&self, slot: u32, try_id: u64) -> bool {
        self.reqs[slot as usize]
            .as_ref()
            .is_some_and(|r| r.try_id == try_id && r.current.is_some())
    }

    /// Pick a server for the request in `slot` and send it there; a try that fails at once
    /// (refused, or a full queue counted as failure) is judged here and may try again.
    async fn start_try(&mut self, slot: u32) {
        self.sync_clock().await;
        let now = self.instant();
        let req = self.reqs[slot as usize].as_mut().expect("live request");
        let first = req.tries == 0;
        if first && let Some(sticky) = &self.sticky {
            let (live, by_id, pool) = (&self.live, &self.by_id, &self.pool);
            req.sticky = Some(sticky.lookup(
                req.key,
                now,
                |i| live[i].clone(),
                |id| by_id.get(&id).and_then(|&i| live[i].clone()),
                || pool.servers().iter().any(|s| !s.backup && s.is_available()),
            ));
        }
        let preferred = req
            .sticky
            .as_ref()
            .and_then(|l| l.preferred.clone())
            .filter(|s| first && s.is_available());
        let server = match preferred {
            Some(s) => Some(s),
            None => {
                let mut buf = [0u8; 24];
                let hash_key = match self.plan.hash_key {
                    HashKey::ClientIp => None,
                    _ => Some(key_bytes(req.key, &mut buf)),
                };
                let ctx = PickContext {
                    client: Some(client_of(req.key)),
                    hash_key,
                    tried: &req.tried,
                };
                self.pool.pick(&ctx)
            }
        };
        let Some(server) = server else {
            // Nothing to try: the request's answer is an error (503, or its last failure).
            self.finish(slot, false);
            return;
        };
        let i = self.by_id[&server.id()];
        if !first {
            self.retries += 1;
        }
        req.tries += 1;
        self.next_try += 1;
        req.try_id = self.next_try;
        req.try_started = self.now;
        let flight = server.begin();
        let st = &mut self.st[i];
        st.tries += 1;
        st.peak = st.peak.max(server.in_flight());
        req.current = Some((i, flight));
        let try_id = req.try_id;
        let service = (req.service as f64 / st.speed).max(1.0) as u64;
        let w = self.w;
        let model = &w.servers[i];
        match st.fault {
            Fault::Fail => Box::pin(self.outcome(slot, TryResult::Refused)).await,
            Fault::Hang => self.at(self.now + self.read_timeout, Ev::Deadline { slot, try_id }),
            Fault::None if model.concurrency == 0 || st.busy < model.concurrency => {
                st.busy += 1;
                self.serve(i, slot, try_id, service, true);
            }
            Fault::None if model.queue > 0 && st.queue.len() >= model.queue => {
                Box::pin(self.outcome(slot, TryResult::Full)).await
            }
            Fault::None => {
                st.queue.push_back((slot, try_id, service));
                self.at(self.now + self.read_timeout, Ev::Deadline { slot, try_id });
            }
        }
    }

    /// Server `i` starts a job of `service` ns for try `try_id`; `fresh` when the try has
    /// just been sent (a queued one has its deadline already).
    fn serve(&mut self, i: usize, slot: u32, try_id: u64, service: u64, fresh: bool) {
        let done = self.now + service;
        let server = i as u32;
        self.at(
            done,
            Ev::ServerDone {
                server,
                slot,
                try_id,
            },
        );
        if fresh && service > self.read_timeout {
            // Not answered within the read timeout: the proxy gives up first.
            self.at(self.now + self.read_timeout, Ev::Deadline { slot, try_id });
        }
    }

    async fn server_done(&mut self, i: usize, slot: u32, try_id: u64) {
        let st = &mut self.st[i];
        st.busy -= 1;
        if let Some((s, t, service)) = st.queue.pop_front() {
            st.busy += 1;
            self.serve(i, s, t, service, false);
        }
        if self.live_try(slot, try_id) {
            self.outcome(slot, TryResult::Answer).await;
        }
    }

    /// Judge the current try of `slot`, as the proxy's retry loop does.
    async fn outcome(&mut self, slot: u32, outcome: TryResult) {
        let now = self.instant();
        let on = &self.plan.retry.on;
        let (failed, retry, ok) = match outcome {
            TryResult::Answer => (false, false, true),
            TryResult::Full => (on.status(503), on.status(503), false),
            TryResult::Refused => (true, on.connect_failure, false),
            TryResult::Timeout => (true, on.timeout, false),
        };
        let req = self.reqs[slot as usize].as_mut().expect("live request");
        let (i, flight) = req.current.take().expect("a try in flight");
        let server = flight.server().clone();
        if matches!(outcome, TryResult::Answer | TryResult::Full) {
            server.record_latency(Duration::from_nanos(self.now - req.try_started));
        }
        drop(flight);
        if !failed {
            server.report_success(now);
            if ok && let (Some(sticky), Some(l)) = (&mut self.sticky, &req.sticky) {
                sticky.after(req.key, l, &server, i, now);
            }
            self.finish(slot, ok);
            return;
        }
        server.report_failure(now);
        self.st[i].failed += 1;
        let again = retry && req.tries <= self.plan.retry.attempts;
        req.tried.push(server);
        if again {
            Box::pin(self.start_try(slot)).await;
        } else {
            self.finish(slot, false);
        }
    }

    fn finish(&mut self, slot: u32, ok: bool) {
        let req = self.reqs[slot as usize].take().expect("live request");
        self.free.push(slot);
        self.finished += 1;
        let us = (self.now - req.arrived) / 1000;
        self.latencies.push(us.min(u64::from(u32::MAX)) as u32);
        if !ok {
            self.errors += 1;
        }
    }

    async fn fault(&mut self, n: usize) {
        let e = &self.w.events[n];
        let i = e.server;
        match e.action {
            Action::Fail => self.st[i].fault = Fault::Fail,
            Action::Hang => self.st[i].fault = Fault::Hang,
            Action::Recover => self.st[i].fault = Fault::None,
            Action::Slow(speed) => self.st[i].speed = speed,
            Action::Down | Action::Up => {
                self.st[i].down = e.action == Action::Down;
                if let Some(s) = &self.live[i] {
                    s.set_admin_down(self.st[i].down);
                    self.pool.rebuild();
                }
            }
            Action::Leave | Action::Join => {
                self.st[i].configured = e.action == Action::Join;
                // A reload: the new pool keeps the servers that stay, with their state.
                self.sync_clock().await;
                let mut next = self.plan.clone();
                next.servers = self
                    .plan
                    .servers
                    .iter()
                    .zip(&self.st)
                    .filter(|(_, st)| st.configured)
                    .map(|(p, st)| {
                        let mut p = p.clone();
                        p.down = st.down;
                        p
                    })
                    .collect();
                self.pool = Pool::new(&next, Some(&self.pool));
                self.index_servers();
            }
        }
    }

    fn probe(&mut self) {
        let Some(h) = self.plan.health.clone() else {
            return;
        };
        let now = self.instant();
        let mut changed = false;
        for (i, s) in self.live.iter().enumerate() {
            if let Some(s) = s {
                let pass = self.st[i].fault == Fault::None;
                let detail = if pass { "connected" } else { "refused" };
                changed |= s
                    .record_check(h.rise, h.fall, pass, detail.into(), now)
                    .is_some();
            }
        }
        if changed {
            self.pool.rebuild();
        }
        self.at(self.now + h.interval.as_nanos() as u64, Ev::Probe);
    }

    fn finish_result(&mut self) -> AlgoResult {
        AlgoResult {
            algorithm: self.plan.algorithm,
            servers: self
                .w
                .servers
                .iter()
                .zip(&self.st)
                .map(|(m, st)| ServerResult {
                    name: m.name.clone(),
                    requests: st.tries,
                    failed: st.failed,
                    peak_in_flight: st.peak,
                })
                .collect(),
            latency: Latency::of(&mut self.latencies),
            requests: self.finished,
            errors: self.errors,
            retries: self.retries,
            sticky_moved: self.sticky.as_ref().map(|s| s.moved),
            keys_moved: None,
            virtual_time: Duration::from_nanos(self.now),
            wall: Duration::ZERO,
        }
    }
}

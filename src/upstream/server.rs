//! One upstream server and its live state.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwapOption;

use crate::config::ServerPlan;

/// Told when a server's load changes: a request starts or ends, or a latency sample moves its
/// EWMA. The load-aware balancers of large pools keep an index of their servers' load this
/// way instead of reading every server at each pick (see `balance::load_index`).
pub trait LoadWatch: Send + Sync {
    /// `server`, which this watcher knows as `slot`, changed its load (read it from `server`).
    fn load_changed(&self, server: &Server, slot: u32);

    /// Another watcher took over one of this watcher's servers: its view is incomplete from
    /// now on.
    fn superseded(&self);
}

/// A server's watcher and the server's slot in it.
struct Watcher {
    watch: Arc<dyn LoadWatch>,
    slot: u32,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher").field("slot", &self.slot).finish()
    }
}

fn same_watch(a: &Arc<dyn LoadWatch>, b: &Arc<dyn LoadWatch>) -> bool {
    std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b))
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// What an operator set for a server (HAProxy's admin states: `set server … state`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminState {
    /// In service.
    Ready,
    /// No new requests or connections; the ones running finish, and sticky clients stay
    /// unless the pool's `[sticky] on_drain = "move"`. Health checks go on.
    Drain,
    /// Maintenance: out of service at once, sticky clients move (`down = true`). Requests
    /// already running still finish. Health checks go on (unlike HAProxy's), so the API
    /// shows whether the server is back before it is put in service again.
    Maint,
}

impl AdminState {
    pub const NAMES: [&'static str; 3] = ["ready", "drain", "maint"];

    pub fn as_str(&self) -> &'static str {
        match self {
            AdminState::Ready => "ready",
            AdminState::Drain => "drain",
            AdminState::Maint => "maint",
        }
    }

    pub fn parse(s: &str) -> Option<AdminState> {
        match s {
            "ready" => Some(AdminState::Ready),
            "drain" => Some(AdminState::Drain),
            "maint" => Some(AdminState::Maint),
            _ => None,
        }
    }

    /// The state a server's plan asks for (`down = true`, `drain = true`).
    pub fn of(plan: &ServerPlan) -> AdminState {
        if plan.down {
            AdminState::Maint
        } else if plan.drain {
            AdminState::Drain
        } else {
            AdminState::Ready
        }
    }

    fn from_u8(v: u8) -> AdminState {
        match v {
            0 => AdminState::Ready,
            1 => AdminState::Drain,
            _ => AdminState::Maint,
        }
    }
}

/// A backend. Identity (`addr`, `name`) is fixed; everything else is live state read by the
/// balancers at pick time and written by the proxy and the health checkers.
#[derive(Debug)]
pub struct Server {
    id: u64,
    pub name: String,
    pub addr: SocketAddr,
    pub backup: bool,
    /// The name it was resolved from, as written (`app.test:8080`), for a server that came
    /// from DNS (`discovery`); `None` for one written with its address.
    pub from: Option<String>,
    weight: AtomicU32,
    /// [`AdminState`] as a number: set by configuration (`down`, `drain`) or an operator.
    admin: AtomicU8,
    /// Requests (or L4 connections) now being served.
    in_flight: AtomicU32,
    /// Requests started, ever.
    requests: AtomicU64,
    /// Failures reported to passive health, ever (each failed try or connect).
    failures: AtomicU64,
    /// Response heads received from this server, ever, by status class 1xx..5xx.
    responses: [AtomicU64; 5],
    /// Exponentially weighted moving average of the time to the response head, in µs;
    /// 0 until the first sample.
    latency_ewma_us: AtomicU64,
    /// Set by [`Server::remeasure`]: the next sample replaces the average.
    remeasure: AtomicBool,
    /// Times to the response head (HTTP), every try.
    header_time: crate::observe::histogram::Histogram,
    /// Health and slow start (see `upstream/state.rs` and `state_cell.rs`).
    pub(super) health: super::state_cell::HealthCell,
    /// Whether `watcher` is set: one relaxed load on the request path for the servers no
    /// balancer watches.
    watched: AtomicBool,
    watcher: ArcSwapOption<Watcher>,
    /// `max_conns`: requests at once, 0 for no limit.
    max_conns: AtomicU32,
    /// The pool's queue, told when a place frees up (only while `max_conns` is set).
    queue: ArcSwapOption<super::Queue>,
    /// The name of the pool it serves in (set when the pool is built), for the log lines
    /// of its health changes.
    pool: ArcSwapOption<String>,
}

impl Server {
    pub fn new(plan: &ServerPlan) -> Server {
        Server {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            name: plan.name.clone(),
            addr: plan.addr,
            backup: plan.backup,
            from: plan.from.clone(),
            weight: AtomicU32::new(plan.weight.max(1)),
            admin: AtomicU8::new(AdminState::of(plan) as u8),
            in_flight: AtomicU32::new(0),
            requests: AtomicU64::new(0),
            failures: AtomicU64::new(0),
            responses: Default::default(),
            latency_ewma_us: AtomicU64::new(0),
            remeasure: AtomicBool::new(false),
            header_time: Default::default(),
            health: super::state_cell::HealthCell::new(plan.passive, plan.slow_start),
            watched: AtomicBool::new(false),
            watcher: ArcSwapOption::empty(),
            max_conns: AtomicU32::new(plan.max_conns),
            queue: ArcSwapOption::empty(),
            pool: ArcSwapOption::empty(),
        }
    }

    /// A short-hand for tests and benchmarks: a primary server of weight `weight`.
    pub fn with_weight(addr: SocketAddr, weight: u32) -> Server {
        Server::new(&ServerPlan {
            addr,
            name: addr.to_string(),
            weight,
            backup: false,
            down: false,
            drain: false,
            passive: Default::default(),
            slow_start: Duration::ZERO,
            max_conns: 0,
            from: None,
        })
    }

    /// Whether a new plan describes this server: same address, name, tier (primary or
    /// backup) and origin (written, or the DNS name it came from). A pool rebuilt from such a
    /// plan keeps the server, with its state and counters, and gives it the plan's other
    /// settings ([`Server::update`]): so does a DNS answer that still has its address.
    pub fn is_same(&self, plan: &ServerPlan) -> bool {
        self.addr == plan.addr
            && self.name == plan.name
            && self.backup == plan.backup
            && self.from == plan.from
    }

    /// Take what a new plan says of this live server: weight, admin state (`down`,
    /// `drain`), passive checks and slow start. Its health, counters and in-flight requests
    /// stay. The pool's balancer must be rebuilt after (weight and rotation changed).
    pub fn update(&self, plan: &ServerPlan) {
        self.set_weight(plan.weight);
        self.set_admin_state(AdminState::of(plan));
        self.health.set_settings(plan.passive, plan.slow_start);
        self.max_conns.store(plan.max_conns, Ordering::Relaxed);
    }

    /// Unique for the life of the process; a server kept across a reload keeps its id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// Configured weight, 1..=1000.
    pub fn weight(&self) -> u32 {
        self.weight.load(Ordering::Relaxed)
    }

    pub fn set_weight(&self, w: u32) {
        self.weight.store(w.clamp(1, 1000), Ordering::Relaxed);
    }

    /// What an operator (or the config) set. Changing it takes the server in or out of
    /// rotation: the pool's balancer must be rebuilt after ([`super::Pool::rebuild`]).
    pub fn admin_state(&self) -> AdminState {
        AdminState::from_u8(self.admin.load(Ordering::Relaxed))
    }

    pub fn set_admin_state(&self, state: AdminState) {
        self.admin.store(state as u8, Ordering::Relaxed);
    }

    /// `down = true` (maintenance) or back to ready.
    pub fn set_admin_down(&self, down: bool) {
        self.set_admin_state(if down {
            AdminState::Maint
        } else {
            AdminState::Ready
        });
    }

    /// In maintenance (`down = true`, or `maint` over the admin API).
    pub fn admin_down(&self) -> bool {
        self.admin_state() == AdminState::Maint
    }

    /// Whether the pool's balancer should include this server when it is (re)built: ready
    /// (not draining, not in maintenance) and not taken out by active health checks.
    pub fn in_rotation(&self) -> bool {
        self.admin_state() == AdminState::Ready && self.health.healthy()
    }

    /// Whether a request may be sent here now: not in maintenance, not taken out by active
    /// or passive checks. A draining server is available to the clients stuck to it (and to
    /// a retry that prefers it) but takes no new picks: see [`Server::accepts_new`].
    pub fn is_available(&self) -> bool {
        self.admin_state() != AdminState::Maint
            && self.health.healthy()
            && self.health.passive_available()
    }

    /// Whether a new client (a pick, not a sticky session) may be sent here now: in rotation
    /// and not taken out by passive checks. Checked at every pick, so a state that changes
    /// with time needs no rebuild.
    pub fn accepts_new(&self) -> bool {
        self.in_rotation() && self.health.passive_available()
    }

    /// Draining and nothing in flight: the server can be taken away without cutting a
    /// request, a connection or a tunnel.
    pub fn drained(&self) -> bool {
        self.admin_state() == AdminState::Drain && self.in_flight() == 0
    }

    /// Requests or connections now in flight.
    pub fn in_flight(&self) -> u32 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Requests started, ever.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Failures reported to passive health, ever (whether or not they took it out).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub(super) fn count_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// Count a response head received from this server (one relaxed increment); a status
    /// outside 100..=599 is not counted.
    pub fn count_response(&self, status: u16) {
        if let Some(c) = self
            .responses
            .get(usize::from(status / 100).wrapping_sub(1))
        {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Responses received, ever, by status class: `[1xx, 2xx, 3xx, 4xx, 5xx]`.
    pub fn responses(&self) -> [u64; 5] {
        std::array::from_fn(|i| self.responses[i].load(Ordering::Relaxed))
    }

    /// Latency EWMA in microseconds; 0 before the first sample.
    pub fn latency_ewma_us(&self) -> u64 {
        self.latency_ewma_us.load(Ordering::Relaxed)
    }

    /// `max_conns`: requests at once (0: no limit).
    pub fn max_conns(&self) -> u32 {
        self.max_conns.load(Ordering::Relaxed)
    }

    /// Whether the server is below its `max_conns` (always, without one).
    #[inline]
    pub fn has_room(&self) -> bool {
        let max = self.max_conns.load(Ordering::Relaxed);
        max == 0 || self.in_flight() < max
    }

    /// The pool it serves in (set by the pool when it is built).
    pub(super) fn set_pool(&self, name: &str) {
        if self.pool.load().as_deref().map(String::as_str) != Some(name) {
            self.pool.store(Some(Arc::new(name.to_string())));
        }
    }

    /// The name of the pool it serves in; empty before a pool took it.
    pub fn pool_name(&self) -> Arc<String> {
        self.pool.load_full().unwrap_or_default()
    }

    /// The queue to tell when a place frees up (the pool's, set when it is built).
    pub(super) fn set_queue(&self, queue: Option<Arc<super::Queue>>) {
        self.queue.store(queue);
    }

    /// [`Server::begin`], unless the server is at its `max_conns`. The place is taken
    /// atomically: of requests racing for the last one, one gets it.
    pub fn try_begin(self: &Arc<Self>) -> Option<InFlight> {
        let max = self.max_conns.load(Ordering::Relaxed);
        if max == 0 {
            return Some(self.begin());
        }
        // What `begin` does, the increment bounded: `in_flight` never passes `max`, and no
        // two requests take one place.
        self.in_flight
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()?;
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.load_changed();
        Some(InFlight {
            server: self.clone(),
        })
    }

    /// A request here ended: with `max_conns`, wake a request waiting for a place.
    fn ended(&self) {
        if self.max_conns.load(Ordering::Relaxed) != 0
            && let Some(q) = &*self.queue.load()
        {
            q.freed();
        }
    }

    /// Count a request as started; the returned guard counts it as finished when dropped.
    pub fn begin(self: &Arc<Self>) -> InFlight {
        // SeqCst (free on x86, a locked add either way): see `load_changed`.
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.load_changed();
        InFlight {
            server: self.clone(),
        }
    }

    /// An HTTP response head came after `d`: the latency EWMA and the histogram of head times.
    pub fn record_response_head(&self, d: Duration) {
        self.header_time.record(d);
        self.record_latency(d);
    }

    /// Times to the response head, as recorded.
    pub fn header_times(&self) -> crate::observe::histogram::Snapshot {
        self.header_time.snapshot()
    }

    /// Tell the watcher, if any, that the load changed. (The SeqCst loads cost a plain load on
    /// x86; with the SeqCst updates of `in_flight` and `watch_load`'s SeqCst writes they make
    /// sure a change is either told to the new watcher or seen by its first read.)
    #[inline]
    fn load_changed(&self) {
        if self.watched.load(Ordering::SeqCst) {
            self.tell_watcher();
        }
    }

    #[inline(never)]
    fn tell_watcher(&self) {
        if let Some(w) = &*self.watcher.load() {
            w.watch.load_changed(self, w.slot);
        }
    }

    /// Make `watch` the one watcher of this server's load, which knows it as `slot`; a
    /// previous, different watcher is told it was superseded. The caller reads the load after
    /// this returns (changes before it may have gone to the previous watcher only).
    pub fn watch_load(&self, watch: &Arc<dyn LoadWatch>, slot: u32) {
        let new = Arc::new(Watcher {
            watch: watch.clone(),
            slot,
        });
        self.watched.store(true, Ordering::SeqCst);
        let old = self.watcher.swap(Some(new));
        if let Some(old) = old
            && !same_watch(&old.watch, watch)
        {
            old.watch.superseded();
        }
    }

    /// Stop telling `watch` (if it is still this server's watcher). `watched` stays set: a
    /// server once watched pays one `ArcSwap` load per change from then on.
    pub fn unwatch_load(&self, watch: &Arc<dyn LoadWatch>) {
        self.watcher.rcu(|w| match w {
            Some(w) if same_watch(&w.watch, watch) => None,
            other => other.clone(),
        });
    }

    /// Feed one response time into the EWMA (weight 1/8 for the new sample, as TCP's SRTT;
    /// the first sample, and the first after [`Server::remeasure`], replaces it).
    pub fn record_latency(&self, d: Duration) {
        let sample = (d.as_micros() as u64).max(1);
        let fresh =
            self.remeasure.load(Ordering::Relaxed) && self.remeasure.swap(false, Ordering::Relaxed);
        let _ = self
            .latency_ewma_us
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |old| {
                Some(if old == 0 || fresh {
                    sample
                } else {
                    old - old / 8 + sample / 8
                })
            });
        self.load_changed();
    }

    /// Let the next sample replace the EWMA: `least_time` asks it of a server it sends one
    /// request after leaving it unpicked for long, so that one slow answer long ago (a cold
    /// start) does not keep a server out for good.
    pub fn remeasure(&self) {
        self.remeasure.store(true, Ordering::Relaxed);
    }
}

/// A request or connection in flight on a server; dropping it ends it.
#[derive(Debug)]
pub struct InFlight {
    server: Arc<Server>,
}

impl InFlight {
    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.server.in_flight.fetch_sub(1, Ordering::SeqCst);
        self.server.load_changed();
        self.server.ended();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    #[test]
    fn in_flight_counts_up_and_down() {
        let s = Arc::new(Server::with_weight("127.0.0.1:1".parse().unwrap(), 1));
        let a = s.begin();
        let b = s.begin();
        assert_eq!(s.in_flight(), 2);
        drop(a);
        assert_eq!(s.in_flight(), 1);
        drop(b);
        assert_eq!((s.in_flight(), s.requests()), (0, 2));
    }

    #[test]
    fn max_conns_is_never_passed() {
        let plan = ServerPlan {
            max_conns: 2,
            ..ServerPlan::at("127.0.0.1:1".parse().unwrap())
        };
        let s = Arc::new(Server::new(&plan));
        let a = s.try_begin().unwrap();
        assert!(s.has_room());
        let b = s.try_begin().unwrap();
        assert!(!s.has_room() && s.try_begin().is_none());
        assert_eq!(s.in_flight(), 2);
        drop(a);
        let c = s.try_begin().unwrap();
        drop((b, c));
        assert_eq!((s.in_flight(), s.requests()), (0, 3));
        // Eight threads race for the two places, each holding what it got until all tried.
        let (start, tried) = (std::sync::Barrier::new(8), std::sync::Barrier::new(8));
        let got: usize = std::thread::scope(|t| {
            let racers: Vec<_> = (0..8)
                .map(|_| {
                    t.spawn(|| {
                        start.wait();
                        let held = s.try_begin();
                        tried.wait();
                        usize::from(held.is_some())
                    })
                })
                .collect();
            racers.into_iter().map(|r| r.join().unwrap()).sum()
        });
        assert_eq!(got, 2);
        assert_eq!(s.in_flight(), 0);
    }

    #[test]
    fn latency_ewma_moves_toward_samples() {
        let s = Server::with_weight("127.0.0.1:1".parse().unwrap(), 1);
        s.record_latency(Duration::from_millis(8));
        assert_eq!(s.latency_ewma_us(), 8000);
        for _ in 0..64 {
            s.record_latency(Duration::from_millis(1));
        }
        assert!(s.latency_ewma_us() < 1100, "{}", s.latency_ewma_us());
    }

    #[test]
    fn responses_count_by_class_and_ignore_nonsense() {
        let s = Server::with_weight("127.0.0.1:1".parse().unwrap(), 1);
        for status in [101, 200, 204, 302, 404, 503, 599, 0, 99, 600, 999] {
            s.count_response(status);
        }
        assert_eq!(s.responses(), [1, 2, 1, 1, 2]);
    }
}

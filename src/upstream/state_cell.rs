//! A server's health as live state: the state machines of `state.rs` behind atomics for
//! the hot path, and the reporting API the proxies (L7 and L4) and the checkers call.
//!
//! Reads at pick time touch atomics only. The mutexes are taken by a health check, by a
//! failed request, and by a success only while failures are on record — never by the
//! common successful request.

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use tokio::time::Instant;

use super::Server;
use super::state::{ActiveHealth, CheckRecord, PassiveWindow, SlowStart, Transition};
use crate::config::PassivePlan;
use crate::observe::histogram::{Histogram, Snapshot};

/// What an operator sees of a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealthState {
    /// Serving.
    Healthy,
    /// Out: active checks failed `fall` times in a row.
    Unhealthy,
    /// Out: passive checks saw `max_fails` failures; back after `fail_timeout`.
    Failed,
    /// Out: `down = true` or taken out by an operator.
    Disabled,
}

impl HealthState {
    pub fn as_str(&self) -> &'static str {
        match self {
            HealthState::Healthy => "healthy",
            HealthState::Unhealthy => "unhealthy",
            HealthState::Failed => "failed",
            HealthState::Disabled => "disabled",
        }
    }
}

pub(super) struct HealthCell {
    /// Clock origin for the atomics below (which hold offsets from it).
    epoch: Instant,
    healthy: AtomicBool,
    active: Mutex<Option<ActiveHealth>>,
    passive: Mutex<PassiveWindow>,
    /// Failures on record: a success must take the lock to clear them.
    passive_dirty: AtomicBool,
    /// Passive "out until", in ms after `epoch`, plus one; 0 when not out.
    down_until_ms: AtomicU64,
    /// `slow_start` in ms (a reload may change it on a live server).
    slow_start_ms: AtomicU64,
    /// Ramp start in ms after `epoch`, plus one; 0 when not ramping.
    ramp_since_ms: AtomicU64,
    ramp_picks: AtomicU64,
    /// Active checks, ever: `[failed, passed]`.
    checks: [AtomicU64; 2],
    /// How long each active check took.
    check_time: Histogram,
}

impl std::fmt::Debug for HealthCell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HealthCell")
            .field("healthy", &self.healthy())
            .field("passive_available", &self.passive_available())
            .finish()
    }
}

impl HealthCell {
    pub(super) fn new(passive: PassivePlan, slow_start: Duration) -> HealthCell {
        HealthCell {
            epoch: Instant::now(),
            healthy: AtomicBool::new(true),
            active: Mutex::new(None),
            passive: Mutex::new(PassiveWindow::new(passive)),
            passive_dirty: AtomicBool::new(false),
            down_until_ms: AtomicU64::new(0),
            slow_start_ms: AtomicU64::new(slow_start.as_millis() as u64),
            ramp_since_ms: AtomicU64::new(0),
            ramp_picks: AtomicU64::new(0),
            checks: Default::default(),
            check_time: Histogram::new(),
        }
    }

    fn ms(&self, t: Instant) -> u64 {
        t.saturating_duration_since(self.epoch).as_millis() as u64 + 1
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms.saturating_sub(1))
    }

    pub(super) fn healthy(&self) -> bool {
        self.healthy.load(Ordering::Relaxed)
    }

    pub(super) fn passive_available(&self) -> bool {
        let until = self.down_until_ms.load(Ordering::Relaxed);
        until == 0 || Instant::now() >= self.at(until)
    }

    fn sync_passive(&self, p: &PassiveWindow) {
        let until = p.down_until().map_or(0, |t| {
            // Round up so the atomic never ends the window before the state machine does.
            self.ms(t) + 1
        });
        self.down_until_ms.store(until, Ordering::Relaxed);
        self.passive_dirty.store(!p.is_clean(), Ordering::Relaxed);
    }

    fn slow_start(&self) -> Duration {
        Duration::from_millis(self.slow_start_ms.load(Ordering::Relaxed))
    }

    /// New passive-check and slow-start settings for a live server (a reload or an added
    /// server changed them); the failures on record and a ramp under way stay.
    pub(super) fn set_settings(&self, passive: PassivePlan, slow_start: Duration) {
        self.slow_start_ms
            .store(slow_start.as_millis() as u64, Ordering::Relaxed);
        let mut p = self.passive.lock().unwrap_or_else(|e| e.into_inner());
        p.set_plan(passive);
        self.sync_passive(&p);
    }

    fn start_ramp(&self, now: Instant) {
        if !self.slow_start().is_zero() {
            self.ramp_picks.store(0, Ordering::Relaxed);
            self.ramp_since_ms.store(self.ms(now), Ordering::Relaxed);
        }
    }

    fn ramp_admits(&self) -> bool {
        let since = self.ramp_since_ms.load(Ordering::Relaxed);
        if since == 0 {
            return true;
        }
        let ramp = SlowStart {
            duration: self.slow_start(),
            since: self.at(since),
        };
        match ramp.share(Instant::now()) {
            None => {
                self.ramp_since_ms.store(0, Ordering::Relaxed);
                true
            }
            Some(share) => {
                SlowStart::admits(self.ramp_picks.fetch_add(1, Ordering::Relaxed), share)
            }
        }
    }

    /// The ramp's share now, in twentieths; `None` when not ramping (or the ramp is over).
    fn ramp_share(&self) -> Option<u64> {
        let since = self.ramp_since_ms.load(Ordering::Relaxed);
        if since == 0 {
            return None;
        }
        SlowStart {
            duration: self.slow_start(),
            since: self.at(since),
        }
        .share(Instant::now())
    }

    /// [`HealthCell::ramp_admits`] without counting the ask: whether the next ask would be
    /// admitted.
    fn ramp_would_admit(&self, asked: u64) -> bool {
        self.ramp_share().is_none_or(|share| {
            SlowStart::admits(self.ramp_picks.load(Ordering::Relaxed) + asked, share)
        })
    }
}

impl Server {
    /// Whether a balancer may pick this server now: available, below its `max_conns`, and
    /// admitted by slow start (a recovering server takes a growing share of the picks it is
    /// offered).
    pub fn admits_pick(&self) -> bool {
        self.accepts_new() && self.has_room() && self.health.ramp_admits()
    }

    /// [`Server::admits_pick`] without counting an ask (slow start admits a share of the
    /// asks by counting them): whether the next ask would be admitted. For explanations,
    /// which must not move a ramp.
    pub fn would_admit_pick(&self) -> bool {
        self.would_admit_pick_after(0)
    }

    /// [`Server::would_admit_pick`] after `asked` asks that were not counted (an explanation
    /// that asks the same server again, as the pick it explains would).
    pub fn would_admit_pick_after(&self, asked: u64) -> bool {
        self.accepts_new() && self.has_room() && self.health.ramp_would_admit(asked)
    }

    /// Slow start's share of this server's picks now, in twentieths (`1..=20`); `None` when
    /// it is not ramping up.
    pub fn slow_start_share(&self) -> Option<u64> {
        self.health.ramp_share()
    }

    /// How long passive checks keep this server out still (`max_fails` within
    /// `fail_timeout`); `None` when they do not.
    pub fn passive_out_for(&self) -> Option<Duration> {
        let until = self.health.down_until_ms.load(Ordering::Relaxed);
        if until == 0 {
            return None;
        }
        let left = self
            .health
            .at(until)
            .saturating_duration_since(Instant::now());
        (!left.is_zero()).then_some(left)
    }

    /// Whether the server is ramping up after a recovery.
    pub fn in_slow_start(&self) -> bool {
        self.health.ramp_since_ms.load(Ordering::Relaxed) != 0
    }

    /// Begin the slow-start ramp at `now` (a recovered or newly added server); nothing when
    /// `slow_start` is zero.
    pub fn start_slow_start(&self, now: Instant) {
        self.health.start_ramp(now);
    }

    /// Passive health: a request or connection to this server failed at `now` (connect
    /// error, timeout, reset, or a status the pool counts as failure). Returns true when
    /// this failure takes the server out for `fail_timeout`. Used by the L7 and L4 proxies.
    pub fn report_failure(&self, now: Instant) -> bool {
        self.count_failure();
        let h = &self.health;
        let mut p = h.passive.lock().unwrap_or_else(|e| e.into_inner());
        let tripped = p.failure(now);
        h.sync_passive(&p);
        let plan = p.plan();
        drop(p);
        if tripped {
            h.ramp_since_ms.store(0, Ordering::Relaxed);
            if let Some(a) = h.active.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
                a.restart_pass_count();
            }
            tracing::warn!(
                pool = %self.pool_name(),
                server = %self.name,
                addr = %self.addr,
                "server out after {} failure(s); tried again in {:?}",
                plan.max_fails,
                plan.fail_timeout
            );
        }
        tripped
    }

    /// Passive health: a request or connection to this server succeeded at `now`. Costs one
    /// atomic load unless failures are on record.
    pub fn report_success(&self, now: Instant) {
        let h = &self.health;
        if !h.passive_dirty.load(Ordering::Relaxed) {
            return;
        }
        let mut p = h.passive.lock().unwrap_or_else(|e| e.into_inner());
        let back = p.success(now);
        h.sync_passive(&p);
        drop(p);
        if back {
            h.start_ramp(now);
            tracing::info!(pool = %self.pool_name(), server = %self.name, addr = %self.addr, "server back after a successful try");
        }
    }

    /// Active health: feed one probe result. `Some` when the server enters or leaves
    /// rotation (the caller rebuilds the pool); each transition is logged here, once. A
    /// server taken out by passive checks is cleared by `rise` passes in a row.
    pub fn record_check(
        &self,
        rise: u32,
        fall: u32,
        pass: bool,
        detail: String,
        now: Instant,
    ) -> Option<Transition> {
        let h = &self.health;
        let mut guard = h.active.lock().unwrap_or_else(|e| e.into_inner());
        let active = guard.get_or_insert_with(|| ActiveHealth::new(rise, fall));
        let transition = active.record(pass);
        let passes = active.passes_in_a_row();
        active.last = Some(CheckRecord {
            pass,
            at: std::time::SystemTime::now(),
            detail: detail.clone(),
        });
        drop(guard);
        match transition {
            Some(Transition::Down) => {
                h.healthy.store(false, Ordering::Relaxed);
                tracing::warn!(pool = %self.pool_name(), server = %self.name, addr = %self.addr, "health check failed {fall} time(s) in a row ({detail}): out of rotation");
            }
            Some(Transition::Up) => {
                h.healthy.store(true, Ordering::Relaxed);
                self.clear_passive();
                h.start_ramp(now);
                tracing::info!(pool = %self.pool_name(), server = %self.name, addr = %self.addr, "health check passed {rise} time(s) in a row: back in rotation");
            }
            None if pass && passes >= rise && !h.passive_available() => {
                // Active checks vouch for a server passive checks took out: usable at once.
                self.clear_passive();
                h.start_ramp(now);
                tracing::info!(pool = %self.pool_name(), server = %self.name, addr = %self.addr, "health check passed {rise} time(s) in a row: back before fail_timeout");
            }
            None => {}
        }
        transition
    }

    /// nginx's quick recovery, asked by the pool when none of its servers can take a
    /// request: forget a passive time-out so that the next request tries this server again.
    /// True when there was one to forget (the server is in rotation — not taken out by an
    /// operator nor by active checks — and out only through `max_fails`/`fail_timeout`).
    pub(super) fn quick_recover(&self) -> bool {
        if !self.in_rotation() || self.health.passive_available() {
            return false;
        }
        self.clear_passive();
        true
    }

    fn clear_passive(&self) {
        let h = &self.health;
        let mut p = h.passive.lock().unwrap_or_else(|e| e.into_inner());
        p.clear();
        h.sync_passive(&p);
    }

    /// Count one active check (the checker calls it beside [`Server::record_check`]): its
    /// result, and how long the probe took.
    pub fn count_check(&self, pass: bool, took: Duration) {
        self.health.checks[usize::from(pass)].fetch_add(1, Ordering::Relaxed);
        self.health.check_time.record(took);
    }

    /// Active checks, ever: `[failed, passed]`.
    pub fn checks(&self) -> [u64; 2] {
        std::array::from_fn(|i| self.health.checks[i].load(Ordering::Relaxed))
    }

    /// How long the active checks took.
    pub fn check_durations(&self) -> Snapshot {
        self.health.check_time.snapshot()
    }

    /// The state an operator sees.
    pub fn health_state(&self) -> HealthState {
        if self.admin_down() {
            HealthState::Disabled
        } else if !self.health.healthy() {
            HealthState::Unhealthy
        } else if !self.health.passive_available() {
            HealthState::Failed
        } else {
            HealthState::Healthy
        }
    }

    /// The last active probe's result and time, if checks run.
    pub fn last_check(&self) -> Option<CheckRecord> {
        self.health
            .active
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .and_then(|a| a.last.clone())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::config::ServerPlan;

    fn server(max_fails: u32, slow_start: Duration) -> Arc<Server> {
        Arc::new(Server::new(&ServerPlan {
            addr: "127.0.0.1:1".parse().unwrap(),
            name: "s".into(),
            weight: 1,
            backup: false,
            down: false,
            drain: false,
            passive: PassivePlan {
                max_fails,
                fail_timeout: Duration::from_secs(10),
            },
            slow_start,
            max_conns: 0,
            from: None,
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn passive_failure_takes_out_until_fail_timeout_on_the_real_clock() {
        let s = server(1, Duration::ZERO);
        s.report_success(Instant::now());
        assert!(s.report_failure(Instant::now()));
        assert_eq!(s.health_state(), HealthState::Failed);
        assert!(
            !s.is_available() && s.in_rotation(),
            "out for picks, rotation unchanged"
        );
        tokio::time::advance(Duration::from_millis(9_990)).await;
        assert!(!s.is_available());
        tokio::time::advance(Duration::from_millis(20)).await;
        assert!(s.is_available(), "tried again after fail_timeout");
        s.report_success(Instant::now());
        assert_eq!(s.health_state(), HealthState::Healthy);
        assert!(s.is_available());
    }

    #[tokio::test(start_paused = true)]
    async fn rise_passes_end_a_passive_timeout_early() {
        let s = server(1, Duration::ZERO);
        assert!(s.report_failure(Instant::now()));
        assert_eq!(
            s.record_check(2, 3, true, "ok".into(), Instant::now()),
            None
        );
        assert!(!s.is_available(), "one pass is not enough");
        assert_eq!(
            s.record_check(2, 3, true, "ok".into(), Instant::now()),
            None
        );
        assert!(s.is_available(), "rise passes clear the passive timeout");
    }

    #[tokio::test(start_paused = true)]
    async fn fall_failures_take_out_of_rotation_and_rise_brings_back() {
        let s = server(0, Duration::ZERO);
        for _ in 0..2 {
            assert_eq!(
                s.record_check(2, 3, false, "status 503".into(), Instant::now()),
                None
            );
        }
        assert_eq!(
            s.record_check(2, 3, false, "status 503".into(), Instant::now()),
            Some(Transition::Down)
        );
        assert!(!s.in_rotation());
        assert_eq!(s.health_state(), HealthState::Unhealthy);
        assert_eq!(s.last_check().unwrap().detail, "status 503");
        s.record_check(2, 3, true, "status 200".into(), Instant::now());
        assert_eq!(
            s.record_check(2, 3, true, "status 200".into(), Instant::now()),
            Some(Transition::Up)
        );
        assert!(s.in_rotation());
    }

    #[tokio::test(start_paused = true)]
    async fn slow_start_admits_a_growing_share_then_all() {
        let s = server(1, Duration::from_secs(20));
        assert!(s.report_failure(Instant::now()));
        tokio::time::advance(Duration::from_secs(10)).await;
        s.report_success(Instant::now());
        assert!(s.in_slow_start());
        let admitted = |s: &Server| (0..100).filter(|_| s.admits_pick()).count();
        assert_eq!(admitted(&s), 5, "1/20 at the start");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(admitted(&s), 50, "half way");
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(admitted(&s), 100);
        assert!(!s.in_slow_start());
    }
}

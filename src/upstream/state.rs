//! The state machines behind a server's health, free of sockets and timers: the clock is
//! passed in, so they are tested by stepping a fake `now`.
//!
//! - [`ActiveHealth`]: HAProxy's rise/fall over active probe results.
//! - [`PassiveWindow`]: nginx's `max_fails` within `fail_timeout` over real traffic.
//! - [`SlowStart`]: the share of its weight a recovering server gets, ramping from ~0 to 1.
//!
//! `Server` wraps them with atomics for the hot path; the health checkers and the proxies
//! feed them.

use std::time::{Duration, SystemTime};

use tokio::time::Instant;

use crate::config::PassivePlan;

/// A change of a server's health, reported once when it happens.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transition {
    /// Enough passes in a row: back in rotation.
    Up,
    /// Enough failures in a row: out of rotation.
    Down,
}

/// The outcome of the last active probe, for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRecord {
    pub pass: bool,
    pub at: SystemTime,
    /// e.g. `status 200`, `connect refused`, `timed out after 1s`.
    pub detail: String,
}

/// Rise/fall thresholds over consecutive probe results. A server starts healthy (as in
/// HAProxy), so a restart of Switchyard does not take every server out until its first
/// `rise` checks pass.
#[derive(Debug, Clone)]
pub struct ActiveHealth {
    pub rise: u32,
    pub fall: u32,
    healthy: bool,
    /// Consecutive passes (positive) or failures (negative counted as `fails`).
    passes: u32,
    fails: u32,
    pub last: Option<CheckRecord>,
}

impl ActiveHealth {
    pub fn new(rise: u32, fall: u32) -> ActiveHealth {
        ActiveHealth {
            rise: rise.max(1),
            fall: fall.max(1),
            healthy: true,
            passes: 0,
            fails: 0,
            last: None,
        }
    }

    pub fn healthy(&self) -> bool {
        self.healthy
    }

    /// Passes in a row so far (reset by a failure or a passive trip).
    pub fn passes_in_a_row(&self) -> u32 {
        self.passes
    }

    /// Forget the current run of passes: after a passive trip, only `rise` fresh passes
    /// may bring the server back early.
    pub fn restart_pass_count(&mut self) {
        self.passes = 0;
    }

    /// Feed one probe result; `Some` when the state flips.
    pub fn record(&mut self, pass: bool) -> Option<Transition> {
        if pass {
            self.passes = self.passes.saturating_add(1);
            self.fails = 0;
            if !self.healthy && self.passes >= self.rise {
                self.healthy = true;
                return Some(Transition::Up);
            }
        } else {
            self.fails = self.fails.saturating_add(1);
            self.passes = 0;
            if self.healthy && self.fails >= self.fall {
                self.healthy = false;
                return Some(Transition::Down);
            }
        }
        None
    }
}

/// nginx's passive health: `max_fails` failures within `fail_timeout` make a server
/// unavailable for `fail_timeout`; then it is tried again ("probation"): one success brings
/// it back for good, one failure takes it out for another `fail_timeout`.
#[derive(Debug, Clone)]
pub struct PassiveWindow {
    plan: PassivePlan,
    fails: u32,
    window_start: Option<Instant>,
    down_until: Option<Instant>,
}

impl PassiveWindow {
    pub fn new(plan: PassivePlan) -> PassiveWindow {
        PassiveWindow {
            plan,
            fails: 0,
            window_start: None,
            down_until: None,
        }
    }

    pub fn plan(&self) -> PassivePlan {
        self.plan
    }

    /// Take new settings; failures already counted stay (and an outage under way ends when
    /// it was due).
    pub fn set_plan(&mut self, plan: PassivePlan) {
        self.plan = plan;
        if plan.max_fails == 0 {
            // Passive checks turned off (e.g. the pool is down to one server): nothing out.
            *self = PassiveWindow::new(plan);
        }
    }

    /// Until when the server is out, if it was taken out (the time may have passed: then it
    /// is on probation).
    pub fn down_until(&self) -> Option<Instant> {
        self.down_until
    }

    /// Whether a request may go to the server at `now`.
    pub fn available(&self, now: Instant) -> bool {
        self.down_until.is_none_or(|until| now >= until)
    }

    /// Count a failure at `now`; true when this failure takes the server out.
    pub fn failure(&mut self, now: Instant) -> bool {
        let PassivePlan {
            max_fails,
            fail_timeout,
        } = self.plan;
        if max_fails == 0 {
            return false;
        }
        if let Some(until) = self.down_until {
            if now < until {
                // Already out; late answers of requests started before do not extend it.
                return false;
            }
            // Failed on probation: out again at once.
            self.down_until = Some(now + fail_timeout);
            return true;
        }
        if self
            .window_start
            .is_none_or(|start| now.saturating_duration_since(start) >= fail_timeout)
        {
            self.window_start = Some(now);
            self.fails = 0;
        }
        self.fails += 1;
        if self.fails >= max_fails {
            self.down_until = Some(now + fail_timeout);
            self.fails = 0;
            self.window_start = None;
            return true;
        }
        false
    }

    /// Count a success at `now`; true when it ends a probation (the server is back).
    pub fn success(&mut self, now: Instant) -> bool {
        self.fails = 0;
        self.window_start = None;
        match self.down_until {
            // A request that started before the trip: it proves little, keep the server out.
            Some(until) if now < until => false,
            Some(_) => {
                self.down_until = None;
                true
            }
            None => false,
        }
    }

    /// Forget everything (active checks vouched for the server).
    pub fn clear(&mut self) {
        *self = PassiveWindow::new(self.plan);
    }

    /// Whether there is anything to forget; lets a success skip the lock.
    pub fn is_clean(&self) -> bool {
        self.fails == 0 && self.down_until.is_none()
    }
}

/// Slow start: a server that comes back gets `elapsed / duration` of its traffic share,
/// never less than 1/`STEPS`, until `duration` has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SlowStart {
    pub duration: Duration,
    pub since: Instant,
}

impl SlowStart {
    /// The finest step of the ramp: admission is decided over `STEPS` picks.
    pub const STEPS: u64 = 20;

    /// Share of picks to admit at `now`, in `1..=STEPS` twentieths; `None` once the ramp is
    /// over.
    pub fn share(&self, now: Instant) -> Option<u64> {
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed >= self.duration {
            return None;
        }
        let steps =
            (elapsed.as_micros() * u128::from(Self::STEPS) / self.duration.as_micros()) as u64;
        Some(steps.clamp(1, Self::STEPS))
    }

    /// Whether pick number `n` (a per-server counter) is admitted at `share`: spreads the
    /// admitted picks evenly over every `STEPS` picks.
    pub fn admits(n: u64, share: u64) -> bool {
        let i = n % Self::STEPS;
        // Admit i when floor((i+1)*share/STEPS) > floor(i*share/STEPS).
        (i + 1) * share / Self::STEPS > i * share / Self::STEPS
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(max_fails: u32, secs: u64) -> PassivePlan {
        PassivePlan {
            max_fails,
            fail_timeout: Duration::from_secs(secs),
        }
    }

    #[test]
    fn rise_and_fall_flip_once() {
        let mut h = ActiveHealth::new(2, 3);
        assert!(h.healthy());
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(true), None, "a pass resets the failure run");
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), None);
        assert_eq!(h.record(false), Some(Transition::Down));
        assert_eq!(h.record(false), None, "logged once, not on every check");
        assert!(!h.healthy());
        assert_eq!(h.record(true), None);
        assert_eq!(h.record(true), Some(Transition::Up));
        assert_eq!(h.record(true), None);
        assert!(h.healthy());
    }

    #[test]
    fn max_fails_within_fail_timeout_takes_out_for_fail_timeout() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut p = PassiveWindow::new(plan(3, 30));
        assert!(!p.failure(t0));
        assert!(!p.failure(t0 + s(10)));
        assert!(p.failure(t0 + s(29)), "third failure within 30s trips");
        assert!(!p.available(t0 + s(30)));
        assert!(!p.available(t0 + s(58)));
        assert!(p.available(t0 + s(59)), "tried again after fail_timeout");
        // Probation: one failure and it is out again.
        assert!(p.failure(t0 + s(60)));
        assert!(!p.available(t0 + s(89)));
        assert!(p.available(t0 + s(90)));
        // A success on probation brings it back; the count starts over.
        assert!(p.success(t0 + s(91)));
        assert!(p.is_clean());
        assert!(!p.failure(t0 + s(92)));
    }

    #[test]
    fn failures_spread_beyond_the_window_do_not_trip() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut p = PassiveWindow::new(plan(2, 10));
        assert!(!p.failure(t0));
        assert!(
            !p.failure(t0 + s(10)),
            "the first failure is out of the window"
        );
        assert!(p.failure(t0 + s(15)));
    }

    #[test]
    fn success_while_out_does_not_bring_back_and_zero_turns_off() {
        let t0 = Instant::now();
        let mut p = PassiveWindow::new(plan(1, 10));
        assert!(p.failure(t0));
        assert!(!p.success(t0 + Duration::from_secs(1)));
        assert!(!p.available(t0 + Duration::from_secs(1)));
        let mut off = PassiveWindow::new(plan(0, 10));
        for _ in 0..100 {
            assert!(!off.failure(t0));
        }
        assert!(off.available(t0));
    }

    #[test]
    fn default_is_nginx_one_failure_ten_seconds() {
        let t0 = Instant::now();
        let mut p = PassiveWindow::new(PassivePlan::default());
        assert!(p.failure(t0));
        assert!(!p.available(t0 + Duration::from_millis(9_999)));
        assert!(p.available(t0 + Duration::from_secs(10)));
    }

    #[test]
    fn slow_start_ramps_linearly() {
        let t0 = Instant::now();
        let ss = SlowStart {
            duration: Duration::from_secs(20),
            since: t0,
        };
        assert_eq!(ss.share(t0), Some(1));
        assert_eq!(ss.share(t0 + Duration::from_secs(5)), Some(5));
        assert_eq!(ss.share(t0 + Duration::from_secs(10)), Some(10));
        assert_eq!(ss.share(t0 + Duration::from_secs(20)), None);
        for share in 1..=SlowStart::STEPS {
            let admitted = (0..SlowStart::STEPS * 5)
                .filter(|&n| SlowStart::admits(n, share))
                .count() as u64;
            assert_eq!(admitted, share * 5, "share {share}");
        }
    }
}

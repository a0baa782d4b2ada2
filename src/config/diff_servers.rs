//! What changed of a server that stays in its pool, as `key before → after`: for the
//! reload report and `switchyard plan` (`diff.rs` decides what is applied).
//!
//! Two of its values may change without the operator touching them: nginx's rule for the
//! only server of a pool (`PoolPlan::lone_server_rule`: never taken out by passive checks,
//! never ramped up) sets `max_fails` to 0 and `slow_start` to 0s while the server is alone,
//! and gives them back when a second server joins. Such a change is real (the server is
//! then checked, or no longer), so it is said, with where it comes from.

use super::plan::ServerPlan;

/// A server's admin state as the file sets it, in HAProxy's words.
pub(super) fn state(s: &ServerPlan) -> &'static str {
    if s.down {
        "maint"
    } else if s.drain {
        "drain"
    } else {
        "ready"
    }
}

/// The changes of server `a` → `b`; `sizes`: how many servers its pool had before and has
/// now (for the lone-server rule).
pub(super) fn server_changes(a: &ServerPlan, b: &ServerPlan, sizes: (usize, usize)) -> Vec<String> {
    let mut out = Vec::new();
    if a.weight != b.weight {
        out.push(format!("weight {} → {}", a.weight, b.weight));
    }
    if state(a) != state(b) {
        out.push(format!("state {} → {}", state(a), state(b)));
    }
    let why = lone_rule(sizes);
    if a.passive != b.passive {
        out.push(format!(
            "max_fails/fail_timeout {}/{:?} → {}/{:?}{why}",
            a.passive.max_fails,
            a.passive.fail_timeout,
            b.passive.max_fails,
            b.passive.fail_timeout
        ));
    }
    if a.slow_start != b.slow_start {
        out.push(format!(
            "slow_start {:?} → {:?}{why}",
            a.slow_start, b.slow_start
        ));
    }
    out
}

/// Why passive checks and slow start changed when the server became, or stopped being, the
/// only one of its pool; empty otherwise.
fn lone_rule((before, now): (usize, usize)) -> String {
    match (before == 1, now == 1) {
        (true, false) => format!(
            " (derived: the only server of a pool is never taken out by passive checks nor ramped up, nginx's rule; the pool now has {now} servers, so the written values apply)"
        ),
        (false, true) => " (derived: now the only server of its pool, which nginx's rule never takes out by passive checks nor ramps up)".into(),
        _ => String::new(),
    }
}

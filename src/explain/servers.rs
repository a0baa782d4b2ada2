//! Each server of a pool, and why it is or is not a candidate for a new request now: its
//! admin state, active and passive health, its `max_conns`, slow start, and its tier. Read from the server's
//! live state; nothing is changed (slow start's admission is peeked, not asked).

use std::sync::Arc;
use std::time::Duration;

use crate::config::{OnDrain, StickyPlan};
use crate::upstream::state::SlowStart;
use crate::upstream::{AdminState, HealthState, Pool, Server};

/// One server as an explanation shows it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub server: Arc<Server>,
    /// Whether the balancer would consider it for this request now.
    pub candidate: bool,
    /// Why it is or is not, one fact a line.
    pub reasons: Vec<String>,
}

/// Every server of `pool`, in configuration order. `backups_asked`: whether the primaries
/// would take nothing, so the backups are asked.
pub fn candidates(pool: &Pool, backups_asked: bool) -> Vec<Candidate> {
    pool.servers()
        .iter()
        .map(|s| candidacy(s, pool.sticky.as_ref(), backups_asked))
        .collect()
}

fn candidacy(s: &Arc<Server>, sticky: Option<&StickyPlan>, backups_asked: bool) -> Candidate {
    let mut reasons = Vec::new();
    match s.admin_state() {
        AdminState::Maint => reasons.push(
            "in maintenance (down = true, or state \"maint\" over the API): out of rotation, and its sticky clients move".to_string(),
        ),
        AdminState::Drain => {
            let stay = match sticky {
                Some(p) if p.on_drain == OnDrain::Move => "its sticky clients move (on_drain = \"move\")",
                Some(_) => "its sticky clients stay",
                None => "requests running finish",
            };
            reasons.push(format!("draining: takes no new requests; {stay}"));
        }
        AdminState::Ready => {}
    }
    match s.health_state() {
        HealthState::Unhealthy => {
            let last = s.last_check().map_or(String::new(), |c| {
                let ago = c.at.elapsed().unwrap_or_default();
                format!(" (last check: {}, {} ago)", c.detail, seconds(ago))
            });
            reasons.push(format!(
                "unhealthy: active health checks failed `fall` times in a row{last}"
            ));
        }
        HealthState::Failed => {
            let left = s.passive_out_for().map_or(String::new(), |d| {
                format!("; tried again in {}", seconds(d))
            });
            reasons.push(format!(
                "failed passively: max_fails failures within fail_timeout{left}"
            ));
        }
        HealthState::Healthy | HealthState::Disabled => {}
    }
    if !s.has_room() {
        reasons.push(format!(
            "at max_conns: {} of {} requests running; not picked until one ends (with a queue, the request waits for a place)",
            s.in_flight(),
            s.max_conns()
        ));
    }
    if let Some(share) = s.slow_start_share() {
        reasons.push(format!(
            "slow start: admitted for {share} of every {} asks now (its weight ramps up after it came back); the next ask would be {}",
            SlowStart::STEPS,
            if s.would_admit_pick() { "admitted" } else { "turned away" }
        ));
    }
    if s.backup {
        reasons.push(if backups_asked {
            "backup: asked now, because no primary can take the request".to_string()
        } else {
            "backup: asked only when no primary can take the request".to_string()
        });
    }
    let candidate = s.would_admit_pick() && (!s.backup || backups_asked);
    if reasons.is_empty() {
        reasons.push(format!("ready and healthy, weight {}", s.weight()));
    }
    Candidate {
        server: s.clone(),
        candidate,
        reasons,
    }
}

/// `2.5s`, `120ms`.
pub fn seconds(d: Duration) -> String {
    if d >= Duration::from_secs(1) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        format!("{}ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ServerPlan;

    #[test]
    fn a_server_at_max_conns_is_no_candidate_and_says_why() {
        let plan = ServerPlan {
            max_conns: 1,
            ..ServerPlan::at("127.0.0.1:9".parse().unwrap())
        };
        let s = Arc::new(Server::new(&plan));
        let c = candidacy(&s, None, false);
        assert!(c.candidate, "{:?}", c.reasons);
        let _running = s.try_begin().expect("a place");
        let c = candidacy(&s, None, false);
        assert!(!c.candidate);
        assert_eq!(
            c.reasons,
            [
                "at max_conns: 1 of 1 requests running; not picked until one ends (with a queue, the request waits for a place)"
            ]
        );
    }
}

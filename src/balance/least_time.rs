//! Least time: the server expected to answer soonest, as nginx Plus's `least_time`.
//!
//! Each server's cost is its response-time EWMA (`Server::latency_ewma_us`, fed by the proxy
//! with the time to the response head) times the requests it would then have in flight,
//! over its weight: `ewma × (in_flight + 1) / weight`. Costs are compared cross-multiplied in
//! integers, so no floats or division. A slow server is used only once the fast ones have
//! enough requests queued to be slower still.
//!
//! A server with no sample yet (new, or just back) must be measured: when idle it is picked
//! before any measured server; while its first request is in flight it is costed at the
//! mean EWMA of the measured servers, so it gets a fair share instead of a flood.
//! Ties are broken in weighted turn, as `least_conn`. A pick is O(servers).

use std::sync::Arc;

use super::round_robin::RoundRobin;
use super::{Balancer, PickContext};
use crate::upstream::Server;

/// Lowest expected response time over a fixed set of servers.
pub struct LeastTime {
    servers: Vec<Arc<Server>>,
    weights: Vec<u64>,
    turn: RoundRobin,
}

impl LeastTime {
    pub fn new(servers: &[Arc<Server>]) -> LeastTime {
        LeastTime {
            servers: servers.to_vec(),
            weights: servers.iter().map(|s| u64::from(s.weight())).collect(),
            turn: RoundRobin::new(servers),
        }
    }
}

/// `ewma × (in_flight + 1)` of one server, and its weight: cost is `.0 / .1`. Kept in
/// `u64` (saturating; 60 s × 10^5 requests is still far below the limit) and compared with
/// one widening multiply per side.
#[derive(Clone, Copy)]
struct Cost(u64, u64);

impl Cost {
    fn new(ewma: u64, in_flight: u32, weight: u64) -> Cost {
        Cost(ewma.saturating_mul(u64::from(in_flight) + 1), weight)
    }

    fn less(self, other: Cost) -> bool {
        u128::from(self.0) * u128::from(other.1) < u128::from(other.0) * u128::from(self.1)
    }
}

impl Balancer for LeastTime {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>> {
        let start = self.turn.next_index()?;
        let n = self.servers.len();
        let mut best: Option<(usize, Cost)> = None;
        // The least busy (in_flight relative to weight) server still waiting for its first
        // sample, costed once the mean EWMA is known.
        let mut unmeasured: Option<(usize, u32)> = None;
        let (mut sum, mut count) = (0u64, 0u64);
        for k in 0..n {
            let i = if start + k >= n {
                start + k - n
            } else {
                start + k
            };
            let s = &self.servers[i];
            let ewma = s.latency_ewma_us();
            let in_flight = s.in_flight();
            let w = self.weights[i];
            // Eligibility is asked only of a server that would be chosen: it costs more than
            // the two loads above, and most servers of a large pool are not.
            if ewma == 0 {
                let better = match unmeasured {
                    None => true,
                    Some((j, f)) => u64::from(in_flight) * self.weights[j] < u64::from(f) * w,
                };
                if (in_flight == 0 || better) && ctx.eligible(s) {
                    if in_flight == 0 {
                        return Some(s.clone());
                    }
                    unmeasured = Some((i, in_flight));
                }
                continue;
            }
            // The mean that costs an unmeasured server is over every measured one.
            sum = sum.saturating_add(ewma);
            count += 1;
            let cost = Cost::new(ewma, in_flight, w);
            if best.is_none_or(|(_, b)| cost.less(b)) && ctx.eligible(s) {
                best = Some((i, cost));
            }
        }
        if let Some((i, in_flight)) = unmeasured {
            // With nothing measured yet, any positive cost will do: all are guesses.
            let mean = sum.checked_div(count).unwrap_or(1).max(1);
            let cost = Cost::new(mean, in_flight, self.weights[i]);
            if best.is_none_or(|(_, b)| cost.less(b)) {
                best = Some((i, cost));
            }
        }
        best.map(|(i, _)| self.servers[i].clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{
        check_exclusion, check_retries_try_each_server_once, index, servers, simulate,
    };
    use std::time::Duration;

    #[test]
    fn moves_traffic_away_from_a_slow_server() {
        let s = servers(&[1, 1, 1]);
        let b = LeastTime::new(&s);
        // Server 0 answers in 50 ticks, the others in 5.
        let counts = simulate(&b, &s, &[50, 5, 5], 2000);
        assert!(counts[0] * 10 < counts[1], "{counts:?}");
        assert!(counts[0] * 10 < counts[2], "{counts:?}");
        assert!(counts[0] >= 1, "the slow server was measured: {counts:?}");
    }

    #[test]
    fn cost_is_latency_times_load_over_weight() {
        let s = servers(&[1, 1, 2]);
        s[0].record_latency(Duration::from_millis(10));
        s[1].record_latency(Duration::from_millis(4));
        s[2].record_latency(Duration::from_millis(6));
        let b = LeastTime::new(&s);
        let pick = || index(&s, &b.pick(&PickContext::default()).unwrap());
        // Costs 10, 4, 3: server 2.
        assert_eq!(pick(), 2);
        // Server 2 with 2 in flight: 6×3/2 = 9 > 4: server 1.
        let _g = (s[2].begin(), s[2].begin());
        assert_eq!(pick(), 1);
        // Server 1 with 2 in flight: 4×3 = 12 > 10 > 9: server 2 again.
        let _h = (s[1].begin(), s[1].begin());
        assert_eq!(pick(), 2);
    }

    #[test]
    fn unmeasured_servers_get_tried() {
        let s = servers(&[1, 1, 1]);
        s[0].record_latency(Duration::from_millis(1));
        s[1].record_latency(Duration::from_millis(1));
        let b = LeastTime::new(&s);
        // Idle and never measured: picked before the measured ones.
        assert_eq!(index(&s, &b.pick(&PickContext::default()).unwrap()), 2);
        // With its probe in flight it costs the mean (1 ms × 2) and the others win.
        let _g = s[2].begin();
        for _ in 0..10 {
            assert_ne!(index(&s, &b.pick(&PickContext::default()).unwrap()), 2);
        }
    }

    #[test]
    fn exclusion() {
        check_exclusion(|s| Box::new(LeastTime::new(s)));
    }

    #[test]
    fn retries_try_each_server_once() {
        check_retries_try_each_server_once(|s| Box::new(LeastTime::new(s)));
    }
}

//! Smooth weighted round robin, as nginx does it.
//!
//! Every pick adds each server's weight to its current weight, takes the largest, and
//! subtracts the total from it: weights 5,3,2 give a,b,a,c,a,b,a,c,b,a — exactly 5,3,2 in
//! every 10, spread out. The sequence is computed once when the balancer is built, and a pick
//! is one atomic increment into it, so the hot path takes no lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::{Balancer, PickContext};
use crate::upstream::Server;

pub struct RoundRobin {
    servers: Vec<Arc<Server>>,
    /// Indices into `servers`, one full smooth-WRR cycle.
    sequence: Vec<u32>,
    next: AtomicUsize,
}

impl RoundRobin {
    pub fn new(servers: &[Arc<Server>]) -> RoundRobin {
        RoundRobin {
            servers: servers.to_vec(),
            sequence: smooth_sequence(&servers.iter().map(|s| s.weight()).collect::<Vec<_>>()),
            next: AtomicUsize::new(0),
        }
    }
}

fn gcd(a: u32, b: u32) -> u32 {
    if b == 0 { a } else { gcd(b, a % b) }
}

/// One cycle of nginx's smooth weighted round robin over `weights`, reduced by their gcd.
pub fn smooth_sequence(weights: &[u32]) -> Vec<u32> {
    if weights.is_empty() {
        return Vec::new();
    }
    let g = weights.iter().copied().fold(0, gcd).max(1);
    let w: Vec<i64> = weights.iter().map(|&x| i64::from(x / g)).collect();
    let total: i64 = w.iter().sum();
    let mut current = vec![0i64; w.len()];
    let mut seq = Vec::with_capacity(total as usize);
    for _ in 0..total {
        let mut best = 0;
        for i in 0..w.len() {
            current[i] += w[i];
            if current[i] > current[best] {
                best = i;
            }
        }
        current[best] -= total;
        seq.push(best as u32);
    }
    seq
}

impl Balancer for RoundRobin {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>> {
        let len = self.sequence.len();
        if len == 0 {
            return None;
        }
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        // Skip what this request may not use; at most one full cycle.
        (0..len)
            .map(|i| &self.servers[self.sequence[(start + i) % len] as usize])
            .find(|s| ctx.eligible(s))
            .cloned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_5_3_2_spread_out() {
        assert_eq!(
            smooth_sequence(&[5, 3, 2]),
            vec![0, 1, 2, 0, 0, 1, 0, 2, 1, 0]
        );
    }
}

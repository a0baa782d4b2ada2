//! Consistent hashing on a ketama ring (`algorithm = "hash"`).
//!
//! Each server puts `160 × weight` points on a ring of `u64`: point `j` of a server is the
//! xxh3 of its address (`"ip:port"`) seeded with `j`, so every load balancer with the same
//! servers builds the same ring. A request's key (`PickContext::hash_key`, else the client
//! address bytes) is hashed with xxh3 too and goes to the first point at or clockwise after
//! it, walking on past points of ineligible servers. Removing a server moves exactly the
//! keys that were on it; adding one takes keys only onto the new server.
//!
//! Memory is bounded: if the pool would need more than [`MAX_POINTS`] points, every server's
//! count is halved (then quartered, …) until it fits, at least one point each. Because the
//! divisor is a power of two shared by the pool, it rarely changes when one server comes or
//! goes, so minimal disruption holds for big weighted pools too except at those steps.
//! A pick reads one bucket of a prefix index, then searches the four to eight points in it.

use std::sync::Arc;

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::{Balancer, PickContext};
use crate::upstream::Server;

/// Points per unit of weight, as ketama and nginx's `hash … consistent`.
pub const POINTS_PER_WEIGHT: u64 = 160;

/// The most points a ring holds (8 bytes each: 2 MiB, plus a 256 KiB bucket index).
pub const MAX_POINTS: u64 = 1 << 18;

/// Points of the ring walked before checking whether anything is eligible at all.
const WALK_BEFORE_CHECK: usize = 64;

/// A ketama ring over a fixed set of servers.
pub struct Ring {
    servers: Vec<Arc<Server>>,
    /// The points, ascending, each packed in one `u64` so a lookup touches one cache line:
    /// the top `64 - idx_bits` bits of the point's hash, then the index of its server in
    /// `servers`. (Comparing hashes on their top 54 bits or more changes nothing that
    /// matters; sorting the packed values orders by hash, then by server.)
    points: Vec<u64>,
    idx_bits: u32,
    /// `buckets[b]` is the first point whose top `bits` bits are `>= b`, with `len` as the
    /// last entry: a pick binary-searches only its bucket (a few points) instead of a ring
    /// that does not fit in cache.
    buckets: Vec<u32>,
    bits: u32,
}

impl Ring {
    pub fn new(servers: &[Arc<Server>]) -> Ring {
        let weights: Vec<u64> = servers
            .iter()
            .map(|s| u64::from(s.weight().max(1)))
            .collect();
        let count = |shift: u32| -> Vec<u64> {
            weights
                .iter()
                .map(|w| ((w * POINTS_PER_WEIGHT) >> shift).max(1))
                .collect()
        };
        let mut shift = 0;
        let mut counts = count(shift);
        while counts.iter().sum::<u64>() > MAX_POINTS && shift < 63 {
            shift += 1;
            counts = count(shift);
        }
        let idx_bits = (usize::BITS - servers.len().saturating_sub(1).leading_zeros()).max(1);
        let hash_mask = !((1u64 << idx_bits) - 1);
        let mut points: Vec<u64> = Vec::with_capacity(counts.iter().sum::<u64>() as usize);
        for (i, (s, &c)) in servers.iter().zip(&counts).enumerate() {
            let id = s.addr.to_string();
            points.extend(
                (0..c).map(|j| (xxh3_64_with_seed(id.as_bytes(), j) & hash_mask) | i as u64),
            );
        }
        points.sort_unstable();
        // Four to eight points per bucket (at least 1 bit, so the shift below stays in range):
        // the index of the largest ring is 256 KiB, which a core's cache holds, instead of
        // 1 MiB, and the points of a bucket are one cache line or two adjacent ones.
        let bits = (usize::BITS - 1)
            .saturating_sub(points.len().leading_zeros())
            .saturating_sub(2)
            .clamp(1, 20);
        let mut buckets = Vec::with_capacity((1 << bits) + 1);
        let mut k = 0;
        for b in 0..(1u64 << bits) {
            while k < points.len() && points[k] >> (64 - bits) < b {
                k += 1;
            }
            buckets.push(k as u32);
        }
        buckets.push(points.len() as u32);
        Ring {
            servers: servers.to_vec(),
            points,
            idx_bits,
            buckets,
            bits,
        }
    }

    /// The first point at or after hash `h`, or `len` if `h` is past the last point.
    fn first_at_or_after(&self, h: u64) -> usize {
        let h = h & !((1u64 << self.idx_bits) - 1);
        let b = (h >> (64 - self.bits)) as usize;
        let (lo, hi) = (self.buckets[b] as usize, self.buckets[b + 1] as usize);
        lo + self.points[lo..hi].partition_point(|&p| p < h)
    }

    /// Points on the ring.
    pub fn len(&self) -> usize {
        self.points.len()
    }

    /// Whether the ring has no points (no servers).
    pub fn is_empty(&self) -> bool {
        self.points.is_empty()
    }
}

impl Ring {
    /// The first eligible server at or after the key's point, looking at most at `limit`
    /// points.
    fn search(&self, ctx: &PickContext<'_>, limit: usize) -> Option<Arc<Server>> {
        let len = self.points.len();
        if len == 0 {
            return None;
        }
        let mut buf = [0u8; 16];
        let Some(key) = super::key_bytes(ctx, &mut buf) else {
            return super::first_eligible(&self.servers, 0, ctx);
        };
        let h = xxh3_64(key);
        let start = self.first_at_or_after(h);
        for step in 0..len.min(limit) {
            if step == WALK_BEFORE_CHECK && !self.servers.iter().any(|s| ctx.eligible(s)) {
                return None;
            }
            let k = if start + step >= len {
                start + step - len
            } else {
                start + step
            };
            let owner = self.points[k] & ((1u64 << self.idx_bits) - 1);
            let s = &self.servers[owner as usize];
            if ctx.eligible(s) {
                return Some(s.clone());
            }
        }
        None
    }
}

impl Balancer for Ring {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>> {
        self.search(ctx, usize::MAX)
    }
}

impl super::StablePick for Ring {
    fn pick_stable(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>> {
        self.search(ctx, super::STABLE_WALK)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{check_exclusion, index, servers};

    fn pick_key(b: &dyn Balancer, s: &[Arc<Server>], key: &[u8]) -> usize {
        let ctx = PickContext {
            hash_key: Some(key),
            ..PickContext::default()
        };
        index(s, &b.pick(&ctx).unwrap())
    }

    fn keys() -> Vec<Vec<u8>> {
        (0..10_000)
            .map(|i| format!("user-{i}").into_bytes())
            .collect()
    }

    #[test]
    fn removing_a_server_moves_only_its_keys() {
        let s = servers(&[1; 10]);
        let full = Ring::new(&s);
        let before: Vec<usize> = keys().iter().map(|k| pick_key(&full, &s, k)).collect();
        // Rebuilt without server 3, as the pool does when it leaves rotation.
        let rest: Vec<_> = s
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 3)
            .map(|(_, x)| x.clone())
            .collect();
        let smaller = Ring::new(&rest);
        let mut moved = 0;
        for (k, &was) in keys().iter().zip(&before) {
            let now = pick_key(&smaller, &s, k);
            if was == 3 {
                moved += 1;
                assert_ne!(now, 3);
            } else {
                assert_eq!(now, was, "a key of server {was} moved");
            }
        }
        // Server 3 held about a tenth of the keys.
        assert!((700..1300).contains(&moved), "{moved}");
        // The same holds without a rebuild, with the server excluded at pick time.
        let tried = [s[3].clone()];
        for (k, &was) in keys().iter().zip(&before) {
            let ctx = PickContext {
                hash_key: Some(k),
                tried: &tried,
                ..PickContext::default()
            };
            let now = index(&s, &full.pick(&ctx).unwrap());
            if was != 3 {
                assert_eq!(now, was);
            }
        }
    }

    #[test]
    fn same_key_same_server_and_weights_honoured() {
        let s = servers(&[1, 1, 2]);
        let b = Ring::new(&s);
        assert_eq!(b.len(), 4 * 160);
        let mut counts = [0usize; 3];
        for k in keys() {
            let i = pick_key(&b, &s, &k);
            assert_eq!(pick_key(&b, &s, &k), i);
            counts[i] += 1;
        }
        assert!(counts[0].abs_diff(2500) < 400, "{counts:?}");
        assert!(counts[1].abs_diff(2500) < 400, "{counts:?}");
        assert!(counts[2].abs_diff(5000) < 500, "{counts:?}");
    }

    #[test]
    fn rings_agree_across_instances() {
        // Same addresses, fresh Server values (other ids): the same answers.
        let a = servers(&[1, 2, 3]);
        let b = servers(&[1, 2, 3]);
        let (ra, rb) = (Ring::new(&a), Ring::new(&b));
        for k in keys().iter().take(1000) {
            assert_eq!(pick_key(&ra, &a, k), pick_key(&rb, &b, k));
        }
    }

    #[test]
    fn client_address_is_the_default_key_and_no_key_is_deterministic() {
        let s = servers(&[1; 5]);
        let b = Ring::new(&s);
        let by_ip = |ip: &str| {
            let ctx = PickContext {
                client: Some(ip.parse().unwrap()),
                ..PickContext::default()
            };
            index(&s, &b.pick(&ctx).unwrap())
        };
        assert_eq!(by_ip("10.0.0.1"), by_ip("10.0.0.1"));
        assert_eq!(by_ip("10.0.0.1"), pick_key(&b, &s, &[10, 0, 0, 1]));
        let spread: std::collections::BTreeSet<_> =
            (0..100).map(|i| by_ip(&format!("10.0.{i}.1"))).collect();
        assert_eq!(spread.len(), 5);
        assert_eq!(index(&s, &b.pick(&PickContext::default()).unwrap()), 0);
    }

    #[test]
    fn big_weighted_pools_stay_bounded() {
        let s = servers(&(0..1000).map(|i| 1 + i % 1000).collect::<Vec<u32>>());
        let b = Ring::new(&s);
        assert!(b.len() as u64 <= MAX_POINTS, "{}", b.len());
        assert!(b.len() as u64 > MAX_POINTS / 2, "{}", b.len());
    }

    #[test]
    fn bucket_index_agrees_with_a_plain_binary_search() {
        for n in [1usize, 3, 100] {
            let s = servers(&vec![1; n]);
            let b = Ring::new(&s);
            let mut probes: Vec<u64> = b
                .points
                .iter()
                .flat_map(|&p| [p.wrapping_sub(1), p, p.wrapping_add(1)])
                .collect();
            probes.extend([0, u64::MAX]);
            probes.extend(keys().iter().map(|k| xxh3_64(k)));
            for h in probes {
                assert_eq!(
                    b.first_at_or_after(h),
                    b.points
                        .partition_point(|&p| p < h & !((1u64 << b.idx_bits) - 1)),
                    "{h}"
                );
            }
        }
    }

    #[test]
    fn exclusion() {
        check_exclusion(|s| Box::new(Ring::new(s)));
    }
}

//! Consistent hashing on a ketama ring (`algorithm = "hash"`).
//!
//! Each server puts `160 × weight` points on a ring of 32-bit positions: point `j` of a
//! server is the top 32 bits of the xxh3 of its address (`"ip:port"`) seeded with `j`, so
//! every load balancer with the same servers builds the same ring. A request's key
//! (`PickContext::hash_key`, else the client address bytes) is hashed with xxh3 too and goes
//! to the first point at or clockwise after the top 32 bits of its hash, walking on past
//! points of ineligible servers. Points at the same position keep the order of their full
//! 64-bit hashes, which does not depend on which other servers are in the pool. Removing a
//! server moves exactly the keys that were on it; adding one takes keys only onto the new
//! server.
//!
//! Memory is bounded: if the pool would need more than [`MAX_POINTS`] points, every server's
//! count is halved (then quartered, …) until it fits, at least one point each. Because the
//! divisor is a power of two shared by the pool, it rarely changes when one server comes or
//! goes, so minimal disruption holds for big weighted pools too except at those steps.
//! A point takes 4 bytes (the rest of its position below a bucket's prefix, then its
//! server), so the largest ring is 1 MiB; a pick reads one bucket of a prefix index (at
//! most 128 KiB), then searches the few points of that bucket, one cache line.

use std::sync::Arc;

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::{Balancer, Explanation, PickContext, label};
use crate::upstream::Server;

/// Points per unit of weight, as ketama and nginx's `hash … consistent`.
pub const POINTS_PER_WEIGHT: u64 = 160;

/// The most points a ring holds (4 bytes each: 1 MiB, plus a 128 KiB bucket index).
pub const MAX_POINTS: u64 = 1 << 18;

/// Points of the ring walked before checking whether anything is eligible at all.
const WALK_BEFORE_CHECK: usize = 64;

/// A ketama ring over a fixed set of servers.
pub struct Ring {
    servers: Vec<Arc<Server>>,
    /// The points in ring order, each `position << bits | server`: the low `32 - bits` bits
    /// of its 32-bit position (the top `bits` are its bucket's), then the index of its server
    /// in `servers`, which fits in `bits` bits.
    points: Vec<u32>,
    /// `buckets[b]` is the first point whose position's top `bits` bits are `>= b`, with
    /// `len` as the last entry: a pick searches only its bucket's points.
    buckets: Vec<u32>,
    bits: u32,
}

/// The ring position of a hash: its top 32 bits.
fn position(hash: u64) -> u32 {
    (hash >> 32) as u32
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
        // (hash, server): sorted by the whole hash, so points at one position keep an order
        // of their own.
        let mut hashes: Vec<(u64, u32)> = Vec::with_capacity(counts.iter().sum::<u64>() as usize);
        for (i, (s, &c)) in servers.iter().zip(&counts).enumerate() {
            let id = s.addr.to_string();
            hashes.extend((0..c).map(|j| (xxh3_64_with_seed(id.as_bytes(), j), i as u32)));
        }
        hashes.sort_unstable();
        // One or two points per bucket, up to an index of 2^15 buckets (128 KiB, which a
        // core's cache keeps) and four to eight points (32 bytes) per bucket in the largest
        // rings; room for a server's index below a point's position; at least 1 bit, so the
        // shifts stay in range.
        let server_bits = usize::BITS - servers.len().saturating_sub(1).leading_zeros();
        let bits = (usize::BITS - 1)
            .saturating_sub(hashes.len().leading_zeros())
            .min(15)
            .max(server_bits)
            .clamp(1, 31);
        let points = hashes
            .iter()
            .map(|&(h, i)| position(h) << bits | i)
            .collect();
        let mut buckets = Vec::with_capacity((1 << bits) + 1);
        let mut k = 0;
        for b in 0..(1u32 << bits) {
            while k < hashes.len() && position(hashes[k].0) >> (32 - bits) < b {
                k += 1;
            }
            buckets.push(k as u32);
        }
        buckets.push(hashes.len() as u32);
        Ring {
            servers: servers.to_vec(),
            points,
            buckets,
            bits,
        }
    }

    /// The first point at or after position `at`, or `len` if `at` is past the last point.
    fn first_at_or_after(&self, at: u32) -> usize {
        let b = (at >> (32 - self.bits)) as usize;
        let (lo, hi) = (self.buckets[b] as usize, self.buckets[b + 1] as usize);
        let below = at << self.bits >> self.bits;
        lo + self.points[lo..hi].partition_point(|&p| p >> self.bits < below)
    }

    /// The server of point `k`.
    fn owner(&self, k: usize) -> usize {
        (self.points[k] & ((1 << self.bits) - 1)) as usize
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
    /// The first server at or after the key's point that `take` accepts, looking at most at
    /// `limit` points; `seen` is told the key's position and the first point. `Err(true)`
    /// when the request has nothing to hash (then the first server `take` accepts decides).
    fn search(
        &self,
        ctx: &PickContext<'_>,
        limit: usize,
        take: impl Fn(&Server) -> bool,
        mut seen: impl FnMut(u32, usize),
    ) -> Result<Option<usize>, bool> {
        let len = self.points.len();
        if len == 0 {
            return Err(false);
        }
        let mut buf = [0u8; 16];
        let Some(key) = super::key_bytes(ctx, &mut buf) else {
            return Err(true);
        };
        let at = position(xxh3_64(key));
        let start = self.first_at_or_after(at);
        seen(at, start);
        for step in 0..len.min(limit) {
            if step == WALK_BEFORE_CHECK && !self.servers.iter().any(|s| take(s)) {
                return Ok(None);
            }
            let k = if start + step >= len {
                start + step - len
            } else {
                start + step
            };
            if take(&self.servers[self.owner(k)]) {
                return Ok(Some(self.owner(k)));
            }
        }
        Ok(None)
    }

    /// [`Ring::search`] with [`PickContext::eligible`], written out: the pick keeps its own
    /// loop, as before explanations (the generic search with its callbacks cost 3 more
    /// instructions a pick: 231 -> 228 at 3 servers, callgrind); the explanation tests hold
    /// the two to the same answers.
    fn pick_within(&self, ctx: &PickContext<'_>, limit: usize) -> Option<Arc<Server>> {
        let len = self.points.len();
        if len == 0 {
            return None;
        }
        let mut buf = [0u8; 16];
        let Some(key) = super::key_bytes(ctx, &mut buf) else {
            return super::first_eligible(&self.servers, 0, ctx);
        };
        let start = self.first_at_or_after(position(xxh3_64(key)));
        for step in 0..len.min(limit) {
            if step == WALK_BEFORE_CHECK && !self.servers.iter().any(|s| ctx.eligible(s)) {
                return None;
            }
            let k = if start + step >= len {
                start + step - len
            } else {
                start + step
            };
            let s = &self.servers[self.owner(k)];
            if ctx.eligible(s) {
                return Some(s.clone());
            }
        }
        None
    }

    /// The ring position of point `k`.
    fn point_position(&self, k: usize) -> u32 {
        let bucket = self.buckets.partition_point(|&b| b as usize <= k) - 1;
        ((bucket as u32) << (32 - self.bits)) | (self.points[k] >> self.bits)
    }

    /// The explanation of a pick that looks at most at `limit` points.
    fn explain_within(&self, ctx: &PickContext<'_>, limit: usize) -> Explanation {
        let mut e = Explanation::new("hash");
        let mut counts = vec![0usize; self.servers.len()];
        for k in 0..self.points.len() {
            counts[self.owner(k)] += 1;
        }
        for (s, c) in self.servers.iter().zip(counts) {
            e.server(s).add("weight", s.weight()).add("points", c);
        }
        e.facts.add("points", self.points.len());
        let mut start = None;
        let found = self.search(
            ctx,
            limit,
            |s| ctx.would_take(s),
            // A key after the ring's last point wraps to the first.
            |at, k| start = Some((at, k % self.points.len())),
        );
        if let Some((at, k)) = start {
            let mut buf = [0u8; 16];
            let key = super::key_bytes(ctx, &mut buf).unwrap_or_default();
            e.facts
                .add("xxh3", format!("{:016x}", xxh3_64(key)))
                .add("position", at)
                .add("point", k)
                .add("point_position", self.point_position(k));
            e.step(format!(
                "xxh3 of the key puts it at ring position {at} (of 2^32); the first point at or after it is point {k} of {}, at {}",
                self.points.len(),
                self.point_position(k)
            ));
            let len = self.points.len();
            for step in 0..len.min(limit).min(WALK_BEFORE_CHECK) {
                let s = &self.servers[self.owner((k + step) % len)];
                match ctx.refusal(s) {
                    Some(why) => e.step(format!(
                        "point {} belongs to {} ({why}): on to the next point",
                        (k + step) % len,
                        label(s)
                    )),
                    None => {
                        e.step(format!(
                            "point {} belongs to {}",
                            (k + step) % len,
                            label(s)
                        ));
                        break;
                    }
                }
            }
        }
        let pick = match found {
            Ok(found) => found,
            Err(true) => {
                e.step("nothing to hash (no key, no client address): the first eligible server");
                super::first_where(&self.servers, 0, |s| ctx.would_take(s))
            }
            Err(false) => None,
        };
        e.pick = pick.map(|i| self.servers[i].clone());
        if e.pick.is_none() {
            e.step(format!("no eligible server within {limit} points"));
        }
        e
    }
}

impl Balancer for Ring {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>> {
        self.pick_within(ctx, usize::MAX)
    }

    /// A peek: the ring is a function of the servers and the key, nothing changes.
    fn explain(&self, ctx: &PickContext<'_>) -> Explanation {
        self.explain_within(ctx, usize::MAX)
    }
}

impl super::StablePick for Ring {
    fn pick_stable(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>> {
        self.pick_within(ctx, super::STABLE_WALK)
    }

    fn explain_stable(&self, ctx: &PickContext<'_>) -> Explanation {
        self.explain_within(ctx, super::STABLE_WALK)
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
        for n in [1usize, 3, 100, 1000] {
            let s = servers(&vec![1; n]);
            let b = Ring::new(&s);
            // Every point's position, with its bucket's prefix put back.
            let positions: Vec<u32> = (0..b.len())
                .map(|k| {
                    let bucket = b.buckets.partition_point(|&first| first as usize <= k) - 1;
                    ((bucket as u32) << (32 - b.bits)) | (b.points[k] >> b.bits)
                })
                .collect();
            assert!(positions.is_sorted());
            let mut probes: Vec<u32> = positions
                .iter()
                .flat_map(|&p| [p.wrapping_sub(1), p, p.wrapping_add(1)])
                .collect();
            probes.extend([0, u32::MAX]);
            probes.extend(keys().iter().map(|k| position(xxh3_64(k))));
            for at in probes {
                assert_eq!(
                    b.first_at_or_after(at),
                    positions.partition_point(|&p| p < at),
                    "{at}"
                );
            }
        }
    }

    #[test]
    fn points_at_one_position_keep_their_order_whatever_the_other_servers() {
        // The server index of a point changes when a server before it leaves the pool; the
        // order of points at the same 32-bit position must not.
        let s = servers(&[1; 50]);
        let full = Ring::new(&s);
        let rest: Vec<_> = s[1..].to_vec();
        let smaller = Ring::new(&rest);
        let owners = |r: &Ring, of: &[Arc<Server>]| -> Vec<u64> {
            (0..r.len()).map(|k| of[r.owner(k)].id()).collect()
        };
        let s0 = s[0].id();
        let kept: Vec<u64> = owners(&full, &s)
            .into_iter()
            .filter(|&id| id != s0)
            .collect();
        assert_eq!(kept, owners(&smaller, &rest));
    }

    #[test]
    fn exclusion() {
        check_exclusion(|s| Box::new(Ring::new(s)));
    }
}

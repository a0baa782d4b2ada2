//! Maglev hashing (Google's Maglev paper): a lookup table of prime size filled from each
//! server's own permutation of the slots.
//!
//! Every server derives `offset` and `skip` from the xxh3 of its address, which gives it a
//! permutation `offset, offset + skip, offset + 2·skip, … (mod M)` of the table. The servers
//! take turns claiming the next free slot of their permutation until the table is full;
//! weights are honoured by giving a server `weight / max weight` turns per round (a credit
//! counter), so it ends with about `M × weight / total` slots. Everything derives from
//! addresses only, so every load balancer with the same servers builds the same table.
//!
//! A pick is one xxh3 of the key (`PickContext::hash_key`, else the client address bytes)
//! and one table read. If that server is ineligible the key is rehashed (xxh3 seeded 1, 2,
//! …) and the slot it lands on is tried, up to `balance::STABLE_WALK` times, then the
//! following slots in table order. Each rehash is a uniform draw over the table, whose slots
//! belong to servers in proportion to their weights, so a failed server's keys spread over
//! the others by weight instead of piling onto one neighbour. (Walking the next slots would
//! not: a server's slots follow an arithmetic progression, and with few servers left the
//! next eligible slot favours some of them several times over.) Rebuilding the table without
//! a server moves its keys and a small extra share of others (unlike a ring, Maglev trades
//! exact minimal disruption for a perfectly even table and O(1) lookups); a pool keeps the
//! table over every configured server and skips the ineligible ones this way, which moves
//! only their keys.

use std::sync::Arc;

use xxhash_rust::xxh3::{xxh3_64, xxh3_64_with_seed};

use super::{Balancer, Explanation, PickContext, label};
use crate::upstream::Server;

/// Table size: prime, and large against any sensible pool (the paper suggests ≥ 100 ×
/// servers; 65,537 keeps the imbalance within a few percent up to several hundred servers).
pub const TABLE_SIZE: usize = 65_537;

/// Slots tried before checking whether anything is eligible at all.
const WALK_BEFORE_CHECK: usize = 64;

/// A Maglev lookup table over a fixed set of servers.
pub struct Maglev {
    servers: Vec<Arc<Server>>,
    /// `table[slot]` is an index into `servers`; empty when there are no servers.
    table: Vec<u32>,
}

impl Maglev {
    pub fn new(servers: &[Arc<Server>]) -> Maglev {
        Maglev {
            servers: servers.to_vec(),
            table: populate(servers),
        }
    }

    /// How many slots server `i` (by position in the pool) owns.
    pub fn slots_of(&self, i: usize) -> usize {
        self.table.iter().filter(|&&x| x as usize == i).count()
    }
}

fn populate(servers: &[Arc<Server>]) -> Vec<u32> {
    let m = TABLE_SIZE as u64;
    if servers.is_empty() {
        return Vec::new();
    }
    // Per server: (next slot of its permutation, skip, weight, credit).
    let mut perm: Vec<(u64, u64, u64, u64)> = servers
        .iter()
        .map(|s| {
            let id = s.addr.to_string();
            let offset = xxh3_64_with_seed(id.as_bytes(), 0x6d61_676c) % m;
            let skip = xxh3_64_with_seed(id.as_bytes(), 0x736b_6970) % (m - 1) + 1;
            (offset, skip, u64::from(s.weight().max(1)), 0)
        })
        .collect();
    let max_w = perm.iter().map(|p| p.2).max().unwrap_or(1);
    let mut table = vec![u32::MAX; TABLE_SIZE];
    let mut filled = 0;
    while filled < TABLE_SIZE {
        for (i, p) in perm.iter_mut().enumerate() {
            p.3 += p.2;
            while p.3 >= max_w && filled < TABLE_SIZE {
                p.3 -= max_w;
                // `skip` is in 1..M and M is prime, so the permutation visits every slot
                // and a free one is always found.
                loop {
                    let slot = p.0 as usize;
                    p.0 = (p.0 + p.1) % m;
                    if table[slot] == u32::MAX {
                        table[slot] = i as u32;
                        filled += 1;
                        break;
                    }
                }
            }
        }
    }
    table
}

impl Maglev {
    /// The key's slot for try `n`: its own slot first, then a rehash (xxh3 seeded with `n`)
    /// per further try, each a uniform draw over the table.
    fn slot(&self, key: &[u8], n: u64) -> usize {
        let h = if n == 0 {
            xxh3_64(key)
        } else {
            xxh3_64_with_seed(key, n)
        };
        (h % self.table.len() as u64) as usize
    }

    /// The server of the key's slot, else of its rehashed slots, trying at most `limit`
    /// slots; with `exhaustive`, then every slot in table order from the key's own. Servers
    /// are those `take` accepts; `seen` is told each slot tried and its server. `Err(true)`
    /// when the request has nothing to hash (then the first server `take` accepts decides).
    fn search(
        &self,
        ctx: &PickContext<'_>,
        limit: usize,
        exhaustive: bool,
        take: impl Fn(&Server) -> bool,
        mut seen: impl FnMut(usize, usize),
    ) -> Result<Option<usize>, bool> {
        let len = self.table.len();
        if len == 0 {
            return Err(false);
        }
        let mut buf = [0u8; 16];
        let Some(key) = super::key_bytes(ctx, &mut buf) else {
            return Err(true);
        };
        for n in 0..limit {
            if n == WALK_BEFORE_CHECK && !self.servers.iter().any(|s| take(s)) {
                return Ok(None);
            }
            let slot = self.slot(key, n as u64);
            let i = self.table[slot] as usize;
            seen(slot, i);
            if take(&self.servers[i]) {
                return Ok(Some(i));
            }
        }
        if !exhaustive || !self.servers.iter().any(|s| take(s)) {
            return Ok(None);
        }
        let start = self.slot(key, 0);
        Ok((0..len)
            .map(|step| self.table[(start + step) % len] as usize)
            .find(|&i| take(&self.servers[i])))
    }

    fn pick_within(&self, ctx: &PickContext<'_>, exhaustive: bool) -> Option<Arc<Server>> {
        let take = |s: &Server| ctx.eligible(s);
        match self.search(ctx, super::STABLE_WALK, exhaustive, take, |_, _| {}) {
            Ok(found) => found.map(|i| self.servers[i].clone()),
            Err(true) => super::first_eligible(&self.servers, 0, ctx),
            Err(false) => None,
        }
    }

    /// The explanation of a pick (`exhaustive`: as [`Maglev::search`]).
    fn explain_within(&self, ctx: &PickContext<'_>, exhaustive: bool) -> Explanation {
        let mut e = Explanation::new("maglev");
        let mut slots = vec![0usize; self.servers.len()];
        for &i in &self.table {
            slots[i as usize] += 1;
        }
        for (s, c) in self.servers.iter().zip(slots) {
            e.server(s).add("weight", s.weight()).add("slots", c);
        }
        e.facts.add("table", self.table.len());
        let mut tried = Vec::new();
        let take = |s: &Server| ctx.would_take(s);
        let found = self.search(ctx, super::STABLE_WALK, exhaustive, take, |slot, i| {
            tried.push((slot, i))
        });
        if let Some(&(slot, _)) = tried.first() {
            let mut buf = [0u8; 16];
            let key = super::key_bytes(ctx, &mut buf).unwrap_or_default();
            e.facts
                .add("xxh3", format!("{:016x}", xxh3_64(key)))
                .add("slot", slot);
            e.step(format!(
                "xxh3 of the key mod {} is slot {slot}",
                self.table.len()
            ));
        }
        // The first few tries; a key that rehashes dozens of times is summed up after them.
        for (n, &(slot, i)) in tried.iter().enumerate().take(8) {
            let s = &self.servers[i];
            let what = if n == 0 {
                "the slot".to_string()
            } else {
                format!("rehash {n}: slot {slot}")
            };
            match ctx.refusal(s) {
                Some(why) => e.step(format!("{what} belongs to {} ({why})", label(s))),
                None => e.step(format!("{what} belongs to {}", label(s))),
            }
        }
        if tried.len() > 8 {
            e.step(format!("... {} slots tried in all", tried.len()));
        }
        let pick = match found {
            Ok(Some(i)) => {
                if tried.last().is_none_or(|&(_, j)| j != i) {
                    e.step(format!(
                        "{} rehashes found nothing eligible: the next slots in table order",
                        super::STABLE_WALK
                    ));
                }
                Some(i)
            }
            Ok(None) => {
                e.step(format!("no eligible server in {} slots", tried.len()));
                None
            }
            Err(true) => {
                e.step("nothing to hash (no key, no client address): the first eligible server");
                super::first_where(&self.servers, 0, |s| ctx.would_take(s))
            }
            Err(false) => None,
        };
        e.pick = pick.map(|i| self.servers[i].clone());
        e
    }
}

impl Balancer for Maglev {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>> {
        self.pick_within(ctx, true)
    }

    /// A peek: the table is a function of the servers and the key, nothing changes.
    fn explain(&self, ctx: &PickContext<'_>) -> Explanation {
        self.explain_within(ctx, true)
    }
}

impl super::StablePick for Maglev {
    fn pick_stable(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>> {
        self.pick_within(ctx, false)
    }

    fn explain_stable(&self, ctx: &PickContext<'_>) -> Explanation {
        self.explain_within(ctx, false)
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
            .map(|i| format!("session-{i}").into_bytes())
            .collect()
    }

    #[test]
    fn removing_a_server_moves_about_its_share() {
        let n = 10;
        let s = servers(&vec![1; n]);
        let full = Maglev::new(&s);
        let before: Vec<usize> = keys().iter().map(|k| pick_key(&full, &s, k)).collect();
        let rest: Vec<_> = s
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != 4)
            .map(|(_, x)| x.clone())
            .collect();
        let smaller = Maglev::new(&rest);
        let (mut moved, mut on_removed) = (0, 0);
        for (k, &was) in keys().iter().zip(&before) {
            let now = pick_key(&smaller, &s, k);
            if was == 4 {
                on_removed += 1;
                assert_ne!(now, 4, "every key of the removed server moves");
            }
            if now != was {
                moved += 1;
            }
        }
        // About 1/N of the keys lived there and moved; few others did.
        assert!((800..1200).contains(&on_removed), "{on_removed}");
        assert!(
            moved < on_removed + 10_000 / n / 5,
            "moved {moved}, of which {on_removed} had to"
        );
    }

    #[test]
    fn table_honours_weights_and_keys_stick() {
        let s = servers(&[1, 2, 3, 4]);
        let b = Maglev::new(&s);
        for (i, w) in [1usize, 2, 3, 4].into_iter().enumerate() {
            let want = TABLE_SIZE * w / 10;
            assert!(
                b.slots_of(i).abs_diff(want) < want / 50,
                "server {i}: {}",
                b.slots_of(i)
            );
        }
        let mut counts = [0usize; 4];
        for k in keys() {
            let i = pick_key(&b, &s, &k);
            assert_eq!(pick_key(&b, &s, &k), i);
            counts[i] += 1;
        }
        for (i, w) in [1usize, 2, 3, 4].into_iter().enumerate() {
            assert!(counts[i].abs_diff(1000 * w) < 250, "{counts:?}");
        }
    }

    #[test]
    fn tables_agree_across_instances() {
        let (a, b) = (servers(&[1, 2, 3]), servers(&[1, 2, 3]));
        assert_eq!(populate(&a), populate(&b));
    }

    #[test]
    fn an_excluded_server_spreads_its_keys() {
        let s = servers(&[1; 5]);
        let b = Maglev::new(&s);
        let tried = [s[0].clone()];
        let mut got = std::collections::BTreeSet::new();
        for k in keys() {
            let was = pick_key(&b, &s, &k);
            let ctx = PickContext {
                hash_key: Some(&k),
                tried: &tried,
                ..PickContext::default()
            };
            let now = index(&s, &b.pick(&ctx).unwrap());
            if was == 0 {
                got.insert(now);
            } else {
                assert_eq!(now, was);
            }
        }
        assert_eq!(got.len(), 4, "server 0's keys went to every other server");
    }

    #[test]
    fn no_key_is_deterministic() {
        let s = servers(&[1, 1]);
        assert_eq!(
            index(&s, &Maglev::new(&s).pick(&PickContext::default()).unwrap()),
            0
        );
    }

    #[test]
    fn exclusion() {
        check_exclusion(|s| Box::new(Maglev::new(s)));
    }
}

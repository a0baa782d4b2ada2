//! A bounded stick table: key (client address, session cookie value) → server id, each
//! entry forgotten `ttl` after its last use, the oldest evicted first when the table is
//! full. The clock is passed in, so expiry is tested without waiting.
//!
//! Memory stays bounded under a flood of new keys: at most `capacity` entries, and the age
//! queue at most about twice that (it is compacted when stale entries pile up). The table
//! is split into shards, each behind its own short lock, so requests of different clients
//! rarely wait on each other; the lock is held for one hash-map operation.

use std::collections::VecDeque;
use std::collections::hash_map::{Entry, HashMap};
use std::hash::{BuildHasher, Hash};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

const SHARDS: usize = 16;

struct Slot {
    server: u64,
    expires: Instant,
}

struct Shard<K> {
    map: HashMap<K, Slot>,
    /// Keys in order of their expiry time as pushed; an entry whose time no longer matches
    /// the map's is stale and skipped.
    order: VecDeque<(K, Instant)>,
}

/// Key → server id with expiry and a size cap.
pub struct StickTable<K> {
    shards: Vec<Mutex<Shard<K>>>,
    per_shard: usize,
    ttl: Duration,
    hasher: std::collections::hash_map::RandomState,
}

impl<K: Hash + Eq + Clone> StickTable<K> {
    /// A table of at most about `capacity` entries (rounded up to a multiple of the shard
    /// count), each kept `ttl` after its last use.
    pub fn new(capacity: usize, ttl: Duration) -> StickTable<K> {
        StickTable {
            shards: (0..SHARDS)
                .map(|_| {
                    Mutex::new(Shard {
                        map: HashMap::new(),
                        order: VecDeque::new(),
                    })
                })
                .collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            ttl,
            hasher: Default::default(),
        }
    }

    fn shard(&self, key: &K) -> &Mutex<Shard<K>> {
        &self.shards[(self.hasher.hash_one(key) as usize) % SHARDS]
    }

    /// The server remembered for `key` at `now`, extending its life (a used mapping stays).
    pub fn get(&self, key: &K, now: Instant) -> Option<u64> {
        self.get_renewing(key, now).map(|(server, _)| server)
    }

    /// The server remembered for `key` at `now`, leaving the entry's life as it is (for an
    /// explanation, which is not a use).
    pub fn peek(&self, key: &K, now: Instant) -> Option<u64> {
        let shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        shard
            .map
            .get(key)
            .filter(|slot| now < slot.expires)
            .map(|slot| slot.server)
    }

    /// [`StickTable::get`], and whether this use pushed the entry's expiry, which happens
    /// when an eighth of the ttl has gone by since the last push: at most about eight times
    /// per ttl for a busy key. A copy kept elsewhere (Redis) is renewed at those moments.
    pub fn get_renewing(&self, key: &K, now: Instant) -> Option<(u64, bool)> {
        let mut shard = self.shard(key).lock().unwrap_or_else(|e| e.into_inner());
        let slot = shard.map.get_mut(key)?;
        if now >= slot.expires {
            return None;
        }
        let server = slot.server;
        // Re-queue only when an eighth of the ttl has gone by: a busy key adds at most
        // eight queue entries per ttl.
        let renew = slot.expires - now < self.ttl - self.ttl / 8;
        if renew {
            slot.expires = now + self.ttl;
            let expires = slot.expires;
            shard.order.push_back((key.clone(), expires));
            self.tidy(&mut shard, now);
        }
        Some((server, renew))
    }

    /// The live entries at `now`: key, server and time left, one shard locked at a time
    /// (for copying the table elsewhere, such as to Redis after an outage).
    pub fn entries(&self, now: Instant) -> Vec<(K, u64, Duration)> {
        let mut out = Vec::new();
        for shard in &self.shards {
            let shard = shard.lock().unwrap_or_else(|e| e.into_inner());
            out.extend(
                shard
                    .map
                    .iter()
                    .filter(|(_, s)| s.expires > now)
                    .map(|(k, s)| (k.clone(), s.server, s.expires - now)),
            );
        }
        out
    }

    /// How long an entry lives after its last use.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// Remember `key` → `server` from `now`.
    pub fn insert(&self, key: K, server: u64, now: Instant) {
        let mut shard = self.shard(&key).lock().unwrap_or_else(|e| e.into_inner());
        let expires = now + self.ttl;
        match shard.map.entry(key.clone()) {
            Entry::Occupied(mut e) => {
                let slot = e.get_mut();
                slot.server = server;
                slot.expires = expires;
            }
            Entry::Vacant(e) => {
                e.insert(Slot { server, expires });
            }
        }
        shard.order.push_back((key, expires));
        self.tidy(&mut shard, now);
    }

    /// Remember `key` → `server` from `now` only when that evicts nobody: the key is held
    /// already, or its shard has room. For keys a client chose, which must not push out the
    /// ones a server issued. Returns whether it was stored.
    pub fn insert_if_room(&self, key: K, server: u64, now: Instant) -> bool {
        {
            let mut shard = self.shard(&key).lock().unwrap_or_else(|e| e.into_inner());
            self.tidy(&mut shard, now);
            if !shard.map.contains_key(&key) && shard.map.len() >= self.per_shard {
                return false;
            }
        }
        self.insert(key, server, now);
        true
    }

    /// Entries held now (expired ones included until they are evicted).
    pub fn len(&self) -> usize {
        self.shards
            .iter()
            .map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).map.len())
            .sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most entries the table holds.
    pub fn capacity(&self) -> usize {
        self.per_shard * SHARDS
    }

    /// Drop expired entries and, while over capacity, the oldest; compact the queue when
    /// stale entries make up most of it.
    fn tidy(&self, shard: &mut Shard<K>, now: Instant) {
        while let Some((key, at)) = shard.order.front() {
            let live = shard.map.get(key).is_some_and(|s| s.expires == *at);
            if !live {
                shard.order.pop_front();
                continue;
            }
            if now >= *at || shard.map.len() > self.per_shard {
                let (key, _) = shard.order.pop_front().expect("front exists");
                shard.map.remove(&key);
                continue;
            }
            break;
        }
        if shard.order.len() > 2 * self.per_shard + 16 {
            let mut live: Vec<(K, Instant)> = shard
                .map
                .iter()
                .map(|(k, s)| (k.clone(), s.expires))
                .collect();
            live.sort_by_key(|(_, t)| *t);
            shard.order = live.into();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_ttl_since_last_use() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let t: StickTable<u32> = StickTable::new(100, s(60));
        t.insert(1, 7, t0);
        assert_eq!(t.get(&1, t0 + s(59)), Some(7), "used: lives until t0+119");
        assert_eq!(t.get(&1, t0 + s(118)), Some(7));
        assert_eq!(t.get(&1, t0 + s(179)), None, "unused for 61s");
        assert_eq!(t.get(&2, t0), None);
    }

    #[test]
    fn a_flood_of_new_keys_stays_bounded_and_evicts_the_oldest() {
        let t0 = Instant::now();
        let t: StickTable<u64> = StickTable::new(1024, Duration::from_secs(3600));
        for k in 0..100_000u64 {
            t.insert(k, k % 3, t0 + Duration::from_millis(k));
        }
        assert!(t.len() <= t.capacity(), "{} > {}", t.len(), t.capacity());
        let queued: usize = t.shards.iter().map(|s| s.lock().unwrap().order.len()).sum();
        assert!(queued <= 2 * t.capacity() + 16 * SHARDS, "{queued}");
        let now = t0 + Duration::from_millis(100_000);
        assert_eq!(t.get(&99_999, now), Some(99_999 % 3), "the newest stays");
        assert_eq!(t.get(&0, now), None, "the oldest went");
    }

    #[test]
    fn a_busy_key_does_not_grow_the_queue() {
        let t0 = Instant::now();
        let t: StickTable<u8> = StickTable::new(16, Duration::from_secs(80));
        t.insert(1, 1, t0);
        for ms in 0..200_000u64 {
            assert_eq!(t.get(&1, t0 + Duration::from_millis(ms)), Some(1));
        }
        let queued: usize = t.shards.iter().map(|s| s.lock().unwrap().order.len()).sum();
        assert!(queued <= 2 + 16 * 2, "{queued}");
    }

    #[test]
    fn renewals_are_reported_and_entries_list_the_live_ones() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let t: StickTable<u32> = StickTable::new(100, s(80));
        t.insert(1, 7, t0);
        t.insert(2, 8, t0);
        assert_eq!(t.get_renewing(&1, t0 + s(5)), Some((7, false)), "fresh");
        assert_eq!(
            t.get_renewing(&1, t0 + s(11)),
            Some((7, true)),
            "an eighth gone"
        );
        assert_eq!(t.get_renewing(&1, t0 + s(12)), Some((7, false)));
        let mut live = t.entries(t0 + s(85));
        live.sort();
        assert_eq!(
            live,
            vec![(1, 7, s(6))],
            "2 expired at t0+80, 1 lives to t0+91"
        );
    }

    #[test]
    fn insert_moves_a_key() {
        let t0 = Instant::now();
        let t: StickTable<&str> = StickTable::new(16, Duration::from_secs(10));
        t.insert("a", 1, t0);
        t.insert("a", 2, t0);
        assert_eq!(t.get(&"a", t0), Some(2));
        assert_eq!(t.len(), 1);
    }
}

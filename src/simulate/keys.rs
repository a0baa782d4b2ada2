//! Keys moved, computed with the real pools: every key's server in a pool built from one
//! plan, and in the pool built from another, exact over the keys asked, never estimated.
//! [`moved_between`] is the one place this is done: `simulate` asks it about a server that
//! leaves (removed by a reload, or marked `down`); `switchyard plan` about any change of a
//! hashing pool. Only hashing algorithms keep a key on a server, so only they are asked.
//! [`sessions_moved`] does the same for sticky sessions, placed by the real pool.

use std::net::SocketAddr;

use super::model::{client_of, key_bytes};
use super::report::KeysMoved;
use super::workload::{Workload, is_hashing};
use crate::balance::PickContext;
use crate::config::{Algorithm, HashKey, OnDrain, PoolPlan, ServerPlan, StickyMode};
use crate::upstream::Pool;

/// Keys asked: every key of the workload up to this many.
pub const MAX_KEYS: u64 = 100_000;

/// What became of the keys asked in [`moved_between`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Moved {
    /// Keys asked.
    pub keys: u64,
    /// The share of keys whose server differs (or that no server takes any more).
    pub share: f64,
    /// The share of keys whose server is no longer in the new pool's rotation (removed,
    /// `down`, draining, another tier): those must move, the least any algorithm can do.
    pub minimum: f64,
}

/// The share of `keys` sample keys (client addresses, and key bytes such as a cookie, a
/// URI or a header for `hash_key`) whose server differs between a pool built from `old`
/// and the pool the runtime builds from `new` (once any slow start is over). When the two
/// hash different parts of the request (`hash_key` changed), a client's key in `new` is
/// unrelated to its key in `old`, and is drawn so. `None` when `old` keeps no key on a
/// server (not a hashing algorithm).
pub fn moved_between(old: &PoolPlan, new: &PoolPlan, keys: u64) -> Option<Moved> {
    if !is_hashing(old.algorithm) {
        return None;
    }
    let keys = keys.clamp(1, MAX_KEYS);
    // Another part of the request: the same client brings an unrelated key.
    let rekeyed = old.hash_key != new.hash_key;
    let map = |pool: &Pool, plan: &PoolPlan, offset: u64| -> Vec<Option<SocketAddr>> {
        let mut buf = [0u8; 24];
        (0..keys)
            .map(|k| {
                let hash_key = match plan.hash_key {
                    HashKey::ClientIp => None,
                    _ => Some(key_bytes(k + offset, &mut buf)),
                };
                let ctx = PickContext {
                    client: Some(client_of(k)),
                    hash_key,
                    tried: &[],
                };
                pool.pick(&ctx).map(|s| s.addr)
            })
            .collect()
    };
    let before = Pool::new(old, None);
    let was = map(&before, old, 0);
    let after = Pool::new(new, None);
    let now = map(&after, new, if rekeyed { 1 << 40 } else { 0 });
    let serving: Vec<SocketAddr> = after
        .servers()
        .iter()
        .filter(|s| s.accepts_new())
        .map(|s| s.addr)
        .collect();
    let n = keys as f64;
    let count = |f: &dyn Fn(&Option<SocketAddr>, &Option<SocketAddr>) -> bool| {
        was.iter().zip(&now).filter(|(a, b)| f(a, b)).count() as f64 / n
    };
    Some(Moved {
        keys,
        share: count(&|a, b| a != b || b.is_none()),
        minimum: count(&|a, _| a.is_none_or(|a| !serving.contains(&a))),
    })
}

/// What becomes of sticky sessions in [`sessions_moved`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SessionsMoved {
    /// Sessions placed.
    pub sessions: u64,
    /// The share whose server can no longer serve them (they go to another server and lose
    /// what their server held).
    pub share: f64,
    /// When every session moves, why (the stick table starts empty, the cookie is not read).
    pub all_because: Option<&'static str>,
}

/// The share of sticky sessions that a pool rebuilt from `new` moves, with the rules of
/// `proxy::http::sticky`: a session stays on its server while that server is in the new pool
/// (the same name and address; for the stick tables, the same tier too, as a new `Server`
/// gets a new id) and available: not `down`, not draining under `on_drain = "move"`, not a
/// backup while a primary serves. Sessions are placed as the proxy places them, by the
/// real pool built from `old` picking for `sessions` sample clients (in weight shares for
/// most algorithms, by key for the hashing ones). `None` when `old` has no stickiness.
pub fn sessions_moved(old: &PoolPlan, new: &PoolPlan, sessions: u64) -> Option<SessionsMoved> {
    let o = old.sticky.as_ref()?;
    let sessions = sessions.clamp(1, MAX_KEYS);
    let all = |why: &'static str| {
        Some(SessionsMoved {
            sessions,
            share: 1.0,
            all_because: Some(why),
        })
    };
    let Some(n) = new.sticky.as_ref() else {
        return all("stickiness is turned off");
    };
    if o.mode != n.mode {
        return all("the sticky mode changes");
    }
    if o.mode != StickyMode::SourceIp && o.name != n.name {
        return all("the cookie's name changes: clients' cookies are not read");
    }
    if o.mode != StickyMode::Cookie && (o.size, o.ttl) != (n.size, n.ttl) {
        return all("the stick table's size or ttl changes: the pool starts with an empty table");
    }
    let primary_serves = new.servers.iter().any(|s| !s.backup && !s.down && !s.drain);
    let stays = |s: &ServerPlan| {
        let kept = new.servers.iter().find(|x| {
            x.addr == s.addr
                && x.name == s.name
                && (o.mode == StickyMode::Cookie || x.backup == s.backup)
        });
        match kept {
            None => false,
            Some(x) if x.down => false,
            Some(x) if x.backup && primary_serves => false,
            Some(x) => !(x.drain && n.on_drain == OnDrain::Move),
        }
    };
    let pool = Pool::new(old, None);
    let mut buf = [0u8; 24];
    let mut moved = 0u64;
    for k in 0..sessions {
        let hash_key = match old.hash_key {
            HashKey::ClientIp => None,
            _ => Some(key_bytes(k, &mut buf)),
        };
        let ctx = PickContext {
            client: Some(client_of(k)),
            hash_key,
            tried: &[],
        };
        let placed = pool.pick(&ctx).and_then(|p| {
            old.servers
                .iter()
                .find(|s| s.addr == p.addr && s.name == p.name)
        });
        if !placed.is_some_and(stays) {
            moved += 1;
        }
    }
    Some(SessionsMoved {
        sessions,
        share: moved as f64 / sessions as f64,
        all_because: None,
    })
}

/// The share of keys that move when server `leaving` (an index of the workload's
/// servers) leaves a pool balanced by `algorithm`; `None` for algorithms without affinity.
pub fn keys_moved(w: &Workload, algorithm: Algorithm, leaving: usize) -> Option<KeysMoved> {
    if !is_hashing(algorithm) {
        return None;
    }
    let mut plan = w.pool.clone();
    plan.algorithm = algorithm;
    let mut without = plan.clone();
    without.servers.remove(leaving);
    let mut down = plan.clone();
    down.servers[leaving].down = true;
    let removed = moved_between(&plan, &without, w.keys)?;
    let down = moved_between(&plan, &down, w.keys)?;
    Some(KeysMoved {
        removed: removed.share,
        down: down.share,
        minimum: removed.minimum,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::simulate::workload::load_str;

    #[test]
    fn ring_moves_only_the_leaving_servers_keys_and_ip_hash_moves_most() {
        let w = load_str(
            "[traffic]\nservice = \"1ms\"\nkeys = 20000\n[pool]\nhash_key = \"cookie:s\"\n[[server]]\nname = \"c\"\ncount = 5\n",
            "w.toml",
            None,
        )
        .unwrap();
        let ring = keys_moved(&w, Algorithm::Hash, 4).unwrap();
        assert!((ring.removed - ring.minimum).abs() < 1e-9, "{ring:?}");
        assert!((0.15..0.25).contains(&ring.minimum), "{ring:?}");
        assert!((ring.down - ring.minimum).abs() < 1e-9, "{ring:?}");
        let maglev = keys_moved(&w, Algorithm::Maglev, 4).unwrap();
        assert!(maglev.removed >= maglev.minimum, "{maglev:?}");
        let ip = keys_moved(&w, Algorithm::IpHash, 4).unwrap();
        assert!(ip.removed > 0.5, "ip_hash rehashes most clients: {ip:?}");
        assert!(
            (ip.down - ip.minimum).abs() < 1e-9,
            "down moves only its own: {ip:?}"
        );
        assert!(keys_moved(&w, Algorithm::LeastConn, 4).is_none());
    }
}

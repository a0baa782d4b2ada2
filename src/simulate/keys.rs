//! Keys moved when a server leaves, computed with the real pools: every key's server
//! before, after a reload without the server (`Pool::new(plan, Some(previous))`, as the
//! runtime does), and with the server marked `down` instead. Exact over the keys asked,
//! never estimated; only hashing algorithms keep a key on a server, so only they are asked.

use super::model::{client_of, key_bytes};
use super::report::KeysMoved;
use super::workload::{Workload, is_hashing};
use crate::balance::PickContext;
use crate::config::{Algorithm, HashKey};
use crate::upstream::Pool;

/// Keys asked: every key of the workload up to this many.
const MAX_KEYS: u64 = 100_000;

/// The share of keys that move when server `leaving` (an index of the workload's
/// servers) leaves a pool balanced by `algorithm`; `None` for algorithms without affinity.
pub fn keys_moved(w: &Workload, algorithm: Algorithm, leaving: usize) -> Option<KeysMoved> {
    if !is_hashing(algorithm) {
        return None;
    }
    let mut plan = w.pool.clone();
    plan.algorithm = algorithm;
    let before = Pool::new(&plan, None);
    let addr = plan.servers[leaving].addr;
    let map = |pool: &Pool| -> Vec<Option<std::net::SocketAddr>> {
        let mut buf = [0u8; 24];
        (0..w.keys.min(MAX_KEYS))
            .map(|k| {
                let hash_key = match plan.hash_key {
                    HashKey::ClientIp => None,
                    _ => Some(key_bytes(k, &mut buf)),
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
    let was = map(&before);
    let mut without = plan.clone();
    without.servers.remove(leaving);
    let removed = map(&Pool::new(&without, Some(&before)));
    let leaving_server = before
        .servers()
        .iter()
        .find(|s| s.addr == addr)
        .expect("the leaving server is in the pool")
        .clone();
    leaving_server.set_admin_down(true);
    before.rebuild();
    let down = map(&before);
    let n = was.len().max(1) as f64;
    let share = |after: &[Option<std::net::SocketAddr>]| {
        was.iter().zip(after).filter(|(a, b)| a != b).count() as f64 / n
    };
    Some(KeysMoved {
        removed: share(&removed),
        down: share(&down),
        minimum: was.iter().filter(|a| **a == Some(addr)).count() as f64 / n,
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

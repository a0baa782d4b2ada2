//! Keys and sessions moved, pool by pool: for each hashing or sticky pool of both plans that
//! the change touches, the share that would land on another server, computed with the real
//! pools (`simulate::moved_between`, `simulate::sessions_moved`), never estimated.

use super::{PoolMoved, percent};
use crate::config::diff::PoolChange;
use crate::config::{Algorithm, Plan, PlanDiff, PoolPlan, StickyMode, hash_key};
use crate::simulate::{MAX_KEYS, moved_between, sessions_moved};

/// The lines of the "keys moved" section, and the share of each pool.
pub fn section(old: &Plan, new: &Plan, diff: &PlanDiff) -> (Vec<String>, Vec<PoolMoved>) {
    let mut lines = Vec::new();
    let mut moved = Vec::new();
    for (name, change) in &diff.pools {
        if matches!(
            change,
            PoolChange::Same | PoolChange::Added | PoolChange::Removed
        ) {
            continue;
        }
        let (Some(o), Some(n)) = (old.pool(name), new.pool(name)) else {
            continue;
        };
        if let Some((line, m)) = pool(o, n) {
            lines.push(line);
            moved.push(m);
        }
    }
    (lines, moved)
}

fn hashing(a: Algorithm) -> bool {
    matches!(a, Algorithm::IpHash | Algorithm::Hash | Algorithm::Maglev)
}

/// How a pool keeps clients on a server: `hash on uri`, `ip_hash`, `sticky cookie "SRV"`.
fn affinity(p: &PoolPlan) -> String {
    if let Some(s) = &p.sticky {
        return match s.mode {
            StickyMode::SourceIp => "sticky source_ip".into(),
            m => format!("sticky {} {:?}", m.as_str(), s.name),
        };
    }
    match p.algorithm {
        Algorithm::IpHash => "ip_hash".into(),
        a => format!("{} on {}", a.as_str(), hash_key(&p.hash_key)),
    }
}

fn pool(o: &PoolPlan, n: &PoolPlan) -> Option<(String, PoolMoved)> {
    let name = &o.name;
    let entry = |share: f64, what: &'static str| PoolMoved {
        pool: name.clone(),
        share,
        what,
    };
    let keys = crate::simulate::thousands(MAX_KEYS);
    if o.sticky.is_some() {
        let s = sessions_moved(o, n, MAX_KEYS)?;
        let why = match s.all_because {
            Some(why) => format!(": {why}"),
            None if s.share > 0.0 => {
                " (their server leaves the pool, is taken out of service, or drains with on_drain = \"move\")".into()
            }
            None => String::new(),
        };
        let line = format!(
            "pool {name:?} ({}): {} of sessions move{why} [{keys} sessions placed by the pool]",
            affinity(o),
            percent(s.share)
        );
        return Some((line, entry(s.share, "sessions")));
    }
    if !hashing(o.algorithm) {
        if !hashing(n.algorithm) {
            return None;
        }
        // Nothing was kept, so nothing moves; say so rather than print nothing.
        let line = format!(
            "pool {name:?} ({} → {}): no key was kept on a server before, so none moves; from now on each key stays on one server",
            o.algorithm.as_str(),
            affinity(n)
        );
        return Some((line, entry(0.0, "keys")));
    }
    if !hashing(n.algorithm) {
        let line = format!(
            "pool {name:?} ({}): 100.0% of keys move: {} keeps no key on a server",
            affinity(o),
            n.algorithm.as_str()
        );
        return Some((line, entry(1.0, "keys")));
    }
    let m = moved_between(o, n, MAX_KEYS)?;
    let mut line = format!(
        "pool {name:?} ({}): {} of keys move",
        affinity(o),
        percent(m.share)
    );
    if o.hash_key != n.hash_key {
        line.push_str(&format!(
            " (it hashes {} instead of {}: a client's key is another)",
            hash_key(&n.hash_key),
            hash_key(&o.hash_key)
        ));
    } else if o.algorithm != n.algorithm {
        line.push_str(&format!(" ({} instead)", n.algorithm.as_str()));
    }
    if m.minimum > 0.0 {
        line.push_str(&format!(
            "; the least possible is {}, the keys of servers that leave rotation",
            percent(m.minimum)
        ));
    }
    line.push_str(&format!(" [{keys} keys]"));
    Some((line, entry(m.share, "keys")))
}

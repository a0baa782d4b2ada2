//! Certificate reload without restart: a cheap periodic check of the files' modification
//! times and sizes (two `stat` calls per pair per second), then a full load of every pair.
//! A pair that fails to load keeps the old certificates in service and logs why; the next
//! change to the files tries again.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use super::{CertPair, CertStore, SniResolver, load_pair};
use crate::shutdown::Shutdown;

type Stamp = Vec<Option<(SystemTime, u64)>>;

fn stamp(pairs: &[CertPair]) -> Stamp {
    let one = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .and_then(|m| Some((m.modified().ok()?, m.len())))
    };
    pairs
        .iter()
        .flat_map(|p| [one(&p.cert), one(&p.key)])
        .collect()
}

/// Load every pair again into `resolver`; on any error keep what is served and say why.
/// Returns whether new certificates are in service: `false`, and nothing logged, when the
/// files hold the certificates already served (a SIGHUP reloads them all, changed or not).
pub fn reload(listener: &str, pairs: &[CertPair], resolver: &SniResolver) -> bool {
    let mut loaded = Vec::new();
    for p in pairs {
        match load_pair(p) {
            Ok(c) => loaded.push(c),
            Err(e) => {
                tracing::error!(
                    listener,
                    "certificate reload failed, keeping the certificates in service: {e}"
                );
                return false;
            }
        }
    }
    match CertStore::new(&loaded) {
        Some(store) if store.same_certificates(&resolver.current()) => false,
        Some(store) => {
            tracing::info!(listener, names = ?store.names, "certificates reloaded");
            resolver.store(store);
            true
        }
        None => false,
    }
}

/// Watch `pairs` every `every` until `shutdown` fires; reload `resolver` when a file's
/// modification time or size changes.
pub async fn watch(
    listener: String,
    pairs: Vec<CertPair>,
    resolver: Arc<SniResolver>,
    every: Duration,
    shutdown: Shutdown,
) {
    let mut last = stamp(&pairs);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.stopped() => return,
        }
        let now = stamp(&pairs);
        if now != last {
            // A writer may still be midway (cert written, key not yet): a failed load is
            // retried on the next change, and the old pair serves meanwhile.
            last = now;
            reload(&listener, &pairs, &resolver);
        }
    }
}

//! Connection limits: at most so many open connections on a listener, and per client
//! address (HAProxy's `maxconn` and `sc_conn_cur` tracking, nginx's `limit_conn`).
//!
//! Checked once per accepted connection, not per request. The per-client counts live in a
//! map behind a few mutexes (sharded by address; a lock taken per connection accepted, never
//! per request), bounded by the listener's own limit: each entry holds at least one open
//! connection, so the map never has more entries than connections.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

const SHARDS: usize = 16;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The listener has `max_connections` open.
    Listener,
    /// This client address has `max_connections_per_client` open.
    Client,
}

/// The open connections of one listener.
#[derive(Debug)]
pub struct ConnLimits {
    max_total: usize,
    /// 0: no per-client limit.
    max_per_client: u32,
    open: AtomicUsize,
    per_client: [Mutex<HashMap<IpAddr, u32>>; SHARDS],
    refused_listener: AtomicU64,
    refused_client: AtomicU64,
}

impl ConnLimits {
    /// `max_per_client = 0` means no per-client limit.
    pub fn new(max_total: usize, max_per_client: u32) -> Arc<ConnLimits> {
        Arc::new(ConnLimits {
            max_total,
            max_per_client,
            open: AtomicUsize::new(0),
            per_client: Default::default(),
            refused_listener: AtomicU64::new(0),
            refused_client: AtomicU64::new(0),
        })
    }

    /// Admit a connection from `client`; the permit frees its place when dropped.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<ConnPermit, Refused> {
        if self.open.fetch_add(1, Ordering::Relaxed) >= self.max_total {
            self.open.fetch_sub(1, Ordering::Relaxed);
            self.refused_listener.fetch_add(1, Ordering::Relaxed);
            return Err(Refused::Listener);
        }
        if self.max_per_client > 0 {
            let mut map = self.shard(client).lock().unwrap_or_else(|e| e.into_inner());
            let n = map.entry(client).or_insert(0);
            if *n >= self.max_per_client {
                drop(map);
                self.open.fetch_sub(1, Ordering::Relaxed);
                self.refused_client.fetch_add(1, Ordering::Relaxed);
                return Err(Refused::Client);
            }
            *n += 1;
        }
        Ok(ConnPermit {
            limits: self.clone(),
            client,
        })
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// Connections refused, ever: over the listener's limit, over a client's.
    pub fn refused(&self) -> (u64, u64) {
        (
            self.refused_listener.load(Ordering::Relaxed),
            self.refused_client.load(Ordering::Relaxed),
        )
    }

    /// Client addresses with a connection open now.
    pub fn clients(&self) -> usize {
        self.per_client
            .iter()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()).len())
            .sum()
    }

    fn shard(&self, ip: IpAddr) -> &Mutex<HashMap<IpAddr, u32>> {
        let h = match ip {
            IpAddr::V4(a) => u64::from(u32::from(a)),
            IpAddr::V6(a) => xxhash_rust::xxh3::xxh3_64(&a.octets()),
        };
        &self.per_client[(h.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 60) as usize % SHARDS]
    }
}

/// One admitted connection; dropping it frees its place.
#[derive(Debug)]
pub struct ConnPermit {
    limits: Arc<ConnLimits>,
    client: IpAddr,
}

impl Drop for ConnPermit {
    fn drop(&mut self) {
        if self.limits.max_per_client > 0 {
            let mut map = self
                .limits
                .shard(self.client)
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(n) = map.get_mut(&self.client) {
                *n -= 1;
                if *n == 0 {
                    map.remove(&self.client);
                }
            }
        }
        self.limits.open.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn per_client_and_listener_limits_hold_and_free_on_drop() {
        let l = ConnLimits::new(3, 2);
        let a1 = l.admit(ip(1)).unwrap();
        let a2 = l.admit(ip(1)).unwrap();
        assert_eq!(l.admit(ip(1)).unwrap_err(), Refused::Client);
        let b1 = l.admit(ip(2)).unwrap();
        assert_eq!(l.admit(ip(3)).unwrap_err(), Refused::Listener);
        assert_eq!((l.open(), l.clients()), (3, 2));
        drop(a1);
        let a3 = l.admit(ip(1)).unwrap();
        drop((a2, a3, b1));
        assert_eq!(
            (l.open(), l.clients()),
            (0, 0),
            "no entry outlives its connections"
        );
        assert_eq!(l.refused(), (1, 1));
    }

    #[test]
    fn no_per_client_limit_keeps_no_map() {
        let l = ConnLimits::new(1000, 0);
        let permits: Vec<_> = (0..1000).map(|i| l.admit(ip(i as u8)).unwrap()).collect();
        assert_eq!((l.open(), l.clients()), (1000, 0));
        assert_eq!(l.admit(ip(1)).unwrap_err(), Refused::Listener);
        drop(permits);
        assert_eq!(l.open(), 0);
    }
}

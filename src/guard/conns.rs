//! Connection limits: at most so many open connections on a listener, and per client
//! address (HAProxy's `maxconn` and `sc_conn_cur` tracking, nginx's `limit_conn`), and the
//! counters of what the limits and the connection timeouts did.
//!
//! Checked once per accepted connection, not per request. The per-client counts live in a
//! map behind a few mutexes (sharded by address; a lock taken per connection accepted, never
//! per request), bounded by the listener's own limit: each entry holds at least one open
//! connection, so the map never has more entries than connections.
//!
//! A full listener makes room as nginx does (`ngx_drain_connections`: "worker_connections
//! are not enough, reusing connections"): a connection that waits for the first byte of a
//! request (a new one, or a kept-alive one between requests, or an HTTP/2 one with no
//! stream open) is *idle* and may be closed to admit a new one, the one idle longest among
//! those looked at first. So silent connections cannot keep clients that do send requests
//! out; a connection in the middle of a request is never taken. Marking a connection idle
//! or busy is one atomic store in its slot; only a full listener looks for one to close.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::sync::Notify;

const SHARDS: usize = 16;
/// How far over its limit a listener may go while the idle connections closed for new ones
/// finish closing (each still holds its place until its task ends).
const SLACK: usize = 32;
/// How many slots a full listener looks at for an idle connection to close.
const SAMPLE: usize = 1024;
/// A slot's state: a connection in the middle of a request (or none).
const BUSY: u64 = 0;
/// A slot's state: its connection was chosen to close for a new one.
const EVICTED: u64 = u64::MAX;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The listener has `max_connections` open, none of them idle.
    Listener,
    /// This client address has `max_connections_per_client` open.
    Client,
}

/// What a listener's limits and connection timeouts did, ever. Kept across reloads.
#[derive(Debug, Default)]
pub struct ConnStats {
    /// Refused: the listener had `max_connections` open, none idle.
    pub refused_listener: AtomicU64,
    /// Refused: the client address had `max_connections_per_client` open.
    pub refused_client: AtomicU64,
    /// Idle connections closed to admit a new one.
    pub reused: AtomicU64,
    /// Closed by `client_header_timeout` (TLS handshake and protocol detection included).
    pub header_timeouts: AtomicU64,
    /// Closed by `keepalive_timeout` (an idle kept-alive or HTTP/2 connection).
    pub idle_timeouts: AtomicU64,
    /// HTTP/2 connections closed because their client reset too many streams.
    pub reset_floods: AtomicU64,
}

impl ConnStats {
    fn get(c: &AtomicU64) -> u64 {
        c.load(Ordering::Relaxed)
    }
    pub fn refused_listener(&self) -> u64 {
        Self::get(&self.refused_listener)
    }
    pub fn refused_client(&self) -> u64 {
        Self::get(&self.refused_client)
    }
    pub fn reused(&self) -> u64 {
        Self::get(&self.reused)
    }
    pub fn header_timeouts(&self) -> u64 {
        Self::get(&self.header_timeouts)
    }
    pub fn idle_timeouts(&self) -> u64 {
        Self::get(&self.idle_timeouts)
    }
    pub fn reset_floods(&self) -> u64 {
        Self::get(&self.reset_floods)
    }
    /// Count one.
    pub fn count(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }
}

/// One place an admitted connection can be found idle by a full listener.
#[derive(Debug, Default)]
struct Slot {
    /// [`BUSY`], [`EVICTED`], or when it went idle: milliseconds since `epoch`, plus one.
    state: AtomicU64,
    /// Wakes the connection when it is chosen to close.
    wake: Notify,
}

/// The open connections of one listener.
#[derive(Debug)]
pub struct ConnLimits {
    max_total: usize,
    /// 0: no per-client limit.
    max_per_client: u32,
    open: AtomicUsize,
    per_client: [Mutex<HashMap<IpAddr, u32>>; SHARDS],
    stats: Arc<ConnStats>,
    /// Empty when the listener does not make room (tcp: it cannot tell idle from busy).
    slots: Box<[Slot]>,
    free: Mutex<Vec<u32>>,
    cursor: AtomicUsize,
    epoch: Instant,
    /// Told when a connection ends, for an accept loop waiting for room ([`ConnLimits::room`]).
    freed: Notify,
}

impl ConnLimits {
    /// `max_per_client = 0` means no per-client limit. No idle connection is ever closed to
    /// make room: see [`ConnLimits::reusing`].
    pub fn new(max_total: usize, max_per_client: u32) -> Arc<ConnLimits> {
        Self::build(max_total, max_per_client, false, Arc::default())
    }

    /// Limits that close the connection idle longest to admit a new one when full, and
    /// count into `stats` (shared with the limits this one replaces on a reload).
    pub fn reusing(
        max_total: usize,
        max_per_client: u32,
        stats: Arc<ConnStats>,
    ) -> Arc<ConnLimits> {
        Self::build(max_total, max_per_client, true, stats)
    }

    fn build(
        max_total: usize,
        max_per_client: u32,
        reuse: bool,
        stats: Arc<ConnStats>,
    ) -> Arc<ConnLimits> {
        let n = if reuse { max_total + SLACK } else { 0 };
        Arc::new(ConnLimits {
            max_total,
            max_per_client,
            open: AtomicUsize::new(0),
            per_client: Default::default(),
            stats,
            slots: (0..n).map(|_| Slot::default()).collect(),
            free: Mutex::new((0..n as u32).rev().collect()),
            cursor: AtomicUsize::new(0),
            epoch: Instant::now(),
            freed: Notify::new(),
        })
    }

    /// Whether these limits are `max_total` and `max_per_client`.
    pub fn is(&self, max_total: usize, max_per_client: u32) -> bool {
        self.max_total == max_total && self.max_per_client == max_per_client
    }

    /// Admit a connection from `client`; the permit frees its place when dropped. A full
    /// listener that makes room closes its longest-idle connection for it.
    pub fn admit(self: &Arc<Self>, client: IpAddr) -> Result<ConnPermit, Refused> {
        let open = self.open.fetch_add(1, Ordering::Relaxed);
        if open >= self.max_total && (open >= self.max_total + SLACK || !self.make_room()) {
            self.open.fetch_sub(1, Ordering::Relaxed);
            ConnStats::count(&self.stats.refused_listener);
            return Err(Refused::Listener);
        }
        if self.max_per_client > 0 {
            let mut map = self.shard(client).lock().unwrap_or_else(|e| e.into_inner());
            let n = map.entry(client).or_insert(0);
            if *n >= self.max_per_client {
                drop(map);
                self.open.fetch_sub(1, Ordering::Relaxed);
                ConnStats::count(&self.stats.refused_client);
                return Err(Refused::Client);
            }
            *n += 1;
        }
        let slot = if self.slots.is_empty() {
            None
        } else {
            let slot = self.free.lock().unwrap_or_else(|e| e.into_inner()).pop();
            if let Some(i) = slot {
                let s = &self.slots[i as usize];
                s.state.store(BUSY, Ordering::Relaxed);
            }
            slot
        };
        Ok(ConnPermit {
            limits: self.clone(),
            client,
            slot,
        })
    }

    /// Resolves once fewer than `max_total` + half the slack are open. Connections closed
    /// for room still hold their place until their task has run; an accept loop that waits
    /// here before accepting more (bounded) leaves new clients in the kernel's backlog
    /// instead of closing them, as nginx and HAProxy stop accepting when full.
    pub async fn room(&self) {
        loop {
            let freed = self.freed.notified();
            if self.open.load(Ordering::Relaxed) < self.max_total + SLACK / 2 {
                return;
            }
            freed.await;
        }
    }

    /// Close the longest-idle connection among those looked at: it is told to close, and
    /// holds its place until it has. Whether one was found.
    fn make_room(&self) -> bool {
        let n = self.slots.len();
        if n == 0 {
            return false;
        }
        let start = self.cursor.fetch_add(SAMPLE, Ordering::Relaxed);
        let mut oldest: Option<(usize, u64)> = None;
        for k in 0..SAMPLE.min(n) {
            let i = (start + k) % n;
            let s = self.slots[i].state.load(Ordering::Relaxed);
            if s != BUSY && s != EVICTED && oldest.is_none_or(|(_, o)| s < o) {
                oldest = Some((i, s));
            }
        }
        let Some((i, since)) = oldest else {
            return false;
        };
        let slot = &self.slots[i];
        if slot
            .state
            .compare_exchange(since, EVICTED, Ordering::AcqRel, Ordering::Relaxed)
            .is_err()
        {
            // It has just become busy (or was taken by another admit): look once more.
            return self.make_room_once_more();
        }
        slot.wake.notify_one();
        ConnStats::count(&self.stats.reused);
        true
    }

    fn make_room_once_more(&self) -> bool {
        let n = self.slots.len();
        let start = self.cursor.fetch_add(SAMPLE, Ordering::Relaxed);
        for k in 0..SAMPLE.min(n) {
            let slot = &self.slots[(start + k) % n];
            let s = slot.state.load(Ordering::Relaxed);
            if s != BUSY
                && s != EVICTED
                && slot
                    .state
                    .compare_exchange(s, EVICTED, Ordering::AcqRel, Ordering::Relaxed)
                    .is_ok()
            {
                slot.wake.notify_one();
                ConnStats::count(&self.stats.reused);
                return true;
            }
        }
        false
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.open.load(Ordering::Relaxed)
    }

    /// The most connections open at once.
    pub fn max(&self) -> usize {
        self.max_total
    }

    /// Connections refused, ever: over the listener's limit, over a client's.
    pub fn refused(&self) -> (u64, u64) {
        (self.stats.refused_listener(), self.stats.refused_client())
    }

    /// The counters, shared by the limits that replace these on a reload.
    pub fn stats(&self) -> &Arc<ConnStats> {
        &self.stats
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
    slot: Option<u32>,
}

impl ConnPermit {
    fn slot(&self) -> Option<&Slot> {
        self.slot.map(|i| &self.limits.slots[i as usize])
    }

    /// The connection waits for the first byte of a request (or, HTTP/2, has no stream
    /// open) since `now`: a full listener may close it. Returns false when it was already
    /// chosen to close.
    pub fn idle(&self, now: Instant) -> bool {
        let Some(slot) = self.slot() else {
            return true;
        };
        let ms = now.saturating_duration_since(self.limits.epoch).as_millis() as u64 + 1;
        slot.state
            .compare_exchange(BUSY, ms, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
            || slot.state.load(Ordering::Relaxed) != EVICTED
    }

    /// The connection has a request to serve: no longer to be closed for room. Returns
    /// false when it was chosen to close first (then it should close without serving).
    pub fn busy(&self) -> bool {
        let Some(slot) = self.slot() else {
            return true;
        };
        if slot.state.swap(BUSY, Ordering::AcqRel) == EVICTED {
            slot.state.store(EVICTED, Ordering::Release);
            return false;
        }
        true
    }

    /// Whether the connection was chosen to close for a new one.
    pub fn is_reused(&self) -> bool {
        self.slot()
            .is_some_and(|s| s.state.load(Ordering::Acquire) == EVICTED)
    }

    /// Resolves once the connection is chosen to close for a new one (never for a listener
    /// that does not make room).
    pub async fn reused(&self) {
        let Some(slot) = self.slot() else {
            return std::future::pending().await;
        };
        loop {
            let woken = slot.wake.notified();
            if slot.state.load(Ordering::Acquire) == EVICTED {
                return;
            }
            woken.await;
        }
    }

    /// What a full listener's choice of this slot's previous connection does when its
    /// wake-up comes after this connection began to wait: wakes one waiter, the slot not
    /// chosen (for tests of the waiters).
    #[cfg(test)]
    pub fn wake_stale(&self) {
        if let Some(slot) = self.slot() {
            slot.wake.notify_one();
        }
    }

    /// The counters of the listener this connection came to.
    pub fn stats(&self) -> &ConnStats {
        &self.limits.stats
    }
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
        if let Some(i) = self.slot {
            self.limits.slots[i as usize]
                .state
                .store(BUSY, Ordering::Relaxed);
            self.limits
                .free
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .push(i);
        }
        self.limits.open.fetch_sub(1, Ordering::Relaxed);
        self.limits.freed.notify_one();
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

    #[test]
    fn a_full_listener_closes_its_longest_idle_connection_never_a_busy_one() {
        let l = ConnLimits::reusing(3, 0, Arc::default());
        let t0 = Instant::now();
        let ms = std::time::Duration::from_millis;
        let busy = l.admit(ip(1)).unwrap();
        let older = l.admit(ip(2)).unwrap();
        let newer = l.admit(ip(3)).unwrap();
        assert!(older.idle(t0 + ms(10)));
        assert!(newer.idle(t0 + ms(20)));
        let fourth = l.admit(ip(4)).expect("room made");
        assert!(older.is_reused() && !newer.is_reused() && !busy.is_reused());
        assert!(!older.busy(), "a connection chosen to close does not serve");
        assert_eq!(l.stats().reused(), 1);
        // The one chosen holds its place until it has closed.
        assert_eq!(l.open(), 4);
        drop(older);
        // The newer idle one goes next; then only busy ones are left.
        assert!(newer.busy() && fourth.busy());
        assert!(newer.idle(t0 + ms(30)));
        let fifth = l.admit(ip(5)).unwrap();
        assert!(newer.is_reused());
        drop(newer);
        assert!(fifth.busy());
        assert_eq!(l.admit(ip(6)).unwrap_err(), Refused::Listener);
        drop((busy, fourth, fifth));
        assert_eq!(l.open(), 0);
    }

    #[tokio::test]
    async fn the_connection_chosen_is_woken() {
        let l = ConnLimits::reusing(1, 0, Arc::default());
        let idle = l.admit(ip(1)).unwrap();
        assert!(idle.idle(Instant::now()));
        let waiting = tokio::spawn(async move {
            idle.reused().await;
            idle
        });
        tokio::task::yield_now().await;
        let _new = l.admit(ip(2)).unwrap();
        let idle = tokio::time::timeout(std::time::Duration::from_secs(5), waiting)
            .await
            .expect("woken")
            .unwrap();
        assert!(idle.is_reused());
    }

    #[test]
    fn slack_bounds_how_far_over_a_listener_goes() {
        let l = ConnLimits::reusing(2, 0, Arc::default());
        let now = Instant::now();
        let mut all = Vec::new();
        for i in 0..(2 + SLACK + 10) {
            if let Ok(p) = l.admit(ip(i as u8)) {
                assert!(p.idle(now));
                all.push(p);
            }
        }
        assert_eq!(
            all.len(),
            2 + SLACK,
            "never more than the limit and its slack"
        );
    }
}

//! A stick table shared by every balancer through Redis.
//!
//! Each balancer keeps its own [`StickTable`] and answers lookups from it, so most requests
//! never touch Redis. A mapping learned here (a server answered a new client) is inserted
//! locally and queued for the writer, which runs one Lua script per mapping: `SET` the key
//! with the table's ttl (`PX`) and `PUBLISH` it on the pool's channel, both at once. Every
//! balancer, this one included, applies what comes on the channel to its own table. Because
//! Redis runs the scripts one after the other and delivers the messages in that order, two
//! balancers that learned different servers for one key at the same moment both end with
//! the value Redis kept; a balancer skipping its own messages would not. What Redis keeps
//! depends on why the mapping was written: a server's own session cookie, or a client moved
//! off a server that could not serve it, replaces what Redis has (the last written wins);
//! a key placed for the first time (a new client address, a cookie value the table did
//! not know) is written only where Redis has none, and where it has one the script
//! publishes Redis's instead (the first placement wins: a client whose first requests
//! raced to two balancers, the second one's read-through missing the first one's write by
//! a moment, stays on the server that served it first, which holds its session).
//!
//! A lookup that misses locally may ask Redis ([`SharedStickTable::get_or_fetch`]): one `GET`
//! bounded by the link's request timeout, skipped at once when the link is down. It finds
//! what was learned elsewhere before the message arrives, or after an outage of this
//! balancer's subscription.
//!
//! A local hit that renews the entry's life (at most about eight times per ttl, see
//! [`StickTable::get_renewing`]) queues a `PEXPIRE`, so a session in use does not expire in
//! Redis while it lives here. When the link comes up (the first time, and after an outage),
//! every live local entry is written where Redis has none, and where Redis has another
//! server for it, Redis's is taken: Redis is the reference, this table a cache of it that
//! also fills it in when it was empty (a restarted Redis).
//!
//! A message says whether the mapping may push out others: one a server issued or a client
//! address (learned, `insert`) may; an application cookie value the table did not know,
//! which the client chose (`insert_if_room`), and an entry a catch-up writes again, only
//! fill room. So a flood of made-up cookie values on one balancer pushes out no session on
//! the others either.
//!
//! Servers are named in Redis by their address (`127.0.0.1:9001`), which every balancer of
//! one pool agrees on (an address appears once in a pool; the server id is per process).

use std::hash::Hash;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use futures_util::future::BoxFuture;
use tokio::time::Instant;

use super::link::{Bound, CallError, Link, Replica, key_part};
use crate::config::StickyMode;
use crate::upstream::{Pool, StickTable};

/// Entries written in one pipeline of the catch-up.
const CATCH_UP_CHUNK: usize = 500;

/// `SET` + `PUBLISH` at once; with ARGV[5] = '1' only where Redis has nothing, returning
/// what it has otherwise, and with ARGV[6] = '1' also publishing what it has (when it is
/// another server), so that the balancer that wrote, and every other, takes it.
pub const WRITE_SCRIPT: &str = r"
-- KEYS[1]: the entry; ARGV: server, ttl ms, channel, message, '1' = only fill in,
-- '1' = publish what is held instead, the key as text
if ARGV[5] == '1' then
  local held = redis.call('GET', KEYS[1])
  if held then
    if ARGV[6] == '1' and held ~= ARGV[1] then
      redis.call('PUBLISH', ARGV[3], held .. ' s ' .. ARGV[7])
    end
    return held
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
redis.call('PUBLISH', ARGV[3], ARGV[4])
return false
";

/// A stick-table key that can be written in Redis and read back.
pub trait ShareKey: Hash + Eq + Clone + Send + Sync + 'static {
    fn to_text(&self) -> String;
    fn from_text(s: &str) -> Option<Self>;
}

/// `app_cookie`: the application's session cookie value.
impl ShareKey for String {
    fn to_text(&self) -> String {
        self.clone()
    }
    fn from_text(s: &str) -> Option<String> {
        Some(s.to_string())
    }
}

/// `source_ip`: the client address.
impl ShareKey for IpAddr {
    fn to_text(&self) -> String {
        self.to_string()
    }
    fn from_text(s: &str) -> Option<IpAddr> {
        s.parse().ok()
    }
}

/// What a shared table did, ever.
#[derive(Debug, Default)]
struct Stats {
    learned_remote: AtomicU64,
    fetch_hits: AtomicU64,
    fetch_misses: AtomicU64,
    fetch_failed: AtomicU64,
    fetch_skipped: AtomicU64,
    unknown_server: AtomicU64,
    caught_up: AtomicU64,
    adopted: AtomicU64,
}

/// A copy of a shared table's counters at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StickyCounters {
    /// Mappings inserted from the channel (others' and this balancer's own, echoed).
    pub learned_remote: u64,
    /// Read-throughs that found the key in Redis.
    pub fetch_hits: u64,
    /// Read-throughs that found nothing.
    pub fetch_misses: u64,
    /// Read-throughs that timed out or failed (the request went on without).
    pub fetch_failed: u64,
    /// Read-throughs not tried because the link was down.
    pub fetch_skipped: u64,
    /// Mappings naming a server this balancer's pool does not have (ignored).
    pub unknown_server: u64,
    /// Entries written to Redis by a catch-up (Redis had none).
    pub caught_up: u64,
    /// Entries a catch-up took from Redis (it had another server).
    pub adopted: u64,
}

/// A stick table of one pool kept in Redis; see the module docs.
pub struct SharedStickTable<K> {
    local: StickTable<K>,
    link: Arc<Link>,
    /// Swapped when a reload rebuilds the pool and the table stays ([`Self::set_pool`]).
    pool: ArcSwap<Pool>,
    channel: String,
    /// `{prefix}{mode}:{pool}:`, followed by the key.
    key_prefix: String,
    write_sha: String,
    stats: Stats,
}

impl<K: ShareKey> SharedStickTable<K> {
    /// A table of `pool`'s `mode` stickiness (`app_cookie` or `source_ip`), registered with
    /// `link` for its channel and catch-ups.
    pub fn new(
        link: Arc<Link>,
        mode: StickyMode,
        pool: Arc<Pool>,
        capacity: usize,
        ttl: Duration,
    ) -> Arc<SharedStickTable<K>> {
        let table = SharedStickTable::unregistered(link, mode, pool, capacity, ttl);
        table.serve();
        table
    }

    /// [`SharedStickTable::new`], not yet receiving its channel nor caught up: a reload
    /// prepares it, and [`SharedStickTable::serve`]s it once the change is committed (a
    /// change that fails leaves the running table registered).
    pub fn unregistered(
        link: Arc<Link>,
        mode: StickyMode,
        pool: Arc<Pool>,
        capacity: usize,
        ttl: Duration,
    ) -> Arc<SharedStickTable<K>> {
        let channel = format!(
            "{}{}:{}",
            link.config().prefix,
            mode.as_str(),
            key_part(&pool.name)
        );
        Arc::new(SharedStickTable {
            local: StickTable::new(capacity, ttl),
            key_prefix: format!("{channel}:"),
            channel,
            link,
            pool: ArcSwap::new(pool),
            write_sha: redis::Script::new(WRITE_SCRIPT).get_hash().to_string(),
            stats: Stats::default(),
        })
    }

    /// Receive the channel's messages (instead of a table this one replaces), and catch up
    /// with Redis now if the link is up, else when it comes up.
    pub fn serve(self: &Arc<Self>) {
        let replica: Arc<dyn Replica> = self.clone();
        self.link.register(&replica);
    }

    /// The server remembered for `key` here, renewing nothing and asking Redis nothing
    /// (for explanations).
    pub fn peek(&self, key: &K, now: Instant) -> Option<u64> {
        self.local.peek(key, now)
    }

    /// The server remembered for `key` here, extending its life (also in Redis, now and
    /// then); never waits.
    pub fn get(&self, key: &K, now: Instant) -> Option<u64> {
        let (server, renewed) = self.local.get_renewing(key, now)?;
        if renewed {
            let mut cmd = redis::cmd("PEXPIRE");
            cmd.arg(self.redis_key(key)).arg(ttl_ms(self.local.ttl()));
            self.link.enqueue(cmd);
        }
        Some(server)
    }

    /// [`SharedStickTable::get`], and on a miss the key in Redis: one `GET` bounded by the
    /// link's request timeout, not tried while the link is down. What it finds is kept here.
    pub async fn get_or_fetch(&self, key: &K, now: Instant) -> Option<u64> {
        if let Some(server) = self.get(key, now) {
            return Some(server);
        }
        let mut get = redis::cmd("GET");
        get.arg(self.redis_key(key));
        match self.link.cmd::<Option<String>>(&get, Bound::Request).await {
            Ok(Some(tag)) => {
                let Some(server) = self.server_named(&tag) else {
                    bump(&self.stats.unknown_server);
                    return None;
                };
                bump(&self.stats.fetch_hits);
                self.local.insert(key.clone(), server, now);
                Some(server)
            }
            Ok(None) => {
                bump(&self.stats.fetch_misses);
                None
            }
            Err(CallError::Down) => {
                bump(&self.stats.fetch_skipped);
                None
            }
            Err(_) => {
                bump(&self.stats.fetch_failed);
                None
            }
        }
    }

    /// Remember `key` → `server` here and in Redis (queued; published to every balancer).
    pub fn insert(&self, key: K, server: u64, now: Instant) {
        self.local.insert(key.clone(), server, now);
        self.share(&key, server, Entry::Learned);
    }

    /// A key this balancer found nowhere (here nor in Redis) placed on `server`: here at
    /// once, and in Redis unless another balancer placed it meanwhile (its write landed
    /// after this one's read-through), in which case Redis's is published and every
    /// balancer, this one included, takes it: the first placement wins, so a client whose
    /// first requests raced to two balancers ends on one server.
    pub fn insert_new(&self, key: K, server: u64, now: Instant) {
        self.local.insert(key.clone(), server, now);
        self.share(&key, server, Entry::First);
    }

    /// [`StickTable::insert_if_room`], and in Redis when stored here: a flood of values a
    /// client made up fills at most this table's room in Redis too. Like
    /// [`SharedStickTable::insert_new`], a value another balancer placed meanwhile wins.
    pub fn insert_if_room(&self, key: K, server: u64, now: Instant) -> bool {
        let stored = self.local.insert_if_room(key.clone(), server, now);
        if stored {
            self.share(&key, server, Entry::Chosen);
        }
        stored
    }

    /// The pool rebuilt by a reload (the servers that stay keep their ids, so the entries
    /// stay true): mappings now name its servers.
    pub fn set_pool(&self, pool: Arc<Pool>) {
        self.pool.store(pool);
    }

    /// Take over the entries of the table this one replaces (a table made shared, or moved
    /// to another Redis by a reload): kept here, and written to Redis where it has none by
    /// the catch-up that [`SharedStickTable::serve`] starts.
    pub fn seed(&self, entries: Vec<(K, u64, Duration)>, now: Instant) {
        for (key, server, _) in entries {
            self.local.insert_if_room(key, server, now);
        }
    }

    /// The live entries: key, server id, time left.
    pub fn entries(&self, now: Instant) -> Vec<(K, u64, Duration)> {
        self.local.entries(now)
    }

    /// Entries held here (expired ones included until they are evicted).
    pub fn len(&self) -> usize {
        self.local.len()
    }

    pub fn is_empty(&self) -> bool {
        self.local.is_empty()
    }

    /// The most entries held here.
    pub fn capacity(&self) -> usize {
        self.local.capacity()
    }

    /// How long an unused entry is kept, here and in Redis.
    pub fn ttl(&self) -> Duration {
        self.local.ttl()
    }

    pub fn stats(&self) -> StickyCounters {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        let s = &self.stats;
        StickyCounters {
            learned_remote: r(&s.learned_remote),
            fetch_hits: r(&s.fetch_hits),
            fetch_misses: r(&s.fetch_misses),
            fetch_failed: r(&s.fetch_failed),
            fetch_skipped: r(&s.fetch_skipped),
            unknown_server: r(&s.unknown_server),
            caught_up: r(&s.caught_up),
            adopted: r(&s.adopted),
        }
    }

    pub(super) fn on_link(&self, link: &Arc<Link>) -> bool {
        Arc::ptr_eq(&self.link, link)
    }

    /// The key's name in Redis.
    pub fn redis_key(&self, key: &K) -> String {
        format!("{}{}", self.key_prefix, key.to_text())
    }

    fn share(&self, key: &K, server: u64, entry: Entry) {
        if let Some(cmd) = self.write_cmd(key, server, self.local.ttl(), entry) {
            self.link.enqueue(cmd);
        }
    }

    /// The write script's call for one mapping; None for a server not in the pool.
    fn write_cmd(&self, key: &K, server: u64, ttl: Duration, entry: Entry) -> Option<redis::Cmd> {
        let addr = self
            .pool
            .load()
            .servers()
            .iter()
            .find(|s| s.id() == server)?
            .addr;
        let text = key.to_text();
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.write_sha)
            .arg(1)
            .arg(format!("{}{text}", self.key_prefix))
            .arg(addr.to_string())
            .arg(ttl_ms(ttl))
            .arg(&self.channel)
            .arg(message(addr, entry.room_only(), &text))
            .arg(if entry == Entry::Learned { "0" } else { "1" })
            .arg(if entry == Entry::Fill { "0" } else { "1" })
            .arg(text);
        Some(cmd)
    }

    /// The id of the server this pool has at `tag` (an address).
    fn server_named(&self, tag: &str) -> Option<u64> {
        let addr: SocketAddr = tag.parse().ok()?;
        self.pool
            .load()
            .servers()
            .iter()
            .find(|s| s.addr == addr)
            .map(|s| s.id())
    }

    /// Write the live entries where Redis has none; take Redis's where it has another.
    async fn fill_in(self: Arc<Self>) {
        let entries = self.local.entries(Instant::now());
        for chunk in entries.chunks(CATCH_UP_CHUNK) {
            let mut pipe = redis::pipe();
            let mut sent = Vec::with_capacity(chunk.len());
            for (key, server, left) in chunk {
                if let Some(cmd) = self.write_cmd(key, *server, *left, Entry::Fill) {
                    pipe.add_command(cmd);
                    sent.push(key);
                }
            }
            let Ok(held) = self
                .link
                .pipe::<Vec<Option<String>>>(&pipe, Bound::Background)
                .await
            else {
                return; // the link went down: the next catch-up starts again
            };
            let now = Instant::now();
            for (key, held) in sent.into_iter().zip(held) {
                match held.map(|tag| self.server_named(&tag)) {
                    None => bump(&self.stats.caught_up),
                    Some(Some(server)) => {
                        if self.local.get(key, now) != Some(server) {
                            self.local.insert(key.clone(), server, now);
                            bump(&self.stats.adopted);
                        }
                    }
                    Some(None) => bump(&self.stats.unknown_server),
                }
            }
        }
    }
}

impl<K: ShareKey> Replica for SharedStickTable<K> {
    fn channel(&self) -> &str {
        &self.channel
    }

    fn apply(&self, payload: &[u8]) {
        let Some((tag, room_only, key)) = parse_message(payload) else {
            return;
        };
        let Some(key) = K::from_text(key) else { return };
        let Some(server) = self.server_named(tag) else {
            bump(&self.stats.unknown_server);
            return;
        };
        let now = Instant::now();
        if room_only {
            self.local.insert_if_room(key, server, now);
        } else {
            self.local.insert(key, server, now);
        }
        bump(&self.stats.learned_remote);
    }

    fn catch_up(self: Arc<Self>) -> BoxFuture<'static, ()> {
        Box::pin(self.fill_in())
    }
}

fn bump(a: &AtomicU64) {
    a.fetch_add(1, Ordering::Relaxed);
}

/// At least 1 ms: `PX 0` is an error.
fn ttl_ms(ttl: Duration) -> u64 {
    (ttl.as_millis() as u64).max(1)
}

/// Why a mapping is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Entry {
    /// Learned from a server (its session cookie) or a session moved off a server that
    /// could not serve it: replaces what Redis has; may push out others.
    Learned,
    /// A key placed for the first time: only where Redis has none (else Redis's is
    /// published); may push out others.
    First,
    /// A value the client chose: only where Redis has none (else Redis's is published);
    /// only where there is room.
    Chosen,
    /// Written again by a catch-up, only where Redis has none (what it has comes back to
    /// the catch-up); only where there is room.
    Fill,
}

impl Entry {
    fn room_only(self) -> bool {
        matches!(self, Entry::Chosen | Entry::Fill)
    }
}

/// What goes on the channel: the server's address, `s` (may push out others) or `r` (only
/// where there is room), the key (which may hold anything, spaces included; an address
/// holds no space).
fn message(server: SocketAddr, room_only: bool, key: &str) -> String {
    let kind = if room_only { 'r' } else { 's' };
    format!("{server} {kind} {key}")
}

/// Server address, whether only where there is room, key.
fn parse_message(payload: &[u8]) -> Option<(&str, bool, &str)> {
    let text = std::str::from_utf8(payload).ok()?;
    let (server, rest) = text.split_once(' ')?;
    let (kind, key) = rest.split_once(' ')?;
    let room_only = match kind {
        "s" => false,
        "r" => true,
        _ => return None,
    };
    Some((server, room_only, key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_carry_any_key() {
        let addr: SocketAddr = "[::1]:9001".parse().unwrap();
        let m = message(addr, false, "a b=c;d");
        assert_eq!(
            parse_message(m.as_bytes()),
            Some(("[::1]:9001", false, "a b=c;d"))
        );
        let m = message(addr, true, "");
        assert_eq!(parse_message(m.as_bytes()), Some(("[::1]:9001", true, "")));
        assert_eq!(parse_message(b"nospace"), None);
        assert_eq!(parse_message(b"1.2.3.4:5 x key"), None);
        assert_eq!(parse_message(b"\xff s x"), None);
    }

    #[test]
    fn keys_round_trip_as_text() {
        for ip in ["10.0.0.1", "2001:db8::7"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(IpAddr::from_text(&ip.to_text()), Some(ip));
        }
        assert_eq!(String::from_text("s 1"), Some("s 1".to_string()));
        assert_eq!(IpAddr::from_text("nope"), None);
        assert_eq!(ttl_ms(Duration::from_micros(10)), 1);
    }
}

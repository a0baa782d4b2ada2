//! Rate limits shared by every balancer through Redis: GCRA across balancers, synchronised
//! in the background.
//!
//! Each balancer decides every request alone, with its own [`RateLimiter`] (no Redis on the
//! request path). The limiter counts per key the requests it allowed since the last sync.
//! Every sync interval one task sends those counts, for every shared limiter, in one
//! pipeline of Lua script calls (one per limiter and 500 keys). For each key the script
//! advances the key's global TAT in Redis by `count × T` from
//! `max(TAT, now − span)` (`span`: the time the counts cover, so requests spread over the
//! interval are not charged as if all had come at its end) and answers the key's debt,
//! `TAT − now`. Redis's own clock (`redis.call('TIME')`) is the only clock the TAT is read
//! against, so the balancers' clocks need not agree. The balancer then raises its local TAT
//! for the key to at least `now + debt`, plus what it allowed since it sent the counts (not
//! yet in Redis, sent next time: counted once).
//!
//! The error: a balancer does not see what another allowed until that one's counts reached
//! Redis and its own next sync read the debt: up to two sync intervals and a round trip.
//! So over any stretch of time the balancers together allow at most what the limit allows
//! plus, per other balancer, what that one can allow meanwhile: at most
//! `burst + 1 + rate × (2 × interval + RTT)` (a key new to it gets its burst), far less
//! once the key is busy everywhere (each then allows only its share). The accounting
//! itself loses nothing: every allowed request reaches the global TAT, so the error does
//! not add up over time.
//!
//! Redis down: each balancer enforces its limits alone (fail open to local: N balancers
//! allow up to N times the limit), and the counts wait in the limiter's slots. Counts that
//! cover more than two sync intervals (the first sync after an outage, or after a long
//! stall) are not added: each balancer sends instead its own debt per key (local TAT −
//! now), and the script keeps the larger of that and the global one. The global TAT then
//! says how busy the key is now (as busy as on the busiest balancer), not a debt for the
//! whole outage, which N balancers adding their counts one after the other would turn
//! into N − 1 outages' worth of refusals. Counting resumes at the next sync.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::link::{Bound, CallError, Link, key_part};
use crate::guard::RateLimiter;
use crate::guard::rate::Pending;
use crate::shutdown::Shutdown;

/// Keys in one script call, at most.
const KEYS_PER_CALL: usize = 500;

/// The sync of one limiter's counts; see the module docs.
pub const SYNC_SCRIPT: &str = r"
-- KEYS: one per key; ARGV[1]: µs per request (T); ARGV[2]: µs the counts span;
-- ARGV[3]: 'add' (ARGV[3 + i]: requests of KEYS[i]) or 'max' (ARGV[3 + i]: the debt in µs
-- of KEYS[i] on the sending balancer). Answers each key's debt in µs (0: none).
if redis.replicate_commands then redis.replicate_commands() end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local step = tonumber(ARGV[1])
local since = now - tonumber(ARGV[2])
local add = ARGV[3] == 'add'
local debts = {}
for i, key in ipairs(KEYS) do
  local tat = tonumber(redis.call('GET', key)) or 0
  local v = tonumber(ARGV[i + 3])
  if add then
    if tat < since then tat = since end
    tat = tat + v * step
  elseif tat < now + v then
    tat = now + v
  end
  local debt = tat - now
  if debt > 0 then
    redis.call('SET', key, string.format('%.0f', tat), 'PX', math.floor(debt / 1000) + 1)
    debts[i] = debt
  else
    redis.call('DEL', key)
    debts[i] = 0
  end
end
return debts
";

/// One shared limiter: where its keys live in Redis and when it last sent counts.
struct Shared {
    /// `{prefix}rate:{scope}:`, followed by the key's identity in hex.
    key_prefix: String,
    /// Held weakly: a limiter dropped (a reload removed its listener) is forgotten.
    limiter: Weak<RateLimiter>,
    last: Instant,
}

/// Every shared limiter of one link, and the task that syncs them.
pub struct SharedLimits {
    link: Arc<Link>,
    limiters: Mutex<Vec<Shared>>,
    sha: String,
    syncs: AtomicU64,
    failed: AtomicU64,
    skipped: AtomicU64,
    keys: AtomicU64,
    raised: AtomicU64,
}

/// A copy of the sync's counters at one moment.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct RateCounters {
    /// Syncs Redis answered.
    pub syncs: u64,
    /// Syncs that failed or timed out (their counts are lost; local limits held).
    pub failed: u64,
    /// Syncs not tried: the link was down (the limits held on this balancer alone, their
    /// counts waiting).
    pub skipped: u64,
    /// Key counts sent.
    pub keys: u64,
    /// Keys an answer found in debt, whose local TAT was raised to at least it (a no-op
    /// where this balancer alone had used the allowance).
    pub raised: u64,
}

impl SharedLimits {
    pub fn new(link: Arc<Link>) -> SharedLimits {
        SharedLimits {
            link,
            limiters: Mutex::new(Vec::new()),
            sha: redis::Script::new(SYNC_SCRIPT).get_hash().to_string(),
            syncs: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            keys: AtomicU64::new(0),
            raised: AtomicU64::new(0),
        }
    }

    /// Sync `limiter` (built with [`RateLimiter::shared`]) under `scope`, a name every
    /// balancer gives the same limit (such as `web/0`: listener and rule).
    pub fn add(&self, scope: &str, limiter: &Arc<RateLimiter>) {
        debug_assert!(
            limiter.is_shared(),
            "a limiter that counts nothing syncs nothing"
        );
        let key_prefix = format!("{}rate:{}:", self.link.config().prefix, key_part(scope));
        self.limiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Shared {
                key_prefix,
                limiter: Arc::downgrade(limiter),
                last: Instant::now(),
            });
    }

    /// Whether `limiter` is one of these.
    pub fn holds(&self, limiter: &Arc<RateLimiter>) -> bool {
        let target = Arc::downgrade(limiter);
        self.limiters
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|s| s.limiter.ptr_eq(&target))
    }

    pub fn stats(&self) -> RateCounters {
        let r = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RateCounters {
            syncs: r(&self.syncs),
            failed: r(&self.failed),
            skipped: r(&self.skipped),
            keys: r(&self.keys),
            raised: r(&self.raised),
        }
    }

    /// The sync task: every `sync_interval` until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: Shutdown) {
        let mut tick = tokio::time::interval(self.link.config().sync_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => self.sync().await,
                _ = shutdown.stopped() => return,
            }
        }
    }

    /// One sync of every limiter. While the link is down nothing is taken: the counts wait.
    async fn sync(&self) {
        if !self.link.is_up() {
            let any = !self
                .limiters
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .is_empty();
            if any {
                self.skipped.fetch_add(1, Ordering::Relaxed);
            }
            return;
        }
        // Take the counts; the lock is held for that only (it is not on the request path).
        let sent_at = Instant::now();
        let mut batches: Vec<(Arc<RateLimiter>, Vec<Pending>)> = Vec::new();
        let mut pipe = redis::pipe();
        {
            let mut limiters = self.limiters.lock().unwrap_or_else(|e| e.into_inner());
            limiters.retain(|s| s.limiter.strong_count() > 0);
            for shared in limiters.iter_mut() {
                let Some(limiter) = shared.limiter.upgrade() else {
                    continue;
                };
                let span = sent_at.saturating_duration_since(shared.last);
                shared.last = sent_at;
                let mut pending = Vec::new();
                limiter.take_pending(&mut pending);
                let merge = span > self.link.config().sync_interval * 2;
                for chunk in pending.chunks(KEYS_PER_CALL) {
                    let cmd = self.call(&shared.key_prefix, &limiter, span, merge, chunk);
                    pipe.add_command(cmd);
                    batches.push((limiter.clone(), chunk.to_vec()));
                }
            }
        }
        if batches.is_empty() {
            return;
        }
        let debts = match self
            .link
            .pipe::<Vec<Vec<i64>>>(&pipe, Bound::Background)
            .await
        {
            Ok(debts) => debts,
            Err(e) => {
                self.failed.fetch_add(1, Ordering::Relaxed);
                // Nothing was sent when the link was found down: the counts wait again.
                // Otherwise they may have reached Redis: dropped rather than counted twice.
                if matches!(e, CallError::Down) {
                    for (limiter, pending) in &batches {
                        limiter.restore(pending);
                    }
                }
                return;
            }
        };
        // Redis read its clock about half a round trip before the answer came.
        let at = sent_at + sent_at.elapsed() / 2;
        let (mut keys, mut raised) = (0, 0);
        for ((limiter, pending), debts) in batches.iter().zip(debts) {
            for (p, debt) in pending.iter().zip(debts) {
                keys += 1;
                if debt > 0 {
                    limiter.raise(p.slot, p.id, at + Duration::from_micros(debt as u64));
                    raised += 1;
                }
            }
        }
        self.syncs.fetch_add(1, Ordering::Relaxed);
        self.keys.fetch_add(keys, Ordering::Relaxed);
        self.raised.fetch_add(raised, Ordering::Relaxed);
    }

    /// The script call for one chunk of one limiter's counts.
    fn call(
        &self,
        key_prefix: &str,
        limiter: &RateLimiter,
        span: Duration,
        merge: bool,
        chunk: &[Pending],
    ) -> redis::Cmd {
        let mut cmd = redis::cmd("EVALSHA");
        cmd.arg(&self.sha).arg(chunk.len());
        for p in chunk {
            cmd.arg(format!("{key_prefix}{:016x}", p.id));
        }
        cmd.arg(limiter.interval().as_micros() as u64)
            .arg(span.as_micros() as u64)
            .arg(if merge { "max" } else { "add" });
        let now = Instant::now();
        for p in chunk {
            if merge {
                let debt = limiter.debt(p.slot, p.id, now).unwrap_or_default();
                cmd.arg(debt.as_micros() as u64);
            } else {
                cmd.arg(p.count);
            }
        }
        cmd
    }
}

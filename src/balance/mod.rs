//! Balancing algorithms: one small type per file behind [`Balancer`], and [`build`], the one
//! place that maps a configured [`Algorithm`] to code.
//!
//! A pool asks [`build_tier`] for the balancer of one tier (primaries or backups) and asks
//! again when the tier's rotation changes; hashing algorithms pay their build cost there,
//! never per request. Most balancers are built over the servers in rotation. The hashing ones
//! (`ip_hash`, `hash`, `maglev`) are built over every configured server of the tier, in
//! rotation or not, so that a server marked `down` or taken out by active checks moves only
//! its own clients (see [`Stable`]). At pick time a balancer reads live load from the
//! servers' atomics and skips servers the [`PickContext`] rules out (already tried by this
//! request, or not available now), so retries and passive failures need no second selection
//! path.
//!
//! Every balancer returns `None` over zero servers or when nothing is eligible, and none
//! panics: hashing algorithms with neither a hash key nor a client address pick the first
//! eligible server.
//!
//! Every balancer also says what it would pick now and why ([`Balancer::explain`], for
//! `switchyard explain` and `GET /api/explain`), by running its own decision over its state
//! without changing it (`explain.rs`).

mod explain;
mod ip_hash;
mod least_conn;
mod least_time;
mod load_index;
mod maglev;
mod p2c;
mod random;
mod ring;
mod round_robin;

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

pub use explain::{Explanation, Facts, How, ServerFacts, Value, fresh as fresh_explanation, label};
pub use ip_hash::IpHash;
pub use least_conn::LeastConn;
pub use least_time::LeastTime;
pub use maglev::Maglev;
pub use p2c::P2c;
pub use random::WeightedRandom;
pub use ring::Ring;
pub use round_robin::{RoundRobin, smooth_sequence};

use crate::config::Algorithm;
use crate::upstream::Server;

/// What an algorithm may look at for one pick.
#[derive(Debug, Clone, Copy, Default)]
pub struct PickContext<'a> {
    /// The client's address (after PROXY protocol / trusted forwarding, if any).
    pub client: Option<IpAddr>,
    /// The request's hash key (cookie value, header, URI, …) for hashing algorithms; when
    /// `None` they hash the client address.
    pub hash_key: Option<&'a [u8]>,
    /// Servers this request has already tried; never picked again.
    pub tried: &'a [Arc<Server>],
}

impl PickContext<'_> {
    /// Whether `server` may be picked for this request now (available, admitted by slow
    /// start, not tried yet).
    pub fn eligible(&self, server: &Server) -> bool {
        server.admits_pick() && !self.tried.iter().any(|t| t.id() == server.id())
    }

    /// [`PickContext::eligible`] without counting an ask of slow start: whether a pick
    /// would take `server` now. What explanations ask, so that they change nothing.
    pub fn would_take(&self, server: &Server) -> bool {
        explain::ask(server) && !self.tried.iter().any(|t| t.id() == server.id())
    }

    /// Why a pick would turn `server` away now, in a few words; `None` when it would not.
    pub fn refusal(&self, server: &Server) -> Option<&'static str> {
        explain::refusal(self, server)
    }
}

/// A balancing algorithm over a fixed set of servers.
pub trait Balancer: Send + Sync {
    /// One server for this request, or `None` when nothing is eligible.
    fn pick(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>>;

    /// What [`Balancer::pick`] would answer for `ctx` now and what it looked at, found
    /// without disturbing the balancer (no turn taken, no random number drawn, no ask of
    /// slow start counted): see `explain.rs`.
    fn explain(&self, _ctx: &PickContext<'_>) -> Explanation {
        Explanation::unexplained()
    }
}

/// The balancer of one tier of a pool (its primaries, or its backups): `tier` is every
/// configured server of it. Hashing algorithms keep their mapping over all of them
/// ([`Stable`]); the others are built over the servers in rotation.
pub fn build_tier(algorithm: Algorithm, tier: &[Arc<Server>]) -> Box<dyn Balancer> {
    let in_rotation: Vec<Arc<Server>> = tier.iter().filter(|s| s.in_rotation()).cloned().collect();
    let compact = || (in_rotation.len() < tier.len()).then(|| build(algorithm, &in_rotation));
    match algorithm {
        Algorithm::IpHash => Box::new(Stable::new(IpHash::new(tier), compact())),
        Algorithm::Hash => Box::new(Stable::new(Ring::new(tier), compact())),
        Algorithm::Maglev => Box::new(Stable::new(Maglev::new(tier), compact())),
        _ => build(algorithm, &in_rotation),
    }
}

/// Candidates a ring or Maglev walk looks at in [`StablePick::pick_stable`] before giving up.
/// With a share `f` of the tier eligible, a key exhausts it with probability `(1 - f)^128`:
/// nil with a few servers out, a tenth of a percent with nine in ten out.
pub const STABLE_WALK: usize = 128;

/// A hashing balancer's bounded search over its full mapping: the server a key maps to, or
/// the next ones in the algorithm's own deterministic order (the next points of the ring, the
/// next slots of the Maglev table, nginx's rehash for `ip_hash`), giving up with `None` after
/// a few ineligible candidates instead of searching on.
pub trait StablePick: Balancer {
    fn pick_stable(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>>;

    /// [`Balancer::explain`] of [`StablePick::pick_stable`]: the bounded search.
    fn explain_stable(&self, ctx: &PickContext<'_>) -> Explanation;
}

/// A hashing balancer over every configured server of a tier, with a compact one over the
/// servers in rotation for the rare key whose bounded search finds nothing.
///
/// A server out of rotation (`down = true`, actively unhealthy) stays in the mapping and is
/// skipped at pick time, so only the keys that lived on it move, each to the next candidate
/// of its own search (which spreads them over the others by weight), and they return when it
/// does. A pick costs what it did over the rotation alone: the search is bounded (a few dozen
/// candidates for a ring or a table, 21 hashes for `ip_hash`). Only when most of a tier is
/// out does a key exhaust it; it then goes to the compact balancer, which is built only while
/// some server is out of rotation and so deterministic for that rotation.
pub struct Stable<B> {
    all: B,
    in_rotation: Option<Box<dyn Balancer>>,
}

impl<B: StablePick> Stable<B> {
    pub fn new(all: B, in_rotation: Option<Box<dyn Balancer>>) -> Stable<B> {
        Stable { all, in_rotation }
    }
}

impl<B: StablePick> Balancer for Stable<B> {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>> {
        self.all
            .pick_stable(ctx)
            .or_else(|| match &self.in_rotation {
                Some(compact) => compact.pick(ctx),
                // Everything is in rotation: what was skipped is passive or tried; search on.
                None => self.all.pick(ctx),
            })
    }

    fn explain(&self, ctx: &PickContext<'_>) -> Explanation {
        let mut e = self.all.explain_stable(ctx);
        if e.pick.is_some() {
            return e;
        }
        let (mut next, why) = match &self.in_rotation {
            Some(compact) => (
                compact.explain(ctx),
                "the bounded search found nothing eligible: the balancer over the servers in rotation decides",
            ),
            None => (
                self.all.explain(ctx),
                "the bounded search found nothing eligible: the search goes on over the whole mapping",
            ),
        };
        e.step(why);
        // Its figures in words, so that the mapping's own keep their names.
        if !next.facts.0.is_empty() {
            let figures: Vec<String> = (next.facts.0.iter())
                .map(|(k, v)| format!("{k} {v}"))
                .collect();
            e.step(format!(
                "over the servers in rotation: {}",
                figures.join(", ")
            ));
        }
        e.steps.append(&mut next.steps);
        e.pick = next.pick;
        e
    }
}

/// The balancer for `algorithm` over exactly `servers` (may be empty).
pub fn build(algorithm: Algorithm, servers: &[Arc<Server>]) -> Box<dyn Balancer> {
    match algorithm {
        Algorithm::RoundRobin => Box::new(RoundRobin::new(servers)),
        Algorithm::LeastConn => Box::new(LeastConn::new(servers)),
        Algorithm::LeastTime => Box::new(LeastTime::new(servers)),
        Algorithm::P2c => Box::new(P2c::new(servers)),
        Algorithm::Random => Box::new(WeightedRandom::new(servers)),
        Algorithm::IpHash => Box::new(IpHash::new(servers)),
        Algorithm::Hash => Box::new(Ring::new(servers)),
        Algorithm::Maglev => Box::new(Maglev::new(servers)),
    }
}

/// The bytes a hashing algorithm hashes: the hash key, else the client address (an
/// IPv4-mapped IPv6 address counts as the IPv4 address, so a dual-stack listener hashes a
/// client the same way as a v4 one). `None` when the request has neither.
fn key_bytes<'a>(ctx: &PickContext<'a>, buf: &'a mut [u8; 16]) -> Option<&'a [u8]> {
    if let Some(k) = ctx.hash_key {
        return Some(k);
    }
    match ctx.client?.to_canonical() {
        IpAddr::V4(v4) => {
            buf[..4].copy_from_slice(&v4.octets());
            Some(&buf[..4])
        }
        IpAddr::V6(v6) => {
            *buf = v6.octets();
            Some(&buf[..])
        }
    }
}

/// The first server `ctx` allows, in order: what a hashing algorithm picks when a request
/// has nothing to hash, and the last resort when hashing finds nothing eligible.
fn first_eligible(
    servers: &[Arc<Server>],
    from: usize,
    ctx: &PickContext<'_>,
) -> Option<Arc<Server>> {
    first_where(servers, from, |s| ctx.eligible(s)).map(|i| servers[i].clone())
}

/// The index of the first server from `from` on (circularly) that `take` accepts.
fn first_where(
    servers: &[Arc<Server>],
    from: usize,
    take: impl Fn(&Server) -> bool,
) -> Option<usize> {
    let n = servers.len();
    (0..n).map(|i| (from + i) % n).find(|&i| take(&servers[i]))
}

static FIXED: AtomicBool = AtomicBool::new(false);
static SEED: AtomicU64 = AtomicU64::new(0);

/// Seed every random balancer (`random`, `p2c`) built from now on in this process with
/// `seed`, so that what it draws can be reproduced: `switchyard explain --seed`, a one-shot
/// command. A serving Switchyard never calls it (its pools must not draw in step).
pub fn fix_seed(seed: u64) {
    SEED.store(seed, Ordering::Relaxed);
    FIXED.store(true, Ordering::Relaxed);
}

/// A lock-free random number source shared by the threads picking from one balancer:
/// SplitMix64 over an atomic counter. One relaxed `fetch_add` per number, no lock, no
/// thread-local state, and a fixed seed makes tests reproducible.
#[derive(Debug)]
struct SplitMix(AtomicU64);

impl SplitMix {
    const GAMMA: u64 = 0x9e37_79b9_7f4a_7c15;

    fn new(seed: u64) -> SplitMix {
        SplitMix(AtomicU64::new(seed))
    }

    /// Seeded from the OS so that two load balancers (or two pools) do not walk in step;
    /// from the seed [`fix_seed`] set, if it was.
    fn from_entropy() -> SplitMix {
        if FIXED.load(Ordering::Relaxed) {
            return SplitMix::new(SEED.load(Ordering::Relaxed));
        }
        SplitMix::new(rand::random())
    }

    fn mix(mut z: u64) -> u64 {
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn next_u64(&self) -> u64 {
        Self::mix(
            self.0
                .fetch_add(Self::GAMMA, Ordering::Relaxed)
                .wrapping_add(Self::GAMMA),
        )
    }

    /// The numbers the next draws will give, without drawing them (for explanations).
    fn peek(&self) -> Peeked {
        Peeked(self.0.load(Ordering::Relaxed))
    }
}

/// Random numbers as a pick draws them: from a balancer's [`SplitMix`] (advancing it), or
/// the ones its next pick would draw ([`Peeked`], advancing nothing).
trait Draws {
    fn next_u64(&mut self) -> u64;

    /// Uniform in `0..n` (`n > 0`), by multiply-shift: no division, bias below 2^-32 for
    /// any pool size.
    fn below(&mut self, n: u64) -> u64 {
        ((u128::from(self.next_u64()) * u128::from(n)) >> 64) as u64
    }
}

impl Draws for &SplitMix {
    #[inline]
    fn next_u64(&mut self) -> u64 {
        SplitMix::next_u64(self)
    }
}

/// A copy of a [`SplitMix`]'s counter: the draws its next pick would make.
struct Peeked(u64);

impl Draws for Peeked {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(SplitMix::GAMMA);
        SplitMix::mix(self.0)
    }
}

#[cfg(test)]
pub(crate) mod testing {
    //! Helpers shared by the algorithm tests.
    use std::sync::Arc;

    use std::time::Duration;

    use super::{Balancer, PickContext};
    use crate::upstream::{InFlight, Server};

    /// A small seeded random source for tests (xorshift64).
    pub struct Rng(u64);

    impl Rng {
        pub fn new(seed: u64) -> Rng {
            Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
        }

        /// Uniform enough in `0..n` (`n > 0`).
        pub fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0 % n
        }
    }

    /// Servers on 127.0.0.1:1.. with the given weights.
    pub fn servers(weights: &[u32]) -> Vec<Arc<Server>> {
        weights
            .iter()
            .enumerate()
            .map(|(i, &w)| {
                Arc::new(Server::with_weight(
                    format!("127.0.0.1:{}", 1000 + i).parse().unwrap(),
                    w,
                ))
            })
            .collect()
    }

    /// The index in `servers` of a picked server.
    pub fn index(servers: &[Arc<Server>], s: &Server) -> usize {
        servers.iter().position(|x| x.id() == s.id()).unwrap()
    }

    /// Pick `n` times with an empty context; the indices picked.
    pub fn picks(b: &dyn Balancer, servers: &[Arc<Server>], n: usize) -> Vec<usize> {
        (0..n)
            .map(|_| index(servers, &b.pick(&PickContext::default()).unwrap()))
            .collect()
    }

    /// Discrete-time run: one request arrives per tick and holds its server for that
    /// server's latency (in ticks), then records it. Returns requests per server.
    pub fn simulate(
        b: &dyn Balancer,
        s: &[Arc<Server>],
        latency: &[u64],
        ticks: u64,
    ) -> Vec<usize> {
        let mut counts = vec![0; s.len()];
        let mut running: Vec<(u64, usize, InFlight)> = Vec::new();
        for now in 0..ticks {
            running.retain(|(end, i, _)| {
                if *end <= now {
                    s[*i].record_latency(Duration::from_millis(latency[*i]));
                    false
                } else {
                    true
                }
            });
            let got = b.pick(&PickContext::default()).unwrap();
            let i = index(s, &got);
            counts[i] += 1;
            running.push((now + latency[i], i, got.begin()));
        }
        counts
    }

    /// A request's retries walk the pool: each pick is a server it has not tried, until it
    /// has tried them all, then `None`; with other requests picking in between (moving any
    /// shared cursor) and holding their servers (moving load-aware choices).
    pub fn check_retries_try_each_server_once(make: impl Fn(&[Arc<Server>]) -> Box<dyn Balancer>) {
        let s = servers(&[5, 3, 2, 1]);
        let b = make(&s);
        let mut held = Vec::new();
        for round in 0..60 {
            let mut tried: Vec<Arc<Server>> = Vec::new();
            for _ in 0..s.len() {
                for _ in 0..round % 3 {
                    held.push(b.pick(&PickContext::default()).unwrap().begin());
                }
                let ctx = PickContext {
                    tried: &tried,
                    ..PickContext::default()
                };
                let got = b.pick(&ctx).unwrap();
                assert!(
                    !tried.iter().any(|t| t.id() == got.id()),
                    "round {round}: server {} picked again",
                    index(&s, &got)
                );
                tried.push(got);
            }
            let ctx = PickContext {
                tried: &tried,
                ..PickContext::default()
            };
            assert!(b.pick(&ctx).is_none(), "everything tried");
            if held.len() > 20 {
                held.clear();
            }
        }
    }

    /// Checks every balancer must pass: none over zero servers, `tried` and `down` are
    /// respected, and with everything excluded the answer is `None`.
    pub fn check_exclusion(make: impl Fn(&[Arc<Server>]) -> Box<dyn Balancer>) {
        assert!(make(&[]).pick(&PickContext::default()).is_none());
        let s = servers(&[5, 3, 2]);
        let b = make(&s);
        let client = Some("10.1.2.3".parse().unwrap());
        for key in [None, Some(&b"user-42"[..])] {
            for i in 0..50u8 {
                let ip = Some(std::net::IpAddr::from([10, i, 7, 1]));
                let tried = [s[0].clone()];
                let ctx = PickContext {
                    client: ip,
                    hash_key: key,
                    tried: &tried,
                };
                let got = b.pick(&ctx).unwrap();
                assert_ne!(got.id(), s[0].id(), "tried server picked again");
                let tried = [s[0].clone(), s[2].clone()];
                let ctx = PickContext {
                    client,
                    hash_key: key,
                    tried: &tried,
                };
                assert_eq!(b.pick(&ctx).unwrap().id(), s[1].id());
                let tried = s.clone();
                let ctx = PickContext {
                    client,
                    hash_key: key,
                    tried: &tried,
                };
                assert!(b.pick(&ctx).is_none());
            }
        }
        // A server marked down is skipped without a rebuild.
        s[1].set_admin_down(true);
        for _ in 0..50 {
            let got = b.pick(&PickContext::default()).unwrap();
            assert_ne!(got.id(), s[1].id(), "down server picked");
        }
        s[0].set_admin_down(true);
        s[2].set_admin_down(true);
        assert!(b.pick(&PickContext::default()).is_none());
    }
}

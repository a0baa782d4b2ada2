//! A pool: its servers, and the balancers over them (one per tier: primaries, backups).

use std::sync::Arc;

use arc_swap::ArcSwap;

use super::{Queue, Server};
use crate::balance::{self, Balancer, Explanation, PickContext};
use crate::config::{
    Algorithm, HashKey, HealthPlan, HostHeader, PoolPlan, RetryPlan, StickyPlan, Timeouts,
};

/// The balancers of one moment: primaries, and backups for when no primary can serve.
struct Pickers {
    primary: Box<dyn Balancer>,
    backup: Option<Box<dyn Balancer>>,
}

/// What a pool would do with a request now ([`Pool::explain`]).
#[derive(Debug)]
pub struct PoolExplanation {
    /// The primaries' balancer.
    pub primary: Explanation,
    /// The backups' balancer, when the primaries would take nothing.
    pub backup: Option<Explanation>,
    /// The server the pool would pick.
    pub pick: Option<Arc<Server>>,
    /// What the pool itself does beyond its balancers (backups, slow start, quick recovery).
    pub notes: Vec<String>,
}

/// A named group of servers with one balancing algorithm.
pub struct Pool {
    pub name: String,
    pub algorithm: Algorithm,
    pub hash_key: HashKey,
    pub keepalive: usize,
    pub keepalive_timeout: std::time::Duration,
    pub timeouts: Timeouts,
    pub host_header: HostHeader,
    /// Active health checks (run by `probe::spawn`), if configured.
    pub health: Option<HealthPlan>,
    pub retry: RetryPlan,
    pub sticky: Option<StickyPlan>,
    servers: Vec<Arc<Server>>,
    pickers: ArcSwap<Pickers>,
    /// Requests waiting for a server below its `max_conns`: only when some server has one
    /// and `queue_size` is not 0.
    queue: Option<Arc<Queue>>,
    pub queue_size: usize,
    pub queue_timeout: std::time::Duration,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("name", &self.name)
            .field("algorithm", &self.algorithm)
            .field("servers", &self.servers)
            .finish()
    }
}

impl Pool {
    /// Build a pool from its plan. Servers of `previous` that the plan describes the same
    /// way ([`Server::is_same`]) are kept, with their counters, health, in-flight count and
    /// latency, and take the plan's weight and admin state; so a reload loses no state.
    pub fn new(plan: &PoolPlan, previous: Option<&Pool>) -> Pool {
        let servers: Vec<Arc<Server>> = plan
            .servers
            .iter()
            .map(|sp| {
                let kept = previous.and_then(|p| p.servers.iter().find(|s| s.is_same(sp)).cloned());
                match kept {
                    Some(s) => {
                        s.update(sp);
                        s
                    }
                    None => {
                        let s = Arc::new(Server::new(sp));
                        if previous.is_some() {
                            // Added by a reload: ramp it up like a recovered server.
                            s.start_slow_start(tokio::time::Instant::now());
                        }
                        s
                    }
                }
            })
            .collect();
        let pickers = build_pickers(plan.algorithm, &servers);
        // The queue goes on from the pool this one replaces, with its waiting requests.
        let queue = (plan.queue_size > 0 && servers.iter().any(|s| s.max_conns() > 0))
            .then(|| previous.and_then(|p| p.queue.clone()).unwrap_or_default());
        for s in &servers {
            s.set_queue(queue.clone());
            s.set_pool(&plan.name);
        }
        Pool {
            name: plan.name.clone(),
            algorithm: plan.algorithm,
            hash_key: plan.hash_key.clone(),
            keepalive: plan.keepalive,
            keepalive_timeout: plan.keepalive_timeout,
            timeouts: plan.timeouts,
            host_header: plan.host_header,
            health: plan.health.clone(),
            retry: plan.retry.clone(),
            sticky: plan.sticky.clone(),
            servers,
            pickers: ArcSwap::from_pointee(pickers),
            queue,
            queue_size: plan.queue_size,
            queue_timeout: plan.queue_timeout,
        }
    }

    /// The queue of requests waiting for a server below its `max_conns`, if the pool has one.
    pub fn queue(&self) -> Option<&Arc<Queue>> {
        self.queue.as_ref()
    }

    /// Whether a request that found no server could get one by waiting: some server it has
    /// not tried takes new requests but is at its `max_conns`.
    pub fn full_but_serving(&self, tried: &[Arc<Server>]) -> bool {
        self.servers.iter().any(|s| {
            s.max_conns() > 0
                && !s.has_room()
                && s.accepts_new()
                && !tried.iter().any(|t| t.id() == s.id())
        })
    }

    /// Every server, in configuration order.
    pub fn servers(&self) -> &[Arc<Server>] {
        &self.servers
    }

    /// Choose a server: a primary if any can serve, else a backup.
    pub fn pick(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>> {
        let pickers = self.pickers.load();
        let once = || {
            pickers
                .primary
                .pick(ctx)
                .or_else(|| pickers.backup.as_ref().and_then(|b| b.pick(ctx)))
        };
        if let Some(s) = once() {
            return Some(s);
        }
        // Slow start turns picks away; when it turned away the only servers left, ask
        // again: its admission counters advance on every ask, so one of every
        // `SlowStart::STEPS` asks is admitted at the latest.
        if self
            .servers
            .iter()
            .any(|s| s.in_slow_start() && s.accepts_new())
        {
            for _ in 0..crate::upstream::state::SlowStart::STEPS {
                if let Some(s) = once() {
                    return Some(s);
                }
            }
        }
        // A fresh request found nothing: if that is only passive time-outs, this request gets
        // its 503 and the next one tries again (a retry that ran out of untried servers does
        // not count: it answers with its last failure).
        if ctx.tried.is_empty() {
            self.quick_recovery();
        }
        None
    }

    /// What [`Pool::pick`] would answer for `ctx` now, found without disturbing anything:
    /// each tier's [`Balancer::explain`], the backups only when no primary would take it.
    pub fn explain(&self, ctx: &PickContext<'_>) -> PoolExplanation {
        balance::fresh_explanation();
        let pickers = self.pickers.load();
        let primary = pickers.primary.explain(ctx);
        let mut notes = Vec::new();
        let backups = self.servers.iter().filter(|s| s.backup).count();
        let backup = match (&primary.pick, &pickers.backup) {
            (None, Some(b)) => {
                notes.push("no primary can take the request: the backups are asked".to_string());
                Some(b.explain(ctx))
            }
            (Some(_), Some(_)) => {
                notes.push(format!(
                    "{backups} backup(s) are asked only when no primary can take a request"
                ));
                None
            }
            _ => None,
        };
        let pick = primary
            .pick
            .clone()
            .or_else(|| backup.as_ref().and_then(|b| b.pick.clone()));
        if pick.is_none() {
            if self
                .servers
                .iter()
                .any(|s| s.in_slow_start() && s.accepts_new())
            {
                notes.push(format!(
                    "slow start turned away the only servers left: the pool asks again, up to {} times, and admits one ask in {} at the latest",
                    crate::upstream::state::SlowStart::STEPS,
                    crate::upstream::state::SlowStart::STEPS
                ));
            } else if ctx.tried.is_empty()
                && !self.has_available()
                && self
                    .servers
                    .iter()
                    .any(|s| s.in_rotation() && s.passive_out_for().is_some())
            {
                notes.push("no server can take the request: it is answered 503, and the passive time-outs are forgotten so that the next request tries those servers again (nginx's quick recovery)".to_string());
            } else {
                notes.push("no server can take the request: it is answered 503".to_string());
            }
        }
        PoolExplanation {
            primary,
            backup,
            pick,
            notes,
        }
    }

    /// nginx's "all peers failed, mark them as live for quick recovery": when no primary
    /// nor backup can take a request and some servers are out only through their passive
    /// `fail_timeout` (not `down`, not actively unhealthy), forget those time-outs, so the
    /// pool is not dark for a whole `fail_timeout` after a blip that hit every server.
    fn quick_recovery(&self) {
        if self.has_available() {
            return;
        }
        let cleared = self.servers.iter().filter(|s| s.quick_recover()).count();
        if cleared > 0 {
            tracing::warn!(
                pool = %self.name,
                "no usable server: cleared the passive time-outs of {cleared} server(s), the next request tries them again"
            );
        }
    }

    /// Rebuild the balancers for the servers now in rotation. Call when a server enters or
    /// leaves rotation (health, drain, weight); in-flight picks finish on the old ones.
    pub fn rebuild(&self) {
        self.pickers
            .store(Arc::new(build_pickers(self.algorithm, &self.servers)));
    }

    /// Whether some server could take a new request now (draining ones cannot).
    pub fn has_available(&self) -> bool {
        self.servers.iter().any(|s| s.accepts_new())
    }
}

/// One balancer per tier over every configured server of it: `balance::build_tier` decides
/// what each algorithm is built over (the servers in rotation, or all of them for the hashing
/// algorithms, which keep their mapping when a server is `down` or unhealthy).
fn build_pickers(algorithm: Algorithm, servers: &[Arc<Server>]) -> Pickers {
    let (backup, primary): (Vec<_>, Vec<_>) = servers.iter().cloned().partition(|s| s.backup);
    Pickers {
        primary: balance::build_tier(algorithm, &primary),
        backup: (!backup.is_empty()).then(|| balance::build_tier(algorithm, &backup)),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use tokio::time::Instant;

    use super::*;
    use crate::config::ServerPlan;

    fn server(port: u16) -> ServerPlan {
        ServerPlan::at(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
    }

    /// A round-robin pool over 127.0.0.1:`ports`, each server ramping up over 20 s.
    fn plan(ports: &[u16]) -> PoolPlan {
        let ramp = |p: &u16| ServerPlan {
            slow_start: Duration::from_secs(20),
            ..server(*p)
        };
        PoolPlan::of("p", ports.iter().map(ramp).collect())
    }

    /// A pool of `n` servers on 127.0.0.1:1.. with `algorithm`.
    fn pool_of(n: u16, algorithm: &str) -> Pool {
        let plan = PoolPlan {
            algorithm: Algorithm::parse(algorithm).unwrap(),
            ..PoolPlan::of("p", (1..=n).map(server).collect())
        };
        Pool::new(&plan, None)
    }

    fn count(pool: &Pool, picks: usize, server: usize) -> usize {
        let id = pool.servers()[server].id();
        (0..picks)
            .filter(|_| pool.pick(&PickContext::default()).unwrap().id() == id)
            .count()
    }

    #[test]
    fn a_pool_without_servers_picks_none_with_every_algorithm() {
        // A pool whose DNS names have no address yet (`init_addr = "none"`).
        for algorithm in Algorithm::NAMES {
            let mut plan = plan(&[1]);
            plan.servers.clear();
            plan.algorithm = Algorithm::parse(algorithm).unwrap();
            let pool = Pool::new(&plan, None);
            let ctx = PickContext {
                hash_key: Some(b"k"),
                ..PickContext::default()
            };
            assert!(pool.pick(&ctx).is_none(), "{algorithm}");
            assert!(!pool.has_available());
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_ramping_server_gets_a_growing_share_and_is_never_refused_alone() {
        let pool = Pool::new(&plan(&[1, 2]), None);
        assert_eq!(count(&pool, 200, 1), 100, "no ramp at start-up");
        pool.servers()[1].start_slow_start(Instant::now());
        // The ramp is its weight's (as in nginx and HAProxy): at first 1/20 of it, so about
        // 1/21 of the picks (refused turns go to the other server) …
        let early = count(&pool, 200, 1);
        assert!((5..=12).contains(&early), "weight 1/20 at first: {early}");
        tokio::time::advance(Duration::from_secs(10)).await;
        // … and half way through, half its weight: 1/3 of the picks.
        let half = count(&pool, 200, 1);
        assert!(
            (58..=75).contains(&half),
            "half its weight at 10 of 20s: {half}"
        );
        // With the other server out, the ramping one still takes every request.
        pool.servers()[0].set_admin_down(true);
        pool.rebuild();
        assert_eq!(count(&pool, 50, 1), 50);
        tokio::time::advance(Duration::from_secs(10)).await;
        pool.servers()[0].set_admin_down(false);
        pool.rebuild();
        assert_eq!(count(&pool, 200, 1), 100, "ramp over: an equal share");
        assert!(!pool.servers()[1].in_slow_start());
    }

    #[tokio::test(start_paused = true)]
    async fn a_reload_keeps_state_and_ramps_only_new_servers() {
        let old = Pool::new(&plan(&[1, 2]), None);
        old.servers()[0].report_failure(Instant::now());
        let new = Pool::new(&plan(&[1, 2, 3]), Some(&old));
        assert_eq!(new.servers()[0].id(), old.servers()[0].id());
        assert!(!new.servers()[0].is_available(), "kept its passive state");
        assert!(!new.servers()[1].in_slow_start());
        assert!(new.servers()[2].in_slow_start(), "added by the reload");
    }

    #[tokio::test(start_paused = true)]
    async fn every_server_passively_out_gives_one_refusal_then_all_are_tried_again() {
        let pool = pool_of(3, "round_robin");
        for s in pool.servers() {
            assert!(s.report_failure(Instant::now()), "max_fails = 1 trips");
        }
        assert!(!pool.has_available());
        // This request is refused (its 503) …
        assert!(pool.pick(&PickContext::default()).is_none());
        // … and the next ones are tried, long before fail_timeout (10 s) ends.
        assert!(pool.has_available());
        let picked: std::collections::BTreeSet<u64> = (0..3)
            .map(|_| pool.pick(&PickContext::default()).unwrap().id())
            .collect();
        assert_eq!(picked.len(), 3, "every server is back in turn");
        for s in pool.servers() {
            assert_eq!(s.health_state(), crate::upstream::HealthState::Healthy);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn quick_recovery_leaves_down_and_unhealthy_servers_and_retries_alone() {
        let pool = pool_of(4, "round_robin");
        let s = pool.servers();
        s[0].set_admin_down(true);
        for _ in 0..3 {
            s[1].record_check(2, 3, false, "status 500".into(), Instant::now());
        }
        pool.rebuild();
        s[2].report_failure(Instant::now());
        s[3].report_failure(Instant::now());
        // A retry that ran out of untried servers clears nothing: it answers with its last
        // failure, and the next fresh request gets the refusal.
        let tried = [s[2].clone()];
        let retry = PickContext {
            tried: &tried,
            ..PickContext::default()
        };
        assert!(pool.pick(&retry).is_none());
        assert!(!pool.has_available());
        assert!(pool.pick(&PickContext::default()).is_none());
        // Only the passively failed servers came back; down and unhealthy stay out.
        for _ in 0..10 {
            let got = pool.pick(&PickContext::default()).unwrap().id();
            assert!(got == s[2].id() || got == s[3].id());
        }
        assert!(!s[0].is_available() && !s[1].is_available());
        // With nothing passive to clear, a dark pool stays dark.
        s[2].set_admin_down(true);
        s[3].set_admin_down(true);
        pool.rebuild();
        assert!(pool.pick(&PickContext::default()).is_none());
        assert!(pool.pick(&PickContext::default()).is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn a_usable_backup_means_no_quick_recovery() {
        let backup = ServerPlan {
            backup: true,
            ..server(3)
        };
        let pool = Pool::new(&PoolPlan::of("p", vec![server(1), server(2), backup]), None);
        let s = pool.servers();
        s[0].report_failure(Instant::now());
        s[1].report_failure(Instant::now());
        for _ in 0..5 {
            assert_eq!(pool.pick(&PickContext::default()).unwrap().id(), s[2].id());
        }
        assert!(!s[0].is_available() && !s[1].is_available(), "still out");
    }

    /// The server (its index) each of 10,000 keys goes to: client addresses in 10,000
    /// different /24s for `ip_hash`, hash keys for `hash` and `maglev`.
    fn mapping(pool: &Pool) -> Vec<usize> {
        (0..10_000u32)
            .map(|i| {
                let key = format!("user-{i}");
                let ctx = PickContext {
                    client: Some(std::net::IpAddr::from([
                        10,
                        (i / 100) as u8,
                        (i % 100) as u8,
                        1,
                    ])),
                    hash_key: (pool.algorithm != Algorithm::IpHash).then_some(key.as_bytes()),
                    tried: &[],
                };
                let id = pool.pick(&ctx).unwrap().id();
                pool.servers().iter().position(|s| s.id() == id).unwrap()
            })
            .collect()
    }

    #[derive(Clone, Copy, Debug)]
    enum Out {
        Down,
        Unhealthy,
    }

    fn take_out(pool: &Pool, i: usize, how: Out, out: bool) {
        let s = &pool.servers()[i];
        match how {
            Out::Down => s.set_admin_down(out),
            Out::Unhealthy => {
                for _ in 0..3 {
                    s.record_check(2, 3, !out, "t".into(), Instant::now());
                }
            }
        }
        assert_eq!(s.in_rotation(), !out);
        pool.rebuild();
    }

    #[tokio::test(start_paused = true)]
    async fn hashing_keeps_every_other_servers_keys_when_one_is_out_and_gives_them_back() {
        for algorithm in ["ip_hash", "hash", "maglev"] {
            for how in [Out::Down, Out::Unhealthy] {
                let n = 5;
                let pool = pool_of(n as u16, algorithm);
                let before = mapping(&pool);
                let k = 2;
                take_out(&pool, k, how, true);
                let during = mapping(&pool);
                let mut moved_to = vec![0usize; n];
                for (key, (&was, &now)) in before.iter().zip(&during).enumerate() {
                    if was == k {
                        assert_ne!(
                            now, k,
                            "{algorithm} {how:?}: key {key} stayed on the out server"
                        );
                        moved_to[now] += 1;
                    } else {
                        assert_eq!(
                            now, was,
                            "{algorithm} {how:?}: key {key} of server {was} moved"
                        );
                    }
                }
                let moved: usize = moved_to.iter().sum();
                assert!(
                    (1500..2500).contains(&moved),
                    "{algorithm}: {moved} keys on server {k}"
                );
                // They spread over the others (equal weights: about a quarter each), not onto
                // one neighbour.
                for (i, &c) in moved_to.iter().enumerate() {
                    if i != k {
                        assert!(
                            c.abs_diff(moved / 4) < moved / 8,
                            "{algorithm} {how:?}: {moved_to:?}"
                        );
                    }
                }
                // Deterministic: asked again, the same answers.
                assert_eq!(mapping(&pool), during, "{algorithm} {how:?}");
                take_out(&pool, k, how, false);
                assert_eq!(
                    mapping(&pool),
                    before,
                    "{algorithm} {how:?}: keys came back"
                );
            }
        }
    }

    #[tokio::test(start_paused = true)]
    async fn hashing_with_most_of_the_pool_out_still_serves_every_key_deterministically() {
        for algorithm in ["ip_hash", "hash", "maglev"] {
            let pool = pool_of(20, algorithm);
            for i in 0..18 {
                pool.servers()[i].set_admin_down(true);
            }
            pool.rebuild();
            let during = mapping(&pool);
            assert!(during.iter().all(|&i| i >= 18), "{algorithm}");
            let on_18 = during.iter().filter(|&&i| i == 18).count();
            assert!(
                (4000..6000).contains(&on_18),
                "{algorithm}: {on_18} of 10,000 on one of two"
            );
            assert_eq!(mapping(&pool), during, "{algorithm}");
        }
    }
}

//! Active health checks: one task per server probing on the pool's schedule and feeding the
//! result to the server's rise/fall state machine (`upstream::state`). When a server
//! enters or leaves rotation, the task rebuilds the pool's balancer. HTTP probes speak what
//! the pool speaks to its servers (TLS, HTTP/2): see [`ProbeTransport`].
//!
//! [`spawn`] starts the tasks of one pool; the returned [`Checkers`] stops them when dropped,
//! so checkers live exactly as long as the pool they belong to (the runtime keeps them next
//! to the pool and drops them on shutdown or when a reload replaces the pool).

mod check;

use std::sync::Arc;
use std::time::Duration;

use rand::Rng;
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use check::{CheckResult, ProbeTls, ProbeTransport, probe, probe_with};

use crate::config::HealthPlan;
use crate::upstream::{Pool, Server};

/// The running checkers of one pool; dropping this stops them.
#[derive(Debug, Default)]
pub struct Checkers {
    tasks: Vec<JoinHandle<()>>,
}

impl Checkers {
    /// How many servers are being checked.
    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }
}

impl Drop for Checkers {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// Start one checker per server of `pool` if the pool has `[health]` configured; HTTP
/// probes reach the servers as `transport` says (the pool's TLS and protocol).
pub fn spawn(pool: &Arc<Pool>, transport: ProbeTransport) -> Checkers {
    let Some(plan) = pool.health.clone() else {
        return Checkers::default();
    };
    let plan = Arc::new(plan);
    let transport = Arc::new(transport);
    let tasks = pool
        .servers()
        .iter()
        .map(|server| {
            tokio::spawn(check_loop(
                pool.clone(),
                server.clone(),
                plan.clone(),
                transport.clone(),
            ))
        })
        .collect();
    Checkers { tasks }
}

/// Up to `frac` of `interval`, at random: keeps the checks of many servers (and many
/// Switchyard instances) from marching in step.
fn jitter(interval: Duration, frac: f64) -> Duration {
    interval.mul_f64(rand::rng().random_range(0.0..frac))
}

async fn check_loop(
    pool: Arc<Pool>,
    server: Arc<Server>,
    plan: Arc<HealthPlan>,
    transport: Arc<ProbeTransport>,
) {
    // The first check comes within one interval, spread over it.
    tokio::time::sleep(jitter(plan.interval, 1.0)).await;
    loop {
        let started = Instant::now();
        let outcome = probe_with(&plan, server.addr, &transport).await;
        server.count_check(outcome.pass, started.elapsed());
        tracing::debug!(
            pool = %pool.name,
            server = %server.name,
            pass = outcome.pass,
            "health check: {}",
            outcome.detail
        );
        if server
            .record_check(
                plan.rise,
                plan.fall,
                outcome.pass,
                outcome.detail,
                Instant::now(),
            )
            .is_some()
        {
            pool.rebuild();
        }
        // Checks start `interval` apart (±5 %), however long each took.
        let next = started + plan.interval.mul_f64(0.95) + jitter(plan.interval, 0.1);
        tokio::time::sleep_until(next).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{HealthKind, HealthPlan};
    use crate::demo::Backend;

    fn plan(kind: HealthKind, path: &str) -> HealthPlan {
        HealthPlan {
            kind,
            path: path.into(),
            timeout: Duration::from_millis(500),
            ..HealthPlan::default()
        }
    }

    #[tokio::test]
    async fn http_probe_follows_the_backend() {
        let b = Backend::start("b", Duration::ZERO).await.unwrap();
        let p = plan(HealthKind::Http, "/health");
        assert!(probe(&p, b.addr).await.pass);
        b.set_healthy(false);
        let o = probe(&p, b.addr).await;
        assert_eq!((o.pass, o.detail.as_str()), (false, "status 503"));
        b.set_healthy(true);
        let body = HealthPlan {
            expect_body: Some("ok".into()),
            ..p.clone()
        };
        assert!(probe(&body, b.addr).await.pass);
        let wrong = HealthPlan {
            expect_body: Some("nope".into()),
            ..p.clone()
        };
        assert!(!probe(&wrong, b.addr).await.pass);
        let slow = HealthPlan {
            path: "/sleep/2000".into(),
            timeout: Duration::from_millis(100),
            ..p
        };
        let o = probe(&slow, b.addr).await;
        assert!(!o.pass && o.detail.starts_with("timed out"), "{o:?}");
    }

    #[tokio::test]
    async fn tcp_probe_sees_a_stopped_server() {
        let b = Backend::start("b", Duration::ZERO).await.unwrap();
        let p = plan(HealthKind::Tcp, "/");
        assert!(probe(&p, b.addr).await.pass);
        b.stop();
        let addr = b.addr;
        // The listener closes asynchronously; poll with a deadline.
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while probe(&p, addr).await.pass {
            assert!(std::time::Instant::now() < deadline, "still accepting");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

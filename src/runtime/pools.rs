//! A pool as a running value: its [`Upstream`] (servers, balancer, connections, sticky
//! state) and its health checkers, built from a plan or rebuilt from the one it replaces.

use std::sync::Arc;

use crate::config::PoolPlan;
use crate::probe::{Checkers, ProbeTransport};
use crate::proxy::http::Upstream;
use crate::proxy::http::transport::Transport;
use crate::upstream::{AdminState, Pool};

use super::error::RuntimeError;

/// A running pool.
pub struct RunningPool {
    pub upstream: Arc<Upstream>,
    /// Stops the checkers when dropped.
    _checkers: Checkers,
}

/// The pool's upstream, built but not yet running its health checks.
pub struct Built {
    upstream: Arc<Upstream>,
}

/// Build a pool (`previous`: the one it replaces, and whether its connections can be kept):
/// servers that stay keep their state ([`Pool::new`]), the upstream its connections and
/// sticky sessions ([`Upstream::succeed`]). Fails only when its TLS files went bad.
pub fn build(
    plan: &PoolPlan,
    previous: Option<(&RunningPool, bool)>,
) -> Result<Built, RuntimeError> {
    let pool = Arc::new(Pool::new(plan, previous.map(|(p, _)| &*p.upstream.pool)));
    let transport = Transport::from_plan(plan).map_err(|source| RuntimeError::Tls {
        what: format!("pool {:?}", plan.name),
        source,
    })?;
    let upstream = match previous {
        None => Upstream::with_transport(pool, transport),
        Some((p, keep_conns)) => Upstream::succeed(pool, transport, &p.upstream, keep_conns),
    };
    Ok(Built {
        upstream: Arc::new(upstream),
    })
}

impl Built {
    pub fn upstream(&self) -> &Arc<Upstream> {
        &self.upstream
    }

    /// Start its health checks (if configured): it is now the pool in service.
    pub fn start(self) -> RunningPool {
        let checkers = crate::probe::spawn(
            &self.upstream.pool,
            probe_transport(self.upstream.transport()),
        );
        log_pool(&self.upstream);
        RunningPool {
            upstream: self.upstream,
            _checkers: checkers,
        }
    }
}

impl RunningPool {
    /// Set what the plan says of servers that stay (weight, admin state, passive checks,
    /// slow start) on the running servers, and rebuild the balancer once.
    pub fn update_servers(&self, plan: &PoolPlan) {
        let pool = &self.upstream.pool;
        for sp in &plan.servers {
            if let Some(s) = pool.servers().iter().find(|s| s.is_same(sp)) {
                s.update(sp);
            }
        }
        pool.rebuild();
    }

    /// Take out of service the servers that `next` (the pool replacing this one, or none)
    /// no longer has: UDP sessions and sticky clients leave them at once; requests and
    /// connections running on them finish.
    pub fn retire_servers(&self, next: Option<&Pool>) {
        for s in self.upstream.pool.servers() {
            let kept = next.is_some_and(|n| n.servers().iter().any(|k| k.id() == s.id()));
            if !kept {
                s.set_admin_state(AdminState::Maint);
            }
        }
    }
}

/// Health checks reach a pool's servers the way its requests do: the same TLS client
/// configuration and name, the same HTTP version.
fn probe_transport(t: &Transport) -> ProbeTransport {
    ProbeTransport {
        tls: t.tls.as_ref().map(|tls| crate::probe::ProbeTls {
            connector: tls.connector.clone(),
            server_name: tls.options.server_name.clone(),
        }),
        h2: t.protocol.is_h2(),
    }
}

fn log_pool(u: &Upstream) {
    let p = &u.pool;
    let servers: Vec<String> = p
        .servers()
        .iter()
        .map(|s| {
            let mut d = format!("{} w={}", s.addr, s.weight());
            if s.backup {
                d.push_str(" backup");
            }
            match s.admin_state() {
                AdminState::Ready => {}
                AdminState::Drain => d.push_str(" drain"),
                AdminState::Maint => d.push_str(" down"),
            }
            d
        })
        .collect();
    tracing::info!(
        pool = %p.name,
        algorithm = p.algorithm.as_str(),
        "serving {} server(s): {}",
        servers.len(),
        servers.join(", ")
    );
}

//! The running configuration as values, and [`Running::apply`]: a new [`Plan`] diffed
//! against the running one ([`PlanDiff`]) and only what changed touched.
//!
//! `apply` works in two steps. First everything that can fail is prepared while nothing
//! running changes: rebuilt pools (TLS towards the servers), new sockets (taken from a
//! listener that moves or leaves, from an upgrade's hand-over, or bound), certificates. If
//! one fails, what was prepared is dropped and the running configuration is untouched.
//! Then the changes are committed, which cannot fail: servers updated in place, rebuilt
//! pools swapped in, each listener's new site or service stored whole (one atomic pointer
//! swap between two requests), new accept loops started before the ones they replace stop,
//! removed listeners stopped (they drain within the grace period, counted in `retiring`).
//! Starting is applying a plan onto an empty configuration.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use super::error::RuntimeError;
use super::listener::{self, Kind, Listener, LoadedTls, Socket, Spare, SpareSocket, Wiring};
use super::pools::{self, Built, RunningPool};
use crate::admin::{self, AdminListener as ShownListener, ListenerStats};
use crate::cluster::Cluster;
use crate::config::diff::{AdminChange, ListenerChange, PoolChange, RedisChange, pools_of};
use crate::config::{AccessTarget, AdminPlan, LogPlan, Plan, PlanDiff, Protocol, RedisPlan};
use crate::observe::sink::{AccessLog, Opened};
use crate::proxy::http::Upstream;
use crate::shutdown::Shutdown;

/// The admin listener, running.
pub struct AdminListener {
    pub addr: SocketAddr,
    configured: SocketAddr,
    pub socket: Arc<TcpListener>,
    stop: Shutdown,
    task: JoinHandle<()>,
}

impl AdminListener {
    fn spawn(
        plan: &AdminPlan,
        socket: Arc<TcpListener>,
        parent: &Shutdown,
        state: Arc<admin::State>,
    ) -> AdminListener {
        let addr = socket.local_addr().unwrap_or(plan.listen);
        let stop = parent.child();
        tracing::info!("{}", admin::describe(addr));
        let task = tokio::spawn(admin::serve(
            socket.clone(),
            state,
            stop.clone(),
            plan.limits,
        ));
        AdminListener {
            addr,
            configured: plan.listen,
            socket,
            stop,
            task,
        }
    }

    fn stop(self) -> JoinHandle<()> {
        drop(self.socket);
        self.stop.stop();
        self.task
    }
}

/// The link to Redis, running: its own stop signal, fired after the listeners drained
/// (their last requests may still use the shared tables), or when dropped (a reload that
/// changed or removed `[redis]`).
pub struct RunningCluster {
    pub cluster: Arc<Cluster>,
    stop: Shutdown,
}

impl RunningCluster {
    fn start(plan: &RedisPlan) -> Result<RunningCluster, RuntimeError> {
        let stop = Shutdown::new();
        let cluster = Cluster::start(plan.clone(), &stop)?;
        tracing::info!(addr = %crate::cluster::shown_addr(&plan.addr), prefix = %plan.prefix, "shared state through Redis (connecting in the background)");
        Ok(RunningCluster { cluster, stop })
    }

    /// Stop its tasks and wait for them (at most `io_timeout`, the longest a call waits).
    pub async fn stop(self) {
        self.stop.stop();
        let limit = self.cluster.config().io_timeout + std::time::Duration::from_secs(1);
        let _ = tokio::time::timeout(limit, self.cluster.stopped()).await;
    }
}

impl Drop for RunningCluster {
    fn drop(&mut self) {
        self.stop.stop();
    }
}

/// Everything running for one configuration.
pub struct Running {
    pub plan: Arc<Plan>,
    pub pools: HashMap<String, RunningPool>,
    /// In the plan's order.
    pub listeners: Vec<Listener>,
    pub admin: Option<AdminListener>,
    /// The link to Redis, when the plan has `[redis]`.
    pub cluster: Option<RunningCluster>,
    /// Accept loops stopped by a change, finishing their connections.
    pub retiring: Vec<JoinHandle<()>>,
    /// The parent of every listener's stop signal.
    pub shutdown: Shutdown,
    /// What the admin endpoints read; [`Running::publish`] replaces its view.
    pub state: Arc<admin::State>,
    pub reloads: Arc<admin::Reloads>,
    pub loaded: admin::Loaded,
    /// The access log: its destination follows the plan's `[log]`, its counters stay.
    pub log: Arc<AccessLog>,
    https_port: u16,
    /// Which code serves HTTP/1.x clients.
    pub engine: crate::proxy::http::Http1Engine,
}

impl Running {
    /// Nothing running yet; [`Running::apply`] starts a plan on it.
    pub fn empty(
        shutdown: Shutdown,
        state: Arc<admin::State>,
        reloads: Arc<admin::Reloads>,
        loaded: admin::Loaded,
        workers: usize,
    ) -> Running {
        Running {
            plan: Arc::new(Plan {
                workers,
                grace_period: Default::default(),
                shutdown_delay: Default::default(),
                listeners: Vec::new(),
                pools: Vec::new(),
                admin: None,
                redis: None,
                // Off, so that a plan with any access log opens it.
                log: LogPlan {
                    access: AccessTarget::Off,
                    ..LogPlan::default()
                },
            }),
            pools: HashMap::new(),
            listeners: Vec::new(),
            admin: None,
            cluster: None,
            retiring: Vec::new(),
            shutdown,
            state,
            reloads,
            loaded,
            log: Arc::default(),
            https_port: 443,
            engine: crate::proxy::http::Http1Engine::default(),
        }
    }

    /// Make `plan` the running configuration, changing only what differs (see the module
    /// comment). `spare`: sockets to take before binding (an upgrade's). Returns one line
    /// per change; on an error nothing changed.
    pub fn apply(&mut self, mut plan: Plan, mut spare: Spare) -> Result<Vec<String>, RuntimeError> {
        if self.shutdown.is_stopped() {
            return Err(RuntimeError::ShuttingDown);
        }
        // Limits that the open-file limit cannot carry are lowered first, so that a plan
        // is diffed as it will run.
        super::fds::fit_here(&mut plan);
        let diff = PlanDiff::between(&self.plan, &plan);
        // The worker threads were made at start: the running plan keeps their count, so
        // what it says stays true: `/api/config` writes it (`Control::with_workers_running`),
        // and the next reload of a file that says another reports it again.
        plan.workers = self.plan.workers;
        let prepared = self.prepare(&plan, &diff, &mut spare)?;
        // What no new listener took closes now (or stays with the loop still serving it).
        drop(spare);
        self.commit(plan, &diff, prepared);
        Ok(diff.describe())
    }

    fn prepare(
        &self,
        plan: &Plan,
        diff: &PlanDiff,
        spare: &mut Spare,
    ) -> Result<Prepared, RuntimeError> {
        // A new link first: the pools with shared tables are built onto it.
        let cluster = match (&plan.redis, &diff.redis) {
            (Some(r), RedisChange::Added | RedisChange::Changed(_)) => {
                Some(RunningCluster::start(r)?)
            }
            _ => None,
        };
        let link = match &diff.redis {
            RedisChange::Added | RedisChange::Changed(_) => cluster.as_ref(),
            RedisChange::Removed => None,
            RedisChange::Same => self.cluster.as_ref(),
        }
        .map(|c| &c.cluster);
        let mut built = HashMap::new();
        for p in &plan.pools {
            let previous = match diff.pool(&p.name) {
                Some(PoolChange::Added) => None,
                Some(PoolChange::Rebuilt(r)) => {
                    self.pools.get(&p.name).map(|old| (old, r.keep_conns))
                }
                _ => continue,
            };
            built.insert(p.name.clone(), pools::build(p, previous, link)?);
        }
        // The sockets of listeners that move or leave may serve their successors (a
        // listener renamed on the same address keeps its socket).
        for l in &self.listeners {
            if matches!(
                diff.listener(&l.plan.name),
                Some(ListenerChange::Moved | ListenerChange::Removed)
            ) {
                spare.sockets.push(SpareSocket {
                    name: l.plan.name.clone(),
                    configured: l.plan.listen,
                    socket: l.socket.clone(),
                });
            }
        }
        if let Some(a) = &self.admin
            && matches!(diff.admin, AdminChange::Moved | AdminChange::Removed)
        {
            spare.sockets.push(SpareSocket {
                name: "admin".into(),
                configured: a.configured,
                socket: Socket::Tcp(a.socket.clone()),
            });
        }
        let mut sockets = HashMap::new();
        let mut tls = HashMap::new();
        for l in &plan.listeners {
            let change = diff.listener(&l.name);
            if matches!(change, Some(ListenerChange::Added | ListenerChange::Moved)) {
                let udp = l.protocol == Protocol::Udp;
                let socket = listener::bind(&l.name, l.listen, l.origin.as_ref(), udp, spare)?;
                sockets.insert(l.name.clone(), socket);
            }
            if change != Some(ListenerChange::Same)
                && let Some(t) = listener::load_tls(l)?
            {
                tls.insert(l.name.clone(), t);
            }
        }
        let log = match diff.log {
            true => {
                Some(
                    self.log
                        .prepare(&plan.log)
                        .map_err(|source| RuntimeError::AccessLog {
                            path: match &plan.log.access {
                                AccessTarget::File(p) => p.clone(),
                                other => format!("{other:?}").to_lowercase().into(),
                            },
                            source,
                        })?,
                )
            }
            false => None,
        };
        let admin = match (&plan.admin, diff.admin) {
            (Some(a), AdminChange::Added | AdminChange::Moved) => Some(listener::bind_tcp(
                "admin",
                a.listen,
                a.origin.as_ref(),
                spare,
            )?),
            _ => None,
        };
        Ok(Prepared {
            built,
            sockets,
            tls,
            admin,
            cluster,
            log,
        })
    }

    fn commit(&mut self, plan: Plan, diff: &PlanDiff, mut p: Prepared) {
        // The link before the pools: the rebuilt ones use the new one. The one it replaces
        // stops when dropped (a request still on an old pool finds its table's link down
        // and goes on with the local entries).
        match &diff.redis {
            RedisChange::Added | RedisChange::Changed(_) => self.cluster = p.cluster.take(),
            RedisChange::Removed => self.cluster = None,
            RedisChange::Same => {}
        }
        if let Some(log) = p.log.take() {
            self.log.commit(log);
        }
        // Pools first, so that every listener below is wired to the pools of the new plan.
        for (name, change) in &diff.pools {
            match change {
                PoolChange::Servers(_) => {
                    if let (Some(running), Some(pp)) = (self.pools.get(name), plan.pool(name)) {
                        running.update_servers(pp);
                    }
                }
                PoolChange::Removed => {
                    if let Some(old) = self.pools.remove(name) {
                        old.retire_servers(None);
                    }
                }
                _ => {}
            }
        }
        for (name, b) in p.built.drain() {
            if let Some(old) = self.pools.get(&name) {
                old.retire_servers(Some(&b.upstream().pool));
            }
            // The pool it replaces is dropped here: its health checkers stop.
            self.pools.insert(name, b.start());
        }

        let https_port = plan
            .listeners
            .iter()
            .find(|l| l.protocol == Protocol::Https)
            .and_then(|l| {
                p.sockets
                    .get(&l.name)
                    .and_then(Socket::local_addr)
                    .or_else(|| self.listener(&l.name).map(|x| x.addr))
            })
            .map_or(443, |a| a.port());
        let upstreams: HashMap<String, Arc<Upstream>> = self
            .pools
            .iter()
            .map(|(n, rp)| (n.clone(), rp.upstream.clone()))
            .collect();
        let l7_pools: HashSet<String> = plan
            .listeners
            .iter()
            .filter(|l| matches!(l.protocol, Protocol::Http | Protocol::Https))
            .flat_map(pools_of)
            .map(String::from)
            .collect();
        let wiring = Wiring {
            upstreams: &upstreams,
            https_port,
            l7_pools,
            grace: plan.grace_period,
            parent: &self.shutdown,
            log: &self.log,
            engine: self.engine,
            cluster: self.cluster.as_ref().map(|c| &c.cluster),
        };

        // Listeners, in the new plan's order; a new accept loop serves before the one it
        // replaces stops.
        let mut old = std::mem::take(&mut self.listeners);
        let mut take = |name: &str| {
            old.iter()
                .position(|l| l.plan.name == name)
                .map(|i| old.remove(i))
        };
        let mut stopped = Vec::new();
        for l in &plan.listeners {
            let tls = p.tls.remove(&l.name);
            let change = diff.listener(&l.name).unwrap_or(ListenerChange::Added);
            let next = match (change, take(&l.name)) {
                (ListenerChange::Reprotocol, Some(o)) => {
                    let n = Listener::spawn(l, o.socket.clone(), tls, &wiring);
                    stopped.push(o);
                    n
                }
                (ListenerChange::Changed, Some(mut o)) => {
                    o.update(l, tls, &wiring);
                    o
                }
                (ListenerChange::Same, Some(mut o)) => {
                    let redirect = l.redirect_https && https_port != self.https_port;
                    if redirect || o.l4_latency_changed(&wiring) {
                        o.update(l, None, &wiring);
                    }
                    o
                }
                (_, o) => {
                    // Added or moved: its socket was bound (or taken) in `prepare`.
                    stopped.extend(o);
                    let Some(socket) = p.sockets.remove(&l.name) else {
                        tracing::error!(listener = %l.name, "no socket prepared; listener left out");
                        continue;
                    };
                    Listener::spawn(l, socket, tls, &wiring)
                }
            };
            self.listeners.push(next);
        }
        stopped.append(&mut old);
        for o in stopped {
            tracing::info!(listener = %o.plan.name, "stops accepting on {}; its connections drain", o.addr);
            self.retiring.push(o.stop());
        }
        self.https_port = https_port;

        // The admin listener last: the view it shows is complete by then.
        let admin_plan = plan.admin.clone();
        self.plan = Arc::new(plan);
        self.publish();
        match (diff.admin, admin_plan, p.admin.take()) {
            (AdminChange::Added | AdminChange::Moved, Some(a), Some(socket)) => {
                let next = AdminListener::spawn(&a, socket, &self.shutdown, self.state.clone());
                if let Some(old) = self.admin.replace(next) {
                    self.retiring.push(old.stop());
                }
            }
            (AdminChange::Removed, _, _) => {
                if let Some(old) = self.admin.take() {
                    self.retiring.push(old.stop());
                }
            }
            _ => {}
        }
        self.retiring.retain(|t| !t.is_finished());
        self.publish();
    }

    fn listener(&self, name: &str) -> Option<&Listener> {
        self.listeners.iter().find(|l| l.plan.name == name)
    }

    /// Show the running configuration to the admin endpoints (and the runtime's getters).
    pub fn publish(&self) {
        let view = admin::View {
            plan: self.plan.clone(),
            pools: self
                .plan
                .pools
                .iter()
                .filter_map(|p| self.pools.get(&p.name).map(|rp| rp.upstream.clone()))
                .collect(),
            listeners: self.listeners.iter().map(shown).collect(),
            admin_addr: self.admin.as_ref().map(|a| a.addr),
            cluster: self.cluster.as_ref().map(|c| c.cluster.clone()),
            config: self.loaded.clone(),
            reloads: self.reloads.clone(),
            access_log: self.log.clone(),
        };
        self.state.view.store(Arc::new(view));
    }

    /// Every listening socket with the listener it serves and its configured address (the
    /// admin listener as `admin`), for an upgrade's hand-over.
    pub fn sockets(&self) -> Vec<SpareSocket> {
        let mut out: Vec<SpareSocket> = self
            .listeners
            .iter()
            .map(|l| SpareSocket {
                name: l.plan.name.clone(),
                configured: l.plan.listen,
                socket: l.socket.clone(),
            })
            .collect();
        if let Some(a) = &self.admin {
            out.push(SpareSocket {
                name: "admin".into(),
                configured: a.configured,
                socket: Socket::Tcp(a.socket.clone()),
            });
        }
        out
    }

    /// Stop accepting on every listener, the admin listener included; the returned tasks
    /// end once their connections have drained (within the grace period).
    pub fn stop_all(&mut self) -> Vec<JoinHandle<()>> {
        let mut tasks: Vec<JoinHandle<()>> = std::mem::take(&mut self.retiring);
        tasks.extend(self.listeners.drain(..).map(Listener::stop));
        tasks.extend(self.admin.take().map(AdminListener::stop));
        // Certificate watchers and anything else tied to the configuration.
        self.shutdown.stop();
        tasks
    }
}

/// What [`Running::prepare`] readied for [`Running::commit`].
struct Prepared {
    /// The new link, when `[redis]` was added or changed.
    cluster: Option<RunningCluster>,
    built: HashMap<String, Built>,
    sockets: HashMap<String, Socket>,
    tls: HashMap<String, LoadedTls>,
    admin: Option<Arc<TcpListener>>,
    log: Option<Opened>,
}

/// A listener as the admin endpoints show it.
fn shown(l: &Listener) -> ShownListener {
    ShownListener {
        name: l.plan.name.clone(),
        protocol: l.plan.protocol,
        addr: l.addr,
        stats: match &l.kind {
            Kind::Tcp(s) => ListenerStats::Tcp(s.load().stats.clone()),
            Kind::Udp(s) => ListenerStats::Udp(s.load().stats.clone()),
            Kind::Http { proxy_in, site, .. } => ListenerStats::Http {
                proxy_in: proxy_in.clone(),
                http: site.load().stats.clone(),
                conns: site.load().conns.clone(),
            },
        },
        site: match &l.kind {
            Kind::Http { site, .. } => Some(site.clone()),
            _ => None,
        },
        certs: match &l.kind {
            Kind::Http { certs: Some(c), .. } => Some(c.resolver.clone()),
            _ => None,
        },
    }
}

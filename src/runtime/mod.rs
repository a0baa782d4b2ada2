//! A running Switchyard: a [`Plan`] made into listeners and pools, changed while it runs,
//! and taken down without dropping what it serves.
//!
//! - `listener.rs`: a listener as a value (bind → spawn → a running listener with its name,
//!   address, task and counters; updated in place, stopped to drain).
//! - `pools.rs`: a pool as a value (its upstream and health checkers), rebuilt from the one
//!   it replaces.
//! - `running.rs`: everything running, and [`Runtime::apply`]'s work: diff the new plan
//!   against the running one (`config::diff`), prepare what can fail, commit the rest.
//! - `control.rs`: reloads and the admin API's writes, made into plans the same way
//!   (`overrides.rs`: the operator's API changes kept on top of the file).
//! - `fds.rs`: the open-file limit, raised at start, and the connection limits lowered to
//!   fit in it.
//! - `exclusive.rs`: a start refused when another process listens on its ports (SO_REUSEPORT
//!   would share them silently), except a stopping Switchyard's, which it marks.
//! - `handover.rs`: sockets handed to a new process (`switchyard run --upgrade`);
//!   `notify.rs`: systemd notifications.
//!
//! Every change takes the control lock (a tokio mutex): reloads, API writes, DNS answers
//! and the shutdown are serialized; requests never take it. What they read (a listener's
//! site, a pool's balancer) is swapped whole with `arc-swap`.
//!
//! Host names of servers (`discovery`): resolved before the first plan is applied (a name
//! without address stops the start, as `check` says), and by the DNS task while running:
//! it asks the `resolve = true` names that are due, outside the lock, then hands the answers
//! to the control ([`Control::dns_answers`]), which applies a change of addresses as a
//! reload does.

mod control;
mod error;
mod exclusive;
pub mod fds;
#[cfg(target_os = "linux")]
pub mod handover;
mod listener;
pub mod notify;
mod overrides;
mod pools;
mod running;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime};

use tokio::sync::{Mutex, mpsc};

pub use control::{ReloadError, ReloadReport, sha256};
pub use error::RuntimeError;
pub use listener::Spare;

use crate::admin;
use crate::config::{ConfigErrors, Plan, Protocol};
use crate::discovery::{self, Book};
use crate::proxy::http::Upstream;
use crate::proxy::http::proxy_in::ProxyInStats;
use crate::proxy::{tcp, udp};
use crate::shutdown::Shutdown;
use crate::upstream::Pool;
use control::Control;
use running::Running;

/// How often servers removed over the API are checked for having drained.
const REAP_EVERY: Duration = Duration::from_millis(100);

/// Where a runtime's configuration comes from, beyond its first plan.
#[derive(Debug, Default)]
pub struct Launch {
    /// The config file the plan was loaded from (its text as loaded): reloads read it
    /// again, and the admin API's changes are made on top of it.
    pub file: Option<(PathBuf, String)>,
    /// Sockets to take instead of binding (an upgrade's hand-over).
    pub spare: Spare,
    /// Which code serves HTTP/1.x clients: the direct path, or hyper (tests run both).
    pub engine: crate::proxy::http::Http1Engine,
    /// Refuse to start when another process already listens on a fixed address of the
    /// plan (`switchyard run` without `--share-ports`; see `exclusive.rs`).
    pub exclusive: bool,
}

/// A running configuration.
pub struct Runtime {
    inner: Arc<Inner>,
}

struct Inner {
    control: Mutex<Control>,
    state: Arc<admin::State>,
    shutdown: Shutdown,
    /// Fired when a new process took over the sockets (an upgrade): this one drains.
    upgraded: Shutdown,
    /// Once stopping: the marks that let a successor share the ports (`exclusive.rs`).
    draining: std::sync::Mutex<Option<exclusive::Draining>>,
}

impl Runtime {
    /// Bind every listener (all or nothing) and start serving a plan made in code or loaded
    /// by the caller (no file: nothing to reload).
    pub async fn start(plan: Plan) -> Result<Runtime, RuntimeError> {
        Runtime::launch(plan, Launch::default()).await
    }

    /// [`Runtime::start`] with the HTTP/1 engine chosen (tests run both against one table).
    pub async fn start_with(
        plan: Plan,
        engine: crate::proxy::http::Http1Engine,
    ) -> Result<Runtime, RuntimeError> {
        let launch = Launch {
            engine,
            ..Launch::default()
        };
        Runtime::launch(plan, launch).await
    }

    /// [`Runtime::start`] with a config file (reloads, admin API changes) and sockets handed
    /// over by a running process.
    pub async fn launch(plan: Plan, launch: Launch) -> Result<Runtime, RuntimeError> {
        let (tx, rx) = mpsc::channel(16);
        let reloads = Arc::new(admin::Reloads::default());
        let loaded = admin::Loaded {
            // Absolute, so `switchyard reload` run from anywhere can tell it is this file.
            path: launch.file.as_ref().map(|(p, _)| {
                let p = std::fs::canonicalize(p).unwrap_or_else(|_| p.clone());
                p.display().to_string()
            }),
            sha256: launch.file.as_ref().map(|(_, t)| sha256(t)),
            at: SystemTime::now(),
            overrides: 0,
        };
        let shutdown = Shutdown::new();
        let mut empty = Running::empty(
            shutdown.clone(),
            Arc::new(admin::State {
                view: Default::default(),
                draining: Default::default(),
                control: Some(tx),
            }),
            reloads,
            loaded,
            plan.workers,
        );
        empty.engine = launch.engine;
        let state = empty.state.clone();
        empty.publish();
        let resolved = discovery::resolve(&plan, &Book::default())
            .await
            .map_err(|e| RuntimeError::Resolve(ConfigErrors(e)))?;
        for n in &resolved.notes {
            tracing::info!("DNS: {n}");
        }
        if launch.exclusive {
            exclusive::check(&plan, &launch.spare).await?;
        }
        empty.apply(discovery::apply(&plan, &resolved.book, &[]), launch.spare)?;
        let (path, text) = match launch.file {
            Some((p, t)) => (Some(p), Some(t)),
            None => (None, None),
        };
        let control = Control::new(empty, path, text.as_deref(), plan, resolved.book);
        let wake = control.wake.clone();
        let inner = Arc::new(Inner {
            control: Mutex::new(control),
            state,
            shutdown: shutdown.clone(),
            upgraded: Shutdown::new(),
            draining: Default::default(),
        });
        tokio::spawn(control_task(Arc::downgrade(&inner), rx));
        tokio::spawn(dns_task(Arc::downgrade(&inner), wake, shutdown));
        Ok(Runtime { inner })
    }

    /// Make `plan` the running configuration, changing only what differs from the running
    /// one: listeners that stay keep their sockets and connections, servers that stay keep
    /// their state. Returns one line per change; on an error nothing changed. For a plan
    /// made in code: a runtime started from a file is changed with [`Runtime::reload`] and
    /// the admin API, which start again from the file (and would undo this).
    /// Its host names are resolved as at start (a `resolve = true` name already followed
    /// keeps its answer).
    pub async fn apply(&self, plan: Plan) -> Result<Vec<String>, RuntimeError> {
        let mut c = self.inner.control.lock().await;
        let resolved = discovery::resolve(&plan, &c.book)
            .await
            .map_err(|e| RuntimeError::Resolve(ConfigErrors(e)))?;
        let changes = c.apply_source(plan, resolved.book)?;
        c.running.loaded.at = SystemTime::now();
        c.running.publish();
        Ok(changes)
    }

    /// Load the config file again (SIGHUP): checked exactly as `check` does; a bad file
    /// changes nothing and its errors come back. The operator's API changes are kept
    /// unless the file changed the same values (see `overrides.rs`).
    pub async fn reload(&self) -> Result<ReloadReport, ReloadError> {
        self.inner.control.lock().await.reload_counted().await
    }

    /// Start answering `/health/ready` with 503 "draining" (a shutdown is coming); the
    /// listeners still accept. A Switchyard started on the same ports meanwhile shares them
    /// without `--share-ports` (its successor: `exclusive.rs`).
    pub fn set_draining(&self) {
        self.inner.state.draining.store(true, Ordering::Relaxed);
        let mut marks = self
            .inner
            .draining
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if marks.is_none() {
            *marks = Some(exclusive::mark_draining(&self.plan()));
        }
    }

    /// Drop the marks [`Runtime::set_draining`] made (after an upgrade the successor holds
    /// the sockets; at shutdown the listeners close).
    pub fn release_marks(&self) {
        let mut marks = self
            .inner
            .draining
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        *marks = None;
    }

    /// Resolves once a new process has taken over the sockets (see
    /// [`Runtime::offer_upgrades`]); this one should then [`Runtime::shutdown`].
    pub async fn upgraded(&self) {
        self.inner.upgraded.stopped().await
    }

    /// Stop accepting on every listener (the admin listener included), let in-flight
    /// requests, connections and tunnels finish within the grace period, then return.
    pub async fn shutdown(self) {
        self.set_draining();
        let tasks = self.inner.control.lock().await.running.stop_all();
        // The listeners close now: a Switchyard started from here on is not our successor
        // sharing our ports, and need not be let through.
        self.release_marks();
        for t in tasks {
            let _ = t.await;
        }
        // The link to Redis last: the requests that drained may have used it.
        let cluster = self.inner.control.lock().await.running.cluster.take();
        if let Some(c) = cluster {
            c.stop().await;
        }
        // The last lines, of the connections that just ended, reach the log.
        let log = self.access_log();
        let _ = tokio::task::spawn_blocking(move || log.flush(Duration::from_secs(2))).await;
    }

    /// The access log (SIGUSR1 reopens it; its counters).
    pub fn access_log(&self) -> Arc<crate::observe::sink::AccessLog> {
        self.inner.state.view.load().access_log.clone()
    }

    /// The admin listener's bound address, if `[admin]` is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.inner.state.view.load().admin_addr
    }

    /// The address a listener is bound to (useful with port 0).
    pub fn local_addr(&self, listener: &str) -> Option<SocketAddr> {
        let view = self.inner.state.view.load();
        view.listeners
            .iter()
            .find(|l| l.name == listener)
            .map(|l| l.addr)
    }

    /// Every listener: name, protocol, bound address.
    pub fn listeners(&self) -> Vec<(String, Protocol, SocketAddr)> {
        let view = self.inner.state.view.load();
        view.listeners
            .iter()
            .map(|l| (l.name.clone(), l.protocol, l.addr))
            .collect()
    }

    /// The counters of a `tcp` listener.
    pub fn tcp_stats(&self, listener: &str) -> Option<Arc<tcp::TcpStats>> {
        let view = self.inner.state.view.load();
        match &view.listeners.iter().find(|l| l.name == listener)?.stats {
            admin::ListenerStats::Tcp(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// The counters of a `udp` listener.
    pub fn udp_stats(&self, listener: &str) -> Option<Arc<udp::UdpStats>> {
        let view = self.inner.state.view.load();
        match &view.listeners.iter().find(|l| l.name == listener)?.stats {
            admin::ListenerStats::Udp(s) => Some(s.clone()),
            _ => None,
        }
    }

    /// The counters of an http/https listener: connections, bytes, TLS handshakes, answers.
    pub fn http_stats(&self, listener: &str) -> Option<Arc<crate::proxy::http::stats::HttpStats>> {
        let view = self.inner.state.view.load();
        match &view.listeners.iter().find(|l| l.name == listener)?.stats {
            admin::ListenerStats::Http { http, .. } => Some(http.clone()),
            _ => None,
        }
    }

    /// The PROXY header counters of an `http` / `https` listener that accepts them.
    pub fn proxy_in_stats(&self, listener: &str) -> Option<Arc<ProxyInStats>> {
        let view = self.inner.state.view.load();
        match &view.listeners.iter().find(|l| l.name == listener)?.stats {
            admin::ListenerStats::Http { proxy_in, .. } => proxy_in.clone(),
            _ => None,
        }
    }

    /// The open connections of an http/https listener, and what its limits and timeouts
    /// closed (`ConnLimits::stats`).
    pub fn conn_limits(&self, listener: &str) -> Option<Arc<crate::guard::ConnLimits>> {
        let view = self.inner.state.view.load();
        match &view.listeners.iter().find(|l| l.name == listener)?.stats {
            admin::ListenerStats::Http { conns, .. } => Some(conns.clone()),
            _ => None,
        }
    }

    /// A running pool (the current one: a change may replace it).
    pub fn pool(&self, name: &str) -> Option<Arc<Pool>> {
        self.upstream(name).map(|u| u.pool.clone())
    }

    /// A running pool with its upstream connections.
    pub fn upstream(&self, name: &str) -> Option<Arc<Upstream>> {
        let view = self.inner.state.view.load();
        view.pools.iter().find(|u| u.pool.name == name).cloned()
    }

    /// The link to Redis (`[redis]`), if the plan has one: its state and counters.
    pub fn cluster(&self) -> Option<Arc<crate::cluster::Cluster>> {
        self.inner.state.view.load().cluster.clone()
    }

    /// The running plan.
    pub fn plan(&self) -> Arc<Plan> {
        self.inner.state.view.load().plan.clone()
    }

    /// Load the certificates of every `https` listener again now (besides the automatic
    /// reload when their files change). A listener whose new pairs do not load keeps
    /// serving its old ones; returns how many listeners took new certificates.
    pub async fn reload_certificates(&self) -> usize {
        let c = self.inner.control.lock().await;
        c.running
            .listeners
            .iter()
            .filter_map(|l| match &l.kind {
                listener::Kind::Http {
                    certs: Some(certs), ..
                } => Some(crate::tls::reload(
                    &l.plan.name,
                    &certs.pairs,
                    &certs.resolver,
                )),
                _ => None,
            })
            .filter(|took| *took)
            .count()
    }

    /// Hand the listening sockets to a new process that asks on `path` (`switchyard run
    /// --upgrade`); when it serves, [`Runtime::upgraded`] resolves. `take_over`: this process
    /// is itself an upgrade and replaces the old one's socket file.
    #[cfg(target_os = "linux")]
    pub fn offer_upgrades(&self, path: &std::path::Path, take_over: bool) -> std::io::Result<()> {
        let listener = handover::listen(path, take_over)?;
        tokio::spawn(upgrade_task(
            Arc::downgrade(&self.inner),
            listener,
            path.to_path_buf(),
        ));
        Ok(())
    }
}

impl Drop for Runtime {
    fn drop(&mut self) {
        // Dropped without `shutdown`: stop the listeners all the same.
        self.inner.shutdown.stop();
    }
}

/// The admin API's writes, one at a time; and servers removed over the API taken out once
/// they have drained.
async fn control_task(inner: Weak<Inner>, mut calls: mpsc::Receiver<admin::api::Call>) {
    let mut reap = tokio::time::interval(REAP_EVERY);
    reap.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            call = calls.recv() => {
                let Some(call) = call else { return };
                let Some(inner) = inner.upgrade() else { return };
                let reply = inner.control.lock().await.handle(call.command).await;
                let _ = call.reply.send(reply);
            }
            _ = reap.tick() => {
                let Some(inner) = inner.upgrade() else { return };
                let mut c = inner.control.lock().await;
                if c.removals_pending() {
                    c.reap();
                }
            }
        }
    }
}

/// Ask DNS again about the `resolve = true` names that are due, all at once and outside the
/// control lock, then hand the answers to the control. Sleeps until the next one is due, or
/// until a change of the book wakes it; ends with the runtime.
async fn dns_task(inner: Weak<Inner>, wake: Arc<tokio::sync::Notify>, shutdown: Shutdown) {
    loop {
        let (due, next) = {
            let Some(inner) = inner.upgrade() else { return };
            let c = inner.control.lock().await;
            c.book.due(tokio::time::Instant::now())
        };
        if due.is_empty() {
            let far = tokio::time::Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                () = tokio::time::sleep_until(next.unwrap_or(far)) => {}
                () = wake.notified() => {}
                () = shutdown.stopped() => return,
            }
            continue;
        }
        let answers =
            futures_util::future::join_all(due.iter().map(|k| discovery::ask(&k.question))).await;
        let Some(inner) = inner.upgrade() else { return };
        let mut c = inner.control.lock().await;
        if shutdown.is_stopped() {
            return;
        }
        c.dns_answers(due.into_iter().zip(answers).collect());
    }
}

/// Answer upgrade requests on `listener` until one takes over.
#[cfg(target_os = "linux")]
async fn upgrade_task(inner: Weak<Inner>, listener: tokio::net::UnixListener, path: PathBuf) {
    loop {
        let stream = match listener.accept().await {
            Ok((s, _)) => s,
            Err(e) => {
                tracing::warn!("upgrade socket {}: {e}", path.display());
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let sockets = strong.control.lock().await.running.sockets();
        drop(strong);
        let given = tokio::task::spawn_blocking(move || {
            let stream = stream.into_std()?;
            stream.set_nonblocking(false)?;
            handover::give(stream, &sockets)
        })
        .await;
        match given {
            Ok(Ok(true)) => {
                tracing::info!("a new process serves on the sockets handed over; this one drains");
                if let Some(inner) = inner.upgrade() {
                    inner.upgraded.stop();
                }
                return;
            }
            Ok(Ok(false)) => {
                tracing::warn!("the upgrading process went away before serving; this one goes on")
            }
            Ok(Err(e)) => tracing::warn!("upgrade failed, this process goes on: {e}"),
            Err(e) => tracing::warn!("upgrade failed, this process goes on: {e}"),
        }
    }
}

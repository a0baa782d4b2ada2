//! A listener as a value: bound ([`bind`]: a new socket, or one handed over), spawned
//! ([`Listener::spawn`]: its accept loop with its site or service), updated in place
//! ([`Listener::update`]: a new route table, pool or L4 settings swapped whole between two
//! requests or connections), and stopped ([`Listener::stop`]: it stops accepting and drains
//! its connections within the grace period while its successor, if any, already serves).
//!
//! The socket is shared (`Arc`) by the accept loop and this value, so a new accept loop can
//! take it over (`http` becoming `https`, an upgrade handing it to a new process) while the
//! old loop finishes the connections it has.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinHandle;

use super::error::RuntimeError;
use crate::config::{ListenerPlan, Protocol, Target};
use crate::guard::ConnLimits;
use crate::proxy::http::protect::Guard;
use crate::proxy::http::proxy_in::{ProxyIn, ProxyInStats};
use crate::proxy::http::{self, Route, RouteTarget, Router, Site, Upstream};
use crate::proxy::{listen, tcp, udp};
use crate::shutdown::Shutdown;
use crate::tls;

/// How often certificate files are checked for changes (a `stat` per file).
const CERT_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A bound listening socket.
#[derive(Clone, Debug)]
pub enum Socket {
    Tcp(Arc<TcpListener>),
    Udp(Arc<UdpSocket>),
}

impl Socket {
    pub fn local_addr(&self) -> Option<SocketAddr> {
        match self {
            Socket::Tcp(s) => s.local_addr().ok(),
            Socket::Udp(s) => s.local_addr().ok(),
        }
    }

    pub fn is_udp(&self) -> bool {
        matches!(self, Socket::Udp(_))
    }

    /// The descriptor, to hand the socket to another process.
    #[cfg(unix)]
    pub fn fd(&self) -> std::os::fd::BorrowedFd<'_> {
        use std::os::fd::AsFd;
        match self {
            Socket::Tcp(s) => s.as_fd(),
            Socket::Udp(s) => s.as_fd(),
        }
    }
}

/// A socket that may be taken instead of binding a new one.
#[derive(Debug)]
pub struct SpareSocket {
    /// The listener it served (`admin` for the admin listener).
    pub name: String,
    /// The address as configured (port 0 stays 0), which a taker must ask for.
    pub configured: SocketAddr,
    pub socket: Socket,
}

/// Sockets to take before binding: those a running process handed over in an upgrade, and
/// those of listeners a reload moves or removes (a listener renamed on the same address
/// keeps its socket, and no connection meets a closed port).
#[derive(Debug, Default)]
pub struct Spare {
    pub sockets: Vec<SpareSocket>,
}

impl Spare {
    /// The socket for listener `name` on `configured`: one of that name and address, else
    /// (for a fixed port, where the address alone says which) one of that address.
    pub fn take(&mut self, name: &str, udp: bool, configured: SocketAddr) -> Option<Socket> {
        let fits = |s: &SpareSocket| s.socket.is_udp() == udp && s.configured == configured;
        let i = self
            .sockets
            .iter()
            .position(|s| fits(s) && s.name == name)
            .or_else(|| {
                (configured.port() != 0)
                    .then(|| self.sockets.iter().position(fits))
                    .flatten()
            })?;
        Some(self.sockets.swap_remove(i).socket)
    }
}

/// The socket of listener `name` on `configured`: a spare one, or a new one.
pub fn bind(
    name: &str,
    configured: SocketAddr,
    origin: Option<&String>,
    udp: bool,
    spare: &mut Spare,
) -> Result<Socket, RuntimeError> {
    if !udp {
        return bind_tcp(name, configured, origin, spare).map(Socket::Tcp);
    }
    if let Some(s) = spare.take(name, true, configured) {
        return Ok(s);
    }
    let socket = listen::bind_udp(configured).map_err(|source| RuntimeError::Bind {
        name: name.to_string(),
        addr: configured,
        origin: origin.cloned(),
        udp,
        source,
    })?;
    Ok(Socket::Udp(Arc::new(socket)))
}

/// A TCP socket for `name` (a listener, or `admin`): a spare one, or a new one.
pub fn bind_tcp(
    name: &str,
    configured: SocketAddr,
    origin: Option<&String>,
    spare: &mut Spare,
) -> Result<Arc<TcpListener>, RuntimeError> {
    if let Some(Socket::Tcp(s)) = spare.take(name, false, configured) {
        return Ok(s);
    }
    let socket = listen::bind_tcp(configured).map_err(|source| RuntimeError::Bind {
        name: name.to_string(),
        addr: configured,
        origin: origin.cloned(),
        udp: false,
        source,
    })?;
    Ok(Arc::new(socket))
}

/// What the listeners of one plan are wired to: the pools, and what is computed over all
/// listeners.
pub struct Wiring<'a> {
    pub upstreams: &'a HashMap<String, Arc<Upstream>>,
    /// Where `redirect_https` sends clients: the first https listener's port.
    pub https_port: u16,
    /// Pools an http/https listener sends to: their latency EWMA is the time to a response
    /// head, which L4 connect times must not dilute.
    pub l7_pools: HashSet<String>,
    pub grace: Duration,
    /// The runtime's stop signal; each listener stops with it, or alone.
    pub parent: &'a Shutdown,
    /// The access log, which every listener writes to.
    pub log: &'a Arc<crate::observe::sink::AccessLog>,
    /// Which code serves HTTP/1.x clients (the direct path unless a test asks for hyper).
    pub engine: http::Http1Engine,
    /// The link to Redis of the plan being applied: `shared = true` limits count through it.
    pub cluster: Option<&'a Arc<crate::cluster::Cluster>>,
}

impl Wiring<'_> {
    fn l4_latency(&self, l: &ListenerPlan) -> bool {
        !self
            .l7_pools
            .contains(l.default_pool.as_deref().unwrap_or_default())
    }
}

/// The certificates of an `https` listener, loaded before anything changes.
pub struct LoadedTls {
    store: tls::CertStore,
}

/// Load an `https` listener's certificates (they were checked with the config, but files
/// change); `None` for other protocols.
pub fn load_tls(l: &ListenerPlan) -> Result<Option<LoadedTls>, RuntimeError> {
    if l.protocol != Protocol::Https {
        return Ok(None);
    }
    let err = |source| RuntimeError::Tls {
        what: format!("listener {:?}", l.name),
        source,
    };
    let loaded = l
        .tls
        .iter()
        .map(tls::load_pair)
        .collect::<Result<Vec<_>, _>>()
        .map_err(err)?;
    let store = tls::CertStore::new(&loaded).ok_or_else(|| {
        err(tls::TlsError::Config(
            "an https listener needs a certificate".into(),
        ))
    })?;
    tracing::info!(listener = %l.name, names = ?store.names, "TLS certificates loaded");
    Ok(Some(LoadedTls { store }))
}

/// The certificate files of an `https` listener, the resolver serving them, and the task
/// that reloads them when they change.
pub struct Certs {
    pub pairs: Vec<tls::CertPair>,
    pub resolver: Arc<tls::SniResolver>,
    watch: Shutdown,
}

impl Certs {
    fn new(l: &ListenerPlan, resolver: Arc<tls::SniResolver>, parent: &Shutdown) -> Certs {
        let watch = parent.child();
        tokio::spawn(tls::watch(
            l.name.clone(),
            l.tls.clone(),
            resolver.clone(),
            CERT_CHECK_INTERVAL,
            watch.clone(),
        ));
        Certs {
            pairs: l.tls.clone(),
            resolver,
            watch,
        }
    }
}

impl Drop for Certs {
    fn drop(&mut self) {
        self.watch.stop();
    }
}

/// What a listener serves with, by protocol; each swapped whole by [`Listener::update`].
pub enum Kind {
    Http {
        site: Arc<ArcSwap<Site>>,
        /// PROXY header counters, when the listener accepts the header.
        proxy_in: Option<Arc<ProxyInStats>>,
        certs: Option<Certs>,
    },
    Tcp(Arc<ArcSwap<tcp::TcpService>>),
    Udp(Arc<ArcSwap<udp::UdpService>>),
}

/// A running listener.
pub struct Listener {
    pub plan: ListenerPlan,
    /// The bound address (the real port when the plan says 0).
    pub addr: SocketAddr,
    pub socket: Socket,
    pub kind: Kind,
    stop: Shutdown,
    task: JoinHandle<()>,
}

impl Listener {
    /// Start serving `socket` as `plan` says. `tls`: [`load_tls`]'s result for `https`.
    pub fn spawn(
        plan: &ListenerPlan,
        socket: Socket,
        tls: Option<LoadedTls>,
        wiring: &Wiring<'_>,
    ) -> Listener {
        let addr = socket.local_addr().unwrap_or(plan.listen);
        let stop = wiring.parent.child();
        let grace = wiring.grace;
        let (kind, task) = match (&socket, plan.protocol, tls) {
            (Socket::Tcp(s), Protocol::Https, Some(tls)) => {
                let (site, proxy_in) = site(plan, wiring, None, None, addr.port());
                let site = Arc::new(ArcSwap::from_pointee(site));
                let resolver = Arc::new(tls::SniResolver::new(tls.store));
                let certs = Certs::new(plan, resolver.clone(), &stop);
                let task = match tls::server_config(resolver) {
                    Ok(config) => tokio::spawn(http::tls_serve::serve_tls(
                        s.clone(),
                        site.clone(),
                        config,
                        stop.clone(),
                        grace,
                    )),
                    Err(e) => {
                        // rustls refuses nothing we ask of it; if it ever did, say so.
                        tracing::error!(listener = %plan.name, "cannot serve TLS: {e}");
                        tokio::spawn(async {})
                    }
                };
                (
                    Kind::Http {
                        site,
                        proxy_in,
                        certs: Some(certs),
                    },
                    task,
                )
            }
            (Socket::Tcp(s), Protocol::Tcp, _) => {
                let svc = Arc::new(ArcSwap::from_pointee(tcp_service(plan, wiring, None)));
                let task = tokio::spawn(tcp::serve(s.clone(), svc.clone(), stop.clone(), grace));
                (Kind::Tcp(svc), task)
            }
            (Socket::Udp(s), _, _) => {
                let svc = Arc::new(ArcSwap::from_pointee(udp_service(plan, wiring, None)));
                let task = tokio::spawn(udp::serve(s.clone(), svc.clone(), stop.clone()));
                (Kind::Udp(svc), task)
            }
            (Socket::Tcp(s), _, _) => {
                let (site, proxy_in) = site(plan, wiring, None, None, addr.port());
                let site = Arc::new(ArcSwap::from_pointee(site));
                let task = tokio::spawn(http::serve(s.clone(), site.clone(), stop.clone(), grace));
                (
                    Kind::Http {
                        site,
                        proxy_in,
                        certs: None,
                    },
                    task,
                )
            }
        };
        tracing::info!(
            listener = %plan.name,
            protocol = plan.protocol.as_str(),
            "listening on {addr}"
        );
        Listener {
            plan: plan.clone(),
            addr,
            socket,
            kind,
            stop,
            task,
        }
    }

    /// Take `plan` (same socket, same protocol): the new route table, pools, L4 settings or
    /// certificates are swapped in whole; requests and connections already running finish
    /// with what they started with. Counters stay.
    pub fn update(&mut self, plan: &ListenerPlan, tls: Option<LoadedTls>, wiring: &Wiring<'_>) {
        match &mut self.kind {
            Kind::Http {
                site: current,
                proxy_in,
                certs,
            } => {
                let previous = current.load_full();
                let port = self.addr.port();
                let (next, stats) = site(plan, wiring, proxy_in.clone(), Some(&previous), port);
                current.store(Arc::new(next));
                *proxy_in = stats;
                if let (Some(c), Some(tls)) = (certs.as_mut(), tls)
                    && c.pairs != plan.tls
                {
                    c.resolver.store(tls.store);
                    *c = Certs::new(plan, c.resolver.clone(), &self.stop);
                }
            }
            Kind::Tcp(svc) => {
                let before = svc.load_full();
                svc.store(Arc::new(tcp_service(plan, wiring, Some(&before))));
            }
            Kind::Udp(svc) => {
                let stats = svc.load().stats.clone();
                svc.store(Arc::new(udp_service(plan, wiring, Some(stats))));
            }
        }
        self.plan = plan.clone();
    }

    /// Whether the service of this TCP/UDP listener would feed latency differently under
    /// `wiring` (a pool it shares became or stopped being an HTTP listener's).
    pub fn l4_latency_changed(&self, wiring: &Wiring<'_>) -> bool {
        let now = wiring.l4_latency(&self.plan);
        match &self.kind {
            Kind::Tcp(s) => s.load().record_latency != now,
            Kind::Udp(s) => s.load().record_latency != now,
            Kind::Http { .. } => false,
        }
    }

    /// Stop accepting; the returned task ends once the connections have drained (within
    /// the grace period).
    pub fn stop(self) -> JoinHandle<()> {
        let Listener {
            socket, stop, task, ..
        } = self;
        // Let go of the socket first: an accept loop that holds the last handle serves the
        // connections already queued before the socket closes.
        drop(socket);
        stop.stop();
        task
    }
}

/// The site of an `http` / `https` listener, with its PROXY-header counters (`stats`: the
/// ones to keep counting on, from the site it replaces). The rate limits of `previous` that
/// the plan keeps as they were keep their tables. `port` is the port the listener is bound
/// to.
fn site(
    l: &ListenerPlan,
    wiring: &Wiring<'_>,
    stats: Option<Arc<ProxyInStats>>,
    previous: Option<&Site>,
    port: u16,
) -> (Site, Option<Arc<ProxyInStats>>) {
    // Validation guarantees every named pool exists.
    let get = |name: &str| wiring.upstreams[name].clone();
    // The counters go on from the site this one replaces.
    let counters = previous.map(|p| p.stats.clone()).unwrap_or_default();
    let routes = l
        .routes
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let target = match &r.target {
                Target::Pool(p) => RouteTarget::Pool(get(p)),
                Target::Split(parts) => {
                    RouteTarget::split(parts.iter().map(|(p, w)| (get(p), *w)).collect())
                }
            };
            // Its `name`, or its position: the `route` label of its answers.
            let route = r.label(i);
            let rows = target
                .pools()
                .iter()
                .map(|u| counters.row(&route, &u.pool.name))
                .collect();
            Route {
                max_body: r.client_max_body_size,
                matcher: r.matcher.clone(),
                target,
                rows,
                guard: Guard::build(
                    &r.guard,
                    &format!("{}/route{i}", l.name),
                    previous
                        .and_then(|p| p.router.routes.get(i))
                        .map(|r| &r.guard),
                    wiring.cluster,
                ),
            }
        })
        .collect();
    let proxy_in = l.l4.accept_proxy.clone().map(|trusted| {
        Arc::new(ProxyIn {
            listener: l.name.clone(),
            trusted,
            stats: stats.unwrap_or_default(),
        })
    });
    let https = l.protocol == Protocol::Https;
    let mut site = Site {
        listener: l.name.clone(),
        scheme: if https { "https" } else { "http" },
        router: Router {
            routes,
            default: l.default_pool.as_deref().map(get),
            default_row: counters.row("default", l.default_pool.as_deref().unwrap_or("-")),
            none_row: counters.row("-", "-"),
        },
        redirect_https: (!https && l.redirect_https).then_some(wiring.https_port),
        hsts: if https {
            l.hsts.map(http::tls_serve::hsts_value)
        } else {
            None
        },
        proxy_in: proxy_in.clone(),
        direct: false,
        guard: Guard::build(
            &l.guard,
            &l.name,
            previous.map(|p| &p.guard),
            wiring.cluster,
        ),
        // With PROXY headers, the peer in front is an L4 hop that passes the client's bytes
        // unchanged: an X-Forwarded-For through it is the client's own word.
        trusted: match l.l4.accept_proxy {
            Some(_) => Vec::new(),
            None => l.trusted_proxies.clone(),
        },
        forward_headers: l.forward_headers,
        port,
        conns: conn_limits(l, previous.map(|p| p.conns.clone())),
        hyper: Arc::new(http::conn_builder(&l.limits)),
        limits: l.limits.clone(),
        stats: counters,
        log: wiring.log.clone(),
    };
    site.direct = wiring.engine == http::Http1Engine::Direct && site.all_pools_h1();
    (site, proxy_in.map(|p| p.stats.clone()))
}

/// The connection limits of an http/https listener: those it has (and their counts) when
/// the plan keeps them, else new ones with the same counters.
fn conn_limits(l: &ListenerPlan, before: Option<Arc<ConnLimits>>) -> Arc<ConnLimits> {
    let (max, per) = (
        l.limits.max_connections,
        l.limits.max_connections_per_client,
    );
    match before {
        Some(c) if c.is(max, per) => c,
        Some(c) => ConnLimits::reusing(max, per, c.stats().clone()),
        None => ConnLimits::reusing(max, per, Arc::default()),
    }
}

fn tcp_service(
    l: &ListenerPlan,
    wiring: &Wiring<'_>,
    before: Option<&tcp::TcpService>,
) -> tcp::TcpService {
    let (max, per) = (
        l.limits.max_connections,
        l.limits.max_connections_per_client,
    );
    // The per-client counts carry over a reload that keeps the limit.
    let per_client = match before.and_then(|b| b.per_client.clone()) {
        Some(c) if c.is(usize::MAX, per) => Some(c),
        _ => (per > 0).then(|| crate::guard::ConnLimits::new(usize::MAX, per)),
    };
    tcp::TcpService {
        max_connections: max,
        per_client,
        listener: l.name.clone(),
        pool: wiring.upstreams[l.default_pool.as_deref().unwrap_or_default()]
            .pool
            .clone(),
        config: l.l4.clone(),
        stats: before.map(|b| b.stats.clone()).unwrap_or_default(),
        acl: crate::guard::Acl::new(&l.guard.allow, &l.guard.deny),
        record_latency: wiring.l4_latency(l),
        log: wiring.log.clone(),
    }
}

fn udp_service(
    l: &ListenerPlan,
    wiring: &Wiring<'_>,
    stats: Option<Arc<udp::UdpStats>>,
) -> udp::UdpService {
    udp::UdpService {
        listener: l.name.clone(),
        pool: wiring.upstreams[l.default_pool.as_deref().unwrap_or_default()]
            .pool
            .clone(),
        config: l.l4.clone(),
        stats: stats.unwrap_or_default(),
        acl: crate::guard::Acl::new(&l.guard.allow, &l.guard.deny),
        record_latency: wiring.l4_latency(l),
        log: wiring.log.clone(),
    }
}

//! Assembles a running load balancer from a [`Plan`]: pools, their upstream connection
//! pools, and one task per listener; and takes it down again with a grace period.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::config::{Plan, Protocol, Target};
use crate::proxy::http::transport::Transport;
use crate::proxy::http::{self, Route, RouteTarget, Router, Site, Upstream};
use crate::proxy::listen::bind_tcp;
use crate::proxy::{tcp, udp};
use crate::tls;
use crate::upstream::Pool;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// `origin`: where the address is written (`file:line:column`), when it came from a file.
    #[error("{}listener {name:?} cannot listen on {addr}: {source}\n  help: {}", origin.as_ref().map_or(String::new(), |o| format!("{o}: ")), bind_help(*addr, *udp, source))]
    Bind {
        name: String,
        addr: SocketAddr,
        origin: Option<String>,
        udp: bool,
        source: std::io::Error,
    },
    #[error("TLS of {what}: {source}")]
    Tls {
        what: String,
        source: crate::tls::TlsError,
    },
}

/// What to do when an address cannot be bound.
fn bind_help(addr: SocketAddr, udp: bool, e: &std::io::Error) -> String {
    use std::io::ErrorKind;
    let port = addr.port();
    match e.kind() {
        ErrorKind::AddrInUse => {
            let ss = if udp { "ss -lunp" } else { "ss -ltnp" };
            format!(
                "another process listens there ({ss} 'sport = :{port}' shows which), or choose another port"
            )
        }
        ErrorKind::PermissionDenied if port < 1024 => {
            "ports below 1024 need root or CAP_NET_BIND_SERVICE (setcap 'cap_net_bind_service=+ep' on the binary), or choose a port above 1023".to_string()
        }
        ErrorKind::AddrNotAvailable => format!(
            "{} is not an address of this machine (ip -brief addr lists them); listen on one of those, or on {} for every address",
            addr.ip(),
            if addr.is_ipv4() { "0.0.0.0" } else { "[::]" }
        ),
        _ => "choose another address or port".to_string(),
    }
}

struct RunningListener {
    name: String,
    addr: SocketAddr,
    protocol: Protocol,
    task: JoinHandle<()>,
    l4: Option<L4Stats>,
    /// PROXY header counters of an http/https listener with `accept_proxy_protocol`.
    proxy_in: Option<Arc<http::proxy_in::ProxyInStats>>,
}

/// The counters of an L4 listener.
#[derive(Clone)]
enum L4Stats {
    Tcp(Arc<tcp::TcpStats>),
    Udp(Arc<udp::UdpStats>),
}

/// A running configuration.
pub struct Runtime {
    plan: Plan,
    upstreams: HashMap<String, Arc<Upstream>>,
    listeners: Vec<RunningListener>,
    shutdown: watch::Sender<bool>,
    /// Stops the admin listener, after the others have drained.
    admin_stop: watch::Sender<bool>,
    /// Active health checkers, one set per pool; dropping them stops them.
    checkers: Vec<crate::health::Checkers>,
    /// The admin listener's address and task.
    admin: Option<(SocketAddr, JoinHandle<()>)>,
    /// The certificates of each `https` listener, for [`Runtime::reload_certificates`].
    certificates: Vec<ListenerCerts>,
}

/// An `https` listener's certificate files and the resolver serving them.
struct ListenerCerts {
    listener: String,
    pairs: Vec<tls::CertPair>,
    resolver: Arc<tls::SniResolver>,
}

impl Runtime {
    /// Bind every listener (all or nothing) and start serving.
    pub async fn start(plan: Plan) -> Result<Runtime, RuntimeError> {
        Runtime::start_with(plan, http::Http1Engine::default()).await
    }

    /// [`Runtime::start`] with the HTTP/1 engine chosen (tests run both against one table).
    pub async fn start_with(
        plan: Plan,
        engine: http::Http1Engine,
    ) -> Result<Runtime, RuntimeError> {
        let upstreams: HashMap<String, Arc<Upstream>> = plan
            .pools
            .iter()
            .map(|p| {
                let pool = Arc::new(Pool::new(p, None));
                let transport = Transport::from_plan(p).map_err(|source| RuntimeError::Tls {
                    what: format!("pool {:?}", p.name),
                    source,
                })?;
                Ok((
                    p.name.clone(),
                    Arc::new(Upstream::with_transport(pool, transport)),
                ))
            })
            .collect::<Result<_, RuntimeError>>()?;

        // Bind first, so a taken port fails the start before anything serves.
        let mut bound = Vec::new();
        let mut bound_udp = Vec::new();
        for l in &plan.listeners {
            if l.protocol == Protocol::Udp {
                let socket = udp::bind_udp(l.listen).map_err(|source| RuntimeError::Bind {
                    name: l.name.clone(),
                    addr: l.listen,
                    origin: l.origin.clone(),
                    udp: true,
                    source,
                })?;
                bound_udp.push((l, socket));
                continue;
            }
            let socket = bind_tcp(l.listen).map_err(|source| RuntimeError::Bind {
                name: l.name.clone(),
                addr: l.listen,
                origin: l.origin.clone(),
                udp: false,
                source,
            })?;
            bound.push(socket);
        }

        let admin_socket = match &plan.admin {
            Some(a) => Some(bind_tcp(a.listen).map_err(|source| RuntimeError::Bind {
                name: "admin".into(),
                addr: a.listen,
                origin: a.origin.clone(),
                udp: false,
                source,
            })?),
            None => None,
        };

        // Where `redirect_https` sends clients: the first https listener's port.
        let https_port = plan
            .listeners
            .iter()
            .filter(|l| l.protocol != Protocol::Udp)
            .zip(&bound)
            .find(|(l, _)| l.protocol == Protocol::Https)
            .and_then(|(_, s)| s.local_addr().ok())
            .map_or(443, |a| a.port());
        let (shutdown, _) = watch::channel(false);
        let (admin_stop, _) = watch::channel(false);
        // Pools an http/https listener sends to: their latency EWMA is the time to a
        // response head, which L4 connect times must not dilute.
        let l7_pools: std::collections::HashSet<&str> = plan
            .listeners
            .iter()
            .filter(|l| matches!(l.protocol, Protocol::Http | Protocol::Https))
            .flat_map(|l| {
                let routed = l.routes.iter().flat_map(|r| match &r.target {
                    crate::config::Target::Pool(p) => vec![p.as_str()],
                    crate::config::Target::Split(parts) => {
                        parts.iter().map(|(p, _)| p.as_str()).collect()
                    }
                });
                l.default_pool.as_deref().into_iter().chain(routed)
            })
            .collect();
        let l4_latency = |l: &crate::config::ListenerPlan| {
            !l7_pools.contains(l.default_pool.as_deref().unwrap_or_default())
        };
        let mut listeners = Vec::new();
        let mut certificates = Vec::new();
        let tcp_listeners = plan
            .listeners
            .iter()
            .filter(|l| l.protocol != Protocol::Udp);
        for (l, socket) in tcp_listeners.zip(bound) {
            let addr = socket.local_addr().unwrap_or(l.listen);
            let mut l4 = None;
            let proxy_in = proxy_in_for(l);
            let task = match l.protocol {
                Protocol::Https => {
                    let mut site = site_for(l, &upstreams, "https");
                    site.proxy_in = proxy_in.clone();
                    site.hsts = l.hsts.map(http::tls_serve::hsts_value);
                    site.direct = engine == http::Http1Engine::Direct && site.all_pools_h1();
                    let (tls, resolver) = tls_listener(l, &shutdown)?;
                    certificates.push(ListenerCerts {
                        listener: l.name.clone(),
                        pairs: l.tls.clone(),
                        resolver,
                    });
                    tokio::spawn(http::tls_serve::serve_tls(
                        socket,
                        Arc::new(ArcSwap::from_pointee(site)),
                        tls,
                        shutdown.subscribe(),
                        plan.grace_period,
                    ))
                }
                Protocol::Http => {
                    let mut site = site_for(l, &upstreams, "http");
                    site.proxy_in = proxy_in.clone();
                    site.redirect_https = l.redirect_https.then_some(https_port);
                    site.direct = engine == http::Http1Engine::Direct && site.all_pools_h1();
                    let site = Arc::new(ArcSwap::from_pointee(site));
                    tokio::spawn(http::serve(
                        socket,
                        site,
                        shutdown.subscribe(),
                        plan.grace_period,
                    ))
                }
                Protocol::Tcp => {
                    let svc = Arc::new(tcp::TcpService {
                        listener: l.name.clone(),
                        pool: upstreams[l.default_pool.as_deref().unwrap_or_default()]
                            .pool
                            .clone(),
                        config: l.l4.clone(),
                        stats: Default::default(),
                        record_latency: l4_latency(l),
                    });
                    l4 = Some(L4Stats::Tcp(svc.stats.clone()));
                    tokio::spawn(tcp::serve(
                        socket,
                        svc,
                        shutdown.subscribe(),
                        plan.grace_period,
                    ))
                }
                Protocol::Udp => continue,
            };
            tracing::info!(
                listener = %l.name,
                protocol = l.protocol.as_str(),
                "listening on {addr}"
            );
            listeners.push(RunningListener {
                name: l.name.clone(),
                addr,
                protocol: l.protocol,
                task,
                l4,
                proxy_in: proxy_in.map(|p| p.stats.clone()),
            });
        }
        for (l, socket) in bound_udp {
            let addr = socket.local_addr().unwrap_or(l.listen);
            let svc = Arc::new(udp::UdpService {
                listener: l.name.clone(),
                pool: upstreams[l.default_pool.as_deref().unwrap_or_default()]
                    .pool
                    .clone(),
                config: l.l4.clone(),
                stats: Default::default(),
                record_latency: l4_latency(l),
            });
            let stats = svc.stats.clone();
            let task = tokio::spawn(udp::serve(socket, svc, shutdown.subscribe()));
            tracing::info!(listener = %l.name, protocol = "udp", "listening on {addr}");
            listeners.push(RunningListener {
                name: l.name.clone(),
                addr,
                protocol: l.protocol,
                task,
                l4: Some(L4Stats::Udp(stats)),
                proxy_in: None,
            });
        }
        let admin = match (&plan.admin, admin_socket) {
            (Some(a), Some(socket)) => {
                let addr = socket.local_addr().unwrap_or(a.listen);
                let state = Arc::new(crate::admin::AdminState {
                    pools: plan
                        .pools
                        .iter()
                        .map(|p| upstreams[&p.name].clone())
                        .collect(),
                    listeners: listeners.iter().map(admin_listener).collect(),
                    draining: shutdown.subscribe(),
                });
                tracing::info!("{}", crate::admin::describe(addr));
                let task = tokio::spawn(crate::admin::serve(socket, state, admin_stop.subscribe()));
                Some((addr, task))
            }
            _ => None,
        };
        let checkers = upstreams
            .values()
            .map(|u| crate::health::spawn(&u.pool, probe_transport(u.transport())))
            .collect();
        for p in &plan.pools {
            let servers: Vec<String> = p
                .servers
                .iter()
                .map(|s| {
                    let mut d = format!("{} w={}", s.addr, s.weight);
                    if s.backup {
                        d.push_str(" backup");
                    }
                    if s.down {
                        d.push_str(" down");
                    }
                    d
                })
                .collect();
            tracing::info!(
                pool = %p.name,
                algorithm = p.algorithm.as_str(),
                "serving {} server(s): {}",
                p.servers.len(),
                servers.join(", ")
            );
        }
        Ok(Runtime {
            plan,
            upstreams,
            listeners,
            shutdown,
            admin_stop,
            checkers,
            admin,
            certificates,
        })
    }

    /// The admin listener's bound address, if `[admin]` is configured.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin.as_ref().map(|(a, _)| *a)
    }

    /// The address a listener is bound to (useful with port 0).
    pub fn local_addr(&self, listener: &str) -> Option<SocketAddr> {
        self.listeners
            .iter()
            .find(|l| l.name == listener)
            .map(|l| l.addr)
    }

    /// Every listener: name, protocol, bound address.
    pub fn listeners(&self) -> Vec<(String, Protocol, SocketAddr)> {
        self.listeners
            .iter()
            .map(|l| (l.name.clone(), l.protocol, l.addr))
            .collect()
    }

    /// The counters of a `tcp` listener.
    pub fn tcp_stats(&self, listener: &str) -> Option<Arc<tcp::TcpStats>> {
        match self
            .listeners
            .iter()
            .find(|l| l.name == listener)?
            .l4
            .clone()?
        {
            L4Stats::Tcp(s) => Some(s),
            L4Stats::Udp(_) => None,
        }
    }

    /// The counters of a `udp` listener.
    pub fn udp_stats(&self, listener: &str) -> Option<Arc<udp::UdpStats>> {
        match self
            .listeners
            .iter()
            .find(|l| l.name == listener)?
            .l4
            .clone()?
        {
            L4Stats::Udp(s) => Some(s),
            L4Stats::Tcp(_) => None,
        }
    }

    /// The PROXY header counters of an `http` / `https` listener that accepts them.
    pub fn proxy_in_stats(&self, listener: &str) -> Option<Arc<http::proxy_in::ProxyInStats>> {
        self.listeners
            .iter()
            .find(|l| l.name == listener)?
            .proxy_in
            .clone()
    }

    /// A running pool.
    pub fn pool(&self, name: &str) -> Option<Arc<Pool>> {
        self.upstreams.get(name).map(|u| u.pool.clone())
    }

    /// A running pool with its upstream connections.
    pub fn upstream(&self, name: &str) -> Option<Arc<Upstream>> {
        self.upstreams.get(name).cloned()
    }

    /// Load the certificates of every `https` listener again now (besides the automatic
    /// reload when their files change), e.g. on SIGHUP. A listener whose new pairs do not
    /// load keeps serving its old ones; returns how many listeners took new certificates.
    pub fn reload_certificates(&self) -> usize {
        self.certificates
            .iter()
            .filter(|c| tls::reload(&c.listener, &c.pairs, &c.resolver))
            .count()
    }

    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// Stop accepting, let in-flight requests finish within the grace period, then return.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        drop(self.checkers);
        for l in self.listeners {
            let _ = l.task.await;
        }
        // The admin listener last: while the others drain it answers, `/health/ready` with
        // 503 "draining".
        let _ = self.admin_stop.send(true);
        if let Some((_, task)) = self.admin {
            let _ = task.await;
        }
    }
}

/// What the admin endpoints show of a listener.
fn admin_listener(l: &RunningListener) -> crate::admin::AdminListener {
    use crate::admin::ListenerStats;
    crate::admin::AdminListener {
        name: l.name.clone(),
        protocol: l.protocol,
        addr: l.addr,
        stats: match &l.l4 {
            Some(L4Stats::Tcp(s)) => ListenerStats::Tcp(s.clone()),
            Some(L4Stats::Udp(s)) => ListenerStats::Udp(s.clone()),
            None => ListenerStats::Http {
                proxy_in: l.proxy_in.clone(),
            },
        },
    }
}

/// Health checks reach a pool's servers the way its requests do: the same TLS client
/// configuration and name, the same HTTP version.
fn probe_transport(t: &Transport) -> crate::health::ProbeTransport {
    crate::health::ProbeTransport {
        tls: t.tls.as_ref().map(|tls| crate::health::ProbeTls {
            connector: tls.connector.clone(),
            server_name: tls.options.server_name.clone(),
        }),
        h2: t.protocol.is_h2(),
    }
}

fn site_for(
    l: &crate::config::ListenerPlan,
    upstreams: &HashMap<String, Arc<Upstream>>,
    scheme: &'static str,
) -> Site {
    // Validation guarantees every named pool exists.
    let get = |name: &str| upstreams[name].clone();
    let routes = l
        .routes
        .iter()
        .map(|r| Route {
            matcher: r.matcher.clone(),
            target: match &r.target {
                Target::Pool(p) => RouteTarget::Pool(get(p)),
                Target::Split(parts) => {
                    RouteTarget::split(parts.iter().map(|(p, w)| (get(p), *w)).collect())
                }
            },
        })
        .collect();
    Site {
        listener: l.name.clone(),
        scheme,
        router: Router {
            routes,
            default: l.default_pool.as_deref().map(get),
        },
        redirect_https: None,
        hsts: None,
        proxy_in: None,
        direct: false,
    }
}

/// The PROXY-protocol policy of an `http` / `https` listener, if it accepts the header.
fn proxy_in_for(l: &crate::config::ListenerPlan) -> Option<Arc<http::proxy_in::ProxyIn>> {
    let trusted = l.l4.accept_proxy.clone()?;
    matches!(l.protocol, Protocol::Http | Protocol::Https).then(|| {
        Arc::new(http::proxy_in::ProxyIn {
            listener: l.name.clone(),
            trusted,
            stats: Default::default(),
        })
    })
}

/// The TLS side of an `https` listener: its certificates behind an SNI resolver, and a task
/// that reloads them when their files change (until `shutdown`).
fn tls_listener(
    l: &crate::config::ListenerPlan,
    shutdown: &watch::Sender<bool>,
) -> Result<(Arc<rustls::ServerConfig>, Arc<tls::SniResolver>), RuntimeError> {
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
    let resolver = Arc::new(tls::SniResolver::new(store));
    let config = tls::server_config(resolver.clone()).map_err(err)?;
    tokio::spawn(tls::watch(
        l.name.clone(),
        l.tls.clone(),
        resolver.clone(),
        CERT_CHECK_INTERVAL,
        shutdown.subscribe(),
    ));
    Ok((config, resolver))
}

/// How often certificate files are checked for changes (a `stat` per file).
const CERT_CHECK_INTERVAL: std::time::Duration = std::time::Duration::from_secs(1);

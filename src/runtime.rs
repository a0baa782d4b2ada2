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
use crate::tls;
use crate::upstream::Pool;

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("listener {name:?} cannot listen on {addr}: {source}")]
    Bind {
        name: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("TLS of {what}: {source}")]
    Tls {
        what: String,
        source: crate::tls::TlsError,
    },
}

struct RunningListener {
    name: String,
    addr: SocketAddr,
    protocol: Protocol,
    task: JoinHandle<()>,
}

/// A running configuration.
pub struct Runtime {
    plan: Plan,
    upstreams: HashMap<String, Arc<Upstream>>,
    listeners: Vec<RunningListener>,
    shutdown: watch::Sender<bool>,
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
        for l in &plan.listeners {
            let socket = bind_tcp(l.listen).map_err(|source| RuntimeError::Bind {
                name: l.name.clone(),
                addr: l.listen,
                source,
            })?;
            bound.push(socket);
        }

        // Where `redirect_https` sends clients: the first https listener's port.
        let https_port = plan
            .listeners
            .iter()
            .zip(&bound)
            .find(|(l, _)| l.protocol == Protocol::Https)
            .and_then(|(_, s)| s.local_addr().ok())
            .map_or(443, |a| a.port());
        let (shutdown, _) = watch::channel(false);
        let mut listeners = Vec::new();
        let mut certificates = Vec::new();
        for (l, socket) in plan.listeners.iter().zip(bound) {
            let addr = socket.local_addr().unwrap_or(l.listen);
            let task = match l.protocol {
                Protocol::Https => {
                    let mut site = site_for(l, &upstreams, "https");
                    site.hsts = l.hsts.map(http::tls_serve::hsts_value);
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
                    site.redirect_https = l.redirect_https.then_some(https_port);
                    let site = Arc::new(ArcSwap::from_pointee(site));
                    tokio::spawn(http::serve(
                        socket,
                        site,
                        shutdown.subscribe(),
                        plan.grace_period,
                    ))
                }
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
            });
        }
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
            certificates,
        })
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
        for l in self.listeners {
            let _ = l.task.await;
        }
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
    }
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

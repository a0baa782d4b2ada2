//! `switchyard explain -c FILE 'GET http://host/path' --client ADDR`: the explanation of a
//! request against a config file, offline. The file's listeners, routes and pools are built
//! as the runtime builds them, with every server assumed up: healthy (no check has run),
//! idle, no latency measured, no passive failure, no sticky session remembered, round robin
//! and splits at the start of their cycles. What the file itself says still counts: weights,
//! `down = true`, `drain = true`, backups. Against a running Switchyard, `GET /api/explain`
//! on its admin listener answers the same with the live state.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use super::{Report, Request, explain, explain_direct, explain_l4};
use crate::config::{ConfigErrors, ListenerPlan, Plan, Protocol, Target};
use crate::discovery;
use crate::proxy::http::stats::HttpStats;
use crate::proxy::http::{Route, RouteTarget, Router, Site, Upstream};
use crate::upstream::Pool;

/// The command line of `switchyard explain`.
#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// The config file.
    #[arg(short, long, default_value = "switchyard.toml")]
    pub config: PathBuf,
    /// The request: 'GET http://shop.example.com/cart?id=3', a URL alone (GET), or a path.
    pub request: String,
    /// The client's address as the balancer would see it [default: 127.0.0.1].
    #[arg(long, value_name = "ADDR")]
    pub client: Option<String>,
    /// A request header, 'Name: value' (repeat for more).
    #[arg(short = 'H', long = "header", value_name = "HEADER")]
    pub headers: Vec<String>,
    /// A cookie, 'name=value' (repeat for more).
    #[arg(short = 'b', long = "cookie", value_name = "COOKIE")]
    pub cookies: Vec<String>,
    /// The listener the request arrives on [default: the only one, or the one on the URL's
    /// port].
    #[arg(short, long)]
    pub listener: Option<String>,
    /// Ask this pool directly, leaving listeners and routes out.
    #[arg(short, long, value_name = "NAME", conflicts_with = "listener")]
    pub pool: Option<String>,
    /// Draw random numbers (random, p2c) as balancers seeded with N would, so that the
    /// output can be reproduced [default: a fresh seed, as a starting Switchyard draws].
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,
    /// Print JSON, as GET /api/explain answers, instead of text.
    #[arg(long)]
    pub json: bool,
}

/// Run `switchyard explain`: the report on standard output, or every error (exit 1).
pub fn run(args: &Args) -> std::process::ExitCode {
    match report(args) {
        Ok((r, dns)) => {
            if args.json {
                let text = serde_json::to_string_pretty(&r.to_json()).unwrap_or_default();
                println!("{text}");
            } else {
                for n in dns {
                    println!("dns       {n}");
                }
                print!("{}", r.to_text());
            }
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("{e}");
            std::process::ExitCode::FAILURE
        }
    }
}

/// The report for `args` with what the servers' host names resolved to (as `check` says
/// it), or what is wrong with them or the file.
pub fn report(args: &Args) -> Result<(Report, Vec<String>), String> {
    let failed = |errors: &ConfigErrors| {
        format!(
            "{errors}\n{} error(s) in {}",
            errors.0.len(),
            args.config.display()
        )
    };
    let plan = crate::config::load_file(&args.config).map_err(|e| failed(&e))?;
    // Host names are resolved as `run` resolves them: the servers are their addresses.
    let (plan, dns) = discovery::resolve_now(&plan).map_err(|e| failed(&ConfigErrors(e)))?;
    let mut req = Request::parse_line(&args.request).map_err(|e| format!("error: {e}"))?;
    req.listener = args.listener.clone();
    for h in &args.headers {
        req.add_header(h).map_err(|e| format!("error: {e}"))?;
    }
    for c in &args.cookies {
        req.add_cookie(c).map_err(|e| format!("error: {e}"))?;
    }
    if let Some(c) = &args.client {
        req.set_client(c).map_err(|e| format!("error: {e}"))?;
    }
    if let Some(seed) = args.seed {
        crate::balance::fix_seed(seed);
    }
    let offline = Offline::new(&plan);
    let report = match &args.pool {
        Some(name) => offline.explain_pool(name, &req),
        None => offline.explain(&req),
    }?;
    Ok((report, dns))
}

/// A config's listeners and pools, built to be explained, not served.
pub struct Offline<'a> {
    plan: &'a Plan,
    upstreams: HashMap<String, Arc<Upstream>>,
}

impl Offline<'_> {
    pub fn new(plan: &Plan) -> Offline<'_> {
        let upstreams = plan
            .pools
            .iter()
            .map(|p| {
                let pool = Arc::new(Pool::new(p, None));
                (p.name.clone(), Arc::new(Upstream::new(pool)))
            })
            .collect();
        Offline { plan, upstreams }
    }

    /// Explain `req` on the listener it names (or the one [`pick_listener`] finds).
    pub fn explain(&self, req: &Request) -> Result<Report, String> {
        let l = pick_listener(self.plan, req)?;
        let up = |name: &str| self.upstreams[name].clone();
        match l.protocol {
            Protocol::Http | Protocol::Https => Ok(explain(&self.site(l), req)),
            Protocol::Tcp | Protocol::Udp => {
                let pool = l.default_pool.as_deref().unwrap_or_default();
                Ok(explain_l4(&l.name, &up(pool), req))
            }
        }
    }

    /// Explain `req` against pool `name` directly.
    pub fn explain_pool(&self, name: &str, req: &Request) -> Result<Report, String> {
        match self.upstreams.get(name) {
            Some(up) => Ok(explain_direct(up, req)),
            None => {
                let names: Vec<&str> = self.plan.pools.iter().map(|p| p.name.as_str()).collect();
                Err(format!(
                    "error: no pool named {name:?}\n  help: pools: {}",
                    names.join(", ")
                ))
            }
        }
    }

    /// The site of an http/https listener, as the runtime wires it (the validated plan names
    /// only pools that exist), with counters and an access log of its own that nothing
    /// reads: explaining counts no answer.
    fn site(&self, l: &ListenerPlan) -> Site {
        let get = |name: &str| self.upstreams[name].clone();
        let stats = Arc::new(HttpStats::default());
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
                let route = r.label(i);
                let rows = (target.pools().iter())
                    .map(|u| stats.row(&route, &u.pool.name))
                    .collect();
                Route {
                    matcher: r.matcher.clone(),
                    target,
                    rows,
                    guard: crate::proxy::http::protect::Guard::build(
                        &r.guard,
                        &format!("{}/route{i}", l.name),
                        None,
                        None,
                    ),
                    max_body: r.client_max_body_size,
                }
            })
            .collect();
        let https = self
            .plan
            .listeners
            .iter()
            .find(|x| x.protocol == Protocol::Https)
            .map_or(443, |x| x.listen.port());
        Site {
            listener: l.name.clone(),
            scheme: if l.protocol == Protocol::Https {
                "https"
            } else {
                "http"
            },
            router: Router {
                routes,
                default: l.default_pool.as_deref().map(get),
                default_row: stats.row("default", l.default_pool.as_deref().unwrap_or("-")),
                none_row: stats.row("-", "-"),
            },
            redirect_https: (l.protocol == Protocol::Http && l.redirect_https).then_some(https),
            hsts: None,
            proxy_in: None,
            direct: false,
            guard: crate::proxy::http::protect::Guard::build(&l.guard, &l.name, None, None),
            trusted: l.trusted_proxies.clone(),
            forward_headers: l.forward_headers,
            port: l.listen.port(),
            conns: crate::guard::ConnLimits::reusing(
                l.limits.max_connections,
                l.limits.max_connections_per_client,
                Arc::default(),
            ),
            hyper: Arc::new(crate::proxy::http::conn_builder(&l.limits)),
            limits: l.limits.clone(),
            stats,
            log: Default::default(),
        }
    }
}

/// The listener a request arrives on: the one it names; else the only listener; else the
/// only one on the port of the request's URL (its scheme's default, 443 or 80, when it
/// names none) and of its scheme; else, for a URL without a port, the only listener of its
/// scheme.
pub fn pick_listener<'p>(plan: &'p Plan, req: &Request) -> Result<&'p ListenerPlan, String> {
    let names = || {
        plan.listeners
            .iter()
            .map(|l| format!("{} ({} on {})", l.name, l.protocol.as_str(), l.listen))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(name) = &req.listener {
        return plan
            .listeners
            .iter()
            .find(|l| &l.name == name)
            .ok_or_else(|| {
                format!(
                    "error: no listener named {name:?}\n  help: listeners: {}",
                    names()
                )
            });
    }
    if let [only] = plan.listeners.as_slice() {
        return Ok(only);
    }
    // The listeners the URL's port (its scheme's default, 443 or 80, if it has none)
    // arrives on, of the URL's scheme when it has one.
    let port = req.port();
    let scheme_fits = |l: &&ListenerPlan| match req.scheme.as_deref() {
        Some(s) => l.protocol.as_str() == s,
        None => true,
    };
    let on_port: Vec<&ListenerPlan> = plan
        .listeners
        .iter()
        .filter(|l| Some(l.listen.port()) == port)
        .collect();
    let fitting: Vec<&ListenerPlan> = on_port.iter().copied().filter(scheme_fits).collect();
    let mut on_port = if fitting.is_empty() { on_port } else { fitting };
    if on_port.is_empty() && req.written_port().is_none() && req.scheme.is_some() {
        // `https://shop.test/` with the https listener on 8443: the one of that scheme.
        on_port = plan.listeners.iter().filter(|l| scheme_fits(l)).collect();
    }
    match on_port.as_slice() {
        [one] => Ok(one),
        _ => Err(format!(
            "error: the config has {} listeners; say which one the request arrives on\n  help: --listener NAME (or listener=NAME): {}",
            plan.listeners.len(),
            names()
        )),
    }
}

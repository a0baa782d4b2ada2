//! nginx `server` blocks of `http`, grouped by listen address into Switchyard listeners:
//! the default server's locations become the listener's pool and host-less routes, the
//! other virtual hosts' locations `host` routes before them; longest prefix first, as nginx
//! chooses; certificates of every virtual host of an address go on its listener (SNI).

use super::model::{Config, Guard, Listener, Origin, Route, q};

#[derive(Debug)]
pub struct Listen {
    pub addr: String,
    pub ssl: bool,
    pub default: bool,
    pub proxy_protocol: bool,
    pub at: Origin,
}

#[derive(Debug)]
pub struct Loc {
    pub exact: bool,
    pub path: String,
    pub pool: String,
    /// Access lists, rate limits and body size in force there.
    pub guard: Guard,
    pub at: Origin,
}

#[derive(Debug)]
pub struct Vhost {
    pub listens: Vec<Listen>,
    pub names: Vec<String>,
    pub locs: Vec<Loc>,
    pub redirect_https: Option<Origin>,
    pub cert: Option<(String, String)>,
    pub hsts: Option<String>,
    pub trusted: Vec<String>,
    /// The listener's client keys (timeouts, max_connections_per_client) of this server.
    pub listener_keys: Vec<(String, String)>,
    pub at: Origin,
}

/// Server names as Switchyard `host` values: exact, `*.example.com`; `.example.com` is
/// both; regular expressions and `www.example.*` are not carried.
fn hosts(c: &mut Config, v: &Vhost) -> Vec<String> {
    let mut out = Vec::new();
    for n in &v.names {
        if n.is_empty() || n == "_" || n == "\"\"" {
            continue;
        }
        if n.starts_with('~') || n.ends_with('*') {
            c.note(
                &v.at,
                format!("server_name {n}"),
                "Switchyard matches a host exactly or by a leading *. wildcard",
            );
        } else if let Some(rest) = n.strip_prefix('.') {
            out.push(rest.to_ascii_lowercase());
            out.push(format!("*.{}", rest.to_ascii_lowercase()));
        } else {
            out.push(n.to_ascii_lowercase());
        }
    }
    out
}

/// One listener per listen address, over the server blocks that listen there.
pub fn listeners(c: &mut Config, vhosts: Vec<Vhost>) {
    let mut addrs: Vec<String> = Vec::new();
    for v in &vhosts {
        for l in &v.listens {
            if !addrs.contains(&l.addr) {
                addrs.push(l.addr.clone());
            }
        }
    }
    for addr in addrs {
        let here: Vec<(&Vhost, &Listen)> = vhosts
            .iter()
            .filter_map(|v| v.listens.iter().find(|l| l.addr == addr).map(|l| (v, l)))
            .collect();
        let default = here.iter().position(|(_, l)| l.default).unwrap_or(0);
        let ssl = here.iter().any(|(_, l)| l.ssl);
        let (dv, dl) = here[default];
        let port = addr.rsplit(':').next().unwrap_or(&addr).to_string();
        let proto = if ssl { "https" } else { "http" };
        let mut l = Listener {
            name: c.listener_name(&format!("{proto}-{port}")),
            listen: addr.clone(),
            protocol: proto.into(),
            at: dl.at.clone(),
            ..Listener::default()
        };
        l.extra.extend(dv.listener_keys.iter().cloned());
        // One guard for every location here: the listener's; otherwise each route its own.
        let mut guards = here
            .iter()
            .flat_map(|(v, _)| v.locs.iter().map(|x| &x.guard));
        let first = guards.next().cloned().unwrap_or_default();
        let shared = guards.all(|g| *g == first);
        if shared {
            l.guard = first;
        }
        let own = |g: &Guard| if shared { Guard::default() } else { g.clone() };
        if ssl {
            let mut order: Vec<&Vhost> = vec![dv];
            order.extend(
                here.iter()
                    .map(|(v, _)| *v)
                    .filter(|v| !std::ptr::eq(*v, dv)),
            );
            for v in order {
                match &v.cert {
                    Some((cert, key)) if !cert.is_empty() && !key.is_empty() => {
                        if !l.tls.iter().any(|(c, _)| c == cert) {
                            l.tls.push((cert.clone(), key.clone()));
                        }
                    }
                    _ => c.note(
                        &v.at,
                        "server { listen … ssl; }",
                        "no ssl_certificate and ssl_certificate_key for this server",
                    ),
                }
            }
            l.hsts = dv.hsts.clone();
        }
        if here.iter().any(|(_, l)| l.proxy_protocol) {
            match dv.trusted.is_empty() {
                false => {
                    let list: Vec<String> = dv.trusted.iter().map(|t| q(t)).collect();
                    l.extra.push(("accept_proxy_protocol".into(), "true".into()));
                    l.extra.push(("trusted_proxies".into(), format!("[{}]", list.join(", "))));
                }
                true => c.note(
                    &dl.at,
                    "listen … proxy_protocol",
                    "Switchyard reads PROXY headers only from trusted_proxies: add set_real_ip_from, or accept_proxy_protocol and trusted_proxies by hand",
                ),
            }
        }
        // Redirects: Switchyard's redirect_https is for a whole listener.
        let redirecting: Vec<&Vhost> = here
            .iter()
            .map(|(v, _)| *v)
            .filter(|v| v.redirect_https.is_some())
            .collect();
        if redirecting.len() == here.len() && !ssl {
            l.redirect_https = true;
        } else {
            for v in redirecting {
                c.note(
                    v.redirect_https.as_ref().expect("filtered"),
                    "return 301 https://…",
                    "Switchyard redirects a whole listener to https, not one virtual host of it",
                );
            }
        }
        for (v, _) in &here {
            if std::ptr::eq(*v, dv) {
                continue;
            }
            let names = hosts(c, v);
            if names.is_empty() {
                continue;
            }
            if !v.locs.iter().any(|x| x.path == "/" && !x.exact) && !v.locs.is_empty() {
                c.approx(
                    &v.at,
                    format!("server_name {}", v.names.join(" ")),
                    "requests for these hosts outside their locations go to the default server's routes here (nginx answers them 404)",
                );
            }
            for host in names {
                for loc in sorted(&v.locs) {
                    l.routes.push(Route {
                        host: Some(host.clone()),
                        path_prefix: (loc.path != "/").then(|| loc.path.clone()),
                        pool: loc.pool.clone(),
                        guard: own(&loc.guard),
                        at: loc.at.clone(),
                        ..Route::default()
                    });
                }
            }
        }
        for loc in sorted(&dv.locs) {
            let guard = own(&loc.guard);
            if loc.path == "/" && !loc.exact {
                l.pool = Some(loc.pool.clone());
                if guard.is_empty() {
                    continue;
                }
            }
            // `location /` with its own guard: a route for every path, last.
            l.routes.push(Route {
                path_prefix: Some(loc.path.clone()),
                pool: loc.pool.clone(),
                guard,
                at: loc.at.clone(),
                ..Route::default()
            });
        }
        if l.pool.is_none() && l.routes.is_empty() && !l.redirect_https {
            c.note(
                &dl.at,
                format!("listen {addr}"),
                "no location here proxies anywhere: no listener",
            );
            continue;
        }
        c.listeners.push(l);
    }
}

/// Locations in the order nginx would choose among them: exact ones, then the longest
/// prefix first.
fn sorted(locs: &[Loc]) -> Vec<&Loc> {
    let mut v: Vec<&Loc> = locs.iter().collect();
    v.sort_by_key(|l| (!l.exact, std::cmp::Reverse(l.path.len())));
    v
}

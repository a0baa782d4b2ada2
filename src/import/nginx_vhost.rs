//! nginx `server` blocks of `http`, grouped by listen address into Switchyard listeners:
//! the default server's locations become the listener's pool and host-less routes, the
//! other virtual hosts' locations `host` routes before them; longest prefix first, as nginx
//! chooses; certificates of every virtual host of an address go on its listener (SNI).

use super::model::{Config, Guard, Listener, Origin, Route, q};
use super::nginx_parse::Directive;

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
    /// `^~`: nginx tries no regex location for the paths it takes.
    pub stops_regex: bool,
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
    /// Locations that proxy nowhere: nginx refused or answered their requests itself.
    pub unproxied: Vec<Unproxied>,
    pub at: Origin,
}

/// A location with no `proxy_pass`: its requests were refused (`return 403;`, `deny all;`:
/// carried as a block rule on every route of its server) or answered by nginx itself
/// (`return 200 "ok";`, `root …`: Switchyard does not answer, so they now reach a pool,
/// and the report warns so).
#[derive(Debug)]
pub struct Unproxied {
    /// The paths it takes, as a regex (`^/healthz$`, `\.php$`).
    pub regex: String,
    /// The path of a prefix or exact location (none for a regex one).
    pub literal: Option<(String, bool)>,
    /// A `^~` prefix location: nginx tries no regex location after it.
    pub stops_regex: bool,
    /// The status nginx refused with (`403`, `404`, `444`), if it refused.
    pub refused: Option<String>,
    /// The directive that refused or answered (or the location), and where.
    pub directive: String,
    pub at: Origin,
}

impl Unproxied {
    /// What location `d` (`modifier path`) does with its requests, given its `return` and
    /// its access lists; `None` for a named location, or one that only holds others.
    pub fn of(
        d: &Directive,
        modifier: &str,
        path: &str,
        answer: Option<&Directive>,
        guard: &Guard,
        nested: bool,
    ) -> Option<Unproxied> {
        if path.starts_with('@') {
            return None;
        }
        let (regex, literal) = match modifier {
            "=" => (
                format!("^{}$", regex::escape(path)),
                Some((path.into(), true)),
            ),
            "~" => (path.to_string(), None),
            "~*" => (format!("(?i){path}"), None),
            _ => (
                format!("^{}", regex::escape(path)),
                Some((path.into(), false)),
            ),
        };
        let code = answer.and_then(|a| a.args.first()).map(String::as_str);
        let denies_all = guard.allow.is_empty() && guard.deny.iter().any(|d| d == "0.0.0.0/0");
        let (refused, by) = match code {
            Some(n) if n == "444" || n.starts_with('4') || n.starts_with('5') => {
                (Some(n.to_string()), answer)
            }
            Some(_) => (None, answer),
            None if denies_all => (Some("403".into()), None),
            None if nested => return None,
            None => (None, None),
        };
        Some(Unproxied {
            regex,
            literal,
            stops_regex: modifier == "^~",
            refused,
            directive: by.map_or_else(|| d.text(), |a| format!("{} {}", d.text(), a.text())),
            at: by.map_or_else(|| d.at.clone(), |a| a.at.clone()),
        })
    }

    /// The status a block rule answers as nginx refused: its `return` code when it is one
    /// a block rule takes (400 to 599, but not 444, nginx's close without an answer).
    fn status(&self) -> Option<&str> {
        let code = self.refused.as_deref()?;
        let n: u16 = code.parse().ok()?;
        ((400..=599).contains(&n) && n != 444).then_some(code)
    }

    /// Where nginx's choice of a location puts this one: `=` exact first, then `^~`
    /// prefixes longest first, then regexes in file order (a stable sort keeps it), then
    /// the other prefixes longest first. (A `^~` prefix with a longer plain prefix under it
    /// is the one order this cannot say: nginx takes the longer one, then its regexes.)
    fn precedence(&self) -> (u8, std::cmp::Reverse<usize>) {
        let rank = match &self.literal {
            Some((_, true)) => 0,
            Some(_) if self.stops_regex => 1,
            None => 2,
            Some(_) => 3,
        };
        let len = self.literal.as_ref().map_or(0, |(p, _)| p.len());
        (rank, std::cmp::Reverse(len))
    }

    /// Whether Switchyard's regex engine takes the location's regex as written.
    fn carried(&self) -> bool {
        regex::Regex::new(&self.regex).is_ok()
    }
}

/// The block rules a server's refusing locations make (added to each of its locations'
/// guards), and the report: an approximated status, or a warning naming the pool that
/// now gets requests nginx refused or answered itself.
fn unproxied(c: &mut Config, vhosts: &mut [Vhost]) {
    let several = vhosts.len() > 1;
    for v in vhosts.iter_mut() {
        // Without `location /`, requests for this server's hosts outside its locations go to
        // the default server's routes (unless it is that server), which hold no block.
        let no_root = several && !v.locs.iter().any(|x| x.path == "/" && !x.exact);
        for u in &v.unproxied {
            let to = destination(v, u);
            let why = match (u.carried(), no_root) {
                (false, _) => Some("Switchyard's regex syntax does not take this regex"),
                (true, _) if v.locs.is_empty() => {
                    Some("no location of this server proxies, so it has no route to hold one")
                }
                (true, true) => Some(
                    "this server has no `location /`: its hosts' other requests go to the default server's routes, which do not hold this block",
                ),
                (true, false) => None,
            };
            match &u.refused {
                Some(_) if why.is_some() => c.warn(
                    &u.at,
                    &u.directive,
                    format!(
                        "nginx refused these requests; they WILL now be proxied to {to}: no block rule carries it ({}); write a [[listener.block]] by hand (docs/security.md#block-rules)",
                        why.unwrap_or_default()
                    ),
                ),
                Some(code) if u.status() != Some(code.as_str()) => c.approx(
                    &u.at,
                    &u.directive,
                    format!(
                        "carried as a block rule (path_regex = {}) on this server's routes: refused with 403, not {code}{}",
                        q(&u.regex),
                        if code == "444" {
                            " (nginx closes the connection without an answer)"
                        } else {
                            ""
                        }
                    ),
                ),
                Some(_) => {}
                None => c.warn(
                    &u.at,
                    &u.directive,
                    format!(
                        "nginx answered these requests itself; Switchyard only proxies, so they WILL now be proxied to {to}; to refuse them instead, add [[listener.block]] path_regex = {}",
                        q(&u.regex)
                    ),
                ),
            }
        }
        // Each refusal on the routes whose requests nginx would have refused with it: not
        // a longer prefix location under a refused prefix (nginx's longest prefix wins),
        // and a regex refusal not on `=` or `^~` locations (nginx tries no regex there).
        let mut refusals: Vec<&Unproxied> = v
            .unproxied
            .iter()
            .filter(|u| u.refused.is_some() && u.carried())
            .collect();
        // The first block rule that matches answers (protect.rs): in the order nginx picks
        // a location, so that overlapping ones answer nginx's status.
        refusals.sort_by_key(|u| u.precedence());
        for loc in &mut v.locs {
            for u in &refusals {
                let applies = match &u.literal {
                    Some((p, false)) => {
                        !(loc.path.len() > p.len() && loc.path.starts_with(p.as_str()))
                    }
                    Some((_, true)) => true,
                    None => !loc.exact && !loc.stops_regex,
                };
                if applies {
                    let status = u.status().and_then(|n| n.parse().ok()).unwrap_or(403);
                    loc.guard.blocks.push((u.regex.clone(), status));
                }
            }
        }
    }
}

/// Where the requests of `u` go now: the pool of the server's location that takes its
/// path, or the pools its paths may reach.
fn destination(v: &Vhost, u: &Unproxied) -> String {
    let pools = |it: &mut dyn Iterator<Item = &Loc>| {
        let mut names: Vec<String> = Vec::new();
        for l in it {
            if !names.contains(&l.pool) {
                names.push(l.pool.clone());
            }
        }
        names
    };
    let names = match &u.literal {
        Some((path, _)) => pools(
            &mut sorted(&v.locs)
                .into_iter()
                .filter(|l| {
                    if l.exact {
                        l.path == *path
                    } else {
                        path.starts_with(&l.path)
                    }
                })
                .take(1),
        ),
        None => pools(&mut v.locs.iter()),
    };
    match names.as_slice() {
        [] => "the default server's routes on this address".into(),
        [one] => format!("pool {}", q(one)),
        many => format!(
            "the pool of the route their path matches ({})",
            many.iter().map(|n| q(n)).collect::<Vec<_>>().join(", ")
        ),
    }
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
pub fn listeners(c: &mut Config, mut vhosts: Vec<Vhost>) {
    unproxied(c, &mut vhosts);
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

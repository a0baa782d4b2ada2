//! nginx's `stream { }`: its `upstream` blocks become L4 pools, each `server` a tcp (or,
//! with `listen … udp`, a udp) listener per address.

use std::collections::HashMap;

use super::model::{Config, Listener, Pool, q};
use super::nginx_guard::{self, Front, early_first};
use super::nginx_parse::Directive;
use super::nginx_upstream::{self, listen_addr, time};

pub fn stream(c: &mut Config, block: &[Directive]) {
    let mut upstreams: HashMap<String, Pool> = HashMap::new();
    let mut order = Vec::new();
    for d in block.iter().filter(|d| d.name == "upstream") {
        let name = d.args.first().cloned().unwrap_or_default();
        // http and stream upstreams live in two namespaces in nginx, one in Switchyard.
        let pool_name = c.pool_name(&name);
        let p = nginx_upstream::upstream(c, d, &pool_name, true);
        order.push(name.clone());
        upstreams.insert(name, p);
    }
    let mut connect_default = None;
    let mut timeout_default = None;
    let mut front_default = Front::default();
    for d in early_first(block)
        .into_iter()
        .filter(|d| d.name != "server" && d.name != "upstream")
    {
        if stream_guard(c, d, &mut front_default) {
            continue;
        }
        match d.name.as_str() {
            "proxy_connect_timeout" => connect_default = d.args.first().and_then(|t| time(t)),
            "proxy_timeout" => timeout_default = d.args.first().and_then(|t| time(t)),
            _ => c.note(
                &d.at,
                d.text(),
                "no Switchyard equivalent for tcp/udp listeners",
            ),
        }
    }
    let mut used: Vec<String> = Vec::new();
    for d in block.iter().filter(|d| d.name == "server") {
        let mut connect = connect_default.clone();
        let mut timeout = timeout_default.clone();
        let mut target = None;
        let mut listens = Vec::new();
        let mut proxy_protocol = false;
        let mut front = front_default.clone();
        front.enter();
        for x in early_first(d.block.as_deref().unwrap_or_default()) {
            let first = x.args.first().map(String::as_str).unwrap_or("");
            if stream_guard(c, x, &mut front) {
                continue;
            }
            match x.name.as_str() {
                "listen" => listens.push(x),
                "proxy_pass" => target = Some(x),
                "proxy_connect_timeout" => connect = time(first),
                "proxy_timeout" => timeout = time(first),
                "proxy_protocol" => proxy_protocol = first == "on",
                "proxy_next_upstream" | "proxy_next_upstream_tries" => c.note(
                    &x.at,
                    x.text(),
                    "a tcp listener tries the next server when a connect fails (always on, attempts not set)",
                ),
                "ssl_preread" | "proxy_ssl" | "ssl_certificate" | "ssl_certificate_key" => c.note(
                    &x.at,
                    x.text(),
                    "TLS at L4 (termination, SNI preread) is not supported: use an https listener",
                ),
                _ => c.note(&x.at, x.text(), "no Switchyard equivalent for tcp/udp listeners"),
            }
        }
        let Some(pp) = target else {
            c.note(&d.at, d.text(), "a stream server without proxy_pass");
            continue;
        };
        let dest = pp.args.first().map(String::as_str).unwrap_or("");
        let mut pool = match upstreams.get(dest) {
            Some(p) => p.clone(),
            None if dest.contains('$') => {
                c.note(
                    &pp.at,
                    pp.text(),
                    "proxy_pass to a variable has no equivalent",
                );
                continue;
            }
            None => match nginx_upstream::single(c, dest, &pp.at, true) {
                Some(mut p) => {
                    p.name = c.pool_name(&p.name);
                    p
                }
                None => continue,
            },
        };
        if connect.is_some() {
            pool.connect_timeout = connect.clone();
        }
        // One pool per upstream: a second server with other settings gets its own.
        let name = if used.contains(&pool.name) {
            let existing = c.pools.iter().find(|p| p.name == pool.name);
            if existing.is_some_and(|e| e.connect_timeout == pool.connect_timeout) {
                pool.name.clone()
            } else {
                let n = c.pool_name(&pool.name);
                pool.name = n.clone();
                pool.at = pp.at.clone();
                c.pools.push(pool);
                n
            }
        } else {
            used.push(pool.name.clone());
            let n = pool.name.clone();
            c.pools.push(pool);
            n
        };
        for x in listens {
            let raw = x.args.first().map(String::as_str).unwrap_or("");
            if raw.starts_with("unix:") {
                c.note(
                    &x.at,
                    x.text(),
                    "listening on a UNIX socket is not supported",
                );
                continue;
            }
            let udp = x.args.iter().any(|a| a == "udp");
            let addr = listen_addr(raw);
            let proto = if udp { "udp" } else { "tcp" };
            let port = addr.rsplit(':').next().unwrap_or(&addr).to_string();
            let mut l = Listener {
                name: c.listener_name(&format!("{proto}-{port}")),
                listen: addr,
                protocol: proto.into(),
                pool: Some(name.clone()),
                at: x.at.clone(),
                ..Listener::default()
            };
            l.guard.allow = front.guard.allow.clone();
            l.guard.deny = front.guard.deny.clone();
            if !udp {
                l.extra.extend(front.listener.iter().cloned());
            }
            if let Some(t) = &timeout {
                let key = if udp {
                    "session_timeout"
                } else {
                    "idle_timeout"
                };
                l.extra.push((key.into(), q(t)));
            }
            if proxy_protocol {
                if udp {
                    c.note(
                        &x.at,
                        "proxy_protocol on",
                        "Switchyard sends PROXY headers over tcp only",
                    );
                } else {
                    l.extra.push(("proxy_protocol".into(), q("v1")));
                }
            }
            for opt in &x.args[1..] {
                if opt != "udp" && opt != "reuseport" {
                    c.note(&x.at, opt, "a listen option Switchyard does not set");
                }
            }
            c.listeners.push(l);
        }
    }
    for name in order {
        let p = &upstreams[&name];
        if !c.pools.iter().any(|x| x.name == p.name) {
            c.pools.push(p.clone());
        }
    }
}

/// `allow`, `deny`, `limit_conn` (tcp: max_connections_per_client) and `access_log` of a
/// stream block or server; `false` for other directives.
fn stream_guard(c: &mut Config, d: &Directive, f: &mut Front) -> bool {
    matches!(
        d.name.as_str(),
        "allow" | "deny" | "limit_conn_zone" | "limit_conn" | "access_log" | "log_format"
    ) && nginx_guard::setting(c, d, f, "a stream server")
}

//! nginx `upstream { }` blocks (of `http` and of `stream`) as Switchyard pools: the
//! `server` lines with their options, the algorithm directives, keep-alive.

use super::model::{Config, Origin, Pool, Server, Sticky, duration};
use super::nginx_parse::Directive;

/// An nginx time (`10s`, `1m`, a bare number of seconds) in Switchyard's spelling.
pub fn time(s: &str) -> Option<String> {
    duration(s, "s")
}

/// The Switchyard `hash_key` for an nginx hash key expression, if there is one.
pub fn hash_key(key: &str, l4: bool) -> Option<String> {
    if l4 {
        return matches!(key, "$remote_addr" | "$binary_remote_addr").then(|| "client_ip".into());
    }
    Some(match key {
        "$remote_addr" | "$binary_remote_addr" => "client_ip".into(),
        "$request_uri" => "uri".into(),
        k => {
            let var = k.strip_prefix('$')?;
            if !var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return None;
            }
            if let Some(h) = var.strip_prefix("http_") {
                format!("header:{}", h.replace('_', "-"))
            } else if let Some(n) = var.strip_prefix("cookie_") {
                format!("cookie:{n}")
            } else if let Some(n) = var.strip_prefix("arg_") {
                format!("query:{n}")
            } else {
                return None;
            }
        }
    })
}

/// An nginx server address (`10.0.0.1`, `host:8080`, `[::1]:80`) as `host:port`; nginx's
/// default port is 80. `None` for a UNIX socket.
pub fn server_addr(a: &str) -> Option<String> {
    if a.starts_with("unix:") {
        return None;
    }
    if a.starts_with('[') {
        return Some(if a.contains("]:") {
            a.to_string()
        } else {
            format!("{a}:80")
        });
    }
    Some(match a.rsplit_once(':') {
        Some((_, port)) if port.chars().all(|c| c.is_ascii_digit()) && !port.is_empty() => {
            a.to_string()
        }
        _ => format!("{a}:80"),
    })
}

/// `resolver ADDRESS … [valid=TIME] [ipv4=off] [ipv6=off]`: the DNS servers a pool asks.
pub fn resolver(c: &mut Config, x: &Directive, p: &mut Pool) {
    p.resolver.clear();
    for a in &x.args {
        match a.split_once('=') {
            Some(("valid", v)) => {
                p.resolver_valid = time(v);
                c.note(
                    &x.at,
                    a,
                    "nginx uses valid= instead of the TTL; Switchyard follows a shorter TTL and uses resolver_valid as the longest",
                );
            }
            Some(_) => c.note(
                &x.at,
                a,
                "not carried: every A and AAAA address of a name is a server",
            ),
            None => {
                let ip = a.trim_start_matches('[').split(']').next().unwrap_or(a);
                let literal = a.parse::<std::net::SocketAddr>().is_ok()
                    || ip.parse::<std::net::IpAddr>().is_ok();
                if literal {
                    p.resolver.push(a.clone());
                } else {
                    c.note(
                        &x.at,
                        a,
                        "a resolver is given by its IP address in Switchyard (a name would need a resolver itself)",
                    );
                }
            }
        }
    }
}

/// One `upstream NAME { … }` block as a pool named `name`.
pub fn upstream(c: &mut Config, d: &Directive, name: &str, l4: bool) -> Pool {
    let mut p = Pool {
        name: name.to_string(),
        l4,
        at: d.at.clone(),
        ..Pool::default()
    };
    let mut queued = false;
    for x in d.block.as_deref().unwrap_or_default() {
        let a = &x.args;
        match x.name.as_str() {
            "server" => {
                if let Some(s) = server(c, x, l4) {
                    p.servers.push(s);
                }
            }
            "least_conn" => p.algorithm = Some("least_conn".into()),
            "ip_hash" if l4 => c.note(&x.at, x.text(), "ip_hash is http only in nginx"),
            "ip_hash" => p.algorithm = Some("ip_hash".into()),
            "hash" => match a.first().and_then(|k| hash_key(k, l4)) {
                Some(k) => {
                    p.algorithm = Some("hash".into());
                    p.hash_key = Some(k);
                    if a.get(1).map(String::as_str) != Some("consistent") {
                        c.approx(
                            &x.at,
                            x.text(),
                            "without `consistent` nginx hashes modulo the servers (most keys move when one is added); Switchyard's hash is always a consistent ring",
                        );
                    }
                }
                None => c.note(
                    &x.at,
                    x.text(),
                    if l4 {
                        "a tcp/udp pool hashes only the client address ($remote_addr); round_robin is used"
                    } else {
                        "Switchyard hashes one of: $remote_addr, $request_uri, $http_NAME, $cookie_NAME, $arg_NAME; round_robin is used"
                    },
                ),
            },
            "random" => match a.first().map(String::as_str) {
                None => p.algorithm = Some("random".into()),
                Some("two") => {
                    p.algorithm = Some("p2c".into());
                    match a.get(1).map(String::as_str) {
                        None | Some("least_conn") => {}
                        Some(other) => c.approx(
                            &x.at,
                            x.text(),
                            format!("p2c compares requests in flight (least_conn), not {other}"),
                        ),
                    }
                }
                Some(_) => c.note(&x.at, x.text(), "not an nginx form of random; round_robin is used"),
            },
            "least_time" => {
                p.algorithm = Some("least_time".into());
                if a.first().map(String::as_str) != Some("header") {
                    c.approx(
                        &x.at,
                        x.text(),
                        "Switchyard's least_time measures the time to the response head (nginx's `header`)",
                    );
                }
            }
            "keepalive" if !l4 => p.keepalive = a.first().and_then(|n| n.parse().ok()),
            "keepalive_timeout" if !l4 => p.keepalive_timeout = a.first().and_then(|t| time(t)),
            "keepalive_requests" | "keepalive_time" => c.note(
                &x.at,
                x.text(),
                "an upstream connection is reused until keepalive_timeout; no request-count or lifetime limit",
            ),
            "zone" => c.note(
                &x.at,
                x.text(),
                "not needed: Switchyard's workers share each pool's state in one process",
            ),
            "sticky" if !l4 => sticky(c, x, &mut p),
            "ntlm" => c.note(&x.at, x.text(), "NTLM connection binding is not supported"),
            // NGINX Plus: `queue N [timeout=T]` (HTTP only, as Switchyard's queue).
            "queue" if !l4 => {
                queued = true;
                match a.first().and_then(|n| n.parse::<u32>().ok()) {
                    Some(n) if n <= 1_000_000 => p.queue_size = Some(n),
                    _ => c.note(&x.at, x.text(), "Switchyard's queue_size is 0 to 1000000"),
                }
                for o in &a[1.min(a.len())..] {
                    match o.strip_prefix("timeout=").and_then(time) {
                        Some(t) => p.queue_timeout = Some(t),
                        None => c.note(&x.at, o, "not a queue option Switchyard knows"),
                    }
                }
            }
            "queue" => c.note(
                &x.at,
                x.text(),
                "a tcp connection is not queued: with every server at max_conns it is closed",
            ),
            "resolver" => resolver(c, x, &mut p),
            "resolver_timeout" => p.resolver_timeout = a.first().and_then(|t| time(t)),
            _ => c.note(&x.at, x.text(), "no Switchyard equivalent in a pool"),
        }
    }
    // Without `queue`, nginx answers 502 at once when every server is at max_conns.
    if !queued && !l4 && p.servers.iter().any(|s| s.max_conns.is_some()) {
        p.queue_size = Some(0);
    }
    for s in p.servers.iter().filter(|_| !l4) {
        if let Some(n) = s.max_conns {
            let why = if queued {
                "a request that no server can take before the queue's timeout gets 503 with Retry-After (nginx: 502)"
            } else {
                "a request that no server can take gets 503 with Retry-After at once (nginx: 502); queue_size = 0 lets none wait, as nginx without queue"
            };
            c.approx(&s.at, format!("max_conns={n}"), why);
        }
    }
    p
}

fn server(c: &mut Config, x: &Directive, l4: bool) -> Option<Server> {
    let Some(addr) = x.args.first() else {
        c.note(&x.at, x.text(), "a server line without an address");
        return None;
    };
    let Some(addr) = server_addr(addr) else {
        c.note(
            &x.at,
            x.text(),
            "UNIX-socket servers are not supported: serve on 127.0.0.1:PORT and list that",
        );
        return None;
    };
    let mut s = Server {
        addr,
        at: x.at.clone(),
        ..Server::default()
    };
    for opt in &x.args[1..] {
        let (k, v) = opt.split_once('=').unwrap_or((opt, ""));
        match k {
            "weight" => match v.parse::<u32>() {
                Ok(w) if (1..=1000).contains(&w) => s.weight = Some(w),
                _ => c.note(&x.at, opt, "Switchyard weights are 1 to 1000"),
            },
            "max_fails" => s.max_fails = v.parse().ok(),
            "fail_timeout" => s.fail_timeout = time(v),
            "slow_start" => s.slow_start = time(v),
            "backup" => s.backup = true,
            "down" => s.down = true,
            "max_conns" => match v.parse::<u32>() {
                Ok(0) => {}
                Ok(n) => s.max_conns = Some(n),
                Err(_) => c.note(&x.at, opt, "not a number"),
            },
            "resolve" => s.resolve = true,
            "route" | "service" | "drain" => c.note(&x.at, opt, "no Switchyard equivalent"),
            _ => c.note(&x.at, opt, "unknown server option"),
        }
    }
    let _ = l4;
    Some(s)
}

/// nginx Plus `sticky cookie NAME [expires=T] …` / `sticky learn …`.
fn sticky(c: &mut Config, x: &Directive, p: &mut Pool) {
    let a = &x.args;
    match a.first().map(String::as_str) {
        Some("cookie") => {
            let mut s = Sticky {
                mode: "cookie".into(),
                name: a.get(1).cloned(),
                ..Sticky::default()
            };
            for opt in &a[2.min(a.len())..] {
                match opt.split_once('=') {
                    Some(("expires", v)) if v != "max" => s.ttl = time(v),
                    _ => c.note(
                        &x.at,
                        opt,
                        "Switchyard's sticky cookie is Path=/, HttpOnly, SameSite=Lax (Secure over TLS), with Max-Age = ttl",
                    ),
                }
            }
            p.sticky = Some(s);
        }
        Some("learn") => {
            let name = a
                .iter()
                .find_map(|o| o.strip_prefix("lookup=$cookie_"))
                .map(str::to_string);
            match name {
                Some(n) => {
                    p.sticky = Some(Sticky {
                        mode: "app_cookie".into(),
                        name: Some(n),
                        ..Sticky::default()
                    })
                }
                None => c.note(
                    &x.at,
                    x.text(),
                    "Switchyard learns an application cookie (lookup=$cookie_NAME) only",
                ),
            }
        }
        _ => c.note(
            &x.at,
            x.text(),
            "only sticky cookie and sticky learn have an equivalent",
        ),
    }
}

/// A pool of one server for `proxy_pass http://ADDRESS` (no upstream block), named after
/// the address; `None` (and a note) for a UNIX socket.
pub fn single(c: &mut Config, addr: &str, at: &Origin, l4: bool) -> Option<Pool> {
    let Some(server) = server_addr(addr) else {
        c.note(
            at,
            format!("proxy_pass {addr}"),
            "UNIX-socket servers are not supported: serve on 127.0.0.1:PORT",
        );
        return None;
    };
    Some(Pool {
        name: server.clone(),
        l4,
        servers: vec![Server {
            addr: server,
            at: at.clone(),
            ..Server::default()
        }],
        at: at.clone(),
        ..Pool::default()
    })
}

/// nginx `listen` addresses as Switchyard writes them: `80` (every IPv4 address), `ip:port`,
/// `[v6]:port`; nginx's default port is 80.
pub fn listen_addr(raw: &str) -> String {
    if raw.chars().all(|c| c.is_ascii_digit()) {
        return raw.to_string();
    }
    if let Some(port) = raw.strip_prefix("*:") {
        return port.to_string();
    }
    if raw.starts_with('[') {
        return if raw.contains("]:") {
            raw.to_string()
        } else {
            format!("{raw}:80")
        };
    }
    if raw.contains(':') {
        raw.to_string()
    } else {
        format!("{raw}:80")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_keys() {
        assert_eq!(server_addr("10.0.0.1").as_deref(), Some("10.0.0.1:80"));
        assert_eq!(
            server_addr("b.example.com:8080").as_deref(),
            Some("b.example.com:8080")
        );
        assert_eq!(server_addr("[::1]").as_deref(), Some("[::1]:80"));
        assert_eq!(server_addr("unix:/tmp/x"), None);
        assert_eq!(hash_key("$request_uri", false).as_deref(), Some("uri"));
        assert_eq!(
            hash_key("$http_x_user", false).as_deref(),
            Some("header:x-user")
        );
        assert_eq!(
            hash_key("$cookie_sid", false).as_deref(),
            Some("cookie:sid")
        );
        assert_eq!(hash_key("$host$uri", false), None);
        assert_eq!(hash_key("$request_uri", true), None);
    }

    #[test]
    fn listen_addresses() {
        assert_eq!(listen_addr("80"), "80");
        assert_eq!(listen_addr("*:8080"), "8080");
        assert_eq!(listen_addr("127.0.0.1"), "127.0.0.1:80");
        assert_eq!(listen_addr("[::]:443"), "[::]:443");
        assert_eq!(listen_addr("[::1]"), "[::1]:80");
    }
}

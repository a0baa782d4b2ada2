//! nginx's `http { }`: `upstream` blocks become pools, `server` blocks become listeners
//! (one per address; virtual hosts become `host` routes), `location`s become routes (longest
//! prefix first, as nginx matches), and the proxy settings a location inherits (timeouts,
//! `proxy_next_upstream`, `Host`, upstream TLS) become its pool's settings. Where two
//! locations send to one upstream with different settings, each gets its own pool over the
//! same servers (Switchyard's settings are per pool). `stream { }` is in `nginx_stream.rs`.

use std::collections::HashMap;

use super::model::{Config, Origin, Pool, Retry};
use super::nginx_guard::{self, Front, conf_path, early_first};
use super::nginx_parse::Directive;
use super::nginx_stream;
use super::nginx_upstream::{self, listen_addr, time};
use super::nginx_vhost::{Listen, Loc, Unproxied, Vhost, listeners};

/// The top level of an nginx configuration.
pub fn import(list: &[Directive], c: &mut Config) {
    for d in list {
        match d.name.as_str() {
            "http" => http(c, d.block.as_deref().unwrap_or_default()),
            "stream" => nginx_stream::stream(c, d.block.as_deref().unwrap_or_default()),
            "worker_processes" => match d.args.first().map(|a| a.parse::<u64>()) {
                Some(Ok(n)) if n > 0 => c.workers = Some(n),
                _ => {} // `auto`: Switchyard's default is one worker per core too
            },
            "events" => {
                for x in d.block.as_deref().unwrap_or_default() {
                    c.note(
                        &x.at,
                        x.text(),
                        "no equivalent: Switchyard has no global connection limit (each listener has its max_connections)",
                    );
                }
            }
            "user" | "daemon" | "pid" | "master_process" | "worker_rlimit_nofile"
            | "worker_cpu_affinity" | "worker_priority" | "working_directory" | "env"
            | "lock_file" | "pcre_jit" | "thread_pool" | "timer_resolution" => c.note(
                &d.at,
                d.text(),
                "a process setting: Switchyard runs in the foreground under its service manager and raises its open-file limit itself",
            ),
            "error_log" => c.note(
                &d.at,
                d.text(),
                "Switchyard logs to standard error (--log-level sets the level)",
            ),
            "load_module" => c.note(&d.at, d.text(), "no modules: what Switchyard does is built in"),
            "mail" => c.note(&d.at, d.text(), "mail proxying is not supported"),
            _ => c.note(&d.at, d.text(), "no Switchyard equivalent at the top level"),
        }
    }
}

/// Settings a `location` inherits from its `server` and `http`.
#[derive(Debug, Clone, Default, PartialEq)]
struct Inherit {
    connect: Option<String>,
    read: Option<String>,
    send: Option<String>,
    client_body: Option<String>,
    retry: Option<Retry>,
    host_upstream: bool,
    /// `proxy_ssl_*`: pieces of the pool's `tls` table.
    ssl: Vec<String>,
    ssl_verify: bool,
    cert: Option<(String, String)>,
    hsts: Option<String>,
    trusted: Vec<String>,
    /// Access lists, rate limits, body size and the listener's client keys.
    front: Front,
}

struct Http {
    upstreams: HashMap<String, Pool>,
    /// (template pool name, its settings) → the pool that carries them.
    variants: Vec<(String, Inherit, String)>,
}

fn http(c: &mut Config, block: &[Directive]) {
    let mut h = Http {
        upstreams: HashMap::new(),
        variants: Vec::new(),
    };
    let mut order = Vec::new();
    for d in block.iter().filter(|d| d.name == "upstream") {
        let name = d.args.first().cloned().unwrap_or_default();
        let mut p = nginx_upstream::upstream(c, d, &name, false);
        // The http block's resolver serves the upstreams with `resolve` servers that name
        // none (nginx resolves the other names with the C library when it loads).
        let resolving = p.servers.iter().any(|s| s.resolve);
        for r in block
            .iter()
            .filter(|r| resolving && r.name.starts_with("resolver"))
        {
            match r.name.as_str() {
                "resolver" if p.resolver.is_empty() => {
                    nginx_upstream::resolver(c, r, &mut p);
                }
                "resolver_timeout" if p.resolver_timeout.is_none() => {
                    p.resolver_timeout = r.args.first().and_then(|t| nginx_upstream::time(t));
                }
                _ => {}
            }
        }
        order.push(name.clone());
        h.upstreams.insert(name, p);
    }
    let mut inherit = Inherit::default();
    for d in early_first(block)
        .into_iter()
        .filter(|d| d.name != "server" && d.name != "upstream" && !d.name.starts_with("resolver"))
    {
        setting(c, d, &mut inherit, "http");
    }
    let mut vhosts = Vec::new();
    for d in block.iter().filter(|d| d.name == "server") {
        vhosts.push(server(c, &mut h, d, &inherit));
    }
    listeners(c, vhosts);
    nginx_guard::shared_zones(c);
    // Upstreams no location sends to are kept, as they were in nginx.
    for name in order {
        if !c.pools.iter().any(|p| p.name == name) && !h.variants.iter().any(|(t, _, _)| *t == name)
        {
            let p = h.upstreams.remove(&name).expect("upstream read above");
            c.pools.push(p);
        }
    }
}

/// Apply a directive that sets something a location inherits; anything else is noted.
fn setting(c: &mut Config, d: &Directive, i: &mut Inherit, ctx: &str) {
    if nginx_guard::setting(c, d, &mut i.front, ctx) {
        return;
    }
    let a = &d.args;
    let first = a.first().map(String::as_str).unwrap_or("");
    match d.name.as_str() {
        "proxy_connect_timeout" => i.connect = time(first),
        "proxy_read_timeout" => i.read = time(first),
        "proxy_send_timeout" => i.send = time(first),
        "client_body_timeout" => i.client_body = time(first),
        "proxy_next_upstream" => i.retry = Some(next_upstream(c, d, i.retry.take())),
        "proxy_next_upstream_tries" => {
            let mut r = i.retry.take().unwrap_or_default();
            match first.parse::<u32>() {
                Ok(0) => c.note(
                    &d.at,
                    d.text(),
                    "0 is unlimited in nginx; Switchyard's default of 2 more tries is kept",
                ),
                Ok(n) => r.attempts = Some((n - 1).min(20)),
                Err(_) => c.note(&d.at, d.text(), "not a number"),
            }
            i.retry = Some(r);
        }
        "proxy_next_upstream_timeout" => c.note(
            &d.at,
            d.text(),
            "no limit on the time spent failing over; attempts and the retry budget bound it",
        ),
        "proxy_set_header" => header(c, d, i),
        "proxy_http_version" if first == "1.1" => {}
        "proxy_pass_request_headers" | "proxy_pass_request_body" if first == "on" => {}
        "proxy_ssl_verify" => i.ssl_verify = first == "on",
        "proxy_ssl_trusted_certificate" => i.ssl.push(format!("ca = {}", super::model::q(first))),
        "proxy_ssl_name" => i.ssl.push(format!("server_name = {}", super::model::q(first))),
        "proxy_ssl_server_name" => {} // Switchyard sends SNI whenever the name is not an address
        "proxy_ssl_certificate" => i.ssl.push(format!("client_cert = {}", super::model::q(first))),
        "proxy_ssl_certificate_key" => {
            i.ssl.push(format!("client_key = {}", super::model::q(first)))
        }
        // Relative paths are relative to the directory of the main file (nginx's conf prefix).
        "ssl_certificate" => {
            let key = i.cert.take().map(|(_, k)| k).unwrap_or_default();
            i.cert = Some((conf_path(c, first), key));
        }
        "ssl_certificate_key" => {
            let cert = i.cert.take().map(|(cert, _)| cert).unwrap_or_default();
            i.cert = Some((cert, conf_path(c, first)));
        }
        "ssl_protocols" | "ssl_ciphers" | "ssl_prefer_server_ciphers" | "ssl_session_cache"
        | "ssl_session_timeout" | "ssl_session_tickets" | "ssl_dhparam" | "ssl_ecdh_curve"
        | "ssl_stapling" | "ssl_stapling_verify" | "ssl_trusted_certificate"
        | "ssl_conf_command" | "ssl_early_data" => c.note(
            &d.at,
            d.text(),
            "TLS is rustls with its safe defaults: TLS 1.2 and 1.3, modern ciphers, session resumption",
        ),
        "ssl" if first == "on" => {}
        "add_header" if first.eq_ignore_ascii_case("Strict-Transport-Security") => {
            let value = a.get(1).map(String::as_str).unwrap_or("");
            let age = value
                .split(';')
                .find_map(|p| p.trim().strip_prefix("max-age="))
                .and_then(|s| s.trim().parse::<u64>().ok());
            match age {
                Some(n) => {
                    i.hsts = Some(format!("{n}s"));
                    if value.contains("includeSubDomains") || value.contains("preload") {
                        c.approx(
                            &d.at,
                            d.text(),
                            "Switchyard's hsts sends max-age only (no includeSubDomains, preload)",
                        );
                    }
                }
                None => c.note(&d.at, d.text(), "no max-age in the header"),
            }
        }
        "set_real_ip_from" => i.trusted.push(first.to_string()),
        "real_ip_header" if first == "proxy_protocol" => {}
        "error_log" => c.note(
            &d.at,
            d.text(),
            "Switchyard writes its own messages to standard error (--log-level sets the level)",
        ),
        "include" => {}
        _ => c.note(&d.at, d.text(), reason(&d.name, ctx)),
    }
}

/// Why a directive with no Switchyard key is not carried.
fn reason(name: &str, ctx: &str) -> String {
    let r = match name {
        n if n.starts_with("proxy_cache") || n == "proxy_no_cache" || n == "proxy_store" => {
            "Switchyard does not cache responses"
        }
        n if n.starts_with("proxy_buffer")
            || n == "proxy_busy_buffers_size"
            || n == "proxy_max_temp_file_size"
            || n == "proxy_temp_path"
            || n.ends_with("_temp_path") =>
        {
            "Switchyard streams bodies without buffering them to disk"
        }
        n if n.starts_with("gzip") || n.starts_with("brotli") => {
            "Switchyard does not compress responses"
        }
        "root"
        | "alias"
        | "index"
        | "try_files"
        | "autoindex"
        | "sendfile"
        | "tcp_nopush"
        | "tcp_nodelay"
        | "types"
        | "default_type"
        | "types_hash_max_size"
        | "expires"
        | "etag"
        | "server_tokens"
        | "charset"
        | "error_page"
        | "aio"
        | "directio" => "Switchyard does not serve files or write pages itself: it only proxies",
        "reset_timedout_connection" | "lingering_close" | "lingering_time" => {
            "Switchyard closes timed-out and refused connections itself"
        }
        "limit_rate" | "limit_rate_after" => {
            "Switchyard does not limit a response's bandwidth (its rate limits count requests: limit_req)"
        }
        "limit_conn_status" => {
            "Switchyard answers 503 over max_connections_per_client (then closes the connection)"
        }
        "auth_basic" | "auth_basic_user_file" | "auth_request" | "auth_jwt" => {
            "Switchyard does not authenticate clients (it has allow/deny, block rules and rate limits)"
        }
        "rewrite" | "if" | "set" | "map" | "return" | "break" | "sub_filter" | "proxy_redirect" => {
            "Switchyard does not rewrite requests or responses"
        }
        "add_header"
        | "more_set_headers"
        | "proxy_hide_header"
        | "proxy_pass_header"
        | "proxy_ignore_headers" => "Switchyard sets only its own forwarding headers",
        "resolver" | "resolver_timeout" => {
            "Switchyard resolves server names per pool: resolver and resolver_timeout of the http block and of upstream blocks are carried into [pool.NAME]; here they would serve proxy_pass with variables"
        }
        "http2" | "http2_max_concurrent_streams" | "http2_push" => {
            "HTTP/2 is always on: h2 over TLS through ALPN, h2c by prior knowledge"
        }
        "proxy_intercept_errors"
        | "proxy_ssl_protocols"
        | "proxy_ssl_ciphers"
        | "proxy_socket_keepalive"
        | "proxy_bind"
        | "proxy_ignore_client_abort" => "no Switchyard equivalent",
        _ => return format!("no Switchyard equivalent in {ctx}"),
    };
    r.to_string()
}

/// `proxy_next_upstream` conditions as Switchyard's retry `on` list.
fn next_upstream(c: &mut Config, d: &Directive, prev: Option<Retry>) -> Retry {
    let mut r = prev.unwrap_or_default();
    if d.args.first().map(String::as_str) == Some("off") {
        r.attempts = Some(0);
        return r;
    }
    let mut on = Vec::new();
    for a in &d.args {
        match a.as_str() {
            "error" => on.push("error".to_string()),
            "timeout" => on.push("timeout".into()),
            "invalid_header" => on.push("reset".into()),
            "non_idempotent" => r.non_idempotent = true,
            s if s.starts_with("http_") => match &s[5..] {
                code @ ("500" | "502" | "503" | "504" | "403" | "404" | "429") => {
                    on.push(code.to_string())
                }
                _ => c.note(&d.at, s, "not a status Switchyard retries on"),
            },
            s => c.note(
                &d.at,
                s,
                "not a proxy_next_upstream condition Switchyard knows",
            ),
        }
    }
    r.on = Some(on);
    r
}

fn header(c: &mut Config, d: &Directive, i: &mut Inherit) {
    let name = d
        .args
        .first()
        .map(|s| s.to_ascii_lowercase())
        .unwrap_or_default();
    let value = d.args.get(1).map(String::as_str).unwrap_or("");
    match (name.as_str(), value) {
        ("host", "$host" | "$http_host") => i.host_upstream = false,
        ("host", "$proxy_host") => i.host_upstream = true,
        ("x-forwarded-for", "$proxy_add_x_forwarded_for" | "$remote_addr")
        | ("x-real-ip", "$remote_addr")
        | ("x-forwarded-proto", "$scheme")
        | ("connection", "" | "upgrade" | "$connection_upgrade")
        | ("upgrade", "$http_upgrade") => {} // what Switchyard sends anyway
        _ => c.note(
            &d.at,
            d.text(),
            "Switchyard sends Host, X-Forwarded-For, X-Real-IP and X-Forwarded-Proto itself and sets no other header",
        ),
    }
}

fn server(c: &mut Config, h: &mut Http, d: &Directive, parent: &Inherit) -> Vhost {
    let block = d.block.as_deref().unwrap_or_default();
    let mut i = parent.clone();
    i.front.enter();
    let mut v = Vhost {
        listens: Vec::new(),
        names: Vec::new(),
        locs: Vec::new(),
        redirect_https: None,
        cert: None,
        hsts: None,
        trusted: Vec::new(),
        listener_keys: Vec::new(),
        unproxied: Vec::new(),
        at: d.at.clone(),
    };
    for x in early_first(block) {
        match x.name.as_str() {
            "listen" => {
                if let Some(l) = listen(c, x) {
                    v.listens.push(l);
                }
            }
            "server_name" => v.names.extend(x.args.iter().cloned()),
            "location" => {}
            "return" => redirect(c, x, &mut v),
            _ => setting(c, x, &mut i, "a server block"),
        }
    }
    for x in block.iter().filter(|x| x.name == "location") {
        location(c, h, x, &i, &mut v);
    }
    if v.listens.is_empty() {
        // nginx's default when running as root.
        v.listens.push(Listen {
            addr: "80".into(),
            ssl: false,
            default: false,
            proxy_protocol: false,
            at: d.at.clone(),
        });
    }
    v.cert = i.cert.clone();
    v.hsts = i.hsts.clone();
    v.trusted = i.trusted.clone();
    v.listener_keys = i.front.listener.clone();
    v
}

/// `return 301 https://$host$request_uri;` and the like: a redirect to https.
fn redirect(c: &mut Config, x: &Directive, v: &mut Vhost) {
    let code = x.args.first().map(String::as_str).unwrap_or("");
    let to = x.args.get(1).map(String::as_str).unwrap_or("");
    if matches!(code, "301" | "302" | "307" | "308") && to.starts_with("https://") {
        v.redirect_https = Some(x.at.clone());
        if code != "308" {
            c.approx(
                &x.at,
                x.text(),
                "Switchyard redirects to https with 308 (keeps the method), to the same host and path",
            );
        }
    } else {
        // nginx refused or answered every request here itself.
        c.warn(
            &x.at,
            x.text(),
            "Switchyard does not answer requests itself (only redirects to https): the requests nginx answered here WILL now be proxied where this address's other routes or its default pool send them (a 404 where none takes them)",
        );
    }
}

fn listen(c: &mut Config, x: &Directive) -> Option<Listen> {
    let raw = x.args.first()?;
    if raw.starts_with("unix:") {
        c.note(
            &x.at,
            x.text(),
            "listening on a UNIX socket is not supported",
        );
        return None;
    }
    let addr = listen_addr(raw);
    if addr.starts_with("localhost") {
        c.approx(
            &x.at,
            x.text(),
            "localhost is written as 127.0.0.1 (Switchyard listens on addresses)",
        );
    }
    let addr = addr.replacen("localhost", "127.0.0.1", 1);
    let mut l = Listen {
        addr,
        ssl: false,
        default: false,
        proxy_protocol: false,
        at: x.at.clone(),
    };
    for opt in &x.args[1..] {
        match opt.split_once('=').map_or(opt.as_str(), |(k, _)| k) {
            "ssl" => l.ssl = true,
            "default_server" | "default" => l.default = true,
            "http2" | "reuseport" | "ipv6only" => {}
            "proxy_protocol" => l.proxy_protocol = true,
            _ => c.note(&x.at, opt, "a listen option Switchyard does not set (its sockets have their own backlog and options)"),
        }
    }
    Some(l)
}

fn location(c: &mut Config, h: &mut Http, d: &Directive, parent: &Inherit, v: &mut Vhost) {
    let (modifier, path) = match d.args.as_slice() {
        [p] => ("", p.as_str()),
        [m, p] => (m.as_str(), p.as_str()),
        _ => ("?", ""),
    };
    let block = d.block.as_deref().unwrap_or_default();
    let proxies = block.iter().any(|x| x.name == "proxy_pass");
    let exact = match modifier {
        "" | "^~" => false,
        "=" => true,
        "~" | "~*" if !proxies => true, // what it matches is told by its regex below
        // Left out: where nginx proxied its requests, they now reach whatever else matches.
        _ if proxies => {
            c.warn(
                &d.at,
                d.text(),
                "Switchyard routes by path prefix; regular-expression and named locations are not carried: the requests nginx proxied here WILL now be proxied where this address's other routes or its default pool send them",
            );
            return;
        }
        _ => {
            c.note(
                &d.at,
                d.text(),
                "Switchyard routes by path prefix; regular-expression and named locations are not carried",
            );
            return;
        }
    };
    let mut i = parent.clone();
    i.front.enter();
    let mut target: Option<&Directive> = None;
    let mut answer: Option<&Directive> = None;
    for x in early_first(block) {
        match x.name.as_str() {
            "proxy_pass" => target = Some(x),
            "location" => {}
            "return" if path == "/" && modifier.is_empty() => redirect(c, x, v),
            "return" => answer = Some(x),
            _ => setting(c, x, &mut i, "a location"),
        }
    }
    for x in block.iter().filter(|x| x.name == "location") {
        location(c, h, x, &i, v);
    }
    // A `return` runs before `proxy_pass` (rewrite phase): such a location never proxies.
    let Some(pp) = target.filter(|_| answer.is_none()) else {
        let nested = block.iter().any(|x| x.name == "location");
        if let Some(u) = Unproxied::of(d, modifier, path, answer, &i.front.guard, nested) {
            v.unproxied.push(u);
        }
        return;
    };
    let url = pp.args.first().map(String::as_str).unwrap_or("");
    let (scheme, rest) = match url.split_once("://") {
        Some((s, r)) => (s, r),
        None => ("", url),
    };
    let (host, uri) = match rest.find('/') {
        Some(k) => (&rest[..k], &rest[k..]),
        None => (rest, ""),
    };
    // A location left out: nginx proxied its requests somewhere; here they reach whatever
    // else matches them, so it is a warning, not a quiet note.
    if host.contains('$') || !matches!(scheme, "http" | "https") {
        c.warn(
            &pp.at,
            pp.text(),
            "proxy_pass to a variable or a non-HTTP scheme has no equivalent; the route is left out, so the requests nginx sent here WILL now be proxied where this address's other routes or its default pool send them",
        );
        return;
    }
    if !uri.is_empty() && uri != path {
        c.warn(
            &pp.at,
            pp.text(),
            "Switchyard passes the request path unchanged; a URI part that replaces the location's prefix is not carried: the route is left out, so the requests nginx sent here (with the path rewritten) WILL now be proxied, path unchanged, where this address's other routes or its default pool send them",
        );
        return;
    }
    if exact {
        c.approx(
            &d.at,
            d.text(),
            "an exact-match location becomes a path prefix (it also matches longer paths)",
        );
    }
    if scheme == "https" {
        if i.ssl_verify {
            // The settings above say what to verify with.
        } else {
            i.ssl.push("insecure_skip_verify = true".into());
            c.approx(
                &pp.at,
                pp.text(),
                "nginx does not verify the server's certificate by default (proxy_ssl_verify off); kept so with insecure_skip_verify: add ca to verify",
            );
        }
    } else {
        i.ssl.clear();
    }
    let template = match h.upstreams.get(host) {
        Some(p) => p.clone(),
        None => match nginx_upstream::single(c, host, &pp.at, false) {
            Some(p) => p,
            None => return,
        },
    };
    let pool = variant(c, h, template, &i, &d.at);
    v.locs.push(Loc {
        exact,
        stops_regex: modifier == "^~",
        path: path.to_string(),
        pool,
        guard: i.front.guard.clone(),
        at: d.at.clone(),
    });
}

/// The pool that carries `template`'s servers with the settings `i`: the template's own
/// name the first time, a new pool for each other set of settings.
fn variant(c: &mut Config, h: &mut Http, template: Pool, i: &Inherit, at: &Origin) -> String {
    let key = Inherit {
        cert: None,
        hsts: None,
        trusted: Vec::new(),
        front: Front::default(),
        ..i.clone()
    };
    if let Some((_, _, name)) = h
        .variants
        .iter()
        .find(|(t, k, _)| *t == template.name && *k == key)
    {
        return name.clone();
    }
    let first = !h.variants.iter().any(|(t, _, _)| *t == template.name);
    let mut p = template.clone();
    p.name = if first && c.pools.iter().all(|x| x.name != template.name) {
        template.name.clone()
    } else {
        c.pool_name(&template.name)
    };
    if !first {
        p.at = at.clone();
    }
    p.connect_timeout = i.connect.clone();
    p.read_timeout = i.read.clone();
    p.send_timeout = i.send.clone();
    p.client_body_timeout = i.client_body.clone();
    p.retry = i.retry.clone();
    // nginx tries every server of the group before it gives up
    // (proxy_next_upstream_tries 0); Switchyard's default is 2 more tries.
    let tries_set = i.retry.as_ref().is_some_and(|r| r.attempts.is_some());
    if !tries_set && p.servers.len() > 3 {
        p.retry.get_or_insert_with(Retry::default).attempts =
            Some((p.servers.len() as u32 - 1).min(20));
    }
    p.host_header_upstream = i.host_upstream;
    if !i.ssl.is_empty() {
        p.tls = Some(format!("{{ {} }}", i.ssl.join(", ")));
    }
    h.variants
        .push((template.name.clone(), key, p.name.clone()));
    let name = p.name.clone();
    c.pools.push(p);
    name
}

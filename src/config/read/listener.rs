//! `[[listener]]`: its address, protocol, default pool and routes (`[[listener.route]]`), its
//! certificates (`[[listener.tls]]`, loaded here, at `check` time, so that a missing file or
//! a key that does not match its certificate is an error at the line naming it), and the keys
//! that belong to some protocols only ([`PROTOCOL_KEYS`]): on a listener of another protocol
//! such a key is an error that names the fix, and its value is not checked.

use http::{HeaderName, Method};

use super::cursor::Table;
use super::guard::{self, cidr};
use super::value::{Bad, Ty, Val, addr, bad, boolean, duration, int, list, positive};
use super::value::{show_size, size, slash_path, string, word};
use crate::config::words::Words;
use crate::config::{
    Cidr, ClientLimits, GuardPlan, HostMatch, ListenerPlan, Matcher, Protocol, RoutePlan, Target,
};
use crate::tls::{CertPair, TlsError};

/// Which listeners a key belongs to.
#[derive(Clone, Copy, PartialEq)]
enum Home {
    Tcp,
    /// tcp, and http/https (PROXY headers are read before HTTP and TLS, as nginx's
    /// `listen … proxy_protocol` and HAProxy's `accept-proxy`).
    TcpOrHttp,
    Udp,
    /// http and https: an L4 listener copies bytes and never sees a request to redirect, a
    /// response to add a header to, or a TLS handshake of its own to answer.
    Http,
}

/// The keys of a listener that belong to some protocols only, and the help when one is
/// written on a listener of the sibling protocol (a tcp key on udp, a udp key on tcp, an HTTP
/// key on tcp/udp). Every other key belongs to every listener.
#[rustfmt::skip]
const PROTOCOL_KEYS: [(&str, Home, &str); 26] = [
    ("idle_timeout", Home::Tcp, "use session_timeout on a udp listener"),
    ("max_connections", Home::TcpOrHttp, "use max_sessions on a udp listener"),
    ("max_connections_per_client", Home::TcpOrHttp, ""),
    ("proxy_protocol", Home::Tcp, ""),
    ("accept_proxy_protocol", Home::TcpOrHttp, ""),
    ("trusted_proxies", Home::TcpOrHttp, ""),
    ("splice", Home::Tcp, ""),
    ("session_timeout", Home::Udp, "use idle_timeout on a tcp listener"),
    ("max_sessions", Home::Udp, "use max_connections on a tcp listener"),
    ("redirect_https", Home::Http, "remove redirect_https; it answers HTTP requests, so it belongs on a protocol = \"http\" listener"),
    ("hsts", Home::Http, "remove hsts; it is an HTTP header, so it belongs on a protocol = \"https\" listener"),
    ("tls", Home::Http, "remove [[listener.tls]] to pass TLS through to the servers as it is, or use protocol = \"https\" to end TLS here"),
    ("limit", Home::Http, "remove [[listener.limit]]; a tcp/udp listener sees no request to count (max_connections bounds its connections), or use protocol = \"http\""),
    ("block", Home::Http, "remove [[listener.block]]; a tcp/udp listener sees no method, path or header, or use protocol = \"http\""),
    ("forward_headers", Home::Http, "remove forward_headers; a tcp/udp listener writes no header (proxy_protocol = \"v2\" tells the server who the client is)"),
    ("client_header_timeout", Home::Http, HTTP_ONLY),
    ("keepalive_timeout", Home::Http, "use idle_timeout on a tcp listener, session_timeout on a udp one"),
    ("keepalive_requests", Home::Http, HTTP_ONLY),
    ("tls_handshake_timeout", Home::Http, HTTP_ONLY),
    ("send_timeout", Home::Http, "use idle_timeout on a tcp listener"),
    ("max_header_size", Home::Http, HTTP_ONLY),
    ("max_headers", Home::Http, HTTP_ONLY),
    ("max_uri_size", Home::Http, HTTP_ONLY),
    ("client_max_body_size", Home::Http, HTTP_ONLY),
    ("request_buffering", Home::Http, HTTP_ONLY),
    ("request_buffer_size", Home::Http, HTTP_ONLY),
];

/// The help for an HTTP limit on a tcp/udp listener.
const HTTP_ONLY: &str =
    "remove it; a tcp/udp listener copies bytes and never reads a request to limit";

/// The error for `key` on a listener speaking `is`, when the key does not belong there.
fn misplaced(key: &str, is: Protocol) -> Option<(String, String)> {
    let &(_, home, sibling) = PROTOCOL_KEYS.iter().find(|(k, ..)| *k == key)?;
    let (http, is) = (matches!(is, Protocol::Http | Protocol::Https), is.as_str());
    let (belongs, other) = match home {
        Home::Tcp if is == "tcp" => return None,
        Home::TcpOrHttp if is != "udp" => return None,
        Home::Udp if is == "udp" => return None,
        Home::Http if http => return None,
        Home::Tcp | Home::TcpOrHttp => ("tcp", "udp"),
        Home::Udp => ("udp", "tcp"),
        Home::Http => {
            let shown = if key == "tls" {
                "[[listener.tls]]"
            } else {
                key
            };
            let message = format!("{shown} is for http/https listeners, not this {is} listener");
            return Some((message, sibling.into()));
        }
    };
    let help = match (is == other, sibling) {
        (true, "") => format!("remove {key}; UDP listeners do not support it"),
        (true, s) => s.to_string(),
        (false, _) => format!("set protocol = \"{belongs}\" or remove {key}"),
    };
    let message =
        format!("{key} applies to protocol = \"{belongs}\" listeners, not to this {is} listener");
    Some((message, help))
}

/// A listener's table, read for its protocol (`None`: unknown).
struct On<'t, 'a> {
    t: &'t Table<'a>,
    protocol: Option<Protocol>,
}

impl On<'_, '_> {
    /// Whether `key` is read on this listener. When it is not, its TOML type is checked (with
    /// `p`) and, written on a listener of another protocol, it is reported with the fix.
    /// With the protocol unknown, the HTTP keys are read and the L4 keys are not.
    fn here<T>(&self, key: &str, p: impl Fn(&Val<'_>) -> Result<T, Bad>) -> bool {
        let misplaced = match self.protocol {
            Some(is) => misplaced(key, is),
            None if PROTOCOL_KEYS
                .iter()
                .any(|k| k.0 == key && k.1 == Home::Http) =>
            {
                None
            }
            None => {
                self.t.check(key, p);
                return false;
            }
        };
        let Some((message, help)) = misplaced else {
            return true;
        };
        if self.t.check(key, p) {
            let span = self.t.at(key).unwrap_or_default();
            self.t.error(span, message, help);
        }
        false
    }

    fn get<T>(&self, key: &str, p: impl Fn(&Val<'_>) -> Result<T, Bad>) -> Option<T> {
        self.here(key, &p).then(|| self.t.get(key, p)).flatten()
    }

    fn set<T>(&self, key: &str, field: &mut T, p: impl Fn(&Val<'_>) -> Result<T, Bad>) {
        if let Some(v) = self.get(key, p) {
            *field = v;
        }
    }
}

/// The `index`th `[[listener]]`, or `None` when its protocol is unknown; and the pools it
/// names, as written (for the checks of pools only L4 listeners use).
pub(super) fn read(t: &Table<'_>, i: usize, pools: &[&str]) -> (Option<ListenerPlan>, Vec<String>) {
    let mut l = ListenerPlan {
        name: format!("listener{}", i + 1),
        ..ListenerPlan::default()
    };
    set!(t, l.name, string);
    let no_listen = format!("listener {:?} has no listen address", l.name);
    let help = "add listen = \"127.0.0.1:8080\" (or a bare port, listen = \"8080\")";
    // A listener without a usable address is still checked against the others; its error
    // is recorded, so this plan is never run.
    l.listen = t
        .need("listen", addr("listen"), no_listen, help)
        .unwrap_or(l.listen);
    l.origin = t
        .pos("listen")
        .map(|s| t.report().origin(s.start).to_string());
    let protocol = protocol(t);
    l.default_pool = t.get("pool", pool_ref(pools));
    let mut named: Vec<String> = t.text("pool").map(String::from).into_iter().collect();
    let mut route_names: Vec<String> = Vec::new();
    for (_, r) in t.tables("route") {
        let route = route(&r, pools, &mut named);
        if let Some(name) = route.as_ref().and_then(|r| r.name.clone()) {
            if route_names.contains(&name) {
                r.error_at(
                    "name",
                    format!("route name {name:?} is used twice in listener {:?}", l.name),
                    "give every [[listener.route]] of a listener its own name (or none: it is then labelled by its position)",
                );
            }
            route_names.push(name);
        }
        l.routes.extend(route);
    }
    let on = On { t, protocol };
    let l4 = &mut l.l4;
    let help = "write e.g. \"30s\" or \"10m\"";
    set!(on, l4.idle_timeout, positive(help));
    set!(on, l4.proxy_protocol, |v| word(v).map(Some));
    let accept = on.get("accept_proxy_protocol", boolean);
    let trusted = on.get("trusted_proxies", list(cidr));
    set!(on, l4.splice, boolean);
    set!(on, l4.session_timeout, positive(help));
    set!(on, l4.max_sessions, int(1, 10_000_000));
    let http = matches!(protocol, Some(Protocol::Http | Protocol::Https) | None);
    l.trusted_proxies = trusted.clone().unwrap_or_default();
    l4.accept_proxy = accept_proxy(t, accept, trusted, http);
    limits(&on, &mut l.limits);
    let array = |v: &Val<'_>| v.value.as_array().map(|_| ()).ok_or(Bad::Type(Ty::Array));
    if on.here("tls", array) {
        l.tls = t
            .tables("tls")
            .iter()
            .filter_map(|(_, c)| certificate(c))
            .collect();
    }
    set!(on, l.redirect_https, boolean);
    l.hsts = on.get("hsts", duration);
    guard::access(t, &mut l.guard);
    let (limits, blocks) = (on.here("limit", array), on.here("block", array));
    if limits && blocks {
        guard::rules(t, &mut l.guard);
    }
    set!(on, l.forward_headers, guard::forward_headers);
    match protocol {
        Some(is @ (Protocol::Tcp | Protocol::Udp)) => l4_rules(t, is.as_str()),
        Some(is) => http_rules(t, &l, is),
        None => {}
    }
    t.finish();
    (protocol.map(|p| ListenerPlan { protocol: p, ..l }), named)
}

/// The listener's limits on its clients (`config/limits.rs`), each read where its protocol
/// takes it.
fn limits(on: &On<'_, '_>, c: &mut ClientLimits) {
    set!(on, c.max_connections, int(1, 10_000_000));
    set!(on, c.max_connections_per_client, int(0, 10_000_000));
    let help = "write e.g. \"60s\"";
    set!(on, c.client_header_timeout, positive(help));
    set!(on, c.keepalive_timeout, positive(help));
    set!(on, c.keepalive_requests, int(1, 1_000_000_000));
    set!(on, c.tls_handshake_timeout, positive(help));
    set!(on, c.send_timeout, positive(help));
    // A head must hold a request line and a Host field; the read buffer holds a head whole.
    set!(on, c.max_header_size, size(1024, 1 << 20));
    set!(on, c.max_headers, int(8, 1000));
    set!(on, c.max_uri_size, size(64, 1 << 20));
    set!(on, c.client_max_body_size, size(0, u64::MAX >> 1));
    set!(on, c.request_buffering, boolean);
    set!(on, c.request_buffer_size, size(1024, 64 << 20));
    if c.max_uri_size > c.max_header_size && on.t.has("max_uri_size") && on.t.has("max_header_size")
    {
        let message = format!(
            "max_uri_size = {} is more than max_header_size = {}: the request line is part of the head",
            show_size(c.max_uri_size as u64),
            show_size(c.max_header_size as u64)
        );
        on.t.error_at(
            "max_uri_size",
            message,
            "make max_uri_size at most max_header_size",
        );
    }
}

/// What a tcp/udp listener cannot do without, or do at all.
fn l4_rules(t: &Table<'_>, is: &str) {
    let help =
        "remove the [[listener.route]] entries and set pool = \"NAME\", or use protocol = \"http\"";
    if t.pos("route.0").is_some() {
        t.error_at(
            "route.0",
            format!("a {is} listener cannot route: it sees no host, path or header"),
            help,
        );
    }
    // Without routes, the pool is where every connection goes: there is no other.
    if !t.has("pool") {
        let help = "add pool = \"NAME\": every connection goes to a server of that pool";
        t.absent(
            &["pool"],
            t.span(),
            format!("this {is} listener has no pool"),
            help,
        );
    }
}

/// What an http/https listener cannot do without, or do at all.
fn http_rules(t: &Table<'_>, l: &ListenerPlan, is: Protocol) {
    if !t.has("pool") && t.count("route").unwrap_or(0) == 0 && !l.redirect_https {
        let nowhere = format!("listener {:?} sends traffic nowhere", l.name);
        let help = "add pool = \"NAME\" (the default pool) or [[listener.route]] entries";
        t.absent(
            &["pool", "route", "redirect_https"],
            t.span(),
            nowhere,
            help,
        );
    }
    if is == Protocol::Https {
        let span = t.pos("protocol").unwrap_or_default();
        let no_cert = "an https listener needs at least one certificate";
        let help =
            "add [[listener.tls]] with cert = \"PATH\" and key = \"PATH\" below this listener";
        match t.count("tls") {
            Some(0) => t.error(span, no_cert, help),
            None if !t.has("tls") => t.absent(&["tls"], span, no_cert, help),
            _ => {}
        }
        if l.redirect_https {
            let forever = "redirect_https on an https listener would redirect to itself forever";
            t.error_at(
                "redirect_https",
                forever,
                "put redirect_https = true on the plain http listener",
            );
        }
        return;
    }
    if t.pos("tls.0").is_some() {
        let help =
            "set protocol = \"https\" on this listener, or remove the [[listener.tls]] entries";
        t.error_at(
            "tls.0",
            "[[listener.tls]] on a listener that does not speak TLS",
            help,
        );
    }
    if t.has("tls_handshake_timeout") {
        let message = "tls_handshake_timeout on a plain http listener: it has no TLS handshake";
        let help = "remove it, or move it to the https listener";
        t.error_at("tls_handshake_timeout", message, help);
    }
    if l.hsts.is_some() {
        let message =
            "hsts on a plain http listener: browsers ignore Strict-Transport-Security over http";
        t.error_at("hsts", message, "move hsts = \"1y\" to the https listener");
    }
}

/// `protocol`, `None` when it is not one (a wrong type is unknown, not "http"). `"TCP"` is an
/// error, but the listener is checked as the tcp listener it means, so that its other
/// errors come in the same run.
fn protocol(t: &Table<'_>) -> Option<Protocol> {
    let Some(written) = t.get("protocol", string) else {
        return (!t.has("protocol")).then_some(Protocol::Http);
    };
    let lower = written.to_ascii_lowercase();
    let known = Protocol::from_word(&lower);
    let (message, help) = match known {
        Some(_) if lower == written => return known,
        Some(_) => (
            format!("unknown protocol {written:?}"),
            format!("names are lowercase: write protocol = {lower:?}"),
        ),
        None => Protocol::unknown(&written),
    };
    t.error_at("protocol", message, help);
    known
}

/// A pool name that must be defined.
fn pool_ref<'p>(pools: &'p [&str]) -> impl Fn(&Val<'_>) -> Result<String, Bad> + 'p {
    move |v: &Val<'_>| match v.str()? {
        name if pools.contains(&name) => Ok(name.to_string()),
        name => {
            let help = match pools {
                [] => {
                    format!("define it: [pool.{name}] with servers = [{{ addr = \"host:port\" }}]")
                }
                _ => format!("use one of: {}, or define [pool.{name}]", pools.join(", ")),
            };
            Err(bad(no_pool(name), help))
        }
    }
}

/// The error for a pool name no `[pool.NAME]` defines.
pub(super) fn no_pool(name: &str) -> String {
    format!("no pool named {name:?}")
}

/// `accept_proxy_protocol` and `trusted_proxies`: the PROXY headers' senders, when the
/// listener reads them. On an http/https listener `trusted_proxies` alone names the proxies
/// whose `X-Forwarded-For` is believed.
fn accept_proxy(
    t: &Table<'_>,
    accept: Option<bool>,
    trusted: Option<Vec<Cidr>>,
    http: bool,
) -> Option<Vec<Cidr>> {
    let on = accept == Some(true);
    let at = t.pos("trusted_proxies").unwrap_or_default();
    let list = "list who may send PROXY headers: trusted_proxies = [\"10.0.0.0/8\"]";
    match trusted {
        Some(_) if !on && http => None,
        Some(_) if !on => {
            let message = "trusted_proxies is set but accept_proxy_protocol is not true";
            let help = "add accept_proxy_protocol = true, or remove trusted_proxies";
            match accept {
                Some(_) => t.error(at, message, help),
                None if !t.has("accept_proxy_protocol") => {
                    t.absent(&["accept_proxy_protocol"], at, message, help)
                }
                None => {}
            }
            None
        }
        Some(blocks) => {
            if t.count("trusted_proxies") == Some(0) {
                t.error(
                    at,
                    "trusted_proxies is empty, so every connection would be refused",
                    list,
                );
            }
            Some(blocks)
        }
        None if on && !t.has("trusted_proxies") => {
            let at = t.pos("accept_proxy_protocol").unwrap_or_default();
            t.absent(
                &["trusted_proxies"],
                at,
                "accept_proxy_protocol = true needs trusted_proxies",
                list,
            );
            None
        }
        None => None,
    }
}

const CERT_HELP: &str = "write cert = \"PATH\" (PEM, full chain, leaf first) and key = \"PATH\" (PEM private key of that leaf); make one with: openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=example.com -addext subjectAltName=DNS:example.com -keyout key.pem -out cert.pem";

/// One `[[listener.tls]]` pair, loaded now; a pair that does not load is reported and kept.
fn certificate(t: &Table<'_>) -> Option<CertPair> {
    let cert = t.need("cert", string, "[[listener.tls]] has no cert", CERT_HELP);
    let key = t.need("key", string, "[[listener.tls]] has no key", CERT_HELP);
    t.finish();
    let r = t.report();
    let pair = CertPair {
        cert: r.path(&cert?),
        key: r.path(&key?),
    };
    if let Err(e) = crate::tls::load_pair(&pair) {
        // Point at the key line when the key is what's wrong.
        let at = match &e {
            TlsError::Read { path, .. } if *path == pair.key => "key",
            TlsError::NoKey { .. } | TlsError::BadKey { .. } => "key",
            _ => "cert",
        };
        t.error_at(at, e.to_string(), cert_help(&e));
    }
    Some(pair)
}

/// What to do about a listener's certificate pair that does not load.
fn cert_help(e: &TlsError) -> &'static str {
    match e {
        TlsError::KeyMismatch { .. } => {
            "use the key the certificate was made for (compare `openssl x509 -noout -pubkey -in CERT` with `openssl pkey -pubout -in KEY`)"
        }
        TlsError::NoName { .. } => {
            "issue the certificate with subjectAltName DNS names, e.g. -addext subjectAltName=DNS:example.com,DNS:*.example.com"
        }
        // The file is there (a key is often 0600, owned by root): the path is right.
        TlsError::Read {
            kind: std::io::ErrorKind::PermissionDenied,
            ..
        } => {
            "let the user Switchyard runs as read it (e.g. give the file to that user's group and chmod g+r), or point the path at a copy it can read"
        }
        TlsError::Read { .. } => {
            "fix the path (a relative one is read from the config file's folder); or make a pair with: openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=example.com -addext subjectAltName=DNS:example.com -keyout key.pem -out cert.pem"
        }
        TlsError::NoCertificate { path } if holds(path, "PRIVATE KEY-----") => {
            "this file holds a private key: are cert and key swapped? cert is the certificate chain (BEGIN CERTIFICATE), key its private key"
        }
        _ => CERT_HELP,
    }
}

/// Whether the file at `path` has `marker` in it (a PEM block's label).
fn holds(path: &std::path::Path, marker: &str) -> bool {
    std::fs::read_to_string(path).is_ok_and(|text| text.contains(marker))
}

/// A `[[listener.route]]`, or `None` when its host or target is wrong (reported; a route
/// with another wrong condition stays in the plan, for the checks across pools); the pools
/// it names are added to `named`.
fn route(t: &Table<'_>, pools: &[&str], named: &mut Vec<String>) -> Option<RoutePlan> {
    let name = t.get("name", route_name);
    let mut m = Matcher::default();
    let host_known = set!(t, m.host, |v| host(v).map(Some));
    m.path_prefix = t.get("path_prefix", slash_path("path_prefix"));
    m.method = t.get("method", |v| {
        let s = v.str()?;
        let method = Method::from_bytes(s.to_ascii_uppercase().as_bytes());
        method.map_err(|_| {
            bad(
                format!("{s:?} is not an HTTP method"),
                "write e.g. \"GET\" or \"POST\"",
            )
        })
    });
    if let Some((n, v)) = name_value(t, "header") {
        match HeaderName::from_bytes(n.as_bytes()) {
            Ok(name) => m.header = Some((name, v)),
            Err(_) => {
                let help = "write header = { name = \"x-canary\", value = \"1\" }";
                t.error_at("header", format!("{n:?} is not a header name"), help);
            }
        }
    }
    m.cookie = name_value(t, "cookie");
    let mut g = GuardPlan::default();
    guard::access(t, &mut g);
    guard::rules(t, &mut g);
    let pool = t.get("pool", pool_ref(pools));
    named.extend(t.text("pool").map(String::from));
    let max_body = t.get("client_max_body_size", size(0, u64::MAX >> 1));
    let (mut parts, mut good) = (Vec::new(), true);
    for (_, s) in t.tables("split") {
        let help = "write { pool = \"NAME\", weight = 1 }";
        let pool = s.need("pool", pool_ref(pools), "a part of split has no pool", help);
        named.extend(s.text("pool").map(String::from));
        let weight = s.need(
            "weight",
            int(1, 1_000_000),
            "a part of split has no weight",
            help,
        );
        s.finish();
        match (pool, weight) {
            (Some(p), Some(w)) => parts.push((p, w)),
            _ => good = false,
        }
    }
    let target = match (t.pos("pool"), t.pos("split")) {
        (Some(_), None) => pool.map(Target::Pool),
        (None, Some(span)) if t.count("split") == Some(0) => {
            let help =
                "write split = [ { pool = \"v1\", weight = 90 }, { pool = \"v2\", weight = 10 } ]";
            t.error(span, "split is empty", help);
            None
        }
        (None, Some(_)) => good.then_some(Target::Split(parts)),
        (Some(span), Some(_)) => {
            t.error(
                span,
                "a route has both pool and split",
                "keep one: pool = \"NAME\" or split = [...]",
            );
            None
        }
        (None, None) => {
            if !t.has("pool") && !t.has("split") {
                let help = "add pool = \"NAME\" or split = [ { pool = \"NAME\", weight = 1 } ]";
                t.absent(&["pool", "split"], t.span(), "a route has no pool", help);
            }
            None
        }
    };
    t.finish();
    Some(RoutePlan {
        name,
        matcher: m,
        target: target?,
        guard: g,
        client_max_body_size: max_body,
    })
    .filter(|_| host_known)
}

/// A route's `name`: any text but the labels of unnamed routes and answers (a position,
/// `default`, `-`), so that no two rows of a listener's metrics share a label.
fn route_name(v: &Val<'_>) -> Result<String, Bad> {
    let s = v.str()?;
    let taken = s.is_empty() || s == "default" || s == "-" || s.bytes().all(|b| b.is_ascii_digit());
    if taken {
        return Err(bad(
            format!("route name {s:?} is a label of its own"),
            "write a name with a letter in it, e.g. name = \"api\": a number is an unnamed route's position, `default` the listener's pool and `-` the answers no route took",
        ));
    }
    Ok(s.to_string())
}

/// A route's `host`: `api.example.com` or `*.example.com`.
fn host(v: &Val<'_>) -> Result<HostMatch, Bad> {
    let written = v.str()?;
    let host = written.trim().to_ascii_lowercase();
    let odd = |c: char| c == '/' || c == ':';
    if host.is_empty() || host.contains(odd) || host.chars().skip(1).any(|c| c == '*') {
        let help = "write a name without port or path: \"api.example.com\" or \"*.example.com\"";
        return Err(bad(format!("host {written:?} is not a host name"), help));
    }
    match host.strip_prefix("*.") {
        Some(rest) => Ok(HostMatch::Suffix(format!(".{rest}"))),
        None if host.starts_with('*') => {
            let message = format!("wildcard host {written:?} must start with \"*.\"");
            Err(bad(message, "write \"*.example.com\""))
        }
        None => Ok(HostMatch::Exact(host)),
    }
}

/// `header = { name, value }` or `cookie = { name, value }`: both are needed.
fn name_value(t: &Table<'_>, key: &str) -> Option<(String, String)> {
    let nv = t.table(key)?;
    let help = format!("write {key} = {{ name = \"x-canary\", value = \"1\" }}");
    let name = nv.need("name", string, format!("{key} has no name"), help.clone());
    let value = nv.need("value", string, format!("{key} has no value"), help);
    nv.finish();
    Some((name?, value?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::ErrorKind;

    // Root reads a chmod 000 file, so the tests (run as root) build the error instead.
    #[test]
    fn an_unreadable_cert_file_says_who_must_read_it_not_to_fix_the_path() {
        let read = |kind: ErrorKind| TlsError::Read {
            path: "key.pem".into(),
            kind,
            cause: std::io::Error::from(kind).to_string(),
        };
        let denied = cert_help(&read(ErrorKind::PermissionDenied));
        assert!(denied.contains("the user Switchyard runs as"), "{denied}");
        assert!(!denied.contains("fix the path"), "{denied}");
        for kind in [ErrorKind::NotFound, ErrorKind::Other] {
            assert!(
                cert_help(&read(kind)).starts_with("fix the path"),
                "{kind:?}"
            );
        }
    }
}

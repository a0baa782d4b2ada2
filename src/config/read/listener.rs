//! `[[listener]]`: its address, protocol, default pool and routes (`[[listener.route]]`), its
//! certificates (`[[listener.tls]]`, loaded here, at `check` time, so that a missing file or
//! a key that does not match its certificate is an error at the line naming it), and the keys
//! that belong to some protocols only ([`PROTOCOL_KEYS`]): on a listener of another protocol
//! such a key is an error that names the fix, and its value is not checked.

use http::{HeaderName, Method};

use super::cursor::Table;
use super::value::{Bad, Ty, Val, addr, boolean, duration, int, list, positive, string, word};
use crate::config::words::Words;
use crate::config::{Cidr, HostMatch, ListenerPlan, Matcher, Protocol, RoutePlan, Target};
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
const PROTOCOL_KEYS: [(&str, Home, &str); 11] = [
    (
        "idle_timeout",
        Home::Tcp,
        "use session_timeout on a udp listener",
    ),
    (
        "max_connections",
        Home::Tcp,
        "use max_sessions on a udp listener",
    ),
    ("proxy_protocol", Home::Tcp, ""),
    ("accept_proxy_protocol", Home::TcpOrHttp, ""),
    ("trusted_proxies", Home::TcpOrHttp, ""),
    ("splice", Home::Tcp, ""),
    (
        "session_timeout",
        Home::Udp,
        "use idle_timeout on a tcp listener",
    ),
    (
        "max_sessions",
        Home::Udp,
        "use max_connections on a tcp listener",
    ),
    (
        "redirect_https",
        Home::Http,
        "remove redirect_https; it answers HTTP requests, so it belongs on a protocol = \"http\" listener",
    ),
    (
        "hsts",
        Home::Http,
        "remove hsts; it is an HTTP header, so it belongs on a protocol = \"https\" listener",
    ),
    (
        "tls",
        Home::Http,
        "remove [[listener.tls]] to pass TLS through to the servers as it is, or use protocol = \"https\" to end TLS here",
    ),
];

/// The error for `key` on a listener speaking `is`, when the key does not belong there.
fn misplaced(key: &str, is: Protocol) -> Option<(String, String)> {
    let &(_, home, sibling) = PROTOCOL_KEYS.iter().find(|(k, ..)| *k == key)?;
    let http = matches!(is, Protocol::Http | Protocol::Https);
    let (belongs, other) = match home {
        Home::Tcp if is == Protocol::Tcp => return None,
        Home::TcpOrHttp if is != Protocol::Udp => return None,
        Home::Udp if is == Protocol::Udp => return None,
        Home::Http if http => return None,
        Home::Tcp | Home::TcpOrHttp => ("tcp", Protocol::Udp),
        Home::Udp => ("udp", Protocol::Tcp),
        Home::Http => {
            let shown = if key == "tls" {
                "[[listener.tls]]"
            } else {
                key
            };
            let message = format!(
                "{shown} is for http/https listeners, not this {} listener",
                is.as_str()
            );
            return Some((message, sibling.into()));
        }
    };
    let help = match (is == other, sibling) {
        (true, "") => format!("remove {key}; UDP listeners do not support it"),
        (true, s) => s.to_string(),
        (false, _) => format!("set protocol = \"{belongs}\" or remove {key}"),
    };
    let message = format!(
        "{key} applies to protocol = \"{belongs}\" listeners, not to this {} listener",
        is.as_str()
    );
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
        let home = PROTOCOL_KEYS.iter().find(|(k, ..)| *k == key).map(|k| k.1);
        let Some(is) = self.protocol else {
            if home == Some(Home::Http) {
                return true;
            }
            self.t.check(key, p);
            return false;
        };
        let Some((message, help)) = misplaced(key, is) else {
            return true;
        };
        if self.t.check(key, p) {
            let span = self.t.first(key).or(self.t.at(key)).unwrap_or_default();
            self.t.error(span, message, help);
        }
        false
    }

    fn set<T>(&self, key: &str, field: &mut T, p: impl Fn(&Val<'_>) -> Result<T, Bad>) {
        if self.here(key, &p) {
            self.t.set(key, field, p);
        }
    }

    fn get<T>(&self, key: &str, p: impl Fn(&Val<'_>) -> Result<T, Bad>) -> Option<T> {
        self.here(key, &p).then(|| self.t.get(key, p)).flatten()
    }
}

/// The `index`th `[[listener]]`, or `None` when its protocol is unknown; and the pools it
/// names, as written (for the checks of pools only L4 listeners use).
pub(super) fn read(
    t: &Table<'_>,
    index: usize,
    pools: &[&str],
) -> (Option<ListenerPlan>, Vec<String>) {
    let mut l = ListenerPlan {
        name: format!("listener{}", index + 1),
        ..ListenerPlan::default()
    };
    t.set("name", &mut l.name, string);
    let listen = t.need(
        "listen",
        addr("listen"),
        format!("listener {:?} has no listen address", l.name),
        "add listen = \"127.0.0.1:8080\" (or a bare port, listen = \"8080\")",
    );
    // A listener without a usable address is still checked against the others; its error
    // is recorded, so this plan is never run.
    l.listen = listen.unwrap_or(l.listen);
    l.origin = t.pos("listen").map(|s| t.report().origin(s.start));
    let protocol = protocol(t);
    l.default_pool = t.get("pool", pool_ref(pools));
    let mut named: Vec<String> = t.text("pool").map(String::from).into_iter().collect();
    for (_, r) in t.tables("route") {
        let route = route(&r, pools, &mut named);
        l.routes.extend(route);
    }
    let on = On { t, protocol };
    let l4 = &mut l.l4;
    let help = "write e.g. \"30s\" or \"10m\"";
    on.set(
        "idle_timeout",
        &mut l4.idle_timeout,
        positive("idle_timeout", help),
    );
    on.set(
        "max_connections",
        &mut l4.max_connections,
        int(1, 10_000_000),
    );
    on.set("proxy_protocol", &mut l4.proxy_protocol, |v| {
        word(v).map(Some)
    });
    let accept = on.get("accept_proxy_protocol", boolean);
    let trusted = on.get("trusted_proxies", list(cidr));
    on.set("splice", &mut l4.splice, boolean);
    on.set(
        "session_timeout",
        &mut l4.session_timeout,
        positive("session_timeout", help),
    );
    on.set("max_sessions", &mut l4.max_sessions, int(1, 10_000_000));
    l4.accept_proxy = accept_proxy(t, accept, trusted);
    let certs = match on.here("tls", |v| {
        v.value.as_array().map(|_| ()).ok_or(Bad::Type(Ty::Array))
    }) {
        true => t.tables("tls"),
        false => Vec::new(),
    };
    l.tls = certificates(t, certs);
    on.set("redirect_https", &mut l.redirect_https, boolean);
    l.hsts = on.get("hsts", duration("hsts"));
    rules(t, &l, protocol);
    t.finish();
    (protocol.map(|p| ListenerPlan { protocol: p, ..l }), named)
}

/// The rules of a listener as a whole, by protocol.
fn rules(t: &Table<'_>, l: &ListenerPlan, protocol: Option<Protocol>) {
    match protocol {
        Some(is @ (Protocol::Tcp | Protocol::Udp)) => {
            let is = is.as_str();
            if let Some(span) = t.pos("route.0") {
                t.error(
                    span,
                    format!("a {is} listener cannot route: it sees no host, path or header"),
                    "remove the [[listener.route]] entries and set pool = \"NAME\", or use protocol = \"http\"",
                );
            }
            // Without routes, the pool is where every connection goes: there is no other.
            if !t.has("pool") {
                t.absent(
                    &["pool"],
                    t.span(),
                    format!("this {is} listener has no pool"),
                    "add pool = \"NAME\": every connection goes to a server of that pool",
                );
            }
        }
        Some(http) => {
            if !t.has("pool") && t.count("route").unwrap_or(0) == 0 && !l.redirect_https {
                t.absent(
                    &["pool", "route", "redirect_https"],
                    t.span(),
                    format!("listener {:?} sends traffic nowhere", l.name),
                    "add pool = \"NAME\" (the default pool) or [[listener.route]] entries",
                );
            }
            let span = t.pos("protocol").unwrap_or_default();
            let no_cert = "an https listener needs at least one certificate";
            let help =
                "add [[listener.tls]] with cert = \"PATH\" and key = \"PATH\" below this listener";
            match t.count("tls") {
                _ if http != Protocol::Https => {}
                Some(0) => t.error(span, no_cert, help),
                None if !t.has("tls") => t.absent(&["tls"], span, no_cert, help),
                _ => {}
            }
            if http == Protocol::Https && l.redirect_https {
                t.error(
                    t.pos("redirect_https").unwrap_or_default(),
                    "redirect_https on an https listener would redirect to itself forever",
                    "put redirect_https = true on the plain http listener",
                );
            }
            if http == Protocol::Http {
                if let Some(span) = t.pos("tls.0") {
                    t.error(
                        span,
                        "[[listener.tls]] on a listener that does not speak TLS",
                        "set protocol = \"https\" on this listener, or remove the [[listener.tls]] entries",
                    );
                }
                if let (Some(span), Some(_)) = (t.pos("hsts"), l.hsts) {
                    t.error(
                        span,
                        "hsts on a plain http listener: browsers ignore Strict-Transport-Security over http",
                        "move hsts = \"1y\" to the https listener",
                    );
                }
            }
        }
        None => {}
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
    let span = t.pos("protocol").unwrap_or_default();
    let known = Protocol::from_word(&lower);
    match &known {
        Some(_) if lower != written => t.error(
            span,
            format!("unknown protocol {written:?}"),
            format!("names are lowercase: write protocol = {lower:?}"),
        ),
        Some(_) => {}
        None => {
            let (message, help) = Protocol::unknown(&written);
            t.error(span, message, help);
        }
    }
    known
}

/// A pool name that must be defined.
fn pool_ref<'p>(pools: &'p [&str]) -> impl Fn(&Val<'_>) -> Result<String, Bad> + 'p {
    move |v: &Val<'_>| {
        let name = v.str()?;
        if pools.contains(&name) {
            return Ok(name.to_string());
        }
        let help = match pools {
            [] => format!("define it: [pool.{name}] with servers = [{{ addr = \"host:port\" }}]"),
            _ => format!("use one of: {}, or define [pool.{name}]", pools.join(", ")),
        };
        Err(Bad::Value(format!("no pool named {name:?}"), help))
    }
}

/// An address block such as `10.0.0.0/8`.
fn cidr(v: &Val<'_>) -> Result<Cidr, Bad> {
    let s = v.str()?;
    Cidr::parse(s).ok_or_else(|| {
        Bad::Value(
            format!("{s:?} is not an address block"),
            "write an address or a block: \"127.0.0.1\", \"10.0.0.0/8\", \"fd00::/8\"".into(),
        )
    })
}

/// `accept_proxy_protocol` and `trusted_proxies`, which go together.
fn accept_proxy(
    t: &Table<'_>,
    accept: Option<bool>,
    trusted: Option<Vec<Cidr>>,
) -> Option<Vec<Cidr>> {
    let on = accept == Some(true);
    let list = "list who may send PROXY headers: trusted_proxies = [\"10.0.0.0/8\"]";
    match (trusted, t.pos("trusted_proxies")) {
        (Some(_), Some(span)) if !on => {
            let message = "trusted_proxies is set but accept_proxy_protocol is not true";
            let help = "add accept_proxy_protocol = true, or remove trusted_proxies";
            match accept {
                Some(_) => t.error(span, message, help),
                None if !t.has("accept_proxy_protocol") => {
                    t.absent(&["accept_proxy_protocol"], span, message, help)
                }
                None => {}
            }
            None
        }
        (Some(blocks), Some(span)) => {
            if t.count("trusted_proxies") == Some(0) {
                t.error(
                    span,
                    "trusted_proxies is empty, so every connection would be refused",
                    list,
                );
            }
            Some(blocks)
        }
        _ => {
            if on && !t.has("trusted_proxies") {
                let span = t.pos("accept_proxy_protocol").unwrap_or_default();
                t.absent(
                    &["trusted_proxies"],
                    span,
                    "accept_proxy_protocol = true needs trusted_proxies",
                    list,
                );
            }
            None
        }
    }
}

const CERT_HELP: &str = "write cert = \"PATH\" (PEM, full chain, leaf first) and key = \"PATH\" (PEM private key of that leaf); make one with: openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=example.com -addext subjectAltName=DNS:example.com -keyout key.pem -out cert.pem";

/// The `[[listener.tls]]` pairs, each loaded now.
fn certificates(t: &Table<'_>, certs: Vec<(usize, Table<'_>)>) -> Vec<CertPair> {
    let mut pairs = Vec::new();
    for (_, c) in certs {
        let cert = c.need("cert", string, "[[listener.tls]] has no cert", CERT_HELP);
        let key = c.need("key", string, "[[listener.tls]] has no key", CERT_HELP);
        let (cert_at, key_at) = (
            c.pos("cert").unwrap_or_default(),
            c.pos("key").unwrap_or_default(),
        );
        c.finish();
        let (Some(cert), Some(key)) = (cert, key) else {
            continue;
        };
        let r = t.report();
        let pair = CertPair {
            cert: r.path(&cert),
            key: r.path(&key),
        };
        if let Err(e) = crate::tls::load_pair(&pair) {
            // Point at the key line when the key is what's wrong.
            let span = match &e {
                TlsError::Read { path, .. } if *path == pair.key => key_at,
                TlsError::NoKey { .. } | TlsError::BadKey { .. } => key_at,
                _ => cert_at,
            };
            let help = match &e {
                TlsError::KeyMismatch { .. } => {
                    "use the key the certificate was made for (compare `openssl x509 -noout -pubkey -in CERT` with `openssl pkey -pubout -in KEY`)"
                }
                TlsError::NoName { .. } => {
                    "issue the certificate with subjectAltName DNS names, e.g. -addext subjectAltName=DNS:example.com,DNS:*.example.com"
                }
                _ => CERT_HELP,
            };
            t.error(span, e.to_string(), help);
        }
        pairs.push(pair);
    }
    pairs
}

/// A `[[listener.route]]`, or `None` when its host or target is wrong (reported; a route
/// with another wrong condition stays in the plan, for the checks across pools); the pools
/// it names are added to `named`.
fn route(t: &Table<'_>, pools: &[&str], named: &mut Vec<String>) -> Option<RoutePlan> {
    let mut m = Matcher::default();
    let ok = t.set("host", &mut m.host, |v| host(v).map(Some));
    t.set("path_prefix", &mut m.path_prefix, |v| {
        let p = v.str()?;
        match p.starts_with('/') {
            true => Ok(Some(p.to_string())),
            false => Err(Bad::Value(
                format!("path_prefix {p:?} does not start with /"),
                format!("write \"/{p}\""),
            )),
        }
    });
    t.set("method", &mut m.method, |v| {
        let s = v.str()?;
        Method::from_bytes(s.to_ascii_uppercase().as_bytes())
            .map(Some)
            .map_err(|_| {
                Bad::Value(
                    format!("{s:?} is not an HTTP method"),
                    "write e.g. \"GET\" or \"POST\"".into(),
                )
            })
    });
    if let Some((n, v)) = name_value(t, "header") {
        match HeaderName::from_bytes(n.as_bytes()) {
            Ok(name) => m.header = Some((name, v)),
            Err(_) => {
                let help = "write header = { name = \"x-canary\", value = \"1\" }";
                let span = t.pos("header").unwrap_or_default();
                t.error(span, format!("{n:?} is not a header name"), help);
            }
        }
    }
    m.cookie = name_value(t, "cookie");
    let pool = t.get("pool", pool_ref(pools));
    named.extend(t.text("pool").map(String::from));
    let mut parts = Vec::new();
    let mut good = true;
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
        (None, Some(span)) => {
            if t.count("split") == Some(0) {
                let help = "write split = [ { pool = \"v1\", weight = 90 }, { pool = \"v2\", weight = 10 } ]";
                t.error(span, "split is empty", help);
                good = false;
            }
            good.then_some(Target::Split(parts))
        }
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
    let target = target?;
    ok.then_some(RoutePlan { matcher: m, target })
}

/// A route's `host`: `api.example.com` or `*.example.com`.
fn host(v: &Val<'_>) -> Result<HostMatch, Bad> {
    let written = v.str()?;
    let host = written.trim().to_ascii_lowercase();
    if host.is_empty()
        || host.contains('/')
        || host.contains(':')
        || host.chars().skip(1).any(|c| c == '*')
    {
        return Err(Bad::Value(
            format!("host {written:?} is not a host name"),
            "write a name without port or path: \"api.example.com\" or \"*.example.com\"".into(),
        ));
    }
    if let Some(rest) = host.strip_prefix("*.") {
        Ok(HostMatch::Suffix(format!(".{rest}")))
    } else if host.starts_with('*') {
        Err(Bad::Value(
            format!("wildcard host {written:?} must start with \"*.\""),
            "write \"*.example.com\"".into(),
        ))
    } else {
        Ok(HostMatch::Exact(host))
    }
}

/// `header = { name, value }` or `cookie = { name, value }`: both are needed.
fn name_value(t: &Table<'_>, key: &'static str) -> Option<(String, String)> {
    let nv = t.table(key)?;
    let help = format!("write {key} = {{ name = \"x-canary\", value = \"1\" }}");
    let name = nv.need("name", string, format!("{key} has no name"), help.clone());
    let value = nv.need("value", string, format!("{key} has no value"), help);
    nv.finish();
    Some((name?, value?))
}

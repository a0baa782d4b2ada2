//! `[pool.NAME]`: how the pool balances, its servers, its timeouts and keep-alive, and how it
//! reaches its servers (`upstream_protocol`, `tls = {...}`, whose files are loaded here so
//! that a bad CA or client pair is an error at the line naming it). The failure-handling
//! sections are read by `read/failover.rs`.

use http::HeaderName;
use std::collections::HashSet;

use super::cursor::Table;
use super::failover;
use super::value::{
    Bad, ServerAddr, Val, bad, boolean, duration, int, one_or_list, positive, resolver_addr,
    server_addr, string, word,
};
use crate::config::{
    DnsPlan, HashKey, HealthKind, NamedServer, PoolPlan, RESOLVE_MIN_INTERVAL, ServerPlan,
    Timeouts, UpstreamProtocol,
};
use crate::tls::{CertPair, TlsError, UpstreamTlsOptions};

/// A pool written without `servers` whose name is near another pool's (`[pool.ap.sticky]`
/// beside `[pool.app]`): whether it is a typo is known once the listeners are read (a pool
/// that none sends to), so its error is left to `cross::check`.
pub(super) struct NearMiss {
    pub(super) pool: String,
    pub(super) span: std::ops::Range<usize>,
    /// The section as it should have been written: `[pool.app.sticky]`, `[pool.app]`.
    pub(super) meant: String,
}

/// The pool `name` (`names`: every pool's). A wrong value is reported and the default kept,
/// so that the checks across pools still see the pool; with an error recorded, the plan is
/// never run.
pub(super) fn read(t: &Table<'_>, name: &str, names: &[&str]) -> (PoolPlan, Option<NearMiss>) {
    let mut p = PoolPlan {
        name: name.to_string(),
        ..PoolPlan::default()
    };
    let algorithm_known = set!(t, p.algorithm, word);
    let hash_known = set!(t, p.hash_key, hash_key);
    set!(t, p.keepalive, int(0, 100_000));
    let help =
        "write e.g. keepalive_timeout = \"60s\"; to keep no idle connection, set keepalive = 0";
    set!(t, p.keepalive_timeout, positive(help));
    if let Some(to) = t.table("timeouts") {
        timeouts(&to.named("timeouts."), &mut p.timeouts);
    }
    set!(t, p.host_header, word);
    let servers = t.tables("servers");
    // What a server does not say, the pool does.
    let mut server = ServerPlan::default();
    server_keys(t, &mut server);
    set!(t, p.queue_size, int(0, 1_000_000));
    let help = "write e.g. queue_timeout = \"10s\"; to let no request wait, set queue_size = 0";
    set!(t, p.queue_timeout, positive(help));
    p.health = t.table("health").map(|h| failover::health(&h));
    if let Some(r) = t.table("retry") {
        failover::retry(&r, &mut p.retry);
    }
    p.sticky = t.table("sticky").and_then(|s| failover::sticky(&s));
    let protocol_known = set!(t, p.upstream_protocol, word);
    p.tls = t.table("tls").map(|tls| upstream_tls(&tls, name));
    let help = "write e.g. tunnel_idle_timeout = \"1h\"; zero would close every WebSocket at once";
    set!(t, p.tunnel_idle_timeout, positive(help));

    let mut seen = HashSet::new();
    for (_, st) in &servers {
        match read_server(st, &server, name, &mut seen) {
            Some(Entry::Addr(s)) => p.servers.push(s),
            Some(Entry::Named(mut n)) => {
                n.at = p.servers.len();
                p.named.push(n);
            }
            None => {}
        }
    }
    if p.named.is_empty() {
        p.lone_server_rule();
    }
    dns(t, &mut p);
    let no_servers = format!("pool {name:?} has no servers");
    let help = "add servers = [{ addr = \"host:port\" }]";
    let others: Vec<&str> = names.iter().copied().filter(|n| *n != name).collect();
    let near = crate::config::suggest::nearest_name(name, &others);
    let mut near_miss = None;
    match t.count("servers") {
        Some(0) => t.error_at("servers", no_servers, help),
        None if !t.has("servers") && near.is_some() => {
            let sections = ["health", "retry", "sticky", "tls", "timeouts"];
            let meant = match (near, t.keys().as_slice()) {
                (Some(n), [one]) if sections.contains(one) => format!("[pool.{n}.{one}]"),
                (n, _) => format!("[pool.{}]", n.unwrap_or_default()),
            };
            near_miss = Some(NearMiss {
                pool: name.to_string(),
                span: t.span(),
                meant,
            });
        }
        None if !t.has("servers") => t.absent(&["servers"], t.span(), no_servers, help),
        _ => {}
    }
    if hash_known
        && algorithm_known
        && p.hash_key != HashKey::ClientIp
        && !p.algorithm.uses_hash_key()
    {
        let only = "hash_key is only used by algorithm = \"hash\" or \"maglev\", not";
        let message = format!("{only} {:?}", p.algorithm.as_str());
        let span = t.pos("hash_key").unwrap_or_default();
        let help = "set algorithm = \"hash\" or remove hash_key";
        match t.has("algorithm") {
            true => t.error(span, message, help),
            false => t.absent(&["algorithm"], span, message, help),
        }
    }
    if protocol_known {
        protocol_rules(t, &p);
    }
    t.finish();
    // A misspelt `servers` has its own error.
    (p, near_miss.filter(|_| !t.meant("servers")))
}

/// `hash_key`: `client_ip`, `uri`, `header:NAME`, `cookie:NAME` or `query:NAME`.
fn hash_key(v: &Val<'_>) -> Result<HashKey, Bad> {
    let s = v.str()?;
    let key = match s.split_once(':') {
        None if s == "client_ip" => Some(HashKey::ClientIp),
        None if s == "uri" => Some(HashKey::Uri),
        Some(("header", h)) => HeaderName::from_bytes(h.as_bytes())
            .ok()
            .map(HashKey::Header),
        Some(("cookie", n)) if !n.is_empty() => Some(HashKey::Cookie(n.to_string())),
        Some(("query", n)) if !n.is_empty() => Some(HashKey::Query(n.to_string())),
        _ => None,
    };
    let help = "use client_ip, uri, header:NAME, cookie:NAME or query:NAME";
    key.ok_or_else(|| bad(format!("hash_key {s:?} is not understood"), help))
}

/// `timeouts = { connect, read, send, client_body }`. A zero timeout fails every connect or
/// read at once; nginx rejects it too.
fn timeouts(t: &Table<'_>, to: &mut Timeouts) {
    let help = "write e.g. \"5s\"; a timeout of zero fails every try at once";
    set!(t, to.connect, positive(help));
    set!(t, to.read, positive(help));
    set!(t, to.send, positive(help));
    set!(t, to.client_body, positive(help));
    t.finish();
}

/// The keys a server takes from its pool when it does not say them: passive health, slow
/// start and `max_conns`.
fn server_keys(t: &Table<'_>, s: &mut ServerPlan) {
    failover::passive(t, &mut s.passive);
    set!(t, s.slow_start, duration);
    set!(t, s.max_conns, int(0, 1_000_000));
}

/// A server entry: written with its address, or with a name that `discovery` resolves.
enum Entry {
    Addr(ServerPlan),
    Named(NamedServer),
}

/// One of `servers = [...]`, over the pool's `defaults`; `None` when its address or weight
/// is wrong (reported). `seen`: the addresses and names so far.
fn read_server(
    t: &Table<'_>,
    defaults: &ServerPlan,
    pool: &str,
    seen: &mut HashSet<String>,
) -> Option<Entry> {
    let mut s = defaults.clone();
    let no_addr = format!("a server of pool {pool:?} has no addr");
    let addr = t.need(
        "addr",
        server_addr,
        no_addr,
        "write { addr = \"127.0.0.1:9001\" }",
    );
    let written = t.text("addr").map(str::trim).unwrap_or_default();
    s.name = written.to_string();
    let mut resolve = false;
    t.set("resolve", &mut resolve, boolean);
    set!(t, s.name, string);
    let weight_known = set!(t, s.weight, int(1, 1000));
    set!(t, s.backup, boolean);
    set!(t, s.down, boolean);
    set!(t, s.drain, boolean);
    if s.drain && s.down {
        let help = "keep down = true (out of service now) or drain = true (no new requests; the ones running finish)";
        t.error_at("drain", "a server cannot be both down and draining", help);
    }
    server_keys(t, &mut s);
    let key = match &addr {
        Some(ServerAddr::Addr(a)) => Some(a.to_string()),
        Some(ServerAddr::Name { host, port }) => Some(match port {
            Some(p) => format!("{}:{p}", host.to_ascii_lowercase()),
            None => host.to_ascii_lowercase(),
        }),
        None => None,
    };
    if let Some(k) = key
        && !seen.insert(k.clone())
    {
        let help = "list each server once; raise its weight to give it more traffic";
        t.error_at(
            "addr",
            format!("server {k} appears twice in pool {pool:?}"),
            help,
        );
    }
    if let (Some(ServerAddr::Addr(a)), true) = (&addr, resolve) {
        let help = format!(
            "remove resolve, or write the server's host name, e.g. {{ addr = \"app.internal:{}\", resolve = true }}",
            a.port()
        );
        t.error_at(
            "resolve",
            format!("resolve = true asks DNS again for a host name, but {a} is an address"),
            help,
        );
    }
    if let Some(ServerAddr::Name { port: None, .. }) = &addr
        && t.has("weight")
    {
        let help = "remove weight: each SRV record's weight is its server's (set them in DNS)";
        t.error_at("weight", "an SRV name's records give the weights", help);
    }
    t.finish();
    match addr? {
        ServerAddr::Addr(a) => {
            s.addr = a;
            weight_known.then_some(Entry::Addr(s))
        }
        ServerAddr::Name { host, port } => {
            let origin = t.report().origin(t.pos("addr").unwrap_or(t.span()).start);
            weight_known.then(|| {
                Entry::Named(NamedServer {
                    written: written.to_string(),
                    host,
                    port,
                    resolve,
                    server: s,
                    at: 0,
                    origin,
                })
            })
        }
    }
}

/// The pool's DNS keys: `resolver`, `resolver_timeout`, `resolver_valid`, `init_addr`.
/// Each is an error in a pool that has no use for it (as `hash_key` is without hashing).
fn dns(t: &Table<'_>, p: &mut PoolPlan) {
    let mut d = DnsPlan::default();
    let resolver_read = t.set("resolver", &mut d.resolvers, one_or_list(resolver_addr));
    let help = "write e.g. resolver_timeout = \"5s\"";
    let timeout_read = t.set("resolver_timeout", &mut d.timeout, positive(help));
    let valid_known = t.set("resolver_valid", &mut d.valid, duration);
    set!(t, d.init_addr, word);
    if valid_known && t.has("resolver_valid") && d.valid < RESOLVE_MIN_INTERVAL {
        t.error_at(
            "resolver_valid",
            format!(
                "resolver_valid = {:?} is shorter than the {}s between two questions about a name",
                crate::config::format_duration(d.valid),
                RESOLVE_MIN_INTERVAL.as_secs()
            ),
            "write e.g. resolver_valid = \"30s\" (the longest an answer is used; a shorter TTL is followed)",
        );
    }
    let pool = &p.name;
    let example = "e.g. servers = [ { addr = \"app.internal:8080\", resolve = true } ]";
    // Each pair of keys, and the servers that use them.
    #[rustfmt::skip]
    let uses = [
        (["resolver", "resolver_timeout"], !p.named.is_empty(), "servers written with a host name", "write a server's host name"),
        (["resolver_valid", "init_addr"], p.named.iter().any(|n| n.resolve), "servers with resolve = true", "add resolve = true to a server written with a host name"),
    ];
    for (keys, used, servers, fix) in uses {
        for key in keys.into_iter().filter(|k| !used && t.has(k)) {
            let message = format!("{key} is used only for {servers}, and pool {pool:?} has none");
            t.error_at(key, message, format!("remove {key}, or {fix}, {example}"));
        }
    }
    p.dns = d;
    // The file is refused already; `check` still asks the names of a file with errors (all
    // problems in one run), but not of a pool whose resolver is not as written: the
    // answers of another resolver would say nothing true.
    if !(resolver_read && timeout_read) {
        p.named.clear();
    }
}

/// What `upstream_protocol` rules out: a gRPC check (HTTP/2) over HTTP/1.1, and h2c
/// (cleartext) with `tls`.
fn protocol_rules(t: &Table<'_>, p: &PoolPlan) {
    let grpc = matches!(
        p.health.as_ref().map(|h| &h.kind),
        Some(HealthKind::Grpc { .. })
    );
    let pool = &p.name;
    if grpc && p.upstream_protocol == UpstreamProtocol::H1 {
        let how = match t.pos("upstream_protocol") {
            Some(_) => "upstream_protocol = \"h1\"",
            None => "HTTP/1.1, the default",
        };
        let want = if t.pos("tls").is_some() { "h2" } else { "h2c" };
        let message = format!(
            "a type = \"grpc\" health check speaks HTTP/2, but pool {pool:?} speaks {how} to its servers"
        );
        let help = format!(
            "set upstream_protocol = \"{want}\" in [pool.{pool}] (gRPC servers speak only HTTP/2), or use type = \"tcp\""
        );
        t.error(
            t.pos("health.type").or(t.pos("health")).unwrap_or_default(),
            message,
            help,
        );
    }
    if p.upstream_protocol == UpstreamProtocol::H2c && t.pos("tls").is_some() {
        let message = "upstream_protocol = \"h2c\" is cleartext, but the pool has tls";
        t.error_at(
            "upstream_protocol",
            message,
            "use upstream_protocol = \"h2\" for HTTP/2 over TLS",
        );
    }
}

/// The pool's `tls = {...}`: re-encrypt to the servers. Its files are loaded now.
fn upstream_tls(t: &Table<'_>, pool: &str) -> UpstreamTlsOptions {
    let r = t.report();
    let ca = t.get("ca", string);
    let server_name = t.get("server_name", string);
    let (cert, key) = (t.get("client_cert", string), t.get("client_key", string));
    let insecure_skip_verify = t.get("insecure_skip_verify", boolean) == Some(true);
    let client = match (&cert, &key) {
        (Some(cert), Some(key)) => Some(CertPair {
            cert: r.path(cert),
            key: r.path(key),
        }),
        (None, None) => None,
        _ => {
            let (written, other) = if cert.is_some() {
                ("client_cert", "client_key")
            } else {
                ("client_key", "client_cert")
            };
            if !t.has(other) {
                let help = "give both client_cert = \"PATH\" and client_key = \"PATH\", or neither";
                let span = t.pos(written).unwrap_or_default();
                t.absent(
                    &[other],
                    span,
                    "client_cert and client_key go together",
                    help,
                );
            }
            None
        }
    };
    let opts = UpstreamTlsOptions {
        ca: ca.as_ref().map(|c| r.path(c)),
        server_name,
        client,
        insecure_skip_verify,
    };
    if let Some(n) = &opts.server_name
        && rustls_pki_types::ServerName::try_from(n.as_str()).is_err()
    {
        let help = "write the name the servers' certificates carry, e.g. \"backend.internal\"";
        t.error_at(
            "server_name",
            format!("server_name {n:?} is not a host name"),
            help,
        );
    }
    if let Err(e) = crate::tls::client_config(pool, &opts, &[]) {
        let file = |path: &std::path::Path| {
            let keys = [("ca", &ca), ("client_cert", &cert), ("client_key", &key)];
            let key = keys
                .into_iter()
                .find(|(_, v)| v.as_ref().is_some_and(|v| r.path(v) == path));
            key.and_then(|(k, _)| t.pos(k))
        };
        let span = match &e {
            TlsError::Read { path, .. } | TlsError::NoCertificate { path } => file(path),
            TlsError::NoKey { .. } | TlsError::BadKey { .. } => t.pos("client_key"),
            _ => None,
        };
        let help = "ca = \"PATH\" is a PEM file of CA certificates; client_cert/client_key are PEM files of one pair";
        t.error(
            span.unwrap_or(t.span()),
            format!("pool {pool:?} tls: {e}"),
            help,
        );
    }
    t.finish();
    opts
}

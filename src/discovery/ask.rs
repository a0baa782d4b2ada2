//! Asking: one [`Question`] to DNS (hickory-resolver: A and AAAA, or SRV and then the A and
//! AAAA of each target) or to the C library (`getaddrinfo`), within its time limit.
//!
//! hickory keeps no cache here (`cache_size = 0`): `book.rs` decides when a name is asked
//! again, from the TTLs of the records, so each question reaches the DNS server.

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::future::join_all;
use hickory_resolver::config::{
    LookupIpStrategy, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{IntoName, RData};
use hickory_resolver::{Resolver, TokioResolver};

use super::answer::{Answer, Asked, Lookup, Question, Target};

/// Ask `q`, within `q.timeout`.
pub async fn ask(q: &Question) -> Lookup {
    let asking = async {
        match (&q.asked, q.port) {
            (Asked::Libc, Some(port)) => libc(&q.host, port).await,
            _ => dns(q).await,
        }
    };
    match tokio::time::timeout(q.timeout, asking).await {
        Ok(lookup) => lookup,
        Err(_) => Err(format!(
            "no answer within {} (resolver_timeout)",
            crate::config::format_duration(q.timeout)
        )),
    }
}

/// `getaddrinfo` on a blocking thread (tokio's `lookup_host`).
async fn libc(host: &str, port: u16) -> Lookup {
    match tokio::net::lookup_host((host, port)).await {
        Ok(addrs) => {
            let targets: Vec<Target> = addrs
                .map(|addr| Target {
                    backup: false,
                    addr,
                    weight: None,
                })
                .collect();
            if targets.is_empty() {
                Ok(Answer::none("no address", None))
            } else {
                Ok(Answer::of(targets, None))
            }
        }
        // EAI_NONAME and EAI_AGAIN look alike here; for a name resolved only at start and
        // at reloads, both mean it cannot be used.
        Err(e) => Ok(Answer::none(e.to_string(), None)),
    }
}

fn resolver(q: &Question) -> Result<TokioResolver, String> {
    let mut builder = match &q.asked {
        Asked::Servers(list) => {
            let servers = list
                .iter()
                .map(|a| {
                    let mut ns = NameServerConfig::udp_and_tcp(a.ip());
                    for c in &mut ns.connections {
                        c.port = a.port();
                    }
                    ns
                })
                .collect();
            Resolver::builder_with_config(
                ResolverConfig::from_name_servers(servers),
                TokioRuntimeProvider::default(),
            )
        }
        _ => TokioResolver::builder_tokio()
            .map_err(|e| format!("cannot read the system's DNS configuration: {e}"))?,
    };
    let o: &mut ResolverOpts = builder.options_mut();
    // Two tries in the time limit: one lost UDP datagram does not fail the question.
    o.timeout = (q.timeout / 2).max(Duration::from_millis(100));
    o.attempts = 2;
    o.cache_size = 0;
    // Every A and AAAA address is a server (nginx resolves both, `ipv6=on`).
    o.ip_strategy = LookupIpStrategy::Ipv4AndIpv6;
    if matches!(q.asked, Asked::Servers(_)) {
        // The pool named its DNS servers: ask them, not /etc/hosts.
        o.use_hosts_file = ResolveHosts::Never;
    }
    builder.build().map_err(|e| e.to_string())
}

async fn dns(q: &Question) -> Lookup {
    let r = resolver(q)?;
    match q.port {
        Some(port) => {
            let (addrs, ttl) = match ips(&r, &q.host).await {
                Ok(found) => found,
                Err(e) => return no_records(&e),
            };
            let targets = addrs
                .into_iter()
                .map(|ip| Target {
                    backup: false,
                    addr: SocketAddr::new(ip, port),
                    weight: None,
                })
                .collect();
            Ok(Answer::of(targets, Some(ttl)))
        }
        None => srv(&r, &q.host).await,
    }
}

/// The A and AAAA addresses of `name`, and the shortest TTL among the records.
async fn ips(
    r: &TokioResolver,
    name: impl IntoName,
) -> Result<(Vec<std::net::IpAddr>, Duration), NetError> {
    let found = r.lookup_ip(name).await?;
    let ttl = found
        .as_lookup()
        .answers()
        .iter()
        .map(|rec| rec.ttl)
        .min()
        .unwrap_or(0);
    Ok((found.iter().collect(), Duration::from_secs(u64::from(ttl))))
}

/// An answer of no address when DNS said the name has none; else no answer.
fn no_records(e: &NetError) -> Lookup {
    if e.is_no_records_found() {
        let why = if e.is_nx_domain() {
            "NXDOMAIN: no such name"
        } else {
            "no record of that type"
        };
        Ok(Answer::none(why, None))
    } else {
        Err(e.to_string())
    }
}

/// SRV records: each target's addresses with the record's port and weight; the records of
/// the lowest priority are primaries, the others backups.
async fn srv(r: &TokioResolver, name: &str) -> Lookup {
    let found = match r.srv_lookup(name).await {
        Ok(found) => found,
        Err(e) => return no_records(&e),
    };
    let mut ttl = u32::MAX;
    let mut records = Vec::new();
    for rec in found.answers() {
        if let RData::SRV(s) = &rec.data {
            ttl = ttl.min(rec.ttl);
            // A target of "." says the service is not offered (RFC 2782).
            if !s.target.is_root() {
                records.push(s.clone());
            }
        }
    }
    if records.is_empty() {
        return Ok(Answer::none(
            "no SRV record with a target",
            Some(Duration::from_secs(u64::from(ttl.min(3600)))),
        ));
    }
    let asked = join_all(records.iter().map(|s| ips(r, s.target.clone()))).await;
    let lowest = records.iter().map(|s| s.priority).min().unwrap_or(0);
    let mut targets = Vec::new();
    let mut missing = Vec::new();
    for (s, found) in records.iter().zip(asked) {
        match found {
            Ok((addrs, t)) => {
                ttl = ttl.min(u32::try_from(t.as_secs()).unwrap_or(u32::MAX));
                targets.extend(addrs.into_iter().map(|ip| Target {
                    backup: s.priority > lowest,
                    addr: SocketAddr::new(ip, s.port),
                    weight: Some(u32::from(s.weight).clamp(1, 1000)),
                }));
            }
            Err(e) => missing.push(format!("{}: {e}", s.target)),
        }
    }
    let ttl = Some(Duration::from_secs(u64::from(ttl)));
    if targets.is_empty() {
        return Ok(Answer::none(
            format!("no address for any SRV target ({})", missing.join("; ")),
            ttl,
        ));
    }
    if !missing.is_empty() {
        tracing::warn!(
            "SRV {name}: left out the targets without an address: {}",
            missing.join("; ")
        );
    }
    Ok(Answer::of(targets, ttl))
}

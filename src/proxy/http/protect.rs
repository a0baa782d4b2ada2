//! The request checks of a listener or a route, for both HTTP engines: access lists
//! (`allow` / `deny`, 403), refusing rules (`[[…block]]`, 403 or the rule's `status`) and
//! rate limits (`[[…limit]]`, 429 with `Retry-After`), in that order, so a request refused
//! by the first two spends no rate budget. Also the client's address as the checks see it: the peer, or
//! what `X-Forwarded-For` says when the peer is one of the listener's `trusted_proxies`
//! (nginx's `real_ip` module with `real_ip_recursive on`).
//!
//! A [`Guard`] with nothing configured costs one branch per request. A configured one reads
//! the request through [`RequestView`] and allocates nothing: the rate-limit key is the
//! address's bytes on the stack, or a slice of the header or cookie.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Instant;

use regex::bytes::Regex;

use super::view::RequestView;
use crate::cluster::Cluster;
use crate::config::{Cidr, GuardPlan, LimitKey, LimitPlan};
use crate::error::ProxyError;
use crate::guard::{Acl, Decision, RateLimiter, RequestRule, rules};

/// One rate limit and its table of keys.
pub struct Limit {
    pub plan: LimitPlan,
    pub limiter: Arc<RateLimiter>,
    /// A name every balancer gives this limit alike (`web/0`, `web/route0/0`): the scope of
    /// its keys in Redis when it is shared.
    pub scope: String,
}

/// The table of one limit: for `shared = true` with a `Cluster` at hand, one synced through
/// Redis under `scope` (`src/cluster/rate.rs`), else this balancer's own. A `previous` table
/// of the same limit is kept when it is of the same kind and link, and moved onto a new
/// link (a reload that changed `[redis]`) with its keys. The request path is the same.
fn limiter(
    l: &LimitPlan,
    scope: &str,
    previous: Option<&Arc<RateLimiter>>,
    cluster: Option<&Arc<Cluster>>,
) -> Arc<RateLimiter> {
    // Without a link (`explain`, which serves nothing), a shared limit is counted here.
    let cluster = cluster.filter(|_| l.shared);
    match (previous, cluster) {
        (Some(p), None) if !p.is_shared() => p.clone(),
        (Some(p), Some(c)) if c.holds_limiter(p) => p.clone(),
        (Some(p), Some(c)) if p.is_shared() => {
            c.adopt_limiter(scope, p);
            p.clone()
        }
        (_, Some(c)) => c.rate_limiter(scope, l.rate, l.burst, l.size),
        (_, None) => Arc::new(RateLimiter::new(l.rate, l.burst, l.size)),
    }
}

/// What protects one listener or one route.
pub struct Guard {
    acl: Acl,
    blocks: Vec<RequestRule>,
    /// Each block rule's status, in the order of `blocks`.
    block_status: Vec<http::StatusCode>,
    limits: Vec<Limit>,
    empty: bool,
}

impl Default for Guard {
    fn default() -> Guard {
        Guard::none()
    }
}

impl Guard {
    /// Nothing to check.
    pub const fn none() -> Guard {
        Guard {
            acl: Acl::everyone(),
            blocks: Vec::new(),
            block_status: Vec::new(),
            limits: Vec::new(),
            empty: true,
        }
    }

    /// The guard of `plan`, whose limits are named `{scope}/{index}`; its `shared = true`
    /// limits are counted through `cluster` (the running `[redis]` link). A limit that
    /// `previous` (the guard this one replaces on a reload) had with the same settings
    /// keeps its table, so a reload forgets no client's spent allowance.
    pub fn build(
        plan: &GuardPlan,
        scope: &str,
        previous: Option<&Guard>,
        cluster: Option<&Arc<Cluster>>,
    ) -> Guard {
        let limits = plan
            .limits
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let scope = format!("{scope}/{i}");
                // A shared table is synced under its name: kept only where it keeps it.
                let kept = previous
                    .and_then(|p| {
                        let same =
                            |old: &&Limit| old.plan == *l && (!l.shared || old.scope == scope);
                        p.limits.iter().find(same)
                    })
                    .map(|old| &old.limiter);
                Limit {
                    plan: l.clone(),
                    limiter: limiter(l, &scope, kept, cluster),
                    scope,
                }
            })
            .collect();
        let blocks = plan
            .blocks
            .iter()
            .map(|b| RequestRule {
                methods: b.methods.clone(),
                // Checked when the file was read.
                path: b.path_regex.as_deref().and_then(|r| Regex::new(r).ok()),
                header: b.header.as_ref().and_then(|(n, r)| {
                    let name = http::HeaderName::from_bytes(n.as_bytes()).ok()?;
                    Some((name, Regex::new(r).ok()?))
                }),
            })
            .collect();
        // Checked when the file was read (400 to 599).
        let status = |b: &crate::config::BlockPlan| http::StatusCode::from_u16(b.status).ok();
        Guard {
            acl: Acl::new(&plan.allow, &plan.deny),
            blocks,
            block_status: plan
                .blocks
                .iter()
                .map(|b| status(b).unwrap_or(http::StatusCode::FORBIDDEN))
                .collect(),
            limits,
            empty: plan.is_empty(),
        }
    }

    /// Nothing to check.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.empty
    }

    /// The limits, for the admin view and tests.
    pub fn limits(&self) -> &[Limit] {
        &self.limits
    }

    /// Check a request from `client` whose path is `path` as sent (without the query) and
    /// `normal` normalised (the same slice when nothing changed).
    pub fn check(
        &self,
        req: &impl RequestView,
        client: IpAddr,
        path: &[u8],
        normal: &[u8],
    ) -> Result<(), ProxyError> {
        if self.empty {
            return Ok(());
        }
        let mut now = None;
        let spend = |l: &Limit, key: &[u8]| {
            let at = *now.get_or_insert_with(Instant::now);
            (l.limiter.check(key, at), 0)
        };
        self.walk(req, client, path, normal, spend, None)
    }

    /// What [`Guard::check`] would do with this request, rule by rule in words, without
    /// spending a limit's allowance (for `explain`); `Err` is the refusal it would answer.
    pub fn judge(
        &self,
        req: &impl RequestView,
        client: IpAddr,
        path: &[u8],
        normal: &[u8],
        lines: &mut Vec<String>,
    ) -> Result<(), ProxyError> {
        let now = Instant::now();
        let peek = |l: &Limit, key: &[u8]| l.limiter.peek(key, now);
        self.walk(req, client, path, normal, peek, Some(lines))
    }

    /// The rules in order, stopping at the first that refuses: the access list, the block
    /// rules, then each limit, asked through `limit` (a check that spends, or a peek).
    /// `lines`, when given, gets a sentence per rule (nothing is formatted otherwise).
    fn walk(
        &self,
        req: &impl RequestView,
        client: IpAddr,
        path: &[u8],
        normal: &[u8],
        mut limit: impl FnMut(&Limit, &[u8]) -> (Decision, u64),
        mut lines: Option<&mut Vec<String>>,
    ) -> Result<(), ProxyError> {
        if !self.acl.is_empty() {
            let allowed = self.acl.allows(client);
            if let Some(l) = lines.as_deref_mut() {
                l.push(format!(
                    "allow/deny: {client} is {}",
                    if allowed {
                        "allowed"
                    } else {
                        "not allowed: 403"
                    }
                ));
            }
            if !allowed {
                return Err(ProxyError::Forbidden("the client's address is not allowed"));
            }
        }
        if !self.blocks.is_empty() {
            let both = [path, normal];
            let paths = if path == normal {
                &both[..1]
            } else {
                &both[..]
            };
            let values = |name: &http::HeaderName, re: &Regex| {
                req.header_values(name).any(|v| re.is_match(v))
            };
            let hit = rules::first_match(&self.blocks, req.method(), paths, values);
            if let Some(l) = lines.as_deref_mut() {
                l.push(match hit {
                    Some(i) => format!(
                        "block rule {} matches: {}",
                        i + 1,
                        self.block_status[i].as_u16()
                    ),
                    None => format!("no block rule matches ({})", self.blocks.len()),
                });
            }
            if let Some(i) = hit {
                return Err(ProxyError::Blocked(self.block_status[i]));
            }
        }
        let mut ip = [0u8; 16];
        for l in &self.limits {
            let key: &[u8] = match &l.plan.key {
                LimitKey::ClientIp => ip_bytes(client, &mut ip),
                LimitKey::Header(name) => match req.header_values(name).next() {
                    Some(v) => v,
                    None => {
                        if let Some(out) = lines.as_deref_mut() {
                            out.push(format!("{}: no {name} header, not counted", l.named()));
                        }
                        continue;
                    }
                },
                LimitKey::Cookie(name) => match req.cookie(name) {
                    Some(v) => v.as_bytes(),
                    None => {
                        if let Some(out) = lines.as_deref_mut() {
                            out.push(format!("{}: no {name} cookie, not counted", l.named()));
                        }
                        continue;
                    }
                },
            };
            let (decision, room) = limit(l, key);
            if let Some(out) = lines.as_deref_mut() {
                let value = String::from_utf8_lossy(key);
                let shown = match &l.plan.key {
                    LimitKey::ClientIp => client.to_string(),
                    _ => value.into_owned(),
                };
                out.push(match decision {
                    Decision::Allow => format!(
                        "{} for {shown:?}: {room} more request(s) allowed now",
                        l.named()
                    ),
                    Decision::Deny { retry_after } => format!(
                        "{} for {shown:?}: over the limit: 429, Retry-After {} s",
                        l.named(),
                        retry_after.as_secs().max(1)
                    ),
                });
            }
            if let Decision::Deny { retry_after } = decision {
                return Err(ProxyError::RateLimited { retry_after });
            }
        }
        Ok(())
    }
}

impl Limit {
    /// `limit 50/s burst 5 on client_ip (shared)`, as the file writes it.
    fn named(&self) -> String {
        let key = crate::config::limit_key(&self.plan.key);
        let shared = if self.plan.shared { " (shared)" } else { "" };
        format!(
            "limit {} burst {} on {key}{shared}",
            self.plan.rate, self.plan.burst
        )
    }
}

/// The address's bytes (4 for IPv4, IPv4-mapped IPv6 included, 16 for IPv6).
fn ip_bytes(ip: IpAddr, buf: &mut [u8; 16]) -> &[u8] {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    match ip {
        IpAddr::V4(a) => {
            buf[..4].copy_from_slice(&a.octets());
            &buf[..4]
        }
        IpAddr::V6(a) => {
            buf.copy_from_slice(&a.octets());
            &buf[..]
        }
    }
}

/// Whether `ip` is in one of `blocks`.
pub fn trusted(blocks: &[Cidr], ip: IpAddr) -> bool {
    blocks.iter().any(|b| b.contains(ip))
}

/// One address of an `X-Forwarded-For` list: `1.2.3.4`, `2001:db8::1`, and the forms some
/// proxies write with a port (`1.2.3.4:5678`, `[2001:db8::1]:80`).
pub fn parse_forwarded_ip(s: &[u8]) -> Option<IpAddr> {
    let s = std::str::from_utf8(s).ok()?.trim();
    if let Ok(ip) = s.parse::<IpAddr>() {
        return Some(ip);
    }
    if let Ok(sa) = s.parse::<std::net::SocketAddr>() {
        return Some(sa.ip());
    }
    s.strip_prefix('[')
        .and_then(|r| r.strip_suffix(']'))
        .and_then(|r| r.parse().ok())
}

/// The client of a request from `peer`: when the peer is in `trusted`, the `X-Forwarded-For`
/// list (`lines`, in order) is walked from its end, past every trusted address, and the
/// first untrusted one is the client (nginx's `real_ip_recursive on`). An entry that is not
/// an address stops the walk at the last address believed. Without trust, the peer.
pub fn real_client<'a>(
    peer: IpAddr,
    trusted_blocks: &[Cidr],
    lines: impl Iterator<Item = &'a [u8]>,
) -> IpAddr {
    if trusted_blocks.is_empty() || !trusted(trusted_blocks, peer) {
        return peer;
    }
    // The last entries of the list, newest last: enough for any real chain of proxies.
    const KEEP: usize = 16;
    let mut ring: [Option<IpAddr>; KEEP] = [None; KEEP];
    let mut n = 0usize;
    for line in lines {
        for entry in line.split(|&b| b == b',') {
            if entry.trim_ascii().is_empty() {
                continue;
            }
            ring[n % KEEP] = parse_forwarded_ip(entry);
            n += 1;
        }
    }
    let mut client = peer;
    for back in 0..n.min(KEEP) {
        if !trusted(trusted_blocks, client) {
            break;
        }
        match ring[(n - 1 - back) % KEEP] {
            Some(ip) => client = ip,
            None => break,
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_reload_keeps_the_table_of_a_limit_it_keeps() {
        use crate::config::{LimitKey, LimitPlan, Rate};
        let limit = |count| LimitPlan {
            key: LimitKey::ClientIp,
            rate: Rate {
                count,
                per: std::time::Duration::from_secs(60),
            },
            burst: 0,
            size: 16,
            shared: false,
        };
        let plan = GuardPlan {
            limits: vec![limit(1), limit(2)],
            ..GuardPlan::default()
        };
        let first = Guard::build(&plan, "web", None, None);
        assert_eq!(first.limits()[1].scope, "web/1");
        let next = GuardPlan {
            limits: vec![limit(2), limit(3)],
            ..GuardPlan::default()
        };
        let second = Guard::build(&next, "web", Some(&first), None);
        assert!(Arc::ptr_eq(
            &first.limits()[1].limiter,
            &second.limits()[0].limiter
        ));
        assert!(!Arc::ptr_eq(
            &first.limits()[0].limiter,
            &second.limits()[1].limiter
        ));
    }

    #[tokio::test]
    async fn a_shared_limit_counts_through_the_link_and_follows_a_new_one() {
        use crate::cluster::RedisConfig;
        use crate::config::{LimitKey, LimitPlan, Rate};
        let limit = |shared| LimitPlan {
            key: LimitKey::ClientIp,
            rate: Rate {
                count: 10,
                per: std::time::Duration::from_secs(1),
            },
            burst: 0,
            size: 16,
            shared,
        };
        let plan = |shared| GuardPlan {
            limits: vec![limit(false), limit(shared)],
            ..GuardPlan::default()
        };
        // Two links to nothing (they connect in the background; the limits never wait).
        let stop = crate::shutdown::Shutdown::new();
        let link = |port| {
            let config = RedisConfig {
                addr: format!("127.0.0.1:{port}"),
                ..RedisConfig::default()
            };
            Cluster::start(config, &stop).unwrap()
        };
        let (one, two) = (link(9), link(10));
        let first = Guard::build(&plan(true), "web", None, Some(&one));
        let [local, shared] = [0, 1].map(|i| first.limits()[i].limiter.clone());
        assert!(!local.is_shared() && !one.holds_limiter(&local));
        assert!(shared.is_shared() && one.holds_limiter(&shared));
        // Rebuilt on the same link: the same tables.
        let again = Guard::build(&plan(true), "web", Some(&first), Some(&one));
        assert!(Arc::ptr_eq(&again.limits()[1].limiter, &shared));
        assert!(Arc::ptr_eq(&again.limits()[0].limiter, &local));
        // A new link ([redis] changed): the table moves to it with its keys.
        let moved = Guard::build(&plan(true), "web", Some(&again), Some(&two));
        assert!(Arc::ptr_eq(&moved.limits()[1].limiter, &shared));
        assert!(two.holds_limiter(&shared));
        // shared = false: a local table of its own; shared again: a new shared one.
        let alone = Guard::build(&plan(false), "web", Some(&moved), Some(&two));
        assert!(!alone.limits()[1].limiter.is_shared());
        let back = Guard::build(&plan(true), "web", Some(&alone), Some(&two));
        assert!(back.limits()[1].limiter.is_shared());
        assert!(!Arc::ptr_eq(&back.limits()[1].limiter, &shared));
        // The same settings under another name (moved up the list) are not kept: the
        // other balancers count it under the new name.
        let renamed = GuardPlan {
            limits: vec![limit(true)],
            ..GuardPlan::default()
        };
        let up = Guard::build(&renamed, "web", Some(&back), Some(&two));
        assert_eq!(up.limits()[0].scope, "web/0");
        assert!(!Arc::ptr_eq(
            &up.limits()[0].limiter,
            &back.limits()[1].limiter
        ));
        stop.stop();
    }

    #[test]
    fn the_client_is_the_first_untrusted_address_from_the_right() {
        let trusted = [Cidr::parse("10.0.0.0/8").unwrap()];
        let lines: [&[u8]; 2] = [b"203.0.113.7, 198.51.100.1", b"10.1.1.1"];
        assert_eq!(
            real_client(ip("10.0.0.2"), &trusted, lines.into_iter()),
            ip("198.51.100.1"),
            "the client's own claim (203.0.113.7) is not believed"
        );
        assert_eq!(
            real_client(ip("192.0.2.9"), &trusted, lines.into_iter()),
            ip("192.0.2.9"),
            "an untrusted peer's list is ignored"
        );
        let all_trusted: [&[u8]; 1] = [b"10.2.2.2, 10.3.3.3"];
        assert_eq!(
            real_client(ip("10.0.0.2"), &trusted, all_trusted.into_iter()),
            ip("10.2.2.2")
        );
        let garbage: [&[u8]; 1] = [b"unknown, 10.3.3.3"];
        assert_eq!(
            real_client(ip("10.0.0.2"), &trusted, garbage.into_iter()),
            ip("10.3.3.3"),
            "the walk stops at an entry that is no address"
        );
        let ported: [&[u8]; 1] = [b"[2001:db8::1]:443"];
        assert_eq!(
            real_client(ip("10.0.0.2"), &trusted, ported.into_iter()),
            ip("2001:db8::1")
        );
        assert_eq!(
            real_client(ip("10.0.0.2"), &[], ported.into_iter()),
            ip("10.0.0.2")
        );
    }
}

//! Client-address hashing with nginx's `ip_hash` semantics.
//!
//! The key is the first three octets of an IPv4 address (a whole /24 goes to one server,
//! as in nginx) or the whole IPv6 address; an IPv4-mapped IPv6 address counts as IPv4. The
//! hash is nginx's: start at 89, then `hash = (hash × 113 + byte) mod 6271` per byte, and
//! `hash mod total_weight` lands in the servers' cumulative weights, so weights are honoured.
//! If that server is ineligible the hash is stirred again with the same bytes, up to 20
//! times (nginx's bound), and then the next eligible server after the last one hashed is
//! taken (in a pool, where the mapping is kept over every configured server, such a client
//! goes to the balancer over the servers in rotation instead: see `balance::Stable`). A
//! request without a client address goes to the first eligible server.

use std::net::IpAddr;
use std::sync::Arc;

use super::{Balancer, Explanation, PickContext, label};
use crate::upstream::Server;

/// Rehashes before falling back to the next eligible server (nginx uses 20).
const REHASH: usize = 20;

/// nginx's `ip_hash` over a fixed set of servers.
pub struct IpHash {
    servers: Vec<Arc<Server>>,
    /// `cumulative[i]` = sum of the weights of servers `0..=i`.
    cumulative: Vec<u64>,
}

impl IpHash {
    pub fn new(servers: &[Arc<Server>]) -> IpHash {
        IpHash {
            servers: servers.to_vec(),
            cumulative: servers
                .iter()
                .scan(0u64, |sum, s| {
                    *sum += u64::from(s.weight().max(1));
                    Some(*sum)
                })
                .collect(),
        }
    }
}

fn stir(mut hash: u64, bytes: &[u8]) -> u64 {
    for &b in bytes {
        hash = (hash * 113 + u64::from(b)) % 6271;
    }
    hash
}

/// The bytes `ip_hash` hashes: the first three octets of an IPv4 address, the whole IPv6 one.
fn key_of(client: IpAddr, buf: &mut [u8; 16]) -> &[u8] {
    match client.to_canonical() {
        IpAddr::V4(v4) => {
            buf[..3].copy_from_slice(&v4.octets()[..3]);
            &buf[..3]
        }
        IpAddr::V6(v6) => {
            *buf = v6.octets();
            &buf[..]
        }
    }
}

impl IpHash {
    /// nginx's search: the hashed server, else up to [`REHASH`] rehashes, taking what `take`
    /// accepts; `seen` is told each hash and the server it lands on. `Ok` with the index of
    /// the server found, `Err` with the index of the last server hashed (or `None` when there
    /// is no client address).
    fn search(
        &self,
        client: Option<IpAddr>,
        take: impl Fn(&Server) -> bool,
        mut seen: impl FnMut(u64, usize),
    ) -> Result<usize, Option<usize>> {
        let Some(&total) = self.cumulative.last() else {
            return Err(None);
        };
        let Some(client) = client else {
            return Err(None);
        };
        let mut buf = [0u8; 16];
        let bytes = key_of(client, &mut buf);
        let mut hash = 89;
        let mut i = 0;
        for _ in 0..=REHASH {
            hash = stir(hash, bytes);
            let w = hash % total;
            i = self.cumulative.partition_point(|&c| c <= w);
            seen(hash, i);
            if take(&self.servers[i]) {
                return Ok(i);
            }
        }
        Err(Some(i))
    }

    /// The explanation of a pick (`stable`: of the bounded search of a pool's full mapping).
    fn explain_search(&self, ctx: &PickContext<'_>, stable: bool) -> Explanation {
        let mut e = Explanation::new("ip_hash");
        let total = self.cumulative.last().copied().unwrap_or(0);
        for (i, s) in self.servers.iter().enumerate() {
            let w = self.cumulative[i] - if i == 0 { 0 } else { self.cumulative[i - 1] };
            e.server(s).add("weight", w);
        }
        if let Some(c) = ctx.client {
            let mut buf = [0u8; 16];
            let key = key_of(c, &mut buf);
            let shown: Vec<String> = key.iter().map(|b| b.to_string()).collect();
            e.facts
                .add(
                    "key",
                    if key.len() == 3 {
                        shown.join(".") + ".*"
                    } else {
                        c.to_string()
                    },
                )
                .add("total_weight", total);
            e.step(format!(
                "the key is the client's {}: nginx's hash (89, then x113 + byte mod 6271 per byte), mod the total weight {total}",
                if key.len() == 3 { "/24" } else { "IPv6 address" }
            ));
        }
        let mut tries = Vec::new();
        let found = self.search(ctx.client, |s| ctx.would_take(s), |h, i| tries.push((h, i)));
        for (n, (h, i)) in tries.into_iter().enumerate() {
            let s = &self.servers[i];
            let what = if n == 0 { "hash" } else { "rehash" };
            match ctx.refusal(s) {
                None => e.step(format!(
                    "{what} {h} -> {} mod {total} -> {}",
                    h % total.max(1),
                    label(s)
                )),
                Some(why) => e.step(format!(
                    "{what} {h} -> {} mod {total} -> {} ({why})",
                    h % total.max(1),
                    label(s)
                )),
            }
        }
        let pick = match found {
            Ok(i) => Some(i),
            Err(None) => {
                e.step("no client address: the first eligible server");
                super::first_where(&self.servers, 0, |s| ctx.would_take(s))
            }
            Err(Some(_)) if stable => {
                e.step(format!("{} hashes found nothing eligible", REHASH + 1));
                None
            }
            Err(Some(last)) => {
                e.step(format!(
                    "{} hashes found nothing eligible: the next eligible server after the last one hashed",
                    REHASH + 1
                ));
                super::first_where(&self.servers, last + 1, |s| ctx.would_take(s))
            }
        };
        e.pick = pick.map(|i| self.servers[i].clone());
        e
    }
}

impl Balancer for IpHash {
    fn pick(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>> {
        if self.servers.is_empty() {
            return None;
        }
        match self.search(ctx.client, |s| ctx.eligible(s), |_, _| {}) {
            Ok(i) => Some(self.servers[i].clone()),
            Err(last) => super::first_eligible(&self.servers, last.map_or(0, |i| i + 1), ctx),
        }
    }

    /// A peek: the hash is a function of the client, nothing changes.
    fn explain(&self, ctx: &PickContext<'_>) -> Explanation {
        self.explain_search(ctx, false)
    }
}

impl super::StablePick for IpHash {
    fn pick_stable(&self, ctx: &PickContext<'_>) -> Option<Arc<Server>> {
        match self.search(ctx.client, |s| ctx.eligible(s), |_, _| {}) {
            Ok(i) => Some(self.servers[i].clone()),
            // No client address: the first eligible server, as `pick` (nothing to keep).
            Err(None) => super::first_eligible(&self.servers, 0, ctx),
            Err(Some(_)) => None,
        }
    }

    fn explain_stable(&self, ctx: &PickContext<'_>) -> Explanation {
        self.explain_search(ctx, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::balance::testing::{check_exclusion, index, servers};

    fn pick(b: &IpHash, s: &[Arc<Server>], ip: &str) -> usize {
        let ctx = PickContext {
            client: Some(ip.parse().unwrap()),
            ..PickContext::default()
        };
        index(s, &b.pick(&ctx).unwrap())
    }

    #[test]
    fn one_address_always_goes_to_one_server() {
        let s = servers(&[1, 1, 1, 1]);
        let b = IpHash::new(&s);
        for ip in ["192.0.2.7", "10.20.30.40", "2001:db8::1"] {
            let first = pick(&b, &s, ip);
            for _ in 0..100 {
                assert_eq!(pick(&b, &s, ip), first, "{ip}");
            }
        }
        // The last octet is ignored (nginx: a /24 sticks together); IPv4-mapped is IPv4.
        assert_eq!(pick(&b, &s, "10.20.30.1"), pick(&b, &s, "10.20.30.254"));
        assert_eq!(
            pick(&b, &s, "::ffff:10.20.30.9"),
            pick(&b, &s, "10.20.30.40")
        );
    }

    #[test]
    fn many_addresses_spread_by_weight() {
        let s = servers(&[1, 1, 2]);
        let b = IpHash::new(&s);
        let mut counts = [0usize; 3];
        for x in 0..40u32 {
            for y in 0..100u32 {
                counts[pick(&b, &s, &format!("10.{x}.{y}.1"))] += 1;
            }
        }
        // 4,000 networks over weights 1,1,2: about 1,000, 1,000, 2,000.
        assert!(counts[0].abs_diff(1000) < 150, "{counts:?}");
        assert!(counts[1].abs_diff(1000) < 150, "{counts:?}");
        assert!(counts[2].abs_diff(2000) < 200, "{counts:?}");
    }

    #[test]
    fn same_hash_as_nginx() {
        // nginx over 3 equal servers: 89 → ((89·113+192)%6271·113+0)%6271·113+2 ... % 3.
        let h = stir(89, &[192, 0, 2]);
        assert_eq!(
            h,
            ((((89 * 113 + 192) % 6271) * 113) % 6271 * 113 + 2) % 6271
        );
        let s = servers(&[1, 1, 1]);
        assert_eq!(pick(&IpHash::new(&s), &s, "192.0.2.55"), (h % 3) as usize);
    }

    #[test]
    fn an_unavailable_server_moves_only_its_clients() {
        let s = servers(&[1, 1, 1, 1]);
        let b = IpHash::new(&s);
        let ips: Vec<String> = (0..500)
            .map(|i| format!("10.{}.{}.1", i / 100, i % 100))
            .collect();
        let before: Vec<usize> = ips.iter().map(|ip| pick(&b, &s, ip)).collect();
        s[2].set_admin_down(true);
        for (ip, &was) in ips.iter().zip(&before) {
            let now = pick(&b, &s, ip);
            if was == 2 {
                assert_ne!(now, 2);
            } else {
                assert_eq!(now, was, "{ip} moved off a healthy server");
            }
        }
    }

    #[test]
    fn no_client_address_picks_the_first_eligible() {
        let s = servers(&[1, 1, 1]);
        let b = IpHash::new(&s);
        assert_eq!(index(&s, &b.pick(&PickContext::default()).unwrap()), 0);
        let tried = [s[0].clone()];
        let ctx = PickContext {
            tried: &tried,
            ..PickContext::default()
        };
        assert_eq!(index(&s, &b.pick(&ctx).unwrap()), 1);
    }

    #[test]
    fn exclusion() {
        check_exclusion(|s| Box::new(IpHash::new(s)));
    }
}

//! Access control by client address: `allow` and `deny` CIDR lists.
//!
//! The most specific rule that contains the client decides, as a routing table does (so the
//! order of the lists does not matter): `allow = ["10.0.0.0/8"]` with
//! `deny = ["10.1.0.0/16"]` lets 10/8 in except 10.1/16. An address that no rule contains is
//! let in when there is no `allow` list, and kept out when there is one (an allow list means
//! "only these", as nginx's `allow …; deny all;`). IPv4-mapped IPv6 addresses count as IPv4.

use std::net::IpAddr;

use crate::config::Cidr;

/// Compiled `allow` / `deny` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Acl {
    /// Every rule, most specific first; `true` allows.
    rules: Vec<(Cidr, bool)>,
    /// What an address no rule contains gets.
    default_allow: bool,
}

impl Default for Acl {
    /// No rule: everyone allowed.
    fn default() -> Acl {
        Acl::new(&[], &[])
    }
}

impl Acl {
    /// No rule: everyone allowed.
    pub const fn everyone() -> Acl {
        Acl {
            rules: Vec::new(),
            default_allow: true,
        }
    }

    /// The lists as written. The same block in both is a config error, caught before this.
    pub fn new(allow: &[Cidr], deny: &[Cidr]) -> Acl {
        let mut rules: Vec<(Cidr, bool)> = allow
            .iter()
            .map(|c| (*c, true))
            .chain(deny.iter().map(|c| (*c, false)))
            .collect();
        // Longest prefix first (IPv4 and IPv6 rules never contain the same address). The
        // same block in both lists is refused by `check`, so no tie is left to decide.
        rules.sort_by_key(|r| std::cmp::Reverse(r.0.prefix));
        Acl {
            rules,
            default_allow: allow.is_empty(),
        }
    }

    /// Whether no rule is set (everything allowed, nothing to check).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// Whether `ip` may come in.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.rules
            .iter()
            .find(|(cidr, _)| cidr.contains(ip))
            .map_or(self.default_allow, |(_, allow)| *allow)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| Cidr::parse(s).unwrap()).collect()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_most_specific_rule_decides() {
        let acl = Acl::new(
            &cidrs(&["10.0.0.0/8", "10.1.2.0/24", "2001:db8::/32"]),
            &cidrs(&["10.1.0.0/16", "2001:db8:bad::/48"]),
        );
        assert!(acl.allows(ip("10.9.9.9")));
        assert!(
            !acl.allows(ip("10.1.9.9")),
            "deny 10.1/16 inside allow 10/8"
        );
        assert!(
            acl.allows(ip("10.1.2.3")),
            "allow 10.1.2/24 inside deny 10.1/16"
        );
        assert!(
            !acl.allows(ip("192.168.1.1")),
            "an allow list means only these"
        );
        assert!(acl.allows(ip("2001:db8::1")));
        assert!(!acl.allows(ip("2001:db8:bad::1")));
        assert!(acl.allows(ip("::ffff:10.9.9.9")), "v4-mapped counts as v4");
    }

    #[test]
    fn a_deny_list_alone_lets_the_rest_in() {
        let acl = Acl::new(&[], &cidrs(&["192.0.2.0/24", "::1"]));
        assert!(!acl.allows(ip("192.0.2.7")));
        assert!(!acl.allows(ip("::1")));
        assert!(acl.allows(ip("198.51.100.1")));
        assert!(Acl::default().allows(ip("1.2.3.4")) && Acl::default().is_empty());
    }
}

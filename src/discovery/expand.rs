//! A plan's named servers made into servers: each address of a name becomes a copy of its
//! entry (weight, backup, passive checks, …) at that address, where the name is written.
//! Pure: the plan, the addresses in use, and the operator's changes to resolved servers in;
//! the plan to run out.
//!
//! - Addresses come sorted, so a DNS server that rotates its answers changes nothing.
//! - An address that the pool already has (written as an address, or given by an earlier
//!   name) is kept once: the first place it appears wins.
//! - SRV records give the weight (and backup, for a priority above the lowest).
//! - nginx's rule for a pool of one server (no passive checks, no slow start) is applied to
//!   the servers as they are now.

use std::net::SocketAddr;

use super::answer::{Question, Target};
use crate::config::{Plan, PoolPlan, ServerPlan};

/// An operator's change (admin API) to a server that came from DNS: kept by the runtime and
/// put on the server whenever its name gives its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tweak {
    pub pool: String,
    pub addr: SocketAddr,
    pub weight: Option<u32>,
    /// `(down, drain)`.
    pub state: Option<(bool, bool)>,
}

/// `plan` with every named server made into servers, from `targets(pool, question)`.
pub fn expand<'a>(
    plan: &Plan,
    targets: impl Fn(&str, &Question) -> &'a [Target],
    tweaks: &[Tweak],
) -> Plan {
    let mut out = plan.clone();
    for p in out.pools.iter_mut().filter(|p| !p.named.is_empty()) {
        p.servers = servers(p, &targets);
        for s in &mut p.servers {
            if s.from.is_none() {
                continue;
            }
            for t in tweaks
                .iter()
                .filter(|t| t.pool == p.name && t.addr == s.addr)
            {
                if let Some(w) = t.weight {
                    s.weight = w;
                }
                if let Some((down, drain)) = t.state {
                    (s.down, s.drain) = (down, drain);
                }
            }
        }
        p.lone_server_rule();
    }
    out
}

/// The pool's servers: those written with an address, with each name's in its place.
fn servers<'a>(
    p: &PoolPlan,
    targets: &impl Fn(&str, &Question) -> &'a [Target],
) -> Vec<ServerPlan> {
    let mut seen: std::collections::HashSet<SocketAddr> = p
        .servers
        .iter()
        .filter(|s| s.from.is_none())
        .map(|s| s.addr)
        .collect();
    let written: Vec<&ServerPlan> = p.servers.iter().filter(|s| s.from.is_none()).collect();
    let mut out = Vec::new();
    let mut names = p.named.iter().peekable();
    for i in 0..=written.len() {
        while let Some(n) = names.next_if(|n| n.at <= i) {
            for t in targets(&p.name, &Question::of(n, &p.dns)) {
                if !seen.insert(t.addr) {
                    continue;
                }
                let mut s = n.server.clone();
                s.addr = t.addr;
                s.from = Some(n.written.clone());
                if let Some(w) = t.weight {
                    s.weight = w;
                }
                s.backup |= t.backup;
                out.push(s);
            }
        }
        if let Some(s) = written.get(i) {
            out.push((*s).clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    const FILE: &str = r#"
[[listener]]
listen = "127.0.0.1:0"
pool = "web"

[pool.web]
resolver = "127.0.0.1:5353"
max_fails = 3
servers = [
  { addr = "127.0.0.1:9001" },
  { addr = "app.test:8080", resolve = true, weight = 2 },
  { addr = "127.0.0.1:9002" },
  { addr = "_http._tcp.app.test", resolve = true },
]
"#;

    fn t(addr: &str, weight: Option<u32>, backup: bool) -> Target {
        Target {
            backup,
            addr: addr.parse().unwrap(),
            weight,
        }
    }

    fn answers() -> HashMap<String, Vec<Target>> {
        let mut m = HashMap::new();
        m.insert(
            "app.test".to_string(),
            vec![
                t("10.0.0.1:8080", None, false),
                t("10.0.0.2:8080", None, false),
            ],
        );
        m.insert(
            "_http._tcp.app.test".to_string(),
            vec![
                t("10.0.0.1:8080", Some(5), false),
                t("10.0.0.3:9000", Some(30), false),
                t("10.0.0.4:9000", Some(10), true),
            ],
        );
        m
    }

    fn run(file: &str, answers: &HashMap<String, Vec<Target>>, tweaks: &[Tweak]) -> PoolPlan {
        let plan = crate::config::load_str(file, "t.toml").unwrap_or_else(|e| panic!("{e}"));
        let none: Vec<Target> = Vec::new();
        let out = expand(
            &plan,
            |_, q| {
                answers
                    .get(&q.host)
                    .map_or(none.as_slice(), |v| v.as_slice())
            },
            tweaks,
        );
        out.pools[0].clone()
    }

    #[test]
    fn each_address_takes_the_place_of_its_name_once_with_the_entry_settings() {
        let p = run(FILE, &answers(), &[]);
        let got: Vec<(String, u32, bool, Option<&str>)> = p
            .servers
            .iter()
            .map(|s| (s.addr.to_string(), s.weight, s.backup, s.from.as_deref()))
            .collect();
        assert_eq!(
            got,
            [
                ("127.0.0.1:9001".into(), 1, false, None),
                ("10.0.0.1:8080".into(), 2, false, Some("app.test:8080")),
                ("10.0.0.2:8080".into(), 2, false, Some("app.test:8080")),
                ("127.0.0.1:9002".into(), 1, false, None),
                // 10.0.0.1:8080 came first from app.test: kept once.
                (
                    "10.0.0.3:9000".into(),
                    30,
                    false,
                    Some("_http._tcp.app.test")
                ),
                (
                    "10.0.0.4:9000".into(),
                    10,
                    true,
                    Some("_http._tcp.app.test")
                ),
            ]
        );
        // The entry's name (by default the address as written) and the pool's settings.
        assert_eq!(p.servers[1].name, "app.test:8080");
        assert_eq!(p.servers[1].passive.max_fails, 3);
    }

    #[test]
    fn no_address_leaves_the_written_servers_and_a_lone_server_gets_nginx_rule() {
        let p = run(FILE, &HashMap::new(), &[]);
        assert_eq!(p.servers.len(), 2);
        let only_name = r#"
[[listener]]
listen = "127.0.0.1:0"
pool = "web"

[pool.web]
slow_start = "10s"
servers = [ { addr = "app.test:8080", resolve = true } ]
"#;
        let mut one = answers();
        one.insert("app.test".into(), vec![t("10.0.0.1:8080", None, false)]);
        let p = run(only_name, &one, &[]);
        assert_eq!(p.servers[0].passive.max_fails, 0, "the only server");
        assert!(p.servers[0].slow_start.is_zero());
        let p = run(only_name, &answers(), &[]);
        assert_eq!(p.servers[0].passive.max_fails, 1, "one of two");
        assert_eq!(p.servers[1].slow_start.as_secs(), 10);
        let p = run(only_name, &HashMap::new(), &[]);
        assert!(p.servers.is_empty());
    }

    #[test]
    fn operator_changes_follow_the_address() {
        let tweaks = [
            Tweak {
                pool: "web".into(),
                addr: "10.0.0.2:8080".parse().unwrap(),
                weight: Some(7),
                state: Some((false, true)),
            },
            // Written with its address: the file says what it is, not a tweak.
            Tweak {
                pool: "web".into(),
                addr: "127.0.0.1:9001".parse().unwrap(),
                weight: Some(9),
                state: None,
            },
        ];
        let p = run(FILE, &answers(), &tweaks);
        assert_eq!((p.servers[2].weight, p.servers[2].drain), (7, true));
        assert_eq!(p.servers[0].weight, 1);
    }
}

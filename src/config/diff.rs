//! What changed between the running [`Plan`] and a new one: pure data, computed before
//! anything is touched, then handed to the runtime, which changes only that (Sōzu's
//! `diff()` driving a reload).
//!
//! - A **pool** is the same, or has only live server values changed (weight, `down`,
//!   `drain`, passive checks, slow start: set on the running servers), or is rebuilt (a
//!   server added, removed or renamed, or a pool setting changed: a new pool value in which
//!   the servers that stay keep their state), or is added or removed.
//! - `[redis]` added, removed or changed makes a new link (or none); the pools with a
//!   `shared = true` sticky table are then rebuilt onto it (`settings: ["redis"]`).
//!   So are the listeners with a `shared = true` limit (`Changed`: its limiters move).
//! - A **listener** is known by its name. It keeps its socket unless its address or its
//!   transport (TCP or UDP) changed (`Moved`: a new socket, the old one drains); a new
//!   protocol on the same socket (`http` to `https`) gets a new accept loop on that socket
//!   (`Reprotocol`); other settings, or a rebuilt pool behind it, are swapped in whole
//!   between two requests (`Changed`).
//!
//! What changed inside a listener that stays (its routes, certificate files, settings) is
//! kept in [`ListenerDetail`]s, for the report and for `switchyard plan`; the runtime acts
//! on [`ListenerChange`] alone.
//!
//! [`PlanDiff::describe`] says it in one line per change, for the reload report and the log.

use std::net::SocketAddr;
use std::time::Duration;

use super::RedisPlan;
use super::diff_keys;
use super::diff_servers::{server_changes, state};
use super::plan::{ListenerPlan, Plan, PoolPlan, Protocol, RoutePlan, ServerPlan, Target};
use super::routes::{RouteChange, route_changes};
use crate::tls::CertPair;

/// The names of the fields, of those listed, whose values differ between `a` and `b`.
macro_rules! changed {
    ($a:expr, $b:expr; $($key:ident),*) => {
        [$((stringify!($key), $a.$key == $b.$key)),*]
            .into_iter()
            .filter_map(|(key, same)| (!same).then_some(key))
            .collect::<Vec<&'static str>>()
    };
}

/// Every difference between two plans that the runtime acts on.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct PlanDiff {
    /// Listeners of either plan: the new plan's in order, then the removed ones.
    pub listeners: Vec<(String, ListenerChange)>,
    /// What changed inside the listeners of both plans, for those where something did.
    pub details: Vec<(String, ListenerDetail)>,
    /// Pools of either plan: the new plan's in order, then the removed ones.
    pub pools: Vec<(String, PoolChange)>,
    pub admin: AdminChange,
    /// `[redis]`: a new link when it is added or changed (the pools with shared tables are
    /// rebuilt onto it, their entries kept), none when it is removed.
    pub redis: RedisChange,
    /// `workers` cannot change in a running process (restart or upgrade): (running, in
    /// the new plan). The running plan keeps the count it runs (`Running::apply`), so a
    /// reload says this until the process restarts.
    pub workers: Option<(usize, usize)>,
    pub grace_period: Option<(Duration, Duration)>,
    pub shutdown_delay: Option<(Duration, Duration)>,
    /// `[log]` changed: the access log is opened anew with the new settings.
    pub log: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerChange {
    Added,
    Removed,
    /// Another address, or TCP to UDP: bound anew; the old socket stops and drains.
    Moved,
    /// Another protocol over the same TCP socket (`http`, `https`, `tcp`): the socket stays,
    /// a new accept loop takes it, the old one drains its connections.
    Reprotocol,
    /// Same socket and protocol; routes, pools, TLS or L4 settings changed, a pool it sends
    /// to was rebuilt, or `[redis]` changed under its shared limits: swapped whole between
    /// two requests or connections.
    Changed,
    Same,
}

#[derive(Debug, Clone, PartialEq)]
pub enum PoolChange {
    Added,
    Removed,
    /// Only live values of servers changed; set on the running servers in place.
    Servers(Vec<ServerChange>),
    /// Servers added or removed (or renamed, or moved between primaries and backups), or a
    /// pool setting changed: a new pool value; the servers that stay keep their state.
    Rebuilt(Rebuild),
    Same,
}

/// What changed inside a listener of both plans.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ListenerDetail {
    /// Routes added, removed, sent elsewhere, reordered; the default pool.
    pub routes: Vec<RouteChange>,
    /// Certificate pairs (by their files) of the new plan that the old one did not have …
    pub certs_added: Vec<CertPair>,
    /// … and of the old plan that the new one drops.
    pub certs_removed: Vec<CertPair>,
    /// The listener's other settings that changed, each `key before → after` (`hsts`,
    /// `allow`, `limit rate 50/s → 1/m`, `max_connections`, the L4 ones, …).
    pub settings: Vec<String>,
    /// Routes that keep their conditions and target but not their settings (`allow`,
    /// `limit`, `block`, `client_max_body_size`): `route 1 (path_prefix = "/api/"): …`.
    pub route_settings: Vec<String>,
}

impl ListenerDetail {
    fn between(old: &ListenerPlan, new: &ListenerPlan) -> ListenerDetail {
        let missing = |from: &[CertPair], other: &[CertPair]| -> Vec<CertPair> {
            from.iter()
                .filter(|c| !other.contains(c))
                .cloned()
                .collect()
        };
        ListenerDetail {
            routes: route_changes(old, new),
            certs_added: missing(&new.tls, &old.tls),
            certs_removed: missing(&old.tls, &new.tls),
            settings: diff_keys::listener(old, new),
            route_settings: kept_routes(old, new)
                .into_iter()
                .filter_map(|(at, o, n)| {
                    let keys = diff_keys::route(o, n);
                    (!keys.is_empty()).then(|| {
                        format!(
                            "{} ({}): {}",
                            super::routes::which(at, n),
                            super::routes::conditions(&n.matcher),
                            keys.join(", ")
                        )
                    })
                })
                .collect(),
        }
    }

    fn is_empty(&self) -> bool {
        self.routes.is_empty()
            && self.certs_added.is_empty()
            && self.certs_removed.is_empty()
            && self.settings.is_empty()
            && self.route_settings.is_empty()
    }

    /// One line per change, without the listener's name.
    pub fn describe(&self) -> Vec<String> {
        let mut out: Vec<String> = self.routes.iter().map(RouteChange::describe).collect();
        for c in &self.certs_added {
            out.push(format!("certificate {} added", c.cert.display()));
        }
        for c in &self.certs_removed {
            out.push(format!("certificate {} removed", c.cert.display()));
        }
        if !self.settings.is_empty() {
            out.push(self.settings.join(", "));
        }
        out.extend(self.route_settings.iter().cloned());
        out
    }
}

/// How a pool is rebuilt.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Rebuild {
    pub added: Vec<SocketAddr>,
    pub removed: Vec<SocketAddr>,
    /// Pool keys whose value changed (`algorithm`, `timeouts`, …).
    pub settings: Vec<&'static str>,
    /// The same, key by key: `algorithm round_robin → least_conn`, `health interval 2s → 5s`.
    pub changes: Vec<String>,
    /// Live value changes of the servers that stay.
    pub servers: Vec<ServerChange>,
    /// Same protocol and TLS towards the servers: their idle connections can be kept.
    pub keep_conns: bool,
}

/// What changed of `[redis]`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum RedisChange {
    #[default]
    Same,
    Added,
    Removed,
    /// The keys whose value changed: the link is made again.
    Changed(Vec<&'static str>),
}

impl RedisChange {
    fn between(old: Option<&RedisPlan>, new: Option<&RedisPlan>) -> RedisChange {
        match (old, new) {
            (None, None) => RedisChange::Same,
            (None, Some(_)) => RedisChange::Added,
            (Some(_), None) => RedisChange::Removed,
            (Some(o), Some(n)) => {
                match changed!(o, n; addr, prefix, timeout, io_timeout, sync_interval, queue) {
                    keys if keys.is_empty() => RedisChange::Same,
                    keys => RedisChange::Changed(keys),
                }
            }
        }
    }
}

/// A server that stays, with what changed on it, each as `key before → after`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerChange {
    pub addr: SocketAddr,
    pub changes: Vec<String>,
    /// The weight before and after, when it changed.
    pub weight: Option<(u32, u32)>,
    /// The admin state (`ready`, `drain`, `maint`) before and after, when it changed.
    pub state: Option<(&'static str, &'static str)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AdminChange {
    #[default]
    Same,
    Added,
    Removed,
    /// Another address: bound anew.
    Moved,
    /// Same address, another token.
    Changed,
}

impl PlanDiff {
    /// What `new` changes of `old`.
    pub fn between(old: &Plan, new: &Plan) -> PlanDiff {
        let mut pools: Vec<(String, PoolChange)> = new
            .pools
            .iter()
            .map(|p| {
                let change = match old.pool(&p.name) {
                    None => PoolChange::Added,
                    Some(o) => pool_change(o, p),
                };
                (p.name.clone(), change)
            })
            .collect();
        for p in &old.pools {
            if new.pool(&p.name).is_none() {
                pools.push((p.name.clone(), PoolChange::Removed));
            }
        }
        let redis = RedisChange::between(old.redis.as_ref(), new.redis.as_ref());
        if redis != RedisChange::Same {
            // A shared table lives on the link: a new link, a new table (entries kept).
            for (name, change) in &mut pools {
                let shared = new
                    .pool(name)
                    .and_then(|p| p.sticky.as_ref())
                    .is_some_and(|s| s.shared);
                let servers = match change {
                    PoolChange::Same => Vec::new(),
                    PoolChange::Servers(s) => std::mem::take(s),
                    _ => continue,
                };
                if shared {
                    *change = PoolChange::Rebuilt(Rebuild {
                        settings: vec!["redis"],
                        servers,
                        keep_conns: true,
                        ..Rebuild::default()
                    });
                } else if !servers.is_empty() {
                    *change = PoolChange::Servers(servers);
                }
            }
        }
        let renewed = |name: &str| {
            pools
                .iter()
                .any(|(n, c)| n == name && matches!(c, PoolChange::Added | PoolChange::Rebuilt(_)))
        };
        let mut listeners: Vec<(String, ListenerChange)> = new
            .listeners
            .iter()
            .map(|l| {
                let old_l = old.listeners.iter().find(|o| o.name == l.name);
                let change = match old_l {
                    None => ListenerChange::Added,
                    Some(o) if o.listen != l.listen || udp(o) != udp(l) => ListenerChange::Moved,
                    Some(o) if o.protocol != l.protocol => ListenerChange::Reprotocol,
                    Some(o) if !same_listener(o, l) => ListenerChange::Changed,
                    Some(_) if pools_of(l).iter().any(|p| renewed(p)) => ListenerChange::Changed,
                    // A shared limit lives on the link too: onto the new one (or local).
                    Some(_) if redis != RedisChange::Same && shares_limits(l) => {
                        ListenerChange::Changed
                    }
                    Some(_) => ListenerChange::Same,
                };
                (l.name.clone(), change)
            })
            .collect();
        for l in &old.listeners {
            if !new.listeners.iter().any(|n| n.name == l.name) {
                listeners.push((l.name.clone(), ListenerChange::Removed));
            }
        }
        let details = new
            .listeners
            .iter()
            .filter_map(|l| {
                let o = old.listeners.iter().find(|o| o.name == l.name)?;
                let d = ListenerDetail::between(o, l);
                (!d.is_empty()).then(|| (l.name.clone(), d))
            })
            .collect();
        let admin = match (&old.admin, &new.admin) {
            (None, None) => AdminChange::Same,
            (None, Some(_)) => AdminChange::Added,
            (Some(_), None) => AdminChange::Removed,
            (Some(o), Some(n)) if o.listen != n.listen => AdminChange::Moved,
            (Some(o), Some(n)) if o.token != n.token => AdminChange::Changed,
            _ => AdminChange::Same,
        };
        PlanDiff {
            listeners,
            details,
            pools,
            admin,
            redis,
            workers: changed(old.workers, new.workers),
            grace_period: changed(old.grace_period, new.grace_period),
            shutdown_delay: changed(old.shutdown_delay, new.shutdown_delay),
            log: old.log != new.log,
        }
    }

    /// Whether nothing changed.
    pub fn is_empty(&self) -> bool {
        self.listeners
            .iter()
            .all(|(_, c)| *c == ListenerChange::Same)
            && self.pools.iter().all(|(_, c)| *c == PoolChange::Same)
            && self.admin == AdminChange::Same
            && self.redis == RedisChange::Same
            && self.workers.is_none()
            && self.grace_period.is_none()
            && self.shutdown_delay.is_none()
            && !self.log
    }

    /// The change of one pool.
    pub fn pool(&self, name: &str) -> Option<&PoolChange> {
        self.pools.iter().find(|(n, _)| n == name).map(|(_, c)| c)
    }

    /// What changed inside a listener of both plans, if anything.
    pub fn detail(&self, name: &str) -> Option<&ListenerDetail> {
        self.details.iter().find(|(n, _)| n == name).map(|(_, d)| d)
    }

    /// The change of one listener.
    pub fn listener(&self, name: &str) -> Option<ListenerChange> {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, c)| *c)
    }

    /// One line per change, e.g. `pool "web": server 10.0.0.3:80 added`.
    pub fn describe(&self) -> Vec<String> {
        let mut out = Vec::new();
        for (name, c) in &self.pools {
            let servers = |out: &mut Vec<String>, changes: &[ServerChange]| {
                for s in changes {
                    out.push(format!(
                        "pool {name:?}: server {}: {}",
                        s.addr,
                        s.changes.join(", ")
                    ));
                }
            };
            match c {
                PoolChange::Added => out.push(format!("pool {name:?} added")),
                PoolChange::Removed => out.push(format!("pool {name:?} removed")),
                PoolChange::Servers(changes) => servers(&mut out, changes),
                PoolChange::Rebuilt(r) => {
                    for a in &r.added {
                        out.push(format!("pool {name:?}: server {a} added"));
                    }
                    for a in &r.removed {
                        out.push(format!("pool {name:?}: server {a} removed"));
                    }
                    if !r.changes.is_empty() {
                        out.push(format!("pool {name:?}: {}", r.changes.join(", ")));
                    } else if !r.settings.is_empty() {
                        out.push(format!("pool {name:?}: {} changed", r.settings.join(", ")));
                    }
                    servers(&mut out, &r.servers);
                }
                PoolChange::Same => {}
            }
        }
        for (name, c) in &self.listeners {
            let details = self.detail(name).map(ListenerDetail::describe);
            let what = match c {
                ListenerChange::Added => "added",
                ListenerChange::Removed => "removed (draining)",
                ListenerChange::Moved => "moved to a new address (the old one drains)",
                ListenerChange::Reprotocol => "changed protocol (same socket)",
                // Said by its details, when it has some (else a pool behind it was rebuilt, or
                // [redis] changed under its shared limits: both reported on their own lines).
                ListenerChange::Changed if details.is_some() => "",
                ListenerChange::Changed => {
                    "swapped whole between two requests (a pool it sends to, its settings, or the [redis] link of its shared limits changed)"
                }
                ListenerChange::Same => continue,
            };
            if !what.is_empty() {
                out.push(format!("listener {name:?} {what}"));
            }
            for d in details.unwrap_or_default() {
                out.push(format!("listener {name:?}: {d}"));
            }
        }
        match self.admin {
            AdminChange::Same => {}
            AdminChange::Added => out.push("[admin] added".into()),
            AdminChange::Removed => out.push("[admin] removed".into()),
            AdminChange::Moved => out.push("[admin] moved to a new address".into()),
            AdminChange::Changed => out.push("[admin] token changed".into()),
        }
        match &self.redis {
            RedisChange::Same => {}
            RedisChange::Added => out.push("[redis] added: shared tables share through it".into()),
            RedisChange::Removed => out.push("[redis] removed: its link closes".into()),
            RedisChange::Changed(keys) => out.push(format!(
                "[redis] {} changed: a new link (shared tables move to it, their entries kept)",
                keys.join(", ")
            )),
        }
        if let Some((a, b)) = self.grace_period {
            out.push(format!("grace_period {a:?} → {b:?}"));
        }
        if let Some((a, b)) = self.shutdown_delay {
            out.push(format!("shutdown_delay {a:?} → {b:?}"));
        }
        if self.log {
            out.push("[log] changed: the access log opened anew".into());
        }
        if let Some((a, b)) = self.workers {
            out.push(format!(
                "workers = {b} in the file, {a} running: {NEEDS_RESTART}; restart or upgrade (SIGUSR2, run --upgrade) to run {b}"
            ));
        }
        out
    }
}

/// What a line of [`PlanDiff::describe`] says of a change it did not make.
pub const NEEDS_RESTART: &str = "a reload cannot change it";

fn changed<T: PartialEq>(a: T, b: T) -> Option<(T, T)> {
    (a != b).then_some((a, b))
}

fn udp(l: &ListenerPlan) -> bool {
    l.protocol == Protocol::Udp
}

/// Equal apart from `origin` (where the address is written moves with any edit above it).
fn same_listener(a: &ListenerPlan, b: &ListenerPlan) -> bool {
    let mut a = a.clone();
    a.origin.clone_from(&b.origin);
    a == *b
}

/// The routes of both plans with the same conditions and target, paired in order, with
/// their 1-based place in the new plan.
fn kept_routes<'a>(
    old: &'a ListenerPlan,
    new: &'a ListenerPlan,
) -> Vec<(usize, &'a RoutePlan, &'a RoutePlan)> {
    let mut used = vec![false; old.routes.len()];
    let mut out = Vec::new();
    for (i, n) in new.routes.iter().enumerate() {
        let same = |o: &RoutePlan| o.matcher == n.matcher && o.target == n.target;
        if let Some(j) = (0..old.routes.len()).find(|&j| !used[j] && same(&old.routes[j])) {
            used[j] = true;
            out.push((i + 1, &old.routes[j], n));
        }
    }
    out
}

/// Whether a limit of `l` (or of one of its routes) is counted across balancers.
fn shares_limits(l: &ListenerPlan) -> bool {
    let guards = std::iter::once(&l.guard).chain(l.routes.iter().map(|r| &r.guard));
    guards.flat_map(|g| &g.limits).any(|x| x.shared)
}

/// The pools a listener sends to.
pub fn pools_of(l: &ListenerPlan) -> Vec<&str> {
    let mut names: Vec<&str> = l.default_pool.iter().map(String::as_str).collect();
    for r in &l.routes {
        match &r.target {
            Target::Pool(p) => names.push(p),
            Target::Split(parts) => names.extend(parts.iter().map(|(p, _)| p.as_str())),
        }
    }
    names.sort_unstable();
    names.dedup();
    names
}

fn pool_change(old: &PoolPlan, new: &PoolPlan) -> PoolChange {
    if old == new {
        return PoolChange::Same;
    }
    // As `upstream::Server::is_same`: a server from DNS is known by its name too.
    let identity = |s: &ServerPlan| (s.addr, s.name.clone(), s.backup, s.from.clone());
    let settings = changed_settings(old, new);
    let servers: Vec<ServerChange> = new
        .servers
        .iter()
        .filter_map(|n| {
            let o = old.servers.iter().find(|o| identity(o) == identity(n))?;
            let changes = server_changes(o, n, (old.servers.len(), new.servers.len()));
            (!changes.is_empty()).then_some(ServerChange {
                addr: n.addr,
                changes,
                weight: (o.weight != n.weight).then_some((o.weight, n.weight)),
                state: (state(o) != state(n)).then_some((state(o), state(n))),
            })
        })
        .collect();
    let same_members = old
        .servers
        .iter()
        .map(identity)
        .eq(new.servers.iter().map(identity));
    if same_members && settings.is_empty() {
        return PoolChange::Servers(servers);
    }
    let keeps =
        |list: &[ServerPlan], s: &ServerPlan| list.iter().any(|x| identity(x) == identity(s));
    PoolChange::Rebuilt(Rebuild {
        added: new
            .servers
            .iter()
            .filter(|s| !keeps(&old.servers, s))
            .map(|s| s.addr)
            .collect(),
        removed: old
            .servers
            .iter()
            .filter(|s| !keeps(&new.servers, s))
            .map(|s| s.addr)
            .collect(),
        settings,
        changes: diff_keys::pool(old, new),
        servers,
        keep_conns: old.upstream_protocol == new.upstream_protocol && old.tls == new.tls,
    })
}

fn changed_settings(a: &PoolPlan, b: &PoolPlan) -> Vec<&'static str> {
    let mut out = changed!(a, b; algorithm, hash_key, keepalive, keepalive_timeout, timeouts,
        host_header, health, retry, sticky, upstream_protocol, tls, tunnel_idle_timeout,
        queue_size, queue_timeout);
    // Server order is what round robin walks and what the ring is built from.
    let order = |p: &PoolPlan| p.servers.iter().map(|s| s.addr).collect::<Vec<_>>();
    let (oa, ob) = (order(a), order(b));
    let same_set = oa.len() == ob.len() && oa.iter().all(|x| ob.contains(x));
    if same_set && oa != ob {
        out.push("server order");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = r#"
[[listener]]
name = "web"
listen = "127.0.0.1:8080"
pool = "web"

  [[listener.route]]
  path_prefix = "/api/"
  pool = "api"

[[listener]]
name = "db"
protocol = "tcp"
listen = "127.0.0.1:5432"
pool = "db"

[pool.web]
servers = [ { addr = "127.0.0.1:9001" }, { addr = "127.0.0.1:9002" } ]

[pool.api]
servers = [ { addr = "127.0.0.1:9003" }, { addr = "127.0.0.1:9004" } ]

[pool.db]
servers = [ { addr = "127.0.0.1:9005" } ]
"#;

    fn plan(src: &str) -> Plan {
        crate::config::load_str(src, "t.toml").unwrap_or_else(|e| panic!("{e}\n{src}"))
    }

    fn diff(edit: impl Fn(&str) -> String) -> PlanDiff {
        PlanDiff::between(&plan(BASE), &plan(&edit(BASE)))
    }

    #[test]
    fn the_same_file_changes_nothing_even_with_lines_moved() {
        let d = diff(|s| format!("\n\n# a comment\n{s}"));
        assert!(d.is_empty(), "{d:#?}");
        assert!(d.describe().is_empty());
    }

    #[test]
    fn a_weight_or_state_is_set_in_place_and_the_listeners_stay() {
        let d = diff(|s| {
            s.replace(
                "{ addr = \"127.0.0.1:9002\" }",
                "{ addr = \"127.0.0.1:9002\", weight = 5, drain = true }",
            )
        });
        assert_eq!(
            d.pool("web"),
            Some(&PoolChange::Servers(vec![ServerChange {
                addr: "127.0.0.1:9002".parse().unwrap(),
                changes: vec!["weight 1 → 5".into(), "state ready → drain".into()],
                weight: Some((1, 5)),
                state: Some(("ready", "drain")),
            }]))
        );
        assert_eq!(d.pool("api"), Some(&PoolChange::Same));
        assert_eq!(d.listener("web"), Some(ListenerChange::Same));
        assert_eq!(
            d.describe(),
            ["pool \"web\": server 127.0.0.1:9002: weight 1 → 5, state ready → drain"]
        );
    }

    #[test]
    fn an_added_server_rebuilds_its_pool_and_renews_the_listeners_that_use_it() {
        let d = diff(|s| {
            s.replace(
                "{ addr = \"127.0.0.1:9004\" } ]",
                "{ addr = \"127.0.0.1:9004\" }, { addr = \"127.0.0.1:9006\" } ]",
            )
        });
        let Some(PoolChange::Rebuilt(r)) = d.pool("api") else {
            panic!("{d:#?}")
        };
        assert_eq!(r.added, ["127.0.0.1:9006".parse().unwrap()]);
        assert!(r.removed.is_empty() && r.settings.is_empty() && r.keep_conns);
        // "web" routes /api/ to the rebuilt pool: its route table is swapped; "db" is not.
        assert_eq!(d.listener("web"), Some(ListenerChange::Changed));
        assert_eq!(d.listener("db"), Some(ListenerChange::Same));
    }

    #[test]
    fn an_algorithm_is_a_setting_and_a_new_tls_keeps_no_connection() {
        let d = diff(|s| s.replace("[pool.web]\n", "[pool.web]\nalgorithm = \"least_conn\"\n"));
        let Some(PoolChange::Rebuilt(r)) = d.pool("web") else {
            panic!("{d:#?}")
        };
        assert_eq!(r.settings, ["algorithm"]);
        assert!(r.added.is_empty() && r.keep_conns);
        let d = diff(|s| s.replace("[pool.web]\n", "[pool.web]\nupstream_protocol = \"h2c\"\n"));
        let Some(PoolChange::Rebuilt(r)) = d.pool("web") else {
            panic!("{d:#?}")
        };
        assert!(!r.keep_conns, "{r:?}");
    }

    #[test]
    fn listeners_keep_their_socket_unless_the_address_or_transport_changes() {
        let d = diff(|s| s.replace("127.0.0.1:8080", "127.0.0.1:8081"));
        assert_eq!(d.listener("web"), Some(ListenerChange::Moved));
        let d = diff(|s| s.replace("protocol = \"tcp\"", "protocol = \"http\""));
        assert_eq!(d.listener("db"), Some(ListenerChange::Reprotocol));
        let d = diff(|s| s.replace("protocol = \"tcp\"", "protocol = \"udp\""));
        assert_eq!(d.listener("db"), Some(ListenerChange::Moved));
        let d = diff(|s| {
            s.replace(
                "  path_prefix = \"/api/\"\n  pool = \"api\"\n",
                "  path_prefix = \"/v2/\"\n  pool = \"api\"\n",
            )
        });
        assert_eq!(d.listener("web"), Some(ListenerChange::Changed));
        assert_eq!(d.pool("api"), Some(&PoolChange::Same));
        // The report says which route, instead of "swapped whole …".
        assert_eq!(
            d.describe(),
            [
                "listener \"web\": route 1 added: path_prefix = \"/v2/\" → pool \"api\"",
                "listener \"web\": route 1 removed: path_prefix = \"/api/\" → pool \"api\""
            ]
        );
    }

    #[test]
    fn added_and_removed_listeners_and_pools_are_listed() {
        let d = diff(|s| {
            let s = s.replace(
                "[[listener]]\nname = \"db\"\nprotocol = \"tcp\"\nlisten = \"127.0.0.1:5432\"\npool = \"db\"\n",
                "",
            );
            let s = s.replace(
                "[pool.db]\nservers = [ { addr = \"127.0.0.1:9005\" } ]\n",
                "",
            );
            format!(
                "{s}\n[[listener]]\nname = \"new\"\nlisten = \"127.0.0.1:8090\"\npool = \"web\"\n"
            )
        });
        assert_eq!(d.listener("db"), Some(ListenerChange::Removed));
        assert_eq!(d.listener("new"), Some(ListenerChange::Added));
        assert_eq!(d.pool("db"), Some(&PoolChange::Removed));
        let text = d.describe().join("\n");
        assert!(text.contains("pool \"db\" removed"), "{text}");
        assert!(text.contains("listener \"new\" added"), "{text}");
    }

    #[test]
    fn l4_settings_timeouts_and_retries_are_said_key_by_key() {
        let d = diff(|s| {
            s.replace(
                "pool = \"db\"\n",
                "pool = \"db\"\nidle_timeout = \"30s\"\nmax_connections_per_client = 4\n",
            )
            .replace(
                "[pool.api]\nservers = [ { addr = \"127.0.0.1:9003\" }, { addr = \"127.0.0.1:9004\" } ]\n",
                "[pool.api]\ntimeouts = { connect = \"500ms\" }\nservers = [ { addr = \"127.0.0.1:9003\" }, { addr = \"127.0.0.1:9004\" } ]\n[pool.api.retry]\nattempts = 0\non = [\"error\", \"5xx\"]\n",
            )
        });
        assert_eq!(
            d.describe(),
            [
                "pool \"api\": timeouts connect 1m → 500ms, retry attempts 2 → 0, retry on [connect_failure, reset, timeout] → [connect_failure, reset, 5xx]",
                // It sends to the rebuilt pool "api".
                "listener \"web\" swapped whole between two requests (a pool it sends to, its settings, or the [redis] link of its shared limits changed)",
                "listener \"db\": max_connections_per_client 0 → 4, idle_timeout 10m → 30s",
            ]
        );
    }

    #[test]
    fn workers_and_the_grace_period_are_reported() {
        let d = diff(|s| format!("workers = 77\ngrace_period = \"20s\"\n{s}"));
        assert!(d.workers.is_some() && d.grace_period.is_some());
        let said = d.describe();
        assert!(
            said.iter()
                .any(|l| l.starts_with("workers = 77 in the file, ")
                    && l.contains(" running: a reload cannot change it; restart or upgrade")),
            "{said:?}"
        );
    }
}

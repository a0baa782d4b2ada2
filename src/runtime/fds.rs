//! File descriptors: the process's open-file limit, raised at start, and connection limits
//! that fit in it.
//!
//! Every proxied connection holds two descriptors (the client's and a server's), a UDP
//! session one, and the process needs some of its own (listening sockets, the admin
//! listener's connections, health checks, idle server connections, logs). A configuration
//! whose limits add up to more than the open-file limit would let a flood of connections or
//! spoofed datagrams take every descriptor, and with them every other listener and the
//! admin port (accept fails with EMFILE for all). So before a plan runs, [`fit`] lowers
//! `max_connections` and `max_sessions` until they fit, naming each one (at INFO for a
//! default the operator did not set, as HAProxy derives its default `maxconn` from `ulimit
//! -n`; a warning for a value the operator set), as HAProxy lowers `maxconn` to what
//! `ulimit -n` allows.

use crate::config::{Plan, Protocol};

/// Descriptors kept for the process itself, besides the listeners' own and the admin's.
const RESERVED: u64 = 64;
/// The fewest connections or sessions a listener is lowered to.
const FLOOR: usize = 16;

/// The soft open-file limit, `None` when unlimited or unknown.
pub fn open_file_limit() -> Option<u64> {
    #[cfg(target_os = "linux")]
    {
        rustix::process::getrlimit(rustix::process::Resource::Nofile).current
    }
    #[cfg(not(target_os = "linux"))]
    None
}

/// Raise the soft open-file limit to the hard one (as HAProxy and nginx's
/// `worker_rlimit_nofile` do), capped at 1,048,576: the usual soft limit of 1024 runs out at
/// about 500 proxied connections.
pub fn raise_open_file_limit() {
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        const CAP: u64 = 1 << 20;
        let mut limit = getrlimit(Resource::Nofile);
        let Some(soft) = limit.current else {
            return; // unlimited already
        };
        let target = limit.maximum.unwrap_or(u64::MAX).min(CAP.max(soft));
        if target > soft {
            limit.current = Some(target);
            match setrlimit(Resource::Nofile, limit) {
                Ok(()) => tracing::debug!("open-file limit raised from {soft} to {target}"),
                Err(e) => tracing::warn!("cannot raise the open-file limit from {soft}: {e}"),
            }
        }
    }
}

/// The descriptors `plan` needs besides its listeners' connections and sessions.
fn reserved(plan: &Plan) -> u64 {
    let listeners = plan.listeners.len() as u64;
    let admin = plan
        .admin
        .as_ref()
        .map_or(0, |a| a.limits.max_connections as u64 + 1);
    // A health check and the idle connections kept, per server.
    let servers: u64 = plan
        .pools
        .iter()
        .map(|p| p.servers.len() as u64 * (1 + p.keepalive as u64))
        .sum();
    RESERVED + listeners + admin + servers
}

/// Lower the listeners' `max_connections` (two descriptors each) and `max_sessions` (one)
/// so that together they fit in `nofile` descriptors with what the process needs besides.
/// The descriptors are shared out equally, a listener that needs less than its share
/// leaving the rest to the others (not in proportion to what each asks: UDP's default of
/// 100,000 sessions would leave an HTTP listener a few dozen connections). Returns what
/// was lowered (nothing when they fit).
pub fn fit(plan: &mut Plan, nofile: u64) -> Fitted {
    let reserved = reserved(plan);
    let budget = nofile.saturating_sub(reserved);
    let need = |p: Protocol, l: &crate::config::ListenerPlan| match p {
        Protocol::Udp => l.l4.max_sessions as u64,
        _ => 2 * l.limits.max_connections as u64,
    };
    let wanted: u64 = plan.listeners.iter().map(|l| need(l.protocol, l)).sum();
    if wanted <= budget {
        return Fitted {
            lowered: Vec::new(),
            nofile,
            reserved,
        };
    }
    // Equal shares, smallest needs first: what one leaves goes to the rest.
    let mut order: Vec<usize> = (0..plan.listeners.len()).collect();
    order.sort_by_key(|&i| need(plan.listeners[i].protocol, &plan.listeners[i]));
    let mut shares = vec![0u64; plan.listeners.len()];
    let (mut left, mut count) = (budget, order.len() as u64);
    for i in order {
        let l = &plan.listeners[i];
        let share = (left / count).min(need(l.protocol, l));
        shares[i] = share;
        left -= share;
        count -= 1;
    }
    let defaults = crate::config::ClientLimits::default().max_connections;
    let default_sessions = crate::config::L4Plan::default().max_sessions;
    let mut lowered_all = Vec::new();
    for (l, share) in plan.listeners.iter_mut().zip(shares) {
        let (key, value, default, per) = match l.protocol {
            Protocol::Udp => ("max_sessions", &mut l.l4.max_sessions, default_sessions, 1),
            _ => (
                "max_connections",
                &mut l.limits.max_connections,
                defaults,
                2,
            ),
        };
        let lowered = ((share / per) as usize).max(FLOOR).min(*value);
        if lowered == *value {
            continue;
        }
        lowered_all.push(Lowered {
            listener: l.name.clone(),
            key,
            from: *value,
            to: lowered,
            default: *value == default,
            per,
        });
        l.fitted = crate::config::Fitted(Some(crate::config::FitNote {
            written: *value,
            nofile,
            reserved,
        }));
        *value = lowered;
    }
    Fitted {
        lowered: lowered_all,
        nofile,
        reserved,
    }
}

/// What [`fit`] lowered, and under which limit.
#[derive(Debug)]
pub struct Fitted {
    pub lowered: Vec<Lowered>,
    pub nofile: u64,
    pub reserved: u64,
}

/// One listener's `max_connections` or `max_sessions`, lowered.
#[derive(Debug)]
pub struct Lowered {
    pub listener: String,
    pub key: &'static str,
    pub from: usize,
    pub to: usize,
    /// Whether `from` is the default (the operator did not set it, or set the default).
    pub default: bool,
    /// Descriptors per connection (2) or session (1).
    per: u64,
}

impl Fitted {
    /// A warning for each value the operator set that was lowered (HAProxy warns when it
    /// lowers a `maxconn` it was given).
    pub fn warnings(&self) -> Vec<String> {
        let (nofile, reserved) = (self.nofile, self.reserved);
        self.lowered
            .iter()
            .filter(|l| !l.default)
            .map(|l| {
                format!(
                    "listener {:?}: {key} = {} needs about {} descriptors; the open-file \
                     limit is {nofile}, {reserved} of them kept for the process, its pools and \
                     the admin listener: lowered to {}; raise the limit (ulimit -n, systemd \
                     LimitNOFILE=) or set {key} lower",
                    l.listener,
                    l.from,
                    l.from as u64 * l.per,
                    l.to,
                    key = l.key,
                )
            })
            .collect()
    }

    /// One line for the defaults lowered to fit (expected when the operator set none: as
    /// HAProxy derives its default `maxconn` from `ulimit -n`), `None` when none was.
    pub fn note(&self) -> Option<String> {
        let defaults: Vec<String> = self
            .lowered
            .iter()
            .filter(|l| l.default)
            .map(|l| format!("listener {:?} {} = {}", l.listener, l.key, l.to))
            .collect();
        (!defaults.is_empty()).then(|| {
            format!(
                "connection limits fitted to the open-file limit of {} ({} kept for the \
                 process, its pools and the admin listener), from their defaults: {}; set \
                 them, or raise the limit (ulimit -n, systemd LimitNOFILE=), to change them",
                self.nofile,
                self.reserved,
                defaults.join(", ")
            )
        })
    }
}

/// [`fit`] under the process's own limit, logged: a lowered default once at INFO, a
/// lowered value the operator set at WARN; each line once, not again at every reload or
/// API change that leaves it as it was.
pub fn fit_here(plan: &mut Plan) {
    static SAID: std::sync::Mutex<Vec<String>> = std::sync::Mutex::new(Vec::new());
    if let Some(nofile) = open_file_limit() {
        let fitted = fit(plan, nofile);
        let warnings = fitted.warnings();
        let note = fitted.note();
        let mut said = SAID.lock().unwrap_or_else(|e| e.into_inner());
        for w in warnings.iter().filter(|w| !said.contains(w)) {
            tracing::warn!("{w}");
        }
        if let Some(n) = note.as_ref().filter(|n| !said.contains(n)) {
            tracing::info!("{n}");
        }
        *said = warnings.into_iter().chain(note).collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::load_str;

    const TWO: &str = r#"
[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "p"
[[listener]]
name = "dns"
listen = "127.0.0.1:0"
protocol = "udp"
pool = "p"
[pool.p]
keepalive = 2
servers = [ { addr = "127.0.0.1:9" } ]
"#;

    #[test]
    fn defaults_that_do_not_fit_are_lowered_to_equal_shares_with_one_note() {
        let mut plan = load_str(TWO, "t.toml").unwrap();
        let f = fit(&mut plan, 512);
        assert_eq!(f.lowered.len(), 2, "{f:?}");
        // Not set by the operator: no warning, one line at INFO naming both.
        assert!(f.warnings().is_empty(), "{:?}", f.warnings());
        let note = f.note().unwrap();
        assert!(
            note.contains("open-file limit of 512")
                && note.contains("listener \"web\" max_connections = ")
                && note.contains("listener \"dns\" max_sessions = "),
            "{note}"
        );
        let conns = plan.listeners[0].limits.max_connections as u64;
        let sessions = plan.listeners[1].l4.max_sessions as u64;
        // 512 - 64 - 2 listeners - 3 for the server = 443 descriptors for both.
        assert!(2 * conns + sessions <= 443, "{conns} {sessions}");
        // Half each: 221 descriptors, 110 connections; 221 sessions.
        assert!(conns >= 100 && sessions >= 200, "{conns} {sessions}");
    }

    #[test]
    fn a_listener_needing_less_than_its_share_leaves_the_rest_to_others() {
        let src = TWO.replace(
            "pool = \"p\"\n[[listener]]",
            "pool = \"p\"\nmax_connections = 50\n[[listener]]",
        );
        let mut plan = load_str(&src, "t.toml").unwrap();
        let f = fit(&mut plan, 512);
        assert_eq!(f.lowered.len(), 1, "{f:?}");
        assert_eq!(plan.listeners[0].limits.max_connections, 50);
        assert_eq!(plan.listeners[1].l4.max_sessions, 443 - 100);
    }

    #[test]
    fn a_lowered_value_changes_in_a_diff_only_when_it_changes_and_says_from_what() {
        let fitted = |src: &str| {
            let mut plan = load_str(src, "t.toml").unwrap();
            fit(&mut plan, 512);
            plan
        };
        let a = fitted(TWO);
        let same = crate::config::diff::PlanDiff::between(&a, &fitted(TWO)).describe();
        assert!(same.is_empty(), "{same:?}");
        // Fewer idle connections kept: more descriptors for the listeners.
        let b = fitted(&TWO.replace("keepalive = 2", "keepalive = 0"));
        let changes = crate::config::diff::PlanDiff::between(&a, &b).describe();
        let line = changes
            .iter()
            .find(|c| c.contains("max_connections "))
            .unwrap();
        assert!(
            line.contains("(derived: max_connections = 10000 lowered to fit the open-file limit of 512 descriptors, 69 → 67 of them kept"),
            "{changes:?}"
        );
    }

    #[test]
    fn limits_that_fit_are_left_alone() {
        let mut plan = load_str(TWO, "t.toml").unwrap();
        let before = plan.clone();
        assert!(fit(&mut plan, 1 << 20).lowered.is_empty());
        assert_eq!(plan, before);
    }

    #[test]
    fn an_explicit_value_is_named_without_the_default_note() {
        let src = TWO.replace(
            "pool = \"p\"\n[[listener]]",
            "pool = \"p\"\nmax_connections = 5000\n[[listener]]",
        );
        let mut plan = load_str(&src, "t.toml").unwrap();
        let f = fit(&mut plan, 4096);
        let w = f.warnings();
        assert!(
            w[0].contains("max_connections = 5000 needs about 10000 descriptors"),
            "{w:?}"
        );
        // The udp listener's default sessions, lowered too, are the note's.
        assert_eq!(w.len(), 1, "{w:?}");
        assert!(f.note().unwrap().contains("max_sessions"), "{f:?}");
    }
}

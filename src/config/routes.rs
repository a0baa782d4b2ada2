//! Routes compared: what a new listener plan changes of its routes (added, removed, sent
//! elsewhere, put in another order), and which routes can never match because an earlier
//! one covers them. Pure data over [`ListenerPlan`]s, with the router's own rules (first
//! match wins; every condition given must hold; `path_prefix` is a plain prefix; host,
//! header and cookie values compare as the router compares them).
//!
//! [`route_changes`] feeds `diff.rs` (the reload report and `switchyard plan`);
//! [`shadowed`] feeds `switchyard plan`.

use super::plan::{HostMatch, ListenerPlan, Matcher, RoutePlan, Target};

/// One change of a listener's routes. Indexes are 1-based positions, as an operator counts
/// the `[[listener.route]]` tables of the listener.
#[derive(Debug, Clone, PartialEq)]
pub enum RouteChange {
    /// A route of the new plan that the old one did not have.
    Added { at: usize, route: RoutePlan },
    /// A route of the old plan that the new one does not have.
    Removed { at: usize, route: RoutePlan },
    /// The same conditions, another target.
    Retargeted {
        at: usize,
        matcher: Matcher,
        from: Target,
        to: Target,
    },
    /// Routes kept, but in another order: which matches first may change.
    Reordered,
    /// Where a request goes when no route matches.
    DefaultPool {
        from: Option<String>,
        to: Option<String>,
    },
}

impl RouteChange {
    /// One line, e.g. `route 2 added: path_prefix = "/v2/" → pool "api"`.
    pub fn describe(&self) -> String {
        match self {
            RouteChange::Added { at, route } => {
                format!("{} added: {}", which(*at, route), describe(route))
            }
            RouteChange::Removed { at, route } => {
                format!("{} removed: {}", which(*at, route), describe(route))
            }
            RouteChange::Retargeted {
                at,
                matcher,
                from,
                to,
            } => format!(
                "route {at} ({}) now goes to {} instead of {}",
                conditions(matcher),
                target(to),
                target(from)
            ),
            RouteChange::Reordered => "routes put in another order (the first match wins)".into(),
            RouteChange::DefaultPool { from, to } => {
                let p = |p: &Option<String>| {
                    p.as_ref()
                        .map_or("none (404)".to_string(), |p| format!("pool {p:?}"))
                };
                format!("default pool {} → {}", p(from), p(to))
            }
        }
    }
}

/// `route 2`, or `route 2 "api"` when it has a name.
pub fn which(at: usize, route: &RoutePlan) -> String {
    match &route.name {
        Some(n) => format!("route {at} {n:?}"),
        None => format!("route {at}"),
    }
}

/// What `new` changes of `old`'s routes and default pool, in the new plan's order.
pub fn route_changes(old: &ListenerPlan, new: &ListenerPlan) -> Vec<RouteChange> {
    let mut out = Vec::new();
    let mut used = vec![false; old.routes.len()];
    // The old position of each new route that stays (same conditions and target).
    let mut kept: Vec<usize> = Vec::new();
    for (i, r) in new.routes.iter().enumerate() {
        // Its settings (`limit`, `allow`, …) may differ: `ListenerDetail::route_settings`.
        let same = (0..old.routes.len()).find(|&j| {
            !used[j] && old.routes[j].matcher == r.matcher && old.routes[j].target == r.target
        });
        let retargeted =
            || (0..old.routes.len()).find(|&j| !used[j] && old.routes[j].matcher == r.matcher);
        if let Some(j) = same {
            used[j] = true;
            kept.push(j);
        } else if let Some(j) = retargeted() {
            used[j] = true;
            kept.push(j);
            out.push(RouteChange::Retargeted {
                at: i + 1,
                matcher: r.matcher.clone(),
                from: old.routes[j].target.clone(),
                to: r.target.clone(),
            });
        } else {
            out.push(RouteChange::Added {
                at: i + 1,
                route: r.clone(),
            });
        }
    }
    for (j, r) in old.routes.iter().enumerate() {
        if !used[j] {
            out.push(RouteChange::Removed {
                at: j + 1,
                route: r.clone(),
            });
        }
    }
    if kept.windows(2).any(|w| w[0] > w[1]) {
        out.push(RouteChange::Reordered);
    }
    if old.default_pool != new.default_pool {
        out.push(RouteChange::DefaultPool {
            from: old.default_pool.clone(),
            to: new.default_pool.clone(),
        });
    }
    out
}

/// A route that can never match.
#[derive(Debug, Clone, PartialEq)]
pub struct Shadowed {
    /// 1-based position of the route that never matches …
    pub route: usize,
    /// … and of the earlier route that matches every request it would.
    pub by: usize,
}

/// The routes of `l` that an earlier route covers (every request they would match, the
/// earlier one matches first), each with the first such earlier route.
pub fn shadowed(l: &ListenerPlan) -> Vec<Shadowed> {
    let mut out = Vec::new();
    for (i, r) in l.routes.iter().enumerate() {
        if let Some(j) = (0..i).find(|&j| covers(&l.routes[j].matcher, &r.matcher)) {
            out.push(Shadowed {
                route: i + 1,
                by: j + 1,
            });
        }
    }
    out
}

/// The first route that matches every request (no condition), which leaves the default
/// pool unused: its 1-based position.
pub fn catch_all(l: &ListenerPlan) -> Option<usize> {
    l.routes
        .iter()
        .position(|r| r.matcher == Matcher::default())
        .map(|i| i + 1)
}

/// Whether every request that `b` matches, `a` matches too: each condition of `a` is
/// implied by one of `b`. Exact, never a guess: a pair of routes that only together cover
/// a third is not seen.
pub fn covers(a: &Matcher, b: &Matcher) -> bool {
    let host = match (&a.host, &b.host) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(HostMatch::Exact(x)), Some(HostMatch::Exact(y))) => x.eq_ignore_ascii_case(y),
        (Some(HostMatch::Exact(_)), Some(HostMatch::Suffix(_))) => false,
        // `*.example.com` matches a name longer than `.example.com` ending with it.
        (Some(s @ HostMatch::Suffix(_)), Some(HostMatch::Exact(y))) => s.matches(y),
        (Some(HostMatch::Suffix(x)), Some(HostMatch::Suffix(y))) => {
            y.len() >= x.len()
                && y.as_bytes()[y.len() - x.len()..].eq_ignore_ascii_case(x.as_bytes())
        }
    };
    let path = match (&a.path_prefix, &b.path_prefix) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(x), Some(y)) => y.starts_with(x.as_str()),
    };
    fn same<T: PartialEq>(a: &Option<T>, b: &Option<T>) -> bool {
        a.is_none() || a == b
    }
    host && path && same(&a.method, &b.method) && same(&a.header, &b.header) && {
        same(&a.cookie, &b.cookie)
    }
}

/// A route as the file writes it: `host = "a.example.com", path_prefix = "/v1/" → pool "api"`.
pub fn describe(r: &RoutePlan) -> String {
    format!("{} → {}", conditions(&r.matcher), target(&r.target))
}

/// A route's conditions as the file writes them, or "every request".
pub fn conditions(m: &Matcher) -> String {
    let mut parts = Vec::new();
    match &m.host {
        Some(HostMatch::Exact(h)) => parts.push(format!("host = {h:?}")),
        Some(HostMatch::Suffix(s)) => parts.push(format!("host = \"*{s}\"")),
        None => {}
    }
    if let Some(p) = &m.path_prefix {
        parts.push(format!("path_prefix = {p:?}"));
    }
    if let Some(method) = &m.method {
        parts.push(format!("method = \"{method}\""));
    }
    if let Some((n, v)) = &m.header {
        parts.push(format!("header = {{ name = \"{n}\", value = {v:?} }}"));
    }
    if let Some((n, v)) = &m.cookie {
        parts.push(format!("cookie = {{ name = {n:?}, value = {v:?} }}"));
    }
    if parts.is_empty() {
        "every request".into()
    } else {
        parts.join(", ")
    }
}

/// A route's target: `pool "api"` or `split pool "v1" 90, pool "v2" 10`.
pub fn target(t: &Target) -> String {
    match t {
        Target::Pool(p) => format!("pool {p:?}"),
        Target::Split(parts) => {
            let parts: Vec<String> = parts
                .iter()
                .map(|(p, w)| format!("pool {p:?} {w}"))
                .collect();
            format!("split {}", parts.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn listener(routes: &str) -> ListenerPlan {
        let src = format!(
            "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:8080\"\npool = \"a\"\n{routes}\n\
             [pool.a]\nservers = [ {{ addr = \"127.0.0.1:9001\" }} ]\n\
             [pool.b]\nservers = [ {{ addr = \"127.0.0.1:9002\" }} ]\n"
        );
        let plan = crate::config::load_str(&src, "t.toml").unwrap_or_else(|e| panic!("{e}"));
        plan.listeners[0].clone()
    }

    fn route(conditions: &str, pool: &str) -> String {
        format!("[[listener.route]]\n{conditions}\npool = \"{pool}\"\n")
    }

    #[test]
    fn a_longer_prefix_after_a_shorter_one_never_matches() {
        let l = listener(
            &[
                route("path_prefix = \"/api/\"", "b"),
                route("path_prefix = \"/api/v2/\"", "a"),
            ]
            .concat(),
        );
        assert_eq!(shadowed(&l), [Shadowed { route: 2, by: 1 }]);
        // The other order is the right one: nothing is shadowed.
        let l = listener(
            &[
                route("path_prefix = \"/api/v2/\"", "a"),
                route("path_prefix = \"/api/\"", "b"),
            ]
            .concat(),
        );
        assert!(shadowed(&l).is_empty());
    }

    #[test]
    fn hosts_headers_and_methods_are_compared_as_the_router_does() {
        let l = listener(
            &[
                route("host = \"*.example.com\"", "b"),
                route("host = \"shop.EXAMPLE.com\"\npath_prefix = \"/x\"", "a"),
                route("host = \"*.eu.example.com\"", "a"),
                route("host = \"example.com\"", "a"),
                route("method = \"POST\"", "a"),
                route(
                    "method = \"POST\"\nheader = { name = \"x-canary\", value = \"1\" }",
                    "b",
                ),
                route(
                    "header = { name = \"x-canary\", value = \"2\" }\nmethod = \"POST\"",
                    "b",
                ),
            ]
            .concat(),
        );
        // `*.example.com` covers shop.example.com and *.eu.example.com, not example.com
        // itself; POST covers POST with any header.
        assert_eq!(
            shadowed(&l),
            [
                Shadowed { route: 2, by: 1 },
                Shadowed { route: 3, by: 1 },
                Shadowed { route: 6, by: 5 },
                Shadowed { route: 7, by: 5 },
            ]
        );
    }

    #[test]
    fn a_route_without_conditions_takes_everything_after_it() {
        let l = listener(&[route("", "b"), route("path_prefix = \"/\"", "a")].concat());
        assert_eq!(shadowed(&l), [Shadowed { route: 2, by: 1 }]);
        assert_eq!(catch_all(&l), Some(1));
        assert_eq!(describe(&l.routes[0]), "every request → pool \"b\"");
    }

    #[test]
    fn changes_name_routes_by_position_and_see_a_new_order() {
        let old = listener(
            &[
                route("path_prefix = \"/a/\"", "a"),
                route("path_prefix = \"/b/\"", "b"),
                route("path_prefix = \"/c/\"", "a"),
            ]
            .concat(),
        );
        let new = listener(
            &[
                route("path_prefix = \"/b/\"", "b"),
                route("path_prefix = \"/a/\"", "a"),
                route("path_prefix = \"/c/\"", "b"),
                route("host = \"x.example.com\"", "a"),
            ]
            .concat(),
        );
        let lines: Vec<String> = route_changes(&old, &new)
            .iter()
            .map(|c| c.describe())
            .collect();
        assert_eq!(
            lines,
            [
                "route 3 (path_prefix = \"/c/\") now goes to pool \"b\" instead of pool \"a\"",
                "route 4 added: host = \"x.example.com\" → pool \"a\"",
                "routes put in another order (the first match wins)",
            ]
        );
        let lines: Vec<String> = route_changes(&new, &old)
            .iter()
            .map(|c| c.describe())
            .collect();
        assert!(
            lines.contains(&"route 4 removed: host = \"x.example.com\" → pool \"a\"".to_string()),
            "{lines:?}"
        );
        assert!(route_changes(&old, &old).is_empty());
    }
}

//! `[redis]` and `shared = true` on `[pool.NAME.sticky]` and on `[[listener.limit]]` /
//! `[[listener.route.limit]]`: the plan they make, and the errors (file:line:column and the
//! fix) for a table or a limit shared with nothing to share it through, for shared cookies,
//! and for values Redis cannot take.

use std::time::Duration;

use super::validate;
use crate::config::RedisPlan;

const BASE: &str = "[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nservers = [ { addr = \"127.0.0.1:9001\" } ]\n";

fn errors(src: &str) -> String {
    validate(src, "t.toml").unwrap_err().to_string()
}

#[test]
fn redis_and_shared_tables_become_the_plan() {
    let src = format!(
        "{BASE}[pool.p.sticky]\nmode = \"source_ip\"\nshared = true\n[redis]\naddr = \"10.0.0.5:6379\"\nprefix = \"lb1:\"\ntimeout = \"3ms\"\nio_timeout = \"500ms\"\nsync_interval = \"50ms\"\nqueue = 500\n"
    );
    let plan = validate(&src, "t.toml").unwrap();
    assert_eq!(
        plan.redis,
        Some(RedisPlan {
            addr: "10.0.0.5:6379".into(),
            prefix: "lb1:".into(),
            timeout: Duration::from_millis(3),
            io_timeout: Duration::from_millis(500),
            sync_interval: Duration::from_millis(50),
            queue: 500,
        })
    );
    assert!(plan.pool("p").unwrap().sticky.as_ref().unwrap().shared);
    // Only addr is needed; the rest has defaults.
    let src = format!(
        "{BASE}[pool.p.sticky]\nmode = \"app_cookie\"\nname = \"JSESSIONID\"\nshared = true\n[redis]\naddr = \"redis://:secret@redis.internal:6380/2\"\n"
    );
    let plan = validate(&src, "t.toml").unwrap();
    let r = plan.redis.unwrap();
    assert_eq!(r.addr, "redis://:secret@redis.internal:6380/2");
    assert_eq!(r.timeout, RedisPlan::default().timeout);
    // Without shared, a table stays local; without [redis] there is none.
    let plan = validate(
        &format!("{BASE}[pool.p.sticky]\nmode = \"source_ip\"\n"),
        "t.toml",
    )
    .unwrap();
    assert!(!plan.pool("p").unwrap().sticky.as_ref().unwrap().shared);
    assert_eq!(plan.redis, None);
}

#[test]
fn a_shared_table_without_redis_says_where_and_what_to_add() {
    let src = format!("{BASE}[pool.p.sticky]\nmode = \"source_ip\"\nshared = true\n");
    let text = errors(&src);
    assert!(
        text.contains("t.toml:8:10: [pool.p.sticky] says shared = true, but there is no [redis]"),
        "{text}"
    );
    assert!(
        text.contains("add a [redis] table with addr = \"host:6379\""),
        "{text}"
    );
}

/// A listener with a shared limit and a route with a shared limit (`shared` on lines 7
/// and 14), then the pool.
fn shared_limits(redis: &str) -> String {
    let (listener, pool) = BASE.split_at(BASE.find("[pool.p]").unwrap());
    format!(
        "{listener}[[listener.limit]]\nkey = \"client_ip\"\nrate = \"50/s\"\nshared = true\n[[listener.route]]\npath_prefix = \"/api\"\npool = \"p\"\n[[listener.route.limit]]\nkey = \"header:x-api-key\"\nrate = \"10/s\"\nshared = true\n{pool}{redis}"
    )
}

#[test]
fn a_shared_limit_with_redis_becomes_the_plan() {
    let plan = validate(
        &shared_limits("[redis]\naddr = \"127.0.0.1:6379\"\n"),
        "t.toml",
    )
    .unwrap();
    let l = &plan.listeners[0];
    assert!(l.guard.limits[0].shared);
    assert!(l.routes[0].guard.limits[0].shared);
    assert!(plan.redis.is_some());
    // A new link moves the shared limits: their listener changes, not one without any.
    use crate::config::PlanDiff;
    use crate::config::diff::ListenerChange;
    let other = "[[listener]]\nname = \"plain\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n";
    let file = |port: u16| {
        let src = format!(
            "{other}{}",
            shared_limits(&format!("[redis]\naddr = \"127.0.0.1:{port}\"\n"))
        );
        validate(&src, "t.toml").unwrap()
    };
    let d = PlanDiff::between(&file(6379), &file(6380));
    assert_eq!(d.listener("listener2"), Some(ListenerChange::Changed));
    assert_eq!(d.listener("plain"), Some(ListenerChange::Same));
    // And the report says why it was swapped (not only "a pool or its settings changed").
    let said = d.describe();
    assert!(
        said.iter()
            .any(|l| l.starts_with("listener \"listener2\" swapped whole")
                && l.contains("the [redis] link of its shared limits")),
        "{said:?}"
    );
    assert!(PlanDiff::between(&file(6379), &file(6379)).is_empty());
}

#[test]
fn a_shared_limit_without_redis_says_where_and_what_to_add() {
    let text = errors(&shared_limits(""));
    for want in [
        "t.toml:7:10: [[listener.limit]] of listener \"listener1\" says shared = true, but there is no [redis] to share it through",
        "t.toml:14:10: [[listener.route.limit]] of listener \"listener1\" says shared = true, but there is no [redis]",
        "add a [redis] table with addr = \"host:6379\", or remove shared",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
    // Without shared, a limit is local and needs nothing.
    assert!(validate(&shared_limits("").replace("shared = true\n", ""), "t.toml").is_ok());
}

#[test]
fn a_shared_cookie_is_refused_it_needs_nothing_shared() {
    let src = format!(
        "{BASE}[pool.p.sticky]\nmode = \"cookie\"\nshared = true\n[redis]\naddr = \"127.0.0.1:6379\"\n"
    );
    let text = errors(&src);
    assert!(
        text.contains("t.toml:8:10: shared = true with mode = \"cookie\": the cookie already names the server on every balancer"),
        "{text}"
    );
    assert!(text.contains("remove shared"), "{text}");
}

#[test]
fn bad_redis_values_are_each_reported() {
    let src = format!(
        "{BASE}[redis]\naddr = \"rediss://h:6379\"\nprefix = \"\"\ntimeout = \"0s\"\nsync_interval = \"1ms\"\nqueue = 0\ntls = true\n"
    );
    let text = errors(&src);
    for want in [
        "t.toml:7:8: redis addr \"rediss://h:6379\": rediss:// is not supported",
        "t.toml:8:10: prefix = \"\" would mix",
        "t.toml:9:11: ",
        "t.toml:10:17: a sync_interval under 10ms would flood Redis",
        "t.toml:11:9: queue = 0 is out of range",
        "t.toml:12:1: unknown field `tls`",
    ] {
        assert!(text.contains(want), "{want:?} in:\n{text}");
    }
    for bad in ["localhost", "h:port", ":6379", "redis://h:6379/x"] {
        let text = errors(&format!("{BASE}[redis]\naddr = \"{bad}\"\n"));
        assert!(text.contains("is not an address"), "{bad}: {text}");
        assert!(text.contains("write host:port"), "{bad}: {text}");
    }
    let text = errors(&format!("{BASE}[redis]\nprefix = \"x:\"\n"));
    assert!(text.contains("t.toml:6:1: [redis] has no addr"), "{text}");
    let text = errors(&format!(
        "{BASE}[redis]\naddr = \"h:1\"\ntimeout = \"2s\"\n"
    ));
    assert!(
        text.contains(
            "t.toml:8:11: timeout (what a request waits on Redis) is longer than io_timeout"
        ),
        "{text}"
    );
}

#[test]
fn a_changed_redis_rebuilds_the_pools_with_shared_tables_and_no_other() {
    use crate::config::PlanDiff;
    use crate::config::diff::{PoolChange, RedisChange};
    let two = "[pool.q]\nservers = [ { addr = \"127.0.0.1:9002\" } ]\n[pool.q.sticky]\nmode = \"source_ip\"\n[[listener]]\nlisten = \"127.0.0.1:0\"\nname = \"q\"\npool = \"q\"\n";
    let file = |redis: &str| {
        let src =
            format!("{BASE}[pool.p.sticky]\nmode = \"source_ip\"\nshared = true\n{two}{redis}");
        validate(&src, "t.toml").unwrap()
    };
    let a = file("[redis]\naddr = \"127.0.0.1:6379\"\n");
    let b = file("[redis]\naddr = \"127.0.0.1:6380\"\nprefix = \"x:\"\n");
    let d = PlanDiff::between(&a, &b);
    assert_eq!(d.redis, RedisChange::Changed(vec!["addr", "prefix"]));
    assert!(
        matches!(d.pool("p"), Some(PoolChange::Rebuilt(r)) if r.settings == ["redis"] && r.keep_conns)
    );
    assert_eq!(d.pool("q"), Some(&PoolChange::Same), "its table is local");
    let lines = d.describe();
    assert!(
        lines.iter().any(|l| l == "[redis] addr, prefix changed: a new link (shared tables move to it, their entries kept)"),
        "{lines:?}"
    );
    assert!(PlanDiff::between(&a, &a).is_empty());
    // Added and removed (the pool's table stops being shared, which rebuilds it anyway).
    let local = validate(
        &format!("{BASE}[pool.p.sticky]\nmode = \"source_ip\"\n{two}"),
        "t.toml",
    )
    .unwrap();
    assert_eq!(PlanDiff::between(&local, &a).redis, RedisChange::Added);
    let d = PlanDiff::between(&a, &local);
    assert_eq!(d.redis, RedisChange::Removed);
    assert!(matches!(d.pool("p"), Some(PoolChange::Rebuilt(r)) if r.settings.contains(&"sticky")));
}

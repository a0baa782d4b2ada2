//! The metrics of the link to Redis (`[redis]`, `cluster::link`), of the rate limits synced
//! through it (`cluster::rate`) and of the sticky tables shared through it
//! (`cluster::sticky`).

use super::describe::{Json, Metric, Reader};
use crate::observe::metrics::Kind;

pub static LINK: &[Metric] = &[
    Metric {
        name: "switchyard_redis_up",
        help: "1 while the link to Redis is up; 0 while it is down and shared state is local only (lookups answer from the local tables, writes are dropped, shared limits hold per balancer).",
        kind: Kind::Gauge,
        labels: &[],
        json: Json::Flag("up"),
        counted_in: "`Link::is_up` (cluster::link)",
        read: Reader::Redis(|c, o| o.value(c.is_up())),
    },
    Metric {
        name: "switchyard_redis_calls_total",
        help: "Calls to Redis by result: ok, error (an error answer or a broken connection), timeout (past [redis] timeout for a request, io_timeout for the background), skipped (not made: the link was down).",
        kind: Kind::Counter,
        labels: &["result"],
        json: Json::Number("calls"),
        counted_in: "`Link::call` (cluster::link)",
        read: Reader::Redis(|c, o| {
            let s = c.link_stats();
            o.sample(&["ok"], s.ok.into());
            o.sample(&["error"], s.errors.into());
            o.sample(&["timeout"], s.timeouts.into());
            o.sample(&["skipped"], s.skipped.into());
        }),
    },
    Metric {
        name: "switchyard_redis_writes_total",
        help: "Writes of shared state (a sticky mapping learned, a renewal) by result: sent (Redis answered its pipeline), dropped (the queue was full, the link down, or the pipeline failed; the catch-up writes the entries again when the link is back).",
        kind: Kind::Counter,
        labels: &["result"],
        json: Json::Number("writes"),
        counted_in: "`Link::enqueue`, `Link::write_loop` (cluster::link)",
        read: Reader::Redis(|c, o| {
            let s = c.link_stats();
            o.sample(&["sent"], s.writes.into());
            o.sample(&["dropped"], s.dropped.into());
        }),
    },
    Metric {
        name: "switchyard_redis_messages_total",
        help: "Messages received on the subscription (mappings learned by any balancer sharing the prefix, this one included).",
        kind: Kind::Counter,
        labels: &[],
        json: Json::Number("messages"),
        counted_in: "`Link::dispatch` (cluster::link)",
        read: Reader::Redis(|c, o| o.value(c.link_stats().messages)),
    },
    Metric {
        name: "switchyard_redis_link_changes_total",
        help: "Times the link came up (the first connection included) and went down.",
        kind: Kind::Counter,
        labels: &["to"],
        json: Json::Number("link_changes"),
        counted_in: "`Link::run` (cluster::link)",
        read: Reader::Redis(|c, o| {
            let s = c.link_stats();
            o.sample(&["up"], s.ups.into());
            o.sample(&["down"], s.downs.into());
        }),
    },
    Metric {
        name: "switchyard_redis_connect_failures_total",
        help: "Connection attempts to Redis that failed (retried with backoff, 100 ms doubling to 2 s).",
        kind: Kind::Counter,
        labels: &[],
        json: Json::Number("connect_failures"),
        counted_in: "`Link::run` (cluster::link)",
        read: Reader::Redis(|c, o| o.value(c.link_stats().connect_failures)),
    },
    Metric {
        name: "switchyard_redis_rate_syncs_total",
        help: "Syncs of the shared rate limits (shared = true on a [[listener.limit]]; one every sync_interval while the link is up, all limits in one pipeline) by result: ok (Redis answered), failed (failed or timed out), skipped (not tried: the link was down). While syncs fail or are skipped each balancer holds its limits alone.",
        kind: Kind::Counter,
        labels: &["result"],
        json: Json::Number("rate_syncs"),
        counted_in: "`SharedLimits::sync` (cluster::rate)",
        read: Reader::Redis(|c, o| {
            let s = c.rate_stats();
            o.sample(&["ok"], s.syncs.into());
            o.sample(&["failed"], s.failed.into());
            o.sample(&["skipped"], s.skipped.into());
        }),
    },
    Metric {
        name: "switchyard_redis_rate_keys_total",
        help: "Keys of the shared rate limits whose counts a sync sent (sent), and of those, the ones Redis answered in debt, whose local allowance was lowered to the global one (raised: the other balancers had used some of it).",
        kind: Kind::Counter,
        labels: &["event"],
        json: Json::Number("rate_keys"),
        counted_in: "`SharedLimits::sync` (cluster::rate)",
        read: Reader::Redis(|c, o| {
            let s = c.rate_stats();
            o.sample(&["sent"], s.keys.into());
            o.sample(&["raised"], s.raised.into());
        }),
    },
];

pub static SHARED_STICKY: &[Metric] = &[Metric {
    name: "switchyard_pool_sticky_shared_total",
    help: "What a shared stick table (shared = true) did, by event: learned_remote (a mapping applied from the subscription), fetch_hit / fetch_miss (a local miss read through to Redis and found the key or not), fetch_failed (the read-through timed out or failed; the request went on without), fetch_skipped (not tried: the link was down), unknown_server (a mapping naming a server this pool does not have), caught_up (written to Redis by a catch-up after an outage), adopted (taken from Redis by a catch-up: another balancer had another server). Pools whose table is not shared have none of these.",
    kind: Kind::Counter,
    labels: &["event"],
    json: Json::Number("shared"),
    counted_in: "`SharedStickTable` (cluster::sticky)",
    read: Reader::Sticky(|s, o| {
        let Some(c) = s.shared_stats() else { return };
        for (event, n) in [
            ("learned_remote", c.learned_remote),
            ("fetch_hit", c.fetch_hits),
            ("fetch_miss", c.fetch_misses),
            ("fetch_failed", c.fetch_failed),
            ("fetch_skipped", c.fetch_skipped),
            ("unknown_server", c.unknown_server),
            ("caught_up", c.caught_up),
            ("adopted", c.adopted),
        ] {
            o.sample(&[event], n.into());
        }
    }),
}];

//! The metrics of each pool, and of each pool's sticky state (`proxy::http::sticky`).

use super::describe::{Json, Metric, Reader, load};
use crate::observe::metrics::Kind;

pub static METRICS: &[Metric] = &[
    Metric {
        name: "switchyard_pool_servers",
        help: "Servers configured in the pool, primaries and backups.",
        kind: Kind::Gauge,
        labels: &[],
        json: Json::Number("servers_configured"),
        counted_in: "`Pool::servers`",
        read: Reader::Pool(|u, o| o.value(u.pool.servers().len())),
    },
    Metric {
        name: "switchyard_pool_servers_usable",
        help: "Servers of the pool that take new requests now (up and not draining); 0 means new requests get 503 and /health/ready fails.",
        kind: Kind::Gauge,
        labels: &[],
        json: Json::Number("servers_usable"),
        counted_in: "`Server::accepts_new` over the pool",
        read: Reader::Pool(|u, o| {
            o.value(u.pool.servers().iter().filter(|s| s.accepts_new()).count())
        }),
    },
    Metric {
        name: "switchyard_pool_retries_total",
        help: "Tries of HTTP requests after their first, each on a server the request had not tried (pool [retry]).",
        kind: Kind::Counter,
        labels: &[],
        json: Json::Number("retries"),
        counted_in: "`retry_loop` (proxy::http::retry)",
        read: Reader::Pool(|u, o| o.value(load(&u.stats().retries))),
    },
    Metric {
        name: "switchyard_pool_retry_budget_refusals_total",
        help: "Retries the pool's retry budget refused: the request got the failed try's answer instead.",
        kind: Kind::Counter,
        labels: &[],
        json: Json::Number("retry_budget_refusals"),
        counted_in: "`retry_loop` (proxy::http::retry)",
        read: Reader::Pool(|u, o| o.value(load(&u.stats().budget_refusals))),
    },
    Metric {
        name: "switchyard_pool_queue_waiting",
        help: "Requests waiting now for a server below its max_conns (0 for a pool without a queue: no server has max_conns, or queue_size = 0).",
        kind: Kind::Gauge,
        labels: &[],
        json: Json::Number("queue_waiting"),
        counted_in: "`Queue::wait` (upstream::queue)",
        read: Reader::Pool(|u, o| o.value(u.pool.queue().map_or(0, |q| q.waiting()))),
    },
    Metric {
        name: "switchyard_pool_queue_total",
        help: "Requests that waited in the pool's queue, by result: served (got a server) or refused (503: the queue was full or queue_timeout ran out).",
        kind: Kind::Counter,
        labels: &["result"],
        json: Json::Number("queue"),
        counted_in: "`Queue::wait` (upstream::queue)",
        read: Reader::Pool(|u, o| {
            let (served, refused) = u.pool.queue().map_or((0, 0), |q| q.counts());
            o.sample(&["served"], served.into());
            o.sample(&["refused"], refused.into());
        }),
    },
];

pub static STICKY: &[Metric] = &[
    Metric {
        name: "switchyard_pool_sticky_broken_total",
        help: "Requests whose remembered server (cookie, app_cookie or source_ip) could not serve them (down, unhealthy, failed, gone, or failing during the request) and were moved to another server. A client leaving a backup for a recovered primary is not counted.",
        kind: Kind::Counter,
        labels: &[],
        json: Json::Number("broken"),
        counted_in: "`Sticky::after` (proxy::http::sticky)",
        read: Reader::Sticky(|s, o| o.value(s.broken())),
    },
    Metric {
        name: "switchyard_pool_sticky_table_entries",
        help: "Entries in the pool's stick table (app_cookie, source_ip; always 0 for cookie, which keeps no table).",
        kind: Kind::Gauge,
        labels: &[],
        json: Json::Number("table_entries"),
        counted_in: "`Sticky::table_len`",
        read: Reader::Sticky(|s, o| o.value(s.table_len())),
    },
];

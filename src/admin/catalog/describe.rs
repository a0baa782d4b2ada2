//! What a metric's description is made of, and how a description reaches the live value.
//!
//! A [`Metric`] is a constant: its name, help, kind, own labels, its key in `/status`, the
//! code that counts it, and a reader ([`Reader`]) — a plain function from the thing it is
//! about (a server, a pool, a listener's counters, the running configuration) to samples
//! written into an [`Out`]. The Prometheus page, the JSON document and the docs' list are
//! three walks over the same constants.

use super::super::View;
use crate::cluster::Cluster;
use crate::guard::ConnLimits;
use crate::observe::histogram::Snapshot;
use crate::observe::metrics::{Kind, Value};
use crate::proxy::http::Upstream;
use crate::proxy::http::proxy_in::ProxyInStats;
use crate::proxy::http::stats::{HttpStats, Row};
use crate::proxy::http::sticky::Sticky;
use crate::proxy::tcp::TcpStats;
use crate::proxy::udp::UdpStats;
use crate::upstream::Server;

/// One metric, described once.
pub struct Metric {
    /// The Prometheus name (`switchyard_…`; a counter's ends in `_total`).
    pub name: &'static str,
    /// The `# HELP` text, which is also the docs' meaning.
    pub help: &'static str,
    pub kind: Kind,
    /// The labels of its own, after those of its scope ([`Scope::labels`]): the values a
    /// reader passes to [`Out::sample`], in this order.
    pub labels: &'static [&'static str],
    /// Where it goes in the scope's `/status` object.
    pub json: Json,
    /// The code that counts it (for the docs and for whoever changes it).
    pub counted_in: &'static str,
    pub read: Reader,
}

/// What one sample set of a family is about: the labels that name it, its section of the
/// docs and its object in `/status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    Server,
    Pool,
    Sticky,
    Answers,
    Http,
    Limits,
    Tcp,
    Udp,
    ProxyIn,
    Process,
    Redis,
}

impl Scope {
    pub const ALL: [Scope; 11] = [
        Scope::Server,
        Scope::Pool,
        Scope::Sticky,
        Scope::Answers,
        Scope::Http,
        Scope::Limits,
        Scope::Tcp,
        Scope::Udp,
        Scope::ProxyIn,
        Scope::Process,
        Scope::Redis,
    ];

    /// The labels every sample of the scope carries, first.
    pub fn labels(self) -> &'static [&'static str] {
        match self {
            Scope::Server => &["pool", "server", "addr"],
            Scope::Pool => &["pool"],
            Scope::Sticky => &["pool", "mode"],
            Scope::Answers => &["listener", "route", "pool"],
            Scope::Http | Scope::Limits | Scope::Tcp | Scope::Udp | Scope::ProxyIn => &["listener"],
            Scope::Process | Scope::Redis => &[],
        }
    }

    /// The docs' heading.
    pub fn title(self) -> &'static str {
        match self {
            Scope::Server => "Per server",
            Scope::Pool => "Per pool",
            Scope::Sticky => "Per pool with `[pool.NAME.sticky]`",
            Scope::Answers => "Per http/https listener, route and pool: the answers clients got",
            Scope::Http => "Per http/https listener",
            Scope::Limits => "Per http/https listener: its client limits",
            Scope::Tcp => "Per TCP listener",
            Scope::Udp => "Per UDP listener",
            Scope::ProxyIn => "Per http/https listener with `accept_proxy_protocol`",
            Scope::Process => "Process and configuration",
            Scope::Redis => "The link to Redis (`[redis]`)",
        }
    }

    /// The docs' words on the scope's labels.
    pub fn about(self) -> &'static str {
        match self {
            Scope::Server => {
                "Labels: `pool`, `server` (its `name`, or its address as written when unnamed), `addr`."
            }
            Scope::Pool => "Label: `pool`.",
            Scope::Sticky => {
                "Labels: `pool`, `mode` (`cookie`, `app_cookie`, `source_ip`). Pools without stickiness have none of these."
            }
            Scope::Answers => {
                "Labels: `listener`; `route`, the route's `name`, or without one its position in the listener (`1`, `2`, …), `default` for the listener's `pool`, `-` for answers no route took (404, and the balancer's own 400/405/501/308 before routing, and the listener's own refusals: 403 of its allow/deny, 429 of its limits, a block rule's status); `pool`, `-` without one. Every answer a client got is counted once, the balancer's own 4xx/5xx included (no route, no server, timeouts, limits)."
            }
            Scope::Http | Scope::Tcp | Scope::Udp => "Label: `listener`.",
            Scope::Limits => {
                "Label: `listener`. The keys are in docs/config.md (client limits); a limit changed by a reload starts its counts again only when max_connections or max_connections_per_client changes."
            }
            Scope::ProxyIn => {
                "Label: `listener`. Listeners without `accept_proxy_protocol` have none of these."
            }
            Scope::Process => "No labels of the scope.",
            Scope::Redis => {
                "No labels of the scope (one link per process). Without `[redis]` there are none of these."
            }
        }
    }

    /// The object in `/status` that holds the scope's values.
    pub fn json_object(self) -> &'static str {
        match self {
            Scope::Server => "pools[].servers[]",
            Scope::Pool => "pools[]",
            Scope::Sticky => "pools[].sticky",
            Scope::Answers => "listeners[].answers[]",
            Scope::Http => "listeners[].counters",
            Scope::Limits => "listeners[].counters.limits",
            Scope::Tcp | Scope::Udp => "listeners[].counters",
            Scope::ProxyIn => "listeners[].counters.proxy_protocol",
            Scope::Process => "the document",
            Scope::Redis => "redis",
        }
    }
}

/// How a metric shows in `/status`: under a key of its scope's object (a dotted key names
/// nested objects). A metric with labels of its own becomes an object keyed by their values
/// (`"responses": {"2xx": 4, …}`); a histogram `{"count", "sum", "buckets": {le: cumulative}}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Json {
    /// The number as it is.
    Number(&'static str),
    /// 0 or 1, as `false` or `true`.
    Flag(&'static str),
    /// Seconds, written in milliseconds (to the microsecond).
    Millis(&'static str),
    /// A state set (one sample per state, the current one 1): the name of the current state.
    OneOf(&'static str),
    /// An info metric (always 1): its labels as keys of this object (`""`: the scope's own).
    Labels(&'static str),
}

impl Json {
    pub fn key(self) -> &'static str {
        match self {
            Json::Number(k)
            | Json::Flag(k)
            | Json::Millis(k)
            | Json::OneOf(k)
            | Json::Labels(k) => k,
        }
    }
}

/// The reader of a metric: a function of the thing its scope is about.
#[derive(Clone, Copy)]
pub enum Reader {
    /// A server of a pool (the pool tells whether checks run).
    Server(fn(&Upstream, &Server, &mut dyn Out)),
    Pool(fn(&Upstream, &mut dyn Out)),
    Sticky(fn(&Sticky, &mut dyn Out)),
    Answers(fn(&Row, &mut dyn Out)),
    Http(fn(&HttpStats, &mut dyn Out)),
    Limits(fn(&ConnLimits, &mut dyn Out)),
    Tcp(fn(&TcpStats, &mut dyn Out)),
    Udp(fn(&UdpStats, &mut dyn Out)),
    ProxyIn(fn(&ProxyInStats, &mut dyn Out)),
    Process(fn(&View, &mut dyn Out)),
    Redis(fn(&Cluster, &mut dyn Out)),
}

/// Where a reader writes its samples: the Prometheus page or the JSON document.
pub trait Out {
    /// One sample; `labels` are the values of the metric's own labels, in order.
    fn sample(&mut self, labels: &[&str], value: Value);
    /// One histogram, with the values of the metric's own labels.
    fn histogram(&mut self, labels: &[&str], h: &Snapshot);
}

impl dyn Out + '_ {
    /// The one sample of a metric without labels of its own.
    pub fn value(&mut self, v: impl Into<Value>) {
        self.sample(&[], v.into());
    }
}

/// The live thing one sample set is read from.
#[derive(Clone, Copy)]
pub enum Subject<'a> {
    Server(&'a Upstream, &'a Server),
    Pool(&'a Upstream),
    Sticky(&'a Sticky),
    Answers(&'a Row),
    Http(&'a HttpStats),
    Limits(&'a ConnLimits),
    Tcp(&'a TcpStats),
    Udp(&'a UdpStats),
    ProxyIn(&'a ProxyInStats),
    Process(&'a View),
    Redis(&'a Cluster),
}

impl Metric {
    pub fn scope(&self) -> Scope {
        match self.read {
            Reader::Server(_) => Scope::Server,
            Reader::Pool(_) => Scope::Pool,
            Reader::Sticky(_) => Scope::Sticky,
            Reader::Answers(_) => Scope::Answers,
            Reader::Http(_) => Scope::Http,
            Reader::Limits(_) => Scope::Limits,
            Reader::Tcp(_) => Scope::Tcp,
            Reader::Udp(_) => Scope::Udp,
            Reader::ProxyIn(_) => Scope::ProxyIn,
            Reader::Process(_) => Scope::Process,
            Reader::Redis(_) => Scope::Redis,
        }
    }

    /// Write the samples of `subject` (nothing when it is of another scope).
    pub fn read(&self, subject: Subject<'_>, out: &mut dyn Out) {
        match (self.read, subject) {
            (Reader::Server(f), Subject::Server(u, s)) => f(u, s, out),
            (Reader::Pool(f), Subject::Pool(u)) => f(u, out),
            (Reader::Sticky(f), Subject::Sticky(s)) => f(s, out),
            (Reader::Answers(f), Subject::Answers(r)) => f(r, out),
            (Reader::Http(f), Subject::Http(s)) => f(s, out),
            (Reader::Limits(f), Subject::Limits(c)) => f(c, out),
            (Reader::Tcp(f), Subject::Tcp(s)) => f(s, out),
            (Reader::Udp(f), Subject::Udp(s)) => f(s, out),
            (Reader::ProxyIn(f), Subject::ProxyIn(s)) => f(s, out),
            (Reader::Process(f), Subject::Process(v)) => f(v, out),
            (Reader::Redis(f), Subject::Redis(c)) => f(c, out),
            _ => {}
        }
    }
}

/// One thing of a scope in the running view: the values of the scope's labels, and what
/// its metrics read.
pub struct Instance<'a> {
    pub labels: Vec<String>,
    pub subject: Subject<'a>,
}

/// Every thing of `scope` in the view, in the view's order (pools and listeners as
/// configured, servers as in their pool).
pub fn instances<'a>(
    view: &'a View,
    scope: Scope,
    rows: &'a [Vec<std::sync::Arc<Row>>],
) -> Vec<Instance<'a>> {
    use super::super::ListenerStats;
    let listeners = || {
        view.listeners
            .iter()
            .map(|l| (vec![l.name.clone()], &l.stats))
    };
    match scope {
        Scope::Server => view
            .pools
            .iter()
            .flat_map(|u| {
                u.pool.servers().iter().map(move |s| Instance {
                    labels: vec![u.pool.name.clone(), s.name.clone(), s.addr.to_string()],
                    subject: Subject::Server(u, s),
                })
            })
            .collect(),
        Scope::Pool => view
            .pools
            .iter()
            .map(|u| Instance {
                labels: vec![u.pool.name.clone()],
                subject: Subject::Pool(u),
            })
            .collect(),
        Scope::Sticky => view
            .pools
            .iter()
            .filter_map(|u| {
                let mode = u.pool.sticky.as_ref()?.mode.as_str();
                Some(Instance {
                    labels: vec![u.pool.name.clone(), mode.to_string()],
                    subject: Subject::Sticky(u.sticky()?),
                })
            })
            .collect(),
        Scope::Http => listeners()
            .filter_map(|(labels, s)| match s {
                ListenerStats::Http { http, .. } => Some(Instance {
                    labels,
                    subject: Subject::Http(http),
                }),
                _ => None,
            })
            .collect(),
        Scope::Limits => listeners()
            .filter_map(|(labels, s)| match s {
                ListenerStats::Http { conns, .. } => Some(Instance {
                    labels,
                    subject: Subject::Limits(conns),
                }),
                _ => None,
            })
            .collect(),
        Scope::Answers => view
            .listeners
            .iter()
            .zip(rows)
            .flat_map(|(l, rows)| {
                rows.iter().map(move |r| Instance {
                    labels: vec![l.name.clone(), r.route.clone(), r.pool.clone()],
                    subject: Subject::Answers(r),
                })
            })
            .collect(),
        Scope::Tcp => listeners()
            .filter_map(|(labels, s)| match s {
                ListenerStats::Tcp(s) => Some(Instance {
                    labels,
                    subject: Subject::Tcp(s),
                }),
                _ => None,
            })
            .collect(),
        Scope::Udp => listeners()
            .filter_map(|(labels, s)| match s {
                ListenerStats::Udp(s) => Some(Instance {
                    labels,
                    subject: Subject::Udp(s),
                }),
                _ => None,
            })
            .collect(),
        Scope::ProxyIn => listeners()
            .filter_map(|(labels, s)| match s {
                ListenerStats::Http {
                    proxy_in: Some(s), ..
                } => Some(Instance {
                    labels,
                    subject: Subject::ProxyIn(s),
                }),
                _ => None,
            })
            .collect(),
        Scope::Process => vec![Instance {
            labels: Vec::new(),
            subject: Subject::Process(view),
        }],
        Scope::Redis => view
            .cluster
            .iter()
            .map(|c| Instance {
                labels: Vec::new(),
                subject: Subject::Redis(c),
            })
            .collect(),
    }
}

/// The answer rows of each listener, in the view's order (empty for L4 listeners): taken
/// once per scrape, as a site's rows are behind a lock it takes only when it is built.
pub fn answer_rows(view: &View) -> Vec<Vec<std::sync::Arc<Row>>> {
    use super::super::ListenerStats;
    view.listeners
        .iter()
        .map(|l| match &l.stats {
            ListenerStats::Http { http, .. } => http.rows(),
            _ => Vec::new(),
        })
        .collect()
}

/// A relaxed load, as every reader does (a scrape costs the proxies nothing).
pub fn load(c: &std::sync::atomic::AtomicU64) -> u64 {
    c.load(std::sync::atomic::Ordering::Relaxed)
}

/// Seconds since the Unix epoch.
pub fn unix_seconds(t: std::time::SystemTime) -> f64 {
    t.duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs_f64()
}

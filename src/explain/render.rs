//! A [`Report`] written out: as JSON for `GET /api/explain`, as text for `switchyard
//! explain` (the same facts, in the order the balancer meets them).

use std::fmt::Write as _;

use serde_json::{Map, Value as Json, json};

use super::{PoolReport, Report, RouteVerdict};
use crate::balance::{Explanation, Facts, Value, label};
use crate::upstream::Server;

fn fact(v: &Value) -> Json {
    match v {
        Value::Num(n) => json!(n),
        Value::Text(t) => json!(t),
        Value::Flag(b) => json!(b),
    }
}

fn facts(f: &Facts) -> Map<String, Json> {
    f.0.iter()
        .map(|(k, v)| ((*k).to_string(), fact(v)))
        .collect()
}

fn explanation(e: &Explanation) -> Json {
    let servers: Vec<Json> = e
        .servers
        .iter()
        .map(|s| {
            let mut m = facts(&s.facts);
            m.insert("name".into(), json!(s.server.name));
            m.insert("addr".into(), json!(s.server.addr.to_string()));
            Json::Object(m)
        })
        .collect();
    json!({
        "algorithm": e.algorithm,
        "how": e.how.as_str(),
        "facts": facts(&e.facts),
        "servers": servers,
        "steps": e.steps,
        "pick": e.pick.as_ref().map(|s| s.name.clone()),
    })
}

fn server_ref(s: &Server) -> Json {
    json!({ "name": s.name, "addr": s.addr.to_string() })
}

fn pool(p: &PoolReport) -> Json {
    let servers: Vec<Json> = p
        .servers
        .iter()
        .map(|c| {
            let s = &c.server;
            json!({
                "name": s.name,
                "addr": s.addr.to_string(),
                "backup": s.backup,
                "weight": s.weight(),
                "state": s.admin_state().as_str(),
                "health": s.health_state().as_str(),
                "in_flight": s.in_flight(),
                "latency_ewma_ms": s.latency_ewma_us() as f64 / 1000.0,
                "slow_start_share": s.slow_start_share().map(|x| format!("{x}/20")),
                "candidate": c.candidate,
                "reasons": c.reasons,
            })
        })
        .collect();
    json!({
        "name": p.name,
        "algorithm": p.algorithm.as_str(),
        "key": p.key.as_ref().map(|(from, value)| json!({ "from": from, "value": value })),
        "servers": servers,
        "sticky": p.sticky.as_ref().map(|s| json!({
            "mode": s.mode,
            "cookie": (s.mode != "source_ip").then_some(&s.name),
            "value": s.value,
            "server": s.remembered.as_deref().map(server_ref),
            "used": s.used,
            "why": s.why,
            "values": s.values.iter().map(|(server, v)| json!({ "server": server, "value": v })).collect::<Vec<_>>(),
        })),
        "balancer": explanation(&p.balancer.primary),
        "backup_balancer": p.balancer.backup.as_ref().map(explanation),
        "notes": p.balancer.notes,
        "pick": p.pick.as_deref().map(server_ref),
        "why": p.why,
    })
}

impl Report {
    /// The report as the admin API answers it.
    pub fn to_json(&self) -> Json {
        to_json(self)
    }

    /// The report as `switchyard explain` prints it.
    pub fn to_text(&self) -> String {
        to_text(self)
    }
}

fn to_json(r: &Report) -> Json {
    let q = &r.request;
    let routes: Vec<Json> = r
        .routes
        .iter()
        .enumerate()
        .map(|(i, l)| {
            let (verdict, why) = match &l.verdict {
                RouteVerdict::Matched => ("matched", None),
                RouteVerdict::Shadowed { by } => (
                    "shadowed",
                    Some(format!(
                        "matches too, but route {} comes first",
                        r.routes[*by].label
                    )),
                ),
                RouteVerdict::Failed(w) => ("no match", Some(w.clone())),
            };
            json!({
                "route": i + 1,
                "name": l.named.then_some(&l.label),
                "conditions": l.conditions,
                "target": l.target,
                "verdict": verdict,
                "why": why,
            })
        })
        .collect();
    let route = match r.matched {
        Some(i) => json!(i + 1),
        None if r.default.is_some() => json!("default"),
        None => Json::Null,
    };
    let route_name = r
        .matched
        .and_then(|i| r.routes.get(i))
        .filter(|l| l.named)
        .map(|l| l.label.clone());
    json!({
        "listener": r.listener,
        "l4": r.l4,
        "direct": r.direct,
        "request": {
            "method": q.method,
            "host": q.host,
            "path": q.path_and_query,
            "client": q.client.to_string(),
            "client_assumed": !q.client_given,
            "headers": q.headers.iter().map(|(n, v)| json!([n.as_str(), v])).collect::<Vec<_>>(),
        },
        "answered": r.answered,
        "rules": r.rules,
        "routes": routes,
        "route": route,
        "route_name": route_name,
        "default": r.default,
        "split": r.split.as_ref().map(|s| json!({
            "parts": s.parts.iter().map(|(p, n)| json!({ "pool": p, "of_cycle": n })).collect::<Vec<_>>(),
            "cycle": s.cycle,
            "position": s.position,
        })),
        "pool": r.pool.as_ref().map(pool),
        "pick": r.pool.as_ref().and_then(|p| p.pick.as_deref()).map(server_ref),
        "why": why(r),
    })
}

/// The answer in one sentence.
fn why(r: &Report) -> String {
    if let Some(a) = &r.answered {
        return a.clone();
    }
    match &r.pool {
        Some(p) => p.why.clone(),
        None => "no route matches and the listener has no default pool: 404".into(),
    }
}

fn to_text(r: &Report) -> String {
    let mut out = String::new();
    let q = &r.request;
    let client = if q.client_given {
        q.client.to_string()
    } else {
        format!("{} (assumed; --client ADDR to change)", q.client)
    };
    if r.l4 {
        let _ = writeln!(
            out,
            "request   a connection from {client}, listener {:?}",
            r.listener
        );
    } else if r.direct {
        let _ = writeln!(out, "request   {} from {client}", q.line());
    } else {
        let _ = writeln!(
            out,
            "request   {} from {client}, listener {:?}",
            q.line(),
            r.listener
        );
    }
    for (n, v) in &q.headers {
        let _ = writeln!(out, "          {n}: {v}");
    }
    for rule in &r.rules {
        let _ = writeln!(out, "rule      {rule}");
    }
    if let Some(a) = &r.answered {
        let _ = writeln!(out, "answer    {a}");
        return out;
    }
    let width = r
        .routes
        .iter()
        .map(|l| l.conditions.len() + l.target.len())
        .max()
        .unwrap_or(0);
    for (i, l) in r.routes.iter().enumerate() {
        let verdict = match &l.verdict {
            RouteVerdict::Matched => "matched".to_string(),
            RouteVerdict::Shadowed { by } => {
                format!(
                    "shadowed: matches too, but route {} comes first",
                    r.routes[*by].label
                )
            }
            RouteVerdict::Failed(w) => format!("no match: {w}"),
        };
        let pad = width - l.conditions.len() - l.target.len();
        let _ = writeln!(
            out,
            "{} {:>2}  {} -> {}{}  {verdict}",
            if i == 0 { "route   " } else { "        " },
            l.label,
            l.conditions,
            l.target,
            " ".repeat(pad)
        );
    }
    match (&r.default, r.matched) {
        _ if r.direct => {}
        (Some(d), None) if r.l4 => {
            let _ = writeln!(
                out,
                "route     a tcp/udp listener: every connection goes to pool {d}"
            );
        }
        (Some(d), None) => {
            let _ = writeln!(
                out,
                "{}default -> pool {d}: no route matches",
                if r.routes.is_empty() {
                    "route     "
                } else {
                    "          "
                }
            );
        }
        (Some(d), Some(_)) => {
            let _ = writeln!(out, "          default -> pool {d} (not used)");
        }
        (None, None) => {
            let _ = writeln!(out, "answer    {}", why(r));
            return out;
        }
        (None, Some(_)) => {}
    }
    if let Some(s) = &r.split {
        let parts: Vec<String> = s
            .parts
            .iter()
            .map(|(p, n)| format!("{p} {n}/{}", s.cycle))
            .collect();
        let next = r.pool.as_ref().map_or("-", |p| p.name.as_str());
        let _ = writeln!(
            out,
            "split     {}: the split's cycle is at {} of {}, so this request goes to {next}",
            parts.join(", "),
            s.position,
            s.cycle
        );
    }
    if let Some(p) = &r.pool {
        pool_text(&mut out, p);
    }
    out
}

fn pool_text(out: &mut String, p: &PoolReport) {
    let _ = writeln!(
        out,
        "pool      {} ({}, {} server(s))",
        p.name,
        p.algorithm.as_str(),
        p.servers.len()
    );
    if let Some((from, value)) = &p.key {
        let _ = writeln!(out, "key       {from} = {value:?}");
    }
    let width = p
        .servers
        .iter()
        .map(|c| label(&c.server).len())
        .max()
        .unwrap_or(0);
    for (i, c) in p.servers.iter().enumerate() {
        let head = if i == 0 { "servers   " } else { "          " };
        let mark = if c.candidate {
            "candidate    "
        } else {
            "not candidate"
        };
        let _ = writeln!(
            out,
            "{head}{:width$}  {mark}  {}",
            label(&c.server),
            c.reasons.join("; ")
        );
    }
    match &p.sticky {
        Some(s) => {
            let what = match (&s.value, s.mode) {
                (Some(v), "source_ip") => format!("client {v}"),
                (Some(v), _) => format!("cookie {}={v}", s.name),
                (None, _) => format!("cookie {}", s.name),
            };
            let outcome = match (&s.remembered, s.used) {
                (Some(r), true) => format!("names {}: it takes the request", r.name),
                _ => s.why.clone().unwrap_or_default(),
            };
            let _ = writeln!(out, "sticky    {} ({what}): {outcome}", s.mode);
            if !s.values.is_empty() {
                let values: Vec<String> = (s.values.iter())
                    .map(|(server, v)| format!("{server} = {v}"))
                    .collect();
                let _ = writeln!(out, "          cookie values: {}", values.join(", "));
            }
        }
        None => {
            let _ = writeln!(out, "sticky    none configured");
        }
    }
    explanation_text(out, &p.balancer.primary, "");
    if let Some(b) = &p.balancer.backup {
        explanation_text(out, b, " over the backups");
    }
    for n in &p.balancer.notes {
        let _ = writeln!(out, "note      {n}");
    }
    match &p.pick {
        Some(s) => {
            let _ = writeln!(out, "pick      {}: {}", label(s), p.why);
        }
        None => {
            let _ = writeln!(out, "pick      none: {}", p.why);
        }
    }
}

fn explanation_text(out: &mut String, e: &Explanation, tier: &str) {
    let _ = writeln!(
        out,
        "balancer  {}{tier} ({}: nothing taken, drawn or counted)",
        e.algorithm,
        e.how.as_str()
    );
    if !e.facts.0.is_empty() {
        let f: Vec<String> = e.facts.0.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "          {}", f.join(", "));
    }
    for s in &e.servers {
        let f: Vec<String> = s.facts.0.iter().map(|(k, v)| format!("{k} {v}")).collect();
        let _ = writeln!(out, "          {}: {}", s.server.name, f.join(", "));
    }
    for step in &e.steps {
        let _ = writeln!(out, "          - {step}");
    }
}

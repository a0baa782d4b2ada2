//! `GET /api/explain?listener=…&method=…&host=…&path=…&client=…` (and `header=`, `cookie=`):
//! what the running balancer would do with that request now, and why, as JSON — the live
//! state of the listener's site, its pools and their servers (health, drain, in-flight
//! counts, latencies, stick tables). The explanation itself is `crate::explain`; nothing
//! here or there changes what the next real request gets (see `crate::balance::explain`).

use serde_json::Value;

use super::View;
use crate::config::Protocol;
use crate::explain::{
    QUERY_HELP, Request, cli::pick_listener, explain, explain_direct, explain_l4,
};

/// A question the API cannot answer: what is wrong and how to ask instead.
pub struct Unanswerable {
    pub not_found: bool,
    pub message: String,
    pub help: String,
}

fn bad(message: impl Into<String>, help: impl Into<String>) -> Unanswerable {
    Unanswerable {
        not_found: false,
        message: message.into(),
        help: help.into(),
    }
}

/// The explanation of the request described by `query` on the running listeners of `view`.
pub fn answer(view: &View, query: &str) -> Result<Value, Unanswerable> {
    let req = Request::from_query(query).map_err(|e| bad(e, QUERY_HELP))?;
    if let Some(name) = &req.pool {
        let names = || {
            let all: Vec<&str> = view.pools.iter().map(|u| u.pool.name.as_str()).collect();
            format!("pools: {}", all.join(", "))
        };
        return match view.pools.iter().find(|u| &u.pool.name == name) {
            Some(up) => Ok(explain_direct(up, &req).to_json()),
            None => Err(Unanswerable {
                not_found: true,
                message: format!("no pool named {name:?}"),
                help: names(),
            }),
        };
    }
    let plan = pick_listener(&view.plan, &req).map_err(|e| {
        let e = e.trim_start_matches("error: ");
        let (message, help) = e.split_once("\n  help: ").unwrap_or((e, QUERY_HELP));
        Unanswerable {
            not_found: req.listener.is_some(),
            message: message.to_string(),
            help: help.to_string(),
        }
    })?;
    let report = match plan.protocol {
        Protocol::Http | Protocol::Https => {
            let site = view
                .listeners
                .iter()
                .find(|l| l.name == plan.name)
                .and_then(|l| l.site.as_ref())
                .ok_or_else(|| {
                    bad(
                        format!("listener {:?} is not running", plan.name),
                        QUERY_HELP,
                    )
                })?
                .load_full();
            explain(&site, &req)
        }
        Protocol::Tcp | Protocol::Udp => {
            let pool = plan.default_pool.as_deref().unwrap_or_default();
            let up = view
                .pools
                .iter()
                .find(|u| u.pool.name == pool)
                .ok_or_else(|| bad(format!("pool {pool:?} is not running"), QUERY_HELP))?;
            explain_l4(&plan.name, up, &req)
        }
    };
    Ok(report.to_json())
}

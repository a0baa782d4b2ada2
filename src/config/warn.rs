//! Settings that are valid but risky: `check` prints them and `run` logs them at start,
//! and neither refuses the file (a deployment may mean them).

use super::Plan;
use super::diff::pools_of;

/// One line per risky setting, each saying what to do instead.
pub fn warnings(plan: &Plan) -> Vec<String> {
    let mut out = Vec::new();
    if let Some(admin) = &plan.admin
        && admin.listen.ip().is_unspecified()
    {
        let at = admin
            .origin
            .as_deref()
            .map(|o| format!("{o}: "))
            .unwrap_or_default();
        // Without a token this is an error of the reader; with one, the API is guarded but
        // /status and /metrics (every server, every counter) are not.
        out.push(format!(
            "{at}the admin listener listens on {}, every interface: /status and /metrics (every server and counter) are open to whoever reaches this machine, and the API to whoever learns the token; listen on 127.0.0.1 or a management address",
            admin.listen
        ));
    }
    for l in &plan.listeners {
        let trusted = l.l4.accept_proxy.iter().flatten().chain(&l.trusted_proxies);
        if let Some(all) = trusted.into_iter().find(|c| c.prefix == 0) {
            out.push(format!(
                "listener {:?}: trusted_proxies contains {}/0, every address: any client can claim any address (X-Forwarded-For, PROXY headers), and allow/deny, rate limits and logs then believe it; list only the proxies in front of this listener",
                l.name, all.addr
            ));
        }
    }
    // nginx says nothing of an upstream no location uses; said here, as a pool with a
    // misspelt name (`[pool.ap]` for `app`) is one.
    for p in &plan.pools {
        if !plan
            .listeners
            .iter()
            .any(|l| pools_of(l).contains(&p.name.as_str()))
        {
            out.push(format!(
                "pool {:?} gets no traffic: no listener or route sends to it; name it in a listener's or a route's pool = {:?}, or remove it",
                p.name, p.name
            ));
        }
    }
    out
}

//! Retries and failover: only the loop, over any engine's tries (`attempt::Exchange`).
//!
//! [`retry_loop`] tries the sticky server or the pool's pick, judges the outcome (connect failure,
//! reset, timeout, or a status of the pool's `on` list), reports it to the server's passive
//! health, and when allowed tries again on a server this request has not tried yet
//! (`PickContext::tried`). Each try takes its place on the server first ([`admit`]: a server
//! at its `max_conns` is skipped, and when every one is, the request waits in the pool's
//! queue). A retry is allowed when the failure is in `on`, the method is
//! idempotent or `non_idempotent = true` (or the request never reached the server), the
//! body can be sent again (`replay.rs`), attempts are left, and the pool's retry budget
//! (`budget.rs`) has a token. gRPC calls are POSTs; listing `grpc_unavailable` is the operator's statement that UNAVAILABLE
//! is safe to retry (as Envoy's `retry_on: unavailable`), so the method is not checked.

use std::net::SocketAddr;
use std::sync::Arc;

use http::Method;
use tokio::time::Instant;

use super::attempt::{Answer, Exchange, idempotent};
use super::trace::Trace;
use super::upstream::Upstream;
use crate::balance::PickContext;
use crate::config::RetryOn;
use crate::error::ProxyError;
use crate::upstream::{InFlight, QueueRefused, Server};

/// How one try ended, for passive health and the retry decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Judged {
    Success,
    /// The client's doing (bad request, stalled or aborted body): says nothing of the server.
    Neutral,
    /// A failure; `retry` when it is in the `on` list.
    Failure {
        retry: bool,
    },
}

fn judge<A: Answer>(result: &Result<A, ProxyError>, on: &RetryOn) -> Judged {
    match result {
        Ok(r) if on.status(r.status()) => Judged::Failure { retry: true },
        Ok(r) if on.grpc_unavailable && r.grpc_unavailable() => Judged::Failure { retry: true },
        Ok(_) => Judged::Success,
        Err(ProxyError::Connect { .. }) => Judged::Failure {
            retry: on.connect_failure,
        },
        Err(ProxyError::Timeout { .. }) => Judged::Failure { retry: on.timeout },
        Err(ProxyError::Upstream { .. }) => Judged::Failure { retry: on.reset },
        // Not the server's fault (a bad request, a client that stalled or went away): no
        // health consequence either way, no retry.
        Err(_) => Judged::Neutral,
    }
}

/// Everything about the request the retry loop needs besides the request itself.
pub struct PickHints<'a> {
    pub client: SocketAddr,
    pub hash_key: Option<&'a [u8]>,
    pub method: &'a Method,
    /// Try this one first (sticky), when it is available.
    pub preferred: Option<Arc<Server>>,
    /// The request asked for a trace of its balancing (`trace.rs`): each try is noted.
    pub trace: Option<Arc<Trace>>,
}

/// The trace's note of try `n`: the server picked and the balancer's reason.
fn tried_note(
    n: u32,
    algorithm: &str,
    e: &crate::upstream::PoolExplanation,
    picked: Option<&Server>,
) -> String {
    let tier = e.backup.as_ref().filter(|_| e.primary.pick.is_none());
    let why = tier
        .unwrap_or(&e.primary)
        .steps
        .last()
        .cloned()
        .unwrap_or_default();
    let over = if tier.is_some() {
        " over the backups"
    } else {
        ""
    };
    match (picked, &e.pick) {
        (None, _) => format!("try {}: no server ({})", n + 1, e.notes.join(", ")),
        (Some(p), Some(x)) if x.id() == p.id() => {
            format!("try {}: {} by {algorithm}{over}: {why}", n + 1, p.name)
        }
        (Some(p), _) => format!(
            "try {}: {} by {algorithm} (another request took the turn explained: {why})",
            n + 1,
            p.name
        ),
    }
}

/// The loop alone: pick (the preferred server first), try, judge, report to passive health,
/// and try another server while the policy, the budget and the request allow.
pub async fn retry_loop<E: Exchange>(
    up: &Upstream,
    ask: &PickHints<'_>,
    max_tries: u32,
    ex: &mut E,
) -> (Result<E::Answer, ProxyError>, Option<Arc<Server>>) {
    let pool = &up.pool;
    let plan = &pool.retry;
    up.retry_budget().deposit();
    let mut tried: Vec<Arc<Server>> = Vec::new();
    let mut last: Option<Result<E::Answer, ProxyError>> = None;
    let mut leaving: Option<(Arc<Server>, String)> = None;
    for n in 0..max_tries {
        let (server, in_flight) = match admit(up, ask, &tried, n).await {
            Ok(got) => got,
            Err(None) => break,
            Err(Some(e)) => {
                // Waited for a place in vain: the request's answer, unless a try before
                // this one has its own.
                if last.is_none() {
                    last = Some(Err(e));
                }
                break;
            }
        };
        if n > 0 && !up.retry_budget().try_withdraw() {
            up.stats()
                .budget_refusals
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            tracing::debug!(pool = %pool.name, "retry budget spent; not retrying");
            break;
        }
        if n > 0 {
            up.stats()
                .retries
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        if let Some((from, why)) = leaving.take() {
            tracing::warn!(
                pool = %pool.name,
                server = %from.name,
                next = %server.name,
                "try {n} {why}; failing over"
            );
        }
        let result = ex.attempt(&server, in_flight).await;
        if let Ok(r) = &result {
            server.count_response(r.status());
        }
        let judged = judge(&result, &plan.on);
        let now = Instant::now();
        let retry = match judged {
            Judged::Success => {
                server.report_success(now);
                return (result, Some(server));
            }
            Judged::Neutral => return (result, Some(server)),
            Judged::Failure { retry } => {
                server.report_failure(now);
                retry
            }
        };
        let reached_server = !matches!(result, Err(ProxyError::Connect { .. }));
        // UNAVAILABLE is gRPC's "not processed, try elsewhere" when the operator says so.
        let grpc_refused =
            plan.on.grpc_unavailable && matches!(&result, Ok(r) if r.grpc_unavailable());
        let may = retry
            && n + 1 < max_tries
            && ex.replayable()
            && (!reached_server || idempotent(ask.method) || plan.non_idempotent || grpc_refused);
        // Logged once the next try has a server (as nginx logs each upstream it leaves);
        // a last try's outcome is the request's, logged with it.
        if may {
            let why = match &result {
                Err(e) => format!("failed: {e}"),
                Ok(r) => format!("answered {}", r.status()),
            };
            if let Some(t) = &ask.trace {
                t.note(format!("{} {why}", server.name));
            }
            leaving = Some((server.clone(), why));
        }
        tried.push(server.clone());
        let done = !may;
        last = Some(result);
        if done {
            return (last.expect("just set"), Some(server));
        }
    }
    let server = tried.last().cloned();
    match last {
        Some(r) => (r, server),
        None => (
            Err(ProxyError::NoServer {
                pool: pool.name.clone(),
            }),
            None,
        ),
    }
}
/// A server for the next try, its place taken (`max_conns`): the sticky one on the first
/// try when it can take the request, else the pool's pick; when every server the request
/// could go to is at its `max_conns`, a place from the pool's queue. `Err(None)`: no server
/// (503, or the last try's answer); `Err(Some(_))`: the queue was full or the wait ran out.
async fn admit(
    up: &Upstream,
    ask: &PickHints<'_>,
    tried: &[Arc<Server>],
    n: u32,
) -> Result<(Arc<Server>, InFlight), Option<ProxyError>> {
    let pool = &up.pool;
    if n == 0
        && let Some(s) = ask.preferred.as_ref().filter(|s| s.is_available())
        && let Some(flight) = s.try_begin()
    {
        if let Some(t) = &ask.trace {
            t.note(format!("try {}: {} (sticky)", n + 1, s.name));
        }
        return Ok((s.clone(), flight));
    }
    let ctx = PickContext {
        client: Some(ask.client.ip()),
        hash_key: ask.hash_key,
        tried,
    };
    let pick = || {
        // A pick can lose the server's last place to a racing request; the next pick then
        // sees it full.
        for _ in 0..4 {
            // Explained before the pick, with the same context: what the pick will see.
            let explained = ask.trace.as_ref().map(|_| pool.explain(&ctx));
            let picked = pool.pick(&ctx);
            if let (Some(t), Some(e)) = (&ask.trace, &explained) {
                t.note(tried_note(n, pool.algorithm.as_str(), e, picked.as_deref()));
            }
            let s = picked?;
            if let Some(flight) = s.try_begin() {
                return Some((s, flight));
            }
        }
        None
    };
    let Some(queue) = pool.queue() else {
        return pick().ok_or(None);
    };
    // Requests already waiting go first.
    if queue.waiting() == 0
        && let Some(got) = pick()
    {
        return Ok(got);
    }
    if !pool.full_but_serving(tried) {
        return Err(None);
    }
    queue
        .wait(pool.queue_size, pool.queue_timeout, pick)
        .await
        .map_err(|why| {
            Some(match why {
                QueueRefused::Full => ProxyError::QueueFull {
                    pool: pool.name.clone(),
                },
                QueueRefused::TimedOut => ProxyError::QueueTimeout {
                    pool: pool.name.clone(),
                    after: pool.queue_timeout,
                },
            })
        })
}

#[cfg(test)]
mod tests {
    use super::super::body::{ProxyBody, full};
    use super::*;
    use http::Response;

    #[test]
    fn idempotent_methods() {
        assert!(
            idempotent(&Method::GET) && idempotent(&Method::PUT) && idempotent(&Method::DELETE)
        );
        assert!(!idempotent(&Method::POST) && !idempotent(&Method::PATCH));
    }

    #[test]
    fn judging_follows_the_on_list() {
        let on = RetryOn {
            connect_failure: true,
            reset: false,
            timeout: true,
            statuses: vec![503],
            grpc_unavailable: false,
        };
        let resp = |s: u16| {
            let mut r = Response::new(full(""));
            *r.status_mut() = http::StatusCode::from_u16(s).unwrap();
            Ok(r)
        };
        assert_eq!(judge(&resp(200), &on), Judged::Success);
        assert_eq!(
            judge(&resp(500), &on),
            Judged::Success,
            "not listed: passed through"
        );
        assert_eq!(judge(&resp(503), &on), Judged::Failure { retry: true });
        let reset: Result<Response<ProxyBody>, _> = Err(ProxyError::Upstream {
            server: "s".into(),
            cause: "closed".into(),
        });
        assert_eq!(
            judge(&reset, &on),
            Judged::Failure { retry: false },
            "counted, not retried"
        );
        let bad: Result<Response<ProxyBody>, _> = Err(ProxyError::BadRequest("x".into()));
        assert_eq!(judge(&bad, &on), Judged::Neutral);
    }

    #[test]
    fn grpc_unavailable_in_the_headers_is_judged_when_listed() {
        let grpc = |status: &str| {
            let mut r = Response::new(full(""));
            r.headers_mut()
                .insert("grpc-status", status.parse().unwrap());
            Ok(r)
        };
        let mut on = RetryOn {
            connect_failure: true,
            reset: true,
            timeout: true,
            statuses: vec![],
            grpc_unavailable: false,
        };
        assert_eq!(judge(&grpc("14"), &on), Judged::Success, "not listed");
        on.grpc_unavailable = true;
        assert_eq!(judge(&grpc("14"), &on), Judged::Failure { retry: true });
        assert_eq!(judge(&grpc("0"), &on), Judged::Success);
        assert_eq!(judge(&grpc("13"), &on), Judged::Success);
    }
}

//! Errors shared across modules.
//!
//! A proxy error knows which side caused it (the client, the upstream server, or Switchyard
//! itself), which status the client gets, and whether trying another server could help.

use std::time::Duration;

use http::StatusCode;

/// Who is at fault for a failed request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client sent something we cannot serve.
    Downstream,
    /// The upstream server refused, reset, timed out or answered badly.
    Upstream,
    /// Nothing usable, or a fault of our own.
    Internal,
}

/// Why a proxied request failed.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("pool {pool:?} has no usable server")]
    NoServer { pool: String },
    #[error("no route and no default pool for this request")]
    NoRoute,
    #[error("connect to {server} failed: {cause}")]
    Connect { server: String, cause: String },
    #[error("{server} did not answer within {after:?}")]
    Timeout { server: String, after: Duration },
    #[error("{server} failed: {cause}")]
    Upstream { server: String, cause: String },
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The client stopped sending its request body for `timeouts.client_body`.
    #[error("the client sent no body bytes for {0:?}")]
    ClientTimeout(Duration),
    /// The client's request body ended early (it closed or reset mid-upload).
    #[error("the client's request body failed: {0}")]
    ClientAborted(String),
    /// The request body is longer than `client_max_body_size` allows.
    #[error("the request body is over client_max_body_size ({0} bytes)")]
    BodyTooLarge(u64),
    /// A WebSocket upgrade routed to a pool that speaks HTTP/2 to its servers: HTTP/2 has no
    /// `Upgrade`, and Switchyard speaks no extended CONNECT (RFC 8441) to servers.
    #[error(
        "WebSocket upgrade refused: pool {pool:?} speaks {protocol} to its servers, and WebSocket needs a pool with upstream_protocol = \"h1\""
    )]
    UpgradeToH2 {
        pool: String,
        protocol: &'static str,
    },
    /// Refused by the listener's or route's `allow` / `deny`.
    #[error("refused: {0}")]
    Forbidden(&'static str),
    /// Refused by a `block` rule with its `status` (403 unless the rule says otherwise).
    #[error("refused by a block rule ({0})")]
    Blocked(StatusCode),
    /// Over a `limit`: the key may come back after `retry_after`.
    #[error("over the rate limit; the key may try again in {retry_after:?}")]
    RateLimited { retry_after: Duration },
    /// A method Switchyard does not carry (`CONNECT`: it is no forward proxy).
    #[error("method not allowed: {0}")]
    MethodNotAllowed(&'static str),
    /// A request framing Switchyard cannot pass on whole (a transfer coding other than
    /// chunked: RFC 9112 §6.1 answers 501).
    #[error("not implemented: {0}")]
    NotImplemented(&'static str),
    /// Every server the request could go to is at its `max_conns` and `queue_size`
    /// requests are waiting already.
    #[error("pool {pool:?}: every server is at max_conns and the queue is full")]
    QueueFull { pool: String },
    /// Waited `queue_timeout` for a server below its `max_conns`, in vain.
    #[error("pool {pool:?}: no server below max_conns within {after:?}")]
    QueueTimeout { pool: String, after: Duration },
}

impl ProxyError {
    /// The status the client sees.
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::NoServer { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::NoRoute => StatusCode::NOT_FOUND,
            ProxyError::Connect { .. } | ProxyError::Upstream { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::BadRequest(_) | ProxyError::ClientAborted(_) => StatusCode::BAD_REQUEST,
            ProxyError::ClientTimeout(_) => StatusCode::REQUEST_TIMEOUT,
            ProxyError::BodyTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            // As nginx and HAProxy answer a request they cannot carry to a server.
            ProxyError::UpgradeToH2 { .. } => StatusCode::BAD_GATEWAY,
            ProxyError::Forbidden(_) => StatusCode::FORBIDDEN,
            ProxyError::Blocked(status) => *status,
            ProxyError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ProxyError::MethodNotAllowed(_) => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ProxyError::QueueFull { .. } | ProxyError::QueueTimeout { .. } => {
                StatusCode::SERVICE_UNAVAILABLE
            }
        }
    }

    /// The `Retry-After` of the answer, in seconds: 1 for the 503 of no server or a full
    /// queue, the time until the key's next request is allowed (rounded up) for a 429. A
    /// block rule's status carries none, whatever it is (nginx's `return 503` and
    /// HAProxy's `deny_status 503` add none).
    pub fn retry_after(&self) -> Option<u64> {
        match self {
            ProxyError::RateLimited { retry_after } => {
                Some(retry_after.as_micros().div_ceil(1_000_000).max(1) as u64)
            }
            ProxyError::NoServer { .. }
            | ProxyError::QueueFull { .. }
            | ProxyError::QueueTimeout { .. } => Some(1),
            _ => None,
        }
    }

    /// A refusal by the listener's own rules (403, a block rule's status, 405, 429): the
    /// client's doing, logged at debug level rather than as a warning per request (a flood
    /// would flood the log).
    pub fn is_refusal(&self) -> bool {
        matches!(
            self,
            ProxyError::Forbidden(_)
                | ProxyError::Blocked(_)
                | ProxyError::RateLimited { .. }
                | ProxyError::MethodNotAllowed(_)
        )
    }

    /// Which side caused it.
    pub fn side(&self) -> Side {
        match self {
            ProxyError::NoServer { .. }
            | ProxyError::NoRoute
            | ProxyError::UpgradeToH2 { .. }
            | ProxyError::QueueFull { .. }
            | ProxyError::QueueTimeout { .. } => Side::Internal,
            ProxyError::Connect { .. }
            | ProxyError::Timeout { .. }
            | ProxyError::Upstream { .. } => Side::Upstream,
            ProxyError::BadRequest(_)
            | ProxyError::ClientTimeout(_)
            | ProxyError::ClientAborted(_)
            | ProxyError::Forbidden(_)
            | ProxyError::Blocked(_)
            | ProxyError::RateLimited { .. }
            | ProxyError::MethodNotAllowed(_)
            | ProxyError::NotImplemented(_)
            | ProxyError::BodyTooLarge(_) => Side::Downstream,
        }
    }

    /// Whether the request never reached a server, so another server may be tried even for
    /// a non-idempotent method.
    pub fn before_send(&self) -> bool {
        matches!(self, ProxyError::Connect { .. })
    }

    /// A short label for logs and metrics.
    pub fn kind(&self) -> &'static str {
        match self {
            ProxyError::NoServer { .. } => "no_server",
            ProxyError::NoRoute => "no_route",
            ProxyError::Connect { .. } => "connect_failure",
            ProxyError::Timeout { .. } => "timeout",
            ProxyError::Upstream { .. } => "upstream_error",
            ProxyError::BadRequest(_) => "bad_request",
            ProxyError::ClientTimeout(_) => "client_timeout",
            ProxyError::ClientAborted(_) => "client_aborted",
            ProxyError::BodyTooLarge(_) => "body_too_large",
            ProxyError::UpgradeToH2 { .. } => "upgrade_to_h2_pool",
            ProxyError::Forbidden(_) => "forbidden",
            ProxyError::Blocked(_) => "blocked",
            ProxyError::RateLimited { .. } => "rate_limited",
            ProxyError::MethodNotAllowed(_) => "method_not_allowed",
            ProxyError::NotImplemented(_) => "not_implemented",
            ProxyError::QueueFull { .. } => "queue_full",
            ProxyError::QueueTimeout { .. } => "queue_timeout",
        }
    }

    /// What the client may read of the cause in the error body: only a cause that names
    /// no server (the configuration's, not a server's, e.g. an upgrade to an HTTP/2 pool).
    pub fn client_detail(&self) -> Option<String> {
        matches!(self, ProxyError::UpgradeToH2 { .. }).then(|| self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Retry-After for no server and a full queue (and a 429), not for a block rule's
    /// status, even 503.
    #[test]
    fn retry_after_is_said_for_no_server_and_the_queue_only() {
        let pool = || "p".to_string();
        assert_eq!(ProxyError::NoServer { pool: pool() }.retry_after(), Some(1));
        assert_eq!(
            ProxyError::QueueFull { pool: pool() }.retry_after(),
            Some(1)
        );
        assert_eq!(
            ProxyError::QueueTimeout {
                pool: pool(),
                after: Duration::from_secs(1)
            }
            .retry_after(),
            Some(1)
        );
        assert_eq!(
            ProxyError::Blocked(StatusCode::SERVICE_UNAVAILABLE).retry_after(),
            None
        );
    }
}

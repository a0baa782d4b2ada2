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
        }
    }

    /// Which side caused it.
    pub fn side(&self) -> Side {
        match self {
            ProxyError::NoServer { .. } | ProxyError::NoRoute => Side::Internal,
            ProxyError::Connect { .. }
            | ProxyError::Timeout { .. }
            | ProxyError::Upstream { .. } => Side::Upstream,
            ProxyError::BadRequest(_)
            | ProxyError::ClientTimeout(_)
            | ProxyError::ClientAborted(_) => Side::Downstream,
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
        }
    }
}

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
        }
    }

    /// Which side caused it.
    pub fn side(&self) -> Side {
        match self {
            ProxyError::NoServer { .. } | ProxyError::NoRoute | ProxyError::UpgradeToH2 { .. } => {
                Side::Internal
            }
            ProxyError::Connect { .. }
            | ProxyError::Timeout { .. }
            | ProxyError::Upstream { .. } => Side::Upstream,
            ProxyError::BadRequest(_)
            | ProxyError::ClientTimeout(_)
            | ProxyError::ClientAborted(_)
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
        }
    }

    /// What the client may read of the cause in the error body: only a cause that names
    /// no server (the configuration's, not a server's, e.g. an upgrade to an HTTP/2 pool).
    pub fn client_detail(&self) -> Option<String> {
        matches!(self, ProxyError::UpgradeToH2 { .. }).then(|| self.to_string())
    }
}

//! The client side of the admin API, for `switchyard reload` and `switchyard plan`: find
//! the admin listener and its token in the config file, `GET /api/config` (and `/next`),
//! `POST /api/reload`, and say what came back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, header};
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;

/// Where the admin listener of a config file answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub addr: SocketAddr,
    pub token: Option<String>,
}

/// The `[admin]` of a config file's text, read loosely (the rest of the file may be
/// broken: the running process will say how). An address on every interface is reached
/// on loopback.
pub fn target_of(text: &str) -> Option<Target> {
    let doc: toml::Table = text.parse().ok()?;
    let admin = doc.get("admin")?.as_table()?;
    let listen = admin.get("listen")?.as_str()?.trim();
    let mut addr: SocketAddr = listen.parse().ok().or_else(|| {
        listen
            .parse::<u16>()
            .ok()
            .map(|p| SocketAddr::from(([0, 0, 0, 0], p)))
    })?;
    if addr.ip().is_unspecified() {
        let ip: IpAddr = if addr.is_ipv4() {
            Ipv4Addr::LOCALHOST.into()
        } else {
            Ipv6Addr::LOCALHOST.into()
        };
        addr.set_ip(ip);
    }
    let token = admin
        .get("token")
        .and_then(|t| t.as_str())
        .map(str::to_string);
    Some(Target { addr, token })
}

/// What a reload request came back with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReloadOutcome {
    /// Applied: one line per change, and what became of the operator's API changes.
    Reloaded { changes: Vec<String> },
    /// Refused: the running configuration stays. `errors`: each config error as `check`
    /// prints it (file:line:column, and its help).
    Refused {
        message: String,
        errors: Vec<String>,
        help: Option<String>,
    },
}

/// One request to the admin API: the status and the body, read whole; `Err` when the
/// listener cannot be reached or does not answer within `wait`.
async fn request(
    target: &Target,
    method: http::Method,
    path: &str,
    wait: Duration,
) -> Result<(http::StatusCode, Bytes), String> {
    let stream = tokio::time::timeout(
        Duration::from_secs(5),
        tokio::net::TcpStream::connect(target.addr),
    )
    .await
    .map_err(|_| format!("the admin listener at {} does not answer", target.addr))?
    .map_err(|e| format!("cannot reach the admin listener at {}: {e}", target.addr))?;
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(conn);
    let mut req = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, target.addr.to_string())
        .header(
            header::USER_AGENT,
            concat!("switchyard-cli/", env!("CARGO_PKG_VERSION")),
        );
    if let Some(t) = &target.token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
    }
    let req = req
        .body(Full::new(Bytes::new()))
        .map_err(|e| e.to_string())?;
    let resp = tokio::time::timeout(wait, sender.send_request(req))
        .await
        .map_err(|_| format!("no answer from the admin listener within {wait:?}"))?
        .map_err(|e| e.to_string())?;
    let status = resp.status();
    let body = resp
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    Ok((status, body))
}

/// The JSON of an answer, or what came instead.
fn json_of(status: http::StatusCode, body: &[u8]) -> Result<Value, String> {
    serde_json::from_slice(body).map_err(|_| {
        format!(
            "the admin listener answered {status} without JSON: {}",
            String::from_utf8_lossy(body).trim()
        )
    })
}

/// A refusal's message, errors (as `check` prints them) and help.
fn refused(json: &Value) -> ReloadOutcome {
    let strings = |key: &str| -> Vec<String> {
        json.get(key)
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| {
                        v.as_str()
                            .map(str::to_string)
                            .or_else(|| v.get("text")?.as_str().map(str::to_string))
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    ReloadOutcome::Refused {
        message: json
            .get("error")
            .and_then(Value::as_str)
            .unwrap_or("refused")
            .to_string(),
        errors: strings("errors"),
        help: json.get("help").and_then(Value::as_str).map(str::to_string),
    }
}

/// `POST /api/reload` to `target`; `Err` when it cannot be reached or answers nonsense.
pub async fn reload(target: &Target) -> Result<ReloadOutcome, String> {
    // A reload loads certificates and may bind ports: give it time.
    let (status, body) = request(
        target,
        http::Method::POST,
        "/api/reload",
        Duration::from_secs(60),
    )
    .await?;
    let json = json_of(status, &body)?;
    if status.is_success() {
        let changes = json
            .get("changes")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default();
        return Ok(ReloadOutcome::Reloaded { changes });
    }
    Ok(refused(&json))
}

/// The config file the Switchyard at `target` runs from (`GET /status`'s `config.path`),
/// `None` when it names none.
pub async fn running_file(target: &Target) -> Result<Option<String>, String> {
    let (status, body) = request(
        target,
        http::Method::GET,
        "/status",
        Duration::from_secs(10),
    )
    .await?;
    let json = json_of(status, &body)?;
    if !status.is_success() {
        return Err(format!(
            "/status answered {status}: {}",
            json.get("error").and_then(Value::as_str).unwrap_or("")
        ));
    }
    Ok(json
        .pointer("/config/path")
        .and_then(Value::as_str)
        .filter(|p| !p.is_empty())
        .map(str::to_string))
}

/// A configuration the admin API gave as TOML.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Config {
    Toml(String),
    /// Refused (the file would not pass, for `/api/config/next`): as [`ReloadOutcome::Refused`].
    Refused(ReloadOutcome),
    /// This Switchyard has no such endpoint (a version before it).
    Unknown,
}

/// `GET /api/config` (the running configuration) or `GET /api/config/next` (what a reload
/// would make running), as TOML.
pub async fn config(target: &Target, next: bool) -> Result<Config, String> {
    let path = if next {
        "/api/config/next"
    } else {
        "/api/config"
    };
    let (status, body) = request(target, http::Method::GET, path, Duration::from_secs(60)).await?;
    if status.is_success() {
        return String::from_utf8(body.to_vec())
            .map(Config::Toml)
            .map_err(|_| format!("{path} answered with text that is not UTF-8"));
    }
    if status == http::StatusCode::NOT_FOUND {
        return Ok(Config::Unknown);
    }
    Ok(Config::Refused(refused(&json_of(status, &body)?)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_of_a_file_is_found_even_when_the_rest_is_broken() {
        let t = target_of(
            "[admin]\nlisten = \"0.0.0.0:9900\"\ntoken = \"abc\"\n[pool.x]\nservers = 3\n",
        )
        .unwrap();
        assert_eq!(t.addr, "127.0.0.1:9900".parse().unwrap());
        assert_eq!(t.token.as_deref(), Some("abc"));
        let t = target_of("[admin]\nlisten = \"[::]:9900\"\n").unwrap();
        assert_eq!(t.addr, "[::1]:9900".parse().unwrap());
        assert_eq!(target_of("[[listener]]\nlisten = \"1\"\n"), None);
        assert_eq!(target_of("not toml ["), None);
    }
}

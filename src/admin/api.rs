//! The JSON admin API: pools and servers changed at run time, and reloads (HAProxy's `set
//! server … state|weight`, `add server`, `del server`; nginx Plus's upstream API).
//!
//! | request | does |
//! |---|---|
//! | `GET /api/pools` | every pool with its servers and their live state |
//! | `GET /api/pools/{pool}` | one pool |
//! | `GET /api/pools/{pool}/servers/{server}` | one server (`{server}`: its address or name) |
//! | `PUT /api/pools/{pool}/servers/{server}` | `{"weight": 5}` and/or `{"state": "ready" \| "drain" \| "maint"}` |
//! | `POST /api/pools/{pool}/servers` | add `{"addr": "10.0.0.5:80", "weight": 2, "name": "app5", "backup": false, "state": "ready"}` |
//! | `DELETE /api/pools/{pool}/servers/{server}` | drain, then remove once idle (at most the grace period) |
//! | `POST /api/reload` | load the config file again (as SIGHUP does) |
//! | `GET /api/config` | the running configuration (file + changes) as TOML that `check` accepts |
//! | `GET /api/explain?listener=…&method=…&host=…&path=…&client=…&header=N:V&cookie=N=V` | why this server: the route, the pool, each server's candidacy, what the algorithm looked at and its pick now, changing nothing (`explain.rs`) |
//! | `GET /api/config/next` | what a reload would make running (the file now, with the changes a reload keeps) as TOML; nothing applied; 422 with every error when the file does not pass |
//!
//! Reads are answered here from the [`View`]; writes go as a [`Command`] to the runtime's
//! control task, which checks them like a config file, applies them and answers with what
//! changed (`before → after`), logged here as an audit line (`switchyard::audit`: who,
//! what, before → after). With `[admin] token`, every `/api/` request needs
//! `Authorization: Bearer TOKEN`.

use std::net::SocketAddr;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, Limited};
use serde::Deserialize;
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::{State, View, status};
use crate::config::ConfigError;
use crate::upstream::{AdminState, Server};

/// What every API answer says about what survives a reload.
pub const PERSISTENCE: &str = "changes made over the API are kept across reloads until the config file changes the same value (then the file wins); GET /api/config returns the running configuration as TOML, to save as the file";

/// The largest request body the API reads.
const MAX_BODY: usize = 64 * 1024;

/// Where API writes go: the runtime's control task.
pub type Control = mpsc::Sender<Call>;

/// One write, with where its answer goes.
pub struct Call {
    pub command: Command,
    pub reply: oneshot::Sender<Reply>,
}

/// A change asked over the API.
#[derive(Debug, Clone)]
pub enum Command {
    /// Load the config file again.
    Reload,
    /// Set a server's weight and/or admin state; `server` is its address or name.
    SetServer {
        pool: String,
        server: String,
        weight: Option<u32>,
        state: Option<AdminState>,
    },
    AddServer {
        pool: String,
        server: NewServer,
    },
    RemoveServer {
        pool: String,
        server: String,
    },
    /// The running configuration as TOML.
    Config,
    /// What a reload would make running, as TOML; nothing applied (`switchyard reload`
    /// prints its plan from it).
    NextConfig,
}

/// `POST /api/pools/{pool}/servers`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewServer {
    pub addr: String,
    pub name: Option<String>,
    pub weight: Option<i64>,
    #[serde(default)]
    pub backup: bool,
    pub state: Option<String>,
}

/// `PUT /api/pools/{pool}/servers/{server}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SetServer {
    weight: Option<i64>,
    state: Option<String>,
}

/// The control task's answer.
pub type Reply = Result<Done, Refusal>;

/// A change made.
#[derive(Debug)]
pub struct Done {
    pub status: StatusCode,
    /// Each change as `what: before → after`, for the answer and the audit log.
    pub changes: Vec<String>,
    pub body: Body,
}

#[derive(Debug)]
pub enum Body {
    Json(Value),
    Toml(String),
}

/// A change refused: nothing changed.
#[derive(Debug)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
    pub help: Option<String>,
    /// Config errors (a reload of a broken file), each with file:line:column and its fix.
    pub errors: Vec<ConfigError>,
}

impl Refusal {
    pub fn new(status: StatusCode, message: impl Into<String>, help: impl Into<String>) -> Refusal {
        let help = help.into();
        Refusal {
            status,
            message: message.into(),
            help: (!help.is_empty()).then_some(help),
            errors: Vec::new(),
        }
    }
}

/// One server as the API shows it.
pub fn server_json(u: &crate::proxy::http::Upstream, s: &Server) -> Value {
    let mut v = status::server(u, s);
    if let Value::Object(m) = &mut v {
        m.remove("admin_state");
    }
    v["state"] = json!(s.admin_state().as_str());
    v["health"] = json!(s.health_state().as_str());
    // The DNS name it was resolved from (`discovery`), as written; null when written with
    // its address.
    v["resolved_from"] = json!(s.from);
    v["idle"] = json!(s.in_flight() == 0);
    v["drained"] = json!(s.drained());
    // hyper's keep-alive pool and the direct path's, whichever the listeners use.
    v["idle_connections"] = json!(u.conns().idle_count(s) + u.idle().count(s));
    // Busy upstream connections: one per HTTP/1.1 request, TCP connection, UDP session or
    // tunnel in flight; an HTTP/2 pool's requests share one connection per server.
    let busy = u64::from(s.in_flight());
    v["active_connections"] = json!(if u.transport().protocol.is_h2() {
        busy.min(1)
    } else {
        busy
    });
    v
}

fn pool_json(u: &crate::proxy::http::Upstream) -> Value {
    let p = &u.pool;
    json!({
        "name": p.name,
        "algorithm": p.algorithm.as_str(),
        "servers": p.servers().iter().map(|s| server_json(u, s)).collect::<Vec<_>>(),
    })
}

/// A server of a pool by address, or by a name that only it has (the servers of one DNS
/// name share that name: they are named by address).
pub fn find_server<'a>(
    servers: &'a [std::sync::Arc<Server>],
    key: &str,
) -> Option<&'a std::sync::Arc<Server>> {
    let addr: Option<SocketAddr> = key.parse().ok();
    if let Some(s) = servers.iter().find(|s| Some(s.addr) == addr) {
        return Some(s);
    }
    let mut named = servers.iter().filter(|s| s.name == key);
    match (named.next(), named.next()) {
        (Some(s), None) => Some(s),
        _ => None,
    }
}

fn json_response(status: StatusCode, mut body: Value) -> Response<Full<Bytes>> {
    if let Value::Object(m) = &mut body {
        m.insert("persistence".into(), json!(PERSISTENCE));
    }
    let mut text = serde_json::to_string_pretty(&body).unwrap_or_default();
    text.push('\n');
    super::typed(status, "application/json", text)
}

fn refused(r: &Refusal) -> Response<Full<Bytes>> {
    let errors: Vec<Value> = r
        .errors
        .iter()
        .map(|e| {
            json!({
                "file": e.file, "line": e.line, "column": e.column,
                "message": e.message, "help": e.help, "text": e.to_string(),
            })
        })
        .collect();
    // Only what there is: no `"help": null`, no `"errors": []`.
    let mut body = json!({ "error": r.message });
    if let Some(help) = &r.help {
        body["help"] = json!(help);
    }
    if !errors.is_empty() {
        body["errors"] = json!(errors);
    }
    let mut resp = json_response(r.status, body);
    if r.status == StatusCode::UNAUTHORIZED {
        resp.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"switchyard\""),
        );
    }
    resp
}

/// Equal, in time independent of where they differ.
fn same_secret(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Whether the request may use the API: always without a token, else with its bearer.
fn authorized<B>(view: &View, req: &Request<B>) -> bool {
    let Some(token) = view.plan.admin.as_ref().and_then(|a| a.token.as_ref()) else {
        return true;
    };
    req.headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .is_some_and(|given| same_secret(given.trim().as_bytes(), token.as_bytes()))
}

/// A change asked and refused: one audit line, whether the body, its values or the
/// runtime refused it.
fn audit_refusal(who: &str, what: &str, r: &Refusal) {
    tracing::warn!(target: "switchyard::audit", who = %who, what = %what, "audit: refused: {}", r.message);
}

/// [`refused`], audited: for a change refused before it reached the runtime.
fn audit_refused(who: &str, what: &str, r: &Refusal) -> Response<Full<Bytes>> {
    audit_refusal(who, what, r);
    refused(r)
}

/// Who asked, for the audit log.
fn who<B>(req: &Request<B>, peer: SocketAddr, token: bool) -> String {
    let agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    format!(
        "{peer} ({}, {agent})",
        if token { "token" } else { "no token" }
    )
}

/// The answer to one `/api/` request.
pub async fn answer(
    state: &State,
    req: Request<hyper::body::Incoming>,
    peer: SocketAddr,
) -> Response<Full<Bytes>> {
    let view = state.view.load_full();
    if !authorized(&view, &req) {
        return refused(&Refusal::new(
            StatusCode::UNAUTHORIZED,
            "this admin API needs Authorization: Bearer TOKEN",
            "send the [admin] token of the config file: curl -H \"Authorization: Bearer $TOKEN\" …",
        ));
    }
    let method = req.method().clone();
    let path = req.uri().path().trim_end_matches('/').to_string();
    let what = format!("{method} {path}");
    let token = view.plan.admin.as_ref().is_some_and(|a| a.token.is_some());
    let who = who(&req, peer, token);
    let parts: Vec<String> = path.split('/').skip(2).map(percent_decode).collect();
    let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
    let command = match (&method, parts.as_slice()) {
        (&Method::GET | &Method::HEAD, ["pools"]) => {
            let pools: Vec<Value> = view.pools.iter().map(|u| pool_json(u)).collect();
            return json_response(StatusCode::OK, json!({ "pools": pools }));
        }
        (&Method::GET | &Method::HEAD, ["pools", pool]) => {
            return match view.pools.iter().find(|u| u.pool.name == *pool) {
                Some(u) => json_response(StatusCode::OK, pool_json(u)),
                None => refused(&no_pool(&view, pool)),
            };
        }
        (&Method::GET | &Method::HEAD, ["pools", pool, "servers", server]) => {
            let Some(u) = view.pools.iter().find(|u| u.pool.name == *pool) else {
                return refused(&no_pool(&view, pool));
            };
            return match find_server(u.pool.servers(), server) {
                Some(s) => json_response(StatusCode::OK, server_json(u, s)),
                None => refused(&no_server(u, server)),
            };
        }
        (&Method::PUT, ["pools", pool, "servers", server]) => {
            let body: SetServer = match read_json(req).await {
                Ok(b) => b,
                Err(r) => return audit_refused(&who, &what, &r),
            };
            match set_command(pool, server, body) {
                Ok(c) => c,
                Err(r) => return audit_refused(&who, &what, &r),
            }
        }
        (&Method::POST, ["pools", pool, "servers"]) => {
            let server: NewServer = match read_json(req).await {
                Ok(b) => b,
                Err(r) => return audit_refused(&who, &what, &r),
            };
            Command::AddServer {
                pool: pool.to_string(),
                server,
            }
        }
        (&Method::DELETE, ["pools", pool, "servers", server]) => Command::RemoveServer {
            pool: pool.to_string(),
            server: server.to_string(),
        },
        (&Method::GET | &Method::HEAD, ["explain"]) => {
            let query = req.uri().query().unwrap_or_default();
            return match super::explain::answer(&view, query) {
                Ok(body) => {
                    let mut text = serde_json::to_string_pretty(&body).unwrap_or_default();
                    text.push('\n');
                    super::typed(StatusCode::OK, "application/json", text)
                }
                Err(e) => refused(&Refusal::new(
                    if e.not_found {
                        StatusCode::NOT_FOUND
                    } else {
                        StatusCode::BAD_REQUEST
                    },
                    e.message,
                    e.help,
                )),
            };
        }
        (&Method::POST, ["reload"]) => Command::Reload,
        (&Method::GET | &Method::HEAD, ["config"]) => Command::Config,
        (&Method::GET | &Method::HEAD, ["config", "next"]) => Command::NextConfig,
        (_, ["pools"] | ["pools", _] | ["config"] | ["config", "next"] | ["explain"]) => {
            return not_allowed("GET, HEAD");
        }
        (_, ["pools", _, "servers", _]) => return not_allowed("GET, HEAD, PUT, DELETE"),
        (_, ["pools", _, "servers"]) | (_, ["reload"]) => return not_allowed("POST"),
        _ => {
            return refused(&Refusal::new(
                StatusCode::NOT_FOUND,
                format!("no API endpoint {path}"),
                "try GET /api/pools, GET /api/pools/{pool}, PUT|DELETE /api/pools/{pool}/servers/{addr}, POST /api/pools/{pool}/servers, POST /api/reload, GET /api/config, GET /api/config/next or GET /api/explain?host=…&path=…",
            ));
        }
    };
    let write = !matches!(command, Command::Config | Command::NextConfig);
    let reply = call(state, command).await;
    match &reply {
        Ok(done) if write => {
            for change in &done.changes {
                tracing::info!(target: "switchyard::audit", who = %who, what = %what, "audit: {change}");
            }
            if done.changes.is_empty() {
                tracing::info!(target: "switchyard::audit", who = %who, what = %what, "audit: no change");
            }
        }
        Err(r) if write => audit_refusal(&who, &what, r),
        _ => {}
    }
    match reply {
        Ok(Done {
            status,
            body: Body::Toml(text),
            ..
        }) => super::typed(status, "application/toml; charset=utf-8", text),
        Ok(Done {
            status,
            changes,
            body: Body::Json(mut body),
        }) => {
            if let Value::Object(m) = &mut body {
                m.insert("changes".into(), json!(changes));
            }
            json_response(status, body)
        }
        Err(r) => refused(&r),
    }
}

/// Send a command to the runtime and wait for its answer.
async fn call(state: &State, command: Command) -> Reply {
    let gone = || {
        Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "the runtime takes no change now (starting or shutting down)",
            "try again in a moment",
        )
    };
    let Some(control) = &state.control else {
        return Err(gone());
    };
    if state.draining.load(Ordering::Relaxed) {
        return Err(Refusal::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "shutting down: no change is taken any more",
            "",
        ));
    }
    let (tx, rx) = oneshot::channel();
    if control.send(Call { command, reply: tx }).await.is_err() {
        return Err(gone());
    }
    rx.await.unwrap_or_else(|_| Err(gone()))
}

fn set_command(pool: &str, server: &str, body: SetServer) -> Result<Command, Refusal> {
    let weight = match body.weight {
        None => None,
        Some(w) => Some(check_weight(w)?),
    };
    let state = match body.state.as_deref() {
        None => None,
        Some(s) => Some(check_state(s)?),
    };
    if weight.is_none() && state.is_none() {
        return Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "nothing to change",
            "send {\"weight\": 5} or {\"state\": \"drain\"} (ready, drain or maint)",
        ));
    }
    Ok(Command::SetServer {
        pool: pool.to_string(),
        server: server.to_string(),
        weight,
        state,
    })
}

/// A weight from the API: 1 to 1000, as in the file.
pub fn check_weight(w: i64) -> Result<u32, Refusal> {
    match w {
        1..=1000 => Ok(w as u32),
        0 => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            "weight 0 is not a weight here",
            "to stop new requests to the server, send {\"state\": \"drain\"} (HAProxy's set weight 0); weights go from 1 to 1000",
        )),
        _ => Err(Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("weight {w} is out of range"),
            "send a whole number from 1 to 1000",
        )),
    }
}

/// An admin state from the API.
pub fn check_state(s: &str) -> Result<AdminState, Refusal> {
    AdminState::parse(s).ok_or_else(|| {
        // nginx's and HAProxy's words for these states.
        let meant = match s.to_ascii_lowercase().as_str() {
            "down" | "disable" | "disabled" | "maintenance" => {
                "did you mean \"maint\"? (nginx's down, HAProxy's disable server) "
            }
            "up" | "enable" | "enabled" => "did you mean \"ready\"? ",
            "draining" | "drained" => "did you mean \"drain\"? ",
            _ => "",
        };
        Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("unknown state {s:?}"),
            format!("{meant}send \"ready\" (in service), \"drain\" (no new requests; running ones finish) or \"maint\" (out at once)"),
        )
    })
}

async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<hyper::body::Incoming>,
) -> Result<T, Refusal> {
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|_| {
            Refusal::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the request body is too large or broken",
                format!("send a JSON object of at most {MAX_BODY} bytes"),
            )
        })?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| {
        Refusal::new(
            StatusCode::BAD_REQUEST,
            format!("the body is not what this endpoint takes: {}", plain(&e)),
            "send JSON such as {\"weight\": 5}, {\"state\": \"drain\"} or {\"addr\": \"10.0.0.5:80\"}",
        )
    })
}

/// serde's words for a JSON mistake, without Rust's type names: `invalid type: string
/// "5", expected i64` → `a string ("5") where a whole number belongs`.
fn plain(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let Some(rest) = text.strip_prefix("invalid type: ") else {
        return text;
    };
    let Some((found, tail)) = rest.split_once(", expected ") else {
        return text;
    };
    let (expected, at) = tail.split_once(" at ").unwrap_or((tail, ""));
    let expected = match expected {
        "i64" | "u64" | "i32" | "u32" | "usize" | "u16" => "a whole number",
        "a boolean" => "true or false",
        other => other,
    };
    let found = match found.split_once(' ') {
        Some((kind, value)) => format!("a {kind} ({value})"),
        None => found.to_string(),
    };
    match at {
        "" => format!("{found} where {expected} belongs"),
        at => format!("{found} where {expected} belongs (at {at})"),
    }
}

fn not_allowed(allow: &'static str) -> Response<Full<Bytes>> {
    let mut r = refused(&Refusal::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method not allowed here",
        format!("use {allow}"),
    ));
    r.headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static(allow));
    r
}

/// 404 for a pool that does not exist, naming the ones that do.
pub fn no_pool(view: &View, pool: &str) -> Refusal {
    let names: Vec<&str> = view.pools.iter().map(|u| u.pool.name.as_str()).collect();
    Refusal::new(
        StatusCode::NOT_FOUND,
        format!("no pool named {pool:?}"),
        format!("pools: {}", names.join(", ")),
    )
}

/// 404 for a server a pool does not have, naming the ones it has.
pub fn no_server(u: &crate::proxy::http::Upstream, server: &str) -> Refusal {
    let names: Vec<String> = u
        .pool
        .servers()
        .iter()
        .map(|s| format!("{} ({})", s.addr, s.name))
        .collect();
    let shared = u.pool.servers().iter().filter(|s| s.name == server).count();
    if shared > 1 {
        return Refusal::new(
            StatusCode::NOT_FOUND,
            format!(
                "{shared} servers of pool {:?} are named {server:?} (the addresses of one DNS name)",
                u.pool.name
            ),
            format!("name one by its address: {}", names.join(", ")),
        );
    }
    Refusal::new(
        StatusCode::NOT_FOUND,
        format!("pool {:?} has no server {server:?}", u.pool.name),
        format!(
            "name a server by address or name: {}; to add one, POST /api/pools/{}/servers",
            names.join(", "),
            u.pool.name
        ),
    )
}

/// `%5B::1%5D:80` → `[::1]:80` (IPv6 addresses in a path).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
            && let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv6_addresses_come_through_the_path() {
        assert_eq!(percent_decode("%5B::1%5D:80"), "[::1]:80");
        assert_eq!(percent_decode("10.0.0.1:80"), "10.0.0.1:80");
        assert_eq!(percent_decode("bad%zz"), "bad%zz");
        assert_eq!(percent_decode("end%4"), "end%4");
    }

    #[test]
    fn json_type_mistakes_are_said_without_rust_type_names() {
        let e = |body: &str| plain(&serde_json::from_str::<SetServer>(body).unwrap_err());
        assert_eq!(
            e(r#"{"weight":"5"}"#),
            r#"a string ("5") where a whole number belongs (at line 1 column 13)"#
        );
        assert_eq!(
            e(r#"{"weight": true}"#),
            "a boolean (`true`) where a whole number belongs (at line 1 column 15)"
        );
        assert!(e(r#"{"wieght": 5}"#).starts_with("unknown field `wieght`"));
    }

    #[test]
    fn weights_and_states_are_checked_with_a_fix() {
        assert_eq!(check_weight(5).unwrap(), 5);
        let zero = check_weight(0).unwrap_err();
        assert!(zero.help.unwrap().contains("drain"));
        assert_eq!(check_weight(1001).unwrap_err().status, 400);
        assert_eq!(check_state("drain").unwrap(), AdminState::Drain);
        assert!(
            check_state("disabled")
                .unwrap_err()
                .help
                .unwrap()
                .contains("maint")
        );
        // nginx's `down` and HAProxy's `disable`/`enable` name the state meant.
        let help = |s: &str| check_state(s).unwrap_err().help.unwrap();
        assert!(
            help("down").starts_with("did you mean \"maint\"?"),
            "{}",
            help("down")
        );
        assert!(help("enable").starts_with("did you mean \"ready\"?"));
        assert!(help("draining").starts_with("did you mean \"drain\"?"));
        assert!(help("sideways").starts_with("send \"ready\""));
    }

    #[test]
    fn secrets_compare_whole() {
        assert!(same_secret(b"abc", b"abc"));
        assert!(!same_secret(b"abc", b"abd"));
        assert!(!same_secret(b"abc", b"abcd"));
    }
}

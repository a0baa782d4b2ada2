//! serde's "invalid type: string \"32\", expected i64" in the operator's words: the key, the
//! kind of value it takes, and the line to write instead (`write keepalive = 32`), made from
//! the value that was written.

use toml::de::DeValue;

use super::super::duration::parse_duration_explained;
use super::syntax::Cut;

/// The value an entry cut for a shape error held, as much as a suggestion needs.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Found {
    Str(String),
    /// The digits as written (radix 10), or `None` for hex/octal/binary.
    Int(Option<i64>),
    Float(f64),
    Bool(bool),
    Array,
    Table,
    Other,
}

impl Found {
    pub(crate) fn of(v: &DeValue<'_>) -> Found {
        match v {
            DeValue::String(s) => Found::Str(s.to_string()),
            DeValue::Integer(i) => Found::Int(
                (i.radix() == 10)
                    .then(|| i.as_str().replace('_', "").parse().ok())
                    .flatten(),
            ),
            DeValue::Float(f) => Found::Float(f.as_str().replace('_', "").parse().unwrap_or(0.0)),
            DeValue::Boolean(b) => Found::Bool(*b),
            DeValue::Array(_) => Found::Array,
            DeValue::Table(_) => Found::Table,
            DeValue::Datetime(_) => Found::Other,
        }
    }
}

/// The keys whose value is a duration string.
const DURATION_KEYS: [&str; 16] = [
    "grace_period",
    "shutdown_delay",
    "keepalive_timeout",
    "tunnel_idle_timeout",
    "connect",
    "read",
    "send",
    "client_body",
    "fail_timeout",
    "slow_start",
    "interval",
    "timeout",
    "ttl",
    "idle_timeout",
    "session_timeout",
    "hsts",
];

/// A plausible value for an integer key, for the example in a help line.
fn example_int(key: &str) -> i64 {
    match key {
        "workers" => 4,
        "keepalive" => 32,
        "max_fails" | "weight" => 1,
        "rise" | "attempts" => 2,
        "fall" => 3,
        "size" => 65_536,
        "max_connections" | "max_sessions" => 10_000,
        _ => 1,
    }
}

/// For a "invalid type: …, expected …" error on the entry `cut`: the message and help in
/// the operator's words. `None` leaves serde's text (another kind of error, or a type this
/// does not know).
pub(crate) fn explain(message: &str, cut: &Cut) -> Option<(String, String)> {
    let expected = message
        .strip_prefix("invalid type: ")?
        .rsplit_once(", expected ")?
        .1;
    let element = cut.path.last().is_some_and(|k| k == "[]");
    let key = cut.key.as_str();
    let found = &cut.found;
    if element {
        return explain_element(key, expected, found, cut);
    }
    let quoted = |v: &str| format!("{key} = {v:?}");
    Some(match expected {
        "i64" | "u64" | "i32" | "u32" | "an integer" => {
            let what = format!("{key} must be a whole number");
            match found {
                Found::Str(s) if s.trim().parse::<i64>().is_ok() => (
                    what,
                    format!(
                        "write {key} = {}, without quotes",
                        s.trim().parse::<i64>().ok()?
                    ),
                ),
                Found::Float(f) if f.is_finite() => {
                    (what, format!("write {key} = {}", f.round() as i64))
                }
                _ => (what, format!("write e.g. {key} = {}", example_int(key))),
            }
        }
        "f64" | "f32" | "a float" => {
            let what = format!("{key} must be a number");
            match found {
                Found::Str(s) if s.trim().parse::<f64>().is_ok() => {
                    (what, format!("write {key} = {}, without quotes", s.trim()))
                }
                _ => (what, format!("write e.g. {key} = 0.2")),
            }
        }
        "a boolean" => {
            let what = format!("{key} must be true or false");
            let guess = match found {
                Found::Str(s) => match s.trim().to_ascii_lowercase().as_str() {
                    "true" | "yes" | "on" | "1" => Some(true),
                    "false" | "no" | "off" | "0" => Some(false),
                    _ => None,
                },
                Found::Int(Some(1)) => Some(true),
                Found::Int(Some(0)) => Some(false),
                _ => None,
            };
            match guess {
                Some(b) => (what, format!("write {key} = {b}, without quotes")),
                None => (
                    what,
                    format!("write {key} = true or {key} = false, without quotes"),
                ),
            }
        }
        "a string" | "a borrowed string" | "char" if DURATION_KEYS.contains(&key) => match found {
            Found::Int(Some(n)) if *n < 0 => (
                format!("{key} = {n}: a duration cannot be negative"),
                format!("write a positive duration in quotes, e.g. {key} = \"5s\""),
            ),
            Found::Float(f) if !f.is_finite() || *f < 0.0 => (
                format!("{key} = {f}: a duration cannot be negative or infinite"),
                format!("write a positive duration in quotes, e.g. {key} = \"5s\""),
            ),
            Found::Int(Some(n)) => (
                format!("{key} = {n} needs a unit"),
                format!(
                    "write {} (or \"{n}ms\"); units: ms, s, m, h, d, w, y",
                    quoted(&format!("{n}s"))
                ),
            ),
            Found::Float(f) => {
                let text = format!("{f}s");
                let fix = parse_duration_explained(&text)
                    .err()
                    .and_then(|e| e.help.strip_prefix("write ").map(str::to_string))
                    .unwrap_or_else(|| format!("{text:?}"));
                (
                    format!("{key} = {f} needs a unit, in quotes"),
                    format!("write {key} = {fix}; fractions are not supported"),
                )
            }
            _ => (
                format!("{key} must be a duration in quotes"),
                format!("write e.g. {}", quoted("5s")),
            ),
        },
        "a string" | "a borrowed string" | "char" => {
            let what = format!("{key} must be a string, in quotes");
            match found {
                Found::Int(Some(n)) => (what, format!("write {}", quoted(&n.to_string()))),
                Found::Float(f) => (what, format!("write {}", quoted(&f.to_string()))),
                Found::Bool(b) => (what, format!("write {}", quoted(&b.to_string()))),
                Found::Array if key == "pool" => (
                    format!("{key} names one pool"),
                    "write pool = \"NAME\"; to spread over several, write split = [ { pool = \"a\", weight = 1 }, { pool = \"b\", weight = 1 } ]".to_string(),
                ),
                _ => (what, format!("write {}", quoted("..."))),
            }
        }
        "a sequence" => (
            format!("{key} must be an array"),
            array_shape(key, found, cut),
        ),
        e if e.starts_with("struct ") || e == "a map" || e == "map" => (
            format!("{key} must be a table"),
            table_shape(key, found, cut),
        ),
        _ => return None,
    })
}

/// An element of the array under `key` has the wrong type.
fn explain_element(
    key: &str,
    expected: &str,
    found: &Found,
    cut: &Cut,
) -> Option<(String, String)> {
    let s = match found {
        Found::Str(s) => s.clone(),
        _ => String::new(),
    };
    let addr = if s.is_empty() { "127.0.0.1:9001" } else { &s };
    Some(match (key, expected) {
        ("servers", _) => (
            "each server must be a table".to_string(),
            format!("write {{ addr = {addr:?} }}"),
        ),
        ("split", _) => (
            "each part of split must be a table".to_string(),
            format!(
                "write {{ pool = {:?}, weight = 1 }}",
                if s.is_empty() { "NAME" } else { &s }
            ),
        ),
        ("on" | "trusted_proxies", "a string" | "a borrowed string") => {
            let v = match found {
                Found::Int(Some(n)) => n.to_string(),
                _ => "...".to_string(),
            };
            (
                format!("each element of {key} must be a string, in quotes"),
                format!("write {v:?}"),
            )
        }
        (_, e) if e.starts_with("struct ") => (
            format!("each element of {key} must be a table"),
            table_shape(key, found, cut),
        ),
        _ => return None,
    })
}

/// What an array key looks like.
fn array_shape(key: &str, found: &Found, cut: &Cut) -> String {
    let top = cut.path.first().map_or("", String::as_str);
    match (top, key, found) {
        ("listener", "tls", _) => {
            "write [[listener.tls]] with cert = \"PATH\" and key = \"PATH\" below the listener".into()
        }
        (_, "listener", _) => {
            "write [[listener]] (double brackets) with listen and pool below it".into()
        }
        (_, "route", _) => {
            "write [[listener.route]] (double brackets) below the listener, with its conditions and pool".into()
        }
        (_, "servers", Found::Str(s)) => format!("write servers = [ {{ addr = {s:?} }} ]"),
        (_, "servers", _) => "write servers = [ { addr = \"127.0.0.1:9001\" }, { addr = \"127.0.0.1:9002\" } ]".into(),
        (_, "split", _) => "write split = [ { pool = \"v1\", weight = 90 }, { pool = \"v2\", weight = 10 } ]".into(),
        (_, "on", Found::Str(s)) => format!("write on = [{s:?}]"),
        (_, "on", _) => "write on = [\"connect_failure\", \"502\"]".into(),
        (_, "trusted_proxies", Found::Str(s)) => format!("write trusted_proxies = [{s:?}]"),
        (_, "trusted_proxies", _) => "write trusted_proxies = [\"10.0.0.0/8\"]".into(),
        _ => format!("write {key} = [ ... ]"),
    }
}

/// What a table key looks like.
fn table_shape(key: &str, found: &Found, cut: &Cut) -> String {
    let pool = match cut.path.as_slice() {
        [p, name, ..] if p == "pool" => name.as_str(),
        _ => "NAME",
    };
    let top = cut.path.first().map_or("", String::as_str);
    match (top, key) {
        ("pool", "timeouts") => match found {
            Found::Str(s) if parse_duration_explained(s).is_ok() => format!(
                "timeouts are per step: write timeouts = {{ connect = {s:?}, read = {s:?}, send = {s:?} }}"
            ),
            _ => "write timeouts = { connect = \"5s\", read = \"60s\", send = \"60s\" }".into(),
        },
        ("pool", "health") => {
            format!("write a section [pool.{pool}.health] with e.g. interval = \"2s\" below it")
        }
        ("pool", "retry") => {
            format!("write a section [pool.{pool}.retry] with e.g. attempts = 2 below it")
        }
        ("pool", "sticky") => {
            format!("write a section [pool.{pool}.sticky] with mode = \"cookie\" below it")
        }
        ("pool", "tls") => {
            format!("write tls = {{ ca = \"ca.pem\" }}, or a section [pool.{pool}.tls]")
        }
        ("pool", k) if k == pool && cut.path.len() == 2 => {
            format!(
                "write a section [pool.{pool}] with servers = [ {{ addr = \"host:port\" }} ] below it"
            )
        }
        (_, "pool") => "write a section [pool.NAME] for each pool".into(),
        (_, "header" | "cookie") => {
            format!("write {key} = {{ name = \"x-canary\", value = \"1\" }}")
        }
        (_, "admin") => "write a section [admin] with listen = \"127.0.0.1:9900\" below it".into(),
        (_, "listener") => "write [[listener]] with listen and pool below it".into(),
        (_, "route") => "write [[listener.route]] with its conditions and pool below it".into(),
        (_, "tls") => "write [[listener.tls]] with cert = \"PATH\" and key = \"PATH\"".into(),
        _ => format!("write {key} = {{ ... }}"),
    }
}

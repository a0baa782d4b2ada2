//! One value of the document and how it becomes a plan value: the parsers that each key's
//! line names (`int(1, 1000)`, `duration`, `addr("listen")`, `word`, `list(cidr)`),
//! and what to say, in the operator's words, when a value has the wrong TOML type
//! (`keepalive = "32"` → "keepalive must be a whole number", "write keepalive = 32, without
//! quotes"), made from the value that was written.
//!
//! A parser is any `Fn(&Val) -> Result<T, Bad>`: [`Bad::Type`] when the TOML type is wrong
//! (this module words it), [`Bad::Value`] with a message and a help when the value breaks a
//! rule. [`Parse::must`] adds a rule to a parser.

use std::net::{SocketAddr, ToSocketAddrs};
use std::ops::Range;
use std::time::Duration;

use toml::de::DeValue;

use super::report::{Kind, Report};
use crate::config::duration::parse_duration_explained;
use crate::config::words::Words;

/// A value being read, with where it is.
#[derive(Clone)]
pub(crate) struct Val<'a> {
    pub(crate) report: &'a Report<'a>,
    /// Its key; for an element of an array, the array's key.
    pub(crate) key: &'a str,
    pub(crate) value: &'a DeValue<'a>,
    pub(crate) span: Range<usize>,
    /// The path of the table that holds it (`pool.web`; empty at the top level).
    pub(crate) path: &'a str,
    /// Put before the key where a message names the value (`timeouts.`).
    pub(crate) prefix: &'a str,
    /// Whether it is an element of the array under `key`.
    pub(crate) element: bool,
}

/// Why a value could not be read.
pub(crate) enum Bad {
    /// It is not of this TOML type.
    Type(Ty),
    /// It is of the right type but breaks a rule: the message and the help.
    Value(String, String),
}

/// The TOML type a key takes.
#[derive(Clone, Copy, PartialEq)]
pub(crate) enum Ty {
    Int,
    Float,
    Bool,
    Str,
    /// A string such as "5s".
    Duration,
    /// A string such as "64k", or a whole number of bytes.
    Size,
    Array,
    Table,
}

/// A value that breaks a rule: what is wrong and what to write instead.
pub(crate) fn bad(message: impl Into<String>, help: impl Into<String>) -> Bad {
    Bad::Value(message.into(), help.into())
}

impl<'a> Val<'a> {
    /// The value's name in messages: `fail_timeout`, `timeouts.read`.
    pub(crate) fn what(&self) -> String {
        format!("{}{}", self.prefix, self.key)
    }

    /// The string written, if it is one.
    pub(crate) fn str(&self) -> Result<&'a str, Bad> {
        self.value.as_str().ok_or(Bad::Type(Ty::Str))
    }

    fn int(&self) -> Result<i64, Bad> {
        match self.value {
            DeValue::Integer(i) => {
                i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok()
            }
            _ => None,
        }
        .ok_or(Bad::Type(Ty::Int))
    }

    /// The value's element `item`, for a parser of arrays.
    pub(crate) fn element(&self, item: &'a toml::Spanned<DeValue<'a>>) -> Val<'a> {
        Val {
            value: item.get_ref(),
            span: item.span(),
            element: true,
            ..*self
        }
    }

    /// Record why the value could not be read.
    pub(crate) fn report(&self, bad: Bad) {
        match bad {
            Bad::Type(ty) => {
                let (message, help) = type_error(self, ty);
                self.report
                    .error(Kind::Shape, self.span.clone(), message, help);
            }
            Bad::Value(message, help) => {
                self.report
                    .error(Kind::Rule, self.span.clone(), message, help)
            }
        }
    }
}

/// A parser of values, with rules added by [`Parse::must`].
pub(crate) trait Parse<T>: Fn(&Val<'_>) -> Result<T, Bad> + Sized {
    /// This parser, and then `ok` must hold of the value, else `message` with `help`.
    fn must(
        self,
        ok: impl Fn(&T) -> bool,
        message: &'static str,
        help: &'static str,
    ) -> impl Fn(&Val<'_>) -> Result<T, Bad> {
        move |v: &Val<'_>| {
            self(v).and_then(|x| {
                if ok(&x) {
                    Ok(x)
                } else {
                    Err(bad(message, help))
                }
            })
        }
    }
}

impl<T, F: Fn(&Val<'_>) -> Result<T, Bad>> Parse<T> for F {}

/// Any string.
pub(crate) fn string(v: &Val<'_>) -> Result<String, Bad> {
    v.str().map(str::to_string)
}

/// `true` or `false`.
pub(crate) fn boolean(v: &Val<'_>) -> Result<bool, Bad> {
    v.value.as_bool().ok_or(Bad::Type(Ty::Bool))
}

/// A whole number from `lo` to `hi`.
pub(crate) fn int<T: TryFrom<i64>>(lo: i64, hi: i64) -> impl Fn(&Val<'_>) -> Result<T, Bad> {
    move |v: &Val<'_>| {
        let n = v.int()?;
        let out_of_range = format!("{} = {n} is out of range", v.key);
        let fits = (lo..=hi).contains(&n).then(|| T::try_from(n).ok());
        fits.flatten().ok_or_else(|| {
            bad(
                out_of_range,
                format!("use a whole number from {lo} to {hi}"),
            )
        })
    }
}

/// A number (a whole one will do).
pub(crate) fn float(v: &Val<'_>) -> Result<f64, Bad> {
    match v.value {
        DeValue::Float(f) => f.as_str().replace('_', "").parse().ok(),
        DeValue::Integer(_) => v.int().ok().map(|n| n as f64),
        _ => None,
    }
    .ok_or(Bad::Type(Ty::Float))
}

/// A duration such as `"5s"`.
pub(crate) fn duration(v: &Val<'_>) -> Result<Duration, Bad> {
    let s = v.value.as_str().ok_or(Bad::Type(Ty::Duration))?;
    parse_duration_explained(s).map_err(|e| bad(format!("{}: {}", v.what(), e.message), e.help))
}

/// A duration that must not be zero (a timeout, a lifetime).
pub(crate) fn positive(help: &'static str) -> impl Fn(&Val<'_>) -> Result<Duration, Bad> {
    move |v: &Val<'_>| match duration(v)? {
        d if d.is_zero() => Err(bad(format!("{} must be longer than 0", v.what()), help)),
        d => Ok(d),
    }
}

/// A size in bytes, from `lo` to `hi`: a whole number of bytes (`65536`, as HAProxy writes
/// them), or with nginx's units, in quotes: `"64k"`, `"1m"`, `"1g"` (powers of 1024; `KiB`,
/// `MB` and the like are read the same way).
pub(crate) fn size<T: TryFrom<u64>>(lo: u64, hi: u64) -> impl Fn(&Val<'_>) -> Result<T, Bad> {
    move |v: &Val<'_>| {
        let key = v.what();
        let n = match v.value {
            DeValue::Integer(_) => match v.int()? {
                n if n < 0 => None,
                n => Some(n as u64),
            },
            DeValue::String(s) => parse_size(s),
            _ => return Err(Bad::Type(Ty::Size)),
        };
        let Some(n) = n else {
            let help = format!(
                "write e.g. {key} = \"64k\" or {key} = \"1m\" (k, m, g: 1024-based), or a number of bytes"
            );
            return Err(bad(format!("{key}: {} is not a size", shown(v)), help));
        };
        let fits = (lo..=hi).contains(&n).then(|| T::try_from(n).ok());
        fits.flatten().ok_or_else(|| {
            bad(
                format!("{key} = {} is out of range", shown(v)),
                format!("use a size from {} to {}", show_size(lo), show_size(hi)),
            )
        })
    }
}

/// The value as written, for a message.
fn shown(v: &Val<'_>) -> String {
    match v.value.as_str() {
        Some(s) => format!("{s:?}"),
        None => v.int().map(|n| n.to_string()).unwrap_or_default(),
    }
}

/// `"64k"` → 65536: digits, then an optional unit (k, m, g; any case; `KiB`, `KB` alike).
pub(crate) fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let digits = s.bytes().take_while(u8::is_ascii_digit).count();
    let (n, unit) = s.split_at(digits);
    let n: u64 = n.parse().ok()?;
    let shift = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        _ => return None,
    };
    n.checked_mul(1 << shift)
}

/// A size the way an operator writes it: `"64k"` when it is a whole number of KiB.
pub(crate) fn show_size(n: u64) -> String {
    match n {
        0 => "0".into(),
        n if n % (1 << 30) == 0 => format!("\"{}g\"", n >> 30),
        n if n % (1 << 20) == 0 => format!("\"{}m\"", n >> 20),
        n if n % (1 << 10) == 0 => format!("\"{}k\"", n >> 10),
        n => n.to_string(),
    }
}

/// A path that starts with `/`.
pub(crate) fn slash_path(what: &'static str) -> impl Fn(&Val<'_>) -> Result<String, Bad> {
    move |v: &Val<'_>| match v.str()? {
        p if p.starts_with('/') => Ok(p.to_string()),
        p => Err(bad(
            format!("{what} {p:?} does not start with /"),
            format!("write \"/{p}\""),
        )),
    }
}

/// One of the words of `W`.
pub(crate) fn word<W: Words>(v: &Val<'_>) -> Result<W, Bad> {
    let s = v.str()?;
    W::from_word(s).ok_or_else(|| {
        let (message, help) = W::unknown(s);
        bad(message, help)
    })
}

/// An array of values each read with `p`; elements that cannot be are reported and left out.
pub(crate) fn list<T>(
    p: impl Fn(&Val<'_>) -> Result<T, Bad>,
) -> impl Fn(&Val<'_>) -> Result<Vec<T>, Bad> {
    move |v: &Val<'_>| {
        let DeValue::Array(items) = v.value else {
            return Err(Bad::Type(Ty::Array));
        };
        let mut out = Vec::new();
        for item in items.iter() {
            let e = v.element(item);
            match p(&e) {
                Ok(x) => out.push(x),
                Err(bad) => e.report(bad),
            }
        }
        Ok(out)
    }
}

/// `host:port`; `what` names it in messages. A name is resolved once, here, to its first
/// address (a listener's `listen`; servers are read with [`server_addr`], which asks no DNS
/// server). `listen` also takes a bare port, as nginx's `listen 8080;`: every IPv4 address.
pub(crate) fn addr(what: &'static str) -> impl Fn(&Val<'_>) -> Result<SocketAddr, Bad> {
    move |v: &Val<'_>| {
        let s = v.str()?.trim();
        if let Ok(a) = s.parse::<SocketAddr>() {
            return Ok(a);
        }
        if let Some(e) = a_url(what, s) {
            return Err(e);
        }
        if what == "listen"
            && let Ok(port) = s.parse::<u16>()
        {
            return Ok(SocketAddr::from(([0, 0, 0, 0], port)));
        }
        // HAProxy's `bind :80` / `bind *:80`, nginx's `listen *:80`: every address, written
        // here as the address itself (a bare "80" is every IPv4 address too).
        if what == "listen"
            && let Some((host @ ("" | "*"), port)) = s.rsplit_once(':')
            && port.parse::<u16>().is_ok()
        {
            return Err(bad(
                format!("listen {s:?}: the host {host:?} is not an address"),
                format!(
                    "every IPv4 address is \"0.0.0.0:{port}\" (or \"{port}\"); for IPv6 as well, add a second [[listener]] with listen = \"[::]:{port}\" (IPv6 only)"
                ),
            ));
        }
        let host_port = s
            .rsplit_once(':')
            .filter(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        let Some((host, _)) = host_port else {
            let help = "write host:port, e.g. \"127.0.0.1:9001\" or \"[::1]:9001\"";
            return Err(bad(format!("{what} {s:?} is not an address"), help));
        };
        let resolved = s.to_socket_addrs().ok().and_then(|mut it| it.next());
        let help = "check the name, or write an IP address such as \"127.0.0.1:9001\"";
        resolved.ok_or_else(|| {
            bad(
                format!("{what} {s:?}: the name {host:?} does not resolve"),
                help,
            )
        })
    }
}

/// An address written as a URL (`http://127.0.0.1:9003`): the error says what to drop.
fn a_url(what: &str, s: &str) -> Option<Bad> {
    let (scheme, rest) = s.split_once("://")?;
    let host_port = rest.split(['/', '?']).next().unwrap_or(rest);
    let help = format!(
        "drop `{scheme}://`: addr is host:port, e.g. \"{host_port}\"{}",
        if scheme.eq_ignore_ascii_case("https") {
            " (TLS to servers is the pool's `tls`)"
        } else {
            ""
        }
    );
    Some(bad(format!("{what} {s:?} is a URL, not host:port"), help))
}

/// What a server's `addr` names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ServerAddr {
    /// `127.0.0.1:9001`, `[::1]:9001`.
    Addr(SocketAddr),
    /// `app.test:8080` (`port` given), or `_http._tcp.app.test` (SRV: no port).
    Name { host: String, port: Option<u16> },
}

/// A server's `addr`: an address, a host name with its port, or an SRV name (first label
/// starting with `_`, no port: the records give ports and weights). Only the spelling is
/// checked; `discovery` resolves names.
pub(crate) fn server_addr(v: &Val<'_>) -> Result<ServerAddr, Bad> {
    let s = v.str()?.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(ServerAddr::Addr(a));
    }
    let not_an_address = || {
        let help =
            "write host:port, e.g. \"127.0.0.1:9001\", \"[::1]:9001\" or \"app.internal:9001\"";
        bad(format!("server address {s:?} is not an address"), help)
    };
    if let Some(e) = a_url("server address", s) {
        return Err(e);
    }
    if is_srv_name(s) {
        return Ok(ServerAddr::Name {
            host: s.to_string(),
            port: None,
        });
    }
    match s.rsplit_once(':') {
        Some((host, port)) if is_srv_name(host) && port.parse::<u16>().is_ok() => Err(bad(
            format!("server address {s:?}: an SRV name takes no port, its records give the ports"),
            format!("write {host:?}"),
        )),
        Some((host, port)) if is_host_name(host) => match port.parse::<u16>() {
            Ok(port) => Ok(ServerAddr::Name {
                host: host.to_string(),
                port: Some(port),
            }),
            Err(_) => Err(not_an_address()),
        },
        None if is_host_name(s) => Err(bad(
            format!("server address {s:?} has no port"),
            format!(
                "write \"{s}:80\" (host:port); for DNS SRV records, which give the ports, write \"_http._tcp.{s}\""
            ),
        )),
        _ => Err(not_an_address()),
    }
}

/// A DNS host name: labels of letters, digits, `-` and `_`, 63 bytes at most each, 253 in all
/// (a final dot allowed), not all digits and dots (a mistyped IPv4 address).
fn is_host_name(s: &str) -> bool {
    let name = s.strip_suffix('.').unwrap_or(s);
    !name.is_empty()
        && name.len() <= 253
        && !name.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && name.split('.').all(|l| {
            (1..=63).contains(&l.len())
                && l.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
}

/// `_service._proto.name`: an SRV name (RFC 2782).
fn is_srv_name(s: &str) -> bool {
    let labels: Vec<&str> = s.split('.').collect();
    is_host_name(s) && labels.len() >= 3 && labels[0].starts_with('_') && labels[1].starts_with('_')
}

/// A DNS server to ask: an IP address with an optional port (53 by default), as nginx's
/// `resolver 127.0.0.1:5353;`.
pub(crate) fn resolver_addr(v: &Val<'_>) -> Result<SocketAddr, Bad> {
    let s = v.str()?.trim();
    if let Ok(a) = s.parse::<SocketAddr>() {
        return Ok(a);
    }
    if let Ok(ip) = s
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<std::net::IpAddr>()
    {
        return Ok(SocketAddr::new(ip, 53));
    }
    Err(bad(
        format!("resolver {s:?} is not an IP address"),
        "write the DNS server's address, e.g. \"10.0.0.2\" (port 53) or \"127.0.0.1:5353\"; without resolver, the system's (/etc/resolv.conf) is asked",
    ))
}

/// One string or an array of them, each read with `p`.
pub(crate) fn one_or_list<T>(
    p: impl Fn(&Val<'_>) -> Result<T, Bad> + Copy,
) -> impl Fn(&Val<'_>) -> Result<Vec<T>, Bad> {
    move |v: &Val<'_>| match v.value {
        DeValue::Array(_) => list(p)(v),
        _ => p(v).map(|x| vec![x]),
    }
}

/// The message and help for `v`, which is not a `ty`.
fn type_error(v: &Val<'_>, ty: Ty) -> (String, String) {
    let key = v.key;
    // The keys from the top level to this one: `pool`, `web`, `timeouts`.
    let full: Vec<&str> = v
        .path
        .split('.')
        .filter(|s| !s.is_empty())
        .chain([key])
        .collect();
    let quoted = |s: &str| format!("{key} = {s:?}");
    let int = match v.value {
        DeValue::Integer(i) if i.radix() == 10 => i.as_str().replace('_', "").parse::<i64>().ok(),
        _ => None,
    };
    let float = match v.value {
        DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
        _ => None,
    };
    let text = v.value.as_str();
    if v.element {
        return element_error(v, ty, text, int, &full);
    }
    match ty {
        Ty::Int => {
            let help = match (text.and_then(|s| s.trim().parse::<i64>().ok()), float) {
                (Some(n), _) => format!("write {key} = {n}, without quotes"),
                (_, Some(f)) if f.is_finite() => format!("write {key} = {}", f.round() as i64),
                _ => format!("write e.g. {key} = {}", example_int(key)),
            };
            (format!("{key} must be a whole number"), help)
        }
        Ty::Float => {
            let help = match text.filter(|s| s.trim().parse::<f64>().is_ok()) {
                Some(s) => format!("write {key} = {}, without quotes", s.trim()),
                None => format!("write e.g. {key} = 0.2"),
            };
            (format!("{key} must be a number"), help)
        }
        Ty::Bool => {
            let guess = match (text.map(|s| s.trim().to_ascii_lowercase()), int) {
                (Some(s), _) if matches!(s.as_str(), "true" | "yes" | "on" | "1") => Some(true),
                (Some(s), _) if matches!(s.as_str(), "false" | "no" | "off" | "0") => Some(false),
                (None, Some(1)) => Some(true),
                (None, Some(0)) => Some(false),
                _ => None,
            };
            let help = match guess {
                Some(b) => format!("write {key} = {b}, without quotes"),
                None => format!("write {key} = true or {key} = false, without quotes"),
            };
            (format!("{key} must be true or false"), help)
        }
        Ty::Duration => match (int, float) {
            (Some(n), _) if n < 0 => (
                format!("{key} = {n}: a duration cannot be negative"),
                format!("write a positive duration in quotes, e.g. {key} = \"5s\""),
            ),
            (_, Some(f)) if !f.is_finite() || f < 0.0 => (
                format!("{key} = {f}: a duration cannot be negative or infinite"),
                format!("write a positive duration in quotes, e.g. {key} = \"5s\""),
            ),
            (Some(n), _) => (
                format!("{key} = {n} needs a unit"),
                format!(
                    "write {} (or \"{n}ms\"); units: ms, s, m, h, d, w, y",
                    quoted(&format!("{n}s"))
                ),
            ),
            (_, Some(f)) => {
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
        Ty::Str => {
            let what = format!("{key} must be a string, in quotes");
            match v.value {
                DeValue::Array(_) if key == "pool" => (
                    "pool names one pool".into(),
                    "write pool = \"NAME\"; to spread over several, write split = [ { pool = \"a\", weight = 1 }, { pool = \"b\", weight = 1 } ]".into(),
                ),
                DeValue::Boolean(b) => (what, format!("write {}", quoted(&b.to_string()))),
                _ => {
                    let number = int.map(|n| n.to_string()).or(float.map(|f| f.to_string()));
                    let shown = number.unwrap_or_else(|| "...".into());
                    (what, format!("write {}", quoted(&shown)))
                }
            }
        }
        Ty::Size => (
            format!("{key} must be a size"),
            format!(
                "write e.g. {} (k, m, g: 1024-based), or a number of bytes",
                quoted("64k")
            ),
        ),
        Ty::Array => (
            format!("{key} must be an array"),
            array_shape(key, text, &full),
        ),
        Ty::Table => (
            format!("{key} must be a table"),
            table_shape(key, text, &full),
        ),
    }
}

/// An element of the array under `v.key` has the wrong type.
fn element_error(
    v: &Val<'_>,
    ty: Ty,
    text: Option<&str>,
    int: Option<i64>,
    full: &[&str],
) -> (String, String) {
    let key = v.key;
    let text = text.filter(|s| !s.is_empty());
    match (key, ty) {
        ("servers", _) => (
            "each server must be a table".into(),
            format!("write {{ addr = {:?} }}", text.unwrap_or("127.0.0.1:9001")),
        ),
        ("split", _) => (
            "each part of split must be a table".into(),
            format!(
                "write {{ pool = {:?}, weight = 1 }}",
                text.unwrap_or("NAME")
            ),
        ),
        (_, Ty::Str) => (
            format!("each element of {key} must be a string, in quotes"),
            format!(
                "write {:?}",
                int.map_or("...".to_string(), |n| n.to_string())
            ),
        ),
        _ => (
            format!("each element of {key} must be a table"),
            table_shape(key, text, full),
        ),
    }
}

/// A plausible value for an integer key, for the example in a help line.
fn example_int(key: &str) -> i64 {
    match key {
        "workers" => 4,
        "keepalive" => 32,
        "rise" | "attempts" => 2,
        "fall" => 3,
        "size" => 65_536,
        "max_connections" | "max_sessions" => 10_000,
        _ => 1,
    }
}

/// What an array key looks like.
fn array_shape(key: &str, text: Option<&str>, full: &[&str]) -> String {
    match (full[0], key, text) {
        ("listener", "tls", _) => {
            "write [[listener.tls]] with cert = \"PATH\" and key = \"PATH\" below the listener".into()
        }
        (_, "listener", _) => {
            "write [[listener]] (double brackets) with listen and pool below it".into()
        }
        (_, "route", _) => {
            "write [[listener.route]] (double brackets) below the listener, with its conditions and pool".into()
        }
        (_, "servers", Some(s)) => format!("write servers = [ {{ addr = {s:?} }} ]"),
        (_, "servers", _) => {
            "write servers = [ { addr = \"127.0.0.1:9001\" }, { addr = \"127.0.0.1:9002\" } ]".into()
        }
        (_, "split", _) => {
            "write split = [ { pool = \"v1\", weight = 90 }, { pool = \"v2\", weight = 10 } ]".into()
        }
        (_, "on", Some(s)) => format!("write on = [{s:?}]"),
        (_, "on", _) => "write on = [\"connect_failure\", \"502\"]".into(),
        (_, "trusted_proxies", Some(s)) => format!("write trusted_proxies = [{s:?}]"),
        (_, "trusted_proxies", _) => "write trusted_proxies = [\"10.0.0.0/8\"]".into(),
        _ => format!("write {key} = [ ... ]"),
    }
}

/// What a table key looks like.
fn table_shape(key: &str, text: Option<&str>, full: &[&str]) -> String {
    let pool = match full {
        ["pool", name, ..] => name,
        _ => "NAME",
    };
    match (full[0], key) {
        ("pool", "timeouts") => match text.filter(|s| parse_duration_explained(s).is_ok()) {
            Some(s) => format!(
                "timeouts are per step: write timeouts = {{ connect = {s:?}, read = {s:?}, send = {s:?} }}"
            ),
            None => "write timeouts = { connect = \"5s\", read = \"60s\", send = \"60s\" }".into(),
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
        ("pool", k) if k == pool && full.len() == 2 => format!(
            "write a section [pool.{pool}] with servers = [ {{ addr = \"host:port\" }} ] below it"
        ),
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

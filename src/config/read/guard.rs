//! What protects a listener or a route: `allow` / `deny` address blocks, rate limits
//! (`[[listener.limit]]`, `[[listener.route.limit]]`), refusing rules (`[[listener.block]]`,
//! `[[listener.route.block]]`), and a listener's `forward_headers`. Regexes are compiled
//! here, so a bad one is an error at its line.

use http::HeaderName;

use super::cursor::Table;
use super::value::{Bad, Ty, Val, bad, boolean, int, list, string};
use crate::config::{BlockPlan, Cidr, ForwardHeaders, GuardPlan, LimitKey, LimitPlan, Rate};

/// An address block such as `10.0.0.0/8`.
pub(super) fn cidr(v: &Val<'_>) -> Result<Cidr, Bad> {
    let s = v.str()?;
    let help = "write an address or a block: \"127.0.0.1\", \"10.0.0.0/8\", \"fd00::/8\"";
    Cidr::parse(s).ok_or_else(|| bad(format!("{s:?} is not an address block"), help))
}

/// `allow` and `deny`; the same block in both is an error (the most specific rule decides,
/// and two rules of one block would leave nothing to decide).
pub(super) fn access(t: &Table<'_>, g: &mut GuardPlan) {
    t.set("allow", &mut g.allow, list(cidr));
    t.set("deny", &mut g.deny, list(cidr));
    if let Some(both) = g.deny.iter().find(|d| g.allow.contains(d)) {
        let shown = show(both);
        t.error_at(
            "deny",
            format!("{shown} is in both allow and deny"),
            format!(
                "keep {shown} in one list: the most specific block that holds a client decides, so a narrower block inside a wider one (allow = [\"10.0.0.0/8\"], deny = [\"10.1.0.0/16\"]) is how to make an exception"
            ),
        );
    }
}

/// How a block is written back: `10.0.0.0/8`, `192.0.2.1`.
fn show(c: &Cidr) -> String {
    let max = if c.addr.is_ipv4() { 32 } else { 128 };
    match c.prefix {
        p if p == max => c.addr.to_string(),
        p => format!("{}/{p}", c.addr),
    }
}

/// The `limit` and `block` tables under `t` into `g`.
pub(super) fn rules(t: &Table<'_>, g: &mut GuardPlan) {
    g.limits = t
        .tables("limit")
        .iter()
        .filter_map(|(_, l)| limit(l))
        .collect();
    g.blocks = t
        .tables("block")
        .iter()
        .filter_map(|(_, b)| block(b))
        .collect();
}

const KEY_HELP: &str = "write key = \"client_ip\", \"header:NAME\" or \"cookie:NAME\"";

fn limit_key(v: &Val<'_>) -> Result<LimitKey, Bad> {
    let s = v.str()?;
    let key = match s.split_once(':') {
        None if s == "client_ip" => Some(LimitKey::ClientIp),
        Some(("header", h)) => HeaderName::from_bytes(h.trim().as_bytes())
            .ok()
            .map(LimitKey::Header),
        Some(("cookie", c)) if !c.trim().is_empty() => Some(LimitKey::Cookie(c.trim().into())),
        _ => None,
    };
    key.ok_or_else(|| bad(format!("limit key {s:?} is not understood"), KEY_HELP))
}

fn rate(v: &Val<'_>) -> Result<Rate, Bad> {
    let s = v.str()?;
    Rate::parse(s).map_err(|e| {
        let (message, help) = e.split_once("; ").unwrap_or((&e, ""));
        bad(format!("rate: {message}"), help)
    })
}

/// One `[[…limit]]`.
fn limit(t: &Table<'_>) -> Option<LimitPlan> {
    let key = t.need("key", limit_key, "a limit has no key", KEY_HELP);
    let rate = t.need(
        "rate",
        rate,
        "a limit has no rate",
        "write rate = \"100/s\" (or \"600/m\", \"5/h\")",
    );
    let mut l = LimitPlan {
        key: LimitKey::ClientIp,
        rate: Rate {
            count: 1,
            per: std::time::Duration::from_secs(1),
        },
        burst: 0,
        size: LimitPlan::DEFAULT_SIZE,
        shared: false,
    };
    t.set("burst", &mut l.burst, int(0, 1_000_000));
    t.set("size", &mut l.size, int(1, 100_000_000));
    // Counted across balancers through `[redis]` (cross.rs: shared without [redis]).
    t.set("shared", &mut l.shared, boolean);
    t.finish();
    Some(LimitPlan {
        key: key?,
        rate: rate?,
        ..l
    })
}

/// `method = "TRACE"` or `method = ["TRACE", "TRACK"]`.
fn methods(v: &Val<'_>) -> Result<Vec<String>, Bad> {
    let one = |v: &Val<'_>| {
        let s = v.str()?;
        match http::Method::from_bytes(s.as_bytes()) {
            Ok(_) if !s.is_empty() => Ok(s.to_ascii_uppercase()),
            _ => Err(bad(
                format!("{s:?} is not an HTTP method"),
                "write e.g. \"TRACE\" or [\"TRACE\", \"TRACK\"]",
            )),
        }
    };
    match v.value.as_array() {
        Some(_) => list(one)(v),
        None if v.value.as_str().is_some() => one(v).map(|m| vec![m]),
        None => Err(Bad::Type(Ty::Str)),
    }
}

/// A regular expression, compiled to check it (as `regex::bytes` compiles it at run time).
fn regex(v: &Val<'_>) -> Result<String, Bad> {
    let s = v.str()?;
    match regex::bytes::Regex::new(s) {
        Ok(_) => Ok(s.to_string()),
        Err(e) => {
            let first = e.to_string();
            let last = first.lines().last().unwrap_or("").trim().to_string();
            Err(bad(
                format!("{} {s:?} is not a regular expression: {last}", v.what()),
                "the syntax is the regex crate's (like RE2): escape . and ? as \\\\. and \\\\?, and use TOML's single quotes ('\\.php$') to write a backslash as it is",
            ))
        }
    }
}

/// A block rule's `status`: a client error or a server error, as HAProxy's `deny_status`
/// and nginx's `return` refuse (a 2xx or 3xx would say the request was served or moved).
fn block_status(v: &Val<'_>) -> Result<u16, Bad> {
    let n = int::<i64>(i64::MIN, i64::MAX)(v)?;
    let fits = (400..=599).contains(&n).then_some(n as u16);
    fits.ok_or_else(|| {
        bad(
            format!("status = {n} cannot refuse a request: a block rule answers a 4xx or 5xx status"),
            "write a status from 400 to 599, e.g. status = 404 (nginx's return 404, HAProxy's deny_status 404); without it the rule answers 403",
        )
    })
}

/// One `[[…block]]`.
fn block(t: &Table<'_>) -> Option<BlockPlan> {
    let mut b = BlockPlan::default();
    let mut good = t.set("method", &mut b.methods, methods);
    good &= t.set("path_regex", &mut b.path_regex, |v| regex(v).map(Some));
    if let Some(h) = t.table("header") {
        let help = "write header = { name = \"user-agent\", regex = \"(?i)sqlmap\" }";
        let name = h.need("name", string, "header has no name", help);
        let re = h.need("regex", regex, "header has no regex", help);
        h.finish();
        match name.map(|n| (HeaderName::from_bytes(n.as_bytes()), n)) {
            Some((Ok(n), _)) => b.header = re.map(|r| (n.as_str().to_string(), r)),
            Some((Err(_), n)) => t.error_at("header", format!("{n:?} is not a header name"), help),
            None => {}
        }
        good &= b.header.is_some();
    }
    good &= t.set("status", &mut b.status, block_status);
    if good && b.methods.is_empty() && b.path_regex.is_none() && b.header.is_none() {
        t.absent(
            &["method", "path_regex", "header"],
            t.span(),
            "a block rule with no condition would refuse every request",
            "add method, path_regex or header; to keep every client out, write deny = [\"0.0.0.0/0\", \"::/0\"]",
        );
    }
    t.finish();
    good.then_some(b)
}

/// `forward_headers = ["x-forwarded-for", "forwarded", …]`.
pub(super) fn forward_headers(v: &Val<'_>) -> Result<ForwardHeaders, Bad> {
    let names: Vec<&str> = ForwardHeaders::NAMES.iter().map(|(n, _)| *n).collect();
    let one = |v: &Val<'_>| {
        let s = v.str()?;
        let lower = s.to_ascii_lowercase().replace('_', "-");
        ForwardHeaders::NAMES
            .iter()
            .find(|(n, _)| *n == lower)
            .map(|(_, bit)| *bit)
            .ok_or_else(|| {
                bad(
                    format!("forward_headers cannot write {s:?}"),
                    format!("use some of: {}", names.join(", ")),
                )
            })
    };
    let bits = list(one)(v)?;
    Ok(ForwardHeaders(bits.into_iter().fold(0, |a, b| a | b)))
}

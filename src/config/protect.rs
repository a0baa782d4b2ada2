//! The plan types of what protects the servers: access lists (`allow`, `deny`), rate limits
//! (`[[listener.limit]]`, `[[listener.route.limit]]`), refusing rules (`[[listener.block]]`,
//! `[[listener.route.block]]`), which forwarding headers a listener writes
//! (`forward_headers`), and each default in a `Default` impl. The proxy builds its checks
//! from these (`guard/`, `proxy/http/protect.rs`).

use std::time::Duration;

use http::HeaderName;

use super::Cidr;

/// `N/s`, `N/m`, `N/h`: so many requests per period.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub count: u32,
    pub per: Duration,
}

impl Rate {
    /// Parse `100/s`, `10/m`, `5/h` (also `r/s` as nginx writes it: `100r/s`).
    pub fn parse(s: &str) -> Result<Rate, String> {
        let fix = "write \"100/s\" (or \"600/m\", \"5/h\"): a count per period";
        let (n, per) = s.split_once('/').ok_or_else(|| match s.trim().parse::<u32>() {
            // A count alone: say it with its period, as nginx's `rate=20r/s`.
            Ok(n) if n > 0 => format!(
                "{s:?} is not a rate: a count needs its period; write \"{n}/s\" (or \"{n}/m\", \"{n}/h\")"
            ),
            _ => format!("{s:?} is not a rate; {fix}"),
        })?;
        let n = n.trim().trim_end_matches('r');
        let count: u32 = n
            .parse()
            .ok()
            .filter(|c| *c > 0)
            .ok_or_else(|| format!("{n:?} is not a whole number above 0; {fix}"))?;
        let per = match per.trim() {
            "s" | "sec" | "second" => Duration::from_secs(1),
            "m" | "min" | "minute" => Duration::from_secs(60),
            "h" | "hour" => Duration::from_secs(3600),
            other => return Err(format!("unknown period {other:?}; {fix}")),
        };
        Ok(Rate { count, per })
    }

    /// The time one request uses up, in µs (at least 1).
    pub fn interval_us(&self) -> u64 {
        (self.per.as_micros() as u64 / u64::from(self.count)).max(1)
    }
}

impl std::fmt::Display for Rate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let unit = match self.per.as_secs() {
            60 => "m",
            3600 => "h",
            _ => "s",
        };
        write!(f, "{}/{unit}", self.count)
    }
}

/// What a rate limit counts requests by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LimitKey {
    /// The client's address (after PROXY protocol, or `X-Forwarded-For` from a trusted
    /// proxy).
    ClientIp,
    /// The first value of a header; a request without it is not counted (nginx: an empty
    /// key is not limited).
    Header(HeaderName),
    /// A cookie's value; a request without it is not counted.
    Cookie(String),
}

/// A `[[listener.limit]]` or `[[listener.route.limit]]`: at most `rate`, with `burst`
/// requests above it at once (nginx's `limit_req … burst=N nodelay`), per key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LimitPlan {
    pub key: LimitKey,
    pub rate: Rate,
    pub burst: u32,
    /// Keys tracked at once (fixed memory: 24 bytes a key); beyond it, the key nearest its
    /// full allowance is forgotten.
    pub size: usize,
    /// `shared = true`: counted across balancers through `[redis]` (`src/cluster/rate.rs`;
    /// `proxy/http/protect.rs`'s `limiter` builds the shared table). Needs `[redis]`.
    pub shared: bool,
}

impl LimitPlan {
    /// nginx's `limit_req_zone … :10m` holds about 160,000 states; this default holds 65,536
    /// keys in 1.5 MiB.
    pub const DEFAULT_SIZE: usize = 65_536;
}

/// A `[[listener.block]]` or `[[listener.route.block]]`: a request matching every condition
/// given is refused with `status`, 403 unless set (HAProxy's `http-request deny deny_status
/// N if …`, nginx's `location … { return N; }`). The regexes are checked when the file is
/// read and kept as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockPlan {
    /// Any of these methods (upper case); empty: any method.
    pub methods: Vec<String>,
    /// A regex over the path (without the query), as sent and normalised.
    pub path_regex: Option<String>,
    /// A header (lower-case name) any of whose values matches the regex.
    pub header: Option<(String, String)>,
    /// The status of the refusal: 403 by default, any of 400 to 599 (checked when read).
    pub status: u16,
}

impl BlockPlan {
    /// HAProxy's and nginx's status of a refusal.
    pub const DEFAULT_STATUS: u16 = 403;
}

impl Default for BlockPlan {
    fn default() -> BlockPlan {
        BlockPlan {
            methods: Vec::new(),
            path_regex: None,
            header: None,
            status: BlockPlan::DEFAULT_STATUS,
        }
    }
}

/// What protects one listener or one route. Empty by default: nothing checked, nothing
/// paid per request.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct GuardPlan {
    /// `allow`: when not empty, only these blocks may come in (the most specific rule of
    /// `allow` and `deny` that contains the client decides).
    pub allow: Vec<Cidr>,
    pub deny: Vec<Cidr>,
    pub limits: Vec<LimitPlan>,
    pub blocks: Vec<BlockPlan>,
}

impl GuardPlan {
    pub fn is_empty(&self) -> bool {
        self.allow.is_empty()
            && self.deny.is_empty()
            && self.limits.is_empty()
            && self.blocks.is_empty()
    }
}

/// The forwarding headers a listener writes (`forward_headers`), as bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ForwardHeaders(pub u8);

impl ForwardHeaders {
    pub const X_FORWARDED_FOR: u8 = 1;
    pub const X_REAL_IP: u8 = 2;
    pub const X_FORWARDED_PROTO: u8 = 4;
    pub const X_FORWARDED_HOST: u8 = 8;
    pub const X_FORWARDED_PORT: u8 = 16;
    pub const FORWARDED: u8 = 32;

    /// Every header `forward_headers` may name, with its bit.
    pub const NAMES: [(&'static str, u8); 6] = [
        ("x-forwarded-for", Self::X_FORWARDED_FOR),
        ("x-real-ip", Self::X_REAL_IP),
        ("x-forwarded-proto", Self::X_FORWARDED_PROTO),
        ("x-forwarded-host", Self::X_FORWARDED_HOST),
        ("x-forwarded-port", Self::X_FORWARDED_PORT),
        ("forwarded", Self::FORWARDED),
    ];

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

impl Default for ForwardHeaders {
    /// nginx's usual `proxy_set_header` trio.
    fn default() -> Self {
        ForwardHeaders(Self::X_FORWARDED_FOR | Self::X_REAL_IP | Self::X_FORWARDED_PROTO)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_parse_as_nginx_and_haproxy_write_them() {
        assert_eq!(Rate::parse("100/s").unwrap().interval_us(), 10_000);
        assert_eq!(Rate::parse("100r/s").unwrap().count, 100);
        assert_eq!(Rate::parse("60/m").unwrap().interval_us(), 1_000_000);
        assert_eq!(Rate::parse("2/h").unwrap().to_string(), "2/h");
        for bad in ["100", "0/s", "x/s", "10/d", "-1/s"] {
            let e = Rate::parse(bad).unwrap_err();
            assert!(e.contains("\"100/s\""), "{bad}: {e}");
        }
    }
}

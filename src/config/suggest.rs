//! Did-you-mean: what an unknown key or algorithm probably means. A near miss (`lisen`,
//! `least_connections`), or the Switchyard spelling of what an nginx, HAProxy or Envoy user
//! writes (`address`, `balance`, `proxy_read_timeout`; `leastconn`, `roundrobin`, `source`,
//! `hash $request_uri consistent`). These are suggested, never accepted silently: the file
//! says one thing, in one spelling.

/// For the unknown key `written` of a table whose keys are `allowed` (in the order the
/// error lists them): the key it probably means, and the help line.
pub(crate) fn key(written: &str, allowed: &[&str]) -> (Option<String>, String) {
    if let Some(found) = other_spelling(written, allowed) {
        return found;
    }
    match nearest(written, allowed) {
        Some(near) => (Some(near.into()), format!("did you mean `{near}`?")),
        None => (
            None,
            "remove the key or fix its spelling (the keys allowed here are listed above)".into(),
        ),
    }
}

/// nginx's and HAProxy's names for keys that are spelt otherwise here, when the key they
/// mean is allowed where they were written.
fn other_spelling(written: &str, allowed: &[&str]) -> Option<(Option<String>, String)> {
    let meant = match written {
        "address" | "server" | "host" if allowed.contains(&"addr") => "addr",
        "balance" | "lb_method" | "lb_policy" if allowed.contains(&"algorithm") => "algorithm",
        "proxy_timeout" | "timeout_client" | "timeout" if allowed.contains(&"idle_timeout") => {
            "idle_timeout"
        }
        "maxconn" if allowed.contains(&"max_connections") => "max_connections",
        // HAProxy's `bind :80`; its `frontend`/`listen` sections and nginx's `server {}`
        // blocks are [[listener]]s; nginx's `upstream {}` and HAProxy's `backend` are pools
        // (`default_backend`/`use_backend` a listener's or route's `pool`).
        "bind" if allowed.contains(&"listen") => "listen",
        "frontend" | "listen" | "server" if allowed.contains(&"listener") => {
            return Some((
                Some("listener".into()),
                "did you mean `listener`? nginx's server {} block and HAProxy's frontend are [[listener]] here, with listen = \"host:port\"".into(),
            ));
        }
        "upstream" | "upstreams" | "backend" | "backends" if allowed.contains(&"listener") => {
            return Some((
                Some("pool".into()),
                "did you mean `pool`? nginx's upstream {} and HAProxy's backend are [pool.NAME] here, with servers = [ { addr = \"host:port\" } ]".into(),
            ));
        }
        "backend" | "default_backend" | "use_backend" | "upstream" if allowed.contains(&"pool") => {
            "pool"
        }
        "proxy_connect_timeout" | "proxy_read_timeout" | "proxy_send_timeout"
            if allowed.contains(&"timeouts") =>
        {
            let which = written
                .trim_start_matches("proxy_")
                .trim_end_matches("_timeout");
            return Some((
                Some("timeouts".into()),
                format!(
                    "did you mean `timeouts`? nginx's {written} is timeouts = {{ {which} = \"60s\" }} here"
                ),
            ));
        }
        "timeouts" | "proxy_connect_timeout" | "proxy_read_timeout" | "proxy_send_timeout" => {
            return Some((None, "timeouts are set per pool: timeouts = { connect = \"5s\", read = \"60s\", send = \"60s\" } in [pool.NAME] (a slow route gets a pool of its own)".into()));
        }
        _ => return None,
    };
    Some((Some(meant.into()), format!("did you mean `{meant}`?")))
}

/// The word of `words` closest to `typo`, when it is close: at most two edits, and fewer than
/// half the letters. The first of equally close ones.
pub(crate) fn nearest<'w>(typo: &str, words: &[&'w str]) -> Option<&'w str> {
    words
        .iter()
        .map(|w| (edit_distance(typo, w), *w))
        .filter(|(d, _)| *d <= 2 && *d * 2 < typo.len())
        .min_by_key(|(d, _)| *d)
        .map(|(_, w)| w)
}

/// The name of `names` that `typo` probably misspells (`ap` for `app`): as [`nearest`], but
/// measured against the longer of the two, so a short name missing a letter is found.
pub(crate) fn nearest_name<'w>(typo: &str, names: &[&'w str]) -> Option<&'w str> {
    names
        .iter()
        .map(|w| (edit_distance(typo, w), *w))
        .filter(|(d, w)| *d <= 2 && *d * 2 < typo.len().max(w.len()))
        .min_by_key(|(d, _)| *d)
        .map(|(_, w)| w)
}

/// Edits between `a` and `b`, a swap of two neighbouring letters counted as one
/// (optimal string alignment, as `git`'s and rustc's suggestions): `wbe` is one edit from
/// `web`, as `we` is.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // Three rows: the one before the last (for a swap), the last, and this one.
    let mut before: Vec<usize> = vec![0; b.len() + 1];
    let mut last: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut row = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            row[j] = (last[j - 1] + cost).min(last[j] + 1).min(row[j - 1] + 1);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                row[j] = row[j].min(before[j - 2] + 1);
            }
        }
        before = std::mem::replace(&mut last, row);
    }
    last[b.len()]
}

/// The help line for `algorithm = "<written>"`, which is none of `names`.
pub(crate) fn algorithm(written: &str, names: &[&str]) -> String {
    algorithm_near(written, names).unwrap_or_else(|| format!("use one of: {}", names.join(", ")))
}

fn algorithm_near(written: &str, names: &[&str]) -> Option<String> {
    let lower = written.trim().to_ascii_lowercase();
    if lower != written.trim() && names.contains(&lower.as_str()) {
        return Some(format!("names are lowercase: write algorithm = {lower:?}"));
    }
    let words: Vec<&str> = lower.split_whitespace().collect();
    // Keywords are matched in lowercase; names (cookies, query parameters) keep their case,
    // since the lookups are exact.
    let original: Vec<&str> = written.split_whitespace().collect();
    // nginx: `hash $request_uri consistent;`, `random two least_conn;`, `least_time header;`.
    match words.as_slice() {
        ["hash", key, rest @ ..] => {
            let hash_key = nginx_variable(key, original[1])?;
            let note = if rest.contains(&"consistent") {
                ""
            } else {
                " (Switchyard's hash is always consistent, as nginx's with `consistent`)"
            };
            return Some(format!(
                "that is nginx's hash directive: write algorithm = \"hash\" and hash_key = {hash_key:?}{note}"
            ));
        }
        ["random", "two", ..] => {
            return Some(
                "nginx's `random two` is power of two choices: write algorithm = \"p2c\"".into(),
            );
        }
        ["least_time", ..] => return Some("write algorithm = \"least_time\"".into()),
        ["url_param", _, ..] => {
            return Some(hash_on(&format!("query:{}", original[1]), "url_param"));
        }
        _ => {}
    }
    // HAProxy `balance hdr(Name)`.
    if lower.starts_with("hdr(") && lower.ends_with(')') {
        // ASCII lowercasing keeps byte offsets, so the original's name sits at the same place.
        let trimmed = written.trim();
        let h = &trimmed[4..trimmed.len() - 1];
        return Some(hash_on(
            &format!("header:{}", h.to_ascii_lowercase()),
            "hdr()",
        ));
    }
    let squashed: String = lower
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let (name, whose) = match squashed.as_str() {
        "leastconn" => ("least_conn", "HAProxy's leastconn"),
        "leastconnection" | "leastconnections" | "leastconns" | "leastactive" => ("least_conn", ""),
        "roundrobin" => ("round_robin", "HAProxy's roundrobin"),
        "staticrr" => (
            "round_robin",
            "HAProxy's static-rr; Switchyard's round_robin is smooth weighted round robin",
        ),
        "rr" | "wrr" => ("round_robin", ""),
        "source" => (
            "ip_hash",
            "HAProxy's source; or algorithm = \"hash\" (hash_key = \"client_ip\" is the default) to hash the whole address on a consistent ring",
        ),
        "iphash" | "sourceip" | "srcip" | "clientip" => ("ip_hash", ""),
        "uri" => return Some(hash_on("uri", "uri")),
        "leastrequest" => (
            "p2c",
            "Envoy's LEAST_REQUEST picks the less loaded of two random servers, as p2c does; or \"least_conn\" to compare all",
        ),
        "ringhash" | "consistenthash" | "consistent" | "ketama" | "chash" => ("hash", ""),
        "poweroftwo" | "poweroftwochoices" | "randomtwo" => ("p2c", ""),
        "leastresponsetime" | "fastestresponse" | "leastlatency" => ("least_time", ""),
        "first" => {
            return Some(
                "HAProxy's `balance first` (fill one server up to its maxconn before the next) is not supported: Switchyard has no per-server connection limit to fill up to. Use backup = true on the servers to keep idle until the others are down, or least_conn to spread the load".into(),
            );
        }
        _ => (nearest(&lower, names)?, ""),
    };
    Some(if whose.is_empty() {
        format!("did you mean {name:?}?")
    } else {
        format!("did you mean {name:?}? ({whose})")
    })
}

fn hash_on(key: &str, haproxy: &str) -> String {
    format!(
        "HAProxy's `balance {haproxy}` is a hash: write algorithm = \"hash\" and hash_key = {key:?}"
    )
}

/// The `hash_key` for an nginx variable, `lower` in lowercase and `original` as written.
fn nginx_variable(lower: &str, original: &str) -> Option<String> {
    let v = lower.strip_prefix('$')?;
    // The name after a `cookie_`/`arg_` prefix, in its written case.
    let name = |prefix: &str| &original[1 + prefix.len()..];
    Some(match v {
        "request_uri" | "uri" => "uri".into(),
        "remote_addr" | "binary_remote_addr" => "client_ip".into(),
        _ => {
            if v.starts_with("cookie_") {
                format!("cookie:{}", name("cookie_"))
            } else if v.starts_with("arg_") {
                format!("query:{}", name("arg_"))
            } else if let Some(h) = v.strip_prefix("http_") {
                format!("header:{}", h.replace('_', "-"))
            } else {
                return None;
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_swap_of_two_letters_is_one_edit() {
        assert_eq!(edit_distance("wbe", "web"), 1);
        assert_eq!(edit_distance("lsiten", "listen"), 1);
        assert_eq!(edit_distance("we", "web"), 1);
        assert_eq!(edit_distance("", "web"), 3);
        assert_eq!(edit_distance("web", "web"), 0);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        // Optimal string alignment: no letter is edited twice.
        assert_eq!(edit_distance("ca", "abc"), 3);
        assert_eq!(nearest_name("wbe", &["web", "api"]), Some("web"));
        assert_eq!(nearest("agorithm", &["algorithm"]), Some("algorithm"));
        assert_eq!(nearest("algroithm", &["algorithm"]), Some("algorithm"));
    }
}

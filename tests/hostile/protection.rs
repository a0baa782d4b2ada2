//! The hostile-input rows of issue 15 (protection): Host rules, upgrades, codings, CONNECT,
//! forwarding headers, access lists, block rules on the normalised path, rate limits. Run by
//! `tests/hostile.rs` after the rows of `cases.rs`, on both HTTP/1 engines, and listed in
//! `docs/security.md` with them.

use crate::cases::{Case, case, refused, replying, with};

fn no_upgrade(raw: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(raw).to_ascii_lowercase();
    if text.contains("upgrade") || text.contains("http2-settings") {
        return Err("an h2c upgrade offer reached the server".into());
    }
    Ok(())
}

fn lower(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw).to_ascii_lowercase()
}

fn host_a(raw: &[u8]) -> Result<(), String> {
    match lower(raw).contains("\r\nhost: a\r\n") {
        true => Ok(()),
        false => Err("Host did not reach the server".into()),
    }
}

fn host_b_once(raw: &[u8]) -> Result<(), String> {
    let text = lower(raw);
    match (
        text.matches("\r\nhost:").count(),
        text.contains("\r\nhost: b\r\n"),
    ) {
        (1, true) => Ok(()),
        _ => Err(format!("the server did not get one Host: b: {text:?}")),
    }
}

fn slash_query(raw: &[u8]) -> Result<(), String> {
    match raw.starts_with(b"GET /?q=1 HTTP/1.1\r\n") {
        true => Ok(()),
        false => Err(format!("the server did not get /?q=1: {:?}", lower(raw))),
    }
}

fn slash_only(raw: &[u8]) -> Result<(), String> {
    match raw.starts_with(b"GET / HTTP/1.1\r\n") {
        true => Ok(()),
        false => Err(format!("the server did not get /: {:?}", lower(raw))),
    }
}

fn websocket_offer(raw: &[u8]) -> Result<(), String> {
    match lower(raw).contains("\r\nupgrade: websocket\r\n") {
        true => Ok(()),
        false => Err("the WebSocket offer did not reach the server".into()),
    }
}

fn no_spoof(raw: &[u8]) -> Result<(), String> {
    // X-Forwarded-For is appended to, as nginx and HAProxy do: only its last entry is ours.
    let text = lower(raw).replace(
        "\r\nx-forwarded-for: 6.6.6.6, 127.0.0.1\r\n",
        "\r\nx-forwarded-for: 127.0.0.1\r\n",
    );
    for bad in [
        "6.6.6.6",
        "evil",
        "true-client-ip",
        "x_real_ip",
        "forwarded:",
        "https",
        "x-forwarded-port",
    ] {
        if text.contains(bad) {
            return Err(format!("{bad:?} reached the server: {text:?}"));
        }
    }
    if !text.contains("\r\nx-forwarded-for: 127.0.0.1\r\n")
        || !text.contains("\r\nx-real-ip: 127.0.0.1\r\n")
    {
        return Err(format!("the server was not told the client: {text:?}"));
    }
    Ok(())
}

fn rfc7239(raw: &[u8]) -> Result<(), String> {
    let text = lower(raw);
    let want = [
        "\r\nforwarded: for=127.0.0.1;proto=http;host=a\r\n",
        "\r\nx-forwarded-host: a\r\n",
        "\r\nx-forwarded-port: ",
    ];
    if let Some(missing) = want.iter().find(|w| !text.contains(*w)) {
        return Err(format!("no {missing:?} in {text:?}"));
    }
    if text.contains("6.6.6.6") || text.contains("x-forwarded-for") || text.contains("x-real-ip") {
        return Err(format!("a header forward_headers did not choose: {text:?}"));
    }
    Ok(())
}

fn trusted_chain(raw: &[u8]) -> Result<(), String> {
    let text = lower(raw);
    let want = [
        "\r\nx-forwarded-for: 203.0.113.9, 127.0.0.1\r\n",
        "\r\nx-real-ip: 203.0.113.9\r\n",
    ];
    if let Some(missing) = want.iter().find(|w| !text.contains(*w)) {
        return Err(format!("no {missing:?} in {text:?}"));
    }
    Ok(())
}

fn retry_after(raw: &[u8]) -> Result<(), String> {
    let text = lower(raw);
    let at = text.find("http/1.1 429").ok_or("no 429")?;
    let head = &text[at..text[at..].find("\r\n\r\n").map_or(text.len(), |e| at + e)];
    match head
        .split("\r\n")
        .find_map(|l| l.strip_prefix("retry-after: "))
    {
        Some(secs) if secs.parse::<u64>().is_ok_and(|s| (1..=60).contains(&s)) => Ok(()),
        other => Err(format!("429 without a Retry-After of 1..=60 s: {other:?}")),
    }
}

pub static PROTECTION: &[Case] = &[
    // ---- issue 15: Host (15.3)
    refused(
        "two Host lines",
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        400,
    ),
    refused("HTTP/1.1 without Host", b"GET / HTTP/1.1\r\n\r\n", 400),
    refused(
        "an empty Host",
        b"GET / HTTP/1.1\r\nHost: \r\n\r\n",
        400,
    ),
    refused(
        "a Host with a slash",
        b"GET / HTTP/1.1\r\nHost: a/b\r\n\r\n",
        400,
    ),
    refused(
        "a Host with user info",
        b"GET / HTTP/1.1\r\nHost: user@a\r\n\r\n",
        400,
    ),
    refused(
        "a Host whose port is over 65535",
        b"GET / HTTP/1.1\r\nHost: a:99999\r\n\r\n",
        400,
    ),
    refused(
        "an absolute-form target whose port is over 65535",
        b"GET http://a:70000/ HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
    ),
    refused(
        "the asterisk-form target with a method other than OPTIONS",
        b"GET * HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
    ),
    refused(
        "a target without a leading slash",
        b"GET admin HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
    ),
    with(
        "[[listener.route]]\npath_prefix = \"/admin\"\npool = \"p\"\ndeny = [\"127.0.0.0/8\"]",
        refused(
            "a relative target climbing to a denied route",
            b"GET x/../admin HTTP/1.1\r\nHost: a\r\n\r\n",
            400,
        ),
    ),
    refused(
        "a target that is only a query",
        b"GET ?q=1 HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
    ),
    refused(
        "an absolute-form target with one slash",
        b"GET http:/a/x HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
    ),
    Case {
        server_check: Some(slash_query),
        ..case(
            "an absolute-form target with a query and no path goes on as /?query",
            b"GET http://a?q=1 HTTP/1.1\r\nHost: a\r\n\r\n",
            &[200],
        )
    },
    Case {
        server_check: Some(slash_only),
        ..case(
            "an absolute-form target with no path goes on as /",
            b"GET http://a HTTP/1.1\r\nHost: a\r\n\r\n",
            &[200],
        )
    },
    case(
        "OPTIONS * is forwarded",
        b"OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n",
        &[200],
    ),
    Case {
        server_check: Some(host_a),
        ..case(
            "Connection: Host does not take Host away",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Host\r\n\r\n",
            &[200],
        )
    },
    Case {
        server_check: Some(host_b_once),
        ..case(
            "an absolute-form target's host replaces Host",
            b"GET http://b/abs?q=1 HTTP/1.1\r\nHost: a\r\n\r\n",
            &[200],
        )
    },
    // ---- issue 15: upgrades (15.2)
    Case {
        server_check: Some(no_upgrade),
        ..case(
            "an h2c upgrade offer is not forwarded",
            b"GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n",
            &[200],
        )
    },
    Case {
        server_check: Some(websocket_offer),
        ..case(
            "a WebSocket upgrade offer is forwarded",
            b"GET /ws HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
            &[200],
        )
    },
    // ---- issue 15: framing (15.6, 15.9)
    refused(
        "a request with Transfer-Encoding: gzip, chunked is a 501",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        501,
    ),
    replying(
        case(
            "a server answer with Transfer-Encoding: gzip, chunked is a 502",
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            &[502],
        ),
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    ),
    refused(
        "CONNECT is not proxied",
        b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n",
        405,
    ),
    // ---- issue 15: forwarding headers (15.8)
    Case {
        server_check: Some(no_spoof),
        ..case(
            "a client's forwarding headers do not reach the server (X-Forwarded-For is appended to)",
            b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nX_Real_IP: 6.6.6.6\r\nTrue-Client-IP: 6.6.6.6\r\nForwarded: for=6.6.6.6\r\nX-Forwarded-Host: evil\r\nX-Forwarded-Port: 1\r\nX-Forwarded-Proto: https\r\n\r\n",
            &[200],
        )
    },
    with(
        "forward_headers = [\"forwarded\", \"x-forwarded-host\", \"x-forwarded-port\"]",
        Case {
            server_check: Some(rfc7239),
            ..case(
                "forward_headers chooses Forwarded (RFC 7239)",
                b"GET / HTTP/1.1\r\nHost: a\r\nForwarded: for=6.6.6.6\r\n\r\n",
                &[200],
            )
        },
    ),
    with(
        "trusted_proxies = [\"127.0.0.1\"]",
        Case {
            server_check: Some(trusted_chain),
            ..case(
                "a trusted proxy's X-Forwarded-For names the client",
                b"GET / HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n",
                &[200],
            )
        },
    ),
    // ---- issue 15: access lists, block rules, rate limits
    with(
        "[[listener.route]]\npath_prefix = \"/private\"\npool = \"p\"\ndeny = [\"127.0.0.0/8\"]",
        Case {
            server_requests: Some(0),
            ..case(
                "a route's deny list: 403",
                b"GET /private/x HTTP/1.1\r\nHost: a\r\n\r\n",
                &[403],
            )
        },
    ),
    with(
        "[[listener.route]]\npath_prefix = \"/internal\"\npool = \"p\"\nallow = [\"10.0.0.0/8\"]",
        Case {
            server_requests: Some(0),
            ..case(
                "a route's allow list without the client: 403",
                b"GET /internal HTTP/1.1\r\nHost: a\r\n\r\n",
                &[403],
            )
        },
    ),
    with(
        "[[listener.route]]\npath_prefix = \"/x\"\npool = \"p\"\ndeny = [\"127.0.0.0/8\"]",
        Case {
            server_requests: Some(0),
            ..case(
                "an untrusted X-Forwarded-For does not get past deny",
                b"GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 8.8.8.8\r\n\r\n",
                &[403],
            )
        },
    ),
    with(
        "trusted_proxies = [\"127.0.0.1\"]\n[[listener.route]]\npath_prefix = \"/x\"\npool = \"p\"\ndeny = [\"203.0.113.0/24\"]",
        Case {
            server_requests: Some(0),
            ..case(
                "deny sees the client a trusted proxy names",
                b"GET /x HTTP/1.1\r\nHost: a\r\nX-Forwarded-For: 203.0.113.9\r\n\r\n",
                &[403],
            )
        },
    ),
    with(
        "[[listener.block]]\npath_regex = '^/admin'",
        Case {
            server_requests: Some(0),
            ..case(
                "a block rule sees the normalised path (%2F, //, %61)",
                b"GET /public/..%2Fadmin/ HTTP/1.1\r\nHost: a\r\n\r\nGET //admin HTTP/1.1\r\nHost: a\r\n\r\nGET /%61dmin HTTP/1.1\r\nHost: a\r\n\r\n",
                &[403, 403, 403],
            )
        },
    ),
    with(
        "[[listener.route]]\npath_prefix = \"/admin\"\npool = \"p\"\ndeny = [\"127.0.0.0/8\"]",
        Case {
            server_requests: Some(0),
            ..case(
                "a route matches the normalised path",
                b"GET /x/../admin/ HTTP/1.1\r\nHost: a\r\n\r\n",
                &[403],
            )
        },
    ),
    refused(
        "a path that climbs above the root",
        b"GET /a/../../x HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
    ),
    refused(
        "a path with %00",
        b"GET /a%00b HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
    ),
    with(
        "[[listener.route]]\npath_prefix = \"/\"\npool = \"p\"\n[[listener.route.block]]\nmethod = [\"TRACE\", \"TRACK\"]\n[[listener.route.block]]\nheader = { name = \"user-agent\", regex = '(?i)sqlmap' }",
        Case {
            server_requests: Some(1),
            ..case(
                "block rules by method and header: 403",
                b"TRACE / HTTP/1.1\r\nHost: a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nUser-Agent: sqlmap/1.7\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nUser-Agent: curl/8\r\n\r\n",
                &[403, 403, 200],
            )
        },
    ),
    with(
        "[[listener.limit]]\nkey = \"header:x-user\"\nrate = \"1/m\"\nburst = 1",
        Case {
            server_requests: Some(3),
            client_check: Some(retry_after),
            ..case(
                "a rate limit by header: 429 with Retry-After past the burst",
                b"GET / HTTP/1.1\r\nHost: a\r\nX-User: u\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nX-User: u\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nX-User: u\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nX-User: v\r\n\r\n",
                &[200, 200, 429, 200],
            )
        },
    ),
    with(
        "[[listener.route]]\npath_prefix = \"/\"\npool = \"p\"\n[[listener.route.limit]]\nkey = \"cookie:session\"\nrate = \"1/m\"",
        Case {
            server_requests: Some(2),
            client_check: Some(retry_after),
            ..case(
                "a route's rate limit by cookie",
                b"GET / HTTP/1.1\r\nHost: a\r\nCookie: session=a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nCookie: x=1; session=a\r\n\r\nGET / HTTP/1.1\r\nHost: a\r\nCookie: session=b\r\n\r\n",
                &[200, 429, 200],
            )
        },
    ),
    with(
        "[[listener.route]]\npath_prefix = \"/login\"\npool = \"p\"\n[[listener.route.limit]]\nkey = \"client_ip\"\nrate = \"1/m\"",
        Case {
            server_requests: Some(1),
            client_check: Some(retry_after),
            ..case(
                "a route's rate limit by client address",
                b"POST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\nPOST /login HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n",
                &[200, 429],
            )
        },
    ),
];

//! The hostile-input table: raw bytes a client sends to an HTTP listener, what it must get
//! back, whether the connection must close, and what the server behind may receive.
//!
//! One row per case. `tests/hostile.rs` runs every row against each HTTP/1 engine of the
//! listener (hyper's and the direct path), with a recording server that keeps the exact
//! bytes it receives and checks that every request in them has one meaning (RFC 9112 §6:
//! one framing, no obs-fold, no bare CR, nothing after the last complete message but a
//! message cut short). The protection issue (15) extends this table: a row whose behaviour
//! is known to be wrong today on hyper's engine names its item in `open` and is reported
//! there, not failed (the direct path must pass it).

/// What the connection does after the expected answers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum After {
    /// The load balancer closes it (EOF or reset).
    Closed,
    /// It stays usable: a probe request on it is answered.
    Open,
}

/// How the recording server answers each complete request.
#[derive(Clone, Copy, Debug)]
pub struct Reply {
    /// The raw response; `None`: a 200 with `ok` (no body for HEAD).
    pub bytes: Option<&'static [u8]>,
    /// Close the connection after answering (without saying so in the response).
    pub close_after: bool,
}

pub const PLAIN: Reply = Reply {
    bytes: None,
    close_after: false,
};

/// A check over the raw bytes one side saw; `Err` says what is wrong.
pub type Check = fn(&[u8]) -> Result<(), String>;

pub struct Case {
    pub name: &'static str,
    /// Sent at once, as one write.
    pub send: &'static [u8],
    /// Sent after an interim `100 Continue` arrives (`Expect: 100-continue`).
    pub after_continue: Option<&'static [u8]>,
    /// The final statuses the client must get, in order.
    pub answers: &'static [u16],
    /// The requests were `HEAD` (their answers carry no body).
    pub head: bool,
    pub then: After,
    /// Complete requests the server must receive (`None`: any number, still unambiguous).
    pub server_requests: Option<usize>,
    pub reply: Reply,
    /// More to check on the bytes the client received.
    pub client_check: Option<Check>,
    /// More to check on the bytes the server received.
    pub server_check: Option<Check>,
    /// Known to be wrong today on hyper's engine: the issue item that will fix it (`"15.6"`).
    /// The direct path already does these right, and is held to them.
    pub open: Option<&'static str>,
    /// TOML added to the listener (after its `pool = "p"`: keys, then route, limit and
    /// block tables); empty for a plain listener.
    pub config: &'static str,
}

pub const fn case(name: &'static str, send: &'static [u8], answers: &'static [u16]) -> Case {
    Case {
        name,
        send,
        after_continue: None,
        answers,
        head: false,
        then: After::Open,
        server_requests: Some(answers.len()),
        reply: PLAIN,
        client_check: None,
        server_check: None,
        open: None,
        config: "",
    }
}

/// The row on a listener with `config` added.
pub const fn with(config: &'static str, c: Case) -> Case {
    Case { config, ..c }
}

const fn one(status: u16) -> &'static [u16] {
    match status {
        400 => &[400],
        403 => &[403],
        405 => &[405],
        414 => &[414],
        501 => &[501],
        431 => &[431],
        _ => panic!("add the status here"),
    }
}

/// Refused before anything reaches a server: this status, then a close.
pub const fn refused(name: &'static str, send: &'static [u8], status: u16) -> Case {
    Case {
        then: After::Closed,
        server_requests: Some(0),
        ..case(name, send, one(status))
    }
}

pub const fn closed(c: Case) -> Case {
    Case {
        then: After::Closed,
        ..c
    }
}

pub const fn replying(c: Case, bytes: &'static [u8]) -> Case {
    Case {
        reply: Reply {
            bytes: Some(bytes),
            close_after: false,
        },
        ..c
    }
}

fn no_chunked(raw: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(raw).to_ascii_lowercase();
    if text.contains("transfer-encoding") {
        return Err("chunked was sent to an HTTP/1.0 client".into());
    }
    if !text.ends_with("\r\n\r\nok") {
        return Err("the body is not exactly `ok`".into());
    }
    Ok(())
}

fn one_length(raw: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(raw).to_ascii_lowercase();
    if text.contains("content-length: 100") {
        return Err("the server's Content-Length crossed beside Transfer-Encoding".into());
    }
    if !text.contains("hello") {
        return Err("the body `hello` is missing".into());
    }
    Ok(())
}

fn body_hello(raw: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(raw);
    if !text.contains("hello") {
        return Err("the body `hello` did not reach the server".into());
    }
    Ok(())
}

fn origin_form(raw: &[u8]) -> Result<(), String> {
    if !raw.starts_with(b"GET /abs?q=1 HTTP/1.1\r\n") {
        return Err("the target did not reach the server in origin form".into());
    }
    Ok(())
}

fn body_whole(raw: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(raw);
    if !text.contains("all of it") {
        return Err("the close-delimited body did not reach the client".into());
    }
    Ok(())
}

/// The rows of framing and syntax (the protection rows of issue 15 are in `protection.rs`).
/// Statuses follow RFC 9112 and what nginx and HAProxy answer; framing rows must
/// hold on every engine.
pub static CASES: &[Case] = &[
    // ---- baseline
    case("plain GET", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &[200]),
    Case {
        server_check: Some(origin_form),
        ..case(
            "absolute-form target goes on in origin form",
            b"GET http://a/abs?q=1 HTTP/1.1\r\nHost: a\r\n\r\n",
            &[200],
        )
    },
    Case {
        server_check: Some(body_hello),
        ..case(
            "POST with Content-Length",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhello",
            &[200],
        )
    },
    Case {
        server_check: Some(body_hello),
        ..case(
            "chunked POST with an extension and trailers",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;name=v\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
            &[200],
        )
    },
    Case {
        server_check: Some(body_hello),
        ..case(
            "chunk size in upper case with leading zeros",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0005\r\nhello\r\n0\r\n\r\n",
            &[200],
        )
    },
    case(
        "Content-Length with leading zeros",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 005\r\n\r\nhello",
        &[200],
    ),
    case(
        "bare LF line endings are read as CRLF",
        b"GET / HTTP/1.1\nHost: a\n\n",
        &[200],
    ),
    // ---- RFC 9112 §6: message length
    // hyper and HAProxy read CL + TE as chunked, drop the length and close afterwards.
    Case {
        server_check: Some(body_hello),
        ..closed(case(
            "Content-Length and Transfer-Encoding: chunked wins, then close",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            &[200],
        ))
    },
    Case {
        server_check: Some(body_hello),
        ..closed(case(
            "Transfer-Encoding before Content-Length",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nContent-Length: 30\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
            &[200],
        ))
    },
    refused(
        "two different Content-Length lines",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 7\r\n\r\nhello",
        400,
    ),
    refused(
        "a Content-Length list",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 7\r\n\r\nhello",
        400,
    ),
    refused(
        "signed Content-Length",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello",
        400,
    ),
    refused(
        "negative Content-Length",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n",
        400,
    ),
    refused(
        "hex Content-Length",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello",
        400,
    ),
    refused(
        "empty Content-Length",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n",
        400,
    ),
    refused(
        "Content-Length past u64",
        b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n",
        400,
    ),
    refused(
        "Transfer-Encoding not ending in chunked",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    refused(
        "Transfer-Encoding: xchunked",
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    refused(
        "Transfer-Encoding in an HTTP/1.0 request",
        b"POST / HTTP/1.0\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        400,
    ),
    Case {
        server_requests: Some(0),
        ..closed(case(
            "chunk size that is not hex",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
            &[400],
        ))
    },
    Case {
        server_requests: Some(0),
        ..closed(case(
            "chunk size past u64",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n1ffffffffffffffff\r\nhello\r\n0\r\n\r\n",
            &[400],
        ))
    },
    Case {
        server_requests: Some(0),
        ..closed(case(
            "chunk extension with a bare LF",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;a\nb\r\nhello\r\n0\r\n\r\n",
            &[400],
        ))
    },
    Case {
        server_requests: Some(0),
        ..closed(case(
            "chunk data longer than its size",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhello\r\n0\r\n\r\n",
            &[400],
        ))
    },
    Case {
        server_requests: Some(0),
        ..closed(case(
            "negative chunk size",
            b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n",
            &[400],
        ))
    },
    // ---- RFC 9112 §5: field syntax
    refused(
        "obs-fold continuation line",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: one\r\n two\r\n\r\n",
        400,
    ),
    refused(
        "whitespace before the colon",
        b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\nhello",
        400,
    ),
    refused(
        "a space inside a field name",
        b"GET / HTTP/1.1\r\nHost: a\r\nX A: 1\r\n\r\n",
        400,
    ),
    refused(
        "a line without a colon",
        b"GET / HTTP/1.1\r\nHost: a\r\nBad Header Line\r\n\r\n",
        400,
    ),
    refused(
        "a bare CR in a field value",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: one\rtwo\r\n\r\n",
        400,
    ),
    refused(
        "a NUL in a field value",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-A: one\0two\r\n\r\n",
        400,
    ),
    refused(
        "a control byte in a field name",
        b"GET / HTTP/1.1\r\nHost: a\r\nX-\x01A: 1\r\n\r\n",
        400,
    ),
    refused(
        "whitespace before the first field",
        b"GET / HTTP/1.1\r\n Host: a\r\n\r\n",
        400,
    ),
    refused("garbage request line", b"GARBAGE\r\n\r\n", 400),
    refused(
        "two spaces in the request line",
        b"GET  / HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
    ),
    refused(
        "a NUL in the target",
        b"GET /a\0b HTTP/1.1\r\nHost: a\r\n\r\n",
        400,
    ),
    refused(
        "unknown HTTP version",
        b"GET / HTTP/1.2\r\nHost: a\r\n\r\n",
        400,
    ),
    // ---- limits
    refused("a 100 KB target", LONG_URI, 414),
    refused("a 500 KB header", BIG_HEADER, 431),
    refused("150 header lines", MANY_HEADERS, 431),
    // ---- Expect, HEAD, 204, 304
    Case {
        after_continue: Some(b"hello"),
        server_check: Some(body_hello),
        ..case(
            "Expect: 100-continue gets its 100 before the body",
            b"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nExpect: 100-continue\r\n\r\n",
            &[200],
        )
    },
    Case {
        head: true,
        ..replying(
            case("HEAD: a length but no body", b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", &[200]),
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n",
        )
    },
    Case {
        head: true,
        ..replying(
            case("HEAD: chunked but no body", b"HEAD / HTTP/1.1\r\nHost: a\r\n\r\n", &[200]),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        )
    },
    replying(
        case("204 has no body", b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", &[204]),
        b"HTTP/1.1 204 No Content\r\n\r\n",
    ),
    replying(
        case(
            "304 with a length has no body",
            b"GET / HTTP/1.1\r\nHost: a\r\nIf-None-Match: \"x\"\r\n\r\n",
            &[304],
        ),
        b"HTTP/1.1 304 Not Modified\r\nContent-Length: 100\r\nETag: \"x\"\r\n\r\n",
    ),
    // ---- HTTP/1.0 clients
    Case {
        client_check: Some(no_chunked),
        ..replying(
            closed(case(
                "HTTP/1.0 client gets no chunked answer",
                b"GET / HTTP/1.0\r\nHost: a\r\n\r\n",
                &[200],
            )),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        )
    },
    Case {
        client_check: Some(no_chunked),
        ..replying(
            // No length to give it: the answer ends with the connection.
            closed(case(
                "HTTP/1.0 keep-alive client gets no chunked answer",
                b"GET / HTTP/1.0\r\nHost: a\r\nConnection: keep-alive\r\n\r\n",
                &[200],
            )),
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
        )
    },
    // ---- pipelining
    case(
        "three pipelined requests",
        b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nPOST /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\n\r\nhelloGET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
        &[200, 200, 200],
    ),
    Case {
        server_requests: Some(1),
        ..closed(case(
            "a bad request behind a good one",
            b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            &[200, 400],
        ))
    },
    Case {
        server_requests: Some(1),
        ..closed(case(
            "Connection: close ends the pipeline",
            b"GET /1 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\n",
            &[200],
        ))
    },
    // ---- servers
    Case {
        reply: Reply {
            bytes: None,
            close_after: true,
        },
        server_requests: Some(3),
        ..case(
            "a server that closes each kept-alive connection",
            b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\nGET /2 HTTP/1.1\r\nHost: a\r\n\r\nGET /3 HTTP/1.1\r\nHost: a\r\n\r\n",
            &[200, 200, 200],
        )
    },
    Case {
        client_check: Some(body_whole),
        ..replying(
            case(
                "a close-delimited answer reaches the client whole",
                b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                &[200],
            ),
            b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it",
        )
    },
    replying(
        case(
            "a server answer with two lengths is a 502",
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            &[502],
        ),
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nok",
    ),
    replying(
        case(
            "a garbage server answer is a 502",
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            &[502],
        ),
        b"HELLO THERE\r\n\r\n",
    ),
    Case {
        client_check: Some(one_length),
        ..replying(
            case(
                "a server answer with Content-Length and chunked loses the length",
                b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                &[200],
            ),
            b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        )
    },
    replying(
        case(
            "an interim 103 before the answer is passed over",
            b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
            &[200],
        ),
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    ),
    Case {
        ..replying(
            case(
                "a 101 nobody asked for is a 502",
                b"GET / HTTP/1.1\r\nHost: a\r\n\r\n",
                &[502],
            ),
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n\r\n",
        )
    },
];

static LONG_URI: &[u8] = {
    const N: usize = 100_000;
    const HEAD: &[u8] = b"GET /";
    const TAIL: &[u8] = b" HTTP/1.1\r\nHost: a\r\n\r\n";
    static BYTES: [u8; N] = {
        let mut b = [b'a'; N];
        let mut i = 0;
        while i < HEAD.len() {
            b[i] = HEAD[i];
            i += 1;
        }
        let mut j = 0;
        while j < TAIL.len() {
            b[N - TAIL.len() + j] = TAIL[j];
            j += 1;
        }
        b
    };
    &BYTES
};

static BIG_HEADER: &[u8] = {
    const N: usize = 500_000;
    const HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\nX-Big: ";
    const TAIL: &[u8] = b"\r\n\r\n";
    static BYTES: [u8; N] = {
        let mut b = [b'a'; N];
        let mut i = 0;
        while i < HEAD.len() {
            b[i] = HEAD[i];
            i += 1;
        }
        let mut j = 0;
        while j < TAIL.len() {
            b[N - TAIL.len() + j] = TAIL[j];
            j += 1;
        }
        b
    };
    &BYTES
};

static MANY_HEADERS: &[u8] = {
    const LINE: &[u8] = b"X-Many: 1\r\n";
    const HEAD: &[u8] = b"GET / HTTP/1.1\r\nHost: a\r\n";
    const N: usize = HEAD.len() + 150 * LINE.len() + 2;
    static BYTES: [u8; N] = {
        let mut b = [0u8; N];
        let mut i = 0;
        while i < HEAD.len() {
            b[i] = HEAD[i];
            i += 1;
        }
        let mut k = 0;
        while k < 150 {
            let mut j = 0;
            while j < LINE.len() {
                b[HEAD.len() + k * LINE.len() + j] = LINE[j];
                j += 1;
            }
            k += 1;
        }
        b[N - 2] = b'\r';
        b[N - 1] = b'\n';
        b
    };
    &BYTES
};

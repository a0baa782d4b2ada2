//! The hostile-input gate: every row of `tests/hostile/cases.rs` and `protection.rs`, raw
//! bytes over a plain socket to an HTTP listener, against each HTTP/1 engine, with a
//! recording server behind.
//!
//! For each row: the statuses the client gets, whether the connection closes (EOF) or stays
//! usable (a probe request on it is answered), and that the bytes the server received parse
//! as complete, unambiguous requests (one framing each; a last one may be cut short when the
//! client's body broke off). Rows marked `open` are known to be wrong today on hyper's
//! engine (issue 15): there they are run and reported, and a row that starts passing says
//! so; the direct path must pass them.

#[path = "hostile/cases.rs"]
mod cases;
#[path = "hostile/protection.rs"]
mod protection;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cases::{After, CASES, Case, Reply};
use protection::PROTECTION;

/// Every row: framing and syntax, then protection.
fn rows() -> impl Iterator<Item = &'static Case> {
    CASES.iter().chain(PROTECTION)
}
use switchyard::proxy::http::Http1Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const LIMIT: Duration = Duration::from_secs(5);

/// One message of a byte stream, as a strict reader sees it.
#[derive(Debug)]
enum Parsed {
    /// A whole message of this many bytes; `status` for responses, `method` for requests.
    Complete {
        len: usize,
        status: u16,
        method: String,
        path: String,
    },
    /// Not all there yet.
    Partial,
    /// Bytes with no single meaning.
    Bad(String),
}

/// The framing of a message head: its length rules, strictly (RFC 9112 §6).
fn framing(headers: &[httparse::Header<'_>]) -> Result<Option<Option<u64>>, String> {
    // Some(Some(n)): Content-Length n; Some(None): chunked; None: neither.
    let mut cl: Option<u64> = None;
    let mut te = false;
    for h in headers {
        if h.name.eq_ignore_ascii_case("content-length") {
            if cl.is_some() {
                return Err("more than one Content-Length".into());
            }
            let v = std::str::from_utf8(h.value).map_err(|_| "Content-Length not text")?;
            if v.is_empty() || !v.bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("Content-Length {v:?}"));
            }
            cl = Some(v.parse().map_err(|_| "Content-Length too big")?);
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            if te || !h.value.eq_ignore_ascii_case(b"chunked") {
                return Err("Transfer-Encoding other than one `chunked`".into());
            }
            te = true;
        }
        if h.value.iter().any(|&b| b == b'\r' || b == b'\n' || b == 0) {
            return Err(format!("CR, LF or NUL in {}", h.name));
        }
    }
    match (cl, te) {
        (Some(_), true) => Err("Content-Length and Transfer-Encoding".into()),
        (Some(n), false) => Ok(Some(Some(n))),
        (None, true) => Ok(Some(None)),
        (None, false) => Ok(None),
    }
}

/// The length of a strict chunked body at the start of `b` (sizes in hex then CRLF, with
/// no extensions; trailers allowed), or Partial / Bad.
fn chunked_len(b: &[u8], extensions: bool) -> Result<Option<usize>, String> {
    let mut i = 0;
    loop {
        let Some(eol) = b[i..].windows(2).position(|w| w == b"\r\n") else {
            return Ok(None);
        };
        let line = &b[i..i + eol];
        let size_text = match line.iter().position(|&c| c == b';') {
            Some(p) if extensions => &line[..p],
            Some(_) => return Err("a chunk extension went on".into()),
            None => line,
        };
        if size_text.is_empty()
            || size_text.len() > 16
            || !size_text.iter().all(u8::is_ascii_hexdigit)
            || line.contains(&b'\n')
        {
            return Err(format!(
                "chunk size line {:?}",
                String::from_utf8_lossy(line)
            ));
        }
        let size = usize::from_str_radix(std::str::from_utf8(size_text).unwrap(), 16)
            .map_err(|_| "chunk size")?;
        i += eol + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let Some(eol) = b[i..].windows(2).position(|w| w == b"\r\n") else {
                    return Ok(None);
                };
                let line = &b[i..i + eol];
                i += eol + 2;
                if line.is_empty() {
                    return Ok(Some(i));
                }
                if !line.contains(&b':') || line[0] == b' ' || line[0] == b'\t' {
                    return Err("bad trailer line".into());
                }
            }
        }
        if b.len() < i + size + 2 {
            return Ok(None);
        }
        if &b[i + size..i + size + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF".into());
        }
        i += size + 2;
    }
}

/// The first request in `b`, strictly: what a server behind us must be able to read one way.
fn parse_request(b: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 256];
    let mut req = httparse::Request::new(&mut headers);
    let head = match req.parse(b) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(e) => return Parsed::Bad(format!("request head: {e}")),
    };
    // Bare LF is for clients; what we forward uses CRLF throughout.
    if b[..head].windows(2).any(|w| w[1] == b'\n' && w[0] != b'\r') {
        return Parsed::Bad("bare LF in a forwarded head".into());
    }
    let method = req.method.unwrap_or("").to_string();
    let path = req.path.unwrap_or("").to_string();
    let body = match framing(req.headers) {
        Err(e) => return Parsed::Bad(e),
        Ok(None) => Some(0),
        Ok(Some(Some(n))) => (b.len() - head >= n as usize).then_some(n as usize),
        Ok(Some(None)) => match chunked_len(&b[head..], false) {
            Err(e) => return Parsed::Bad(e),
            Ok(n) => n,
        },
    };
    match body {
        Some(n) => Parsed::Complete {
            len: head + n,
            status: 0,
            method,
            path,
        },
        None => Parsed::Partial,
    }
}

/// The first response in `b` to a request made with `head_request`, leniently (the client
/// side only needs to find where it ends; `close` says the stream has ended).
fn parse_response(b: &[u8], head_request: bool, close: bool) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; 256];
    let mut resp = httparse::Response::new(&mut headers);
    let head = match resp.parse(b) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(e) => return Parsed::Bad(format!("response head: {e}")),
    };
    let status = resp.code.unwrap_or(0);
    let no_body = head_request || status < 200 || status == 204 || status == 304;
    let body = if no_body {
        Some(0)
    } else {
        match framing(resp.headers) {
            Err(e) => return Parsed::Bad(format!("client got {e}")),
            Ok(Some(Some(n))) => (b.len() - head >= n as usize).then_some(n as usize),
            Ok(Some(None)) => match chunked_len(&b[head..], true) {
                Err(e) => return Parsed::Bad(e),
                Ok(n) => n,
            },
            Ok(None) => close.then_some(b.len() - head),
        }
    };
    match body {
        Some(n) => Parsed::Complete {
            len: head + n,
            status,
            method: String::new(),
            path: String::new(),
        },
        None => Parsed::Partial,
    }
}

/// The bytes one connection brought.
type Log = Arc<Mutex<Vec<u8>>>;

/// A server that keeps every byte it receives (per connection) and answers each complete
/// request with the row's reply.
struct Recorder {
    addr: SocketAddr,
    received: Arc<Mutex<Vec<Log>>>,
}

impl Recorder {
    async fn start(reply: Reply) -> Recorder {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = l.local_addr().unwrap();
        let received: Arc<Mutex<Vec<Log>>> = Arc::default();
        let all = received.clone();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = l.accept().await {
                let log: Arc<Mutex<Vec<u8>>> = Arc::default();
                all.lock().unwrap().push(log.clone());
                tokio::spawn(async move {
                    let mut buf = Vec::new();
                    let mut tmp = vec![0u8; 65536];
                    loop {
                        // Answer every complete request in the buffer.
                        while let Parsed::Complete {
                            len, method, path, ..
                        } = parse_request(&buf)
                        {
                            buf.drain(..len);
                            let answer: &[u8] = match (reply.bytes, method.as_str()) {
                                (Some(b), _) if path != "/probe" => b,
                                (_, "HEAD") => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n",
                                _ => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
                            };
                            if s.write_all(answer).await.is_err() || reply.close_after {
                                return;
                            }
                            if answer
                                .windows(17)
                                .any(|w| w.eq_ignore_ascii_case(b"connection: close"))
                            {
                                return;
                            }
                        }
                        if let Parsed::Bad(_) = parse_request(&buf) {
                            return;
                        }
                        let n = match s.read(&mut tmp).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => n,
                        };
                        log.lock().unwrap().extend_from_slice(&tmp[..n]);
                        buf.extend_from_slice(&tmp[..n]);
                    }
                });
            }
        });
        Recorder { addr, received }
    }

    /// Every connection's bytes.
    fn connections(&self) -> Vec<Vec<u8>> {
        self.received
            .lock()
            .unwrap()
            .iter()
            .map(|c| c.lock().unwrap().clone())
            .collect()
    }
}

/// Check what the server received: complete requests that each mean one thing, perhaps a
/// last one cut short. Returns the complete requests other than the probe, and all bytes.
fn server_saw(rec: &Recorder) -> Result<(usize, Vec<u8>), String> {
    let mut count = 0;
    let mut bytes = Vec::new();
    for conn in rec.connections() {
        let mut rest = &conn[..];
        loop {
            match parse_request(rest) {
                Parsed::Complete { len, path, .. } => {
                    if path != "/probe" {
                        count += 1;
                        bytes.extend_from_slice(&rest[..len]);
                    }
                    rest = &rest[len..];
                    if rest.is_empty() {
                        break;
                    }
                }
                // Cut short: the client's body broke off, and the connection with it.
                Parsed::Partial => break,
                Parsed::Bad(e) => {
                    return Err(format!(
                        "the server received bytes with no single meaning ({e}): {:?}",
                        String::from_utf8_lossy(&rest[..rest.len().min(300)])
                    ));
                }
            }
        }
    }
    Ok((count, bytes))
}

async fn read_some(s: &mut TcpStream, buf: &mut Vec<u8>) -> Result<bool, String> {
    let mut tmp = [0u8; 16384];
    match tokio::time::timeout(LIMIT, s.read(&mut tmp)).await {
        Err(_) => Err(format!("no byte for {LIMIT:?}")),
        Ok(Ok(0)) | Ok(Err(_)) => Ok(false),
        Ok(Ok(n)) => {
            buf.extend_from_slice(&tmp[..n]);
            Ok(true)
        }
    }
}

/// Run one row against a listener in front of a fresh recorder; `Err` says what was wrong.
async fn run(case: &Case, engine: Http1Engine) -> Result<(), String> {
    let rec = Recorder::start(case.reply).await;
    let toml = format!(
        "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n{}\n[pool.p]\nservers = [ {{ addr = \"{}\" }} ]\n",
        case.config, rec.addr
    );
    let plan = switchyard::config::load_str(&toml, "hostile.toml").expect("valid config");
    let lb = switchyard::runtime::Runtime::start_with(plan, engine)
        .await
        .expect("start");
    let addr = lb.local_addr("web").unwrap();
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(case.send)
        .await
        .map_err(|e| format!("write: {e}"))?;

    let mut buf = Vec::new();
    let mut got: Vec<u16> = Vec::new();
    let mut client_bytes = Vec::new();
    let mut open = true;
    let mut continued = false;
    while got.len() < case.answers.len() {
        match parse_response(&buf, case.head, !open) {
            Parsed::Complete { len, status, .. } => {
                if (100..200).contains(&status) && status != 101 {
                    if let (Some(rest), false, 100) = (case.after_continue, continued, status) {
                        continued = true;
                        s.write_all(rest).await.map_err(|e| format!("write: {e}"))?;
                    }
                } else {
                    got.push(status);
                    client_bytes.extend_from_slice(&buf[..len]);
                }
                buf.drain(..len);
                continue;
            }
            Parsed::Bad(e) => return Err(format!("answer {}: {e}", got.len() + 1)),
            Parsed::Partial if !open => {
                return Err(format!(
                    "closed after {got:?}, expected {:?}; left {:?}",
                    case.answers,
                    String::from_utf8_lossy(&buf)
                ));
            }
            Parsed::Partial => open = read_some(&mut s, &mut buf).await?,
        }
    }
    if got != case.answers {
        return Err(format!("answers {got:?}, expected {:?}", case.answers));
    }
    match case.then {
        After::Closed => {
            while open {
                open = read_some(&mut s, &mut buf)
                    .await
                    .map_err(|e| format!("not closed: {e}"))?;
            }
            if !buf.is_empty() {
                return Err(format!(
                    "bytes after the last answer: {:?}",
                    String::from_utf8_lossy(&buf)
                ));
            }
        }
        After::Open => {
            if !buf.is_empty() {
                return Err(format!(
                    "bytes after the last answer: {:?}",
                    String::from_utf8_lossy(&buf)
                ));
            }
            if !open {
                return Err("closed, expected open".into());
            }
            s.write_all(b"GET /probe HTTP/1.1\r\nHost: a\r\n\r\n")
                .await
                .map_err(|e| format!("probe write: {e}"))?;
            loop {
                match parse_response(&buf, false, !open) {
                    Parsed::Complete { status: 200, .. } => break,
                    Parsed::Complete { status, .. } => return Err(format!("probe got {status}")),
                    Parsed::Bad(e) => return Err(format!("probe: {e}")),
                    Parsed::Partial if !open => return Err("closed, expected open".into()),
                    Parsed::Partial => open = read_some(&mut s, &mut buf).await?,
                }
            }
        }
    }
    if let Some(check) = case.client_check {
        check(&client_bytes).map_err(|e| format!("client: {e}"))?;
    }
    let (count, server_bytes) = server_saw(&rec)?;
    if let Some(want) = case.server_requests
        && count != want
    {
        return Err(format!(
            "the server got {count} request(s), expected {want}"
        ));
    }
    if let Some(check) = case.server_check {
        check(&server_bytes).map_err(|e| format!("server: {e}"))?;
    }
    Ok(())
}

async fn gate(engine: Http1Engine) {
    let mut failed = Vec::new();
    let mut still_open = Vec::new();
    for case in rows() {
        let result = run(case, engine).await;
        let open = case.open.filter(|_| engine == Http1Engine::Hyper);
        match (result, open) {
            (Ok(()), None) => {}
            (Ok(()), Some(item)) => {
                println!(
                    "{engine:?}: {:?} (open, {item}) now passes: drop its mark",
                    case.name
                );
            }
            (Err(e), Some(item)) => still_open.push(format!("  {} [{item}]: {e}", case.name)),
            (Err(e), None) => failed.push(format!("  {}: {e}", case.name)),
        }
    }
    if !still_open.is_empty() {
        println!(
            "{engine:?}: known open (issue 15):\n{}",
            still_open.join("\n")
        );
    }
    assert!(
        failed.is_empty(),
        "{engine:?}: {} of {} hostile cases failed:\n{}",
        failed.len(),
        rows().count(),
        failed.join("\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_through_hyper() {
    gate(Http1Engine::Hyper).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_inputs_through_the_direct_path() {
    gate(Http1Engine::Direct).await;
}

/// The table of `docs/security.md`: every row above, as the gate runs it on both engines.
fn security_table() -> String {
    let mut t = String::from(
        "| # | the client sends | listener config | answers | then | requests reaching the server |\n|---|---|---|---|---|---|\n",
    );
    for (i, c) in rows().enumerate() {
        let with = match c.config {
            "" => String::new(),
            cfg => cfg
                .lines()
                .map(|l| format!("`{}`", l.replace('|', "\\|")))
                .collect::<Vec<_>>()
                .join(" "),
        };
        let answers: Vec<String> = c.answers.iter().map(u16::to_string).collect();
        let then = match c.then {
            After::Closed => "closed",
            After::Open => "kept open",
        };
        let server = match c.server_requests {
            Some(n) => n.to_string(),
            None => "any".into(),
        };
        t.push_str(&format!(
            "| {} | {} | {with} | {} | {then} | {server} |\n",
            i + 1,
            c.name.replace('|', "\\|"),
            answers.join(", "),
        ));
    }
    t
}

/// `docs/security.md` shows the table this test runs; `SWITCHYARD_BLESS=1` writes it anew.
#[test]
fn the_security_table_in_the_docs_is_this_table() {
    const BEGIN: &str = "<!-- hostile-table:begin (written by tests/hostile.rs) -->\n";
    const END: &str = "<!-- hostile-table:end -->";
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/security.md");
    let doc = std::fs::read_to_string(path).expect("docs/security.md");
    let (Some(b), Some(e)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!("docs/security.md has no {BEGIN:?} … {END:?} markers");
    };
    let want = security_table();
    let have = &doc[b + BEGIN.len()..e];
    if have == want {
        return;
    }
    if std::env::var_os("SWITCHYARD_BLESS").is_some() {
        let next = format!("{}{want}{}", &doc[..b + BEGIN.len()], &doc[e..]);
        std::fs::write(path, next).expect("write docs/security.md");
        return;
    }
    panic!(
        "docs/security.md's table differs from tests/hostile/cases.rs: run `SWITCHYARD_BLESS=1 cargo test --test hostile the_security_table` and commit the file"
    );
}

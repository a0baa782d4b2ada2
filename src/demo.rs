//! The built-in demo, and the small HTTP server it runs as backends.
//!
//! [`Backend`] is a real HTTP/1.1 server on 127.0.0.1 that names itself in every answer
//! (`x-server` header and body). `switchyard demo` starts three of them with different
//! response delays behind one listener; the integration tests use the same server, so what
//! the demo shows is what the tests check. Paths:
//!
//! | path | answer |
//! |---|---|
//! | `/health` | 200 `ok`, or 503 after [`Backend::set_healthy`]`(false)` |
//! | `/headers` | the request head as the server saw it, one `name: value` per line |
//! | `/bytes/N` | N bytes, streamed in 64 KiB chunks |
//! | `/status/N` | status N |
//! | `/sleep/MS` | waits MS milliseconds first |
//! | `/login` | sets the cookie `JSESSIONID=NAME-N` (N counts logins), like a Java app |
//! | any path with a request body | `received N bytes xxh3=HEX` after reading it all |
//! | anything else | `NAME: METHOD PATH` |

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{BodyExt, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;

use crate::config::Algorithm;
use crate::proxy::http::body::{ProxyBody, boxed, full};
use crate::proxy::listen::bind_tcp;
use crate::shutdown::Shutdown;

struct State {
    name: String,
    delay: Duration,
    healthy: AtomicBool,
    connections: AtomicU64,
    requests: AtomicU64,
    logins: AtomicU64,
}

/// A running demo/test backend. Dropping it stops it.
pub struct Backend {
    pub addr: SocketAddr,
    state: Arc<State>,
    stop: Shutdown,
}

impl Backend {
    /// Start on a free port of 127.0.0.1.
    pub async fn start(name: &str, delay: Duration) -> std::io::Result<Backend> {
        Backend::start_on("127.0.0.1:0".parse().expect("literal address"), name, delay).await
    }

    /// Start on a given address (a restarted backend comes back on its old port).
    pub async fn start_on(
        addr: SocketAddr,
        name: &str,
        delay: Duration,
    ) -> std::io::Result<Backend> {
        let listener = bind_tcp(addr)?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            name: name.to_string(),
            delay,
            healthy: AtomicBool::new(true),
            connections: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            logins: AtomicU64::new(0),
        });
        let stop = Shutdown::new();
        let stop_rx = stop.clone();
        let st = state.clone();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    r = listener.accept() => match r { Ok(p) => p, Err(_) => continue },
                    _ = stop_rx.stopped() => return,
                };
                st.connections.fetch_add(1, Ordering::Relaxed);
                let st = st.clone();
                let conn_stop = stop_rx.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| {
                        let st = st.clone();
                        async move { Ok::<_, Infallible>(answer(&st, req).await) }
                    });
                    let builder = auto::Builder::new(TokioExecutor::new());
                    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                    tokio::select! {
                        _ = conn => {}
                        // A stopped backend drops its connections, as a killed process would.
                        _ = conn_stop.stopped() => {}
                    }
                });
            }
        });
        Ok(Backend { addr, state, stop })
    }

    pub fn name(&self) -> &str {
        &self.state.name
    }

    /// TCP connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.state.connections.load(Ordering::Relaxed)
    }

    /// Requests answered so far.
    pub fn requests(&self) -> u64 {
        self.state.requests.load(Ordering::Relaxed)
    }

    /// Make `/health` answer 503 (false) or 200 (true).
    pub fn set_healthy(&self, healthy: bool) {
        self.state.healthy.store(healthy, Ordering::Relaxed);
    }

    /// Stop listening and drop every open connection.
    pub fn stop(&self) {
        self.stop.stop();
    }
}

impl Drop for Backend {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn answer(st: &State, req: Request<Incoming>) -> Response<ProxyBody> {
    st.requests.fetch_add(1, Ordering::Relaxed);
    let path = req.uri().path().to_string();
    let mut delay = st.delay;
    if let Some(ms) = path
        .strip_prefix("/sleep/")
        .and_then(|s| s.parse::<u64>().ok())
    {
        delay += Duration::from_millis(ms);
    }
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    if path == "/login" {
        let n = st.logins.fetch_add(1, Ordering::Relaxed) + 1;
        let mut r = plain(
            st,
            StatusCode::OK,
            full(format!("{}: logged in\n", st.name)),
        );
        if let Ok(v) =
            http::HeaderValue::from_str(&format!("JSESSIONID={}-{n}; Path=/; HttpOnly", st.name))
        {
            r.headers_mut().insert(http::header::SET_COOKIE, v);
        }
        return r;
    }
    let (status, body): (StatusCode, ProxyBody) = if path == "/health" {
        if st.healthy.load(Ordering::Relaxed) {
            (StatusCode::OK, full("ok\n"))
        } else {
            (StatusCode::SERVICE_UNAVAILABLE, full("unhealthy\n"))
        }
    } else if path == "/headers" {
        let mut text = format!("{} {} {:?}\n", req.method(), req.uri(), req.version());
        for (k, v) in req.headers() {
            text.push_str(&format!(
                "{}: {}\n",
                k,
                String::from_utf8_lossy(v.as_bytes())
            ));
        }
        (StatusCode::OK, full(text))
    } else if let Some(n) = path
        .strip_prefix("/bytes/")
        .and_then(|s| s.parse::<u64>().ok())
    {
        (StatusCode::OK, stream_bytes(n))
    } else if let Some(code) = path
        .strip_prefix("/status/")
        .and_then(|s| s.parse::<u16>().ok())
        .and_then(|c| StatusCode::from_u16(c).ok())
    {
        (
            code,
            full(format!("{}: status {}\n", st.name, code.as_u16())),
        )
    } else if req.headers().contains_key(http::header::CONTENT_LENGTH)
        || req.headers().contains_key(http::header::TRANSFER_ENCODING)
    {
        let mut body = req.into_body();
        let mut hasher = xxhash_rust::xxh3::Xxh3::new();
        let mut n = 0u64;
        while let Some(frame) = body.frame().await {
            match frame {
                Ok(f) => {
                    if let Some(d) = f.data_ref() {
                        n += d.len() as u64;
                        hasher.update(d);
                    }
                }
                Err(_) => return plain(st, StatusCode::BAD_REQUEST, full("body broken\n")),
            }
        }
        (
            StatusCode::OK,
            full(format!(
                "received {n} bytes xxh3={:016x}\n",
                hasher.digest()
            )),
        )
    } else {
        (
            StatusCode::OK,
            full(format!("{}: {} {}\n", st.name, req.method(), path)),
        )
    };
    plain(st, status, body)
}

fn plain(st: &State, status: StatusCode, body: ProxyBody) -> Response<ProxyBody> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(&st.name) {
        r.headers_mut().insert("x-server", v);
    }
    r
}

/// The byte at offset `i` of a `/bytes/N` answer, so a client can check what it got.
pub fn pattern_byte(i: u64) -> u8 {
    (i % 251) as u8
}

fn stream_bytes(n: u64) -> ProxyBody {
    const CHUNK: u64 = 64 * 1024;
    // One chunk plus a period of the pattern, built once; every chunk is a zero-copy slice.
    static PATTERN: std::sync::OnceLock<Bytes> = std::sync::OnceLock::new();
    let pattern = PATTERN
        .get_or_init(|| {
            (0..CHUNK + 251)
                .map(pattern_byte)
                .collect::<Vec<u8>>()
                .into()
        })
        .clone();
    let chunks = futures_util::stream::unfold(0u64, move |sent| {
        let pattern = pattern.clone();
        async move {
            if sent >= n {
                return None;
            }
            let len = CHUNK.min(n - sent);
            let start = (sent % 251) as usize;
            let data = pattern.slice(start..start + len as usize);
            Some((Ok::<_, Infallible>(Frame::data(data)), sent + len))
        }
    });
    boxed(StreamBody::new(chunks))
}

/// The demo's configuration, as an operator would write it: one listener over the given
/// backends with `algorithm`, and an admin listener on `admin` (loopback, no token). The
/// demo runs it from a file ([`DemoFile`]), so the API's changes (drain, weight) and
/// `switchyard reload -c FILE` work on the demo as on any Switchyard.
pub fn config(
    listen: SocketAddr,
    backends: &[(String, SocketAddr)],
    algorithm: Algorithm,
    admin: SocketAddr,
) -> String {
    let servers: String = backends
        .iter()
        .map(|(name, addr)| format!("  {{ name = \"{name}\", addr = \"{addr}\" }},\n"))
        .collect();
    format!(
        "# The configuration `switchyard demo` runs (it removes this file when it stops).\n\
         # Edit it, then: switchyard reload -c THIS_FILE\n\
         workers = 2\n\
         grace_period = \"5s\"\n\
         # An operator at a terminal: Ctrl-C stops at once.\n\
         shutdown_delay = \"0s\"\n\
         \n\
         [admin]\n\
         listen = \"{admin}\"\n\
         \n\
         [[listener]]\n\
         name = \"demo\"\n\
         listen = \"{listen}\"\n\
         pool = \"demo\"\n\
         \n\
         [pool.demo]\n\
         algorithm = \"{}\"\n\
         # Short enough that a stopped demo server shows at once.\n\
         timeouts = {{ connect = \"2s\", read = \"10s\", send = \"10s\", client_body = \"10s\" }}\n\
         servers = [\n{servers}]\n",
        algorithm.as_str()
    )
}

/// The demo's configuration file, in a directory of its own under the system's temporary
/// directory; removed when dropped.
pub struct DemoFile {
    dir: std::path::PathBuf,
    pub path: std::path::PathBuf,
}

impl DemoFile {
    pub fn write(text: &str) -> std::io::Result<DemoFile> {
        // A directory of our own, made new (never one another user made first), private.
        let mut builder = std::fs::DirBuilder::new();
        #[cfg(unix)]
        std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
        let base = format!("switchyard-demo-{}", std::process::id());
        let mut n = 0;
        let dir = loop {
            let dir = std::env::temp_dir().join(format!("{base}-{n}"));
            match builder.create(&dir) {
                Ok(()) => break dir,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 100 => n += 1,
                Err(e) => return Err(e),
            }
        };
        let path = dir.join("demo.toml");
        std::fs::write(&path, text)?;
        Ok(DemoFile { dir, path })
    }
}

impl Drop for DemoFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Where `switchyard demo` listens unless told (`--listen`).
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
/// Where its admin listener listens unless told (`--admin`).
pub const DEFAULT_ADMIN: &str = "127.0.0.1:8081";

/// The `--listen`/`--admin` a user gave the demo (those other than the defaults), for the
/// commands it suggests to run it again.
pub fn flags_given(listen: SocketAddr, admin: SocketAddr) -> String {
    let mut out = String::new();
    if listen.to_string() != DEFAULT_LISTEN {
        out += &format!(" --listen {listen}");
    }
    if admin.to_string() != DEFAULT_ADMIN {
        out += &format!(" --admin {admin}");
    }
    out
}

/// What `switchyard demo` prints once it listens: its servers, and what to try, with
/// `me` as the program was started (`cargo run` users have no `switchyard` on their PATH)
/// and `again` the flags it was given ([`flags_given`]).
pub fn welcome(
    addr: SocketAddr,
    algorithm: Algorithm,
    backends: &[(&Backend, u64)],
    admin: Option<SocketAddr>,
    file: Option<&std::path::Path>,
    (me, again): (&str, &str),
) -> String {
    let mut out = format!(
        "switchyard demo: listening on http://{addr}/ ({} over {} servers)\n",
        algorithm.as_str(),
        backends.len()
    );
    for (b, ms) in backends {
        out += &format!(
            "  {:<7} http://{}  answers after {ms} ms\n",
            b.name(),
            b.addr
        );
    }
    out += &format!(
        "\ntry:\n\
         \x20 curl -s http://{addr}/                  # each answer names its server\n\
         \x20 for i in $(seq 6); do curl -s http://{addr}/; done\n\
         \x20 curl -s http://{addr}/headers           # what a server sees (X-Forwarded-For, ...)\n\
         \x20 curl -s http://{addr}/bytes/1000000 | wc -c   # a streamed 1 MB body\n\
         \x20 {me} demo --algorithm least_time{again}  # the slow server gets less\n"
    );
    if let Some(file) = file {
        out += &format!(
            "\nits configuration: {}\n\
             \x20 edit it, then: {me} reload -c {}\n",
            file.display(),
            file.display()
        );
    }
    if let Some(admin) = admin {
        out += &format!(
            "\nwatch and change it (the admin listener):\n\
             \x20 http://{admin}/   the dashboard: each server's share, latency, Drain/Ready buttons\n\
             \x20 curl -s http://{admin}/api/pools/demo   # the servers, as JSON\n\
             \x20 curl -s -X PUT -d '{{\"state\": \"drain\"}}' http://{admin}/api/pools/demo/servers/demo-3\n\
             \x20 curl -s http://{admin}/metrics | grep switchyard_requests_total\n"
        );
    }
    out
}

//! The floor of an HTTP/2 proxy built on hyper, for `MODE=h2 bench/callgrind.sh`: hyper's
//! HTTP/2 server (h2c, prior knowledge) run as a Switchyard worker runs it (tokio's
//! multi-thread scheduler with one worker, Switchyard's `conn_builder` settings, a
//! connection's streams polled in its own task by `streams::Joined`), answering every request itself with the backend's answer (the same
//! four fields and 23-byte body), so no proxying at all: what hyper and h2 cost a request
//! before a proxy does anything. Compared with HAProxy and nginx answering themselves
//! (`http-request return`, `return 200`), it shows how much of Switchyard's HTTP/2 cost is
//! the codec's.
//!
//! ```text
//! h2floor ADDR      # serves until killed
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use switchyard::config::ClientLimits;
use switchyard::proxy::http::conn_builder;
use switchyard::proxy::http::streams::Joined;

/// 23 bytes, as `Content-Length` below says.
const BODY: &[u8] = b"hello from the backend\n";

fn main() {
    let addr: SocketAddr = match std::env::args().nth(1).map(|a| a.parse()) {
        Some(Ok(a)) => a,
        _ => {
            eprintln!("usage: h2floor ADDR");
            std::process::exit(2)
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("a tokio runtime");
    rt.block_on(async move {
        let listener = tokio::net::TcpListener::bind(addr).await.expect("bind");
        // Switchyard's own connection settings (HTTP/2 limits, keep-alive pings and their
        // timer), with a listener's default limits.
        let builder = std::sync::Arc::new(conn_builder(&ClientLimits::default()));
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let _ = stream.set_nodelay(true);
            let builder = builder.clone();
            tokio::spawn(async move {
                let conn = builder.serve_connection(TokioIo::new(stream), service_fn(answer));
                let _ = Joined::new(conn, |_: std::pin::Pin<&mut _>| {}).await;
            });
        }
    });
}

/// The backend's answer, fields as nginx writes them, made as cheaply as a response can
/// be (static values: no copy, no allocation), so that the floor is not overstated. A proxy
/// copies the backend's `Date` rather than formatting one; a fixed one here (the backend's
/// changes once a second, a handful of times in a counted run).
async fn answer(_: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let mut resp = Response::new(Full::new(Bytes::from_static(BODY)));
    let h = resp.headers_mut();
    h.insert(header::SERVER, HeaderValue::from_static("nginx/1.22.1"));
    h.insert(
        header::DATE,
        HeaderValue::from_static("Wed, 02 Dec 2026 10:24:44 GMT"),
    );
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from_static("23"));
    Ok(resp)
}

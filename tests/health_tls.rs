//! Active HTTP health checks speak what the pool speaks: TLS with the pool's client side
//! (CA, client certificate, `server_name` as SNI and verified name) when it re-encrypts, and
//! HTTP/2 when its `upstream_protocol` is `h2`/`h2c`. Real TLS and HTTP/2 backends on
//! 127.0.0.1 with certificates made here; every wait is bounded in time.
mod common;
mod tls_support;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU16, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use common::*;
use http::{Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use switchyard::runtime::Runtime;
use switchyard::upstream::HealthState;
use tls_support::*;
use tokio::net::TcpListener;
use tokio_rustls::TlsAcceptor;

/// What a test backend speaks.
enum Speaks {
    /// TLS (HTTP/1.1 or HTTP/2 as ALPN says).
    Tls(Arc<ServerConfig>),
    /// Cleartext HTTP/2 only (prior knowledge); an HTTP/1.1 request is a protocol error.
    H2cOnly,
}

/// A backend that answers `/health` with a settable status and counts the probes (and their
/// HTTP versions); anything else gets `200 NAME`.
struct TestBackend {
    addr: SocketAddr,
    name: String,
    health_status: Arc<AtomicU16>,
    probes: Arc<Mutex<Vec<Version>>>,
    requests: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TestBackend {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl TestBackend {
    async fn start(name: &str, speaks: Speaks) -> TestBackend {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let health_status = Arc::new(AtomicU16::new(200));
        let probes = Arc::new(Mutex::new(Vec::new()));
        let requests = Arc::new(AtomicU64::new(0));
        let speaks = Arc::new(speaks);
        let (st, pr, rq, nm) = (
            health_status.clone(),
            probes.clone(),
            requests.clone(),
            name.to_string(),
        );
        let task = tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    continue;
                };
                let (st, pr, rq, nm, speaks) = (
                    st.clone(),
                    pr.clone(),
                    rq.clone(),
                    nm.clone(),
                    speaks.clone(),
                );
                tokio::spawn(async move {
                    let svc = service_fn(move |req: Request<Incoming>| {
                        let (st, pr, rq, nm) = (st.clone(), pr.clone(), rq.clone(), nm.clone());
                        async move {
                            let resp = if req.uri().path() == "/health" {
                                pr.lock().unwrap().push(req.version());
                                let status =
                                    StatusCode::from_u16(st.load(Ordering::Relaxed)).unwrap();
                                let mut r = Response::new(Full::new(Bytes::from_static(b"ok\n")));
                                *r.status_mut() = status;
                                r
                            } else {
                                rq.fetch_add(1, Ordering::Relaxed);
                                Response::new(Full::new(Bytes::from(nm)))
                            };
                            Ok::<_, Infallible>(resp)
                        }
                    });
                    match &*speaks {
                        Speaks::Tls(cfg) => {
                            let Ok(tls) = TlsAcceptor::from(cfg.clone()).accept(tcp).await else {
                                return;
                            };
                            let _ =
                                hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                                    .serve_connection(TokioIo::new(tls), svc)
                                    .await;
                        }
                        Speaks::H2cOnly => {
                            let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                                .serve_connection(TokioIo::new(tcp), svc)
                                .await;
                        }
                    }
                });
            }
        });
        TestBackend {
            addr,
            name: name.to_string(),
            health_status,
            probes,
            requests,
            task,
        }
    }

    fn probes(&self) -> Vec<Version> {
        self.probes.lock().unwrap().clone()
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A TLS server config presenting `cert`/`key`, offering `alpn`; requiring a client
/// certificate signed by `client_ca` if given.
fn server_config(
    (cert, key): &(std::path::PathBuf, std::path::PathBuf),
    alpn: &[&str],
    client_ca: Option<&Path>,
) -> Arc<ServerConfig> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let key = PrivateKeyDer::from_pem_file(key).unwrap();
    let builder = ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap();
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in CertificateDer::pem_file_iter(ca).unwrap() {
                roots.add(c.unwrap()).unwrap();
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .build()
                .unwrap();
            builder.with_client_cert_verifier(verifier)
        }
    };
    let mut cfg = builder.with_single_cert(chain, key).unwrap();
    cfg.alpn_protocols = alpn.iter().map(|a| a.as_bytes().to_vec()).collect();
    Arc::new(cfg)
}

const HEALTH: &str = r#"
[pool.p.health]
type = "http"
path = "/health"
interval = "500ms"
timeout = "500ms"
rise = 2
fall = 2
"#;

fn config(pool_extra: &str, backends: &[&TestBackend]) -> String {
    let servers: Vec<String> = backends
        .iter()
        .map(|b| format!("{{ addr = \"{}\", name = \"{}\" }}", b.addr, b.name))
        .collect();
    format!(
        r#"
[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "p"

[pool.p]
{pool_extra}
servers = [{}]
{HEALTH}"#,
        servers.join(", ")
    )
}

fn state(lb: &Runtime, i: usize) -> HealthState {
    lb.pool("p").unwrap().servers()[i].health_state()
}

fn detail(lb: &Runtime, i: usize) -> String {
    lb.pool("p").unwrap().servers()[i]
        .last_check()
        .map(|c| c.detail)
        .unwrap_or_default()
}

/// Wait until every backend has answered at least `n` probes.
async fn probed(backends: &[&TestBackend], n: usize) {
    wait_until(Duration::from_secs(10), "probes arrive", || async {
        backends.iter().all(|b| b.probes().len() >= n)
    })
    .await;
}

#[tokio::test]
async fn a_tls_pool_with_http_checks_stays_healthy_serves_and_drops_a_failing_server() {
    let pki = Pki::new();
    let pair = pki.leaf("backend", &["backend.internal"]);
    let cfg = server_config(&pair, &["http/1.1"], None);
    let b1 = TestBackend::start("b1", Speaks::Tls(cfg.clone())).await;
    let b2 = TestBackend::start("b2", Speaks::Tls(cfg)).await;
    let tls = format!(
        "tls = {{ ca = \"{}\", server_name = \"backend.internal\" }}",
        pki.ca_pem.display()
    );
    let lb = start_lb(&config(&tls, &[&b1, &b2])).await;
    let addr = lb.local_addr("web").unwrap();
    // Five checks each, more than `fall`: under the old cleartext probe both would be out.
    probed(&[&b1, &b2], 5).await;
    for i in 0..2 {
        assert_eq!(state(&lb, i), HealthState::Healthy, "{}", detail(&lb, i));
        assert_eq!(detail(&lb, i), "status 200");
    }
    assert!(b1.probes().iter().all(|v| *v == Version::HTTP_11));
    let mut c = Client::connect(addr).await;
    let mut names = Vec::new();
    for _ in 0..10 {
        let a = c.get("/").await;
        assert_eq!(a.status, 200, "{}", a.text());
        names.push(a.text());
    }
    assert_eq!(tally(names), [("b1".into(), 5), ("b2".into(), 5)].into());

    // The check itself fails (500 over TLS): out after `fall`, its traffic goes to b1.
    b2.health_status.store(500, Ordering::Relaxed);
    wait_until(Duration::from_secs(5), "b2 out", || async {
        state(&lb, 1) == HealthState::Unhealthy
    })
    .await;
    assert_eq!(detail(&lb, 1), "status 500");
    let before = b2.requests.load(Ordering::Relaxed);
    for _ in 0..10 {
        let a = c.get("/").await;
        assert_eq!((a.status.as_u16(), a.text().as_str()), (200, "b1"));
    }
    assert_eq!(b2.requests.load(Ordering::Relaxed), before);
    // And back after `rise` passes.
    b2.health_status.store(200, Ordering::Relaxed);
    wait_until(Duration::from_secs(5), "b2 back", || async {
        state(&lb, 1) == HealthState::Healthy
    })
    .await;
}

#[tokio::test]
async fn a_server_whose_certificate_does_not_match_server_name_goes_out() {
    let pki = Pki::new();
    let good = server_config(&pki.leaf("good", &["backend.internal"]), &[], None);
    let wrong = server_config(&pki.leaf("wrong", &["other.internal"]), &[], None);
    let b1 = TestBackend::start("b1", Speaks::Tls(good)).await;
    let b2 = TestBackend::start("b2", Speaks::Tls(wrong)).await;
    let tls = format!(
        "tls = {{ ca = \"{}\", server_name = \"backend.internal\" }}",
        pki.ca_pem.display()
    );
    let lb = start_lb(&config(&tls, &[&b1, &b2])).await;
    wait_until(Duration::from_secs(5), "b2 out", || async {
        state(&lb, 1) == HealthState::Unhealthy
    })
    .await;
    assert!(
        detail(&lb, 1).starts_with("TLS handshake"),
        "{}",
        detail(&lb, 1)
    );
    // The handshake failed, so b2 never saw a probe; b1 keeps passing.
    probed(&[&b1], 5).await;
    assert!(b2.probes().is_empty());
    assert_eq!(state(&lb, 0), HealthState::Healthy, "{}", detail(&lb, 0));
    let addr = lb.local_addr("web").unwrap();
    let mut c = Client::connect(addr).await;
    for _ in 0..6 {
        let a = c.get("/").await;
        assert_eq!((a.status.as_u16(), a.text().as_str()), (200, "b1"));
    }
}

#[tokio::test]
async fn checks_present_the_pools_client_certificate_and_speak_h2_over_tls() {
    let pki = Pki::new();
    let pair = pki.leaf("backend", &["backend.internal"]);
    let (cc, ck) = pki.leaf("client", &["client.internal"]);
    // Requires a client certificate from our CA, and offers h2.
    let cfg = server_config(&pair, &["h2", "http/1.1"], Some(&pki.ca_pem));
    let b1 = TestBackend::start("b1", Speaks::Tls(cfg)).await;
    let tls = format!(
        "upstream_protocol = \"h2\"\ntls = {{ ca = \"{}\", server_name = \"backend.internal\", client_cert = \"{}\", client_key = \"{}\" }}",
        pki.ca_pem.display(),
        cc.display(),
        ck.display()
    );
    let lb = start_lb(&config(&tls, &[&b1])).await;
    probed(&[&b1], 5).await;
    assert_eq!(state(&lb, 0), HealthState::Healthy, "{}", detail(&lb, 0));
    assert!(
        b1.probes().iter().all(|v| *v == Version::HTTP_2),
        "{:?}",
        b1.probes()
    );
    let a = get(lb.local_addr("web").unwrap(), "/").await;
    assert_eq!((a.status.as_u16(), a.text().as_str()), (200, "b1"));
}

#[tokio::test]
async fn an_h2c_only_pool_with_http_checks_stays_healthy() {
    let b1 = TestBackend::start("b1", Speaks::H2cOnly).await;
    let b2 = TestBackend::start("b2", Speaks::H2cOnly).await;
    let lb = start_lb(&config("upstream_protocol = \"h2c\"", &[&b1, &b2])).await;
    probed(&[&b1, &b2], 5).await;
    for (i, b) in [&b1, &b2].into_iter().enumerate() {
        assert_eq!(state(&lb, i), HealthState::Healthy, "{}", detail(&lb, i));
        assert!(b.probes().iter().all(|v| *v == Version::HTTP_2));
    }
    let mut c = Client::connect(lb.local_addr("web").unwrap()).await;
    let mut names = Vec::new();
    for _ in 0..4 {
        let a = c.get("/").await;
        assert_eq!(a.status, 200, "{}", a.text());
        names.push(a.text());
    }
    assert_eq!(tally(names), [("b1".into(), 2), ("b2".into(), 2)].into());
    // A failing check over h2c takes the server out too.
    b1.health_status.store(503, Ordering::Relaxed);
    wait_until(Duration::from_secs(5), "b1 out", || async {
        state(&lb, 0) == HealthState::Unhealthy
    })
    .await;
    assert_eq!(detail(&lb, 0), "status 503");
}

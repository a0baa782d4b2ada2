//! Upstream TLS against a server that is not Switchyard: nginx with client-certificate
//! verification (mutual TLS), over HTTP/1.1 and HTTP/2 (ALPN h2).
mod common;
mod tls_support;

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use tls_support::*;

struct Nginx(Child);

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM, not SIGKILL: the master then stops its workers; a killed master would
        // leave them running (and listening) as orphans.
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

use common::free_port;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "end-to-end (nginx): scripts/test runs it"]
async fn mutual_tls_to_nginx_over_h1_and_h2() {
    let pki = Pki::new();
    let (server_cert, server_key) = pki.leaf("backend", &["backend.internal"]);
    let (client_cert, client_key) = pki.leaf("client", &["client.internal"]);
    let port = free_port();
    let dir = pki.dir.display();
    let conf = format!(
        r#"worker_processes 1;
error_log {dir}/nginx-error.log;
pid {dir}/nginx.pid;
events {{ worker_connections 64; }}
http {{
  access_log off;
  server {{
    listen 127.0.0.1:{port} ssl http2;
    ssl_certificate {};
    ssl_certificate_key {};
    ssl_client_certificate {};
    ssl_verify_client on;
    location / {{ return 200 "$server_protocol client=$ssl_client_s_dn\n"; }}
  }}
}}
"#,
        server_cert.display(),
        server_key.display(),
        pki.ca_pem.display()
    );
    let conf_path = pki.dir.join("nginx.conf");
    std::fs::write(&conf_path, conf).unwrap();
    let _nginx = Nginx(
        Command::new("nginx")
            .args(["-c", conf_path.to_str().unwrap(), "-p"])
            .arg(&pki.dir)
            .args(["-g", "daemon off;"])
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("nginx is needed by this test (scripts/test installs nginx-light)"),
    );
    wait_until(Duration::from_secs(10), "nginx listens", || async {
        tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
    })
    .await;

    let ca = pki.ca_pem.display();
    let (cc, ck) = (client_cert.display(), client_key.display());
    let lb = start_lb(&format!(
        r#"
[[listener]]
name = "web"
listen = "127.0.0.1:0"
pool = "mtls"
  [[listener.route]]
  path_prefix = "/h2/"
  pool = "mtls_h2"
  [[listener.route]]
  path_prefix = "/anon/"
  pool = "anon"
[pool.mtls]
tls = {{ ca = "{ca}", server_name = "backend.internal", client_cert = "{cc}", client_key = "{ck}" }}
servers = [ {{ addr = "127.0.0.1:{port}" }} ]
[pool.mtls_h2]
upstream_protocol = "h2"
tls = {{ ca = "{ca}", server_name = "backend.internal", client_cert = "{cc}", client_key = "{ck}" }}
servers = [ {{ addr = "127.0.0.1:{port}" }} ]
[pool.anon]
tls = {{ ca = "{ca}", server_name = "backend.internal" }}
servers = [ {{ addr = "127.0.0.1:{port}" }} ]
"#
    ))
    .await;
    let addr = lb.local_addr("web").unwrap();
    let mut c = Client::connect(addr).await;
    let a = c.get("/").await;
    assert_eq!(a.status, 200, "{}", a.text());
    assert_eq!(a.text(), "HTTP/1.1 client=CN=client.internal\n");
    for _ in 0..3 {
        let a = c.get("/h2/x").await;
        assert_eq!(a.status, 200, "{}", a.text());
        assert_eq!(a.text(), "HTTP/2.0 client=CN=client.internal\n");
    }
    assert_eq!(lb.upstream("mtls_h2").unwrap().h2().opened(), 1);
    // Without a client certificate nginx refuses the request.
    let a = c.get("/anon/x").await;
    assert_eq!(a.status, 400, "{}", a.text());
    assert!(
        a.text().contains("No required SSL certificate was sent"),
        "{}",
        a.text()
    );
}

//! A real browser for the tests: Debian's headless Chromium driven by its chromedriver over
//! the W3C WebDriver protocol — a few JSON calls over HTTP/1.1 (new session, navigate, find
//! an element by CSS, read its text, click, type, screenshot). Written here rather than
//! taken from a crate: the calls are few, and fantoccini brings the `webdriver` crate and a
//! TLS stack the tests never use.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use bytes::Bytes;
use http::Request;
use http_body_util::Full;
use serde_json::{Value, json};

use super::common::{Client, temp_dir};

/// The key under which WebDriver names an element.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

/// chromedriver on a port of 127.0.0.1, stopped (with its browsers) on drop.
pub struct Driver {
    child: Child,
    addr: SocketAddr,
    profile: PathBuf,
}

impl Driver {
    /// Start chromedriver and wait until it says it is ready.
    pub async fn start() -> Driver {
        let port = crate::common::free_port();
        let mut cmd = Command::new("chromedriver");
        cmd.arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so that drop stops the browsers it started too.
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        let child = cmd
            .spawn()
            .expect("chromedriver (Debian package chromium-driver; scripts/test installs it)");
        let d = Driver {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            profile: temp_dir("chromium-profile"),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(s) = tokio::net::TcpStream::connect(d.addr).await {
                drop(s);
                let v = call(d.addr, "GET", "/status", Value::Null).await;
                if v["ready"] == true {
                    return d;
                }
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver not ready within 20 s"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A new headless Chromium with a fresh profile and nothing that reaches the network.
    pub async fn session(&self, width: u32, height: u32) -> Session {
        let args = [
            "--headless".to_string(),
            "--no-sandbox".into(),
            "--disable-gpu".into(),
            "--disable-background-networking".into(),
            "--disable-component-update".into(),
            "--disable-sync".into(),
            "--no-first-run".into(),
            "--disable-dev-shm-usage".into(),
            format!("--window-size={width},{height}"),
            format!("--user-data-dir={}", self.profile.display()),
        ];
        let v = call(
            self.addr,
            "POST",
            "/session",
            json!({ "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": { "binary": "/usr/bin/chromium", "args": args },
            }}}),
        )
        .await;
        let id = v["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no session: {v}"))
            .to_string();
        Session {
            addr: self.addr,
            id,
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let pgid = rustix::process::Pid::from_child(&self.child);
        let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// One browser.
pub struct Session {
    addr: SocketAddr,
    id: String,
}

impl Session {
    async fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        call(
            self.addr,
            method,
            &format!("/session/{}{path}", self.id),
            body,
        )
        .await
    }

    pub async fn goto(&self, url: &str) {
        self.cmd("POST", "/url", json!({ "url": url })).await;
    }

    /// The element `css` selects, if there is one now.
    pub async fn find(&self, css: &str) -> Option<String> {
        let v = try_call(
            self.addr,
            "POST",
            &format!("/session/{}/element", self.id),
            json!({ "using": "css selector", "value": css }),
        )
        .await
        .ok()?;
        v[ELEMENT].as_str().map(str::to_string)
    }

    /// The visible text of the element `css` selects (None: no such element now).
    pub async fn text(&self, css: &str) -> Option<String> {
        let e = self.find(css).await?;
        try_call(
            self.addr,
            "GET",
            &format!("/session/{}/element/{e}/text", self.id),
            Value::Null,
        )
        .await
        .ok()?
        .as_str()
        .map(str::to_string)
    }

    pub async fn click(&self, css: &str) {
        let e = self.find(css).await.unwrap_or_else(|| panic!("no {css}"));
        self.cmd("POST", &format!("/element/{e}/click"), json!({}))
            .await;
    }

    pub async fn type_into(&self, css: &str, text: &str) {
        let e = self.find(css).await.unwrap_or_else(|| panic!("no {css}"));
        self.cmd(
            "POST",
            &format!("/element/{e}/value"),
            json!({ "text": text }),
        )
        .await;
    }

    /// The JavaScript value of `script` (a function body) run in the page.
    pub async fn run(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": [] }),
        )
        .await
    }

    /// A PNG of the window, written to `path`.
    pub async fn screenshot(&self, path: &Path) -> Vec<u8> {
        let v = self.cmd("GET", "/screenshot", Value::Null).await;
        let png = base64::engine::general_purpose::STANDARD
            .decode(v.as_str().expect("base64 PNG"))
            .expect("base64");
        std::fs::write(path, &png).unwrap();
        png
    }

    pub async fn quit(self) {
        let _ = try_call(
            self.addr,
            "DELETE",
            &format!("/session/{}", self.id),
            Value::Null,
        )
        .await;
    }
}

/// One WebDriver call; its `value`, or a panic naming the error.
async fn call(addr: SocketAddr, method: &str, path: &str, body: Value) -> Value {
    try_call(addr, method, path, body)
        .await
        .unwrap_or_else(|e| panic!("WebDriver {method} {path}: {e}"))
}

/// One WebDriver call: its `value`, or the error WebDriver answered.
async fn try_call(addr: SocketAddr, method: &str, path: &str, body: Value) -> Result<Value, Value> {
    let body = if body.is_null() {
        Bytes::new()
    } else {
        Bytes::from(body.to_string())
    };
    let req = Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", "application/json")
        .body(Full::new(body))
        .unwrap();
    let a = Client::connect(addr).await.send(req).await;
    let v: Value = serde_json::from_slice(&a.body)
        .unwrap_or_else(|_| panic!("WebDriver {method} {path}: not JSON: {}", a.text()));
    if a.status.is_success() {
        Ok(v["value"].clone())
    } else {
        Err(v["value"].clone())
    }
}

//! Changes to a running Switchyard: reloads (SIGHUP, `switchyard reload`,
//! `POST /api/reload`) and the admin API's writes, one at a time under the runtime's control
//! lock.
//!
//! Every change ends as a new [`Plan`] made the same way: the config file, plus the
//! operator's API changes ([`Overrides`]), through the same validation as `switchyard
//! check`, with the addresses of its host names from the book of DNS answers
//! (`discovery`). A plan that does not pass, or that cannot be applied (a port taken),
//! changes nothing: the running configuration stays and the errors go back to whoever asked.
//!
//! DNS answers that change a name's addresses are applied the same way
//! ([`Control::dns_answers`]): the written plan again, with the new addresses.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use http::StatusCode;
use serde_json::json;
use toml::{Table, Value};

use super::listener::Spare;
use super::overrides::{self, Overrides, State};
use super::running::Running;
use crate::admin::api::{self, Body, Command, Done, NewServer, Refusal, Reply};
use crate::config::{self, ConfigError, ConfigErrors, Plan};
use crate::discovery::{self, Book, KEPT, Key, Lookup};
use crate::upstream::AdminState;

/// The runtime's state under its control lock.
pub struct Control {
    pub running: Running,
    /// The config file; `None` when the plan was made in code (then there is nothing to
    /// reload and no file to change).
    pub path: Option<PathBuf>,
    /// The file's TOML as last loaded.
    pub file: Option<Table>,
    pub overrides: Overrides,
    /// Servers removed over the API, draining: since when.
    removing: HashMap<(String, SocketAddr), Instant>,
    /// The running plan as written (the file and the API's changes): host names not yet
    /// made into servers.
    pub source: Plan,
    /// The DNS answers in use, and when to ask again.
    pub book: Book,
    /// Wakes the task that asks DNS when the book changed (a reload).
    pub wake: Arc<tokio::sync::Notify>,
    /// The book has addresses the running configuration does not (applying them failed):
    /// the next DNS answers try again, even if they change nothing.
    dns_pending: bool,
}

/// What a reload did.
#[derive(Debug, Clone, Default)]
pub struct ReloadReport {
    /// One line per change applied (`pool "web": server 10.0.0.3:80 added`).
    pub changes: Vec<String>,
    /// What became of the operator's API changes (kept, or replaced by the file).
    pub overrides: Vec<String>,
}

/// What a reload would make running (see [`Control::reload`]).
struct Next {
    /// The file's text, for its SHA-256.
    text: String,
    file: Table,
    /// The operator's changes, reconciled with the file.
    overrides: Overrides,
    /// What became of them.
    notes: Vec<String>,
    plan: Plan,
    /// The file alone, checked: the names `discovery::resolve` asks for.
    checked: Plan,
}

/// Why a reload did not take: the running configuration is unchanged.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The file does not pass `check`: every error, each with file:line:column and its fix.
    #[error("{0}")]
    Config(ConfigErrors),
    /// The file passes, but not with the changes kept from the admin API.
    #[error("the file is valid, but not with the changes made over the admin API:\n{0}")]
    WithOverrides(ConfigErrors),
    #[error("{0}")]
    Runtime(#[from] super::RuntimeError),
    #[error("this Switchyard was started without a config file: there is nothing to reload")]
    NoFile,
}

impl ReloadError {
    /// The config errors, if that is what it is.
    pub fn config_errors(&self) -> &[ConfigError] {
        match self {
            ReloadError::Config(e) | ReloadError::WithOverrides(e) => &e.0,
            _ => &[],
        }
    }
}

/// A reload that did not (or would not) take, as the API answers it.
fn refusal(e: &ReloadError, what: &str) -> Refusal {
    let status = match e {
        ReloadError::Runtime(_) => StatusCode::CONFLICT,
        _ => StatusCode::UNPROCESSABLE_ENTITY,
    };
    Refusal {
        status,
        message: format!("{what}: {}", first_line(e)),
        help: None,
        errors: e.config_errors().to_vec(),
    }
}

/// The SHA-256 of a file's text, in hex (as `sha256sum` prints it).
pub fn sha256(text: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

impl Control {
    pub fn new(
        running: Running,
        path: Option<PathBuf>,
        text: Option<&str>,
        source: Plan,
        book: Book,
    ) -> Control {
        Control {
            running,
            path,
            file: text.and_then(|t| t.parse().ok()),
            overrides: Overrides::default(),
            removing: HashMap::new(),
            source,
            book,
            wake: Arc::default(),
            dns_pending: false,
        }
    }

    /// Make `source` (a plan as written) the running configuration with the addresses of
    /// `book`; on success they are kept for the next change.
    pub fn apply_source(
        &mut self,
        source: Plan,
        book: Book,
    ) -> Result<Vec<String>, super::RuntimeError> {
        let plan = discovery::apply(&source, &book, &self.overrides.tweaks());
        let changes = self.running.apply(plan, Spare::default())?;
        self.source = source;
        self.book = book;
        self.dns_pending = false;
        self.wake.notify_one();
        Ok(changes)
    }

    /// What DNS answered for the names that were due: recorded, and when a name's addresses
    /// changed, applied as a reload applies a change (servers that stay keep their state,
    /// removed ones drain).
    pub fn dns_answers(&mut self, answers: Vec<(Key, Lookup)>) {
        let now = tokio::time::Instant::now();
        let mut changed = Vec::new();
        for (key, lookup) in answers {
            if let Some(line) = self.book.record(&key, lookup, now) {
                changed.push(format!("pool {:?}: {line}", key.pool));
            }
        }
        if changed.is_empty() && !self.dns_pending {
            return;
        }
        for c in &changed {
            tracing::info!("DNS: {c}");
        }
        let mut plan = discovery::apply(&self.source, &self.book, &self.overrides.tweaks());
        // Only a reload reports a `workers` the file changed (see `change`).
        plan.workers = self.running.plan.workers;
        match self.running.apply(plan, Spare::default()) {
            Ok(lines) => {
                for l in lines {
                    tracing::info!("DNS change applied: {l}");
                }
                self.dns_pending = false;
                self.running.publish();
            }
            Err(e) => {
                self.dns_pending = true;
                tracing::error!(
                    "DNS change not applied, the running servers stay (tried again with the next answers): {e}"
                );
            }
        }
    }

    /// What a reload would make running: the file read again and checked as `check`
    /// does, with the operator's changes reconciled (`overrides.reconcile`); nothing applied.
    fn next(&self) -> Result<Next, ReloadError> {
        let path = self.path.clone().ok_or(ReloadError::NoFile)?;
        let name = path.display().to_string();
        let text = std::fs::read_to_string(&path).map_err(|e| {
            ReloadError::Config(ConfigErrors(vec![ConfigError {
                file: name.clone(),
                line: 0,
                column: 0,
                message: format!("cannot read the file: {e}"),
                help: Some("check the path the process was started with (-c)".into()),
            }]))
        })?;
        // Exactly what `switchyard check` says of the file.
        let checked = config::load_str(&text, &name).map_err(ReloadError::Config)?;
        let file: Table = text.parse().map_err(|_| {
            ReloadError::Config(ConfigErrors(vec![ConfigError {
                file: name.clone(),
                line: 0,
                column: 0,
                message: "the file changed while it was read".into(),
                help: Some("reload again".into()),
            }]))
        })?;
        let mut overrides = self.overrides.clone();
        let notes = overrides.reconcile(&file);
        let plan = self
            .plan_of(&file, &overrides)
            .map_err(ReloadError::WithOverrides)?;
        Ok(Next {
            text,
            file,
            overrides,
            notes,
            plan,
            checked,
        })
    }

    /// Load the config file again and apply it with the operator's changes. Its host names
    /// are resolved again, except the `resolve = true` ones the running configuration
    /// already follows (`discovery::resolve`).
    pub async fn reload(&mut self) -> Result<ReloadReport, ReloadError> {
        let Next {
            text,
            file,
            overrides,
            notes,
            plan,
            checked,
        } = self.next()?;
        // Its names, with errors at the file's lines (the API adds no name, so the plan
        // with the API's changes has the same ones).
        let resolved = discovery::resolve(&checked, &self.book)
            .await
            .map_err(|e| ReloadError::Config(ConfigErrors(e)))?;
        let previous = std::mem::replace(&mut self.overrides, overrides);
        let changes = match self.apply_source(plan, resolved.book) {
            Ok(c) => c,
            Err(e) => {
                self.overrides = previous;
                return Err(e.into());
            }
        };
        for n in resolved.notes.iter().filter(|n| !n.ends_with(KEPT)) {
            tracing::info!("DNS: {n}");
        }
        self.file = Some(file);
        self.running.loaded.sha256 = Some(sha256(&text));
        self.running.loaded.at = SystemTime::now();
        self.running.loaded.overrides = self.overrides.len();
        self.running.publish();
        Ok(ReloadReport {
            changes,
            overrides: notes,
        })
    }

    /// The file with `overrides` applied, checked as `check` does.
    fn plan_of(&self, file: &Table, overrides: &Overrides) -> Result<Plan, ConfigErrors> {
        let text = render(&overrides.apply(file));
        let name = self
            .path
            .as_ref()
            .map_or("config".into(), |p| p.display().to_string());
        config::load_str(&text, &format!("{name} with the admin API's changes"))
    }

    /// Answer one admin API command.
    pub async fn handle(&mut self, command: Command) -> Reply {
        match command {
            Command::Reload => self.api_reload().await,
            Command::Config => self.config_toml(),
            Command::NextConfig => self.next_toml(),
            Command::SetServer {
                pool,
                server,
                weight,
                state,
            } => self.set_server(&pool, &server, weight, state),
            Command::AddServer { pool, server } => self.add_server(&pool, server),
            Command::RemoveServer { pool, server } => self.remove_server(&pool, &server),
        }
    }

    /// [`Control::reload`], counted, logged and told to systemd (`RELOADING=1`, then
    /// `READY=1`): what SIGHUP, `switchyard reload` and `POST /api/reload` all do.
    pub async fn reload_counted(&mut self) -> Result<ReloadReport, ReloadError> {
        super::notify::reloading();
        let result = self.reload().await;
        self.running.reloads.count(result.is_ok());
        match &result {
            Ok(r) => log_reload(r),
            Err(e) => tracing::error!("reload failed, the running configuration stays:\n{e}"),
        }
        super::notify::ready();
        result
    }

    async fn api_reload(&mut self) -> Reply {
        match self.reload_counted().await {
            Ok(r) => {
                let mut changes = r.changes.clone();
                changes.extend(r.overrides.iter().cloned());
                Ok(Done {
                    status: StatusCode::OK,
                    changes,
                    body: Body::Json(json!({
                        "reloaded": true,
                        "sha256": self.running.loaded.sha256,
                        "overrides": r.overrides,
                    })),
                })
            }
            Err(e) => Err(refusal(
                &e,
                "reload failed, the running configuration stays",
            )),
        }
    }

    /// `GET /api/config/next`: the TOML a reload would make running, nothing applied; the
    /// admin API changes a reload keeps are in it, and listed at its top.
    fn next_toml(&self) -> Reply {
        let next = self.next().map_err(|e| {
            refusal(
                &e,
                "a reload would fail, and the running configuration stay",
            )
        })?;
        let mut text = format!(
            "# What a reload of {} would make running (Switchyard {}); nothing is applied.\n# Comments of the file are not kept.\n",
            self.path
                .as_ref()
                .map_or("(no file)".into(), |p| p.display().to_string()),
            env!("CARGO_PKG_VERSION"),
        );
        for n in &next.notes {
            text.push_str(&format!("# admin API change: {n}\n"));
        }
        text.push_str(&render(&next.overrides.apply(&next.file)));
        Ok(Done {
            status: StatusCode::OK,
            changes: Vec::new(),
            body: Body::Toml(text),
        })
    }

    fn config_toml(&self) -> Reply {
        let Some(file) = &self.file else {
            return Err(no_file());
        };
        let text = format!(
            "# The running configuration of Switchyard {}: {}{}.\n# Comments of the file are not kept. Save it as the file and reload to make it the truth again.\n{}",
            env!("CARGO_PKG_VERSION"),
            self.path
                .as_ref()
                .map_or("(no file)".into(), |p| p.display().to_string()),
            if self.overrides.is_empty() {
                String::new()
            } else {
                format!(
                    " with {} change(s) made over the admin API",
                    self.overrides.len()
                )
            },
            render(&self.with_workers_running(self.overrides.apply(file)))
        );
        Ok(Done {
            status: StatusCode::OK,
            changes: Vec::new(),
            body: Body::Toml(text),
        })
    }

    /// `doc` saying the number of worker threads running (made at start: a reload cannot
    /// change it), where the file says another (or leaves the default, another).
    fn with_workers_running(&self, mut doc: Table) -> Table {
        let running = self.running.plan.workers;
        let in_file = match doc.get("workers").and_then(Value::as_integer) {
            Some(n) => usize::try_from(n).ok(),
            None => Some(Plan::default().workers),
        };
        if in_file != Some(running) {
            doc.insert("workers".into(), Value::Integer(running as i64));
        }
        doc
    }

    /// The pool and server an API path names, as the running plan has them.
    fn locate(&self, pool: &str, server: &str) -> Result<(String, SocketAddr, String), Refusal> {
        let view = self.running.state.view.load();
        let Some(up) = view.pools.iter().find(|u| u.pool.name == pool) else {
            return Err(api::no_pool(&view, pool));
        };
        let Some(s) = api::find_server(up.pool.servers(), server) else {
            return Err(api::no_server(up, server));
        };
        Ok((pool.to_string(), s.addr, s.name.clone()))
    }

    /// Make the overrides `next` the running configuration, or change nothing.
    fn change(&mut self, next: Overrides) -> Result<Vec<String>, Refusal> {
        let Some(file) = &self.file else {
            return Err(no_file());
        };
        let mut plan = self.plan_of(file, &next).map_err(|e| Refusal {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            message: "this change would make the configuration invalid; nothing changed".into(),
            help: None,
            errors: e
                .0
                .into_iter()
                .map(|e| ConfigError {
                    line: 0,
                    column: 0,
                    ..e
                })
                .collect(),
        })?;
        // The file's `workers` is a reload's to report (SIGHUP, `switchyard reload`,
        // POST /api/reload), not each change of a server after it.
        plan.workers = self.running.plan.workers;
        let previous = std::mem::replace(&mut self.overrides, next);
        let book = self.book.clone();
        let changes = self.apply_source(plan, book).map_err(|e| {
            Refusal::new(
                StatusCode::CONFLICT,
                format!("cannot apply the change: {e}"),
                "",
            )
        });
        let changes = match changes {
            Ok(c) => c,
            Err(r) => {
                self.overrides = previous;
                return Err(r);
            }
        };
        self.running.loaded.at = SystemTime::now();
        self.running.loaded.overrides = self.overrides.len();
        self.running.publish();
        Ok(changes)
    }

    fn server_body(&self, pool: &str, addr: SocketAddr) -> serde_json::Value {
        let view = self.running.state.view.load();
        view.pools
            .iter()
            .find(|u| u.pool.name == pool)
            .and_then(|u| {
                u.pool
                    .servers()
                    .iter()
                    .find(|s| s.addr == addr)
                    .map(|s| api::server_json(u, s))
            })
            .unwrap_or(serde_json::Value::Null)
    }

    fn set_server(
        &mut self,
        pool: &str,
        server: &str,
        weight: Option<u32>,
        state: Option<AdminState>,
    ) -> Reply {
        let (pool, addr, name) = self.locate(pool, server)?;
        let file = self.file.clone().ok_or_else(no_file)?;
        if self.removing.contains_key(&(pool.clone(), addr)) {
            return Err(Refusal::new(
                StatusCode::CONFLICT,
                format!("server {addr} ({name}) is being removed (draining)"),
                format!(
                    "to keep it, add it back: POST /api/pools/{pool}/servers with {{\"addr\": \"{addr}\"}}"
                ),
            ));
        }
        let mut next = self.overrides.clone();
        if let Some(w) = weight {
            next.set_weight(&file, &pool, addr, i64::from(w));
        }
        if let Some(s) = state {
            next.set_state(&file, &pool, addr, state_of(s));
        }
        let changes = self.change(next)?;
        Ok(Done {
            status: StatusCode::OK,
            changes,
            body: Body::Json(json!({ "pool": pool, "server": self.server_body(&pool, addr) })),
        })
    }

    fn add_server(&mut self, pool: &str, new: NewServer) -> Reply {
        let view = self.running.state.view.load_full();
        let Some(up) = view.pools.iter().find(|u| u.pool.name == pool) else {
            return Err(api::no_pool(&view, pool));
        };
        let Some(addr) = overrides::address(&new.addr) else {
            let help = addr_help(new.addr.trim());
            return Err(Refusal::new(
                StatusCode::BAD_REQUEST,
                format!("addr {:?} is not an address", new.addr),
                help,
            ));
        };
        // A server being removed (draining) and added back stays, as it is.
        let cancel = self.removing.contains_key(&(pool.to_string(), addr));
        if let Some(s) = up.pool.servers().iter().find(|s| s.addr == addr)
            && !cancel
        {
            return Err(Refusal::new(
                StatusCode::CONFLICT,
                format!("pool {pool:?} already has server {addr} ({})", s.name),
                format!("to change it, PUT /api/pools/{pool}/servers/{addr}"),
            ));
        }
        let mut entry = Table::new();
        entry.insert("addr".into(), Value::String(new.addr.trim().to_string()));
        if let Some(n) = &new.name {
            entry.insert("name".into(), Value::String(n.clone()));
        }
        if let Some(w) = new.weight {
            entry.insert(
                "weight".into(),
                Value::Integer(i64::from(api::check_weight(w)?)),
            );
        }
        if new.backup {
            entry.insert("backup".into(), Value::Boolean(true));
        }
        if let Some(s) = &new.state {
            state_of(api::check_state(s)?).write_to(&mut entry);
        }
        let mut next = self.overrides.clone();
        next.add(pool, addr, entry);
        let changes = self.change(next)?;
        self.removing.remove(&(pool.to_string(), addr));
        Ok(Done {
            status: StatusCode::CREATED,
            changes,
            body: Body::Json(json!({ "pool": pool, "server": self.server_body(pool, addr) })),
        })
    }

    fn remove_server(&mut self, pool: &str, server: &str) -> Reply {
        let (pool, addr, name) = self.locate(pool, server)?;
        if let Some(from) = self.resolved_from(&pool, addr) {
            return Err(Refusal::new(
                StatusCode::CONFLICT,
                format!(
                    "server {addr} comes from DNS ({from}): DNS decides whether it is in the pool"
                ),
                format!(
                    "take the address out of DNS (it drains once the name is asked again), or stop new requests to it now: PUT /api/pools/{pool}/servers/{addr} with {{\"state\": \"drain\"}}"
                ),
            ));
        }
        let file = self.file.clone().ok_or_else(no_file)?;
        let view = self.running.state.view.load_full();
        let servers = view
            .pools
            .iter()
            .find(|u| u.pool.name == pool)
            .map_or(0, |u| u.pool.servers().len());
        if servers <= 1 {
            return Err(Refusal::new(
                StatusCode::CONFLICT,
                format!("server {addr} ({name}) is the last of pool {pool:?}"),
                "add another server first, or remove the pool from the config file",
            ));
        }
        let mut next = self.overrides.clone();
        next.remove(&file, &pool, addr);
        let mut changes = self.change(next)?;
        self.removing.insert((pool.clone(), addr), Instant::now());
        changes.push(format!(
            "pool {pool:?}: server {addr} drains, and leaves the pool once idle (within {:?})",
            self.running.plan.grace_period
        ));
        Ok(Done {
            status: StatusCode::ACCEPTED,
            changes,
            body: Body::Json(json!({
                "pool": pool,
                "server": self.server_body(&pool, addr),
                "removal": format!(
                    "draining: it leaves the pool once it has nothing in flight, or after grace_period ({:?}) at most",
                    self.running.plan.grace_period
                ),
            })),
        })
    }

    /// The DNS name a running server came from, if it did.
    fn resolved_from(&self, pool: &str, addr: SocketAddr) -> Option<String> {
        let view = self.running.state.view.load();
        let up = view.pools.iter().find(|u| u.pool.name == pool)?;
        let s = up.pool.servers().iter().find(|s| s.addr == addr)?;
        s.from.clone()
    }

    /// Whether servers removed over the API still drain.
    pub fn removals_pending(&self) -> bool {
        !self.removing.is_empty()
    }

    /// Take out the removed servers that have drained (or whose grace period is over).
    pub fn reap(&mut self) {
        let grace = self
            .running
            .plan
            .grace_period
            .max(Duration::from_millis(100));
        let view = self.running.state.view.load_full();
        let mut done = Vec::new();
        for ((pool, addr), since) in &self.removing {
            let idle = view
                .pools
                .iter()
                .find(|u| u.pool.name == *pool)
                .and_then(|u| u.pool.servers().iter().find(|s| s.addr == *addr))
                .is_none_or(|s| s.in_flight() == 0);
            if idle || since.elapsed() >= grace {
                done.push((pool.clone(), *addr, idle));
            }
        }
        for (pool, addr, idle) in done {
            self.removing.remove(&(pool.clone(), addr));
            let mut next = self.overrides.clone();
            next.removed(&pool, addr);
            match self.change(next) {
                Ok(_) => tracing::info!(
                    target: "switchyard::audit",
                    pool = %pool,
                    "audit: server {addr} removed ({})",
                    if idle { "drained" } else { "grace period over; requests still running finish" }
                ),
                Err(r) => {
                    tracing::error!(pool = %pool, "server {addr} could not be removed: {}", r.message)
                }
            }
        }
    }
}

fn state_of(s: AdminState) -> State {
    match s {
        AdminState::Ready => State::Ready,
        AdminState::Drain => State::Drain,
        AdminState::Maint => State::Maint,
    }
}

/// TOML text of a document.
fn render(doc: &Table) -> String {
    toml::to_string(doc).unwrap_or_default()
}

fn no_file() -> Refusal {
    Refusal::new(
        StatusCode::CONFLICT,
        "this Switchyard was started without a config file: there is no configuration to change",
        "start it with switchyard run -c FILE",
    )
}

fn first_line(e: &ReloadError) -> String {
    let n = e.config_errors().len();
    if n > 0 {
        format!("{n} error(s) in the file")
    } else {
        e.to_string().lines().next().unwrap_or_default().to_string()
    }
}

/// Log what a reload did.
pub fn log_reload(r: &ReloadReport) {
    if r.changes.is_empty() {
        tracing::info!("reloaded: nothing changed");
    }
    for c in &r.changes {
        match c.contains(crate::config::diff::NEEDS_RESTART) {
            true => tracing::warn!("not reloaded: {c}"),
            false => tracing::info!("reloaded: {c}"),
        }
    }
    for o in &r.overrides {
        tracing::warn!("reloaded: {o}");
    }
}

/// The help for an `addr` the API cannot add. A URL (`http://10.0.0.5:8080/`) has the
/// address inside it: an IP, with the scheme's port if it has none, is suggested as it is; a
/// host name is not (the API refuses those), so it gets the host-name help.
fn addr_help(written: &str) -> String {
    let mut host_port = written.to_string();
    let mut tls = "";
    if let Some((scheme, rest)) = written.split_once("://") {
        let inside = rest.split(['/', '?']).next().unwrap_or(rest);
        let port = match scheme.to_ascii_lowercase().as_str() {
            "http" => Some(80),
            "https" => Some(443),
            _ => None,
        };
        if scheme.eq_ignore_ascii_case("https") {
            tls = "; TLS to servers is the pool's `tls`, in the file";
        }
        let bare = inside.strip_prefix('[').and_then(|i| i.strip_suffix(']'));
        let ip = bare.unwrap_or(inside).parse::<IpAddr>().ok();
        let addr = inside
            .parse::<SocketAddr>()
            .ok()
            .or_else(|| Some(SocketAddr::new(ip?, port?)));
        if let Some(a) = addr {
            return format!("drop `{scheme}://`: send {{\"addr\": \"{a}\"}}{tls}");
        }
        let has_port = inside
            .rsplit_once(':')
            .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
        host_port = match port {
            _ if has_port || inside.is_empty() => inside.to_string(),
            Some(p) => format!("{inside}:{p}"),
            None => format!("{inside}:PORT"),
        };
    }
    if host_port.contains(':') && !host_port.starts_with('[') {
        format!(
            "the API adds one server by its address, e.g. {{\"addr\": \"10.0.0.5:8080\"}}; a host name, whose addresses DNS gives and changes, goes in the file: {{ addr = {host_port:?}, resolve = true }}, then reload{tls}"
        )
    } else {
        "send host:port, e.g. {\"addr\": \"10.0.0.5:8080\"} or {\"addr\": \"[::1]:8080\"}"
            .to_string()
    }
}

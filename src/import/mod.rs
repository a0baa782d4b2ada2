//! `switchyard import`: an nginx or HAProxy configuration in, Switchyard TOML out, and a
//! report of every directive not carried over (or carried with another meaning), each with
//! its file:line and why — never a silent drop.
//!
//! Data flow: the source is detected (or named with `--from`) → `nginx_parse.rs` reads nginx
//! syntax and its `include`s, `haproxy_parse.rs` HAProxy's sections (several files, as
//! `haproxy -f a -f b`) → `nginx.rs` (+ `nginx_upstream.rs`, `nginx_vhost.rs`,
//! `nginx_stream.rs`, `nginx_guard.rs` for limits, access lists, client keys and logs) or
//! `haproxy.rs` (+ `haproxy_backend.rs`, `haproxy_guard.rs`) map directives onto a
//! [`model::Config`] → `emit`
//! writes the TOML, which is then read back with Switchyard's own `config::load_str`, so
//! what `import` prints is what `check` says.

mod haproxy;
mod haproxy_backend;
mod haproxy_guard;
mod haproxy_parse;
mod model;
mod nginx;
mod nginx_guard;
mod nginx_parse;
mod nginx_stream;
mod nginx_upstream;
mod nginx_vhost;

use std::path::Path;

pub use model::{Note, Origin};

/// Which product a configuration is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Nginx,
    Haproxy,
}

impl Source {
    pub fn parse(s: &str) -> Option<Source> {
        match s {
            "nginx" => Some(Source::Nginx),
            "haproxy" => Some(Source::Haproxy),
            _ => None,
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            Source::Nginx => "nginx",
            Source::Haproxy => "haproxy",
        }
    }
}

/// The result of an import.
#[derive(Debug, Clone)]
pub struct Imported {
    pub source: Source,
    /// The Switchyard configuration.
    pub toml: String,
    /// What was not carried over or was approximated, in file order.
    pub notes: Vec<Note>,
    pub listeners: usize,
    pub pools: usize,
    pub servers: usize,
    /// What Switchyard's `check` says of `toml` (`Ok` or every error).
    pub check: Result<(), String>,
}

impl Imported {
    /// The report's last line: what was made, and how many directives were not carried
    /// (with the warnings among them) or approximated.
    pub fn summary(&self) -> String {
        let approximated = self.notes.iter().filter(|n| n.approximated).count();
        let warned = match self.notes.iter().filter(|n| n.warning).count() {
            0 => String::new(),
            n => format!(
                " ({n} warning(s): requests the source refused, answered or let through are now treated otherwise)"
            ),
        };
        format!(
            "import ({}): {} listener(s), {} pool(s), {} server(s); {} directive(s) not carried{warned}, {approximated} approximated{}",
            self.source.as_str(),
            self.listeners,
            self.pools,
            self.servers,
            self.notes.len() - approximated,
            if self.notes.is_empty() {
                ""
            } else {
                " (listed above)"
            }
        )
    }
}

/// Why an import could not be made at all.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ImportError {
    #[error("{0}")]
    Read(String),
    #[error("{file}:{line}: {message}")]
    Syntax {
        file: String,
        line: usize,
        message: String,
    },
    #[error(
        "cannot tell whether {0} is an nginx or a HAProxy configuration: pass --from nginx or --from haproxy"
    )]
    Unknown(String),
    #[error("nginx reads one main file (others come in through include); got {0}")]
    NginxFiles(usize),
}

/// Guess the product from the text: HAProxy's sections start lines with `frontend`,
/// `backend`, `listen`, `defaults` or `global`; nginx's blocks have braces and its
/// directives end with `;` (so nginx's own `listen 80;` is not a HAProxy section).
pub fn detect(text: &str) -> Option<Source> {
    let mut haproxy = 0;
    let mut nginx = 0;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || t.is_empty() {
            continue;
        }
        let first = t.split_whitespace().next().unwrap_or("");
        if haproxy_parse::SECTIONS.contains(&first) && !t.contains('{') && !t.ends_with(';') {
            haproxy += 1;
        }
        if t.ends_with('{') || t.ends_with(';') {
            nginx += 1;
        }
    }
    match (nginx > 0, haproxy > 0) {
        (true, false) => Some(Source::Nginx),
        (false, true) => Some(Source::Haproxy),
        (true, true) if nginx > haproxy * 3 => Some(Source::Nginx),
        (true, true) => Some(Source::Haproxy),
        _ => None,
    }
}

/// Import `files` (one nginx main file; one or more HAProxy files, read in order); `check`'s
/// errors of the result name `output`, the file it is written to (or `<stdout>`).
pub fn import(
    files: &[&Path],
    from: Option<Source>,
    output: &str,
) -> Result<Imported, ImportError> {
    let first = files
        .first()
        .ok_or_else(|| ImportError::Read("no file given".into()))?;
    let source = match from {
        Some(s) => s,
        None => {
            let text = std::fs::read_to_string(first).map_err(|e| {
                ImportError::Read(format!("{}: cannot read it: {e}", first.display()))
            })?;
            detect(&text).ok_or_else(|| ImportError::Unknown(first.display().to_string()))?
        }
    };
    let mut c = model::Config::default();
    match source {
        Source::Nginx => {
            if files.len() != 1 {
                return Err(ImportError::NginxFiles(files.len()));
            }
            let (list, read) = nginx_parse::parse_file(first).map_err(|e| {
                if e.at.line == 0 {
                    ImportError::Read(format!("{}: {}", e.at.file, e.message))
                } else {
                    ImportError::Syntax {
                        file: e.at.file,
                        line: e.at.line,
                        message: e.message,
                    }
                }
            })?;
            c.sources = read;
            nginx::import(&list, &mut c);
        }
        Source::Haproxy => {
            let (sections, skipped) =
                haproxy_parse::parse_files(files).map_err(ImportError::Read)?;
            c.sources = files.iter().map(|f| f.display().to_string()).collect();
            haproxy::import(&sections, &skipped, &mut c);
        }
    }
    mark_l4(&mut c);
    let toml = model::emit(&c, source.as_str());
    let check = crate::config::load_str(&toml, output)
        .map(|_| ())
        .map_err(|e| e.to_string());
    let mut notes = c.notes.clone();
    let mut seen = std::collections::HashSet::new();
    notes.retain(|n| seen.insert((n.at.clone(), n.directive.clone(), n.why.clone())));
    notes.sort_by(|a, b| (&a.at.file, a.at.line).cmp(&(&b.at.file, b.at.line)));
    Ok(Imported {
        source,
        listeners: c.listeners.len(),
        pools: c.pools.len(),
        servers: c.pools.iter().map(|p| p.servers.len()).sum(),
        toml,
        notes,
        check,
    })
}

/// A pool reached only from tcp/udp listeners takes no HTTP keys (Switchyard's rule).
fn mark_l4(c: &mut model::Config) {
    for p in &mut c.pools {
        let mut l4 = false;
        let mut l7 = false;
        for l in &c.listeners {
            let reaches = l.pool.as_deref() == Some(p.name.as_str())
                || l.routes.iter().any(|r| r.pool == p.name);
            if reaches {
                if l.protocol == "tcp" || l.protocol == "udp" {
                    l4 = true;
                } else {
                    l7 = true;
                }
            }
        }
        if l4 || l7 {
            p.l4 = l4 && !l7;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_both_products() {
        assert_eq!(
            detect("http {\n upstream a { server 1.2.3.4; }\n}\n"),
            Some(Source::Nginx)
        );
        assert_eq!(
            detect("global\n  daemon\nfrontend f\n  bind :80\n"),
            Some(Source::Haproxy)
        );
        assert_eq!(detect("hello\n"), None);
    }

    /// nginx's `listen 80;` starts with a HAProxy section's word: it is not one. Three
    /// server blocks with one-line locations were read as HAProxy (3 "sections" against
    /// 9 nginx lines, under the 3-to-1 the mix needs).
    #[test]
    fn nginx_listen_directives_are_not_haproxy_sections() {
        let text = "http {\n  server {\n    listen 9281;\n    location / { proxy_pass http://a; }\n  }\n  server {\n    listen 9282;\n    server_name a.example.com;\n    location / { proxy_pass http://a; }\n  }\n  server {\n    listen 9282;\n    server_name b.example.com;\n    location / { proxy_pass http://b; }\n  }\n}\n";
        assert_eq!(detect(text), Some(Source::Nginx));
    }

    /// `cookie SRV insert` without maxlife is a session cookie in HAProxy; ours has a
    /// Max-Age, and the import says so (with maxlife, the ttl carries it: no note).
    #[test]
    fn a_session_cookie_is_reported_as_approximated() {
        let dir = std::env::temp_dir().join(format!("sy-import-cookie-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let notes = |cookie: &str| {
            let file = dir.join("h.cfg");
            let text = format!(
                "frontend f\n  bind 127.0.0.1:8080\n  default_backend b\nbackend b\n  {cookie}\n  server s1 127.0.0.1:9001 cookie s1\n"
            );
            std::fs::write(&file, text).unwrap();
            import(&[file.as_path()], Some(Source::Haproxy), "imported.toml")
                .unwrap()
                .notes
        };
        let session = notes("cookie SRV insert indirect nocache");
        assert!(
            session
                .iter()
                .any(|n| n.approximated && n.why.contains("Max-Age")),
            "{session:?}"
        );
        let lasting = notes("cookie SRV insert maxlife 2h");
        assert!(
            !lasting.iter().any(|n| n.why.contains("Max-Age")),
            "{lasting:?}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// Refusing locations that overlap: the block rules in the order nginx picks a
    /// location (the first rule that matches answers), not in file order.
    #[test]
    fn nginx_refusals_are_ordered_as_nginx_picks_locations() {
        let dir = std::env::temp_dir().join(format!("sy-import-order-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("nginx.conf");
        let text = r#"events {}
http {
    upstream web { server 127.0.0.1:9001; }
    server {
        listen 127.0.0.1:8080;
        location / { proxy_pass http://web; }
        location /api/ { return 404; }
        location /old/ { return 410; }
        location ~ \.php$ { return 403; }
        location /api/internal/ { return 403; }
        location = /api/ { return 401; }
        location ^~ /static/ { return 404; }
    }
}
"#;
        std::fs::write(&file, text).unwrap();
        let i = import(&[file.as_path()], Some(Source::Nginx), "imported.toml").unwrap();
        let at = |needle: &str| {
            i.toml
                .find(needle)
                .unwrap_or_else(|| panic!("{needle} in\n{}", i.toml))
        };
        let order = [
            at("^/api/$"),
            at("^/static/"),
            at(r"'\.php$'"),
            at("^/api/internal/"),
            at("\"^/api/\""),
            at("^/old/"),
        ];
        assert!(order.is_sorted(), "{order:?}\n{}", i.toml);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

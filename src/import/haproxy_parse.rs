//! HAProxy's configuration syntax: sections (`global`, `defaults`, `frontend`, `backend`,
//! `listen`, …) of lines of words; `#` comments; double quotes (with `${VAR}` from the
//! environment), single quotes, backslash escapes; `.if` / `.elif` / `.else` / `.endif`
//! blocks. Several files (HAProxy's several `-f`) are read in order, each starting outside
//! any section.

use std::path::Path;

use super::model::Origin;

/// One line: its keyword and arguments.
#[derive(Debug, Clone)]
pub struct Line {
    pub words: Vec<String>,
    pub at: Origin,
}

impl Line {
    pub fn text(&self) -> String {
        self.words.join(" ")
    }

    pub fn kw(&self) -> &str {
        self.words.first().map_or("", String::as_str)
    }

    pub fn arg(&self, i: usize) -> &str {
        self.words.get(i).map_or("", String::as_str)
    }
}

/// A section: its kind (`frontend`, …), name, the `from` defaults it names, its lines.
#[derive(Debug, Clone)]
pub struct Section {
    pub kind: String,
    pub name: String,
    pub from: Option<String>,
    pub lines: Vec<Line>,
    pub at: Origin,
}

pub const SECTIONS: &[&str] = &[
    "global",
    "defaults",
    "frontend",
    "backend",
    "listen",
    "userlist",
    "peers",
    "resolvers",
    "cache",
    "program",
    "http-errors",
    "ring",
    "mailers",
    "log-forward",
    "crt-store",
    "traces",
    "fcgi-app",
];

/// Words of one line. `None` when it is blank or a comment.
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut w = String::new();
    let mut any = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' => break,
            c if c.is_whitespace() => {
                if any {
                    out.push(std::mem::take(&mut w));
                    any = false;
                }
            }
            '\\' => {
                if let Some(n) = chars.next() {
                    w.push(n);
                    any = true;
                }
            }
            '\'' => {
                any = true;
                for c in chars.by_ref() {
                    if c == '\'' {
                        break;
                    }
                    w.push(c);
                }
            }
            '"' => {
                any = true;
                while let Some(c) = chars.next() {
                    match c {
                        '"' => break,
                        '\\' => {
                            if let Some(n) = chars.next() {
                                w.push(n);
                            }
                        }
                        '$' if chars.peek() == Some(&'{') => {
                            chars.next();
                            let mut var = String::new();
                            for c in chars.by_ref() {
                                if c == '}' {
                                    break;
                                }
                                var.push(c);
                            }
                            w.push_str(&std::env::var(&var).unwrap_or_default());
                        }
                        c => w.push(c),
                    }
                }
            }
            c => {
                w.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(w);
    }
    out
}

/// What a `.if` condition is, as far as an import can tell: HAProxy features and versions
/// are those of a Switchyard import (no QUIC, no Lua), an environment variable is read.
fn condition(words: &[String]) -> Option<bool> {
    let expr = words[1..].join(" ");
    let e = expr.trim();
    let (neg, e) = match e.strip_prefix('!') {
        Some(r) => (true, r.trim()),
        None => (false, e),
    };
    let v = if let Some(var) = e.strip_prefix("defined(").and_then(|r| r.strip_suffix(')')) {
        std::env::var(var).is_ok()
    } else if e.starts_with("feature(") || e == "0" || e.is_empty() {
        // No HAProxy feature (QUIC, Lua, …) is Switchyard's.
        false
    } else if e == "1" {
        true
    } else {
        return None;
    };
    Some(v != neg)
}

/// Sections, and the lines left out with why.
pub type Parsed = (Vec<Section>, Vec<(Line, String)>);

/// Read the files in order into sections; lines a `.if` left out are returned as skipped
/// (with why) so the import can report them.
pub fn parse_files(paths: &[&Path]) -> Result<Parsed, String> {
    let mut sections: Vec<Section> = Vec::new();
    let mut skipped = Vec::new();
    for path in paths {
        let name = path.display().to_string();
        let src =
            std::fs::read_to_string(path).map_err(|e| format!("{name}: cannot read it: {e}"))?;
        // Lines outside any section at the start of a file.
        let mut current: Option<usize> = None;
        // `.if` nesting: (this branch is taken, some branch was taken, known).
        let mut conds: Vec<(bool, bool)> = Vec::new();
        for (n, raw) in src.lines().enumerate() {
            let at = Origin {
                file: name.clone(),
                line: n + 1,
            };
            let w = words(raw);
            if w.is_empty() {
                continue;
            }
            let line = Line { words: w, at };
            match line.kw() {
                ".if" => {
                    let parent = conds.iter().all(|c| c.0);
                    let v = condition(&line.words);
                    if v.is_none() && parent {
                        skipped.push((
                            line.clone(),
                            "a condition an import cannot evaluate: the block is left out"
                                .to_string(),
                        ));
                    }
                    let take = parent && v.unwrap_or(false);
                    conds.push((take, take));
                    continue;
                }
                ".elif" => {
                    if let Some(c) = conds.last_mut() {
                        let take = !c.1 && condition(&line.words).unwrap_or(false);
                        *c = (take, c.1 || take);
                    }
                    continue;
                }
                ".else" => {
                    if let Some(c) = conds.last_mut() {
                        *c = (!c.1, true);
                    }
                    continue;
                }
                ".endif" => {
                    conds.pop();
                    continue;
                }
                _ => {}
            }
            if !conds.iter().all(|c| c.0) {
                skipped.push((line, "inside a .if block whose condition is false here (e.g. feature(QUIC): Switchyard has no QUIC)".into()));
                continue;
            }
            if line.kw().starts_with('.') {
                skipped.push((
                    line,
                    "a HAProxy directive of the configuration language itself".into(),
                ));
                continue;
            }
            if SECTIONS.contains(&line.kw()) {
                let mut name = line.arg(1).to_string();
                let mut from = None;
                if line.arg(1) == "from" {
                    name.clear();
                    from = Some(line.arg(2).to_string());
                } else if line.arg(2) == "from" {
                    from = Some(line.arg(3).to_string());
                }
                sections.push(Section {
                    kind: line.kw().to_string(),
                    name,
                    from,
                    lines: Vec::new(),
                    at: line.at.clone(),
                });
                current = Some(sections.len() - 1);
                continue;
            }
            match current {
                Some(i) => sections[i].lines.push(line),
                None => skipped.push((line, "outside any section".into())),
            }
        }
    }
    Ok((sections, skipped))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_quotes_comments() {
        assert_eq!(
            words("  server s1 10.0.0.1:80 check # note"),
            ["server", "s1", "10.0.0.1:80", "check"]
        );
        assert_eq!(
            words("http-response set-header X \"a b\""),
            ["http-response", "set-header", "X", "a b"]
        );
        assert_eq!(
            words("option httpchk GET /\\ x"),
            ["option", "httpchk", "GET", "/ x"]
        );
        assert!(words("   # only a comment").is_empty());
    }

    #[test]
    fn sections_and_conditions() {
        let dir = std::env::temp_dir().join(format!("sy-hap-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("h.cfg");
        std::fs::write(
            &f,
            "global\n  daemon\nfrontend fe\n  bind :80\n.if feature(QUIC)\n  bind quic4@:443\n.else\n  bind :8443\n.endif\ndefaults d from base\n",
        )
        .unwrap();
        let (s, skipped) = parse_files(&[&f]).unwrap();
        assert_eq!(s.len(), 3);
        assert_eq!(s[1].lines.len(), 2);
        assert_eq!(s[1].lines[1].arg(1), ":8443");
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].0.at.line, 6);
        assert_eq!(
            (s[2].name.as_str(), s[2].from.as_deref()),
            ("d", Some("base"))
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

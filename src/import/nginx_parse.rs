//! nginx's configuration syntax: directives of words ending in `;` or a `{ … }` block,
//! `#` comments, quoted strings with escapes; `include` files (glob patterns, sorted, as
//! nginx does) are read in place, relative to the main file's directory.

use std::path::{Path, PathBuf};

use super::model::Origin;

/// One directive, with its block when it has one.
#[derive(Debug, Clone)]
pub struct Directive {
    pub name: String,
    pub args: Vec<String>,
    pub block: Option<Vec<Directive>>,
    pub at: Origin,
}

impl Directive {
    /// The directive as written (name and arguments), for reports.
    pub fn text(&self) -> String {
        let mut s = self.name.clone();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        if self.block.is_some() {
            s.push_str(" { … }");
        }
        s
    }
}

/// A problem that stops the import: the file cannot be read or is not nginx syntax.
#[derive(Debug, Clone)]
pub struct ParseError {
    pub at: Origin,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Word(String),
    Semi,
    Open,
    Close,
}

fn tokens(src: &str, file: &str) -> Result<Vec<(Tok, Origin)>, ParseError> {
    let mut out = Vec::new();
    let mut chars = src.chars().peekable();
    let mut line = 1;
    let at = |line| Origin {
        file: file.to_string(),
        line,
    };
    while let Some(&c) = chars.peek() {
        match c {
            '\n' => {
                line += 1;
                chars.next();
            }
            c if c.is_whitespace() => {
                chars.next();
            }
            '#' => {
                while let Some(&c) = chars.peek() {
                    if c == '\n' {
                        break;
                    }
                    chars.next();
                }
            }
            ';' => {
                chars.next();
                out.push((Tok::Semi, at(line)));
            }
            '{' => {
                chars.next();
                out.push((Tok::Open, at(line)));
            }
            '}' => {
                chars.next();
                out.push((Tok::Close, at(line)));
            }
            '"' | '\'' => {
                let quote = c;
                let start = line;
                chars.next();
                let mut w = String::new();
                loop {
                    match chars.next() {
                        None => {
                            return Err(ParseError {
                                at: at(start),
                                message: format!("unterminated {quote}string{quote}"),
                            });
                        }
                        Some('\\') => match chars.next() {
                            Some('n') => w.push('\n'),
                            Some('t') => w.push('\t'),
                            Some('r') => w.push('\r'),
                            Some(c) => w.push(c),
                            None => {}
                        },
                        Some(c) if c == quote => break,
                        Some(c) => {
                            if c == '\n' {
                                line += 1;
                            }
                            w.push(c);
                        }
                    }
                }
                out.push((Tok::Word(w), at(start)));
            }
            _ => {
                let mut w = String::new();
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() || c == ';' || c == '{' || c == '}' {
                        break;
                    }
                    // `${var}` keeps its braces.
                    if c == '$' {
                        w.push(c);
                        chars.next();
                        if chars.peek() == Some(&'{') {
                            for c in chars.by_ref() {
                                w.push(c);
                                if c == '}' {
                                    break;
                                }
                            }
                        }
                        continue;
                    }
                    // As nginx: a backslash escapes a quote or a backslash and spells
                    // \t \r \n; before anything else it stays (`\.php$` is a regex).
                    if c == '\\' {
                        chars.next();
                        match chars.peek().copied() {
                            Some(q @ ('"' | '\'' | '\\')) => {
                                w.push(q);
                                chars.next();
                            }
                            Some('t') => {
                                w.push('\t');
                                chars.next();
                            }
                            Some('n') => {
                                w.push('\n');
                                chars.next();
                            }
                            Some('r') => {
                                w.push('\r');
                                chars.next();
                            }
                            _ => w.push('\\'),
                        }
                        continue;
                    }
                    w.push(c);
                    chars.next();
                }
                out.push((Tok::Word(w), at(line)));
            }
        }
    }
    Ok(out)
}

/// Read `path` and every file it includes.
pub fn parse_file(path: &Path) -> Result<(Vec<Directive>, Vec<String>), ParseError> {
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    let mut files = Vec::new();
    let list = read(path, &base, &mut files, 0)?;
    Ok((list, files))
}

fn read(
    path: &Path,
    base: &Path,
    files: &mut Vec<String>,
    depth: usize,
) -> Result<Vec<Directive>, ParseError> {
    let name = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| ParseError {
        at: Origin {
            file: name.clone(),
            line: 0,
        },
        message: format!("cannot read it: {e}"),
    })?;
    files.push(name.clone());
    let toks = tokens(&src, &name)?;
    let mut i = 0;
    let list = block(&toks, &mut i, &name, false)?;
    expand(list, base, files, depth)
}

fn block(
    toks: &[(Tok, Origin)],
    i: &mut usize,
    file: &str,
    inner: bool,
) -> Result<Vec<Directive>, ParseError> {
    let mut out = Vec::new();
    let mut words: Vec<(String, Origin)> = Vec::new();
    while *i < toks.len() {
        let (t, at) = &toks[*i];
        *i += 1;
        match t {
            Tok::Word(w) => words.push((w.clone(), at.clone())),
            Tok::Semi | Tok::Open => {
                let Some(((name, at), rest)) = words.split_first() else {
                    return Err(ParseError {
                        at: at.clone(),
                        message: format!(
                            "unexpected \"{}\"",
                            if *t == Tok::Semi { ";" } else { "{" }
                        ),
                    });
                };
                let args = rest.iter().map(|(w, _)| w.clone()).collect();
                let sub = if *t == Tok::Open {
                    Some(block(toks, i, file, true)?)
                } else {
                    None
                };
                out.push(Directive {
                    name: name.clone(),
                    args,
                    block: sub,
                    at: at.clone(),
                });
                words.clear();
            }
            Tok::Close => {
                if !inner {
                    return Err(ParseError {
                        at: at.clone(),
                        message: "unexpected \"}\"".into(),
                    });
                }
                if let Some((w, at)) = words.first() {
                    return Err(ParseError {
                        at: at.clone(),
                        message: format!("directive \"{w}\" has no \";\" before \"}}\""),
                    });
                }
                return Ok(out);
            }
        }
    }
    if let Some((w, at)) = words.first() {
        return Err(ParseError {
            at: at.clone(),
            message: format!("directive \"{w}\" has no \";\""),
        });
    }
    if inner {
        return Err(ParseError {
            at: Origin {
                file: file.to_string(),
                line: toks.last().map_or(0, |t| t.1.line),
            },
            message: "unexpected end of file, expecting \"}\"".into(),
        });
    }
    Ok(out)
}

/// Replace every `include` by the directives of the files it names.
fn expand(
    list: Vec<Directive>,
    base: &Path,
    files: &mut Vec<String>,
    depth: usize,
) -> Result<Vec<Directive>, ParseError> {
    let mut out = Vec::new();
    for mut d in list {
        if d.name == "include" && d.block.is_none() {
            if depth > 16 {
                return Err(ParseError {
                    at: d.at,
                    message: "includes nested more than 16 deep (a loop?)".into(),
                });
            }
            let pattern = d.args.first().cloned().unwrap_or_default();
            for path in include_paths(&pattern, base, &d.at)? {
                out.extend(read(&path, base, files, depth + 1)?);
            }
            continue;
        }
        if let Some(b) = d.block.take() {
            d.block = Some(expand(b, base, files, depth)?);
        }
        out.push(d);
    }
    Ok(out)
}

fn include_paths(pattern: &str, base: &Path, at: &Origin) -> Result<Vec<PathBuf>, ParseError> {
    let full = if Path::new(pattern).is_absolute() {
        PathBuf::from(pattern)
    } else {
        base.join(pattern)
    };
    let text = full.display().to_string();
    if !text.contains(['*', '?', '[']) {
        if !full.exists() {
            return Err(ParseError {
                at: at.clone(),
                message: format!("include {pattern}: {text} does not exist"),
            });
        }
        return Ok(vec![full]);
    }
    let mut paths: Vec<PathBuf> = glob::glob(&text)
        .map_err(|e| ParseError {
            at: at.clone(),
            message: format!("include {pattern}: {e}"),
        })?
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    paths.sort();
    Ok(paths)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directives_blocks_quotes_and_lines() {
        let toks = tokens("a b;\n# c\nhttp {\n  x \"y z\" 'w\\'' \\.php$;\n}\n", "f").unwrap();
        let mut i = 0;
        let list = block(&toks, &mut i, "f", false).unwrap();
        assert_eq!(list[0].name, "a");
        assert_eq!(list[1].name, "http");
        let inner = list[1].block.as_ref().unwrap();
        assert_eq!(inner[0].args, ["y z", "w'", "\\.php$"]);
        assert_eq!(inner[0].at.line, 4);
    }

    #[test]
    fn errors_name_their_line() {
        let toks = tokens("http {\n  a b\n}\n", "f").unwrap();
        let mut i = 0;
        let e = block(&toks, &mut i, "f", false).unwrap_err();
        assert_eq!(
            (e.at.line, e.message.as_str()),
            (2, "directive \"a\" has no \";\" before \"}\"")
        );
    }

    #[test]
    fn includes_are_read_in_place_with_globs() {
        let dir = std::env::temp_dir().join(format!("sy-nginx-inc-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("conf.d")).unwrap();
        std::fs::write(
            dir.join("nginx.conf"),
            "http {\n include conf.d/*.conf;\n}\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("conf.d/b.conf"),
            "upstream b { server 10.0.0.2; }\n",
        )
        .unwrap();
        std::fs::write(
            dir.join("conf.d/a.conf"),
            "upstream a { server 10.0.0.1; }\n",
        )
        .unwrap();
        let (list, files) = parse_file(&dir.join("nginx.conf")).unwrap();
        let http = list[0].block.as_ref().unwrap();
        assert_eq!(http[0].args, ["a"]);
        assert_eq!(http[1].args, ["b"]);
        assert!(http[0].at.file.ends_with("a.conf"));
        assert_eq!(files.len(), 3);
        let _ = std::fs::remove_dir_all(&dir);
    }
}

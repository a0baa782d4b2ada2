//! The shape of the code, checked: no source file over 800 lines, no two files of one folder
//! that import each other (directly or round a loop), and DESIGN.md's layout table naming
//! exactly the files under `src/` (one row each), so the map stays true.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");

/// Every `.rs` file under `src/`, as `src/...` paths.
fn sources() -> Vec<String> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let mut files = Vec::new();
    walk(&Path::new(ROOT).join("src"), &mut files);
    let mut names: Vec<String> = files
        .iter()
        .map(|p| {
            p.strip_prefix(ROOT)
                .unwrap()
                .to_string_lossy()
                .replace('\\', "/")
        })
        .collect();
    names.sort();
    names
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(Path::new(ROOT).join(rel)).unwrap()
}

#[test]
fn no_source_file_is_over_800_lines() {
    let long: Vec<String> = sources()
        .into_iter()
        .filter_map(|f| {
            let n = read(&f).lines().count();
            (n > 800).then(|| format!("{f} ({n})"))
        })
        .collect();
    assert!(long.is_empty(), "over 800 lines: {long:?}");
}

/// The code of a file without its `#[cfg(test)] mod tests` (tests may reach anywhere).
fn code(src: &str) -> &str {
    src.split("#[cfg(test)]\nmod tests").next().unwrap()
}

/// Whether `src` (a file in module `module`) refers to its sibling `other`.
fn refers_to(src: &str, module: &str, other: &str) -> bool {
    let word = |text: &str, at: usize, len: usize| {
        let after = text[at + len..].chars().next();
        !after.is_some_and(|c| c.is_alphanumeric() || c == '_')
    };
    let direct = [format!("super::{other}"), format!("{module}::{other}")];
    if direct.iter().any(|p| {
        src.match_indices(p.as_str())
            .any(|(at, m)| word(src, at, m.len()))
    }) {
        return true;
    }
    // `use super::{a, other::X}` and `use crate::m::{other, ...}`.
    for prefix in ["super::{".to_string(), format!("{module}::{{")] {
        for (at, m) in src.match_indices(prefix.as_str()) {
            let inner = &src[at + m.len()..];
            let inner = &inner[..inner.find('}').unwrap_or(inner.len())];
            if inner
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .any(|w| w == other)
            {
                return true;
            }
        }
    }
    false
}

#[test]
fn no_two_files_of_a_folder_import_each_other() {
    // Siblings: the files of one folder (not its mod.rs, which declares them) and, for a
    // folder `x/`, the file `x.rs` beside it is its parent, not a sibling.
    let mut folders: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for f in sources() {
        let (dir, name) = f.rsplit_once('/').unwrap();
        let stem = name.trim_end_matches(".rs");
        if !matches!(stem, "mod" | "lib" | "main") {
            folders
                .entry(dir.to_string())
                .or_default()
                .push(stem.into());
        }
    }
    let mut cycles = Vec::new();
    for (dir, files) in &folders {
        let module = match dir.strip_prefix("src") {
            Some("") => "crate".to_string(),
            Some(rest) => format!("crate{}", rest.replace('/', "::")),
            None => continue,
        };
        let edges: BTreeMap<&str, BTreeSet<&str>> = files
            .iter()
            .map(|f| {
                let src = read(&format!("{dir}/{f}.rs"));
                let to = files
                    .iter()
                    .filter(|o| *o != f && refers_to(code(&src), &module, o))
                    .map(String::as_str)
                    .collect();
                (f.as_str(), to)
            })
            .collect();
        // A loop: some file reaches itself.
        for start in edges.keys() {
            let mut seen = BTreeSet::new();
            let mut stack: Vec<&str> = edges[start].iter().copied().collect();
            while let Some(n) = stack.pop() {
                if n == *start {
                    cycles.push(format!("{dir}/{start}.rs"));
                    break;
                }
                if seen.insert(n) {
                    stack.extend(edges[n].iter().copied());
                }
            }
        }
    }
    assert!(
        cycles.is_empty(),
        "files on a loop of imports between siblings: {cycles:?}"
    );
}

#[test]
fn design_md_lists_exactly_the_source_files() {
    let design = read("DESIGN.md");
    let listed: BTreeSet<String> = design
        .lines()
        .filter(|l| l.starts_with("| `src/"))
        .flat_map(|l| {
            let first = l.split('|').nth(1).unwrap_or_default();
            first
                .split('`')
                .filter(|w| w.starts_with("src/") && w.ends_with(".rs"))
                .map(String::from)
                .collect::<Vec<_>>()
        })
        .collect();
    let actual: BTreeSet<String> = sources().into_iter().collect();
    let missing: Vec<&String> = actual.difference(&listed).collect();
    let stale: Vec<&String> = listed.difference(&actual).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "DESIGN.md's layout table: files without a row {missing:?}; rows without a file {stale:?}"
    );
}

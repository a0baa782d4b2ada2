//! The docs' list of metrics (`docs/admin.md`, between two marker lines), made from the
//! catalog. A test keeps the file equal to it; `SWITCHYARD_BLESS=1 cargo test --lib
//! admin::catalog` writes it after a change to the catalog.

use std::fmt::Write as _;

use super::describe::{Json, Metric, Scope};
use crate::observe::metrics::Kind;

/// The lines that open and close the generated list in `docs/admin.md`.
pub const BEGIN: &str = "<!-- metrics: generated from src/admin/catalog (SWITCHYARD_BLESS=1 cargo test --lib admin::catalog) -->";
pub const END: &str = "<!-- metrics: end -->";

/// The list: a section per scope, a table row per metric.
pub fn markdown() -> String {
    let mut out = String::new();
    for scope in Scope::ALL {
        let metrics: Vec<&Metric> = super::all().filter(|m| m.scope() == scope).collect();
        if metrics.is_empty() {
            continue;
        }
        let _ = writeln!(out, "### {}\n", scope.title());
        let _ = writeln!(
            out,
            "{} In `/status`: {}.\n",
            scope.about(),
            if scope == Scope::Process {
                "the document itself".to_string()
            } else {
                format!("`{}`", scope.json_object())
            }
        );
        out.push_str("| metric | type | meaning | `/status` | counted in |\n");
        out.push_str("|---|---|---|---|---|\n");
        for m in metrics {
            let _ = writeln!(
                out,
                "| `{}` | {} | {} | {} | {} |",
                name_with_labels(m),
                m.kind.as_str(),
                m.help.replace('|', "\\|"),
                status_key(m),
                m.counted_in.replace('|', "\\|"),
            );
        }
        out.push('\n');
    }
    out
}

fn name_with_labels(m: &Metric) -> String {
    if m.labels.is_empty() {
        m.name.to_string()
    } else {
        format!("{}{{{}}}", m.name, m.labels.join(","))
    }
}

/// How the metric shows in `/status`.
fn status_key(m: &Metric) -> String {
    let by = if m.labels.is_empty() {
        String::new()
    } else {
        format!(" by {}", m.labels.join(", "))
    };
    match m.json {
        Json::Number(k) if m.kind == Kind::Histogram => {
            format!("`{k}`{by}: `count`, `sum`, `buckets`")
        }
        Json::Number(k) => format!("`{k}`{by}"),
        Json::Flag(k) => format!("`{k}` (true/false){by}"),
        Json::Millis(k) => format!("`{k}` (milliseconds){by}"),
        Json::OneOf(k) => format!("`{k}`: the {} that is 1", m.labels[0]),
        Json::Labels(k) => m
            .labels
            .iter()
            .map(|l| {
                if k.is_empty() {
                    format!("`{l}`")
                } else {
                    format!("`{k}.{l}`")
                }
            })
            .collect::<Vec<_>>()
            .join(", "),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/admin.md");

    #[test]
    fn the_docs_list_every_metric_as_the_catalog_describes_it() {
        let text = std::fs::read_to_string(DOC).unwrap();
        let start = text
            .find(BEGIN)
            .expect("the opening marker line in docs/admin.md")
            + BEGIN.len();
        let end = text
            .find(END)
            .expect("the closing marker line in docs/admin.md");
        let want = format!("\n\n{}", markdown());
        if std::env::var_os("SWITCHYARD_BLESS").is_some() {
            let new = format!("{}{}{}", &text[..start], want, &text[end..]);
            std::fs::write(DOC, new).unwrap();
            return;
        }
        let got = &text[start..end];
        for m in super::super::all() {
            assert!(
                got.contains(&format!("`{}", m.name)),
                "docs/admin.md does not name {}: run SWITCHYARD_BLESS=1 cargo test --lib admin::catalog",
                m.name
            );
        }
        assert!(
            got == want,
            "docs/admin.md's list of metrics differs from the catalog: run SWITCHYARD_BLESS=1 cargo test --lib admin::catalog"
        );
    }
}

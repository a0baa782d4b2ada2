//! Reading the admin listener's `/metrics` page in the tests: every line parsed and the
//! format asserted (HELP and TYPE before each family, samples inside their family, counters
//! named `_total`, histograms as `_bucket`/`_sum`/`_count`), samples by name and labels.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use super::common::get;

/// One sample of the page.
pub type Key = (String, BTreeMap<String, String>);

/// A parsed `/metrics` page: every sample by name and labels, and each family's kind.
#[derive(Debug)]
pub struct Page {
    pub samples: BTreeMap<Key, f64>,
    pub kinds: BTreeMap<String, String>,
}

impl Page {
    pub fn get(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let labels = labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.samples.get(&(name.to_string(), labels)).copied()
    }

    /// The value, which must be there.
    pub fn at(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.get(name, labels)
            .unwrap_or_else(|| panic!("no sample {name}{labels:?} in {:#?}", self.samples))
    }

    /// The label sets a family has samples for.
    pub fn label_sets(&self, name: &str) -> Vec<BTreeMap<String, String>> {
        self.samples
            .keys()
            .filter(|(n, _)| n == name)
            .map(|(_, l)| l.clone())
            .collect()
    }
}

fn valid_name(name: &str) -> bool {
    let mut c = name.chars();
    c.next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_' || c == ':')
        && c.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
}

/// `{a="x",b="y"}` at the start of `s`: the labels (unescaped) and the rest of `s`.
fn parse_labels(s: &str, line: &str) -> (BTreeMap<String, String>, String) {
    let mut labels = BTreeMap::new();
    let mut chars = s.chars().peekable();
    assert_eq!(chars.next(), Some('{'), "{line}");
    loop {
        let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=')).collect();
        assert!(
            valid_name(&key) && !key.contains(':'),
            "label {key:?}: {line}"
        );
        assert_eq!(chars.next(), Some('='), "{line}");
        assert_eq!(chars.next(), Some('"'), "{line}");
        let mut value = String::new();
        loop {
            match chars.next() {
                Some('\\') => match chars.next() {
                    Some('\\') => value.push('\\'),
                    Some('"') => value.push('"'),
                    Some('n') => value.push('\n'),
                    other => panic!("bad escape \\{other:?} in {line}"),
                },
                Some('"') => break,
                Some(c) => value.push(c),
                None => panic!("unterminated label value: {line}"),
            }
        }
        assert!(
            labels.insert(key.clone(), value).is_none(),
            "label {key} twice: {line}"
        );
        match chars.next() {
            Some(',') => continue,
            Some('}') => break,
            other => panic!("expected , or }} after a label, got {other:?}: {line}"),
        }
    }
    (labels, chars.collect())
}

/// Parse a page, asserting the format: each family opens with `# HELP name …` then
/// `# TYPE name counter|gauge` and appears once; its samples follow it, named after it;
/// counters end in `_total`; values parse; no sample twice; no family without a sample.
pub fn parse(text: &str) -> Page {
    assert!(text.ends_with('\n'), "the page ends with a line feed");
    let mut samples = BTreeMap::new();
    let mut kinds = BTreeMap::new();
    let mut family: Option<String> = None;
    let mut pending_help: Option<String> = None;
    let mut with_samples = BTreeSet::new();
    for line in text.lines() {
        assert!(!line.is_empty(), "empty line in:\n{text}");
        if let Some(rest) = line.strip_prefix("# HELP ") {
            assert!(pending_help.is_none(), "HELP without TYPE before {line}");
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(valid_name(name) && !help.is_empty(), "{line}");
            pending_help = Some(name.to_string());
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert_eq!(
                pending_help.take().as_deref(),
                Some(name),
                "TYPE after its HELP: {line}"
            );
            assert!(matches!(kind, "counter" | "gauge" | "histogram"), "{line}");
            assert!(kind != "counter" || name.ends_with("_total"), "{line}");
            assert!(
                kinds.insert(name.to_string(), kind.to_string()).is_none(),
                "family {name} declared twice"
            );
            family = Some(name.to_string());
        } else {
            assert!(!line.starts_with('#'), "unknown comment {line}");
            assert!(
                pending_help.is_none(),
                "sample between HELP and TYPE: {line}"
            );
            let end = line.find(['{', ' ']).expect("name then value");
            let name = &line[..end];
            let fam = family.as_deref().unwrap_or_default();
            let of_family = if kinds.get(fam).map(String::as_str) == Some("histogram") {
                ["_bucket", "_sum", "_count"]
                    .iter()
                    .any(|s| name.strip_suffix(s) == Some(fam))
            } else {
                name == fam
            };
            assert!(of_family, "sample outside its family: {line}");
            let (labels, rest) = if line[end..].starts_with('{') {
                parse_labels(&line[end..], line)
            } else {
                (BTreeMap::new(), line[end..].to_string())
            };
            let value = rest.strip_prefix(' ').expect("one space before the value");
            let value: f64 = match value {
                "NaN" => f64::NAN,
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("value {v:?}: {line}")),
            };
            with_samples.insert(fam.to_string());
            assert!(
                samples.insert((name.to_string(), labels), value).is_none(),
                "sample twice: {line}"
            );
        }
    }
    assert!(pending_help.is_none(), "HELP at the end without TYPE");
    for name in kinds.keys() {
        assert!(with_samples.contains(name), "family {name} has no sample");
    }
    Page { samples, kinds }
}

pub async fn scrape(admin: SocketAddr) -> Page {
    let a = get(admin, "/metrics").await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.headers["content-type"],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    parse(&a.text())
}

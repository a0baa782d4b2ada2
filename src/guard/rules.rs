//! Request rules that refuse (a minimal WAF, HAProxy's `http-request deny if …`): by method,
//! path regex and header regex; every condition a rule has must hold. Matched on bytes
//! (`regex::bytes`), so a path that is not UTF-8 is still checked, never skipped.

use http::HeaderName;
use regex::bytes::Regex;

/// One refusing rule.
#[derive(Debug, Clone)]
pub struct RequestRule {
    /// Any of these methods (upper case as sent); empty: any method.
    pub methods: Vec<String>,
    /// Matched against each of the paths the caller gives (without the query): the proxy
    /// gives the path as sent and, when it differs, its normalised form, so an encoding
    /// (`%2e%2e`, `//`) neither hides a path from a rule nor is needed to match one.
    pub path: Option<Regex>,
    /// A header any of whose values matches.
    pub header: Option<(HeaderName, Regex)>,
}

impl RequestRule {
    /// Whether the request matches every condition of the rule. `header_matches(name, re)`
    /// says whether a value of header `name` matches `re`.
    pub fn matches(
        &self,
        method: &str,
        paths: &[&[u8]],
        header_matches: impl FnOnce(&HeaderName, &Regex) -> bool,
    ) -> bool {
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == method) {
            return false;
        }
        if let Some(re) = &self.path
            && !paths.iter().any(|p| re.is_match(p))
        {
            return false;
        }
        match &self.header {
            Some((name, re)) => header_matches(name, re),
            None => true,
        }
    }
}

/// The index of the first rule that refuses the request, if any.
pub fn first_match(
    rules: &[RequestRule],
    method: &str,
    paths: &[&[u8]],
    header_matches: impl Fn(&HeaderName, &Regex) -> bool,
) -> Option<usize> {
    rules
        .iter()
        .position(|r| r.matches(method, paths, &header_matches))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(methods: &[&str], path: Option<&str>, header: Option<(&str, &str)>) -> RequestRule {
        RequestRule {
            methods: methods.iter().map(|m| m.to_string()).collect(),
            path: path.map(|p| Regex::new(p).unwrap()),
            header: header.map(|(n, v)| {
                (
                    HeaderName::from_bytes(n.as_bytes()).unwrap(),
                    Regex::new(v).unwrap(),
                )
            }),
        }
    }

    #[test]
    fn every_condition_of_a_rule_must_hold() {
        let headers = [("user-agent", &b"sqlmap/1.7"[..]), ("x-a", b"1")];
        let values = |name: &HeaderName, re: &Regex| {
            headers
                .iter()
                .any(|(n, v)| *n == name.as_str() && re.is_match(v))
        };
        let rules = [
            rule(&["TRACE", "TRACK"], None, None),
            rule(&[], Some(r"^/admin(/|$)"), None),
            rule(&["POST"], Some(r"\.php$"), None),
            rule(&[], None, Some(("user-agent", r"(?i)sqlmap|nikto"))),
        ];
        assert_eq!(first_match(&rules, "TRACE", &[b"/"], values), Some(0));
        assert_eq!(first_match(&rules, "GET", &[b"/admin/x"], values), Some(1));
        assert_eq!(first_match(&rules, "GET", &[b"/x.php"], values), Some(3));
        let none = |_: &HeaderName, _: &Regex| false;
        assert_eq!(first_match(&rules, "GET", &[b"/x.php"], none), None);
        assert_eq!(first_match(&rules, "POST", &[b"/x.php"], none), Some(2));
        assert_eq!(first_match(&rules, "GET", &[b"/administrator"], none), None);
        assert_eq!(first_match(&rules, "GET", &[b"/\xff/admin"], none), None);
        assert_eq!(
            first_match(&rules, "GET", &[b"/a/..%2Fadmin/", b"/admin/"], none),
            Some(1),
            "the normalised path is matched too"
        );
    }
}

//! Request rules that refuse (a minimal WAF, HAProxy's `http-request deny if …`): by method,
//! path regex and header regex; every condition a rule has must hold. Matched on bytes
//! (`regex::bytes`), so a path that is not UTF-8 is still checked, never skipped.

use regex::bytes::Regex;

/// One refusing rule.
#[derive(Debug, Clone)]
pub struct RequestRule {
    /// Any of these methods (upper case as sent); empty: any method.
    pub methods: Vec<String>,
    /// Matched against the path with its query (`/a/b?c=d`), as the client sent it.
    pub path: Option<Regex>,
    /// A header (lower-case name) any of whose values matches.
    pub header: Option<(String, Regex)>,
}

impl RequestRule {
    /// Whether the request matches every condition of the rule. `header_values(name)` gives
    /// the values of a header, `name` in lower case.
    pub fn matches<'a, I>(
        &self,
        method: &str,
        path_and_query: &[u8],
        header_values: impl FnOnce(&str) -> I,
    ) -> bool
    where
        I: Iterator<Item = &'a [u8]>,
    {
        if !self.methods.is_empty() && !self.methods.iter().any(|m| m == method) {
            return false;
        }
        if let Some(re) = &self.path
            && !re.is_match(path_and_query)
        {
            return false;
        }
        match &self.header {
            Some((name, re)) => header_values(name).any(|v| re.is_match(v)),
            None => true,
        }
    }
}

/// The index of the first rule that refuses the request, if any.
pub fn first_match<'a, I>(
    rules: &[RequestRule],
    method: &str,
    path_and_query: &[u8],
    header_values: impl Fn(&str) -> I,
) -> Option<usize>
where
    I: Iterator<Item = &'a [u8]>,
{
    rules
        .iter()
        .position(|r| r.matches(method, path_and_query, &header_values))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(methods: &[&str], path: Option<&str>, header: Option<(&str, &str)>) -> RequestRule {
        RequestRule {
            methods: methods.iter().map(|m| m.to_string()).collect(),
            path: path.map(|p| Regex::new(p).unwrap()),
            header: header.map(|(n, v)| (n.to_string(), Regex::new(v).unwrap())),
        }
    }

    #[test]
    fn every_condition_of_a_rule_must_hold() {
        let headers = [("user-agent", &b"sqlmap/1.7"[..]), ("x-a", b"1")];
        let values = |name: &str| {
            headers
                .iter()
                .filter(move |(n, _)| *n == name)
                .map(|(_, v)| *v)
                .collect::<Vec<_>>()
                .into_iter()
        };
        let rules = [
            rule(&["TRACE", "TRACK"], None, None),
            rule(&[], Some(r"^/admin(/|$)"), None),
            rule(&["POST"], Some(r"\.php$"), None),
            rule(&[], None, Some(("user-agent", r"(?i)sqlmap|nikto"))),
        ];
        assert_eq!(first_match(&rules, "TRACE", b"/", values), Some(0));
        assert_eq!(first_match(&rules, "GET", b"/admin/x", values), Some(1));
        assert_eq!(first_match(&rules, "GET", b"/x.php", values), Some(3));
        let none = |_: &str| Vec::<&[u8]>::new().into_iter();
        assert_eq!(first_match(&rules, "GET", b"/x.php", none), None);
        assert_eq!(first_match(&rules, "POST", b"/x.php", none), Some(2));
        assert_eq!(first_match(&rules, "GET", b"/administrator", none), None);
        assert_eq!(first_match(&rules, "GET", b"/\xff/admin", none), None);
    }
}

//! The tests of the algorithm spellings suggested for an unknown `algorithm` (once in
//! `validate/algorithm.rs`), moved here verbatim.

use super::help;

#[cfg(test)]
mod tests {
    use super::help;

    #[test]
    fn near_misses_and_other_spellings_get_a_suggestion() {
        for (written, starts) in [
            ("least_connections", "did you mean \"least_conn\"?"),
            (
                "leastconn",
                "did you mean \"least_conn\"? (HAProxy's leastconn)",
            ),
            (
                "roundrobin",
                "did you mean \"round_robin\"? (HAProxy's roundrobin)",
            ),
            ("static-rr", "did you mean \"round_robin\"?"),
            ("source", "did you mean \"ip_hash\"? (HAProxy's source"),
            (
                "LEAST_CONN",
                "names are lowercase: write algorithm = \"least_conn\"",
            ),
            ("magelv", "did you mean \"maglev\"?"),
            (
                "random two least_conn",
                "nginx's `random two` is power of two choices",
            ),
            (
                "hash $request_uri consistent",
                "that is nginx's hash directive: write algorithm = \"hash\" and hash_key = \"uri\"",
            ),
            (
                "hash $cookie_sid",
                "that is nginx's hash directive: write algorithm = \"hash\" and hash_key = \"cookie:sid\"",
            ),
            (
                "url_param userId",
                "HAProxy's `balance url_param` is a hash: write algorithm = \"hash\" and hash_key = \"query:userId\"",
            ),
            (
                "hash $cookie_SessionID",
                "that is nginx's hash directive: write algorithm = \"hash\" and hash_key = \"cookie:SessionID\"",
            ),
            (
                "hash $http_x_user consistent",
                "that is nginx's hash directive: write algorithm = \"hash\" and hash_key = \"header:x-user\"",
            ),
            (
                "uri",
                "HAProxy's `balance uri` is a hash: write algorithm = \"hash\" and hash_key = \"uri\"",
            ),
            (
                "hdr(X-User)",
                "HAProxy's `balance hdr()` is a hash: write algorithm = \"hash\" and hash_key = \"header:x-user\"",
            ),
            ("first", "HAProxy's `balance first`"),
        ] {
            let h = help(written);
            assert!(h.starts_with(starts), "{written}: {h}");
        }
        assert!(help("first").contains("not supported"));
        // Nothing close: the list.
        assert!(help("fastest").starts_with("use one of: round_robin, weighted_round_robin"));
    }
}

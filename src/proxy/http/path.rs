//! The path routes match: the request's path normalised the way nginx normalises `$uri`
//! before it looks for a `location`.
//!
//! 1. Every `%XX` is decoded, `%2F` included, and a decoded byte counts as the byte it
//!    stands for (so `%2F` separates segments and `%2E%2E` is `..`); a `%` not followed by
//!    two hex digits, or a decoded NUL, is a bad request (400), as in nginx.
//! 2. Runs of `/` are merged into one (nginx's `merge_slashes on`, its default).
//! 3. `.` segments are dropped and `..` removes the segment before it (RFC 3986 §5.2.4); a
//!    `..` that would climb above `/` is a bad request (400), as in nginx.
//!
//! The query is not touched. A target that does not start with `/` (`*` of `OPTIONS *`) is
//! left as it is. What the server receives is the target as the client sent it: nginx
//! forwards the original URI too when `proxy_pass` has no URI part, and Switchyard never
//! rewrites a path. Matching the normalised form means that `/public/..%2Fadmin/` is routed
//! (and allowed, denied, limited) as `/admin/` is, whatever the server makes of it.
//!
//! Most paths need nothing: [`normalise`] answers without copying when the path has no `%`,
//! no `//` and no `/.`, which one pass over its bytes finds.

/// Why a path cannot be normalised: the request is refused with 400.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadPath {
    /// A `%` not followed by two hex digits.
    Escape,
    /// `%00`.
    Nul,
    /// A `..` above the root.
    AboveRoot,
}

impl BadPath {
    pub fn reason(self) -> &'static str {
        match self {
            BadPath::Escape => "a % in the path is not followed by two hex digits",
            BadPath::Nul => "the path decodes to a NUL byte",
            BadPath::AboveRoot => "the path climbs above / with ..",
        }
    }
}

/// Whether `path` is already in normal form (no `%`, no `//`, no `/.`), or does not start
/// with `/`.
pub fn is_plain(path: &[u8]) -> bool {
    if path.first() != Some(&b'/') {
        return true;
    }
    let mut prev_slash = false;
    for &b in path {
        match b {
            b'%' => return false,
            b'/' if prev_slash => return false,
            b'.' if prev_slash => return false,
            _ => {}
        }
        prev_slash = b == b'/';
    }
    true
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// The normal form of `path` (a path without its query): `path` itself when it is plain,
/// else written into `out` (cleared first). Decoded bytes that are not UTF-8 are kept as
/// they are; routes compare bytes.
pub fn normalise<'a>(path: &'a [u8], out: &'a mut Vec<u8>) -> Result<&'a [u8], BadPath> {
    if is_plain(path) {
        return Ok(path);
    }
    out.clear();
    // Decoded, then the segments resolved in place: `out` holds the result so far, which
    // always starts with `/`.
    let mut i = 0;
    let mut decoded = Vec::new();
    let bytes: &[u8] = if path.contains(&b'%') {
        decoded.reserve(path.len());
        while i < path.len() {
            let b = path[i];
            if b == b'%' {
                let (Some(h), Some(l)) = (
                    path.get(i + 1).copied().and_then(hex),
                    path.get(i + 2).copied().and_then(hex),
                ) else {
                    return Err(BadPath::Escape);
                };
                let v = h << 4 | l;
                if v == 0 {
                    return Err(BadPath::Nul);
                }
                decoded.push(v);
                i += 3;
            } else {
                decoded.push(b);
                i += 1;
            }
        }
        &decoded
    } else {
        path
    };
    out.push(b'/');
    for segment in bytes.split(|&b| b == b'/').skip(1) {
        match segment {
            b"" => {}
            b"." => {}
            b".." => {
                if out.len() == 1 {
                    return Err(BadPath::AboveRoot);
                }
                // Drop the last segment and its `/`, keeping the `/` before it.
                if out.last() == Some(&b'/') {
                    out.pop();
                }
                while out.last().is_some_and(|&b| b != b'/') {
                    out.pop();
                }
            }
            s => {
                if out.last() != Some(&b'/') {
                    out.push(b'/');
                }
                out.extend_from_slice(s);
            }
        }
    }
    // A path that ended in `/`, `/.` or `/..` names a directory: it keeps its last `/`.
    let ends_dir = bytes.ends_with(b"/") || bytes.ends_with(b"/.") || bytes.ends_with(b"/..");
    if ends_dir && out.last() != Some(&b'/') {
        out.push(b'/');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(p: &str) -> Result<String, BadPath> {
        let mut out = Vec::new();
        normalise(p.as_bytes(), &mut out).map(|b| String::from_utf8_lossy(b).into_owned())
    }

    #[test]
    fn plain_paths_are_not_copied() {
        let mut out = Vec::new();
        let p = b"/api/v1/users.json";
        let n = normalise(p, &mut out).unwrap();
        assert!(std::ptr::eq(n, &p[..]));
        assert!(is_plain(b"*") && is_plain(b"/a.b/c") && !is_plain(b"/a/.b"));
    }

    #[test]
    fn nginx_normal_form() {
        for (raw, want) in [
            ("/a//b", "/a/b"),
            ("//a///b/", "/a/b/"),
            ("/a/./b", "/a/b"),
            ("/a/b/..", "/a/"),
            ("/a/b/../c", "/a/c"),
            ("/a/.", "/a/"),
            ("/a%2Fb", "/a/b"),
            ("/public/..%2Fadmin/", "/admin/"),
            ("/%2e%2E/", "Err"),
            ("/a/%2e%2e/b", "/b"),
            ("/%61dmin", "/admin"),
            ("/a%25b", "/a%b"),
            ("/a%252Fb", "/a%2Fb"),
            ("/..", "Err"),
            ("/a/../..", "Err"),
            ("/a%2", "Err"),
            ("/a%zz", "Err"),
            ("/a%00b", "Err"),
            ("/.hidden/x", "/.hidden/x"),
            ("/a/..b", "/a/..b"),
            ("/", "/"),
            ("/.", "/"),
        ] {
            let got = norm(raw).unwrap_or_else(|_| "Err".into());
            assert_eq!(got, want, "{raw}");
        }
        assert_eq!(norm("/a%zz"), Err(BadPath::Escape));
        assert_eq!(norm("/%00"), Err(BadPath::Nul));
        assert_eq!(norm("/../x"), Err(BadPath::AboveRoot));
    }
}

//! `GET /`: the dashboard, one page for people (`index.html`, `style.css`, `dashboard.js`),
//! compiled into the binary and served by the admin listener with nothing from elsewhere (its
//! Content-Security-Policy allows this origin only). The page asks `/status` once a second
//! and draws rates from the counters; its drain and ready buttons call the admin API
//! (`api.rs`) with the token the operator enters.

/// A file of the page: its content type and text.
pub struct Asset {
    pub content_type: &'static str,
    pub body: &'static str,
}

/// The file at `path`, if it is one of the page's.
pub fn asset(path: &str) -> Option<Asset> {
    let (content_type, body) = match path {
        "/" => ("text/html; charset=utf-8", include_str!("index.html")),
        "/dashboard.css" => ("text/css; charset=utf-8", include_str!("style.css")),
        "/dashboard.js" => (
            "text/javascript; charset=utf-8",
            include_str!("dashboard.js"),
        ),
        _ => return None,
    };
    Some(Asset { content_type, body })
}

/// The page may load, fetch and run only what this listener serves; no frame may hold it
/// (its buttons change the running balancer).
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_loads_nothing_from_elsewhere() {
        let page = asset("/").unwrap().body;
        for file in ["/dashboard.css", "/dashboard.js"] {
            assert!(page.contains(file), "{file}");
        }
        for a in ["/", "/dashboard.css", "/dashboard.js"] {
            let body = asset(a).unwrap().body;
            assert!(
                !body.contains("http://") && !body.contains("https://") && !body.contains("//cdn"),
                "{a}"
            );
        }
        assert!(asset("/nope").is_none());
    }
}

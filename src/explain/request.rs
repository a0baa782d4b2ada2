//! The request an explanation is about, as an operator describes it: a line such as
//! `GET http://shop.example.com/cart` with headers, cookies and a client address (the CLI),
//! or the query of `GET /api/explain?…` (the admin API). It is a [`RequestView`], so the
//! router, the hash keys and stickiness read it exactly as they read real traffic.

use std::net::IpAddr;

use http::HeaderName;

use crate::proxy::http::view::RequestView;

/// The parameters `GET /api/explain` takes, for its answer to a mistake.
pub const QUERY_HELP: &str = "listener=NAME (may be left out when there is one), method=GET, host=HOST, path=/PATH?QUERY, client=ADDR, header=NAME:VALUE and cookie=NAME=VALUE (each may repeat), or url=http://HOST/PATH instead of host and path; pool=NAME asks that pool directly, routing left out";

/// A request to explain.
#[derive(Debug, Clone)]
pub struct Request {
    /// The listener it arrives on; `None`: the only HTTP listener.
    pub listener: Option<String>,
    /// A pool to ask directly, leaving listeners and routes out.
    pub pool: Option<String>,
    pub method: String,
    /// The scheme of its URL (`http`, `https`), if it was given as one.
    pub scheme: Option<String>,
    /// The host it names, with its port if any.
    pub host: Option<String>,
    /// Path and query, `/` at least.
    pub path_and_query: String,
    /// The client's address, as the balancer would see it (after a PROXY header).
    pub client: IpAddr,
    /// Whether `client` was given (else 127.0.0.1 is assumed).
    pub client_given: bool,
    /// Headers in order; cookies are one `cookie` header, as a browser sends them.
    pub headers: Vec<(HeaderName, String)>,
}

impl Default for Request {
    fn default() -> Request {
        Request {
            listener: None,
            pool: None,
            method: "GET".into(),
            scheme: None,
            host: None,
            path_and_query: "/".into(),
            client: IpAddr::from([127, 0, 0, 1]),
            client_given: false,
            headers: Vec::new(),
        }
    }
}

impl Request {
    /// `GET http://host:port/path?query`, `GET /path`, or a URL alone (GET).
    pub fn parse_line(line: &str) -> Result<Request, String> {
        let mut r = Request::default();
        let line = line.trim();
        let (method, target) = match line.split_once(char::is_whitespace) {
            Some((m, t)) => (m, t.trim()),
            None => ("GET", line),
        };
        if method.is_empty() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
            return Err(format!(
                "{method:?} is not a method: write the request as 'GET http://example.com/path'"
            ));
        }
        r.method = method.to_ascii_uppercase();
        r.set_url(target)?;
        Ok(r)
    }

    /// An absolute URL (`http://host/path`) or a path (`/path?q`).
    pub fn set_url(&mut self, target: &str) -> Result<(), String> {
        let uri: http::Uri = target.parse().map_err(|_| {
            format!("{target:?} is not a URL: write http://example.com/path or /path")
        })?;
        if let Some(a) = uri.authority() {
            self.host = Some(a.as_str().to_string());
            self.scheme = uri.scheme_str().map(str::to_ascii_lowercase);
        } else if !target.starts_with('/') {
            return Err(format!(
                "{target:?} is neither a URL nor a path: write http://example.com/path or /path"
            ));
        }
        self.path_and_query = uri
            .path_and_query()
            .map_or("/".to_string(), |pq| pq.as_str().to_string());
        if self.path_and_query.is_empty() {
            self.path_and_query = "/".into();
        }
        Ok(())
    }

    /// `NAME: VALUE` (or `NAME:VALUE`).
    pub fn add_header(&mut self, text: &str) -> Result<(), String> {
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| format!("header {text:?} needs a colon: write 'X-User: alice'"))?;
        let name = HeaderName::from_bytes(name.trim().as_bytes())
            .map_err(|_| format!("{:?} is not a header name", name.trim()))?;
        if name == http::header::HOST {
            self.host = Some(value.trim().to_string());
        } else {
            self.headers.push((name, value.trim().to_string()));
        }
        Ok(())
    }

    /// `NAME=VALUE`, added to the request's one `cookie` header.
    pub fn add_cookie(&mut self, text: &str) -> Result<(), String> {
        let Some((name, value)) = text.split_once('=') else {
            return Err(format!(
                "cookie {text:?} needs an equals sign: write 'session=abc123'"
            ));
        };
        let pair = format!("{}={}", name.trim(), value.trim());
        match self
            .headers
            .iter_mut()
            .find(|(n, _)| n == http::header::COOKIE)
        {
            Some((_, v)) => {
                v.push_str("; ");
                v.push_str(&pair);
            }
            None => self.headers.push((http::header::COOKIE, pair)),
        }
        Ok(())
    }

    pub fn set_client(&mut self, text: &str) -> Result<(), String> {
        // An address with a port (as a log line has it) is taken too.
        let ip = text
            .parse::<IpAddr>()
            .or_else(|_| text.parse::<std::net::SocketAddr>().map(|a| a.ip()))
            .map_err(|_| format!("{text:?} is not an address: write 203.0.113.7 or 2001:db8::7"))?;
        self.client = ip;
        self.client_given = true;
        Ok(())
    }

    /// The query of `GET /api/explain`.
    pub fn from_query(query: &str) -> Result<Request, String> {
        let mut r = Request::default();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
            let (k, v) = (decode(k), decode(v));
            match k.as_str() {
                "listener" => r.listener = Some(v),
                "pool" => r.pool = Some(v),
                "method" => {
                    if v.is_empty() || !v.bytes().all(|b| b.is_ascii_alphabetic()) {
                        return Err(format!("method {v:?} is not a method"));
                    }
                    r.method = v.to_ascii_uppercase();
                }
                "host" => r.host = Some(v),
                "path" => {
                    if !v.starts_with('/') {
                        return Err(format!("path {v:?} must start with /"));
                    }
                    r.path_and_query = v;
                }
                "url" => r.set_url(&v)?,
                "client" => r.set_client(&v)?,
                "header" => r.add_header(&v)?,
                "cookie" => r.add_cookie(&v)?,
                _ => return Err(format!("unknown parameter {k:?}")),
            }
        }
        Ok(r)
    }

    /// The port the URL (or Host) names, if any.
    pub fn written_port(&self) -> Option<u16> {
        self.host
            .as_deref()
            .and_then(|h| h.rsplit_once(':'))
            .filter(|(h, _)| !h.starts_with('[') || h.ends_with(']'))
            .and_then(|(_, p)| p.parse::<u16>().ok())
    }

    /// The port the request arrives on: the one written, else its scheme's default (443
    /// for https, 80 for http); `None` without either.
    pub fn port(&self) -> Option<u16> {
        self.written_port().or(match self.scheme.as_deref() {
            Some("https") => Some(443),
            Some("http") => Some(80),
            _ => None,
        })
    }

    /// `GET http://host/path` as one line (with the scheme it was written with).
    pub fn line(&self) -> String {
        match &self.host {
            Some(h) => format!(
                "{} {}://{h}{}",
                self.method,
                self.scheme.as_deref().unwrap_or("http"),
                self.path_and_query
            ),
            None => format!("{} {}", self.method, self.path_and_query),
        }
    }
}

/// `%2F` → `/`, `+` → space (form encoding); bytes that are not UTF-8 become U+FFFD.
fn decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = (b[i] == b'%')
            .then(|| Some(hex(*b.get(i + 1)?)? * 16 + hex(*b.get(i + 2)?)?))
            .flatten();
        match (b[i], escaped) {
            (_, Some(v)) => {
                out.push(v as u8);
                i += 3;
                continue;
            }
            (b'+', _) => out.push(b' '),
            (c, _) => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl RequestView for Request {
    fn method(&self) -> &str {
        &self.method
    }
    fn path(&self) -> &str {
        self.path_and_query
            .split_once('?')
            .map_or(self.path_and_query.as_str(), |(p, _)| p)
    }
    fn path_and_query(&self) -> &str {
        &self.path_and_query
    }
    fn host_with_port(&self) -> Option<&str> {
        self.host.as_deref()
    }
    fn header_values<'s>(&'s self, name: &HeaderName) -> impl Iterator<Item = &'s [u8]> {
        self.headers
            .iter()
            .filter(move |(n, _)| n == name)
            .map(|(_, v)| v.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_urls_headers_and_cookies() {
        let r = Request::parse_line("post http://shop.example.com:8080/cart?id=3").unwrap();
        assert_eq!(r.method, "POST");
        assert_eq!(r.host.as_deref(), Some("shop.example.com:8080"));
        assert_eq!(RequestView::host(&r), Some("shop.example.com"));
        assert_eq!(RequestView::path(&r), "/cart");
        assert_eq!(r.query(), Some("id=3"));
        let mut r = Request::parse_line("/only/a/path").unwrap();
        assert_eq!((r.method.as_str(), r.host.as_ref()), ("GET", None));
        r.add_header("X-User: alice").unwrap();
        r.add_cookie("a=1").unwrap();
        r.add_cookie("SRV=abc").unwrap();
        assert_eq!(r.cookie("SRV"), Some("abc"));
        assert_eq!(r.cookie("a"), Some("1"));
        let name = HeaderName::from_static("x-user");
        assert_eq!(r.header_values(&name).next(), Some(&b"alice"[..]));
        assert!(Request::parse_line("G=T /x").is_err());
        assert!(r.add_header("nocolon").is_err());
        assert!(r.set_client("nope").is_err());
        r.set_client("10.0.0.1:5555").unwrap();
        assert_eq!(r.client, IpAddr::from([10, 0, 0, 1]));
    }

    #[test]
    fn queries_decode_and_name_their_mistakes() {
        let r = Request::from_query(
            "listener=web&method=get&host=api.example.com&path=%2Fa%3Fb%3D1&client=10.1.2.3&header=X-User%3A+bob&cookie=SRV%3Dx",
        )
        .unwrap();
        assert_eq!(r.listener.as_deref(), Some("web"));
        assert_eq!(r.method, "GET");
        assert_eq!(r.path_and_query, "/a?b=1");
        assert_eq!(r.cookie("SRV"), Some("x"));
        let name = HeaderName::from_static("x-user");
        assert_eq!(r.header_values(&name).next(), Some(&b"bob"[..]));
        assert!(
            Request::from_query("colour=red")
                .unwrap_err()
                .contains("colour")
        );
        assert!(Request::from_query("path=nope").is_err());
        assert_eq!(decode("a%zzb%4"), "a%zzb%4");
        let r = Request::from_query("url=http%3A%2F%2Fx.test%2Fy").unwrap();
        assert_eq!(
            (r.host.as_deref(), r.path_and_query.as_str()),
            (Some("x.test"), "/y")
        );
    }
}

//! Sticky sessions: keep a client on the server that holds its session.
//!
//! Before the pick, [`Sticky::lookup`] finds the remembered server (from Switchyard's own
//! cookie, the application's session cookie via a stick table, or the client address via a
//! stick table). The retry loop tries that server first if it is available; otherwise the
//! pool's algorithm picks. After the response, [`Sticky::after`] sticks the client to the
//! server that answered (a `Set-Cookie`, or a table entry) and counts `sticky_broken` when
//! the remembered server could not be used — a dead server is never tried for stickiness.
//!
//! A draining server (admin state `drain`) keeps its sticky clients, as HAProxy and nginx
//! keep persistent clients on it, unless the pool says `[sticky] on_drain = "move"`; a server
//! in maintenance or removed loses them at once. A pool rebuilt by a reload or an admin
//! change keeps its stick tables and counter ([`Sticky::succeed`]).

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use http::HeaderMap;
use http::header::{self, HeaderValue};
use tokio::time::Instant;

use super::view::RequestView;
use crate::config::{OnDrain, StickyMode, StickyPlan};
use crate::upstream::{AdminState, Pool, Server, StickTable};

/// Longest application cookie value remembered; longer ones are not stuck (they would let a
/// client fill the table with big keys).
const MAX_APP_VALUE: usize = 256;

/// The sticky state of one pool.
pub struct Sticky {
    plan: StickyPlan,
    pool: Arc<Pool>,
    /// `cookie` mode: the opaque id of each server, in pool order.
    ids: Vec<String>,
    app: Option<Arc<StickTable<String>>>,
    ip: Option<Arc<StickTable<IpAddr>>>,
    broken: Arc<AtomicU64>,
}

/// What the request said about stickiness.
#[derive(Debug, Default)]
pub struct Lookup {
    /// The remembered server, when it is available now.
    pub preferred: Option<Arc<Server>>,
    /// A server was remembered but cannot take the request.
    broken: bool,
    /// The request's cookie value (`cookie`, `app_cookie`), or the client (`source_ip`).
    cookie_value: Option<String>,
    client: Option<IpAddr>,
}

/// What a remembered server means for a request.
enum Verdict {
    /// It takes the request.
    Use,
    /// It cannot: the session moves (counted as broken).
    Broken(&'static str),
    /// It could, but the request goes to the balancer (a backup while a primary is back).
    Pass(&'static str),
}

/// What stickiness would do with a request now ([`Sticky::peek`]).
#[derive(Debug, Clone, Default)]
pub struct StickyPeek {
    /// `cookie`, `app_cookie` or `source_ip`.
    pub mode: &'static str,
    /// The cookie's name (`cookie`, `app_cookie`).
    pub name: String,
    /// What the request carries: the cookie's value, or the client address.
    pub value: Option<String>,
    /// The server it names, if one.
    pub remembered: Option<Arc<Server>>,
    /// Whether that server takes the request, ahead of the balancer.
    pub used: bool,
    /// Why it does not, when it does not.
    pub why: Option<String>,
    /// `cookie` mode: the value that names each server, in the pool's order.
    pub values: Vec<(String, String)>,
}

impl StickyPeek {
    fn no(mut self, why: &str) -> StickyPeek {
        self.why = Some(why.to_string());
        self
    }
}

/// The cookie value naming `server`: a hash of the pool and the server's name and address,
/// so it reveals neither and agrees across Switchyard instances with the same config.
pub fn server_cookie_id(pool: &str, server: &Server) -> String {
    let text = format!("{pool}\0{}\0{}", server.name, server.addr);
    format!("{:016x}", xxhash_rust::xxh3::xxh3_64(text.as_bytes()))
}

impl Sticky {
    pub fn new(plan: StickyPlan, pool: Arc<Pool>) -> Sticky {
        Sticky::succeed(plan, pool, None)
    }

    /// The sticky state of a rebuilt pool: the stick table of `previous` when it has the same
    /// mode, size and ttl (its entries name servers by id, which the servers that stayed
    /// keep), and its `broken` counter. Cookies need nothing kept: their values are derived
    /// from each server's name and address.
    pub fn succeed(plan: StickyPlan, pool: Arc<Pool>, previous: Option<&Sticky>) -> Sticky {
        let ids = pool
            .servers()
            .iter()
            .map(|s| server_cookie_id(&pool.name, s))
            .collect();
        let same = previous
            .filter(|p| (p.plan.mode, p.plan.size, p.plan.ttl) == (plan.mode, plan.size, plan.ttl));
        let table = |mode: StickyMode| (plan.mode == mode).then_some(());
        Sticky {
            app: table(StickyMode::AppCookie).map(|()| {
                same.and_then(|p| p.app.clone())
                    .unwrap_or_else(|| Arc::new(StickTable::new(plan.size, plan.ttl)))
            }),
            ip: table(StickyMode::SourceIp).map(|()| {
                same.and_then(|p| p.ip.clone())
                    .unwrap_or_else(|| Arc::new(StickTable::new(plan.size, plan.ttl)))
            }),
            broken: previous.map_or_else(Default::default, |p| p.broken.clone()),
            plan,
            pool,
            ids,
        }
    }

    /// Requests whose remembered server could not serve them (down, drained, removed, or
    /// failed during the request) and were moved to another.
    pub fn broken(&self) -> u64 {
        self.broken.load(Ordering::Relaxed)
    }

    /// Entries in the stick table (`app_cookie`, `source_ip`); 0 for `cookie`.
    pub fn table_len(&self) -> usize {
        self.app.as_ref().map_or(0, |t| t.len()) + self.ip.as_ref().map_or(0, |t| t.len())
    }

    fn by_id(&self, id: u64) -> Option<&Arc<Server>> {
        self.pool.servers().iter().find(|s| s.id() == id)
    }

    /// What the server a request names (`None`: one no longer in the pool) means for it.
    fn verdict(&self, server: Option<&Arc<Server>>) -> Verdict {
        match server {
            // A backup holds a session only while no primary can serve: once one is back,
            // the client goes to the primaries (and is stuck there), as a pool sends new
            // clients. Not counted as broken: the backup could still have served.
            Some(s) if s.backup && self.primary_available() => {
                Verdict::Pass("it is a backup and a primary can serve again")
            }
            // Draining: the client stays unless the pool moves them (a draining server
            // is `is_available` for its sticky clients; picks skip it).
            Some(s)
                if s.admin_state() == AdminState::Drain && self.plan.on_drain == OnDrain::Move =>
            {
                Verdict::Broken("it is draining and the pool says on_drain = \"move\"")
            }
            Some(s) if s.is_available() => Verdict::Use,
            Some(s) if s.admin_down() => Verdict::Broken("it is in maintenance"),
            Some(s) => Verdict::Broken(match s.health_state() {
                crate::upstream::HealthState::Unhealthy => "active health checks took it out",
                _ => "passive health checks took it out",
            }),
            None => Verdict::Broken("no server of the pool has it now"),
        }
    }

    fn remembered(&self, server: Option<&Arc<Server>>, lookup: &mut Lookup) {
        match (self.verdict(server), server) {
            (Verdict::Use, Some(s)) => lookup.preferred = Some(s.clone()),
            (Verdict::Pass(_), _) => {}
            _ => lookup.broken = true,
        }
    }

    fn primary_available(&self) -> bool {
        self.pool
            .servers()
            .iter()
            .any(|s| !s.backup && s.accepts_new())
    }

    /// What stickiness would do with this request now, and why, without using the session
    /// (a stick table entry's life is not renewed): for explanations.
    pub fn peek(&self, req: &impl RequestView, client: IpAddr, now: Instant) -> StickyPeek {
        let mut p = StickyPeek {
            mode: self.plan.mode.as_str(),
            name: self.plan.name.clone(),
            ..StickyPeek::default()
        };
        if self.plan.mode == StickyMode::Cookie {
            p.values = (self.pool.servers().iter())
                .zip(&self.ids)
                .map(|(s, id)| (s.name.clone(), id.clone()))
                .collect();
        }
        let server = match self.plan.mode {
            StickyMode::Cookie => {
                let Some(v) = req.cookie(&self.plan.name) else {
                    return p.no("the request has no such cookie: the balancer picks, and the answer sets the cookie");
                };
                p.value = Some(v.to_string());
                let Some(i) = self.ids.iter().position(|id| id == v) else {
                    return p.no("the value names no server of this pool (one removed, or another pool's cookie): the balancer picks, and the answer sets the cookie again");
                };
                Some(&self.pool.servers()[i])
            }
            StickyMode::AppCookie => {
                let Some(v) = req.cookie(&self.plan.name) else {
                    return p.no("the request has no such cookie: the balancer picks");
                };
                p.value = Some(v.to_string());
                if v.len() > MAX_APP_VALUE {
                    return p.no("the value is too long to be remembered");
                }
                let Some(id) = self.app.as_ref().and_then(|t| t.peek(&v.to_string(), now)) else {
                    return p.no("the stick table holds no server for this value: the balancer picks, and the value is learned from the answer");
                };
                self.by_id(id)
            }
            StickyMode::SourceIp => {
                p.value = Some(client.to_string());
                let Some(id) = self.ip.as_ref().and_then(|t| t.peek(&client, now)) else {
                    return p.no("the stick table holds no server for this client: the balancer picks, and the answer's server is remembered");
                };
                self.by_id(id)
            }
        };
        p.remembered = server.cloned();
        match self.verdict(server) {
            Verdict::Use => p.used = true,
            Verdict::Pass(why) | Verdict::Broken(why) => {
                let who = server.map_or("a server".to_string(), |s| s.name.clone());
                p.why = Some(format!(
                    "{who} is remembered, but {why}: the balancer picks"
                ));
            }
        }
        p
    }

    /// The server this request should stick to, if any.
    pub fn lookup(&self, req: &impl RequestView, client: IpAddr, now: Instant) -> Lookup {
        let mut l = Lookup::default();
        match self.plan.mode {
            StickyMode::Cookie => {
                if let Some(v) = req.cookie(&self.plan.name) {
                    l.cookie_value = Some(v.to_string());
                    let i = self.ids.iter().position(|id| id == v);
                    self.remembered(i.map(|i| &self.pool.servers()[i]), &mut l);
                }
            }
            StickyMode::AppCookie => {
                if let (Some(v), Some(table)) = (req.cookie(&self.plan.name), &self.app)
                    && v.len() <= MAX_APP_VALUE
                {
                    l.cookie_value = Some(v.to_string());
                    if let Some(id) = table.get(&v.to_string(), now) {
                        self.remembered(self.by_id(id), &mut l);
                    }
                }
            }
            StickyMode::SourceIp => {
                l.client = Some(client);
                if let Some(id) = self.ip.as_ref().and_then(|t| t.get(&client, now)) {
                    self.remembered(self.by_id(id), &mut l);
                }
            }
        }
        l
    }

    /// Stick the client to `served_by`, which answered with `headers`; `secure` when the
    /// client came over TLS.
    pub fn after(
        &self,
        lookup: &Lookup,
        served_by: &Arc<Server>,
        headers: &mut HeaderMap,
        secure: bool,
        now: Instant,
    ) {
        let set = headers
            .get_all(header::SET_COOKIE)
            .iter()
            .map(|v| v.as_bytes());
        if let Some(c) = self.stick(lookup, served_by, set, secure, now)
            && let Ok(v) = HeaderValue::from_str(&c)
        {
            headers.append(header::SET_COOKIE, v);
        }
    }

    /// [`Sticky::after`] over the answer's `Set-Cookie` values: returns the `Set-Cookie`
    /// value to add, if any.
    pub fn stick<'v>(
        &self,
        lookup: &Lookup,
        served_by: &Arc<Server>,
        set_cookies: impl Iterator<Item = &'v [u8]>,
        secure: bool,
        now: Instant,
    ) -> Option<String> {
        let moved = lookup
            .preferred
            .as_ref()
            .is_some_and(|p| p.id() != served_by.id());
        if lookup.broken || moved {
            self.broken.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(
                pool = %self.pool.name,
                server = %served_by.name,
                mode = self.plan.mode.as_str(),
                "sticky session moved to another server"
            );
        }
        match self.plan.mode {
            StickyMode::Cookie => {
                let i = self
                    .pool
                    .servers()
                    .iter()
                    .position(|s| s.id() == served_by.id())?;
                let id = &self.ids[i];
                if lookup.cookie_value.as_deref() != Some(id.as_str()) {
                    let mut c = format!(
                        "{}={id}; Path=/; Max-Age={}; HttpOnly; SameSite=Lax",
                        self.plan.name,
                        self.plan.ttl.as_secs()
                    );
                    if secure {
                        c.push_str("; Secure");
                    }
                    return Some(c);
                }
            }
            StickyMode::AppCookie => {
                let table = self.app.as_ref()?;
                let prefix = format!("{}=", self.plan.name);
                let mut learned = false;
                for v in set_cookies {
                    let Ok(s) = std::str::from_utf8(v) else {
                        continue;
                    };
                    let pair = s.split(';').next().unwrap_or("").trim();
                    if let Some(value) = pair.strip_prefix(&prefix)
                        && !value.is_empty()
                        && value.len() <= MAX_APP_VALUE
                    {
                        table.insert(value.to_string(), served_by.id(), now);
                        learned = true;
                    }
                }
                // A session the table does not hold (Switchyard restarted, the entry
                // expired or was pushed out) or that moved, without the application issuing
                // a new cookie: stick its value to the server that served it (HAProxy's
                // `stick store-request`), so the session pins again from now on. A value
                // the table does not know is only learned while the table has room: the
                // client chose it, and a flood of made-up values must not push out the
                // sessions the servers issued.
                let held = lookup.preferred.as_ref().map(|p| p.id()) == Some(served_by.id());
                if !learned
                    && !held
                    && let Some(v) = &lookup.cookie_value
                {
                    table.insert_if_room(v.clone(), served_by.id(), now);
                }
            }
            StickyMode::SourceIp => {
                if let (Some(table), Some(ip)) = (&self.ip, lookup.client)
                    && lookup.preferred.as_ref().map(|p| p.id()) != Some(served_by.id())
                {
                    table.insert(ip, served_by.id(), now);
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(h: HeaderMap) -> http::Request<()> {
        let mut r = http::Request::new(());
        *r.headers_mut() = h;
        r
    }

    fn pool(mode: &str) -> Arc<Pool> {
        let src = format!(
            "[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nservers = [ {{ addr = \"127.0.0.1:9001\" }}, {{ addr = \"127.0.0.1:9002\" }} ]\n[pool.p.sticky]\nmode = \"{mode}\"\n"
        );
        let plan = crate::config::load_str(&src, "t.toml").unwrap();
        Arc::new(Pool::new(&plan.pools[0], None))
    }

    #[test]
    fn cookie_is_secure_over_tls_only() {
        let p = pool("cookie");
        let sticky = Sticky::new(p.sticky.clone().unwrap(), p.clone());
        let now = Instant::now();
        let server = p.servers()[1].clone();
        for (secure, want) in [(false, false), (true, true)] {
            let l = sticky.lookup(&req(HeaderMap::new()), "10.0.0.1".parse().unwrap(), now);
            let mut h = HeaderMap::new();
            sticky.after(&l, &server, &mut h, secure, now);
            let c = h.get(header::SET_COOKIE).unwrap().to_str().unwrap();
            assert_eq!(c.ends_with("; Secure"), want, "{c}");
            assert!(
                c.starts_with(&format!("SRV={}", server_cookie_id("p", &server))),
                "{c}"
            );
        }
    }

    #[test]
    fn a_draining_server_keeps_its_sticky_clients_unless_the_pool_moves_them() {
        for (on_drain, stays) in [
            ("", true),
            ("on_drain = \"stay\"\n", true),
            ("on_drain = \"move\"\n", false),
        ] {
            let src = format!(
                "[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nservers = [ {{ addr = \"127.0.0.1:9001\" }}, {{ addr = \"127.0.0.1:9002\" }} ]\n[pool.p.sticky]\nmode = \"source_ip\"\n{on_drain}"
            );
            let plan = crate::config::load_str(&src, "t.toml").unwrap();
            let p = Arc::new(Pool::new(&plan.pools[0], None));
            let sticky = Sticky::new(p.sticky.clone().unwrap(), p.clone());
            let now = Instant::now();
            let client: IpAddr = "10.0.0.1".parse().unwrap();
            let s1 = p.servers()[1].clone();
            let l = sticky.lookup(&http::Request::new(()), client, now);
            sticky.after(&l, &s1, &mut HeaderMap::new(), false, now);
            s1.set_admin_state(AdminState::Drain);
            p.rebuild();
            let l = sticky.lookup(&http::Request::new(()), client, now);
            assert_eq!(
                l.preferred.as_ref().map(|s| s.id()) == Some(s1.id()),
                stays,
                "{on_drain:?}"
            );
            assert_eq!(l.broken, !stays, "{on_drain:?}");
            // New clients never go to it.
            for _ in 0..10 {
                let picked = p.pick(&crate::balance::PickContext::default()).unwrap();
                assert_ne!(picked.id(), s1.id());
            }
            // Maintenance moves everyone.
            s1.set_admin_state(AdminState::Maint);
            let l = sticky.lookup(&http::Request::new(()), client, now);
            assert!(l.preferred.is_none() && l.broken);
        }
    }

    #[test]
    fn a_rebuilt_pool_keeps_its_stick_table_and_counter() {
        let p = pool("source_ip");
        let sticky = Sticky::new(p.sticky.clone().unwrap(), p.clone());
        let now = Instant::now();
        let client: IpAddr = "10.0.0.1".parse().unwrap();
        let l = sticky.lookup(&http::Request::new(()), client, now);
        sticky.after(&l, &p.servers()[1], &mut HeaderMap::new(), false, now);
        sticky.broken.fetch_add(3, Ordering::Relaxed);
        let next = Arc::new(Pool::new(&plan_with_third(), Some(&p)));
        let again = Sticky::succeed(p.sticky.clone().unwrap(), next.clone(), Some(&sticky));
        let l = again.lookup(&http::Request::new(()), client, now);
        assert_eq!(l.preferred.unwrap().id(), p.servers()[1].id());
        assert_eq!(again.broken(), 3);
    }

    fn plan_with_third() -> crate::config::PoolPlan {
        let src = "[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"p\"\n[pool.p]\nservers = [ { addr = \"127.0.0.1:9001\" }, { addr = \"127.0.0.1:9002\" }, { addr = \"127.0.0.1:9003\" } ]\n[pool.p.sticky]\nmode = \"source_ip\"\n";
        crate::config::load_str(src, "t.toml").unwrap().pools[0].clone()
    }

    #[test]
    fn a_cookie_naming_a_down_server_is_broken_not_followed() {
        let p = pool("cookie");
        let sticky = Sticky::new(p.sticky.clone().unwrap(), p.clone());
        let now = Instant::now();
        let s0 = p.servers()[0].clone();
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("SRV={}", server_cookie_id("p", &s0))).unwrap(),
        );
        let l = sticky.lookup(&req(h.clone()), "10.0.0.1".parse().unwrap(), now);
        assert_eq!(l.preferred.as_ref().map(|s| s.id()), Some(s0.id()));
        s0.set_admin_down(true);
        let l = sticky.lookup(&req(h.clone()), "10.0.0.1".parse().unwrap(), now);
        assert!(l.preferred.is_none() && l.broken);
        let mut out = HeaderMap::new();
        sticky.after(&l, &p.servers()[1], &mut out, false, now);
        assert_eq!(sticky.broken(), 1);
        assert!(out.contains_key(header::SET_COOKIE));
    }

    #[test]
    fn an_app_cookie_missing_from_the_table_is_learned_from_the_request() {
        let p = pool("app_cookie\"\nname = \"SRV");
        let sticky = Sticky::new(p.sticky.clone().unwrap(), p.clone());
        let now = Instant::now();
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("SRV=abc"));
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        let l = sticky.lookup(&req(h.clone()), ip, now);
        assert!(l.preferred.is_none() && !l.broken);
        sticky.after(&l, &p.servers()[1], &mut HeaderMap::new(), false, now);
        assert_eq!(sticky.table_len(), 1);
        let l = sticky.lookup(&req(h.clone()), ip, now);
        assert_eq!(l.preferred.unwrap().id(), p.servers()[1].id());
        assert_eq!(sticky.broken(), 0);
    }

    #[test]
    fn made_up_app_cookies_do_not_push_out_issued_sessions() {
        let p = pool("app_cookie\"\nname = \"SRV\"\nsize = 1600\nttl = \"1h");
        let sticky = Sticky::new(p.sticky.clone().unwrap(), p.clone());
        let now = Instant::now();
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        // The application issues a hundred sessions.
        let issued: Vec<(String, usize)> = (0..100).map(|i| (format!("s{i}"), i % 2)).collect();
        for (value, server) in &issued {
            let l = sticky.lookup(&req(HeaderMap::new()), ip, now);
            let mut resp = HeaderMap::new();
            resp.insert(
                header::SET_COOKIE,
                HeaderValue::from_str(&format!("SRV={value}; Path=/")).unwrap(),
            );
            sticky.after(&l, &p.servers()[*server], &mut resp, false, now);
        }
        assert_eq!(sticky.table_len(), 100);
        // A client floods made-up values: they fill the room left, and push out nothing.
        for i in 0..10_000 {
            let mut h = HeaderMap::new();
            h.insert(
                header::COOKIE,
                HeaderValue::from_str(&format!("SRV=made-up-{i}")).unwrap(),
            );
            let l = sticky.lookup(&req(h.clone()), ip, now);
            sticky.after(&l, &p.servers()[0], &mut HeaderMap::new(), false, now);
        }
        assert!(sticky.table_len() <= 1600);
        for (value, server) in &issued {
            let mut h = HeaderMap::new();
            h.insert(
                header::COOKIE,
                HeaderValue::from_str(&format!("SRV={value}")).unwrap(),
            );
            let l = sticky.lookup(&req(h.clone()), ip, now);
            assert_eq!(
                l.preferred.map(|s| s.id()),
                Some(p.servers()[*server].id()),
                "{value}"
            );
        }
    }

    #[test]
    fn source_ip_table_expires_with_ttl() {
        let p = pool("source_ip");
        let sticky = Sticky::new(p.sticky.clone().unwrap(), p.clone());
        let t0 = Instant::now();
        let ip: IpAddr = "10.0.0.7".parse().unwrap();
        let l = sticky.lookup(&req(HeaderMap::new()), ip, t0);
        assert!(l.preferred.is_none());
        sticky.after(&l, &p.servers()[1], &mut HeaderMap::new(), false, t0);
        let l = sticky.lookup(
            &req(HeaderMap::new()),
            ip,
            t0 + std::time::Duration::from_secs(60),
        );
        assert_eq!(l.preferred.unwrap().id(), p.servers()[1].id());
        // Default ttl is 1h since the last use.
        let l = sticky.lookup(
            &req(HeaderMap::new()),
            ip,
            t0 + std::time::Duration::from_secs(3661),
        );
        assert!(l.preferred.is_none() && !l.broken);
    }
}

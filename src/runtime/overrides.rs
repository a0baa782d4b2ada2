//! Operator changes made over the admin API, kept on top of the config file.
//!
//! The running configuration is the file plus these changes. Each API write is recorded
//! here and applied to the file's TOML ([`Overrides::apply`]); the result goes through the
//! same validation as `switchyard check`, and `GET /api/config` returns it, so the file can
//! become the truth again.
//!
//! What a reload does with them ([`Overrides::reconcile`]) — an operator's change is never
//! undone silently:
//! - the new file says what the operator set → the change is absorbed (the file is the
//!   truth again);
//! - the new file did not touch that value since the operator set it → the change is kept
//!   (and listed in the reload's answer);
//! - the new file changed that value → the file wins: someone wrote a newer intent (listed
//!   too);
//! - a server the operator changed left the file → the change goes with it.
//!
//! A server that came from DNS (its entry writes a host name) is no entry of the file: its
//! weight and state changes are not written into the TOML but kept as
//! [`discovery::Tweak`](crate::discovery::Tweak)s, put on the server whenever its name gives
//! its address ([`Overrides::tweaks`]); a reload keeps them while the pool still has a
//! server written with a host name.
//!
//! Pure: TOML tables in, TOML tables out; no sockets, no clock.

use std::net::SocketAddr;

use toml::{Table, Value};

/// An operator's admin state for a server, as the file writes it (`down`, `drain`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Ready,
    Drain,
    Maint,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::Drain => "drain",
            State::Maint => "maint",
        }
    }

    fn of(entry: &Table) -> State {
        let yes = |k: &str| entry.get(k).and_then(Value::as_bool) == Some(true);
        if yes("down") {
            State::Maint
        } else if yes("drain") {
            State::Drain
        } else {
            State::Ready
        }
    }

    /// Write this state into a server entry (`down = true`, `drain = true`, or neither).
    pub fn write_to(self, entry: &mut Table) {
        entry.remove("down");
        entry.remove("drain");
        match self {
            State::Ready => {}
            State::Drain => {
                entry.insert("drain".into(), Value::Boolean(true));
            }
            State::Maint => {
                entry.insert("down".into(), Value::Boolean(true));
            }
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Change {
    /// `file`: the file's value when the operator set it (`None`: not a server of the file).
    Weight {
        value: i64,
        file: Option<i64>,
    },
    State {
        value: State,
        file: Option<State>,
    },
    /// A server added over the API: its entry.
    Added {
        entry: Table,
    },
    /// A server removed over the API: the file's entry then (`None` for one the API added).
    /// While `draining`, it stays with `drain = true` until idle.
    Removed {
        file: Option<Table>,
        draining: bool,
    },
}

#[derive(Debug, Clone, PartialEq)]
struct Entry {
    pool: String,
    addr: SocketAddr,
    change: Change,
}

/// The operator's changes, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Overrides {
    entries: Vec<Entry>,
}

/// The address an entry's `addr` is written as; `None` for a host name (its servers come
/// from DNS) or anything else.
pub fn address(written: &str) -> Option<SocketAddr> {
    written.trim().parse().ok()
}

/// Whether `pool` in `doc` has a server written with a host name (whose servers come from
/// DNS).
fn has_names(doc: &Table, pool: &str) -> bool {
    servers(doc, pool).is_some_and(|list| {
        list.iter().any(|v| {
            v.get("addr")
                .and_then(Value::as_str)
                .is_some_and(|a| address(a).is_none())
        })
    })
}

/// The server entries of `pool` in `doc`.
fn servers<'a>(doc: &'a Table, pool: &str) -> Option<&'a Vec<Value>> {
    doc.get("pool")?.get(pool)?.get("servers")?.as_array()
}

fn servers_mut<'a>(doc: &'a mut Table, pool: &str) -> Option<&'a mut Vec<Value>> {
    doc.get_mut("pool")?
        .get_mut(pool)?
        .as_table_mut()?
        .entry("servers")
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
}

fn is_at(v: &Value, addr: SocketAddr) -> bool {
    v.get("addr")
        .and_then(Value::as_str)
        .and_then(address)
        .is_some_and(|a| a == addr)
}

/// The entry of server `addr` in `pool`, as the file writes it.
pub fn server_entry<'a>(doc: &'a Table, pool: &str, addr: SocketAddr) -> Option<&'a Table> {
    servers(doc, pool)?
        .iter()
        .find(|v| is_at(v, addr))
        .and_then(Value::as_table)
}

fn weight_of(entry: &Table) -> i64 {
    entry.get("weight").and_then(Value::as_integer).unwrap_or(1)
}

impl Overrides {
    /// How many changes are kept.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn replace(&mut self, entry: Entry) {
        let same = |e: &Entry| {
            e.pool == entry.pool
                && e.addr == entry.addr
                && std::mem::discriminant(&e.change) == std::mem::discriminant(&entry.change)
        };
        self.entries.retain(|e| !same(e));
        self.entries.push(entry);
    }

    /// The operator sets a server's weight; `file` is the config file as loaded.
    pub fn set_weight(&mut self, file: &Table, pool: &str, addr: SocketAddr, value: i64) {
        self.replace(Entry {
            pool: pool.into(),
            addr,
            change: Change::Weight {
                value,
                file: server_entry(file, pool, addr).map(weight_of),
            },
        });
    }

    /// The operator sets a server's admin state.
    pub fn set_state(&mut self, file: &Table, pool: &str, addr: SocketAddr, value: State) {
        self.replace(Entry {
            pool: pool.into(),
            addr,
            change: Change::State {
                value,
                file: server_entry(file, pool, addr).map(State::of),
            },
        });
    }

    /// The operator adds a server (its entry as TOML; `addr` resolved from it).
    pub fn add(&mut self, pool: &str, addr: SocketAddr, entry: Table) {
        // A server removed and added back: the removal is over.
        self.entries.retain(|e| {
            !(e.pool == pool && e.addr == addr && matches!(e.change, Change::Removed { .. }))
        });
        self.replace(Entry {
            pool: pool.into(),
            addr,
            change: Change::Added { entry },
        });
    }

    /// The operator removes a server: it drains first ([`Overrides::removed`] ends that).
    pub fn remove(&mut self, file: &Table, pool: &str, addr: SocketAddr) {
        let added = |e: &Entry| {
            e.pool == pool && e.addr == addr && matches!(e.change, Change::Added { .. })
        };
        let was_added = self.entries.iter().any(added);
        // Its other changes go with it.
        self.entries
            .retain(|e| !(e.pool == pool && e.addr == addr) || added(e));
        self.entries.push(Entry {
            pool: pool.into(),
            addr,
            change: Change::Removed {
                file: if was_added {
                    None
                } else {
                    server_entry(file, pool, addr).cloned()
                },
                draining: true,
            },
        });
    }

    /// The servers being removed that still drain.
    #[cfg(test)]
    pub fn draining(&self) -> Vec<(String, SocketAddr)> {
        self.entries
            .iter()
            .filter(|e| matches!(e.change, Change::Removed { draining: true, .. }))
            .map(|e| (e.pool.clone(), e.addr))
            .collect()
    }

    /// A removed server has drained: it leaves the pool.
    pub fn removed(&mut self, pool: &str, addr: SocketAddr) {
        for e in &mut self.entries {
            if e.pool == pool
                && e.addr == addr
                && let Change::Removed { draining, .. } = &mut e.change
            {
                *draining = false;
            }
        }
        // A server the API added and removed again leaves nothing behind.
        let added = self
            .entries
            .iter()
            .any(|e| e.pool == pool && e.addr == addr && matches!(e.change, Change::Added { .. }));
        if added {
            self.entries.retain(|e| !(e.pool == pool && e.addr == addr));
        }
    }

    /// The running configuration: `file` with every change applied.
    pub fn apply(&self, file: &Table) -> Table {
        let mut doc = file.clone();
        for e in &self.entries {
            let Some(list) = servers_mut(&mut doc, &e.pool) else {
                continue;
            };
            let at = list.iter().position(|v| is_at(v, e.addr));
            match (&e.change, at) {
                (Change::Added { entry }, None) => list.push(Value::Table(entry.clone())),
                (Change::Weight { value, .. }, Some(i)) => {
                    if let Some(t) = list[i].as_table_mut() {
                        t.insert("weight".into(), Value::Integer(*value));
                    }
                }
                (Change::State { value, .. }, Some(i)) => {
                    if let Some(t) = list[i].as_table_mut() {
                        value.write_to(t);
                    }
                }
                (Change::Removed { draining: true, .. }, Some(i)) => {
                    if let Some(t) = list[i].as_table_mut() {
                        State::Drain.write_to(t);
                    }
                }
                (
                    Change::Removed {
                        draining: false, ..
                    },
                    Some(i),
                ) => {
                    list.remove(i);
                }
                _ => {}
            }
        }
        doc
    }

    /// The weight and state changes, for the servers that come from DNS (the others' are
    /// written into the TOML by [`Overrides::apply`]).
    pub fn tweaks(&self) -> Vec<crate::discovery::Tweak> {
        self.entries
            .iter()
            .filter_map(|e| {
                let (weight, state) = match e.change {
                    Change::Weight { value, .. } => (u32::try_from(value).ok(), None),
                    Change::State { value, .. } => {
                        (None, Some((value == State::Maint, value == State::Drain)))
                    }
                    _ => return None,
                };
                Some(crate::discovery::Tweak {
                    pool: e.pool.clone(),
                    addr: e.addr,
                    weight,
                    state,
                })
            })
            .collect()
    }

    /// Square the changes with a newly loaded file (see the module's rules); one line per
    /// change kept or dropped, for the reload's answer and the log.
    pub fn reconcile(&mut self, file: &Table) -> Vec<String> {
        let mut notes = Vec::new();
        let added: Vec<(String, SocketAddr)> = self
            .entries
            .iter()
            .filter(|e| matches!(e.change, Change::Added { .. }))
            .map(|e| (e.pool.clone(), e.addr))
            .collect();
        self.entries.retain(|e| {
            let now = server_entry(file, &e.pool, e.addr);
            let api_added = added.iter().any(|(p, a)| *p == e.pool && *a == e.addr);
            let who = format!("pool {:?} server {}", e.pool, e.addr);
            let (keep, note) = match (&e.change, now) {
                (Change::Added { .. }, Some(_)) => (false, format!("{who}: now in the file")),
                (Change::Added { .. }, None) if servers(file, &e.pool).is_none() => {
                    (false, format!("{who}: its pool left the file; the server added over the API goes with it"))
                }
                (Change::Added { .. }, None) => (true, format!("{who}: kept (added over the API)")),
                (Change::Removed { file: then, .. }, Some(entry)) => match then {
                    Some(t) if t == entry => (true, format!("{who}: kept out (removed over the API)")),
                    _ => (false, format!("{who}: the file changed this server; it is back")),
                },
                (Change::Removed { .. }, None) => (false, format!("{who}: removed from the file too")),
                (_, None) if api_added => (true, String::new()),
                (_, None) if has_names(file, &e.pool) => {
                    (true, format!("{who}: kept (a server from DNS; it applies while DNS gives its address)"))
                }
                (_, None) => (false, format!("{who}: left the file; the operator's change goes with it")),
                (Change::Weight { value, file: then }, Some(entry)) => {
                    let w = weight_of(entry);
                    if w == *value {
                        (false, format!("{who}: the file now says weight = {w}"))
                    } else if Some(w) == *then {
                        (true, format!("{who}: kept weight {value} set over the API (the file says {w})"))
                    } else {
                        (false, format!("{who}: the file changed weight to {w}; the weight {value} set over the API is dropped"))
                    }
                }
                (Change::State { value, file: then }, Some(entry)) => {
                    let s = State::of(entry);
                    if s == *value {
                        (false, format!("{who}: the file now says state {}", s.as_str()))
                    } else if Some(s) == *then {
                        (true, format!("{who}: kept state {} set over the API (the file says {})", value.as_str(), s.as_str()))
                    } else {
                        (false, format!("{who}: the file changed state to {}; the state {} set over the API is dropped", s.as_str(), value.as_str()))
                    }
                }
            };
            if !note.is_empty() {
                notes.push(note);
            }
            keep
        });
        notes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FILE: &str = r#"
[[listener]]
listen = "127.0.0.1:8080"
pool = "web"

[pool.web]
servers = [ { addr = "127.0.0.1:9001" }, { addr = "127.0.0.1:9002", weight = 2 } ]
"#;

    fn doc(s: &str) -> Table {
        s.parse().unwrap()
    }

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn running(o: &Overrides, file: &str) -> crate::config::Plan {
        let text = toml::to_string(&o.apply(&doc(file))).unwrap();
        crate::config::load_str(&text, "running.toml").unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    #[test]
    fn changes_apply_to_the_file_and_the_result_passes_check() {
        let file = doc(FILE);
        let mut o = Overrides::default();
        o.set_weight(&file, "web", addr(9001), 5);
        o.set_state(&file, "web", addr(9002), State::Drain);
        let mut entry = Table::new();
        entry.insert("addr".into(), Value::String("127.0.0.1:9003".into()));
        o.add("web", addr(9003), entry);
        let plan = running(&o, FILE);
        let s = &plan.pools[0].servers;
        assert_eq!(s.len(), 3);
        assert_eq!((s[0].weight, s[1].drain, s[2].addr), (5, true, addr(9003)));
        // Removing drains first, then the server leaves.
        o.remove(&file, "web", addr(9001));
        let plan = running(&o, FILE);
        assert!(plan.pools[0].servers[0].drain);
        assert_eq!(o.draining(), [("web".to_string(), addr(9001))]);
        o.removed("web", addr(9001));
        assert!(o.draining().is_empty());
        let plan = running(&o, FILE);
        assert_eq!(plan.pools[0].servers.len(), 2);
        assert_eq!(plan.pools[0].servers[0].addr, addr(9002));
    }

    #[test]
    fn a_reload_keeps_what_the_file_did_not_touch_and_lets_the_file_win_where_it_did() {
        let file = doc(FILE);
        let mut o = Overrides::default();
        o.set_weight(&file, "web", addr(9001), 5);
        o.set_state(&file, "web", addr(9002), State::Maint);
        // The same file again: both kept, and said so.
        let notes = o.reconcile(&file);
        assert_eq!(o.len(), 2, "{notes:?}");
        assert!(notes[0].contains("kept weight 5"), "{notes:?}");
        assert!(notes[1].contains("kept state maint"), "{notes:?}");
        // The file now writes weight 3 for 9001 (a new intent): it wins; 9002 untouched.
        let edited = FILE.replace(
            "{ addr = \"127.0.0.1:9001\" }",
            "{ addr = \"127.0.0.1:9001\", weight = 3 }",
        );
        let notes = o.reconcile(&doc(&edited));
        assert_eq!(o.len(), 1, "{notes:?}");
        assert!(notes[0].contains("file changed weight to 3"), "{notes:?}");
        assert_eq!(running(&o, &edited).pools[0].servers[0].weight, 3);
        assert!(running(&o, &edited).pools[0].servers[1].down);
        // The file takes the operator's state: absorbed, nothing left over.
        let absorbed = edited.replace("weight = 2 }", "weight = 2, down = true }");
        let notes = o.reconcile(&doc(&absorbed));
        assert!(o.is_empty(), "{notes:?}");
    }

    #[test]
    fn added_servers_stay_until_the_file_has_them_and_removals_until_the_file_changes_the_server() {
        let file = doc(FILE);
        let mut o = Overrides::default();
        let mut entry = Table::new();
        entry.insert("addr".into(), Value::String("127.0.0.1:9003".into()));
        o.add("web", addr(9003), entry);
        o.remove(&file, "web", addr(9002));
        o.removed("web", addr(9002));
        o.reconcile(&file);
        assert_eq!(o.len(), 2);
        let with_third = FILE.replace(
            "weight = 2 } ]",
            "weight = 2 }, { addr = \"127.0.0.1:9003\" } ]",
        );
        let notes = o.reconcile(&doc(&with_third));
        assert_eq!(o.len(), 1, "{notes:?}");
        assert!(notes.iter().any(|n| n.contains("now in the file")));
        // The operator's removal holds while the file's entry is as it was …
        assert_eq!(running(&o, &with_third).pools[0].servers.len(), 2);
        // … and ends when someone edits that server in the file.
        let edited = with_third.replace("weight = 2 }", "weight = 4 }");
        let notes = o.reconcile(&doc(&edited));
        assert!(o.is_empty(), "{notes:?}");
        assert!(notes[0].contains("it is back"), "{notes:?}");
    }

    #[test]
    fn a_server_is_found_by_its_written_address_and_a_name_is_none() {
        let file = doc(&FILE.replace("127.0.0.1:9001", "localhost:9001"));
        assert!(server_entry(&file, "web", addr(9001)).is_none());
        assert!(server_entry(&file, "web", addr(9002)).is_some());
        assert_eq!(address(" 127.0.0.1:9 "), Some(addr(9)));
        assert_eq!(address("localhost:9"), None);
    }

    #[test]
    fn changes_to_servers_from_dns_are_tweaks_kept_while_the_pool_has_a_name() {
        let with_name = FILE.replace("127.0.0.1:9001", "app.test:9001");
        let file = doc(&with_name);
        let mut o = Overrides::default();
        let resolved = SocketAddr::from(([10, 0, 0, 1], 9001));
        o.set_weight(&file, "web", resolved, 5);
        o.set_state(&file, "web", resolved, State::Drain);
        assert_eq!(o.apply(&file), file, "nothing written into the TOML");
        let t = o.tweaks();
        assert_eq!((t[0].weight, t[1].state), (Some(5), Some((false, true))));
        let notes = o.reconcile(&file);
        assert_eq!(o.len(), 2, "{notes:?}");
        assert!(notes[0].contains("a server from DNS"), "{notes:?}");
        // The pool's names left the file: the changes go.
        o.reconcile(&doc(FILE));
        assert!(o.is_empty());
    }
}

//! `[[event]]`: what happens to a server during the run, and when.

use super::check::Checker;
use super::file::{EventFile, S};
use super::spec::{Action, Event};

pub(super) fn events(c: &mut Checker<'_>, events: &[S<EventFile>], names: &[String]) -> Vec<Event> {
    let mut out = Vec::new();
    for e in events {
        let f = e.get_ref();
        let need = |c: &mut Checker<'_>, k: &str, help: &str| {
            c.error(
                e.span(),
                format!("this [[event]] has no {k}"),
                help.to_string(),
            );
        };
        let at = match &f.at {
            Some(v) => c.duration(v, "at"),
            None => {
                need(c, "at", "add at = \"30s\" (time since the first request)");
                None
            }
        };
        let server = match &f.server {
            Some(v) => match names.iter().position(|n| n == v.get_ref()) {
                Some(i) => Some(i),
                None => {
                    c.error(
                        v.span(),
                        format!("no server is named {:?}", v.get_ref()),
                        format!("use one of: {}", names.join(", ")),
                    );
                    None
                }
            },
            None => {
                need(c, "server", "add server = \"NAME\"");
                None
            }
        };
        let action = match &f.action {
            Some(v) => match (v.get_ref().as_str(), &f.speed) {
                ("fail", None) => Some(Action::Fail),
                ("hang", None) => Some(Action::Hang),
                ("recover", None) => Some(Action::Recover),
                ("leave", None) => Some(Action::Leave),
                ("join", None) => Some(Action::Join),
                ("down", None) => Some(Action::Down),
                ("up", None) => Some(Action::Up),
                ("slow", Some(s)) => c.float(s, "speed", 0.001, 1000.0).map(Action::Slow),
                ("slow", None) => {
                    c.error(
                        v.span(),
                        "do = \"slow\" needs speed".into(),
                        "add speed = 0.2 (a fifth of the normal speed)",
                    );
                    None
                }
                (_, Some(s)) if ACTIONS.contains(&v.get_ref().as_str()) => {
                    c.error(
                        s.span(),
                        "speed goes only with do = \"slow\"".into(),
                        "remove speed, or write do = \"slow\"",
                    );
                    None
                }
                (other, _) => {
                    c.error(
                        v.span(),
                        format!("unknown event {other:?}"),
                        format!("use one of: {}", ACTIONS.join(", ")),
                    );
                    None
                }
            },
            None => {
                need(
                    c,
                    "do",
                    "add do = \"fail\" (or hang, recover, slow, leave, join, down, up)",
                );
                None
            }
        };
        if let (Some(at), Some(server), Some(action)) = (at, server, action) {
            out.push(Event { at, server, action });
        }
    }
    out.sort_by_key(|e| e.at);
    out
}

const ACTIONS: &[&str] = &[
    "fail", "hang", "recover", "slow", "leave", "join", "down", "up",
];

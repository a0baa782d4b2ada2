//! Validation of the keys for changing a running Switchyard (docs/operations.md): `[admin]
//! token` and who may reach the admin API, a server's `drain = true`, and `[pool.NAME.sticky]
//! on_drain`. (`shutdown_delay` is a plain duration, read in `validate.rs`.)

use std::net::SocketAddr;

use toml::Spanned;

use super::super::OnDrain;
use super::super::file::{AdminFile, ServerFile};
use super::Checker;

/// `[admin] token`: an RFC 6750 bearer token, long enough not to be guessed.
pub(super) fn admin_token(c: &mut Checker<'_>, f: &Spanned<AdminFile>) -> Option<String> {
    let t = f.get_ref().token.as_ref()?;
    let v = t.get_ref();
    let help = "make one with: openssl rand -hex 32";
    let b64token = v.trim_end_matches('=');
    if !b64token.is_empty()
        && !b64token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
    {
        c.error(
            t.span(),
            "token has characters a bearer token cannot carry",
            format!("use letters, digits and - . _ ~ + / only; {help}"),
        );
        return None;
    }
    if v.len() < 16 {
        c.error(
            t.span(),
            format!(
                "token is {} characters long; at least 16 are needed",
                v.len()
            ),
            help,
        );
        return None;
    }
    Some(v.clone())
}

/// The admin API changes pools and reloads the config: an admin listener is open only to
/// this machine (a loopback address), or to whoever holds the token. `has_token`: a usable
/// token was given (a bad one has its own error).
pub(super) fn admin_access(
    c: &mut Checker<'_>,
    f: &Spanned<AdminFile>,
    listen: &Spanned<String>,
    addr: SocketAddr,
    has_token: bool,
) {
    if addr.ip().is_loopback() || has_token || f.get_ref().token.is_some() {
        return;
    }
    c.error(
        listen.span(),
        format!("[admin] listens on {addr}, which is not a loopback address, without a token"),
        format!(
            "add token = \"...\" (make one with: openssl rand -hex 32), so every /api/ request needs Authorization: Bearer TOKEN; or listen on 127.0.0.1:{}",
            addr.port()
        ),
    );
}

/// A server's `drain = true` (HAProxy's `drain` state); not together with `down = true`.
pub(super) fn drain(c: &mut Checker<'_>, s: &ServerFile) -> bool {
    let drain = s.drain.as_ref().is_some_and(|d| *d.get_ref());
    if drain && s.down == Some(true) {
        let span = s.drain.as_ref().map_or(0..0, |d| d.span());
        c.error(
            span,
            "a server cannot be both down and draining",
            "keep down = true (out of service now) or drain = true (no new requests; the ones running finish)",
        );
    }
    drain
}

/// `[pool.NAME.sticky] on_drain`: `stay` (default) or `move`.
pub(super) fn on_drain(c: &mut Checker<'_>, v: &Option<Spanned<String>>) -> OnDrain {
    let Some(o) = v else {
        return OnDrain::Stay;
    };
    match o.get_ref().as_str() {
        "stay" => OnDrain::Stay,
        "move" => OnDrain::Move,
        other => {
            c.error(
                o.span(),
                format!("on_drain {other:?} is not understood"),
                "use on_drain = \"stay\" (a draining server keeps its sticky clients) or \"move\"",
            );
            OnDrain::Stay
        }
    }
}

#[cfg(test)]
mod tests {
    fn errors(src: &str) -> String {
        match crate::config::load_str(src, "t.toml") {
            Ok(_) => String::new(),
            Err(e) => e.to_string(),
        }
    }

    const BASE: &str = "[[listener]]\nlisten = \"127.0.0.1:8080\"\npool = \"p\"\n[pool.p]\n";

    #[test]
    fn the_new_keys_read_and_their_mistakes_say_the_fix() {
        let ok = format!(
            "shutdown_delay = \"2s\"\n{BASE}servers = [ {{ addr = \"127.0.0.1:9001\", drain = true }}, {{ addr = \"127.0.0.1:9002\" }} ]\n[pool.p.sticky]\nmode = \"cookie\"\non_drain = \"move\"\n[admin]\nlisten = \"10.1.2.3:9900\"\ntoken = \"abcdefghijklmnop\"\n"
        );
        let plan = crate::config::load_str(&ok, "t.toml").unwrap();
        assert_eq!(plan.shutdown_delay, std::time::Duration::from_secs(2));
        assert!(plan.pools[0].servers[0].drain);
        assert_eq!(
            plan.pools[0].sticky.as_ref().unwrap().on_drain,
            crate::config::OnDrain::Move
        );
        assert_eq!(
            plan.admin.unwrap().token.as_deref(),
            Some("abcdefghijklmnop")
        );
        let e = errors(&format!(
            "shutdown_delay = \"soon\"\n{BASE}servers = [ {{ addr = \"127.0.0.1:9001\", drain = true, down = true }} ]\n[pool.p.sticky]\nmode = \"cookie\"\non_drain = \"later\"\n[admin]\nlisten = \"0.0.0.0:9900\"\n"
        ));
        for want in [
            "t.toml:1:18: shutdown_delay",
            "t.toml:6:48: a server cannot be both down and draining",
            "t.toml:9:12: on_drain \"later\" is not understood",
            "t.toml:11:10: [admin] listens on 0.0.0.0:9900, which is not a loopback address, without a token",
        ] {
            assert!(e.contains(want), "{want:?} missing from:\n{e}");
        }
        let e = errors(&format!(
            "{BASE}servers = [ {{ addr = \"127.0.0.1:9001\" }} ]\n[admin]\nlisten = \"[::]:9900\"\ntoken = \"has spaces in it, quite long\"\n"
        ));
        assert!(
            e.contains("t.toml:8:9: token has characters a bearer token cannot carry"),
            "{e}"
        );
        assert!(
            !e.contains("without a token"),
            "one mistake, one error: {e}"
        );
        // Loopback needs no token.
        let local = format!(
            "{BASE}servers = [ {{ addr = \"127.0.0.1:9001\" }} ]\n[admin]\nlisten = \"[::1]:9900\"\n"
        );
        assert!(crate::config::load_str(&local, "t.toml").is_ok());
    }
}

//! The keys for changing a running Switchyard: `shutdown_delay`, `[admin] token`, a server's
//! `drain`, `[pool.NAME.sticky] on_drain`.

fn errors(src: &str) -> String {
    match crate::config::load_str(src, "t.toml") {
        Ok(_) => String::new(),
        Err(e) => e.to_string(),
    }
}

const BASE: &str = "[[listener]]\nlisten = \"127.0.0.1:8080\"\npool = \"p\"\n[pool.p]\n";

/// `shutdown_delay` not written: 5s with `[admin]` (its readiness turns 503 meanwhile), none
/// without (nothing in front could see it); written, it is kept either way.
#[test]
fn shutdown_delay_defaults_to_none_without_admin() {
    let servers = "servers = [ { addr = \"127.0.0.1:9001\" } ]\n";
    let admin = "[admin]\nlisten = \"127.0.0.1:9900\"\n";
    let delay = |text: &str| {
        crate::config::load_str(text, "t.toml")
            .unwrap()
            .shutdown_delay
    };
    let secs = std::time::Duration::from_secs;
    assert_eq!(delay(&format!("{BASE}{servers}")), secs(0));
    assert_eq!(delay(&format!("{BASE}{servers}{admin}")), secs(5));
    let written = "shutdown_delay = \"3s\"\n";
    assert_eq!(delay(&format!("{written}{BASE}{servers}")), secs(3));
    assert_eq!(delay(&format!("{written}{BASE}{servers}{admin}")), secs(3));
}

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

//! `[log]`: where the access log goes (`access`), how its lines read (`format`), and how much
//! a thread may hold for the writer (`buffer`).

use std::path::PathBuf;

use crate::config::{AccessTarget, LogFormat, LogPlan, load_str};

const BASE: &str = "[[listener]]\nlisten = \"127.0.0.1:8080\"\npool = \"p\"\n[pool.p]\nservers = [ { addr = \"127.0.0.1:9001\" } ]\n";

#[test]
fn the_access_log_goes_where_it_is_told() {
    let plan = load_str(BASE, "/etc/sy/t.toml").unwrap();
    assert_eq!(
        plan.log,
        LogPlan {
            access: AccessTarget::Stderr,
            format: LogFormat::Combined,
            buffer: 256 * 1024,
        },
        "stderr in nginx's combined format without [log]"
    );
    for (written, want) in [
        ("off", AccessTarget::Off),
        ("stdout", AccessTarget::Stdout),
        ("stderr", AccessTarget::Stderr),
        (
            "/var/log/sy/access.log",
            AccessTarget::File("/var/log/sy/access.log".into()),
        ),
        (
            "logs/access.log",
            AccessTarget::File(PathBuf::from("/etc/sy/logs/access.log")),
        ),
    ] {
        let src =
            format!("{BASE}[log]\naccess = \"{written}\"\nformat = \"json\"\nbuffer = 65536\n");
        let plan = load_str(&src, "/etc/sy/t.toml").unwrap();
        assert_eq!(
            plan.log.access, want,
            "{written}: relative to the config file"
        );
        assert_eq!((plan.log.format, plan.log.buffer), (LogFormat::Json, 65536));
    }
}

#[test]
fn mistakes_in_log_say_the_fix() {
    let e = load_str(
        &format!("{BASE}[log]\naccess = \"\"\nformat = \"common\"\nbuffer = 10\nrotate = true\n"),
        "t.toml",
    )
    .unwrap_err()
    .to_string();
    for want in [
        "t.toml:7:10: access is empty",
        "write a file path, or \"stdout\", \"stderr\" or \"off\"",
        "t.toml:8:10: unknown log format \"common\"",
        "use format = \"combined\"",
        "t.toml:9:10: buffer = 10 is out of range",
        "t.toml:10:1: unknown field `rotate`, expected one of `access`, `format`, `buffer`",
    ] {
        assert!(e.contains(want), "{want:?} missing from:\n{e}");
    }
}

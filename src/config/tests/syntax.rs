//! The tests of TOML syntax errors, unknown keys and wrong types (once in
//! `validate/syntax.rs`), moved here verbatim; `read` and `did_you_mean` are thin wrappers in
//! `tests/mod.rs`.

use super::{did_you_mean, read};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_key() {
        let m = "unknown field `lisen`, expected one of `name`, `listen`, `pool`";
        assert_eq!(did_you_mean(m).as_deref(), Some("listen"));
        let m = "unknown field `wieght`, expected one of `addr`, `weight`";
        assert_eq!(did_you_mean(m).as_deref(), Some("weight"));
        let m = "unknown field `colour`, expected one of `addr`, `weight`";
        assert_eq!(did_you_mean(m), None);
    }

    #[test]
    fn every_shape_error_is_collected() {
        let src = "wokers = 2\n[[listener]]\nlisen = \"x\"\npool = \"p\"\n[pool.p]\nkeepalive = \"3\"\nservers = [ { addr = \"a:1\", wieght = 1 } ]\n";
        let errors = read(src).errors;
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        // `lisen` also leaves `listen` missing; "did you mean `listen`?" already says it.
        assert_eq!(errors.len(), 4, "{messages:#?}");
        for part in [
            "`wokers`",
            "`lisen`",
            "keepalive must be a whole number",
            "`wieght`",
        ] {
            assert!(
                messages.iter().any(|m| m.contains(part)),
                "{part} not in {messages:#?}"
            );
        }
        assert!(!messages.iter().any(|m| m.contains("missing field")));
        // Only the offending key is cut: the listener keeps its `pool`.
        let read = read(src);
        let listener = &read.file.as_ref().unwrap().listener[0];
        assert!(listener.get_ref().pool.is_some());
        assert!(listener.get_ref().listen.is_none());
        let lisen = read.cuts.iter().find(|c| c.key == "lisen").unwrap();
        assert_eq!(lisen.suggested.as_deref(), Some("listen"));
    }

    #[test]
    fn the_earliest_syntax_error_is_the_one_reported() {
        let src = "[pool.x]\nalgorithm = \"round_robin\n[[listener]\n";
        let read = read(src);
        assert_eq!(read.errors.len(), 1);
        let e = &read.errors[0];
        assert!(e.message.contains("string"), "{e:?}");
        assert!(e.span.start < src.find("[[listener").unwrap(), "{e:?}");
        assert!(e.help.starts_with("close the string"), "{e:?}");
    }

    #[test]
    fn nginx_and_haproxy_key_names_get_ours() {
        let listener = "[[listener]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n";
        let pool = "[pool.p]\nservers = [ { addr = \"127.0.0.1:9\" } ]\n";
        for (src, help) in [
            (
                format!("{listener}[pool.p]\nservers = [ {{ address = \"127.0.0.1:9\" }} ]\n"),
                "did you mean `addr`?",
            ),
            (
                format!("{listener}{pool}balance = \"roundrobin\"\n"),
                "did you mean `algorithm`?",
            ),
            (
                format!("{listener}protocol = \"tcp\"\nproxy_timeout = \"10m\"\n{pool}"),
                "did you mean `idle_timeout`?",
            ),
            (
                format!("{listener}{pool}proxy_read_timeout = \"5s\"\n"),
                "did you mean `timeouts`? nginx's proxy_read_timeout is timeouts = { read = \"60s\" } here",
            ),
            (
                format!("{listener}timeouts = {{ read = \"5s\" }}\n{pool}"),
                "timeouts are set per pool",
            ),
            (
                format!("{listener}[upstream.p]\nservers = [ {{ addr = \"127.0.0.1:9\" }} ]\n"),
                "did you mean `pool`? nginx's upstream {} and HAProxy's backend are [pool.NAME]",
            ),
            (
                format!("[[frontend]]\nlisten = \"127.0.0.1:1\"\npool = \"p\"\n{pool}"),
                "did you mean `listener`?",
            ),
            (
                format!("[[listener]]\nbind = \"127.0.0.1:1\"\npool = \"p\"\n{pool}"),
                "did you mean `listen`?",
            ),
            (
                format!("[[listener]]\nlisten = \"127.0.0.1:1\"\ndefault_backend = \"p\"\n{pool}"),
                "did you mean `pool`?",
            ),
        ] {
            let read = read(&src);
            assert_eq!(read.errors.len(), 1, "{src}\n{:?}", read.errors);
            assert!(
                read.errors[0].help.starts_with(help),
                "{src}\n{:?}",
                read.errors
            );
        }
        // `address` names `addr`: no second error that the server has no address.
        let src = format!("{listener}[pool.p]\nservers = [ {{ address = \"127.0.0.1:9\" }} ]\n");
        let errs = super::super::validate(&src, "f.toml").unwrap_err().0;
        assert_eq!(errs.len(), 1, "{errs:?}");
    }

    #[test]
    fn wrong_types_are_said_in_the_operators_words() {
        for (src, message, help) in [
            (
                "[pool.p]\nkeepalive = \"32\"\n",
                "keepalive must be a whole number",
                "write keepalive = 32, without quotes",
            ),
            (
                "[pool.p]\nkeepalive = \"many\"\n",
                "keepalive must be a whole number",
                "write e.g. keepalive = 32",
            ),
            (
                "[pool.p]\ntimeouts = { read = 5 }\n",
                "read = 5 needs a unit",
                "write read = \"5s\" (or \"5ms\"); units: ms, s, m, h, d, w, y",
            ),
            (
                "[pool.p]\ntimeouts = { read = -5 }\n",
                "read = -5: a duration cannot be negative",
                "write a positive duration in quotes, e.g. read = \"5s\"",
            ),
            (
                "[pool.p]\ntimeouts = { read = 1.5 }\n",
                "read = 1.5 needs a unit, in quotes",
                "write read = \"1500ms\"; fractions are not supported",
            ),
            (
                "[pool.p]\nservers = [ { addr = \"a:1\", backup = \"yes\" } ]\n",
                "backup must be true or false",
                "write backup = true, without quotes",
            ),
            (
                "[pool.p]\nservers = [ \"127.0.0.1:9001\" ]\n",
                "each server must be a table",
                "write { addr = \"127.0.0.1:9001\" }",
            ),
            (
                "[pool.p]\nservers = \"127.0.0.1:9001\"\n",
                "servers must be an array",
                "write servers = [ { addr = \"127.0.0.1:9001\" } ]",
            ),
            (
                "[pool.p]\nhealth = true\n",
                "health must be a table",
                "write a section [pool.p.health] with e.g. interval = \"2s\" below it",
            ),
            (
                "[[listener]]\nlisten = 8080\n",
                "listen must be a string, in quotes",
                "write listen = \"8080\"",
            ),
            (
                "[pool.p.retry]\non = \"5xx\"\n",
                "on must be an array",
                "write on = [\"5xx\"]",
            ),
        ] {
            let errors = read(src).errors;
            assert_eq!(errors.len(), 1, "{src}");
            assert_eq!(errors[0].message, message, "{src}");
            assert_eq!(errors[0].help, help, "{src}");
        }
    }
}

/// A number written where a string with a unit or a shape is read: the help's fix, fed back
/// to the reader, is accepted (it was `write rate = "20"`, itself an error).
#[test]
fn the_fix_for_an_unquoted_number_is_a_valid_value() {
    let base = "[[listener]]\nname = \"web\"\nlisten = \"127.0.0.1:8080\"\npool = \"p\"\n\
        [[listener.limit]]\nkey = \"client_ip\"\nrate = \"1/s\"\n\
        [pool.p]\nservers = [{ addr = \"127.0.0.1:9001\" }]\nqueue_timeout = \"1s\"\n\
        [pool.p.health]\npath = \"/\"\nexpect = \"200\"\ninterval = \"2s\"\n";
    let cases = [
        ("rate = \"1/s\"", "rate = 20"),
        ("rate = \"1/s\"", "rate = 2.5"),
        ("listen = \"127.0.0.1:8080\"", "listen = 8080"),
        ("queue_timeout = \"1s\"", "queue_timeout = 5"),
        ("queue_timeout = \"1s\"", "queue_timeout = 2.5"),
        ("interval = \"2s\"", "interval = 3"),
        ("expect = \"200\"", "expect = 204"),
        ("path = \"/\"", "path = 5"),
    ];
    for (good, written) in cases {
        let src = base.replace(good, written);
        let key = written.split(" = ").next().unwrap();
        let errors = super::validate(&src, "sy.toml").expect_err(written).0;
        let e = errors
            .iter()
            .find(|e| e.message.starts_with(key) || e.message.contains(&format!("{key}:")))
            .unwrap_or_else(|| panic!("{written}: {errors:?}"));
        let help = e.help.clone().unwrap_or_default();
        let prefix = format!("write {key} = ");
        let fix = help
            .strip_prefix(&prefix)
            .unwrap_or_else(|| panic!("{written}: help {help:?}"));
        let value = match fix.strip_prefix('"') {
            Some(rest) => format!("\"{}\"", &rest[..rest.find('"').unwrap()]),
            None => fix.split([' ', ',', ';']).next().unwrap().to_string(),
        };
        let fixed = base.replace(good, &format!("{key} = {value}"));
        if let Err(again) = super::validate(&fixed, "sy.toml") {
            panic!("{written} → help {help:?} → {key} = {value}: {again}");
        }
    }
}

/// `check -c nginx.conf` (or haproxy.cfg): the help says what the file is and how to
/// convert it, instead of TOML's "expected '='" alone; a TOML file missing an `=` is not
/// taken for one.
#[test]
fn an_nginx_or_haproxy_file_is_recognised_and_import_suggested() {
    let nginx = "events {}\nhttp {\n    upstream web { server 127.0.0.1:9001; }\n}\n";
    let haproxy = "global\n    daemon\ndefaults\n    mode http\nfrontend www\n    bind :80\n";
    for (src, file, product) in [
        (nginx, "nginx.conf", "an nginx config"),
        (
            "worker_processes 2;\n",
            "/etc/nginx/nginx.conf",
            "an nginx config",
        ),
        (haproxy, "haproxy.cfg", "a HAProxy config"),
        (haproxy, "lb.conf", "a HAProxy config"),
        (
            "frontend www\n    bind :80\n",
            "haproxy.cfg",
            "a HAProxy config",
        ),
    ] {
        let e = &super::validate(src, file).unwrap_err().0[0];
        let help = e.help.clone().unwrap_or_default();
        assert!(
            help.contains(product)
                && help.contains(&format!("switchyard import {file} -o switchyard.toml")),
            "{file}: {help}"
        );
    }
    for src in ["listen \"127.0.0.1:80\"\n", "[[listener]]\nname \"web\"\n"] {
        let e = &super::validate(src, "sy.toml").unwrap_err().0[0];
        assert!(
            !e.help.clone().unwrap_or_default().contains("import"),
            "{e:?}"
        );
    }
}

//! `[pool]` and `[[server]]`: the pool (inline, through Switchyard's own config reader so
//! every default and check is the real one, or a pool of a real config file) and the model
//! of each of its servers.

use std::path::{Path, PathBuf};

use super::check::{Checker, inline_addr, toml_str};
use super::file::{PoolFile, S, ServerFile};
use super::spec::ServerModel;
use crate::config::{Algorithm, Plan, PoolPlan};

/// The pool, the name of each of its servers, and whether servers are written inline.
pub(super) fn pool(
    c: &mut Checker<'_>,
    p: Option<&S<PoolFile>>,
    servers: &[S<ServerFile>],
    dir: Option<&Path>,
) -> Option<(PoolPlan, Vec<String>, bool)> {
    let empty = PoolFile {
        config: None,
        name: None,
        hash_key: None,
        max_fails: None,
        fail_timeout: None,
        slow_start: None,
        retries: None,
        sticky: None,
        health: None,
        read_timeout: None,
    };
    let (span, p) = match p {
        Some(p) => (p.span(), p.get_ref()),
        None => (0..0, &empty),
    };
    if let Some(config) = &p.config {
        if let Some(k) = [
            p.hash_key.as_ref().map(|v| v.span()),
            p.max_fails.as_ref().map(|v| v.span()),
            p.fail_timeout.as_ref().map(|v| v.span()),
            p.slow_start.as_ref().map(|v| v.span()),
            p.retries.as_ref().map(|v| v.span()),
            p.sticky.as_ref().map(|v| v.span()),
            p.health.as_ref().map(|v| v.span()),
            p.read_timeout.as_ref().map(|v| v.span()),
        ]
        .into_iter()
        .flatten()
        .next()
        {
            c.error(
                k,
                "a pool read from config takes its settings from that file".into(),
                "change the setting in the config file, or write the pool inline without config",
            );
        }
        let path: PathBuf = dir.unwrap_or(Path::new(".")).join(config.get_ref());
        let plan = match crate::config::load_file(&path) {
            Ok(plan) => plan,
            Err(errors) => {
                c.error(
                    config.span(),
                    format!("the config {} has errors:\n{errors}", path.display()),
                    format!("run switchyard check -c {}", path.display()),
                );
                return None;
            }
        };
        let pool = match &p.name {
            Some(n) => match plan.pool(n.get_ref()) {
                Some(pool) => pool.clone(),
                None => {
                    let names: Vec<&str> = plan.pools.iter().map(|p| p.name.as_str()).collect();
                    c.error(
                        n.span(),
                        format!("{} has no pool {:?}", path.display(), n.get_ref()),
                        format!("use one of: {}", names.join(", ")),
                    );
                    return None;
                }
            },
            None => plan.pools.first()?.clone(),
        };
        // A server written with a host name is simulated as one server (no DNS is asked
        // here), at a documentation address of its own.
        let mut pool = pool;
        let targets: Vec<Vec<crate::discovery::Target>> = (0..pool.named.len())
            .map(|i| {
                let addr = inline_addr(1000 + i).parse().expect("a literal address");
                vec![crate::discovery::Target {
                    backup: false,
                    addr,
                    weight: None,
                }]
            })
            .collect();
        let plan = Plan {
            pools: vec![pool.clone()],
            ..Plan::default()
        };
        let expanded = crate::discovery::expand(
            &plan,
            |_, q| {
                let i = pool
                    .named
                    .iter()
                    .position(|n| crate::discovery::Question::of(n, &pool.dns) == *q);
                i.map_or(&[][..], |i| targets[i].as_slice())
            },
            &[],
        );
        pool = expanded.pools[0].clone();
        let names = pool.servers.iter().map(|s| s.name.clone()).collect();
        return Some((pool, names, false));
    }
    if let Some(n) = &p.name {
        c.error(
            n.span(),
            "name picks a pool of a config file, and there is no config".into(),
            "add config = \"path/to/switchyard.toml\", or leave name out for an inline pool",
        );
    }
    // Inline: servers from [[server]], settings from [pool], through Switchyard's own
    // config reader, so every default and check is the real one.
    let mut entries = Vec::new();
    let mut names: Vec<String> = Vec::new();
    for s in servers {
        let f = s.get_ref();
        let count = f
            .count
            .as_ref()
            .map_or(Some(1), |n| c.int(n, "count", 1, 10_000))
            .unwrap_or(1);
        let base = f.name.as_ref().map(|n| n.get_ref().clone());
        let weight = f
            .weight
            .as_ref()
            .map_or(Some(1), |w| c.int(w, "weight", 1, 1000))
            .unwrap_or(1);
        for k in 0..count {
            let name = match (&base, count) {
                (Some(b), 1) => b.clone(),
                (Some(b), _) => format!("{b}{}", k + 1),
                (None, _) => format!("s{}", names.len() + 1),
            };
            if names.contains(&name) {
                c.error(
                    s.span(),
                    format!("two servers are named {name:?}"),
                    "give each [[server]] its own name",
                );
            }
            entries.push(format!(
                "{{ addr = \"{}\", name = {}, weight = {weight}, backup = {}, down = {} }}",
                inline_addr(entries.len()),
                toml_str(&name),
                f.backup.unwrap_or(false),
                f.down.unwrap_or(false)
            ));
            names.push(name);
        }
    }
    if entries.is_empty() {
        c.error(
            span,
            "the pool has no servers".into(),
            "add [[server]] entries (name, weight, speed, concurrency; count = N for N alike), \
             or config = \"switchyard.toml\" in [pool]",
        );
        return None;
    }
    let mut keys = String::new();
    let mut line = |k: &str, v: String| keys.push_str(&format!("{k} = {v}\n"));
    if let Some(v) = &p.hash_key {
        // Switchyard takes hash_key only with a hashing algorithm; each run sets its own.
        line("algorithm", "\"hash\"".into());
        line("hash_key", toml_str(v.get_ref()));
    }
    if let Some(v) = &p.max_fails {
        line("max_fails", c.int(v, "max_fails", 0, 1000)?.to_string());
    }
    for (k, v) in [
        ("fail_timeout", &p.fail_timeout),
        ("slow_start", &p.slow_start),
    ] {
        if let Some(v) = v {
            line(k, toml_str(v.get_ref()));
        }
    }
    if let Some(v) = &p.read_timeout {
        line(
            "timeouts",
            format!("{{ read = {} }}", toml_str(v.get_ref())),
        );
    }
    if let Some(v) = &p.retries {
        line(
            "retry",
            format!("{{ attempts = {} }}", c.int(v, "retries", 0, 100)?),
        );
    }
    if let Some(v) = &p.sticky {
        line("sticky", format!("{{ mode = {} }}", toml_str(v.get_ref())));
    }
    if let Some(h) = &p.health {
        let h = h.get_ref();
        let mut parts = vec!["type = \"tcp\"".to_string()];
        if let Some(v) = &h.interval {
            parts.push(format!("interval = {}", toml_str(v.get_ref())));
            parts.push(format!("timeout = {}", toml_str(v.get_ref())));
        }
        for (k, v) in [("rise", &h.rise), ("fall", &h.fall)] {
            if let Some(v) = v {
                parts.push(format!("{k} = {}", c.int(v, k, 1, 1000)?));
            }
        }
        line("health", format!("{{ {} }}", parts.join(", ")));
    }
    let text = format!(
        "[[listener]]\nlisten = \"127.0.0.1:0\"\npool = \"sim\"\n[pool.sim]\n{keys}servers = [\n  {}\n]\n",
        entries.join(",\n  ")
    );
    match crate::config::load_str(&text, "pool") {
        Ok(plan) => Some((plan.pools[0].clone(), names, true)),
        Err(errors) => {
            // A value Switchyard's reader refused (a bad hash_key, duration, sticky mode):
            // point at [pool] with its words.
            for e in errors.0 {
                c.error(
                    span.clone(),
                    format!("in [pool]: {}", e.message),
                    e.help
                        .unwrap_or_else(|| "see docs/config.md for the pool keys".into()),
                );
            }
            None
        }
    }
}

pub(super) fn models(
    c: &mut Checker<'_>,
    servers: &[S<ServerFile>],
    pool: &PoolPlan,
    inline: bool,
) -> Option<Vec<ServerModel>> {
    let mut models: Vec<ServerModel> = pool
        .servers
        .iter()
        .map(|s| ServerModel {
            name: s.name.clone(),
            speed: 1.0,
            concurrency: 0,
            queue: 0,
        })
        .collect();
    let mut next = 0;
    let mut ok = true;
    for s in servers {
        let f = s.get_ref();
        let count = if inline {
            f.count
                .as_ref()
                .map_or(1, |c| *c.get_ref().max(&1) as usize)
        } else {
            for (k, span) in [
                ("count", f.count.as_ref().map(|v| v.span())),
                ("weight", f.weight.as_ref().map(|v| v.span())),
            ] {
                if let Some(span) = span {
                    c.error(
                        span,
                        format!("{k} of a server of a config pool comes from the config"),
                        "change it in the config file, or leave it out here",
                    );
                }
            }
            1
        };
        let targets: Vec<usize> = if inline {
            let r = next..(next + count).min(models.len());
            next += count;
            r.collect()
        } else {
            let Some(name) = &f.name else {
                c.error(
                    s.span(),
                    "a [[server]] of a config pool needs name".into(),
                    "add name = \"...\": a server's name (or address) in the config",
                );
                ok = false;
                continue;
            };
            match pool
                .servers
                .iter()
                .position(|p| p.name == *name.get_ref() || p.addr.to_string() == *name.get_ref())
            {
                Some(i) => vec![i],
                None => {
                    let names: Vec<&str> = pool.servers.iter().map(|s| s.name.as_str()).collect();
                    c.error(
                        name.span(),
                        format!("pool {:?} has no server {:?}", pool.name, name.get_ref()),
                        format!("use one of: {}", names.join(", ")),
                    );
                    ok = false;
                    continue;
                }
            }
        };
        let speed = f
            .speed
            .as_ref()
            .map_or(Some(1.0), |v| c.float(v, "speed", 0.001, 1000.0));
        let concurrency = f
            .concurrency
            .as_ref()
            .map_or(Some(0), |v| c.int(v, "concurrency", 0, 1_000_000));
        let queue = f
            .queue
            .as_ref()
            .map_or(Some(0), |v| c.int(v, "queue", 0, 100_000_000));
        let (Some(speed), Some(concurrency), Some(queue)) = (speed, concurrency, queue) else {
            ok = false;
            continue;
        };
        for i in targets {
            let m = &mut models[i];
            m.speed = speed;
            m.concurrency = concurrency as usize;
            m.queue = queue as usize;
        }
    }
    ok.then_some(models)
}

/// Without `algorithms`: all of them, except that a pool hashing a key other than the
/// client address is not offered `ip_hash` (which hashes only the address).
pub(super) fn default_algorithms(pool: &PoolPlan) -> Vec<Algorithm> {
    Algorithm::NAMES
        .iter()
        .filter_map(|n| Algorithm::parse(n))
        .fold(Vec::new(), |mut v, a| {
            if !v.contains(&a) {
                v.push(a);
            }
            v
        })
        .into_iter()
        .filter(|a| *a != Algorithm::IpHash || pool.hash_key == crate::config::HashKey::ClientIp)
        .collect()
}

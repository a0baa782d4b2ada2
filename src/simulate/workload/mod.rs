//! The workload file of `switchyard simulate`: a small TOML file that says what traffic
//! arrives, which pool it meets (inline, or a pool of a real Switchyard config), how each
//! server behaves, and what happens to the servers during the run.
//!
//! Read with serde (unknown keys are errors), then checked value by value, every problem
//! at once, each with `file:line:column` and the fix, as Switchyard's own config errors.
//! The result is a [`Workload`] of plain values; `engine.rs` runs it. `file.rs` is the
//! serde shape, `check.rs` the shared checks, `traffic.rs`, `pool.rs` and `events.rs` the
//! three parts of the file, `spec.rs` the checked values.

mod check;
mod events;
mod file;
mod pool;
mod spec;
mod traffic;

use std::path::Path;

pub use spec::*;

use crate::config::Algorithm;
use check::Checker;
use file::File;

/// Read and check a workload file. A pool `config = "..."` is read relative to it.
pub fn load_file(path: &Path) -> Result<Workload, WorkloadErrors> {
    let name = path.display().to_string();
    let src = std::fs::read_to_string(path).map_err(|e| {
        crate::config::ConfigErrors(vec![WorkloadError {
            file: name.clone(),
            line: 0,
            column: 0,
            message: format!("cannot read the workload: {e}"),
            help: Some("pass an existing file, e.g. examples/simulate/slow-server.toml".into()),
        }])
    })?;
    load_str(&src, &name, path.parent())
}

/// Read and check workload text; `dir` is where a pool `config` path is relative to.
pub fn load_str(src: &str, file: &str, dir: Option<&Path>) -> Result<Workload, WorkloadErrors> {
    let mut c = Checker {
        src,
        file,
        errors: Vec::new(),
    };
    let parsed: File = match toml::from_str(src) {
        Ok(f) => f,
        Err(e) => {
            let help = if e.message().contains("unknown field") {
                "see docs/simulate.md for the keys of a workload file"
            } else {
                "fix the TOML syntax here"
            };
            c.error(
                e.span().unwrap_or(0..0),
                e.message().trim().to_string(),
                help,
            );
            return Err(crate::config::ConfigErrors(c.errors));
        }
    };
    let w = workload(&mut c, parsed, dir);
    match w {
        Some(w) if c.errors.is_empty() => Ok(w),
        _ => Err(crate::config::ConfigErrors(c.errors)),
    }
}

fn workload(c: &mut Checker<'_>, f: File, dir: Option<&Path>) -> Option<Workload> {
    let algorithms = match &f.algorithms {
        None => Vec::new(),
        Some(list) => {
            let mut v = Vec::new();
            for a in list.get_ref() {
                match Algorithm::parse(a.get_ref()) {
                    Some(x) if !v.contains(&x) => v.push(x),
                    Some(_) => {}
                    None => c.error(
                        a.span(),
                        format!("unknown algorithm {:?}", a.get_ref()),
                        format!("use one of: {}", Algorithm::NAMES.join(", ")),
                    ),
                }
            }
            if v.is_empty() && list.get_ref().is_empty() {
                c.error(
                    list.span(),
                    "algorithms is empty".into(),
                    "name at least one, e.g. algorithms = [\"round_robin\", \"least_conn\"], or leave the key out for all",
                );
            }
            v
        }
    };
    let goal = match &f.goal {
        None => None,
        Some(g) => match g.get_ref().as_str() {
            "p50" => Some(Goal::P50),
            "p99" => Some(Goal::P99),
            "p999" => Some(Goal::P999),
            "errors" => Some(Goal::Errors),
            "keys_moved" => Some(Goal::KeysMoved),
            other => {
                c.error(
                    g.span(),
                    format!("unknown goal {other:?}"),
                    "use one of: p50, p99, p999, errors, keys_moved",
                );
                None
            }
        },
    };
    let seed = f
        .seed
        .as_ref()
        .and_then(|s| c.int(s, "seed", 0, i64::MAX))
        .unwrap_or(1);
    let t = traffic::traffic(c, f.traffic.as_ref());
    let (pool, names, inline_ok) = pool::pool(c, f.pool.as_ref(), &f.server, dir)?;
    let servers = pool::models(c, &f.server, &pool, inline_ok);
    let events = events::events(c, &f.event, &names);
    let (requests, rate, burstiness, keys, key_skew, mix) = t?;
    let algorithms = if algorithms.is_empty() && f.algorithms.is_none() {
        pool::default_algorithms(&pool)
    } else {
        algorithms
    };
    let goal = goal.unwrap_or(
        if events.iter().any(|e| e.action == Action::Leave)
            && algorithms.iter().all(|a| is_hashing(*a))
        {
            Goal::KeysMoved
        } else {
            Goal::P99
        },
    );
    Some(Workload {
        file: c.file.to_string(),
        algorithms,
        goal,
        seed,
        requests,
        rate,
        burstiness,
        keys,
        key_skew,
        mix,
        pool,
        servers: servers?,
        events,
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn errors(src: &str) -> String {
        load_str(src, "w.toml", None).unwrap_err().to_string()
    }

    #[test]
    fn an_inline_workload_reads_with_defaults() {
        let w = load_str(
            "[traffic]\nservice = \"10ms\"\n[[server]]\nname = \"a\"\ncount = 3\n[[server]]\nname = \"slow\"\nspeed = 0.2\nconcurrency = 4\n",
            "w.toml",
            None,
        )
        .unwrap();
        assert_eq!(w.requests, 100_000);
        assert_eq!(w.servers.len(), 4);
        assert_eq!(w.servers[0].name, "a1");
        assert_eq!((w.servers[3].speed, w.servers[3].concurrency), (0.2, 4));
        assert_eq!(w.pool.servers.len(), 4);
        assert_eq!(w.goal, Goal::P99);
        assert!(w.algorithms.contains(&Algorithm::LeastTime));
    }

    #[test]
    fn every_mistake_is_named_with_its_line_and_a_fix() {
        let text = errors(
            "algorithms = [\"least_connections\"]\n[traffic]\nrate = -1.0\nservice = \"10 parsecs\"\n[[server]]\nname = \"a\"\n[[event]]\nat = \"1s\"\nserver = \"b\"\ndo = \"explode\"\n",
        );
        assert!(
            text.contains("w.toml:1:15: unknown algorithm \"least_connections\""),
            "{text}"
        );
        assert!(
            text.contains("w.toml:3:8: rate = -1 is out of range"),
            "{text}"
        );
        assert!(
            text.contains("w.toml:4:11: service is not a service time"),
            "{text}"
        );
        assert!(
            text.contains("w.toml:9:10: no server is named \"b\""),
            "{text}"
        );
        assert!(text.contains("help: use one of: a"), "{text}");
        assert!(
            text.contains("w.toml:10:6: unknown event \"explode\""),
            "{text}"
        );
    }

    #[test]
    fn unknown_keys_and_bad_pool_values_point_at_their_place() {
        let text = errors("[traffic]\nservise = \"10ms\"\n");
        assert!(
            text.contains("w.toml:2:1: unknown field `servise`"),
            "{text}"
        );
        let text = errors(
            "[traffic]\nservice = \"10ms\"\n[pool]\nhash_key = \"cookies:x\"\n[[server]]\nname = \"a\"\n",
        );
        assert!(text.contains("w.toml:3:1: in [pool]:"), "{text}");
    }

    #[test]
    fn times_and_distributions() {
        assert_eq!(parse_time("250us"), Some(Duration::from_micros(250)));
        assert_eq!(parse_time("1.5s"), Some(Duration::from_millis(1500)));
        assert_eq!(parse_time("10"), None);
        let d = Dist::LogNormal {
            median: Duration::from_millis(10),
            p99: Duration::from_millis(10),
        };
        assert_eq!(d.mean(), Duration::from_millis(10));
    }
}

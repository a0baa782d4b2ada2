//! The `plan` and `reload` commands as the binary runs them: read the files, ask the admin
//! API (`admin::client`), print the plan, and say with the exit status how it went:
//! [`EXIT_OK`], [`EXIT_ERROR`] (a file does not pass `check`, the balancer cannot be asked, a
//! reload refused), [`EXIT_OVER`] (a pool moves more keys or sessions than `--max-moved`).

use std::net::SocketAddr;
use std::path::Path;
use std::time::{SystemTime, UNIX_EPOCH};

use super::{Report, percent};
use crate::admin::client::{self, Config, ReloadOutcome, Target};
use crate::config::{self, Plan};

pub const EXIT_OK: u8 = 0;
pub const EXIT_ERROR: u8 = 1;
pub const EXIT_OVER: u8 = 2;

/// `--max-moved 10%`: a share from a percentage (`10%`, `10`, `2.5%`).
pub fn parse_share(s: &str) -> Result<f64, String> {
    let n: f64 = s
        .trim()
        .trim_end_matches('%')
        .trim()
        .parse()
        .map_err(|_| format!("{s:?} is not a percentage: write e.g. 10%"))?;
    if !(0.0..=100.0).contains(&n) {
        return Err(format!("{s:?} is not between 0% and 100%"));
    }
    Ok(n / 100.0)
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// A file as `check` reads it, or its errors printed as `check` prints them.
fn load(path: &Path) -> Result<Plan, u8> {
    config::load_file(path).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!("{} error(s) in {}", errors.0.len(), path.display());
        EXIT_ERROR
    })
}

/// The running configuration's TOML, read as if it were a file beside `beside` (its paths
/// stay as written, relative to the running file: `GET /api/config` keeps them so).
fn load_toml(text: &str, beside: &Path, what: &str) -> Result<Plan, u8> {
    let dir = beside.parent().unwrap_or(Path::new(""));
    let name = dir.join(format!("({what})")).display().to_string();
    config::load_str(text, &name).map_err(|errors| {
        eprintln!("{errors}");
        eprintln!(
            "error: the {what} does not load here: its paths are read beside {}",
            beside.display()
        );
        EXIT_ERROR
    })
}

/// Whether the report stays within `max`; the pools above it are named.
fn verdict(report: &Report, max: Option<f64>) -> u8 {
    let Some(max) = max else { return EXIT_OK };
    let over = report.over(max);
    if over.is_empty() {
        println!("within --max-moved {}", percent(max));
        return EXIT_OK;
    }
    for m in over {
        eprintln!(
            "error: pool {:?} moves {} of its {}, above --max-moved {}",
            m.pool,
            percent(m.share),
            m.what,
            percent(max)
        );
    }
    EXIT_OVER
}

/// `switchyard plan OLD NEW`.
pub fn plan_files(old: &Path, new: &Path, max_moved: Option<f64>) -> u8 {
    let (a, b) = match (load(old), load(new)) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return EXIT_ERROR,
    };
    println!("plan: {} → {}", old.display(), new.display());
    let report = super::make_files(&a, &b, now());
    print!("{}", report.text());
    verdict(&report, max_moved)
}

/// Where the admin listener is: `--admin`, else the file's `[admin]`; the token from
/// `--token` (or its environment variable), else the file.
fn target(
    path: &Path,
    admin: Option<SocketAddr>,
    token: Option<String>,
    cmd: &str,
) -> Result<Target, u8> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        // No file to find [admin] in: that error alone (`check`'s words), not also "has no
        // [admin] listener".
        Err(_) if admin.is_none() => {
            if let Err(errors) = config::load_file(path) {
                eprintln!("{errors}");
            }
            return Err(EXIT_ERROR);
        }
        Err(_) => String::new(),
    };
    let found = client::target_of(&text);
    match (admin, found) {
        (Some(addr), found) => Ok(Target {
            addr,
            token: token.or(found.and_then(|t| t.token)),
        }),
        (None, Some(t)) => Ok(Target {
            addr: t.addr,
            token: token.or(t.token),
        }),
        (None, None) => {
            // No [admin] to talk to: say what `check` says of the file, and how to go on.
            if let Err(errors) = config::load_file(path) {
                eprintln!("{errors}");
            }
            eprintln!(
                "error: {} has no [admin] listener, which switchyard {cmd} talks to\n  help: add [admin] with listen = \"127.0.0.1:9900\" (and reload with SIGHUP this once: kill -HUP PID), or pass --admin HOST:PORT",
                path.display()
            );
            Err(EXIT_ERROR)
        }
    }
}

fn unreachable(e: &str, target: &Target) -> u8 {
    eprintln!(
        "error: {e}\n  help: is switchyard running with [admin] listen = \"{}\"? (systemctl status switchyard; ss -ltnp 'sport = :{}')",
        target.addr,
        target.addr.port()
    );
    EXIT_ERROR
}

fn refused(outcome: ReloadOutcome) -> u8 {
    if let ReloadOutcome::Refused {
        message,
        errors,
        help,
    } = outcome
    {
        for e in &errors {
            eprintln!("{e}");
        }
        eprintln!("error: {message}");
        if let Some(h) = help {
            eprintln!("  help: {h}");
        }
    }
    EXIT_ERROR
}

fn block_on<F: std::future::Future>(f: F) -> Result<F::Output, u8> {
    match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => Ok(rt.block_on(f)),
        Err(e) => {
            eprintln!("error: {e}");
            Err(EXIT_ERROR)
        }
    }
}

/// The running configuration's TOML, or the exit status after saying why not.
fn running(target: &Target) -> Result<String, u8> {
    match block_on(client::config(target, false))? {
        Ok(Config::Toml(t)) => Ok(t),
        Ok(Config::Refused(o)) => Err(refused(o)),
        Ok(Config::Unknown) => {
            eprintln!(
                "error: the Switchyard at {} has no GET /api/config",
                target.addr
            );
            Err(EXIT_ERROR)
        }
        Err(e) => Err(unreachable(&e, target)),
    }
}

/// `switchyard plan NEW`: the running configuration (with the changes made over the admin
/// API) → NEW.
pub fn plan_running(
    new: &Path,
    admin: Option<SocketAddr>,
    token: Option<String>,
    max_moved: Option<f64>,
) -> u8 {
    let go = || -> Result<u8, u8> {
        let target = target(new, admin, token, "plan")?;
        let text = running(&target)?;
        let what = format!("running configuration of {}", target.addr);
        let (a, b) = (load_toml(&text, new, &what)?, load(new)?);
        println!("plan: the {what} → {}", new.display());
        if let Some(first) = text.lines().next()
            && first.contains("made over the admin API")
        {
            println!(
                "note: the running configuration has changes made over the admin API; this plan compares with them in place. A reload of the running file keeps those the file does not change: `switchyard reload --dry-run` shows that plan"
            );
        }
        let report = super::make(&a, &b, now());
        print!("{}", report.text());
        Ok(verdict(&report, max_moved))
    };
    go().unwrap_or_else(|code| code)
}

/// `switchyard reload`: the plan of what a reload of the running file would change (from
/// `GET /api/config` and `GET /api/config/next`), then, unless `dry_run` or above
/// `max_moved`, `POST /api/reload` and what it changed.
pub fn reload(
    path: &Path,
    admin: Option<SocketAddr>,
    token: Option<String>,
    dry_run: bool,
    max_moved: Option<f64>,
) -> u8 {
    let go = || -> Result<u8, u8> {
        let target = target(path, admin, token, "reload")?;
        same_file(path, &target)?;
        let planned = reload_plan(path, &target, dry_run)?;
        let mut code = EXIT_OK;
        if let Some(report) = &planned {
            print!("{}", report.text());
            code = verdict(report, max_moved);
        }
        if dry_run {
            println!("dry run: nothing applied");
            return Ok(code);
        }
        if code != EXIT_OK {
            eprintln!("not reloaded: the running configuration stays");
            return Ok(code);
        }
        match block_on(client::reload(&target))? {
            Ok(ReloadOutcome::Reloaded { changes }) => {
                if changes.is_empty() {
                    println!("reloaded: nothing changed");
                }
                for c in changes {
                    // A change a reload cannot make (`workers`) is not said as made.
                    match c.contains(crate::config::diff::NEEDS_RESTART) {
                        true => println!("not reloaded: {c}"),
                        false => println!("reloaded: {c}"),
                    }
                }
                Ok(EXIT_OK)
            }
            Ok(refusal) => Ok(refused(refusal)),
            Err(e) => Ok(unreachable(&e, &target)),
        }
    };
    go().unwrap_or_else(|code| code)
}

/// A reload makes the running Switchyard read its own file again: `path` must be that file
/// (compared as canonical paths), or the reload would apply another file than the plan
/// compared with and the user means.
fn same_file(path: &Path, target: &Target) -> Result<(), u8> {
    let running = match block_on(client::running_file(target))? {
        Ok(Some(p)) => p,
        // Run without a file, or an older version that names none: nothing to compare.
        Ok(None) => return Ok(()),
        Err(e) => return Err(unreachable(&e, target)),
    };
    let canonical = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
    if canonical(Path::new(&running)) == canonical(path) {
        return Ok(());
    }
    eprintln!(
        "error: the running Switchyard reads {running}; reload makes it read that file again — edit {running}, or run `switchyard plan {}` to compare",
        path.display()
    );
    Err(EXIT_ERROR)
}

/// The plan of a reload, or `None` when it cannot be made and the reload should still be
/// asked for (the running Switchyard then refuses a broken file with every error, and
/// counts the failed reload, as it did before plans).
fn reload_plan(path: &Path, target: &Target, dry_run: bool) -> Result<Option<Report>, u8> {
    let cannot = |why: String| -> Result<Option<Report>, u8> {
        if dry_run {
            eprintln!("error: {why}");
            return Err(EXIT_ERROR);
        }
        eprintln!("warning: {why}; reloading without a plan");
        Ok(None)
    };
    let next = match block_on(client::config(target, true))? {
        Ok(Config::Toml(t)) => t,
        Ok(Config::Refused(o)) if dry_run => return Err(refused(o)),
        Ok(Config::Refused(_)) => return Ok(None),
        Ok(Config::Unknown) => {
            return cannot(format!(
                "the Switchyard at {} does not say what a reload would change (it has no GET /api/config/next: an older version)",
                target.addr
            ));
        }
        Err(e) => return Err(unreachable(&e, target)),
    };
    let text = running(target)?;
    let what = format!("running configuration of {}", target.addr);
    let (Ok(a), Ok(b)) = (
        load_toml(&text, path, &what),
        load_toml(&next, path, "configuration a reload makes running"),
    ) else {
        return cannot("the plan cannot be made here".into());
    };
    println!(
        "plan: the {what} → {} as a reload would make it running",
        path.display()
    );
    Ok(Some(super::make(&a, &b, now())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_moved_is_a_percentage() {
        assert_eq!(parse_share("10%"), Ok(0.1));
        assert_eq!(parse_share("2.5 %"), Ok(0.025));
        assert_eq!(parse_share("0"), Ok(0.0));
        assert!(parse_share("110%").is_err());
        assert!(parse_share("ten").unwrap_err().contains("write e.g. 10%"));
    }
}

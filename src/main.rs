//! The `switchyard` command: parse arguments, load the config, run the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use switchyard::config::{self, Algorithm};
use switchyard::demo::{self, Backend};
use switchyard::discovery;
use switchyard::plan;
use switchyard::runtime::{Launch, Runtime, RuntimeError, notify};

#[cfg(feature = "mimalloc")]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "switchyard",
    version,
    about = "A software load balancer for L4 and L7 traffic"
)]
struct Cli {
    /// Log level or filter (overrides RUST_LOG), e.g. "info", "debug", "switchyard=debug".
    #[arg(long, global = true)]
    log_level: Option<String>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the load balancer with a config file.
    Run {
        /// The config file.
        #[arg(short, long, default_value = "switchyard.toml")]
        config: PathBuf,
        // -- Live changes (docs/operations.md) --
        /// A Unix socket on which this process hands its listening sockets to a newer one
        /// (`run --upgrade` with the same path), e.g. /run/switchyard/upgrade.sock.
        #[arg(long, value_name = "PATH")]
        upgrade_socket: Option<PathBuf>,
        /// Take over the listening sockets of the Switchyard running with the same
        /// --upgrade-socket, start serving, then let it drain and exit: a binary upgrade
        /// without a refused connection (HAProxy's -x).
        #[arg(long, requires = "upgrade_socket")]
        upgrade: bool,
        /// Start even if another process already listens on a fixed address of the config,
        /// sharing its new connections with it (SO_REUSEPORT): several processes on one
        /// port on purpose. Without it such a start is refused, unless the other process
        /// is a Switchyard that is stopping.
        #[arg(long)]
        share_ports: bool,
    },
    /// Make a running Switchyard load its config file again (as SIGHUP does), through the
    /// admin listener named in the file; prints the plan of what it changes (as `switchyard
    /// plan`), then what changed, or every error with file:line:column (then the running
    /// configuration stays and the exit status is 1).
    Reload {
        #[arg(short, long, default_value = "switchyard.toml")]
        config: PathBuf,
        #[command(flatten)]
        admin: AdminArgs,
        /// Print the plan and stop: nothing is applied.
        #[arg(long)]
        dry_run: bool,
        /// Do not reload if a hashing or sticky pool would move more of its keys or
        /// sessions than this (exit status 2), e.g. 10%.
        #[arg(long, value_name = "PERCENT", value_parser = switchyard::plan::cli::parse_share)]
        max_moved: Option<f64>,
    },
    /// Check a config file: print "ok" or every error, with file:line:column.
    Check {
        #[arg(short, long, default_value = "switchyard.toml")]
        config: PathBuf,
        /// The file, as `plan` and `import` take theirs (the same as `-c FILE`).
        #[arg(conflicts_with = "config")]
        file: Option<PathBuf>,
    },
    /// Run a load balancer over three built-in demo servers.
    Demo {
        /// Where the demo listens.
        #[arg(long, default_value = demo::DEFAULT_LISTEN)]
        listen: SocketAddr,
        /// Balancing algorithm of the demo pool.
        #[arg(long, default_value = "round_robin", value_parser = parse_algorithm)]
        algorithm: Algorithm,
        /// Where the demo's admin listener serves the dashboard, /metrics, /status and the
        /// admin API.
        #[arg(long, default_value = demo::DEFAULT_ADMIN)]
        admin: SocketAddr,
    },
    /// Ask a running Switchyard whether it is ready (its admin /health/ready), for
    /// keepalived's track_script and other health checkers. Exit 0 ready, 1 not ready,
    /// 2 no answer, 3 not asked (no [admin] in the config, bad address).
    Probe(ProbeArgs),
    /// Why this server? What the config does with a request, every server assumed up: the
    /// route, the pool, each server and why it is or is not a candidate, the pick.
    Explain(switchyard::explain::cli::Args),

    // --- simulate (issue 13): the real balancers against a modelled workload ---------
    /// Which algorithm should I use? Run Switchyard's own balancers against a modelled
    /// workload in virtual time; print a table per algorithm and the advice, write an SVG chart.
    Simulate {
        /// The workload file, e.g. examples/simulate/slow-server.toml (docs/simulate.md).
        workload: PathBuf,
        /// Only these algorithms (comma-separated), instead of the workload's list.
        #[arg(long, value_delimiter = ',', value_parser = parse_algorithm)]
        algorithms: Vec<Algorithm>,
        /// Simulate this many requests instead of the workload's number.
        #[arg(long)]
        requests: Option<u64>,
        /// Where to write the SVG chart [default: simulate-NAME.svg in the current directory].
        #[arg(long)]
        chart: Option<PathBuf>,
        /// Write no chart.
        #[arg(long, conflicts_with = "chart")]
        no_chart: bool,
    },

    // --- import (issue 13): nginx or HAProxy configuration to Switchyard's ------------
    /// Translate an nginx or HAProxy configuration into Switchyard TOML (standard output,
    /// or -o FILE); every directive not carried over is reported on standard error with its
    /// file:line and why.
    Import {
        /// nginx.conf (its includes are read too), or one or more HAProxy files (as
        /// haproxy -f a.cfg -f b.cfg).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// The product, when the file does not tell: nginx or haproxy.
        #[arg(long, value_parser = ["nginx", "haproxy"])]
        from: Option<String>,
        /// Write the Switchyard config here instead of standard output.
        #[arg(short, long)]
        output: Option<PathBuf>,
    },

    // --- plan (issue 13): what a change would do, before it is made --------------------
    /// What a new config would change: listeners bound or closed; routes added, removed or
    /// shadowed; servers added, removed, re-weighted, drained; certificates that change or
    /// expire within 30 days; the share of keys (hashing pools) and sessions (sticky pools)
    /// that move, computed with the real pools. `plan OLD NEW` compares two files; `plan
    /// NEW` the running Switchyard (its admin API) with NEW. Exit 0, 1 on an error, 2 above
    /// --max-moved (docs/plan.md).
    Plan {
        /// OLD NEW, or NEW alone (against the running Switchyard).
        #[arg(required = true, num_args = 1..=2, value_name = "FILE")]
        files: Vec<PathBuf>,
        #[command(flatten)]
        admin: AdminArgs,
        /// Exit with status 2 if a hashing or sticky pool moves more of its keys or sessions
        /// than this, e.g. 10% (for CI).
        #[arg(long, value_name = "PERCENT", value_parser = switchyard::plan::cli::parse_share)]
        max_moved: Option<f64>,
    },
}

#[derive(clap::Args)]
struct AdminArgs {
    /// The admin listener, when the file does not say (host:port).
    #[arg(long)]
    admin: Option<SocketAddr>,
    /// The admin API token, when the file does not hold it.
    #[arg(long, env = "SWITCHYARD_ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
}

#[derive(clap::Args)]
struct ProbeArgs {
    /// The config file whose [admin] listen address to ask (only that key is read).
    #[arg(short, long, default_value = "switchyard.toml")]
    config: PathBuf,
    /// The admin listener to ask instead, e.g. 127.0.0.1:9900.
    #[arg(long, value_name = "ADDR")]
    admin: Option<String>,
    /// Give up after this long in all (connect, send, answer).
    #[arg(long, default_value = "500ms", value_parser = config::parse_duration)]
    timeout: Duration,
    /// Print nothing; the exit status says it all.
    #[arg(short, long)]
    quiet: bool,
}

fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    Algorithm::parse(s).ok_or_else(|| Algorithm::help_for(s))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A simulation trips passive health on purpose: its servers' warnings are no news.
    let quiet = matches!(cli.command, Command::Simulate { .. }).then_some("error");
    switchyard::observe::init_logging(cli.log_level.as_deref().or(quiet));
    let result = match cli.command {
        Command::Check { config, file } => return check(file.as_ref().unwrap_or(&config)),
        Command::Reload {
            config,
            admin,
            dry_run,
            max_moved,
        } => {
            let code = plan::cli::reload(&config, admin.admin, admin.token, dry_run, max_moved);
            return ExitCode::from(code);
        }
        Command::Plan {
            files,
            admin,
            max_moved,
        } => return ExitCode::from(plan_command(&files, admin, max_moved)),
        Command::Run {
            config,
            upgrade_socket,
            upgrade,
            share_ports,
        } => run(&config, upgrade_socket, upgrade, share_ports),
        Command::Simulate {
            workload,
            algorithms,
            requests,
            chart,
            no_chart,
        } => {
            let chart = (!no_chart).then(|| {
                chart.unwrap_or_else(|| {
                    let stem = workload.file_stem().unwrap_or_default().to_string_lossy();
                    PathBuf::from(format!("simulate-{stem}.svg"))
                })
            });
            return simulate(&workload, &algorithms, requests, chart.as_deref());
        }
        Command::Import {
            files,
            from,
            output,
        } => return import(&files, from.as_deref(), output.as_deref()),
        Command::Demo {
            listen,
            algorithm,
            admin,
        } => run_demo(listen, algorithm, admin),
        Command::Probe(args) => return probe(&args),
        Command::Explain(args) => return switchyard::explain::cli::run(&args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", chain(&e));
            ExitCode::FAILURE
        }
    }
}

/// An error and its causes on one line, leaving out a cause the message already quotes.
fn chain(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if !text.contains(&part) {
            if !text.is_empty() {
                text.push_str(": ");
            }
            text.push_str(&part);
        }
    }
    text
}

fn check(path: &std::path::Path) -> ExitCode {
    let failed = |errors: &config::ConfigErrors| {
        eprintln!("{errors}");
        eprintln!("{} error(s) in {}", errors.0.len(), path.display());
        ExitCode::FAILURE
    };
    // Host names of servers are resolved as `run` would, and said: which name gave what;
    // a name without address is reported with the file's other errors, in one run.
    let (plan, notes) = match discovery::check_file(path) {
        Ok(resolved) => resolved,
        Err(errors) => return failed(&errors),
    };
    for n in &notes {
        println!("{n}");
    }
    config::warnings(&plan)
        .iter()
        .for_each(|w| eprintln!("warning: {w}"));
    println!(
        "ok: {} listener(s), {} pool(s), {} server(s)",
        plan.listeners.len(),
        plan.pools.len(),
        plan.pools.iter().map(|p| p.servers.len()).sum::<usize>()
    );
    ExitCode::SUCCESS
}

// `switchyard probe`: fast and quiet, as keepalived runs it every second. The logic lives in
// `switchyard::admin::readiness`; this is the exit status and one line for a person.
fn probe(args: &ProbeArgs) -> ExitCode {
    use switchyard::admin::readiness;
    let addr = match &args.admin {
        Some(value) => readiness::admin_addr(value),
        None => readiness::admin_addr_from_file(&args.config),
    };
    let addr = match addr {
        Ok(addr) => addr,
        Err(e) => {
            if !args.quiet {
                eprintln!("error: {e}");
            }
            return ExitCode::from(3);
        }
    };
    let outcome = readiness::ask(addr, args.timeout);
    if !args.quiet {
        match outcome {
            readiness::Probe::Ready(_) => println!("{}", outcome.describe(addr)),
            _ => eprintln!("{}", outcome.describe(addr)),
        }
    }
    ExitCode::from(outcome.exit_code())
}

// --- simulate (issue 13) ---------------------------------------------------------------

fn simulate(
    path: &std::path::Path,
    algorithms: &[Algorithm],
    requests: Option<u64>,
    chart: Option<&std::path::Path>,
) -> ExitCode {
    use switchyard::simulate;
    let mut workload = match simulate::load_file(path) {
        Ok(w) => w,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} error(s) in {}", errors.0.len(), path.display());
            return ExitCode::FAILURE;
        }
    };
    if let Some(n) = requests {
        workload.requests = n.max(1);
    }
    let only = (!algorithms.is_empty()).then_some(algorithms);
    let started = std::time::Instant::now();
    let report = simulate::run(&workload, only);
    let wall = started.elapsed();
    print!("{}", report.table());
    println!();
    println!("{}", report.advice());
    let total: u64 = report.results.iter().map(|r| r.requests).sum();
    println!(
        "({} simulated requests in {:.2} s, one thread per algorithm: {} per second)",
        simulate::thousands(total),
        wall.as_secs_f64(),
        simulate::thousands((total as f64 / wall.as_secs_f64().max(1e-9)) as u64)
    );
    if let Some(path) = chart {
        let written = simulate::svg(&report).and_then(|svg| {
            std::fs::write(path, svg).map_err(|e| format!("cannot write {}: {e}", path.display()))
        });
        match written {
            Ok(()) => println!("chart: {}", path.display()),
            Err(e) => {
                eprintln!("error: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    ExitCode::SUCCESS
}

// --- import (issue 13) -----------------------------------------------------------------

fn import(files: &[PathBuf], from: Option<&str>, output: Option<&std::path::Path>) -> ExitCode {
    use switchyard::import;
    let paths: Vec<&std::path::Path> = files.iter().map(PathBuf::as_path).collect();
    let name = output.map_or("<stdout>".to_string(), |p| p.display().to_string());
    let imported = match import::import(&paths, from.and_then(import::Source::parse), &name) {
        Ok(i) => i,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    match output {
        Some(path) => {
            if let Err(e) = std::fs::write(path, &imported.toml) {
                eprintln!("error: cannot write {}: {e}", path.display());
                return ExitCode::FAILURE;
            }
        }
        None => {
            // The TOML ends with a newline; flushed before the report, so that on a
            // terminal the notes start on a line of their own.
            use std::io::Write;
            print!("{}", imported.toml);
            let _ = std::io::stdout().flush();
        }
    }
    for n in &imported.notes {
        eprintln!("{n}");
    }
    eprintln!("{}", imported.summary());
    match &imported.check {
        Ok(()) => {
            eprintln!("switchyard check: ok");
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("switchyard check finds errors in the result (fix them before running it):");
            eprintln!("{errors}");
            ExitCode::FAILURE
        }
    }
}

// --- plan (issue 13) -------------------------------------------------------------------

fn plan_command(files: &[PathBuf], admin: AdminArgs, max_moved: Option<f64>) -> u8 {
    match files {
        [old, new] => plan::cli::plan_files(old, new, max_moved),
        [new] => plan::cli::plan_running(new, admin.admin, admin.token, max_moved),
        _ => plan::cli::EXIT_ERROR,
    }
}

/// The async runtime: tokio's multi-thread scheduler with `workers` threads. For measuring
/// the alternative (`bench/runtime.sh`: one current-thread runtime per process, several
/// processes sharing the port through SO_REUSEPORT, as nginx's workers do),
/// `SWITCHYARD_RUNTIME=current_thread` runs everything on the main thread instead.
fn tokio_runtime(workers: usize) -> Result<tokio::runtime::Runtime> {
    let mut builder = match std::env::var("SWITCHYARD_RUNTIME").as_deref() {
        Ok("current_thread") => tokio::runtime::Builder::new_current_thread(),
        _ => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(workers.max(1));
            b
        }
    };
    builder
        .thread_name("switchyard-w")
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

// -- Live changes: run with reloads and upgrades (`switchyard reload`: plan::cli) --------

fn run(
    path: &std::path::Path,
    upgrade_socket: Option<PathBuf>,
    upgrade: bool,
    share_ports: bool,
) -> Result<()> {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let plan = match config::load_file(path) {
        Ok(plan) => plan,
        Err(errors) => {
            // The same report as `check`: every error, each already saying "error:", the
            // server names that give no address among them.
            let errors = discovery::check_file(path).err().unwrap_or(errors);
            eprintln!("{errors}");
            anyhow::bail!("{} error(s) in {}", errors.0.len(), path.display());
        }
    };
    config::warnings(&plan)
        .iter()
        .for_each(|w| eprintln!("warning: {w}"));
    switchyard::runtime::fds::raise_open_file_limit();
    // An upgrade takes the running process's sockets before anything else: the config is
    // checked by now, so a broken file never disturbs the process that serves.
    #[cfg(target_os = "linux")]
    let taking = match (&upgrade_socket, upgrade) {
        (Some(socket), true) => Some(
            switchyard::runtime::handover::take(socket)
                .with_context(|| format!("upgrade over {}", socket.display()))?,
        ),
        _ => None,
    };
    #[cfg(not(target_os = "linux"))]
    if upgrade {
        anyhow::bail!("--upgrade needs Linux");
    }
    let rt = tokio_runtime(plan.workers)?;
    rt.block_on(async move {
        // Installed before the listeners open, so no signal meets the default action (which
        // ends the process) or falls between two waits.
        let mut signals = Signals::new();
        let mut launch = Launch {
            file: Some((path.to_path_buf(), text)),
            exclusive: !share_ports,
            ..Launch::default()
        };
        #[cfg(target_os = "linux")]
        let mut taking = taking;
        #[cfg(target_os = "linux")]
        if let Some(t) = taking.as_mut() {
            launch.spare = t.spare();
        }
        let runtime = match Runtime::launch(plan, launch).await {
            Ok(r) => r,
            // A host name without address: the same report as `check`.
            Err(RuntimeError::Resolve(errors)) => {
                eprintln!("{errors}");
                anyhow::bail!("{} error(s) in {}", errors.0.len(), path.display());
            }
            Err(e) => return Err(e.into()),
        };
        #[cfg(target_os = "linux")]
        if let Some(t) = taking {
            let from = t.from;
            t.ready().context("telling the old process to drain")?;
            tracing::info!("took over the listening sockets of process {from}, which now drains");
        }
        #[cfg(target_os = "linux")]
        if let Some(socket) = &upgrade_socket {
            runtime
                .offer_upgrades(socket, upgrade)
                .with_context(|| format!("upgrade socket {}", socket.display()))?;
        }
        if upgrade {
            notify::taken_over();
        } else {
            notify::ready();
        }
        let log = runtime.access_log();
        let served = serve_until_signal(runtime, &mut signals, upgrade_socket.as_deref()).await;
        // The last access lines gathered (they are written in batches), also after a
        // second stop signal cut the drain short.
        log.flush(std::time::Duration::from_secs(1));
        served
    })
}

async fn serve_until_signal(
    runtime: Runtime,
    signals: &mut Signals,
    upgrade_socket: Option<&std::path::Path>,
) -> Result<()> {
    let stop = loop {
        tokio::select! {
            signal = signals.next() => match signal {
                Signal::Hangup => {
                    // A full reload; errors are logged and the running configuration stays.
                    let refused = runtime.reload().await.is_err();
                    // Certificate files are read again (as their watcher does when they
                    // change); only certificates other than those served are reported.
                    let n = runtime.reload_certificates().await;
                    match (n, refused) {
                        (0, _) => {}
                        (n, false) => tracing::info!("SIGHUP: {n} listener(s) took new certificates"),
                        (n, true) => tracing::info!("SIGHUP: the configuration was refused, but {n} listener(s) took new certificates from their changed files"),
                    }
                }
                Signal::Upgrade => upgrade_in_place(upgrade_socket),
                Signal::Reopen => {
                    runtime.access_log().reopen();
                    tracing::info!("SIGUSR1: the access log opened again");
                }
                other => break other,
            },
            () = runtime.upgraded() => break Signal::Upgraded,
        }
    };
    let plan = runtime.plan();
    let (grace, delay) = (plan.grace_period, plan.shutdown_delay);
    notify::stopping();
    runtime.set_draining();
    if stop == Signal::Upgraded {
        // The successor holds the sockets: a third start is not to share them.
        runtime.release_marks();
    }
    if stop == Signal::Terminate && !delay.is_zero() {
        // Orchestrators and balancers in front see /health/ready turn 503 and stop sending;
        // meanwhile every listener still accepts, and a new process may already share the
        // ports (SO_REUSEPORT).
        let ready = match plan.admin.is_some() {
            true => "/health/ready answers 503 and ",
            false => "",
        };
        tracing::info!(
            "SIGTERM: for {delay:?} (shutdown_delay) {ready}the listeners still accept, so balancers in front stop sending; then they close (signal again, or SIGINT, to stop at once; shutdown_delay = \"0s\" skips this)"
        );
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = signals.next_stop() => {
                tracing::warn!("second stop signal: closing every connection now");
                return Ok(());
            }
        }
    }
    match stop {
        Signal::Upgraded => tracing::info!(
            "handed over to the new process: no new connections here; in-flight requests get {grace:?}"
        ),
        _ => tracing::info!(
            "shutting down: no new connections; in-flight requests get {grace:?} (signal again to stop at once)"
        ),
    }
    let drained = tokio::select! {
        () = runtime.shutdown() => true,
        () = signals.next_stop() => false,
    };
    // Our upgrade socket goes with us, unless a newer process took it over.
    if let (Some(p), false) = (upgrade_socket, stop == Signal::Upgraded) {
        let _ = std::fs::remove_file(p);
    }
    if drained {
        tracing::info!("stopped");
    } else {
        // A second SIGINT/SIGTERM while draining: the operator wants out now.
        tracing::warn!("second stop signal: closing every connection now");
    }
    Ok(())
}

/// SIGUSR2: start the program file anew (the binary installed now, under the same path) as
/// `run … --upgrade`, with this process's arguments and environment (so under systemd it
/// runs in the same unit, and tells systemd it is the main process). It takes the sockets
/// over the upgrade socket; this process then drains and exits. If it fails, this one goes
/// on and its log says why.
fn upgrade_in_place(upgrade_socket: Option<&std::path::Path>) {
    if upgrade_socket.is_none() {
        tracing::warn!(
            "SIGUSR2: a binary upgrade needs --upgrade-socket PATH at start; nothing done"
        );
        return;
    }
    let mut args = std::env::args_os();
    let Some(program) = args.next() else { return };
    let mut args: Vec<std::ffi::OsString> = args.collect();
    if !args.iter().any(|a| a == "--upgrade") {
        args.push("--upgrade".into());
    }
    match std::process::Command::new(&program).args(&args).spawn() {
        Ok(mut child) => {
            let pid = child.id();
            tracing::info!(
                "SIGUSR2: started {} (pid {pid}) to take over",
                program.to_string_lossy()
            );
            std::thread::spawn(move || {
                if let Ok(status) = child.wait()
                    && !status.success()
                {
                    tracing::error!(
                        "the upgrading process {pid} failed ({status}); this one goes on"
                    );
                }
            });
        }
        Err(e) => tracing::error!(
            "SIGUSR2: cannot start {}: {e}; this process goes on",
            program.to_string_lossy()
        ),
    }
}

#[derive(PartialEq, Clone, Copy)]
enum Signal {
    /// SIGINT (Ctrl-C): drain at once.
    Interrupt,
    /// SIGTERM: readiness 503 for `shutdown_delay`, then drain.
    Terminate,
    /// SIGHUP, which nginx and HAProxy users send to reload.
    Hangup,
    /// SIGUSR2 (nginx's binary upgrade): start this program anew with `--upgrade`.
    Upgrade,
    /// SIGUSR1 (nginx's `reopen`): open the access log file again, after logrotate.
    Reopen,
    /// Not a signal: a new process took the sockets over (`run --upgrade`).
    Upgraded,
}

/// The signals the process answers, each listened for once for its whole life.
struct Signals {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    usr2: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    usr1: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    fn new() -> Signals {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Signals {
                int: signal(SignalKind::interrupt()).ok(),
                term: signal(SignalKind::terminate()).ok(),
                hup: signal(SignalKind::hangup()).ok(),
                usr2: signal(SignalKind::user_defined2()).ok(),
                usr1: signal(SignalKind::user_defined1()).ok(),
            }
        }
        #[cfg(not(unix))]
        Signals {}
    }

    async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            async fn recv(s: &mut Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            // In this order when several are waiting: a stop first, a reload before a reopen
            // (so a log reopened after a reload names the reload's outcome before it).
            tokio::select! {
                biased;
                () = recv(&mut self.int) => Signal::Interrupt,
                () = recv(&mut self.term) => Signal::Terminate,
                () = recv(&mut self.hup) => Signal::Hangup,
                () = recv(&mut self.usr2) => Signal::Upgrade,
                () = recv(&mut self.usr1) => Signal::Reopen,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Interrupt
        }
    }

    /// The next SIGINT or SIGTERM (a SIGHUP meanwhile is ignored: it is too late to reload).
    async fn next_stop(&mut self) {
        while !matches!(self.next().await, Signal::Interrupt | Signal::Terminate) {}
    }
}

fn run_demo(listen: SocketAddr, algorithm: Algorithm, admin: SocketAddr) -> Result<()> {
    let rt = tokio_runtime(2)?;
    rt.block_on(async move {
        let mut signals = Signals::new();
        let delays = [5u64, 20, 50];
        let mut backends = Vec::new();
        for (i, ms) in delays.iter().enumerate() {
            backends.push(
                Backend::start(&format!("demo-{}", i + 1), Duration::from_millis(*ms)).await?,
            );
        }
        let servers: Vec<(String, SocketAddr)> = backends
            .iter()
            .map(|b| (b.name().to_string(), b.addr))
            .collect();
        // Run from a file, as any Switchyard: the API's changes and reloads work on it.
        let text = demo::config(listen, &servers, algorithm, admin);
        let file = demo::DemoFile::write(&text).context("cannot write the demo's config file")?;
        let plan = config::load_str(&text, &file.path.display().to_string())?;
        // A second demo on the same ports is refused, as a second `run` is.
        let launch = Launch {
            file: Some((file.path.clone(), text)),
            exclusive: true,
            ..Launch::default()
        };
        let runtime = Runtime::launch(plan, launch)
            .await
            .context("the demo did not start (other ports: --listen ADDR, --admin ADDR)")?;
        let addr = runtime.local_addr("demo").unwrap_or(listen);
        // As this program was started: `cargo run` users have no `switchyard` on their PATH.
        let me = std::env::args()
            .next()
            .unwrap_or_else(|| "switchyard".into());
        let served: Vec<(&Backend, u64)> = backends.iter().zip(delays).collect();
        print!(
            "{}",
            demo::welcome(
                addr,
                algorithm,
                &served,
                runtime.admin_addr(),
                Some(&file.path),
                (&me, &demo::flags_given(listen, admin))
            )
        );
        println!("Ctrl-C stops.");
        signals.next_stop().await;
        runtime.shutdown().await;
        Ok(())
    })
}

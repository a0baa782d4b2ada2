//! The `switchyard` command: parse arguments, load the config, run the library.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use switchyard::config::{self, Algorithm, Plan};
use switchyard::demo::{self, Backend};
use switchyard::runtime::Runtime;

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
    },
    /// Check a config file: print "ok" or every error, with file:line:column.
    Check {
        #[arg(short, long, default_value = "switchyard.toml")]
        config: PathBuf,
    },
    /// Run a load balancer over three built-in demo servers.
    Demo {
        /// Where the demo listens.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: SocketAddr,
        /// Balancing algorithm of the demo pool.
        #[arg(long, default_value = "round_robin", value_parser = parse_algorithm)]
        algorithm: Algorithm,
    },
}

fn parse_algorithm(s: &str) -> Result<Algorithm, String> {
    Algorithm::parse(s).ok_or_else(|| format!("use one of: {}", Algorithm::NAMES.join(", ")))
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.log_level.as_deref());
    let result = match cli.command {
        Command::Check { config } => return check(&config),
        Command::Run { config } => run(&config),
        Command::Demo { listen, algorithm } => run_demo(listen, algorithm),
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

fn init_logging(level: Option<&str>) {
    use tracing_subscriber::EnvFilter;
    let filter = match level {
        Some(l) => EnvFilter::new(l),
        None => EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
    };
    use std::io::IsTerminal;
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
}

fn check(path: &std::path::Path) -> ExitCode {
    match config::load_file(path) {
        Ok(plan) => {
            println!(
                "ok: {} listener(s), {} pool(s), {} server(s)",
                plan.listeners.len(),
                plan.pools.len(),
                plan.pools.iter().map(|p| p.servers.len()).sum::<usize>()
            );
            ExitCode::SUCCESS
        }
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!("{} error(s) in {}", errors.0.len(), path.display());
            ExitCode::FAILURE
        }
    }
}

fn tokio_runtime(workers: usize) -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers.max(1))
        .thread_name("switchyard-w")
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

fn run(path: &std::path::Path) -> Result<()> {
    let plan = match config::load_file(path) {
        Ok(plan) => plan,
        Err(errors) => {
            // The same report as `check`: every error, each already saying "error:".
            eprintln!("{errors}");
            anyhow::bail!("{} error(s) in {}", errors.0.len(), path.display());
        }
    };
    raise_open_file_limit(&plan);
    let rt = tokio_runtime(plan.workers)?;
    let served = rt.block_on(serve_until_signal(plan));
    // The last access lines gathered (they are written in batches).
    switchyard::observe::access::flush();
    served
}

async fn serve_until_signal(plan: Plan) -> Result<()> {
    let grace = plan.grace_period;
    // Installed before the listeners open, so no signal meets the default action (which
    // ends the process) or falls between two waits.
    let mut signals = Signals::new();
    let runtime = Runtime::start(plan).await?;
    while signals.next().await == Signal::Hangup {
        let n = runtime.reload_certificates();
        tracing::warn!(
            "SIGHUP: certificates loaded again ({n} listener(s) took new ones); \
             other changes to the config file need a restart for now"
        );
    }
    tracing::info!(
        "shutting down: no new connections; in-flight requests get {grace:?} (signal again to stop at once)"
    );
    let drained = tokio::select! {
        () = runtime.shutdown() => true,
        () = async { while signals.next().await != Signal::Stop {} } => false,
    };
    if drained {
        tracing::info!("stopped");
    } else {
        // A second SIGINT/SIGTERM while draining: the operator wants out now.
        tracing::warn!("second stop signal: closing every connection now");
    }
    Ok(())
}

#[derive(PartialEq)]
enum Signal {
    /// SIGINT or SIGTERM.
    Stop,
    /// SIGHUP, which nginx and HAProxy users send to reload.
    Hangup,
}

/// The signals the process answers, each listened for once for its whole life.
struct Signals {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
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
            tokio::select! {
                () = recv(&mut self.int) => Signal::Stop,
                () = recv(&mut self.term) => Signal::Stop,
                () = recv(&mut self.hup) => Signal::Hangup,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}

/// Raise the soft open-file limit to the hard one (as HAProxy and nginx's
/// `worker_rlimit_nofile` do), capped at 1,048,576: the usual soft limit of 1024 runs out at
/// about 500 proxied connections (each holds two descriptors, a UDP session one), long before
/// `max_connections`. Warns when even that is below what the L4 listeners' limits ask for.
fn raise_open_file_limit(plan: &Plan) {
    let defaults = config::L4Plan::default();
    let mut needs = Vec::new();
    let mut wanted: u64 = 256;
    for l in &plan.listeners {
        let (key, n, default, per) = match l.protocol {
            config::Protocol::Tcp => (
                "max_connections",
                l.l4.max_connections,
                defaults.max_connections,
                2,
            ),
            config::Protocol::Udp => ("max_sessions", l.l4.max_sessions, defaults.max_sessions, 1),
            _ => continue,
        };
        wanted += (per * n) as u64;
        let note = if n == default { " (the default)" } else { "" };
        needs.push(format!("{}: {key} = {n}{note}", l.name));
    }
    #[cfg(target_os = "linux")]
    {
        use rustix::process::{Resource, getrlimit, setrlimit};
        const CAP: u64 = 1 << 20;
        let mut limit = getrlimit(Resource::Nofile);
        let Some(soft) = limit.current else {
            return; // unlimited already
        };
        let target = limit.maximum.unwrap_or(u64::MAX).min(CAP.max(soft));
        if target > soft {
            limit.current = Some(target);
            match setrlimit(Resource::Nofile, limit) {
                Ok(()) => tracing::debug!("open-file limit raised from {soft} to {target}"),
                Err(e) => tracing::warn!("cannot raise the open-file limit from {soft}: {e}"),
            }
        }
        let now = getrlimit(Resource::Nofile).current.unwrap_or(u64::MAX);
        if now < wanted {
            tracing::warn!(
                "the open-file limit is {now}, but {} need about {wanted} descriptors: raise \
                 the limit (ulimit -n, systemd LimitNOFILE=) or set lower limits on those \
                 listeners",
                needs.join(", ")
            );
        }
    }
    #[cfg(not(target_os = "linux"))]
    let _ = wanted;
}

fn run_demo(listen: SocketAddr, algorithm: Algorithm) -> Result<()> {
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
        let runtime = Runtime::start(demo::plan(listen, &servers, algorithm)).await?;
        let addr = runtime.local_addr("demo").unwrap_or(listen);
        println!(
            "switchyard demo: listening on http://{addr}/ ({} over 3 servers)",
            algorithm.as_str()
        );
        for (b, ms) in backends.iter().zip(delays) {
            println!("  {:<7} http://{}  answers after {ms} ms", b.name(), b.addr);
        }
        println!();
        println!("try:");
        println!("  curl -s http://{addr}/                  # each answer names its server");
        println!("  for i in $(seq 6); do curl -s http://{addr}/; done");
        println!(
            "  curl -s http://{addr}/headers           # what a server sees (X-Forwarded-For, ...)"
        );
        println!("  curl -s http://{addr}/bytes/1000000 | wc -c   # a streamed 1 MB body");
        // As this program was started: `cargo run` users have no `switchyard` on their PATH.
        let me = std::env::args()
            .next()
            .unwrap_or_else(|| "switchyard".into());
        println!("  {me} demo --algorithm least_time  # the slow server gets less");
        println!("Ctrl-C stops.");
        while signals.next().await != Signal::Stop {}
        runtime.shutdown().await;
        Ok(())
    })
}

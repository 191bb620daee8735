//! The `warren` command line: `warren server` runs the broker, `warren admin` operates a
//! running one, `warren perf` measures one.

use clap::{Parser, Subcommand};
use std::io::IsTerminal;
use std::net::IpAddr;
use std::path::PathBuf;
use warren::Config;

/// jemalloc batches the frees of memory another thread allocated (through its per-thread
/// caches) instead of taking the owning arena's lock for each one. With glibc, the store's writer thread freeing what the connection threads allocated made
/// lock waits 87% of the broker's futex calls, and persistent publishing with confirms end to
/// end ran about 20% slower (A/B, 5 rounds, twice).
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Parser)]
#[command(name = "warren", version, about = "Warren: a fast AMQP 0-9-1 message broker")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the broker.
    Server(ServerArgs),
    /// Measure an AMQP 0-9-1 broker (Warren or any other): publish and end-to-end throughput.
    Perf(Box<warren::perf::PerfArgs>),
    /// Operate a running broker over its management API (list, declare, move dead letters, ...).
    Admin(warren::admin::AdminArgs),
    /// Serve message transforms on stdin/stdout (the broker starts these itself).
    #[command(hide = true)]
    TransformWorker,
}

#[derive(clap::Args)]
struct ServerArgs {
    /// TOML configuration file; flags given here override its keys.
    #[arg(long, short = 'c', env = "WARREN_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on.
    #[arg(long)]
    bind: Option<IpAddr>,
    /// AMQP port (0 = any free port).
    #[arg(long)]
    amqp_port: Option<u16>,
    /// HTTP API port (0 = any free port).
    #[arg(long)]
    http_port: Option<u16>,
    /// AMQP over TLS port, with `[tls]` set up (0 = any free port).
    #[arg(long)]
    amqps_port: Option<u16>,
    /// HTTPS port for the HTTP API, with `[tls]` set up (0 = any free port).
    #[arg(long)]
    https_port: Option<u16>,
    /// Data directory (created if missing).
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Log filter, e.g. `info` or `warren=debug` (RUST_LOG also works).
    #[arg(long, default_value = "info")]
    log: String,
}

fn main() {
    let cli = Cli::parse();
    match cli.command {
        Command::Server(args) => {
            if let Err(e) = run_server(args) {
                eprintln!("warren: {e}");
                std::process::exit(1);
            }
        }
        Command::Admin(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            let command = <Cli as clap::CommandFactory>::command();
            if let Err(e) = runtime.block_on(warren::admin::run(args, command)) {
                eprintln!("warren admin: {e}");
                std::process::exit(1);
            }
        }
        Command::TransformWorker => {
            if let Err(e) = warren_transform::worker::serve() {
                eprintln!("warren transform-worker: {e}");
                std::process::exit(1);
            }
        }
        Command::Perf(args) => {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("tokio runtime");
            match runtime.block_on(warren::perf::run(*args)) {
                Ok(summary) => println!("{summary}"),
                Err(e) => {
                    eprintln!("warren perf: {e}");
                    std::process::exit(1);
                }
            }
        }
    }
}

fn run_server(args: ServerArgs) -> Result<(), String> {
    init_logging(&args.log);
    let mut config = match &args.config {
        Some(path) => Config::load(path)?,
        None => Config::default(),
    };
    if let Some(v) = args.bind {
        config.bind = v;
    }
    if let Some(v) = args.amqp_port {
        config.amqp_port = v;
    }
    if let Some(v) = args.http_port {
        config.http_port = v;
    }
    if let Some(v) = args.amqps_port {
        config.tls.amqps_port = v;
    }
    if let Some(v) = args.https_port {
        config.tls.https_port = Some(v);
    }
    if let Some(v) = args.data_dir {
        config.data_dir = v;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build().map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let running = warren::start(config.clone()).await?;
        tracing::info!(
            amqp_addr = %running.amqp_addr,
            http_addr = %running.http_addr,
            amqps_addr = running.amqps_addr.map(|a| a.to_string()).unwrap_or_default(),
            https_addr = running.https_addr.map(|a| a.to_string()).unwrap_or_default(),
            data_dir = %config.data_dir.display(),
            version = env!("CARGO_PKG_VERSION"),
            "warren ready"
        );
        shutdown_signal().await;
        tracing::info!("shutting down: closing connections");
        running.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    })
}

fn init_logging(default_filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}

async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut term = signal(SignalKind::terminate()).expect("install SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

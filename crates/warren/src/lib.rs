//! Wiring for the `warren` binary: turn a [`Config`] into running listeners. Tests use
//! [`start`] to run a real broker in-process on port 0.

pub mod admin;
pub mod config;
mod heap_trim;
pub mod perf;

pub use config::Config;

use std::fs::File;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use warren_broker::durable::{self, DurabilityOptions, RestoreReport};
use warren_broker::{Broker, Durability};
use warren_store::{FileSystem, StdFs};

/// The file in the data directory that one running broker holds an exclusive lock on.
const LOCK_FILE: &str = "LOCK";

/// A running broker: its bound addresses and the means to stop it.
pub struct Running {
    /// Where AMQP listens (over TLS when the plain listener is off).
    pub amqp_addr: SocketAddr,
    /// Where the HTTP API listens (HTTPS when the plain listener is off).
    pub http_addr: SocketAddr,
    /// The TLS listeners, when `[tls]` configures them.
    pub amqps_addr: Option<SocketAddr>,
    pub https_addr: Option<SocketAddr>,
    pub broker: Broker,
    /// What was restored from the data directory at start.
    pub restored: RestoreReport,
    stop: Option<tokio::sync::watch::Sender<bool>>,
    /// The AMQP listeners' tasks (plain, TLS).
    tasks: Vec<JoinHandle<()>>,
    /// Reloads the TLS certificate when its files change or on SIGHUP.
    tls_watch: Option<JoinHandle<()>>,
    /// Samples memory and disk for the resource alarms.
    alarm_monitor: JoinHandle<()>,
    http_stop: Option<oneshot::Sender<()>>,
    http_task: JoinHandle<std::io::Result<()>>,
    /// Ticks queues at their deadlines (TTL, expiry, timeouts).
    timers: JoinHandle<()>,
    /// Returns memory that drained queues freed to the system (see `heap_trim`).
    heap_trim: Option<JoinHandle<()>>,
    /// Writes the tracking records the journal's writer had no room for (see `Tracker::catch_up`).
    tracking_catch_up: JoinHandle<()>,
    /// Held while the broker runs: a second broker on the same directory is refused.
    _lock: File,
}

impl Running {
    /// Close every connection with 320, wait for the listener task to finish, then write what
    /// the store holds and stop its threads (before the data directory's lock is released).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(true);
        }
        if let Some(stop) = self.http_stop.take() {
            let _ = stop.send(());
        }
        for task in &mut self.tasks {
            let _ = task.await;
        }
        let _ = (&mut self.http_task).await;
        if let Some(t) = &self.tls_watch {
            t.abort();
        }
        self.alarm_monitor.abort();
        self.timers.abort();
        if let Some(t) = &self.heap_trim {
            t.abort();
        }
        self.tracking_catch_up.abort();
        // The store's last completions and the reader's last dead letters still update
        // tracking records: the tracker closes after the store.
        if let Some(d) = self.broker.durability().cloned() {
            let _ = tokio::task::spawn_blocking(move || d.close()).await;
        }
        self.broker.tracker().close();
    }

    /// Wait until the server stops (after `shutdown` from elsewhere, or forever).
    pub async fn wait(self) {
        for task in self.tasks {
            let _ = task.await;
        }
        self.timers.abort();
        if let Some(t) = &self.heap_trim {
            t.abort();
        }
        self.tracking_catch_up.abort();
    }
}

/// Bind `addr:port`; the IPv6 wildcard falls back to the IPv4 one where the host has no IPv6.
async fn bind(addr: IpAddr, port: u16) -> std::io::Result<TcpListener> {
    match TcpListener::bind((addr, port)).await {
        Err(e) if addr == IpAddr::from([0u16; 8]) && e.kind() != std::io::ErrorKind::AddrInUse => {
            TcpListener::bind((IpAddr::from([0u8; 4]), port)).await
        }
        result => result,
    }
}

/// Open the data directory, restore what it holds, bind the listeners and start serving.
pub async fn start(config: Config) -> Result<Running, String> {
    start_with_fs(config, StdFs::shared()).await
}

/// [`start`] with the store on the file system `fs` (tests pass a faulty one; the data
/// directory's lock file is always on the real one).
pub async fn start_with_fs(config: Config, fs: Arc<dyn FileSystem>) -> Result<Running, String> {
    config.validate()?;
    let broker_config = config.broker_config();
    let data_dir = config.data_dir.clone();
    let options = config.storage.durability_options();
    let (broker, restored, lock) = tokio::task::spawn_blocking(move || {
        let lock = lock_data_dir(&data_dir)?;
        let (broker, restored) = open_broker(broker_config, &data_dir, options, fs)?;
        Ok::<_, String>((broker, restored, lock))
    })
    .await
    .map_err(|e| format!("opening the data directory failed: {e}"))??;
    let tls = match config.tls.enabled() {
        true => Some(warren_tls::TlsSource::load(config.tls.clone())?),
        false => None,
    };
    let amqp_listener = match config.tls.plain_amqp {
        true => Some(
            bind(config.bind, config.amqp_port)
                .await
                .map_err(|e| format!("cannot listen for AMQP on {}:{}: {e}", config.bind, config.amqp_port))?,
        ),
        false => None,
    };
    let amqps_listener = match &tls {
        Some(_) => Some(bind(config.bind, config.tls.amqps_port).await.map_err(|e| {
            format!("cannot listen for AMQP over TLS on {}:{}: {e}", config.bind, config.tls.amqps_port)
        })?),
        None => None,
    };
    let http_listener = match config.tls.plain_http {
        true => Some(
            bind(config.bind, config.http_port)
                .await
                .map_err(|e| format!("cannot listen for HTTP on {}:{}: {e}", config.bind, config.http_port))?,
        ),
        false => None,
    };
    let https_listener = match (&tls, config.tls.https_port) {
        (Some(_), Some(port)) => Some(
            bind(config.bind, port)
                .await
                .map_err(|e| format!("cannot listen for HTTPS on {}:{port}: {e}", config.bind))?,
        ),
        _ => None,
    };
    let addr_of = |l: &Option<TcpListener>| l.as_ref().and_then(|l| l.local_addr().ok());
    let (amqps_addr, https_addr) = (addr_of(&amqps_listener), addr_of(&https_listener));
    let amqp_addr =
        addr_of(&amqp_listener).or(amqps_addr).ok_or("no AMQP listener: plain_amqp is off and TLS is not set up")?;
    let http_addr = addr_of(&http_listener)
        .or(https_addr)
        .ok_or("no HTTP listener: plain_http is off and tls.https_port is not set")?;
    let (http_stop, http_stopped) = oneshot::channel::<()>();
    let management = warren_management::router(
        broker.clone(),
        warren_management::Settings {
            amqp_addr: Some(amqp_addr),
            http_addr: Some(http_addr),
            statistics_interval_ms: config.statistics_interval_ms,
        },
    )
    .merge(warren_console::router());
    let listeners = warren_http::Listeners {
        plain: http_listener,
        tls: https_listener.map(|l| (l, tls.clone().expect("an HTTPS listener only with TLS"))),
    };
    let http_task =
        tokio::spawn(warren_http::serve(listeners, broker.clone(), config.http_settings(), management, async {
            let _ = http_stopped.await;
        }));
    let timers = tokio::spawn(broker.timers().clone().run());
    broker.start_aggregators();
    let heap_trim = broker.durability().cloned().map(|d| tokio::spawn(heap_trim::run(d)));
    let tracker = broker.tracker().clone();
    let tracking_catch_up = tokio::spawn(async move {
        let mut every = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            every.tick().await;
            tracker.catch_up();
        }
    });
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let until_stopped = |mut stopped: tokio::sync::watch::Receiver<bool>| async move {
        let _ = stopped.wait_for(|s| *s).await;
    };
    let mut tasks = Vec::new();
    if let Some(l) = amqp_listener {
        tasks.push(tokio::spawn(warren_amqp_server::serve(l, broker.clone(), until_stopped(stopped.clone()))));
    }
    if let (Some(l), Some(tls)) = (amqps_listener, &tls) {
        let serving = warren_amqp_server::serve_tls(l, broker.clone(), tls.clone(), until_stopped(stopped.clone()));
        tasks.push(tokio::spawn(serving));
    }
    let tls_watch = tls.map(|tls| tokio::spawn(tls.watch()));
    let alarms = broker.alarms().clone();
    alarms.check();
    let alarm_monitor = tokio::spawn(alarms.monitor(config.alarms.check_interval_ms));
    Ok(Running {
        amqp_addr,
        http_addr,
        amqps_addr,
        https_addr,
        broker,
        restored,
        stop: Some(stop),
        tasks,
        tls_watch,
        alarm_monitor,
        http_stop: Some(http_stop),
        http_task,
        timers,
        heap_trim,
        tracking_catch_up,
        _lock: lock,
    })
}

/// Creates `dir` if needed and takes its lock, so two brokers never share one store.
fn lock_data_dir(dir: &Path) -> Result<File, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create data directory {}: {e}", dir.display()))?;
    let path = dir.join(LOCK_FILE);
    let file = File::options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    file.try_lock().map_err(|_| format!("data directory {} is in use by another warren process", dir.display()))?;
    Ok(file)
}

/// Opens the store in `dir` and rebuilds the broker from it: durable exchanges, queues,
/// bindings, and every unacknowledged persistent message.
fn open_broker(
    config: warren_broker::BrokerConfig,
    dir: &Path,
    options: DurabilityOptions,
    fs: Arc<dyn FileSystem>,
) -> Result<(Broker, RestoreReport), String> {
    let opened =
        Durability::open(dir, options, fs).map_err(|e| format!("cannot open the store in {}: {e}", dir.display()))?;
    let stats = &opened.recovery.stats;
    if stats.skipped_count > 0 {
        tracing::error!(
            skipped = stats.skipped_count,
            first = ?stats.skipped.first(),
            "recovery skipped records that failed their checks; they are never delivered"
        );
    }
    let broker = Broker::with_durability(config, Some(opened.durability.clone()));
    let restored = durable::restore(&broker, opened.definitions, &opened.recovery);
    tracing::info!(
        exchanges = restored.exchanges,
        queues = restored.queues,
        bindings = restored.bindings,
        messages = restored.messages,
        segments = stats.segments,
        bytes_read = stats.bytes,
        truncated_bytes = stats.truncated_bytes,
        recovery_ms = (stats.duration + restored.duration).as_millis() as u64,
        "recovered the data directory"
    );
    Ok((broker, restored))
}

//! Wiring for the `warren` binary: turn a [`Config`] into running listeners. Tests use
//! [`start`] to run a real broker in-process on port 0.

pub mod config;
pub mod perf;

pub use config::Config;

use std::net::{IpAddr, SocketAddr};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use warren_broker::Broker;

/// A running broker: its bound addresses and the means to stop it.
pub struct Running {
    pub amqp_addr: SocketAddr,
    pub broker: Broker,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

impl Running {
    /// Close every connection with 320 and wait for the listener task to finish.
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = (&mut self.task).await;
    }

    /// Wait until the server stops (after `shutdown` from elsewhere, or forever).
    pub async fn wait(self) {
        let _ = self.task.await;
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

/// Bind the listeners and start serving.
pub async fn start(config: Config) -> Result<Running, String> {
    config.validate()?;
    std::fs::create_dir_all(&config.data_dir)
        .map_err(|e| format!("cannot create data directory {}: {e}", config.data_dir.display()))?;
    let broker = Broker::new(config.broker_config());
    let amqp_listener = bind(config.bind, config.amqp_port)
        .await
        .map_err(|e| format!("cannot listen for AMQP on {}:{}: {e}", config.bind, config.amqp_port))?;
    let amqp_addr = amqp_listener.local_addr().map_err(|e| e.to_string())?;
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(warren_amqp_server::serve(amqp_listener, broker.clone(), async {
        let _ = stopped.await;
    }));
    Ok(Running { amqp_addr, broker, stop: Some(stop), task })
}

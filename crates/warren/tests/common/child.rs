//! The real `warren` binary as a child process (for tests that kill it with SIGKILL), on ports
//! of its own choosing, with a small queue memory budget so that queues page out to the log.

use super::{within, DEADLINE};
use lapin::{Connection, ConnectionProperties};
use std::path::Path;
use std::process::Stdio;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// A `warren server` child process on a port of its own choosing.
pub struct Broker {
    child: Child,
    pub uri: String,
    pub amqp_addr: std::net::SocketAddr,
    pub http_addr: std::net::SocketAddr,
}

impl Broker {
    pub async fn start(data_dir: &Path) -> Broker {
        // A small queue memory budget, so that most of the queue is paged out to the log and
        // delivered from it, across the kills too.
        Broker::start_configured(data_dir, "[storage]\nqueue_memory_bytes = 32768\n").await
    }

    /// A child with `config` (TOML) as its configuration file.
    pub async fn start_configured(data_dir: &Path, config_toml: &str) -> Broker {
        let config = data_dir.with_extension("toml");
        std::fs::write(&config, config_toml).expect("write config");
        let mut child = Command::new(env!("CARGO_BIN_EXE_warren"))
            .args([
                "server",
                "--bind",
                "127.0.0.1",
                "--amqp-port",
                "0",
                "--http-port",
                "0",
                "--log",
                "info",
                "--config",
            ])
            .arg(&config)
            .arg("--data-dir")
            .arg(data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("spawn warren");
        let stderr = child.stderr.take().expect("stderr piped");
        let mut lines = BufReader::new(stderr).lines();
        // Recovery of a large store may take longer than one ordinary deadline.
        let field = |line: &str, name: &str| -> Option<std::net::SocketAddr> {
            line.split(&format!("{name}=")).nth(1)?.split_whitespace().next()?.parse().ok()
        };
        let (amqp_addr, http_addr) = tokio::time::timeout(4 * DEADLINE, async {
            while let Some(line) = lines.next_line().await.expect("read stderr") {
                if let (Some(amqp), Some(http)) = (field(&line, "amqp_addr"), field(&line, "http_addr")) {
                    return (amqp, http);
                }
            }
            panic!("warren exited before it was ready");
        })
        .await
        .expect("warren ready in time");
        // Keep draining stderr so the child never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Broker { child, uri: format!("amqp://guest:guest@{amqp_addr}/%2f"), amqp_addr, http_addr }
    }

    /// The child's resident memory, bytes (from /proc).
    pub fn rss_bytes(&self) -> u64 {
        let pid = self.child.id().expect("running");
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read /proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .expect("VmRSS");
        kib * 1024
    }

    pub async fn connect(&self) -> Connection {
        within(Connection::connect(&self.uri, ConnectionProperties::default())).await.expect("connect")
    }

    pub async fn kill(mut self) {
        self.child.kill().await.expect("SIGKILL warren");
    }
}

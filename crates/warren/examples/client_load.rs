//! A load run with a real client library used the way applications use it: one publisher and
//! one consumer in one process (two connections), small prefetch, one `basic.ack` per message,
//! each publish and ack awaited. `warren perf` is a tuned client; this is what most users run.
//!
//! ```text
//! cargo run --release --example client_load -- --client lapin --port 5672 --seconds 10 \
//!     --broker-pid $(pidof warren)
//! ```
//!
//! It prints one JSON line: publish and receive rates over the publishing window, the backlog
//! (published, not yet received) sampled through the run and how fast it grew, end-to-end
//! latency percentiles, and the broker's and the tool's CPU (from /proc) per message received.

use clap::Parser;
use futures_lite::StreamExt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Client {
    Lapin,
    Amqprs,
}

#[derive(Debug, Clone, Parser)]
struct Args {
    #[arg(long, value_enum, default_value = "lapin")]
    client: Client,
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long, default_value_t = 5672)]
    port: u16,
    #[arg(long, default_value = "guest")]
    user: String,
    #[arg(long, default_value = "guest")]
    password: String,
    /// How long the publisher publishes.
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    #[arg(long, default_value_t = 100)]
    prefetch: u16,
    /// Body size in bytes (at least 8: the body carries its send time).
    #[arg(long, default_value_t = 16)]
    size: usize,
    /// After publishing stops, how long the consumer may take to drain the backlog.
    #[arg(long, default_value_t = 60)]
    drain_timeout_s: u64,
    /// The broker's process id (same machine), for its CPU time per message.
    #[arg(long)]
    broker_pid: Option<u32>,
}

/// What both sides count, and the end-to-end latencies (µs) the consumer saw.
#[derive(Default)]
struct Shared {
    published: AtomicU64,
    received: AtomicU64,
    stop_publishing: AtomicBool,
    latency_us: std::sync::Mutex<Vec<u32>>,
}

/// At most this many latencies are kept (one in 16 messages is sampled).
const MAX_LATENCY_SAMPLES: usize = 1 << 20;

impl Shared {
    fn received(&self, body: &[u8]) {
        let n = self.received.fetch_add(1, Ordering::Relaxed);
        if n.is_multiple_of(16) && body.len() >= 8 {
            let sent = u64::from_le_bytes(body[..8].try_into().expect("8 bytes"));
            let us = now_ns().saturating_sub(sent) / 1000;
            let mut l = self.latency_us.lock().expect("not poisoned");
            if l.len() < MAX_LATENCY_SAMPLES {
                l.push(us.min(u32::MAX as u64) as u32);
            }
        }
    }
}

fn now_ns() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_nanos() as u64).unwrap_or(0)
}

fn body(size: usize) -> Vec<u8> {
    let mut b = vec![b'x'; size.max(8)];
    b[..8].copy_from_slice(&now_ns().to_le_bytes());
    b
}

/// CPU time (user + system) of a process, from /proc, in seconds.
fn cpu_s(pid: &str) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args = Args::parse();
    let queue = format!("client-load-{}", std::process::id());
    let shared = Arc::new(Shared::default());
    let (publisher, consumer) = match args.client {
        Client::Lapin => lapin_side::start(&args, &queue, shared.clone()).await?,
        Client::Amqprs => amqprs_side::start(&args, &queue, shared.clone()).await?,
    };

    let broker_pid = args.broker_pid.map(|p| p.to_string());
    let broker_cpu_at_start = broker_pid.as_deref().and_then(cpu_s);
    let tool_cpu_at_start = cpu_s("self");
    let start = Instant::now();
    let mut backlog = Vec::new();
    let window = Duration::from_secs(args.seconds);
    while start.elapsed() < window {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let (p, r) = (shared.published.load(Ordering::Relaxed), shared.received.load(Ordering::Relaxed));
        backlog.push((start.elapsed().as_secs_f64(), p.saturating_sub(r) as f64));
    }
    shared.stop_publishing.store(true, Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let (published, received_in_window) =
        (shared.published.load(Ordering::Relaxed), shared.received.load(Ordering::Relaxed));
    let broker_cpu = broker_pid.as_deref().and_then(cpu_s).zip(broker_cpu_at_start).map(|(b, a)| b - a);
    let tool_cpu = cpu_s("self").zip(tool_cpu_at_start).map(|(b, a)| b - a);
    publisher.await??;
    let published = shared.published.load(Ordering::Relaxed).max(published);
    let drain_start = Instant::now();
    while shared.received.load(Ordering::Relaxed) < published
        && drain_start.elapsed() < Duration::from_secs(args.drain_timeout_s)
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let drained_in = drain_start.elapsed().as_secs_f64();
    consumer.abort();

    let mut latency = std::mem::take(&mut *shared.latency_us.lock().expect("not poisoned"));
    latency.sort_unstable();
    let pct = |p: f64| latency.get(((latency.len() as f64 * p) as usize).min(latency.len().saturating_sub(1))).copied();
    let per_msg_us =
        |cpu: Option<f64>| cpu.map(|c| (c * 1e6 / received_in_window.max(1) as f64 * 100.0).round() / 100.0);
    let summary = serde_json::json!({
        "client": format!("{:?}", args.client).to_lowercase(),
        "prefetch": args.prefetch,
        "size": args.size,
        "seconds": args.seconds,
        "published": published,
        "received_in_window": received_in_window,
        "publish_msgs_per_s": (published as f64 / elapsed).round(),
        "receive_msgs_per_s": (received_in_window as f64 / elapsed).round(),
        "backlog_at_end": backlog.last().map(|b| b.1),
        "backlog_max": backlog.iter().map(|b| b.1).fold(0.0, f64::max),
        "backlog_growth_msgs_per_s": growth(&backlog).round(),
        "drained_in_s": (drained_in * 100.0).round() / 100.0,
        "latency_us": { "p50": pct(0.5), "p99": pct(0.99), "max": latency.last() },
        "broker_cpu_percent": broker_cpu.map(|c| (100.0 * c / elapsed).round()),
        "broker_cpu_us_per_msg": per_msg_us(broker_cpu),
        "tool_cpu_percent": tool_cpu.map(|c| (100.0 * c / elapsed).round()),
    });
    println!("{summary}");
    Ok(())
}

/// The backlog's growth rate: the least-squares slope of its samples after the first second
/// (the first second fills the prefetch windows and the sockets).
fn growth(samples: &[(f64, f64)]) -> f64 {
    let s: Vec<_> = samples.iter().filter(|(t, _)| *t >= 1.0).collect();
    if s.len() < 2 {
        return 0.0;
    }
    let n = s.len() as f64;
    let (mt, mb) = (s.iter().map(|x| x.0).sum::<f64>() / n, s.iter().map(|x| x.1).sum::<f64>() / n);
    let cov: f64 = s.iter().map(|x| (x.0 - mt) * (x.1 - mb)).sum();
    let var: f64 = s.iter().map(|x| (x.0 - mt).powi(2)).sum();
    if var == 0.0 {
        0.0
    } else {
        cov / var
    }
}

type Task = tokio::task::JoinHandle<Result<(), String>>;

mod lapin_side {
    use super::*;
    use lapin::options::*;
    use lapin::types::FieldTable;
    use lapin::{BasicProperties, Connection, ConnectionProperties};

    pub async fn start(args: &Args, queue: &str, shared: Arc<Shared>) -> Result<(Task, Task), lapin::Error> {
        let uri = format!("amqp://{}:{}@{}:{}/%2f", args.user, args.password, args.host, args.port);
        let publishing = Connection::connect(&uri, ConnectionProperties::default()).await?;
        let consuming = Connection::connect(&uri, ConnectionProperties::default()).await?;
        let pch = publishing.create_channel().await?;
        let cch = consuming.create_channel().await?;
        let declare = QueueDeclareOptions { auto_delete: true, ..Default::default() };
        cch.queue_declare(queue.into(), declare, FieldTable::default()).await?;
        cch.basic_qos(args.prefetch, BasicQosOptions::default()).await?;
        let mut consumer =
            cch.basic_consume(queue.into(), "".into(), BasicConsumeOptions::default(), FieldTable::default()).await?;
        let s = shared.clone();
        let consumer_task = tokio::spawn(async move {
            let _keep = consuming;
            while let Some(delivery) = consumer.next().await {
                let delivery = delivery.map_err(|e| e.to_string())?;
                s.received(&delivery.data);
                delivery.ack(BasicAckOptions::default()).await.map_err(|e| e.to_string())?;
            }
            Ok(())
        });
        let (size, queue) = (args.size, queue.to_owned());
        let publisher_task = tokio::spawn(async move {
            while !shared.stop_publishing.load(Ordering::Relaxed) {
                let props = BasicProperties::default();
                pch.basic_publish("".into(), queue.as_str().into(), BasicPublishOptions::default(), &body(size), props)
                    .await
                    .map_err(|e| e.to_string())?;
                shared.published.fetch_add(1, Ordering::Relaxed);
            }
            publishing.close(200, "done".into()).await.map_err(|e| e.to_string())
        });
        Ok((publisher_task, consumer_task))
    }
}

mod amqprs_side {
    use super::*;
    use amqprs::channel::{
        BasicAckArguments, BasicConsumeArguments, BasicPublishArguments, BasicQosArguments, QueueDeclareArguments,
    };
    use amqprs::connection::{Connection, OpenConnectionArguments};
    use amqprs::BasicProperties;

    pub async fn start(args: &Args, queue: &str, shared: Arc<Shared>) -> Result<(Task, Task), amqprs::error::Error> {
        let open = OpenConnectionArguments::new(&args.host, args.port, &args.user, &args.password);
        let publishing = Connection::open(&open).await?;
        let consuming = Connection::open(&open).await?;
        let pch = publishing.open_channel(None).await?;
        let cch = consuming.open_channel(None).await?;
        cch.queue_declare(QueueDeclareArguments::new(queue).auto_delete(true).finish()).await?;
        cch.basic_qos(BasicQosArguments::new(0, args.prefetch, false)).await?;
        let (_tag, mut rx) =
            cch.basic_consume_rx(BasicConsumeArguments::new(queue, "").manual_ack(true).finish()).await?;
        let s = shared.clone();
        let consumer_task = tokio::spawn(async move {
            let _keep = consuming;
            while let Some(m) = rx.recv().await {
                let (Some(deliver), Some(content)) = (m.deliver, m.content) else { continue };
                s.received(&content);
                cch.basic_ack(BasicAckArguments::new(deliver.delivery_tag(), false))
                    .await
                    .map_err(|e| e.to_string())?;
            }
            Ok(())
        });
        let (size, queue) = (args.size, queue.to_owned());
        let publisher_task = tokio::spawn(async move {
            while !shared.stop_publishing.load(Ordering::Relaxed) {
                let publish = BasicPublishArguments::new("", &queue);
                pch.basic_publish(BasicProperties::default(), body(size), publish).await.map_err(|e| e.to_string())?;
                shared.published.fetch_add(1, Ordering::Relaxed);
            }
            publishing.close().await.map_err(|e| e.to_string())
        });
        Ok((publisher_task, consumer_task))
    }
}

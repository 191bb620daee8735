//! `warren perf`: a load tool for any AMQP 0-9-1 broker, modelled on RabbitMQ's PerfTest and
//! LavinMQ's lavinmqperf. Producers publish (optionally at an offered rate, with confirms)
//! to one queue or, with `--fanout K`, through a fanout exchange to K queues, while consumers
//! drain them; it reports rates, end-to-end and confirm latency percentiles (HDR), and its
//! own CPU (`throughput.rs`). `--queue-count`, `--idle-connections` and `--topic-bindings`
//! measure how costs grow with scale (`many.rs`), `--rpc` request/response round trips and
//! `--memory` the broker's memory per connection and per queue. Every run is bounded by its
//! count and `--timeout-s`, and deletes what it declared.

mod body;
mod client;
mod many;
mod memory;
mod rpc;
mod stats;
mod throughput;
mod uri;

use amqp_codec::*;
use client::RawClient;
use std::time::{Duration, Instant};

/// How consumers acknowledge.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AckMode {
    /// `no_ack` consume: the broker settles at delivery.
    Auto,
    /// One `basic.ack` per message.
    Manual,
    /// One `basic.ack(multiple)` per half prefetch window.
    Multiple,
}

#[derive(Debug, Clone, clap::Args)]
pub struct PerfArgs {
    /// The broker as a URI, `amqp://user:password@host:port/vhost` (overrides the four options
    /// below).
    #[arg(long)]
    pub uri: Option<String>,
    /// Broker address, host:port.
    #[arg(long, default_value = "127.0.0.1:5672")]
    pub addr: String,
    #[arg(long, default_value = "guest")]
    pub user: String,
    #[arg(long, default_value = "guest")]
    pub password: String,
    #[arg(long, default_value = "/")]
    pub vhost: String,
    /// Messages per producer (with `--rpc`: calls per client).
    #[arg(long, default_value_t = 200_000)]
    pub count: u64,
    /// Body size in bytes; from 8 bytes up the body carries its send time, for latencies.
    #[arg(long, default_value_t = 16)]
    pub size: usize,
    /// Bodies are an order as JSON (at least 180 bytes), with `content_type:
    /// application/json`, for measuring contracts and body filters.
    #[arg(long)]
    pub json_body: bool,
    /// With `--json-body`: lines in the order's `items` array (e.g. for an exchange that
    /// splits them, `--exchange-arg x-split=body.order.items`).
    #[arg(long, default_value_t = 2, requires = "json_body")]
    pub json_items: usize,
    /// Messages each queue receives per message published (e.g. the parts of a split).
    #[arg(long, default_value_t = 1)]
    pub deliveries_per_message: u64,
    /// 0 = consume only: the consumers take `--count` messages from a pre-filled `--queue`.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Consumers (per queue with `--fanout`); 0 = publish only.
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Publisher confirm window (0 = no confirms).
    #[arg(long, default_value_t = 0)]
    pub confirm: u64,
    /// delivery_mode 2 on a durable queue.
    #[arg(long)]
    pub persistent: bool,
    /// Consumer prefetch.
    #[arg(long, default_value_t = 1000)]
    pub prefetch: u16,
    /// How consumers acknowledge.
    #[arg(long, value_enum, default_value = "multiple")]
    pub ack_mode: AckMode,
    /// Same as `--ack-mode auto`.
    #[arg(long)]
    pub auto_ack: bool,
    /// Offered rate per producer, messages per second (0 = as fast as possible).
    #[arg(long, default_value_t = 0)]
    pub rate: u64,
    /// Publish through a fanout exchange bound to this many queues (0 = straight to one queue).
    #[arg(long, default_value_t = 0)]
    pub fanout: usize,
    /// With `--fanout`: a content filter (`x-filter`, Warren's own) on every binding, to measure
    /// what filtered routing costs; e.g. `--binding-filter "delivery_mode IS NULL OR priority < 5"`.
    #[arg(long, requires = "fanout")]
    pub binding_filter: Option<String>,
    /// With `--fanout`: an argument for every binding, as `--queue-arg` (e.g. `--binding-arg
    /// x-transform=NAME`). Repeatable.
    #[arg(long = "binding-arg", value_parser = parse_queue_arg, requires = "fanout")]
    pub binding_args: Vec<(String, String)>,
    /// A queue argument for the declared queues, `name=value` (a number is sent as a long,
    /// `true`/`false` as a boolean), e.g. `--queue-arg x-max-length=100000`. Repeatable.
    #[arg(long = "queue-arg", value_parser = parse_queue_arg)]
    pub queue_args: Vec<(String, String)>,
    /// With `--fanout`: an argument for the declared exchange, as `--queue-arg` (e.g.
    /// `--exchange-arg x-transform=NAME`, `--exchange-arg x-message-deduplication=true`).
    #[arg(long = "exchange-arg", value_parser = parse_queue_arg, requires = "fanout")]
    pub exchange_args: Vec<(String, String)>,
    /// Every message gets a `message_id` of its own (a deduplication key).
    #[arg(long)]
    pub message_ids: bool,
    /// Queues to spread the load over, each with one producer and one consumer: `--producers`
    /// connections each publish round-robin to their share of the queues through the default
    /// exchange, and as many consumer connections each consume that share (for the scale curves
    /// of BENCHMARKS.md; `--count` is per producer connection).
    #[arg(long, default_value_t = 1)]
    pub queue_count: usize,
    /// Publish through a topic exchange that binds the queue with this many patterns
    /// (`perf.N.*`), the routing key cycling over all of them (0 = no topic exchange).
    #[arg(long, default_value_t = 0)]
    pub topic_bindings: usize,
    /// Idle connections held open (logged in, one channel, nothing more) for the whole run.
    #[arg(long, default_value_t = 0)]
    pub idle_connections: usize,
    /// Use this queue (declared if missing) and leave it and its messages in place at the end,
    /// e.g. to measure memory with a full queue or recovery after a restart. By default a fresh
    /// queue is declared and deleted at the end.
    #[arg(long)]
    pub queue: Option<String>,
    /// Request/response round trips: `--producers` clients each make `--count` calls to
    /// `--consumers` servers.
    #[arg(long)]
    pub rpc: bool,
    /// With `--rpc`: replies through direct reply-to (`amq.rabbitmq.reply-to`) instead of an
    /// exclusive reply queue per client.
    #[arg(long)]
    pub direct_reply_to: bool,
    /// With `--rpc`: calls each client keeps in flight.
    #[arg(long, default_value_t = 1)]
    pub rpc_in_flight: u64,
    /// Memory per connection and per queue: opens `--connections` idle connections, then
    /// `--queues` queues with a consumer each, and reports the RSS of `--broker-pid` at each step.
    #[arg(long)]
    pub memory: bool,
    #[arg(long, default_value_t = 1000)]
    pub connections: usize,
    #[arg(long, default_value_t = 1000)]
    pub queues: usize,
    /// The broker's process id (same machine), to report its RSS.
    #[arg(long)]
    pub broker_pid: Option<u32>,
    /// Connect over TLS (AMQPS), trusting the CA certificates of this PEM file.
    #[arg(long)]
    pub tls_ca: Option<std::path::PathBuf>,
    /// With `--tls-ca`: the name the server's certificate must carry (default: localhost).
    #[arg(long, default_value = "localhost")]
    pub tls_server_name: String,
    /// Connection set-ups: opens and closes `--count` connections, `--producers` at a time, and
    /// reports how many a second (with `--tls-ca`, each with its TLS handshake).
    #[arg(long)]
    pub handshakes: bool,
    /// The TLS client configuration `--tls-ca` makes (built once, in `run`).
    #[arg(skip)]
    pub tls: Option<client::Tls>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_s: u64,
}

fn parse_queue_arg(text: &str) -> Result<(String, String), String> {
    let (k, v) = text.split_once('=').ok_or("expected name=value")?;
    Ok((k.to_owned(), v.to_owned()))
}

impl PerfArgs {
    /// Opens a connection (and channel 1) to the broker the arguments name.
    async fn connect(&self) -> Result<RawClient, String> {
        let target = match &self.uri {
            Some(uri) => uri::parse(uri)?,
            None => uri::Target {
                addr: self.addr.clone(),
                user: self.user.clone(),
                password: self.password.clone(),
                vhost: self.vhost.clone(),
            },
        };
        RawClient::connect(&target.addr, &target.user, &target.password, &target.vhost, self.tls.as_ref()).await
    }

    fn ack_mode(&self) -> AckMode {
        if self.auto_ack {
            AckMode::Auto
        } else {
            self.ack_mode
        }
    }

    fn queue_arguments(&self) -> FieldTable {
        arguments(&self.queue_args)
    }
}

/// `name=value` pairs as an argument table: integers as longs, `true`/`false` as booleans, the
/// rest as strings.
fn arguments(pairs: &[(String, String)]) -> FieldTable {
    let mut t = FieldTable::new();
    for (k, v) in pairs {
        let value = match (v.parse::<i64>(), v.as_str()) {
            (Ok(n), _) => FieldValue::I64(n),
            (_, "true") => FieldValue::Bool(true),
            (_, "false") => FieldValue::Bool(false),
            _ => FieldValue::LongStr(v.clone().into_bytes().into()),
        };
        t.insert(ShortStr::from(k.as_str()), value);
    }
    t
}

/// What a run measured, as one JSON line.
pub type Summary = serde_json::Value;

/// Runs what `args` ask for and returns its summary.
pub async fn run(mut args: PerfArgs) -> Result<Summary, String> {
    if let Some(ca) = &args.tls_ca {
        args.tls = Some(client::Tls::new(ca, &args.tls_server_name)?);
    }
    let cpu_at_start = stats::own_cpu_time();
    let started = Instant::now();
    let work = async {
        if args.memory {
            memory::run(&args).await
        } else if args.rpc {
            rpc::run(&args).await
        } else if args.handshakes {
            handshakes(&args).await
        } else {
            throughput::run(&args).await
        }
    };
    let mut summary = tokio::time::timeout(Duration::from_secs(args.timeout_s), work)
        .await
        .map_err(|_| format!("timed out after {} s", args.timeout_s))??;
    let cpu = cpu_at_start
        .zip(stats::own_cpu_time())
        .map(|(before, after)| 100.0 * (after - before).as_secs_f64() / started.elapsed().as_secs_f64());
    summary["tool_cpu_percent"] = cpu.map(|c| (c * 10.0).round() / 10.0).into();
    Ok(summary)
}

/// Opens and closes `--count` connections, `--producers` at a time.
async fn handshakes(args: &PerfArgs) -> Result<Summary, String> {
    let start = Instant::now();
    let clients = args.producers.max(1);
    let mut tasks = Vec::new();
    for i in 0..clients {
        let share = args.count / clients as u64 + u64::from((i as u64) < args.count % clients as u64);
        let args = args.clone();
        tasks.push(tokio::spawn(async move {
            for _ in 0..share {
                args.connect().await?.close().await?;
            }
            Ok::<_, String>(share)
        }));
    }
    let mut opened = 0;
    for t in tasks {
        opened += t.await.map_err(|e| e.to_string())??;
    }
    let elapsed = start.elapsed();
    Ok(serde_json::json!({
        "handshakes": opened,
        "tls": args.tls_ca.is_some(),
        "clients": clients,
        "connections_per_s": (opened as f64 / elapsed.as_secs_f64()).round(),
    }))
}

fn rand_u32() -> u32 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    nanos ^ std::process::id()
}

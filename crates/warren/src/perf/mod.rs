//! `warren perf`: a load tool for any AMQP 0-9-1 broker, modelled on RabbitMQ's PerfTest and
//! LavinMQ's lavinmqperf. Producers publish (optionally at an offered rate, with confirms)
//! to one queue or, with `--fanout K`, through a fanout exchange to K queues, while consumers
//! drain them; it reports rates, end-to-end and confirm latency percentiles (HDR), and its
//! own CPU. `--rpc` measures request/response round trips and `--memory` the broker's memory
//! per connection and per queue. Every run is bounded by its count and `--timeout-s`, and
//! deletes what it declared.

mod body;
mod client;
mod many;
mod memory;
mod rpc;
mod stats;
mod uri;

use amqp_codec::*;
use client::RawClient;
use hdrhistogram::Histogram;
use stats::Counters;
use std::collections::VecDeque;
use std::sync::Arc;
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
            throughput(&args).await
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

/// Publish to one queue (or K through a fanout exchange) while consumers drain them.
async fn throughput(args: &PerfArgs) -> Result<Summary, String> {
    if args.producers == 0 && (args.queue.is_none() || args.consumers == 0 || args.fanout > 0) {
        return Err("--producers 0 (consume only) needs --queue and at least one consumer".into());
    }
    let spread = args.queue_count > 1;
    if spread && (args.queue.is_some() || args.fanout > 0 || args.consumers != 1 || args.producers == 0) {
        return Err("--queue-count needs producers, one consumer per queue, and no --queue or --fanout".into());
    }
    if spread && args.queue_count < args.producers {
        return Err("--queue-count must be at least --producers".into());
    }
    if args.topic_bindings > 0 && (spread || args.fanout > 0) {
        return Err("--topic-bindings goes with one queue".into());
    }
    let idle = many::open_idle(args, args.idle_connections).await?;
    let tag = format!("{:08x}", rand_u32());
    let queues: Vec<String> = match (&args.queue, args.fanout) {
        (Some(q), 0) => vec![q.clone()],
        (_, 0) if !spread => vec![format!("warren-perf-{tag}")],
        (_, 0) => (0..args.queue_count).map(|i| format!("warren-perf-{tag}-{i}")).collect(),
        (_, k) => (0..k).map(|i| format!("warren-perf-{tag}-{i}")).collect(),
    };
    let topic = args.topic_bindings > 0;
    let exchange = if args.fanout > 0 || topic { format!("warren-perf-{tag}") } else { String::new() };
    let mut setup = args.connect().await?;
    if !exchange.is_empty() {
        let declare = ExchangeDeclare {
            exchange: exchange.as_str().into(),
            kind: if topic { "topic" } else { "fanout" }.into(),
            durable: args.persistent,
            arguments: arguments(&args.exchange_args),
            ..Default::default()
        };
        setup.call(Method::ExchangeDeclare(declare), |m| matches!(m, Method::ExchangeDeclareOk)).await?;
    }
    if spread {
        many::declare_queues(&mut setup, &queues, args.persistent, &args.queue_arguments()).await?;
    }
    for q in queues.iter().filter(|_| !spread) {
        let declare = QueueDeclare {
            queue: q.as_str().into(),
            durable: args.persistent,
            arguments: args.queue_arguments(),
            ..Default::default()
        };
        setup.call(Method::QueueDeclare(declare), |m| matches!(m, Method::QueueDeclareOk(_))).await?;
        if args.fanout > 0 {
            let mut arguments = arguments(&args.binding_args);
            if let Some(filter) = &args.binding_filter {
                arguments.insert("x-filter", FieldValue::LongStr(filter.clone().into_bytes().into()));
            }
            let bind = QueueBind {
                queue: q.as_str().into(),
                exchange: exchange.as_str().into(),
                arguments,
                ..Default::default()
            };
            setup.call(Method::QueueBind(bind), |m| matches!(m, Method::QueueBindOk)).await?;
        }
    }
    if topic {
        many::bind_patterns(&mut setup, &queues[0], &exchange, args.topic_bindings).await?;
    }

    let per_queue = args.count * args.producers.max(1) as u64 * args.deliveries_per_message.max(1);
    let counters = Arc::new(Counters::default());
    let progress = stats::progress(counters.clone());
    let mut consumers = Vec::new();
    // Producers start once every consumer is in place, so no delivery reaches a consumer still
    // setting up (and none is measured against an idle queue).
    let consumer_count = if spread { args.producers } else { queues.len() * args.consumers };
    let ready = Arc::new(tokio::sync::Barrier::new(consumer_count + 1));
    // With --queue-count, producer and consumer connection i share the queues i, i + P, ...
    let share_of = |i: usize| -> Vec<String> { queues.iter().skip(i).step_by(args.producers).cloned().collect() };
    if spread {
        for i in 0..args.producers {
            let ready = ready.clone();
            consumers.push(tokio::spawn(consume(args.clone(), share_of(i), args.count, counters.clone(), ready)));
        }
    }
    for q in queues.iter().filter(|_| !spread) {
        for i in 0..args.consumers {
            let n = args.consumers as u64;
            let share = per_queue / n + u64::from((i as u64) < per_queue % n);
            let ready = ready.clone();
            consumers.push(tokio::spawn(consume(args.clone(), vec![q.clone()], share, counters.clone(), ready)));
        }
    }
    ready.wait().await;
    let start = Instant::now();
    let started_unix_ms = unix_ms();
    let routing_keys = match () {
        _ if topic => many::pattern_keys(args.topic_bindings),
        _ if args.fanout > 0 => vec![String::new()],
        _ => vec![queues[0].clone()],
    };
    let mut producers = Vec::new();
    for i in 0..args.producers {
        let keys = if spread { share_of(i) } else { routing_keys.clone() };
        producers.push(tokio::spawn(produce(args.clone(), (exchange.clone(), keys), counters.clone())));
    }
    let mut confirm_latency = stats::histogram();
    for p in producers {
        confirm_latency.add(p.await.map_err(|e| e.to_string())??).expect("same bounds");
    }
    let published_at = start.elapsed();
    let (mut consumed, mut latency) = (0, stats::histogram());
    for c in consumers {
        let (n, h) = c.await.map_err(|e| e.to_string())??;
        consumed += n;
        latency.add(h).expect("same bounds");
    }
    let finished_at = start.elapsed();
    let finished_unix_ms = unix_ms();
    if let Some(p) = progress {
        p.abort();
    }
    if args.queue.is_none() {
        many::delete_queues(&mut setup, &queues).await?;
    }
    if !exchange.is_empty() {
        let delete = ExchangeDelete { exchange: exchange.as_str().into(), ..Default::default() };
        setup.call(Method::ExchangeDelete(delete), |m| matches!(m, Method::ExchangeDeleteOk)).await?;
    }
    setup.close().await?;
    many::close_all(idle).await?;
    let published = if args.producers == 0 { 0 } else { args.count * args.producers as u64 };
    let rate = |n: u64, t: Duration| if n == 0 { 0.0 } else { (n as f64 / t.as_secs_f64()).round() };
    Ok(serde_json::json!({
        "producers": args.producers,
        "consumers": args.consumers,
        "queues": queues.len(),
        "topic_bindings": args.topic_bindings,
        "idle_connections": args.idle_connections,
        "size": args.size,
        "json_body": args.json_body,
        "confirm": args.confirm,
        "persistent": args.persistent,
        "ack_mode": format!("{:?}", args.ack_mode()).to_lowercase(),
        "offered_rate": args.rate,
        "published": published,
        "consumed": consumed,
        "publish_msgs_per_s": rate(published, published_at),
        "end_to_end_msgs_per_s": rate(consumed, finished_at),
        "latency": stats::percentiles(&latency),
        "confirm_latency": stats::percentiles(&confirm_latency),
        // The measured part of the run (set-up and clean-up excluded), for reading the broker's
        // CPU and memory over exactly that time.
        "started_unix_ms": started_unix_ms,
        "finished_unix_ms": finished_unix_ms,
    }))
}

fn unix_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
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

/// Publishes `--count` messages to `exchange`, the routing key cycling over `routing_keys`,
/// paced to `--rate`, within the confirm window; returns the confirm latencies.
async fn produce(
    args: PerfArgs,
    (exchange, routing_keys): (String, Vec<String>),
    counters: Arc<Counters>,
) -> Result<Histogram<u64>, String> {
    let mut c = args.connect().await?;
    if args.confirm > 0 {
        c.call(Method::ConfirmSelect(ConfirmSelect { nowait: false }), |m| matches!(m, Method::ConfirmSelectOk))
            .await?;
    }
    let base = BasicProperties {
        delivery_mode: Some(if args.persistent { 2 } else { 1 }),
        content_type: args.json_body.then(|| ShortStr::from_static("application/json")),
        ..Default::default()
    };
    let props = base.to_raw();
    let producer_tag = rand_u32();
    let mut body = body::Body::with_items(args.size, args.json_body, args.json_items);
    let mut window = Confirms { sent_at: VecDeque::new(), confirmed: 0, latency: stats::histogram() };
    let start = Instant::now();
    let mut sent = 0u64;
    while sent < args.count {
        let allowed =
            if args.rate == 0 { args.count } else { (start.elapsed().as_secs_f64() * args.rate as f64) as u64 + 1 };
        if sent >= allowed {
            tokio::time::sleep(Duration::from_millis(1)).await;
            continue;
        }
        let before = sent;
        while sent < args.count.min(allowed)
            && c.wbuf.len() < 64 * 1024
            && (args.confirm == 0 || sent - window.confirmed < args.confirm)
        {
            let routing_key = &routing_keys[(sent % routing_keys.len() as u64) as usize];
            if args.message_ids {
                let id = ShortStr::from(format!("{producer_tag:08x}-{sent}"));
                let own = BasicProperties { message_id: Some(id), ..base.clone() }.to_raw();
                c.push_publish_to(&exchange, routing_key, &own, body.stamped(stats::now_ns()));
            } else {
                c.push_publish_to(&exchange, routing_key, &props, body.stamped(stats::now_ns()));
            }
            if args.confirm > 0 {
                window.sent_at.push_back(Instant::now());
            }
            sent += 1;
        }
        c.flush().await?;
        Counters::add(&counters.published, sent - before);
        while args.confirm > 0 && sent - window.confirmed >= args.confirm {
            window.read(&mut c, &counters).await?;
        }
    }
    while args.confirm > 0 && window.confirmed < sent {
        window.read(&mut c, &counters).await?;
    }
    c.close().await?;
    Ok(window.latency)
}

/// A producer's unconfirmed publishes, oldest first, and the confirm latencies so far.
struct Confirms {
    sent_at: VecDeque<Instant>,
    confirmed: u64,
    latency: Histogram<u64>,
}

impl Confirms {
    async fn read(&mut self, c: &mut RawClient, counters: &Counters) -> Result<(), String> {
        let upto = match c.next_frame().await? {
            Frame::Method { method: Method::BasicAck(a), .. } => {
                if a.multiple {
                    a.delivery_tag
                } else {
                    self.confirmed.max(a.delivery_tag)
                }
            }
            Frame::Method { method: Method::BasicNack(n), .. } => {
                return Err(format!("publish {} was nacked", n.delivery_tag))
            }
            Frame::Method { method: Method::ConnectionClose(cl), .. } => {
                return Err(format!("server closed: {}", cl.reply_text))
            }
            _ => return Ok(()),
        };
        let (now, before) = (Instant::now(), self.confirmed);
        while self.confirmed < upto {
            if let Some(at) = self.sent_at.pop_front() {
                stats::record(&mut self.latency, now - at);
            }
            self.confirmed += 1;
        }
        Counters::add(&counters.confirmed, self.confirmed - before);
        Ok(())
    }
}

/// Consumes `expected` messages from `queues` (one consumer each, on one channel); returns how
/// many came and their end-to-end latencies (from the send time in their bodies).
async fn consume(
    args: PerfArgs,
    queues: Vec<String>,
    expected: u64,
    counters: Arc<Counters>,
    ready: Arc<tokio::sync::Barrier>,
) -> Result<(u64, Histogram<u64>), String> {
    let mode = args.ack_mode();
    let mut c = args.connect().await?;
    let qos = BasicQos { prefetch_count: args.prefetch, ..Default::default() };
    c.call(Method::BasicQos(qos), |m| matches!(m, Method::BasicQosOk)).await?;
    for queue in &queues {
        let consume =
            BasicConsume { queue: queue.as_str().into(), no_ack: mode == AckMode::Auto, ..Default::default() };
        c.call(Method::BasicConsume(consume), |m| matches!(m, Method::BasicConsumeOk(_))).await?;
    }
    ready.wait().await;
    let ack_every = (args.prefetch as u64 / 2).max(1);
    let mut latency = stats::histogram();
    let (mut received, mut last_tag, mut unacked, mut counted) = (0u64, 0u64, 0u64, 0u64);
    while received < expected {
        let completed = match c.next_frame().await? {
            Frame::Method { method: Method::BasicDeliver(d), .. } => {
                last_tag = d.delivery_tag;
                false
            }
            Frame::Header { body_size, .. } => body_size == 0,
            // The tool's bodies fit in one frame, so a body frame completes a message.
            Frame::Body { payload, .. } => {
                if let Some(sent) = body::sent_ns(&payload, args.json_body) {
                    stats::record(&mut latency, Duration::from_nanos(stats::now_ns().saturating_sub(sent)));
                }
                true
            }
            Frame::Method { method: Method::ConnectionClose(cl), .. } => {
                return Err(format!("server closed: {}", cl.reply_text))
            }
            _ => false,
        };
        if !completed {
            continue;
        }
        received += 1;
        unacked += 1;
        match mode {
            AckMode::Auto => {}
            AckMode::Manual => {
                encode_method(&mut c.wbuf, 1, &Method::BasicAck(BasicAck { delivery_tag: last_tag, multiple: false }));
            }
            AckMode::Multiple if unacked >= ack_every => {
                encode_method(&mut c.wbuf, 1, &Method::BasicAck(BasicAck { delivery_tag: last_tag, multiple: true }));
                unacked = 0;
            }
            AckMode::Multiple => {}
        }
        // Acks go out when nothing more is buffered to read, many per write.
        if !c.frame_ready() {
            if !c.wbuf.is_empty() {
                c.flush().await?;
            }
            Counters::add(&counters.consumed, received - counted);
            counted = received;
        }
    }
    if mode == AckMode::Multiple && unacked > 0 {
        encode_method(&mut c.wbuf, 1, &Method::BasicAck(BasicAck { delivery_tag: last_tag, multiple: true }));
    }
    if !c.wbuf.is_empty() {
        c.flush().await?;
    }
    Counters::add(&counters.consumed, received - counted);
    c.close().await?;
    Ok((received, latency))
}

fn rand_u32() -> u32 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    nanos ^ std::process::id()
}

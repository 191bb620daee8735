//! `warren perf`: a load tool for any AMQP 0-9-1 broker. Producers publish a fixed number of
//! messages to one queue while consumers drain it; it reports publish and end-to-end rates.

mod client;

use amqp_codec::*;
use client::RawClient;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct PerfArgs {
    /// Broker address, host:port.
    #[arg(long, default_value = "127.0.0.1:5672")]
    pub addr: String,
    #[arg(long, default_value = "guest")]
    pub user: String,
    #[arg(long, default_value = "guest")]
    pub password: String,
    #[arg(long, default_value = "/")]
    pub vhost: String,
    /// Messages per producer.
    #[arg(long, default_value_t = 200_000)]
    pub count: u64,
    /// Body size in bytes.
    #[arg(long, default_value_t = 16)]
    pub size: usize,
    /// 0 = consume only: the consumers take `--count` messages from a pre-filled `--queue`.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// 0 = publish only (no consumer).
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
    /// Consume with auto-ack instead of manual multiple acks.
    #[arg(long)]
    pub auto_ack: bool,
    /// Use this queue (declared if missing) and leave it and its messages in place at the end,
    /// e.g. to measure memory with a full queue or recovery after a restart. By default a fresh
    /// queue is declared and deleted at the end.
    #[arg(long)]
    pub queue: Option<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 120)]
    pub timeout_s: u64,
}

pub struct PerfResult {
    pub published: u64,
    pub consumed: u64,
    pub publish_rate: f64,
    pub end_to_end_rate: f64,
    /// The tool's own CPU time over the run's wall time, in percent (it shares the machine with
    /// the broker, so this says how much it took from it); `None` where `/proc` is missing.
    pub tool_cpu_percent: Option<f64>,
}

/// This process's CPU time so far (user + system), from `/proc/self/stat`.
fn own_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports these in USER_HZ, which is 100 on every platform it supports.
    Some(Duration::from_millis(ticks * 10))
}

pub async fn run(args: PerfArgs) -> Result<PerfResult, String> {
    if args.producers == 0 && (args.queue.is_none() || args.consumers == 0) {
        return Err("--producers 0 (consume only) needs --queue and at least one consumer".into());
    }
    let queue = args.queue.clone().unwrap_or_else(|| format!("warren-perf-{:08x}", rand_u32()));
    let mut setup = RawClient::connect(&args.addr, &args.user, &args.password, &args.vhost).await?;
    let declare = QueueDeclare { queue: queue.as_str().into(), durable: args.persistent, ..Default::default() };
    setup.send(1, &Method::QueueDeclare(declare)).await?;
    setup.expect(1, |m| matches!(m, Method::QueueDeclareOk(_))).await?;

    let total = args.count * args.producers.max(1) as u64;
    let deadline = Duration::from_secs(args.timeout_s);
    let start = Instant::now();
    let cpu_at_start = own_cpu_time();
    let mut consumers = Vec::new();
    for i in 0..args.consumers {
        let share = total / args.consumers as u64 + u64::from((i as u64) < total % args.consumers as u64);
        consumers.push(tokio::spawn(consume(args.clone(), queue.clone(), share)));
    }
    let mut producers = Vec::new();
    for _ in 0..args.producers {
        producers.push(tokio::spawn(produce(args.clone(), queue.clone())));
    }
    let work = async {
        for p in producers {
            p.await.map_err(|e| e.to_string())??;
        }
        let published_at = start.elapsed();
        let mut consumed = 0;
        for c in consumers {
            consumed += c.await.map_err(|e| e.to_string())??;
        }
        Ok::<_, String>((published_at, consumed))
    };
    let (published_at, consumed) =
        tokio::time::timeout(deadline, work).await.map_err(|_| "timed out".to_string())??;
    let finished_at = start.elapsed();
    let tool_cpu_percent = cpu_at_start
        .zip(own_cpu_time())
        .map(|(before, after)| 100.0 * (after - before).as_secs_f64() / finished_at.as_secs_f64());
    if args.queue.is_none() {
        setup.send(1, &Method::QueueDelete(QueueDelete { queue: queue.as_str().into(), ..Default::default() })).await?;
        setup.expect(1, |m| matches!(m, Method::QueueDeleteOk(_))).await?;
    }
    setup.close().await?;
    let published = if args.producers == 0 { 0 } else { total };
    Ok(PerfResult {
        published,
        consumed,
        publish_rate: published as f64 / published_at.as_secs_f64(),
        end_to_end_rate: if consumed > 0 { consumed as f64 / finished_at.as_secs_f64() } else { 0.0 },
        tool_cpu_percent,
    })
}

async fn produce(args: PerfArgs, queue: String) -> Result<(), String> {
    let mut c = RawClient::connect(&args.addr, &args.user, &args.password, &args.vhost).await?;
    if args.confirm > 0 {
        c.send(1, &Method::ConfirmSelect(ConfirmSelect { nowait: false })).await?;
        c.expect(1, |m| matches!(m, Method::ConfirmSelectOk)).await?;
    }
    let props =
        BasicProperties { delivery_mode: Some(if args.persistent { 2 } else { 1 }), ..Default::default() }.to_raw();
    let body = vec![b'x'; args.size];
    let (mut sent, mut confirmed) = (0u64, 0u64);
    while sent < args.count {
        while sent < args.count && c.wbuf.len() < 64 * 1024 && (args.confirm == 0 || sent - confirmed < args.confirm) {
            c.push_publish(&queue, &props, &body);
            sent += 1;
        }
        c.flush().await?;
        while args.confirm > 0 && sent - confirmed >= args.confirm {
            confirmed = read_confirm(&mut c, confirmed).await?;
        }
    }
    while args.confirm > 0 && confirmed < sent {
        confirmed = read_confirm(&mut c, confirmed).await?;
    }
    c.close().await
}

async fn read_confirm(c: &mut RawClient, confirmed: u64) -> Result<u64, String> {
    match c.next_frame().await? {
        Frame::Method { method: Method::BasicAck(a), .. } => {
            Ok(if a.multiple { a.delivery_tag } else { confirmed.max(a.delivery_tag) })
        }
        Frame::Method { method: Method::BasicNack(n), .. } => Err(format!("publish {} was nacked", n.delivery_tag)),
        Frame::Method { method: Method::ConnectionClose(cl), .. } => Err(format!("server closed: {}", cl.reply_text)),
        _ => Ok(confirmed),
    }
}

async fn consume(args: PerfArgs, queue: String, expected: u64) -> Result<u64, String> {
    let mut c = RawClient::connect(&args.addr, &args.user, &args.password, &args.vhost).await?;
    c.send(1, &Method::BasicQos(BasicQos { prefetch_count: args.prefetch, ..Default::default() })).await?;
    c.expect(1, |m| matches!(m, Method::BasicQosOk)).await?;
    let consume = BasicConsume { queue: queue.as_str().into(), no_ack: args.auto_ack, ..Default::default() };
    c.send(1, &Method::BasicConsume(consume)).await?;
    c.expect(1, |m| matches!(m, Method::BasicConsumeOk(_))).await?;
    let ack_every = (args.prefetch as u64 / 2).max(1);
    let (mut received, mut last_tag, mut unacked) = (0u64, 0u64, 0u64);
    while received < expected {
        let completed = match c.next_frame().await? {
            Frame::Method { method: Method::BasicDeliver(d), .. } => {
                last_tag = d.delivery_tag;
                false
            }
            Frame::Header { body_size, .. } => body_size == 0,
            // The tool's bodies fit in one frame, so a body frame completes a message.
            Frame::Body { .. } => true,
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
        if !args.auto_ack && unacked >= ack_every {
            encode_method(&mut c.wbuf, 1, &Method::BasicAck(BasicAck { delivery_tag: last_tag, multiple: true }));
            c.flush().await?;
            unacked = 0;
        }
    }
    if !args.auto_ack && unacked > 0 {
        c.send(1, &Method::BasicAck(BasicAck { delivery_tag: last_tag, multiple: true })).await?;
    }
    c.close().await?;
    Ok(received)
}

fn rand_u32() -> u32 {
    let nanos =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    nanos ^ std::process::id()
}

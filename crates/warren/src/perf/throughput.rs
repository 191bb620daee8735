//! The throughput runs of `warren perf`: producers publish to one queue, to K through a fanout
//! exchange, to a topic exchange with many bindings, or round-robin over many queues, while
//! consumers drain them; the run reports rates and latency percentiles.

use super::client::RawClient;
use super::stats::{self, Counters};
use super::{arguments, body, many, rand_u32, AckMode, PerfArgs, Summary};
use amqp_codec::*;
use hdrhistogram::Histogram;
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Publish to one queue (or K through a fanout exchange) while consumers drain them.
pub async fn run(args: &PerfArgs) -> Result<Summary, String> {
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
    let (ready, mut in_place) = tokio::sync::mpsc::channel::<()>(consumer_count.max(1));
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
    drop(ready);
    let mut ready_count = 0;
    while ready_count < consumer_count && in_place.recv().await.is_some() {
        ready_count += 1;
    }
    if ready_count < consumer_count {
        // A consumer stopped while setting up: report its error, not a timeout.
        for c in consumers.into_iter().filter(|c| c.is_finished()) {
            c.await.map_err(|e| e.to_string())??;
        }
        return Err("a consumer stopped before it was in place".into());
    }
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
    ready: tokio::sync::mpsc::Sender<()>,
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
    // Dropped on any error above, which tells the run that this consumer is not coming.
    let _ = ready.send(()).await;
    drop(ready);
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

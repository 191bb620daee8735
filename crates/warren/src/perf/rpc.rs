//! `warren perf --rpc`: request/response round trips. Servers consume a request queue and
//! publish each body back to the request's `reply_to` with its `correlation_id`; clients keep
//! `--rpc-in-flight` calls out and wait for the replies, on an exclusive reply queue or through
//! direct reply-to (`amq.rabbitmq.reply-to`).

use super::stats::{self, Counters};
use super::PerfArgs;
use amqp_codec::*;
use hdrhistogram::Histogram;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

const DIRECT_REPLY_TO: &str = "amq.rabbitmq.reply-to";

pub async fn run(args: &PerfArgs) -> Result<super::Summary, String> {
    if args.producers == 0 || args.consumers == 0 {
        return Err("--rpc needs at least one client (--producers) and one server (--consumers)".into());
    }
    let queue = format!("warren-perf-rpc-{:08x}", super::rand_u32());
    let mut setup = args.connect().await?;
    let declare = QueueDeclare { queue: queue.as_str().into(), ..Default::default() };
    setup.call(Method::QueueDeclare(declare), |m| matches!(m, Method::QueueDeclareOk(_))).await?;
    let counters = Arc::new(Counters::default());
    let progress = stats::progress(counters.clone());
    let (stop, stopped) = watch::channel(false);
    let mut servers = Vec::new();
    for _ in 0..args.consumers {
        servers.push(tokio::spawn(serve(args.clone(), queue.clone(), stopped.clone())));
    }
    let start = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..args.producers {
        clients.push(tokio::spawn(call(args.clone(), queue.clone(), counters.clone())));
    }
    let mut latency = stats::histogram();
    for c in clients {
        latency.add(c.await.map_err(|e| e.to_string())??).expect("same bounds");
    }
    let elapsed = start.elapsed();
    stop.send_replace(true);
    for s in servers {
        s.await.map_err(|e| e.to_string())??;
    }
    if let Some(p) = progress {
        p.abort();
    }
    let delete = QueueDelete { queue: queue.as_str().into(), ..Default::default() };
    setup.call(Method::QueueDelete(delete), |m| matches!(m, Method::QueueDeleteOk(_))).await?;
    setup.close().await?;
    let calls = args.count * args.producers as u64;
    Ok(serde_json::json!({
        "rpc": true,
        "clients": args.producers,
        "servers": args.consumers,
        "in_flight": args.rpc_in_flight,
        "direct_reply_to": args.direct_reply_to,
        "size": args.size,
        "calls": calls,
        "calls_per_s": (calls as f64 / elapsed.as_secs_f64()).round(),
        "latency": stats::percentiles(&latency),
    }))
}

/// Answers requests until `stopped`.
async fn serve(args: PerfArgs, queue: String, mut stopped: watch::Receiver<bool>) -> Result<(), String> {
    let mut c = args.connect().await?;
    let qos = BasicQos { prefetch_count: args.prefetch, ..Default::default() };
    c.call(Method::BasicQos(qos), |m| matches!(m, Method::BasicQosOk)).await?;
    let consume = BasicConsume { queue: queue.as_str().into(), ..Default::default() };
    c.call(Method::BasicConsume(consume), |m| matches!(m, Method::BasicConsumeOk(_))).await?;
    let (mut tag, mut reply) = (0u64, None::<BasicProperties>);
    loop {
        let frame = tokio::select! {
            frame = c.next_frame() => frame?,
            _ = stopped.wait_for(|s| *s) => break,
        };
        match frame {
            Frame::Method { method: Method::BasicDeliver(d), .. } => tag = d.delivery_tag,
            Frame::Header { properties, .. } => {
                reply = Some(BasicProperties::decode(properties).map_err(|e| e.to_string())?);
            }
            Frame::Body { payload, .. } => {
                let request = reply.take().ok_or("a body without a header")?;
                let to = request.reply_to.ok_or("a request without reply_to")?;
                let answer = BasicProperties { correlation_id: request.correlation_id, ..Default::default() };
                c.push_publish_to("", &to, &answer.to_raw(), &payload);
                encode_method(&mut c.wbuf, 1, &Method::BasicAck(BasicAck { delivery_tag: tag, multiple: true }));
                if !c.frame_ready() {
                    c.flush().await?;
                }
            }
            Frame::Method { method: Method::ConnectionClose(cl), .. } => {
                return Err(format!("server closed: {}", cl.reply_text))
            }
            _ => {}
        }
    }
    c.close().await
}

/// Makes `--count` calls, `--rpc-in-flight` at a time; returns their round-trip times.
async fn call(args: PerfArgs, queue: String, counters: Arc<Counters>) -> Result<Histogram<u64>, String> {
    let mut c = args.connect().await?;
    let reply_to = if args.direct_reply_to {
        DIRECT_REPLY_TO.to_owned()
    } else {
        let declare = QueueDeclare { exclusive: true, auto_delete: true, ..Default::default() };
        match c.call(Method::QueueDeclare(declare), |m| matches!(m, Method::QueueDeclareOk(_))).await? {
            Method::QueueDeclareOk(ok) => ok.queue.to_string(),
            _ => unreachable!("call filtered the method"),
        }
    };
    let consume = BasicConsume { queue: reply_to.as_str().into(), no_ack: true, ..Default::default() };
    c.call(Method::BasicConsume(consume), |m| matches!(m, Method::BasicConsumeOk(_))).await?;
    let mut body = vec![b'r'; args.size.max(8)];
    let mut latency = stats::histogram();
    let (mut sent, mut answered) = (0u64, 0u64);
    while answered < args.count {
        while sent < args.count && sent - answered < args.rpc_in_flight.max(1) {
            body[..8].copy_from_slice(&stats::now_ns().to_be_bytes());
            let props = BasicProperties {
                reply_to: Some(reply_to.as_str().into()),
                correlation_id: Some(sent.to_string().into()),
                ..Default::default()
            };
            c.push_publish_to("", &queue, &props.to_raw(), &body);
            sent += 1;
        }
        c.flush().await?;
        loop {
            match c.next_frame().await? {
                Frame::Body { payload, .. } if payload.len() >= 8 => {
                    let at = u64::from_be_bytes(payload[..8].try_into().expect("8 bytes"));
                    stats::record(&mut latency, Duration::from_nanos(stats::now_ns().saturating_sub(at)));
                    answered += 1;
                    Counters::add(&counters.consumed, 1);
                    if !c.frame_ready() {
                        break;
                    }
                }
                Frame::Method { method: Method::ConnectionClose(cl), .. } => {
                    return Err(format!("server closed: {}", cl.reply_text))
                }
                _ => {}
            }
        }
    }
    c.close().await?;
    Ok(latency)
}

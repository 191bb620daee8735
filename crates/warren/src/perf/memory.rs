//! `warren perf --memory`: what connections and queues cost the broker. Reads the broker's RSS
//! (`--broker-pid`) idle, after opening `--connections` idle connections, and after declaring
//! `--queues` queues with one consumer each (spread over those connections), then removes
//! everything it made.

use super::stats::rss_bytes;
use super::PerfArgs;
use amqp_codec::*;
use std::time::Duration;

/// Lets the broker settle (allocator, lazily freed buffers) before its RSS is read.
const SETTLE: Duration = Duration::from_millis(500);

async fn rss_after_settling(pid: Option<u32>) -> Option<u64> {
    tokio::time::sleep(SETTLE).await;
    pid.and_then(rss_bytes)
}

pub async fn run(args: &PerfArgs) -> Result<super::Summary, String> {
    let connections = args.connections.max(1);
    let pid = args.broker_pid;
    let idle = rss_after_settling(pid).await;
    let mut open = Vec::with_capacity(connections);
    for _ in 0..connections {
        open.push(args.connect().await?);
    }
    let with_connections = rss_after_settling(pid).await;
    let tag = super::rand_u32();
    let names: Vec<String> = (0..args.queues).map(|i| format!("warren-perf-mem-{tag:08x}-{i}")).collect();
    for (i, name) in names.iter().enumerate() {
        let c = &mut open[i % connections];
        let declare = QueueDeclare { queue: name.as_str().into(), ..Default::default() };
        c.call(Method::QueueDeclare(declare), |m| matches!(m, Method::QueueDeclareOk(_))).await?;
        let consume = BasicConsume { queue: name.as_str().into(), ..Default::default() };
        c.call(Method::BasicConsume(consume), |m| matches!(m, Method::BasicConsumeOk(_))).await?;
    }
    let with_queues = rss_after_settling(pid).await;
    for (i, name) in names.iter().enumerate() {
        let c = &mut open[i % connections];
        let delete = QueueDelete { queue: name.as_str().into(), ..Default::default() };
        c.call(Method::QueueDelete(delete), |m| matches!(m, Method::QueueDeleteOk(_))).await?;
    }
    for c in open {
        c.close().await?;
    }
    let per = |after: Option<u64>, before: Option<u64>, n: usize| {
        after.zip(before).map(|(a, b)| a.saturating_sub(b) / n.max(1) as u64)
    };
    Ok(serde_json::json!({
        "memory": true,
        "connections": connections,
        "queues": args.queues,
        "idle_rss_bytes": idle,
        "rss_with_connections_bytes": with_connections,
        "rss_with_queues_bytes": with_queues,
        "bytes_per_connection": per(with_connections, idle, connections),
        "bytes_per_queue_with_consumer": per(with_queues, with_connections, args.queues),
    }))
}

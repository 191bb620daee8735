//! Declaring, binding and deleting many objects at once for the scale-of-costs runs (thousands
//! of queues, a hundred thousand bindings): the methods go out pipelined with `nowait`, in
//! batches, and one synchronous call at the end of each batch proves the broker took them.

use super::client::RawClient;
use super::PerfArgs;
use amqp_codec::*;
use tokio::task::JoinSet;

/// Methods sent before waiting for the broker to catch up.
const BATCH: usize = 1000;

/// Connections opened (or closed) at once.
const CONNECTING_AT_ONCE: usize = 100;

/// Opens `n` connections, `CONNECTING_AT_ONCE` at a time, to hold idle.
pub async fn open_idle(args: &PerfArgs, n: usize) -> Result<Vec<RawClient>, String> {
    let mut open = Vec::with_capacity(n);
    while open.len() < n {
        let mut set = JoinSet::new();
        for _ in 0..CONNECTING_AT_ONCE.min(n - open.len()) {
            let args = args.clone();
            set.spawn(async move { args.connect().await });
        }
        while let Some(c) = set.join_next().await {
            open.push(c.map_err(|e| e.to_string())??);
        }
    }
    Ok(open)
}

/// Closes `connections`, `CONNECTING_AT_ONCE` at a time.
pub async fn close_all(mut connections: Vec<RawClient>) -> Result<(), String> {
    while !connections.is_empty() {
        let mut set = JoinSet::new();
        for c in connections.drain(..CONNECTING_AT_ONCE.min(connections.len())) {
            set.spawn(c.close());
        }
        while let Some(r) = set.join_next().await {
            r.map_err(|e| e.to_string())??;
        }
    }
    Ok(())
}

/// Sends `methods` (each with `nowait` set) in batches, each closed by a round trip.
async fn pipelined(c: &mut RawClient, methods: impl Iterator<Item = Method>) -> Result<(), String> {
    let mut pending = 0;
    for m in methods {
        encode_method(&mut c.wbuf, 1, &m);
        pending += 1;
        if pending == BATCH {
            barrier(c).await?;
            pending = 0;
        }
    }
    if pending > 0 {
        barrier(c).await?;
    }
    Ok(())
}

/// A round trip after everything sent: a channel error from a `nowait` method shows up here.
async fn barrier(c: &mut RawClient) -> Result<(), String> {
    let qos = BasicQos { prefetch_count: 0, ..Default::default() };
    c.flush().await?;
    c.call(Method::BasicQos(qos), |m| matches!(m, Method::BasicQosOk)).await.map(drop)
}

/// Declares `queues`.
pub async fn declare_queues(
    c: &mut RawClient,
    queues: &[String],
    durable: bool,
    arguments: &FieldTable,
) -> Result<(), String> {
    pipelined(
        c,
        queues.iter().map(|q| {
            Method::QueueDeclare(QueueDeclare {
                queue: q.as_str().into(),
                durable,
                nowait: true,
                arguments: arguments.clone(),
                ..Default::default()
            })
        }),
    )
    .await
}

/// Binds `queue` to topic `exchange` with `count` patterns, `perf.N.*`.
pub async fn bind_patterns(c: &mut RawClient, queue: &str, exchange: &str, count: usize) -> Result<(), String> {
    pipelined(
        c,
        (0..count).map(|i| {
            Method::QueueBind(QueueBind {
                queue: queue.into(),
                exchange: exchange.into(),
                routing_key: format!("perf.{i}.*").as_str().into(),
                nowait: true,
                ..Default::default()
            })
        }),
    )
    .await
}

/// A routing key each of `count` patterns of [`bind_patterns`] matches.
pub fn pattern_keys(count: usize) -> Vec<String> {
    (0..count).map(|i| format!("perf.{i}.x")).collect()
}

/// Deletes `queues`.
pub async fn delete_queues(c: &mut RawClient, queues: &[String]) -> Result<(), String> {
    pipelined(
        c,
        queues
            .iter()
            .map(|q| Method::QueueDelete(QueueDelete { queue: q.as_str().into(), nowait: true, ..Default::default() })),
    )
    .await
}

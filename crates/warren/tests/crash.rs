//! The crash test: the real `warren` binary is killed with SIGKILL while several producers publish
//! persistent messages with confirms and a consumer acks, then restarted on the same data
//! directory. Every confirmed message must be delivered after the restart unless it was acked
//! before the kill; no message acked and then made durable (sealed, see below) may come back; no
//! message comes back twice. `CRASH_ROUNDS` (default 2) sets how many kill/restart rounds run;
//! `scripts/crash-soak.sh` runs many with random kill points. `CRASH_SEED` replays a run.

mod common;

use common::child::Broker;
use common::{within, DEADLINE};
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection};
use rand::{Rng, SeedableRng};
use std::collections::{HashSet, VecDeque};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

const QUEUE: &str = "crash";
const MARKER_QUEUE: &str = "crash-marker";
const PRODUCERS: usize = 3;
const PER_PRODUCER: usize = 4000;
/// Confirms each producer may wait for at once.
const WINDOW: usize = 64;

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

async fn confirm_channel(conn: &Connection) -> Channel {
    let ch = within(conn.create_channel()).await.unwrap();
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    ch
}

async fn declare_queues(ch: &Channel) {
    let opts = QueueDeclareOptions { durable: true, ..Default::default() };
    for q in [QUEUE, MARKER_QUEUE] {
        within(ch.queue_declare(q.into(), opts, FieldTable::default())).await.expect("declare");
    }
}

/// What the clients saw before the kill.
#[derive(Default)]
struct Seen {
    confirmed: HashSet<String>,
    acked: HashSet<String>,
    /// Acked messages whose ack is known to be durable: after the ack, a round trip on the
    /// consumer's channel, then a persistent publish confirmed (acks and publishes share the
    /// log and its fsyncs, in order).
    sealed: HashSet<String>,
}

/// Publishes persistent messages `p{producer}-{i}`, keeping `WINDOW` confirms in flight, until
/// the broker dies. Every acked confirm goes into `confirmed`.
async fn produce(conn: Connection, producer: usize, seen: Arc<std::sync::Mutex<Seen>>, count: Arc<AtomicUsize>) {
    let ch = confirm_channel(&conn).await;
    let mut pending = VecDeque::new();
    for i in 0..PER_PRODUCER {
        let body = format!("p{producer}-{i}");
        let opts = BasicPublishOptions::default();
        let Ok(confirm) = ch.basic_publish("".into(), QUEUE.into(), opts, body.as_bytes(), persistent()).await else {
            return;
        };
        pending.push_back((body, confirm));
        while pending.len() >= WINDOW {
            let (body, confirm) = pending.pop_front().unwrap();
            match confirm.await {
                Ok(Confirmation::Ack(_)) => {
                    seen.lock().unwrap().confirmed.insert(body);
                    count.fetch_add(1, Ordering::SeqCst);
                }
                _ => return,
            }
        }
    }
    while let Some((body, confirm)) = pending.pop_front() {
        if let Ok(Confirmation::Ack(_)) = confirm.await {
            seen.lock().unwrap().confirmed.insert(body);
            count.fetch_add(1, Ordering::SeqCst);
        } else {
            return;
        }
    }
}

/// Consumes and acks one by one; every 50 acks seals what was acked so far.
async fn consume(conn: Connection, seen: Arc<std::sync::Mutex<Seen>>) {
    let Ok(ch) = conn.create_channel().await else { return };
    let Ok(markers) = conn.create_channel().await else { return };
    if markers.confirm_select(ConfirmSelectOptions::default()).await.is_err()
        || ch.basic_qos(50, BasicQosOptions::default()).await.is_err()
    {
        return;
    }
    let Ok(mut consumer) =
        ch.basic_consume(QUEUE.into(), "".into(), BasicConsumeOptions::default(), FieldTable::default()).await
    else {
        return;
    };
    let mut unsealed = Vec::new();
    while let Some(Ok(delivery)) = consumer.next().await {
        let body = String::from_utf8(delivery.data.clone()).unwrap();
        if delivery.ack(BasicAckOptions::default()).await.is_err() {
            return;
        }
        seen.lock().unwrap().acked.insert(body.clone());
        unsealed.push(body);
        if unsealed.len() < 50 {
            continue;
        }
        // The broker has handled our acks once it answers this on the same channel.
        let passive = QueueDeclareOptions { passive: true, ..Default::default() };
        if ch.queue_declare(QUEUE.into(), passive, FieldTable::default()).await.is_err() {
            return;
        }
        let opts = BasicPublishOptions::default();
        let Ok(confirm) = markers.basic_publish("".into(), MARKER_QUEUE.into(), opts, b"seal", persistent()).await
        else {
            return;
        };
        if let Ok(Confirmation::Ack(_)) = confirm.await {
            seen.lock().unwrap().sealed.extend(unsealed.drain(..));
        } else {
            return;
        }
    }
}

/// Every message left in `queue` (acked), in order.
async fn drain(conn: &Connection, queue: &str) -> Vec<String> {
    let ch = within(conn.create_channel()).await.unwrap();
    let mut out = Vec::new();
    while let Some(m) = within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: true })).await.expect("get") {
        out.push(String::from_utf8(m.delivery.data.clone()).unwrap());
    }
    out
}

async fn crash_round(data_dir: &Path, rng: &mut rand::rngs::StdRng, round: usize) {
    let broker = Broker::start(data_dir).await;
    let setup = broker.connect().await;
    declare_queues(&within(setup.create_channel()).await.unwrap()).await;
    // Whatever an earlier round left is consumed by this round's consumer too.
    let seen = Arc::new(std::sync::Mutex::new(Seen::default()));
    let confirmed = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for p in 0..PRODUCERS {
        let conn = broker.connect().await;
        tasks.push(tokio::spawn(produce(conn, round * PRODUCERS + p, seen.clone(), confirmed.clone())));
    }
    tasks.push(tokio::spawn(consume(broker.connect().await, seen.clone())));
    let kill_after = rng.gen_range(200..PRODUCERS * PER_PRODUCER / 2);
    let deadline = tokio::time::Instant::now() + 6 * DEADLINE;
    while confirmed.load(Ordering::SeqCst) < kill_after {
        assert!(tokio::time::Instant::now() < deadline, "only {} confirms", confirmed.load(Ordering::SeqCst));
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    broker.kill().await;
    // No confirm can arrive after the kill, so what the tasks recorded is final; a client future
    // still waiting on the dead connection is simply dropped.
    for t in tasks {
        t.abort();
        let _ = t.await;
    }
    drop(setup);

    let broker = Broker::start(data_dir).await;
    let conn = broker.connect().await;
    let recovered = drain(&conn, QUEUE).await;
    drain(&conn, MARKER_QUEUE).await;
    check_round(round, kill_after, &seen.lock().unwrap(), &recovered);
    drop(conn);
    broker.kill().await;
}

/// The invariants of one round, from what the clients saw and what came back after the restart.
fn check_round(round: usize, kill_after: usize, seen: &Seen, recovered: &[String]) {
    let recovered_set: HashSet<&String> = recovered.iter().collect();
    assert_eq!(recovered_set.len(), recovered.len(), "round {round}: a message came back twice");
    let lost: Vec<&String> =
        seen.confirmed.iter().filter(|m| !recovered_set.contains(m) && !seen.acked.contains(*m)).collect();
    assert!(
        lost.is_empty(),
        "round {round}: {} confirmed messages lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    let resurrected: Vec<&&String> = recovered_set.iter().filter(|m| seen.sealed.contains(**m)).collect();
    assert!(resurrected.is_empty(), "round {round}: durably acked messages came back: {resurrected:?}");
    eprintln!(
        "crash round {round}: killed after {kill_after} confirms; confirmed {}, acked {} (sealed {}), recovered {}",
        seen.confirmed.len(),
        seen.acked.len(),
        seen.sealed.len(),
        recovered.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_confirmed_message() {
    let rounds: usize = std::env::var("CRASH_ROUNDS").ok().and_then(|v| v.parse().ok()).unwrap_or(2);
    let seed: u64 = std::env::var("CRASH_SEED").ok().and_then(|v| v.parse().ok()).unwrap_or_else(rand::random);
    eprintln!("crash test: {rounds} rounds, CRASH_SEED={seed}");
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let dir = tempfile::tempdir().unwrap();
    for round in 0..rounds {
        crash_round(&dir.path().join("data"), &mut rng, round).await;
    }
}

//! The crash test: the real `warren` binary is killed with SIGKILL while several producers publish
//! persistent messages with confirms and a consumer acks (the queue pages out: its memory budget
//! is small), while another queue's consumer rejects every message into a dead-letter queue, and
//! while a definitions import runs; then it is restarted on the same data directory. Every
//! confirmed message must be delivered after the restart unless it was acked before the kill; no
//! message acked and then made durable (sealed, see below) may come back; no message comes back
//! twice; every rejected message is in its queue or its dead-letter queue, once; the imported
//! definitions are whole objects (no binding without its queue), and importing again completes
//! them. `CRASH_ROUNDS` (default 2) sets how many kill/restart rounds run;
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
/// Its consumer rejects everything, into `DEAD_LETTERS`.
const REJECTED_QUEUE: &str = "crash-rejected";
const DEAD_LETTERS: &str = "crash-dead-letters";
/// Queues (each bound to `imported`) in the definitions file imported during the kill.
const IMPORTED_QUEUES: usize = 300;
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
    for q in [QUEUE, MARKER_QUEUE, DEAD_LETTERS] {
        within(ch.queue_declare(q.into(), opts, FieldTable::default())).await.expect("declare");
    }
    let mut args = FieldTable::default();
    args.insert("x-dead-letter-exchange".into(), lapin::types::AMQPValue::LongString("".into()));
    args.insert("x-dead-letter-routing-key".into(), lapin::types::AMQPValue::LongString(DEAD_LETTERS.into()));
    within(ch.queue_declare(REJECTED_QUEUE.into(), opts, args)).await.expect("declare");
}

/// What the clients saw before the kill.
#[derive(Default)]
struct Seen {
    confirmed: HashSet<String>,
    /// Confirmed into `REJECTED_QUEUE`.
    rejected_confirmed: HashSet<String>,
    acked: HashSet<String>,
    /// Acked messages whose ack is known to be durable: after the ack, a round trip on the
    /// consumer's channel, then a persistent publish confirmed (acks and publishes share the
    /// log and its fsyncs, in order).
    sealed: HashSet<String>,
}

/// Publishes persistent messages `p{producer}-{i}`, keeping `WINDOW` confirms in flight, until
/// the broker dies. Every acked confirm goes into `confirmed`.
async fn produce(conn: Connection, producer: usize, seen: Arc<std::sync::Mutex<Seen>>, count: Arc<AtomicUsize>) {
    produce_to(conn, QUEUE, format!("p{producer}"), |s| &mut s.confirmed, seen, count).await
}

/// Publishes `{prefix}-{i}` to `queue` as [`produce`] does, recording confirms where `into` says.
async fn produce_to(
    conn: Connection,
    queue: &str,
    prefix: String,
    into: fn(&mut Seen) -> &mut HashSet<String>,
    seen: Arc<std::sync::Mutex<Seen>>,
    count: Arc<AtomicUsize>,
) {
    let ch = confirm_channel(&conn).await;
    let mut pending = VecDeque::new();
    for i in 0..PER_PRODUCER {
        let body = format!("{prefix}-{i}");
        let opts = BasicPublishOptions::default();
        let Ok(confirm) = ch.basic_publish("".into(), queue.into(), opts, body.as_bytes(), persistent()).await else {
            return;
        };
        pending.push_back((body, confirm));
        while pending.len() >= WINDOW {
            let (body, confirm) = pending.pop_front().unwrap();
            match confirm.await {
                Ok(Confirmation::Ack(_)) => {
                    into(&mut seen.lock().unwrap()).insert(body);
                    count.fetch_add(1, Ordering::SeqCst);
                }
                _ => return,
            }
        }
    }
    while let Some((body, confirm)) = pending.pop_front() {
        if let Ok(Confirmation::Ack(_)) = confirm.await {
            into(&mut seen.lock().unwrap()).insert(body);
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

/// Rejects every message of `REJECTED_QUEUE` (requeue off), so each is dead-lettered.
async fn reject_all(conn: Connection) {
    let Ok(ch) = conn.create_channel().await else { return };
    let opts = BasicConsumeOptions::default();
    let Ok(mut consumer) = ch.basic_consume(REJECTED_QUEUE.into(), "".into(), opts, FieldTable::default()).await else {
        return;
    };
    while let Some(Ok(delivery)) = consumer.next().await {
        if delivery.reject(BasicRejectOptions { requeue: false }).await.is_err() {
            return;
        }
    }
}

/// A definitions file of `IMPORTED_QUEUES` durable queues, each bound to exchange `imported`.
fn definitions_file() -> serde_json::Value {
    let queues: Vec<_> = (0..IMPORTED_QUEUES)
        .map(|i| serde_json::json!({"name": format!("imported-{i}"), "vhost": "/", "durable": true}))
        .collect();
    let bindings: Vec<_> = (0..IMPORTED_QUEUES)
        .map(|i| {
            serde_json::json!({"source": "imported", "vhost": "/", "destination": format!("imported-{i}"),
                               "destination_type": "queue", "routing_key": format!("k{i}"), "arguments": {}})
        })
        .collect();
    serde_json::json!({
        "exchanges": [{"name": "imported", "vhost": "/", "type": "direct", "durable": true}],
        "queues": queues,
        "bindings": bindings,
    })
}

async fn import(broker_http: std::net::SocketAddr) -> Result<reqwest::StatusCode, reqwest::Error> {
    let url = format!("http://{broker_http}/api/definitions");
    let resp =
        reqwest::Client::new().post(url).basic_auth("guest", Some("guest")).json(&definitions_file()).send().await?;
    Ok(resp.status())
}

/// Imports the definitions file, deleting its queues between imports, until the broker dies.
async fn import_repeatedly(broker_http: std::net::SocketAddr) {
    let client = reqwest::Client::new();
    while let Ok(status) = import(broker_http).await {
        assert_eq!(status, reqwest::StatusCode::NO_CONTENT, "the import is accepted");
        for i in (0..IMPORTED_QUEUES).step_by(3) {
            let url = format!("http://{broker_http}/api/queues/%2F/imported-{i}");
            if client.delete(url).basic_auth("guest", Some("guest")).send().await.is_err() {
                return;
            }
        }
    }
}

/// After the restart: every imported binding has its queue, and importing again completes them.
async fn check_imported(broker_http: std::net::SocketAddr, round: usize) {
    let url = format!("http://{broker_http}/api/definitions");
    let get = || within(reqwest::Client::new().get(&url).basic_auth("guest", Some("guest")).send());
    let defs: serde_json::Value = within(get().await.unwrap().json()).await.unwrap();
    let names = |key: &str, field: &str| -> HashSet<String> {
        defs[key].as_array().unwrap().iter().map(|o| o[field].as_str().unwrap().to_owned()).collect()
    };
    let queues = names("queues", "name");
    for destination in names("bindings", "destination").iter().filter(|d| d.starts_with("imported-")) {
        assert!(queues.contains(destination), "round {round}: a binding to '{destination}' outlived its queue");
    }
    assert_eq!(within(import(broker_http)).await.unwrap(), reqwest::StatusCode::NO_CONTENT);
    let defs: serde_json::Value = within(get().await.unwrap().json()).await.unwrap();
    let imported =
        defs["queues"].as_array().unwrap().iter().filter(|q| q["name"].as_str().unwrap().starts_with("imported-"));
    assert_eq!(imported.count(), IMPORTED_QUEUES, "round {round}: importing again completes the file");
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
    let rejected: fn(&mut Seen) -> &mut HashSet<String> = |s| &mut s.rejected_confirmed;
    let conn = broker.connect().await;
    let rejecting = produce_to(conn, REJECTED_QUEUE, format!("r{round}"), rejected, seen.clone(), confirmed.clone());
    tasks.push(tokio::spawn(rejecting));
    tasks.push(tokio::spawn(reject_all(broker.connect().await)));
    tasks.push(tokio::spawn(import_repeatedly(broker.http_addr)));
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
    let mut rejected = drain(&conn, REJECTED_QUEUE).await;
    let dead_lettered = drain(&conn, DEAD_LETTERS).await;
    eprintln!("crash round {round}: {} left to reject, {} dead-lettered", rejected.len(), dead_lettered.len());
    rejected.extend(dead_lettered);
    check_round(round, kill_after, &seen.lock().unwrap(), &recovered);
    check_dead_lettered(round, &seen.lock().unwrap(), &rejected);
    check_imported(broker.http_addr, round).await;
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

/// Every confirmed message of the rejecting queue is in it or in its dead-letter queue, once.
fn check_dead_lettered(round: usize, seen: &Seen, found: &[String]) {
    let mut found_set: HashSet<&String> = HashSet::new();
    let twice: Vec<&String> = found.iter().filter(|m| !found_set.insert(*m)).collect();
    assert!(twice.is_empty(), "round {round}: rejected messages found twice (in both queues?): {twice:?}");
    let lost: Vec<&String> = seen.rejected_confirmed.iter().filter(|m| !found_set.contains(m)).collect();
    assert!(
        lost.is_empty(),
        "round {round}: {} rejected messages lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    eprintln!("crash round {round}: rejected confirmed {}, found {}", seen.rejected_confirmed.len(), found.len());
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

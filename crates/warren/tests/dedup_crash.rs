//! Deduplication across a crash: the real `warren` binary is killed with SIGKILL while a
//! producer publishes keyed persistent messages (with confirms) through a durable deduplicating
//! exchange, restarted, and every key is published again. A key confirmed before the kill must
//! come out exactly once (its window survived); any other key at least once and at most twice
//! (a crash may let a duplicate through, never lose a message).

mod common;

use common::child::Broker;
use common::{within, DEADLINE};
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};

const EXCHANGE: &str = "dedup-crash";
const QUEUE: &str = "dedup-crash-q";
const KEYS: usize = 3000;
const WINDOW: usize = 64;

fn keyed(key: usize) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert("x-deduplication-header".into(), AMQPValue::LongString(LongString::from(format!("k{key}"))));
    BasicProperties::default().with_headers(headers).with_delivery_mode(2)
}

async fn channel(broker: &Broker) -> (lapin::Connection, Channel) {
    let conn = broker.connect().await;
    let ch = within(conn.create_channel()).await.unwrap();
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    (conn, ch)
}

/// Publishes every key in order with up to [`WINDOW`] confirms outstanding; records the keys
/// acked. Stops quietly when the broker goes away.
async fn publish_all(ch: Channel, acked: Arc<Mutex<HashSet<usize>>>) {
    let mut waiting = VecDeque::new();
    for key in 0..KEYS {
        let Ok(confirm) = ch
            .basic_publish(EXCHANGE.into(), "".into(), Default::default(), format!("{key}").as_bytes(), keyed(key))
            .await
        else {
            return;
        };
        waiting.push_back((key, confirm));
        while waiting.len() >= WINDOW || (key + 1 == KEYS && !waiting.is_empty()) {
            let (key, confirm) = waiting.pop_front().expect("waiting");
            match confirm.await {
                Ok(Confirmation::Ack(_)) => {
                    acked.lock().unwrap().insert(key);
                }
                _ => return,
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_keys_stay_duplicates_across_a_kill() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let broker = Broker::start(&data).await;
    let (conn, ch) = channel(&broker).await;
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    let mut args = FieldTable::default();
    args.insert("x-message-deduplication".into(), AMQPValue::Boolean(true));
    args.insert("x-cache-size".into(), AMQPValue::LongInt(KEYS as i32 * 2));
    within(ch.exchange_declare(EXCHANGE.into(), lapin::ExchangeKind::Fanout, durable, args)).await.unwrap();
    let qopts = QueueDeclareOptions { durable: true, ..Default::default() };
    within(ch.queue_declare(QUEUE.into(), qopts, FieldTable::default())).await.unwrap();
    within(ch.queue_bind(QUEUE.into(), EXCHANGE.into(), "".into(), Default::default(), FieldTable::default()))
        .await
        .unwrap();

    let acked = Arc::new(Mutex::new(HashSet::new()));
    let producer = tokio::spawn(publish_all(ch, acked.clone()));
    let deadline = tokio::time::Instant::now() + 6 * DEADLINE;
    while acked.lock().unwrap().len() < KEYS / 3 {
        assert!(tokio::time::Instant::now() < deadline, "publishing stalled");
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
    }
    broker.kill().await;
    let _ = producer.await;
    drop(conn);
    let confirmed_before = acked.lock().unwrap().clone();
    assert!(confirmed_before.len() < KEYS, "the kill came while publishing");

    let broker = Broker::start(&data).await;
    let (_conn, ch) = channel(&broker).await;
    let again = Arc::new(Mutex::new(HashSet::new()));
    publish_all(ch.clone(), again.clone()).await;
    assert_eq!(again.lock().unwrap().len(), KEYS, "every key is acked the second time (duplicates too)");

    let mut seen: HashMap<usize, usize> = HashMap::new();
    let get = BasicGetOptions { no_ack: true };
    while let Some(got) = within(ch.basic_get(QUEUE.into(), get)).await.unwrap() {
        let key: usize = std::str::from_utf8(&got.delivery.data).unwrap().parse().unwrap();
        *seen.entry(key).or_default() += 1;
    }
    assert_eq!(seen.len(), KEYS, "every key came out");
    for key in &confirmed_before {
        assert_eq!(seen.get(key), Some(&1), "confirmed key {key} came out once");
    }
    assert!(seen.values().all(|&n| (1..=2).contains(&n)), "every key once or twice");
    broker.kill().await;
}

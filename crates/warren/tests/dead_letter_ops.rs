//! Dead-letter queue operations over the management API: browsing a queue without taking its
//! messages, and moving dead letters back to their source or through an exchange, filtered by
//! reason or chosen one by one, without losing or doubling one when the broker crashes in the middle of a move.

mod common;

use common::http::{http, send};
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::BasicProperties;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::collections::BTreeSet;
use std::sync::Arc;

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

/// Declares durable `queue` dead-lettering into durable `dlq` (through the default exchange),
/// with `max_length` if given.
async fn declare_pair(ch: &lapin::Channel, queue: &str, dlq: &str, max_length: Option<i64>) {
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    within(ch.queue_declare(dlq.into(), durable, FieldTable::default())).await.unwrap();
    let mut args = FieldTable::default();
    args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(LongString::from("")));
    args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(LongString::from(dlq)));
    if let Some(max) = max_length {
        args.insert("x-max-length".into(), AMQPValue::LongLongInt(max));
    }
    within(ch.queue_declare(queue.into(), durable, args)).await.unwrap();
}

/// Publishes `bodies` persistently to `queue` (confirmed), then takes each and rejects it
/// (no requeue): they die into the queue's dead-letter queue with reason `rejected`.
async fn reject_all(ch: &lapin::Channel, queue: &str, bodies: &[String]) {
    for b in bodies {
        q::publish_props(ch, "", queue, b.as_bytes(), persistent()).await;
    }
    for _ in bodies {
        let got = within(ch.basic_get(queue.into(), BasicGetOptions::default())).await.unwrap().expect("a message");
        within(got.delivery.acker.reject(BasicRejectOptions { requeue: false })).await.unwrap();
    }
}

async fn post(server: &TestServer, path: &str, body: Value) -> Value {
    let (code, answer, _) = send(http().post(server.http_url(path)).json(&body)).await;
    assert_eq!(code, StatusCode::OK, "{path}: {answer}");
    answer
}

fn text_bodies(bodies: Vec<Vec<u8>>) -> Vec<String> {
    bodies.into_iter().map(|b| String::from_utf8(b).unwrap()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn browsing_shows_dead_letters_with_their_history_and_takes_nothing() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let (work, dlq) = (unique("work"), unique("work.dlq"));
    declare_pair(&ch, &work, &dlq, Some(2)).await;
    reject_all(&ch, &work, &["r0".into(), "r1".into()]).await;
    for b in ["m0", "m1", "m2"] {
        q::publish_props(&ch, "", &work, b.as_bytes(), persistent()).await;
    }
    eventually(|| server.broker().vhost("/").unwrap().queue(&dlq).unwrap().message_counts().0 == 3, "3 dead letters")
        .await;

    let path = format!("/api/queues/%2F/{dlq}/messages");
    let (code, page, _) = send(http().get(server.http_url(&format!("{path}?count=2")))).await;
    assert_eq!(code, StatusCode::OK, "{page}");
    let messages = page["messages"].as_array().unwrap();
    let shown: Vec<(&str, &str)> =
        messages.iter().map(|m| (m["payload"].as_str().unwrap(), m["death_reason"].as_str().unwrap())).collect();
    assert_eq!(shown, [("r0", "rejected"), ("r1", "rejected")]);
    let death = &messages[0]["properties"]["headers"]["x-death"][0];
    assert_eq!((death["queue"].as_str(), death["reason"].as_str()), (Some(work.as_str()), Some("rejected")));
    assert_eq!(page["next_offset"], 2);
    let (_, rest, _) = send(http().get(server.http_url(&format!("{path}?offset=2&reason=maxlen")))).await;
    assert_eq!(rest["messages"][0]["payload"], "m0", "the head dropped by x-max-length: {rest}");
    assert_eq!(rest["messages"][0]["redelivered"], false);
    let (code, _, _) = send(http().get(server.http_url(&format!("{path}?count=5000")))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);

    // Nothing was taken or marked: a consumer gets all three, none redelivered.
    let got = within(ch.basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })).await.unwrap().unwrap();
    assert!(!got.delivery.redelivered);
    assert_eq!(q::counts(&ch, &dlq).await.unwrap().0, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_move_back_to_their_source_or_through_an_exchange_by_reason() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let (work, dlq, parked) = (unique("work"), unique("work.dlq"), unique("parked"));
    declare_pair(&ch, &work, &dlq, Some(2)).await;
    q::declare(&ch, &parked).await;
    reject_all(&ch, &work, &["r0".into(), "r1".into()]).await;
    for b in ["m0", "m1", "m2"] {
        q::publish_props(&ch, "", &work, b.as_bytes(), persistent()).await;
    }
    eventually(|| server.broker().vhost("/").unwrap().queue(&dlq).unwrap().message_counts().0 == 3, "3 dead letters")
        .await;
    let path = format!("/api/queues/%2F/{dlq}/move");

    let moved = post(&server, &path, json!({"to": "source", "reason": "rejected"})).await;
    // Back in a queue of at most 2, the two rejected ones push m1 and m2 out (maxlen), into the
    // dead-letter queue again, beside m0.
    assert_eq!((moved["moved"].as_u64(), moved["messages_ready"].as_u64()), (Some(2), Some(3)), "{moved}");
    assert_eq!(text_bodies(q::drain(&ch, &work).await), ["r0", "r1"]);
    let again = post(&server, &path, json!({"to": "source", "reason": "rejected"})).await;
    assert_eq!(again["moved"], 0, "nothing else died rejected: {again}");
    let moved =
        post(&server, &path, json!({"to": "exchange", "exchange": "", "routing_key": parked, "count": 1})).await;
    assert_eq!(moved["moved"], 1);
    assert_eq!(q::counts(&ch, &parked).await.unwrap().0, 1);
    let (code, err, _) = send(http().post(server.http_url(&path)).json(&json!({"to": "exchange"}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{err}");
    let (code, _, _) =
        send(http().post(server.http_url(&path)).json(&json!({"to": "exchange", "exchange": "missing"}))).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chosen_dead_letters_move_one_by_one_by_their_seq_from_a_browse() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let (work, dlq) = (unique("work"), unique("work.dlq"));
    declare_pair(&ch, &work, &dlq, None).await;
    let bodies: Vec<String> = (0..5).map(|i| format!("d{i}")).collect();
    reject_all(&ch, &work, &bodies).await;
    eventually(|| server.broker().vhost("/").unwrap().queue(&dlq).unwrap().message_counts().0 == 5, "5 dead letters")
        .await;
    let (_, page, _) = send(http().get(server.http_url(&format!("/api/queues/%2F/{dlq}/messages")))).await;
    let seq_of = |body: &str| {
        let m = page["messages"].as_array().unwrap().iter().find(|m| m["payload"] == body).unwrap();
        m["seq"].as_u64().expect("each browsed message has its seq")
    };
    let chosen = [seq_of("d1"), seq_of("d3")];
    let path = format!("/api/queues/%2F/{dlq}/move");

    let moved = post(&server, &path, json!({"to": "source", "seqs": chosen})).await;
    assert_eq!((moved["moved"].as_u64(), moved["messages_ready"].as_u64()), (Some(2), Some(3)), "{moved}");
    assert_eq!(text_bodies(q::drain(&ch, &work).await), ["d1", "d3"], "only the chosen ones, in order");
    // The same seqs again name nothing still there (moved messages get new seqs where they go).
    let again = post(&server, &path, json!({"to": "source", "seqs": chosen})).await;
    assert_eq!((again["moved"].as_u64(), again["not_found"].as_u64()), (Some(0), Some(2)), "{again}");
    let (_, left, _) = send(http().get(server.http_url(&format!("/api/queues/%2F/{dlq}/messages")))).await;
    let left: Vec<&str> = left["messages"].as_array().unwrap().iter().map(|m| m["payload"].as_str().unwrap()).collect();
    assert_eq!(left, ["d0", "d2", "d4"], "the others stayed, in their order");
    let too_many: Vec<u64> = (0..1001).collect();
    let (code, err, _) =
        send(http().post(server.http_url(&path)).json(&json!({"to": "source", "seqs": too_many}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{err}");
}

/// The broker crashes (power loss, torn last write) while a move waits on the disk: after the
/// restart every message is in exactly one of the two queues, and moving the rest completes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_in_the_middle_of_a_move_loses_nothing_and_doubles_nothing() {
    const TOTAL: usize = 200;
    let fs = Arc::new(warren_store::FaultyFs::new());
    let server = TestServer::start_on(fs.clone(), |_| {}).await;
    let (work, dlq) = ("orders".to_string(), "orders.dlq".to_string());
    let all: Vec<String> = (0..TOTAL).map(|i| format!("order-{i:03}")).collect();
    {
        let conn = server.lapin().await;
        let ch = confirmed_channel(&conn).await;
        declare_pair(&ch, &work, &dlq, None).await;
        reject_all(&ch, &work, &all).await;
        eventually(
            || server.broker().vhost("/").unwrap().queue(&dlq).unwrap().message_counts().0 == TOTAL,
            "every message dead-lettered",
        )
        .await;
        // The store writes in order: once this confirm comes, the dead letters are on disk.
        q::declare(&ch, "barrier").await;
        q::publish_props(&ch, "", "barrier", b"b", persistent()).await;
    }
    let path = format!("/api/queues/%2F/{dlq}/move");
    assert_eq!(post(&server, &path, json!({"to": "source", "count": 50})).await["moved"], 50);

    fs.pause_syncs();
    let url = server.http_url(&path);
    let stuck = tokio::spawn(async move {
        http().post(url).basic_auth("guest", Some("guest")).json(&json!({"to": "source"})).send().await
    });
    eventually(|| fs.syncs_waiting() > 0, "the move waits on the disk").await;
    let after_crash = Arc::new(fs.crash(Some(37)));
    let server = server.restart_on(after_crash).await;
    drop(stuck);

    let (_conn, ch) = server.lapin_channel().await;
    let counted =
        |server: &TestServer, name: &str| server.broker().vhost("/").unwrap().queue(name).unwrap().message_counts().0;
    assert_eq!(counted(&server, &work) + counted(&server, &dlq), TOTAL, "every message is in one queue or the other");
    assert_eq!(counted(&server, &work), 50, "the unsynced moves did not happen");
    assert_eq!(post(&server, &path, json!({"to": "source"})).await["moved"], TOTAL - 50);

    // Once more after a clean restart: the moves' records read back as they were made.
    let server = server.restart().await;
    let (_conn, ch2) = server.lapin_channel().await;
    drop(ch);
    assert_eq!(q::counts(&ch2, &dlq).await.unwrap().0, 0);
    let got: BTreeSet<String> = text_bodies(q::drain(&ch2, &work).await).into_iter().collect();
    assert_eq!(got.len(), TOTAL, "no message doubled");
    assert_eq!(got, all.into_iter().collect::<BTreeSet<_>>(), "no message lost");
}

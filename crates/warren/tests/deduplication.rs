//! Deduplication with LavinMQ's arguments, over AMQP and HTTP: a duplicate within an exchange's
//! window is confirmed but not routed (and not returned when mandatory), within a queue's window
//! not enqueued there; keys come from `x-deduplication-header` (or the header an argument
//! names) or `message_id`, leave by size and by time, are given back when a publish is nacked,
//! and survive a restart for durable exchanges and queues.

mod common;

use common::http::{http, send};
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Confirmation};
use reqwest::StatusCode;
use serde_json::json;

fn dedup_args(extra: &[(&str, AMQPValue)]) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-message-deduplication".into(), AMQPValue::Boolean(true));
    for (k, v) in extra {
        args.insert((*k).into(), v.clone());
    }
    args
}

fn keyed(key: &str) -> BasicProperties {
    let mut headers = FieldTable::default();
    headers.insert("x-deduplication-header".into(), AMQPValue::LongString(LongString::from(key)));
    BasicProperties::default().with_headers(headers)
}

/// Publishes with confirms (mandatory) and returns the confirmation.
async fn publish(ch: &lapin::Channel, exchange: &str, rk: &str, body: &[u8], props: BasicProperties) -> Confirmation {
    let opts = BasicPublishOptions { mandatory: true, ..Default::default() };
    let confirm = within(ch.basic_publish(exchange.into(), rk.into(), opts, body, props)).await.unwrap();
    within(confirm).await.unwrap()
}

fn acked(c: Confirmation) -> bool {
    matches!(c, Confirmation::Ack(None))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_confirms_duplicates_without_routing_them() {
    let server = TestServer::start_manual_clock(|_| {}).await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let args = dedup_args(&[("x-cache-size", AMQPValue::LongInt(2)), ("x-cache-ttl", AMQPValue::LongInt(1000))]);
    within(ch.exchange_declare("events".into(), lapin::ExchangeKind::Topic, Default::default(), args)).await.unwrap();
    let q = unique("events");
    q::declare(&ch, &q).await;
    q::bind(&ch, &q, "events", "#").await;

    assert!(acked(publish(&ch, "events", "e", b"a1", keyed("a")).await));
    assert!(acked(publish(&ch, "events", "e", b"a2", keyed("a")).await), "a duplicate is acked, not returned");
    let by_id = || BasicProperties::default().with_message_id("m-1".into());
    assert!(acked(publish(&ch, "events", "e", b"m1", by_id()).await));
    assert!(acked(publish(&ch, "events", "e", b"m2", by_id()).await), "message_id is the key without the header");
    for body in [b"n1", b"n2"] {
        assert!(
            acked(publish(&ch, "events", "e", body, BasicProperties::default()).await),
            "no key: never a duplicate"
        );
    }
    assert_eq!(text_bodies(q::drain(&ch, &q).await), ["a1", "m1", "n1", "n2"]);

    // Size 2: a third key pushes the oldest ("a") out.
    assert!(acked(publish(&ch, "events", "e", b"b", keyed("b")).await));
    assert!(acked(publish(&ch, "events", "e", b"a3", keyed("a")).await));
    assert_eq!(text_bodies(q::drain(&ch, &q).await), ["b", "a3"]);
    // 1 s: keys expire; a message may keep its own key shorter.
    server.advance_ms(1001);
    assert!(acked(publish(&ch, "events", "e", b"b2", keyed("b")).await));
    let mut short = FieldTable::default();
    short.insert("x-deduplication-header".into(), AMQPValue::LongString("c".into()));
    short.insert("x-cache-ttl".into(), AMQPValue::LongInt(10));
    let short = || BasicProperties::default().with_headers(short.clone());
    assert!(acked(publish(&ch, "events", "e", b"c1", short()).await));
    server.advance_ms(11);
    assert!(acked(publish(&ch, "events", "e", b"c2", short()).await));
    assert_eq!(text_bodies(q::drain(&ch, &q).await), ["b2", "c1", "c2"]);

    let (_, shown, _) = send(http().get(server.http_url("/api/exchanges/%2F/events"))).await;
    assert_eq!(shown["deduplication"]["duplicates"], 2, "{shown}");
    assert_eq!(shown["deduplication"]["cache_size"], 2, "{shown}");
    let metrics = http().get(server.http_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains("warren_deduplicated_messages_total{vhost=\"/\",exchange=\"events\"} 2"), "{metrics}");

    // A header of one's choosing; and bad arguments are refused.
    let args = dedup_args(&[("x-deduplication-header", AMQPValue::LongString("order-id".into()))]);
    within(ch.exchange_declare("orders".into(), lapin::ExchangeKind::Fanout, Default::default(), args)).await.unwrap();
    q::bind(&ch, &q, "orders", "").await;
    let order = |id: i64| {
        let mut h = FieldTable::default();
        h.insert("order-id".into(), AMQPValue::LongLongInt(id));
        BasicProperties::default().with_headers(h).with_message_id("same".into())
    };
    for (id, body) in [(1, b"o1"), (1, b"o1"), (2, b"o2")] {
        assert!(acked(publish(&ch, "orders", "", body, order(id)).await));
    }
    assert_eq!(text_bodies(q::drain(&ch, &q).await), ["o1", "o2"]);
    let bad = dedup_args(&[("x-cache-size", AMQPValue::LongInt(0))]);
    assert_code(
        within(ch.exchange_declare("bad".into(), lapin::ExchangeKind::Fanout, Default::default(), bad)).await,
        406,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_keeps_duplicates_out_and_a_nacked_publish_gives_its_key_back() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let (dedup_q, plain_q) = (unique("dedup"), unique("plain"));
    let args = dedup_args(&[
        ("x-max-length", AMQPValue::LongInt(1)),
        ("x-overflow", AMQPValue::LongString("reject-publish".into())),
    ]);
    within(ch.queue_declare(dedup_q.as_str().into(), Default::default(), args)).await.unwrap();
    q::declare(&ch, &plain_q).await;
    for q in [&dedup_q, &plain_q] {
        q::bind(&ch, q, "amq.fanout", "").await;
    }
    assert!(acked(publish(&ch, "amq.fanout", "", b"k1", keyed("k")).await));
    assert!(acked(publish(&ch, "amq.fanout", "", b"k2", keyed("k")).await), "kept out of one queue only");
    // The queue is full: the next publish is nacked, and its key given back.
    assert!(matches!(publish(&ch, "amq.fanout", "", b"j1", keyed("j")).await, Confirmation::Nack(_)));
    assert_eq!(text_bodies(q::drain(&ch, &dedup_q).await), ["k1"]);
    assert!(acked(publish(&ch, "amq.fanout", "", b"j2", keyed("j")).await), "the retry goes through");
    assert_eq!(text_bodies(q::drain(&ch, &dedup_q).await), ["j2"]);
    assert_eq!(text_bodies(q::drain(&ch, &plain_q).await), ["k1", "k2", "j1", "j2"]);
    let bad = dedup_args(&[("x-cache-ttl", AMQPValue::LongString("soon".into()))]);
    assert_code(within(ch.queue_declare(unique("bad").as_str().into(), Default::default(), bad)).await, 406);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_windows_survive_a_restart_and_go_with_their_exchange() {
    let server = TestServer::start().await;
    let durable_q = unique("durable");
    {
        let conn = server.lapin().await;
        let ch = confirmed_channel(&conn).await;
        let opts = ExchangeDeclareOptions { durable: true, ..Default::default() };
        within(ch.exchange_declare("payments".into(), lapin::ExchangeKind::Fanout, opts, dedup_args(&[])))
            .await
            .unwrap();
        let qopts = QueueDeclareOptions { durable: true, ..Default::default() };
        within(ch.queue_declare(durable_q.as_str().into(), qopts, dedup_args(&[]))).await.unwrap();
        q::bind(&ch, &durable_q, "payments", "").await;
        let persistent = |key: &str| keyed(key).with_delivery_mode(2);
        assert!(acked(publish(&ch, "payments", "", b"p1", persistent("p")).await));
        assert!(acked(publish(&ch, "", &durable_q, b"q1", persistent("q")).await));
    }
    let server = server.restart().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    assert!(acked(publish(&ch, "payments", "", b"p2", keyed("p")).await), "the exchange remembers p");
    assert!(acked(publish(&ch, "", &durable_q, b"q2", keyed("q")).await), "the queue remembers q");
    assert!(acked(publish(&ch, "", &durable_q, b"r1", keyed("r")).await));
    assert_eq!(text_bodies(q::drain(&ch, &durable_q).await), ["p1", "q1", "r1"]);

    // Deleted and declared again, the exchange starts with an empty window, also after a restart.
    within(ch.exchange_delete("payments".into(), Default::default())).await.unwrap();
    let opts = ExchangeDeclareOptions { durable: true, ..Default::default() };
    within(ch.exchange_declare("payments".into(), lapin::ExchangeKind::Fanout, opts, dedup_args(&[]))).await.unwrap();
    drop(ch);
    drop(conn);
    let server = server.restart().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let fresh = unique("fresh");
    q::declare(&ch, &fresh).await;
    q::bind(&ch, &fresh, "payments", "").await;
    assert!(acked(publish(&ch, "payments", "", b"p3", keyed("p")).await));
    assert_eq!(text_bodies(q::drain(&ch, &fresh).await), ["p3"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_http_publish_says_it_was_deduplicated_and_its_status_is_finished() {
    let server = TestServer::start().await;
    let url = server.http_url("/api/exchanges/%2F/events");
    let (code, err, _) = send(http().put(&url).json(&json!({"type": "fanout",
        "arguments": {"x-message-deduplication": true}})))
    .await;
    assert_eq!(code, StatusCode::CREATED, "{err}");
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let q = unique("events");
    q::declare(&ch, &q).await;
    q::bind(&ch, &q, "events", "").await;
    let publish = || {
        http()
            .post(server.http_url("/api/vhosts/%2F/exchanges/events/messages"))
            .header("content-type", "application/vnd.warren.envelope+json")
            .body(json!({"body": "hello", "properties": {"message_id": "once"}}).to_string())
    };
    let (code, first, _) = send(publish()).await;
    assert_eq!((code, first.get("deduplicated")), (StatusCode::ACCEPTED, None), "{first}");
    let (code, second, _) = send(publish()).await;
    assert_eq!((code, second["deduplicated"].as_bool()), (StatusCode::ACCEPTED, Some(true)), "{second}");
    let (_, status, _) = send(http().get(server.http_url(second["status_url"].as_str().unwrap()))).await;
    assert_eq!((status["finished"].as_bool(), status["outcome"].as_str()), (Some(true), Some("succeeded")), "{status}");
    assert!(status["events"].as_array().unwrap().iter().any(|e| e["event"] == "deduplicated"), "{status}");
    assert_eq!(q::counts(&ch, &q).await.unwrap().0, 1);
}

/// An HTTP retry with the same `Idempotency-Key` is answered from the HTTP window while it
/// lasts; after a restart (the HTTP window is memory only) the durable exchange's window still
/// knows the key, because the Idempotency-Key is the message's deduplication key.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_is_the_deduplication_key_so_a_retry_after_a_restart_is_kept_out() {
    let server = TestServer::start().await;
    let (code, err, _) = send(http().put(server.http_url("/api/exchanges/%2F/payments")).json(&json!({
        "type": "fanout", "durable": true, "arguments": {"x-message-deduplication": true}})))
    .await;
    assert_eq!(code, StatusCode::CREATED, "{err}");
    let (code, err, _) =
        send(http().put(server.http_url("/api/queues/%2F/payments")).json(&json!({"durable": true}))).await;
    assert_eq!(code, StatusCode::CREATED, "{err}");
    let (code, err, _) =
        send(http().post(server.http_url("/api/bindings/%2F/e/payments/q/payments")).json(&json!({}))).await;
    assert_eq!(code, StatusCode::CREATED, "{err}");
    let publish = |server: &TestServer| {
        http()
            .post(server.http_url("/api/vhosts/%2F/exchanges/payments/messages"))
            .header("content-type", "text/plain")
            .header("idempotency-key", "pay-42")
            .body("42 EUR")
    };
    let (code, first, _) = send(publish(&server)).await;
    assert_eq!((code, first.get("deduplicated")), (StatusCode::ACCEPTED, None), "{first}");
    let (_, again, _) = send(publish(&server)).await;
    assert_eq!(again["id"], first["id"], "the HTTP window answers the retry with the first publish");
    let server = server.restart().await;
    let (code, after, _) = send(publish(&server)).await;
    assert_eq!((code, after["deduplicated"].as_bool()), (StatusCode::ACCEPTED, Some(true)), "{after}");
    let (_conn, ch) = server.lapin_channel().await;
    let bodies = q::drain(&ch, "payments").await;
    assert_eq!(text_bodies(bodies), vec!["42 EUR"]);
}

fn text_bodies(bodies: Vec<Vec<u8>>) -> Vec<String> {
    bodies.into_iter().map(|b| String::from_utf8(b).unwrap()).collect()
}

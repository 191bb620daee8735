//! Aggregators (Warren's own, the Aggregator pattern): a broker object that consumes a queue,
//! gathers its messages by a correlation key until a group is complete (as many as
//! `x-split-count` says, a count, or a predicate transform), and publishes one combined
//! message (the JSON array of the parts, or a transform's reduction). Parts are acked in the
//! combined message's own store record; a group in progress survives a restart; one that is
//! not complete in time is dead-lettered with reason `aggregate_timeout`.

mod common;

use common::headers::{death_reason, header, text_args as args};
use common::http::{http, send};
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use reqwest::StatusCode;
use serde_json::{json, Value};

/// Durable: an exchange `orders` splitting `body.lines` into durable queue `lines`, and a
/// durable queue `ready` bound to fanout `ready`; `lines` dead-letters into queue `expired`.
async fn topology(ch: &lapin::Channel) {
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    within(ch.exchange_declare(
        "orders".into(),
        lapin::ExchangeKind::Fanout,
        durable,
        args(&[("x-split", "body.lines")]),
    ))
    .await
    .unwrap();
    within(ch.exchange_declare("ready".into(), lapin::ExchangeKind::Fanout, durable, FieldTable::default()))
        .await
        .unwrap();
    let opts = QueueDeclareOptions { durable: true, ..Default::default() };
    within(ch.queue_declare("expired".into(), opts, FieldTable::default())).await.unwrap();
    let dead_letters = args(&[("x-dead-letter-exchange", ""), ("x-dead-letter-routing-key", "expired")]);
    within(ch.queue_declare("lines".into(), opts, dead_letters)).await.unwrap();
    within(ch.queue_declare("ready".into(), opts, FieldTable::default())).await.unwrap();
    q::bind(ch, "lines", "orders", "").await;
    q::bind(ch, "ready", "ready", "").await;
}

async fn put_aggregator(server: &TestServer, name: &str, spec: Value) -> (StatusCode, Value) {
    let (code, body, _) = send(http().put(server.http_url(&format!("/api/aggregators/%2F/{name}"))).json(&spec)).await;
    (code, body)
}

async fn figures(server: &TestServer, name: &str) -> Value {
    let (code, body, _) = send(http().get(server.http_url(&format!("/api/aggregators/%2F/{name}")))).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body["figures"].clone()
}

async fn publish_order(ch: &lapin::Channel, id: &str, lines: Value) {
    let props = BasicProperties::default().with_delivery_mode(2).with_message_id(id.into());
    let body = serde_json::to_vec(&json!({"id": id, "lines": lines})).unwrap();
    q::publish_props(ch, "orders", "", &body, props).await;
}

/// basic.get until a message comes (the aggregator works on its own task), with a deadline.
async fn get_eventually(ch: &lapin::Channel, queue: &str) -> lapin::message::Delivery {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        if let Some(m) = within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: true })).await.unwrap() {
            return m.delivery;
        }
        assert!(std::time::Instant::now() < deadline, "nothing arrived in '{queue}'");
        tokio::task::yield_now().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn split_parts_come_back_as_one_message_once_and_a_group_survives_a_restart() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    topology(&ch).await;
    let spec = json!({"queue": "lines", "exchange": "ready", "routing_key": "order.ready"});
    assert_eq!(put_aggregator(&server, "order-ready", spec.clone()).await.0, StatusCode::CREATED);

    publish_order(&ch, "o-1", json!([{"sku": "a"}, {"sku": "b"}, {"sku": "c"}])).await;
    let ready = get_eventually(&ch, "ready").await;
    assert_eq!(
        serde_json::from_slice::<Value>(&ready.data).unwrap(),
        json!([{"sku": "a"}, {"sku": "b"}, {"sku": "c"}])
    );
    assert_eq!(header(&ready, "x-aggregate-key"), Some(AMQPValue::LongString("o-1".into())));
    assert_eq!(header(&ready, "x-aggregate-count"), Some(AMQPValue::LongLongInt(3)));
    assert_eq!(ready.properties.message_id().as_ref().map(|m| m.as_str()), Some("order-ready/o-1"));
    assert_eq!(ready.properties.delivery_mode(), &Some(2));
    assert_eq!(ready.routing_key.as_str(), "order.ready");
    // The parts were acked with it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while figures(&server, "order-ready").await["parts_held"] != 0 || q::counts(&ch, "lines").await.unwrap().0 != 0 {
        assert!(std::time::Instant::now() < deadline);
        tokio::task::yield_now().await;
    }
    let f = figures(&server, "order-ready").await;
    assert_eq!(
        (f["aggregated"].clone(), f["parts_in"].clone(), f["state"].clone()),
        (json!(1), json!(3), json!("running"))
    );

    // A group half gathered when the broker stops is gathered again after the restart.
    publish_part(&ch, "o-2", 0, 2, json!({"sku": "x"})).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while figures(&server, "order-ready").await["groups_open"] != 1 {
        assert!(std::time::Instant::now() < deadline, "the first part was never taken");
        tokio::task::yield_now().await;
    }
    drop((ch, conn));
    let server = server.restart().await;
    let (_conn, ch) = server.lapin_channel().await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while figures(&server, "order-ready").await["groups_open"] != 1 {
        assert!(std::time::Instant::now() < deadline, "the group was not gathered again after the restart");
        tokio::task::yield_now().await;
    }
    publish_part(&ch, "o-2", 1, 2, json!({"sku": "y"})).await;
    let ready = get_eventually(&ch, "ready").await;
    assert_eq!(serde_json::from_slice::<Value>(&ready.data).unwrap(), json!([{"sku": "x"}, {"sku": "y"}]));
    // The same part again (a publisher's retry) is acked, not aggregated a second time.
    publish_part(&ch, "o-2", 1, 2, json!({"sku": "y"})).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while figures(&server, "order-ready").await["late"] != 1 {
        assert!(std::time::Instant::now() < deadline, "the late part was not settled");
        tokio::task::yield_now().await;
    }
    assert_eq!(q::counts(&ch, "lines").await.unwrap().0, 0);
    assert_eq!(q::counts(&ch, "ready").await.unwrap().0, 0, "aggregated once");
}

/// Publishes part `index` of `count` of split `id` straight to queue `lines`, persistent.
async fn publish_part(ch: &lapin::Channel, id: &str, index: i64, count: i64, body: Value) {
    let mut headers = FieldTable::default();
    headers.insert("x-split-id".into(), AMQPValue::LongString(id.into()));
    headers.insert("x-split-index".into(), AMQPValue::LongLongInt(index));
    headers.insert("x-split-count".into(), AMQPValue::LongLongInt(count));
    let props = BasicProperties::default().with_delivery_mode(2).with_headers(headers);
    q::publish_props(ch, "", "lines", &serde_json::to_vec(&body).unwrap(), props).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incomplete_group_is_dead_lettered_at_its_deadline_with_its_parts() {
    let server = TestServer::start_manual_clock(|_| {}).await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    topology(&ch).await;
    let spec = json!({"queue": "lines", "exchange": "ready", "complete_when": {"count": 3}, "timeout_ms": 5000,
        "correlate_by": "body.order"});
    assert_eq!(put_aggregator(&server, "by-order", spec).await.0, StatusCode::CREATED);
    for (order, n) in [("o-7", 1), ("o-7", 2), ("o-8", 1)] {
        let body = serde_json::to_vec(&json!({"order": order, "n": n})).unwrap();
        q::publish(&ch, "", "lines", &body).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while figures(&server, "by-order").await["parts_held"] != 3 {
        assert!(std::time::Instant::now() < deadline);
        tokio::task::yield_now().await;
    }
    server.advance_ms(4_999);
    assert_eq!(figures(&server, "by-order").await["groups_open"], 2);
    server.advance_ms(1);
    let mut dead = Vec::new();
    for _ in 0..3 {
        let d = get_eventually(&ch, "expired").await;
        assert_eq!(death_reason(&d).as_deref(), Some("aggregate_timeout"));
        dead.push(serde_json::from_slice::<Value>(&d.data).unwrap());
    }
    assert!(dead.contains(&json!({"order": "o-7", "n": 2})) && dead.contains(&json!({"order": "o-8", "n": 1})));
    let f = figures(&server, "by-order").await;
    assert_eq!((f["timed_out"].clone(), f["groups_open"].clone()), (json!(2), json!(0)));
    assert!(f["last_error"].as_str().unwrap().contains("incomplete after 5000 ms"), "{f}");
    assert_eq!(q::counts(&ch, "ready").await.unwrap().0, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_predicate_completes_groups_and_a_transform_reduces_them() {
    let server = TestServer::start().await;
    let url = |name: &str| server.http_url(&format!("/api/transforms/%2F/{name}"));
    let enough = json!({"program": "([.parts[].body.qty] | add) >= 10"});
    assert_eq!(send(http().put(url("enough")).json(&enough)).await.0, StatusCode::CREATED);
    let total =
        json!({"program": "{body: {order: .key, total: ([.parts[].body.qty] | add), lines: (.parts | length)}}"});
    assert_eq!(send(http().put(url("total")).json(&total)).await.0, StatusCode::CREATED);
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    topology(&ch).await;
    let spec = json!({"queue": "lines", "exchange": "ready", "correlate_by": "correlation_id",
        "complete_when": {"transform": "enough"}, "combine": "total"});
    assert_eq!(put_aggregator(&server, "totals", spec).await.0, StatusCode::CREATED);
    for qty in [4, 3, 5, 9] {
        let props = BasicProperties::default().with_correlation_id("o-3".into());
        q::publish_props(&ch, "", "lines", &serde_json::to_vec(&json!({"qty": qty})).unwrap(), props).await;
    }
    let ready = get_eventually(&ch, "ready").await;
    assert_eq!(serde_json::from_slice::<Value>(&ready.data).unwrap(), json!({"order": "o-3", "total": 12, "lines": 3}));
    assert_eq!(figures(&server, "totals").await["groups_open"], 1, "the fourth part opened the next group");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_definitions_are_refused_with_the_reason_and_aggregators_are_managed_and_exported() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    topology(&ch).await;
    for (spec, code, why) in [
        (json!({"queue": "nope", "exchange": "ready"}), StatusCode::NOT_FOUND, "no queue 'nope'"),
        (json!({"queue": "lines", "exchange": "nope"}), StatusCode::NOT_FOUND, "no exchange 'nope'"),
        (
            json!({"queue": "lines", "exchange": "ready", "correlate_by": "body."}),
            StatusCode::BAD_REQUEST,
            "correlate_by",
        ),
        (
            json!({"queue": "lines", "exchange": "ready", "max_groups": 1000, "max_parts": 1000}),
            StatusCode::BAD_REQUEST,
            "at most 100000",
        ),
        (json!({"queue": "lines", "exchange": "ready", "timeout_ms": 0}), StatusCode::BAD_REQUEST, "timeout_ms"),
        (json!({"queue": "lines", "exchange": "ready", "bogus": 1}), StatusCode::BAD_REQUEST, "bogus"),
    ] {
        let (got, body) = put_aggregator(&server, "bad", spec).await;
        assert_eq!(got, code, "{body}");
        assert!(body["reason"].as_str().unwrap().contains(why), "{why}: {body}");
    }
    let spec = json!({"queue": "lines", "exchange": "ready"});
    assert_eq!(put_aggregator(&server, "good", spec.clone()).await.0, StatusCode::CREATED);
    assert_eq!(put_aggregator(&server, "good", spec).await.0, StatusCode::NO_CONTENT);
    let (code, listed, _) = send(http().get(server.http_url("/api/aggregators"))).await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(listed.as_array().unwrap().len(), 1);
    assert_eq!(listed[0]["complete_when"], "split_count");
    let (_, defs, _) = send(http().get(server.http_url("/api/definitions"))).await;
    assert_eq!(defs["aggregators"][0]["name"], "good");
    assert_eq!(defs["aggregators"][0].get("figures"), None, "definitions hold no figures");
    let (code, _, _) = send(http().delete(server.http_url("/api/aggregators/%2F/good"))).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    // Imported back with the definitions, it runs again.
    let (code, body, _) = send(http().post(server.http_url("/api/definitions")).json(&defs)).await;
    assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(figures(&server, "good").await["state"], "running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deduplicating_exchange_keeps_out_a_group_formed_again() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let dedup = {
        let mut t = FieldTable::default();
        t.insert("x-message-deduplication".into(), AMQPValue::Boolean(true));
        t
    };
    within(ch.exchange_declare("batches".into(), lapin::ExchangeKind::Fanout, Default::default(), dedup))
        .await
        .unwrap();
    let (parts, batches) = (unique("parts"), unique("batches"));
    q::declare(&ch, &parts).await;
    q::declare(&ch, &batches).await;
    q::bind(&ch, &batches, "batches", "").await;
    let spec = json!({"queue": parts, "exchange": "batches", "correlate_by": "correlation_id",
        "complete_when": {"count": 2}});
    assert_eq!(put_aggregator(&server, "pairs", spec).await.0, StatusCode::CREATED);
    // The same pair twice (a publisher's retry of both): the second aggregate is a duplicate.
    for body in [b"a", b"b", b"a", b"b"] {
        let props = BasicProperties::default().with_correlation_id("pair-1".into());
        q::publish_props(&ch, "", &parts, body, props).await;
    }
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while figures(&server, "pairs").await["aggregated"] != 2 || q::counts(&ch, &parts).await.unwrap().0 != 0 {
        assert!(std::time::Instant::now() < deadline, "{}", figures(&server, "pairs").await);
        tokio::task::yield_now().await;
    }
    let delivered = q::drain(&ch, &batches).await;
    assert_eq!(delivered.len(), 1, "one aggregate: the other was a duplicate");
    assert_eq!(figures(&server, "pairs").await["parts_held"], 0, "every part settled");
}

//! Splitting (Warren's own, the Splitter pattern): an exchange with `x-split` turns one message
//! into parts (the elements of an array in its body, or a transform's outputs), each with
//! `x-split-id`, `x-split-index`, `x-split-count` and the original's correlation id, routed on
//! by content. The parts are stored as one record: the publisher's confirm comes once all of
//! them are on disk, and a restart finds all of them. What cannot be split is dead-lettered
//! with reason `split_failed`; a part its transform fails on, alone, with `transform_failed`.

mod common;

use common::headers::{death_reason, text_args as args};
use common::http::{http, send};
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Confirmation};
use reqwest::StatusCode;
use serde_json::{json, Value};

fn header<'a>(delivery: &'a lapin::message::Delivery, name: &str) -> Option<&'a AMQPValue> {
    delivery.properties.headers().as_ref()?.inner().get(name)
}

fn text(delivery: &lapin::message::Delivery, name: &str) -> Option<String> {
    match header(delivery, name)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        _ => None,
    }
}

fn int(delivery: &lapin::message::Delivery, name: &str) -> Option<i64> {
    match header(delivery, name)? {
        AMQPValue::LongLongInt(n) => Some(*n),
        _ => None,
    }
}

async fn declare_exchange(ch: &lapin::Channel, name: &str, durable: bool, arguments: &[(&str, &str)]) {
    let opts = ExchangeDeclareOptions { durable, ..Default::default() };
    within(ch.exchange_declare(name.into(), lapin::ExchangeKind::Topic, opts, args(arguments))).await.unwrap();
}

async fn declare_durable_queue(ch: &lapin::Channel, name: &str) {
    let opts = QueueDeclareOptions { durable: true, ..Default::default() };
    within(ch.queue_declare(name.into(), opts, FieldTable::default())).await.unwrap();
}

async fn publish(ch: &lapin::Channel, exchange: &str, body: &[u8], props: BasicProperties) -> Confirmation {
    let props = props.with_delivery_mode(2).with_content_type("application/json".into());
    let confirm = within(ch.basic_publish(exchange.into(), "order.placed".into(), Default::default(), body, props))
        .await
        .unwrap();
    within(confirm).await.unwrap()
}

async fn get(ch: &lapin::Channel, queue: &str) -> lapin::message::Delivery {
    within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: true })).await.unwrap().expect("a message").delivery
}

const ORDER: &[u8] = br#"{"id": 42, "lines": [{"sku": "A-1", "qty": 2, "warehouse": "north"},
    {"sku": "B-7", "qty": 1, "warehouse": "south"}, {"sku": "C-3", "qty": 5, "warehouse": "north"}]}"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_order_is_split_per_line_routed_by_content_and_its_parts_survive_a_restart() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    declare_exchange(&ch, "orders", true, &[("x-split", "body.lines")]).await;
    for (queue, warehouse) in [("north", "north"), ("south", "south")] {
        declare_durable_queue(&ch, queue).await;
        let filter = format!("body.warehouse = '{warehouse}'");
        q::bind_args(&ch, queue, "orders", "order.#", args(&[("x-filter", &filter)])).await;
    }
    let props = BasicProperties::default().with_message_id("order-42".into()).with_correlation_id("c-42".into());
    assert!(matches!(publish(&ch, "orders", ORDER, props).await, Confirmation::Ack(None)));
    assert_eq!(q::counts(&ch, "north").await.unwrap().0, 2);
    assert_eq!(q::counts(&ch, "south").await.unwrap().0, 1);
    let (_, shown, _) = send(http().get(server.http_url("/api/exchanges/%2F/orders"))).await;
    assert_eq!(shown["split"], json!({"by": "body.lines", "max_parts": 1000, "messages": 1, "parts": 3, "failed": 0}));
    let metrics = http().get(server.http_url("/metrics")).send().await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"warren_split_parts_total{vhost="/",exchange="orders"} 3"#), "{metrics}");
    drop((ch, conn));

    // The parts were stored before the confirm: a restart finds each, headers and all.
    let server = server.restart().await;
    let (_conn, ch) = server.lapin_channel().await;
    let mut seen = Vec::new();
    for queue in ["north", "north", "south"] {
        let part = get(&ch, queue).await;
        let body: Value = serde_json::from_slice(&part.data).unwrap();
        assert_eq!(body["warehouse"], queue);
        assert_eq!(text(&part, "x-split-id").as_deref(), Some("order-42"));
        assert_eq!(int(&part, "x-split-count"), Some(3));
        assert_eq!(part.properties.correlation_id().as_ref().map(|c| c.as_str()), Some("c-42"));
        assert_eq!(part.properties.delivery_mode(), &Some(2));
        seen.push((int(&part, "x-split-index").unwrap(), body["sku"].as_str().unwrap().to_owned()));
    }
    seen.sort();
    assert_eq!(seen, vec![(0, "A-1".into()), (1, "B-7".into()), (2, "C-3".into())]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_cannot_be_split_is_dead_lettered_with_the_reason_or_nacked() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    declare_exchange(&ch, "failed", false, &[]).await;
    declare_exchange(&ch, "orders", false, &[("x-split", "body.lines"), ("x-dead-letter-exchange", "failed")]).await;
    declare_exchange(&ch, "bare", false, &[("x-split", "body.lines")]).await;
    let (lines, dlq) = (unique("lines"), unique("dlq"));
    q::declare(&ch, &lines).await;
    q::declare(&ch, &dlq).await;
    q::bind(&ch, &lines, "orders", "#").await;
    q::bind(&ch, &dlq, "failed", "#").await;

    for (body, why) in [(&b"<order/>"[..], "not JSON"), (br#"{"lines": 7}"#, "not an array"), (br#"{}"#, "nothing at")]
    {
        assert!(matches!(publish(&ch, "orders", body, Default::default()).await, Confirmation::Ack(None)));
        let dead = get(&ch, &dlq).await;
        assert_eq!(dead.data, body, "the original is dead-lettered whole");
        assert_eq!(death_reason(&dead).as_deref(), Some("split_failed"));
        assert!(text(&dead, "x-split-error").unwrap().contains(why), "{why}");
    }
    assert_eq!(q::counts(&ch, &lines).await.unwrap().0, 0);
    // An empty array has no parts: confirmed, nothing routed.
    assert!(matches!(publish(&ch, "orders", br#"{"lines": []}"#, Default::default()).await, Confirmation::Ack(None)));
    assert_eq!(q::counts(&ch, &lines).await.unwrap().0, 0);
    // Without a dead-letter exchange it is nacked.
    assert!(matches!(publish(&ch, "bare", b"nope", Default::default()).await, Confirmation::Nack(_)));

    // A bad x-split is refused at declaration with the reason.
    let ch2 = conn.create_channel().await.unwrap();
    let refused = within(ch2.exchange_declare(
        "bad-split".into(),
        lapin::ExchangeKind::Topic,
        Default::default(),
        args(&[("x-split", "headers.lines")]),
    ))
    .await;
    assert_code(refused, 406);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_part_is_translated_and_a_malformed_line_alone_is_dead_lettered() {
    let server = TestServer::start().await;
    let url = |name: &str| server.http_url(&format!("/api/transforms/%2F/{name}"));
    let line = json!({"program": r#"{body: {item: (.body.sku // error("line without sku")), count: .body.qty},
        routing_key: ("pick." + .body.warehouse)}"#});
    assert_eq!(send(http().put(url("to-pick")).json(&line)).await.0, StatusCode::CREATED);
    let per_line = json!({"program": ".body.lines[] | {body: ., routing_key: .warehouse}"});
    assert_eq!(send(http().put(url("per-line")).json(&per_line)).await.0, StatusCode::CREATED);

    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    declare_exchange(&ch, "failed", false, &[]).await;
    declare_exchange(
        &ch,
        "orders",
        false,
        &[("x-split", "body.lines"), ("x-transform", "to-pick"), ("x-dead-letter-exchange", "failed")],
    )
    .await;
    declare_exchange(&ch, "by-program", false, &[("x-split", "transform"), ("x-transform", "per-line")]).await;
    let (picks, dlq, by_program) = (unique("picks"), unique("dlq"), unique("by-program"));
    for (queue, exchange, key) in
        [(&picks, "orders", "pick.north"), (&dlq, "failed", "#"), (&by_program, "by-program", "north")]
    {
        q::declare(&ch, queue).await;
        q::bind(&ch, queue, exchange, key).await;
    }

    let order =
        br#"{"id": 9, "lines": [{"sku": "A-1", "qty": 2, "warehouse": "north"}, {"qty": 1, "warehouse": "north"},
        {"sku": "C-3", "qty": 5, "warehouse": "north"}]}"#;
    let props = BasicProperties::default().with_message_id("order-9".into());
    assert!(matches!(publish(&ch, "orders", order, props.clone()).await, Confirmation::Ack(None)));
    let mut picked = Vec::new();
    for _ in 0..2 {
        let part = get(&ch, &picks).await;
        assert_eq!(text(&part, "x-transform").as_deref(), Some("to-pick/1"));
        assert_eq!((text(&part, "x-split-id").as_deref(), int(&part, "x-split-count")), (Some("order-9"), Some(3)));
        picked.push((int(&part, "x-split-index").unwrap(), serde_json::from_slice::<Value>(&part.data).unwrap()));
    }
    picked.sort_by_key(|(i, _)| *i);
    assert_eq!(picked, vec![(0, json!({"item": "A-1", "count": 2})), (2, json!({"item": "C-3", "count": 5}))]);
    let dead = get(&ch, &dlq).await;
    assert_eq!(death_reason(&dead).as_deref(), Some("transform_failed"));
    assert!(text(&dead, "x-transform-error").unwrap().contains("line without sku"));
    assert_eq!(int(&dead, "x-split-index"), Some(1), "the malformed line, and only it");
    assert_eq!(serde_json::from_slice::<Value>(&dead.data).unwrap(), json!({"qty": 1, "warehouse": "north"}));

    // x-split: transform: the program's outputs are the parts.
    assert!(matches!(publish(&ch, "by-program", ORDER, props).await, Confirmation::Ack(None)));
    let mut indexes = Vec::new();
    for _ in 0..2 {
        let part = get(&ch, &by_program).await;
        assert_eq!((text(&part, "x-split-id").as_deref(), int(&part, "x-split-count")), (Some("order-9"), Some(3)));
        indexes.push(int(&part, "x-split-index").unwrap());
    }
    indexes.sort();
    assert_eq!(indexes, vec![0, 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tracked_split_message_succeeds_only_when_every_part_is_acked() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    declare_exchange(&ch, "orders", false, &[("x-split", "body.lines")]).await;
    let lines = unique("lines");
    q::declare(&ch, &lines).await;
    q::bind(&ch, &lines, "orders", "#").await;
    let publish_url = server.http_url("/api/vhosts/%2F/exchanges/orders/messages?routing_key=order.placed");
    let (code, accepted, _) =
        send(http().post(&publish_url).header("content-type", "application/json").body(ORDER.to_vec())).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{accepted}");
    let id = accepted["id"].as_str().unwrap().to_owned();
    let consumer_ch = conn.create_channel().await.unwrap();
    let mut consumer = q::consume(&consumer_ch, &lines, false).await;
    let deliveries = receive_n(&mut consumer, 3).await;
    within(deliveries[0].acker.ack(Default::default())).await.unwrap();
    within(deliveries[1].acker.ack(Default::default())).await.unwrap();
    let partway = status_until(&server, &id, |s| count_of(s, "acked") == 2).await;
    assert_eq!(partway["outcome"], "pending", "{partway}");
    assert_eq!(
        partway["events"][1],
        json!({"event": "split", "at_ms": partway["events"][1]["at_ms"], "exchange": "orders", "parts": 3})
    );
    within(deliveries[2].acker.ack(Default::default())).await.unwrap();
    let done = status_until(&server, &id, |s| s["finished"] == json!(true)).await;
    assert_eq!(done["outcome"], "succeeded", "{done}");
}

fn count_of(status: &Value, event: &str) -> usize {
    status["events"].as_array().unwrap().iter().filter(|e| e["event"] == event).count()
}

/// Long-polls the status of tracked message `id` until `done` holds for it.
async fn status_until(server: &TestServer, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let mut version = 0;
    loop {
        let url = server.http_url(&format!("/api/messages/{id}?wait=4&version={version}"));
        let (code, status, _) = send(http().get(url)).await;
        assert_eq!(code, StatusCode::OK, "{status}");
        if done(&status) {
            return status;
        }
        version = status["version"].as_u64().unwrap();
    }
}

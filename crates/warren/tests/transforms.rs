//! Transforms (Warren's own): jq programs managed over HTTP, run in worker processes of the real
//! binary, attached to an exchange (`x-transform`): each message is translated (and may become
//! several) before routing; one the program fails on, or that runs past its budget, is
//! dead-lettered with reason `transform_failed` and the error; the tracked status says which.

mod common;

use common::http::{http, send};
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Confirmation};
use reqwest::StatusCode;
use serde_json::json;

const TO_WAREHOUSE: &str = r#".body.order as $o | $o.lines[] | {
    body: {order: $o.id, sku: .sku, qty: .qty},
    routing_key: ("wh." + ($lookup.warehouses[.sku] // error("no warehouse for " + .sku))),
    properties: {type: "pick"}
}"#;

fn header_text(delivery: &lapin::message::Delivery, name: &str) -> Option<String> {
    match delivery.properties.headers().as_ref()?.inner().get(name)? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        _ => None,
    }
}

async fn declare_exchange(ch: &lapin::Channel, name: &str, kind: lapin::ExchangeKind, args: &[(&str, &str)]) {
    let mut table = FieldTable::default();
    for (k, v) in args {
        table.insert((*k).into(), AMQPValue::LongString(LongString::from(*v)));
    }
    within(ch.exchange_declare(name.into(), kind, Default::default(), table)).await.unwrap();
}

async fn publish(ch: &lapin::Channel, exchange: &str, body: &[u8]) -> Confirmation {
    let props = BasicProperties::default().with_delivery_mode(2).with_content_type("application/json".into());
    let confirm = within(ch.basic_publish(exchange.into(), "".into(), Default::default(), body, props)).await.unwrap();
    within(confirm).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exchange_translates_and_splits_its_messages_and_dead_letters_what_fails() {
    let server = TestServer::start().await;
    let url = |path: &str| server.http_url(&format!("/api/transforms/%2F/{path}"));
    let spec = json!({"program": TO_WAREHOUSE, "lookup": {"warehouses": {"A-1": "north", "B-7": "south"}}});
    assert_eq!(send(http().put(url("to-warehouse")).json(&spec)).await.0, StatusCode::CREATED);
    let (code, err, _) = send(http().put(url("broken")).json(&json!({"program": "{body: .body."}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(err["reason"].as_str().unwrap().contains("does not parse"), "{err}");
    let spin = json!({"program": "def f: f; f", "timeout_ms": 300});
    assert_eq!(send(http().put(url("spin")).json(&spin)).await.0, StatusCode::CREATED);

    // Tried on a sample first, nothing published.
    let sample = json!({"body": {"order": {"id": 7, "lines": [{"sku": "A-1", "qty": 2}]}}});
    let (code, tried, _) = send(http().post(url("to-warehouse/test")).json(&sample)).await;
    assert_eq!(code, StatusCode::OK, "{tried}");
    assert_eq!(tried["outputs"][0]["routing_key"], "wh.north");
    assert_eq!(tried["outputs"][0]["body"], json!({"order": 7, "sku": "A-1", "qty": 2}));
    let (code, why, _) = send(
        http().post(url("to-warehouse/test")).json(&json!({"body": {"order": {"id": 1, "lines": [{"sku": "Z"}]}}})),
    )
    .await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(why["reason"].as_str().unwrap().contains("no warehouse for Z"), "{why}");

    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    declare_exchange(&ch, "failed", lapin::ExchangeKind::Fanout, &[]).await;
    declare_exchange(
        &ch,
        "warehouses",
        lapin::ExchangeKind::Topic,
        &[("x-transform", "to-warehouse"), ("x-dead-letter-exchange", "failed")],
    )
    .await;
    declare_exchange(
        &ch,
        "spinning",
        lapin::ExchangeKind::Topic,
        &[("x-transform", "spin"), ("x-dead-letter-exchange", "failed")],
    )
    .await;
    declare_exchange(&ch, "nowhere", lapin::ExchangeKind::Topic, &[("x-transform", "to-warehouse")]).await;
    let (north, south, dlq) = (unique("north"), unique("south"), unique("failed"));
    for (q, exchange, key) in
        [(&north, "warehouses", "wh.north"), (&south, "warehouses", "wh.south"), (&dlq, "failed", "")]
    {
        q::declare(&ch, q).await;
        q::bind(&ch, q, exchange, key).await;
    }

    let order = br#"{"order": {"id": 42, "lines": [{"sku": "A-1", "qty": 2}, {"sku": "B-7", "qty": 1}]}}"#;
    assert!(matches!(publish(&ch, "warehouses", order).await, Confirmation::Ack(None)), "acked once both lines are in");
    let line = within(ch.basic_get(north.as_str().into(), BasicGetOptions { no_ack: true })).await.unwrap().unwrap();
    let line = line.delivery;
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&line.data).unwrap(),
        json!({"order": 42, "sku": "A-1", "qty": 2})
    );
    assert_eq!(line.properties.kind().as_ref().map(|k| k.as_str()), Some("pick"));
    assert_eq!(line.properties.delivery_mode(), &Some(2), "the original's properties stay");
    assert_eq!(header_text(&line, "x-transform").as_deref(), Some("to-warehouse/1"));
    assert_eq!(q::counts(&ch, &south).await.unwrap().0, 1);

    // The program fails on a line with no warehouse; a body that is not JSON; a program that spins.
    let bad_line = br#"{"order": {"id": 43, "lines": [{"sku": "Q-9", "qty": 1}]}}"#;
    assert!(matches!(publish(&ch, "warehouses", bad_line).await, Confirmation::Ack(None)), "dead-lettered: acked");
    assert!(matches!(publish(&ch, "warehouses", b"<order/>").await, Confirmation::Ack(None)));
    assert!(matches!(publish(&ch, "spinning", b"{}").await, Confirmation::Ack(None)));
    let mut errors = Vec::new();
    for _ in 0..3 {
        let dead = within(ch.basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })).await.unwrap().unwrap();
        let dead = dead.delivery;
        let Some(AMQPValue::FieldArray(deaths)) =
            dead.properties.headers().as_ref().and_then(|h| h.inner().get("x-death").cloned())
        else {
            panic!("no x-death")
        };
        let AMQPValue::FieldTable(death) = &deaths.as_slice()[0] else { panic!("x-death entry") };
        assert_eq!(death.inner().get("reason"), Some(&AMQPValue::LongString("transform_failed".into())));
        errors.push(header_text(&dead, "x-transform-error").unwrap());
    }
    assert!(errors[0].contains("no warehouse for Q-9"), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("not JSON")), "{errors:?}");
    assert!(errors.iter().any(|e| e.contains("300 ms budget")), "{errors:?}");
    assert_eq!(q::counts(&ch, &north).await.unwrap().0, 0, "nothing of a failed message was routed");
    // Without a dead-letter exchange, a failed persistent message is nacked.
    assert!(matches!(publish(&ch, "nowhere", bad_line).await, Confirmation::Nack(_)));

    // Over HTTP, tracked: the status shows what the transform made.
    let post = |exchange: &str, body: &'static str| {
        http()
            .post(server.http_url(&format!("/api/vhosts/%2F/exchanges/{exchange}/messages")))
            .header("content-type", "application/json")
            .body(body)
    };
    let (code, accepted, _) =
        send(post("warehouses", r#"{"order": {"id": 44, "lines": [{"sku": "B-7", "qty": 3}]}}"#)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{accepted}");
    let status_url = server.http_url(accepted["status_url"].as_str().unwrap());
    // The outputs are routed when the worker answers: poll the status until they are.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    let status = loop {
        let (_, status, _) = send(http().get(&status_url)).await;
        if status["events"].as_array().is_some_and(|e| e.iter().any(|e| e["event"] == "routed")) {
            break status;
        }
        assert!(tokio::time::Instant::now() < deadline, "the transformed message was never routed: {status}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    };
    assert!(
        status["events"].as_array().unwrap().iter().any(|e| e["event"] == "transformed" && e["outputs"] == 1),
        "{status}"
    );

    // Prometheus counts the runs and failures (one spin timed out).
    let metrics = http().get(server.http_url("/metrics")).send().await.unwrap().text().await.unwrap();
    let value = |name: &str| -> u64 {
        let line =
            metrics.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_else(|| panic!("{name}: {metrics}"));
        line.rsplit(' ').next().unwrap().parse().unwrap()
    };
    assert!(value("warren_transform_runs_total") >= 4, "{metrics}");
    assert!(value("warren_transform_timeouts_total") >= 1, "{metrics}");
    assert!(value("warren_transform_failures_total") >= 2, "{metrics}");
    // Each transform's own figures: two tries on samples, four messages (two of them failed).
    let (_, shown, _) = send(http().get(url("to-warehouse"))).await;
    assert_eq!(shown["figures"], json!({"runs": 6, "outputs": 4, "failures": 3}), "{shown}");
    assert!(metrics.contains(r#"warren_transform_messages_total{vhost="/",transform="to-warehouse"} 6"#), "{metrics}");

    // Transforms survive a restart, and travel in the definitions.
    let (_, exported, _) = send(http().get(server.http_url("/api/definitions"))).await;
    assert_eq!(exported["transforms"].as_array().map(Vec::len), Some(2), "{exported}");
    drop(ch);
    drop(conn);
    let server = server.restart().await;
    let (code, back, _) = send(http().get(server.http_url("/api/transforms/%2F/to-warehouse"))).await;
    assert_eq!((code, back["version"].clone()), (StatusCode::OK, json!(1)), "{back}");
    assert_eq!(back["lookup"]["warehouses"]["B-7"], "south");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_subscription_pushes_what_its_transform_makes_and_dead_letters_failures() {
    use common::http::{verified, webhook_receiver, SECRET};
    let server = TestServer::start().await;
    let spec = json!({"program": "if .body.lines then .body.lines[] | {body: {sku: .}} else error(\"no lines\") end"});
    let url = server.http_url("/api/transforms/%2F/per-line");
    assert_eq!(send(http().put(url).json(&spec)).await.0, StatusCode::CREATED);
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let (queue, dlq) = (unique("lines"), unique("failed-lines"));
    q::declare(&ch, &dlq).await;
    let mut args = FieldTable::default();
    args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
    args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(LongString::from(dlq.as_str())));
    within(ch.queue_declare(queue.as_str().into(), Default::default(), args)).await.unwrap();
    let (hook, mut calls) = webhook_receiver(vec![], None).await;
    let subscriptions = server.http_url(&format!("/api/vhosts/%2F/queues/{queue}/subscriptions"));
    let (code, err, _) = send(http().post(&subscriptions).json(&json!({"url": hook, "transform": "nope"}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{err}");
    let (code, view, _) = send(
        http()
            .post(&subscriptions)
            .json(&json!({"url": hook, "secret": SECRET, "transform": "per-line", "max_in_flight": 1})),
    )
    .await;
    assert_eq!((code, view["transform"].as_str()), (StatusCode::CREATED, Some("per-line")), "{view}");

    q::publish(&ch, "", &queue, br#"{"lines": ["A-1", "B-7"]}"#).await;
    let (first_id, first) = verified(&within(calls.recv()).await.unwrap());
    let (second_id, second) = verified(&within(calls.recv()).await.unwrap());
    assert_eq!((first["body"].as_str(), second["body"].as_str()), (Some(r#"{"sku":"A-1"}"#), Some(r#"{"sku":"B-7"}"#)));
    assert_ne!(first_id, second_id, "each output has its own webhook id");
    q::publish(&ch, "", &queue, br#"{"no": "lines"}"#).await;
    // Dead-lettered once the worker has answered: wait for it, within the deadline.
    let dead = within(async {
        loop {
            if let Some(got) = ch.basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true }).await.unwrap() {
                break got.delivery;
            }
            tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        }
    })
    .await;
    let Some(AMQPValue::FieldArray(deaths)) =
        dead.properties.headers().as_ref().and_then(|h| h.inner().get("x-death").cloned())
    else {
        panic!("no x-death")
    };
    let AMQPValue::FieldTable(death) = &deaths.as_slice()[0] else { panic!("x-death entry") };
    assert_eq!(death.inner().get("reason"), Some(&AMQPValue::LongString("transform_failed".into())));
    let (_, shown, _) = send(http().get(format!("{subscriptions}/{}", view["id"].as_str().unwrap()))).await;
    assert!(shown["last_failure"]["error"].as_str().unwrap().contains("no lines"), "{shown}");
    assert_eq!(shown["succeeded"], 1, "{shown}");
}

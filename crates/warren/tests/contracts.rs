//! Contracts in the publish pipeline, over AMQP and HTTP: a message a contract covers must pass
//! its latest schema version; one that passes carries `x-contract: name/version`, one that does
//! not is refused (a publisher-confirm nack, a `basic.return` with the violation when mandatory,
//! HTTP 422 with the violations) and reaches no queue, or dead-lettered with reason `contract`
//! and its violations. Contracts are managed over HTTP, versioned, durable and exported.

mod common;

use common::http::{http, send};
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::BasicProperties;
use lapin::Confirmation;
use reqwest::StatusCode;
use serde_json::json;
use warren_core::contract::{Compatibility, Contract, OnViolation, Scope};

fn order_contract(on_violation: OnViolation) -> Contract {
    let scope = Scope {
        exchange: "orders".into(),
        routing_key: Some("orders.#".into()),
        message_type: None,
        content_type: Some("application/json".into()),
        max_body_bytes: Some(4096),
    };
    let schema = json!({"type": "object", "required": ["id"],
                        "properties": {"id": {"type": "integer"}, "total": {"type": "number", "minimum": 0}}});
    Contract::new("order", "/", scope, Compatibility::Backward, on_violation, schema).unwrap()
}

fn payments_scope() -> Scope {
    Scope {
        exchange: "payments".into(),
        routing_key: None,
        message_type: None,
        content_type: None,
        max_body_bytes: None,
    }
}

async fn publish(ch: &lapin::Channel, rk: &str, body: &[u8], mandatory: bool) -> Confirmation {
    let props = BasicProperties::default().with_content_type("application/json".into());
    let opts = BasicPublishOptions { mandatory, ..Default::default() };
    let confirm = within(ch.basic_publish("orders".into(), rk.into(), opts, body, props)).await.unwrap();
    within(confirm).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_breaking_their_contract_are_refused_over_amqp_and_http() {
    let server = TestServer::start().await;
    assert!(server.broker().put_contract(order_contract(OnViolation::Reject)).unwrap());
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    within(ch.exchange_declare("orders".into(), lapin::ExchangeKind::Topic, Default::default(), FieldTable::default()))
        .await
        .unwrap();
    let q = unique("orders");
    q::declare(&ch, &q).await;
    q::bind(&ch, &q, "orders", "#").await;

    assert!(matches!(publish(&ch, "orders.new", br#"{"id": 1, "total": 5}"#, false).await, Confirmation::Ack(None)));
    assert!(matches!(publish(&ch, "orders.new", br#"{"total": -1}"#, false).await, Confirmation::Nack(None)));
    match publish(&ch, "orders.new", br#"{"id": "x"}"#, true).await {
        Confirmation::Nack(Some(ret)) => {
            assert_eq!(ret.reply_code, 312);
            let text = ret.reply_text.as_str();
            assert!(text.starts_with("CONTRACT_VIOLATION - contract 'order' v1: /id"), "{text}");
        }
        other => panic!("expected a nack with the message returned, got {other:?}"),
    }
    // Outside the contract's routing-key pattern nothing is checked.
    assert!(matches!(publish(&ch, "audit.new", b"anything", false).await, Confirmation::Ack(None)));

    let got = within(ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })).await.unwrap().unwrap();
    assert_eq!(got.delivery.data, br#"{"id": 1, "total": 5}"#);
    let header = got.delivery.properties.headers().as_ref().and_then(|h| h.inner().get("x-contract").cloned());
    assert_eq!(header, Some(AMQPValue::LongString("order/1".into())), "the version it passed");
    let unchecked = within(ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })).await.unwrap().unwrap();
    assert_eq!(unchecked.delivery.data, b"anything");
    assert_eq!(q::counts(&ch, &q).await.unwrap().0, 0, "nothing refused reached the queue");

    let url = |rk: &str| server.http_url(&format!("/api/vhosts/%2F/exchanges/orders/messages?routing_key={rk}"));
    let json_body =
        |b: &'static str| http().post(url("orders.http")).header("content-type", "application/json").body(b);
    let (code, err, _) = send(json_body(r#"{"total": -3}"#)).await;
    assert_eq!(code, StatusCode::UNPROCESSABLE_ENTITY, "{err}");
    assert_eq!((err["contract"].as_str(), err["version"].as_u64()), (Some("order"), Some(1)));
    let pointers: Vec<&str> =
        err["violations"].as_array().unwrap().iter().map(|v| v["pointer"].as_str().unwrap()).collect();
    assert!(pointers.contains(&"/total") && pointers.contains(&""), "{err}");
    let (code, accepted, _) = send(json_body(r#"{"id": 9}"#)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{accepted}");

    assert!(server.broker().delete_contract("/", "order"));
    assert!(matches!(publish(&ch, "orders.new", br#"{"total": -1}"#, false).await, Confirmation::Ack(None)));
}

fn header<'a>(delivery: &'a lapin::message::Delivery, name: &str) -> Option<&'a AMQPValue> {
    delivery.properties.headers().as_ref().and_then(|h| h.inner().get(name))
}

fn text(value: Option<&AMQPValue>) -> String {
    match value {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("not a long string: {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_breaking_a_dead_letter_contract_reach_its_dead_letter_queue_with_the_reason() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    for (name, kind) in [("orders", lapin::ExchangeKind::Topic), ("invalid", lapin::ExchangeKind::Fanout)] {
        within(ch.exchange_declare(name.into(), kind, durable, FieldTable::default())).await.unwrap();
    }
    let (work, dlq) = (unique("orders"), unique("invalid"));
    for (queue, exchange) in [(&work, "orders"), (&dlq, "invalid")] {
        let opts = QueueDeclareOptions { durable: true, ..Default::default() };
        within(ch.queue_declare(queue.as_str().into(), opts, FieldTable::default())).await.unwrap();
        q::bind(&ch, queue, exchange, "#").await;
    }
    let url = |path: &str| server.http_url(&format!("/api/contracts/%2F/order{path}"));
    let mut spec = json!({"exchange": "orders", "routing_key": "orders.#", "content_type": "application/json",
                          "on_violation": "reject", "dead_letter_exchange": "invalid",
                          "schema": {"type": "object", "required": ["id"],
                                     "properties": {"total": {"type": "number", "minimum": 0}}}});
    let (code, err, _) = send(http().put(url("")).json(&spec)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "a target needs the dead-letter action: {err}");
    spec["on_violation"] = json!("dead-letter");
    assert_eq!(send(http().put(url("")).json(&spec)).await.0, StatusCode::CREATED);
    let (_, shown, _) = send(http().get(url(""))).await;
    assert_eq!(
        (shown["on_violation"].as_str(), shown["dead_letter_exchange"].as_str()),
        (Some("dead-letter"), Some("invalid"))
    );

    // Over AMQP, persistent, with confirms: acked once the dead-letter queue has it.
    let props = BasicProperties::default().with_content_type("application/json".into()).with_delivery_mode(2);
    let opts = BasicPublishOptions { mandatory: true, ..Default::default() };
    let confirm =
        within(ch.basic_publish("orders".into(), "orders.eu".into(), opts, br#"{"total": -1}"#, props)).await.unwrap();
    assert!(matches!(within(confirm).await.unwrap(), Confirmation::Ack(None)), "dead-lettered, not returned");
    assert!(matches!(publish(&ch, "orders.eu", br#"{"id": 2}"#, false).await, Confirmation::Ack(None)));
    assert_eq!(q::counts(&ch, &work).await.unwrap().0, 1, "only the valid one reached the queue");
    let dead = within(ch.basic_get(dlq.as_str().into(), BasicGetOptions { no_ack: true })).await.unwrap().unwrap();
    let dead = dead.delivery;
    assert_eq!(dead.data, br#"{"total": -1}"#);
    assert_eq!(dead.properties.delivery_mode(), &Some(2));
    assert_eq!(text(header(&dead, "x-contract")), "order/1");
    assert_eq!(text(header(&dead, "x-first-death-reason")), "contract");
    assert!(header(&dead, "x-first-death-queue").is_none(), "it never reached a queue");
    let Some(AMQPValue::FieldArray(violations)) = header(&dead, "x-contract-violations") else {
        panic!("no violations: {:?}", dead.properties.headers())
    };
    let places: Vec<(String, String)> = violations
        .as_slice()
        .iter()
        .map(|v| match v {
            AMQPValue::FieldTable(t) => (text(t.inner().get("pointer")), text(t.inner().get("message"))),
            other => panic!("not a table: {other:?}"),
        })
        .collect();
    assert!(places.iter().any(|(p, m)| p.is_empty() && m.contains(r#""id" is a required property"#)), "{places:?}");
    assert!(places.iter().any(|(p, _)| p == "/total"), "{places:?}");
    let Some(AMQPValue::FieldArray(deaths)) = header(&dead, "x-death") else { panic!("no x-death") };
    let AMQPValue::FieldTable(death) = &deaths.as_slice()[0] else { panic!("not a table") };
    assert_eq!(text(death.inner().get("reason")), "contract");
    assert_eq!(text(death.inner().get("exchange")), "orders");
    assert!(death.inner().get("queue").is_none());

    // Over HTTP: 202, and the status shows the violations and where the message went.
    let publish_url = server.http_url("/api/vhosts/%2F/exchanges/orders/messages?routing_key=orders.http");
    let post =
        |body: &'static str| http().post(publish_url.clone()).header("content-type", "application/json").body(body);
    let (code, accepted, _) = send(post(r#"{"total": "lots"}"#)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{accepted}");
    assert_eq!(
        (accepted["dead_lettered"]["reason"].as_str(), accepted["dead_lettered"]["contract"].as_str()),
        (Some("contract"), Some("order"))
    );
    let (_, status, _) = send(http().get(server.http_url(accepted["status_url"].as_str().unwrap()))).await;
    assert_eq!((status["outcome"].as_str(), status["finished"].as_bool()), (Some("failed"), Some(true)), "{status}");
    let events = status["events"].as_array().unwrap();
    let broke = events.iter().find(|e| e["event"] == "broke_contract").expect("broke_contract");
    assert_eq!(broke["contract"], "order/1");
    assert!(broke["violations"].as_array().unwrap().iter().any(|v| v["pointer"] == "/total"), "{status}");
    let dead_lettered = events.iter().find(|e| e["event"] == "dead_lettered").expect("dead_lettered");
    assert_eq!(
        (dead_lettered["reason"].as_str(), dead_lettered["exchange"].as_str()),
        (Some("contract"), Some("invalid"))
    );
    assert_eq!(dead_lettered["queues"], json!([dlq]));
    assert!(dead_lettered.get("queue").is_none(), "{status}");

    // Still broken, a dead letter stays where it is; fixed by a new version, it goes back
    // through its exchange and passes.
    let move_url = server.http_url(&format!("/api/queues/%2F/{dlq}/move"));
    let (_, kept, _) = send(http().post(move_url.clone()).json(&json!({"to": "source"}))).await;
    assert_eq!((kept["moved"].as_u64(), kept["not_moved"].as_u64()), (Some(0), Some(1)), "{kept}");
    let looser = json!({"schema": {"type": "object", "properties": {"total": {}}}});
    assert_eq!(send(http().post(url("/versions")).json(&looser)).await.0, StatusCode::CREATED);
    let (code, moved, _) = send(http().post(move_url).json(&json!({"to": "source", "reason": "contract"}))).await;
    assert_eq!(
        (code, moved["moved"].as_u64()),
        (StatusCode::OK, Some(1)),
        "the HTTP one (the other was taken): {moved}"
    );
    let _valid = within(ch.basic_get(work.as_str().into(), BasicGetOptions { no_ack: true })).await.unwrap().unwrap();
    let replayed = within(ch.basic_get(work.as_str().into(), BasicGetOptions { no_ack: true })).await.unwrap().unwrap();
    assert_eq!(
        (replayed.delivery.data.as_slice(), replayed.delivery.routing_key.as_str()),
        (br#"{"total": "lots"}"#.as_slice(), "orders.http")
    );
    assert_eq!(text(header(&replayed.delivery, "x-contract")), "order/2", "checked again, against v2");
    assert!(header(&replayed.delivery, "x-contract-violations").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_dead_letters_through_its_exchanges_argument_and_refuses_when_there_is_nowhere_to_go() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let mut args = FieldTable::default();
    args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString("".into()));
    args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString("broken-payments".into()));
    within(ch.exchange_declare("payments".into(), lapin::ExchangeKind::Direct, Default::default(), args))
        .await
        .unwrap();
    let scope = payments_scope();
    let schema = json!({"properties": {"id": {"type": "integer"}}});
    let on_violation = OnViolation::parse("dead-letter", None, None).unwrap();
    let contract = Contract::new("payment", "/", scope, Compatibility::None, on_violation, schema).unwrap();
    server.broker().put_contract(contract).unwrap();
    let body = br#"{"id": "not a number"}"#;
    let props = || BasicProperties::default().with_content_type("application/json".into());
    let send_one = |mandatory: bool| {
        let opts = BasicPublishOptions { mandatory, ..Default::default() };
        ch.basic_publish("payments".into(), "pay".into(), opts, body, props())
    };
    // No queue named by the dead-letter routing key yet: refused, as reject would.
    match within(within(send_one(true)).await.unwrap()).await.unwrap() {
        Confirmation::Nack(Some(ret)) => assert!(ret.reply_text.as_str().starts_with("CONTRACT_VIOLATION"), "{ret:?}"),
        other => panic!("expected the message back with a nack, got {other:?}"),
    }
    q::declare(&ch, "broken-payments").await;
    assert!(matches!(within(within(send_one(false)).await.unwrap()).await.unwrap(), Confirmation::Ack(None)));
    let dead = within(ch.basic_get("broken-payments".into(), BasicGetOptions { no_ack: true })).await.unwrap().unwrap();
    assert_eq!(dead.delivery.data, body);
    assert_eq!(text(header(&dead.delivery, "x-first-death-reason")), "contract");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contracts_survive_a_restart() {
    let server = TestServer::start().await;
    let contract = order_contract(OnViolation::Reject);
    let to = OnViolation::parse("dead-letter", Some("dlx".into()), Some("bad".into())).unwrap();
    let schema = json!({"required": ["id"]});
    let dead_letter = Contract::new("payment", "/", payments_scope(), Compatibility::Full, to, schema).unwrap();
    server.broker().put_contract(dead_letter.clone()).unwrap();
    let v2 = contract.with_new_version(json!({"type": "object", "required": ["id"]})).unwrap();
    assert!(server.broker().put_contract(contract).unwrap(), "new");
    server.broker().put_contract(v2).unwrap();
    let server = server.restart().await;
    let stored = server.broker().contracts();
    let order = stored.get("/", "order").expect("the contract came back");
    assert_eq!(order.versions().iter().map(|v| v.number).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(stored.get("/", "payment").unwrap().on_violation, dead_letter.on_violation, "with its target");
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    within(ch.exchange_declare("orders".into(), lapin::ExchangeKind::Topic, Default::default(), FieldTable::default()))
        .await
        .unwrap();
    assert!(matches!(publish(&ch, "orders.new", br#"{"total": -1}"#, false).await, Confirmation::Nack(None)));
    assert!(
        matches!(publish(&ch, "orders.new", br#"{"id": 1, "total": -1}"#, false).await, Confirmation::Ack(None)),
        "v2 dropped the minimum"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contracts_are_managed_over_http_and_versions_must_stay_compatible() {
    let server = TestServer::start().await;
    let url = |path: &str| server.http_url(&format!("/api/contracts/%2F/order{path}"));
    let spec = json!({"exchange": "orders", "routing_key": "orders.#", "content_type": "application/json",
                      "compatibility": "backward",
                      "schema": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}}});
    assert_eq!(send(http().put(url("")).json(&spec)).await.0, StatusCode::CREATED);
    assert_eq!(send(http().put(url("")).json(&spec)).await.0, StatusCode::NO_CONTENT, "the same again");
    let mut other = spec.clone();
    other["exchange"] = json!("elsewhere");
    assert_eq!(send(http().put(url("")).json(&other)).await.0, StatusCode::CONFLICT);
    let mut bad = spec.clone();
    bad["schema"] = json!({"type": 12});
    let (code, err, _) = send(http().put(server.http_url("/api/contracts/%2F/bad")).json(&bad)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(err["reason"].as_str().unwrap().contains("JSON Schema"), "{err}");

    let stricter = json!({"schema": {"type": "object", "required": ["id", "total"]}});
    let (code, err, _) = send(http().post(url("/versions")).json(&stricter)).await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert!(err["reason"].as_str().unwrap().contains("'total' is now required"), "{err}");
    let looser = json!({"schema": {"type": "object", "required": ["id"]}});
    let (code, view, _) = send(http().post(url("/versions")).json(&looser)).await;
    assert_eq!((code, view["version"].clone()), (StatusCode::CREATED, json!(2)), "{view}");
    let (_, listed, _) = send(http().get(server.http_url("/api/contracts"))).await;
    assert_eq!(listed[0]["name"], "order");
    assert_eq!(listed[0]["versions"].as_array().unwrap().len(), 2);

    let exchange = server.http_url("/api/exchanges/%2F/orders");
    assert_eq!(send(http().put(exchange).json(&json!({"type": "topic"}))).await.0, StatusCode::CREATED);
    let publish = || {
        http()
            .post(server.http_url("/api/vhosts/%2F/exchanges/orders/messages?routing_key=orders.new"))
            .header("content-type", "application/json")
    };
    let (code, refused, _) = send(publish().body("{}")).await;
    assert_eq!((code, refused["version"].clone()), (StatusCode::UNPROCESSABLE_ENTITY, json!(2)), "{refused}");
    assert_eq!(send(publish().body(r#"{"id": "any type now"}"#)).await.0, StatusCode::ACCEPTED);
    // Contracts travel in the definitions, with their versions.
    let (_, exported, _) = send(http().get(server.http_url("/api/definitions"))).await;
    assert_eq!(exported["contracts"][0]["versions"].as_array().map(Vec::len), Some(2), "{exported}");
    assert_eq!(send(http().delete(url(""))).await.0, StatusCode::NO_CONTENT);
    assert_eq!(send(http().get(url(""))).await.0, StatusCode::NOT_FOUND);
    let (code, err, _) = send(http().post(server.http_url("/api/definitions")).json(&exported)).await;
    assert_eq!(code, StatusCode::NO_CONTENT, "{err}");
    let (_, back, _) = send(http().get(url(""))).await;
    assert_eq!((back["version"].clone(), back["exchange"].clone()), (json!(2), json!("orders")));
}

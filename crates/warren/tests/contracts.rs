//! Contracts in the publish pipeline, over AMQP and HTTP: a message a contract covers must pass
//! its latest schema version; one that passes carries `x-contract: name/version`, one that does
//! not is refused (a publisher-confirm nack, a `basic.return` with the violation when mandatory,
//! HTTP 422 with the violations) and reaches no queue. (Contracts are created through the broker
//! here; their management API is the next step of issue 17.)

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

    // The dead-letter action is refused until it is built, rather than acting as reject.
    let mut dead_letter = order_contract(OnViolation::DeadLetter);
    dead_letter.name = "other".into();
    assert_eq!(server.broker().put_contract(dead_letter).unwrap_err().code, 540);
    assert!(server.broker().delete_contract("/", "order"));
    assert!(matches!(publish(&ch, "orders.new", br#"{"total": -1}"#, false).await, Confirmation::Ack(None)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn contracts_survive_a_restart() {
    let server = TestServer::start().await;
    let contract = order_contract(OnViolation::Reject);
    let v2 = contract.with_new_version(json!({"type": "object", "required": ["id"]})).unwrap();
    assert!(server.broker().put_contract(contract).unwrap(), "new");
    server.broker().put_contract(v2).unwrap();
    let server = server.restart().await;
    let stored = server.broker().contracts();
    let order = stored.get("/", "order").expect("the contract came back");
    assert_eq!(order.versions().iter().map(|v| v.number).collect::<Vec<_>>(), [1, 2]);
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

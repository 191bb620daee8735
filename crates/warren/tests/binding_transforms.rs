//! Transforms on bindings (Warren's own): a queue bound with `x-transform` gets that
//! transform's shape of each message while other bindings of the same exchange get the
//! message as it was published; all copies are stored together and confirmed once. A copy
//! whose transform fails is dead-lettered through its queue (reason `transform_failed`), the
//! others are delivered. The binding is durable, unbinds with its arguments and goes with its
//! queue.

mod common;

use common::headers::{header, text_args as args};
use common::http::{http, send};
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Confirmation};
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn get(ch: &lapin::Channel, queue: &str) -> Option<lapin::message::Delivery> {
    within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: true })).await.unwrap().map(|m| m.delivery)
}

async fn publish(ch: &lapin::Channel, body: Value) -> Confirmation {
    let props = BasicProperties::default().with_delivery_mode(2);
    let body = serde_json::to_vec(&body).unwrap();
    let confirm = within(ch.basic_publish("events".into(), "order.placed".into(), Default::default(), &body, props))
        .await
        .unwrap();
    within(confirm).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_binding_gets_its_own_shape_of_one_event() {
    let server = TestServer::start().await;
    let url = |name: &str| server.http_url(&format!("/api/transforms/%2F/{name}"));
    let billing = json!({"program": "{body: {invoice_for: .body.customer, amount: .body.total}}"});
    assert_eq!(send(http().put(url("billing")).json(&billing)).await.0, StatusCode::CREATED);
    let shipping = json!({"program": "{body: {ship_to: (.body.address // error(\"no address\"))}}"});
    assert_eq!(send(http().put(url("shipping")).json(&shipping)).await.0, StatusCode::CREATED);

    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    within(ch.exchange_declare("events".into(), lapin::ExchangeKind::Topic, durable, FieldTable::default()))
        .await
        .unwrap();
    let opts = QueueDeclareOptions { durable: true, ..Default::default() };
    for queue in ["audit", "billing", "shipping-failed"] {
        within(ch.queue_declare(queue.into(), opts, FieldTable::default())).await.unwrap();
    }
    let to_failed = args(&[("x-dead-letter-exchange", ""), ("x-dead-letter-routing-key", "shipping-failed")]);
    within(ch.queue_declare("shipping".into(), opts, to_failed)).await.unwrap();
    q::bind(&ch, "audit", "events", "order.*").await;
    q::bind_args(&ch, "billing", "events", "order.*", args(&[("x-transform", "billing")])).await;
    q::bind_args(&ch, "shipping", "events", "order.*", args(&[("x-transform", "shipping")])).await;
    // A transform on a binding to an exchange is refused.
    let ch2 = conn.create_channel().await.unwrap();
    let refused = within(ch2.exchange_bind(
        "amq.fanout".into(),
        "events".into(),
        "#".into(),
        Default::default(),
        args(&[("x-transform", "billing")]),
    ))
    .await;
    assert_code(refused, 406);

    let order = json!({"customer": "c-9", "total": 42, "address": "1 Main St"});
    assert!(matches!(publish(&ch, order.clone()).await, Confirmation::Ack(None)));
    let audit = get(&ch, "audit").await.expect("the plain copy");
    assert_eq!(serde_json::from_slice::<Value>(&audit.data).unwrap(), order);
    let bill = get(&ch, "billing").await.expect("billing's shape");
    assert_eq!(serde_json::from_slice::<Value>(&bill.data).unwrap(), json!({"invoice_for": "c-9", "amount": 42}));
    assert_eq!(header(&bill, "x-transform"), Some(AMQPValue::LongString("billing/1".into())));
    assert_eq!(bill.properties.delivery_mode(), &Some(2));
    let ship = get(&ch, "shipping").await.expect("shipping's shape");
    assert_eq!(serde_json::from_slice::<Value>(&ship.data).unwrap(), json!({"ship_to": "1 Main St"}));

    // Shipping's transform fails on an order without an address: that copy alone is dead-lettered.
    let no_address = json!({"customer": "c-1", "total": 7});
    assert!(matches!(publish(&ch, no_address.clone()).await, Confirmation::Ack(None)));
    assert!(get(&ch, "audit").await.is_some() && get(&ch, "billing").await.is_some());
    assert!(get(&ch, "shipping").await.is_none());
    let failed = get(&ch, "shipping-failed").await.expect("the failed copy");
    assert_eq!(serde_json::from_slice::<Value>(&failed.data).unwrap(), no_address);
    let Some(AMQPValue::FieldArray(deaths)) = header(&failed, "x-death") else { panic!("no x-death") };
    let AMQPValue::FieldTable(death) = &deaths.as_slice()[0] else { panic!("x-death entry") };
    assert_eq!(death.inner().get("reason"), Some(&AMQPValue::LongString("transform_failed".into())));
    assert_eq!(death.inner().get("queue"), Some(&AMQPValue::LongString("shipping".into())));
    let Some(AMQPValue::LongString(error)) = header(&failed, "x-transform-error") else { panic!("no error") };
    assert!(error.to_string().contains("no address"), "{error}");

    // The binding survives a restart, listed with its argument; unbinding needs the argument.
    drop((ch, ch2, conn));
    let server = server.restart().await;
    let (_conn, ch) = server.lapin_channel().await;
    let ch = {
        within(ch.confirm_select(Default::default())).await.unwrap();
        ch
    };
    assert!(matches!(publish(&ch, order.clone()).await, Confirmation::Ack(None)));
    let bill = get(&ch, "billing").await.expect("billing's shape after the restart");
    assert_eq!(serde_json::from_slice::<Value>(&bill.data).unwrap(), json!({"invoice_for": "c-9", "amount": 42}));
    let (_, bindings, _) = send(http().get(server.http_url("/api/queues/%2F/billing/bindings"))).await;
    let bound = bindings.as_array().unwrap().iter().find(|b| b["source"] == "events").expect("listed");
    assert_eq!(bound["arguments"]["x-transform"], "billing");
    within(ch.queue_unbind("billing".into(), "events".into(), "order.*".into(), FieldTable::default())).await.unwrap();
    assert!(matches!(publish(&ch, order.clone()).await, Confirmation::Ack(None)));
    assert!(get(&ch, "billing").await.is_some(), "an unbind without the argument is another binding");
    within(ch.queue_unbind("billing".into(), "events".into(), "order.*".into(), args(&[("x-transform", "billing")])))
        .await
        .unwrap();
    // Deleting the queue takes its transformed binding too.
    within(ch.queue_delete("shipping".into(), Default::default())).await.unwrap();
    assert!(matches!(publish(&ch, order).await, Confirmation::Ack(None)));
    assert!(get(&ch, "billing").await.is_none());
    let (_, bindings, _) = send(http().get(server.http_url("/api/exchanges/%2F/events/bindings/source"))).await;
    assert_eq!(bindings.as_array().unwrap().len(), 1, "only audit's: {bindings}");
}

//! The `x-delayed-message` exchange type: declaration rules, messages held for their `x-delay`
//! (released in due order, on a manual clock), routing by the `x-delayed-type`, persistence of
//! waiting messages across a restart, and their removal with the exchange.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, ExchangeKind};

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn delayed_type(kind: &str) -> FieldTable {
    table(&[("x-delayed-type", AMQPValue::LongString(LongString::from(kind)))])
}

fn delay(ms: i64, persistent: bool) -> BasicProperties {
    let props = BasicProperties::default().with_headers(table(&[("x-delay", AMQPValue::LongLongInt(ms))]));
    if persistent {
        props.with_delivery_mode(2)
    } else {
        props
    }
}

async fn confirm_channel(conn: &lapin::Connection) -> Channel {
    let ch = within(conn.create_channel()).await.unwrap();
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    ch
}

async fn declare_delayed(ch: &Channel, name: &str, durable: bool, kind: &str) -> Result<(), lapin::Error> {
    let opts = ExchangeDeclareOptions { durable, ..Default::default() };
    within(ch.exchange_declare(name.into(), ExchangeKind::Custom("x-delayed-message".into()), opts, delayed_type(kind)))
        .await
}

async fn publish(ch: &Channel, exchange: &str, rk: &str, body: &[u8], props: BasicProperties) {
    let pending = within(ch.basic_publish(exchange.into(), rk.into(), BasicPublishOptions::default(), body, props))
        .await
        .unwrap();
    assert!(within(pending).await.unwrap().is_ack());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declaring_needs_an_existing_delayed_type() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = within(conn.create_channel()).await.unwrap();
    let name = unique("delayed");
    let missing = within(ch.exchange_declare(
        name.as_str().into(),
        ExchangeKind::Custom("x-delayed-message".into()),
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    ))
    .await;
    assert_code(missing, 406);
    let ch = within(conn.create_channel()).await.unwrap();
    assert_code(declare_delayed(&ch, &name, false, "nope").await, 406);
    let ch = within(conn.create_channel()).await.unwrap();
    declare_delayed(&ch, &name, false, "topic").await.unwrap();
    declare_delayed(&ch, &name, false, "topic").await.expect("the same declaration again");
    let as_topic =
        within(ch.exchange_declare(name.as_str().into(), ExchangeKind::Topic, Default::default(), Default::default()))
            .await;
    assert_code(as_topic, 406);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_wait_for_their_delay_and_come_out_in_due_order() {
    let server = TestServer::start_manual_clock(|_| {}).await;
    let conn = server.lapin().await;
    let ch = confirm_channel(&conn).await;
    let (exchange, queue) = (unique("later"), unique("later-q"));
    declare_delayed(&ch, &exchange, false, "topic").await.unwrap();
    q::declare(&ch, &queue).await;
    q::bind(&ch, &queue, &exchange, "jobs.#").await;
    publish(&ch, &exchange, "jobs.slow", b"slow", delay(1000, false)).await;
    publish(&ch, &exchange, "jobs.fast", b"fast", delay(200, false)).await;
    publish(&ch, &exchange, "jobs.now", b"now", BasicProperties::default()).await;
    publish(&ch, &exchange, "other", b"unrouted", delay(100, false)).await;
    assert_eq!(q::drain(&ch, &queue).await, vec![b"now".to_vec()], "no x-delay: routed at once");
    server.advance_ms(199);
    assert!(q::drain(&ch, &queue).await.is_empty());
    server.advance_ms(1);
    assert_eq!(q::drain(&ch, &queue).await, vec![b"fast".to_vec()]);
    server.advance_ms(800);
    assert_eq!(q::drain(&ch, &queue).await, vec![b"slow".to_vec()], "routed by the topic binding at its time");
    let vhost = server.broker().vhost("/").unwrap();
    let held = vhost.exchange(&exchange).unwrap();
    assert!(held.delayed.as_ref().unwrap().is_empty(), "the unroutable one was dropped when due");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_delayed_messages_survive_a_restart_and_go_with_their_exchange() {
    let server = TestServer::start_manual_clock(|_| {}).await;
    let (exchange, queue, doomed) = (unique("later"), unique("later-q"), unique("doomed"));
    {
        let conn = server.lapin().await;
        let ch = confirm_channel(&conn).await;
        declare_delayed(&ch, &exchange, true, "direct").await.unwrap();
        declare_delayed(&ch, &doomed, true, "direct").await.unwrap();
        let durable = QueueDeclareOptions { durable: true, ..Default::default() };
        within(ch.queue_declare(queue.as_str().into(), durable, FieldTable::default())).await.unwrap();
        q::bind(&ch, &queue, &exchange, "k").await;
        q::bind(&ch, &queue, &doomed, "k").await;
        publish(&ch, &exchange, "k", b"kept", delay(60_000, true)).await;
        publish(&ch, &doomed, "k", b"dropped", delay(60_000, true)).await;
        within(ch.exchange_delete(doomed.as_str().into(), ExchangeDeleteOptions::default())).await.unwrap();
    }
    let server = server.restart().await;
    assert_eq!(server.restored().messages, 1, "only the live exchange's message comes back");
    let conn = server.lapin().await;
    let ch = confirm_channel(&conn).await;
    assert!(q::drain(&ch, &queue).await.is_empty(), "still waiting after the restart");
    server.advance_ms(60_000);
    assert_eq!(q::drain(&ch, &queue).await, vec![b"kept".to_vec()]);
    let restarted = server.restart().await;
    assert_eq!(restarted.restored().messages, 0, "released and consumed: nothing left in the store");
}

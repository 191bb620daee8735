//! Content-based routing over AMQP: bindings with an `x-filter` expression on every exchange
//! type take only the messages whose properties, headers and JSON body the filter admits; a bad
//! expression is refused at bind time with 406 and where it went wrong; filtered bindings survive
//! a restart.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::BasicProperties;

fn filter(expr: &str) -> FieldTable {
    let mut args = FieldTable::default();
    args.insert("x-filter".into(), AMQPValue::LongString(LongString::from(expr)));
    args
}

fn headers(pairs: &[(&str, AMQPValue)]) -> BasicProperties {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert(ShortString::from(*k), v.clone());
    }
    BasicProperties::default().with_headers(t)
}

async fn declare_exchange(ch: &lapin::Channel, name: &str, kind: lapin::ExchangeKind, durable: bool) {
    let opts = ExchangeDeclareOptions { durable, ..Default::default() };
    within(ch.exchange_declare(name.into(), kind, opts, FieldTable::default())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_bindings_take_only_what_their_expression_admits_on_every_exchange_type() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let kinds = [
        (lapin::ExchangeKind::Direct, "orders"),
        (lapin::ExchangeKind::Topic, "orders.#"),
        (lapin::ExchangeKind::Fanout, ""),
        (lapin::ExchangeKind::Headers, ""),
    ];
    for (kind, key) in kinds {
        let x = unique("cbr");
        declare_exchange(&ch, &x, kind.clone(), false).await;
        let (big, eu, all) = (unique("big"), unique("eu"), unique("all"));
        for q in [&big, &eu, &all] {
            q::declare(&ch, q).await;
        }
        let bind = |q: String, args: FieldTable| {
            let (ch, x) = (ch.clone(), x.clone());
            async move {
                within(ch.queue_bind(q.as_str().into(), x.as_str().into(), key.into(), Default::default(), args))
                    .await
                    .unwrap()
            }
        };
        bind(big.clone(), filter("body.order.total > 100 AND content_type = 'application/json'")).await;
        bind(eu.clone(), filter("region IN ('eu', 'uk') AND NOT EXISTS(body.test)")).await;
        bind(all.clone(), FieldTable::default()).await;

        let json = BasicProperties::default().with_content_type("application/json".into());
        q::publish_props(&ch, &x, "orders", br#"{"order": {"total": 250}}"#, json.clone()).await;
        q::publish_props(&ch, &x, "orders", br#"{"order": {"total": 20}}"#, json.clone()).await;
        let eu_props = headers(&[("region", AMQPValue::LongString(LongString::from("eu")))]);
        q::publish_props(&ch, &x, "orders", b"not json at all", eu_props.clone()).await;
        q::publish_props(&ch, &x, "orders", br#"{"test": 1}"#, eu_props).await;

        assert_eq!(q::drain(&ch, &big).await, [br#"{"order": {"total": 250}}"#.to_vec()], "{kind:?}");
        assert_eq!(q::drain(&ch, &eu).await, [b"not json at all".to_vec()], "{kind:?}: a non-JSON body has no fields");
        assert_eq!(q::drain(&ch, &all).await.len(), 4, "{kind:?}: an unfiltered binding takes everything");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_filter_is_refused_at_bind_time_with_its_position() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = within(conn.create_channel()).await.unwrap();
    let q = unique("q");
    q::declare(&ch, &q).await;
    let bound = within(ch.queue_bind(
        q.as_str().into(),
        "amq.direct".into(),
        "k".into(),
        Default::default(),
        filter("total >"),
    ))
    .await;
    let err = bound.unwrap_err();
    assert_eq!(code_of(&err), Some(406));
    assert!(format!("{err:?}").contains("byte 7"), "{err:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn filtered_bindings_survive_a_restart() {
    let server = TestServer::start().await;
    {
        let conn = server.lapin().await;
        let ch = confirmed_channel(&conn).await;
        declare_exchange(&ch, "events", lapin::ExchangeKind::Topic, true).await;
        let durable = QueueDeclareOptions { durable: true, ..Default::default() };
        within(ch.queue_declare("vip".into(), durable, FieldTable::default())).await.unwrap();
        within(ch.queue_bind("vip".into(), "events".into(), "#".into(), Default::default(), filter("priority >= 8")))
            .await
            .unwrap();
    }
    let server = server.restart().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    q::publish_props(&ch, "events", "a", b"low", BasicProperties::default().with_priority(1)).await;
    q::publish_props(&ch, "events", "a", b"high", BasicProperties::default().with_priority(9)).await;
    assert_eq!(q::drain(&ch, "vip").await, [b"high".to_vec()]);
}

/// An HTTP pull receive with a filter takes only what it admits; the rest stays queued, in
/// order, for other consumers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_http_receive_takes_only_matching_messages() {
    use common::http::{http, send};
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let queue = unique("pull");
    q::declare(&ch, &queue).await;
    for (i, region) in ["eu", "us", "eu", "us"].iter().enumerate() {
        let props = headers(&[("region", AMQPValue::LongString(LongString::from(*region)))]);
        q::publish_props(&ch, "", &queue, format!(r#"{{"n": {i}}}"#).as_bytes(), props).await;
    }
    let url = |query: &str| server.http_url(&format!("/api/vhosts/%2F/queues/{queue}/receive?{query}"));
    let filter = "max=10&filter=region%20%3D%20%27us%27%20AND%20body.n%20%3E%200";
    let (code, got, _) = send(http().post(url(filter))).await;
    assert_eq!(code, reqwest::StatusCode::OK, "{got}");
    let bodies: Vec<&str> = got.as_array().unwrap().iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, [r#"{"n": 1}"#, r#"{"n": 3}"#]);
    assert_eq!(
        q::drain(&ch, &queue).await,
        [br#"{"n": 0}"#.to_vec(), br#"{"n": 2}"#.to_vec()],
        "the rest stayed, in order"
    );
    let (code, err, _) = send(http().post(url("filter=n%20%3E"))).await;
    assert_eq!(code, reqwest::StatusCode::BAD_REQUEST);
    assert!(err.to_string().contains("byte 3"), "the error says where: {err}");
}

//! RabbitMQ's configure/write/read permissions, enforced on every AMQP method class that names
//! an exchange or a queue, on the async HTTP API and on the management API: each operation once
//! allowed and once refused (403 ACCESS_REFUSED, the channel closed), for a user whose
//! permissions in "/" cover only names starting with `app.`.

mod common;

use common::http::http;
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, ExchangeKind};
use reqwest::StatusCode;
use serde_json::json;
use std::collections::BTreeMap;
use warren_broker::{PermissionConfig, UserConfig};

async fn server() -> TestServer {
    TestServer::start_with(|c| {
        c.vhosts = vec!["/".into(), "elsewhere".into()];
        let app = PermissionConfig { configure: "^app\\.".into(), write: "^app\\.".into(), read: "^app\\.".into() };
        c.users.push(UserConfig {
            name: "app".into(),
            password: "pw".into(),
            vhosts: None,
            permissions: BTreeMap::from([("/".to_string(), app)]),
            loopback_only: false,
            tags: vec!["management".into()],
        });
    })
    .await
}

async fn app_channel(server: &TestServer) -> (lapin::Connection, lapin::Channel) {
    let conn =
        within(lapin::Connection::connect(&server.uri_for("app", "pw", "%2f"), Default::default())).await.unwrap();
    let ch = within(conn.create_channel()).await.unwrap();
    (conn, ch)
}

/// Runs `op` on a fresh channel of `conn`; `Ok` or the reply code it was refused with.
macro_rules! on_fresh_channel {
    ($conn:expr, |$ch:ident| $op:expr) => {{
        let $ch = within($conn.create_channel()).await.unwrap();
        within($op).await.map(|_| ()).map_err(|e| code_of(&e))
    }};
}

fn args(key: &str, value: &str) -> FieldTable {
    let mut t = FieldTable::default();
    t.insert(key.into(), AMQPValue::LongString(LongString::from(value)));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_methods_check_configure_write_and_read() {
    let server = server().await;
    // Objects the user may not touch, made by guest.
    let (_g, guest) = server.lapin_channel().await;
    q::declare(&guest, "other.q").await;
    within(guest.exchange_declare("other.x".into(), ExchangeKind::Fanout, Default::default(), FieldTable::default()))
        .await
        .unwrap();
    let (conn, _) = app_channel(&server).await;
    let refused = Err(Some(403));
    let none = FieldTable::default;

    // configure: exchange.declare, queue.declare (and its dead-letter exchange: write), deletes.
    let r = on_fresh_channel!(conn, |ch| ch.exchange_declare(
        "app.x".into(),
        ExchangeKind::Topic,
        Default::default(),
        none()
    ));
    assert_eq!(r, Ok(()));
    let r = on_fresh_channel!(conn, |ch| ch.exchange_declare(
        "nope.x".into(),
        ExchangeKind::Topic,
        Default::default(),
        none()
    ));
    assert_eq!(r, refused);
    assert_eq!(on_fresh_channel!(conn, |ch| ch.queue_declare("app.q".into(), Default::default(), none())), Ok(()));
    assert_eq!(on_fresh_channel!(conn, |ch| ch.queue_declare("nope.q".into(), Default::default(), none())), refused);
    let dlx = args("x-dead-letter-exchange", "other.x");
    assert_eq!(
        on_fresh_channel!(conn, |ch| ch.queue_declare("app.dl".into(), Default::default(), dlx.clone())),
        refused
    );
    let passive = QueueDeclareOptions { passive: true, ..Default::default() };
    assert_eq!(
        on_fresh_channel!(conn, |ch| ch.queue_declare("other.q".into(), passive, none())),
        Ok(()),
        "passive needs nothing"
    );
    assert_eq!(on_fresh_channel!(conn, |ch| ch.queue_delete("other.q".into(), Default::default())), refused);
    assert_eq!(on_fresh_channel!(conn, |ch| ch.exchange_delete("other.x".into(), Default::default())), refused);

    // bind: write on the destination, read on the source.
    let bind = |q: &'static str, x: &'static str| {
        move |ch: lapin::Channel| async move {
            ch.queue_bind(q.into(), x.into(), "k".into(), Default::default(), FieldTable::default()).await
        }
    };
    assert_eq!(on_fresh_channel!(conn, |ch| bind("app.q", "app.x")(ch)), Ok(()));
    assert_eq!(on_fresh_channel!(conn, |ch| bind("app.q", "amq.direct")(ch)), refused, "read on the source");
    assert_eq!(on_fresh_channel!(conn, |ch| bind("other.q", "app.x")(ch)), refused, "write on the destination");
    let r = on_fresh_channel!(conn, |ch| ch.exchange_bind(
        "app.x".into(),
        "other.x".into(),
        "".into(),
        Default::default(),
        none()
    ));
    assert_eq!(r, refused);

    // write: basic.publish (the refusal closes the channel; the next call reports it).
    let ch = within(conn.create_channel()).await.unwrap();
    within(ch.confirm_select(Default::default())).await.unwrap();
    let confirm =
        within(ch.basic_publish("app.x".into(), "k".into(), Default::default(), b"ok", BasicProperties::default()))
            .await
            .unwrap();
    assert!(within(confirm).await.unwrap().is_ack());
    let ch = within(conn.create_channel()).await.unwrap();
    let _ = within(ch.basic_publish(
        "amq.direct".into(),
        "k".into(),
        Default::default(),
        b"no",
        BasicProperties::default(),
    ))
    .await;
    assert_code(within(ch.queue_declare("app.q".into(), passive, none())).await, 403);

    // read: basic.get, basic.consume, queue.purge.
    assert_eq!(on_fresh_channel!(conn, |ch| ch.basic_get("app.q".into(), Default::default())), Ok(()));
    assert_eq!(on_fresh_channel!(conn, |ch| ch.basic_get("other.q".into(), Default::default())), refused);
    let r = on_fresh_channel!(conn, |ch| ch.basic_consume("other.q".into(), "c".into(), Default::default(), none()));
    assert_eq!(r, refused);
    assert_eq!(on_fresh_channel!(conn, |ch| ch.queue_purge("other.q".into(), Default::default())), refused);
    assert_eq!(on_fresh_channel!(conn, |ch| ch.queue_purge("app.q".into(), Default::default())), Ok(()));

    // No permissions in a vhost: the connection is refused (530), as in RabbitMQ.
    let other_vhost = lapin::Connection::connect(&server.uri_for("app", "pw", "elsewhere"), Default::default()).await;
    assert!(other_vhost.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_apis_check_the_same_permissions() {
    let server = server().await;
    let (_g, guest) = server.lapin_channel().await;
    for q in ["app.q", "other.q"] {
        q::declare(&guest, q).await;
    }
    let as_app = |req: reqwest::RequestBuilder| async move {
        within(req.basic_auth("app", Some("pw")).send()).await.unwrap().status()
    };
    let publish = |x: &str| server.http_url(&format!("/api/vhosts/%2F/exchanges/{x}/messages?routing_key=app.q"));
    assert_eq!(as_app(http().post(publish("amq.default")).body("x")).await, StatusCode::FORBIDDEN);
    let receive = |q: &str| server.http_url(&format!("/api/vhosts/%2F/queues/{q}/receive"));
    assert_eq!(as_app(http().post(receive("app.q"))).await, StatusCode::OK);
    assert_eq!(as_app(http().post(receive("other.q"))).await, StatusCode::FORBIDDEN);

    // The management API: `management` users act within their permissions.
    let mgmt = |path: &str| server.http_url(path);
    assert_eq!(as_app(http().put(mgmt("/api/queues/%2F/app.new")).json(&json!({}))).await, StatusCode::CREATED);
    assert_eq!(as_app(http().put(mgmt("/api/queues/%2F/nope.new")).json(&json!({}))).await, StatusCode::FORBIDDEN);
    assert_eq!(as_app(http().delete(mgmt("/api/queues/%2F/other.q"))).await, StatusCode::FORBIDDEN);
    let get = json!({"count": 1, "ackmode": "ack_requeue_true"});
    assert_eq!(as_app(http().post(mgmt("/api/queues/%2F/other.q/get")).json(&get)).await, StatusCode::FORBIDDEN);
    let (code_alive, _) = (as_app(http().get(mgmt("/api/aliveness-test/%2F"))).await, ());
    assert_eq!(code_alive, StatusCode::FORBIDDEN, "the aliveness test needs rights on its queue");
    let message = json!({"routing_key": "k", "payload": "x"});
    assert_eq!(
        as_app(http().post(mgmt("/api/exchanges/%2F/amq.direct/publish")).json(&message)).await,
        StatusCode::FORBIDDEN
    );
    let (code, perms) = {
        let resp =
            within(http().get(mgmt("/api/permissions")).basic_auth("guest", Some("guest")).send()).await.unwrap();
        (resp.status(), within(resp.json::<serde_json::Value>()).await.unwrap())
    };
    assert_eq!(code, StatusCode::OK);
    assert!(perms.as_array().unwrap().contains(
        &json!({"user": "app", "vhost": "/", "configure": "^app\\.", "write": "^app\\.", "read": "^app\\."})
    ));
}

//! Vhost limits (`max-connections`, `max-queues`) and user limits (`max-connections`,
//! `max-channels`), set over the management API and enforced on AMQP with RabbitMQ's codes and
//! words; durable across a restart, and exported and imported with the definitions.

mod common;

use amqp_codec::{ConnectionClose, Method};
use common::http::{http, send};
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::net::SocketAddr;

fn with_app_user(c: &mut warren::Config) {
    c.users.push(user_on_root("app", "pw", &["management"]));
}

/// Opens a connection as `user` on `/`: the open connection, or the server's connection.close.
async fn open_as(addr: SocketAddr, user: &str, password: &str) -> Result<RawClient, ConnectionClose> {
    let mut c = RawClient::connect(addr).await;
    c.start().await;
    c.send(0, Method::ConnectionStartOk(start_ok_plain(user, password))).await;
    let tune = match c.expect_method(0).await {
        Method::ConnectionTune(t) => t,
        other => panic!("expected connection.tune, got {other:?}"),
    };
    let tune_ok =
        amqp_codec::ConnectionTuneOk { channel_max: tune.channel_max, frame_max: tune.frame_max, heartbeat: 0 };
    c.send(0, Method::ConnectionTuneOk(tune_ok)).await;
    c.send(0, Method::ConnectionOpen(amqp_codec::ConnectionOpen { virtual_host: "/".into(), ..Default::default() }))
        .await;
    match c.expect_method(0).await {
        Method::ConnectionOpenOk(_) => Ok(c),
        Method::ConnectionClose(close) => {
            c.send(0, Method::ConnectionCloseOk).await;
            Err(close)
        }
        other => panic!("expected connection.open-ok or close, got {other:?}"),
    }
}

async fn put_limit(server: &TestServer, path: &str, value: Value) -> (StatusCode, Value) {
    let (code, body, _) = send(http().put(server.http_url(path)).json(&json!({ "value": value }))).await;
    (code, body)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vhost_connection_limit_refuses_connection_open_until_a_connection_goes() {
    let server = TestServer::start().await;
    let limits = || server.broker().resource_limits();
    assert_eq!(put_limit(&server, "/api/vhost-limits/%2F/max-connections", json!(1)).await.0, StatusCode::NO_CONTENT);
    let first = open_as(server.addr, "guest", "guest").await.expect("the first connection fits");
    let refused = open_as(server.addr, "guest", "guest").await.err().expect("the second is refused");
    assert_eq!((refused.reply_code, refused.class_id, refused.method_id), (530, 10, 40));
    assert_eq!(
        refused.reply_text.as_str(),
        "NOT_ALLOWED - access to vhost '/' refused for user 'guest': connection limit (1) is reached"
    );
    drop(first);
    eventually(|| limits().vhost_connections("/") == 0, "the closed connection gives its seat back").await;
    let again = open_as(server.addr, "guest", "guest").await.expect("room again");
    drop(again);

    // 0 allows none; a negative value, none at all.
    put_limit(&server, "/api/vhost-limits/%2F/max-connections", json!(0)).await;
    eventually(|| limits().vhost_connections("/") == 0, "the seat is given back").await;
    let refused = open_as(server.addr, "guest", "guest").await.err().expect("0 allows no connection");
    assert!(refused.reply_text.ends_with("connection limit (0) is reached"), "{}", refused.reply_text);
    put_limit(&server, "/api/vhost-limits/%2F/max-connections", json!(-1)).await;
    let mut open = Vec::new();
    for _ in 0..3 {
        open.push(open_as(server.addr, "guest", "guest").await.expect("-1 is no limit"));
    }
    assert_eq!(limits().vhost_connections("/"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vhost_queue_limit_refuses_new_queues_but_not_redeclares() {
    let server = TestServer::start().await;
    let (_conn, ch) = server.lapin_channel().await;
    q::declare(&ch, "existing").await;
    put_limit(&server, "/api/vhost-limits/%2F/max-queues", json!(2)).await;
    q::declare(&ch, "second").await;
    let refused = within(ch.queue_declare("third".into(), Default::default(), Default::default())).await;
    assert_code(refused, 406);
    assert!(!ch.status().connected(), "a channel error closes the channel only");
    let ch = server.lapin().await.create_channel().await.unwrap();
    q::declare(&ch, "existing").await;
    let passive = lapin::options::QueueDeclareOptions { passive: true, ..Default::default() };
    within(ch.queue_declare("second".into(), passive, Default::default()))
        .await
        .expect("a passive declare is no new queue");
    // The management API's declare gets RabbitMQ's 400 and words.
    let (code, body, _) = send(http().put(server.http_url("/api/queues/%2F/fourth")).json(&json!({}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert_eq!(body["reason"], "cannot declare queue 'fourth': queue limit in vhost '/' (2) is reached");
    // Clearing the limit lets the next one in.
    let (code, _, _) = send(http().delete(server.http_url("/api/vhost-limits/%2F/max-queues"))).await;
    assert_eq!(code, StatusCode::NO_CONTENT);
    let (code, _, _) = send(http().delete(server.http_url("/api/vhost-limits/%2F/max-queues"))).await;
    assert_eq!(code, StatusCode::NO_CONTENT, "also when it is not set");
    let (code, body, _) = send(http().delete(server.http_url("/api/vhost-limits/%2F/max-channels"))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    q::declare(&ch, "third").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_limits_count_connections_and_channels_across_connections() {
    let server = TestServer::start_with(with_app_user).await;
    put_limit(&server, "/api/user-limits/app/max-connections", json!(2)).await;
    put_limit(&server, "/api/user-limits/app/max-channels", json!(2)).await;
    let mut a = open_as(server.addr, "app", "pw").await.expect("first");
    a.open_channel(1).await;
    a.open_channel(2).await;
    let mut b = open_as(server.addr, "app", "pw").await.expect("second");
    let refused = open_as(server.addr, "app", "pw").await.err().expect("a third connection is one too many");
    assert_eq!((refused.reply_code, refused.class_id, refused.method_id), (530, 10, 40));
    assert_eq!(
        refused.reply_text.as_str(),
        "NOT_ALLOWED - connection refused for user 'app': user connection limit (2) is reached"
    );
    // Guest is not counted with app.
    let guest = open_as(server.addr, "guest", "guest").await.expect("another user");
    drop(guest);

    // The user's third channel, on its other connection, closes that connection (530, 0/0).
    b.send(1, Method::ChannelOpen(Default::default())).await;
    let close = b.expect_connection_close().await;
    assert_eq!((close.reply_code, close.class_id, close.method_id), (530, 0, 0));
    assert_eq!(
        close.reply_text.as_str(),
        "NOT_ALLOWED - number of channels opened for user 'app' has reached the maximum allowed user limit of (2)"
    );
    // A channel closed gives its seat back.
    a.send(2, Method::ChannelClose(Default::default())).await;
    assert!(matches!(a.expect_method(2).await, Method::ChannelCloseOk));
    eventually(|| server.broker().resource_limits().user_channels("app") == 1, "the channel's seat is back").await;
    a.open_channel(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn limits_are_managed_like_rabbitmqs_and_survive_a_restart_and_an_export() {
    let server = TestServer::start_with(with_app_user).await;
    let get = |path: &str| send(http().get(server.http_url(path)));
    assert_eq!(get("/api/vhost-limits").await.1, json!([]));
    assert_eq!(get("/api/vhost-limits/%2F").await.1, json!([]));
    assert_eq!(get("/api/vhost-limits/nowhere").await.0, StatusCode::NOT_FOUND);
    put_limit(&server, "/api/vhost-limits/%2F/max-connections", json!(50)).await;
    put_limit(&server, "/api/vhost-limits/%2F/max-queues", json!(70)).await;
    put_limit(&server, "/api/user-limits/app/max-channels", json!(4)).await;
    let vhost_limits = json!([{"vhost": "/", "value": {"max-connections": 50, "max-queues": 70}}]);
    assert_eq!(get("/api/vhost-limits").await.1, vhost_limits);
    assert_eq!(get("/api/vhost-limits/%2F").await.1, vhost_limits);
    assert_eq!(get("/api/user-limits").await.1, json!([{"user": "app", "value": {"max-channels": 4}}]));
    assert_eq!(get("/api/user-limits/guest").await.1, json!([]));
    assert_eq!(get("/api/users/app").await.1["limits"], json!({"max-channels": 4}));

    // Bad input: 400 with the reason, nothing changed.
    for (path, value, reason) in [
        ("/api/vhost-limits/%2F/max-queues", json!(1.5), "max-queues should be a number"),
        ("/api/vhost-limits/%2F/max-queues", json!("5"), "max-queues should be a number"),
        ("/api/vhost-limits/%2F/max-channels", json!(5), "Unrecognised terms"),
        ("/api/user-limits/app/max-queues", json!(5), "Unrecognised terms"),
    ] {
        let (code, body) = put_limit(&server, path, value).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{path}");
        assert!(body["reason"].as_str().unwrap().contains(reason), "{path}: {body}");
    }
    let (code, body, _) = send(http().put(server.http_url("/api/vhost-limits/%2F/max-queues")).json(&json!({}))).await;
    assert_eq!((code, body["reason"].as_str()), (StatusCode::BAD_REQUEST, Some("the body needs \"value\"")));
    assert_eq!(put_limit(&server, "/api/vhost-limits/nowhere/max-queues", json!(1)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(put_limit(&server, "/api/user-limits/nobody/max-channels", json!(1)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(get("/api/vhost-limits").await.1, vhost_limits);
    // Only administrators change limits; any management user reads them.
    let as_app = |req: reqwest::RequestBuilder| within(req.basic_auth("app", Some("pw")).send());
    let resp = as_app(http().put(server.http_url("/api/user-limits/app/max-channels")).json(&json!({"value": 99})))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = as_app(http().get(server.http_url("/api/user-limits"))).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);

    // The definitions carry them in RabbitMQ's shapes.
    let (_, defs, _) = send(http().get(server.http_url("/api/definitions"))).await;
    let params: Vec<&Value> = defs["parameters"].as_array().unwrap().iter().collect();
    assert_eq!(
        params,
        [
            &json!({"value": {"max-connections": 50, "max-queues": 70}, "vhost": "/", "component": "vhost-limits", "name": "limits"})
        ]
    );
    let app = defs["users"].as_array().unwrap().iter().find(|u| u["name"] == "app").unwrap().clone();
    assert_eq!(app["limits"], json!({"max-channels": 4}));

    // Durable: a restart keeps and enforces them.
    let server = server.restart().await;
    assert_eq!(send(http().get(server.http_url("/api/vhost-limits"))).await.1, vhost_limits);
    assert_eq!(server.broker().resource_limits().user("app").bound("max-channels"), Some(4));

    // Imported into a fresh broker, they apply.
    let fresh = TestServer::start().await;
    let mut file = defs.clone();
    file["parameters"][0]["value"]["max-connections"] = json!(0);
    let (code, body, _) = send(http().post(fresh.http_url("/api/definitions")).json(&file)).await;
    assert_eq!(code, StatusCode::NO_CONTENT, "{body}");
    assert_eq!(fresh.broker().resource_limits().user("app").bound("max-channels"), Some(4));
    let refused = open_as(fresh.addr, "guest", "guest").await.err().expect("the imported limit of 0 applies");
    assert_eq!(refused.reply_code, 530);
    // A bad limit in a file refuses the whole import.
    file["users"] = json!([{"name": "late", "password_hash": "", "tags": "", "limits": {"max-queues": 1}}]);
    let (code, body, _) = send(http().post(fresh.http_url("/api/definitions")).json(&file)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert!(fresh.broker().users().get("late").is_none());
}

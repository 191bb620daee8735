//! HTTP push subscriptions with a real local HTTP server as the subscriber: every message POSTed
//! signed, 2xx acking it, failures retried then dead-lettered with the reason, the
//! `max_in_flight` bound held, subscriptions kept across a restart, and deletion returning
//! what was out to the queue.

mod common;

use common::http::*;
use common::*;
use lapin::types::{AMQPValue, FieldTable};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Semaphore;

fn subscriptions_url(server: &TestServer, queue: &str) -> String {
    server.http_url(&format!("/api/vhosts/%2F/queues/{queue}/subscriptions"))
}

/// Creates a subscription; returns its view and its URL.
async fn subscribe(server: &TestServer, queue: &str, spec: Value) -> (Value, String) {
    let (code, view, location) = send(http().post(subscriptions_url(server, queue)).json(&spec)).await;
    assert_eq!(code, StatusCode::CREATED, "{view}");
    (view, server.http_url(&location.expect("a Location")))
}

/// Reads the subscription at `url` until `done` holds for it.
async fn view_until(url: &str, done: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (code, view, _) = send(http().get(url)).await;
        assert_eq!(code, StatusCode::OK, "{view}");
        if done(&view) {
            return view;
        }
        assert!(tokio::time::Instant::now() < deadline, "timed out; the subscription is {view}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_message_is_pushed_signed_and_a_2xx_acks_it() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let queue = unique("push");
    q::declare(&ch, &queue).await;
    let (hook, mut calls) = webhook_receiver(vec![], None).await;
    let (view, url) = subscribe(&server, &queue, json!({ "url": hook, "secret": SECRET })).await;
    assert_eq!((view["max_in_flight"].clone(), view["in_flight"].clone()), (json!(16), json!(0)));
    assert!(view.get("secret").is_none(), "the secret is never shown");
    let props = lapin::BasicProperties::default().with_correlation_id("c-1".into());
    q::publish_props(&ch, "", &queue, b"first", props).await;
    q::publish(&ch, "", &queue, &[0xff, 0x00]).await;

    let (id1, a) = verified(&within(calls.recv()).await.unwrap());
    let (id2, b) = verified(&within(calls.recv()).await.unwrap());
    assert_ne!(id1, id2);
    // Up to 16 pushes are out at once, so they may arrive in either order.
    let (first, second) = if a["body"] == json!("first") { (a, b) } else { (b, a) };
    assert_eq!(first["subscription"], view["id"]);
    assert_eq!((first["queue"].clone(), first["attempt"].clone()), (json!(queue), json!(1)));
    assert_eq!((first["body"].clone(), first["body_encoding"].clone()), (json!("first"), json!("utf8")));
    assert_eq!(first["properties"]["correlation_id"], json!("c-1"));
    assert_eq!((second["body"].clone(), second["body_encoding"].clone()), (json!("/wA="), json!("base64")));
    view_until(&url, |v| v["succeeded"] == json!(2) && v["in_flight"] == json!(0)).await;
    assert_eq!(q::counts(&ch, &queue).await.unwrap(), (0, 1), "both acked; the subscription is a consumer");

    // An HTTP publish pushed to an HTTP subscriber: its status shows the push and the ack.
    let publish =
        http().post(server.http_url(&format!("/api/vhosts/%2F/exchanges/amq.default/messages?routing_key={queue}")));
    let (code, accepted, _) = send(publish.body("tracked")).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{accepted}");
    let (webhook_id, pushed) = verified(&within(calls.recv()).await.unwrap());
    assert_eq!(pushed["id"], accepted["id"]);
    assert_eq!(webhook_id, format!("push_{}_{}", view["id"].as_str().unwrap(), accepted["id"].as_str().unwrap()));
    let status_url = server.http_url(accepted["status_url"].as_str().unwrap());
    let status = view_until(&status_url, |s| s["outcome"] == json!("succeeded")).await;
    let events: Vec<&str> = status["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(events, ["accepted", "routed", "delivered", "acked"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_push_is_retried_then_dead_lettered_with_the_reason() {
    let server = TestServer::start_with(|c| c.http.callback_backoff_base_ms = 5).await;
    let (_c, ch) = server.lapin_channel().await;
    let (queue, dlq) = (unique("push-fail"), unique("push-dlq"));
    q::declare_dead_lettering(&ch, &queue, &dlq).await;
    let (hook, mut calls) = webhook_receiver(vec![500, 503, 500], None).await;
    let spec = json!({ "url": hook, "secret": SECRET, "max_attempts": 3 });
    let (_, url) = subscribe(&server, &queue, spec).await;
    q::publish(&ch, "", &queue, b"poison").await;

    let mut attempts = Vec::new();
    for _ in 0..3 {
        let (_, payload) = verified(&within(calls.recv()).await.unwrap());
        attempts.push(payload["attempt"].as_u64().unwrap());
    }
    assert_eq!(attempts, [1, 2, 3]);
    let view = view_until(&url, |v| v["dead_lettered"] == json!(1)).await;
    assert_eq!((view["attempts"].clone(), view["succeeded"].clone()), (json!(3), json!(0)));
    assert_eq!(view["last_failure"]["status"], json!(500));
    let mut dead = q::consume(&ch, &dlq, true).await;
    let d = next_delivery(&mut dead).await;
    assert_eq!(d.data, b"poison");
    let headers = d.properties.headers().as_ref().unwrap();
    let Some(AMQPValue::LongString(reason)) = headers.inner().get("x-first-death-reason") else {
        panic!("{headers:?}")
    };
    assert_eq!(reason.to_string(), "rejected");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_more_than_max_in_flight_messages_are_out_at_once() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let queue = unique("push-window");
    q::declare(&ch, &queue).await;
    let gate = Arc::new(Semaphore::new(0));
    let (hook, mut calls) = webhook_receiver(vec![], Some(gate.clone())).await;
    let (_, url) = subscribe(&server, &queue, json!({ "url": hook, "secret": SECRET, "max_in_flight": 2 })).await;
    for n in 0..5u8 {
        q::publish(&ch, "", &queue, &[b'0' + n]).await;
    }
    view_until(&url, |v| v["in_flight"] == json!(2)).await;
    assert_eq!(q::counts(&ch, &queue).await.unwrap(), (3, 1), "three wait in the queue");
    gate.add_permits(5);
    let mut bodies = Vec::new();
    for _ in 0..5 {
        let (_, payload) = verified(&within(calls.recv()).await.unwrap());
        bodies.push(payload["body"].as_str().unwrap().to_owned());
    }
    bodies.sort();
    assert_eq!(bodies, ["0", "1", "2", "3", "4"]);
    view_until(&url, |v| v["succeeded"] == json!(5) && v["in_flight"] == json!(0)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscriptions_survive_a_restart_and_deleting_one_returns_its_messages() {
    let server = TestServer::start().await;
    let queue = unique("push-durable");
    {
        let (_c, ch) = server.lapin_channel().await;
        let opts = lapin::options::QueueDeclareOptions { durable: true, ..Default::default() };
        within(ch.queue_declare(queue.as_str().into(), opts, FieldTable::default())).await.unwrap();
    }
    let gate = Arc::new(Semaphore::new(0));
    let (hook, mut calls) = webhook_receiver(vec![], Some(gate.clone())).await;
    let (view, _) = subscribe(&server, &queue, json!({ "url": hook, "secret": SECRET })).await;
    let server = server.restart().await;

    let (_c, ch) = server.lapin_channel().await;
    q::publish_props(&ch, "", &queue, b"after restart", lapin::BasicProperties::default().with_delivery_mode(2)).await;
    let (_, pushed) = verified(&within(calls.recv()).await.unwrap());
    assert_eq!((pushed["subscription"].clone(), pushed["body"].clone()), (view["id"].clone(), json!("after restart")));
    let (code, list, _) = send(http().get(subscriptions_url(&server, &queue))).await;
    assert_eq!((code, list.as_array().unwrap().len()), (StatusCode::OK, 1));
    assert_eq!(q::counts(&ch, &queue).await.unwrap(), (0, 1), "out with the subscriber");

    // Deleted while the subscriber holds the message: it goes back to the queue.
    let url =
        server.http_url(&format!("/api/vhosts/%2F/queues/{queue}/subscriptions/{}", view["id"].as_str().unwrap()));
    assert_eq!(send(http().delete(&url)).await.0, StatusCode::NO_CONTENT);
    assert_eq!(q::counts(&ch, &queue).await.unwrap(), (1, 0));
    gate.add_permits(1);
    assert_eq!(send(http().get(&url)).await.0, StatusCode::NOT_FOUND);
    assert_eq!(send(http().delete(&url)).await.0, StatusCode::NOT_FOUND);
    let message = within(ch.basic_get(queue.as_str().into(), Default::default())).await.unwrap().expect("requeued");
    assert_eq!((message.delivery.data.as_slice(), message.delivery.redelivered), (&b"after restart"[..], true));
    drop((_c, ch));

    let server = server.restart().await;
    let (_, list, _) = send(http().get(subscriptions_url(&server, &queue))).await;
    assert_eq!(list, json!([]), "a deleted subscription stays deleted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_push_answered_while_the_broker_shuts_down_is_settled_and_not_pushed_again() {
    let server = TestServer::start().await;
    let queue = unique("push-shutdown");
    let persistent = || lapin::BasicProperties::default().with_delivery_mode(2);
    let (_c, ch) = server.lapin_channel().await;
    let opts = lapin::options::QueueDeclareOptions { durable: true, ..Default::default() };
    within(ch.queue_declare(queue.as_str().into(), opts, FieldTable::default())).await.unwrap();
    let gate = Arc::new(Semaphore::new(0));
    let (hook, mut calls) = webhook_receiver(vec![], Some(gate.clone())).await;
    subscribe(&server, &queue, json!({ "url": hook, "secret": SECRET })).await;
    q::publish_props(&ch, "", &queue, b"in flight", persistent()).await;
    let (_, pushed) = verified(&within(calls.recv()).await.unwrap());
    assert_eq!(pushed["body"], json!("in flight"));

    // The receiver holds the call until the API has stopped listening, then answers 200.
    let http_port: u16 = server.http_url("").rsplit(':').next().unwrap().parse().unwrap();
    drop((_c, ch));
    let restarting = tokio::spawn(server.restart());
    eventually(|| std::net::TcpStream::connect(("127.0.0.1", http_port)).is_err(), "the API to stop").await;
    gate.add_permits(100);
    let server = within(restarting).await.unwrap();

    // Settled before the store closed: the next call after the restart is the next message.
    let (_c, ch) = server.lapin_channel().await;
    q::publish_props(&ch, "", &queue, b"next", persistent()).await;
    let (_, pushed) = verified(&within(calls.recv()).await.unwrap());
    assert_eq!(pushed["body"], json!("next"), "the message answered during the shutdown is not pushed again");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_subscriptions_get_a_json_4xx_and_a_deleted_queue_ends_its_subscription() {
    let server = TestServer::start_with(|c| c.http.callback_allow = vec!["http://127.0.0.1:".into()]).await;
    let (_c, ch) = server.lapin_channel().await;
    let queue = unique("push-bad");
    q::declare(&ch, &queue).await;
    let (hook, _calls) = webhook_receiver(vec![], None).await;
    let create = |spec: Value| http().post(subscriptions_url(&server, &queue)).json(&spec);
    let cases = [
        (json!({ "url": hook }), StatusCode::BAD_REQUEST, "no secret for the vhost"),
        (json!({ "url": hook, "secret": "plain" }), StatusCode::BAD_REQUEST, "not a whsec_ secret"),
        (json!({ "url": "ftp://127.0.0.1/x", "secret": SECRET }), StatusCode::BAD_REQUEST, "not http"),
        (json!({ "url": "http://example.com/x", "secret": SECRET }), StatusCode::FORBIDDEN, "not allowed"),
        (json!({ "url": "http://127.0.0.1:@example.com/x", "secret": SECRET }), StatusCode::BAD_REQUEST, "credentials"),
        (json!({ "url": hook, "secret": SECRET, "max_in_flight": 0 }), StatusCode::BAD_REQUEST, "no credit"),
        (json!({ "url": hook, "secret": SECRET, "max_attempts": 0 }), StatusCode::BAD_REQUEST, "no attempt"),
        (json!({ "url": hook, "secret": SECRET, "colour": "red" }), StatusCode::BAD_REQUEST, "unknown field"),
    ];
    for (spec, expected, why) in cases {
        let (code, body, _) = send(create(spec)).await;
        assert_eq!(code, expected, "{why}: {body}");
        assert!(body["reason"].is_string(), "{why}: {body}");
    }
    let raw = http().post(subscriptions_url(&server, &queue)).header("content-type", "application/json").body("{");
    assert_eq!(send(raw).await.0, StatusCode::BAD_REQUEST);
    let (code, _, _) =
        send(http().post(subscriptions_url(&server, "no-such-queue")).json(&json!({ "url": hook, "secret": SECRET })))
            .await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    let (code, _, _) = send(http().get(subscriptions_url(&server, &queue)).basic_auth("guest", Some("wrong"))).await;
    assert_eq!(code, StatusCode::UNAUTHORIZED);
    assert_eq!(q::counts(&ch, &queue).await.unwrap(), (0, 0), "no subscription was made");

    // A queue another consumer holds exclusively refuses the subscription, which is not kept.
    let exclusive = unique("push-exclusive");
    q::declare(&ch, &exclusive).await;
    let opts = lapin::options::BasicConsumeOptions { exclusive: true, ..Default::default() };
    let _holder =
        within(ch.basic_consume(exclusive.as_str().into(), "".into(), opts, FieldTable::default())).await.unwrap();
    let spec = json!({ "url": hook, "secret": SECRET });
    let (code, body, _) = send(http().post(subscriptions_url(&server, &exclusive)).json(&spec)).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");

    let (view, url) = subscribe(&server, &queue, json!({ "url": hook, "secret": SECRET })).await;
    let kept = server.data_dir().join("push-subscriptions.json");
    let id = view["id"].as_str().unwrap().to_owned();
    assert!(std::fs::read_to_string(&kept).unwrap().contains(&id));
    within(ch.queue_delete(queue.as_str().into(), Default::default())).await.unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while send(http().get(&url)).await.0 != StatusCode::NOT_FOUND {
        assert!(tokio::time::Instant::now() < deadline, "the subscription outlived its queue");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let file = std::fs::read_to_string(&kept).unwrap();
    assert!(!file.contains(&id) && !file.contains(&exclusive), "neither is kept: {file}");
}

/// A subscription with a filter gets only the messages it admits; the others stay queued for
/// other consumers, and a bad filter is refused with where it went wrong.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_filtered_subscription_gets_only_what_its_filter_admits() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let queue = unique("push-filtered");
    q::declare(&ch, &queue).await;
    let (hook, mut calls) = webhook_receiver(vec![], None).await;
    let (code, err, _) =
        send(http().post(subscriptions_url(&server, &queue)).json(&json!({"url": hook, "filter": "n >"}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(err.to_string().contains("byte 3"), "{err}");
    let (view, url) =
        subscribe(&server, &queue, json!({"url": hook, "secret": SECRET, "filter": "body.n % 2 = 0"})).await;
    assert_eq!(view["filter"], json!("body.n % 2 = 0"));
    for n in 0..6 {
        q::publish(&ch, "", &queue, format!(r#"{{"n": {n}}}"#).as_bytes()).await;
    }
    let mut pushed = Vec::new();
    for _ in 0..3 {
        let (_, body) = verified(&within(calls.recv()).await.unwrap());
        pushed.push(body["body"].as_str().unwrap().to_owned());
    }
    pushed.sort();
    assert_eq!(pushed, [r#"{"n": 0}"#, r#"{"n": 2}"#, r#"{"n": 4}"#]);
    view_until(&url, |v| v["succeeded"] == json!(3) && v["in_flight"] == json!(0)).await;
    let left: Vec<String> = q::drain(&ch, &queue).await.into_iter().map(|b| String::from_utf8(b).unwrap()).collect();
    assert_eq!(left, [r#"{"n": 1}"#, r#"{"n": 3}"#, r#"{"n": 5}"#], "the others stayed, in order");
}

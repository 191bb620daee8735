//! The HTTP API with a real HTTP client (reqwest) and real AMQP consumers (lapin): publish with
//! `202 Accepted`, the status URL following the message through routing, delivery, ack,
//! dead-lettering and expiry (long-polled, never slept on), idempotent retries, and every bad
//! request answered with a 4xx JSON error and nothing published.

mod common;

use common::http::*;
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::sync::Arc;

const ENVELOPE: &str = "application/vnd.warren.envelope+json";

fn messages_url(server: &TestServer, exchange: &str, routing_key: &str) -> String {
    server.http_url(&format!("/api/vhosts/%2F/exchanges/{exchange}/messages?routing_key={routing_key}"))
}

async fn status_of(server: &TestServer, id: &str, query: &str) -> (StatusCode, Value) {
    let url = server.http_url(&format!("/api/messages/{id}{query}"));
    let resp = within(http().get(url).send()).await.unwrap();
    (resp.status(), within(resp.json::<Value>()).await.unwrap())
}

/// Long-polls the status until `done` holds for it.
async fn status_until(server: &TestServer, id: &str, done: impl Fn(&Value) -> bool) -> Value {
    let (_, mut status) = status_of(server, id, "").await;
    while !done(&status) {
        let version = status["version"].as_u64().unwrap();
        let (code, next) = status_of(server, id, &format!("?wait=4&version={version}")).await;
        assert_eq!(code, StatusCode::OK);
        assert!(next["version"].as_u64() != Some(version) || done(&next), "a long poll returned unchanged: {next}");
        status = next;
    }
    status
}

fn events(status: &Value) -> Vec<String> {
    status["events"].as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap().to_owned()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_raw_publish_is_accepted_at_once_and_its_outcome_followed_to_the_ack() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let queue = unique("http-work");
    q::declare(&ch, &queue).await;
    let req = http()
        .post(messages_url(&server, "amq.default", &queue))
        .header("content-type", "text/plain")
        .header("x-correlation-id", "corr-7")
        .header("x-header-tenant", "acme")
        .body("hello over http");
    let (code, body, location) = send(req).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    assert_eq!(location.as_deref(), Some(format!("/api/messages/{id}").as_str()));
    assert_eq!(body["status_url"], json!(format!("/api/messages/{id}")));
    assert_eq!(body["routed_queues"], json!(1));

    let mut consumer = q::consume(&ch, &queue, false).await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.data, b"hello over http");
    assert_eq!(d.properties.content_type().as_ref().map(|s| s.as_str()), Some("text/plain"));
    assert_eq!(d.properties.correlation_id().as_ref().map(|s| s.as_str()), Some("corr-7"));
    assert_eq!(*d.properties.delivery_mode(), Some(2), "persistent by default");
    let tenant = d.properties.headers().as_ref().and_then(|h| h.inner().get("tenant").cloned());
    assert_eq!(tenant, Some(AMQPValue::LongString(LongString::from("acme"))));
    assert_eq!(warren_id(&d), Some(id.clone()), "the consumer sees the tracking id");

    let pending = status_until(&server, &id, |s| events(s).contains(&"delivered".to_string())).await;
    assert_eq!(pending["outcome"], json!("pending"));
    within(d.ack(BasicAckOptions::default())).await.unwrap();
    let done = status_until(&server, &id, |s| s["finished"] == json!(true)).await;
    assert_eq!(done["outcome"], json!("succeeded"));
    assert_eq!(events(&done), ["accepted", "routed", "delivered", "acked"]);
    assert_eq!(done["events"][1]["queues"], json!([queue]));
    assert_eq!(done["events"][2]["attempt"], json!(1));
    assert!(done["events"][3]["at_ms"].as_u64().unwrap() >= done["created_ms"].as_u64().unwrap());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_envelope_publish_routes_by_its_key_and_a_rejection_shows_as_dead_lettered() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let (work, dlq, exchange) = (unique("http-orders"), unique("http-dlq"), unique("http-topic"));
    within(ch.exchange_declare(
        exchange.as_str().into(),
        lapin::ExchangeKind::Topic,
        Default::default(),
        Default::default(),
    ))
    .await
    .unwrap();
    q::declare(&ch, &dlq).await;
    let mut args = FieldTable::default();
    args.insert("x-dead-letter-exchange".into(), AMQPValue::LongString(LongString::from("")));
    args.insert("x-dead-letter-routing-key".into(), AMQPValue::LongString(LongString::from(dlq.as_str())));
    within(ch.queue_declare(work.as_str().into(), Default::default(), args)).await.unwrap();
    q::bind(&ch, &work, &exchange, "orders.*").await;
    let envelope = json!({
        "routing_key": "orders.created",
        "body": "AAEC/w==",
        "body_encoding": "base64",
        "properties": { "content_type": "application/octet-stream", "message_id": "m-1", "delivery_mode": 1 },
        "headers": { "attempt": 3, "source": "web" },
    });
    let req = http()
        .post(server.http_url(&format!("/api/vhosts/%2F/exchanges/{exchange}/messages")))
        .header("content-type", ENVELOPE)
        .body(envelope.to_string());
    let (code, body, _) = send(req).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let mut consumer = q::consume(&ch, &work, false).await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.data, [0, 1, 2, 255]);
    assert_eq!(d.routing_key.as_str(), "orders.created");
    assert_eq!(d.properties.message_id().as_ref().map(|s| s.as_str()), Some("m-1"));
    assert_eq!(*d.properties.delivery_mode(), Some(1));
    let attempt = d.properties.headers().as_ref().and_then(|h| h.inner().get("attempt").cloned());
    assert_eq!(attempt, Some(AMQPValue::LongLongInt(3)));
    within(d.nack(BasicNackOptions { requeue: false, multiple: false })).await.unwrap();
    let done = status_until(&server, &id, |s| s["finished"] == json!(true)).await;
    assert_eq!(done["outcome"], json!("failed"));
    assert_eq!(events(&done), ["accepted", "routed", "delivered", "dead_lettered"]);
    assert_eq!(done["events"][3]["reason"], json!("rejected"));
    assert_eq!(done["events"][3]["queue"], json!(work));
    assert_eq!(done["events"][3]["queues"], json!([dlq]), "where the dead letter went");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unroutable_and_expired_messages_fail_with_the_reason() {
    let server = TestServer::start_manual_clock(|_| {}).await;
    let (_c, ch) = server.lapin_channel().await;
    let (code, body, _) = send(http().post(messages_url(&server, "amq.default", "nobody-listens")).body("x")).await;
    assert_eq!((code, body["routed_queues"].clone()), (StatusCode::ACCEPTED, json!(0)));
    let lost = status_until(&server, body["id"].as_str().unwrap(), |s| s["finished"] == json!(true)).await;
    assert_eq!(
        (lost["outcome"].clone(), events(&lost)),
        (json!("failed"), vec!["accepted".into(), "unroutable".into()])
    );

    let queue = unique("http-ttl");
    q::declare(&ch, &queue).await;
    let req = http().post(messages_url(&server, "amq.default", &queue)).header("x-expiration", "1000").body("soon");
    let (_, body, _) = send(req).await;
    let id = body["id"].as_str().unwrap().to_owned();
    server.advance_ms(1000);
    let expired = status_until(&server, &id, |s| s["finished"] == json!(true)).await;
    assert_eq!(expired["outcome"], json!("failed"));
    assert_eq!(expired["events"][2]["event"], json!("dropped"));
    assert_eq!(expired["events"][2]["reason"], json!("expired"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idempotency_key_makes_a_retry_return_the_first_publish() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let queue = unique("http-idem");
    q::declare(&ch, &queue).await;
    let request =
        || http().post(messages_url(&server, "amq.default", &queue)).header("idempotency-key", "order-42").body("once");
    let (first_code, first, _) = send(request()).await;
    let (second_code, second, _) = send(request()).await;
    assert_eq!((first_code, second_code), (StatusCode::ACCEPTED, StatusCode::ACCEPTED));
    assert_eq!(first["id"], second["id"]);
    assert_eq!(q::counts(&ch, &queue).await.unwrap(), (1, 0), "published once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_json_4xx_and_publish_nothing() {
    let server = TestServer::start_with(|c| c.http.max_body_bytes = 1024).await;
    let (_c, ch) = server.lapin_channel().await;
    let queue = unique("http-bad");
    q::declare(&ch, &queue).await;
    let url = messages_url(&server, "amq.default", &queue);
    let cases: Vec<(reqwest::RequestBuilder, StatusCode, &str)> = vec![
        (
            http().post(server.http_url("/api/vhosts/%2F/exchanges/nope/messages")).body("x"),
            StatusCode::NOT_FOUND,
            "no exchange",
        ),
        (
            http().post(server.http_url("/api/vhosts/other/exchanges/amq.direct/messages")).body("x"),
            StatusCode::FORBIDDEN,
            "may not use vhost",
        ),
        (
            http().post(&url).header("content-type", ENVELOPE).body("{not json"),
            StatusCode::BAD_REQUEST,
            "invalid envelope",
        ),
        (
            http().post(&url).header("content-type", ENVELOPE).body(r#"{"bogus": 1}"#),
            StatusCode::BAD_REQUEST,
            "invalid envelope",
        ),
        (http().post(&url).header("x-expiration", "-5").body("x"), StatusCode::BAD_REQUEST, "invalid expiration"),
        (http().post(&url).header("x-priority", "high").body("x"), StatusCode::BAD_REQUEST, "not a valid number"),
        (http().post(&url).body(vec![0u8; 4096]), StatusCode::PAYLOAD_TOO_LARGE, ""),
        (http().post(server.http_url("/api/nothing-here")).body("x"), StatusCode::NOT_FOUND, "no such endpoint"),
    ];
    for (req, expected, reason) in cases {
        let (code, body, _) = send(req).await;
        assert_eq!(code, expected, "{body}");
        assert!(body["error"].is_string(), "{body}");
        assert!(body["reason"].as_str().unwrap().contains(reason), "{body}");
    }
    // Credentials are checked before anything else.
    let resp = within(http().post(&url).body("x").send()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = within(http().post(&url).basic_auth("guest", Some("wrong")).body("x").send()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(within(resp.json::<Value>()).await.unwrap()["reason"].is_string());
    let (code, body) = status_of(&server, "0123456789abcdef", "").await;
    assert_eq!((code, body["error"].clone()), (StatusCode::NOT_FOUND, json!("not_found")));
    assert_eq!(q::counts(&ch, &queue).await.unwrap(), (0, 0), "nothing was published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_awaiting_a_reply_gets_the_consumers_reply_in_its_status() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let queue = unique("http-rpc");
    q::declare(&ch, &queue).await;
    let req = http().post(messages_url(&server, "amq.default", &queue)).header("x-await-reply", "true").body("2+2");
    let (code, body, _) = send(req).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();

    // An ordinary AMQP RPC server: reply to reply_to with the correlation id, then ack.
    let mut consumer = q::consume(&ch, &queue, false).await;
    let request = next_delivery(&mut consumer).await;
    let reply_to = request.properties.reply_to().as_ref().expect("a reply-to was set").to_string();
    let correlation = request.properties.correlation_id().as_ref().expect("a correlation id was set").to_string();
    assert_eq!(correlation, id, "the correlation id is the message id");
    let props = lapin::BasicProperties::default()
        .with_correlation_id(correlation.as_str().into())
        .with_content_type("text/plain".into());
    q::publish_props(&ch, "", &reply_to, b"4", props).await;
    within(request.ack(BasicAckOptions::default())).await.unwrap();

    let done = status_until(&server, &id, |s| s["finished"] == json!(true) && s["reply"].is_object()).await;
    assert_eq!(done["outcome"], json!("succeeded"));
    assert_eq!(done["reply"]["body"], json!("4"));
    assert_eq!(done["reply"]["body_encoding"], json!("utf8"));
    assert_eq!(done["reply"]["content_type"], json!("text/plain"));
    assert_eq!(done["reply"]["correlation_id"], json!(id));
    assert!(events(&done).contains(&"replied".to_string()));

    // A reply-to of its own conflicts with awaiting a reply.
    let req = http()
        .post(messages_url(&server, "amq.default", &queue))
        .header("x-await-reply", "true")
        .header("x-reply-to", "elsewhere")
        .body("x");
    assert_eq!(send(req).await.0, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finished_message_is_called_back_signed_and_retried_until_accepted() {
    let server = TestServer::start_with(|c| {
        c.http.callback_backoff_base_ms = 10;
        c.http.callback_secrets.insert("/".into(), SECRET.into());
    })
    .await;
    let (_c, ch) = server.lapin_channel().await;
    let queue = unique("http-callback");
    q::declare(&ch, &queue).await;
    let (hook, mut calls) = webhook_receiver(vec![500, 503], None).await;
    let req = http().post(messages_url(&server, "amq.default", &queue)).header("x-callback-url", &hook).body("job");
    let (code, body, _) = send(req).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let mut consumer = q::consume(&ch, &queue, false).await;
    within(next_delivery(&mut consumer).await.ack(BasicAckOptions::default())).await.unwrap();

    let mut seen = Vec::new();
    for _ in 0..3 {
        let (webhook_id, status) = verified(&within(calls.recv()).await.expect("a callback"));
        assert_eq!(webhook_id, format!("msg_{id}"), "the same id on every attempt");
        assert_eq!((status["id"].clone(), status["outcome"].clone()), (json!(id), json!("succeeded")));
        seen.push(status["callback"]["attempts"].as_array().unwrap().len());
    }
    assert_eq!(seen, [0, 1, 2], "each attempt carries the earlier ones");
    let done = status_until(&server, &id, |s| s["callback"]["state"] == json!("delivered")).await;
    let codes: Vec<Value> =
        done["callback"]["attempts"].as_array().unwrap().iter().map(|a| a["status"].clone()).collect();
    assert_eq!(codes, [json!(500), json!(503), json!(200)]);
    assert_eq!(done["callback"]["url"], json!(hook));
    assert!(done["callback"].get("secret").is_none(), "the secret is never shown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_give_up_after_their_attempts_and_respect_the_allow_list() {
    let server = TestServer::start_with(|c| {
        c.http.callback_backoff_base_ms = 5;
        c.http.callback_max_attempts = 2;
        c.http.callback_allow = vec!["http://127.0.0.1:".into()];
    })
    .await;
    let (hook, mut calls) = webhook_receiver(vec![500, 500, 500], None).await;
    let request = |url: &str| {
        http()
            .post(messages_url(&server, "amq.default", "nobody"))
            .header("x-callback-url", url)
            .header("x-callback-secret", SECRET)
            .body("x")
    };
    let (code, body, _) = send(request(&hook)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let id = body["id"].as_str().unwrap().to_owned();
    let failed = status_until(&server, &id, |s| s["callback"]["state"] == json!("failed")).await;
    assert_eq!(failed["outcome"], json!("failed"), "unroutable");
    assert_eq!(failed["callback"]["attempts"].as_array().unwrap().len(), 2);
    for _ in 0..2 {
        within(calls.recv()).await.expect("an attempt");
    }
    let (code, body, _) = send(request("http://example.com/hook")).await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{body}");
    let no_secret =
        http().post(messages_url(&server, "amq.default", "nobody")).header("x-callback-url", &hook).body("x");
    assert_eq!(send(no_secret).await.0, StatusCode::BAD_REQUEST, "no secret for the vhost");
    let bad_secret = http()
        .post(messages_url(&server, "amq.default", "nobody"))
        .header("x-callback-url", &hook)
        .header("x-callback-secret", "plain-text")
        .body("x");
    assert_eq!(send(bad_secret).await.0, StatusCode::BAD_REQUEST);
}

fn receive_url(server: &TestServer, queue: &str, query: &str) -> String {
    server.http_url(&format!("/api/vhosts/%2F/queues/{queue}/receive?{query}"))
}

async fn receive(server: &TestServer, queue: &str, query: &str) -> Vec<Value> {
    let (code, body, _) = send(http().post(receive_url(server, queue, query))).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body.as_array().unwrap().clone()
}

async fn settle(server: &TestServer, queue: &str, receipt: &str, action: &str) -> StatusCode {
    let url = server.http_url(&format!("/api/vhosts/%2F/queues/{queue}/messages/{receipt}/{action}"));
    within(http().post(url).basic_auth("guest", Some("guest")).send()).await.unwrap().status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pull_consumer_leases_messages_and_acks_nacks_or_extends_them() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let (queue, dlq) = (unique("http-pull"), unique("http-pull-dlq"));
    q::declare_dead_lettering(&ch, &queue, &dlq).await;
    for body in [&b"one"[..], b"two", b"three"] {
        q::publish_props(&ch, "", &queue, body, lapin::BasicProperties::default().with_message_id("m".into())).await;
    }
    let got = receive(&server, &queue, "max=2&lease_ms=60000").await;
    let bodies: Vec<&str> = got.iter().map(|m| m["body"].as_str().unwrap()).collect();
    assert_eq!(bodies, ["one", "two"]);
    assert_eq!(got[0]["properties"]["message_id"], json!("m"));
    assert_eq!(got[0]["redelivered"], json!(false));
    assert_eq!(q::counts(&ch, &queue).await.unwrap(), (1, 0), "two are leased");
    let (first, second) = (got[0]["receipt"].as_str().unwrap(), got[1]["receipt"].as_str().unwrap());
    assert_eq!(settle(&server, &queue, first, "extend").await, StatusCode::NO_CONTENT);
    assert_eq!(settle(&server, &queue, first, "ack").await, StatusCode::NO_CONTENT);
    assert_eq!(settle(&server, &queue, first, "ack").await, StatusCode::NOT_FOUND, "settled already");
    assert_eq!(settle(&server, &queue, second, "nack").await, StatusCode::NO_CONTENT);
    assert_eq!(q::get_body(&ch, &dlq).await, Some(b"two".to_vec()), "nack without requeue dead-letters");
    let third = receive(&server, &queue, "max=10").await;
    assert_eq!(third.len(), 1);
    let receipt = third[0]["receipt"].as_str().unwrap();
    assert_eq!(settle(&server, &queue, receipt, "nack?requeue=true").await, StatusCode::NO_CONTENT);
    let again = receive(&server, &queue, "max=10").await;
    assert_eq!((again[0]["body"].clone(), again[0]["redelivered"].clone()), (json!("three"), json!(true)));
    assert_eq!(settle(&server, &queue, "0123456789abcdef", "ack").await, StatusCode::NOT_FOUND);
    assert_eq!(send(http().post(receive_url(&server, &queue, "max=0"))).await.0, StatusCode::BAD_REQUEST);
    assert_eq!(send(http().post(receive_url(&server, "no-such-queue", "max=1"))).await.0, StatusCode::NOT_FOUND);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expired_lease_returns_its_message_and_an_empty_queue_long_polls() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let queue = unique("http-lease");
    q::declare(&ch, &queue).await;
    q::publish(&ch, "", &queue, b"slow").await;
    let first = receive(&server, &queue, "lease_ms=50").await;
    assert_eq!(first.len(), 1);
    // Not settled: once the lease runs out the message comes back, redelivered.
    let again = receive(&server, &queue, "wait=5").await;
    assert_eq!((again[0]["body"].clone(), again[0]["redelivered"].clone()), (json!("slow"), json!(true)));
    assert_eq!(settle(&server, &queue, first[0]["receipt"].as_str().unwrap(), "ack").await, StatusCode::NOT_FOUND);
    assert_eq!(settle(&server, &queue, again[0]["receipt"].as_str().unwrap(), "ack").await, StatusCode::NO_CONTENT);

    // A long poll on an empty queue answers when a message arrives: woken by the queue, long
    // before its minute of waiting is up.
    let waiting = tokio::spawn({
        let url = receive_url(&server, &queue, "wait=60");
        async move {
            http().post(url).basic_auth("guest", Some("guest")).send().await.unwrap().json::<Value>().await.unwrap()
        }
    });
    let polled = server.broker().vhost("/").unwrap().queue(&queue).unwrap();
    eventually(|| polled.long_polls() == 1, "the receive to wait").await;
    q::publish(&ch, "", &queue, b"late").await;
    let got = within(waiting).await.unwrap();
    assert_eq!(got[0]["body"], json!("late"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_is_still_right_after_a_restart_and_follows_the_message_on() {
    let server = TestServer::start().await;
    let queue = unique("http-durable");
    let id = {
        let (_c, ch) = server.lapin_channel().await;
        let durable = QueueDeclareOptions { durable: true, ..Default::default() };
        within(ch.queue_declare(queue.as_str().into(), durable, FieldTable::default())).await.unwrap();
        let (code, body, _) = send(http().post(messages_url(&server, "amq.default", &queue)).body("survives")).await;
        assert_eq!(code, StatusCode::ACCEPTED);
        body["id"].as_str().unwrap().to_owned()
    };
    let before = status_of(&server, &id, "").await.1;
    let server = server.restart().await;
    let (code, after) = status_of(&server, &id, "").await;
    assert_eq!(code, StatusCode::OK, "{after}");
    assert_eq!(after["events"], before["events"], "the record came back as it was");
    assert_eq!(after["outcome"], json!("pending"));
    let (_c, ch) = server.lapin_channel().await;
    let mut consumer = q::consume(&ch, &queue, false).await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!((d.data.as_slice(), d.redelivered), (&b"survives"[..], false));
    within(d.ack(BasicAckOptions::default())).await.unwrap();
    let done = status_until(&server, &id, |s| s["finished"] == json!(true)).await;
    assert_eq!(done["outcome"], json!("succeeded"));
    assert_eq!(events(&done), ["accepted", "routed", "delivered", "acked"]);
    // And once more across a restart, finished.
    let server = server.restart().await;
    assert_eq!(status_of(&server, &id, "").await.1["outcome"], json!("succeeded"));
}

/// GETs `/api/vhosts/%2F/messages?message_id=M` as guest.
async fn find_by_message_id(server: &TestServer, message_id: &str) -> (StatusCode, Value, Option<String>) {
    let url = server.http_url(&format!("/api/vhosts/%2F/messages?message_id={message_id}"));
    let resp = within(http().get(url).basic_auth("guest", Some("guest")).send()).await.unwrap();
    let (code, location) = (resp.status(), resp.headers().get("content-location").map(|v| v.to_str().unwrap().into()));
    (code, within(resp.json::<Value>()).await.unwrap(), location)
}

fn warren_id(d: &lapin::message::Delivery) -> Option<String> {
    let headers = d.properties.headers().as_ref()?;
    match headers.inner().get("x-warren-id")? {
        AMQPValue::LongString(s) => Some(s.to_string()),
        other => panic!("x-warren-id is {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqp_publishes_opt_in_to_tracking_by_header_or_exchange_argument() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let (queue, exchange) = (unique("amqp-tracked"), unique("tracked-events"));
    q::declare(&ch, &queue).await;
    let mut opt_in = FieldTable::default();
    opt_in.insert("x-warren-track".into(), AMQPValue::Boolean(true));
    let props = lapin::BasicProperties::default().with_message_id("order-1".into()).with_headers(opt_in.clone());
    q::publish_props(&ch, "", &queue, b"by header", props).await;
    q::publish_props(&ch, "", &queue, b"untracked", lapin::BasicProperties::default().with_message_id("plain".into()))
        .await;

    let (code, status, location) = find_by_message_id(&server, "order-1").await;
    assert_eq!(code, StatusCode::OK, "{status}");
    let id = status["id"].as_str().unwrap().to_owned();
    assert_eq!(location, Some(format!("/api/messages/{id}")));
    assert_eq!(events(&status), ["accepted", "routed"]);
    assert_eq!(find_by_message_id(&server, "plain").await.0, StatusCode::NOT_FOUND, "not opted in");
    let mut consumer = q::consume(&ch, &queue, false).await;
    let tracked = next_delivery(&mut consumer).await;
    assert_eq!(warren_id(&tracked), Some(id.clone()), "the consumer sees the tracking id");
    within(tracked.ack(BasicAckOptions::default())).await.unwrap();
    let plain = next_delivery(&mut consumer).await;
    assert_eq!(warren_id(&plain), None, "only the broker sets x-warren-id");
    within(plain.ack(BasicAckOptions::default())).await.unwrap();
    let done = status_until(&server, &id, |s| s["finished"] == json!(true)).await;
    assert_eq!(done["outcome"], json!("succeeded"));
    assert_eq!(events(&done), ["accepted", "routed", "delivered", "acked"]);

    // An exchange declared with x-warren-track tracks everything published to it.
    let opts = ExchangeDeclareOptions::default();
    within(ch.exchange_declare(exchange.as_str().into(), lapin::ExchangeKind::Fanout, opts, opt_in)).await.unwrap();
    q::bind(&ch, &queue, &exchange, "").await;
    q::publish(&ch, &exchange, "", b"by exchange").await;
    let by_exchange = next_delivery(&mut consumer).await;
    let id = warren_id(&by_exchange).expect("tracked by the exchange");
    within(by_exchange.nack(BasicNackOptions { requeue: false, ..Default::default() })).await.unwrap();
    let done = status_until(&server, &id, |s| s["finished"] == json!(true)).await;
    assert_eq!(done["outcome"], json!("failed"), "rejected without a dead-letter exchange: dropped");
    assert_eq!(events(&done).last().map(String::as_str), Some("dropped"));
    drop((consumer, _c, ch));

    let server = server.restart().await;
    let (code, status, _) = find_by_message_id(&server, "order-1").await;
    assert_eq!((code, status["outcome"].clone()), (StatusCode::OK, json!("succeeded")), "found after a restart");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_the_disk_cannot_take_fails_with_not_stored() {
    let fs = Arc::new(warren_store::FaultyFs::new());
    let server = TestServer::start_on(fs.clone(), |_| {}).await;
    let (_c, ch) = server.lapin_channel().await;
    let queue = unique("http-disk");
    let opts = QueueDeclareOptions { durable: true, ..Default::default() };
    within(ch.queue_declare(queue.as_str().into(), opts, FieldTable::default())).await.unwrap();
    fs.set_space_limit(Some(fs.used_bytes()));
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (code, body, _) =
            send(http().post(messages_url(&server, "amq.default", &queue)).body("z".repeat(4096))).await;
        assert_eq!(code, StatusCode::ACCEPTED, "{body}");
        ids.push(body["id"].as_str().unwrap().to_owned());
    }
    for (n, id) in ids.iter().enumerate() {
        let failed = status_until(&server, id, |s| s["finished"] == json!(true)).await;
        assert_eq!(failed["outcome"], json!("failed"), "{failed}");
        assert_eq!(events(&failed).last().map(String::as_str), Some("not_stored"), "{failed}");
        if n == 0 {
            // Routed before the store found the disk full: its write failed afterwards.
            let last = failed["events"].as_array().unwrap().last().unwrap().clone();
            assert_eq!(last["queue"], json!(queue), "{failed}");
        }
    }
    assert_eq!(q::counts(&ch, &queue).await.unwrap(), (0, 0), "nothing the disk refused is in the queue");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_openapi_document_is_served_and_every_operation_in_it_exists() {
    let server = TestServer::start().await;
    let resp = within(http().get(server.http_url("/api/openapi.json")).send()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let served: Value = within(resp.json()).await.unwrap();
    let checked_in: Value =
        serde_json::from_str(include_str!("../../../docs/openapi.json")).expect("docs/openapi.json is JSON");
    assert_eq!(served, checked_in);
    assert!(served["openapi"].as_str().unwrap().starts_with("3."));
    let paths = served["paths"].as_object().unwrap();
    assert_eq!(paths.len(), 88, "{:?}", paths.keys());
    for (path, operations) in paths {
        // Fill the path's parameters with something; the broker must know the route (an
        // unknown one answers "no such endpoint", a wrong method 405).
        let concrete = path.split('/').map(|s| if s.starts_with('{') { "x" } else { s }).collect::<Vec<_>>().join("/");
        for (method, operation) in operations.as_object().unwrap() {
            assert!(operation["responses"].as_object().is_some_and(|r| !r.is_empty()), "{method} {path}");
            let method = reqwest::Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            if operation["responses"]["200"]["content"].get("text/plain").is_some() {
                // Prometheus' text format, not JSON.
                let resp = within(http().request(method.clone(), server.http_url(&concrete)).send()).await.unwrap();
                assert_eq!(resp.status(), StatusCode::OK, "{method} {path}");
                continue;
            }
            let (code, body, _) = send(http().request(method.clone(), server.http_url(&concrete))).await;
            assert_ne!(code, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}: {body}");
            assert_ne!(body["reason"], json!("no such endpoint"), "{method} {path}");
        }
    }
    // The broker's own rejections are JSON errors too.
    let (code, body, _) = send(http().delete(server.http_url("/api/openapi.json"))).await;
    assert_eq!((code, body["error"].clone()), (StatusCode::METHOD_NOT_ALLOWED, json!("method_not_allowed")));
    let (code, body, _) = send(http().post(receive_url(&server, "q", "max=x"))).await;
    assert_eq!((code, body["error"].clone()), (StatusCode::BAD_REQUEST, json!("bad_request")), "{body}");
    let (code, body, _) = send(http().post(receive_url(&server, "q", "colour=red"))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "unknown parameters are refused: {body}");
}

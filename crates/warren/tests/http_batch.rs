//! Batch publish over HTTP: many JSON envelopes in one request, one `202` with every message's
//! id in order; the batch is checked whole (one bad message refuses it, naming it, with nothing
//! published); a contract refuses a message alone; an Idempotency-Key replays the answer.

mod common;

use common::http::*;
use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn batch_url(server: &TestServer, exchange: &str) -> String {
    server.http_url(&format!("/api/vhosts/%2F/exchanges/{exchange}/messages/batch"))
}

/// A batch of text messages to `queue` through the default exchange.
fn batch_of(queue: &str, bodies: &[&str]) -> Value {
    json!({"messages": bodies.iter().map(|b| json!({"routing_key": queue, "body": b})).collect::<Vec<_>>()})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_published_in_order_with_an_id_for_each_message() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let queue = unique("batch");
    q::declare(&ch, &queue).await;
    let (code, body, _) =
        send(http().post(batch_url(&server, "amq.default")).json(&batch_of(&queue, &["one", "two", "three"]))).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let answers = body["messages"].as_array().unwrap();
    assert_eq!(answers.len(), 3);
    let ids: Vec<&str> = answers.iter().map(|a| a["id"].as_str().unwrap()).collect();
    for a in answers {
        assert_eq!(a["routed_queues"], 1, "{a}");
        assert_eq!(a["status_url"], format!("/api/messages/{}", a["id"].as_str().unwrap()));
    }
    // Delivered in the batch's order, each carrying its own id.
    let mut consumer = q::consume(&ch, &queue, true).await;
    for (expected_body, id) in ["one", "two", "three"].iter().zip(&ids) {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(d.data, expected_body.as_bytes());
        let headers = d.properties.headers().clone().unwrap_or_default();
        let carried = headers.inner().get("x-warren-id").and_then(|v| v.as_long_string()).map(|s| s.to_string());
        assert_eq!(carried.as_deref(), Some(*id));
    }
    // And each is tracked.
    let (code, status, _) = send(http().get(server.http_url(&format!("/api/messages/{}", ids[2])))).await;
    assert_eq!(code, StatusCode::OK, "{status}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_with_one_bad_message_is_refused_whole() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let queue = unique("batch-bad");
    q::declare(&ch, &queue).await;
    let url = batch_url(&server, "amq.default");
    let mut batch = batch_of(&queue, &["fine", "bad", "fine too"]);
    batch["messages"][1]["body_encoding"] = json!("rot13");
    let (code, body, _) = send(http().post(&url).json(&batch)).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["reason"].as_str().unwrap().starts_with("message 1: "), "{body}");

    let too_many = batch_of(&queue, &vec!["x"; 1001]);
    let empty = json!({"messages": []});
    for refused in [too_many, empty, json!({"messages": [{"bogus": 1}]}), json!([1, 2])] {
        let (code, body, _) = send(http().post(&url).json(&refused)).await;
        assert_eq!(code, StatusCode::BAD_REQUEST, "{body}");
    }
    let (code, _, _) = send(http().post(&url).header("content-type", "text/plain").body("{}")).await;
    assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let (code, _, _) = send(http().post(batch_url(&server, "no-such-exchange")).json(&batch_of(&queue, &["x"]))).await;
    assert_eq!(code, StatusCode::NOT_FOUND);
    assert_eq!(q::counts(&ch, &queue).await.unwrap().0, 0, "nothing of a refused batch was published");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_contract_refuses_one_message_of_a_batch_alone() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let queue = unique("batch-contract");
    q::declare(&ch, &queue).await;
    let contract = json!({
        "exchange": "",
        "routing_key": queue,
        "schema": {"type": "object", "required": ["id"], "properties": {"id": {"type": "integer"}}},
    });
    let (code, body, _) = send(http().put(server.http_url("/api/contracts/%2F/batch-order")).json(&contract)).await;
    assert_eq!(code, StatusCode::CREATED, "{body}");
    let json_message =
        |body: &str| json!({"routing_key": queue, "body": body, "properties": {"content_type": "application/json"}});
    let batch = json!({"messages": [json_message(r#"{"id": 1}"#), json_message(r#"{"id": "two"}"#), json_message(r#"{"id": 3}"#)]});
    let (code, body, _) = send(http().post(batch_url(&server, "amq.default")).json(&batch)).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{body}");
    let answers = body["messages"].as_array().unwrap();
    assert_eq!((answers[0]["routed_queues"].as_u64(), answers[2]["routed_queues"].as_u64()), (Some(1), Some(1)));
    assert_eq!(answers[1]["status"], 422, "{body}");
    assert_eq!(answers[1]["contract"], "batch-order");
    assert!(answers[1]["violations"].as_array().is_some_and(|v| !v.is_empty()), "{body}");
    assert_eq!(q::counts(&ch, &queue).await.unwrap().0, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_batch_with_the_same_idempotency_key_publishes_nothing_more() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let queue = unique("batch-retry");
    q::declare(&ch, &queue).await;
    let post = || {
        http()
            .post(batch_url(&server, "amq.default"))
            .header("idempotency-key", "k-1")
            .json(&batch_of(&queue, &["a", "b"]))
    };
    let (code, first, _) = send(post()).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{first}");
    let (code, again, _) = send(post()).await;
    assert_eq!(code, StatusCode::ACCEPTED, "{again}");
    let ids = |v: &Value| v["messages"].as_array().unwrap().iter().map(|m| m["id"].clone()).collect::<Vec<_>>();
    assert_eq!(ids(&first), ids(&again));
    assert_eq!(q::counts(&ch, &queue).await.unwrap().0, 2);
}

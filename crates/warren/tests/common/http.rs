//! Helpers for the HTTP API tests: a reqwest client with the guest user, and a local HTTP
//! server standing in for a client's webhook endpoint (callbacks, push subscriptions).

use super::within;
use reqwest::StatusCode;
use serde_json::Value;
use std::sync::Arc;
use tokio::sync::{mpsc, Semaphore};

/// A Standard Webhooks secret (the specification's example).
pub const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

pub fn http() -> reqwest::Client {
    reqwest::Client::new()
}

/// Sends as guest and returns (status, JSON body or Null, Location header).
pub async fn send(req: reqwest::RequestBuilder) -> (StatusCode, Value, Option<String>) {
    let resp = within(req.basic_auth("guest", Some("guest")).send()).await.expect("HTTP request");
    let status = resp.status();
    let location = resp.headers().get("location").map(|v| v.to_str().unwrap().to_owned());
    let bytes = within(resp.bytes()).await.expect("a body");
    let body = if bytes.is_empty() { Value::Null } else { serde_json::from_slice(&bytes).expect("a JSON body") };
    (status, body, location)
}

/// One request a [`webhook_receiver`] got.
pub type Call = (axum::http::HeaderMap, bytes::Bytes);

/// A local HTTP server on 127.0.0.1:0: it hands every request to the test, then (with a
/// `gate`) waits for a permit, and answers with the next of `answers` (200 after they run out).
pub async fn webhook_receiver(
    answers: Vec<u16>,
    gate: Option<Arc<Semaphore>>,
) -> (String, mpsc::UnboundedReceiver<Call>) {
    use axum::http::StatusCode as Code;
    let (tx, rx) = mpsc::unbounded_channel();
    let answers = Arc::new(std::sync::Mutex::new(answers.into_iter()));
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |headers: axum::http::HeaderMap, body: bytes::Bytes| {
            let (tx, answers, gate) = (tx.clone(), answers.clone(), gate.clone());
            async move {
                let _ = tx.send((headers, body));
                if let Some(gate) = gate {
                    gate.acquire().await.expect("gate open").forget();
                }
                let code = answers.lock().unwrap().next().unwrap_or(200);
                Code::from_u16(code).unwrap()
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, rx)
}

/// Checks a webhook call's Standard Webhooks signature against [`SECRET`]; returns its
/// `webhook-id` and its JSON body.
pub fn verified(call: &Call) -> (String, Value) {
    let (headers, payload) = call;
    let header = |name: &str| headers.get(name).unwrap_or_else(|| panic!("no {name}")).to_str().unwrap().to_owned();
    let (webhook_id, timestamp) = (header("webhook-id"), header("webhook-timestamp"));
    let key = warren_http::secret_key(SECRET).unwrap();
    let expected = warren_http::signature(&key, &webhook_id, timestamp.parse().unwrap(), payload);
    assert_eq!(header("webhook-signature"), expected, "signed as Standard Webhooks say");
    (webhook_id, serde_json::from_slice(payload).expect("a JSON payload"))
}

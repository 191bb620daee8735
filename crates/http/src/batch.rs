//! `POST /api/vhosts/{vhost}/exchanges/{exchange}/messages/batch`: publish up to 1,000
//! messages in one request, each a JSON envelope, and answer one `202 Accepted` with every
//! message's id and status URL, in order. The batch is checked whole before anything is
//! published: one invalid message refuses the batch (400, naming it). A message a contract
//! refuses is refused alone: its entry carries the 422 error instead of an id.

use crate::publish::{self, accepted_json, Envelope};
use crate::{Api, ApiError};
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use std::net::SocketAddr;
use std::sync::Arc;
use warren_broker::tracking::id_text;

/// Messages one batch may hold.
pub const MAX_BATCH_MESSAGES: usize = 1000;

/// Marks, in the ids remembered for an Idempotency-Key, a message a contract refused.
const REFUSED: &str = "!";

/// A message of a batch answered again for a retry with the same Idempotency-Key: its id and
/// status URL, and for one a contract refused, its status (the rest is behind its status URL).
fn replayed(remembered: &str) -> Value {
    match remembered.strip_prefix(REFUSED) {
        None => accepted_json(remembered, None),
        Some(id) => {
            let mut entry = accepted_json(id, None);
            entry["status"] = json!(StatusCode::UNPROCESSABLE_ENTITY.as_u16());
            entry
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Batch {
    messages: Vec<Envelope>,
}

pub async fn publish_batch(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path((vhost_name, exchange)): Path<(String, String)>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let (user, exchange) = publish::authorize_publish(&api, &headers, peer, &vhost_name, exchange)?;
    let body = publish::request_body(body, api.settings.max_body_bytes, "the batch")?;
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
    if !is_json {
        return Err(ApiError::new(StatusCode::UNSUPPORTED_MEDIA_TYPE, "a batch is application/json"));
    }
    let vhost = api.broker.vhost(&vhost_name).ok_or_else(|| ApiError::not_found(format!("no vhost '{vhost_name}'")))?;
    // What would refuse every message alike refuses the batch, before anything is tracked.
    match vhost.exchange(&exchange) {
        None => return Err(ApiError::not_found(format!("no exchange '{exchange}' in vhost '{vhost_name}'"))),
        Some(x) if x.def.internal => {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                format!("cannot publish to internal exchange '{exchange}' in vhost '{vhost_name}'"),
            ))
        }
        Some(_) => {}
    }
    let raw_idempotency_key = publish::header_text(&headers, "idempotency-key")?;
    let idempotency_key = raw_idempotency_key.as_ref().map(|k| format!("{user}\0{vhost_name}\0batch\0{k}"));
    if let Some(ids) = idempotency_key.as_deref().and_then(|k| api.idempotency.get(k)) {
        let messages: Vec<Value> = ids.split(',').map(replayed).collect();
        return Ok((StatusCode::ACCEPTED, Json(json!({ "messages": messages }))).into_response());
    }
    let batch: Batch =
        serde_json::from_slice(&body).map_err(|e| ApiError::bad_request(format!("invalid batch: {e}")))?;
    if batch.messages.is_empty() || batch.messages.len() > MAX_BATCH_MESSAGES {
        return Err(ApiError::bad_request(format!(
            "a batch holds 1 to {MAX_BATCH_MESSAGES} messages, not {}",
            batch.messages.len()
        )));
    }
    // Every message is checked before any is published: a refused batch published nothing.
    let mut checked = Vec::with_capacity(batch.messages.len());
    for (index, envelope) in batch.messages.into_iter().enumerate() {
        let in_batch = |e: ApiError| e.prefixed(&format!("message {index}: "));
        let (props, body, routing_key, options) = publish::envelope_parts(envelope).map_err(in_batch)?;
        if body.len() as u64 > api.broker.limits().max_message_size_bytes {
            let e = ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "the message body is larger than allowed");
            return Err(in_batch(e));
        }
        let one = publish::check(&api, &vhost_name, &exchange, props, body, routing_key, options).map_err(in_batch)?;
        checked.push(one);
    }
    api.broker.transform_book().wait_for_room().await;
    publish::refuse_while_alarmed(&api)?;
    let mut messages = Vec::with_capacity(checked.len());
    let mut ids = Vec::with_capacity(checked.len());
    for (index, one) in checked.into_iter().enumerate() {
        // A batch-wide Idempotency-Key makes each message's deduplication key its own.
        let dedup_key = raw_idempotency_key.as_ref().map(|k| format!("{k}/{index}"));
        let (message, track) = publish::start(&api, one, dedup_key);
        let id = id_text(track);
        match publish::route(&api, &vhost, &exchange, message) {
            Ok(routed) => {
                messages.push(accepted_json(&id, Some(&routed)));
                ids.push(id);
            }
            Err(refused) => {
                // Refused alone; its status URL tells the same.
                let mut entry = refused.to_json();
                entry["id"] = json!(id);
                entry["status_url"] = json!(format!("/api/messages/{id}"));
                messages.push(entry);
                ids.push(format!("{REFUSED}{id}"));
            }
        }
    }
    if let Some(key) = idempotency_key {
        api.idempotency.remember(key, ids.join(","));
    }
    Ok((StatusCode::ACCEPTED, Json(json!({ "messages": messages }))).into_response())
}

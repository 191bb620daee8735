//! `/api/queues`: list, show, declare, delete, purge, and get messages (with RabbitMQ's ack modes).

use crate::auth::Caller;
use crate::error::{MgmtError, Result};
use crate::listing::ListQuery;
use crate::{body, view, Mgmt};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use base64::Engine;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use warren_broker::permissions::{Access, Resource};
use warren_broker::QueueDeclare;
use warren_core::json::{json_to_table, properties_to_json};

/// The management API has no connection: its declares are never exclusive.
const NO_CONNECTION: u64 = 0;
/// Most messages one get request returns, and the body bytes after which it stops taking more.
const MAX_GET_COUNT: u64 = 10_000;
const MAX_GET_BYTES: usize = 16 * 1024 * 1024;

pub async fn list(State(m): State<Arc<Mgmt>>, caller: Caller, Query(q): Query<ListQuery>) -> Result<Json<Value>> {
    let mut items = Vec::new();
    for v in m.visible_vhosts(&caller) {
        items.extend(all_of(&v));
    }
    respond(&m, &q, items)
}

/// The vhost's queues, by name.
fn all_of(v: &warren_broker::VHost) -> Vec<Arc<warren_broker::Queue>> {
    let mut names = v.queue_names();
    names.sort();
    names.iter().filter_map(|n| v.queue(n)).collect()
}

/// Filters, sorts and pages the queues themselves, and makes the JSON of the page only: with
/// 10,000 queues, making every queue's JSON was nearly all of a request's time.
fn respond(m: &Mgmt, q: &ListQuery, queues: Vec<Arc<warren_broker::Queue>>) -> Result<Json<Value>> {
    q.respond_with(queues, |queue| queue.name.to_string(), sort_key, |queue| view::queue(&queue, &m.node, &m.rates))
}

/// The fields a queue list is commonly sorted by, as its JSON holds them.
fn sort_key(queue: &Arc<warren_broker::Queue>, field: &str) -> Option<Value> {
    let counts = || queue.message_counts();
    Some(match field {
        "name" => json!(queue.name.as_str()),
        "vhost" => json!(queue.vhost),
        "durable" => json!(queue.durable),
        "auto_delete" => json!(queue.auto_delete),
        "exclusive" => json!(queue.exclusive_owner.is_some()),
        "messages" => {
            let (ready, unacked, _) = counts();
            json!(ready + unacked)
        }
        "messages_ready" => json!(counts().0),
        "messages_unacknowledged" => json!(counts().1),
        "consumers" => json!(counts().2),
        _ => return None,
    })
}

pub async fn list_vhost(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    let v = m.visible_vhost(&caller, &vhost)?;
    respond(&m, &q, all_of(&v))
}

pub async fn show(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let v = m.visible_vhost(&caller, &vhost)?;
    let q = v.queue(&name).ok_or_else(MgmtError::not_found)?;
    let mut out = view::queue(&q, &m.node, &m.rates);
    let consumers: Vec<Value> = q.consumers().iter().map(|c| view::consumer(&m.broker, &q, c, &m.node)).collect();
    out["consumer_details"] = Value::Array(consumers);
    Ok(Json(out))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct DeclareBody {
    #[serde(deserialize_with = "body::optional_boolean")]
    durable: Option<bool>,
    #[serde(deserialize_with = "body::boolean")]
    auto_delete: bool,
    arguments: Value,
    /// Accepted for compatibility; Warren has one node.
    #[allow(dead_code)]
    node: Option<String>,
}

pub async fn declare(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode> {
    caller.require(&vhost, Access::Configure, Resource::Queue, &name)?;
    let v = m.vhost(&vhost)?;
    let body: DeclareBody = body::parse(&body)?;
    let arguments = json_to_table(&body.arguments).map_err(MgmtError::bad_request)?;
    if let Some(amqp_codec::FieldValue::LongStr(dlx)) = arguments.get("x-dead-letter-exchange") {
        caller.require(&vhost, Access::Write, Resource::Exchange, &String::from_utf8_lossy(dlx))?;
        caller.require(&vhost, Access::Read, Resource::Queue, &name)?;
    }
    let name = body::short_name(&name, "queue name")?;
    let existed = v.queue(&name).is_some();
    let req = QueueDeclare {
        server_named: false,
        name,
        passive: false,
        // RabbitMQ's API declares durable queues unless told otherwise.
        durable: body.durable.unwrap_or(true),
        exclusive: false,
        auto_delete: body.auto_delete,
        arguments,
    };
    v.declare_queue(req, NO_CONNECTION, m.broker.limits().max_queues)?;
    m.answered(!existed).await
}

#[derive(Deserialize, Default)]
pub struct DeleteQuery {
    #[serde(rename = "if-empty", default)]
    if_empty: bool,
    #[serde(rename = "if-unused", default)]
    if_unused: bool,
}

pub async fn delete(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(d): Query<DeleteQuery>,
) -> Result<StatusCode> {
    caller.require(&vhost, Access::Configure, Resource::Queue, &name)?;
    let v = m.vhost(&vhost)?;
    if v.queue(&name).is_none() {
        return Err(MgmtError::not_found());
    }
    v.delete_queue(&name, d.if_unused, d.if_empty, NO_CONNECTION)?;
    m.durable().await?;
    Ok(StatusCode::NO_CONTENT)
}

pub async fn purge(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<StatusCode> {
    caller.require(&vhost, Access::Read, Resource::Queue, &name)?;
    let v = m.vhost(&vhost)?;
    v.purge_queue(&name, NO_CONNECTION)?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct GetBody {
    #[serde(deserialize_with = "body::count")]
    count: u64,
    ackmode: String,
    #[serde(default = "auto")]
    encoding: String,
    #[serde(default, deserialize_with = "body::optional_count")]
    truncate: Option<u64>,
}

fn auto() -> String {
    "auto".into()
}

/// `POST .../get`: takes up to `count` messages; `ack_requeue_true` and `reject_requeue_true`
/// put them back (marked redelivered), `ack_requeue_false` and `reject_requeue_false` remove them
/// (the reject modes dead-letter, as a basic.reject would).
pub async fn get_messages(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>> {
    let body: GetBody = body::parse(&body)?;
    caller.require(&vhost, Access::Read, Resource::Queue, &name)?;
    let v = m.vhost(&vhost)?;
    let q = v.queue_for(&name, NO_CONNECTION)?;
    let (requeue, reject) = match body.ackmode.as_str() {
        "ack_requeue_true" => (true, false),
        "reject_requeue_true" => (true, true),
        "ack_requeue_false" => (false, false),
        "reject_requeue_false" => (false, true),
        other => return Err(MgmtError::bad_request(format!("unknown ackmode '{other}'"))),
    };
    if !matches!(body.encoding.as_str(), "auto" | "base64") {
        return Err(MgmtError::bad_request(format!("unknown encoding '{}'", body.encoding)));
    }
    if body.count > MAX_GET_COUNT {
        return Err(MgmtError::bad_request(format!("count is at most {MAX_GET_COUNT}")));
    }
    let mut taken = Vec::new();
    let mut out = Vec::new();
    let mut bytes = 0usize;
    for _ in 0..body.count {
        if bytes >= MAX_GET_BYTES {
            break;
        }
        let Some((entry, remaining)) = q.get(false) else { break };
        bytes += entry.message.body.len();
        let mut one = message_json(&entry.message, entry.redelivered, &body.encoding, body.truncate);
        one["message_count"] = json!(remaining);
        out.push(one);
        taken.push(entry.seq);
    }
    match (requeue, reject) {
        (true, _) => q.requeue(taken),
        (false, true) => q.reject(taken),
        (false, false) => q.ack(taken),
    }
    Ok(Json(Value::Array(out)))
}

/// A message as RabbitMQ's `get` shows it: `encoding` `auto` gives text bodies as strings,
/// `base64` always base64; `truncate` cuts the payload shown.
pub fn message_json(m: &warren_core::Message, redelivered: bool, encoding: &str, truncate: Option<u64>) -> Value {
    let props = m.decode_properties().unwrap_or_default();
    let payload = match truncate {
        Some(limit) if m.body.len() as u64 > limit => &m.body[..limit as usize],
        _ => &m.body[..],
    };
    let (payload, encoding) = match (encoding, std::str::from_utf8(payload)) {
        ("auto", Ok(text)) => (text.to_owned(), "string"),
        _ => (base64::engine::general_purpose::STANDARD.encode(payload), "base64"),
    };
    json!({
        "payload_bytes": m.body.len(),
        "redelivered": redelivered,
        "exchange": m.exchange.as_str(),
        "routing_key": m.routing_key.as_str(),
        "properties": properties_to_json(&props),
        "payload": payload,
        "payload_encoding": encoding,
    })
}

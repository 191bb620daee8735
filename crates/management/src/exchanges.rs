//! `/api/exchanges`: list, show, declare, delete, and publish a message. In paths the default
//! exchange is `amq.default`, as in RabbitMQ's API.

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
use warren_core::json::{json_to_properties, json_to_table};
use warren_core::{ExchangeDef, ExchangeKind, Message};

/// The exchange a path names: `amq.default` is the nameless default exchange.
pub fn exchange_name(path_name: &str) -> &str {
    if path_name == "amq.default" {
        ""
    } else {
        path_name
    }
}

/// The vhost's exchanges by name, each with its vhost's name.
fn all_of(v: &warren_broker::VHost) -> Vec<(String, Arc<warren_broker::Exchange>)> {
    let mut exchanges = v.exchanges();
    exchanges.sort_by(|a, b| a.name().cmp(b.name()));
    exchanges.into_iter().map(|x| (v.name.clone(), x)).collect()
}

/// Filters, sorts and pages the exchanges themselves, making the JSON of the page only.
fn respond(q: &ListQuery, exchanges: Vec<(String, Arc<warren_broker::Exchange>)>) -> Result<Json<Value>> {
    let sort_key = |(vhost, x): &(String, Arc<warren_broker::Exchange>), field: &str| -> Option<Value> {
        Some(match field {
            "name" => json!(x.name()),
            "vhost" => json!(vhost),
            _ => return None,
        })
    };
    q.respond_with(exchanges, |(_, x)| x.name().to_owned(), sort_key, |(vhost, x)| view::exchange(&x, &vhost))
}

pub async fn list(State(m): State<Arc<Mgmt>>, caller: Caller, Query(q): Query<ListQuery>) -> Result<Json<Value>> {
    respond(&q, m.visible_vhosts(&caller).iter().flat_map(|v| all_of(v)).collect())
}

pub async fn list_vhost(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    let v = m.visible_vhost(&caller, &vhost)?;
    respond(&q, all_of(&v))
}

pub async fn show(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Value>> {
    let v = m.visible_vhost(&caller, &vhost)?;
    let x = v.exchange(exchange_name(&name)).ok_or_else(MgmtError::not_found)?;
    Ok(Json(view::exchange(&x, &vhost)))
}

#[derive(Deserialize)]
pub struct DeclareBody {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "yes", deserialize_with = "body::boolean")]
    durable: bool,
    #[serde(default, deserialize_with = "body::boolean")]
    auto_delete: bool,
    #[serde(default, deserialize_with = "body::boolean")]
    internal: bool,
    #[serde(default)]
    arguments: Value,
}

fn yes() -> bool {
    true
}

pub async fn declare(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode> {
    let body: DeclareBody = body::parse(&body)?;
    caller.require(&vhost, Access::Configure, Resource::Exchange, &name)?;
    let v = m.vhost(&vhost)?;
    if exchange_name(&name).is_empty() {
        return Err(MgmtError::forbidden("operation not permitted on the default exchange"));
    }
    let arguments = json_to_table(&body.arguments).map_err(MgmtError::bad_request)?;
    if let Some(amqp_codec::FieldValue::LongStr(alternate)) = arguments.get("alternate-exchange") {
        caller.require(&vhost, Access::Write, Resource::Exchange, &String::from_utf8_lossy(alternate))?;
        caller.require(&vhost, Access::Read, Resource::Exchange, &name)?;
    }
    let (kind, delayed): (ExchangeKind, bool) = ExchangeKind::declared(&body.kind, &arguments)?;
    let name = body::short_name(&name, "exchange name")?;
    let existed = v.exchange(&name).is_some();
    let def = ExchangeDef {
        name,
        kind,
        durable: body.durable,
        auto_delete: body.auto_delete,
        internal: body.internal,
        arguments,
        delayed,
    };
    v.declare_exchange(def, false, m.broker.limits().max_exchanges)?;
    m.answered(!existed).await
}

#[derive(Deserialize, Default)]
pub struct DeleteQuery {
    #[serde(rename = "if-unused", default)]
    if_unused: bool,
}

pub async fn delete(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(d): Query<DeleteQuery>,
) -> Result<StatusCode> {
    caller.require(&vhost, Access::Configure, Resource::Exchange, exchange_name(&name))?;
    let v = m.vhost(&vhost)?;
    let name = exchange_name(&name);
    if v.exchange(name).is_none() {
        return Err(MgmtError::not_found());
    }
    v.delete_exchange(name, d.if_unused)?;
    m.durable().await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Deserialize)]
pub struct PublishBody {
    #[serde(default)]
    properties: Value,
    routing_key: String,
    payload: String,
    #[serde(default = "string")]
    payload_encoding: String,
}

fn string() -> String {
    "string".into()
}

/// `POST .../publish`: routes one message; answers whether any queue took it.
pub async fn publish(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>> {
    let body: PublishBody = body::parse(&body)?;
    caller.require(&vhost, Access::Write, Resource::Exchange, exchange_name(&name))?;
    let v = m.vhost(&vhost)?;
    let exchange = exchange_name(&name);
    let props = json_to_properties(&body.properties).map_err(MgmtError::bad_request)?;
    if let Some(claimed) = props.user_id.as_ref().filter(|u| u.as_str() != caller.name) {
        return Err(MgmtError::bad_request(format!(
            "user_id property set to '{claimed}' but authenticated user was '{}'",
            caller.name
        )));
    }
    let payload = match body.payload_encoding.as_str() {
        "string" => Bytes::from(body.payload.into_bytes()),
        "base64" => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(body.payload.as_bytes())
                .map_err(|_| MgmtError::bad_request("payload is not base64"))?,
        ),
        other => return Err(MgmtError::bad_request(format!("unknown payload_encoding '{other}'"))),
    };
    if payload.len() as u64 > m.broker.limits().max_message_size_bytes {
        return Err(MgmtError::bad_request("payload is larger than the configured maximum message size"));
    }
    let routing_key = body::short_name(&body.routing_key, "routing_key")?;
    let message = Message::new(exchange.into(), routing_key, props.to_raw(), payload).at(m.broker.now_ms());
    let routed = m.broker.publish(&v, exchange, Arc::new(message), None)?;
    Ok(Json(json!({"routed": routed.queues > 0})))
}

//! `/api/bindings` and the binding lists of exchanges and queues: list, show, create and delete
//! bindings between an exchange and a queue (`q`) or another exchange (`e`).

use crate::auth::Caller;
use crate::error::{MgmtError, Result};
use crate::exchanges::exchange_name;
use crate::listing::ListQuery;
use crate::{body, view, Mgmt};
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use warren_broker::permissions::{Access, Resource};
use warren_broker::Dest;
use warren_core::json::json_to_table;

pub async fn list(State(m): State<Arc<Mgmt>>, caller: Caller, Query(q): Query<ListQuery>) -> Result<Json<Value>> {
    q.respond(m.visible_vhosts(&caller).iter().flat_map(|v| view::bindings_of(&m.broker, &v.name)).collect())
}

pub async fn list_vhost(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    m.visible_vhost(&caller, &vhost)?;
    q.respond(view::bindings_of(&m.broker, &vhost))
}

/// The vhost's bindings that `keep` selects, after checking the named object exists.
fn select(m: &Mgmt, caller: &Caller, vhost: &str, exists: bool, keep: impl Fn(&Value) -> bool) -> Result<Vec<Value>> {
    m.visible_vhost(caller, vhost)?;
    if !exists {
        return Err(MgmtError::not_found());
    }
    Ok(view::bindings_of(&m.broker, vhost).into_iter().filter(|b| keep(b)).collect())
}

fn is(b: &Value, field: &str, value: &str) -> bool {
    b[field].as_str() == Some(value)
}

pub async fn of_source(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    let name = exchange_name(&name);
    let exists = m.broker.vhost(&vhost).and_then(|v| v.exchange(name)).is_some();
    q.respond(select(&m, &caller, &vhost, exists, |b| is(b, "source", name))?)
}

pub async fn of_destination(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    let name = exchange_name(&name);
    let exists = m.broker.vhost(&vhost).and_then(|v| v.exchange(name)).is_some();
    q.respond(select(&m, &caller, &vhost, exists, |b| {
        is(b, "destination_type", "exchange") && is(b, "destination", name)
    })?)
}

pub async fn of_queue(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    let exists = m.broker.vhost(&vhost).and_then(|v| v.queue(&name)).is_some();
    q.respond(select(&m, &caller, &vhost, exists, |b| {
        is(b, "destination_type", "queue") && is(b, "destination", &name)
    })?)
}

/// The two ends a binding path names; `kind` is `q` or `e`.
fn ends(m: &Mgmt, vhost: &str, source: &str, kind: &str, destination: &str) -> Result<Dest> {
    let v = m.vhost(vhost)?;
    v.exchange(exchange_name(source)).ok_or_else(MgmtError::not_found)?;
    match kind {
        "q" => v.queue(destination).map(Dest::Queue).ok_or_else(MgmtError::not_found),
        "e" => v.exchange(exchange_name(destination)).map(Dest::Exchange).ok_or_else(MgmtError::not_found),
        _ => Err(MgmtError::not_found()),
    }
}

/// Binding and unbinding need write on the destination and read on the source, as over AMQP.
fn check_bind(caller: &Caller, vhost: &str, source: &str, kind: &str, destination: &str) -> Result<()> {
    let (resource, destination) = match kind {
        "q" => (Resource::Queue, destination),
        _ => (Resource::Exchange, exchange_name(destination)),
    };
    caller.require(vhost, Access::Write, resource, destination)?;
    caller.require(vhost, Access::Read, Resource::Exchange, exchange_name(source))
}

fn between_list(m: &Mgmt, vhost: &str, source: &str, kind: &str, destination: &str) -> Vec<Value> {
    let kind = if kind == "q" { "queue" } else { "exchange" };
    let destination = if kind == "exchange" { exchange_name(destination) } else { destination };
    view::bindings_of(&m.broker, vhost)
        .into_iter()
        .filter(|b| {
            is(b, "source", exchange_name(source))
                && is(b, "destination_type", kind)
                && is(b, "destination", destination)
        })
        .collect()
}

pub async fn between(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, source, kind, destination)): Path<(String, String, String, String)>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    m.visible_vhost(&caller, &vhost)?;
    ends(&m, &vhost, &source, &kind, &destination)?;
    q.respond(between_list(&m, &vhost, &source, &kind, &destination))
}

#[derive(Deserialize, Default)]
#[serde(default)]
pub struct BindBody {
    routing_key: String,
    arguments: Value,
}

pub async fn create(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, source, kind, destination)): Path<(String, String, String, String)>,
    body: bytes::Bytes,
) -> Result<Response> {
    check_bind(&caller, &vhost, &source, &kind, &destination)?;
    let dest = ends(&m, &vhost, &source, &kind, &destination)?;
    let body: BindBody = body::parse(&body)?;
    let arguments = json_to_table(&body.arguments).map_err(MgmtError::bad_request)?;
    let key = view::properties_key(&body.routing_key, &arguments);
    let routing_key = body::short_name(&body.routing_key, "routing_key")?;
    m.vhost(&vhost)?.bind(exchange_name(&source), dest, routing_key, arguments)?;
    m.durable().await?;
    Ok((StatusCode::CREATED, [(header::LOCATION, key)]).into_response())
}

fn find(m: &Mgmt, vhost: &str, source: &str, kind: &str, destination: &str, props: &str) -> Result<Value> {
    ends(m, vhost, source, kind, destination)?;
    between_list(m, vhost, source, kind, destination)
        .into_iter()
        .find(|b| is(b, "properties_key", props))
        .ok_or_else(MgmtError::not_found)
}

pub async fn show(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, source, kind, destination, props)): Path<(String, String, String, String, String)>,
) -> Result<Json<Value>> {
    m.visible_vhost(&caller, &vhost)?;
    Ok(Json(find(&m, &vhost, &source, &kind, &destination, &props)?))
}

pub async fn delete(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, source, kind, destination, props)): Path<(String, String, String, String, String)>,
) -> Result<StatusCode> {
    check_bind(&caller, &vhost, &source, &kind, &destination)?;
    let dest = ends(&m, &vhost, &source, &kind, &destination)?;
    let v = m.vhost(&vhost)?;
    let exchange = v.exchange(exchange_name(&source)).ok_or_else(MgmtError::not_found)?;
    // The stored binding itself, not one rebuilt from JSON (whose number types may differ).
    let found = exchange
        .bindings
        .read()
        .list()
        .iter()
        .find(|b| b.destination == dest && view::properties_key(b.routing_key.as_str(), &b.arguments) == props)
        .map(|b| (b.routing_key.clone(), b.arguments.clone()));
    let (routing_key, arguments) = found.ok_or_else(MgmtError::not_found)?;
    v.unbind(exchange.name(), dest, routing_key, arguments, 0)?;
    m.durable().await?;
    Ok(StatusCode::NO_CONTENT)
}

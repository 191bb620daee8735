//! What is connected right now: `/api/connections` (list, show, close with a reason),
//! `/api/channels` and `/api/consumers`, from the broker's registry and its queues.

use crate::auth::Caller;
use crate::error::{MgmtError, Result};
use crate::listing::ListQuery;
use crate::{view, Mgmt};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;
use warren_broker::registry::ConnectionEntry;

/// The connections the caller may see: all for administrators and monitoring users, their own
/// otherwise (as in RabbitMQ).
fn visible(m: &Mgmt, caller: &Caller) -> Vec<Arc<ConnectionEntry>> {
    let all = m.broker.registry().connections();
    all.into_iter().filter(|c| caller.sees_all() || c.meta.user == caller.name).collect()
}

fn connection_named(m: &Mgmt, caller: &Caller, name: &str) -> Result<Arc<ConnectionEntry>> {
    visible(m, caller).into_iter().find(|c| c.meta.name() == name).ok_or_else(MgmtError::not_found)
}

pub async fn connections(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    respond_connections(&m, &q, visible(&m, &caller))
}

/// Filters, sorts and pages the connections themselves, making the JSON of the page only (10,000
/// idle connections are a list of 10,000).
fn respond_connections(m: &Mgmt, q: &ListQuery, connections: Vec<Arc<ConnectionEntry>>) -> Result<Json<Value>> {
    let sort_key = |c: &Arc<ConnectionEntry>, field: &str| -> Option<Value> {
        Some(match field {
            "name" => json!(c.meta.name()),
            "user" => json!(c.meta.user),
            "vhost" => json!(c.meta.vhost),
            "channels" => json!(c.channel_count()),
            _ => return None,
        })
    };
    q.respond_with(connections, |c| c.meta.name(), sort_key, |c| view::connection(&c, &m.node))
}

pub async fn vhost_connections(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    m.visible_vhost(&caller, &vhost)?;
    let connections = visible(&m, &caller);
    respond_connections(&m, &q, connections.into_iter().filter(|c| c.meta.vhost == vhost).collect())
}

pub async fn connection(State(m): State<Arc<Mgmt>>, caller: Caller, Path(name): Path<String>) -> Result<Json<Value>> {
    let c = connection_named(&m, &caller, &name)?;
    Ok(Json(view::connection(&c, &m.node)))
}

/// `DELETE /api/connections/{name}`: closes it with 320 CONNECTION_FORCED and the `X-Reason`
/// header's text.
pub async fn close_connection(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(name): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode> {
    let c = connection_named(&m, &caller, &name)?;
    if !caller.is("administrator") && c.meta.user != caller.name {
        return Err(MgmtError::unauthorized("Not administrator user"));
    }
    let reason = headers.get("x-reason").and_then(|v| v.to_str().ok()).unwrap_or("Closed via management plugin");
    c.request_close(reason.chars().take(200).collect());
    Ok(StatusCode::NO_CONTENT)
}

fn channels_of(m: &Mgmt, connections: &[Arc<ConnectionEntry>]) -> Vec<Value> {
    let mut out = Vec::new();
    for c in connections {
        for (ch, counts) in c.channels_with_counters() {
            out.push(view::channel(c, &ch, &counts, &m.node, &m.rates));
        }
    }
    out
}

pub async fn connection_channels(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(name): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    let c = connection_named(&m, &caller, &name)?;
    q.respond(channels_of(&m, &[c]))
}

pub async fn channels(State(m): State<Arc<Mgmt>>, caller: Caller, Query(q): Query<ListQuery>) -> Result<Json<Value>> {
    q.respond(channels_of(&m, &visible(&m, &caller)))
}

pub async fn vhost_channels(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    m.visible_vhost(&caller, &vhost)?;
    let connections: Vec<_> = visible(&m, &caller).into_iter().filter(|c| c.meta.vhost == vhost).collect();
    q.respond(channels_of(&m, &connections))
}

pub async fn channel(State(m): State<Arc<Mgmt>>, caller: Caller, Path(name): Path<String>) -> Result<Json<Value>> {
    channels_of(&m, &visible(&m, &caller))
        .into_iter()
        .find(|ch| ch["name"].as_str() == Some(name.as_str()))
        .map(Json)
        .ok_or_else(MgmtError::not_found)
}

fn consumers_of(m: &Mgmt, vhost: &warren_broker::VHost) -> Vec<Value> {
    let mut names = vhost.queue_names();
    names.sort();
    let mut out = Vec::new();
    for q in names.iter().filter_map(|n| vhost.queue(n)) {
        for c in q.consumers() {
            out.push(view::consumer(&m.broker, &q, &c, &m.node));
        }
    }
    out
}

pub async fn consumers(State(m): State<Arc<Mgmt>>, caller: Caller, Query(q): Query<ListQuery>) -> Result<Json<Value>> {
    q.respond(m.visible_vhosts(&caller).iter().flat_map(|v| consumers_of(&m, v)).collect())
}

pub async fn vhost_consumers(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    let v = m.visible_vhost(&caller, &vhost)?;
    q.respond(consumers_of(&m, &v))
}

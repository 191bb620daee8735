//! `/api/vhost-limits` and `/api/user-limits`: RabbitMQ's vhost limits (`max-connections`,
//! `max-queues`) and user limits (`max-connections`, `max-channels`), listed by any management
//! user (vhost limits of the vhosts it may see) and set or cleared by administrators. Each is
//! `{"value": N}`; a negative value means no limit, 0 allows nothing. Durable, and exported and
//! imported with the definitions in RabbitMQ's shapes.

use crate::auth::Caller;
use crate::error::{MgmtError, Result};
use crate::{body, Mgmt};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Map, Value};
use std::sync::Arc;
use warren_broker::resource_limits::{LimitSet, USER_LIMITS, VHOST_LIMITS};

/// A limit set as RabbitMQ shows it: `{"max-connections": 5, ...}`.
pub fn limits_json(limits: &LimitSet) -> Value {
    Value::Object(limits.iter().map(|(name, value)| (name.to_owned(), json!(value))).collect())
}

/// The vhost limits RabbitMQ exports as runtime parameters (component `vhost-limits`).
pub fn vhost_limit_parameters(m: &Mgmt, only_vhost: Option<&str>) -> Vec<Value> {
    m.broker
        .resource_limits()
        .all_vhosts()
        .into_iter()
        .filter(|(vhost, _)| only_vhost.is_none_or(|only| only == vhost))
        .map(|(vhost, limits)| {
            json!({"value": limits_json(&limits), "vhost": vhost, "component": "vhost-limits", "name": "limits"})
        })
        .collect()
}

/// A limit's value from JSON: an integer, or RabbitMQ's 400 naming what it was.
pub fn limit_value(name: &str, value: &Value) -> Result<i64> {
    value.as_i64().ok_or_else(|| MgmtError::bad_request(format!("{name} should be a number, actually was {value}")))
}

/// Limits from a JSON object (`users[].limits`, a `vhost-limits` parameter's value).
pub fn limits_of(allowed: &[&str], value: &Value, whose: &str) -> Result<LimitSet> {
    let invalid = |reason: String| MgmtError::bad_request(format!("limits of {whose}: {reason}"));
    let mut limits = LimitSet::default();
    match value {
        Value::Null => {}
        // RabbitMQ lists a vhost whose last limit was cleared with `[]`.
        Value::Array(items) if items.is_empty() => {}
        Value::Object(map) => {
            for (name, v) in map {
                let v = limit_value(name, v).map_err(|e| invalid(e.reason))?;
                limits.set(allowed, name, v).map_err(invalid)?;
            }
        }
        other => return Err(invalid(format!("expected an object of limits, got {other}"))),
    }
    Ok(limits)
}

/// The `{"value": N}` of a PUT.
fn put_body(name: &str, raw: &Bytes) -> Result<i64> {
    let body: Map<String, Value> = body::parse(raw)?;
    let value = body.get("value").ok_or_else(|| MgmtError::bad_request("the body needs \"value\""))?;
    limit_value(name, value).map_err(|e| MgmtError::bad_request(format!("Validation failed\n\n{}\n", e.reason)))
}

pub async fn vhost_limits(State(m): State<Arc<Mgmt>>, caller: Caller) -> Json<Value> {
    let all = m.broker.resource_limits().all_vhosts();
    let visible = all.iter().filter(|(vhost, _)| caller.may_see(vhost));
    Json(visible.map(|(vhost, limits)| json!({"vhost": vhost, "value": limits_json(limits)})).collect())
}

pub async fn vhost_limits_of(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> Result<Json<Value>> {
    m.visible_vhost(&caller, &vhost)?;
    Ok(Json(one_or_none("vhost", &vhost, &m.broker.resource_limits().vhost(&vhost))))
}

/// One vhost's or user's limits as RabbitMQ lists them: `[{"vhost": name, "value": {...}}]`,
/// or `[]` without any.
fn one_or_none(whose: &str, name: &str, limits: &LimitSet) -> Value {
    match limits.is_empty() {
        true => json!([]),
        false => json!([{whose: name, "value": limits_json(limits)}]),
    }
}

pub async fn put_vhost_limit(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    raw: Bytes,
) -> Result<StatusCode> {
    caller.require_administrator()?;
    let value = put_body(&name, &raw)?;
    m.broker.set_vhost_limit(&vhost, &name, value)?;
    m.answered(false).await
}

/// A limit's name that no vhost or user can have: 400, as for a PUT (RabbitMQ answers 204).
fn known(allowed: &[&str], name: &str) -> Result<()> {
    match allowed.contains(&name) {
        true => Ok(()),
        false => Err(MgmtError::bad_request(format!("unknown limit '{name}'; known: {}", allowed.join(", ")))),
    }
}

/// As RabbitMQ: 204 also when the limit was not set; 404 for a vhost that does not exist.
pub async fn delete_vhost_limit(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<StatusCode> {
    caller.require_administrator()?;
    m.vhost(&vhost)?;
    known(&VHOST_LIMITS, &name)?;
    m.broker.clear_vhost_limit(&vhost, &name);
    m.answered(false).await
}

/// Every user's limits (as RabbitMQ, any management user sees them all).
pub async fn user_limits(State(m): State<Arc<Mgmt>>, _caller: Caller) -> Json<Value> {
    let all = m.broker.resource_limits().all_users();
    Json(all.iter().map(|(user, limits)| json!({"user": user, "value": limits_json(limits)})).collect())
}

pub async fn user_limits_of(
    State(m): State<Arc<Mgmt>>,
    _caller: Caller,
    Path(user): Path<String>,
) -> Result<Json<Value>> {
    m.broker.users().get(&user).ok_or_else(MgmtError::not_found)?;
    Ok(Json(one_or_none("user", &user, &m.broker.resource_limits().user(&user))))
}

pub async fn put_user_limit(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((user, name)): Path<(String, String)>,
    raw: Bytes,
) -> Result<StatusCode> {
    caller.require_administrator()?;
    let value = put_body(&name, &raw)?;
    m.broker.set_user_limit(&user, &name, value)?;
    m.answered(false).await
}

pub async fn delete_user_limit(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((user, name)): Path<(String, String)>,
) -> Result<StatusCode> {
    caller.require_administrator()?;
    m.broker.users().get(&user).ok_or_else(MgmtError::not_found)?;
    known(&USER_LIMITS, &name)?;
    m.broker.clear_user_limit(&user, &name);
    m.answered(false).await
}

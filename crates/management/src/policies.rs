//! `/api/policies` and `/api/operator-policies`: list, show, set and delete policies as
//! RabbitMQ's API does. A policy applies at once to the queues and exchanges it matches and is
//! durable. As in RabbitMQ, any management user lists the policies of the vhosts it may see;
//! showing one and changing policies needs the `policymaker` (or `administrator`) tag and, for
//! a policymaker, permissions in the vhost; changing operator policies needs `administrator`.

use crate::auth::Caller;
use crate::error::{MgmtError, Result};
use crate::listing::ListQuery;
use crate::{body, Mgmt};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use warren_core::json::{json_to_value, value_to_json};
use warren_core::policy::{ApplyTo, Policy};

/// A policy as the API shows it.
pub fn policy_json(p: &Policy) -> Value {
    let definition: serde_json::Map<String, Value> =
        p.definition.iter().map(|(k, v)| (k.clone(), value_to_json(v))).collect();
    json!({
        "vhost": p.vhost,
        "name": p.name,
        "pattern": p.pattern,
        "apply-to": p.apply_to.as_str(),
        "definition": definition,
        "priority": p.priority,
    })
}

/// A policy's body in `PUT` (and in imported definitions).
#[derive(Deserialize)]
pub struct PolicyBody {
    pattern: Option<String>,
    #[serde(default)]
    definition: serde_json::Map<String, Value>,
    #[serde(default, deserialize_with = "priority")]
    priority: i32,
    #[serde(rename = "apply-to")]
    apply_to: Option<String>,
}

fn priority<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<i32, D::Error> {
    use serde::de::Error;
    match Value::deserialize(d)? {
        Value::Number(n) => n.as_i64().and_then(|n| i32::try_from(n).ok()),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
    .ok_or_else(|| D::Error::custom("priority must be an integer"))
}

impl PolicyBody {
    /// The policy it describes, or 400 with the reason.
    pub fn compile(&self, vhost: &str, name: &str, operator: bool) -> Result<Policy> {
        let invalid = |reason: String| MgmtError::bad_request(format!("Validation failed\n\n{reason}\n"));
        let pattern = self.pattern.as_deref().ok_or_else(|| MgmtError::bad_request("[{key_missing,pattern}]"))?;
        let apply_to = ApplyTo::parse(self.apply_to.as_deref().unwrap_or("all")).map_err(invalid)?;
        let mut definition = Vec::with_capacity(self.definition.len());
        for (key, value) in &self.definition {
            let value = json_to_value(value).map_err(|e| invalid(format!("{key}: {e}")))?;
            definition.push((key.clone(), value));
        }
        Policy::new(name, vhost, pattern, apply_to, self.priority, operator, definition).map_err(invalid)
    }
}

/// Who may show one policy (`change` false) or change policies.
fn require(caller: &Caller, vhost: &str, operator: bool, change: bool) -> Result<()> {
    if caller.is("administrator") {
        return Ok(());
    }
    if (operator && change) || !caller.is("policymaker") {
        return Err(MgmtError::unauthorized("User not authorised to access object"));
    }
    caller.require_use(vhost)
}

fn listed(m: &Mgmt, caller: &Caller, vhost: Option<&str>, operator: bool) -> Vec<Value> {
    let all = m.broker.policies();
    let mut out: Vec<&Arc<Policy>> = all
        .all()
        .iter()
        .filter(|p| p.operator == operator && vhost.is_none_or(|v| p.vhost == v))
        .filter(|p| caller.may_see(&p.vhost))
        .collect();
    out.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    out.into_iter().map(|p| policy_json(p)).collect()
}

async fn list_all(m: Arc<Mgmt>, caller: Caller, q: ListQuery, operator: bool) -> Result<Json<Value>> {
    q.respond(listed(&m, &caller, None, operator))
}

async fn list_in(m: Arc<Mgmt>, caller: Caller, vhost: String, q: ListQuery, operator: bool) -> Result<Json<Value>> {
    m.visible_vhost(&caller, &vhost)?;
    q.respond(listed(&m, &caller, Some(&vhost), operator))
}

async fn show_one(
    m: Arc<Mgmt>,
    caller: Caller,
    (vhost, name): (String, String),
    operator: bool,
) -> Result<Json<Value>> {
    require(&caller, &vhost, operator, false)?;
    m.vhost(&vhost)?;
    let all = m.broker.policies();
    all.get(&vhost, &name, operator).map(|p| Json(policy_json(p))).ok_or_else(MgmtError::not_found)
}

async fn put_one(
    m: Arc<Mgmt>,
    caller: Caller,
    (vhost, name): (String, String),
    body: Bytes,
    operator: bool,
) -> Result<StatusCode> {
    require(&caller, &vhost, operator, true)?;
    let parsed: PolicyBody = body::parse(&body)?;
    let policy = parsed.compile(&vhost, &name, operator)?;
    let created = m.broker.put_policy(policy)?;
    m.answered(created).await
}

async fn delete_one(
    m: Arc<Mgmt>,
    caller: Caller,
    (vhost, name): (String, String),
    operator: bool,
) -> Result<StatusCode> {
    require(&caller, &vhost, operator, true)?;
    m.vhost(&vhost)?;
    if !m.broker.delete_policy(&vhost, &name, operator) {
        return Err(MgmtError::not_found());
    }
    m.answered(false).await
}

pub async fn list(State(m): State<Arc<Mgmt>>, caller: Caller, Query(q): Query<ListQuery>) -> Result<Json<Value>> {
    list_all(m, caller, q, false).await
}

pub async fn list_vhost(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    list_in(m, caller, vhost, q, false).await
}

pub async fn show(State(m): State<Arc<Mgmt>>, caller: Caller, Path(p): Path<(String, String)>) -> Result<Json<Value>> {
    show_one(m, caller, p, false).await
}

pub async fn put(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(p): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode> {
    put_one(m, caller, p, body, false).await
}

pub async fn delete(State(m): State<Arc<Mgmt>>, caller: Caller, Path(p): Path<(String, String)>) -> Result<StatusCode> {
    delete_one(m, caller, p, false).await
}

pub async fn list_operator(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    list_all(m, caller, q, true).await
}

pub async fn list_operator_vhost(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    list_in(m, caller, vhost, q, true).await
}

pub async fn show_operator(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(p): Path<(String, String)>,
) -> Result<Json<Value>> {
    show_one(m, caller, p, true).await
}

pub async fn put_operator(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(p): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode> {
    put_one(m, caller, p, body, true).await
}

pub async fn delete_operator(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(p): Path<(String, String)>,
) -> Result<StatusCode> {
    delete_one(m, caller, p, true).await
}

//! `/api/contracts`: contracts over HTTP (Warren's own): create, list, show, add a version
//! (refused with the reasons if it is not compatible with the latest under the contract's mode),
//! delete, and check a sample message against one (`POST .../test`). Listing needs a
//! management tag and shows the vhosts the caller may see; changes need `policymaker` (with
//! permissions in the vhost) or `administrator`, as policies do.

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
use warren_core::contract::{Compatibility, Contract, OnViolation, Scope};

/// A contract as the API shows it: its scope, mode, action and every kept version.
pub fn contract_json(c: &Contract) -> Value {
    let versions: Vec<Value> = c.versions().iter().map(|v| json!({"version": v.number, "schema": v.schema})).collect();
    json!({
        "vhost": c.vhost,
        "name": c.name,
        "exchange": c.scope().exchange,
        "routing_key": c.scope().routing_key,
        "message_type": c.scope().message_type,
        "content_type": c.scope().content_type,
        "max_body_bytes": c.scope().max_body_bytes,
        "compatibility": c.compatibility.as_str(),
        "on_violation": c.on_violation.as_str(),
        "dead_letter_exchange": c.on_violation.dead_letter_to().and_then(|to| to.exchange.clone()),
        "dead_letter_routing_key": c.on_violation.dead_letter_to().and_then(|to| to.routing_key.clone()),
        "version": c.latest().number,
        "versions": versions,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ContractBody {
    exchange: String,
    routing_key: Option<String>,
    message_type: Option<String>,
    content_type: Option<String>,
    #[serde(default, deserialize_with = "body::optional_count")]
    max_body_bytes: Option<u64>,
    compatibility: Option<String>,
    on_violation: Option<String>,
    dead_letter_exchange: Option<String>,
    dead_letter_routing_key: Option<String>,
    schema: Value,
}

/// A contract in a definitions file (as `contract_json` writes it).
#[derive(Deserialize)]
pub struct ContractDef {
    pub vhost: Option<String>,
    pub name: String,
    exchange: String,
    routing_key: Option<String>,
    message_type: Option<String>,
    content_type: Option<String>,
    max_body_bytes: Option<u64>,
    compatibility: String,
    on_violation: String,
    dead_letter_exchange: Option<String>,
    dead_letter_routing_key: Option<String>,
    versions: Vec<VersionDef>,
}

#[derive(Deserialize)]
struct VersionDef {
    version: u32,
    schema: Value,
}

impl ContractDef {
    /// The contract it describes (its versions as they were), or 400 with the reason.
    pub fn compile(&self, vhost: &str) -> Result<Contract> {
        let invalid = |e: String| MgmtError::bad_request(format!("contract '{}': {e}", self.name));
        let scope = Scope {
            exchange: self.exchange.clone(),
            routing_key: self.routing_key.clone(),
            message_type: self.message_type.clone(),
            content_type: self.content_type.clone(),
            max_body_bytes: self.max_body_bytes,
        };
        let versions = self.versions.iter().map(|v| (v.version, v.schema.clone())).collect();
        Contract::with_versions(
            &self.name,
            vhost,
            scope,
            Compatibility::parse(&self.compatibility).map_err(invalid)?,
            OnViolation::parse(
                &self.on_violation,
                self.dead_letter_exchange.clone(),
                self.dead_letter_routing_key.clone(),
            )
            .map_err(invalid)?,
            versions,
        )
        .map_err(invalid)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VersionBody {
    schema: Value,
}

fn listed(m: &Mgmt, caller: &Caller, vhost: Option<&str>) -> Vec<Value> {
    let all = m.broker.contracts();
    crate::listing::in_vhosts(all.all(), vhost, |v| caller.may_see(v), |c| (&c.vhost, &c.name), contract_json)
}

pub async fn list(State(m): State<Arc<Mgmt>>, caller: Caller, Query(q): Query<ListQuery>) -> Result<Json<Value>> {
    q.respond(listed(&m, &caller, None))
}

pub async fn list_vhost(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    m.visible_vhost(&caller, &vhost)?;
    q.respond(listed(&m, &caller, Some(&vhost)))
}

pub async fn show(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<Json<Value>> {
    m.visible_vhost(&caller, &vhost)?;
    let all = m.broker.contracts();
    all.get(&vhost, &name).map(|c| Json(contract_json(c))).ok_or_else(MgmtError::not_found)
}

/// `PUT`: creates the contract with its first version (201); the same again is 204; a
/// different one under an existing name is 409 (add a version instead, or delete it first).
pub async fn put(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode> {
    caller.require_policymaker_in(&vhost)?;
    m.vhost(&vhost)?;
    let b: ContractBody = body::parse(&body)?;
    let compatibility =
        Compatibility::parse(b.compatibility.as_deref().unwrap_or("backward")).map_err(MgmtError::bad_request)?;
    let on_violation = OnViolation::parse(
        b.on_violation.as_deref().unwrap_or("reject"),
        b.dead_letter_exchange,
        b.dead_letter_routing_key,
    )
    .map_err(MgmtError::bad_request)?;
    let scope = Scope {
        exchange: b.exchange,
        routing_key: b.routing_key,
        message_type: b.message_type,
        content_type: b.content_type,
        max_body_bytes: b.max_body_bytes,
    };
    if let Some(existing) = m.broker.contracts().get(&vhost, &name) {
        let same = existing.versions().len() == 1
            && existing.latest().schema == b.schema
            && *existing.scope() == scope
            && existing.compatibility == compatibility
            && existing.on_violation == on_violation;
        if same {
            return m.answered(false).await;
        }
        return Err(MgmtError {
            status: StatusCode::CONFLICT,
            error: "conflict",
            reason: format!("contract '{name}' exists: add a version (POST .../versions) or delete it first"),
        });
    }
    let contract =
        Contract::new(&name, &vhost, scope, compatibility, on_violation, b.schema).map_err(MgmtError::bad_request)?;
    let created = m.broker.put_contract(contract)?;
    m.answered(created).await
}

/// `POST .../versions`: the schema as the next version, if it is compatible with the latest
/// (201 with the contract); else 409 with the reasons.
pub async fn add_version(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<(StatusCode, Json<Value>)> {
    caller.require_policymaker_in(&vhost)?;
    m.vhost(&vhost)?;
    let b: VersionBody = body::parse(&body)?;
    let current = m.broker.contracts().get(&vhost, &name).cloned().ok_or_else(MgmtError::not_found)?;
    let next = current.with_new_version(b.schema).map_err(|reasons| MgmtError {
        status: StatusCode::CONFLICT,
        error: "incompatible",
        reason: reasons.join("; "),
    })?;
    let view = contract_json(&next);
    m.broker.put_contract(next)?;
    m.durable().await?;
    Ok((StatusCode::CREATED, Json(view)))
}

pub async fn delete(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<StatusCode> {
    caller.require_policymaker_in(&vhost)?;
    m.vhost(&vhost)?;
    if !m.broker.delete_contract(&vhost, &name) {
        return Err(MgmtError::not_found());
    }
    m.answered(false).await
}

/// A sample message to check against a contract.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    /// The body: JSON, sent as its text.
    body: Value,
    #[serde(default)]
    routing_key: String,
    content_type: Option<String>,
    #[serde(rename = "type")]
    message_type: Option<String>,
}

/// `POST .../test`: checks a sample message against the contract's latest version, as a
/// publish would be checked, without publishing anything: whether the contract covers it
/// (its routing key and type), and the version it passes or its violations.
pub async fn test(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>> {
    m.visible_vhost(&caller, &vhost)?;
    let sample: Sample = body::parse(&body)?;
    let all = m.broker.contracts();
    let contract = all.get(&vhost, &name).ok_or_else(MgmtError::not_found)?;
    let text = serde_json::to_vec(&sample.body).map_err(|e| MgmtError::bad_request(e.to_string()))?;
    let covers = contract.covers(&sample.routing_key, sample.message_type.as_deref());
    let answer = match contract.check(sample.content_type.as_deref(), &text) {
        Ok(version) => json!({"covers": covers, "valid": true, "version": version, "violations": []}),
        Err(violations) => {
            let violations: Vec<Value> = violations.iter().map(|v| v.to_json()).collect();
            json!({"covers": covers, "valid": false, "version": contract.latest().number, "violations": violations})
        }
    };
    Ok(Json(answer))
}

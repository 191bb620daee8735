//! `/api/transforms`: transforms over HTTP (Warren's own): create or replace (each replacement
//! is a new version; the program is compiled in a worker first, and a program that does not
//! compile is refused with jaq's reason), list, show, delete, and test one on a sample message
//! without publishing anything. Changes need `policymaker` (with permissions in the vhost) or
//! `administrator`, as policies and contracts do.

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
use warren_broker::transforms::{view, Transform};
use warren_core::Message;
use warren_transform::Limits;

/// A transform as the API shows it (and definitions files hold it).
pub fn transform_json(t: &Transform) -> Value {
    json!({
        "vhost": t.vhost,
        "name": t.name,
        "version": t.version,
        "program": &*t.program.text,
        "lookup": &*t.program.lookup,
        "timeout_ms": t.limits.timeout_ms,
        "max_outputs": t.limits.max_outputs,
        "max_output_bytes": t.limits.max_output_bytes,
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransformBody {
    program: String,
    #[serde(default)]
    lookup: Option<Value>,
    #[serde(default, deserialize_with = "body::optional_count")]
    timeout_ms: Option<u64>,
    #[serde(default, deserialize_with = "body::optional_count")]
    max_outputs: Option<u64>,
    #[serde(default, deserialize_with = "body::optional_count")]
    max_output_bytes: Option<u64>,
}

/// A transform in a definitions file (as `transform_json` writes it).
#[derive(Deserialize)]
pub struct TransformDef {
    pub vhost: Option<String>,
    pub name: String,
    #[serde(flatten)]
    body: TransformDefBody,
}

#[derive(Deserialize)]
struct TransformDefBody {
    program: String,
    #[serde(default)]
    lookup: Option<Value>,
    timeout_ms: Option<u64>,
    max_outputs: Option<u64>,
    max_output_bytes: Option<u64>,
    #[serde(default)]
    version: Option<u32>,
}

impl TransformDef {
    /// The transform it describes, checked in a worker; 400 with the reason.
    pub async fn compile(&self, m: &Mgmt, vhost: &str) -> Result<Transform> {
        let b = &self.body;
        let body = TransformBody {
            program: b.program.clone(),
            lookup: b.lookup.clone(),
            timeout_ms: b.timeout_ms,
            max_outputs: b.max_outputs,
            max_output_bytes: b.max_output_bytes,
        };
        let version = b.version.unwrap_or(1).max(1);
        checked(m, vhost, &self.name, version, body)
            .await
            .map_err(|e| MgmtError::bad_request(format!("transform '{}': {}", self.name, e.reason)))
    }
}

/// The transform `body` describes, within the broker's bounds, its program compiled in a worker.
async fn checked(m: &Mgmt, vhost: &str, name: &str, version: u32, body: TransformBody) -> Result<Transform> {
    if name.is_empty() || name.len() > 255 {
        return Err(MgmtError::bad_request("a transform name is 1 to 255 bytes"));
    }
    let s = m.broker.transform_book().settings;
    let lookup = body.lookup.unwrap_or_else(|| json!({}));
    if !lookup.is_object() {
        return Err(MgmtError::bad_request("lookup must be an object of tables"));
    }
    let bounded = |value: Option<u64>, default: u64, max: u64, what: &str| match value {
        None => Ok(default),
        Some(v) if (1..=max).contains(&v) => Ok(v),
        Some(_) => Err(MgmtError::bad_request(format!("{what} must be 1 to {max}"))),
    };
    let limits = Limits {
        timeout_ms: bounded(body.timeout_ms, s.default_timeout_ms, s.max_timeout_ms, "timeout_ms")?,
        max_outputs: bounded(body.max_outputs, s.default_max_outputs as u64, s.max_outputs as u64, "max_outputs")?
            as usize,
        max_output_bytes: bounded(
            body.max_output_bytes,
            s.default_max_output_bytes as u64,
            s.max_output_bytes as u64,
            "max_output_bytes",
        )? as usize,
    };
    m.broker.check_transform(&body.program, &lookup).await.map_err(MgmtError::bad_request)?;
    Ok(Transform::new(vhost, name, version, body.program, lookup, limits))
}

/// A transform as the API lists and shows it: with its figures (not in definitions files).
fn with_figures(t: &Transform) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    let mut json = transform_json(t);
    let c = &t.counts;
    json["figures"] = json!({
        "runs": c.runs.load(Relaxed),
        "outputs": c.outputs.load(Relaxed),
        "failures": c.failures.load(Relaxed),
    });
    json
}

fn listed(m: &Mgmt, caller: &Caller, vhost: Option<&str>) -> Vec<Value> {
    let all = m.broker.transforms();
    crate::listing::in_vhosts(all.all(), vhost, |v| caller.may_see(v), |t| (&t.vhost, &t.name), with_figures)
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
    let all = m.broker.transforms();
    all.get(&vhost, &name).map(|t| Json(with_figures(t))).ok_or_else(MgmtError::not_found)
}

/// `PUT`: creates the transform (201) or replaces it as its next version (204).
pub async fn put(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode> {
    caller.require_policymaker_in(&vhost)?;
    m.vhost(&vhost)?;
    let b: TransformBody = body::parse(&body)?;
    let version = m.broker.transforms().get(&vhost, &name).map_or(1, |t| t.version + 1);
    let transform = checked(&m, &vhost, &name, version, b).await?;
    let created = m.broker.put_transform(transform)?;
    m.answered(created).await
}

pub async fn delete(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<StatusCode> {
    caller.require_policymaker_in(&vhost)?;
    m.vhost(&vhost)?;
    if !m.broker.delete_transform(&vhost, &name) {
        return Err(MgmtError::not_found());
    }
    m.answered(false).await
}

/// A sample message to test a transform on.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Sample {
    body: Value,
    #[serde(default)]
    routing_key: String,
    #[serde(default)]
    properties: Option<Value>,
}

/// `POST .../test`: runs the transform on a sample message and answers what it made (200 with
/// the outputs as messages), or why it failed (422). Nothing is published.
pub async fn test(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<Json<Value>> {
    m.visible_vhost(&caller, &vhost)?;
    let sample: Sample = body::parse(&body)?;
    let transform = m.broker.transforms().get(&vhost, &name).cloned().ok_or_else(MgmtError::not_found)?;
    let props = warren_core::json::json_to_properties(sample.properties.as_ref().unwrap_or(&Value::Null))
        .map_err(MgmtError::bad_request)?;
    let routing_key = amqp_codec::ShortStr::try_from_string(sample.routing_key)
        .map_err(|_| MgmtError::bad_request("routing_key is longer than 255 bytes"))?;
    let body = Bytes::from(serde_json::to_vec(&sample.body).map_err(|e| MgmtError::bad_request(e.to_string()))?);
    let message = Message::new(amqp_codec::ShortStr::from_static(""), routing_key, props.to_raw(), body);
    let failed = |error: String| MgmtError {
        status: StatusCode::UNPROCESSABLE_ENTITY,
        error: "transform_failed",
        reason: error,
    };
    let input = view::message_view(&message).map_err(failed)?;
    let outputs = m.broker.transform_book().run(&transform, input).await.map_err(|e| failed(e.to_string()))?;
    let mut messages = Vec::with_capacity(outputs.len());
    for out in &outputs {
        let made = view::output_message(&message, out).map_err(failed)?;
        messages.push(view::message_view(&made).unwrap_or_else(|_| json!({"body_bytes": made.body.len()})));
    }
    Ok(Json(json!({"transform": transform.name, "version": transform.version, "outputs": messages})))
}

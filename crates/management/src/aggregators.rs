//! `/api/aggregators`: aggregators over HTTP (Warren's own): create or replace, list, show with
//! their counters (parts in, aggregated, failed, timed out, groups open), delete. Changes need
//! `policymaker` (with permissions in the vhost) or `administrator`, as transforms do.

use crate::auth::Caller;
use crate::error::{MgmtError, Result};
use crate::listing::ListQuery;
use crate::{body, Mgmt};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use serde_json::Value;
use std::sync::Arc;
use warren_broker::aggregators::{Aggregator, AggregatorDef};

/// An aggregator as the API shows it: its definition, and (not in definitions files) its
/// figures.
pub fn aggregator_json(a: &Aggregator) -> Value {
    serde_json::to_value(&a.def).unwrap_or(Value::Null)
}

fn with_figures(a: &Aggregator) -> Value {
    let mut json = aggregator_json(a);
    if let Some(object) = json.as_object_mut() {
        object.insert("figures".into(), serde_json::to_value(a.figures()).unwrap_or(Value::Null));
    }
    json
}

/// An aggregator of a definitions file, in `vhost`, checked; 400 with the reason.
pub fn from_file(value: &Value, vhost: &str) -> Result<AggregatorDef> {
    let mut def: AggregatorDef =
        serde_json::from_value(value.clone()).map_err(|e| MgmtError::bad_request(format!("aggregator: {e}")))?;
    def.vhost = vhost.to_owned();
    def.check().map_err(|e| MgmtError::bad_request(format!("aggregator '{}': {e}", def.name)))?;
    Ok(def)
}

fn listed(m: &Mgmt, caller: &Caller, vhost: Option<&str>) -> Vec<Value> {
    let all = m.broker.aggregators();
    crate::listing::in_vhosts(&all, vhost, |v| caller.may_see(v), |a| (&a.def.vhost, &a.def.name), with_figures)
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
    m.broker.aggregator(&vhost, &name).map(|a| Json(with_figures(&a))).ok_or_else(MgmtError::not_found)
}

/// `PUT`: creates the aggregator (201) or replaces it (204; its groups in progress go back to
/// its queue and are gathered again).
pub async fn put(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode> {
    caller.require_policymaker_in(&vhost)?;
    m.vhost(&vhost)?;
    if name.is_empty() || name.len() > 255 {
        return Err(MgmtError::bad_request("an aggregator name is 1 to 255 bytes"));
    }
    let mut def: AggregatorDef = body::parse(&body)?;
    if (!def.vhost.is_empty() && def.vhost != vhost) || (!def.name.is_empty() && def.name != name) {
        return Err(MgmtError::bad_request("the body names another vhost or aggregator than the path"));
    }
    (def.vhost, def.name) = (vhost, name);
    def.check().map_err(MgmtError::bad_request)?;
    let created = m.broker.put_aggregator(def)?;
    m.answered(created).await
}

pub async fn delete(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, name)): Path<(String, String)>,
) -> Result<StatusCode> {
    caller.require_policymaker_in(&vhost)?;
    m.vhost(&vhost)?;
    if !m.broker.delete_aggregator(&vhost, &name) {
        return Err(MgmtError::not_found());
    }
    m.answered(false).await
}

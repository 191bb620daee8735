//! `/api/alarms` (Warren's own): the resource alarms raised now and the limits they watch, and
//! changing those limits at run time (as `rabbitmqctl set_vm_memory_high_watermark` and
//! `set_disk_free_limit` do for RabbitMQ). Changing them needs `administrator`; the alarms are
//! checked again at once.

use crate::auth::Caller;
use crate::error::{MgmtError, Result};
use crate::{body, Mgmt};
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use warren_broker::alarms::AlarmLimits;

fn alarms_json(m: &Mgmt) -> Value {
    let alarms = m.broker.alarms();
    let limits = alarms.limits();
    json!({
        "raised": alarms.raised().iter().map(|r| r.name()).collect::<Vec<_>>(),
        "memory_high_watermark_bytes": limits.memory_high_watermark_bytes,
        "disk_free_limit_bytes": limits.disk_free_limit_bytes,
        "memory_used_bytes": warren_broker::alarms::rss_bytes(),
    })
}

pub async fn show(State(m): State<Arc<Mgmt>>, _caller: Caller) -> Json<Value> {
    Json(alarms_json(&m))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LimitsBody {
    #[serde(default, deserialize_with = "body::optional_count")]
    memory_high_watermark_bytes: Option<u64>,
    #[serde(default, deserialize_with = "body::optional_count")]
    disk_free_limit_bytes: Option<u64>,
}

/// `PUT`: new limits (either or both); answers the alarms as they are after checking again.
pub async fn put(State(m): State<Arc<Mgmt>>, caller: Caller, body: Bytes) -> Result<(StatusCode, Json<Value>)> {
    caller.require_administrator()?;
    let b: LimitsBody = body::parse(&body)?;
    if b.memory_high_watermark_bytes == Some(0) {
        return Err(MgmtError::bad_request("memory_high_watermark_bytes must be positive"));
    }
    let alarms = m.broker.alarms();
    let now = alarms.limits();
    alarms.set_limits(AlarmLimits {
        memory_high_watermark_bytes: b.memory_high_watermark_bytes.unwrap_or(now.memory_high_watermark_bytes),
        disk_free_limit_bytes: b.disk_free_limit_bytes.unwrap_or(now.disk_free_limit_bytes),
    });
    alarms.check();
    Ok((StatusCode::OK, Json(alarms_json(&m))))
}

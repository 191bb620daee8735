//! `GET /api/messages/{id}`: a tracked message's outcome and its events, with timestamps.
//! `?wait=SECONDS` long-polls until the status changes (pass `&version=N` from the last answer)
//! or the message is finished, at most the configured longest wait.

use crate::{Api, ApiError};
use axum::extract::{Path, Query, State};
use axum::Json;
use serde::Deserialize;
use std::sync::Arc;
use std::time::Duration;
use warren_broker::tracking::{parse_id, Status};

#[derive(Deserialize)]
pub struct StatusQuery {
    wait: Option<u64>,
    version: Option<u64>,
}

pub async fn status(
    State(api): State<Arc<Api>>,
    Path(id): Path<String>,
    Query(query): Query<StatusQuery>,
) -> Result<Json<Status>, ApiError> {
    let unknown = || ApiError::not_found(format!("no tracked message '{id}' (unknown, or past its retention)"));
    let key = parse_id(&id).ok_or_else(unknown)?;
    let tracker = api.broker.tracker();
    let current = tracker.status(key).ok_or_else(unknown)?;
    let Some(wait_s) = query.wait.filter(|w| *w > 0) else { return Ok(Json(current)) };
    let wait = Duration::from_secs(wait_s).min(api.settings.max_wait);
    let version = query.version.unwrap_or(current.version);
    tracker.wait_for_change(key, version, wait).await.map(Json).ok_or_else(unknown)
}

//! `GET /api/messages/{id}`: a tracked message's outcome and its events, with timestamps.
//! `?wait=SECONDS` long-polls, at most the configured longest wait: until the status changes
//! past `&version=N` (from the last answer; this follows a finished message's callback too) or,
//! without a version, until it changes or is finished.

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
    let Some(wait_s) = query.wait.filter(|w| *w > 0) else {
        return tracker.status(key).map(Json).ok_or_else(unknown);
    };
    let wait = Duration::from_secs(wait_s).min(api.settings.max_wait);
    tracker.wait_for_change(key, query.version, wait).await.map(Json).ok_or_else(unknown)
}

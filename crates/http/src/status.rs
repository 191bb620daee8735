//! `GET /api/messages/{id}`: a tracked message's outcome and its events, with timestamps.
//! `?wait=SECONDS` long-polls, at most the configured longest wait: until the status changes
//! past `&version=N` (from the last answer; this follows a finished message's callback too) or,
//! without a version, until it changes or is finished. `GET /api/vhosts/{vhost}/messages?
//! message_id=M` finds the latest tracked message of a vhost with that `message_id` property
//! (how an AMQP publisher that opted in to tracking finds its message).

use crate::auth::authorize;
use crate::{Api, ApiError};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;
use warren_broker::tracking::{parse_id, Status};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
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
    let wait = crate::wait_of(query.wait.unwrap_or(0), api.settings.max_wait)?;
    let key = parse_id(&id).ok_or_else(unknown)?;
    let tracker = api.broker.tracker();
    if wait.is_zero() {
        return tracker.status(key).map(Json).ok_or_else(unknown);
    }
    tracker.wait_for_change(key, query.version, wait).await.map(Json).ok_or_else(unknown)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FindQuery {
    message_id: String,
}

/// `GET /api/vhosts/{vhost}/messages?message_id=M`: the status of the latest tracked message
/// with that `message_id`, its status URL in `Content-Location`.
pub async fn find(
    State(api): State<Arc<Api>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(vhost): Path<String>,
    Query(query): Query<FindQuery>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&api.broker, &headers, peer, &vhost)?;
    if query.message_id.is_empty() {
        return Err(ApiError::bad_request("message_id must not be empty"));
    }
    let unknown =
        || ApiError::not_found(format!("no tracked message with message_id '{}' in vhost '{vhost}'", query.message_id));
    let tracker = api.broker.tracker();
    let id = tracker.find(&vhost, &query.message_id).ok_or_else(unknown)?;
    let status = tracker.status(id).ok_or_else(unknown)?;
    let location = format!("/api/messages/{}", status.id);
    Ok(([(header::CONTENT_LOCATION, location)], Json(status)).into_response())
}

//! Errors as HTTP status codes with a JSON body: `{"error": "...", "reason": "..."}`.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub reason: String,
    /// More fields for the body (a contract's violations).
    pub details: Option<serde_json::Map<String, serde_json::Value>>,
    /// Seconds for a `Retry-After` header (503 while a resource alarm is raised).
    pub retry_after_s: Option<u32>,
}

impl ApiError {
    pub fn new(status: StatusCode, reason: impl Into<String>) -> ApiError {
        ApiError { status, reason: reason.into(), details: None, retry_after_s: None }
    }

    /// The same error with more fields in its body.
    pub fn with_details(mut self, details: serde_json::Map<String, serde_json::Value>) -> ApiError {
        self.details = Some(details);
        self
    }

    pub fn bad_request(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, reason)
    }

    pub fn not_found(reason: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, reason)
    }

    /// An AMQP error from the broker, as the HTTP status that means the same.
    pub fn from_amqp(e: warren_core::AmqpError) -> ApiError {
        let status = match e.code {
            404 => StatusCode::NOT_FOUND,
            403 => StatusCode::FORBIDDEN,
            406 => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError::new(status, e.text)
    }

    /// The same error with `prefix` before its reason (e.g. which message of a batch).
    pub fn prefixed(mut self, prefix: &str) -> ApiError {
        self.reason.insert_str(0, prefix);
        self
    }

    /// The error's body, `{"error", "reason"}` and its details.
    pub fn body(&self) -> serde_json::Value {
        let error = self.status.canonical_reason().unwrap_or("error").to_lowercase().replace(' ', "_");
        let mut body = json!({ "error": error, "reason": self.reason });
        if let (Some(object), Some(details)) = (body.as_object_mut(), self.details.as_ref()) {
            object.extend(details.clone());
        }
        body
    }

    /// The body with the status in it, for an error that is one entry of a larger answer.
    pub fn to_json(&self) -> serde_json::Value {
        let mut body = self.body();
        body["status"] = json!(self.status.as_u16());
        body
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = (self.status, Json(self.body())).into_response();
        if let Some(s) = self.retry_after_s {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, s.into());
        }
        response
    }
}

//! Errors as RabbitMQ's management API answers them: a status code and `{"error", "reason"}`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use warren_core::AmqpError;

#[derive(Debug)]
pub struct MgmtError {
    pub status: StatusCode,
    pub error: &'static str,
    pub reason: String,
}

impl MgmtError {
    pub fn not_found() -> MgmtError {
        MgmtError { status: StatusCode::NOT_FOUND, error: "Object Not Found", reason: "Not Found".into() }
    }

    pub fn bad_request(reason: impl Into<String>) -> MgmtError {
        MgmtError { status: StatusCode::BAD_REQUEST, error: "bad_request", reason: reason.into() }
    }

    pub fn unsupported_media_type(reason: impl Into<String>) -> MgmtError {
        MgmtError { status: StatusCode::UNSUPPORTED_MEDIA_TYPE, error: "unsupported_media_type", reason: reason.into() }
    }

    pub fn unauthorized(reason: impl Into<String>) -> MgmtError {
        MgmtError { status: StatusCode::UNAUTHORIZED, error: "not_authorised", reason: reason.into() }
    }

    pub fn forbidden(reason: impl Into<String>) -> MgmtError {
        MgmtError { status: StatusCode::FORBIDDEN, error: "not_authorised", reason: reason.into() }
    }

    /// The same error under another `error` name (RabbitMQ names some 400s precisely).
    pub fn named(self, error: &'static str) -> MgmtError {
        MgmtError { error, ..self }
    }

    pub fn unavailable(reason: impl Into<String>) -> MgmtError {
        MgmtError { status: StatusCode::SERVICE_UNAVAILABLE, error: "service_unavailable", reason: reason.into() }
    }
}

/// A broker refusal as RabbitMQ's API reports it: missing things are 404, refused ones 403,
/// the rest (inequivalent arguments, in use, not empty) 400; the reason without AMQP's
/// `NAME - ` prefix, as RabbitMQ's API words it.
impl From<AmqpError> for MgmtError {
    fn from(e: AmqpError) -> MgmtError {
        let prefix = format!("{} - ", warren_core::error::code_name(e.code));
        let reason = e.text.strip_prefix(&prefix).unwrap_or(&e.text).to_owned();
        match e.code {
            404 => MgmtError { status: StatusCode::NOT_FOUND, error: "not_found", reason },
            403 | 405 => MgmtError { status: StatusCode::FORBIDDEN, error: "access_refused", reason },
            _ => MgmtError::bad_request(reason),
        }
    }
}

impl IntoResponse for MgmtError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({"error": self.error, "reason": self.reason}));
        let mut response = (self.status, body).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            let challenge = header::HeaderValue::from_static("Basic realm=\"RabbitMQ Management\"");
            response.headers_mut().insert(header::WWW_AUTHENTICATE, challenge);
        }
        response
    }
}

pub type Result<T> = std::result::Result<T, MgmtError>;

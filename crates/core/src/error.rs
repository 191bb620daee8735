//! AMQP exceptions as the spec and RabbitMQ define them: a reply code, a text, and whether the
//! error closes the channel (soft) or the whole connection (hard).

use amqp_codec::reply_code::*;
use std::fmt;

/// An AMQP exception raised while handling a method. The text is formatted as RabbitMQ does:
/// `"NOT_FOUND - no queue 'q' in vhost '/'"`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmqpError {
    pub code: u16,
    pub text: String,
}

impl AmqpError {
    pub fn new(code: u16, detail: impl fmt::Display) -> Self {
        let text = format!("{} - {}", code_name(code), detail);
        AmqpError { code, text }
    }

    /// Connection-level ("hard") errors close the whole connection; the others close the channel.
    pub fn is_connection_error(&self) -> bool {
        is_hard(self.code)
    }

    pub fn access_refused(detail: impl fmt::Display) -> Self {
        Self::new(ACCESS_REFUSED, detail)
    }
    pub fn not_found(detail: impl fmt::Display) -> Self {
        Self::new(NOT_FOUND, detail)
    }
    pub fn resource_locked(detail: impl fmt::Display) -> Self {
        Self::new(RESOURCE_LOCKED, detail)
    }
    pub fn precondition_failed(detail: impl fmt::Display) -> Self {
        Self::new(PRECONDITION_FAILED, detail)
    }
    pub fn command_invalid(detail: impl fmt::Display) -> Self {
        Self::new(COMMAND_INVALID, detail)
    }
    pub fn channel_error(detail: impl fmt::Display) -> Self {
        Self::new(CHANNEL_ERROR, detail)
    }
    pub fn unexpected_frame(detail: impl fmt::Display) -> Self {
        Self::new(UNEXPECTED_FRAME, detail)
    }
    pub fn not_allowed(detail: impl fmt::Display) -> Self {
        Self::new(NOT_ALLOWED, detail)
    }
    pub fn not_implemented(detail: impl fmt::Display) -> Self {
        Self::new(NOT_IMPLEMENTED, detail)
    }
    pub fn frame_error(detail: impl fmt::Display) -> Self {
        Self::new(FRAME_ERROR, detail)
    }
    pub fn syntax_error(detail: impl fmt::Display) -> Self {
        Self::new(SYNTAX_ERROR, detail)
    }
    pub fn resource_error(detail: impl fmt::Display) -> Self {
        Self::new(RESOURCE_ERROR, detail)
    }
    pub fn internal_error(detail: impl fmt::Display) -> Self {
        Self::new(INTERNAL_ERROR, detail)
    }
}

impl fmt::Display for AmqpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({})", self.text, self.code)
    }
}

impl std::error::Error for AmqpError {}

/// Hard errors per AMQP 0-9-1: they close the connection rather than only the channel.
pub fn is_hard(code: u16) -> bool {
    matches!(
        code,
        CONNECTION_FORCED
            | INVALID_PATH
            | FRAME_ERROR
            | SYNTAX_ERROR
            | COMMAND_INVALID
            | CHANNEL_ERROR
            | UNEXPECTED_FRAME
            | RESOURCE_ERROR
            | NOT_ALLOWED
            | NOT_IMPLEMENTED
            | INTERNAL_ERROR
    )
}

pub fn code_name(code: u16) -> &'static str {
    match code {
        REPLY_SUCCESS => "OK",
        CONTENT_TOO_LARGE => "CONTENT_TOO_LARGE",
        NO_ROUTE => "NO_ROUTE",
        NO_CONSUMERS => "NO_CONSUMERS",
        CONNECTION_FORCED => "CONNECTION_FORCED",
        INVALID_PATH => "INVALID_PATH",
        ACCESS_REFUSED => "ACCESS_REFUSED",
        NOT_FOUND => "NOT_FOUND",
        RESOURCE_LOCKED => "RESOURCE_LOCKED",
        PRECONDITION_FAILED => "PRECONDITION_FAILED",
        FRAME_ERROR => "FRAME_ERROR",
        SYNTAX_ERROR => "SYNTAX_ERROR",
        COMMAND_INVALID => "COMMAND_INVALID",
        CHANNEL_ERROR => "CHANNEL_ERROR",
        UNEXPECTED_FRAME => "UNEXPECTED_FRAME",
        RESOURCE_ERROR => "RESOURCE_ERROR",
        NOT_ALLOWED => "NOT_ALLOWED",
        NOT_IMPLEMENTED => "NOT_IMPLEMENTED",
        INTERNAL_ERROR => "INTERNAL_ERROR",
        _ => "UNKNOWN",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_prefixed_with_the_code_name() {
        let e = AmqpError::not_found("no queue 'q' in vhost '/'");
        assert_eq!(e.text, "NOT_FOUND - no queue 'q' in vhost '/'");
        assert!(!e.is_connection_error());
        assert!(AmqpError::frame_error("x").is_connection_error());
    }
}

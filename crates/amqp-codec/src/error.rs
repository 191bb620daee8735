//! The single error type of the codec and its mapping to AMQP reply codes.

use std::fmt;

use crate::reply_code;

/// Everything that can go wrong while decoding AMQP 0-9-1 bytes.
///
/// Every variant is a connection-level error in AMQP terms; [`CodecError::reply_code`]
/// gives the code to put in the `connection.close` the broker sends back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CodecError {
    /// The frame header announced a payload larger than the negotiated `frame_max` allows.
    FrameTooLarge {
        /// Payload size announced by the frame header.
        size: u32,
        /// The negotiated frame_max (whole frame, header and end byte included).
        max: u32,
    },
    /// The byte after the payload was not `0xCE`.
    BadFrameEnd(u8),
    /// The frame type octet was not 1, 2, 3 or 8.
    UnknownFrameType(u8),
    /// A heartbeat frame arrived on a channel other than 0.
    HeartbeatOnChannel(u16),
    /// A method frame named a class/method pair this codec does not know.
    UnknownMethod {
        /// Class id read from the payload.
        class_id: u16,
        /// Method id read from the payload.
        method_id: u16,
    },
    /// A method frame whose arguments cannot be decoded (truncated, trailing bytes, a bad
    /// field table, ...): RabbitMQ answers 501 and names the method.
    BadArguments {
        /// Class id read from the payload.
        class_id: u16,
        /// Method id read from the payload.
        method_id: u16,
        /// What was wrong with the arguments.
        what: &'static str,
    },
    /// Truncated fields, trailing bytes, invalid UTF-8, unknown field-value tag, too deep nesting, ...
    Malformed(&'static str),
}

impl CodecError {
    /// The class and method ids the error concerns, for the `connection.close` (0, 0 if none).
    pub fn method_ids(&self) -> (u16, u16) {
        match self {
            CodecError::BadArguments { class_id, method_id, .. } => (*class_id, *method_id),
            _ => (0, 0),
        }
    }

    /// The AMQP reply code that describes this error (501, 502, 505 or 540).
    pub fn reply_code(&self) -> u16 {
        match self {
            CodecError::FrameTooLarge { .. }
            | CodecError::BadFrameEnd(_)
            | CodecError::UnknownFrameType(_)
            | CodecError::BadArguments { .. } => reply_code::FRAME_ERROR,
            // A well-formed frame in the wrong place, as RabbitMQ classes it.
            CodecError::HeartbeatOnChannel(_) => reply_code::UNEXPECTED_FRAME,
            CodecError::UnknownMethod { .. } => reply_code::NOT_IMPLEMENTED,
            CodecError::Malformed(_) => reply_code::SYNTAX_ERROR,
        }
    }
}

impl fmt::Display for CodecError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CodecError::FrameTooLarge { size, max } => write!(
                f,
                "frame payload of {size} bytes exceeds frame_max {max} (payload limit {})",
                max.saturating_sub(crate::FRAME_OVERHEAD as u32)
            ),
            CodecError::BadFrameEnd(b) => write!(f, "bad frame end octet 0x{b:02x}, expected 0xce"),
            CodecError::UnknownFrameType(t) => write!(f, "unknown frame type {t}"),
            CodecError::HeartbeatOnChannel(c) => write!(f, "heartbeat frame on channel {c}"),
            CodecError::UnknownMethod { class_id, method_id } => write!(f, "unknown method {class_id}.{method_id}"),
            CodecError::BadArguments { class_id, method_id, what } => {
                write!(f, "cannot decode the arguments of method {class_id}.{method_id}: {what}")
            }
            CodecError::Malformed(what) => write!(f, "malformed frame: {what}"),
        }
    }
}

impl std::error::Error for CodecError {}

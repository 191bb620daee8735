//! AMQP 0-9-1 reply codes (as used in `connection.close`, `channel.close` and `basic.return`).

/// The method completed successfully.
pub const REPLY_SUCCESS: u16 = 200;
/// The client attempted to transfer content larger than the server could accept.
pub const CONTENT_TOO_LARGE: u16 = 311;
/// A mandatory message could not be routed to any queue (RabbitMQ).
pub const NO_ROUTE: u16 = 312;
/// An immediate message could not be delivered to any consumer.
pub const NO_CONSUMERS: u16 = 313;
/// An operator intervened to close the connection.
pub const CONNECTION_FORCED: u16 = 320;
/// The client tried to work with an unknown virtual host.
pub const INVALID_PATH: u16 = 402;
/// The client is not allowed to access the requested resource.
pub const ACCESS_REFUSED: u16 = 403;
/// The requested resource does not exist.
pub const NOT_FOUND: u16 = 404;
/// The resource is locked by another connection (e.g. an exclusive queue).
pub const RESOURCE_LOCKED: u16 = 405;
/// A precondition such as equivalent declare arguments failed.
pub const PRECONDITION_FAILED: u16 = 406;
/// A malformed frame was received.
pub const FRAME_ERROR: u16 = 501;
/// A frame contained illegal values for its fields.
pub const SYNTAX_ERROR: u16 = 502;
/// An invalid sequence of frames or methods was received.
pub const COMMAND_INVALID: u16 = 503;
/// A frame was received on a channel that is not open.
pub const CHANNEL_ERROR: u16 = 504;
/// A frame arrived that was not expected at this point.
pub const UNEXPECTED_FRAME: u16 = 505;
/// The server ran out of a resource.
pub const RESOURCE_ERROR: u16 = 506;
/// The operation is not allowed (e.g. by server configuration).
pub const NOT_ALLOWED: u16 = 530;
/// The functionality is not implemented by the server.
pub const NOT_IMPLEMENTED: u16 = 540;
/// An internal error in the server.
pub const INTERNAL_ERROR: u16 = 541;

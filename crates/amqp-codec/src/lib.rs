//! AMQP 0-9-1 wire codec for Warren: frames, methods, field tables and basic properties.
//!
//! Bytes in, typed values out, and back; no IO, no async runtime. Decoding takes
//! [`bytes::Bytes`]/[`bytes::BytesMut`] and slices strings and bodies out of the input
//! without copying. No input, however hostile, makes the decoder panic: bad input is a
//! [`CodecError`], which knows the AMQP reply code to close the connection with.
//!
//! ```
//! use amqp_codec::{decode_frame, encode_method, BasicPublish, Frame, Method};
//! use bytes::BytesMut;
//!
//! let mut buf = BytesMut::new();
//! let publish = BasicPublish { exchange: "amq.direct".into(), routing_key: "k".into(), ..Default::default() };
//! encode_method(&mut buf, 1, &Method::BasicPublish(publish.clone()));
//! let frame = decode_frame(&mut buf, 131_072).unwrap().unwrap();
//! assert_eq!(frame, Frame::Method { channel: 1, method: Method::BasicPublish(publish) });
//! ```
#![deny(unsafe_code)]

mod error;
mod frame;
pub mod method;
mod properties;
pub mod raw_properties;
pub mod reply_code;
mod shortstr;
mod table;
mod wire;

pub use error::CodecError;
pub use frame::{
    decode_frame, encode_body, encode_content_header, encode_frame, encode_heartbeat, encode_method, Frame, FRAME_BODY,
    FRAME_HEADER, FRAME_HEARTBEAT, FRAME_METHOD,
};
pub use method::*;
pub use properties::BasicProperties;
pub use shortstr::{ShortStr, SHORT_STR_MAX};
pub use table::{FieldTable, FieldValue, LongStr, MAX_NESTING_DEPTH};

/// The 8 bytes a client sends first: "AMQP", 0, 0, 9, 1.
pub const PROTOCOL_HEADER: &[u8; 8] = b"AMQP\x00\x00\x09\x01";
/// The octet that ends every frame.
pub const FRAME_END: u8 = 0xCE;
/// Frame header: type (1), channel (2), size (4).
pub const FRAME_HEADER_SIZE: usize = 7;
/// Header plus end octet: what a frame adds around its payload.
pub const FRAME_OVERHEAD: usize = 8;
/// Smallest frame_max a peer may negotiate.
pub const FRAME_MIN_SIZE: u32 = 4096;
/// Class id of the `basic` class (the only one with content).
pub const BASIC_CLASS_ID: u16 = 60;

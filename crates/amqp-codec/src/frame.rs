//! Frames: splitting a byte stream into method/header/body/heartbeat frames and writing them back.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::wire::{get_u16, get_u64};
use crate::{CodecError, Method};

/// Type octet of a method frame.
pub const FRAME_METHOD: u8 = 1;
/// Type octet of a content header frame.
pub const FRAME_HEADER: u8 = 2;
/// Type octet of a content body frame.
pub const FRAME_BODY: u8 = 3;
/// Type octet of a heartbeat frame.
pub const FRAME_HEARTBEAT: u8 = 8;

/// One AMQP frame. Payload bytes share the receive buffer (no copy).
#[derive(Debug, Clone, PartialEq)]
pub enum Frame {
    /// A method frame.
    Method { channel: u16, method: Method },
    /// A content header. `properties` is the raw property flags + list; decode it with
    /// [`crate::BasicProperties::decode`] or peek with [`crate::raw_properties`].
    Header { channel: u16, class_id: u16, body_size: u64, properties: Bytes },
    /// A piece of message body.
    Body { channel: u16, payload: Bytes },
    /// A heartbeat; only channel 0 is valid on the wire (decode refuses others).
    Heartbeat { channel: u16 },
}

impl Frame {
    /// The channel this frame belongs to.
    pub fn channel(&self) -> u16 {
        match *self {
            Frame::Method { channel, .. }
            | Frame::Header { channel, .. }
            | Frame::Body { channel, .. }
            | Frame::Heartbeat { channel } => channel,
        }
    }
}

/// Largest payload a frame may carry under `frame_max` (0 = no limit beyond u32).
#[inline]
fn max_payload(frame_max: u32) -> u32 {
    if frame_max == 0 {
        u32::MAX
    } else {
        frame_max.saturating_sub(crate::FRAME_OVERHEAD as u32)
    }
}

/// Decodes one frame from the front of `buf`.
///
/// Returns `Ok(None)` when more bytes are needed; nothing is consumed then. The frame type
/// and the announced size are checked as soon as the 7-byte header is there, so an
/// oversize frame (payload > `frame_max - 8`; `frame_max == 0` means no limit) is refused
/// before its payload is buffered. On success the frame's bytes are split off `buf` and
/// frozen, so strings and bodies in the result point into them without copying.
/// After an error the connection must be closed; `buf` is left in an unspecified state.
pub fn decode_frame(buf: &mut BytesMut, frame_max: u32) -> Result<Option<Frame>, CodecError> {
    let Some(header) = buf.get(..crate::FRAME_HEADER_SIZE) else {
        return Ok(None);
    };
    let mut header: &[u8] = header;
    let kind = header.get_u8();
    let channel = header.get_u16();
    let size = header.get_u32();
    if !matches!(kind, FRAME_METHOD | FRAME_HEADER | FRAME_BODY | FRAME_HEARTBEAT) {
        return Err(CodecError::UnknownFrameType(kind));
    }
    if size > max_payload(frame_max) {
        return Err(CodecError::FrameTooLarge { size, max: frame_max });
    }
    let Some(total) = (size as usize).checked_add(crate::FRAME_OVERHEAD) else {
        return Err(CodecError::FrameTooLarge { size, max: frame_max });
    };
    let Some(&end) = buf.get(total - 1) else {
        return Ok(None);
    };
    if end != crate::FRAME_END {
        return Err(CodecError::BadFrameEnd(end));
    }
    let mut frame = buf.split_to(total).freeze();
    frame.advance(crate::FRAME_HEADER_SIZE);
    frame.truncate(size as usize);
    let payload = frame;
    let frame = match kind {
        FRAME_METHOD => {
            let ids = (payload.len() >= 4)
                .then(|| (u16::from_be_bytes([payload[0], payload[1]]), u16::from_be_bytes([payload[2], payload[3]])));
            match (Method::decode(payload), ids) {
                (Ok(method), _) => Frame::Method { channel, method },
                (Err(CodecError::Malformed(what)), Some((class_id, method_id))) => {
                    return Err(CodecError::BadArguments { class_id, method_id, what })
                }
                (Err(e), _) => return Err(e),
            }
        }
        FRAME_HEADER => {
            let mut p = payload;
            let class_id = get_u16(&mut p)?;
            let _weight = get_u16(&mut p)?;
            let body_size = get_u64(&mut p)?;
            Frame::Header { channel, class_id, body_size, properties: p }
        }
        FRAME_BODY => Frame::Body { channel, payload },
        _ => {
            if channel != 0 {
                return Err(CodecError::HeartbeatOnChannel(channel));
            }
            if !payload.is_empty() {
                return Err(CodecError::Malformed("heartbeat frame with a payload"));
            }
            Frame::Heartbeat { channel }
        }
    };
    Ok(Some(frame))
}

/// Writes a frame header with a size placeholder; returns the position to patch.
#[inline]
fn begin_frame(buf: &mut BytesMut, kind: u8, channel: u16) -> usize {
    let pos = buf.len();
    buf.put_u8(kind);
    buf.put_u16(channel);
    buf.put_u32(0);
    pos
}

/// Patches the size of the frame started at `pos` and writes the end octet.
#[inline]
fn end_frame(buf: &mut BytesMut, pos: usize) {
    let size = buf.len() - pos - crate::FRAME_HEADER_SIZE;
    debug_assert!(u32::try_from(size).is_ok(), "frame payload longer than u32::MAX");
    if let Some(slot) = buf.get_mut(pos + 3..pos + 7) {
        slot.copy_from_slice(&(size as u32).to_be_bytes());
    }
    buf.put_u8(crate::FRAME_END);
}

/// Writes any frame. Bodies are written as one frame (see [`encode_body`] to split by frame_max).
pub fn encode_frame(buf: &mut BytesMut, frame: &Frame) {
    match frame {
        Frame::Method { channel, method } => encode_method(buf, *channel, method),
        Frame::Header { channel, class_id, body_size, properties } => {
            encode_content_header(buf, *channel, *class_id, *body_size, properties)
        }
        Frame::Body { channel, payload } => {
            buf.reserve(payload.len() + crate::FRAME_OVERHEAD);
            buf.put_u8(FRAME_BODY);
            buf.put_u16(*channel);
            buf.put_u32(payload.len() as u32);
            buf.put_slice(payload);
            buf.put_u8(crate::FRAME_END);
        }
        Frame::Heartbeat { channel } => {
            buf.put_u8(FRAME_HEARTBEAT);
            buf.put_u16(*channel);
            buf.put_u32(0);
            buf.put_u8(crate::FRAME_END);
        }
    }
}

/// Writes a method frame directly into `buf` (size patched in place, no temporary buffer).
pub fn encode_method(buf: &mut BytesMut, channel: u16, method: &Method) {
    buf.reserve(64);
    let pos = begin_frame(buf, FRAME_METHOD, channel);
    method.encode(buf);
    end_frame(buf, pos);
}

/// Writes a content header frame; `properties_raw` is the flags + property list.
pub fn encode_content_header(buf: &mut BytesMut, channel: u16, class_id: u16, body_size: u64, properties_raw: &[u8]) {
    let size = 12 + properties_raw.len();
    buf.reserve(size + crate::FRAME_OVERHEAD);
    buf.put_u8(FRAME_HEADER);
    buf.put_u16(channel);
    buf.put_u32(size as u32);
    buf.put_u16(class_id);
    buf.put_u16(0); // weight
    buf.put_u64(body_size);
    buf.put_slice(properties_raw);
    buf.put_u8(crate::FRAME_END);
}

/// Writes `body` as body frames of at most `frame_max - 8` payload bytes each
/// (`frame_max == 0`: no limit beyond u32). An empty body writes nothing.
pub fn encode_body(buf: &mut BytesMut, channel: u16, body: &[u8], frame_max: u32) {
    if body.is_empty() {
        return;
    }
    let chunk = (max_payload(frame_max) as usize).max(1);
    let frames = body.len().div_ceil(chunk);
    buf.reserve(body.len() + frames * crate::FRAME_OVERHEAD);
    for piece in body.chunks(chunk) {
        buf.put_u8(FRAME_BODY);
        buf.put_u16(channel);
        buf.put_u32(piece.len() as u32);
        buf.put_slice(piece);
        buf.put_u8(crate::FRAME_END);
    }
}

/// Writes a heartbeat frame (channel 0).
pub fn encode_heartbeat(buf: &mut BytesMut) {
    buf.put_slice(&[FRAME_HEARTBEAT, 0, 0, 0, 0, 0, 0, crate::FRAME_END]);
}

//! `BasicProperties`: the property list of a `basic` content header, fully decoded.

use bytes::{BufMut, Bytes, BytesMut};

use crate::shortstr::ShortStr;
use crate::table::FieldTable;
use crate::wire::{self, get_shortstr, get_u16, get_u64, get_u8};
use crate::CodecError;

/// Property-flag bits of the `basic` class, most significant first (bit 15 = content-type).
pub(crate) mod flag {
    pub const CONTENT_TYPE: u16 = 1 << 15;
    pub const CONTENT_ENCODING: u16 = 1 << 14;
    pub const HEADERS: u16 = 1 << 13;
    pub const DELIVERY_MODE: u16 = 1 << 12;
    pub const PRIORITY: u16 = 1 << 11;
    pub const CORRELATION_ID: u16 = 1 << 10;
    pub const REPLY_TO: u16 = 1 << 9;
    pub const EXPIRATION: u16 = 1 << 8;
    pub const MESSAGE_ID: u16 = 1 << 7;
    pub const TIMESTAMP: u16 = 1 << 6;
    pub const TYPE: u16 = 1 << 5;
    pub const USER_ID: u16 = 1 << 4;
    pub const APP_ID: u16 = 1 << 3;
    pub const CLUSTER_ID: u16 = 1 << 2;
    /// Set when another flags word follows.
    pub const CONTINUATION: u16 = 1;
}

/// The properties of a `basic` message (content header of class 60).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct BasicProperties {
    /// MIME content type.
    pub content_type: Option<ShortStr>,
    /// MIME content encoding.
    pub content_encoding: Option<ShortStr>,
    /// Application headers.
    pub headers: Option<FieldTable>,
    /// 1 = non-persistent, 2 = persistent.
    pub delivery_mode: Option<u8>,
    /// Message priority, 0 to 9.
    pub priority: Option<u8>,
    /// Application correlation identifier.
    pub correlation_id: Option<ShortStr>,
    /// Address to reply to.
    pub reply_to: Option<ShortStr>,
    /// Per-message TTL in milliseconds, as a decimal string (RabbitMQ).
    pub expiration: Option<ShortStr>,
    /// Application message identifier.
    pub message_id: Option<ShortStr>,
    /// Message timestamp (seconds since the epoch).
    pub timestamp: Option<u64>,
    /// Message type name (the spec's `type`).
    pub kind: Option<ShortStr>,
    /// Creating user id (RabbitMQ validates it against the connection's user).
    pub user_id: Option<ShortStr>,
    /// Creating application id.
    pub app_id: Option<ShortStr>,
    /// Deprecated cluster id.
    pub cluster_id: Option<ShortStr>,
}

/// Reads the property-flags word(s); returns the first word (the only one `basic` uses).
pub(crate) fn read_flags(buf: &mut Bytes) -> Result<u16, CodecError> {
    let first = get_u16(buf)?;
    let mut word = first;
    while word & flag::CONTINUATION != 0 {
        word = get_u16(buf)?;
    }
    Ok(first)
}

fn opt_str(buf: &mut Bytes, flags: u16, bit: u16) -> Result<Option<ShortStr>, CodecError> {
    if flags & bit != 0 {
        get_shortstr(buf).map(Some)
    } else {
        Ok(None)
    }
}

fn opt_u8(buf: &mut Bytes, flags: u16, bit: u16) -> Result<Option<u8>, CodecError> {
    if flags & bit != 0 {
        get_u8(buf).map(Some)
    } else {
        Ok(None)
    }
}

impl BasicProperties {
    /// Decodes `raw` = property flags (continuation words are skipped) followed by the
    /// property list, i.e. a content header payload after class-id, weight and body-size.
    /// Trailing bytes are `Malformed`.
    pub fn decode(raw: Bytes) -> Result<BasicProperties, CodecError> {
        let mut buf = raw;
        let f = read_flags(&mut buf)?;
        let props = BasicProperties {
            content_type: opt_str(&mut buf, f, flag::CONTENT_TYPE)?,
            content_encoding: opt_str(&mut buf, f, flag::CONTENT_ENCODING)?,
            headers: if f & flag::HEADERS != 0 { Some(FieldTable::decode(&mut buf)?) } else { None },
            delivery_mode: opt_u8(&mut buf, f, flag::DELIVERY_MODE)?,
            priority: opt_u8(&mut buf, f, flag::PRIORITY)?,
            correlation_id: opt_str(&mut buf, f, flag::CORRELATION_ID)?,
            reply_to: opt_str(&mut buf, f, flag::REPLY_TO)?,
            expiration: opt_str(&mut buf, f, flag::EXPIRATION)?,
            message_id: opt_str(&mut buf, f, flag::MESSAGE_ID)?,
            timestamp: if f & flag::TIMESTAMP != 0 { Some(get_u64(&mut buf)?) } else { None },
            kind: opt_str(&mut buf, f, flag::TYPE)?,
            user_id: opt_str(&mut buf, f, flag::USER_ID)?,
            app_id: opt_str(&mut buf, f, flag::APP_ID)?,
            cluster_id: opt_str(&mut buf, f, flag::CLUSTER_ID)?,
        };
        if !buf.is_empty() {
            return Err(CodecError::Malformed("trailing bytes after basic properties"));
        }
        Ok(props)
    }

    /// The property-flags word these properties encode with.
    pub fn flags(&self) -> u16 {
        let mut f = 0;
        let mut set = |present: bool, bit: u16| {
            if present {
                f |= bit;
            }
        };
        set(self.content_type.is_some(), flag::CONTENT_TYPE);
        set(self.content_encoding.is_some(), flag::CONTENT_ENCODING);
        set(self.headers.is_some(), flag::HEADERS);
        set(self.delivery_mode.is_some(), flag::DELIVERY_MODE);
        set(self.priority.is_some(), flag::PRIORITY);
        set(self.correlation_id.is_some(), flag::CORRELATION_ID);
        set(self.reply_to.is_some(), flag::REPLY_TO);
        set(self.expiration.is_some(), flag::EXPIRATION);
        set(self.message_id.is_some(), flag::MESSAGE_ID);
        set(self.timestamp.is_some(), flag::TIMESTAMP);
        set(self.kind.is_some(), flag::TYPE);
        set(self.user_id.is_some(), flag::USER_ID);
        set(self.app_id.is_some(), flag::APP_ID);
        set(self.cluster_id.is_some(), flag::CLUSTER_ID);
        f
    }

    /// Writes the flags word and the present properties.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u16(self.flags());
        let strs = |buf: &mut BytesMut, s: &Option<ShortStr>| {
            if let Some(s) = s {
                wire::put_shortstr(buf, s);
            }
        };
        strs(buf, &self.content_type);
        strs(buf, &self.content_encoding);
        if let Some(h) = &self.headers {
            h.encode(buf);
        }
        if let Some(v) = self.delivery_mode {
            buf.put_u8(v);
        }
        if let Some(v) = self.priority {
            buf.put_u8(v);
        }
        strs(buf, &self.correlation_id);
        strs(buf, &self.reply_to);
        strs(buf, &self.expiration);
        strs(buf, &self.message_id);
        if let Some(v) = self.timestamp {
            buf.put_u64(v);
        }
        strs(buf, &self.kind);
        strs(buf, &self.user_id);
        strs(buf, &self.app_id);
        strs(buf, &self.cluster_id);
    }

    /// Bytes written by [`BasicProperties::encode`].
    pub fn encoded_len(&self) -> usize {
        let s = |s: &Option<ShortStr>| s.as_ref().map_or(0, |s| 1 + s.len());
        2 + s(&self.content_type)
            + s(&self.content_encoding)
            + self.headers.as_ref().map_or(0, FieldTable::encoded_len)
            + usize::from(self.delivery_mode.is_some())
            + usize::from(self.priority.is_some())
            + s(&self.correlation_id)
            + s(&self.reply_to)
            + s(&self.expiration)
            + s(&self.message_id)
            + if self.timestamp.is_some() { 8 } else { 0 }
            + s(&self.kind)
            + s(&self.user_id)
            + s(&self.app_id)
            + s(&self.cluster_id)
    }

    /// The encoded flags + property list, as stored in [`crate::Frame::Header`].
    pub fn to_raw(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.encode(&mut buf);
        buf.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_properties_are_two_zero_bytes() {
        assert_eq!(&BasicProperties::default().to_raw()[..], &[0, 0]);
        assert_eq!(BasicProperties::decode(Bytes::from_static(&[0, 0])), Ok(BasicProperties::default()));
    }

    #[test]
    fn continuation_words_are_skipped() {
        // delivery-mode set plus continuation bit, then an extra (empty) flags word.
        let raw = Bytes::from_static(&[0x10, 0x01, 0x00, 0x00, 2]);
        let p = BasicProperties::decode(raw).unwrap();
        assert_eq!(p.delivery_mode, Some(2));
    }

    #[test]
    fn trailing_and_truncated() {
        assert!(BasicProperties::decode(Bytes::from_static(&[0, 0, 1])).is_err());
        assert!(BasicProperties::decode(Bytes::from_static(&[0x80, 0, 5, b'a'])).is_err());
        assert!(BasicProperties::decode(Bytes::from_static(&[0])).is_err());
    }

    #[test]
    fn encoded_len_matches() {
        let p = BasicProperties {
            content_type: Some("text/plain".into()),
            headers: Some(FieldTable::new()),
            priority: Some(3),
            timestamp: Some(7),
            cluster_id: Some("c".into()),
            ..Default::default()
        };
        let raw = p.to_raw();
        assert_eq!(raw.len(), p.encoded_len());
        assert_eq!(BasicProperties::decode(raw), Ok(p));
    }
}

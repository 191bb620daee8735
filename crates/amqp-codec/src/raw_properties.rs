//! Lazy accessors on raw `basic` property bytes: read one property without decoding or allocating.
//!
//! The input is what [`crate::Frame::Header`] carries in `properties` (flags word(s) then the
//! property list). Every accessor returns `None` (or `false`) when the property is absent
//! *or* when the bytes are malformed up to the point where the property would be.

use crate::properties::flag;

/// A bounds-checked cursor over a byte slice.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Some(head)
    }

    fn u8(&mut self) -> Option<u8> {
        self.take(1).and_then(|b| b.first().copied())
    }

    fn u16(&mut self) -> Option<u16> {
        let b = self.take(2)?;
        Some(u16::from_be_bytes([*b.first()?, *b.get(1)?]))
    }

    fn u32(&mut self) -> Option<u32> {
        let b = self.take(4)?;
        Some(u32::from_be_bytes(b.try_into().ok()?))
    }

    fn shortstr(&mut self) -> Option<&'a [u8]> {
        let len = self.u8()? as usize;
        self.take(len)
    }
}

/// The order of properties on the wire with the width class of each.
#[derive(Clone, Copy)]
enum Kind {
    Str,
    Table,
    Octet,
    Timestamp,
}

const LAYOUT: [(u16, Kind); 14] = [
    (flag::CONTENT_TYPE, Kind::Str),
    (flag::CONTENT_ENCODING, Kind::Str),
    (flag::HEADERS, Kind::Table),
    (flag::DELIVERY_MODE, Kind::Octet),
    (flag::PRIORITY, Kind::Octet),
    (flag::CORRELATION_ID, Kind::Str),
    (flag::REPLY_TO, Kind::Str),
    (flag::EXPIRATION, Kind::Str),
    (flag::MESSAGE_ID, Kind::Str),
    (flag::TIMESTAMP, Kind::Timestamp),
    (flag::TYPE, Kind::Str),
    (flag::USER_ID, Kind::Str),
    (flag::APP_ID, Kind::Str),
    (flag::CLUSTER_ID, Kind::Str),
];

/// Returns the raw bytes of property `target` (for octets: the one byte), skipping those before it.
fn find(raw: &[u8], target: u16) -> Option<&[u8]> {
    let mut cur = Cursor(raw);
    let flags = cur.u16()?;
    let mut word = flags;
    while word & flag::CONTINUATION != 0 {
        word = cur.u16()?;
    }
    if flags & target == 0 {
        return None;
    }
    for (bit, kind) in LAYOUT {
        if flags & bit == 0 {
            continue;
        }
        let field = match kind {
            Kind::Str => cur.shortstr()?,
            Kind::Table => {
                let len = cur.u32()? as usize;
                cur.take(len)?
            }
            Kind::Octet => cur.take(1)?,
            Kind::Timestamp => cur.take(8)?,
        };
        if bit == target {
            return Some(field);
        }
    }
    None
}

fn find_str(raw: &[u8], target: u16) -> Option<&str> {
    find(raw, target).and_then(|b| std::str::from_utf8(b).ok())
}

/// `delivery-mode` (1 = transient, 2 = persistent).
pub fn delivery_mode(raw: &[u8]) -> Option<u8> {
    find(raw, flag::DELIVERY_MODE).and_then(|b| b.first().copied())
}

/// `priority`.
pub fn priority(raw: &[u8]) -> Option<u8> {
    find(raw, flag::PRIORITY).and_then(|b| b.first().copied())
}

/// `expiration` (per-message TTL in ms, as text).
pub fn expiration(raw: &[u8]) -> Option<&str> {
    find_str(raw, flag::EXPIRATION)
}

/// Whether the `headers` flag is set (looks at the flags word only).
pub fn has_headers(raw: &[u8]) -> bool {
    Cursor(raw).u16().is_some_and(|f| f & flag::HEADERS != 0)
}

/// `user-id`.
pub fn user_id(raw: &[u8]) -> Option<&str> {
    find_str(raw, flag::USER_ID)
}

/// `reply-to`.
pub fn reply_to(raw: &[u8]) -> Option<&str> {
    find_str(raw, flag::REPLY_TO)
}

/// Cheap structural check: flags, every present property fits, no trailing bytes.
/// Does not look inside the headers table nor validate UTF-8; use
/// [`crate::BasicProperties::decode`] for a full check.
pub fn is_well_formed(raw: &[u8]) -> bool {
    let mut cur = Cursor(raw);
    let Some(flags) = cur.u16() else {
        return false;
    };
    let mut word = flags;
    while word & flag::CONTINUATION != 0 {
        match cur.u16() {
            Some(w) => word = w,
            None => return false,
        }
    }
    for (bit, kind) in LAYOUT {
        if flags & bit == 0 {
            continue;
        }
        let ok = match kind {
            Kind::Str => cur.shortstr().is_some(),
            Kind::Table => cur.u32().and_then(|len| cur.take(len as usize)).is_some(),
            Kind::Octet => cur.take(1).is_some(),
            Kind::Timestamp => cur.take(8).is_some(),
        };
        if !ok {
            return false;
        }
    }
    cur.0.is_empty()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BasicProperties, FieldTable, FieldValue};

    #[test]
    fn accessors_agree_with_full_decode() {
        let mut headers = FieldTable::new();
        headers.insert("x-a", FieldValue::I32(1));
        let p = BasicProperties {
            content_type: Some("application/json".into()),
            headers: Some(headers),
            delivery_mode: Some(2),
            priority: Some(5),
            reply_to: Some("amq.rabbitmq.reply-to".into()),
            expiration: Some("60000".into()),
            timestamp: Some(1),
            user_id: Some("guest".into()),
            ..Default::default()
        };
        let raw = p.to_raw();
        assert_eq!(delivery_mode(&raw), Some(2));
        assert_eq!(priority(&raw), Some(5));
        assert_eq!(expiration(&raw), Some("60000"));
        assert_eq!(user_id(&raw), Some("guest"));
        assert_eq!(reply_to(&raw), Some("amq.rabbitmq.reply-to"));
        assert!(has_headers(&raw));
        assert!(is_well_formed(&raw));

        let empty = BasicProperties::default().to_raw();
        assert_eq!(delivery_mode(&empty), None);
        assert!(!has_headers(&empty));
        assert!(is_well_formed(&empty));
    }

    #[test]
    fn malformed_gives_none() {
        // expiration flag set, but the string is cut short.
        let raw = [0x01, 0x00, 5, b'1'];
        assert_eq!(expiration(&raw), None);
        assert!(!is_well_formed(&raw));
        assert_eq!(delivery_mode(&[]), None);
        assert!(!has_headers(&[0x20]));
        assert!(!is_well_formed(&[0, 0, 0]));
    }
}

//! Field tables and field values (AMQP `table` / `field-value`, with RabbitMQ's type tags).

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::shortstr::ShortStr;
use crate::wire::{self, get_longstr, get_shortstr, get_slice, get_u16, get_u32, get_u64, get_u8};
use crate::CodecError;

/// AMQP long string: arbitrary binary, up to u32::MAX bytes.
pub type LongStr = Bytes;

/// How many tables/arrays may be nested inside a top-level table or array before decoding
/// refuses the input (so a hostile peer cannot exhaust the stack).
pub const MAX_NESTING_DEPTH: usize = 64;

/// A field value, tagged as RabbitMQ does (the "errata" tags, not the 0-9-1 spec's).
///
/// Decoding also accepts `L` (a 64-bit integer in the 0-9-1 spec) and reads it as `I64`,
/// like amq-protocol does; it re-encodes as `l`. Any other unknown tag is `Malformed`.
#[derive(Clone, Debug, PartialEq)]
pub enum FieldValue {
    /// `t`: boolean (any non-zero octet decodes as true).
    Bool(bool),
    /// `b`: signed 8-bit.
    I8(i8),
    /// `B`: unsigned 8-bit.
    U8(u8),
    /// `s`: signed 16-bit.
    I16(i16),
    /// `u`: unsigned 16-bit.
    U16(u16),
    /// `I`: signed 32-bit.
    I32(i32),
    /// `i`: unsigned 32-bit.
    U32(u32),
    /// `l`: signed 64-bit.
    I64(i64),
    /// `f`: 32-bit float.
    F32(f32),
    /// `d`: 64-bit float.
    F64(f64),
    /// `D`: decimal, `value / 10^scale`.
    Decimal {
        /// Number of decimal digits.
        scale: u8,
        /// Unscaled value.
        value: u32,
    },
    /// `S`: long string (binary).
    LongStr(Bytes),
    /// `A`: array of field values.
    Array(Vec<FieldValue>),
    /// `T`: timestamp (seconds since the epoch).
    Timestamp(u64),
    /// `F`: nested table.
    Table(FieldTable),
    /// `V`: no value.
    Void,
    /// `x`: byte array (RabbitMQ extension).
    ByteArray(Bytes),
}

impl FieldValue {
    /// The value as i64 if it is any integer type (`b B s u I i l`).
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            FieldValue::I8(v) => Some(v.into()),
            FieldValue::U8(v) => Some(v.into()),
            FieldValue::I16(v) => Some(v.into()),
            FieldValue::U16(v) => Some(v.into()),
            FieldValue::I32(v) => Some(v.into()),
            FieldValue::U32(v) => Some(v.into()),
            FieldValue::I64(v) => Some(v),
            _ => None,
        }
    }

    /// The value as `&str` if it is a long string holding valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            FieldValue::LongStr(b) => std::str::from_utf8(b).ok(),
            _ => None,
        }
    }

    /// The value if it is a boolean.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            FieldValue::Bool(b) => Some(b),
            _ => None,
        }
    }

    /// The value if it is a nested table.
    pub fn as_table(&self) -> Option<&FieldTable> {
        match self {
            FieldValue::Table(t) => Some(t),
            _ => None,
        }
    }

    /// The value if it is an array.
    pub fn as_array(&self) -> Option<&[FieldValue]> {
        match self {
            FieldValue::Array(a) => Some(a),
            _ => None,
        }
    }

    /// The one-byte type tag this value is encoded with.
    pub fn tag(&self) -> u8 {
        match self {
            FieldValue::Bool(_) => b't',
            FieldValue::I8(_) => b'b',
            FieldValue::U8(_) => b'B',
            FieldValue::I16(_) => b's',
            FieldValue::U16(_) => b'u',
            FieldValue::I32(_) => b'I',
            FieldValue::U32(_) => b'i',
            FieldValue::I64(_) => b'l',
            FieldValue::F32(_) => b'f',
            FieldValue::F64(_) => b'd',
            FieldValue::Decimal { .. } => b'D',
            FieldValue::LongStr(_) => b'S',
            FieldValue::Array(_) => b'A',
            FieldValue::Timestamp(_) => b'T',
            FieldValue::Table(_) => b'F',
            FieldValue::Void => b'V',
            FieldValue::ByteArray(_) => b'x',
        }
    }

    /// Writes tag and value.
    pub fn encode(&self, buf: &mut BytesMut) {
        buf.put_u8(self.tag());
        match self {
            FieldValue::Bool(b) => buf.put_u8(u8::from(*b)),
            FieldValue::I8(v) => buf.put_i8(*v),
            FieldValue::U8(v) => buf.put_u8(*v),
            FieldValue::I16(v) => buf.put_i16(*v),
            FieldValue::U16(v) => buf.put_u16(*v),
            FieldValue::I32(v) => buf.put_i32(*v),
            FieldValue::U32(v) => buf.put_u32(*v),
            FieldValue::I64(v) => buf.put_i64(*v),
            FieldValue::F32(v) => buf.put_f32(*v),
            FieldValue::F64(v) => buf.put_f64(*v),
            FieldValue::Decimal { scale, value } => {
                buf.put_u8(*scale);
                buf.put_u32(*value);
            }
            FieldValue::LongStr(b) | FieldValue::ByteArray(b) => wire::put_longstr(buf, b),
            FieldValue::Array(items) => {
                let pos = wire::begin_len(buf);
                for item in items {
                    item.encode(buf);
                }
                wire::patch_len(buf, pos);
            }
            FieldValue::Timestamp(t) => buf.put_u64(*t),
            FieldValue::Table(t) => t.encode(buf),
            FieldValue::Void => {}
        }
    }

    /// Bytes written by [`FieldValue::encode`] (tag included).
    pub fn encoded_len(&self) -> usize {
        1 + match self {
            FieldValue::Bool(_) | FieldValue::I8(_) | FieldValue::U8(_) => 1,
            FieldValue::I16(_) | FieldValue::U16(_) => 2,
            FieldValue::I32(_) | FieldValue::U32(_) | FieldValue::F32(_) => 4,
            FieldValue::I64(_) | FieldValue::F64(_) | FieldValue::Timestamp(_) => 8,
            FieldValue::Decimal { .. } => 5,
            FieldValue::LongStr(b) | FieldValue::ByteArray(b) => 4 + b.len(),
            FieldValue::Array(items) => 4 + items.iter().map(FieldValue::encoded_len).sum::<usize>(),
            FieldValue::Table(t) => t.encoded_len(),
            FieldValue::Void => 0,
        }
    }

    /// Reads tag and value; `depth` counts the tables/arrays this value is nested in.
    fn decode(buf: &mut Bytes, depth: usize) -> Result<FieldValue, CodecError> {
        let tag = get_u8(buf)?;
        Ok(match tag {
            b't' => FieldValue::Bool(get_u8(buf)? != 0),
            b'b' => FieldValue::I8(get_u8(buf)? as i8),
            b'B' => FieldValue::U8(get_u8(buf)?),
            b's' => FieldValue::I16(get_u16(buf)? as i16),
            b'u' => FieldValue::U16(get_u16(buf)?),
            b'I' => FieldValue::I32(get_u32(buf)? as i32),
            b'i' => FieldValue::U32(get_u32(buf)?),
            b'l' | b'L' => FieldValue::I64(get_u64(buf)? as i64),
            b'f' => FieldValue::F32(f32::from_bits(get_u32(buf)?)),
            b'd' => FieldValue::F64(f64::from_bits(get_u64(buf)?)),
            b'D' => FieldValue::Decimal { scale: get_u8(buf)?, value: get_u32(buf)? },
            b'S' => FieldValue::LongStr(get_longstr(buf)?),
            b'x' => FieldValue::ByteArray(get_longstr(buf)?),
            b'T' => FieldValue::Timestamp(get_u64(buf)?),
            b'V' => FieldValue::Void,
            b'A' => FieldValue::Array(decode_array(buf, nested(depth)?)?),
            b'F' => FieldValue::Table(FieldTable::decode_at(buf, nested(depth)?)?),
            _ => return Err(CodecError::Malformed("unknown field type")),
        })
    }
}

fn nested(depth: usize) -> Result<usize, CodecError> {
    if depth >= MAX_NESTING_DEPTH {
        Err(CodecError::Malformed("field table nested too deeply"))
    } else {
        Ok(depth + 1)
    }
}

fn decode_array(buf: &mut Bytes, depth: usize) -> Result<Vec<FieldValue>, CodecError> {
    let len = get_u32(buf)? as usize;
    let mut body = get_slice(buf, len)?;
    let mut items = Vec::new();
    while body.has_remaining() {
        items.push(FieldValue::decode(&mut body, depth)?);
    }
    Ok(items)
}

impl From<bool> for FieldValue {
    fn from(v: bool) -> Self {
        FieldValue::Bool(v)
    }
}
impl From<i32> for FieldValue {
    fn from(v: i32) -> Self {
        FieldValue::I32(v)
    }
}
impl From<i64> for FieldValue {
    fn from(v: i64) -> Self {
        FieldValue::I64(v)
    }
}
impl From<&str> for FieldValue {
    fn from(v: &str) -> Self {
        FieldValue::LongStr(Bytes::copy_from_slice(v.as_bytes()))
    }
}
impl From<String> for FieldValue {
    fn from(v: String) -> Self {
        FieldValue::LongStr(Bytes::from(v))
    }
}
impl From<FieldTable> for FieldValue {
    fn from(v: FieldTable) -> Self {
        FieldValue::Table(v)
    }
}

/// An AMQP field table: an ordered list of (name, value) pairs.
///
/// Order (and any duplicate names a peer sent) is preserved, so decode followed by encode
/// reproduces the input bytes exactly. Lookups are linear, which is faster than hashing
/// for the handful of entries real tables have.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct FieldTable(pub Vec<(ShortStr, FieldValue)>);

impl FieldTable {
    /// An empty table.
    pub fn new() -> Self {
        FieldTable(Vec::new())
    }

    /// The value of the first entry named `key`.
    pub fn get(&self, key: &str) -> Option<&FieldValue> {
        self.0.iter().find(|(k, _)| k.as_str() == key).map(|(_, v)| v)
    }

    /// Sets `key` to `v`, replacing the value of the first entry with that name, or appending.
    pub fn insert(&mut self, key: impl Into<ShortStr>, v: FieldValue) {
        let key = key.into();
        match self.0.iter_mut().find(|(k, _)| *k == key) {
            Some(slot) => slot.1 = v,
            None => self.0.push((key, v)),
        }
    }

    /// Removes the first entry named `key` and returns its value.
    pub fn remove(&mut self, key: &str) -> Option<FieldValue> {
        let idx = self.0.iter().position(|(k, _)| k.as_str() == key)?;
        Some(self.0.remove(idx).1)
    }

    /// Whether an entry named `key` exists.
    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// The entries in wire order.
    pub fn iter(&self) -> impl Iterator<Item = (&ShortStr, &FieldValue)> {
        self.0.iter().map(|(k, v)| (k, v))
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Writes the u32 length prefix and the entries.
    pub fn encode(&self, buf: &mut BytesMut) {
        let pos = wire::begin_len(buf);
        for (k, v) in &self.0 {
            wire::put_shortstr(buf, k);
            v.encode(buf);
        }
        wire::patch_len(buf, pos);
    }

    /// Reads a u32 length prefix and that many bytes of entries from the front of `buf`.
    pub fn decode(buf: &mut Bytes) -> Result<FieldTable, CodecError> {
        FieldTable::decode_at(buf, 0)
    }

    fn decode_at(buf: &mut Bytes, depth: usize) -> Result<FieldTable, CodecError> {
        let len = get_u32(buf)? as usize;
        let mut body = get_slice(buf, len)?;
        let mut entries = Vec::new();
        while body.has_remaining() {
            let key = get_shortstr(&mut body)?;
            let value = FieldValue::decode(&mut body, depth)?;
            entries.push((key, value));
        }
        Ok(FieldTable(entries))
    }

    /// Bytes written by [`FieldTable::encode`], length prefix included.
    pub fn encoded_len(&self) -> usize {
        4 + self.0.iter().map(|(k, v)| 1 + k.len() + v.encoded_len()).sum::<usize>()
    }
}

impl<K: Into<ShortStr>> FromIterator<(K, FieldValue)> for FieldTable {
    fn from_iter<I: IntoIterator<Item = (K, FieldValue)>>(iter: I) -> Self {
        let mut t = FieldTable::new();
        for (k, v) in iter {
            t.insert(k, v);
        }
        t
    }
}

impl<'a> IntoIterator for &'a FieldTable {
    type Item = &'a (ShortStr, FieldValue);
    type IntoIter = std::slice::Iter<'a, (ShortStr, FieldValue)>;
    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested_tables(levels: usize) -> FieldTable {
        let mut t = FieldTable::new();
        for _ in 0..levels {
            let mut outer = FieldTable::new();
            outer.insert("n", FieldValue::Table(t));
            t = outer;
        }
        t
    }

    #[test]
    fn nesting_limit() {
        // `nested_tables(n)` is a top-level table with n tables nested inside it.
        for (levels, ok) in [(MAX_NESTING_DEPTH, true), (MAX_NESTING_DEPTH + 1, false)] {
            let mut buf = BytesMut::new();
            nested_tables(levels).encode(&mut buf);
            let res = FieldTable::decode(&mut buf.freeze());
            assert_eq!(res.is_ok(), ok, "levels {levels}: {res:?}");
        }
    }

    #[test]
    fn deep_arrays_rejected_without_stack_overflow() {
        // 100_000 nested empty arrays, built by hand.
        let depth = 100_000usize;
        let mut v = Vec::new();
        for i in 0..depth {
            v.push(b'A');
            let remaining = (depth - i - 1) * 5;
            v.extend_from_slice(&(remaining as u32).to_be_bytes());
        }
        let mut table = BytesMut::new();
        table.put_u32((v.len() + 2) as u32);
        table.put_u8(1);
        table.put_u8(b'k');
        table.extend_from_slice(&v);
        assert_eq!(
            FieldTable::decode(&mut table.freeze()),
            Err(CodecError::Malformed("field table nested too deeply"))
        );
    }

    #[test]
    fn accessors_and_order() {
        let mut t = FieldTable::new();
        t.insert("b", FieldValue::I8(-3));
        t.insert("a", FieldValue::from("text"));
        t.insert("b", FieldValue::U32(7));
        assert_eq!(t.len(), 2);
        assert_eq!(t.get("b").and_then(FieldValue::as_i64), Some(7));
        assert_eq!(t.get("a").and_then(FieldValue::as_str), Some("text"));
        assert_eq!(t.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["b", "a"]);
        assert_eq!(t.remove("b"), Some(FieldValue::U32(7)));
        assert!(!t.contains_key("b"));
        let mut buf = BytesMut::new();
        t.encode(&mut buf);
        assert_eq!(buf.len(), t.encoded_len());
    }

    #[test]
    fn upper_l_reads_as_i64() {
        let raw = b"\x00\x00\x00\x0b\x01kL\xff\xff\xff\xff\xff\xff\xff\xfe";
        let t = FieldTable::decode(&mut Bytes::from_static(raw)).unwrap();
        assert_eq!(t.get("k"), Some(&FieldValue::I64(-2)));
    }

    #[test]
    fn unknown_tag_and_truncation() {
        let raw = b"\x00\x00\x00\x03\x01kZ";
        assert_eq!(FieldTable::decode(&mut Bytes::from_static(raw)), Err(CodecError::Malformed("unknown field type")));
        let raw = b"\x00\x00\x00\x04\x01kI\x00";
        assert!(FieldTable::decode(&mut Bytes::from_static(raw)).is_err());
        let raw = b"\x00\x00\x00\x09\x01k";
        assert!(FieldTable::decode(&mut Bytes::from_static(raw)).is_err());
    }
}

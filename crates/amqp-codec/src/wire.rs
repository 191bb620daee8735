//! Checked primitive readers and writers for AMQP wire types (octet, short, long, longlong, strings, bits).
//!
//! Readers take `&mut Bytes`, check the remaining length before every read (so untrusted
//! input can never panic) and slice strings out of the buffer without copying.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::shortstr::ShortStr;
use crate::CodecError;

pub(crate) const TRUNCATED: CodecError = CodecError::Malformed("truncated");

#[inline]
fn need(buf: &Bytes, n: usize) -> Result<(), CodecError> {
    if buf.remaining() < n {
        Err(TRUNCATED)
    } else {
        Ok(())
    }
}

#[inline]
pub(crate) fn get_u8(buf: &mut Bytes) -> Result<u8, CodecError> {
    need(buf, 1)?;
    Ok(buf.get_u8())
}

#[inline]
pub(crate) fn get_u16(buf: &mut Bytes) -> Result<u16, CodecError> {
    need(buf, 2)?;
    Ok(buf.get_u16())
}

#[inline]
pub(crate) fn get_u32(buf: &mut Bytes) -> Result<u32, CodecError> {
    need(buf, 4)?;
    Ok(buf.get_u32())
}

#[inline]
pub(crate) fn get_u64(buf: &mut Bytes) -> Result<u64, CodecError> {
    need(buf, 8)?;
    Ok(buf.get_u64())
}

/// Splits `n` bytes off the front of `buf` (zero-copy).
#[inline]
pub(crate) fn get_slice(buf: &mut Bytes, n: usize) -> Result<Bytes, CodecError> {
    need(buf, n)?;
    Ok(buf.split_to(n))
}

/// Reads a short string: one length octet, then that many bytes of UTF-8.
#[inline]
pub(crate) fn get_shortstr(buf: &mut Bytes) -> Result<ShortStr, CodecError> {
    let len = get_u8(buf)? as usize;
    let bytes = get_slice(buf, len)?;
    if std::str::from_utf8(&bytes).is_err() {
        return Err(CodecError::Malformed("short string is not valid utf-8"));
    }
    Ok(ShortStr::from_validated(bytes))
}

/// Reads a long string: a u32 length, then that many bytes (binary, not validated).
#[inline]
pub(crate) fn get_longstr(buf: &mut Bytes) -> Result<Bytes, CodecError> {
    let len = get_u32(buf)? as usize;
    get_slice(buf, len)
}

/// Bit `n` (0 = least significant) of a packed bit octet.
#[inline]
pub(crate) fn bit(flags: u8, n: u8) -> bool {
    flags & (1 << n) != 0
}

#[inline]
pub(crate) fn put_shortstr(buf: &mut BytesMut, s: &ShortStr) {
    // ShortStr guarantees len <= 255, so the cast is exact.
    buf.put_u8(s.len() as u8);
    buf.put_slice(s.as_bytes());
}

#[inline]
pub(crate) fn put_longstr(buf: &mut BytesMut, s: &[u8]) {
    debug_assert!(u32::try_from(s.len()).is_ok(), "long string longer than u32::MAX");
    buf.put_u32(s.len() as u32);
    buf.put_slice(s);
}

/// Packs up to 8 consecutive bit fields into one octet, first field in the least significant bit.
#[inline]
pub(crate) fn put_bits(buf: &mut BytesMut, bits: &[bool]) {
    debug_assert!(bits.len() <= 8);
    let mut octet = 0u8;
    for (i, b) in bits.iter().enumerate() {
        if *b {
            octet |= 1 << i;
        }
    }
    buf.put_u8(octet);
}

/// Writes a u32 length placeholder and returns its position for [`patch_len`].
#[inline]
pub(crate) fn begin_len(buf: &mut BytesMut) -> usize {
    let pos = buf.len();
    buf.put_u32(0);
    pos
}

/// Overwrites the placeholder at `pos` with the number of bytes written after it.
#[inline]
pub(crate) fn patch_len(buf: &mut BytesMut, pos: usize) {
    let len = buf.len() - pos - 4;
    debug_assert!(u32::try_from(len).is_ok(), "length longer than u32::MAX");
    if let Some(slot) = buf.get_mut(pos..pos + 4) {
        slot.copy_from_slice(&(len as u32).to_be_bytes());
    }
}

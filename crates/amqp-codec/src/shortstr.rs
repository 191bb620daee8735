//! `ShortStr`: the AMQP short string (at most 255 bytes of UTF-8), backed by `Bytes` so decoding is zero-copy.

// This module holds the crate's only `unsafe`: turning the validated bytes back into `&str`.
#![allow(unsafe_code)]

use std::borrow::Borrow;
use std::fmt;
use std::hash::{Hash, Hasher};
use std::ops::Deref;

use bytes::Bytes;

use crate::CodecError;

/// Largest number of bytes a short string can hold on the wire.
pub const SHORT_STR_MAX: usize = 255;

/// An AMQP short string: at most 255 bytes, always valid UTF-8.
///
/// The invariant (length <= 255, valid UTF-8) is upheld by every constructor, so the
/// encoder can always write the one-byte length prefix truthfully and `as_str` is free.
/// Decoded values share the frame's buffer (no copy).
///
/// `From<&str>` and `From<String>` are for trusted, known-short strings: in debug builds
/// they assert the length; in release builds an over-long string is truncated at the
/// last char boundary at or before 255 bytes. Use [`ShortStr::try_from_string`] when the
/// input might be too long and that should be an error, or [`ShortStr::truncated`] when
/// truncation is what you want (e.g. composed `reply_text`s).
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Default)]
pub struct ShortStr(Bytes);

impl ShortStr {
    /// A short string from a static str.
    ///
    /// # Panics
    /// If `s` is longer than 255 bytes (at compile time when used in a `const`).
    pub const fn from_static(s: &'static str) -> Self {
        assert!(s.len() <= SHORT_STR_MAX, "ShortStr::from_static: longer than 255 bytes");
        ShortStr(Bytes::from_static(s.as_bytes()))
    }

    /// A short string from an owned `String`, or `Malformed` if it is longer than 255 bytes.
    pub fn try_from_string(s: String) -> Result<ShortStr, CodecError> {
        if s.len() > SHORT_STR_MAX {
            return Err(CodecError::Malformed("short string longer than 255 bytes"));
        }
        Ok(ShortStr(Bytes::from(s)))
    }

    /// A short string sharing `bytes`, or `Malformed` if they are longer than 255 bytes or not UTF-8.
    pub fn try_from_bytes(bytes: Bytes) -> Result<ShortStr, CodecError> {
        if bytes.len() > SHORT_STR_MAX {
            return Err(CodecError::Malformed("short string longer than 255 bytes"));
        }
        if std::str::from_utf8(&bytes).is_err() {
            return Err(CodecError::Malformed("short string is not valid utf-8"));
        }
        Ok(ShortStr(bytes))
    }

    /// A short string holding `s`, cut at the last char boundary at or before 255 bytes.
    /// Never panics.
    pub fn truncated(s: &str) -> ShortStr {
        ShortStr(Bytes::copy_from_slice(truncate_to_boundary(s).as_bytes()))
    }

    /// The string.
    pub fn as_str(&self) -> &str {
        // SAFETY: every constructor of `ShortStr` checks (or is given a `str`, which guarantees)
        // that the bytes are valid UTF-8, and the bytes are never mutated afterwards.
        unsafe { std::str::from_utf8_unchecked(&self.0) }
    }

    /// The UTF-8 bytes of the string.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// Length in bytes (0..=255).
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the string is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The underlying bytes (no copy).
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    /// Wraps bytes already known to be UTF-8 of at most 255 bytes (the decoder checked both).
    pub(crate) fn from_validated(bytes: Bytes) -> ShortStr {
        debug_assert!(bytes.len() <= SHORT_STR_MAX && std::str::from_utf8(&bytes).is_ok());
        ShortStr(bytes)
    }
}

fn truncate_to_boundary(s: &str) -> &str {
    if s.len() <= SHORT_STR_MAX {
        return s;
    }
    let mut end = SHORT_STR_MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.get(..end).unwrap_or_default()
}

impl Deref for ShortStr {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for ShortStr {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for ShortStr {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

// Hash like `str` so that `HashMap<ShortStr, _>::get(&str)` works (required by `Borrow<str>`).
impl Hash for ShortStr {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_str().hash(state);
    }
}

impl fmt::Debug for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for ShortStr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self.as_str(), f)
    }
}

/// Copies `s`. Debug builds assert `s.len() <= 255`; release builds truncate at a char boundary.
impl From<&str> for ShortStr {
    fn from(s: &str) -> Self {
        debug_assert!(s.len() <= SHORT_STR_MAX, "ShortStr::from: {} bytes > 255", s.len());
        ShortStr::truncated(s)
    }
}

/// Takes the `String`'s buffer without copying when it fits. Debug builds assert
/// `s.len() <= 255`; release builds truncate at a char boundary.
impl From<String> for ShortStr {
    fn from(s: String) -> Self {
        debug_assert!(s.len() <= SHORT_STR_MAX, "ShortStr::from: {} bytes > 255", s.len());
        if s.len() <= SHORT_STR_MAX {
            ShortStr(Bytes::from(s))
        } else {
            ShortStr::truncated(&s)
        }
    }
}

impl From<&String> for ShortStr {
    fn from(s: &String) -> Self {
        ShortStr::from(s.as_str())
    }
}

impl From<ShortStr> for String {
    fn from(s: ShortStr) -> Self {
        s.as_str().to_owned()
    }
}

impl PartialEq<str> for ShortStr {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for ShortStr {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl PartialEq<ShortStr> for str {
    fn eq(&self, other: &ShortStr) -> bool {
        self == other.as_str()
    }
}

impl PartialEq<ShortStr> for &str {
    fn eq(&self, other: &ShortStr) -> bool {
        *self == other.as_str()
    }
}

impl PartialEq<String> for ShortStr {
    fn eq(&self, other: &String) -> bool {
        self.as_str() == other.as_str()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    #[test]
    fn borrow_lookup_matches_str_hash() {
        let mut m = HashMap::new();
        m.insert(ShortStr::from("amq.direct"), 1);
        assert_eq!(m.get("amq.direct"), Some(&1));
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        let s = "é".repeat(200); // 400 bytes
        let t = ShortStr::truncated(&s);
        assert_eq!(t.len(), 254);
        assert!(t.chars().all(|c| c == 'é'));
        assert!(ShortStr::try_from_string(s).is_err());
        assert_eq!(ShortStr::try_from_string("x".repeat(255)).map(|s| s.len()), Ok(255));
    }

    #[test]
    fn try_from_bytes_validates() {
        assert!(ShortStr::try_from_bytes(Bytes::from_static(b"\xff")).is_err());
        assert!(ShortStr::try_from_bytes(Bytes::from(vec![b'a'; 256])).is_err());
        assert_eq!(ShortStr::try_from_bytes(Bytes::from_static(b"ok")).unwrap(), "ok");
    }

    #[test]
    fn debug_is_like_str() {
        assert_eq!(format!("{:?}", ShortStr::from_static("a\"b")), "\"a\\\"b\"");
        assert_eq!(ShortStr::from_static("q").to_string(), "q");
    }
}

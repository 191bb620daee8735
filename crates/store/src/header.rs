//! The 40-byte header at the start of every store file: magic, format version, file kind,
//! sequence number, next message id and a CRC32C of the header itself.

use std::path::Path;

use crate::crc::crc32c;
use crate::StoreError;

/// Magic bytes at offset 0 of every store file.
pub const MAGIC: [u8; 8] = *b"WARRENST";
/// Length of the header in bytes.
pub const HEADER_LEN: usize = 40;
/// The on-disk format version this build writes and reads.
pub const FORMAT_VERSION: u32 = 1;

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum FileKind {
    Segment = 1,
    Definitions = 2,
}

/// A decoded header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub seq: u64,
    /// For segments: no message id below this one is written after this header, so ids are
    /// never reused even when every older segment was deleted.
    pub next_id: u64,
}

/// Encodes a header: magic[8] | version u32 | kind u32 | seq u64 | next_id u64 | reserved u32
/// (0) | crc u32, little endian, crc over bytes 0..36.
pub fn encode(kind: FileKind, header: Header) -> [u8; HEADER_LEN] {
    encode_version(kind, header, FORMAT_VERSION)
}

/// Like [`encode`] with an explicit version (tests write "future" files with it).
pub fn encode_version(kind: FileKind, header: Header, version: u32) -> [u8; HEADER_LEN] {
    let mut h = [0u8; HEADER_LEN];
    h[0..8].copy_from_slice(&MAGIC);
    h[8..12].copy_from_slice(&version.to_le_bytes());
    h[12..16].copy_from_slice(&(kind as u32).to_le_bytes());
    h[16..24].copy_from_slice(&header.seq.to_le_bytes());
    h[24..32].copy_from_slice(&header.next_id.to_le_bytes());
    let crc = crc32c(&h[0..36]);
    h[36..40].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a header and returns it. The version is checked before the checksum:
/// another version may lay its header out differently.
pub fn decode(bytes: &[u8], path: &Path, kind: FileKind) -> Result<Header, StoreError> {
    let corrupt = |reason: &str| StoreError::Corrupt { path: path.to_path_buf(), reason: reason.to_string() };
    if bytes.len() < HEADER_LEN {
        return Err(corrupt("file shorter than its header"));
    }
    if bytes[0..8] != MAGIC {
        return Err(corrupt("not a Warren store file (bad magic)"));
    }
    let version = u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]);
    if version != FORMAT_VERSION {
        return Err(StoreError::IncompatibleVersion {
            path: path.to_path_buf(),
            found: version,
            expected: FORMAT_VERSION,
        });
    }
    let crc = u32::from_le_bytes([bytes[36], bytes[37], bytes[38], bytes[39]]);
    if crc != crc32c(&bytes[0..36]) {
        return Err(corrupt("header checksum mismatch"));
    }
    let found_kind = u32::from_le_bytes([bytes[12], bytes[13], bytes[14], bytes[15]]);
    if found_kind != kind as u32 {
        return Err(corrupt(&format!("file kind {found_kind}, expected {}", kind as u32)));
    }
    let u64_at = |at: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&bytes[at..at + 8]);
        u64::from_le_bytes(b)
    };
    Ok(Header { seq: u64_at(16), next_id: u64_at(24) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_errors() {
        let p = Path::new("x");
        let hd = Header { seq: 7, next_id: 99 };
        let h = encode(FileKind::Segment, hd);
        assert_eq!(decode(&h, p, FileKind::Segment).unwrap(), hd);
        assert!(matches!(decode(&h, p, FileKind::Definitions), Err(StoreError::Corrupt { .. })));
        assert!(matches!(decode(&h[..10], p, FileKind::Segment), Err(StoreError::Corrupt { .. })));
        let future = encode_version(FileKind::Segment, hd, 2);
        let err = decode(&future, p, FileKind::Segment).unwrap_err();
        assert!(matches!(err, StoreError::IncompatibleVersion { found: 2, expected: 1, .. }));
        assert!(err.to_string().contains("version 2"));
        let mut bad = h;
        bad[20] ^= 1;
        assert!(matches!(decode(&bad, p, FileKind::Segment), Err(StoreError::Corrupt { .. })));
    }
}

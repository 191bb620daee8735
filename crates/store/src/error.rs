//! `StoreError`: every failure the store reports, cheap to clone so one IO error can complete a
//! whole batch.

use std::io;
use std::path::PathBuf;

/// An error of the store. Operating errors (disk full, IO) are values, never panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreError {
    /// The disk had no space for the write. The log was rolled back to its last complete record;
    /// later appends succeed again once space is back.
    #[error("disk full")]
    DiskFull,
    /// An IO error other than disk full.
    #[error("io error during {op}: {message}")]
    Io { op: &'static str, kind: io::ErrorKind, message: String },
    /// A file was written by a format version this build cannot read.
    #[error("incompatible store format in {path}: file has version {found}, this build reads version {expected}")]
    IncompatibleVersion { path: PathBuf, found: u32, expected: u32 },
    /// A file header is unreadable (wrong magic, checksum or kind).
    #[error("corrupt store file {path}: {reason}")]
    Corrupt { path: PathBuf, reason: String },
    /// A record read back failed its checks (checksum, layout or id).
    #[error("corrupt record for message {id}: {reason}")]
    CorruptRecord { id: u64, reason: String },
    /// The message is not (or no longer) in the log.
    #[error("message {0} not found")]
    NotFound(u64),
    /// The writer's channel is full (only from non-blocking calls); retry later.
    #[error("store is busy: the writer's queue is full")]
    Busy,
    /// The store was closed.
    #[error("store is closed")]
    Closed,
    /// An fdatasync failed: what reached the disk is unknown, so the store refuses further writes
    /// until it is reopened (which recovers from what is really on disk).
    #[error("store failed after an unrecoverable IO error ({0}); reopen it to recover")]
    Failed(String),
    /// The caller passed something outside the store's limits.
    #[error("invalid argument: {0}")]
    Invalid(String),
}

impl StoreError {
    /// Maps an `io::Error` from operation `op`; "no space" becomes [`StoreError::DiskFull`].
    pub fn io(op: &'static str, err: &io::Error) -> StoreError {
        if err.kind() == io::ErrorKind::StorageFull || err.raw_os_error() == Some(28) {
            return StoreError::DiskFull;
        }
        StoreError::Io { op, kind: err.kind(), message: err.to_string() }
    }
}

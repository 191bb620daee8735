//! Warren's durable storage: a segmented, checksummed message log with group commit, acks,
//! delivered markers, reclamation of fully acked segments and crash recovery, plus a small
//! durable definitions map. Knows nothing of AMQP: it stores opaque bytes for queues identified
//! by `u64` ids. All writes run on a dedicated std thread (no tokio), reads on the caller's;
//! completions are callbacks called on the writer thread. The on-disk format is described in
//! `docs/storage.md`.

mod crc;
pub mod definitions;
mod error;
pub mod faulty_fs;
pub mod fs;
mod header;
mod id_set;
mod index;
mod log;
mod options;
mod read;
mod record;
pub mod recovery;
mod segment;
mod state;
mod sync_stats;
mod writer;

pub use definitions::{Definitions, DefinitionsOptions};
pub use error::StoreError;
pub use faulty_fs::FaultyFs;
pub use fs::{FileSystem, FsFile, StdFs};
pub use header::FORMAT_VERSION;
pub use id_set::{IdRun, IdSet};
pub use log::{Completion, Keep, MessageId, QueueId, Store, StoreStats};
pub use options::StoreOptions;
pub use recovery::{RecoveredMessage, RecoveredQueue, Recovery, RecoveryStats, SkippedRecord};
pub use sync_stats::{FsyncStats, FSYNC_BUCKETS_S};

/// Test support: writes a segment header of another format version (to test refusal).
#[doc(hidden)]
pub fn segment_header_with_version(seq: u32, version: u32) -> Vec<u8> {
    header::encode_version(header::FileKind::Segment, header::Header { seq: seq as u64, next_id: 1 }, version).to_vec()
}

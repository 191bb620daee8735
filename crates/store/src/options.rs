//! `StoreOptions`: every bound of the message log, with defaults and validation.

use crate::header::HEADER_LEN;
use crate::StoreError;

/// Limits of the message log. Every field is a bound; `validate` checks their relations.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    /// Size at which the active segment is closed and a new one started (a record never spans
    /// segments). Default 16 MiB; between 4 KiB and 4 GiB - 1 (offsets are u32). Recovery reads
    /// one segment at a time into memory, so this also bounds its peak memory.
    pub segment_size_bytes: u32,
    /// Largest record the log accepts. A record larger than a segment gets a fresh segment of its
    /// own. Default 256 MiB (above the broker's largest message); below 4 GiB - 40.
    pub max_record_bytes: usize,
    /// Appends waiting for the writer at which `append` reports `Busy` (the channel itself is
    /// unbounded; a batch in the writer adds at most `max_batch_records`): a hard bound; callers
    /// keep their own, lower one (the broker's `max_in_flight_messages`).
    pub channel_capacity: usize,
    /// Most requests one group commit takes.
    pub max_batch_records: usize,
    /// Most body bytes one group commit takes (the batch closes once it is exceeded).
    pub max_batch_bytes: usize,
    /// Most queues one message may be stored for.
    pub max_queues_per_message: usize,
    /// Most skipped records listed one by one in the recovery statistics (all are counted).
    pub max_skipped_reported: usize,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            segment_size_bytes: 16 << 20,
            max_record_bytes: 256 << 20,
            channel_capacity: 65536,
            max_batch_records: 1024,
            max_batch_bytes: 8 << 20,
            max_queues_per_message: 4096,
            max_skipped_reported: 1000,
        }
    }
}

impl StoreOptions {
    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), StoreError> {
        let invalid = |what: &str| Err(StoreError::Invalid(what.to_string()));
        if self.segment_size_bytes < 4096 {
            return invalid("segment_size_bytes must be at least 4096");
        }
        if self.segment_size_bytes == u32::MAX {
            return invalid("segment_size_bytes must be below 4 GiB");
        }
        if self.max_record_bytes < 64 || self.max_record_bytes > u32::MAX as usize - HEADER_LEN {
            return invalid("max_record_bytes must be in 64 ..= 4 GiB - 41");
        }
        if self.channel_capacity == 0 || self.max_batch_records == 0 || self.max_batch_bytes == 0 {
            return invalid("channel_capacity, max_batch_records and max_batch_bytes must be positive");
        }
        if self.max_queues_per_message == 0 || self.max_queues_per_message > u16::MAX as usize {
            return invalid("max_queues_per_message must be in 1..=65535");
        }
        Ok(())
    }
}

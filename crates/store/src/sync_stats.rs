//! How long the log's fsyncs take: a count, a sum and a histogram with fixed bounds, written by
//! the writer thread only and read by whoever reports them (Prometheus).

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// Upper bounds of the histogram's buckets, in seconds (the last bucket is everything above).
pub const FSYNC_BUCKETS_S: [f64; 11] = [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 1.0];

#[derive(Debug, Default)]
pub(crate) struct SyncTimes {
    count: AtomicU64,
    total_ns: AtomicU64,
    /// Per bucket (not cumulative), with one more for above the last bound.
    buckets: [AtomicU64; FSYNC_BUCKETS_S.len() + 1],
}

/// The fsync figures at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct FsyncStats {
    pub count: u64,
    pub total_seconds: f64,
    /// For each bound of [`FSYNC_BUCKETS_S`] (seconds), the fsyncs that took at most that long
    /// (cumulative, as Prometheus histograms count).
    pub cumulative: Vec<(f64, u64)>,
}

impl SyncTimes {
    /// Records one fsync (writer thread only: a plain load and store per counter).
    pub fn record(&self, took: Duration) {
        let bump = |c: &AtomicU64, n: u64| c.store(c.load(Ordering::Relaxed).wrapping_add(n), Ordering::Relaxed);
        bump(&self.count, 1);
        bump(&self.total_ns, took.as_nanos() as u64);
        let s = took.as_secs_f64();
        let i = FSYNC_BUCKETS_S.iter().position(|b| s <= *b).unwrap_or(FSYNC_BUCKETS_S.len());
        bump(&self.buckets[i], 1);
    }

    pub fn snapshot(&self) -> FsyncStats {
        let mut running = 0;
        let cumulative = self.buckets[..FSYNC_BUCKETS_S.len()]
            .iter()
            .zip(FSYNC_BUCKETS_S)
            .map(|(b, bound)| {
                running += b.load(Ordering::Relaxed);
                (bound, running)
            })
            .collect();
        FsyncStats {
            count: self.count.load(Ordering::Relaxed),
            total_seconds: self.total_ns.load(Ordering::Relaxed) as f64 / 1e9,
            cumulative,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsyncs_land_in_cumulative_buckets() {
        let t = SyncTimes::default();
        t.record(Duration::from_micros(50));
        t.record(Duration::from_millis(3));
        t.record(Duration::from_secs(2));
        let s = t.snapshot();
        assert_eq!(s.count, 3);
        assert_eq!(s.cumulative[0], (0.0001, 1));
        assert_eq!(s.cumulative[5], (0.005, 2), "3 ms is within 5 ms");
        assert_eq!(s.cumulative.last().unwrap().1, 2, "2 s is above every bound");
        assert!((s.total_seconds - 2.00305).abs() < 1e-9);
    }
}

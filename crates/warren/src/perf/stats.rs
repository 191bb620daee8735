//! What a load run measures while it runs: shared counters (for the progress line and the
//! rates) and latency histograms (HDR, microseconds) that each task keeps and the run merges.

use hdrhistogram::Histogram;
use std::io::IsTerminal;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Latencies above this are recorded as this (one hour, in µs).
const MAX_LATENCY_US: u64 = 3_600_000_000;

/// A latency histogram in microseconds with 3 significant digits.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).expect("valid histogram bounds")
}

pub fn record(h: &mut Histogram<u64>, latency: Duration) {
    let us = (latency.as_micros() as u64).clamp(1, MAX_LATENCY_US);
    h.record(us).expect("clamped into the bounds");
}

/// The process's monotonic epoch: producers write `now()` into bodies, consumers (in the same
/// process) subtract it from theirs.
pub fn now_ns() -> u64 {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// Counters shared by every task of a run.
#[derive(Default)]
pub struct Counters {
    pub published: AtomicU64,
    pub confirmed: AtomicU64,
    pub consumed: AtomicU64,
}

impl Counters {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }
}

/// Prints one progress line a second to stderr while the run lasts, when stderr is a
/// terminal (a machine reading stdout gets only the summary line).
pub fn progress(counters: Arc<Counters>) -> Option<tokio::task::JoinHandle<()>> {
    if !std::io::stderr().is_terminal() {
        return None;
    }
    Some(tokio::spawn(async move {
        let start = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        tick.tick().await;
        let mut last = (0, 0, 0);
        loop {
            tick.tick().await;
            let now = (
                counters.published.load(Ordering::Relaxed),
                counters.confirmed.load(Ordering::Relaxed),
                counters.consumed.load(Ordering::Relaxed),
            );
            eprintln!(
                "{:>4}s  published {:>10} ({:>9}/s)  confirmed {:>10} ({:>9}/s)  consumed {:>10} ({:>9}/s)",
                start.elapsed().as_secs(),
                now.0,
                now.0 - last.0,
                now.1,
                now.1 - last.1,
                now.2,
                now.2 - last.2
            );
            last = now;
        }
    }))
}

/// Percentiles of a histogram for the summary, in microseconds.
pub fn percentiles(h: &Histogram<u64>) -> serde_json::Value {
    if h.is_empty() {
        return serde_json::Value::Null;
    }
    serde_json::json!({
        "count": h.len(),
        "p50_us": h.value_at_quantile(0.50),
        "p90_us": h.value_at_quantile(0.90),
        "p99_us": h.value_at_quantile(0.99),
        "p999_us": h.value_at_quantile(0.999),
        "max_us": h.max(),
    })
}

/// The resident set size of process `pid` in bytes, from `/proc`.
pub fn rss_bytes(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

/// This process's CPU time so far (user + system), from `/proc/self/stat`.
pub fn own_cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The fields after the command name (which is in parentheses and may hold spaces).
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // Linux reports these in USER_HZ, which is 100 on every platform it supports.
    Some(Duration::from_millis(ticks * 10))
}

//! Resource alarms, as RabbitMQ defines them: the broker's memory above its high watermark, or
//! the data directory's free disk space below its limit. While one is raised, publishing AMQP
//! connections stop being read (those that announced the `connection.blocked` capability are
//! told why, and told again when it clears), HTTP publishes get 503, and the health checks fail;
//! consumers keep flowing, so the broker drains. A monitor samples both every
//! `check_interval_ms` (`Alarms::check`, called by the server's task).

use parking_lot::Mutex;
use serde::Deserialize;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::watch;

/// The `[alarms]` section of the configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlarmConfig {
    /// The memory high watermark as a fraction of the machine's memory (or of its cgroup's
    /// limit, if lower), as RabbitMQ's `vm_memory_high_watermark.relative`.
    pub memory_high_watermark: f64,
    /// The watermark in bytes instead (RabbitMQ's `.absolute`); wins when set.
    pub memory_high_watermark_bytes: Option<u64>,
    /// Free space the data directory's file system keeps, bytes (RabbitMQ's default: 50 MB).
    pub disk_free_limit_bytes: u64,
    /// How often memory and disk are sampled, ms.
    pub check_interval_ms: u64,
}

impl Default for AlarmConfig {
    fn default() -> Self {
        AlarmConfig {
            memory_high_watermark: 0.6,
            memory_high_watermark_bytes: None,
            disk_free_limit_bytes: 50_000_000,
            check_interval_ms: 1_000,
        }
    }
}

impl AlarmConfig {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.memory_high_watermark > 0.0 && self.memory_high_watermark <= 1.0) {
            return Err("alarms.memory_high_watermark must be above 0 and at most 1".into());
        }
        if !(100..=60_000).contains(&self.check_interval_ms) {
            return Err("alarms.check_interval_ms must be 100 to 60000".into());
        }
        Ok(())
    }
}

/// A resource an alarm watches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resource {
    Memory,
    Disk,
}

impl Resource {
    /// RabbitMQ's reason text in `connection.blocked`.
    pub fn reason(self) -> &'static str {
        match self {
            Resource::Memory => "low on memory",
            Resource::Disk => "low on disk",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Resource::Memory => "memory",
            Resource::Disk => "disk",
        }
    }
}

/// The limits the alarms compare with, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AlarmLimits {
    pub memory_high_watermark_bytes: u64,
    pub disk_free_limit_bytes: u64,
}

/// The broker's alarms: raised or not, and the limits they watch.
pub struct Alarms {
    memory: AtomicBool,
    disk: AtomicBool,
    /// Bumped on every change, so waiters see the alarms clear.
    changed: watch::Sender<u64>,
    limits: Mutex<AlarmLimits>,
    data_dir: Option<PathBuf>,
}

impl Alarms {
    /// Alarms with `config`'s limits for a broker whose data lives in `data_dir`.
    pub fn new(config: &AlarmConfig, data_dir: Option<PathBuf>) -> Alarms {
        let memory_high_watermark_bytes = config
            .memory_high_watermark_bytes
            .unwrap_or_else(|| (available_memory_bytes() as f64 * config.memory_high_watermark) as u64);
        Alarms {
            memory: AtomicBool::new(false),
            disk: AtomicBool::new(false),
            changed: watch::channel(0).0,
            limits: Mutex::new(AlarmLimits {
                memory_high_watermark_bytes,
                disk_free_limit_bytes: config.disk_free_limit_bytes,
            }),
            data_dir,
        }
    }

    pub fn limits(&self) -> AlarmLimits {
        *self.limits.lock()
    }

    /// Changes the limits (checked at the next sample, or at once with [`Alarms::check`]).
    pub fn set_limits(&self, limits: AlarmLimits) {
        *self.limits.lock() = limits;
    }

    /// The alarms raised now, memory first.
    pub fn raised(&self) -> Vec<Resource> {
        let mut raised = Vec::new();
        if self.memory.load(Ordering::Acquire) {
            raised.push(Resource::Memory);
        }
        if self.disk.load(Ordering::Acquire) {
            raised.push(Resource::Disk);
        }
        raised
    }

    /// Whether any alarm is raised (one relaxed load each: the publish path asks).
    pub fn any(&self) -> bool {
        self.memory.load(Ordering::Relaxed) || self.disk.load(Ordering::Relaxed)
    }

    pub fn is_raised(&self, resource: Resource) -> bool {
        match resource {
            Resource::Memory => self.memory.load(Ordering::Acquire),
            Resource::Disk => self.disk.load(Ordering::Acquire),
        }
    }

    /// Raises or clears the alarm on `resource`.
    pub fn set(&self, resource: Resource, raised: bool) {
        let flag = match resource {
            Resource::Memory => &self.memory,
            Resource::Disk => &self.disk,
        };
        if flag.swap(raised, Ordering::AcqRel) == raised {
            return;
        }
        if raised {
            tracing::warn!(resource = resource.name(), "resource alarm raised: publishers are blocked");
        } else {
            tracing::warn!(resource = resource.name(), "resource alarm cleared: publishers may go on");
        }
        self.changed.send_modify(|n| *n += 1);
    }

    /// Waits until some alarm is raised.
    pub async fn wait_raised(&self) {
        let mut changes = self.changed.subscribe();
        while !self.any() {
            if changes.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Waits until no alarm is raised.
    pub async fn cleared(&self) {
        let mut changes = self.changed.subscribe();
        while self.any() {
            if changes.changed().await.is_err() {
                return;
            }
        }
    }

    /// Samples memory (the process's resident set) and the data directory's free space, and
    /// raises or clears the alarms.
    pub fn check(&self) {
        let limits = self.limits();
        self.set(Resource::Memory, rss_bytes() > limits.memory_high_watermark_bytes);
        if let Some(free) = self.data_dir.as_ref().and_then(|d| free_disk_bytes(d)) {
            self.set(Resource::Disk, free < limits.disk_free_limit_bytes);
        }
    }

    /// Samples every `interval_ms` until the task is dropped.
    pub async fn monitor(self: std::sync::Arc<Self>, interval_ms: u64) {
        let mut every = tokio::time::interval(std::time::Duration::from_millis(interval_ms));
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            every.tick().await;
            self.check();
        }
    }
}

/// The process's resident memory, bytes.
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages = statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0);
    // SAFETY: sysconf only reads a system constant.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    pages * if page > 0 { page as u64 } else { 4096 }
}

/// The machine's memory, or its cgroup's limit if that is lower.
fn available_memory_bytes() -> u64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let machine = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(u64::MAX, |kb| kb * 1024);
    let cgroup = std::fs::read_to_string("/sys/fs/cgroup/memory.max").ok().and_then(|v| v.trim().parse::<u64>().ok());
    cgroup.map_or(machine, |c| c.min(machine))
}

/// Free bytes (for unprivileged users) on the file system holding `dir`.
fn free_disk_bytes(dir: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `path` is a valid C string and `stat` a place statvfs fills.
    if unsafe { libc::statvfs(path.as_ptr(), &mut stat) } != 0 {
        return None;
    }
    Some(stat.f_bavail as u64 * stat.f_frsize as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_raise_and_clear_the_alarms() {
        let dir = std::env::temp_dir();
        let alarms = Alarms::new(&AlarmConfig::default(), Some(dir));
        alarms.check();
        assert!(alarms.raised().is_empty(), "a test process is far below 60% of memory");
        alarms.set_limits(AlarmLimits { memory_high_watermark_bytes: 1, disk_free_limit_bytes: u64::MAX });
        alarms.check();
        assert_eq!(alarms.raised(), vec![Resource::Memory, Resource::Disk]);
        assert!(alarms.any());
        alarms.set_limits(AlarmLimits { memory_high_watermark_bytes: u64::MAX, disk_free_limit_bytes: 0 });
        alarms.check();
        assert!(!alarms.any());
        assert!(AlarmConfig { memory_high_watermark: 1.5, ..Default::default() }.validate().is_err());
    }
}

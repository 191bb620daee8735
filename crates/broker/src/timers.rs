//! The broker's clock and its one timer task: queues schedule their next deadline (a message TTL,
//! the queue's own expiry, a consumer's acknowledgement timeout, a retry or a delayed message) and
//! the task ticks each queue when its deadline comes. Time is wall-clock milliseconds, or a manual
//! clock that tests advance so that timers run deterministically.

use crate::Queue;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::Notify;

/// Where time comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClockKind {
    #[default]
    System,
    /// Starts at the wall-clock time and moves only by [`Timers::advance`].
    Manual,
}

/// Anything with a deadline that the timer task ticks (queues, channels).
pub trait Tick: Send + Sync {
    fn tick(self: Arc<Self>, now_ms: u64);
}

impl Tick for Queue {
    fn tick(self: Arc<Self>, now_ms: u64) {
        Queue::tick(&self, now_ms);
    }
}

pub struct Timers {
    manual_ms: Option<AtomicU64>,
    /// Deadlines by (time, identity): one per target that reschedules through
    /// [`Timers::reschedule`]; a stale one would tick harmlessly (the target re-checks).
    due: Mutex<BTreeMap<(u64, usize), Weak<dyn Tick>>>,
    wake: Notify,
}

/// The longest the timer task sleeps without looking again (deadlines may be added meanwhile,
/// and each addition that is earlier than the earliest wakes it anyway).
const MAX_SLEEP: Duration = Duration::from_secs(60);

fn wall_clock_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Timers {
    pub fn new(kind: ClockKind) -> Arc<Timers> {
        let manual_ms = (kind == ClockKind::Manual).then(|| AtomicU64::new(wall_clock_ms()));
        Arc::new(Timers { manual_ms, due: Mutex::new(BTreeMap::new()), wake: Notify::new() })
    }

    /// Now, in milliseconds since the Unix epoch.
    pub fn now_ms(&self) -> u64 {
        match &self.manual_ms {
            Some(ms) => ms.load(Ordering::Acquire),
            None => wall_clock_ms(),
        }
    }

    /// Moves a manual clock forward and runs what became due before returning (no effect on
    /// the system clock). With a manual clock only this runs timers, so a test knows when.
    pub fn advance(&self, ms: u64) {
        if let Some(clock) = &self.manual_ms {
            clock.fetch_add(ms, Ordering::AcqRel);
            self.run_due();
        }
    }

    /// Ticks `target` at `at_ms` (or soon after).
    pub fn schedule<T: Tick + 'static>(&self, at_ms: u64, target: &Arc<T>) {
        self.reschedule(None, at_ms, target);
    }

    /// Ticks `target` at `at_ms` instead of at `from_ms`, the deadline it had scheduled and
    /// that has not come yet: a target moving its deadline earlier keeps one entry, not one
    /// per move (a queue whose messages' TTLs keep shrinking would otherwise add one each).
    pub fn reschedule<T: Tick + 'static>(&self, from_ms: Option<u64>, at_ms: u64, target: &Arc<T>) {
        let identity = Arc::as_ptr(target) as *const () as usize;
        let key = (at_ms, identity);
        let weak: Weak<dyn Tick> = Arc::downgrade(target) as Weak<dyn Tick>;
        let mut due = self.due.lock();
        if let Some(from) = from_ms {
            due.remove(&(from, identity));
        }
        let earliest = due.first_key_value().is_none_or(|(k, _)| at_ms < k.0);
        due.insert(key, weak);
        drop(due);
        if earliest {
            self.wake.notify_one();
        }
    }

    /// Ticks everything due by now; returns when the next deadline is.
    fn run_due(&self) -> Option<u64> {
        let now = self.now_ms();
        let ready: Vec<Weak<dyn Tick>> = {
            let mut due = self.due.lock();
            let later = due.split_off(&(now + 1, 0));
            std::mem::replace(&mut *due, later).into_values().collect()
        };
        for target in ready {
            if let Some(target) = target.upgrade() {
                target.tick(now);
            }
        }
        self.due.lock().first_key_value().map(|(k, _)| k.0)
    }

    /// Deadlines waiting.
    pub fn scheduled(&self) -> usize {
        self.due.lock().len()
    }

    /// The timer task (nothing to do with a manual clock, which [`Timers::advance`] drives).
    pub async fn run(self: Arc<Self>) {
        if self.manual_ms.is_some() {
            return;
        }
        loop {
            let next = self.run_due();
            let sleep = match next {
                Some(at) => Duration::from_millis(at.saturating_sub(self.now_ms())).min(MAX_SLEEP),
                None => MAX_SLEEP,
            };
            tokio::select! {
                _ = tokio::time::sleep(sleep) => {}
                _ = self.wake.notified() => {}
            }
        }
    }
}

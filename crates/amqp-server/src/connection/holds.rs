//! Why a connection stops being read for a while, and how it goes on: a resource alarm blocks
//! a publisher (`connection.blocked`), and flow control holds one whose consumers fall behind.

use super::{shutdown_error, Connection, End};
use amqp_codec::*;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use warren_broker::registry::ConnectionEntry;
use warren_broker::Queue;
use warren_core::AmqpError;

/// Marks its connection no longer blocked when dropped (however the wait ended).
struct Unblock<'a>(&'a ConnectionEntry);

impl Drop for Unblock<'_> {
    fn drop(&mut self) {
        self.0.blocked.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Marks its connection no longer held by flow control when dropped.
struct Unflow<'a>(&'a ConnectionEntry);

impl Drop for Unflow<'_> {
    fn drop(&mut self) {
        self.0.flow.store(false, std::sync::atomic::Ordering::Relaxed);
    }
}

impl Connection {
    /// While a resource alarm is raised, this publishing connection is not read (its client,
    /// if it said it understands, is told `connection.blocked` with the reason, and
    /// `connection.unblocked` after); the confirms of what it published still go out.
    pub(super) async fn blocked(&mut self, shutdown: &mut watch::Receiver<bool>) -> Option<End> {
        let alarms = self.broker.alarms().clone();
        let reason = alarms.raised().first().map_or("low on memory", |r| r.reason());
        tracing::info!(connection = self.id, reason, "publisher blocked by a resource alarm");
        if self.blocked_notify {
            let blocked =
                Method::ConnectionBlocked(amqp_codec::ConnectionBlocked { reason: ShortStr::from_static(reason) });
            self.out.write(|b| encode_method(b, 0, &blocked));
        }
        let entry = self.entry.clone();
        entry.blocked.store(true, std::sync::atomic::Ordering::Relaxed);
        let _unblock = Unblock(&entry);
        loop {
            tokio::select! {
                _ = alarms.cleared() => break,
                _ = self.confirm_wake.notify.notified() => self.flush_settled_confirms(),
                _ = shutdown.changed() => return Some(End::Failed(shutdown_error(), 0, 0)),
                reason = entry.close_requested() => {
                    return Some(End::Failed(AmqpError::new(reply_code::CONNECTION_FORCED, reason), 0, 0));
                }
            }
        }
        if self.blocked_notify {
            self.out.write(|b| encode_method(b, 0, &Method::ConnectionUnblocked));
        }
        tracing::info!(connection = self.id, "publisher unblocked");
        None
    }

    /// Flow control: this connection published into queues whose consumers are falling behind,
    /// so it is not read until they catch up, for at most `flow_control_max_hold_ms` (then one
    /// more batch is read). Confirms of what it published still go out meanwhile. A queue this
    /// connection itself consumes from is not waited for: its consumers' acks may be in the
    /// very input that is not being read.
    pub(super) async fn held_for_consumers(&mut self, shutdown: &mut watch::Receiver<bool>) -> Option<End> {
        let own = self.consumed_queues();
        let max_hold = Duration::from_millis(self.broker.limits().flow_control_max_hold_ms);
        let deadline = tokio::time::Instant::now() + max_hold;
        let entry = self.entry.clone();
        let _running = Unflow(&entry);
        for queue in std::mem::take(&mut self.behind) {
            if own.iter().any(|q| Arc::ptr_eq(q, &queue)) {
                continue;
            }
            loop {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                entry.flow.store(true, std::sync::atomic::Ordering::Relaxed);
                tokio::select! {
                    _ = queue.wait_for_consumers(left) => break,
                    _ = self.confirm_wake.notify.notified() => self.flush_settled_confirms(),
                    _ = shutdown.changed() => return Some(End::Failed(shutdown_error(), 0, 0)),
                    reason = entry.close_requested() => {
                        return Some(End::Failed(AmqpError::new(reply_code::CONNECTION_FORCED, reason), 0, 0));
                    }
                }
            }
        }
        None
    }

    /// The queues this connection's consumers consume from.
    fn consumed_queues(&self) -> Vec<Arc<Queue>> {
        let mut queues: Vec<Arc<Queue>> = Vec::new();
        for ch in self.channels.values() {
            for c in ch.sink.state.lock().consumers.values() {
                if let Some(q) = c.queue.as_ref().filter(|q| !queues.iter().any(|x| Arc::ptr_eq(x, q))) {
                    queues.push(q.clone());
                }
            }
        }
        queues
    }
}

//! The deduplication steps of a publish (`crate::dedup`): the exchange's window before routing,
//! each target queue's window before the message is stored and enqueued, and the keys taken on
//! their way to disk with the publisher's confirm waiting for them.

use super::{Confirm, Routed, VHost};
use crate::dedup::{Checked, Pending, Taken};
use crate::durable::OnDurable;
use crate::exchange::Exchange;
use crate::Queue;
use std::sync::Arc;
use warren_core::Message;

impl VHost {
    /// The exchange's deduplication: the key it took, or (`Err`) the answer for a duplicate.
    pub(super) fn exchange_dedup(&self, ex: &Exchange, message: &Arc<Message>) -> Result<Vec<Taken>, Routed> {
        let Some(dedup) = &ex.dedup else { return Ok(Vec::new()) };
        match dedup.check(message, self.timers.now_ms()) {
            Checked::NoKey => Ok(Vec::new()),
            Checked::New(taken) => Ok(vec![taken]),
            Checked::Duplicate => {
                self.tracker.deduplicated(message.track, self.timers.now_ms(), &format!("exchange '{}'", ex.name()));
                Err(Routed { deduplicated: true, ..Routed::default() })
            }
        }
    }

    /// Writes keys taken for a message that goes on without a confirm to wait for them (one a
    /// delayed exchange holds).
    pub(super) fn keys_taken_now(&self, taken: Vec<Taken>) {
        if !taken.is_empty() {
            Pending::new(taken, self.durability.clone(), None).message_done(true);
        }
    }

    /// Enqueues `message` on each of `targets` (see [`VHost::deliver_settling`]), except the queues
    /// that have its deduplication key already.
    pub(crate) fn deliver(
        &self,
        targets: Vec<Arc<Queue>>,
        message: Arc<Message>,
        on_durable: Option<OnDurable>,
    ) -> Routed {
        self.deliver_taking(targets, message, on_durable, Vec::new(), Vec::new())
    }

    /// [`VHost::deliver`] for a message whose exchange took its key (`taken`). The confirm
    /// (`on_durable`) then waits for the message and for the keys, written in that order. The
    /// message's store record, if it has one, also settles `settles` (queue, id).
    pub(crate) fn deliver_taking(
        &self,
        mut targets: Vec<Arc<Queue>>,
        message: Arc<Message>,
        on_durable: Option<OnDurable>,
        mut taken: Vec<Taken>,
        settles: Vec<(u64, u64)>,
    ) -> Routed {
        let deduplicated = self.drop_duplicates(&mut targets, &message, &mut taken);
        let persistent = amqp_codec::raw_properties::delivery_mode(&message.properties) == Some(2);
        let mut routed = self.with_keys(taken, persistent, on_durable, |after_store| {
            self.deliver_settling(targets, message, settles, after_store)
        });
        routed.deduplicated |= deduplicated;
        routed
    }

    /// Removes from `targets` the queues that have `message`'s deduplication key, adding the
    /// keys the others take to `taken`; whether any was removed.
    pub(super) fn drop_duplicates(
        &self,
        targets: &mut Vec<Arc<Queue>>,
        message: &Message,
        taken: &mut Vec<Taken>,
    ) -> bool {
        if !targets.iter().any(|q| q.dedup.is_some()) {
            return false;
        }
        let now_ms = self.timers.now_ms();
        let mut deduplicated = false;
        targets.retain(|q| match q.dedup.as_ref().map(|d| d.check(message, now_ms)) {
            Some(Checked::Duplicate) => {
                self.tracker.deduplicated(message.track, now_ms, &format!("queue '{}'", q.name));
                deduplicated = true;
                false
            }
            Some(Checked::New(t)) => {
                taken.push(t);
                true
            }
            _ => true,
        });
        deduplicated
    }

    /// Runs `deliver` with the confirm it should call: the publisher's own when no key was
    /// taken, else one that writes the keys `taken` once the message is durable (or at once,
    /// when it needs no disk: not `persistent`) and confirms after them. A refused or rejected
    /// delivery gives the keys back, so a retry is not taken for a duplicate.
    pub(super) fn with_keys(
        &self,
        taken: Vec<Taken>,
        persistent: bool,
        on_durable: Option<OnDurable>,
        deliver: impl FnOnce(Option<OnDurable>) -> Routed,
    ) -> Routed {
        if taken.is_empty() {
            return deliver(on_durable);
        }
        let persistent = self.durability.is_some() && persistent;
        let confirm_waits = on_durable.is_some();
        let pending = Pending::new(taken, self.durability.clone(), on_durable);
        let waits_for_keys = confirm_waits && pending.writes_keys();
        let after_store: Option<OnDurable> = persistent.then(|| {
            let pending = pending.clone();
            Box::new(move |ok| pending.message_done(ok)) as OnDurable
        });
        let mut routed = deliver(after_store);
        if routed.rejected {
            pending.give_back();
        }
        match routed.confirm {
            Confirm::Refused => pending.refused(),
            Confirm::Now => {
                if waits_for_keys {
                    routed.confirm = Confirm::WhenDurable;
                } else {
                    // The confirm goes now, as for any message that needs no disk.
                    pending.drop_confirm();
                }
                pending.message_done(true);
            }
            // The store's completion goes on to the keys.
            Confirm::WhenDurable => {}
        }
        routed
    }
}

//! Delivering one routed message: appended to the store once for all its durable target
//! queues (a persistent message; with the acks of the messages it settles, for an aggregate),
//! then enqueued on each target, with what happened counted into its `Routed`.

use super::{Confirm, Routed, VHost};
use crate::durable::{Durability, Landing, LandingQueues, OnDurable};
use crate::queue::Enqueued;
use crate::Queue;
use std::sync::Arc;
use warren_core::Message;

impl VHost {
    /// Enqueues a routed message on each of `targets`, appending it to the store first if it
    /// is persistent and some of them are durable (see [`VHost::publish`]), in one record with
    /// the acks of the stored messages `settles` (queue, id) it replaces (an aggregate's parts,
    /// a dead letter's original). Deduplication is done before (`deduplicating.rs`).
    pub(super) fn deliver_settling(
        &self,
        targets: Vec<Arc<Queue>>,
        message: Arc<Message>,
        settles: Vec<(u64, u64)>,
        on_durable: Option<OnDurable>,
    ) -> Routed {
        let mut routed = Routed::default();
        let landing = match &self.durability {
            Some(d) if amqp_codec::raw_properties::delivery_mode(&message.properties) == Some(2) => {
                match persist(d, &targets, &message, settles, on_durable) {
                    Persisted::Nowhere => None,
                    // All or nothing: a refused message is enqueued nowhere.
                    Persisted::Refused => {
                        self.tracker.not_stored(message.track, self.timers.now_ms());
                        return Routed { queues: 0, confirm: Confirm::Refused, ..Routed::default() };
                    }
                    Persisted::Appended(id, landing) => {
                        routed.confirm = Confirm::WhenDurable;
                        Some((id, landing))
                    }
                }
            }
            _ => None,
        };
        let stored = landing.as_ref().map(|(id, _)| *id);
        self.enqueue_routed(targets, &message, stored, &mut routed);
        if let Some((_, landing)) = landing {
            landing.enqueued();
        }
        routed
    }

    /// Records `message` as routed to `targets` and enqueues it on each (under store id
    /// `stored` where the queue persists), counting what happened into `routed`.
    pub(super) fn enqueue_routed(
        &self,
        targets: Vec<Arc<Queue>>,
        message: &Arc<Message>,
        stored: Option<u64>,
        routed: &mut Routed,
    ) {
        if message.track != 0 {
            // Before enqueueing: a consumer may ack a copy before this function returns.
            let names = targets.iter().map(|q| q.name.to_string()).collect();
            self.tracker.routed(message.track, self.timers.now_ms(), &message.exchange, names);
        }
        for q in targets {
            let stored = if q.persists() { stored } else { None };
            match q.enqueue(message.clone(), stored) {
                Enqueued::Accepted => routed.queues += 1,
                Enqueued::AcceptedBehind => {
                    routed.queues += 1;
                    routed.consumers_behind.get_or_insert_with(|| super::Behind(q.clone()));
                }
                Enqueued::Rejected => {
                    routed.rejected = true;
                    self.tracker.refused(message.track, self.timers.now_ms(), &q.name);
                }
                Enqueued::Gone => self.tracker.gone(message.track, &q.name),
            }
        }
    }
}

/// What happened to a persistent message on its way to the store.
enum Persisted {
    /// No durable queue among the targets: nothing to write.
    Nowhere,
    /// The store refused it (disk full or failed).
    Refused,
    /// Appended under this id; the landing settles a failed write.
    Appended(u64, Arc<Landing>),
}

/// Appends a persistent message for the durable queues among `targets`.
fn persist(
    d: &Durability,
    targets: &[Arc<Queue>],
    message: &Message,
    settles: Vec<(u64, u64)>,
    on_durable: Option<OnDurable>,
) -> Persisted {
    let durable: LandingQueues = targets.iter().filter(|q| q.persists()).cloned().collect();
    if durable.is_empty() {
        return Persisted::Nowhere;
    }
    let ids: smallvec::SmallVec<[u64; 4]> = durable.iter().filter_map(|q| q.durable_store_id()).collect();
    let landing = Landing::new(durable);
    let for_callback = landing.clone();
    let appended = d.append_settling(settles, &ids, message, move |id| {
        for_callback.set_id(id);
        move |ok| {
            if !ok {
                for_callback.failed();
            }
            if let Some(f) = on_durable {
                f(ok);
            }
        }
    });
    match appended {
        Some(id) => Persisted::Appended(id, landing),
        None => Persisted::Refused,
    }
}

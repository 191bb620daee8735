//! Delivering several messages that stand or fall together (the parts of a split message, the
//! outputs of a transform): each is enqueued on its own targets, and the persistent ones bound
//! for durable queues are written as one store record, so after a crash all of them are there
//! or none, and the publisher's one confirm says so.

use super::{Confirm, Routed, VHost};
use crate::durable::{Landing, LandingQueues, OnDurable};
use crate::Queue;
use std::sync::Arc;
use warren_core::Message;

/// One message of a group and the queues it was routed to (and the queues bound through a
/// transform, which get that transform's outputs instead: `binding_transforms.rs`).
pub(crate) struct GroupItem {
    pub message: Arc<Message>,
    pub targets: Vec<Arc<Queue>>,
    pub transformed: Vec<(Arc<Queue>, Arc<str>)>,
}

impl VHost {
    /// Enqueues every item on its targets (minus the queues that have its deduplication key);
    /// the persistent items bound for durable queues are stored first, as one group. If the
    /// store refuses the group, no item is enqueued anywhere (`Confirm::Refused`).
    pub(crate) fn deliver_group(&self, mut items: Vec<GroupItem>, on_durable: Option<OnDurable>) -> Routed {
        let mut taken = Vec::new();
        let mut deduplicated = false;
        for item in &mut items {
            deduplicated |= self.drop_duplicates(&mut item.targets, &item.message, &mut taken);
        }
        let persistent = items.iter().any(|i| is_persistent(&i.message));
        let mut routed =
            self.with_keys(taken, persistent, on_durable, |after_store| self.store_group(items, after_store));
        routed.deduplicated |= deduplicated;
        routed
    }

    fn store_group(&self, items: Vec<GroupItem>, on_durable: Option<OnDurable>) -> Routed {
        let mut routed = Routed::default();
        // The items that go to the store, with the durable queues each lands on.
        let mut stored: Vec<(usize, Arc<Landing>)> = Vec::new();
        if let Some(d) = &self.durability {
            let mut parts: Vec<(smallvec::SmallVec<[u64; 4]>, &Message)> = Vec::new();
            for (at, item) in items.iter().enumerate() {
                if !is_persistent(&item.message) {
                    continue;
                }
                let durable: LandingQueues = item.targets.iter().filter(|q| q.persists()).cloned().collect();
                if durable.is_empty() {
                    continue;
                }
                parts.push((durable.iter().filter_map(|q| q.durable_store_id()).collect(), &item.message));
                stored.push((at, Landing::new(durable)));
            }
            if !parts.is_empty() {
                let views: Vec<(&[u64], &Message)> = parts.iter().map(|(q, m)| (q.as_slice(), *m)).collect();
                let landings: Vec<Arc<Landing>> = stored.iter().map(|(_, l)| l.clone()).collect();
                let appended = d.append_group(&views, move |first| {
                    for (i, landing) in landings.iter().enumerate() {
                        landing.set_id(first + i as u64);
                    }
                    move |ok| {
                        if !ok {
                            landings.iter().for_each(|l| l.failed());
                        }
                        if let Some(f) = on_durable {
                            f(ok);
                        }
                    }
                });
                let Some(first) = appended else {
                    // All or nothing: no item is enqueued.
                    for item in &items {
                        self.tracker.not_stored(item.message.track, self.timers.now_ms());
                    }
                    return Routed { confirm: Confirm::Refused, ..Routed::default() };
                };
                routed.confirm = Confirm::WhenDurable;
                return self.enqueue_group(items, &stored, Some(first), routed);
            }
        }
        self.enqueue_group(items, &stored, None, routed)
    }

    /// Enqueues each item; `stored[k] = (item, landing)` was stored under id `first + k`.
    fn enqueue_group(
        &self,
        items: Vec<GroupItem>,
        stored: &[(usize, Arc<Landing>)],
        first: Option<u64>,
        mut routed: Routed,
    ) -> Routed {
        let mut next_stored = stored.iter().enumerate().peekable();
        for (at, item) in items.into_iter().enumerate() {
            let id = match (next_stored.peek(), first) {
                (Some((k, (item_at, _))), Some(first)) if *item_at == at => {
                    let id = first + *k as u64;
                    next_stored.next();
                    Some(id)
                }
                _ => None,
            };
            self.enqueue_routed(item.targets, &item.message, id, &mut routed);
        }
        for (_, landing) in stored {
            landing.enqueued();
        }
        routed
    }
}

fn is_persistent(message: &Message) -> bool {
    amqp_codec::raw_properties::delivery_mode(&message.properties) == Some(2)
}

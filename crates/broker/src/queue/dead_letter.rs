//! Messages leaving a queue for good without being acknowledged: rejected (nack or reject
//! without requeue), expired, dropped by a length limit, or returned more often than
//! `x-delivery-limit` allows. With a dead-letter exchange they are republished through it;
//! either way the store forgets them for this queue, after the republished copy was appended,
//! so a crash in between can duplicate a dead letter but never lose it.

use super::Queue;
use amqp_codec::{FieldValue, ShortStr};
use std::sync::Arc;
use warren_core::dead_letter::Reason;
use warren_core::{Dropped, Message};

impl Queue {
    /// Return delivered messages to the queue (redelivered) and deliver them again if possible.
    /// A message returned more times than `x-delivery-limit` is dead-lettered instead (reason
    /// `delivery_limit`); one under the limit carries `x-delivery-count`, the returns so far.
    pub fn requeue(self: &Arc<Self>, seqs: impl IntoIterator<Item = u64>) {
        let mut st = self.state.lock();
        if st.deleted {
            return;
        }
        for seq in seqs {
            let Some(mut entry) = st.messages.ack(seq) else { continue };
            if let Some(limit) = self.args.delivery_limit {
                if u64::from(entry.delivery_count) > limit {
                    st.dead.push((Dropped::Entry(entry), Reason::DeliveryLimit));
                    continue;
                }
                entry.message = with_header(&entry.message, "x-delivery-count", entry.delivery_count.into());
            }
            st.messages.return_entry(entry);
        }
        self.dispatch_locked(&mut st);
        self.schedule(&mut st);
        self.unlock(st);
    }

    /// Settle delivered messages the client rejected without requeue: with `x-retry-delays`
    /// each comes back after its next delay, carrying `x-retry-count`, until the delays are used
    /// up (then reason `delivery_limit`); otherwise it is dead-lettered (reason `rejected`) or,
    /// without a dead-letter exchange, dropped.
    pub fn reject(self: &Arc<Self>, seqs: impl IntoIterator<Item = u64>) {
        let mut st = self.state.lock();
        let now_ms = self.timers.now_ms();
        for seq in seqs {
            let Some(mut entry) = st.messages.ack(seq) else { continue };
            if self.args.retry_delays_ms.is_empty() {
                st.dead.push((Dropped::Entry(entry), Reason::Rejected));
                continue;
            }
            let retries = retry_count(&entry.message);
            match self.args.retry_delays_ms.get(retries as usize) {
                Some(delay_ms) => {
                    entry.message = with_header(&entry.message, "x-retry-count", retries + 1);
                    st.retrying.insert((now_ms.saturating_add(*delay_ms), entry.seq), entry);
                }
                None => st.dead.push((Dropped::Entry(entry), Reason::DeliveryLimit)),
            }
        }
        self.schedule(&mut st);
        self.unlock(st);
    }

    /// Puts the rejected messages whose retry delay has passed back in line (first, at their
    /// original position, as redelivered).
    pub(super) fn retry_due(self: &Arc<Self>, st: &mut super::QueueState, now_ms: u64) {
        while let Some(entry) = st.retrying.first_entry() {
            if entry.key().0 > now_ms {
                break;
            }
            let entry = entry.remove();
            st.messages.return_entry(entry);
        }
    }

    /// Republishes `dead` through the dead-letter exchange, if the queue has one, and makes
    /// the store forget each message for this queue. Called without the queue's lock.
    pub(super) fn dead_letter(self: &Arc<Self>, dead: Vec<(Dropped, Reason)>) {
        let vhost = self.args.dead_letter_exchange.as_ref().and_then(|_| self.vhost_ref.upgrade());
        let now_ms = self.timers.now_ms();
        for (dropped, reason) in dead {
            if let Some(vhost) = &vhost {
                let message = match &dropped {
                    Dropped::Entry(e) => Some(e.message.clone()),
                    // Dropped or expired while paged out: read back for its new queue.
                    Dropped::Paged(id) => self.persist.as_ref().and_then(|p| p.durability.load(*id)),
                };
                match message {
                    Some(m) => vhost.republish_dead_letter(self, &m, reason, now_ms),
                    None => tracing::warn!(queue = %self.name, "a paged-out message to dead-letter could not be read"),
                }
            }
            self.forget_stored(dropped.stored());
        }
    }
}

/// How many times the message was retried already (its `x-retry-count` header).
fn retry_count(message: &Message) -> u64 {
    warren_core::dead_letter::headers_of(&message.properties)
        .and_then(|h| h.get("x-retry-count").and_then(FieldValue::as_i64))
        .map_or(0, |n| n.max(0) as u64)
}

/// The message with header `name` set to `count`.
fn with_header(message: &Arc<Message>, name: &'static str, count: u64) -> Arc<Message> {
    let Some(mut props) = message.decode_properties() else { return message.clone() };
    props
        .headers
        .get_or_insert_with(Default::default)
        .insert(ShortStr::from_static(name), FieldValue::I64(count as i64));
    let mut m = (**message).clone();
    m.properties = props.to_raw();
    Arc::new(m)
}

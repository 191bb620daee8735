//! Messages leaving a queue for good without being acknowledged: rejected (nack or reject
//! without requeue), expired, dropped by a length limit, or returned more often than
//! `x-delivery-limit` allows. With a dead-letter exchange they are republished through it, and
//! the store forgets the original for this queue only once the copy is durable (or needs no
//! disk); a copy the store refuses is tried again later, its original kept. A crash can thus
//! duplicate a dead letter but never lose it.

use super::{DeadLetter, Queue};
use crate::durable::OnDurable;
use crate::vhost::Confirm;
use amqp_codec::{FieldValue, ShortStr};
use std::collections::VecDeque;
use std::sync::Arc;
use warren_core::dead_letter::Reason;
use warren_core::{Dropped, Message};

/// Paged-out dead letters whose bodies are asked of the store's reader thread at once (it also
/// stops at 1 MiB).
const READ_AHEAD: usize = 64;

/// How long a dead letter whose copy the store refused waits before it is tried again.
const DEAD_LETTER_RETRY_MS: u64 = 1000;

/// Rejected messages one queue may hold for `x-retry-delays` (their bodies are in memory);
/// beyond it a rejected message is dead-lettered at once.
pub const MAX_RETRYING: usize = 100_000;

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
            if let Some(limit) = self.args().delivery_limit {
                if u64::from(entry.delivery_count) > limit {
                    st.dead.push((Dropped::Entry(entry), Reason::DeliveryLimit));
                    continue;
                }
                entry.message = with_header(&entry.message, "x-delivery-count", entry.delivery_count.into());
            }
            if entry.message.track != 0 {
                self.tracker.requeued(entry.message.track, self.timers.now_ms(), &self.name);
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
            if self.args().retry_delays_ms.is_empty() {
                st.dead.push((Dropped::Entry(entry), Reason::Rejected));
                continue;
            }
            let retries = retry_count(&entry.message);
            match self.args().retry_delays_ms.get(retries as usize) {
                Some(_) if st.retrying.len() >= MAX_RETRYING => {
                    tracing::warn!(queue = %self.name, "too many messages waiting to be retried; dead-lettering");
                    st.dead.push((Dropped::Entry(entry), Reason::Rejected));
                }
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

    /// Settles delivered messages that failed for `reason` on their way to a consumer (a push
    /// subscription's transform): dead-lettered at once, no retry delays.
    pub fn dead_letter_delivered(self: &Arc<Self>, seqs: impl IntoIterator<Item = u64>, reason: Reason) {
        let mut st = self.state.lock();
        for seq in seqs {
            if let Some(entry) = st.messages.ack(seq) {
                st.dead.push((Dropped::Entry(entry), reason));
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
    /// the store forget each original for this queue once that is safe. Called without the
    /// queue's lock.
    pub(super) fn dead_letter(self: &Arc<Self>, dead: Vec<DeadLetter>) {
        let now_ms = self.timers.now_ms();
        let vhost = self.args().dead_letter_exchange.as_ref().and_then(|_| self.vhost_ref.upgrade());
        let Some(vhost) = vhost else {
            for d in &dead {
                if let Some(track) = d.body.as_ref().map(|m| m.track).filter(|t| *t != 0) {
                    self.tracker.left(track, now_ms, &self.name, d.reason, None);
                }
                self.forget_stored(d.stored);
            }
            return;
        };
        {
            let mut st = self.state.lock();
            if let Some(waiting) = &mut st.dead_in_order {
                waiting.extend(dead);
                return;
            }
            st.dead_in_order = Some(VecDeque::new());
        }
        self.drain_dead(dead.into(), vhost, now_ms);
    }

    /// Republishes `dead` in order, then whatever queued behind it. A letter dropped or expired
    /// while paged out has its body read back on the store's reader thread (at most
    /// [`READ_AHEAD`] letters at a time, not on this task's worker), and the drain goes on from
    /// there when it arrives.
    fn drain_dead(self: &Arc<Self>, mut dead: VecDeque<DeadLetter>, vhost: Arc<crate::VHost>, now_ms: u64) {
        loop {
            let at_hand = dead.iter().take_while(|l| l.body.is_some() || l.stored.is_none()).count();
            self.republish_dead(dead.drain(..at_hand), &vhost, now_ms);
            if dead.is_empty() {
                let mut st = self.state.lock();
                match st.dead_in_order.as_mut().filter(|waiting| !waiting.is_empty()) {
                    Some(waiting) => dead = std::mem::take(waiting),
                    None => {
                        st.dead_in_order = None;
                        return;
                    }
                }
                continue;
            }
            let ids: Vec<u64> =
                dead.iter().take_while(|l| l.body.is_none()).filter_map(|l| l.stored).take(READ_AHEAD).collect();
            let Some(p) = &self.persist else {
                // Nothing to read from: `republish_dead` logs and drops them.
                let count = dead.iter().take_while(|l| l.body.is_none()).count();
                self.republish_dead(dead.drain(..count), &vhost, now_ms);
                continue;
            };
            let queue = self.clone();
            let done = Box::new(move |loaded: crate::durable::reader::Loaded| {
                // The reader answers a prefix of `ids`, in order: the letters at the front. An
                // unreadable one keeps no body, and `republish_dead` logs and forgets it.
                let mut dead = dead;
                let read = loaded.len();
                for ((id, body), letter) in loaded.into_iter().zip(dead.iter_mut()) {
                    debug_assert_eq!(letter.stored, Some(id));
                    letter.body = body;
                }
                queue.republish_dead(dead.drain(..read), &vhost, now_ms);
                queue.drain_dead(dead, vhost, now_ms);
            });
            // A stopped reader (the broker is closing) drops the rest: the originals stay in
            // the store, so they come back at the restart.
            if !p.durability.reader.request(ids, done) {
                self.state.lock().dead_in_order = None;
            }
            return;
        }
    }

    /// Republishes dead letters whose bodies are at hand through the dead-letter exchange.
    fn republish_dead(self: &Arc<Self>, dead: impl IntoIterator<Item = DeadLetter>, vhost: &crate::VHost, now_ms: u64) {
        for mut letter in dead {
            let Some(message) = letter.body.clone() else {
                tracing::warn!(queue = %self.name, "a paged-out message to dead-letter could not be read");
                self.forget_stored(letter.stored);
                continue;
            };
            let queue = self.clone();
            let retry = letter.clone();
            // A durable queue's original is settled in its copy's store record (one record: after
            // a crash the message is in one queue or the other, never both); else once the copy
            // is durable, or at once when the copy needs no store.
            let settles: Vec<(u64, u64)> = self.durable_store_id().zip(letter.stored).into_iter().collect();
            let settled_with_copy = !settles.is_empty();
            let settle: OnDurable = Box::new(move |durable| match durable {
                true if settled_with_copy => {}
                true => queue.forget_stored(retry.stored),
                false => queue.dead_letter_later(retry),
            });
            let (confirm, queues) = vhost.republish_dead_letter(self, &message, letter.reason, now_ms, settles, settle);
            if message.track != 0 && !letter.announced && confirm != Confirm::Refused {
                let args = self.args();
                let dlx = args.dead_letter_exchange.as_deref().unwrap_or_default();
                self.tracker.left(message.track, now_ms, &self.name, letter.reason, Some((dlx, queues)));
                letter.announced = true;
            }
            match confirm {
                Confirm::Now => self.forget_stored(letter.stored),
                Confirm::WhenDurable => {}
                Confirm::Refused => self.dead_letter_later(letter),
            }
        }
    }

    /// Keeps a dead letter whose copy could not be stored, to try again shortly. A paged-out
    /// one keeps only its id (its body is read again then).
    fn dead_letter_later(self: &Arc<Self>, mut letter: DeadLetter) {
        let mut st = self.state.lock();
        if st.deleted {
            return;
        }
        if letter.stored.is_some() && self.persist.as_ref().is_some_and(|p| p.durable) {
            letter.body = None;
        }
        st.undelivered_dead.push(letter);
        st.retry_dead_at_ms = Some(self.timers.now_ms().saturating_add(DEAD_LETTER_RETRY_MS));
        self.schedule(&mut st);
    }

    /// Tries again the dead letters the store refused earlier, once their wait is over.
    pub(super) fn take_undelivered_dead(&self, st: &mut super::QueueState, now_ms: u64) -> Vec<DeadLetter> {
        match st.retry_dead_at_ms {
            Some(at) if at <= now_ms => {
                st.retry_dead_at_ms = None;
                std::mem::take(&mut st.undelivered_dead)
            }
            _ => Vec::new(),
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
    Arc::new(message.with_properties(&props))
}

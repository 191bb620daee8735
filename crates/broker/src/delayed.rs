//! Delayed-message exchanges (`x-delayed-message`): a message published with a positive
//! `x-delay` header waits in its exchange until its time, then is routed as the exchange's
//! `x-delayed-type` routes. Waiting messages are held in memory, and a persistent one waiting
//! in a durable exchange is also in the store (under the exchange's own store id), so it survives
//! a restart; it leaves the store once routed, after its copies in durable queues were appended.

use crate::durable::{Durability, OnDurable};
use crate::exchange::Exchange;
use crate::timers::{Tick, Timers};
use crate::vhost::{Confirm, Routed};
use crate::VHost;
use parking_lot::Mutex;
use std::collections::BTreeMap;
use std::sync::{Arc, Weak};
use warren_core::exchange::delay_of;
use warren_core::Message;

/// Messages one delayed exchange may hold; publishes beyond it are refused (nacked).
pub const MAX_DELAYED_MESSAGES: usize = 100_000;

/// How long a released message whose copies the store refused waits before it is routed again.
const RELEASE_RETRY_MS: u64 = 1000;

pub struct Delayed {
    /// Where waiting persistent messages are stored (a durable exchange of a broker with a store).
    store: Option<(u64, Arc<Durability>)>,
    timers: Arc<Timers>,
    vhost: Weak<VHost>,
    state: Mutex<Waiting>,
}

#[derive(Default)]
struct Waiting {
    /// By (due time, arrival order).
    messages: BTreeMap<(u64, u64), (Arc<Message>, Option<u64>)>,
    next_seq: u64,
    scheduled_ms: Option<u64>,
}

impl Delayed {
    pub(crate) fn new(store: Option<(u64, Arc<Durability>)>, timers: Arc<Timers>, vhost: Weak<VHost>) -> Delayed {
        Delayed { store, timers, vhost, state: Mutex::new(Waiting::default()) }
    }

    /// The store id of a durable delayed exchange's waiting messages.
    pub fn store_id(&self) -> Option<u64> {
        self.store.as_ref().map(|(id, _)| *id)
    }

    /// How many messages are waiting.
    pub fn len(&self) -> usize {
        self.state.lock().messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The delay `message` asks for, if any (only such messages wait).
    pub(crate) fn delay_of(message: &Message) -> Option<u64> {
        delay_of(warren_core::dead_letter::headers_of(&message.properties).as_ref())
    }

    /// Holds `message` for `delay_ms` in `exchange`. A persistent one is stored first when the
    /// exchange is durable; `on_durable` then says when it is on disk.
    pub(crate) fn hold(
        &self,
        exchange: &Arc<Exchange>,
        message: Arc<Message>,
        delay_ms: u64,
        on_durable: Option<OnDurable>,
    ) -> Routed {
        let due = message.timestamp_ms.max(1).saturating_add(delay_ms);
        let mut st = self.state.lock();
        if st.messages.len() >= MAX_DELAYED_MESSAGES {
            return Routed { queues: 0, confirm: Confirm::Now, rejected: true, ..Routed::default() };
        }
        let key = (due, st.next_seq);
        st.next_seq += 1;
        let persistent = amqp_codec::raw_properties::delivery_mode(&message.properties) == Some(2);
        let mut confirm = Confirm::Now;
        let mut stored = None;
        if let (true, Some((store_id, durability))) = (persistent, &self.store) {
            let weak = Arc::downgrade(exchange);
            let appended = durability.append(&[*store_id], &message, move |_| {
                move |ok| {
                    if !ok {
                        // Nacked to the publisher: it must not be routed later.
                        if let Some(d) = weak.upgrade().as_ref().and_then(|e| e.delayed.as_ref()) {
                            d.state.lock().messages.remove(&key);
                        }
                    }
                    if let Some(f) = on_durable {
                        f(ok);
                    }
                }
            });
            match appended {
                Some(id) => {
                    stored = Some(id);
                    confirm = Confirm::WhenDurable;
                }
                None => return Routed { queues: 0, confirm: Confirm::Refused, ..Routed::default() },
            }
        }
        st.messages.insert(key, (message, stored));
        self.schedule(&mut st, exchange);
        Routed { queues: 1, confirm, ..Routed::default() }
    }

    /// Puts back a message recovered from the store (its `x-delay` counts from its timestamp).
    pub(crate) fn restore(&self, exchange: &Arc<Exchange>, message: Arc<Message>, stored: u64) {
        let due = message.timestamp_ms.saturating_add(Self::delay_of(&message).unwrap_or(0));
        let mut st = self.state.lock();
        let key = (due, st.next_seq);
        st.next_seq += 1;
        st.messages.insert(key, (message, Some(stored)));
        self.schedule(&mut st, exchange);
    }

    fn schedule(&self, st: &mut Waiting, exchange: &Arc<Exchange>) {
        let Some(((due, _), _)) = st.messages.first_key_value() else { return };
        if st.scheduled_ms.is_none_or(|at| *due < at) {
            self.timers.reschedule(st.scheduled_ms, *due, exchange);
            st.scheduled_ms = Some(*due);
        }
    }

    /// Routes every message whose time has come. Its stored copy is forgotten once the routed
    /// copies are durable (or need no disk); if the store refuses them, it waits a little more.
    fn release_due(&self, exchange: &Arc<Exchange>, now_ms: u64) {
        let due: Vec<(Arc<Message>, Option<u64>)> = {
            let mut st = self.state.lock();
            st.scheduled_ms = None;
            let later = st.messages.split_off(&(now_ms + 1, 0));
            let due = std::mem::replace(&mut st.messages, later);
            self.schedule(&mut st, exchange);
            due.into_values().collect()
        };
        let Some(vhost) = self.vhost.upgrade() else { return };
        for (message, stored) in due {
            // Queue TTLs count from when it reaches its queues.
            let routed = Arc::new(Message::clone(&message).at(now_ms));
            let weak = Arc::downgrade(exchange);
            let original = message.clone();
            let settle: OnDurable = Box::new(move |durable| {
                if let Some(exchange) = weak.upgrade() {
                    if let Some(delayed) = &exchange.delayed {
                        delayed.settle_released(&exchange, original, stored, durable);
                    }
                }
            });
            match vhost.route_and_deliver(exchange, routed, Some(settle)).confirm {
                Confirm::Now => self.settle_released(exchange, message, stored, true),
                Confirm::WhenDurable => {}
                Confirm::Refused => self.settle_released(exchange, message, stored, false),
            }
        }
    }

    /// A released message's copies are durable (`true`): its own stored copy goes. Or they
    /// could not be stored: it waits again and is retried shortly.
    fn settle_released(&self, exchange: &Arc<Exchange>, message: Arc<Message>, stored: Option<u64>, durable: bool) {
        if durable {
            if let (Some((store_id, durability)), Some(id)) = (&self.store, stored) {
                let _ = durability.store.ack(*store_id, id);
            }
            return;
        }
        let mut st = self.state.lock();
        let key = (self.timers.now_ms().saturating_add(RELEASE_RETRY_MS), st.next_seq);
        st.next_seq += 1;
        st.messages.insert(key, (message, stored));
        self.schedule(&mut st, exchange);
    }

    /// The exchange was deleted: its waiting messages go, and the store forgets them.
    pub(crate) fn discard(&self) {
        self.state.lock().messages.clear();
        if let Some((store_id, durability)) = &self.store {
            let _ = durability.store.purge(*store_id, u64::MAX);
        }
    }
}

impl Tick for Exchange {
    fn tick(self: Arc<Self>, now_ms: u64) {
        if let Some(delayed) = &self.delayed {
            delayed.release_due(&self, now_ms);
        }
    }
}

//! A queue at run time: its definition, its message state and its consumers behind one lock per
//! queue (never a global one), and round-robin dispatch to consumers with credit. Its policies
//! (TTL, length limits, delivery limits, dead-lettering) live in the submodules.

mod browse;
mod consumers;
mod dead_letter;
mod flow;
mod inspect;
mod limits;
mod long_poll;
mod paging;
mod settings;
mod tick;

pub use browse::Peek;
pub use consumers::ConsumerRemoved;
pub use flow::FLOW_RESUME_READY;
pub use settings::AppliedPolicy;

pub use long_poll::LongPoll;

use crate::consumer::{Consumer, Offer};
use crate::durable::Durability;
use crate::stats::{Counted, MessageCounters};
use crate::timers::Timers;
use crate::tracking::Tracker;
use crate::vhost::QueueDeclare;
use crate::VHost;
use amqp_codec::{FieldTable, ShortStr};
use arc_swap::ArcSwap;
use parking_lot::{Mutex, MutexGuard};
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Weak};
use warren_core::dead_letter::Reason;
use warren_core::queue_args::QueueArgs;
use warren_core::{AmqpError, Dropped, Entry, Load, Message, Prioritized};

pub struct Queue {
    pub name: ShortStr,
    pub vhost: String,
    pub durable: bool,
    /// The connection that declared an exclusive queue; no other connection may use it.
    pub exclusive_owner: Option<u64>,
    pub auto_delete: bool,
    /// The arguments it was declared with.
    pub arguments: FieldTable,
    /// The settings it runs with: its arguments with what policies add (changed when a policy
    /// changes, see [`Queue::apply_policy`]).
    args: ArcSwap<QueueArgs>,
    /// The policies that apply, for listing.
    policy: Mutex<AppliedPolicy>,
    /// Messages published into, delivered from and acknowledged in this queue (counted under
    /// its lock).
    pub counters: MessageCounters,
    /// The queue's link to the store (every queue of a broker with a data directory).
    pub persist: Option<Persist>,
    /// The vhost, to route dead letters through and to delete an expired queue from.
    vhost_ref: Weak<VHost>,
    timers: Arc<Timers>,
    tracker: Arc<Tracker>,
    state: Mutex<QueueState>,
    /// HTTP receives waiting for messages, woken by dispatch (see `long_poll.rs`).
    long_polls: long_poll::Waiting,
    /// Publishers held until this queue's consumers catch up (see `flow.rs`).
    held: flow::Held,
    /// Argument `x-message-deduplication`: duplicates are confirmed but not enqueued.
    pub dedup: Option<Arc<crate::dedup::Deduplicator>>,
}

/// How a queue reaches the store: a durable queue writes its persistent messages there, and
/// any queue pages messages out there when it holds more than `queue_memory_bytes`.
pub struct Persist {
    /// The queue's id in the store (and, for a durable queue, in the definitions); never reused.
    pub id: u64,
    pub durability: Arc<Durability>,
    /// Persistent messages are written durably and the queue comes back after a restart.
    pub durable: bool,
}

struct QueueState {
    messages: Prioritized,
    consumers: Vec<Arc<Consumer>>,
    next_consumer: usize,
    deleted: bool,
    /// Highest store id this queue told the store it delivered (see `Store::mark_delivered`).
    marked_delivered: u64,
    /// The queue wrote paged copies: its deletion must settle them in the store.
    paged_any: bool,
    /// In-memory ready bytes last added to the broker-wide count (`Durability::report_memory`).
    reported_memory: u64,
    /// Bodies of the next paged-out messages, loaded by the reader thread (`None`: unreadable).
    loaded: BTreeMap<u64, Option<Arc<Message>>>,
    /// A request to the reader thread is in flight.
    loading: bool,
    /// Messages taken out by a policy, to dead-letter (or drop) once the lock is released.
    dead: Vec<(Dropped, Reason)>,
    /// The deadline the timer task will tick this queue at, if one is scheduled.
    scheduled_ms: Option<u64>,
    /// When the queue was last used (for `x-expires`): declared, consumed from, or read by get.
    last_used_ms: u64,
    /// When the timer last swept the whole queue for expired messages.
    last_sweep_ms: u64,
    /// With `x-single-active-consumer`: the one consumer that gets messages.
    active: Option<Arc<Consumer>>,
    /// With `x-retry-delays`: rejected messages waiting to come back, by (due time, seq).
    retrying: BTreeMap<(u64, u64), Entry>,
    /// Dead letters whose copy the store refused (full, busy, failed): tried again later; their
    /// originals stay in the store meanwhile.
    undelivered_dead: Vec<DeadLetter>,
    /// When to try `undelivered_dead` again.
    retry_dead_at_ms: Option<u64>,
    /// Dead letters waiting behind one whose body the store's reader thread is reading; while
    /// `Some`, later dead letters queue here too, so they leave in order (see `dead_letter.rs`).
    dead_in_order: Option<VecDeque<DeadLetter>>,
}

/// Ready messages above which a queue with consumers tells its publishers that the consumers
/// are falling behind: a publisher then gives them a turn on its worker thread and, under flow
/// control, waits for them to catch up (see `flow.rs`).
pub const CONSUMERS_BEHIND_READY: usize = 8192;

/// What a queue did with a message routed to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Enqueued {
    Accepted,
    /// Taken, but the queue's consumers are falling behind: see [`CONSUMERS_BEHIND_READY`].
    AcceptedBehind,
    /// Refused: the queue is full and its overflow is `reject-publish` or `reject-publish-dlx`.
    Rejected,
    /// The queue was deleted meanwhile.
    Gone,
}

/// A message on its way out of the queue to the dead-letter exchange.
#[derive(Clone)]
struct DeadLetter {
    /// Its id in the store for this queue, forgotten once its copy is safely elsewhere.
    stored: Option<u64>,
    reason: Reason,
    /// Its body, if in memory (else it is read back from the store).
    body: Option<Arc<Message>>,
    /// Its tracking record already says it left (a retried dead letter says it once).
    announced: bool,
}

/// One dispatch round: its time, what it delivered and what expired on the way.
struct Round {
    /// The broker's time (deliveries are stamped with it).
    now_ms: u64,
    /// Messages whose deadline is at or before this are expired rather than delivered.
    expiry_ms: u64,
    /// Highest store id delivered.
    delivered_upto: u64,
    expired: Vec<Dropped>,
}

impl Round {
    fn new(now_ms: u64, expiry_ms: u64) -> Round {
        Round { now_ms, expiry_ms, delivered_upto: 0, expired: Vec::new() }
    }
}

/// Paged-out messages asked of the reader thread at once (it also stops at 1 MiB of bodies).
const LOAD_AHEAD: usize = 64;

/// A queue reports its memory to the broker-wide count when it moved by this much (so the shared
/// counter is not touched per message).
const MEMORY_REPORT_STEP_BYTES: u64 = 256 * 1024;

impl Queue {
    /// A queue of `vhost` as `req` declares it; `owner` is the declaring connection of an
    /// exclusive queue.
    pub fn new(
        vhost: &Arc<VHost>,
        req: QueueDeclare,
        owner: Option<u64>,
        args: QueueArgs,
        policy: AppliedPolicy,
        persist: Option<Persist>,
    ) -> Arc<Queue> {
        let timers = vhost.timers().clone();
        let dedup = warren_core::dedup::DedupSettings::from_arguments(&req.arguments).ok().flatten().map(|settings| {
            let home = persist.as_ref().filter(|p| p.durable).map(|p| crate::dedup::Home::Queue { store_id: p.id });
            crate::dedup::Deduplicator::new(settings, home)
        });
        let state = QueueState {
            messages: Prioritized::new(args.max_priority, args.message_ttl_ms),
            consumers: Vec::new(),
            next_consumer: 0,
            deleted: false,
            marked_delivered: 0,
            paged_any: false,
            reported_memory: 0,
            loaded: BTreeMap::new(),
            loading: false,
            dead: Vec::new(),
            scheduled_ms: None,
            last_used_ms: timers.now_ms(),
            last_sweep_ms: 0,
            active: None,
            retrying: BTreeMap::new(),
            undelivered_dead: Vec::new(),
            dead_in_order: None,
            retry_dead_at_ms: None,
        };
        let q = Arc::new(Queue {
            name: req.name,
            vhost: vhost.name.clone(),
            durable: req.durable,
            exclusive_owner: owner,
            auto_delete: req.auto_delete,
            arguments: req.arguments,
            args: ArcSwap::from_pointee(args),
            policy: Mutex::new(policy),
            counters: MessageCounters::default(),
            persist,
            vhost_ref: Arc::downgrade(vhost),
            timers,
            tracker: vhost.tracker().clone(),
            state: Mutex::new(state),
            long_polls: long_poll::Waiting::default(),
            held: flow::Held::default(),
            dedup,
        });
        q.schedule(&mut q.state.lock());
        q
    }

    /// The queue's store id, if it keeps persistent messages durably.
    /// The vhost the queue is in, held weakly (for work that outlives a call).
    pub(crate) fn vhost_weak(&self) -> Weak<VHost> {
        self.vhost_ref.clone()
    }

    pub fn durable_store_id(&self) -> Option<u64> {
        self.persist.as_ref().filter(|p| p.durable).map(|p| p.id)
    }

    /// Whether the queue keeps persistent messages durably (it is durable and not exclusive).
    pub fn persists(&self) -> bool {
        self.durable_store_id().is_some()
    }

    /// 405 unless `connection` may use this queue (it is not exclusive to another connection).
    pub fn check_access(&self, connection: u64) -> Result<(), AmqpError> {
        match self.exclusive_owner {
            Some(owner) if owner != connection => Err(AmqpError::resource_locked(format!(
                "cannot obtain exclusive access to locked queue '{}' in vhost '{}'. It could be originally declared on another connection or the exclusive property value does not match that of the original declaration.",
                self.name, self.vhost
            ))),
            _ => Ok(()),
        }
    }

    /// Append a routed message, stored in the log under `stored` for this queue if it was
    /// persisted, and deliver what consumers can take. A full queue drops its head or refuses
    /// the message, as its overflow says; the store then forgets a refused or gone message for
    /// this queue.
    pub fn enqueue(self: &Arc<Self>, message: Arc<Message>, stored: Option<u64>) -> Enqueued {
        let mut st = self.state.lock();
        if st.deleted {
            drop(st);
            self.forget_stored(stored);
            return Enqueued::Gone;
        }
        if self.refuses(&st, &message) {
            drop(st);
            self.forget_stored(stored);
            self.refused(message);
            return Enqueued::Rejected;
        }
        // A message is stamped as it enters the broker, moments ago: no clock read per queue.
        let now = match message.timestamp_ms {
            0 => self.timers.now_ms(),
            stamped => stamped,
        };
        st.messages.push_with(message, stored);
        self.counters.bump(Counted::Publish, 1);
        // Offered as it arrives, before its TTL can have run: a TTL of 0 reaches a waiting
        // consumer and expires otherwise (RabbitMQ's rule).
        self.dispatch_at(&mut st, Round::new(now, now.saturating_sub(1)));
        self.drop_over_limit(&mut st);
        let mut expired = Vec::new();
        st.messages.expire_head(now, &mut expired);
        st.dead.extend(expired.into_iter().map(|d| (d, Reason::Expired)));
        self.bound_memory(&mut st);
        self.schedule(&mut st);
        let behind = !st.consumers.is_empty() && st.messages.ready_count() > CONSUMERS_BEHIND_READY;
        // A length limit may have dropped what held publishers waited on.
        self.held.check(&st);
        self.unlock(st);
        if behind {
            Enqueued::AcceptedBehind
        } else {
            Enqueued::Accepted
        }
    }

    /// Releases the lock, then dead-letters what a policy took out meanwhile.
    fn unlock(self: &Arc<Self>, mut st: MutexGuard<'_, QueueState>) {
        if st.dead.is_empty() {
            return;
        }
        let dead: Vec<DeadLetter> = std::mem::take(&mut st.dead)
            .into_iter()
            .map(|(dropped, reason)| {
                // A paged-out message the reader already loaded: its body is at hand (and must
                // leave the loaded map with it).
                let body = match &dropped {
                    Dropped::Paged(id) => st.loaded.remove(id).flatten(),
                    Dropped::Entry(e) => Some(e.message.clone()),
                };
                DeadLetter { stored: dropped.stored(), reason, body, announced: false }
            })
            .collect();
        drop(st);
        self.dead_letter(dead);
    }

    /// Keeps the in-memory ready messages within `queue_memory_bytes`: drops from memory the
    /// oldest that are durable in the log and, when all queues together are over the memory
    /// watermark, first writes those not in the log yet (as paged copies).
    fn bound_memory(self: &Arc<Self>, st: &mut QueueState) {
        let Some(p) = &self.persist else { return };
        let budget = p.durability.queue_memory_bytes;
        if st.messages.memory_bytes() <= budget {
            return self.report_memory(st);
        }
        if !p.durability.over_memory_watermark() {
            st.messages.page_out(budget, p.durability.durable_up_to());
            return self.report_memory(st);
        }
        let written = st.messages.spill(budget, &mut |message| {
            let queue = self.clone();
            p.durability.page(p.id, message, move |id| queue.state.lock().messages.unstore(id))
        });
        st.paged_any |= written > 0;
        st.messages.page_out(budget, p.durability.durable_up_to());
        self.report_memory(st);
    }

    /// Adds this queue's memory change to the broker-wide count once it moved by a step (or
    /// the queue emptied its memory).
    fn report_memory(&self, st: &mut QueueState) {
        let Some(p) = &self.persist else { return };
        let now = st.messages.memory_bytes();
        if now.abs_diff(st.reported_memory) >= MEMORY_REPORT_STEP_BYTES || (now == 0 && st.reported_memory != 0) {
            p.durability.report_memory(now as i64 - st.reported_memory as i64);
            st.reported_memory = now;
        }
    }

    /// Deliver to consumers that have credit; called when credit may have been freed.
    pub fn dispatch(self: &Arc<Self>) {
        let mut st = self.state.lock();
        self.dispatch_locked(&mut st);
        self.unlock(st);
    }

    fn dispatch_locked(self: &Arc<Self>, st: &mut QueueState) {
        let now = self.timers.now_ms();
        self.dispatch_at(st, Round::new(now, now));
    }

    /// [`Queue::dispatch_locked`] as one `round`.
    fn dispatch_at(self: &Arc<Self>, st: &mut QueueState, mut round: Round) {
        self.dispatch_to_consumers(st, &mut round);
        st.dead.extend(round.expired.into_iter().map(|d| (d, Reason::Expired)));
        self.mark_delivered(st, round.delivered_upto);
        self.load_ahead(st);
        self.report_memory(st);
        // Every path that makes messages ready ends in a dispatch round.
        if st.messages.ready_count() > 0 {
            self.long_polls.wake();
        }
        self.held.check(st);
    }

    /// Drops the ready message stored under `id`: its write failed and its publisher was
    /// nacked. A message a consumer already took stays with it.
    pub fn discard_stored(&self, id: u64) {
        let removed = self.state.lock().messages.remove_ready_stored(id);
        if let Some(entry) = removed.filter(|e| e.message.track != 0) {
            self.tracker.not_stored_in(entry.message.track, self.timers.now_ms(), &self.name);
        }
    }

    /// Tells the store that stored messages up to `upto` were delivered, so that after a crash
    /// they come back marked redelivered. One record per dispatch round, not per message.
    fn mark_delivered(&self, st: &mut QueueState, upto: u64) {
        if upto > st.marked_delivered {
            st.marked_delivered = upto;
            if let Some(p) = self.persist.as_ref().filter(|p| p.durable) {
                let _ = p.durability.store.mark_delivered(p.id, upto);
            }
        }
    }

    /// A stored message left the queue for good (acked, or delivered with no-ack).
    fn forget_stored(&self, stored: Option<u64>) {
        if let (Some(p), Some(id)) = (&self.persist, stored) {
            let _ = p.durability.store.ack(p.id, id);
        }
    }

    fn dispatch_to_consumers(self: &Arc<Self>, st: &mut QueueState, round: &mut Round) {
        if self.args().single_active_consumer {
            // Only the active consumer gets messages; the others wait for it to go.
            let Some(active) = st.active.clone() else { return };
            while st.messages.ready_count() > 0 && self.offer(st, &active, round) {}
            return;
        }
        // Consumers are kept sorted by priority, highest first. Each message goes to the first
        // priority group with a consumer that has credit, round-robin within the group.
        'messages: while st.messages.ready_count() > 0 {
            let mut start = 0;
            while start < st.consumers.len() {
                let priority = st.consumers[start].priority;
                let len = st.consumers[start..].iter().take_while(|c| c.priority == priority).count();
                for k in 0..len {
                    let i = start + (st.next_consumer + k) % len;
                    let consumer = st.consumers[i].clone();
                    if self.offer(st, &consumer, round) {
                        st.next_consumer = i - start + 1;
                        continue 'messages;
                    }
                }
                start += len;
            }
            return; // no consumer can take more now
        }
    }

    /// Offers the next message to `consumer`; true if it took one.
    fn offer(self: &Arc<Self>, st: &mut QueueState, consumer: &Arc<Consumer>, round: &mut Round) -> bool {
        let (messages, loaded) = (&mut st.messages, &mut st.loaded);
        let (now, expiry) = (round.now_ms, round.expiry_ms);
        let (expired, delivered_upto) = (&mut round.expired, &mut round.delivered_upto);
        let mut take = || {
            let entry = messages.pop_next(expiry, expired, &mut |id| self.take_loaded(loaded, id))?;
            if let Some(id) = entry.stored {
                *delivered_upto = (*delivered_upto).max(id);
            }
            self.delivered(&entry, now, consumer.no_ack, false);
            if consumer.no_ack {
                self.forget_stored(entry.stored);
            } else {
                messages.track_unacked(entry.clone());
            }
            Some(entry)
        };
        consumer.sink.offer(consumer, self, now, &mut take) == Offer::Delivered
    }

    /// basic.get: the next message and how many remain ready after it.
    /// A paged-out message that was not loaded ahead is read right here: basic.get answers at
    /// once, so it cannot wait for the reader thread.
    pub fn get(self: &Arc<Self>, no_ack: bool) -> Option<(Entry, u32)> {
        let mut guard = self.state.lock();
        let now = self.timers.now_ms();
        let st = &mut *guard;
        st.last_used_ms = now;
        let (messages, loaded) = (&mut st.messages, &mut st.loaded);
        let mut expired = Vec::new();
        let entry = messages.pop_next(now, &mut expired, &mut |id| match self.take_loaded(loaded, id) {
            Load::NotYet => match self.persist.as_ref().and_then(|p| p.durability.load(id)) {
                Some(message) => Load::Loaded(message),
                None => {
                    self.forget_stored(Some(id));
                    Load::Unreadable
                }
            },
            other => other,
        });
        st.dead.extend(expired.into_iter().map(|d| (d, Reason::Expired)));
        let Some(entry) = entry else {
            self.schedule(st);
            self.unlock(guard);
            return None;
        };
        self.delivered(&entry, now, no_ack, true);
        if no_ack {
            self.forget_stored(entry.stored);
        } else {
            st.messages.track_unacked(entry.clone());
        }
        self.mark_delivered(st, entry.stored.unwrap_or(0));
        self.report_memory(st);
        self.held.check(st);
        self.schedule(st);
        let remaining = st.messages.ready_count() as u32;
        self.unlock(guard);
        Some((entry, remaining))
    }

    pub fn ack(&self, seqs: impl IntoIterator<Item = u64>) {
        let mut stored = smallvec::SmallVec::<[u64; 64]>::new();
        let mut st = self.state.lock();
        for seq in seqs {
            if let Some(entry) = st.messages.ack(seq) {
                self.counters.bump(Counted::Ack, 1);
                stored.extend(entry.stored);
                if entry.message.track != 0 {
                    self.tracker.acked(entry.message.track, self.timers.now_ms(), &self.name);
                }
            }
        }
        // Under the lock still, so nothing this queue sends the store later overtakes them.
        if let (Some(p), false) = (&self.persist, stored.is_empty()) {
            let _ = p.durability.store.ack_many(p.id, &stored);
        }
    }

    /// Counts a delivery (to a consumer, or by basic.get) and records it for a tracked message
    /// (and, with no-ack, its settlement). Called under the queue's lock.
    fn delivered(&self, entry: &Entry, now_ms: u64, no_ack: bool, get: bool) {
        let kind = match (get, no_ack) {
            (false, false) => Counted::Deliver,
            (false, true) => Counted::DeliverNoAck,
            (true, false) => Counted::Get,
            (true, true) => Counted::GetNoAck,
        };
        self.counters.bump(kind, 1);
        if entry.redelivered {
            self.counters.bump(Counted::Redeliver, 1);
        }
        let track = entry.message.track;
        if track != 0 {
            self.tracker.delivered(track, now_ms, &self.name, entry.delivery_count);
            if no_ack {
                self.tracker.acked(track, now_ms, &self.name);
            }
        }
    }

    /// The queue was declared again (which counts as a use for `x-expires`).
    pub fn touch(self: &Arc<Self>) {
        let mut st = self.state.lock();
        st.last_used_ms = self.timers.now_ms();
        self.schedule(&mut st);
    }

    pub fn purge(&self) -> usize {
        let purged = self.purge_ready();
        // Publishers held for this queue's backlog go on: it is gone.
        self.held.check(&self.state.lock());
        purged
    }

    fn purge_ready(&self) -> usize {
        let mut st = self.state.lock();
        st.loaded.clear();
        // Messages waiting to be retried go too (their ids are settled before any purge record).
        for (_, entry) in std::mem::take(&mut st.retrying) {
            self.forget_stored(entry.stored);
        }
        let Some(p) = &self.persist else { return st.messages.purge(|_| {}) };
        let n = if st.messages.unacked_stored() > 0 {
            // A purge record would also settle the unacked ones: settle the purged one by one.
            st.messages.purge(|id| self.forget_stored(Some(id)))
        } else {
            let up_to = st.messages.max_ready_stored();
            let n = st.messages.purge(|_| {});
            if let Some(up_to) = up_to {
                let _ = p.durability.store.purge(p.id, up_to);
            }
            n
        };
        self.report_memory(&mut st);
        n
    }
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue").field("name", &self.name).field("vhost", &self.vhost).finish()
    }
}

//! What happens to a tracked message, as the broker reports it: routed, refused, delivered,
//! requeued, acked, dead-lettered or dropped, deduplicated, transformed, failed at its exchange
//! (a contract, a transform), replied to. Each report updates the message's record.

use super::*;

impl Tracker {
    /// Routing placed copies in `queues` (none: unroutable).
    pub fn routed(&self, id: u64, now_ms: u64, exchange: &str, queues: Vec<String>) {
        self.update(id, |r| {
            if queues.is_empty() {
                r.failed |= !r.routed;
                r.push(Event::Unroutable { at_ms: now_ms, exchange: exchange.to_owned() });
                return;
            }
            r.routed = true;
            for q in &queues {
                *r.open_copies.entry(q.clone()).or_default() += 1;
            }
            r.push(Event::Routed { at_ms: now_ms, exchange: exchange.to_owned(), queues });
        });
    }

    /// The copy routed to `queue` was refused there (the queue is full).
    pub fn refused(&self, id: u64, now_ms: u64, queue: &str) {
        self.update(id, |r| {
            Self::close_copy(r, queue);
            r.failed = true;
            r.push(Event::Refused { at_ms: now_ms, queue: queue.to_owned() });
        });
    }

    /// The copy routed to `queue` found it deleted meanwhile.
    pub fn gone(&self, id: u64, queue: &str) {
        self.update(id, |r| Self::close_copy(r, queue));
    }

    /// The store refused the message: it was enqueued nowhere.
    pub fn not_stored(&self, id: u64, now_ms: u64) {
        self.update(id, |r| {
            r.failed = true;
            r.push(Event::NotStored { at_ms: now_ms, queue: None });
        });
    }

    /// The copy in `queue` was dropped there because its write to the disk failed.
    pub fn not_stored_in(&self, id: u64, now_ms: u64, queue: &str) {
        self.update(id, |r| {
            Self::close_copy(r, queue);
            r.failed = true;
            r.push(Event::NotStored { at_ms: now_ms, queue: Some(queue.to_owned()) });
        });
    }

    pub fn delivered(&self, id: u64, now_ms: u64, queue: &str, attempt: u32) {
        self.update(id, |r| r.push(Event::Delivered { at_ms: now_ms, queue: queue.to_owned(), attempt }));
    }

    pub fn requeued(&self, id: u64, now_ms: u64, queue: &str) {
        self.update(id, |r| r.push(Event::Requeued { at_ms: now_ms, queue: queue.to_owned() }));
    }

    fn close_copy(record: &mut Record, queue: &str) {
        if let Some(n) = record.open_copies.get_mut(queue) {
            *n -= 1;
            if *n == 0 {
                record.open_copies.remove(queue);
            }
        }
    }

    pub fn acked(&self, id: u64, now_ms: u64, queue: &str) {
        self.update(id, |r| {
            Self::close_copy(r, queue);
            r.push(Event::Acked { at_ms: now_ms, queue: queue.to_owned() });
        });
    }

    /// The copy in `queue` left it for `reason`: through a dead-letter exchange to the queues
    /// it routed the copy to, or dropped.
    pub fn left(&self, id: u64, now_ms: u64, queue: &str, reason: Reason, dead_lettered: Option<(&str, Vec<String>)>) {
        self.update(id, |r| {
            Self::close_copy(r, queue);
            r.failed = true;
            let (queue, reason) = (queue.to_owned(), reason.as_str().to_owned());
            r.push(match dead_lettered {
                Some((exchange, queues)) => {
                    Event::DeadLettered { at_ms: now_ms, queue, reason, exchange: exchange.to_owned(), queues }
                }
                None => Event::Dropped { at_ms: now_ms, queue, reason },
            });
        });
    }

    /// A window at `place` (an exchange or a queue) had the message's deduplication key: it
    /// went no further there. A message that went nowhere else is finished.
    pub fn deduplicated(&self, id: u64, now_ms: u64, place: &str) {
        self.update(id, |r| {
            r.routed = true;
            r.push(Event::Deduplicated { at_ms: now_ms, at: place.to_owned() });
        });
    }

    /// The message broke `refusal`'s contract at `exchange`: refused, or dead-lettered
    /// through an exchange to the queues that took it.
    pub fn broke_contract(
        &self,
        id: u64,
        now_ms: u64,
        exchange: &str,
        refusal: &crate::contracts::ContractRefusal,
        dead_lettered: Option<(&str, Vec<String>)>,
    ) {
        let violations = refusal
            .violations
            .iter()
            .map(|v| ViolationSeen { pointer: v.pointer.clone(), message: v.message.clone() })
            .collect();
        let contract = format!("{}/{}", refusal.contract, refusal.version);
        let event = Event::BrokeContract { at_ms: now_ms, exchange: exchange.to_owned(), contract, violations };
        self.died_at_exchange(id, now_ms, event, Reason::Contract, dead_lettered);
    }

    /// The exchange's transform made `outputs` messages of it (none: it is finished).
    pub fn transformed(&self, id: u64, now_ms: u64, transform: &str, outputs: usize) {
        self.update(id, |r| {
            if outputs == 0 {
                r.routed = true;
            }
            r.push(Event::Transformed { at_ms: now_ms, transform: transform.to_owned(), outputs });
        });
    }

    /// Its exchange split it into `parts` messages (none: it is done).
    pub fn split(&self, id: u64, now_ms: u64, exchange: &str, parts: usize) {
        self.update(id, |r| {
            if parts == 0 {
                r.routed = true;
            }
            r.push(Event::Split { at_ms: now_ms, exchange: exchange.to_owned(), parts });
        });
    }

    /// Its exchange could not split it: dead-lettered through an exchange to the queues that
    /// took it, or dropped (`None`).
    pub fn split_failed(
        &self,
        id: u64,
        now_ms: u64,
        (exchange, error): (&str, &str),
        dead_lettered: Option<(&str, Vec<String>)>,
    ) {
        let event = Event::SplitFailed { at_ms: now_ms, exchange: exchange.to_owned(), error: error.to_owned() };
        self.died_at_exchange(id, now_ms, event, Reason::SplitFailed, dead_lettered);
    }

    /// The exchange's transform failed on it: dead-lettered through an exchange to the queues
    /// that took it, or dropped (`None`).
    pub fn transform_failed(
        &self,
        id: u64,
        now_ms: u64,
        (exchange, transform, error): (&str, &str, &str),
        dead_lettered: Option<(&str, Vec<String>)>,
    ) {
        let (exchange, transform, error) = (exchange.to_owned(), transform.to_owned(), error.to_owned());
        let event = Event::TransformFailed { at_ms: now_ms, exchange, transform, error };
        self.died_at_exchange(id, now_ms, event, Reason::TransformFailed, dead_lettered);
    }

    /// The message failed at its exchange, before routing (`why`), and was dead-lettered for
    /// `reason` through an exchange to the queues that took it, or went nowhere.
    fn died_at_exchange(
        &self,
        id: u64,
        now_ms: u64,
        why: Event,
        reason: Reason,
        dead_lettered: Option<(&str, Vec<String>)>,
    ) {
        self.update(id, |r| {
            r.failed = true;
            r.push(why);
            if let Some((dlx, queues)) = dead_lettered {
                let (reason, exchange) = (reason.as_str().to_owned(), dlx.to_owned());
                r.push(Event::DeadLettered { at_ms: now_ms, queue: String::new(), reason, exchange, queues });
            }
        });
    }

    /// A consumer replied to message `id`; false if it is not tracked (any more).
    pub fn replied(&self, id: u64, now_ms: u64, reply: &warren_core::Message) -> bool {
        let mut known = false;
        self.update(id, |r| {
            known = true;
            let props = reply.decode_properties().unwrap_or_default();
            let cut = reply.body.len() > MAX_REPLY_BYTES;
            let body = &reply.body[..reply.body.len().min(MAX_REPLY_BYTES)];
            let (body, body_encoding) = match std::str::from_utf8(body) {
                Ok(text) => (text.to_owned(), "utf8"),
                Err(_) => {
                    use base64::Engine;
                    (base64::engine::general_purpose::STANDARD.encode(body), "base64")
                }
            };
            r.reply = Some(Reply {
                at_ms: now_ms,
                content_type: props.content_type.map(|s| s.as_str().to_owned()),
                correlation_id: props.correlation_id.map(|s| s.as_str().to_owned()),
                body,
                body_encoding: body_encoding.to_owned(),
                truncated: cut,
            });
            r.push(Event::Replied { at_ms: now_ms });
        });
        known
    }
}

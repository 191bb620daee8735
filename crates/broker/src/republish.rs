//! Dead letters republished through their queue's dead-letter exchange: routed with the
//! dead-letter routing key or the keys the message was published with, never back into a
//! queue in a cycle that no consumer took part in (RabbitMQ's rule), and persisted like any
//! publish when persistent and bound for durable queues: then in one store record with the
//! original's ack, so that a crash leaves the message in one queue or the other, never both.

use crate::durable::OnDurable;
use crate::route;
use crate::vhost::Confirm;
use crate::{Queue, VHost};
use std::sync::Arc;
use warren_core::dead_letter::{self, Death, Reason};
use warren_core::Message;

impl VHost {
    /// Republishes `message`, which died in `from` for `reason`, through `from`'s dead-letter
    /// exchange. A missing dead-letter exchange drops the message (as in RabbitMQ). Says when
    /// the original may go: now, once `on_durable` is called with `true`, or not yet (refused);
    /// and the queues the copy went to. The copy is not tracked: the original's record ends here.
    /// `settles` (the original's store queue and id, for a durable queue) go in the copy's store
    /// record when it has one (`Confirm::WhenDurable`): the original is then settled with it.
    pub(crate) fn republish_dead_letter(
        &self,
        from: &Queue,
        message: &Message,
        reason: Reason,
        now_ms: u64,
        settles: Vec<(u64, u64)>,
        on_durable: OnDurable,
    ) -> (Confirm, Vec<String>) {
        let args = from.args();
        let Some(dlx_name) = args.dead_letter_exchange.as_deref() else { return (Confirm::Now, Vec::new()) };
        let death = Death { queue: &from.name, reason, now_ms };
        let dlrk = args.dead_letter_routing_key.as_deref();
        let Some((republished, keys)) = dead_letter::dead_letter(message, &death, dlx_name, dlrk) else {
            tracing::warn!(queue = %from.name, "a message to dead-letter has undecodable properties; dropped");
            return (Confirm::Now, Vec::new());
        };
        let Some(dlx) = self.exchange(dlx_name) else {
            tracing::debug!(queue = %from.name, exchange = dlx_name, "dead-letter exchange missing; message dropped");
            return (Confirm::Now, Vec::new());
        };
        let mut targets = route::queues_for(self, &dlx, &keys, &republished);
        let headers = dead_letter::headers_of(&republished.properties);
        targets.retain(|q| {
            let cycle = dead_letter::is_cycle(reason, headers.as_ref(), &q.name);
            if cycle {
                tracing::warn!(queue = %q.name, reason = reason.as_str(), "dead-letter cycle detected; message dropped");
            }
            !cycle
        });
        let names = targets.iter().map(|q| q.name.to_string()).collect();
        let copy = Arc::new(republished.tracked(0));
        let confirm = self.deliver_taking(targets, copy, Some(on_durable), Vec::new(), settles).confirm;
        (confirm, names)
    }
}

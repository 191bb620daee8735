//! Publishing a message that settles others in the same store record: an aggregator's combined
//! message and the parts it was made of. After a crash the aggregate is there and its parts
//! are gone, or the parts are there (and are aggregated again) and the aggregate is not: a
//! group is never delivered twice, and never lost.

use super::{Routed, VHost};
use crate::durable::OnDurable;
use std::sync::Arc;
use warren_core::{AmqpError, Message};

impl VHost {
    /// Publishes `message` to `exchange`: checked against its contract and its deduplication
    /// windows, routed by its type and
    /// bindings and, if persistent and bound for durable queues, written in one record with
    /// the settling of the stored messages `settles` (store queue id, message id). An exchange
    /// that splits, transforms or delays gets it through [`VHost::publish`]; the settling is
    /// then the caller's acks after the confirm (a crash between the two repeats the aggregate),
    /// as it is when it reaches a binding with a transform.
    pub fn publish_settling(
        &self,
        exchange: &str,
        message: Arc<Message>,
        settles: Vec<(u64, u64)>,
        on_durable: OnDurable,
    ) -> Result<Routed, AmqpError> {
        let ex = self.existing_exchange(exchange)?;
        if ex.transform.is_some() || ex.split.is_some() || ex.delayed.is_some() || ex.def.internal {
            return self.publish(exchange, message, Some(on_durable));
        }
        let message = match self.contracts.check(&self.name, exchange, message) {
            Ok(message) => message,
            Err(broken) => return Ok(self.contract_broken(&ex, *broken, Some(on_durable))),
        };
        // A deduplicating exchange keeps out an aggregate it has seen (its `message_id` names
        // the aggregator and the group): the caller then settles the parts.
        let mut taken = match self.exchange_dedup(&ex, &message) {
            Ok(taken) => taken,
            Err(duplicate) => return Ok(duplicate),
        };
        let mut item = self.targets_of(&ex, message);
        if !item.transformed.is_empty() {
            self.keys_taken_now(taken);
            return Ok(self.deliver_through_transforms(&ex, vec![item], Some(on_durable)));
        }
        let deduplicated = self.drop_duplicates(&mut item.targets, &item.message, &mut taken);
        let persistent = amqp_codec::raw_properties::delivery_mode(&item.message.properties) == Some(2);
        let mut routed = self.with_keys(taken, persistent, Some(on_durable), |after_store| {
            self.deliver_settling(item.targets, item.message, settles, after_store)
        });
        routed.deduplicated |= deduplicated;
        Ok(routed)
    }
}

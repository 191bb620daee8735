//! What happens to a message that broke a contract: refused (the publisher gets a nack, a
//! mandatory one its message back, HTTP a 422), or dead-lettered through the contract's
//! dead-letter exchange (else the published-to exchange's `x-dead-letter-exchange` argument)
//! with reason `contract`, an `x-death` entry naming no queue, and the contract and violations
//! in headers. A dead letter that has nowhere to go is refused instead: a broken message is
//! never dropped silently. Its confirm follows the dead letter's (acked once the dead-letter
//! queues have it on disk).

use super::{Routed, VHost};
use crate::contracts::{Broken, ContractRefusal, CONTRACT_HEADER, VIOLATIONS_HEADER};
use crate::durable::OnDurable;
use crate::exchange::Exchange;
use crate::route;
use amqp_codec::{FieldTable, FieldValue, ShortStr};
use bytes::Bytes;
use std::sync::Arc;
use warren_core::dead_letter::{self, Death, Reason};
use warren_core::Message;

/// The exchange argument naming where messages breaking a contract go (when the contract
/// names no exchange of its own), and the routing key they go with.
pub const DEAD_LETTER_EXCHANGE_ARG: &str = "x-dead-letter-exchange";
pub const DEAD_LETTER_ROUTING_KEY_ARG: &str = "x-dead-letter-routing-key";

impl VHost {
    /// Refuses or dead-letters `broken`, published to `ex`, as its contract says.
    pub(crate) fn contract_broken(&self, ex: &Arc<Exchange>, broken: Broken, on_durable: Option<OnDurable>) -> Routed {
        let Broken { message, refusal, action } = broken;
        let now_ms = self.timers.now_ms();
        let refusal = Arc::new(refusal);
        let refuse = |refusal: Arc<ContractRefusal>| {
            self.tracker.broke_contract(message.track, now_ms, ex.name(), &refusal, None);
            Routed { rejected: true, refusal: Some(refusal), ..Routed::default() }
        };
        let Some(to) = action.dead_letter_to() else { return refuse(refusal) };
        let argument = |name: &str| ex.def.arguments.get(name).and_then(FieldValue::as_str);
        let dlx_name = to.exchange.as_deref().or_else(|| argument(DEAD_LETTER_EXCHANGE_ARG));
        let routing_key = to.routing_key.as_deref().or_else(|| argument(DEAD_LETTER_ROUTING_KEY_ARG));
        let Some(dlx) = dlx_name.and_then(|name| self.exchange(name)) else {
            tracing::debug!(exchange = ex.name(), dlx = ?dlx_name, contract = %refusal.contract,
                "a contract's dead-letter exchange is missing; the message is refused instead");
            return refuse(refusal);
        };
        let Some((letter, keys)) = letter_of(&message, &refusal, dlx.name(), routing_key, now_ms) else {
            return refuse(refusal);
        };
        let targets = route::queues_for(self, &dlx, &keys, &letter);
        if targets.is_empty() {
            tracing::debug!(exchange = ex.name(), dlx = dlx.name(), contract = %refusal.contract,
                "a contract's dead letter routes to no queue; the message is refused instead");
            return refuse(refusal);
        }
        let names = targets.iter().map(|q| q.name.to_string()).collect();
        let routed = self.deliver(targets, Arc::new(letter), on_durable);
        if !routed.rejected && routed.confirm != super::Confirm::Refused {
            self.tracker.broke_contract(message.track, now_ms, ex.name(), &refusal, Some((dlx.name(), names)));
        } else {
            self.tracker.broke_contract(message.track, now_ms, ex.name(), &refusal, None);
        }
        Routed { refusal: Some(refusal), ..routed }
    }
}

/// The dead letter of `message` (untracked: the original's record ends with it) and the keys
/// to route it with; `None` if its properties cannot be decoded.
fn letter_of(
    message: &Message,
    refusal: &ContractRefusal,
    dlx: &str,
    routing_key: Option<&str>,
    now_ms: u64,
) -> Option<(Message, Vec<ShortStr>)> {
    let mut props = message.decode_properties()?;
    let headers = props.headers.get_or_insert_with(FieldTable::new);
    let text = |s: &str| FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()));
    headers.insert(ShortStr::from_static(CONTRACT_HEADER), text(&format!("{}/{}", refusal.contract, refusal.version)));
    let violations = refusal
        .violations
        .iter()
        .map(|v| {
            let mut one = FieldTable::new();
            one.insert("pointer", text(&v.pointer));
            one.insert("message", text(&v.message));
            FieldValue::Table(one)
        })
        .collect();
    headers.insert(ShortStr::from_static(VIOLATIONS_HEADER), FieldValue::Array(violations));
    let marked = message.with_properties(&props);
    let death = Death { queue: "", reason: Reason::Contract, now_ms };
    let (letter, keys) = dead_letter::dead_letter(&marked, &death, dlx, routing_key)?;
    Some((letter.tracked(0), keys))
}

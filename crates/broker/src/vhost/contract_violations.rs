//! Messages that die at their exchange, before routing. One that broke a contract is refused
//! (the publisher gets a nack, a mandatory one its message back, HTTP a 422), or dead-lettered
//! through the contract's dead-letter exchange (else the published-to exchange's
//! `x-dead-letter-exchange` argument) with reason `contract`, an `x-death` entry naming no
//! queue, and the contract and violations in headers; transforms that fail dead-letter the same
//! way (reason `transform_failed`). A dead letter that has nowhere to go is refused instead: a
//! message is never dropped silently. Its confirm follows the dead letter's (acked once the
//! dead-letter queues have it on disk).

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
        let headers = contract_headers(&refusal);
        let target = (to.exchange.as_deref(), to.routing_key.as_deref());
        match self.dead_letter_unrouted(ex, &message, Reason::Contract, headers, target, on_durable) {
            Ok((routed, dlx, names)) => {
                let seen =
                    (!routed.rejected && routed.confirm != super::Confirm::Refused).then_some((dlx.as_str(), names));
                self.tracker.broke_contract(message.track, now_ms, ex.name(), &refusal, seen);
                Routed { refusal: Some(refusal), ..routed }
            }
            Err(_) => {
                tracing::debug!(exchange = ex.name(), contract = %refusal.contract,
                    "a contract's dead letter has nowhere to go; the message is refused instead");
                refuse(refusal)
            }
        }
    }

    /// Dead-letters `message`, which died at `ex` before routing for `reason`, with `headers`
    /// added: through `target`'s exchange (else `ex`'s `x-dead-letter-exchange` argument) and
    /// routing key (else `ex`'s `x-dead-letter-routing-key`, else its own keys). The routing,
    /// the dead-letter exchange and the queues it reached; or, if it has nowhere to go, the
    /// confirm back, unused.
    pub(crate) fn dead_letter_unrouted(
        &self,
        ex: &Arc<Exchange>,
        message: &Message,
        reason: Reason,
        headers: Vec<(ShortStr, FieldValue)>,
        target: (Option<&str>, Option<&str>),
        on_durable: Option<OnDurable>,
    ) -> Result<(Routed, String, Vec<String>), Option<OnDurable>> {
        let argument = |name: &str| ex.def.arguments.get(name).and_then(FieldValue::as_str);
        let dlx_name = target.0.or_else(|| argument(DEAD_LETTER_EXCHANGE_ARG));
        let routing_key = target.1.or_else(|| argument(DEAD_LETTER_ROUTING_KEY_ARG));
        let Some(dlx) = dlx_name.and_then(|name| self.exchange(name)) else { return Err(on_durable) };
        let now_ms = self.timers.now_ms();
        let Some((letter, keys)) = letter_of(message, headers, reason, dlx.name(), routing_key, now_ms) else {
            return Err(on_durable);
        };
        let targets = route::queues_for(self, &dlx, &keys, &letter);
        if targets.is_empty() {
            return Err(on_durable);
        }
        let names = targets.iter().map(|q| q.name.to_string()).collect();
        let routed = self.deliver(targets, Arc::new(letter), on_durable);
        Ok((routed, dlx.name().to_owned(), names))
    }
}

fn text(s: &str) -> FieldValue {
    FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()))
}

/// The headers of a contract's dead letter: the contract it broke and where.
fn contract_headers(refusal: &ContractRefusal) -> Vec<(ShortStr, FieldValue)> {
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
    vec![
        (ShortStr::from_static(CONTRACT_HEADER), text(&format!("{}/{}", refusal.contract, refusal.version))),
        (ShortStr::from_static(VIOLATIONS_HEADER), FieldValue::Array(violations)),
    ]
}

/// The dead letter of `message` with `headers` added (untracked: the original's record ends
/// with it) and the keys to route it with; `None` if its properties cannot be decoded.
fn letter_of(
    message: &Message,
    headers: Vec<(ShortStr, FieldValue)>,
    reason: Reason,
    dlx: &str,
    routing_key: Option<&str>,
    now_ms: u64,
) -> Option<(Message, Vec<ShortStr>)> {
    let mut props = message.decode_properties()?;
    let table = props.headers.get_or_insert_with(FieldTable::new);
    for (name, value) in headers {
        table.insert(name, value);
    }
    let marked = message.with_properties(&props);
    let death = Death { queue: "", reason, now_ms };
    let (letter, keys) = dead_letter::dead_letter(&marked, &death, dlx, routing_key)?;
    Some((letter.tracked(0), keys))
}

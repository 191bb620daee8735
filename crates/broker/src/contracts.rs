//! Contracts in the publish pipeline: the broker's set of contracts (replaced whole on a change,
//! read without locks, shared by every vhost), and the check every publish goes through before
//! routing, whatever its transport. A message a contract covers must pass its latest version;
//! one that passes records the version in its `x-contract` header, one that does not is refused
//! or dead-lettered (`contract_dead_letters.rs`) with the violations.

use crate::durable::contract_defs as keys;
use crate::Broker;
use amqp_codec::{FieldValue, ShortStr};
use arc_swap::ArcSwap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use warren_core::contract::{Contract, OnViolation, Violation};
use warren_core::{AmqpError, Message};

/// The header a checked message carries: `name/version` of the contract it passed (or, on a
/// dead letter, the one it broke).
pub const CONTRACT_HEADER: &str = "x-contract";
/// The header of a contract's dead letter listing its violations (`pointer`, `message`).
pub const VIOLATIONS_HEADER: &str = "x-contract-violations";
/// Most contracts a broker keeps.
pub const MAX_CONTRACTS: usize = 1_000;

/// Every contract of a broker.
#[derive(Debug, Clone, Default)]
pub struct Contracts(Vec<Arc<Contract>>);

impl Contracts {
    pub fn all(&self) -> &[Arc<Contract>] {
        &self.0
    }

    pub fn get(&self, vhost: &str, name: &str) -> Option<&Arc<Contract>> {
        self.0.iter().find(|c| c.vhost == vhost && c.name == name)
    }

    /// These contracts with `contract` added or replacing the one of its name.
    fn with(&self, contract: Contract) -> Contracts {
        let mut all: Vec<_> =
            self.0.iter().filter(|c| !(c.vhost == contract.vhost && c.name == contract.name)).cloned().collect();
        all.push(Arc::new(contract));
        Contracts(all)
    }

    fn without(&self, vhost: &str, name: &str) -> Contracts {
        Contracts(self.0.iter().filter(|c| !(c.vhost == vhost && c.name == name)).cloned().collect())
    }
}

/// The contracts as the publish path reads them: the set, and whether it is empty (so that a
/// broker without contracts pays one relaxed load per publish).
#[derive(Default)]
pub struct ContractBook {
    set: ArcSwap<Contracts>,
    any: AtomicBool,
}

impl ContractBook {
    fn replace(&self, contracts: Contracts) {
        self.any.store(!contracts.0.is_empty(), Ordering::Relaxed);
        self.set.store(Arc::new(contracts));
    }

    /// The publish pipeline's contract step for `message` published to `exchange` of
    /// `vhost`: the message as it goes on (with its `x-contract` header if a contract covered
    /// it), or how it broke which contract.
    pub(crate) fn check(
        &self,
        vhost: &str,
        exchange: &str,
        message: Arc<Message>,
    ) -> Result<Arc<Message>, Box<Broken>> {
        if !self.any.load(Ordering::Relaxed) {
            return Ok(message);
        }
        let contracts = self.set.load();
        let mut covering = contracts.0.iter().filter(|c| c.vhost == vhost && c.scope().exchange == exchange);
        let Some(first) = covering.next() else { return Ok(message) };
        let props = message.decode_properties().unwrap_or_default();
        let message_type = props.kind.as_ref().map(|t| t.as_str());
        let content_type = props.content_type.as_ref().map(|t| t.as_str());
        let contract = std::iter::once(first).chain(covering).find(|c| c.covers(&message.routing_key, message_type));
        let Some(contract) = contract else { return Ok(message) };
        match contract.check(content_type, &message.body) {
            Ok(version) => {
                let mut props = props;
                props.headers.get_or_insert_with(Default::default).insert(
                    ShortStr::from_static(CONTRACT_HEADER),
                    FieldValue::LongStr(format!("{}/{version}", contract.name).into_bytes().into()),
                );
                Ok(Arc::new(message.with_properties(&props)))
            }
            Err(violations) => {
                let refusal =
                    ContractRefusal { contract: contract.name.clone(), version: contract.latest().number, violations };
                Err(Box::new(Broken { message, refusal, action: contract.on_violation.clone() }))
            }
        }
    }
}

/// A message that broke a contract, and what the contract does with it.
pub(crate) struct Broken {
    pub message: Arc<Message>,
    pub refusal: ContractRefusal,
    pub action: OnViolation,
}

/// Why a publish was refused by a contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractRefusal {
    pub contract: String,
    pub version: u32,
    pub violations: Vec<Violation>,
}

impl ContractRefusal {
    /// One line for a `basic.return`'s reply text (a short string: bounded).
    pub fn reply_text(&self) -> String {
        let first = self
            .violations
            .first()
            .map(|v| format!("{}: {}", if v.pointer.is_empty() { "/" } else { &v.pointer }, v.message));
        let text = format!(
            "CONTRACT_VIOLATION - contract '{}' v{}: {}",
            self.contract,
            self.version,
            first.unwrap_or_default()
        );
        // A short string: 255 bytes, the 3-byte ellipsis included.
        warren_core::text::cut(&text, 252)
    }
}

impl Broker {
    /// At start: the stored contracts.
    pub(crate) fn restore_contracts(&self, stored: Vec<Contract>) {
        self.inner.contracts.replace(Contracts(stored.into_iter().map(Arc::new).collect()));
    }

    /// Every contract, as they are now.
    pub fn contracts(&self) -> Arc<Contracts> {
        self.inner.contracts.set.load_full()
    }

    /// Adds or replaces a contract, durably; true if it is new.
    pub fn put_contract(&self, contract: Contract) -> Result<bool, AmqpError> {
        if self.vhost(&contract.vhost).is_none() {
            return Err(AmqpError::not_found(format!("no vhost '{}'", contract.vhost)));
        }
        let _changing = self.inner.policy_changes.lock();
        let current = self.contracts();
        let created = current.get(&contract.vhost, &contract.name).is_none();
        if created && current.all().len() >= MAX_CONTRACTS {
            return Err(AmqpError::not_allowed(format!("the broker holds {MAX_CONTRACTS} contracts, its limit")));
        }
        let change = (keys::contract_key(&contract.vhost, &contract.name), Some(keys::contract_value(&contract)));
        self.submit_defs(vec![change]);
        self.inner.contracts.replace(current.with(contract));
        Ok(created)
    }

    /// A deleted vhost's contracts go with it.
    pub(crate) fn drop_vhost_contracts(&self, vhost: &str) -> Vec<crate::durable::defs::Change> {
        let _changing = self.inner.policy_changes.lock();
        let current = self.contracts();
        let changes =
            current.0.iter().filter(|c| c.vhost == vhost).map(|c| (keys::contract_key(vhost, &c.name), None)).collect();
        self.inner.contracts.replace(Contracts(current.0.iter().filter(|c| c.vhost != vhost).cloned().collect()));
        changes
    }

    /// Deletes a contract; false if there was none.
    pub fn delete_contract(&self, vhost: &str, name: &str) -> bool {
        let _changing = self.inner.policy_changes.lock();
        let current = self.contracts();
        if current.get(vhost, name).is_none() {
            return false;
        }
        self.submit_defs(vec![(keys::contract_key(vhost, name), None)]);
        self.inner.contracts.replace(current.without(vhost, name));
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_text_fits_a_short_string_whatever_the_violation() {
        let long = "é".repeat(400);
        let refusal = ContractRefusal {
            contract: "order".into(),
            version: 3,
            violations: vec![Violation { pointer: "/id".into(), message: long }],
        };
        let text = refusal.reply_text();
        assert!(text.len() <= 255 && text.ends_with('…'), "{} bytes", text.len());
        assert!(ShortStr::try_from_string(text.clone()).is_ok());
        assert!(text.starts_with("CONTRACT_VIOLATION - contract 'order' v3: /id: é"));
    }
}

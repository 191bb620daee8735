//! Contracts in the publish pipeline: the broker's set of contracts (replaced whole on a change,
//! read without locks), and the check every publish goes through before routing, whatever its
//! transport. A message a contract covers must pass its latest version; one that passes records
//! the version in its `x-contract` header, one that does not is refused with the violations.

use crate::durable::contract_defs as keys;
use crate::Broker;
use amqp_codec::{FieldValue, ShortStr};
use std::sync::Arc;
use warren_core::contract::{Contract, OnViolation, Violation};
use warren_core::{AmqpError, Message};

/// The header a checked message carries: `name/version` of the contract it passed.
pub const CONTRACT_HEADER: &str = "x-contract";
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
        let mut text = format!(
            "CONTRACT_VIOLATION - contract '{}' v{}: {}",
            self.contract,
            self.version,
            first.unwrap_or_default()
        );
        if text.len() > 255 {
            let mut cut = 254;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
            text.push('…');
        }
        text
    }
}

impl Broker {
    /// At start: the stored contracts.
    pub(crate) fn restore_contracts(&self, stored: Vec<Contract>) {
        self.inner.has_contracts.store(!stored.is_empty(), std::sync::atomic::Ordering::Relaxed);
        self.inner.contracts.store(Arc::new(Contracts(stored.into_iter().map(Arc::new).collect())));
    }

    /// Every contract, as they are now.
    pub fn contracts(&self) -> Arc<Contracts> {
        self.inner.contracts.load_full()
    }

    /// Adds or replaces a contract, durably; true if it is new. (The management API comes with
    /// the next step of issue 17.)
    pub fn put_contract(&self, contract: Contract) -> Result<bool, AmqpError> {
        if self.vhost(&contract.vhost).is_none() {
            return Err(AmqpError::not_found(format!("no vhost '{}'", contract.vhost)));
        }
        if contract.on_violation == OnViolation::DeadLetter {
            return Err(AmqpError::not_implemented("the dead-letter action of contracts is not built yet; use reject"));
        }
        let _changing = self.inner.policy_changes.lock();
        let current = self.contracts();
        let created = current.get(&contract.vhost, &contract.name).is_none();
        if created && current.all().len() >= MAX_CONTRACTS {
            return Err(AmqpError::not_allowed(format!("the broker holds {MAX_CONTRACTS} contracts, its limit")));
        }
        let change = (keys::contract_key(&contract.vhost, &contract.name), Some(keys::contract_value(&contract)));
        self.submit_defs(vec![change]);
        self.inner.contracts.store(Arc::new(current.with(contract)));
        self.inner.has_contracts.store(true, std::sync::atomic::Ordering::Relaxed);
        Ok(created)
    }

    /// A deleted vhost's contracts go with it.
    pub(crate) fn drop_vhost_contracts(&self, vhost: &str) -> Vec<crate::durable::defs::Change> {
        let _changing = self.inner.policy_changes.lock();
        let current = self.contracts();
        let changes =
            current.0.iter().filter(|c| c.vhost == vhost).map(|c| (keys::contract_key(vhost, &c.name), None)).collect();
        let remaining = Contracts(current.0.iter().filter(|c| c.vhost != vhost).cloned().collect());
        self.inner.has_contracts.store(!remaining.0.is_empty(), std::sync::atomic::Ordering::Relaxed);
        self.inner.contracts.store(Arc::new(remaining));
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
        let remaining = current.without(vhost, name);
        self.inner.has_contracts.store(!remaining.0.is_empty(), std::sync::atomic::Ordering::Relaxed);
        self.inner.contracts.store(Arc::new(remaining));
        true
    }

    /// The publish pipeline's contract step: `message` as it goes on (with its `x-contract`
    /// header if a contract covered it), or why it is refused.
    pub(crate) fn check_contracts(
        &self,
        vhost: &str,
        exchange: &str,
        message: Arc<Message>,
    ) -> Result<Arc<Message>, ContractRefusal> {
        // The publish path of a broker without contracts pays one relaxed load.
        if !self.inner.has_contracts.load(std::sync::atomic::Ordering::Relaxed) {
            return Ok(message);
        }
        let contracts = self.inner.contracts.load();
        let mut covering = contracts.0.iter().filter(|c| c.vhost == vhost && c.scope.exchange == exchange);
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
                Err(ContractRefusal { contract: contract.name.clone(), version: contract.latest().number, violations })
            }
        }
    }
}

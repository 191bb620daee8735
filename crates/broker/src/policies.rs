//! Policies and operator policies changed at run time (the management API): checked, stored
//! through the definitions log, and applied at once to the matching queues and exchanges of
//! their vhost. The configuration's policies seed the first start; then the stored ones are
//! the truth.

use crate::durable::access_defs::LoadedAccess;
use crate::durable::policy_defs as keys;
use crate::Broker;
use std::sync::Arc;
use warren_core::policy::{Policies, Policy, MAX_POLICIES};
use warren_core::AmqpError;

impl Broker {
    /// Every policy and operator policy, as they are now.
    pub fn policies(&self) -> Arc<Policies> {
        self.inner.shared.policies.load_full()
    }

    /// Adds or replaces a policy (or operator policy) and applies it; true if it is new.
    pub fn put_policy(&self, policy: Policy) -> Result<bool, AmqpError> {
        let vhost = self.vhost(&policy.vhost).ok_or_else(|| AmqpError::not_found("vhost_not_found"))?;
        if policy.name.is_empty() || policy.name.len() > 255 {
            return Err(AmqpError::precondition_failed("a policy name is 1 to 255 bytes"));
        }
        if !policy.not_applied.is_empty() {
            tracing::warn!(
                policy = %policy.name, vhost = %policy.vhost, keys = ?policy.not_applied,
                "policy keys Warren has no counterpart for are kept but have no effect"
            );
        }
        let _changing = self.inner.policy_changes.lock();
        let current = self.policies();
        let created = current.get(&policy.vhost, &policy.name, policy.operator).is_none();
        if created && current.all().len() >= MAX_POLICIES {
            return Err(AmqpError::not_allowed(format!("the broker holds {MAX_POLICIES} policies, its limit")));
        }
        let change =
            (keys::policy_key(&policy.vhost, &policy.name, policy.operator), Some(keys::policy_value(&policy)));
        self.submit_defs(vec![change]);
        self.inner.shared.policies.store(Arc::new(current.with(policy)));
        vhost.apply_policies();
        Ok(created)
    }

    /// Deletes a policy (or operator policy) and applies what remains; false if there was none.
    pub fn delete_policy(&self, vhost: &str, name: &str, operator: bool) -> bool {
        let _changing = self.inner.policy_changes.lock();
        let current = self.policies();
        if current.get(vhost, name, operator).is_none() {
            return false;
        }
        self.submit_defs(vec![(keys::policy_key(vhost, name, operator), None)]);
        self.inner.shared.policies.store(Arc::new(current.without(vhost, name, operator)));
        if let Some(v) = self.vhost(vhost) {
            v.apply_policies();
        }
        true
    }

    /// A deleted vhost's policies go with it.
    pub(crate) fn drop_vhost_policies(&self, vhost: &str) -> Vec<crate::durable::defs::Change> {
        let _changing = self.inner.policy_changes.lock();
        let current = self.policies();
        let changes = current
            .all()
            .iter()
            .filter(|p| p.vhost == vhost)
            .map(|p| (keys::policy_key(&p.vhost, &p.name, p.operator), None))
            .collect();
        self.inner.shared.policies.store(Arc::new(current.without_vhost(vhost)));
        changes
    }

    /// At start, before exchanges and queues are restored: the stored policies replace the
    /// configured ones, or (the first time) the configured ones are stored.
    pub(crate) fn restore_policies(&self, loaded: &mut LoadedAccess) {
        if !loaded.policies_seeded {
            let mut changes: Vec<_> = self
                .policies()
                .all()
                .iter()
                .map(|p| (keys::policy_key(&p.vhost, &p.name, p.operator), Some(keys::policy_value(p))))
                .collect();
            changes.push((keys::seeded_key(), Some(crate::durable::access_defs::marker_value())));
            self.submit_defs(changes);
            return;
        }
        let stored = std::mem::take(&mut loaded.policies);
        self.inner.shared.policies.store(Arc::new(Policies::new(stored)));
    }
}

//! Vhosts, users, permissions and their limits changed at run time (the management API): in memory at once,
//! and through the store's definitions log, so they survive restarts. At the first start of a
//! data directory the configuration's users, vhosts and permissions are written there; from
//! then on the stored ones are the truth.

use crate::auth::User;
use crate::durable::access_defs::{self as keys, LoadedAccess, StoredPermission, StoredUser};
use crate::durable::defs::Change;
use crate::permissions::Permission;
use crate::resource_limits::{LimitSet, USER_LIMITS, VHOST_LIMITS};
use crate::{Broker, VHost};
use std::sync::Arc;
use warren_core::AmqpError;

/// Most vhosts and users the broker keeps.
pub const MAX_VHOSTS: usize = 1_000;
pub const MAX_USERS: usize = 10_000;
/// Longest vhost or user name (an AMQP short string).
const MAX_NAME_LEN: usize = 255;

fn check_name(what: &str, name: &str) -> Result<(), AmqpError> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(AmqpError::precondition_failed(format!("a {what} name is 1 to {MAX_NAME_LEN} bytes")));
    }
    Ok(())
}

/// A point in the definitions log: once it is durable, every definition change made before it
/// survives a crash. Transports take one after a change and answer once it is durable
/// ([`Broker::wait_defs`]): AMQP's declare-ok and friends, the management API's 201/204.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord)]
pub struct DefsMark(u64);

impl Broker {
    /// The mark of the definition changes made so far.
    pub fn defs_mark(&self) -> DefsMark {
        DefsMark(self.durability().map_or(0, |d| d.defs.submitted()))
    }

    /// Whether the changes up to `mark` are on disk (always, without a data directory).
    pub fn defs_durable(&self, mark: DefsMark) -> bool {
        self.durability().is_none_or(|d| d.defs.is_durable(mark.0))
    }

    /// Waits until the changes up to `mark` are on disk; the reason if they cannot be written.
    pub async fn wait_defs(&self, mark: DefsMark) -> Result<(), String> {
        match self.durability() {
            Some(d) => d.defs.wait_durable(mark.0).await,
            None => Ok(()),
        }
    }

    /// Writes `changes` to the definitions log (nothing without durability); returns their
    /// sequence number, which `Durability::defs.wait_durable` waits for.
    pub(crate) fn submit_defs(&self, changes: Vec<Change>) -> u64 {
        self.durability().map(|d| d.defs.submit(changes)).unwrap_or(0)
    }

    /// Creates a vhost; false if it existed.
    pub fn add_vhost(&self, name: &str) -> Result<bool, AmqpError> {
        check_name("vhost", name)?;
        let mut vhosts = self.inner.vhosts.write();
        if vhosts.contains_key(name) {
            return Ok(false);
        }
        if vhosts.len() >= MAX_VHOSTS {
            return Err(AmqpError::not_allowed(format!("the broker holds {MAX_VHOSTS} vhosts, its limit")));
        }
        let vhost = VHost::new(name, self.durability().cloned(), self.inner.shared.clone());
        vhosts.insert(name.to_owned(), Arc::new(vhost));
        let limits = self.resource_limits().vhost(name);
        self.submit_defs(vec![(keys::vhost_key(name), Some(keys::vhost_value(&limits)))]);
        Ok(true)
    }

    /// Deletes a vhost with everything in it: its connections are closed, its queues (and their
    /// messages), exchanges and permissions go. False if there was none.
    pub fn delete_vhost(&self, name: &str) -> bool {
        let Some(vhost) = self.inner.vhosts.write().remove(name) else { return false };
        self.resource_limits().put_vhost(name, Default::default());
        let mut changes = vec![(keys::vhost_key(name), None)];
        for (v, user, _) in self.permissions().all().into_iter().filter(|(v, _, _)| v == name) {
            changes.push((keys::permission_key(&v, &user), None));
        }
        self.permissions().remove_where(|v, _| v == name);
        changes.extend(self.drop_vhost_policies(name));
        changes.extend(self.drop_vhost_contracts(name));
        changes.extend(self.drop_vhost_transforms(name));
        changes.extend(self.drop_vhost_aggregators(name));
        self.submit_defs(changes);
        for c in self.registry().connections().into_iter().filter(|c| c.meta.vhost == name) {
            c.request_close(format!("vhost '{name}' is deleted"));
        }
        vhost.mark_deleted();
        vhost.remove_all();
        true
    }

    /// Adds or replaces a user; false if it replaced one.
    pub fn put_user(&self, user: User) -> Result<bool, AmqpError> {
        check_name("user", &user.name)?;
        let existed = self.users().get(&user.name).is_some();
        if !existed && self.users().all().len() >= MAX_USERS {
            return Err(AmqpError::not_allowed(format!("the broker holds {MAX_USERS} users, its limit")));
        }
        let stored = stored_user(&user, self.resource_limits().user(&user.name));
        self.users().put(user);
        self.submit_defs(vec![(keys::user_key(&stored.name), Some(keys::user_value(&stored)))]);
        Ok(!existed)
    }

    /// Deletes a user with its permissions, and closes its connections. False if there was none.
    pub fn delete_user(&self, name: &str) -> bool {
        if !self.users().remove(name) {
            return false;
        }
        self.resource_limits().put_user(name, Default::default());
        let mut changes = vec![(keys::user_key(name), None)];
        for (v, user, _) in self.permissions().all().into_iter().filter(|(_, u, _)| u == name) {
            changes.push((keys::permission_key(&v, &user), None));
        }
        self.permissions().remove_where(|_, u| u == name);
        self.submit_defs(changes);
        for c in self.registry().connections().into_iter().filter(|c| c.meta.user == name) {
            c.request_close(format!("user '{name}' is deleted"));
        }
        true
    }

    /// Sets a user's permissions in a vhost (both must exist); false if it replaced some.
    pub fn set_permission(&self, vhost: &str, user: &str, permission: Permission) -> Result<bool, AmqpError> {
        if self.vhost(vhost).is_none() {
            return Err(AmqpError::not_found(format!("no vhost '{vhost}'")));
        }
        if self.users().get(user).is_none() {
            return Err(AmqpError::not_found(format!("no user '{user}'")));
        }
        let existed = self.permissions().get(vhost, user).is_some();
        let stored = StoredPermission {
            vhost: vhost.to_owned(),
            user: user.to_owned(),
            configure: permission.configure.clone(),
            write: permission.write.clone(),
            read: permission.read.clone(),
        };
        self.permissions().set(vhost, user, permission);
        self.submit_defs(vec![(keys::permission_key(vhost, user), Some(keys::permission_value(&stored)))]);
        Ok(!existed)
    }

    /// Removes a user's permissions in a vhost; false if there were none.
    pub fn clear_permission(&self, vhost: &str, user: &str) -> bool {
        if !self.permissions().remove(vhost, user) {
            return false;
        }
        self.submit_defs(vec![(keys::permission_key(vhost, user), None)]);
        true
    }

    /// Sets one of a vhost's limits (`max-connections`, `max-queues`); -1 means none. Open
    /// connections and queues beyond a lowered limit stay; new ones are refused.
    pub fn set_vhost_limit(&self, vhost: &str, name: &str, value: i64) -> Result<(), AmqpError> {
        if self.vhost(vhost).is_none() {
            return Err(AmqpError::not_found(format!("no vhost '{vhost}'")));
        }
        let mut limits = self.resource_limits().vhost(vhost);
        limits.set(&VHOST_LIMITS, name, value).map_err(AmqpError::precondition_failed)?;
        self.put_vhost_limits(vhost, limits);
        Ok(())
    }

    /// Removes one of a vhost's limits; false if it was not set.
    pub fn clear_vhost_limit(&self, vhost: &str, name: &str) -> bool {
        let mut limits = self.resource_limits().vhost(vhost);
        let cleared = self.vhost(vhost).is_some() && limits.clear(name);
        if cleared {
            self.put_vhost_limits(vhost, limits);
        }
        cleared
    }

    fn put_vhost_limits(&self, vhost: &str, limits: LimitSet) {
        let value = keys::vhost_value(&limits);
        self.resource_limits().put_vhost(vhost, limits);
        self.submit_defs(vec![(keys::vhost_key(vhost), Some(value))]);
    }

    /// Sets one of a user's limits (`max-connections`, `max-channels`); -1 means none.
    pub fn set_user_limit(&self, user: &str, name: &str, value: i64) -> Result<(), AmqpError> {
        let Some(u) = self.users().get(user) else { return Err(AmqpError::not_found(format!("no user '{user}'"))) };
        let mut limits = self.resource_limits().user(user);
        limits.set(&USER_LIMITS, name, value).map_err(AmqpError::precondition_failed)?;
        self.put_user_limits(&u, limits);
        Ok(())
    }

    /// Removes one of a user's limits; false if it was not set.
    pub fn clear_user_limit(&self, user: &str, name: &str) -> bool {
        let Some(u) = self.users().get(user) else { return false };
        let mut limits = self.resource_limits().user(user);
        let cleared = limits.clear(name);
        if cleared {
            self.put_user_limits(&u, limits);
        }
        cleared
    }

    fn put_user_limits(&self, user: &User, limits: LimitSet) {
        let value = keys::user_value(&stored_user(user, limits.clone()));
        self.resource_limits().put_user(&user.name, limits);
        self.submit_defs(vec![(keys::user_key(&user.name), Some(value))]);
    }

    /// At start: the stored vhosts, users and permissions replace the configured ones, or (at
    /// the first start of the data directory) the configured ones are stored.
    pub(crate) fn restore_access(&self, mut loaded: LoadedAccess) {
        self.restore_policies(&mut loaded);
        self.restore_contracts(std::mem::take(&mut loaded.contracts));
        self.restore_transforms(std::mem::take(&mut loaded.transforms));
        self.restore_aggregators(std::mem::take(&mut loaded.aggregators));
        if !loaded.seeded {
            let mut changes: Vec<Change> = Vec::new();
            for v in self.vhosts() {
                changes.push((keys::vhost_key(&v.name), Some(keys::vhost_value(&Default::default()))));
            }
            for u in self.users().all() {
                let stored = stored_user(&u, Default::default());
                changes.push((keys::user_key(&u.name), Some(keys::user_value(&stored))));
            }
            for (vhost, user, p) in self.permissions().all() {
                let stored = StoredPermission {
                    vhost: vhost.clone(),
                    user: user.clone(),
                    configure: p.configure.clone(),
                    write: p.write.clone(),
                    read: p.read.clone(),
                };
                changes.push((keys::permission_key(&vhost, &user), Some(keys::permission_value(&stored))));
            }
            changes.push((keys::seeded_key(), Some(keys::marker_value())));
            self.submit_defs(changes);
            return;
        }
        for v in self.vhosts() {
            if !loaded.vhosts.contains(&v.name) {
                self.inner.vhosts.write().remove(&v.name);
            }
        }
        for name in &loaded.vhosts {
            let mut vhosts = self.inner.vhosts.write();
            if !vhosts.contains_key(name) {
                let vhost = VHost::new(name, self.durability().cloned(), self.inner.shared.clone());
                vhosts.insert(name.clone(), Arc::new(vhost));
            }
        }
        for u in self.users().all() {
            self.users().remove(&u.name);
        }
        for (vhost, limits) in loaded.vhost_limits {
            self.resource_limits().put_vhost(&vhost, limits);
        }
        for u in loaded.users {
            self.resource_limits().put_user(&u.name, u.limits);
            match User::with_hash(&u.name, &u.password_hash, u.tags, u.loopback_only) {
                Ok(user) => self.users().put(user),
                Err(e) => tracing::warn!(user = %u.name, error = %e, "stored user skipped"),
            }
        }
        self.permissions().remove_where(|_, _| true);
        for p in loaded.permissions {
            match Permission::new(&p.configure, &p.write, &p.read) {
                Ok(permission) => self.permissions().set(&p.vhost, &p.user, permission),
                Err(e) => tracing::warn!(vhost = %p.vhost, user = %p.user, error = %e, "stored permission skipped"),
            }
        }
    }
}

fn stored_user(u: &User, limits: LimitSet) -> StoredUser {
    StoredUser {
        name: u.name.clone(),
        password_hash: u.password_hash(),
        tags: u.tags.clone(),
        loopback_only: u.loopback_only,
        limits,
    }
}

#[cfg(test)]
mod tests {
    use crate::{Broker, BrokerConfig, QueueDeclare};
    use warren_core::{ExchangeDef, ExchangeKind};

    #[test]
    fn nothing_is_declared_in_a_vhost_once_it_is_deleted() {
        let broker = Broker::new(BrokerConfig::default());
        assert!(broker.add_vhost("doomed").unwrap());
        let handle = broker.vhost("doomed").unwrap();
        assert!(broker.delete_vhost("doomed"));
        let req = QueueDeclare {
            name: "late".into(),
            server_named: false,
            passive: false,
            durable: false,
            exclusive: false,
            auto_delete: false,
            arguments: Default::default(),
        };
        assert_eq!(handle.declare_queue(req, 1, 100).err().map(|e| e.code), Some(404));
        let def = ExchangeDef {
            name: "late".into(),
            kind: ExchangeKind::Direct,
            durable: false,
            auto_delete: false,
            internal: false,
            arguments: Default::default(),
            delayed: false,
        };
        assert_eq!(handle.declare_exchange(def, false, 100).err().map(|e| e.code), Some(404));
        assert!(handle.queue_names().is_empty());
    }
}

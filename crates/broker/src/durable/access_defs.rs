//! Durable access definitions: vhosts, users (with their password hashes) and permissions, in
//! the same definitions map as exchanges and queues (one durable home, one thing to replicate
//! later). Keys are a kind (`v`, `u`, `p`) and length-prefixed names; values are field tables
//! (a vhost's and a user's carry their limits).
//! Policies (`policy_defs`) are read back with them, as they are seeded from the config alike.

use super::defs::{key, table_bytes};
use crate::resource_limits::{LimitSet, USER_LIMITS, VHOST_LIMITS};
use amqp_codec::{FieldTable, FieldValue};
use bytes::Bytes;

/// Set once the configuration's users, vhosts and permissions were written at the first start:
/// from then on the stored ones are the truth, and the config no longer changes them.
pub fn seeded_key() -> Bytes {
    key(b'm', &[b"access-seeded"])
}

pub fn vhost_key(name: &str) -> Bytes {
    key(b'v', &[name.as_bytes()])
}

/// A vhost's value: its limits (`limits`, a table of integers), if any are set.
pub fn vhost_value(limits: &LimitSet) -> Bytes {
    let mut t = FieldTable::new();
    if !limits.is_empty() {
        t.insert("limits", limits_table(limits));
    }
    table_bytes(&t)
}

/// The value of a marker key (its presence is what it says).
pub fn marker_value() -> Bytes {
    table_bytes(&FieldTable::new())
}

fn limits_table(limits: &LimitSet) -> FieldValue {
    let mut t = FieldTable::new();
    for (name, value) in limits.iter() {
        t.insert(name, FieldValue::I64(value));
    }
    FieldValue::Table(t)
}

/// Limits as stored; a name or value no longer valid is left out with a warning.
fn limits_of(table: &FieldTable, allowed: &[&str]) -> LimitSet {
    let mut limits = LimitSet::default();
    if let Some(stored) = table.get("limits").and_then(FieldValue::as_table) {
        for (name, value) in stored.iter() {
            let set = value.as_i64().ok_or_else(|| "not an integer".to_owned());
            if let Err(e) = set.and_then(|v| limits.set(allowed, name.as_str(), v)) {
                tracing::warn!(limit = %name.as_str(), error = %e, "stored limit skipped");
            }
        }
    }
    limits
}

pub fn user_key(name: &str) -> Bytes {
    key(b'u', &[name.as_bytes()])
}

fn text(s: &str) -> FieldValue {
    FieldValue::LongStr(Bytes::copy_from_slice(s.as_bytes()))
}

pub fn user_value(u: &StoredUser) -> Bytes {
    let mut t = FieldTable::new();
    t.insert("password_hash", text(&u.password_hash));
    t.insert("tags", FieldValue::Array(u.tags.iter().map(|tag| text(tag)).collect()));
    t.insert("loopback_only", FieldValue::Bool(u.loopback_only));
    if !u.limits.is_empty() {
        t.insert("limits", limits_table(&u.limits));
    }
    table_bytes(&t)
}

pub fn permission_key(vhost: &str, user: &str) -> Bytes {
    key(b'p', &[vhost.as_bytes(), user.as_bytes()])
}

pub fn permission_value(p: &StoredPermission) -> Bytes {
    let mut t = FieldTable::new();
    t.insert("configure", text(&p.configure));
    t.insert("write", text(&p.write));
    t.insert("read", text(&p.read));
    table_bytes(&t)
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredUser {
    pub name: String,
    /// RabbitMQ's `rabbit_password_hashing_sha256` form ("" for no password).
    pub password_hash: String,
    pub tags: Vec<String>,
    pub loopback_only: bool,
    pub limits: LimitSet,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredPermission {
    pub vhost: String,
    pub user: String,
    pub configure: String,
    pub write: String,
    pub read: String,
}

/// The access definitions read back at start.
#[derive(Debug, Default)]
pub struct LoadedAccess {
    pub seeded: bool,
    pub vhosts: Vec<String>,
    /// The vhosts' limits (those with any set).
    pub vhost_limits: Vec<(String, LimitSet)>,
    pub users: Vec<StoredUser>,
    pub permissions: Vec<StoredPermission>,
    /// The configuration's policies were written once.
    pub policies_seeded: bool,
    /// Policies and operator policies (those that no longer compile are reported and left out).
    pub policies: Vec<warren_core::policy::Policy>,
    /// Contracts (likewise).
    pub contracts: Vec<warren_core::contract::Contract>,
    /// Transforms.
    pub transforms: Vec<crate::transforms::Transform>,
    /// Aggregators.
    pub aggregators: Vec<crate::aggregators::AggregatorDef>,
}

fn string(table: &FieldTable, name: &str) -> Option<String> {
    table.get(name).and_then(FieldValue::as_str).map(str::to_owned)
}

/// Parses one access entry (`kind` and the key's parts); false if it is not one or is damaged.
pub fn parse(kind: u8, parts: &[&[u8]], table: &FieldTable, loaded: &mut LoadedAccess) -> bool {
    let name = |b: &[u8]| std::str::from_utf8(b).ok().map(str::to_owned);
    match (kind, parts) {
        (b'm', [marker]) if *marker == b"access-seeded" => loaded.seeded = true,
        (b'm', [marker]) if *marker == b"policies-seeded" => loaded.policies_seeded = true,
        (b'k', [vhost, name]) => match super::contract_defs::parse(vhost, name, table) {
            Some(Ok(contract)) => loaded.contracts.push(contract),
            Some(Err(e)) => tracing::warn!(error = %e, "stored contract no longer valid; not applied"),
            None => return false,
        },
        (b't', [vhost, name]) => match super::transform_defs::parse(vhost, name, table) {
            Some(transform) => loaded.transforms.push(transform),
            None => return false,
        },
        (b'g', [vhost, name]) => match super::aggregator_defs::parse(vhost, name, table) {
            Some(def) => loaded.aggregators.push(def),
            None => return false,
        },
        (b'y' | b'o', [vhost, name]) => match super::policy_defs::parse(kind, vhost, name, table) {
            Some(Ok(policy)) => loaded.policies.push(policy),
            Some(Err(e)) => tracing::warn!(error = %e, "stored policy no longer valid; not applied"),
            None => return false,
        },
        (b'v', [vhost]) => match name(vhost) {
            Some(v) => {
                let limits = limits_of(table, &VHOST_LIMITS);
                if !limits.is_empty() {
                    loaded.vhost_limits.push((v.clone(), limits));
                }
                loaded.vhosts.push(v);
            }
            None => return false,
        },
        (b'u', [user]) => {
            let (Some(user), Some(password_hash)) = (name(user), string(table, "password_hash")) else { return false };
            let tags = match table.get("tags") {
                Some(FieldValue::Array(items)) => items.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect(),
                _ => Vec::new(),
            };
            let loopback_only = table.get("loopback_only").and_then(FieldValue::as_bool).unwrap_or(false);
            let limits = limits_of(table, &USER_LIMITS);
            loaded.users.push(StoredUser { name: user, password_hash, tags, loopback_only, limits });
        }
        (b'p', [vhost, user]) => {
            let (Some(vhost), Some(user)) = (name(vhost), name(user)) else { return false };
            let (Some(configure), Some(write), Some(read)) =
                (string(table, "configure"), string(table, "write"), string(table, "read"))
            else {
                return false;
            };
            loaded.permissions.push(StoredPermission { vhost, user, configure, write, read });
        }
        _ => return false,
    }
    true
}

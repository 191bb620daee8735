//! Durable access definitions: vhosts, users (with their password hashes) and permissions, in
//! the same definitions map as exchanges and queues (one durable home, one thing to replicate
//! later). Keys are a kind (`v`, `u`, `p`) and length-prefixed names; values are field tables.
//! Policies (`policy_defs`) are read back with them, as they are seeded from the config alike.

use super::defs::{key, table_bytes};
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

pub fn vhost_value() -> Bytes {
    table_bytes(&FieldTable::new())
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
            Some(v) => loaded.vhosts.push(v),
            None => return false,
        },
        (b'u', [user]) => {
            let (Some(user), Some(password_hash)) = (name(user), string(table, "password_hash")) else { return false };
            let tags = match table.get("tags") {
                Some(FieldValue::Array(items)) => items.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect(),
                _ => Vec::new(),
            };
            let loopback_only = table.get("loopback_only").and_then(FieldValue::as_bool).unwrap_or(false);
            loaded.users.push(StoredUser { name: user, password_hash, tags, loopback_only });
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

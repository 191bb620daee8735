//! The user store: passwords kept as RabbitMQ's salted SHA-256 hashes (so definitions move
//! between the two brokers with their credentials), tags, and the checks for SASL PLAIN and
//! AMQPLAIN. Users change at run time (the management API), so the store is behind a lock;
//! it is read only when a connection or an HTTP request authenticates, never per message.

use crate::config::UserConfig;
use base64::Engine;
use parking_lot::RwLock;
use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

/// The only hashing algorithm accepted for stored passwords.
pub const HASHING_ALGORITHM: &str = "rabbit_password_hashing_sha256";
/// Salt bytes, then SHA-256 bytes.
const SALT_LEN: usize = 4;
const HASH_LEN: usize = SALT_LEN + 32;

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    /// Salt and SHA-256(salt ++ password); `None` for a user who cannot log in with a password
    /// (RabbitMQ's passwordless users).
    password_hash: Option<[u8; HASH_LEN]>,
    pub tags: Vec<String>,
    /// Accept this user only from loopback addresses (RabbitMQ's `loopback_users`).
    pub loopback_only: bool,
}

impl User {
    /// A user with `password`, hashed with a fresh salt.
    pub fn with_password(name: &str, password: &[u8], tags: Vec<String>, loopback_only: bool) -> User {
        let salt: [u8; SALT_LEN] = rand::random();
        let mut hash = [0u8; HASH_LEN];
        hash[..SALT_LEN].copy_from_slice(&salt);
        hash[SALT_LEN..].copy_from_slice(&digest(&salt, password));
        User { name: name.to_owned(), password_hash: Some(hash), tags, loopback_only }
    }

    /// A user whose password is given as a RabbitMQ hash (base64 of salt and SHA-256); an empty
    /// hash is a user without a password.
    pub fn with_hash(name: &str, hash_base64: &str, tags: Vec<String>, loopback_only: bool) -> Result<User, String> {
        let password_hash = if hash_base64.is_empty() {
            None
        } else {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(hash_base64)
                .map_err(|_| "password_hash is not base64".to_string())?;
            Some(raw.try_into().map_err(|_| format!("password_hash must be {HASH_LEN} bytes ({HASHING_ALGORITHM})"))?)
        };
        Ok(User { name: name.to_owned(), password_hash, tags, loopback_only })
    }

    /// The password in RabbitMQ's `rabbit_password_hashing_sha256` form ("" without one).
    pub fn password_hash(&self) -> String {
        self.password_hash.map(|h| base64::engine::general_purpose::STANDARD.encode(h)).unwrap_or_default()
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    fn password_matches(&self, password: &[u8]) -> bool {
        let Some(stored) = &self.password_hash else { return false };
        let salt: [u8; SALT_LEN] = stored[..SALT_LEN].try_into().expect("salt length");
        constant_time_eq(&stored[SALT_LEN..], &digest(&salt, password))
    }
}

fn digest(salt: &[u8; SALT_LEN], password: &[u8]) -> [u8; 32] {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(salt);
    hasher.update(password);
    hasher.finalize().into()
}

/// RabbitMQ's `rabbit_password_hashing_sha256`: base64 of a 4-byte salt followed by
/// SHA-256(salt ++ password).
pub fn hash_password_sha256(password: &[u8], salt: [u8; SALT_LEN]) -> String {
    let mut out = salt.to_vec();
    out.extend_from_slice(&digest(&salt, password));
    base64::engine::general_purpose::STANDARD.encode(out)
}

#[derive(Debug, Default)]
pub struct Users {
    by_name: RwLock<HashMap<String, Arc<User>>>,
    /// Failed logins by address: each makes the next refusal from there wait longer.
    pub failures: crate::login_failures::LoginFailures,
}

impl Users {
    pub fn from_config(users: &[UserConfig]) -> Users {
        let store = Users::default();
        for u in users {
            store.put(User::with_password(&u.name, u.password.as_bytes(), u.tags.clone(), u.loopback_only));
        }
        store
    }

    /// Every user, by name.
    pub fn all(&self) -> Vec<Arc<User>> {
        let mut all: Vec<Arc<User>> = self.by_name.read().values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub fn get(&self, name: &str) -> Option<Arc<User>> {
        self.by_name.read().get(name).cloned()
    }

    /// Adds or replaces a user.
    pub fn put(&self, user: User) {
        self.by_name.write().insert(user.name.clone(), Arc::new(user));
    }

    pub fn remove(&self, name: &str) -> bool {
        self.by_name.write().remove(name).is_some()
    }

    /// Check a username and password from `peer`; `None` on any failure, with no hint which
    /// part failed. Failures are counted by address (see [`Users::login_delay`]).
    pub fn authenticate(&self, name: &str, password: &[u8], peer: IpAddr) -> Option<Arc<User>> {
        let user = self
            .get(name)
            .filter(|u| u.password_matches(password))
            .filter(|u| !u.loopback_only || peer.is_loopback() || is_mapped_loopback(peer));
        match &user {
            Some(_) => self.failures.succeeded(peer),
            None => self.failures.failed(peer),
        }
        user
    }

    /// How long a refused login from `peer` should wait before it is answered.
    pub fn login_delay(&self, peer: IpAddr) -> std::time::Duration {
        self.failures.delay(peer)
    }

    /// The user a verified client certificate names (`EXTERNAL`), if it exists and may log in
    /// from `peer`; no password is checked.
    pub fn certified(&self, name: &str, peer: IpAddr) -> Option<Arc<User>> {
        let user = self.get(name)?;
        if user.loopback_only && !peer.is_loopback() && !is_mapped_loopback(peer) {
            return None;
        }
        Some(user)
    }
}

fn is_mapped_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback()),
        IpAddr::V4(_) => false,
    }
}

/// Compares secrets without telling, by the time it takes, how much of them matched.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Decode a SASL PLAIN response: `[authzid] NUL authcid NUL passwd`.
pub fn parse_plain(response: &[u8]) -> Option<(&str, &[u8])> {
    let mut parts = response.splitn(3, |b| *b == 0);
    let _authzid = parts.next()?;
    let user = std::str::from_utf8(parts.next()?).ok()?;
    let password = parts.next()?;
    Some((user, password))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A hash RabbitMQ 3.10.8 produced (`rabbitmqctl add_user hashcheck secret`, read back from its API).
    const RABBITMQ_HASH: &str = "NYder9vTBHj68Czef4UV7ICvGG9UHfhqJVLQTZ21uzU+wTFP";

    #[test]
    fn matches_rabbitmqs_sha256_hashing() {
        let raw = base64::engine::general_purpose::STANDARD.decode(RABBITMQ_HASH).unwrap();
        let salt: [u8; 4] = raw[..4].try_into().unwrap();
        assert_eq!(hash_password_sha256(b"secret", salt), RABBITMQ_HASH);
        let user = User::with_hash("hashcheck", RABBITMQ_HASH, vec![], false).unwrap();
        assert!(user.password_matches(b"secret") && !user.password_matches(b"Secret"));
        assert_eq!(user.password_hash(), RABBITMQ_HASH);
    }

    #[test]
    fn passwords_are_stored_hashed_and_checked() {
        let users = Users::default();
        users.put(User::with_password("a", b"pw", vec![], true));
        let local: IpAddr = "127.0.0.1".parse().unwrap();
        let remote: IpAddr = "10.1.2.3".parse().unwrap();
        assert!(users.authenticate("a", b"pw", local).is_some());
        assert!(users.authenticate("a", b"pw", remote).is_none(), "loopback only");
        assert!(users.authenticate("a", b"px", local).is_none());
        assert!(!users.get("a").unwrap().password_hash().contains("pw"));
        assert!(User::with_hash("b", "not base64!", vec![], false).is_err());
        let nobody = User::with_hash("c", "", vec![], false).unwrap();
        assert!(!nobody.password_matches(b""));
    }
}

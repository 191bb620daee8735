//! The user store and password checks for SASL PLAIN and AMQPLAIN.

use crate::config::UserConfig;
use std::collections::HashMap;
use std::net::IpAddr;

#[derive(Debug, Clone)]
pub struct User {
    pub name: String,
    password: String,
    vhosts: Vec<String>,
    loopback_only: bool,
    pub tags: Vec<String>,
}

impl User {
    /// The vhosts the user may open, as configured (`*` for all).
    pub fn vhost_patterns(&self) -> &[String] {
        &self.vhosts
    }

    pub fn may_open(&self, vhost: &str) -> bool {
        self.vhosts.iter().any(|v| v == "*" || v == vhost)
    }

    /// The password in RabbitMQ's `rabbit_password_hashing_sha256` form (a fresh salt each
    /// time), for definitions exports that RabbitMQ can import.
    pub fn password_hash(&self) -> String {
        hash_password_sha256(self.password.as_bytes(), rand::random())
    }

    pub fn has_tag(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }
}

#[derive(Debug, Default)]
pub struct Users {
    by_name: HashMap<String, User>,
}

impl Users {
    pub fn from_config(users: &[UserConfig]) -> Users {
        let by_name = users
            .iter()
            .map(|u| {
                let user = User {
                    name: u.name.clone(),
                    password: u.password.clone(),
                    vhosts: u.vhosts.clone(),
                    loopback_only: u.loopback_only,
                    tags: u.tags.clone(),
                };
                (u.name.clone(), user)
            })
            .collect();
        Users { by_name }
    }

    /// Every user, by name.
    pub fn all(&self) -> Vec<&User> {
        let mut all: Vec<&User> = self.by_name.values().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    pub fn get(&self, name: &str) -> Option<&User> {
        self.by_name.get(name)
    }

    /// Check a username and password from `peer`; `None` on any failure, with no hint which part failed.
    pub fn authenticate(&self, name: &str, password: &[u8], peer: IpAddr) -> Option<&User> {
        let user = self.by_name.get(name)?;
        if !constant_time_eq(user.password.as_bytes(), password) {
            return None;
        }
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

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
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
    use crate::BrokerConfig;

    #[test]
    fn guest_only_from_loopback() {
        let cfg = BrokerConfig::default().normalized();
        let users = Users::from_config(&cfg.users);
        assert!(users.authenticate("guest", b"guest", "127.0.0.1".parse().unwrap()).is_some());
        assert!(users.authenticate("guest", b"guest", "::ffff:127.0.0.1".parse().unwrap()).is_some());
        assert!(users.authenticate("guest", b"guest", "10.1.2.3".parse().unwrap()).is_none());
        assert!(users.authenticate("guest", b"wrong", "127.0.0.1".parse().unwrap()).is_none());
        assert!(users.authenticate("nobody", b"guest", "127.0.0.1".parse().unwrap()).is_none());
    }

    #[test]
    fn plain_response_parses() {
        assert_eq!(parse_plain(b"\0guest\0secret"), Some(("guest", &b"secret"[..])));
        assert_eq!(parse_plain(b"guest"), None);
    }
}

/// RabbitMQ's `rabbit_password_hashing_sha256`: base64 of a 4-byte salt followed by
/// SHA-256(salt ++ password).
pub fn hash_password_sha256(password: &[u8], salt: [u8; 4]) -> String {
    use base64::Engine;
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    hasher.update(salt);
    hasher.update(password);
    let mut out = salt.to_vec();
    out.extend_from_slice(&hasher.finalize());
    base64::engine::general_purpose::STANDARD.encode(out)
}

#[cfg(test)]
mod hash_tests {
    /// A hash RabbitMQ 3.10.8 produced (`rabbitmqctl add_user hashcheck secret`, read back from its API).
    #[test]
    fn matches_rabbitmqs_sha256_hashing() {
        use base64::Engine;
        let known = "NYder9vTBHj68Czef4UV7ICvGG9UHfhqJVLQTZ21uzU+wTFP";
        let raw = base64::engine::general_purpose::STANDARD.decode(known).unwrap();
        let salt: [u8; 4] = raw[..4].try_into().unwrap();
        assert_eq!(super::hash_password_sha256(b"secret", salt), known);
    }
}

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
}

impl User {
    pub fn may_open(&self, vhost: &str) -> bool {
        self.vhosts.iter().any(|v| v == "*" || v == vhost)
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
                };
                (u.name.clone(), user)
            })
            .collect();
        Users { by_name }
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

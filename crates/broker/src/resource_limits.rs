//! RabbitMQ's vhost limits (`max-connections`, `max-queues`) and user limits
//! (`max-connections`, `max-channels`): what is set, what is in use, and the seats a connection
//! or channel holds while it is open. A seat is taken under one lock with its check, so
//! concurrent opens never pass a limit together; it is given back when its guard drops.

use parking_lot::{Mutex, RwLock};
use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

/// Limits a vhost takes.
pub const VHOST_LIMITS: [&str; 2] = ["max-connections", "max-queues"];
/// Limits a user takes.
pub const USER_LIMITS: [&str; 2] = ["max-connections", "max-channels"];
/// The limits set on one vhost or user, by name. A negative value (RabbitMQ's `-1`) is kept
/// as set and means no limit, as in RabbitMQ; 0 allows nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LimitSet(BTreeMap<String, i64>);

impl LimitSet {
    /// The limit `name` puts on a count, if any.
    pub fn bound(&self, name: &str) -> Option<usize> {
        self.0.get(name).and_then(|v| usize::try_from(*v).ok())
    }

    pub fn iter(&self) -> impl Iterator<Item = (&str, i64)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Sets a limit, checking its name against `allowed` and its value.
    pub fn set(&mut self, allowed: &[&str], name: &str, value: i64) -> Result<(), String> {
        check(allowed, name, value)?;
        self.0.insert(name.to_owned(), value);
        Ok(())
    }

    /// Removes a limit; false if it was not set.
    pub fn clear(&mut self, name: &str) -> bool {
        self.0.remove(name).is_some()
    }
}

/// Why a limit cannot be set: its name is not one of `allowed` (any integer is a value).
fn check(allowed: &[&str], name: &str, value: i64) -> Result<(), String> {
    if !allowed.contains(&name) {
        return Err(format!("Unrecognised terms [{{<<\"{name}\">>,{value}}}] (known: {})", allowed.join(", ")));
    }
    Ok(())
}

/// What is counted against a limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Counted {
    VhostConnections,
    UserConnections,
    UserChannels,
}

/// The broker's limits and what is in use against them.
#[derive(Default)]
pub struct LimitBook {
    vhosts: RwLock<HashMap<String, LimitSet>>,
    users: RwLock<HashMap<String, LimitSet>>,
    /// Open connections and channels by vhost or user; an entry goes when its count is 0, so
    /// the map holds at most one entry per open connection and channel.
    in_use: Arc<Mutex<HashMap<(Counted, String), usize>>>,
}

/// A connection's places in its vhost's and user's connection counts, and the user's name
/// for its channels' seats; given back on drop.
pub struct ConnectionSeats {
    _vhost: Seat,
    _user: Seat,
}

/// One counted connection or channel; its count goes down when this drops.
pub struct Seat {
    in_use: Arc<Mutex<HashMap<(Counted, String), usize>>>,
    key: (Counted, String),
}

impl Drop for Seat {
    fn drop(&mut self) {
        let mut in_use = self.in_use.lock();
        if let Some(n) = in_use.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                in_use.remove(&self.key);
            }
        }
    }
}

impl LimitBook {
    pub fn vhost(&self, vhost: &str) -> LimitSet {
        self.vhosts.read().get(vhost).cloned().unwrap_or_default()
    }

    pub fn user(&self, user: &str) -> LimitSet {
        self.users.read().get(user).cloned().unwrap_or_default()
    }

    /// Every vhost's and user's limits (those with any set), sorted by name.
    pub fn all_vhosts(&self) -> Vec<(String, LimitSet)> {
        sorted(&self.vhosts.read())
    }

    pub fn all_users(&self) -> Vec<(String, LimitSet)> {
        sorted(&self.users.read())
    }

    /// Replaces a vhost's limits (empty removes them).
    pub fn put_vhost(&self, vhost: &str, limits: LimitSet) {
        put(&mut self.vhosts.write(), vhost, limits);
    }

    pub fn put_user(&self, user: &str, limits: LimitSet) {
        put(&mut self.users.write(), user, limits);
    }

    /// The queue count `vhost`'s `max-queues` allows, if it has one.
    pub fn max_queues(&self, vhost: &str) -> Option<usize> {
        bound_in(&self.vhosts, vhost, "max-queues")
    }

    /// Takes a connection's seats in its vhost and user counts; the reason (RabbitMQ's words) if
    /// either is full.
    pub fn seat_connection(&self, vhost: &str, user: &str) -> Result<ConnectionSeats, String> {
        let vhost_limit = bound_in(&self.vhosts, vhost, "max-connections");
        let vhost_seat = self.take(Counted::VhostConnections, vhost, vhost_limit).ok_or_else(|| {
            format!(
                "access to vhost '{vhost}' refused for user '{user}': connection limit ({}) is reached",
                vhost_limit.unwrap_or(0)
            )
        })?;
        let user_limit = bound_in(&self.users, user, "max-connections");
        let user_seat = self.take(Counted::UserConnections, user, user_limit).ok_or_else(|| {
            format!(
                "connection refused for user '{user}': user connection limit ({}) is reached",
                user_limit.unwrap_or(0)
            )
        })?;
        Ok(ConnectionSeats { _vhost: vhost_seat, _user: user_seat })
    }

    /// Takes a channel's seat in its user's channel count; the reason if it is full.
    pub fn seat_channel(&self, user: &str) -> Result<Seat, String> {
        let limit = bound_in(&self.users, user, "max-channels");
        self.take(Counted::UserChannels, user, limit).ok_or_else(|| {
            format!(
                "number of channels opened for user '{user}' has reached the maximum allowed user limit of ({})",
                limit.unwrap_or(0)
            )
        })
    }

    /// Connections open in a vhost, and a user's connections and channels (as counted here).
    pub fn vhost_connections(&self, vhost: &str) -> usize {
        self.count(Counted::VhostConnections, vhost)
    }

    pub fn user_connections(&self, user: &str) -> usize {
        self.count(Counted::UserConnections, user)
    }

    pub fn user_channels(&self, user: &str) -> usize {
        self.count(Counted::UserChannels, user)
    }

    fn count(&self, counted: Counted, name: &str) -> usize {
        self.in_use.lock().get(&(counted, name.to_owned())).copied().unwrap_or(0)
    }

    fn take(&self, counted: Counted, name: &str, limit: Option<usize>) -> Option<Seat> {
        let key = (counted, name.to_owned());
        let mut in_use = self.in_use.lock();
        let n = in_use.entry(key.clone()).or_insert(0);
        if limit.is_some_and(|limit| *n >= limit) {
            if *n == 0 {
                in_use.remove(&key);
            }
            return None;
        }
        *n += 1;
        Some(Seat { in_use: self.in_use.clone(), key })
    }
}

/// The bound limit `name` of `whose` sets, read in place (opening a connection or channel
/// clones no limit set).
fn bound_in(map: &RwLock<HashMap<String, LimitSet>>, whose: &str, name: &str) -> Option<usize> {
    map.read().get(whose).and_then(|l| l.bound(name))
}

fn put(map: &mut HashMap<String, LimitSet>, name: &str, limits: LimitSet) {
    if limits.is_empty() {
        map.remove(name);
    } else {
        map.insert(name.to_owned(), limits);
    }
}

fn sorted(map: &HashMap<String, LimitSet>) -> Vec<(String, LimitSet)> {
    let mut all: Vec<_> = map.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    all.sort_by(|a, b| a.0.cmp(&b.0));
    all
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(allowed: &[&str], pairs: &[(&str, i64)]) -> LimitSet {
        let mut set = LimitSet::default();
        for (name, value) in pairs {
            set.set(allowed, name, *value).unwrap();
        }
        set
    }

    #[test]
    fn a_seat_is_refused_at_the_limit_and_given_back_on_drop() {
        let book = LimitBook::default();
        book.put_vhost("/", limits(&VHOST_LIMITS, &[("max-connections", 2)]));
        let a = book.seat_connection("/", "u").unwrap();
        let _b = book.seat_connection("/", "v").unwrap();
        let refused = book.seat_connection("/", "w").err().unwrap();
        assert!(refused.contains("connection limit (2) is reached"), "{refused}");
        // The refused attempt took nothing: neither the vhost's count nor w's.
        assert_eq!((book.vhost_connections("/"), book.user_connections("w")), (2, 0));
        drop(a);
        assert_eq!(book.vhost_connections("/"), 1);
        assert!(book.seat_connection("/", "w").is_ok());
    }

    #[test]
    fn a_full_user_gives_back_the_vhost_seat_it_took() {
        let book = LimitBook::default();
        book.put_user("u", limits(&USER_LIMITS, &[("max-connections", 0)]));
        let refused = book.seat_connection("/", "u").err().unwrap();
        assert!(refused.contains("user connection limit (0) is reached"), "{refused}");
        assert_eq!(book.vhost_connections("/"), 0);
        assert!(book.in_use.lock().is_empty());
    }

    #[test]
    fn a_negative_value_means_no_limit_and_unknown_names_are_refused() {
        let book = LimitBook::default();
        book.put_user("u", limits(&USER_LIMITS, &[("max-channels", -2)]));
        let seats: Vec<_> = (0..100).map(|_| book.seat_channel("u").unwrap()).collect();
        assert_eq!(book.user_channels("u"), 100);
        drop(seats);
        assert_eq!(book.user_channels("u"), 0);
        let mut set = LimitSet::default();
        assert!(set.set(&USER_LIMITS, "max-queues", 1).is_err());
        assert!(set.set(&VHOST_LIMITS, "max-channels", 1).is_err());
        assert!(set.is_empty());
    }
}

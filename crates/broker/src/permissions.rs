//! Permissions as RabbitMQ defines them: per user and vhost, three regular expressions over
//! resource names (exchanges and queues) for `configure` (declare, delete), `write` (publish,
//! bind as destination) and `read` (consume, get, purge, bind as source). A user without an
//! entry for a vhost may not open it. An empty expression denies everything; the others match
//! anywhere in the name unless anchored, as Erlang's `re:run` does for RabbitMQ.

use parking_lot::RwLock;
use regex::Regex;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use warren_core::AmqpError;

/// Longest expression accepted (the compiled program is bounded by the regex crate too).
pub const MAX_PATTERN_LEN: usize = 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    Configure,
    Write,
    Read,
}

/// What a resource is, for the refusal's text.
#[derive(Debug, Clone, Copy)]
pub enum Resource {
    Exchange,
    Queue,
}

impl Resource {
    fn word(self) -> &'static str {
        match self {
            Resource::Exchange => "exchange",
            Resource::Queue => "queue",
        }
    }
}

#[derive(Debug)]
pub struct Permission {
    pub configure: String,
    pub write: String,
    pub read: String,
    compiled: [Option<Regex>; 3],
}

impl Permission {
    pub fn new(configure: &str, write: &str, read: &str) -> Result<Permission, String> {
        let compile = |p: &str| -> Result<Option<Regex>, String> {
            if p.is_empty() {
                return Ok(None);
            }
            if p.len() > MAX_PATTERN_LEN {
                return Err(format!("permission pattern longer than {MAX_PATTERN_LEN} bytes"));
            }
            Regex::new(p).map(Some).map_err(|e| format!("invalid permission pattern '{p}': {e}"))
        };
        Ok(Permission {
            configure: configure.to_owned(),
            write: write.to_owned(),
            read: read.to_owned(),
            compiled: [compile(configure)?, compile(write)?, compile(read)?],
        })
    }

    /// Everything: `.*` for all three.
    pub fn full() -> Permission {
        Permission::new(".*", ".*", ".*").expect("valid")
    }

    pub fn allows(&self, access: Access, name: &str) -> bool {
        let i = match access {
            Access::Configure => 0,
            Access::Write => 1,
            Access::Read => 2,
        };
        self.compiled[i].as_ref().is_some_and(|re| re.is_match(name))
    }
}

/// Every user's permissions, by (vhost, user).
#[derive(Debug, Default)]
pub struct Permissions {
    by_vhost_user: RwLock<HashMap<(String, String), Arc<Permission>>>,
    /// Bumped on every change, so callers may cache a check until it moves.
    version: AtomicU64,
}

impl Permissions {
    pub fn get(&self, vhost: &str, user: &str) -> Option<Arc<Permission>> {
        self.by_vhost_user.read().get(&(vhost.to_owned(), user.to_owned())).cloned()
    }

    pub fn set(&self, vhost: &str, user: &str, permission: Permission) {
        self.by_vhost_user.write().insert((vhost.to_owned(), user.to_owned()), Arc::new(permission));
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    pub fn remove(&self, vhost: &str, user: &str) -> bool {
        let removed = self.by_vhost_user.write().remove(&(vhost.to_owned(), user.to_owned())).is_some();
        self.version.fetch_add(1, Ordering::AcqRel);
        removed
    }

    /// Drops every entry of a user, or of a vhost.
    pub fn remove_where(&self, mut doomed: impl FnMut(&str, &str) -> bool) {
        self.by_vhost_user.write().retain(|(v, u), _| !doomed(v, u));
        self.version.fetch_add(1, Ordering::AcqRel);
    }

    /// Every entry: (vhost, user, permission), sorted.
    pub fn all(&self) -> Vec<(String, String, Arc<Permission>)> {
        let mut all: Vec<_> =
            self.by_vhost_user.read().iter().map(|((v, u), p)| (v.clone(), u.clone(), p.clone())).collect();
        all.sort_by(|a, b| (&a.0, &a.1).cmp(&(&b.0, &b.1)));
        all
    }

    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Acquire)
    }

    /// May `user` open `vhost` at all?
    pub fn may_open(&self, vhost: &str, user: &str) -> bool {
        self.get(vhost, user).is_some()
    }

    /// 403 ACCESS_REFUSED unless `user` has `access` to the resource `name` in `vhost`.
    pub fn check(
        &self,
        user: &str,
        vhost: &str,
        access: Access,
        resource: Resource,
        name: &str,
    ) -> Result<(), AmqpError> {
        if self.get(vhost, user).is_some_and(|p| p.allows(access, name)) {
            return Ok(());
        }
        Err(AmqpError::access_refused(format!(
            "access to {} '{name}' in vhost '{vhost}' refused for user '{user}'",
            resource.word()
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_match_as_rabbitmq_matches_them() {
        let p = Permission::new("^app\\.", "", "q").unwrap();
        assert!(p.allows(Access::Configure, "app.orders") && !p.allows(Access::Configure, "x.app.orders"));
        assert!(!p.allows(Access::Write, "anything") && !p.allows(Access::Write, ""), "empty denies");
        assert!(p.allows(Access::Read, "my-queue"), "unanchored: matches anywhere");
        assert!(Permission::full().allows(Access::Write, ""), "the default exchange's name is empty");
        assert!(Permission::new("(", ".*", ".*").is_err());
    }

    #[test]
    fn checks_refuse_with_rabbitmqs_text_and_changes_move_the_version() {
        let all = Permissions::default();
        let v0 = all.version();
        all.set("/", "app", Permission::new("^app\\.", ".*", ".*").unwrap());
        assert!(all.version() > v0 && all.may_open("/", "app") && !all.may_open("other", "app"));
        let e = all.check("app", "/", Access::Configure, Resource::Queue, "jobs").unwrap_err();
        assert_eq!(e.code, 403);
        assert!(e.text.contains("access to queue 'jobs' in vhost '/' refused for user 'app'"), "{}", e.text);
        assert!(all.check("app", "/", Access::Configure, Resource::Queue, "app.jobs").is_ok());
        all.remove_where(|_, user| user == "app");
        assert!(!all.may_open("/", "app"));
    }
}

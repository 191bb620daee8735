//! Logged-in browser sessions for the HTTP transports (the web console): a random token in an
//! HttpOnly cookie names the session, and every request made with it must also carry the
//! session's anti-forgery token in a header, which a page of another site can neither read nor
//! send. A session belongs to one version of its user: changing the user (password, tags) or
//! deleting it ends the session. Sessions live in memory only, bounded in number and in time;
//! a restart logs everyone out.

use crate::auth::User;
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The cookie that carries the session token.
pub const COOKIE: &str = "warren_session";
/// The request header that must carry the session's anti-forgery token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Most sessions open at once; a login beyond it ends the least recently used one.
pub const MAX_SESSIONS: usize = 10_000;
/// A session unused this long ends.
pub const IDLE_TIMEOUT_MS: u64 = 30 * 60 * 1000;
/// A session ends this long after its login, used or not.
pub const MAX_AGE_MS: u64 = 8 * 60 * 60 * 1000;
/// Random bytes in a token (hex-encoded, so twice as many characters).
const TOKEN_BYTES: usize = 32;

struct Session {
    user: Arc<User>,
    csrf: String,
    opened: Instant,
    used: Instant,
}

/// Marks a request that came over TLS (an extension the HTTP transport sets), so that the
/// session cookie it is answered with is `Secure`.
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

/// What a login gives the browser.
pub struct Opened {
    /// Goes in the cookie.
    pub token: String,
    /// Goes in every request's [`CSRF_HEADER`].
    pub csrf: String,
}

#[derive(Default)]
pub struct Sessions {
    by_token: Mutex<HashMap<String, Session>>,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions").field("open", &self.by_token.lock().len()).finish()
    }
}

fn random_token() -> String {
    let bytes: [u8; TOKEN_BYTES] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Session {
    fn expired(&self, now: Instant) -> bool {
        now.duration_since(self.used) > Duration::from_millis(IDLE_TIMEOUT_MS)
            || now.duration_since(self.opened) > Duration::from_millis(MAX_AGE_MS)
    }
}

impl Sessions {
    /// Opens a session for `user` (already authenticated).
    pub fn open(&self, user: Arc<User>) -> Opened {
        let now = Instant::now();
        let opened = Opened { token: random_token(), csrf: random_token() };
        let mut sessions = self.by_token.lock();
        if sessions.len() >= MAX_SESSIONS {
            sessions.retain(|_, s| !s.expired(now));
        }
        if sessions.len() >= MAX_SESSIONS {
            let oldest = sessions.iter().min_by_key(|(_, s)| s.used).map(|(t, _)| t.clone());
            if let Some(token) = oldest {
                sessions.remove(&token);
            }
        }
        let session = Session { user, csrf: opened.csrf.clone(), opened: now, used: now };
        sessions.insert(opened.token.clone(), session);
        opened
    }

    /// The user of the session `token` names, if it is open, its user unchanged since the
    /// login (`current` finds the user as it is now), and `csrf` is the session's anti-forgery
    /// token. Using a session keeps it open.
    pub fn user(
        &self,
        token: &str,
        csrf: Option<&str>,
        current: impl FnOnce(&str) -> Option<Arc<User>>,
    ) -> Option<Arc<User>> {
        let now = Instant::now();
        let mut sessions = self.by_token.lock();
        let session = sessions.get_mut(token)?;
        let unchanged = current(&session.user.name).is_some_and(|u| Arc::ptr_eq(&u, &session.user));
        if session.expired(now) || !unchanged {
            sessions.remove(token);
            return None;
        }
        if !constant_time_eq(session.csrf.as_bytes(), csrf?.as_bytes()) {
            return None;
        }
        session.used = now;
        Some(session.user.clone())
    }

    /// The anti-forgery token of an open session (for a page that reloads).
    pub fn csrf_of(&self, token: &str) -> Option<String> {
        let sessions = self.by_token.lock();
        sessions.get(token).filter(|s| !s.expired(Instant::now())).map(|s| s.csrf.clone())
    }

    /// Ends a session (logout).
    pub fn close(&self, token: &str) -> bool {
        self.by_token.lock().remove(token).is_some()
    }

    pub fn len(&self) -> usize {
        self.by_token.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The session token in a `Cookie` header's value, if it names one.
pub fn token_in_cookies(cookie_header: &str) -> Option<&str> {
    cookie_header.split(';').filter_map(|pair| pair.trim().split_once('=')).find_map(|(name, value)| {
        (name == COOKIE && value.len() == TOKEN_BYTES * 2 && value.bytes().all(|b| b.is_ascii_hexdigit()))
            .then_some(value)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(name: &str) -> Arc<User> {
        Arc::new(User::with_password(name, b"pw", vec!["management".into()], false))
    }

    #[test]
    fn a_session_needs_its_csrf_token_and_its_user_unchanged() {
        let sessions = Sessions::default();
        let alice = user("alice");
        let opened = sessions.open(alice.clone());
        let same = |_: &str| Some(alice.clone());
        assert!(sessions.user(&opened.token, Some(&opened.csrf), same).is_some());
        assert!(sessions.user(&opened.token, None, same).is_none(), "no csrf token");
        assert!(sessions.user(&opened.token, Some(&opened.token), same).is_none(), "wrong csrf token");
        assert!(sessions.user(&opened.csrf, Some(&opened.csrf), same).is_none(), "not a session token");
        // The user changed (a new password): the session ends, for good.
        assert!(sessions.user(&opened.token, Some(&opened.csrf), |_| Some(user("alice"))).is_none());
        assert!(sessions.user(&opened.token, Some(&opened.csrf), same).is_none());
        assert!(sessions.is_empty());
    }

    #[test]
    fn a_deleted_user_or_a_logout_ends_the_session() {
        let sessions = Sessions::default();
        let bob = user("bob");
        let first = sessions.open(bob.clone());
        assert!(sessions.user(&first.token, Some(&first.csrf), |_| None).is_none());
        let second = sessions.open(bob.clone());
        assert_eq!(sessions.csrf_of(&second.token).as_deref(), Some(second.csrf.as_str()));
        assert!(sessions.close(&second.token));
        assert!(sessions.user(&second.token, Some(&second.csrf), |_| Some(bob.clone())).is_none());
        assert!(sessions.csrf_of(&second.token).is_none());
    }

    #[test]
    fn sessions_are_bounded_and_a_recently_used_one_is_kept() {
        let sessions = Sessions::default();
        let carol = user("carol");
        let first = sessions.open(carol.clone());
        for _ in 1..MAX_SESSIONS {
            sessions.open(carol.clone());
        }
        assert!(sessions.user(&first.token, Some(&first.csrf), |_| Some(carol.clone())).is_some());
        sessions.open(carol.clone());
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.csrf_of(&first.token).is_some(), "used recently, kept");
    }

    #[test]
    fn the_token_is_found_among_other_cookies() {
        let token = "ab".repeat(TOKEN_BYTES);
        assert_eq!(token_in_cookies(&format!("a=1; {COOKIE}={token}; b=2")), Some(token.as_str()));
        assert_eq!(token_in_cookies(&format!("{COOKIE}=short")), None);
        assert_eq!(token_in_cookies("other=1"), None);
    }
}

//! Logged-in browser sessions for the HTTP transports (the web console): a random token in an
//! HttpOnly cookie names the session, and every request made with it must also carry the
//! session's anti-forgery token in a header, which a page of another site can neither read nor
//! send. A session belongs to one version of its user: changing the user (password, tags) or
//! deleting it ends the session. Sessions live in memory only, bounded in number (in all and per
//! user, so one user's logins cannot end everyone else's) and in time; a restart logs everyone
//! out. The cookie is named after the listener's port (two brokers on one host keep theirs
//! apart), with the `__Host-` prefix over TLS; a request may carry several such cookies (another
//! broker's, one planted by a sibling domain), so each is tried.

use crate::auth::{constant_time_eq, User};
use parking_lot::Mutex;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The start of the name of the cookie that carries the session token (then `_` and the port).
pub const COOKIE_PREFIX: &str = "warren_session";
/// Over TLS the name also starts with `__Host-`, which browsers only accept from a secure
/// origin, for the whole host and no other.
pub const TLS_COOKIE_PREFIX: &str = "__Host-";
/// The request header that must carry the session's anti-forgery token.
pub const CSRF_HEADER: &str = "x-csrf-token";
/// Most sessions open at once; a login beyond it ends the least recently used one.
pub const MAX_SESSIONS: usize = 10_000;
/// Most sessions of one user; a login beyond it ends that user's least recently used one.
pub const MAX_SESSIONS_PER_USER: usize = 16;
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

/// Which listener a request came in by (an extension the HTTP transport sets): the session
/// cookie is named after its port, and is `Secure` when it serves TLS.
#[derive(Debug, Clone, Copy)]
pub struct Listener {
    pub port: u16,
    pub tls: bool,
}

impl Listener {
    /// The session cookie's name on this listener.
    pub fn cookie_name(&self) -> String {
        let host = if self.tls { TLS_COOKIE_PREFIX } else { "" };
        format!("{host}{COOKIE_PREFIX}_{}", self.port)
    }
}

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
        let of_user = |s: &Session| s.user.name == user.name;
        if sessions.values().filter(|s| of_user(s)).count() >= MAX_SESSIONS_PER_USER {
            let oldest =
                sessions.iter().filter(|(_, s)| of_user(s)).min_by_key(|(_, s)| s.used).map(|(t, _)| t.clone());
            if let Some(token) = oldest {
                sessions.remove(&token);
            }
        }
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

/// Most session cookies of one request that are tried.
const MAX_CANDIDATES: usize = 8;

/// The session tokens a `Cookie` header's value may carry: every cookie named like a session
/// cookie (of any port, with or without `__Host-`) whose value looks like a token.
pub fn tokens_in_cookies(cookie_header: &str) -> impl Iterator<Item = &str> {
    cookie_header
        .split(';')
        .filter_map(|pair| pair.trim().split_once('='))
        .filter(|(name, value)| {
            let name = name.strip_prefix(TLS_COOKIE_PREFIX).unwrap_or(name);
            name.starts_with(COOKIE_PREFIX)
                && value.len() == TOKEN_BYTES * 2
                && value.bytes().all(|b| b.is_ascii_hexdigit())
        })
        .map(|(_, value)| value)
        .take(MAX_CANDIDATES)
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
        // Many users, each within the per-user bound.
        for i in 1..MAX_SESSIONS {
            sessions.open(user(&format!("user{}", i % 1000)));
        }
        assert!(sessions.user(&first.token, Some(&first.csrf), |_| Some(carol.clone())).is_some());
        sessions.open(user("latecomer"));
        assert_eq!(sessions.len(), MAX_SESSIONS);
        assert!(sessions.csrf_of(&first.token).is_some(), "used recently, kept");
    }

    #[test]
    fn every_session_cookie_is_a_candidate_and_nothing_else() {
        let (a, b) = ("ab".repeat(TOKEN_BYTES), "cd".repeat(TOKEN_BYTES));
        let header = format!("x=1; warren_session_15672={a}; __Host-warren_session_15671={b}; warren_session_1=short");
        assert_eq!(tokens_in_cookies(&header).collect::<Vec<_>>(), [a.as_str(), b.as_str()]);
        assert_eq!(tokens_in_cookies("other=1").count(), 0);
        let plain = Listener { port: 15672, tls: false };
        let secure = Listener { port: 15671, tls: true };
        assert_eq!(
            (plain.cookie_name(), secure.cookie_name()),
            ("warren_session_15672".into(), "__Host-warren_session_15671".into())
        );
    }

    #[test]
    fn one_users_logins_end_only_that_users_oldest_sessions() {
        let sessions = Sessions::default();
        let (admin, busy) = (user("admin"), user("busy"));
        let kept = sessions.open(admin.clone());
        let first = sessions.open(busy.clone());
        for _ in 0..MAX_SESSIONS_PER_USER {
            sessions.open(busy.clone());
        }
        assert_eq!(sessions.len(), 1 + MAX_SESSIONS_PER_USER);
        assert!(sessions.csrf_of(&kept.token).is_some(), "another user's session is untouched");
        assert!(sessions.csrf_of(&first.token).is_none(), "the user's own oldest ended");
    }
}

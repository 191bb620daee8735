//! Who is calling: HTTP Basic against the broker's users, or a console session (see
//! `session.rs`), and what their tags let them do.
//! As in RabbitMQ, a user needs one of the management tags to use the API at all;
//! `administrator` and `monitoring` see every vhost, the others the vhosts they may open.

use crate::error::{MgmtError, Result};
use crate::Mgmt;
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use base64::Engine;
use std::net::SocketAddr;
use std::sync::Arc;
use warren_broker::auth::User;
use warren_broker::permissions::{Access, Resource};
use warren_broker::sessions;

const MANAGEMENT_TAGS: [&str; 4] = ["administrator", "monitoring", "policymaker", "management"];

/// An authenticated user of the management API.
pub struct Caller {
    pub name: String,
    pub tags: Vec<String>,
    broker: warren_broker::Broker,
}

impl Caller {
    pub fn is(&self, tag: &str) -> bool {
        self.tags.iter().any(|t| t == tag)
    }

    /// Sees every vhost's objects.
    pub fn sees_all(&self) -> bool {
        self.is("administrator") || self.is("monitoring")
    }

    pub fn may_see(&self, vhost: &str) -> bool {
        self.sees_all() || self.may_use(vhost)
    }

    /// Has permissions in the vhost (may open it over AMQP too).
    pub fn may_use(&self, vhost: &str) -> bool {
        self.broker.permissions().may_open(vhost, &self.name)
    }

    /// 403 unless the caller's permissions in `vhost` give `access` to the resource, as for
    /// the same operation over AMQP.
    pub fn require(&self, vhost: &str, access: Access, resource: Resource, name: &str) -> Result<()> {
        self.require_use(vhost)?;
        Ok(self.broker.permissions().check(&self.name, vhost, access, resource, name)?)
    }

    pub fn require_use(&self, vhost: &str) -> Result<()> {
        if self.may_use(vhost) {
            return Ok(());
        }
        Err(MgmtError::unauthorized(format!("user '{}' may not access vhost '{vhost}'", self.name)))
    }

    /// An administrator, or a policymaker with permissions in `vhost`: who may change the
    /// vhost's policies, contracts and transforms.
    pub fn require_policymaker_in(&self, vhost: &str) -> Result<()> {
        if self.is("administrator") {
            return Ok(());
        }
        if !self.is("policymaker") {
            return Err(MgmtError::unauthorized("User not authorised to access object"));
        }
        self.require_use(vhost)
    }

    pub fn require_administrator(&self) -> Result<()> {
        if self.is("administrator") {
            return Ok(());
        }
        Err(MgmtError::unauthorized("Not administrator user"))
    }
}

/// Whether `user` may use the management API (and log in to the console).
pub fn has_management_tag(user: &User) -> bool {
    MANAGEMENT_TAGS.iter().any(|t| user.has_tag(t))
}

impl FromRequestParts<Arc<Mgmt>> for Caller {
    type Rejection = MgmtError;

    async fn from_request_parts(parts: &mut Parts, state: &Arc<Mgmt>) -> Result<Caller> {
        let failed = || MgmtError::unauthorized("Login failed");
        if !parts.headers.contains_key(axum::http::header::AUTHORIZATION) {
            // A console session: its cookie, and its anti-forgery token in `X-CSRF-Token`.
            let text = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
            let user = (state.broker)
                .session_user(text(axum::http::header::COOKIE.as_str()), text(sessions::CSRF_HEADER))
                .ok_or_else(|| MgmtError::unauthorized("Not logged in, or the session has ended"))?;
            if !has_management_tag(&user) {
                return Err(MgmtError::unauthorized("Not management user"));
            }
            return Ok(Caller { name: user.name.clone(), tags: user.tags.clone(), broker: state.broker.clone() });
        }
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip()).ok_or_else(failed)?;
        let value = parts.headers.get(axum::http::header::AUTHORIZATION).ok_or_else(failed)?;
        let encoded = value.to_str().ok().and_then(|v| v.strip_prefix("Basic ")).ok_or_else(failed)?;
        let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| failed())?;
        let text = String::from_utf8(decoded).map_err(|_| failed())?;
        let (name, password) = text.split_once(':').ok_or_else(failed)?;
        let user = state.broker.users().authenticate(name, password.as_bytes(), peer).ok_or_else(failed)?;
        if !has_management_tag(&user) {
            return Err(MgmtError::unauthorized("Not management user"));
        }
        Ok(Caller { name: user.name.clone(), tags: user.tags.clone(), broker: state.broker.clone() })
    }
}

//! HTTP Basic authentication against the broker's users (or a web console session), and the vhost permission check: the
//! same rules as an AMQP connection (including loopback-only users such as guest), and the
//! same configure/write/read permissions on exchanges and queues.

use crate::ApiError;
use axum::http::{HeaderMap, StatusCode};
use base64::Engine;
use std::net::SocketAddr;
use warren_broker::permissions::{Access, Resource};
use warren_broker::sessions;
use warren_broker::Broker;

/// The authenticated user's name, if the request carries valid credentials for `vhost`.
pub fn authorize(broker: &Broker, headers: &HeaderMap, peer: SocketAddr, vhost: &str) -> Result<String, ApiError> {
    let unauthorized = || ApiError::new(StatusCode::UNAUTHORIZED, "valid HTTP Basic credentials are required");
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        // A web console session (its cookie and anti-forgery header), so the console can use
        // this API too.
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let user = broker
            .session_user(text(axum::http::header::COOKIE.as_str()), text(sessions::CSRF_HEADER))
            .ok_or_else(unauthorized)?;
        return permitted(broker, &user.name, vhost);
    };
    let encoded = value.to_str().ok().and_then(|v| v.strip_prefix("Basic ")).ok_or_else(unauthorized)?;
    let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).map_err(|_| unauthorized())?;
    let text = String::from_utf8(decoded).map_err(|_| unauthorized())?;
    let (name, password) = text.split_once(':').ok_or_else(unauthorized)?;
    let user = broker.users().authenticate(name, password.as_bytes(), peer.ip()).ok_or_else(unauthorized)?;
    permitted(broker, &user.name, vhost)
}

fn permitted(broker: &Broker, name: &str, vhost: &str) -> Result<String, ApiError> {
    if !broker.permissions().may_open(vhost, name) {
        return Err(ApiError::new(StatusCode::FORBIDDEN, format!("user '{name}' may not use vhost '{vhost}'")));
    }
    Ok(name.to_owned())
}

/// [`authorize`], then the user's permission on one resource, as AMQP checks it (403).
pub fn authorize_for(
    broker: &Broker,
    headers: &HeaderMap,
    peer: SocketAddr,
    vhost: &str,
    access: Access,
    resource: Resource,
    name: &str,
) -> Result<String, ApiError> {
    let user = authorize(broker, headers, peer, vhost)?;
    broker
        .permissions()
        .check(&user, vhost, access, resource, name)
        .map_err(|e| ApiError::new(StatusCode::FORBIDDEN, e.text))?;
    Ok(user)
}

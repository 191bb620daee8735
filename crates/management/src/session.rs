//! `/api/session`: logging in to the web console with a broker user (Warren's own; RabbitMQ's
//! UI keeps the password in the browser instead). `POST` checks the username and password and
//! sets an HttpOnly, SameSite=Strict session cookie named after the listener's port (`Secure`
//! and `__Host-` over TLS); its answer carries the anti-forgery token
//! that every request made with the cookie must repeat in `X-CSRF-Token`. `GET` gives a page
//! that reloads the token back, `DELETE` logs out. Only users with a management tag may log in.

use crate::auth::{has_management_tag, Caller};
use crate::error::{MgmtError, Result};
use crate::{body, Mgmt};
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::json;
use std::net::SocketAddr;
use std::sync::Arc;
use warren_broker::sessions::{tokens_in_cookies, Listener, MAX_AGE_MS};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Login {
    username: String,
    password: String,
}

/// The session cookie of the listener the request came by (a router used without Warren's
/// accept loop has no such extension: port 0, plain).
fn cookie(by: Option<Extension<Listener>>, value: &str, max_age_s: u64) -> HeaderValue {
    let by = by.map_or(Listener { port: 0, tls: false }, |Extension(l)| l);
    let secure = if by.tls { "; Secure" } else { "" };
    let name = by.cookie_name();
    let text = format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}");
    HeaderValue::from_str(&text).expect("a cookie of hex and ASCII attributes")
}

fn cookie_header(headers: &HeaderMap) -> &str {
    headers.get(header::COOKIE).and_then(|v| v.to_str().ok()).unwrap_or("")
}

/// `POST /api/session` with `{"username", "password"}` (JSON only, so a form of another site
/// cannot log a browser in).
pub async fn login(
    State(m): State<Arc<Mgmt>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    by: Option<Extension<Listener>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response> {
    let is_json = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !is_json {
        return Err(MgmtError::unsupported_media_type("a login is sent as application/json"));
    }
    let login: Login = body::parse(&body)?;
    let user = m
        .broker
        .users()
        .authenticate(&login.username, login.password.as_bytes(), peer.ip())
        .ok_or_else(|| MgmtError::unauthorized("Login failed: wrong username or password"))?;
    if !has_management_tag(&user) {
        return Err(MgmtError::unauthorized(format!(
            "user '{}' has no management tag (administrator, monitoring, policymaker or management)",
            user.name
        )));
    }
    // A new login replaces the sessions this browser already had here.
    for old in tokens_in_cookies(cookie_header(&headers)) {
        m.broker.sessions().close(old);
    }
    let opened = m.broker.sessions().open(user.clone());
    let body = Json(json!({"name": user.name, "tags": user.tags, "csrf_token": opened.csrf}));
    let mut response = (StatusCode::OK, body).into_response();
    // The browser keeps the cookie for the session's longest life; the broker ends it sooner
    // when it sits idle.
    let max_age_s = MAX_AGE_MS / 1000;
    response.headers_mut().insert(header::SET_COOKIE, cookie(by, &opened.token, max_age_s));
    response.headers_mut().insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `GET /api/session`: who is logged in, and the session's anti-forgery token (readable only by
/// pages of this origin: the API sends no CORS headers).
pub async fn show(State(m): State<Arc<Mgmt>>, headers: HeaderMap) -> Result<Response> {
    let sessions = m.broker.sessions();
    let (user, csrf) = tokens_in_cookies(cookie_header(&headers))
        .find_map(|token| {
            let csrf = sessions.csrf_of(token)?;
            let user = sessions.user(token, Some(&csrf), |name| m.broker.users().get(name))?;
            Some((user, csrf))
        })
        .ok_or_else(|| MgmtError::unauthorized("not logged in"))?;
    let body = Json(json!({"name": user.name, "tags": user.tags, "csrf_token": csrf}));
    Ok(([(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))], body).into_response())
}

/// `DELETE /api/session`: logs out (needs the anti-forgery token, as every change does).
pub async fn logout(
    State(m): State<Arc<Mgmt>>,
    _caller: Caller,
    by: Option<Extension<Listener>>,
    headers: HeaderMap,
) -> Result<Response> {
    for token in tokens_in_cookies(cookie_header(&headers)) {
        m.broker.sessions().close(token);
    }
    let mut response = StatusCode::NO_CONTENT.into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie(by, "", 0));
    Ok(response)
}

//! Who may do what: `/api/whoami`, `/api/vhosts`, `/api/users` and `/api/permissions`, from
//! the broker's user store and permissions.

use crate::auth::Caller;
use crate::error::{MgmtError, Result};
use crate::listing::ListQuery;
use crate::{body, Mgmt};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{json, Value};
use std::sync::Arc;
use warren_broker::auth::HASHING_ALGORITHM;
use warren_broker::permissions::Permission;
use warren_broker::User;

pub async fn whoami(caller: Caller) -> Json<Value> {
    Json(json!({"name": caller.name, "tags": caller.tags}))
}

fn vhost_json(m: &Mgmt, v: &warren_broker::VHost) -> Value {
    let (mut ready, mut unacked) = (0usize, 0usize);
    for q in v.queue_names().iter().filter_map(|n| v.queue(n)) {
        let (r, u, _) = q.message_counts();
        ready += r;
        unacked += u;
    }
    json!({
        "name": v.name,
        "description": "",
        "tags": [],
        "metadata": {"description": "", "tags": []},
        "default_queue_type": "classic",
        "tracing": false,
        "cluster_state": {m.node.clone(): "running"},
        "messages": ready + unacked,
        "messages_ready": ready,
        "messages_unacknowledged": unacked,
    })
}

pub async fn vhosts(State(m): State<Arc<Mgmt>>, caller: Caller, Query(q): Query<ListQuery>) -> Result<Json<Value>> {
    q.respond(m.visible_vhosts(&caller).iter().map(|v| vhost_json(&m, v)).collect())
}

pub async fn vhost(State(m): State<Arc<Mgmt>>, caller: Caller, Path(vhost): Path<String>) -> Result<Json<Value>> {
    let v = m.visible_vhost(&caller, &vhost)?;
    Ok(Json(vhost_json(&m, &v)))
}

pub fn user_json(m: &Mgmt, u: &User) -> Value {
    json!({
        "name": u.name,
        "password_hash": u.password_hash(),
        "hashing_algorithm": warren_broker::auth::HASHING_ALGORITHM,
        "tags": u.tags,
        "limits": crate::limits::limits_json(&m.broker.resource_limits().user(&u.name)),
    })
}

pub async fn users(State(m): State<Arc<Mgmt>>, caller: Caller, Query(q): Query<ListQuery>) -> Result<Json<Value>> {
    caller.require_administrator()?;
    q.respond(m.broker.users().all().iter().map(|u| user_json(&m, u)).collect())
}

pub async fn user(State(m): State<Arc<Mgmt>>, caller: Caller, Path(name): Path<String>) -> Result<Json<Value>> {
    caller.require_administrator()?;
    m.broker.users().get(&name).map(|u| Json(user_json(&m, &u))).ok_or_else(MgmtError::not_found)
}

fn permission_json(vhost: &str, user: &str, p: &Permission) -> Value {
    json!({"user": user, "vhost": vhost, "configure": p.configure, "write": p.write, "read": p.read})
}

/// Every user's permissions in every vhost.
pub fn all_permissions(m: &Mgmt) -> Vec<Value> {
    m.broker.permissions().all().iter().map(|(v, u, p)| permission_json(v, u, p)).collect()
}

pub async fn permissions(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    caller.require_administrator()?;
    q.respond(all_permissions(&m))
}

pub async fn vhost_permissions(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    caller.require_administrator()?;
    m.vhost(&vhost)?;
    q.respond(all_permissions(&m).into_iter().filter(|p| p["vhost"] == vhost.as_str()).collect())
}

pub async fn user_permissions(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(user): Path<String>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Value>> {
    caller.require_administrator()?;
    m.broker.users().get(&user).ok_or_else(MgmtError::not_found)?;
    q.respond(all_permissions(&m).into_iter().filter(|p| p["user"] == user.as_str()).collect())
}

pub async fn permission(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<Json<Value>> {
    caller.require_administrator()?;
    m.vhost(&vhost)?;
    let p = m.broker.permissions().get(&vhost, &user).ok_or_else(MgmtError::not_found)?;
    Ok(Json(permission_json(&vhost, &user, &p)))
}

// ---- changes (administrators) --------------------------------------------------------------

/// `PUT /api/vhosts/{vhost}`: creates it, and (as RabbitMQ's API does) gives its creator full
/// permissions in it.
pub async fn put_vhost(State(m): State<Arc<Mgmt>>, caller: Caller, Path(vhost): Path<String>) -> Result<StatusCode> {
    caller.require_administrator()?;
    let created = m.broker.add_vhost(&vhost)?;
    if created {
        m.broker.set_permission(&vhost, &caller.name, Permission::full())?;
    }
    m.answered(created).await
}

pub async fn delete_vhost(State(m): State<Arc<Mgmt>>, caller: Caller, Path(vhost): Path<String>) -> Result<StatusCode> {
    caller.require_administrator()?;
    if !m.broker.delete_vhost(&vhost) {
        return Err(MgmtError::not_found());
    }
    m.answered(false).await
}

/// Other fields are ignored, as RabbitMQ ignores them (rabbitmqadmin sends `name` and `vhost`).
#[derive(Deserialize)]
pub struct UserBody {
    password: Option<String>,
    password_hash: Option<String>,
    hashing_algorithm: Option<String>,
    /// A list, or RabbitMQ's comma-separated string.
    #[serde(default)]
    tags: Value,
    /// Ignored, as RabbitMQ ignores it here: limits are set at `/api/user-limits`.
    #[serde(default)]
    #[allow(dead_code)]
    limits: Value,
}

fn tags_of(v: &Value) -> Result<Vec<String>> {
    let tags: Vec<String> = match v {
        Value::Null => Vec::new(),
        Value::String(s) => s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        Value::Array(items) => items
            .iter()
            .map(|t| t.as_str().map(str::to_owned))
            .collect::<Option<_>>()
            .ok_or_else(|| MgmtError::bad_request("tags must be strings"))?,
        _ => return Err(MgmtError::bad_request("tags must be a list or a comma-separated string")),
    };
    if tags.len() > 32 || tags.iter().any(|t| t.len() > 64) {
        return Err(MgmtError::bad_request("at most 32 tags of at most 64 bytes"));
    }
    Ok(tags)
}

/// Whether a user is accepted from loopback addresses only: as it was, or for a new `guest`,
/// yes (RabbitMQ's default `loopback_users`), so that no import or PUT opens guest/guest to the
/// network.
pub fn loopback_only_of(m: &Mgmt, name: &str) -> bool {
    match m.broker.users().get(name) {
        Some(u) => u.loopback_only,
        None => name == "guest",
    }
}

/// `PUT /api/users/{user}`: with `password`, or `password_hash` in RabbitMQ's SHA-256 form.
pub async fn put_user(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(name): Path<String>,
    body: Bytes,
) -> Result<StatusCode> {
    caller.require_administrator()?;
    let body: UserBody = body::parse(&body)?;
    let tags = tags_of(&body.tags)?;
    let loopback_only = loopback_only_of(&m, &name);
    let user = match (&body.password, &body.password_hash) {
        (Some(password), None) => User::with_password(&name, password.as_bytes(), tags, loopback_only),
        (None, Some(hash)) => {
            if let Some(algorithm) = body.hashing_algorithm.as_deref().filter(|a| *a != HASHING_ALGORITHM) {
                return Err(MgmtError::bad_request(format!(
                    "hashing_algorithm '{algorithm}' is not supported; use {HASHING_ALGORITHM}"
                )));
            }
            User::with_hash(&name, hash, tags, loopback_only).map_err(MgmtError::bad_request)?
        }
        _ => return Err(MgmtError::bad_request("give either password or password_hash")),
    };
    let created = m.broker.put_user(user)?;
    m.answered(created).await
}

pub async fn delete_user(State(m): State<Arc<Mgmt>>, caller: Caller, Path(name): Path<String>) -> Result<StatusCode> {
    caller.require_administrator()?;
    if !m.broker.delete_user(&name) {
        return Err(MgmtError::not_found());
    }
    m.answered(false).await
}

/// Other fields (rabbitmqadmin repeats `vhost` and `user`) are ignored, as RabbitMQ ignores them.
#[derive(Deserialize)]
pub struct PermissionBody {
    configure: String,
    write: String,
    read: String,
}

pub async fn put_permission(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
    body: Bytes,
) -> Result<StatusCode> {
    caller.require_administrator()?;
    let body: PermissionBody = body::parse(&body)?;
    let permission = Permission::new(&body.configure, &body.write, &body.read).map_err(MgmtError::bad_request)?;
    let created = m.broker.set_permission(&vhost, &user, permission)?;
    m.answered(created).await
}

pub async fn delete_permission(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path((vhost, user)): Path<(String, String)>,
) -> Result<StatusCode> {
    caller.require_administrator()?;
    if !m.broker.clear_permission(&vhost, &user) {
        return Err(MgmtError::not_found());
    }
    m.answered(false).await
}

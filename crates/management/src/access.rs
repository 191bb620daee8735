//! Who may do what: `/api/whoami`, `/api/vhosts`, `/api/users` and `/api/permissions`, from
//! the broker's user store and permissions.

use crate::auth::Caller;
use crate::error::{MgmtError, Result};
use crate::listing::ListQuery;
use crate::Mgmt;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;
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

pub fn user_json(u: &User) -> Value {
    json!({
        "name": u.name,
        "password_hash": u.password_hash(),
        "hashing_algorithm": warren_broker::auth::HASHING_ALGORITHM,
        "tags": u.tags,
        "limits": {},
    })
}

pub async fn users(State(m): State<Arc<Mgmt>>, caller: Caller, Query(q): Query<ListQuery>) -> Result<Json<Value>> {
    caller.require_administrator()?;
    q.respond(m.broker.users().all().iter().map(|u| user_json(u)).collect())
}

pub async fn user(State(m): State<Arc<Mgmt>>, caller: Caller, Path(name): Path<String>) -> Result<Json<Value>> {
    caller.require_administrator()?;
    m.broker.users().get(&name).map(|u| Json(user_json(&u))).ok_or_else(MgmtError::not_found)
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

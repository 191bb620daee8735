//! Who may do what: `/api/whoami`, `/api/vhosts`, `/api/users` and `/api/permissions`. Users,
//! their tags and their vhosts come from the configuration; a user who may open a vhost has
//! the permissions `.*` (configure, write, read) in it.

use crate::auth::Caller;
use crate::error::{MgmtError, Result};
use crate::listing::ListQuery;
use crate::Mgmt;
use axum::extract::{Path, Query, State};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;
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
        "hashing_algorithm": "rabbit_password_hashing_sha256",
        "tags": u.tags,
        "limits": {},
    })
}

pub async fn users(State(m): State<Arc<Mgmt>>, caller: Caller, Query(q): Query<ListQuery>) -> Result<Json<Value>> {
    caller.require_administrator()?;
    q.respond(m.broker.users().all().into_iter().map(user_json).collect())
}

pub async fn user(State(m): State<Arc<Mgmt>>, caller: Caller, Path(name): Path<String>) -> Result<Json<Value>> {
    caller.require_administrator()?;
    m.broker.users().get(&name).map(|u| Json(user_json(u))).ok_or_else(MgmtError::not_found)
}

fn permission_json(user: &str, vhost: &str) -> Value {
    json!({"user": user, "vhost": vhost, "configure": ".*", "write": ".*", "read": ".*"})
}

/// Every (user, vhost) pair the configuration allows.
pub fn all_permissions(m: &Mgmt) -> Vec<Value> {
    let vhosts = m.broker.vhosts();
    let mut out = Vec::new();
    for u in m.broker.users().all() {
        for v in vhosts.iter().filter(|v| u.may_open(&v.name)) {
            out.push(permission_json(&u.name, &v.name));
        }
    }
    out
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
    let u = m.broker.users().get(&user).ok_or_else(MgmtError::not_found)?;
    if !u.may_open(&vhost) {
        return Err(MgmtError::not_found());
    }
    Ok(Json(permission_json(&user, &vhost)))
}

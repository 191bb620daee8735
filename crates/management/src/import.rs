//! `POST /api/definitions`: imports definitions in RabbitMQ's JSON format (as `rabbitmqadmin
//! import` and RabbitMQ's own export write them): vhosts, users with their password hashes,
//! permissions, policies, operator policies (RabbitMQ exports them as runtime parameters of
//! component `operator_policy`), vhost and user limits (a `vhost-limits` parameter, a user's
//! `limits`), durable exchanges, queues and bindings. The whole file is
//! checked before anything changes; what Warren cannot take (other runtime parameters such as
//! federation upstreams or shovels, topic permissions) refuses the import with a reason rather
//! than being dropped silently.

use crate::auth::Caller;
use crate::error::{MgmtError, Result};
use crate::policies::PolicyBody;
use crate::{body, exchanges::exchange_name, Mgmt};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use bytes::Bytes;
use serde::Deserialize;
use serde_json::Value;
use std::sync::Arc;
use warren_broker::auth::{User, HASHING_ALGORITHM};
use warren_broker::permissions::Permission;
use warren_broker::resource_limits::{USER_LIMITS, VHOST_LIMITS};
use warren_broker::{Dest, QueueDeclare};
use warren_core::json::json_to_table;
use warren_core::{ExchangeDef, ExchangeKind};

/// Most objects one import may hold (bounded work per request).
const MAX_OBJECTS: usize = 100_000;

#[derive(Deserialize, Default)]
#[serde(default)]
struct Definitions {
    users: Vec<UserDef>,
    vhosts: Vec<VhostDef>,
    permissions: Vec<PermissionDef>,
    topic_permissions: Vec<Value>,
    parameters: Vec<ParameterDef>,
    global_parameters: Vec<GlobalParameterDef>,
    policies: Vec<PolicyDef>,
    /// Warren's own.
    contracts: Vec<crate::contracts::ContractDef>,
    transforms: Vec<crate::transforms::TransformDef>,
    aggregators: Vec<Value>,
    queues: Vec<QueueDef>,
    exchanges: Vec<ExchangeDef_>,
    bindings: Vec<BindingDef>,
}

#[derive(Deserialize)]
struct UserDef {
    name: String,
    #[serde(default)]
    password_hash: String,
    #[serde(default)]
    hashing_algorithm: Option<String>,
    #[serde(default)]
    tags: Value,
    #[serde(default)]
    limits: Value,
}

#[derive(Deserialize)]
struct PolicyDef {
    vhost: Option<String>,
    name: String,
    #[serde(flatten)]
    body: PolicyBody,
}

#[derive(Deserialize)]
struct ParameterDef {
    vhost: Option<String>,
    component: String,
    name: String,
    value: Value,
}

#[derive(Deserialize)]
struct GlobalParameterDef {
    name: String,
}

/// Global parameters RabbitMQ exports that describe the exporting cluster itself: skipped.
const CLUSTER_IDENTITY_PARAMETERS: &[&str] = &["internal_cluster_id", "cluster_name"];

#[derive(Deserialize)]
struct VhostDef {
    name: String,
}

#[derive(Deserialize)]
struct PermissionDef {
    user: String,
    vhost: String,
    configure: String,
    write: String,
    read: String,
}

#[derive(Deserialize)]
struct QueueDef {
    name: String,
    vhost: Option<String>,
    #[serde(default = "yes")]
    durable: bool,
    #[serde(default)]
    auto_delete: bool,
    #[serde(default)]
    arguments: Value,
}

#[derive(Deserialize)]
struct ExchangeDef_ {
    name: String,
    vhost: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    #[serde(default = "yes")]
    durable: bool,
    #[serde(default)]
    auto_delete: bool,
    #[serde(default)]
    internal: bool,
    #[serde(default)]
    arguments: Value,
}

#[derive(Deserialize)]
struct BindingDef {
    source: String,
    vhost: Option<String>,
    destination: String,
    destination_type: String,
    #[serde(default)]
    routing_key: String,
    #[serde(default)]
    arguments: Value,
}

fn yes() -> bool {
    true
}

fn tags_of(v: &Value) -> Vec<String> {
    match v {
        Value::String(s) => s.split(',').map(str::trim).filter(|t| !t.is_empty()).map(str::to_owned).collect(),
        Value::Array(items) => items.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect(),
        _ => Vec::new(),
    }
}

pub async fn import(State(m): State<Arc<Mgmt>>, caller: Caller, body: Bytes) -> Result<StatusCode> {
    caller.require_administrator()?;
    apply(&m, body::parse(&body)?, None).await
}

pub async fn import_vhost(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
    body: Bytes,
) -> Result<StatusCode> {
    caller.require_administrator()?;
    m.vhost(&vhost)?;
    apply(&m, body::parse(&body)?, Some(vhost)).await
}

async fn apply(m: &Mgmt, defs: Definitions, only_vhost: Option<String>) -> Result<StatusCode> {
    let objects = defs.users.len()
        + defs.vhosts.len()
        + defs.permissions.len()
        + defs.policies.len()
        + defs.contracts.len()
        + defs.transforms.len()
        + defs.aggregators.len()
        + defs.parameters.len()
        + defs.queues.len()
        + defs.exchanges.len()
        + defs.bindings.len();
    if objects > MAX_OBJECTS {
        return Err(MgmtError::bad_request(format!("an import holds at most {MAX_OBJECTS} objects")));
    }
    if !defs.topic_permissions.is_empty() {
        return Err(MgmtError::bad_request(
            "the file has topic_permissions, which Warren does not have; nothing was imported",
        ));
    }
    if let Some(g) = defs.global_parameters.iter().find(|g| !CLUSTER_IDENTITY_PARAMETERS.contains(&g.name.as_str())) {
        return Err(MgmtError::bad_request(format!(
            "the file has global parameter '{}', which Warren does not have; nothing was imported",
            g.name
        )));
    }
    if let Some(p) =
        defs.parameters.iter().find(|p| !matches!(p.component.as_str(), "operator_policy" | "vhost-limits"))
    {
        return Err(MgmtError::bad_request(format!(
            "the file has runtime parameter '{}' of component '{}', which Warren does not have; nothing was imported",
            p.name, p.component
        )));
    }
    // Check everything before changing anything.
    let mut users = Vec::new();
    let mut user_limits = Vec::new();
    for u in &defs.users {
        let limits = crate::limits::limits_of(&USER_LIMITS, &u.limits, &format!("user '{}'", u.name))?;
        user_limits.push((u.name.clone(), limits));
        if let Some(a) = u.hashing_algorithm.as_deref().filter(|a| *a != HASHING_ALGORITHM) {
            return Err(MgmtError::bad_request(format!("user '{}': hashing_algorithm '{a}' is not supported", u.name)));
        }
        let loopback_only = crate::access::loopback_only_of(m, &u.name);
        users.push(
            User::with_hash(&u.name, &u.password_hash, tags_of(&u.tags), loopback_only)
                .map_err(|e| MgmtError::bad_request(format!("user '{}': {e}", u.name)))?,
        );
    }
    let mut permissions = Vec::new();
    for p in &defs.permissions {
        let permission = Permission::new(&p.configure, &p.write, &p.read)
            .map_err(|e| MgmtError::bad_request(format!("permission of '{}' in '{}': {e}", p.user, p.vhost)))?;
        permissions.push((p.vhost.clone(), p.user.clone(), permission));
    }
    let vhost_of = |v: &Option<String>| -> Result<String> {
        only_vhost.clone().or_else(|| v.clone()).ok_or_else(|| MgmtError::bad_request("an object names no vhost"))
    };
    let mut exchanges = Vec::new();
    for x in &defs.exchanges {
        let arguments = json_to_table(&x.arguments).map_err(MgmtError::bad_request)?;
        let (kind, delayed): (ExchangeKind, bool) = ExchangeKind::declared(&x.kind, &arguments)?;
        let def = ExchangeDef {
            name: body::short_name(&x.name, "exchange")?,
            kind,
            durable: x.durable,
            auto_delete: x.auto_delete,
            internal: x.internal,
            arguments,
            delayed,
        };
        exchanges.push((vhost_of(&x.vhost)?, def));
    }
    let mut queues = Vec::new();
    for q in &defs.queues {
        let arguments = json_to_table(&q.arguments).map_err(MgmtError::bad_request)?;
        let req = QueueDeclare {
            server_named: false,
            name: body::short_name(&q.name, "queue")?,
            passive: false,
            durable: q.durable,
            exclusive: false,
            auto_delete: q.auto_delete,
            arguments,
        };
        queues.push((vhost_of(&q.vhost)?, req));
    }
    let mut policies = Vec::new();
    for p in &defs.policies {
        let vhost = vhost_of(&p.vhost)?;
        policies.push(p.body.compile(&vhost, &p.name, false)?);
    }
    let mut vhost_limits = Vec::new();
    for p in defs.parameters.iter().filter(|p| p.component == "vhost-limits") {
        let vhost = vhost_of(&p.vhost)?;
        let whose = format!("vhost '{vhost}'");
        vhost_limits.push((vhost, crate::limits::limits_of(&VHOST_LIMITS, &p.value, &whose)?));
    }
    for p in defs.parameters.iter().filter(|p| p.component == "operator_policy") {
        let vhost = vhost_of(&p.vhost)?;
        let body: PolicyBody = serde_json::from_value(p.value.clone())
            .map_err(|e| MgmtError::bad_request(format!("operator policy '{}': {e}", p.name)))?;
        policies.push(body.compile(&vhost, &p.name, true)?);
    }
    let mut contracts = Vec::new();
    for c in &defs.contracts {
        contracts.push(c.compile(&vhost_of(&c.vhost)?)?);
    }
    let mut transforms = Vec::new();
    for t in &defs.transforms {
        transforms.push(t.compile(m, &vhost_of(&t.vhost)?).await?);
    }
    let mut aggregators = Vec::new();
    for a in &defs.aggregators {
        let vhost = vhost_of(&a.get("vhost").and_then(Value::as_str).map(str::to_owned))?;
        aggregators.push(crate::aggregators::from_file(a, &vhost)?);
    }
    let mut bindings = Vec::new();
    for b in &defs.bindings {
        if !matches!(b.destination_type.as_str(), "queue" | "exchange") {
            return Err(MgmtError::bad_request(format!("unknown destination_type '{}'", b.destination_type)));
        }
        let arguments = json_to_table(&b.arguments).map_err(MgmtError::bad_request)?;
        bindings.push((vhost_of(&b.vhost)?, b, body::short_name(&b.routing_key, "routing key")?, arguments));
    }

    // Every name an entry refers to exists, in the file or in the broker.
    let vhost_known = |v: &str| defs.vhosts.iter().any(|d| d.name == v) || m.broker.vhost(v).is_some();
    let user_known = |u: &str| defs.users.iter().any(|d| d.name == u) || m.broker.users().get(u).is_some();
    for (vhost, user, _) in &permissions {
        if !vhost_known(vhost) || !user_known(user) {
            return Err(MgmtError::bad_request(format!("permission of '{user}' in '{vhost}': no such user or vhost")));
        }
    }
    let objects = exchanges
        .iter()
        .map(|(v, _)| v)
        .chain(queues.iter().map(|(v, _)| v))
        .chain(bindings.iter().map(|b| &b.0))
        .chain(policies.iter().map(|p| &p.vhost))
        .chain(contracts.iter().map(|c| &c.vhost))
        .chain(transforms.iter().map(|t| &t.vhost))
        .chain(aggregators.iter().map(|a| &a.vhost))
        .chain(vhost_limits.iter().map(|(v, _)| v));
    if let Some(v) = objects.into_iter().find(|v| !vhost_known(v)) {
        return Err(MgmtError::bad_request(format!("an object is in vhost '{v}', which does not exist")));
    }

    if only_vhost.is_none() {
        for v in &defs.vhosts {
            m.broker.add_vhost(&v.name)?;
        }
        for u in users {
            m.broker.put_user(u)?;
        }
        for (vhost, user, permission) in permissions {
            m.broker.set_permission(&vhost, &user, permission)?;
        }
        for (user, limits) in user_limits {
            for (name, value) in limits.iter() {
                m.broker.set_user_limit(&user, name, value)?;
            }
        }
    }
    // Before the queues, whose count `max-queues` bounds (RabbitMQ's order too).
    for (vhost, limits) in vhost_limits {
        for (name, value) in limits.iter() {
            m.broker.set_vhost_limit(&vhost, name, value)?;
        }
    }
    for policy in policies {
        m.broker.put_policy(policy)?;
    }
    for contract in contracts {
        m.broker.put_contract(contract)?;
    }
    for transform in transforms {
        m.broker.put_transform(transform)?;
    }
    let limits = m.broker.limits();
    for (vhost, def) in exchanges {
        m.vhost(&vhost)?.declare_exchange(def, false, limits.max_exchanges)?;
    }
    for (vhost, req) in queues {
        m.vhost(&vhost)?.declare_queue(req, 0, limits.max_queues)?;
    }
    for (vhost, b, routing_key, arguments) in bindings {
        let v = m.vhost(&vhost)?;
        let missing = || {
            MgmtError::bad_request(format!("binding from '{}' to '{}': no such destination", b.source, b.destination))
        };
        let dest = match b.destination_type.as_str() {
            "queue" => Dest::Queue(v.queue(&b.destination).ok_or_else(missing)?),
            _ => Dest::Exchange(v.exchange(exchange_name(&b.destination)).ok_or_else(missing)?),
        };
        v.bind(exchange_name(&b.source), dest, routing_key, arguments)?;
    }
    // Last: they consume queues and publish to exchanges the file may have just declared.
    for aggregator in aggregators {
        m.broker.put_aggregator(aggregator)?;
    }
    m.durable().await?;
    Ok(StatusCode::NO_CONTENT)
}

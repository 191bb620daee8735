//! `GET /api/definitions`: the broker's definitions in RabbitMQ's JSON format (users with
//! RabbitMQ's password hashes, vhosts, permissions, policies, durable queues, exchanges and
//! bindings), so that RabbitMQ can import what Warren exports.

use crate::auth::Caller;
use crate::error::Result;
use crate::listing::in_vhosts;
use crate::{access, view, Mgmt};
use axum::extract::{Path, State};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;
use warren_broker::{Dest, VHost};
use warren_core::json::table_to_json;

/// The durable objects of one vhost: queues, exchanges (not the predeclared ones) and the
/// bindings between durable ends.
fn objects(v: &VHost) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let mut names = v.queue_names();
    names.sort();
    let queues = names
        .iter()
        .filter_map(|n| v.queue(n))
        .filter(|q| q.durable && q.exclusive_owner.is_none())
        .map(|q| {
            json!({"name": q.name.as_str(), "vhost": v.name, "durable": true, "auto_delete": q.auto_delete,
                   "arguments": table_to_json(&q.arguments)})
        })
        .collect();
    let mut all = v.exchanges();
    all.sort_by(|a, b| a.name().cmp(b.name()));
    let mut exchanges = Vec::new();
    let mut bindings = Vec::new();
    for x in &all {
        if x.def.durable && !x.is_default() && !warren_core::names::is_reserved(x.name()) {
            exchanges.push(json!({
                "name": x.name(), "vhost": v.name, "type": x.def.type_name(), "durable": true,
                "auto_delete": x.def.auto_delete, "internal": x.def.internal, "arguments": table_to_json(&x.def.arguments),
            }));
        }
        if !x.def.durable {
            continue;
        }
        for b in x.bindings.read().list() {
            let durable_end = match &b.destination {
                Dest::Queue(q) | Dest::Transformed(q, _) => q.durable && q.exclusive_owner.is_none(),
                Dest::Exchange(d) => d.def.durable,
            };
            if durable_end {
                let mut one = view::binding(&v.name, x.name(), &b.destination, b.routing_key.as_str(), &b.arguments);
                if let Some(map) = one.as_object_mut() {
                    map.remove("properties_key");
                }
                bindings.push(one);
            }
        }
    }
    (queues, exchanges, bindings)
}

/// Policies, and operator policies as the runtime parameters RabbitMQ exports them as
/// (component `operator_policy`), of one vhost or all.
fn policies_of(m: &Mgmt, vhost: Option<&str>) -> (Vec<Value>, Vec<Value>) {
    let all = m.broker.policies();
    let mut chosen: Vec<_> = all.all().iter().filter(|p| vhost.is_none_or(|v| p.vhost == v)).collect();
    chosen.sort_by(|a, b| (&a.vhost, &a.name).cmp(&(&b.vhost, &b.name)));
    let (mut policies, mut parameters) = (Vec::new(), Vec::new());
    for p in chosen {
        let mut one = crate::policies::policy_json(p);
        if p.operator {
            let value = json!({"pattern": one["pattern"], "definition": one["definition"],
                               "priority": one["priority"], "apply-to": one["apply-to"]});
            parameters.push(json!({"value": value, "vhost": p.vhost, "component": "operator_policy", "name": p.name}));
        } else {
            if vhost.is_some() {
                one.as_object_mut().map(|o| o.remove("vhost"));
            }
            policies.push(one);
        }
    }
    (policies, parameters)
}

/// Warren's contracts, transforms and aggregators of one vhost or all, under keys of Warren's
/// own (`contracts`, `transforms`, `aggregators`), added only when there are some, so RabbitMQ imports the file as
/// before.
fn with_warren_objects(m: &Mgmt, vhost: Option<&str>, mut defs: Value) -> Value {
    let contracts = m.broker.contracts();
    let transforms = m.broker.transforms();
    let aggregators = m.broker.aggregators();
    let lists = [
        (
            "contracts",
            in_vhosts(contracts.all(), vhost, |_| true, |c| (&c.vhost, &c.name), crate::contracts::contract_json),
        ),
        (
            "transforms",
            in_vhosts(transforms.all(), vhost, |_| true, |t| (&t.vhost, &t.name), crate::transforms::transform_json),
        ),
        (
            "aggregators",
            in_vhosts(
                &aggregators,
                vhost,
                |_| true,
                |a| (&a.def.vhost, &a.def.name),
                crate::aggregators::aggregator_json,
            ),
        ),
    ];
    if let Some(object) = defs.as_object_mut() {
        for (key, list) in lists.into_iter().filter(|(_, list)| !list.is_empty()) {
            object.insert(key.into(), Value::Array(list));
        }
    }
    defs
}

pub async fn export(State(m): State<Arc<Mgmt>>, caller: Caller) -> Result<Json<Value>> {
    caller.require_administrator()?;
    let (mut queues, mut exchanges, mut bindings) = (Vec::new(), Vec::new(), Vec::new());
    let vhosts = m.broker.vhosts();
    for v in &vhosts {
        let (q, x, b) = objects(v);
        queues.extend(q);
        exchanges.extend(x);
        bindings.extend(b);
    }
    let (policies, mut parameters) = policies_of(&m, None);
    parameters.extend(crate::limits::vhost_limit_parameters(&m, None));
    Ok(Json(with_warren_objects(
        &m,
        None,
        json!({
            "rabbit_version": "3.10.8",
            "rabbitmq_version": "3.10.8",
            "product_name": "Warren",
            "product_version": env!("CARGO_PKG_VERSION"),
            "users": m.broker.users().all().iter().map(|u| access::user_json(&m, u)).collect::<Vec<_>>(),
            "vhosts": vhosts.iter().map(|v| json!({"name": v.name, "limits": [], "metadata": {"description": "", "tags": []}})).collect::<Vec<_>>(),
            "permissions": access::all_permissions(&m),
            "topic_permissions": [],
            "parameters": parameters,
            "global_parameters": [],
            "policies": policies,
            "queues": queues,
            "exchanges": exchanges,
            "bindings": bindings,
        }),
    )))
}

pub async fn export_vhost(
    State(m): State<Arc<Mgmt>>,
    caller: Caller,
    Path(vhost): Path<String>,
) -> Result<Json<Value>> {
    caller.require_administrator()?;
    let v = m.vhost(&vhost)?;
    let (queues, exchanges, bindings) = objects(&v);
    let (policies, mut parameters) = policies_of(&m, Some(&vhost));
    parameters.extend(crate::limits::vhost_limit_parameters(&m, Some(&vhost)));
    Ok(Json(with_warren_objects(
        &m,
        Some(&vhost),
        json!({
            "rabbit_version": "3.10.8",
            "rabbitmq_version": "3.10.8",
            "product_name": "Warren",
            "product_version": env!("CARGO_PKG_VERSION"),
            "parameters": parameters,
            "policies": policies,
            "queues": queues,
            "exchanges": exchanges,
            "bindings": bindings,
        }),
    )))
}

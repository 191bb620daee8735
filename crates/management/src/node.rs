//! The node: `/api/overview`, `/api/nodes`, health checks and the aliveness test.

use crate::auth::Caller;
use crate::error::{MgmtError, Result};
use crate::{view, Mgmt};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};
use std::sync::Arc;
use warren_broker::permissions::{Access, Resource};

/// The RabbitMQ release whose management API this one answers like.
const RABBITMQ_API_VERSION: &str = "3.10.8";

fn exchange_types() -> Value {
    let kinds = ["direct", "fanout", "headers", "topic", "x-delayed-message"];
    Value::Array(kinds.iter().map(|k| json!({"name": k, "description": "", "enabled": true})).collect())
}

fn listeners(m: &Mgmt) -> Value {
    let mut out = Vec::new();
    for (protocol, addr) in [("amqp", m.settings.amqp_addr), ("http", m.settings.http_addr)] {
        if let Some(addr) = addr {
            out.push(
                json!({"node": m.node, "protocol": protocol, "ip_address": addr.ip().to_string(), "port": addr.port()}),
            );
        }
    }
    Value::Array(out)
}

pub async fn overview(State(m): State<Arc<Mgmt>>, caller: Caller) -> Json<Value> {
    let vhosts = m.visible_vhosts(&caller);
    let (mut queues, mut exchanges, mut consumers) = (0usize, 0usize, 0usize);
    let (mut ready, mut unacked) = (0usize, 0usize);
    for v in &vhosts {
        exchanges += v.exchanges().len();
        for q in v.queue_names().iter().filter_map(|n| v.queue(n)) {
            let (r, u, c) = q.message_counts();
            queues += 1;
            ready += r;
            unacked += u;
            consumers += c;
        }
    }
    let connections = m.broker.registry().connections();
    let connections: Vec<_> = connections.iter().filter(|c| caller.sees_all() || c.meta.user == caller.name).collect();
    let channels: usize = connections.iter().map(|c| c.channel_count()).sum();
    // The node's counts are everyone's: shown to those who see every vhost.
    let message_stats = if caller.sees_all() {
        let (mut node, http) = crate::rates::node_counts(&m);
        node.add(&http);
        m.rates.message_stats(&crate::rates::Key::Node, &node, &crate::rates::channel_kinds())
    } else {
        json!({})
    };
    Json(json!({
        "management_version": RABBITMQ_API_VERSION,
        "rabbitmq_version": RABBITMQ_API_VERSION,
        "product_name": "Warren",
        "product_version": env!("CARGO_PKG_VERSION"),
        "rates_mode": "basic",
        "cluster_name": m.node,
        "node": m.node,
        "exchange_types": exchange_types(),
        "object_totals": {
            "connections": connections.len(), "channels": channels, "exchanges": exchanges,
            "queues": queues, "consumers": consumers,
        },
        "queue_totals": {"messages": ready + unacked, "messages_ready": ready, "messages_unacknowledged": unacked},
        "message_stats": message_stats,
        "listeners": listeners(&m),
        "contexts": [{"node": m.node, "description": "Warren management", "path": "/",
                      "port": m.settings.http_addr.map(|a| a.port())}],
    }))
}

pub async fn cluster_name(State(m): State<Arc<Mgmt>>, _caller: Caller) -> Json<Value> {
    Json(json!({"name": m.node}))
}

fn node_json(m: &Mgmt) -> Value {
    let uptime_ms = m.broker.now_ms().saturating_sub(m.broker.started_at_ms());
    json!({
        "name": m.node,
        "type": "disc",
        "running": true,
        "uptime": uptime_ms,
        "os_pid": std::process::id().to_string(),
        "processors": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        "mem_used": view::rss_bytes(),
        "mem_alarm": m.broker.alarms().is_raised(warren_broker::alarms::Resource::Memory),
        "disk_free_alarm": m.broker.alarms().is_raised(warren_broker::alarms::Resource::Disk),
        "mem_limit": m.broker.alarms().limits().memory_high_watermark_bytes,
        "disk_free_limit": m.broker.alarms().limits().disk_free_limit_bytes,
        "partitions": [],
        "exchange_types": exchange_types(),
        "auth_mechanisms": [{"name": "PLAIN", "enabled": true}, {"name": "AMQPLAIN", "enabled": true}],
        "rates_mode": "basic",
    })
}

pub async fn nodes(State(m): State<Arc<Mgmt>>, _caller: Caller) -> Json<Value> {
    Json(json!([node_json(&m)]))
}

pub async fn node(State(m): State<Arc<Mgmt>>, _caller: Caller, Path(name): Path<String>) -> Result<Json<Value>> {
    if name != m.node {
        return Err(MgmtError::not_found());
    }
    Ok(Json(node_json(&m)))
}

pub async fn extensions(_caller: Caller) -> Json<Value> {
    Json(json!([]))
}

/// A health check that passes while the node serves (Warren has one node).
pub async fn ok(_caller: Caller) -> Json<Value> {
    Json(json!({"status": "ok"}))
}

/// The alarms health checks: ok, or 503 naming the alarms raised (as RabbitMQ answers).
pub async fn alarms(State(m): State<Arc<Mgmt>>, _caller: Caller) -> Response {
    let raised = m.broker.alarms().raised();
    if raised.is_empty() {
        return Json(json!({"status": "ok"})).into_response();
    }
    let names: Vec<&str> = raised.iter().map(|r| r.name()).collect();
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({"status": "failed", "reason": format!("resource alarm(s) in effect: {}", names.join(", ")),
            "alarms": names.iter().map(|n| json!({"resource": n, "node": m.node})).collect::<Vec<_>>()})),
    )
        .into_response()
}

/// A failed check: 503 with `{"status": "failed", "reason"}`, as RabbitMQ answers.
fn failed(reason: String) -> Response {
    (StatusCode::SERVICE_UNAVAILABLE, Json(json!({"status": "failed", "reason": reason}))).into_response()
}

pub async fn port_listener(State(m): State<Arc<Mgmt>>, _caller: Caller, Path(port): Path<u16>) -> Response {
    let ports: Vec<u16> = [m.settings.amqp_addr, m.settings.http_addr].iter().flatten().map(|a| a.port()).collect();
    if ports.contains(&port) {
        return Json(json!({"status": "ok", "port": port})).into_response();
    }
    failed(format!("No active listener on port {port}"))
}

pub async fn protocol_listener(State(m): State<Arc<Mgmt>>, _caller: Caller, Path(protocol): Path<String>) -> Response {
    let active = match protocol.as_str() {
        "amqp" | "amqp091" | "amqp0-9-1" => m.settings.amqp_addr.is_some(),
        "http" | "management" => m.settings.http_addr.is_some(),
        _ => false,
    };
    if active {
        return Json(json!({"status": "ok", "protocol": protocol})).into_response();
    }
    failed(format!("No active listener for protocol {protocol}"))
}

/// `GET /api/aliveness-test/{vhost}`: declares the queue `aliveness-test`, publishes a message
/// to it and reads it back.
pub async fn aliveness(State(m): State<Arc<Mgmt>>, caller: Caller, Path(vhost): Path<String>) -> Result<Response> {
    for access in [Access::Configure, Access::Write, Access::Read] {
        caller.require(&vhost, access, Resource::Queue, "aliveness-test")?;
    }
    caller.require(&vhost, Access::Write, Resource::Exchange, "")?;
    let v = m.vhost(&vhost)?;
    let name = amqp_codec::ShortStr::from("aliveness-test");
    let req = warren_broker::QueueDeclare {
        server_named: false,
        name: name.clone(),
        passive: false,
        durable: false,
        exclusive: false,
        auto_delete: false,
        arguments: Default::default(),
    };
    let (q, _, _) = v.declare_queue(req, 0, m.broker.limits().max_queues)?;
    let body = bytes::Bytes::from_static(b"test_message");
    let message = warren_core::Message::new("".into(), name, Default::default(), body.clone()).at(m.broker.now_ms());
    m.broker.publish(&v, "", Arc::new(message), None)?;
    match q.get(true) {
        Some((entry, _)) if entry.message.body == body => Ok(Json(json!({"status": "ok"})).into_response()),
        _ => Ok(failed("the test message did not come back".into())),
    }
}

//! The JSON of each broker object, with RabbitMQ's field names.

use crate::rates::{channel_kinds, Key, Rates, QUEUE_KINDS};
use serde_json::{json, Value};
use std::sync::Arc;
use warren_broker::registry::{ChannelInfo, ConnectionEntry};
use warren_broker::stats::Totals;
use warren_broker::{Broker, Consumer, Dest, Exchange, Queue};
use warren_core::json::table_to_json;

/// Resident memory of this process, from /proc (0 where there is none).
pub fn rss_bytes() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    statm.split_whitespace().nth(1).and_then(|p| p.parse::<u64>().ok()).unwrap_or(0) * 4096
}

/// The node's name, as RabbitMQ names nodes (`name@host`).
pub fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let host = host.trim();
    format!("warren@{}", if host.is_empty() { "localhost" } else { host })
}

pub fn queue(q: &Queue, node: &str, rates: &Rates) -> Value {
    let mut view = queue_fields(q, node, rates);
    if let Some(dedup) = &q.dedup {
        view["deduplication"] = deduplication(dedup);
    }
    view
}

fn queue_fields(q: &Queue, node: &str, rates: &Rates) -> Value {
    let (ready, unacked, consumers) = q.message_counts();
    let applied = q.applied_policy();
    let effective: serde_json::Map<String, Value> =
        applied.definition.iter().map(|(k, v)| (k.clone(), warren_core::json::value_to_json(v))).collect();
    json!({
        "name": q.name.as_str(),
        "vhost": q.vhost,
        "durable": q.durable,
        "auto_delete": q.auto_delete,
        "exclusive": q.exclusive_owner.is_some(),
        "arguments": table_to_json(&q.arguments),
        "consumers": consumers,
        "messages": ready + unacked,
        "messages_ready": ready,
        "messages_unacknowledged": unacked,
        "state": "running",
        "type": "classic",
        "node": node,
        "policy": applied.policy,
        "operator_policy": applied.operator_policy,
        "effective_policy_definition": effective,
        "message_stats": rates.message_stats(
            &Key::Queue(q.vhost.clone(), q.name.to_string()),
            &q.counters.snapshot(),
            QUEUE_KINDS
        ),
    })
}

/// A deduplication window's settings and counts (Warren's own field, present only when the
/// object deduplicates).
fn deduplication(dedup: &warren_broker::dedup::Deduplicator) -> Value {
    json!({
        "cache_size": dedup.settings.cache_size,
        "cache_ttl": dedup.settings.ttl_ms,
        "header": dedup.settings.header,
        "keys": dedup.len(),
        "duplicates": dedup.duplicates(),
    })
}

pub fn exchange(x: &Exchange, vhost: &str) -> Value {
    let mut view = exchange_fields(x, vhost);
    if let Some(dedup) = &x.dedup {
        view["deduplication"] = deduplication(dedup);
    }
    if let Some(split) = &x.split {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &x.split_counts;
        view["split"] = json!({
            "by": split.text,
            "max_parts": split.max_parts,
            "messages": c.messages.load(Relaxed),
            "parts": c.parts.load(Relaxed),
            "failed": c.failed.load(Relaxed),
        });
    }
    view
}

fn exchange_fields(x: &Exchange, vhost: &str) -> Value {
    json!({
        "name": x.name(),
        "vhost": vhost,
        "type": x.def.type_name(),
        "durable": x.def.durable,
        "auto_delete": x.def.auto_delete,
        "internal": x.def.internal,
        "arguments": table_to_json(&x.def.arguments),
        "policy": x.policy().map(|p| p.name.clone()),
    })
}

/// RabbitMQ's key for one binding among those between the same two ends: `~` for an empty
/// routing key without arguments, the routing key, or the key and a hash of the arguments.
pub fn properties_key(routing_key: &str, arguments: &amqp_codec::FieldTable) -> String {
    use base64::Engine;
    use sha2::Digest;
    let key = if routing_key.is_empty() { "~".to_owned() } else { routing_key.replace('~', "%7E") };
    if arguments.is_empty() {
        return key;
    }
    let mut encoded = bytes::BytesMut::new();
    arguments.encode(&mut encoded);
    let hash = sha2::Sha256::digest(&encoded);
    format!("{key}~{}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&hash[..12]))
}

pub fn binding(vhost: &str, source: &str, dest: &Dest, routing_key: &str, arguments: &amqp_codec::FieldTable) -> Value {
    let (destination, kind) = match dest {
        Dest::Queue(q) | Dest::Transformed(q, _) => (q.name.as_str().to_owned(), "queue"),
        Dest::Exchange(x) => (x.name().to_owned(), "exchange"),
    };
    json!({
        "source": source,
        "vhost": vhost,
        "destination": destination,
        "destination_type": kind,
        "routing_key": routing_key,
        "arguments": table_to_json(arguments),
        "properties_key": properties_key(routing_key, arguments),
    })
}

/// Every binding of a vhost, the default exchange's implicit ones first (as RabbitMQ lists them).
pub fn bindings_of(broker: &Broker, vhost: &str) -> Vec<Value> {
    let Some(v) = broker.vhost(vhost) else { return Vec::new() };
    let mut out = Vec::new();
    let mut names = v.queue_names();
    names.sort();
    for name in names {
        let args = amqp_codec::FieldTable::new();
        out.push(json!({
            "source": "", "vhost": vhost, "destination": name, "destination_type": "queue",
            "routing_key": name, "arguments": table_to_json(&args), "properties_key": name.replace('~', "%7E"),
        }));
    }
    let mut exchanges = v.exchanges();
    exchanges.sort_by(|a, b| a.name().cmp(b.name()));
    for x in exchanges {
        for b in x.bindings.read().list() {
            out.push(binding(vhost, x.name(), &b.destination, b.routing_key.as_str(), &b.arguments));
        }
    }
    out
}

pub fn connection(c: &ConnectionEntry, node: &str) -> Value {
    use std::sync::atomic::Ordering::Relaxed;
    let m = &c.meta;
    json!({
        "name": m.name(),
        "node": node,
        "type": "network",
        // RabbitMQ's words for a publisher a resource alarm holds, and one flow control holds.
        "state": match (c.blocked.load(Relaxed), c.flow.load(Relaxed)) {
            (true, _) => "blocked",
            (false, true) => "flow",
            (false, false) => "running",
        },
        "protocol": m.protocol,
        "auth_mechanism": m.auth_mechanism,
        "user": m.user,
        "vhost": m.vhost,
        "host": m.local.ip().to_string(),
        "port": m.local.port(),
        "peer_host": m.peer.ip().to_string(),
        "peer_port": m.peer.port(),
        "ssl": m.tls,
        "channels": c.channel_count(),
        "channel_max": m.channel_max,
        "frame_max": m.frame_max,
        "timeout": m.heartbeat_s,
        "connected_at": m.connected_at_ms,
        "client_properties": table_to_json(&m.client_properties),
        "recv_oct": c.stats.recv_oct.load(Relaxed),
        "recv_cnt": c.stats.recv_cnt.load(Relaxed),
        "send_oct": c.stats.send_oct.load(Relaxed),
        "send_cnt": c.stats.send_cnt.load(Relaxed),
    })
}

fn connection_details(c: &ConnectionEntry) -> Value {
    json!({"name": c.meta.name(), "peer_host": c.meta.peer.ip().to_string(), "peer_port": c.meta.peer.port()})
}

pub fn channel_name(c: &ConnectionEntry, number: u16) -> String {
    format!("{} ({number})", c.meta.name())
}

pub fn channel(c: &ConnectionEntry, ch: &ChannelInfo, counts: &Totals, node: &str, rates: &Rates) -> Value {
    let name = channel_name(c, ch.number);
    json!({
        "message_stats": rates.message_stats(&Key::Channel(name.clone()), counts, &channel_kinds()),
        "name": name,
        "number": ch.number,
        "node": node,
        "state": "running",
        "user": c.meta.user,
        "vhost": c.meta.vhost,
        "connection_details": connection_details(c),
        "confirm": ch.confirm,
        "transactional": ch.transactional,
        "consumer_count": ch.consumer_count,
        "messages_unacknowledged": ch.messages_unacknowledged,
        "prefetch_count": ch.prefetch_count,
        "global_prefetch_count": ch.global_prefetch_count,
    })
}

pub fn consumer(broker: &Broker, q: &Queue, consumer: &Arc<Consumer>, node: &str) -> Value {
    let (connection, number) = consumer.owner;
    let channel_details = match broker.registry().connection(connection) {
        Some(c) => json!({
            "name": channel_name(&c, number),
            "number": number,
            "node": node,
            "connection_name": c.meta.name(),
            "peer_host": c.meta.peer.ip().to_string(),
            "peer_port": c.meta.peer.port(),
            "user": c.meta.user,
        }),
        // An HTTP consumer (push subscription), registered with no connection.
        None => json!({"name": "", "number": number, "node": node}),
    };
    json!({
        "consumer_tag": consumer.tag.as_str(),
        "queue": {"name": q.name.as_str(), "vhost": q.vhost},
        "channel_details": channel_details,
        "ack_required": !consumer.no_ack,
        "exclusive": consumer.exclusive,
        "priority": consumer.priority,
        "active": true,
        "activity_status": "up",
        "arguments": {},
    })
}

//! Prometheus metrics at `/metrics` (totals) and `/metrics/per-object` (one series per queue),
//! with the names and labels of RabbitMQ's Prometheus plugin, so its dashboards find them. Read
//! from the broker's state at scrape time: nothing is counted on the publish path for them.
//! Like RabbitMQ's endpoint, it asks for no credentials. Message counters (published,
//! delivered, acknowledged) are not kept yet.

use crate::{view, Mgmt};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

/// Text exposition format 0.0.4.
const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

struct Out(String);

impl Out {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{}\"", escape(v))).collect();
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{}}} {value}", labels.join(","));
        }
    }

    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// A per-queue series: its name, its help text, and its value for one queue.
type Series = (&'static str, &'static str, fn(&Row) -> usize);

/// One queue's figures.
struct Row {
    vhost: String,
    queue: String,
    ready: usize,
    unacked: usize,
    consumers: usize,
}

fn queues(m: &Mgmt) -> Vec<Row> {
    let mut out = Vec::new();
    for v in m.broker.vhosts() {
        let mut names = v.queue_names();
        names.sort();
        for q in names.iter().filter_map(|n| v.queue(n)) {
            let (ready, unacked, consumers) = q.message_counts();
            out.push(Row { vhost: v.name.clone(), queue: q.name.to_string(), ready, unacked, consumers });
        }
    }
    out
}

fn common(m: &Mgmt, out: &mut Out, queues: &[Row]) {
    let registry = m.broker.registry();
    let connections = registry.connections();
    let channels: usize = connections.iter().map(|c| c.channel_count()).sum();
    out.family("rabbitmq_identity_info", "untyped", "RabbitMQ node and cluster identity info");
    out.sample("rabbitmq_identity_info", &[("rabbitmq_node", &m.node), ("rabbitmq_cluster", &m.node)], 1);
    out.family("rabbitmq_build_info", "untyped", "RabbitMQ and Erlang/OTP version info");
    out.sample(
        "rabbitmq_build_info",
        &[("rabbitmq_version", "3.10.8"), ("product", "Warren"), ("product_version", env!("CARGO_PKG_VERSION"))],
        1,
    );
    out.one("rabbitmq_connections", "gauge", "Connections currently open", connections.len());
    out.one(
        "rabbitmq_connections_opened_total",
        "counter",
        "Total number of connections opened",
        registry.opened.load(Relaxed),
    );
    out.one(
        "rabbitmq_connections_closed_total",
        "counter",
        "Total number of connections closed or terminated",
        registry.closed.load(Relaxed),
    );
    out.one("rabbitmq_channels", "gauge", "Channels currently open", channels);
    out.one("rabbitmq_queues", "gauge", "Queues available", queues.len());
    out.one(
        "rabbitmq_consumers",
        "gauge",
        "Consumers currently connected",
        queues.iter().map(|q| q.consumers).sum::<usize>(),
    );
    out.one("rabbitmq_process_resident_memory_bytes", "gauge", "Memory used in bytes", view::rss_bytes());
}

/// `GET /metrics`: the node's totals.
pub async fn aggregated(State(m): State<Arc<Mgmt>>) -> impl IntoResponse {
    let queues = queues(&m);
    let mut out = Out(String::new());
    common(&m, &mut out, &queues);
    out.one(
        "rabbitmq_queue_messages_ready",
        "gauge",
        "Messages ready to be delivered to consumers",
        queues.iter().map(|q| q.ready).sum::<usize>(),
    );
    out.one(
        "rabbitmq_queue_messages_unacked",
        "gauge",
        "Messages delivered to consumers but not yet acknowledged",
        queues.iter().map(|q| q.unacked).sum::<usize>(),
    );
    out.one(
        "rabbitmq_queue_messages",
        "gauge",
        "Sum of ready and unacknowledged messages",
        queues.iter().map(|q| q.ready + q.unacked).sum::<usize>(),
    );
    out.one(
        "rabbitmq_queue_consumers",
        "gauge",
        "Consumers on a queue",
        queues.iter().map(|q| q.consumers).sum::<usize>(),
    );
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], out.0)
}

/// `GET /metrics/per-object`: the queue metrics per queue, labelled `vhost` and `queue`.
pub async fn per_object(State(m): State<Arc<Mgmt>>) -> impl IntoResponse {
    let queues = queues(&m);
    let mut out = Out(String::new());
    common(&m, &mut out, &queues);
    let series: [Series; 4] = [
        ("rabbitmq_queue_messages_ready", "Messages ready to be delivered to consumers", |q| q.ready),
        ("rabbitmq_queue_messages_unacked", "Messages delivered to consumers but not yet acknowledged", |q| q.unacked),
        ("rabbitmq_queue_messages", "Sum of ready and unacknowledged messages", |q| q.ready + q.unacked),
        ("rabbitmq_queue_consumers", "Consumers on a queue", |q| q.consumers),
    ];
    for (name, help, value) in series {
        out.family(name, "gauge", help);
        for q in &queues {
            out.sample(name, &[("vhost", &q.vhost), ("queue", &q.queue)], value(q));
        }
    }
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], out.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = Out(String::new());
        out.sample("m", &[("queue", "a\"b\\c\nd")], 1);
        assert_eq!(out.0, "m{queue=\"a\\\"b\\\\c\\nd\"} 1\n");
    }
}

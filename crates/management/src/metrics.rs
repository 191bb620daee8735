//! Prometheus metrics at `/metrics` (totals) and `/metrics/per-object` (one series per queue and
//! per channel), with the names and labels of RabbitMQ's Prometheus plugin, so its dashboards
//! find them, and `warren_*` metrics of what is Warren's own (tracking, callbacks, pushes, the
//! store's fsyncs, paging). Read at scrape time from per-object counters (`warren_broker::stats`)
//! and state: the scrape takes no lock on the publish path. Counters are monotonic: a closed
//! channel's counts move into the node's totals as it closes. Like RabbitMQ's endpoint, it asks
//! for no credentials.

use crate::{view, Mgmt};
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use warren_broker::stats::{Counted, Totals};

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
    paged_out: u64,
    memory_bytes: u64,
    counts: Totals,
}

fn queues(m: &Mgmt) -> Vec<Row> {
    let mut out = Vec::new();
    for v in m.broker.vhosts() {
        let mut names = v.queue_names();
        names.sort();
        for q in names.iter().filter_map(|n| v.queue(n)) {
            let (ready, unacked, consumers) = q.message_counts();
            let (memory_bytes, paged_out) = q.memory();
            out.push(Row {
                vhost: v.name.clone(),
                queue: q.name.to_string(),
                ready,
                unacked,
                consumers,
                paged_out,
                memory_bytes,
                counts: q.counters.snapshot(),
            });
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
    global(m, out);
    warren(m, out, queues);
}

/// A global counter: its name's middle part, its help text, and its value from the counts.
type GlobalSeries = (&'static str, &'static str, fn(&Totals) -> u64);

/// RabbitMQ's `rabbitmq_global_*` counters, per protocol (`amqp091`, and Warren's `http`).
fn global(m: &Mgmt, out: &mut Out) {
    let (amqp, http) = crate::rates::node_counts(m);
    let protocols = [("amqp091", amqp), ("http", http)];
    let delivered = |t: &Totals| t.deliver_get();
    let series: [GlobalSeries; 14] = [
        ("received", "Total number of messages received from publishers", |t| t.get(Counted::Publish)),
        ("received_confirm", "Total number of messages received from publishers expecting confirmations", |t| {
            t.get(Counted::PublishInConfirm)
        }),
        ("routed", "Total number of messages routed to queues or streams", |t| t.get(Counted::Routed)),
        ("unroutable_dropped", "Total number of messages published as non-mandatory into an exchange and dropped as unroutable", |t| {
            t.get(Counted::DropUnroutable)
        }),
        ("unroutable_returned", "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable", |t| {
            t.get(Counted::ReturnUnroutable)
        }),
        ("confirmed", "Total number of messages confirmed to publishers", |t| t.get(Counted::Confirm)),
        ("delivered", "Total number of messages delivered to consumers", delivered),
        ("delivered_consume_manual_ack", "Total number of messages delivered to consumers using manual acknowledgement mode", |t| {
            t.get(Counted::Deliver)
        }),
        ("delivered_consume_auto_ack", "Total number of messages delivered to consumers using automatic acknowledgement mode", |t| {
            t.get(Counted::DeliverNoAck)
        }),
        ("delivered_get_manual_ack", "Total number of messages delivered to consumers via basic.get using manual acknowledgement mode", |t| {
            t.get(Counted::Get)
        }),
        ("delivered_get_auto_ack", "Total number of messages delivered to consumers via basic.get using automatic acknowledgement mode", |t| {
            t.get(Counted::GetNoAck)
        }),
        ("get_empty", "Total number of times basic.get operations fetched no message", |t| t.get(Counted::GetEmpty)),
        ("redelivered", "Total number of messages redelivered to consumers", |t| t.get(Counted::Redeliver)),
        ("acknowledged", "Total number of message acknowledgements received from consumers", |t| t.get(Counted::Ack)),
    ];
    for (name, help, value) in series {
        let name = format!("rabbitmq_global_messages_{name}_total");
        out.family(&name, "counter", help);
        for (protocol, totals) in &protocols {
            out.sample(&name, &[("protocol", protocol)], value(totals));
        }
    }
}

/// RabbitMQ's channel counters, summed over the node's AMQP channels (open and closed).
fn channel_totals(m: &Mgmt, out: &mut Out) {
    let amqp = m.broker.registry().totals();
    for (name, help, kind) in CHANNEL_SERIES {
        out.one(name, "counter", help, amqp.get(*kind));
    }
}

/// RabbitMQ's per-channel counters and the counted kind each reads.
const CHANNEL_SERIES: &[(&str, &str, Counted)] = &[
    (
        "rabbitmq_channel_messages_published_total",
        "Total number of messages published into an exchange on a channel",
        Counted::Publish,
    ),
    (
        "rabbitmq_channel_messages_confirmed_total",
        "Total number of messages published into an exchange and confirmed on the channel",
        Counted::Confirm,
    ),
    (
        "rabbitmq_channel_messages_unroutable_returned_total",
        "Total number of messages published as mandatory into an exchange and returned to the publisher as unroutable",
        Counted::ReturnUnroutable,
    ),
    (
        "rabbitmq_channel_messages_unroutable_dropped_total",
        "Total number of messages published as non-mandatory into an exchange and dropped as unroutable",
        Counted::DropUnroutable,
    ),
    (
        "rabbitmq_channel_get_ack_total",
        "Total number of messages fetched with basic.get in manual acknowledgement mode",
        Counted::Get,
    ),
    (
        "rabbitmq_channel_get_total",
        "Total number of messages fetched with basic.get in automatic acknowledgement mode",
        Counted::GetNoAck,
    ),
    (
        "rabbitmq_channel_messages_delivered_ack_total",
        "Total number of messages delivered to consumers in manual acknowledgement mode",
        Counted::Deliver,
    ),
    (
        "rabbitmq_channel_messages_delivered_total",
        "Total number of messages delivered to consumers in automatic acknowledgement mode",
        Counted::DeliverNoAck,
    ),
    (
        "rabbitmq_channel_messages_redelivered_total",
        "Total number of messages redelivered to consumers",
        Counted::Redeliver,
    ),
    ("rabbitmq_channel_messages_acked_total", "Total number of messages acknowledged by consumers", Counted::Ack),
    (
        "rabbitmq_channel_get_empty_total",
        "Total number of times basic.get operations fetched no message",
        Counted::GetEmpty,
    ),
];

/// What is Warren's own: tracking and callbacks, HTTP pushes, the store, paging.
fn warren(m: &Mgmt, out: &mut Out, queues: &[Row]) {
    let tracker = m.broker.tracker();
    out.one("warren_tracked_messages", "gauge", "Messages whose outcome is tracked now", tracker.len());
    let (t, h) = (&tracker.stats, m.broker.http_stats());
    let counters = [
        ("warren_tracked_messages_total", "Messages tracked since the start", &t.tracked),
        ("warren_callback_attempts_total", "Outcome callbacks attempted", &t.callback_attempts),
        ("warren_callbacks_delivered_total", "Outcome callbacks answered with 2xx", &t.callbacks_delivered),
        ("warren_callbacks_failed_total", "Outcome callbacks given up", &t.callbacks_failed),
        ("warren_push_attempts_total", "HTTP push deliveries attempted", &h.push_attempts),
        ("warren_push_succeeded_total", "HTTP push deliveries answered with 2xx", &h.push_succeeded),
        (
            "warren_push_dead_lettered_total",
            "HTTP push deliveries that ran out of attempts and were dead-lettered",
            &h.push_dead_lettered,
        ),
    ];
    for (name, help, counter) in counters {
        out.one(name, "counter", help, counter.load(Relaxed));
    }
    out.one(
        "warren_queue_messages_paged_out",
        "gauge",
        "Ready messages whose bodies are on disk only",
        queues.iter().map(|q| q.paged_out).sum::<u64>(),
    );
    out.one(
        "warren_queue_memory_bytes",
        "gauge",
        "Memory charged to ready messages held in memory",
        queues.iter().map(|q| q.memory_bytes).sum::<u64>(),
    );
    let alarms = m.broker.alarms();
    out.family("warren_alarm", "gauge", "Whether a resource alarm is raised (publishers blocked)");
    for resource in [warren_broker::alarms::Resource::Memory, warren_broker::alarms::Resource::Disk] {
        out.sample("warren_alarm", &[("resource", resource.name())], u64::from(alarms.is_raised(resource)));
    }
    deduplication(m, out);
    transforms(m, out);
    splits(m, out);
    aggregators(m, out);
    if let Some(d) = m.broker.durability() {
        let store = d.store.stats();
        out.one("warren_store_segments", "gauge", "Segment files of the message log", store.segments);
        out.one("warren_store_index_bytes", "gauge", "Memory of the message log's index", store.index_bytes);
        let f = d.store.fsync_stats();
        let name = "warren_store_fsync_seconds";
        out.family(name, "histogram", "How long the message log's fsyncs take");
        for (bound, count) in &f.cumulative {
            out.sample(&format!("{name}_bucket"), &[("le", &bound.to_string())], count);
        }
        out.sample(&format!("{name}_bucket"), &[("le", "+Inf")], f.count);
        out.sample(&format!("{name}_sum"), &[], f.total_seconds);
        out.sample(&format!("{name}_count"), &[], f.count);
    }
}

/// The transform workers' counts since the start, and the messages in transforms now.
fn transforms(m: &Mgmt, out: &mut Out) {
    let book = m.broker.transform_book();
    out.one(
        "warren_transforms_in_flight",
        "gauge",
        "Messages handed to transforms and not yet routed",
        book.in_flight(),
    );
    let Some(pool) = book.pool() else { return };
    let s = &pool.stats;
    let counters = [
        ("warren_transform_runs_total", "Messages run through a transform", &s.runs),
        ("warren_transform_failures_total", "Transform runs that failed (any cause)", &s.failures),
        ("warren_transform_timeouts_total", "Worker requests stopped at their time budget", &s.timeouts),
        ("warren_transform_worker_crashes_total", "Transform workers that died on a request", &s.crashes),
        ("warren_transform_workers_started_total", "Transform workers started", &s.started),
    ];
    for (name, help, counter) in counters {
        out.one(name, "counter", help, counter.load(Relaxed));
    }
    let all = m.broker.transforms();
    if all.all().is_empty() {
        return;
    }
    type Read = fn(&warren_broker::transforms::TransformCounts) -> u64;
    let families: [(&str, &str, Read); 3] = [
        ("warren_transform_messages_total", "Messages a transform ran on", |c| c.runs.load(Relaxed)),
        ("warren_transform_outputs_total", "Messages a transform made", |c| c.outputs.load(Relaxed)),
        ("warren_transform_failed_messages_total", "Messages a transform failed on", |c| c.failures.load(Relaxed)),
    ];
    for (name, help, read) in families {
        out.family(name, "counter", help);
        for t in all.all() {
            out.sample(name, &[("vhost", &t.vhost), ("transform", &t.name)], read(&t.counts));
        }
    }
}

/// Each splitting exchange's messages split, parts made and failures.
fn splits(m: &Mgmt, out: &mut Out) {
    let mut splitting = Vec::new();
    for v in m.broker.vhosts() {
        splitting.extend(v.exchanges().into_iter().filter(|x| x.split.is_some()).map(|x| (v.name.clone(), x)));
    }
    if splitting.is_empty() {
        return;
    }
    type Read = fn(&warren_broker::exchange::SplitCounts) -> u64;
    let families: [(&str, &str, Read); 3] = [
        ("warren_split_messages_total", "Messages an exchange split", |c| c.messages.load(Relaxed)),
        ("warren_split_parts_total", "Parts an exchange's splitting made", |c| c.parts.load(Relaxed)),
        ("warren_split_failures_total", "Messages an exchange could not split", |c| c.failed.load(Relaxed)),
    ];
    for (name, help, read) in families {
        out.family(name, "counter", help);
        for (vhost, x) in &splitting {
            out.sample(name, &[("vhost", vhost), ("exchange", x.name())], read(&x.split_counts));
        }
    }
}

/// Each aggregator's counts and its groups and parts now.
fn aggregators(m: &Mgmt, out: &mut Out) {
    let all: Vec<_> = m.broker.aggregators().into_iter().map(|a| (a.def.clone(), a.figures())).collect();
    if all.is_empty() {
        return;
    }
    type Read = fn(&warren_broker::aggregators::Figures) -> u64;
    let families: [(&str, &str, &str, Read); 7] = [
        ("warren_aggregator_parts_total", "counter", "Messages an aggregator took", |f| f.parts_in),
        ("warren_aggregates_total", "counter", "Combined messages an aggregator published", |f| f.aggregated),
        ("warren_aggregate_failures_total", "counter", "Groups or parts an aggregator dead-lettered as failed", |f| {
            f.failed
        }),
        ("warren_aggregate_timeouts_total", "counter", "Groups dead-lettered incomplete at their deadline", |f| {
            f.timed_out
        }),
        ("warren_aggregator_late_parts_total", "counter", "Parts that came after their group was done", |f| f.late),
        ("warren_aggregator_groups_open", "gauge", "Groups an aggregator is gathering", |f| f.groups_open as u64),
        ("warren_aggregator_parts_held", "gauge", "Parts an aggregator holds unacked", |f| f.parts_held as u64),
    ];
    for (name, kind, help, read) in families {
        out.family(name, kind, help);
        for (def, figures) in &all {
            out.sample(name, &[("vhost", &def.vhost), ("aggregator", &def.name)], read(figures));
        }
    }
}

/// Each deduplicating exchange's and queue's duplicates kept out and keys held.
fn deduplication(m: &Mgmt, out: &mut Out) {
    let mut windows = Vec::new();
    for v in m.broker.vhosts() {
        for x in v.exchanges() {
            if let Some(d) = &x.dedup {
                windows.push((v.name.clone(), "exchange", x.name().to_owned(), d.clone()));
            }
        }
        for name in v.queue_names() {
            if let Some(d) = v.queue(&name).and_then(|q| q.dedup.clone()) {
                windows.push((v.name.clone(), "queue", name, d));
            }
        }
    }
    if windows.is_empty() {
        return;
    }
    type Read = fn(&warren_broker::dedup::Deduplicator) -> u64;
    let families: [(&str, &str, &str, Read); 2] = [
        ("warren_deduplicated_messages_total", "counter", "Duplicates a deduplication window kept out", |d| {
            d.duplicates()
        }),
        ("warren_deduplication_keys", "gauge", "Keys a deduplication window holds", |d| d.len() as u64),
    ];
    for (name, kind, help, value) in families {
        out.family(name, kind, help);
        for (vhost, object, object_name, d) in &windows {
            out.sample(name, &[("vhost", vhost), (object, object_name)], value(d));
        }
    }
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
    out.one(
        "rabbitmq_queue_messages_published_total",
        "counter",
        "Total number of messages published to queues",
        queues.iter().map(|q| q.counts.get(Counted::Publish)).sum::<u64>(),
    );
    channel_totals(&m, &mut out);
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
    let counted: [(&str, &str, Counted); 4] = [
        ("rabbitmq_queue_messages_published_total", "Total number of messages published to queues", Counted::Publish),
        (
            "warren_queue_messages_delivered_total",
            "Messages delivered from the queue (consumers and gets)",
            Counted::Deliver,
        ),
        ("warren_queue_messages_acked_total", "Deliveries from the queue acknowledged", Counted::Ack),
        ("warren_queue_messages_redelivered_total", "Messages delivered again from the queue", Counted::Redeliver),
    ];
    for (name, help, kind) in counted {
        out.family(name, "counter", help);
        for q in &queues {
            let value = if kind == Counted::Deliver { q.counts.deliver_get() } else { q.counts.get(kind) };
            out.sample(name, &[("vhost", &q.vhost), ("queue", &q.queue)], value);
        }
    }
    out.family("warren_queue_messages_paged_out", "gauge", "Ready messages whose bodies are on disk only");
    for q in &queues {
        out.sample("warren_queue_messages_paged_out", &[("vhost", &q.vhost), ("queue", &q.queue)], q.paged_out);
    }
    let registry = m.broker.registry();
    for (name, help, kind) in CHANNEL_SERIES {
        out.family(name, "counter", help);
        for c in registry.connections() {
            for (info, counts) in c.channels_with_counters() {
                let channel = view::channel_name(&c, info.number);
                out.sample(name, &[("vhost", &c.meta.vhost), ("channel", &channel)], counts.get(*kind));
            }
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

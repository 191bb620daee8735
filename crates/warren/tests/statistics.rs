//! Message counters and rates: RabbitMQ's `message_stats` on queues, channels and the overview,
//! and Prometheus metrics under the names of RabbitMQ's plugin (plus `warren_*`), counted by the
//! real server for real clients; counters stay monotonic as channels and connections close.

mod common;

use common::http::{http, send};
use common::*;
use lapin::options::*;
use reqwest::StatusCode;
use serde_json::Value;

async fn scrape(server: &TestServer, path: &str) -> String {
    let resp = within(http().get(server.http_url(path)).send()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    assert!(resp.headers()["content-type"].to_str().unwrap().starts_with("text/plain; version=0.0.4"));
    within(resp.text()).await.unwrap()
}

/// The value of the series `name` (with its labels, exactly as exposed) in a scrape.
fn value(scrape: &str, series: &str) -> f64 {
    let line = scrape.lines().find(|l| l.rsplit_once(' ').is_some_and(|(s, _)| s == series));
    let line = line.unwrap_or_else(|| panic!("{series} in:\n{scrape}"));
    line.rsplit_once(' ').unwrap().1.parse().unwrap()
}

async fn stats(server: &TestServer, path: &str) -> Value {
    let (code, body, _) = send(http().get(server.http_url(path))).await;
    assert_eq!(code, StatusCode::OK, "{body}");
    body
}

/// Prometheus metrics under RabbitMQ's plugin's names, totals and per queue, without credentials.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_metrics_use_rabbitmqs_names() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let q = unique("metered");
    q::declare(&ch, &q).await;
    for _ in 0..3 {
        q::publish(&ch, "", &q, b"m").await;
    }
    let totals = scrape(&server, "/metrics").await;
    for line in
        ["rabbitmq_connections 1", "rabbitmq_channels 1", "rabbitmq_queue_messages_ready 3", "rabbitmq_queues 1"]
    {
        assert!(totals.lines().any(|l| l == line), "{line} in:\n{totals}");
    }
    assert!(totals.contains("# TYPE rabbitmq_connections_opened_total counter"), "{totals}");
    assert!(totals.contains("# TYPE warren_store_fsync_seconds histogram"), "{totals}");
    let per_object = scrape(&server, "/metrics/per-object").await;
    let series = format!("rabbitmq_queue_messages_ready{{vhost=\"/\",queue=\"{q}\"}}");
    assert_eq!(value(&per_object, &series), 3.0);
    let series = format!("rabbitmq_queue_messages_published_total{{vhost=\"/\",queue=\"{q}\"}}");
    assert_eq!(value(&per_object, &series), 3.0);
}

/// Each kind of publish, delivery and acknowledgement is counted where RabbitMQ counts it, on
/// the queue, the channel, the overview and in Prometheus.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_deliveries_and_acks_are_counted_as_rabbitmq_counts_them() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let q = unique("counted");
    q::declare(&ch, &q).await;
    for i in 0..6 {
        q::publish(&ch, "", &q, format!("m{i}").as_bytes()).await;
    }
    q::publish(&ch, "", "nobody-here", b"lost").await;
    let returned = within(ch.basic_publish(
        "".into(),
        "nobody-here".into(),
        BasicPublishOptions { mandatory: true, ..Default::default() },
        b"back",
        Default::default(),
    ))
    .await
    .unwrap();
    within(returned).await.unwrap();
    let got = within(ch.basic_get(q.as_str().into(), BasicGetOptions::default())).await.unwrap().unwrap();
    within(got.delivery.acker.ack(Default::default())).await.unwrap();
    within(ch.basic_get(q.as_str().into(), BasicGetOptions { no_ack: true })).await.unwrap().unwrap();
    let got = within(ch.basic_get(q.as_str().into(), BasicGetOptions::default())).await.unwrap().unwrap();
    within(got.delivery.acker.nack(BasicNackOptions { requeue: true, ..Default::default() })).await.unwrap();
    let mut consumer = q::consume(&ch, &q, false).await;
    let delivered = receive_n(&mut consumer, 4).await;
    assert!(delivered[0].redelivered, "the nacked one comes back first, redelivered");
    for d in &delivered {
        within(d.acker.ack(Default::default())).await.unwrap();
    }
    let empty = within(ch.basic_get(q.as_str().into(), BasicGetOptions::default())).await.unwrap();
    assert!(empty.is_none(), "the consumer took everything");

    let queue = stats(&server, &format!("/api/queues/%2F/{q}")).await;
    let m = &queue["message_stats"];
    let counts: Vec<u64> = ["publish", "get", "get_no_ack", "deliver", "ack", "redeliver", "deliver_get"]
        .iter()
        .map(|k| m[k].as_u64().unwrap())
        .collect();
    assert_eq!(counts, [6, 2, 1, 4, 5, 1, 7], "{m}");
    assert!(m["publish_details"]["rate"].is_number());

    let channels = stats(&server, "/api/channels").await;
    let c = &channels[0]["message_stats"];
    let counts: Vec<u64> =
        ["publish", "confirm", "drop_unroutable", "return_unroutable", "deliver", "ack", "get_empty"]
            .iter()
            .map(|k| c[k].as_u64().unwrap())
            .collect();
    assert_eq!(counts, [8, 8, 1, 1, 4, 5, 1], "{c}");

    let overview = stats(&server, "/api/overview").await;
    assert_eq!(overview["message_stats"]["publish"], 8, "{}", overview["message_stats"]);

    let metrics = scrape(&server, "/metrics").await;
    let global =
        |name: &str| value(&metrics, &format!("rabbitmq_global_messages_{name}_total{{protocol=\"amqp091\"}}"));
    let figures: Vec<f64> = [
        "received",
        "received_confirm",
        "routed",
        "unroutable_dropped",
        "unroutable_returned",
        "confirmed",
        "delivered",
        "delivered_consume_manual_ack",
        "delivered_get_manual_ack",
        "delivered_get_auto_ack",
        "redelivered",
        "acknowledged",
        "get_empty",
    ]
    .iter()
    .map(|n| global(n))
    .collect();
    assert_eq!(figures, [8.0, 8.0, 6.0, 1.0, 1.0, 8.0, 7.0, 4.0, 2.0, 1.0, 1.0, 5.0, 1.0]);
    assert_eq!(value(&metrics, "rabbitmq_channel_messages_published_total"), 8.0);
}

/// A closed channel's and connection's counts stay in the node's totals (Prometheus counters
/// never go back), and rates come from the statistics interval.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn totals_survive_closed_channels_and_rates_follow_traffic() {
    let server = TestServer::start_with(|c| c.statistics_interval_ms = 100).await;
    let q = unique("rated");
    {
        let conn = server.lapin().await;
        let ch = confirmed_channel(&conn).await;
        q::declare(&ch, &q).await;
        for _ in 0..5 {
            q::publish(&ch, "", &q, b"m").await;
        }
        within(ch.close(200, "done".into())).await.unwrap();
        let received =
            value(&scrape(&server, "/metrics").await, "rabbitmq_global_messages_received_total{protocol=\"amqp091\"}");
        assert_eq!(received, 5.0, "the closed channel's publishes are still counted");
        let ch = confirmed_channel(&conn).await;
        q::publish(&ch, "", &q, b"m").await;
        within(conn.close(200, "bye".into())).await.unwrap();
    }
    eventually(|| server.broker().registry().connections().is_empty(), "the connection is gone").await;
    let metrics = scrape(&server, "/metrics").await;
    assert_eq!(value(&metrics, "rabbitmq_global_messages_received_total{protocol=\"amqp091\"}"), 6.0);
    assert_eq!(value(&metrics, "rabbitmq_channel_messages_confirmed_total"), 6.0);

    // Publishing steadily shows a publish rate on the queue within a few intervals.
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        for _ in 0..20 {
            q::publish(&ch, "", &q, b"m").await;
        }
        let queue = stats(&server, &format!("/api/queues/%2F/{q}")).await;
        if queue["message_stats"]["publish_details"]["rate"].as_f64().unwrap() > 0.0 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no publish rate after 10 s: {queue}");
    }
}

//! Resource alarms (RabbitMQ's): with the memory high watermark lowered below what the broker
//! uses, a publishing connection that announced `connection.blocked` is told so and stops being
//! read; a consumer on another connection keeps receiving; HTTP publishes get 503 with
//! Retry-After; the health check fails and Prometheus says which alarm. When the limit goes back
//! up, the publisher gets `connection.unblocked` and what it sent meanwhile is routed.

mod common;

use amqp_codec::{FieldTable as RawTable, FieldValue, Frame, Method};
use bytes::BytesMut;
use common::http::{http, send};
use common::*;
use reqwest::StatusCode;
use warren_broker::alarms::{AlarmLimits, Resource};

/// A raw client that announces the `connection.blocked` capability, opened as guest on "/".
async fn capable_client(server: &TestServer) -> RawClient {
    let mut c = RawClient::connect(server.addr).await;
    c.start().await;
    let mut capabilities = RawTable::new();
    capabilities.insert("connection.blocked", FieldValue::Bool(true));
    let mut client_properties = RawTable::new();
    client_properties.insert("capabilities", FieldValue::Table(capabilities));
    let start_ok = amqp_codec::ConnectionStartOk { client_properties, ..start_ok_plain("guest", "guest") };
    c.send(0, Method::ConnectionStartOk(start_ok)).await;
    let Method::ConnectionTune(tune) = c.expect_method(0).await else { panic!("no tune") };
    c.frame_max = tune.frame_max;
    let tune_ok =
        amqp_codec::ConnectionTuneOk { channel_max: tune.channel_max, frame_max: tune.frame_max, heartbeat: 0 };
    c.send(0, Method::ConnectionTuneOk(tune_ok)).await;
    c.send(0, Method::ConnectionOpen(amqp_codec::ConnectionOpen { virtual_host: "/".into(), ..Default::default() }))
        .await;
    assert!(matches!(c.expect_method(0).await, Method::ConnectionOpenOk(_)));
    c
}

async fn publish(c: &mut RawClient, queue: &str, body: &[u8]) {
    let mut buf = BytesMut::new();
    RawClient::encode_publish(&mut buf, 1, "", queue, body, c.frame_max);
    c.write_raw(&buf).await;
}

fn set_memory_limit(server: &TestServer, bytes: u64) {
    let alarms = server.broker().alarms();
    alarms.set_limits(AlarmLimits { memory_high_watermark_bytes: bytes, ..alarms.limits() });
    alarms.check();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_memory_alarm_blocks_publishers_and_lets_consumers_drain() {
    let server = TestServer::start().await;
    let (_conn, ch) = server.lapin_channel().await;
    let queue = unique("alarmed");
    q::declare(&ch, &queue).await;
    let mut publisher = capable_client(&server).await;
    publisher.open_channel(1).await;
    publish(&mut publisher, &queue, b"before").await;
    let deadline = std::time::Instant::now() + DEADLINE;
    while q::counts(&ch, &queue).await.unwrap().0 != 1 {
        assert!(std::time::Instant::now() < deadline, "the first message never arrived");
        tokio::task::yield_now().await;
    }

    set_memory_limit(&server, 1);
    assert_eq!(server.broker().alarms().raised(), vec![Resource::Memory]);
    // The publisher is told at once, with RabbitMQ's reason.
    match publisher.expect_method(0).await {
        Method::ConnectionBlocked(b) => assert_eq!(b.reason.as_str(), "low on memory"),
        other => panic!("expected connection.blocked, got {other:?}"),
    }
    publish(&mut publisher, &queue, b"while blocked").await;
    // A consumer (another connection, which never published) still receives.
    let mut consumer = q::consume(&ch, &queue, true).await;
    assert_eq!(next_delivery(&mut consumer).await.data, b"before");
    // HTTP publishers get 503 with Retry-After; the health check fails; Prometheus says which.
    let url = server.http_url(&format!("/api/vhosts/%2F/exchanges/amq.default/messages?routing_key={queue}"));
    let resp = within(http().post(&url).basic_auth("guest", Some("guest")).body("over http").send()).await.unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers().get("retry-after").and_then(|v| v.to_str().ok()), Some("5"));
    let (code, health, _) = send(http().get(server.http_url("/api/health/checks/alarms"))).await;
    assert_eq!((code, health["status"].as_str()), (StatusCode::SERVICE_UNAVAILABLE, Some("failed")), "{health}");
    let metrics = within(http().get(server.http_url("/metrics")).send()).await.unwrap().text().await.unwrap();
    assert!(metrics.contains(r#"warren_alarm{resource="memory"} 1"#), "{metrics}");
    let (_, nodes, _) = send(http().get(server.http_url("/api/nodes"))).await;
    assert_eq!(nodes[0]["mem_alarm"], true);
    // Nothing the blocked publisher sent was read.
    assert_eq!(q::counts(&ch, &queue).await.unwrap().0, 0);

    set_memory_limit(&server, u64::MAX);
    assert!(matches!(publisher.expect_method(0).await, Method::ConnectionUnblocked));
    assert_eq!(next_delivery(&mut consumer).await.data, b"while blocked", "read once unblocked");
    let (code, health, _) = send(http().get(server.http_url("/api/health/checks/alarms"))).await;
    assert_eq!(code, StatusCode::OK, "{health}");
    // A client that did not announce the capability is blocked all the same, without being told.
    let (mut quiet, _) = RawClient::open(server.addr, 0).await;
    quiet.open_channel(1).await;
    publish(&mut quiet, &queue, b"quiet").await;
    assert_eq!(next_delivery(&mut consumer).await.data, b"quiet");
    set_memory_limit(&server, 1);
    // The management API shows it blocked (RabbitMQ's connection state).
    let deadline = std::time::Instant::now() + DEADLINE;
    loop {
        let (_, listed, _) = send(http().get(server.http_url("/api/connections"))).await;
        let states: Vec<&str> = listed.as_array().unwrap().iter().filter_map(|c| c["state"].as_str()).collect();
        if states.iter().filter(|s| **s == "blocked").count() == 2 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never shown blocked: {states:?}");
        tokio::task::yield_now().await;
    }
    publish(&mut quiet, &queue, b"held").await;
    let held = tokio::time::timeout(std::time::Duration::from_millis(300), next_delivery_raw(&mut consumer)).await;
    assert!(held.is_err(), "a blocked publisher's message is not read");
    set_memory_limit(&server, u64::MAX);
    assert_eq!(next_delivery(&mut consumer).await.data, b"held");
    let frame = tokio::time::timeout(std::time::Duration::from_millis(100), quiet.read_frame_no_deadline()).await;
    assert!(!matches!(frame, Ok(Some(Frame::Method { method: Method::ConnectionUnblocked, .. }))), "it was never told");
}

async fn next_delivery_raw(consumer: &mut lapin::Consumer) -> Option<lapin::message::Delivery> {
    use futures_lite::StreamExt;
    consumer.next().await.and_then(|d| d.ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limits_change_at_run_time_over_the_management_api() {
    let server = TestServer::start().await;
    let url = server.http_url("/api/alarms");
    let (code, shown, _) = send(http().get(&url)).await;
    assert_eq!((code, shown["raised"].clone()), (StatusCode::OK, serde_json::json!([])), "{shown}");
    assert!(shown["memory_high_watermark_bytes"].as_u64().unwrap() > shown["memory_used_bytes"].as_u64().unwrap());
    let (code, raised, _) = send(http().put(&url).json(&serde_json::json!({"memory_high_watermark_bytes": 1}))).await;
    assert_eq!((code, raised["raised"].clone()), (StatusCode::OK, serde_json::json!(["memory"])), "{raised}");
    assert!(server.broker().alarms().is_raised(Resource::Memory));
    let (code, bad, _) = send(http().put(&url).json(&serde_json::json!({"memory_high_watermark_bytes": 0}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{bad}");
    let (code, _, _) = send(http().put(&url).json(&serde_json::json!({"bogus": 1}))).await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    let (code, cleared, _) =
        send(http().put(&url).json(&serde_json::json!({"memory_high_watermark_bytes": 1_000_000_000_000u64}))).await;
    assert_eq!((code, cleared["raised"].clone()), (StatusCode::OK, serde_json::json!([])), "{cleared}");
}

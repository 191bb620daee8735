//! Publisher flow control: a publisher feeding a queue whose consumers fall behind is held
//! (its connection shows `flow`) until they catch up, so the backlog stays bounded; a queue
//! without consumers, a connection consuming its own publishes, and `flow_control = false`
//! never hold; a hung consumer holds its publishers once, not for every read. And one ack of a
//! full prefetch window lets one more message go, as in RabbitMQ.

mod common;

use common::*;
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::BasicProperties;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use warren_broker::queue::CONSUMERS_BEHIND_READY;

/// More than the backlog at which a publisher is held, with room for a few read batches.
const MESSAGES: u64 = 3 * CONSUMERS_BEHIND_READY as u64;

/// Ready messages in the queue and the number of consumers, from the broker itself.
fn ready(server: &TestServer, queue: &str) -> usize {
    let q = server.broker().vhost("/").and_then(|v| v.queue(queue)).expect("queue exists");
    q.message_counts().0
}

/// Whether any connection is held by flow control now.
fn any_held(server: &TestServer) -> bool {
    server.broker().registry().connections().iter().any(|c| c.flow.load(Ordering::Relaxed))
}

/// Publishes `MESSAGES` 16-byte messages to `queue` on a connection of its own, counting
/// what the client library took.
fn spawn_publisher(conn: lapin::Connection, queue: String, published: Arc<AtomicU64>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let ch = conn.create_channel().await.expect("channel");
        for _ in 0..MESSAGES {
            ch.basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions::default(),
                &[7; 16],
                BasicProperties::default(),
            )
            .await
            .expect("publish");
            published.fetch_add(1, Ordering::Relaxed);
        }
        conn.close(200, "done".into()).await.expect("close");
    })
}

/// A consumer that takes one message and never acks it: its queue's backlog only grows.
async fn stuck_consumer(server: &TestServer, queue: &str) -> (lapin::Connection, lapin::Channel, lapin::Consumer) {
    let (conn, ch) = server.lapin_channel().await;
    within(ch.basic_qos(1, BasicQosOptions::default())).await.unwrap();
    let consumer = q::consume(&ch, queue, false).await;
    (conn, ch, consumer)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_is_held_while_the_consumers_are_behind_and_goes_on_when_they_catch_up() {
    // No time limit on a hold, so that what the test sees does not depend on its speed.
    let server = TestServer::start_with(|c| c.limits.flow_control_max_hold_ms = 60_000).await;
    let name = unique("flow");
    let (_dconn, dch) = server.lapin_channel().await;
    q::declare(&dch, &name).await;
    let (cconn, _cch, mut stuck) = stuck_consumer(&server, &name).await;
    let published = Arc::new(AtomicU64::new(0));
    let publisher = spawn_publisher(server.lapin().await, name.clone(), published.clone());
    let first = next_delivery(&mut stuck).await;
    eventually(|| any_held(&server), "the publisher to be held").await;
    let held_at = ready(&server, &name);
    assert!(held_at > CONSUMERS_BEHIND_READY, "held only once the consumers are behind ({held_at} ready)");
    assert!(held_at < 2 * CONSUMERS_BEHIND_READY, "held within a read batch of the mark ({held_at} ready)");
    // The management API shows it as RabbitMQ does.
    let listed: serde_json::Value = reqwest::Client::new()
        .get(server.http_url("/api/connections"))
        .basic_auth("guest", Some("guest"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let states: Vec<&str> = listed.as_array().unwrap().iter().filter_map(|c| c["state"].as_str()).collect();
    assert!(states.contains(&"flow"), "{states:?}");
    assert!(ready(&server, &name) == held_at, "nothing more is read while held");

    // The consumer catches up: everything arrives and the publisher finishes.
    // (The stuck consumer's next message goes back to the queue with its connection.)
    within(first.ack(BasicAckOptions::default())).await.unwrap();
    within(cconn.close(200, "caught up".into())).await.unwrap();
    let fast = within(server.lapin().await.create_channel()).await.unwrap();
    let mut all = within(fast.basic_consume(
        name.as_str().into(),
        "fast".into(),
        BasicConsumeOptions { no_ack: true, ..Default::default() },
        FieldTable::default(),
    ))
    .await
    .unwrap();
    let mut received = 0u64;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while received < MESSAGES - 1 {
        let next = tokio::time::timeout_at(deadline, all.next()).await.expect("every message arrives");
        next.expect("stream open").expect("delivery");
        received += 1;
    }
    within(publisher).await.unwrap();
    assert_eq!(published.load(Ordering::Relaxed), MESSAGES);
    assert!(!any_held(&server), "no connection is held once the consumers caught up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_consuming_from_the_queue_it_feeds_is_not_held() {
    let server = TestServer::start_with(|c| c.limits.flow_control_max_hold_ms = 60_000).await;
    let name = unique("own");
    let conn = server.lapin().await;
    let cch = within(conn.create_channel()).await.unwrap();
    q::declare(&cch, &name).await;
    within(cch.basic_qos(1, BasicQosOptions::default())).await.unwrap();
    let _stuck = q::consume(&cch, &name, false).await;
    let published = Arc::new(AtomicU64::new(0));
    let publisher = spawn_publisher(conn, name.clone(), published);
    // Its own unread acks could be what the consumers wait for: held, it would wait 60 s.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while ready(&server, &name) < (MESSAGES - 1) as usize {
        assert!(tokio::time::Instant::now() < deadline, "held: {} ready", ready(&server, &name));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    within(publisher).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_flow_control_or_without_consumers_a_publisher_is_never_held() {
    for (flow_control, consumer) in [(false, true), (true, false)] {
        let server = TestServer::start_with(|c| {
            c.limits.flow_control = flow_control;
            c.limits.flow_control_max_hold_ms = 60_000;
        })
        .await;
        let name = unique("unheld");
        let (_cconn, cch) = server.lapin_channel().await;
        q::declare(&cch, &name).await;
        let _stuck = match consumer {
            true => Some(stuck_consumer(&server, &name).await),
            false => None,
        };
        let publisher = spawn_publisher(server.lapin().await, name.clone(), Arc::new(AtomicU64::new(0)));
        let expected = (MESSAGES - u64::from(consumer)) as usize;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while ready(&server, &name) < expected {
            assert!(!any_held(&server), "flow_control={flow_control} consumer={consumer}: held");
            assert!(tokio::time::Instant::now() < deadline, "{} of {expected} ready", ready(&server, &name));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        within(publisher).await.unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_consumer_holds_its_publishers_once_not_for_every_read() {
    // A hold as long as the test's patience: were every read batch past the mark held, the
    // publisher would take minutes.
    let server = TestServer::start_with(|c| c.limits.flow_control_max_hold_ms = 3_000).await;
    let name = unique("hung");
    let (_dconn, dch) = server.lapin_channel().await;
    q::declare(&dch, &name).await;
    let (_cconn, _cch, _stuck) = stuck_consumer(&server, &name).await;
    let publisher = spawn_publisher(server.lapin().await, name.clone(), Arc::new(AtomicU64::new(0)));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while ready(&server, &name) < (MESSAGES - 1) as usize {
        assert!(tokio::time::Instant::now() < deadline, "held again and again: {} ready", ready(&server, &name));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    within(publisher).await.unwrap();
    let queue = server.broker().vhost("/").and_then(|v| v.queue(&name)).unwrap();
    assert!(queue.flow_stalled(), "its queue absorbs what comes until the consumer catches up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_ack_of_a_full_prefetch_window_lets_exactly_one_more_message_go() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let name = unique("refill");
    q::declare(&ch, &name).await;
    for i in 0..20u8 {
        q::publish(&ch, "", &name, &[i]).await;
    }
    within(ch.basic_qos(8, BasicQosOptions::default())).await.unwrap();
    let mut consumer = q::consume(&ch, &name, false).await;
    let window = receive_n(&mut consumer, 8).await;
    assert_eq!(q::counts(&ch, &name).await.unwrap(), (12, 1));
    // As RabbitMQ: a client holding 7 of its 8 gets the next one (a resequencer or a worker
    // pool would wait forever otherwise). Acks are redispatched at the end of the read batch.
    within(window[0].ack(BasicAckOptions::default())).await.unwrap();
    let next = next_delivery(&mut consumer).await;
    assert_eq!(next.data, vec![8]);
    q::counts(&ch, &name).await.unwrap();
    assert_eq!(q::counts(&ch, &name).await.unwrap(), (11, 1), "never more than the prefetch");
}

//! The publish result tells a publisher when a queue's consumers are falling behind: the
//! signal the AMQP connection uses to give the consumers it feeds a turn on its worker, and to
//! hold the publisher until they catch up (flow control).

use amqp_codec::{FieldTable, ShortStr};
use bytes::Bytes;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use warren_broker::queue::{CONSUMERS_BEHIND_READY, FLOW_RESUME_READY};
use warren_broker::{Broker, BrokerConfig, Consumer, ConsumerSink, Offer, Queue, QueueDeclare, Take, VHost};
use warren_core::Message;

/// A consumer's sink that takes every message, or none (a consumer at its prefetch limit).
struct Sink {
    takes: AtomicBool,
}

impl ConsumerSink for Sink {
    fn offer(&self, _: &Consumer, _: &Arc<Queue>, _: u64, take: Take<'_>) -> Offer {
        if !self.takes.load(Ordering::Relaxed) {
            return Offer::NoCredit;
        }
        match take() {
            Some(_) => Offer::Delivered,
            None => Offer::Empty,
        }
    }
    fn deliver_reply(&self, _: &Consumer, _: &Arc<Message>) {}
    fn cancelled_by_broker(&self, _: &Consumer) {}
}

struct Setup {
    broker: Broker,
    vhost: Arc<VHost>,
    queue: Arc<Queue>,
    sink: Arc<Sink>,
}

fn setup(consumer: Option<bool>) -> (Broker, Arc<VHost>) {
    let s = setup_all(consumer);
    (s.broker, s.vhost)
}

fn setup_all(consumer: Option<bool>) -> Setup {
    let broker = Broker::new(BrokerConfig::default());
    let vhost = broker.vhost("/").expect("default vhost");
    let declare = QueueDeclare {
        name: ShortStr::from_static("work"),
        server_named: false,
        passive: false,
        durable: false,
        exclusive: false,
        auto_delete: false,
        arguments: FieldTable::new(),
    };
    let (queue, _, _) = vhost.declare_queue(declare, 1, 100).expect("declare");
    let sink = Arc::new(Sink { takes: AtomicBool::new(consumer.unwrap_or(false)) });
    if consumer.is_some() {
        let consumer = Consumer {
            tag: ShortStr::from_static("c1"),
            no_ack: true,
            exclusive: false,
            priority: 0,
            owner: (1, 1),
            sink: sink.clone(),
        };
        queue.add_consumer(Arc::new(consumer), || {}).expect("consume");
    }
    Setup { broker, vhost, queue, sink }
}

/// Publishes `n` messages to the queue; returns how many results said its consumers are behind.
fn publish(broker: &Broker, vhost: &VHost, n: usize) -> usize {
    let message = Arc::new(Message::new(
        ShortStr::from_static(""),
        ShortStr::from_static("work"),
        Bytes::new(),
        Bytes::from_static(b"x"),
    ));
    (0..n)
        .filter(|_| {
            let routed = broker.publish(vhost, "", message.clone(), None).expect("publish");
            assert_eq!(routed.queues, 1);
            if let Some(behind) = &routed.consumers_behind {
                assert_eq!(behind.0.name.as_str(), "work");
            }
            routed.consumers_behind.is_some()
        })
        .count()
}

#[test]
fn consumers_are_behind_once_the_ready_backlog_passes_the_threshold() {
    let (broker, vhost) = setup(Some(false));
    assert_eq!(publish(&broker, &vhost, CONSUMERS_BEHIND_READY), 0);
    assert_eq!(publish(&broker, &vhost, 10), 10);
}

#[test]
fn a_queue_without_consumers_is_never_behind() {
    let (broker, vhost) = setup(None);
    assert_eq!(publish(&broker, &vhost, CONSUMERS_BEHIND_READY + 10), 0);
}

#[test]
fn consumers_that_keep_up_are_never_behind() {
    let (broker, vhost) = setup(Some(true));
    assert_eq!(publish(&broker, &vhost, CONSUMERS_BEHIND_READY + 10), 0);
}

/// Long enough for a released waiter to see its release on a loaded machine; the waits that
/// must time out use a short bound instead.
const RELEASE_WITHIN: Duration = Duration::from_secs(5);
const HELD_FOR: Duration = Duration::from_millis(50);

#[tokio::test]
async fn a_held_publisher_waits_until_the_consumers_catch_up() {
    let s = setup_all(Some(false));
    publish(&s.broker, &s.vhost, CONSUMERS_BEHIND_READY + 10);
    let waiter = {
        let queue = s.queue.clone();
        tokio::spawn(async move { queue.wait_for_consumers(RELEASE_WITHIN).await })
    };
    let_it_wait().await;
    assert!(!waiter.is_finished(), "held while the consumers are behind");
    // The consumer gets credit again and the next dispatch round drains the queue.
    s.sink.takes.store(true, Ordering::Relaxed);
    s.queue.dispatch();
    assert!(waiter.await.expect("waiter"), "released once the consumers caught up");
    assert!(s.queue.wait_for_consumers(HELD_FOR).await);
}

#[tokio::test]
async fn a_hold_that_runs_out_stops_holding_until_the_consumers_catch_up() {
    let s = setup_all(Some(false));
    publish(&s.broker, &s.vhost, CONSUMERS_BEHIND_READY + 10);
    assert!(!s.queue.wait_for_consumers(HELD_FOR).await, "held while the consumers are behind");
    assert!(s.queue.flow_stalled(), "a hung consumer: the queue absorbs, as RabbitMQ's do");
    // No second hold: a later wait returns at once, long before its bound.
    let started = std::time::Instant::now();
    assert!(!s.queue.wait_for_consumers(RELEASE_WITHIN).await);
    assert!(started.elapsed() < RELEASE_WITHIN / 2);
    // The consumers catch up: holds come back.
    s.sink.takes.store(true, Ordering::Relaxed);
    s.queue.dispatch();
    assert!(!s.queue.flow_stalled());
    s.sink.takes.store(false, Ordering::Relaxed);
    publish(&s.broker, &s.vhost, CONSUMERS_BEHIND_READY + 10);
    assert!(!s.queue.wait_for_consumers(HELD_FOR).await, "held again");
}

#[tokio::test]
async fn a_backlog_down_to_the_resume_mark_releases_and_one_above_it_does_not() {
    let s = setup_all(Some(false));
    publish(&s.broker, &s.vhost, FLOW_RESUME_READY + 1);
    assert!(!s.queue.wait_for_consumers(HELD_FOR).await, "one above the resume mark still holds");
    // basic.get takes one: down to the mark, which releases (and forgets the stall).
    assert!(s.queue.get(true).is_some());
    assert!(!s.queue.flow_stalled());
    assert!(s.queue.wait_for_consumers(HELD_FOR).await);
}

#[tokio::test]
async fn losing_its_consumers_or_its_messages_releases_the_publishers() {
    let s = setup_all(Some(false));
    publish(&s.broker, &s.vhost, CONSUMERS_BEHIND_READY + 10);
    let queue = s.queue.clone();
    let waiter = tokio::spawn(async move { queue.wait_for_consumers(RELEASE_WITHIN).await });
    let_it_wait().await;
    s.queue.remove_consumer((1, 1), "c1");
    assert!(waiter.await.expect("waiter"), "a queue without consumers holds nobody");

    let s = setup_all(Some(false));
    publish(&s.broker, &s.vhost, CONSUMERS_BEHIND_READY + 10);
    let queue = s.queue.clone();
    let waiter = tokio::spawn(async move { queue.wait_for_consumers(RELEASE_WITHIN).await });
    let_it_wait().await;
    assert_eq!(s.queue.purge(), CONSUMERS_BEHIND_READY + 10);
    assert!(waiter.await.expect("waiter"), "a purged queue holds nobody");
}

/// Gives a spawned waiter its turns to start waiting (the test runtime has one thread: the
/// waiter runs only while this task yields).
async fn let_it_wait() {
    for _ in 0..10 {
        tokio::task::yield_now().await;
    }
}

#[test]
fn a_queue_without_consumers_holds_nobody() {
    let s = setup_all(None);
    publish(&s.broker, &s.vhost, CONSUMERS_BEHIND_READY + 10);
    let rt = tokio::runtime::Builder::new_current_thread().enable_time().build().expect("runtime");
    assert!(rt.block_on(s.queue.wait_for_consumers(HELD_FOR)));
}

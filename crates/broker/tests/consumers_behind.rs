//! The publish result tells a publisher when a queue's consumers are falling behind: the
//! signal the AMQP connection uses to give the consumers it feeds a turn on its worker.

use amqp_codec::{FieldTable, ShortStr};
use bytes::Bytes;
use std::sync::Arc;
use warren_broker::queue::CONSUMERS_BEHIND_READY;
use warren_broker::{Broker, BrokerConfig, Consumer, ConsumerSink, Offer, Queue, QueueDeclare, Take, VHost};
use warren_core::Message;

/// A consumer's sink that takes every message, or none (a consumer at its prefetch limit).
struct Sink {
    takes: bool,
}

impl ConsumerSink for Sink {
    fn offer(&self, _: &Consumer, _: &Arc<Queue>, _: u64, take: Take<'_>) -> Offer {
        if !self.takes {
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

fn setup(consumer: Option<bool>) -> (Broker, Arc<VHost>) {
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
    if let Some(takes) = consumer {
        let consumer = Consumer {
            tag: ShortStr::from_static("c1"),
            no_ack: true,
            exclusive: false,
            priority: 0,
            owner: (1, 1),
            sink: Arc::new(Sink { takes }),
        };
        queue.add_consumer(Arc::new(consumer), || {}).expect("consume");
    }
    (broker, vhost)
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
            routed.consumers_behind
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

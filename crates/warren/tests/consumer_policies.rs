//! Who gets a queue's messages and for how long: priorities (`x-max-priority`), a single active
//! consumer with failover, and the delivery acknowledgement timeout that returns a stuck
//! consumer's messages and cancels it (on a manual clock, so the timeout fires when told).

mod common;

use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable};
use lapin::{BasicProperties, Channel};

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

async fn confirm_channel(conn: &lapin::Connection) -> Channel {
    let ch = within(conn.create_channel()).await.unwrap();
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    ch
}

async fn declare(ch: &Channel, name: &str, durable: bool, arguments: FieldTable) {
    let opts = QueueDeclareOptions { durable, ..Default::default() };
    within(ch.queue_declare(name.into(), opts, arguments)).await.expect("queue.declare");
}

fn with_priority(p: Option<u8>) -> BasicProperties {
    let props = BasicProperties::default().with_delivery_mode(2);
    match p {
        Some(p) => props.with_priority(p),
        None => props,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn higher_priorities_go_first_fifo_within_a_level_even_after_a_restart() {
    let server = TestServer::start().await;
    let name = unique("prio");
    let published = [(Some(1), "a"), (Some(5), "b"), (Some(3), "c"), (None, "d"), (Some(9), "e"), (Some(3), "f")];
    let expected: Vec<Vec<u8>> = ["b", "e", "c", "f", "a", "d"].iter().map(|s| s.as_bytes().to_vec()).collect();
    {
        let conn = server.lapin().await;
        let ch = confirm_channel(&conn).await;
        declare(&ch, &name, true, args(&[("x-max-priority", AMQPValue::ShortShortUInt(5))])).await;
        for (p, body) in published {
            q::publish_props(&ch, "", &name, body.as_bytes(), with_priority(p)).await;
        }
        let mut consumer = q::consume(&ch, &name, false).await;
        let first = next_delivery(&mut consumer).await;
        assert_eq!(first.data, b"b", "the highest priority first");
        within(first.nack(BasicNackOptions { requeue: true, multiple: false })).await.unwrap();
        within(ch.close(200, "bye".into())).await.unwrap();
    }
    let server = server.restart().await;
    let (_c, ch) = server.lapin_channel().await;
    assert_eq!(q::drain(&ch, &name).await, expected, "9 counts as the maximum, 5; no priority is 0");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_single_active_consumer_gets_everything_until_it_goes() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let (first_ch, second_ch) = (confirm_channel(&conn).await, confirm_channel(&conn).await);
    let name = unique("sac");
    declare(&first_ch, &name, false, args(&[("x-single-active-consumer", AMQPValue::Boolean(true))])).await;
    let mut first = q::consume(&first_ch, &name, false).await;
    let mut second = q::consume(&second_ch, &name, false).await;
    for i in 0..3u8 {
        q::publish(&first_ch, "", &name, &[i]).await;
    }
    for i in 0..3u8 {
        let d = next_delivery(&mut first).await;
        assert_eq!(d.data, [i], "all to the active consumer, in order");
    }
    assert_eq!(q::counts(&first_ch, &name).await.unwrap(), (0, 2));
    // The active consumer's channel goes away: its unacked messages and the queue pass to the next.
    within(first_ch.close(200, "bye".into())).await.unwrap();
    for i in 0..3u8 {
        let d = next_delivery(&mut second).await;
        assert_eq!((d.data.as_slice(), d.redelivered), (&[i][..], true));
        within(d.ack(BasicAckOptions::default())).await.unwrap();
    }
    q::publish(&second_ch, "", &name, b"next").await;
    assert_eq!(next_delivery(&mut second).await.data, b"next");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_consumer_is_cancelled_and_its_messages_go_to_another() {
    let server = TestServer::start_manual_clock(|c| c.limits.consumer_timeout_ms = 5_000).await;
    let conn = server.lapin().await;
    let (stuck_ch, other_ch) = (confirm_channel(&conn).await, confirm_channel(&conn).await);
    let name = unique("timeout");
    declare(&stuck_ch, &name, false, args(&[("x-consumer-timeout", AMQPValue::LongInt(1000))])).await;
    let mut stuck = q::consume(&stuck_ch, &name, false).await;
    for i in 0..2u8 {
        q::publish(&stuck_ch, "", &name, &[i]).await;
    }
    let held: Vec<_> = [next_delivery(&mut stuck).await, next_delivery(&mut stuck).await].into();
    let other_opts = BasicConsumeOptions::default();
    let mut other =
        within(other_ch.basic_consume(name.as_str().into(), "other".into(), other_opts, FieldTable::default()))
            .await
            .unwrap();
    server.advance_ms(999);
    assert_eq!(q::counts(&other_ch, &name).await.unwrap(), (0, 2), "not yet");
    server.advance_ms(1);
    // The stuck consumer is cancelled by the broker: its stream ends.
    assert!(within(futures_lite::StreamExt::next(&mut stuck)).await.is_none(), "cancelled");
    for i in 0..2u8 {
        let d = next_delivery(&mut other).await;
        assert_eq!((d.data.as_slice(), d.redelivered), (&[i][..], true));
        within(d.ack(BasicAckOptions::default())).await.unwrap();
    }
    // The stuck channel lives on; its late ack is ignored, not a 406.
    within(held[0].ack(BasicAckOptions::default())).await.unwrap();
    assert_eq!(q::counts(&stuck_ch, &name).await.unwrap(), (0, 1), "channel still open");
    q::publish(&stuck_ch, "", &name, b"after").await;
    assert_eq!(next_delivery(&mut other).await.data, b"after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_broker_wide_acknowledgement_timeout_applies_without_a_queue_argument() {
    let server = TestServer::start_manual_clock(|c| c.limits.consumer_timeout_ms = 2_000).await;
    let conn = server.lapin().await;
    let ch = confirm_channel(&conn).await;
    let name = unique("default-timeout");
    declare(&ch, &name, false, FieldTable::default()).await;
    let mut consumer = q::consume(&ch, &name, false).await;
    q::publish(&ch, "", &name, b"slow").await;
    let _held = next_delivery(&mut consumer).await;
    server.advance_ms(1_999);
    assert_eq!(q::counts(&ch, &name).await.unwrap(), (0, 1));
    server.advance_ms(1);
    assert!(within(futures_lite::StreamExt::next(&mut consumer)).await.is_none(), "cancelled");
    assert_eq!(q::counts(&ch, &name).await.unwrap(), (1, 0), "the message is back in the queue");
}

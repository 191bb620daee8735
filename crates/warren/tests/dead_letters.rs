//! Dead-lettering and the policies that feed it: rejects, TTL (queue and message), length
//! limits with every overflow mode, delivery limits, queue expiry, cycles, and the headers
//! (`x-death`, `x-first-death-*`, `x-last-death-*`) compared field by field with what RabbitMQ
//! documents. Timers run on a manual clock: a test moves time and the due work runs at once.

mod common;

use common::*;
use lapin::message::Delivery;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};
use std::collections::BTreeMap;

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

fn text(v: Option<&AMQPValue>) -> String {
    match v {
        Some(AMQPValue::LongString(s)) => s.to_string(),
        other => panic!("expected a longstr, got {other:?}"),
    }
}

fn header<'a>(d: &'a Delivery, key: &str) -> Option<&'a AMQPValue> {
    d.properties.headers().as_ref().and_then(|h| h.inner().get(key))
}

/// The `x-death` entries of a delivery, most recent first.
fn deaths(d: &Delivery) -> Vec<BTreeMap<String, AMQPValue>> {
    let Some(AMQPValue::FieldArray(entries)) = header(d, "x-death") else { panic!("no x-death array") };
    entries
        .as_slice()
        .iter()
        .map(|e| match e {
            AMQPValue::FieldTable(t) => t.inner().iter().map(|(k, v)| (k.to_string(), v.clone())).collect(),
            other => panic!("x-death entry is not a table: {other:?}"),
        })
        .collect()
}

/// A fanout dead-letter exchange with a queue bound to it, and a work queue dead-lettering
/// there with `extra` arguments. Returns (work queue, dead-letter queue, dead-letter exchange).
async fn with_dlq(ch: &Channel, extra: &[(&str, AMQPValue)]) -> (String, String, String) {
    let (work, dlq, dlx) = (unique("work"), unique("dlq"), unique("dlx"));
    within(ch.exchange_declare(
        dlx.as_str().into(),
        lapin::ExchangeKind::Fanout,
        Default::default(),
        Default::default(),
    ))
    .await
    .unwrap();
    q::declare(ch, &dlq).await;
    q::bind(ch, &dlq, &dlx, "").await;
    let mut pairs = vec![("x-dead-letter-exchange", s(&dlx))];
    pairs.extend(extra.iter().cloned());
    within(ch.queue_declare(work.as_str().into(), QueueDeclareOptions::default(), args(&pairs))).await.unwrap();
    (work, dlq, dlx)
}

/// Durable `dlq`, and durable `work` whose messages expire after `ttl_ms` into `dlq` (through the
/// default exchange).
async fn declare_durable_ttl_pair(ch: &Channel, work: &str, dlq: &str, ttl_ms: i32) {
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    within(ch.queue_declare(dlq.into(), durable, FieldTable::default())).await.unwrap();
    let a = args(&[
        ("x-dead-letter-exchange", s("")),
        ("x-dead-letter-routing-key", s(dlq)),
        ("x-message-ttl", AMQPValue::LongInt(ttl_ms)),
    ]);
    within(ch.queue_declare(work.into(), durable, a)).await.unwrap();
}

/// Publishes persistent messages whose bodies are 0, 1, ... (`count` of them), each confirmed.
async fn publish_persistent_numbers(ch: &Channel, queue: &str, count: u8) {
    for i in 0..count {
        let confirmed = publish_confirmed(ch, queue, &[i], BasicProperties::default().with_delivery_mode(2)).await;
        assert!(confirmed.is_ack(), "{confirmed:?}");
    }
}

/// Expects the dead letters 0, 1, ... (`count` of them) in `dlq`, in order, each expired.
async fn expect_expired_numbers(ch: &Channel, dlq: &str, count: u8) {
    // Dead letters of paged-out messages come from the store's reader thread.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while q::counts(ch, dlq).await.unwrap().0 < u32::from(count) {
        assert!(tokio::time::Instant::now() < deadline, "timed out waiting for {count} dead letters");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    for i in 0..count {
        let dead = get(ch, dlq).await.expect("a dead letter");
        assert_eq!(dead.data, [i]);
        assert_eq!(text(deaths(&dead)[0].get("reason")), "expired");
    }
}

async fn get(ch: &Channel, queue: &str) -> Option<Delivery> {
    within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: true })).await.expect("basic.get").map(|m| m.delivery)
}

/// A connection and a channel in confirm mode: a publish returns once the broker took the
/// message, so moving the clock afterwards never races the publish.
async fn channel(server: &TestServer) -> (lapin::Connection, Channel) {
    let conn = server.lapin().await;
    let ch = confirm_channel(&conn).await;
    (conn, ch)
}

async fn confirm_channel(conn: &lapin::Connection) -> Channel {
    let ch = within(conn.create_channel()).await.unwrap();
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    ch
}

async fn publish_confirmed(ch: &Channel, rk: &str, body: &[u8], props: BasicProperties) -> Confirmation {
    let pending =
        within(ch.basic_publish("".into(), rk.into(), BasicPublishOptions::default(), body, props)).await.unwrap();
    within(pending).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejected_message_is_dead_lettered_with_rabbitmq_headers() {
    let server = TestServer::start_manual_clock(|_| {}).await;
    let (_c, ch) = channel(&server).await;
    let (work, dlq, dlx) = with_dlq(&ch, &[]).await;
    let mut cc = lapin::types::FieldArray::default();
    cc.push(s("audit.copy"));
    let props = BasicProperties::default()
        .with_headers(args(&[("CC", AMQPValue::FieldArray(cc)), ("app", s("kept"))]))
        .with_correlation_id("c-1".into());
    q::publish_props(&ch, "", &work, b"poison", props).await;
    let mut consumer = q::consume(&ch, &work, false).await;
    let d = next_delivery(&mut consumer).await;
    within(d.nack(BasicNackOptions { requeue: false, multiple: false })).await.unwrap();

    let dead = get(&ch, &dlq).await.expect("the rejected message is in the dead-letter queue");
    assert_eq!(dead.data, b"poison");
    assert_eq!((dead.exchange.as_str(), dead.routing_key.as_str()), (dlx.as_str(), work.as_str()));
    assert_eq!(dead.properties.correlation_id().as_ref().map(|c| c.as_str()), Some("c-1"));
    assert_eq!(text(header(&dead, "app")), "kept", "other headers are kept");
    let deaths = deaths(&dead);
    assert_eq!(deaths.len(), 1);
    let death = &deaths[0];
    let mut keys: Vec<&str> = death.keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(keys, ["count", "exchange", "queue", "reason", "routing-keys", "time"]);
    assert_eq!(death["count"], AMQPValue::LongLongInt(1));
    assert_eq!(text(death.get("reason")), "rejected");
    assert_eq!(text(death.get("queue")), work);
    assert_eq!(text(death.get("exchange")), "", "published to the default exchange");
    let AMQPValue::FieldArray(keys) = &death["routing-keys"] else { panic!("routing-keys is an array") };
    let keys: Vec<String> = keys.as_slice().iter().map(|k| text(Some(k))).collect();
    assert_eq!(keys, [work.clone(), "audit.copy".to_string()], "routing key then CC keys");
    let AMQPValue::Timestamp(time) = death["time"] else { panic!("time is a timestamp") };
    assert_eq!(time, server.broker().now_ms() / 1000);
    for (name, value) in [("reason", "rejected"), ("queue", work.as_str()), ("exchange", "")] {
        assert_eq!(text(header(&dead, &format!("x-first-death-{name}"))), value);
        assert_eq!(text(header(&dead, &format!("x-last-death-{name}"))), value);
    }
    assert_eq!(q::counts(&ch, &work).await.unwrap(), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_without_dead_letter_exchange_drops_and_with_routing_key_overrides() {
    let server = TestServer::start_manual_clock(|_| {}).await;
    let (_c, ch) = channel(&server).await;
    // No dead-letter exchange: dropped.
    let plain = unique("plain");
    q::declare(&ch, &plain).await;
    q::publish(&ch, "", &plain, b"gone").await;
    let m = within(ch.basic_get(plain.as_str().into(), BasicGetOptions { no_ack: false })).await.unwrap().unwrap();
    within(m.delivery.reject(BasicRejectOptions { requeue: false })).await.unwrap();
    assert_eq!(q::counts(&ch, &plain).await.unwrap(), (0, 0));

    // x-dead-letter-routing-key replaces the routing key; the default exchange routes by it.
    let target = unique("target");
    q::declare(&ch, &target).await;
    let work = unique("work");
    let a = args(&[("x-dead-letter-exchange", s("")), ("x-dead-letter-routing-key", s(&target))]);
    within(ch.queue_declare(work.as_str().into(), QueueDeclareOptions::default(), a)).await.unwrap();
    q::publish(&ch, "", &work, b"redirected").await;
    let m = within(ch.basic_get(work.as_str().into(), BasicGetOptions { no_ack: false })).await.unwrap().unwrap();
    within(m.delivery.reject(BasicRejectOptions { requeue: false })).await.unwrap();
    let dead = get(&ch, &target).await.expect("routed by the dead-letter routing key");
    assert_eq!(dead.routing_key.as_str(), target);
    let AMQPValue::FieldArray(keys) = &deaths(&dead)[0]["routing-keys"] else { panic!() };
    assert_eq!(text(keys.as_slice().first()), work, "x-death keeps the original key");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_ttl_expires_messages_without_a_consumer_exactly_on_time() {
    let server = TestServer::start_manual_clock(|_| {}).await;
    let (_c, ch) = channel(&server).await;
    let (work, dlq, _) = with_dlq(&ch, &[("x-message-ttl", AMQPValue::LongInt(1000))]).await;
    q::publish(&ch, "", &work, b"first").await;
    server.advance_ms(400);
    q::publish(&ch, "", &work, b"second").await;
    server.advance_ms(599);
    assert_eq!(q::counts(&ch, &work).await.unwrap(), (2, 0), "nothing expired at 999 ms");
    server.advance_ms(1);
    assert_eq!(q::counts(&ch, &work).await.unwrap(), (1, 0), "the first expired at 1000 ms");
    let dead = get(&ch, &dlq).await.expect("expired message dead-lettered");
    assert_eq!(dead.data, b"first");
    let death = &deaths(&dead)[0];
    assert_eq!(text(death.get("reason")), "expired");
    assert!(!death.contains_key("original-expiration"), "the queue's TTL, not the message's");
    server.advance_ms(400);
    assert_eq!(q::counts(&ch, &work).await.unwrap(), (0, 0));
    assert_eq!(get(&ch, &dlq).await.expect("second expired too").data, b"second");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ever_shorter_expirations_keep_one_timer_entry_and_each_expires_on_time() {
    let server = TestServer::start_manual_clock(|_| {}).await;
    let (_c, ch) = channel(&server).await;
    let (work, dlq, _) = with_dlq(&ch, &[]).await;
    let before = server.broker().timers().scheduled();
    // Each message's deadline is earlier than the one before: the queue moves its timer 100
    // times.
    for i in 0..100u32 {
        let ttl = (200_000 - 1_000 * i).to_string();
        q::publish_props(
            &ch,
            "",
            &work,
            i.to_string().as_bytes(),
            BasicProperties::default().with_expiration(ttl.into()),
        )
        .await;
    }
    assert_eq!(server.broker().timers().scheduled(), before + 1, "one entry for the queue, not one per move");
    server.advance_ms(150_000);
    assert_eq!(q::counts(&ch, &work).await.unwrap(), (50, 0), "the 50 shortest expired");
    assert_eq!(q::counts(&ch, &dlq).await.unwrap(), (50, 0));
    server.advance_ms(50_000);
    assert_eq!(q::counts(&ch, &work).await.unwrap(), (0, 0), "and the rest");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_expiration_applies_anywhere_in_the_queue() {
    let server = TestServer::start_manual_clock(|_| {}).await;
    let (_c, ch) = channel(&server).await;
    let (work, dlq, _) = with_dlq(&ch, &[]).await;
    q::publish(&ch, "", &work, b"forever").await;
    let short = BasicProperties::default().with_expiration("250".into());
    q::publish_props(&ch, "", &work, b"short-lived", short).await;
    server.advance_ms(249);
    assert_eq!(q::counts(&ch, &work).await.unwrap(), (2, 0));
    // Behind a message that never expires; RabbitMQ would wait for it to reach the head.
    server.advance_ms(1);
    assert_eq!(q::counts(&ch, &work).await.unwrap(), (1, 0));
    let dead = get(&ch, &dlq).await.expect("expired behind the head");
    assert_eq!(dead.data, b"short-lived");
    assert_eq!(dead.properties.expiration(), &None, "the expiration is removed from a dead letter");
    assert_eq!(text(deaths(&dead)[0].get("original-expiration")), "250");
    assert_eq!(get(&ch, &work).await.expect("the other stays").data, b"forever");

    // The smaller of queue and message TTL applies.
    let (work, dlq, _) = with_dlq(&ch, &[("x-message-ttl", AMQPValue::LongInt(100))]).await;
    q::publish_props(&ch, "", &work, b"m", BasicProperties::default().with_expiration("5000".into())).await;
    server.advance_ms(100);
    assert_eq!(get(&ch, &dlq).await.expect("expired by the queue TTL").data, b"m");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ttl_zero_delivers_only_to_a_waiting_consumer_and_invalid_expiration_is_406() {
    let server = TestServer::start_manual_clock(|_| {}).await;
    let (_c, ch) = channel(&server).await;
    let (work, dlq, _) = with_dlq(&ch, &[]).await;
    let zero = || BasicProperties::default().with_expiration("0".into());
    q::publish_props(&ch, "", &work, b"nobody-waits", zero()).await;
    assert_eq!(q::counts(&ch, &work).await.unwrap(), (0, 0));
    assert_eq!(get(&ch, &dlq).await.expect("expired at once").data, b"nobody-waits");
    let mut consumer = q::consume(&ch, &work, true).await;
    q::publish_props(&ch, "", &work, b"taken", zero()).await;
    assert_eq!(next_delivery(&mut consumer).await.data, b"taken");

    for bad in ["-1", "soon", "1.5"] {
        let ch = confirm_channel(&_c).await;
        let props = BasicProperties::default().with_expiration(ShortString::from(bad));
        let published = async {
            let pending =
                ch.basic_publish("".into(), work.as_str().into(), BasicPublishOptions::default(), b"x", props).await?;
            pending.await
        };
        assert_code(within(published).await, 406);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_length_drops_the_head_into_the_dead_letter_queue() {
    let server = TestServer::start_manual_clock(|_| {}).await;
    let (_c, ch) = channel(&server).await;
    let (work, dlq, _) = with_dlq(&ch, &[("x-max-length", AMQPValue::LongInt(2))]).await;
    for body in [b"m1", b"m2", b"m3", b"m4"] {
        q::publish(&ch, "", &work, body).await;
    }
    assert_eq!(q::counts(&ch, &work).await.unwrap(), (2, 0));
    for expected in [b"m1", b"m2"] {
        let dead = get(&ch, &dlq).await.expect("dropped head dead-lettered");
        assert_eq!(dead.data, expected);
        assert_eq!(text(deaths(&dead)[0].get("reason")), "maxlen");
    }
    assert_eq!(get(&ch, &work).await.unwrap().data, b"m3");

    // Bytes: 10-byte limit, 4-byte bodies: the third pushes the oldest out.
    let (work, dlq, _) = with_dlq(&ch, &[("x-max-length-bytes", AMQPValue::LongInt(10))]).await;
    for body in [b"aaaa", b"bbbb", b"cccc"] {
        q::publish(&ch, "", &work, body).await;
    }
    assert_eq!(q::counts(&ch, &work).await.unwrap(), (2, 0));
    assert_eq!(get(&ch, &dlq).await.unwrap().data, b"aaaa");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reject_publish_nacks_the_publisher_and_the_dlx_variant_dead_letters() {
    let server = TestServer::start_manual_clock(|_| {}).await;
    let conn = server.lapin().await;
    let ch = confirm_channel(&conn).await;
    for (overflow, dead_lettered) in [("reject-publish", false), ("reject-publish-dlx", true)] {
        let limit = [("x-max-length", AMQPValue::LongInt(1)), ("x-overflow", s(overflow))];
        let (work, dlq, _) = with_dlq(&ch, &limit).await;
        let first = publish_confirmed(&ch, &work, b"fits", BasicProperties::default()).await;
        assert!(first.is_ack(), "{overflow}: {first:?}");
        let second = publish_confirmed(&ch, &work, b"full", BasicProperties::default()).await;
        assert!(second.is_nack(), "{overflow}: a refused publish is nacked: {second:?}");
        // Persistent, too: the nack wins over the disk's confirmation.
        let third = publish_confirmed(&ch, &work, b"full", BasicProperties::default().with_delivery_mode(2)).await;
        assert!(third.is_nack(), "{overflow}: {third:?}");
        assert_eq!(q::counts(&ch, &work).await.unwrap(), (1, 0));
        assert_eq!(get(&ch, &work).await.unwrap().data, b"fits", "the queue kept its head");
        let dead = get(&ch, &dlq).await;
        assert_eq!(dead.is_some(), dead_lettered, "{overflow}");
        if let Some(dead) = dead {
            assert_eq!(text(deaths(&dead)[0].get("reason")), "maxlen");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_limit_counts_returns_then_dead_letters() {
    let server = TestServer::start_manual_clock(|_| {}).await;
    let (_c, ch) = channel(&server).await;
    let (work, dlq, _) = with_dlq(&ch, &[("x-delivery-limit", AMQPValue::LongInt(2))]).await;
    q::publish(&ch, "", &work, b"flaky").await;
    let mut consumer = q::consume(&ch, &work, false).await;
    let mut seen = Vec::new();
    for _ in 0..3 {
        let d = next_delivery(&mut consumer).await;
        seen.push(header(&d, "x-delivery-count").cloned());
        within(d.nack(BasicNackOptions { requeue: true, multiple: false })).await.unwrap();
    }
    assert_eq!(seen, [None, Some(AMQPValue::LongLongInt(1)), Some(AMQPValue::LongLongInt(2))]);
    let mut dead_consumer = q::consume(&ch, &dlq, true).await;
    let dead = next_delivery(&mut dead_consumer).await;
    assert_eq!(dead.data, b"flaky");
    assert_eq!(text(deaths(&dead)[0].get("reason")), "delivery_limit");
    assert_eq!(q::counts(&ch, &work).await.unwrap(), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unused_queue_expires_and_a_consumer_keeps_it() {
    let server = TestServer::start_manual_clock(|_| {}).await;
    let (_c, ch) = channel(&server).await;
    let expiring = args(&[("x-expires", AMQPValue::LongInt(1000))]);
    let (idle, busy) = (unique("idle"), unique("busy"));
    for name in [&idle, &busy] {
        within(ch.queue_declare(name.as_str().into(), QueueDeclareOptions::default(), expiring.clone())).await.unwrap();
    }
    let _consumer = q::consume(&ch, &busy, false).await;
    server.advance_ms(600);
    // Redeclaring counts as a use.
    within(ch.queue_declare(idle.as_str().into(), QueueDeclareOptions::default(), expiring.clone())).await.unwrap();
    server.advance_ms(600);
    assert!(q::counts(&ch, &idle).await.is_ok(), "used 600 ms ago");
    server.advance_ms(400);
    let vhost = server.broker().vhost("/").unwrap();
    assert!(vhost.queue(&idle).is_none(), "unused for 1000 ms: deleted");
    assert!(vhost.queue(&busy).is_some(), "a queue with a consumer is in use");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letter_cycles_without_a_rejection_are_broken() {
    let server = TestServer::start_manual_clock(|_| {}).await;
    let (_c, ch) = channel(&server).await;
    // A queue whose expired messages go back to itself through the default exchange.
    let looping = unique("loop");
    let a = args(&[("x-message-ttl", AMQPValue::LongInt(10)), ("x-dead-letter-exchange", s(""))]);
    within(ch.queue_declare(looping.as_str().into(), QueueDeclareOptions::default(), a)).await.unwrap();
    q::publish(&ch, "", &looping, b"round").await;
    server.advance_ms(10);
    assert_eq!(q::counts(&ch, &looping).await.unwrap(), (0, 0), "dropped, not looping forever");

    // With a rejection in the loop, the message may go round (a consumer decides each time).
    let b = args(&[("x-dead-letter-exchange", s(""))]);
    let rejecting = unique("rejecting");
    within(ch.queue_declare(rejecting.as_str().into(), QueueDeclareOptions::default(), b)).await.unwrap();
    q::publish(&ch, "", &rejecting, b"again").await;
    for round in 1..=2i64 {
        let m = within(ch.basic_get(rejecting.as_str().into(), BasicGetOptions { no_ack: false }))
            .await
            .unwrap()
            .expect("back in the queue");
        if round == 2 {
            assert_eq!(deaths(&m.delivery)[0]["count"], AMQPValue::LongLongInt(1));
        }
        within(m.delivery.reject(BasicRejectOptions { requeue: false })).await.unwrap();
    }
    let m = get(&ch, &rejecting).await.expect("rejected twice, still cycling");
    assert_eq!(deaths(&m)[0]["count"], AMQPValue::LongLongInt(2), "one x-death entry counting up");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_dead_letters_survive_a_restart_in_their_new_queue() {
    let server = TestServer::start_manual_clock(|_| {}).await;
    let (work, dlq) = (unique("work"), unique("dlq"));
    {
        let (_c, ch) = channel(&server).await;
        declare_durable_ttl_pair(&ch, &work, &dlq, 50).await;
        let ch = confirm_channel(&_c).await;
        publish_persistent_numbers(&ch, &work, 3).await;
        server.advance_ms(50);
        assert_eq!(q::counts(&ch, &dlq).await.unwrap(), (3, 0));
    }
    let server = server.restart().await;
    let (_c, ch) = channel(&server).await;
    assert_eq!(q::counts(&ch, &work).await.unwrap(), (0, 0), "gone from the queue they expired in");
    expect_expired_numbers(&ch, &dlq, 3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paged_out_messages_expire_and_are_read_back_for_their_dead_letter_queue() {
    let server = TestServer::start_manual_clock(|c| c.storage.queue_memory_bytes = 4096).await;
    let (_c, ch) = channel(&server).await;
    let (work, dlq) = (unique("work"), unique("dlq"));
    declare_durable_ttl_pair(&ch, &work, &dlq, 1000).await;
    let ch = confirm_channel(&_c).await;
    // 1,200 KiB: more than the store's reader reads for one request.
    let body = |i: usize| -> Vec<u8> { format!("{i:04}").into_bytes().into_iter().chain([7u8; 1020]).collect() };
    for i in 0..1200 {
        let persistent = BasicProperties::default().with_delivery_mode(2);
        assert!(publish_confirmed(&ch, &work, &body(i), persistent).await.is_ack());
    }
    let vhost = server.broker().vhost("/").unwrap();
    let (queue, dead_letters) = (vhost.queue(&work).unwrap(), vhost.queue(&dlq).unwrap());
    eventually(|| queue.memory().1 > 0, "messages paged out").await;
    server.advance_ms(1000);
    // The paged-out ones are read back on the store's reader thread, then republished.
    eventually(|| dead_letters.counts().0 == 1200, "every one, paged out or not, dead-lettered").await;
    assert_eq!(q::counts(&ch, &work).await.unwrap(), (0, 0));
    for i in 0..1200 {
        assert_eq!(get(&ch, &dlq).await.unwrap().data, body(i), "in order, whole");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_delays_bring_a_rejected_message_back_then_dead_letter_it() {
    let server = TestServer::start_manual_clock(|_| {}).await;
    let (_c, ch) = channel(&server).await;
    let mut delays = lapin::types::FieldArray::default();
    delays.push(AMQPValue::LongInt(1000));
    delays.push(AMQPValue::LongInt(5000));
    let (work, dlq, _) = with_dlq(&ch, &[("x-retry-delays", AMQPValue::FieldArray(delays))]).await;
    q::publish(&ch, "", &work, b"job").await;
    let mut consumer = q::consume(&ch, &work, false).await;
    let first = next_delivery(&mut consumer).await;
    assert_eq!(header(&first, "x-retry-count"), None);
    within(first.nack(BasicNackOptions { requeue: false, multiple: false })).await.unwrap();
    for (delay, count) in [(1000u64, 1i64), (5000, 2)] {
        // A round trip first: the broker has taken the rejection before the clock moves.
        assert_eq!(q::counts(&ch, &work).await.unwrap(), (0, 1), "waiting out the delay");
        server.advance_ms(delay - 1);
        assert_eq!(q::counts(&ch, &work).await.unwrap(), (0, 1), "waiting out the delay");
        server.advance_ms(1);
        let again = next_delivery(&mut consumer).await;
        assert_eq!((again.data.as_slice(), again.redelivered), (&b"job"[..], true));
        assert_eq!(header(&again, "x-retry-count"), Some(&AMQPValue::LongLongInt(count)));
        within(again.reject(BasicRejectOptions { requeue: false })).await.unwrap();
    }
    let dead = get(&ch, &dlq).await.expect("out of retries: dead-lettered");
    assert_eq!(text(deaths(&dead)[0].get("reason")), "delivery_limit");
    assert_eq!(header(&dead, "x-retry-count"), Some(&AMQPValue::LongLongInt(2)));
    assert_eq!(q::counts(&ch, &work).await.unwrap(), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn policies_apply_arguments_by_name_and_operator_policies_cap_them() {
    use std::collections::BTreeMap;
    use warren_broker::config::PolicyValue;
    let policy = |name: &str, pattern: &str, operator: bool, def: &[(&str, PolicyValue)]| warren_broker::PolicyConfig {
        name: name.into(),
        vhost: "/".into(),
        pattern: pattern.into(),
        priority: 0,
        operator,
        apply_to: "all".into(),
        definition: def.iter().map(|(k, v)| (k.to_string(), v.clone())).collect::<BTreeMap<_, _>>(),
    };
    let server = TestServer::start_manual_clock(|c| {
        c.policies = vec![
            policy(
                "events",
                "^events\\.",
                false,
                &[
                    ("message-ttl", PolicyValue::Int(1000)),
                    ("dead-letter-exchange", PolicyValue::Text(String::new())),
                    ("dead-letter-routing-key", PolicyValue::Text("events-dlq".into())),
                ],
            ),
            policy("cap", ".*", true, &[("max-length", PolicyValue::Int(2))]),
        ]
    })
    .await;
    let (_c, ch) = channel(&server).await;
    q::declare(&ch, "events-dlq").await;
    let (events, other) = (unique("events.orders"), unique("jobs"));
    q::declare(&ch, &events).await;
    let asks_more = args(&[("x-max-length", AMQPValue::LongInt(1000)), ("x-overflow", s("reject-publish"))]);
    within(ch.queue_declare(other.as_str().into(), QueueDeclareOptions::default(), asks_more)).await.unwrap();

    q::publish(&ch, "", &events, b"e1").await;
    server.advance_ms(1000);
    let dead = get(&ch, "events-dlq").await.expect("the policy's TTL and dead-letter exchange applied");
    assert_eq!(dead.data, b"e1");
    assert_eq!(text(deaths(&dead)[0].get("reason")), "expired");

    let mut outcomes = Vec::new();
    for body in [b"j1", b"j2", b"j3"] {
        outcomes.push(publish_confirmed(&ch, &other, body, BasicProperties::default()).await.is_ack());
    }
    assert_eq!(outcomes, [true, true, false], "the operator's cap of 2 beats the queue's 1000");
    assert_eq!(q::counts(&ch, &other).await.unwrap(), (2, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovered_messages_keep_their_ttl_and_expire_without_a_consumer() {
    let server = TestServer::start_manual_clock(|_| {}).await;
    let (work, dlq) = (unique("work"), unique("dlq"));
    {
        let (_c, ch) = channel(&server).await;
        declare_durable_ttl_pair(&ch, &work, &dlq, 60_000).await;
        publish_persistent_numbers(&ch, &work, 3).await;
    }
    let server = server.restart().await;
    let (_c, ch) = channel(&server).await;
    assert_eq!(q::counts(&ch, &work).await.unwrap(), (3, 0), "back, not expired yet");
    server.advance_ms(60_000);
    assert_eq!(q::counts(&ch, &work).await.unwrap(), (0, 0), "expired on time with nobody consuming");
    expect_expired_numbers(&ch, &dlq, 3).await;
}

/// A durable TTL queue dead-lettering into a durable queue, with three persistent messages that
/// expire once the disk is full: their copies cannot be stored. Returns (fs, server, work, dlq).
async fn expire_onto_a_full_disk() -> (std::sync::Arc<warren_store::FaultyFs>, TestServer, String, String) {
    let fs = std::sync::Arc::new(warren_store::FaultyFs::new());
    let server = TestServer::start_on(fs.clone(), |c| c.clock = warren_broker::ClockKind::Manual).await;
    let (work, dlq) = (unique("work"), unique("dlq"));
    let (_c, ch) = channel(&server).await;
    declare_durable_ttl_pair(&ch, &work, &dlq, 1000).await;
    publish_persistent_numbers(&ch, &work, 3).await;
    fs.set_space_limit(Some(fs.used_bytes()));
    server.advance_ms(1000);
    // A copy accepted before the store noticed the full disk is withdrawn when its write fails.
    let dead_letters = server.broker().vhost("/").unwrap().queue(&dlq).unwrap();
    eventually(|| dead_letters.counts().0 == 0, "copies that could not be written withdrawn").await;
    (fs, server, work, dlq)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_letter_the_disk_refuses_keeps_its_original_until_the_copy_is_stored() {
    let (fs, server, work, dlq) = expire_onto_a_full_disk().await;
    // The originals were never settled: a restart brings them back to their queue.
    fs.set_space_limit(None);
    let server = server.restart().await;
    assert_eq!(server.restored().messages, 3);
    let (_c, ch) = channel(&server).await;
    // (The new broker's clock starts at the wall clock: a TTL's worth later they are due.)
    server.advance_ms(1000);
    assert_eq!(q::counts(&ch, &work).await.unwrap(), (0, 0));
    // Restored bodies stay on disk: the reader thread reads them back for their dead letters.
    let dead_letters = server.broker().vhost("/").unwrap().queue(&dlq).unwrap();
    eventually(|| dead_letters.counts().0 == 3, "the three dead-lettered").await;
    let server = server.restart().await;
    let (_c, ch) = channel(&server).await;
    let bodies = q::drain(&ch, &dlq).await;
    assert_eq!(bodies, vec![vec![0], vec![1], vec![2]], "each once, in order, after another restart");
    assert_eq!(q::counts(&ch, &work).await.unwrap(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_dead_letters_are_retried_once_the_disk_has_room() {
    let (fs, server, work, dlq) = expire_onto_a_full_disk().await;
    let (_c, ch) = channel(&server).await;
    fs.set_space_limit(None);
    // The store notices the space at its next probe (real time); each retry is a second later
    // on the broker's clock.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while q::counts(&ch, &dlq).await.unwrap().0 < 3 {
        assert!(tokio::time::Instant::now() < deadline, "dead letters never retried");
        server.advance_ms(1000);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    // Each exactly once; retries after a refusal may reorder them.
    let mut bodies = q::drain(&ch, &dlq).await;
    bodies.sort();
    assert_eq!(bodies, vec![vec![0], vec![1], vec![2]]);
    assert_eq!(q::counts(&ch, &work).await.unwrap(), (0, 0));
}

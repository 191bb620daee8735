//! The basic class: publish/consume round trips with properties, mandatory returns, consumers
//! (tags, exclusivity, priorities), get, CC/BCC, direct reply-to, channel.flow, recover-ok order,
//! and the publish-time refusals (immediate, prefetch_size, message size, user_id).
//! Acknowledgements, prefetch and requeue are in `consuming.rs`.

mod common;

use amqp_codec::Method;
use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldArray, FieldTable, LongString, ShortString};
use lapin::{BasicProperties, Channel, Confirmation};

const REPLY_TO: &str = "amq.rabbitmq.reply-to";

/// Publish in confirm mode and return the broker's verdict (or the channel error it caused).
async fn try_publish(
    ch: &Channel,
    exchange: &str,
    rk: &str,
    opts: BasicPublishOptions,
    body: &[u8],
    props: BasicProperties,
) -> Result<Confirmation, lapin::Error> {
    let confirm = within(ch.basic_publish(exchange.into(), rk.into(), opts, body, props)).await?;
    within(confirm).await
}

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

fn headers(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

async fn consume_opts(
    ch: &Channel,
    queue: &str,
    tag: &str,
    opts: BasicConsumeOptions,
) -> Result<lapin::Consumer, lapin::Error> {
    within(ch.basic_consume(queue.into(), tag.into(), opts, FieldTable::default())).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_trip_preserves_body_and_properties() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let name = unique("props");
    q::declare(&ch, &name).await;

    let mut nested = FieldTable::default();
    nested.insert("inner".into(), AMQPValue::LongLongInt(-42));
    let table = headers(&[
        ("string", s("value")),
        ("int", AMQPValue::LongInt(7)),
        ("bool", AMQPValue::Boolean(true)),
        ("nested", AMQPValue::FieldTable(nested)),
        ("array", AMQPValue::FieldArray(FieldArray::from(vec![s("a"), AMQPValue::LongInt(1)]))),
        ("ts", AMQPValue::Timestamp(1_700_000_000)),
        ("bytes", AMQPValue::ByteArray(vec![0u8, 0xCE, 0xFF].into())),
    ]);
    let props = BasicProperties::default()
        .with_content_type("application/octet-stream".into())
        .with_content_encoding("identity".into())
        .with_headers(table)
        .with_delivery_mode(2)
        .with_priority(5)
        .with_correlation_id("corr-1".into())
        .with_reply_to("replies".into())
        .with_expiration("600000".into())
        .with_message_id("msg-1".into())
        .with_timestamp(1_700_000_123)
        .with_type("kind".into())
        .with_user_id("guest".into())
        .with_app_id("tests".into());
    let body: Vec<u8> = (0..=255u8).chain([0xCE, 0, 0xCE]).collect();
    let c = try_publish(&ch, "", &name, BasicPublishOptions::default(), &body, props.clone()).await.unwrap();
    assert!(c.is_ack());

    let mut consumer = q::consume(&ch, &name, false).await;
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.data, body);
    assert_eq!(d.properties, props);
    assert_eq!(d.routing_key.as_str(), name);
    assert_eq!(d.exchange.as_str(), "");
    assert!(!d.redelivered);
    within(d.ack(BasicAckOptions::default())).await.unwrap();

    // An empty body round-trips too.
    q::publish(&ch, "", &name, b"").await;
    let d = next_delivery(&mut consumer).await;
    assert!(d.data.is_empty());

    // amqprs publisher, lapin consumer: same bytes, same properties.
    let aconn = server.amqprs().await;
    let (ach, _events) = amqprs_channel(&aconn).await;
    let aprops = amqprs::BasicProperties::default()
        .with_content_type("text/plain")
        .with_correlation_id("corr-2")
        .with_message_id("msg-2")
        .with_priority(3)
        .with_persistence(true)
        .finish();
    let args = amqprs::channel::BasicPublishArguments::new("", &name);
    within(ach.basic_publish(aprops, b"from amqprs".to_vec(), args)).await.unwrap();
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.data, b"from amqprs");
    assert_eq!(d.properties.content_type().as_ref().map(|s| s.as_str()), Some("text/plain"));
    assert_eq!(d.properties.correlation_id().as_ref().map(|s| s.as_str()), Some("corr-2"));
    assert_eq!(d.properties.message_id().as_ref().map(|s| s.as_str()), Some("msg-2"));
    assert_eq!(*d.properties.priority(), Some(3));
    assert_eq!(*d.properties.delivery_mode(), Some(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqprs_consumer_receives_and_acks() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let name = unique("amqprs-consume");
    q::declare(&ch, &name).await;
    let aconn = server.amqprs().await;
    let (ach, _events) = amqprs_channel(&aconn).await;
    let (_tag, mut rx) =
        within(ach.basic_consume_rx(amqprs::channel::BasicConsumeArguments::new(&name, ""))).await.unwrap();
    let props = BasicProperties::default().with_headers(headers(&[("k", s("v"))])).with_correlation_id("c".into());
    q::publish_props(&ch, "", &name, b"hello amqprs", props).await;
    let msg = within(rx.recv()).await.expect("delivery");
    assert_eq!(msg.content.as_deref(), Some(&b"hello amqprs"[..]));
    let p = msg.basic_properties.unwrap();
    assert_eq!(p.correlation_id().map(String::as_str), Some("c"));
    assert!(p.headers().is_some());
    let tag = msg.deliver.unwrap().delivery_tag();
    within(ach.basic_ack(amqprs::channel::BasicAckArguments::new(tag, false))).await.unwrap();
    // Acked: nothing comes back when the consumer's connection goes away.
    within(aconn.close()).await.unwrap();
    eventually(|| server.broker().open_connections() == 1, "the amqprs connection to end").await;
    assert_eq!(q::counts(&ch, &name).await.unwrap(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mandatory_unroutable_publish_is_returned_with_312() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let rk = unique("nowhere");
    let mandatory = BasicPublishOptions { mandatory: true, ..Default::default() };
    let c = try_publish(&ch, "amq.direct", &rk, mandatory, b"lost", BasicProperties::default()).await.unwrap();
    match c {
        Confirmation::Ack(Some(ret)) => {
            assert_eq!(ret.reply_code, 312);
            assert_eq!(ret.reply_text.as_str(), "NO_ROUTE");
            assert_eq!(ret.delivery.data, b"lost");
            assert_eq!(ret.delivery.routing_key.as_str(), rk);
            assert_eq!(ret.delivery.exchange.as_str(), "amq.direct");
        }
        other => panic!("expected ack with a returned message, got {other:?}"),
    }
    // Without mandatory it is silently dropped.
    let c = try_publish(&ch, "amq.direct", &rk, BasicPublishOptions::default(), b"lost", BasicProperties::default())
        .await
        .unwrap();
    assert_eq!(c, Confirmation::Ack(None));

    // amqprs hears the basic.return through its channel callback.
    let aconn = server.amqprs().await;
    let (ach, mut events) = amqprs_channel(&aconn).await;
    let mut args = amqprs::channel::BasicPublishArguments::new("amq.direct", &rk);
    args.mandatory(true);
    within(ach.basic_publish(amqprs::BasicProperties::default(), b"x".to_vec(), args)).await.unwrap();
    assert_eq!(next_event(&mut events).await, ChannelEvent::Return(312));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publish_to_a_missing_exchange_is_404() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let r =
        try_publish(&ch, &unique("no-exchange"), "k", BasicPublishOptions::default(), b"x", BasicProperties::default())
            .await;
    assert_code(r, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consuming_a_missing_queue_is_404() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    assert_code(consume_opts(&ch, &unique("none"), "", BasicConsumeOptions::default()).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_consumers_conflict_with_403() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = within(conn.create_channel()).await.unwrap();
    let name = unique("excl-consumer");
    q::declare(&ch, &name).await;
    let exclusive = BasicConsumeOptions { exclusive: true, ..Default::default() };
    let _owner = consume_opts(&ch, &name, "owner", exclusive).await.unwrap();
    let ch2 = within(conn.create_channel()).await.unwrap();
    assert_code(consume_opts(&ch2, &name, "second", BasicConsumeOptions::default()).await, 403);

    // The other way round: an exclusive consumer cannot join an already consumed queue.
    let other = unique("shared-consumer");
    q::declare(&ch, &other).await;
    let _shared = consume_opts(&ch, &other, "shared", BasicConsumeOptions::default()).await.unwrap();
    let ch3 = within(conn.create_channel()).await.unwrap();
    assert_code(consume_opts(&ch3, &other, "greedy", exclusive).await, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_tags_are_generated_and_must_be_unique() {
    let server = TestServer::start().await;
    let (conn, ch) = server.lapin_channel().await;
    let name = unique("tags");
    q::declare(&ch, &name).await;
    let c1 = q::consume(&ch, &name, false).await;
    let c2 = q::consume(&ch, &name, false).await;
    for c in [&c1, &c2] {
        assert!(c.tag().as_str().starts_with("amq.ctag-"), "{}", c.tag());
    }
    assert_ne!(c1.tag(), c2.tag());

    let aconn = server.amqprs().await;
    let (ach, _events) = amqprs_channel(&aconn).await;
    let (tag, _rx) =
        within(ach.basic_consume_rx(amqprs::channel::BasicConsumeArguments::new(&name, ""))).await.unwrap();
    assert!(tag.starts_with("amq.ctag-"), "{tag}");

    // Reusing a tag on the same channel is a connection error (530), as in RabbitMQ.
    let mut events = conn.events_listener();
    let _first = consume_opts(&ch, &name, "dup", BasicConsumeOptions::default()).await.unwrap();
    let second = consume_opts(&ch, &name, "dup", BasicConsumeOptions::default()).await;
    assert_code(second, 530);
    assert_eq!(next_connection_error(&mut events).await, Some(530));
    eventually(|| !conn.status().connected(), "the connection to close").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn basic_get_and_get_empty() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let name = unique("get");
    q::declare(&ch, &name).await;
    let get = |no_ack| ch.basic_get(name.as_str().into(), BasicGetOptions { no_ack });
    assert!(within(get(false)).await.unwrap().is_none(), "get-empty on an empty queue");
    q::publish(&ch, "", &name, b"one").await;
    q::publish(&ch, "", &name, b"two").await;
    let m = within(get(false)).await.unwrap().expect("get-ok");
    assert_eq!(m.delivery.data, b"one");
    assert_eq!(m.message_count, 1, "one more message is ready");
    assert!(!m.delivery.redelivered);
    assert_eq!(m.delivery.routing_key.as_str(), name);
    within(m.delivery.ack(BasicAckOptions::default())).await.unwrap();
    let m = within(get(true)).await.unwrap().expect("get-ok");
    assert_eq!(m.delivery.data, b"two");
    assert_eq!(m.message_count, 0);
    assert!(within(get(false)).await.unwrap().is_none());

    // amqprs basic.get
    q::publish(&ch, "", &name, b"three").await;
    let aconn = server.amqprs().await;
    let (ach, _events) = amqprs_channel(&aconn).await;
    let mut args = amqprs::channel::BasicGetArguments::new(&name);
    args.no_ack(true);
    let (get_ok, _props, body) = within(ach.basic_get(args.clone())).await.unwrap().expect("get-ok");
    assert_eq!(body, b"three");
    assert_eq!(get_ok.message_count(), 0);
    assert!(within(ach.basic_get(args)).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cc_and_bcc_route_to_extra_keys_and_bcc_is_stripped() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let keys: Vec<String> = ["to", "cc", "bcc"].iter().map(|k| unique(k)).collect();
    for k in &keys {
        q::declare(&ch, k).await;
        q::bind(&ch, k, "amq.direct", k).await;
    }
    let array = |k: &str| AMQPValue::FieldArray(FieldArray::from(vec![s(k)]));
    let props = BasicProperties::default().with_headers(headers(&[
        ("CC", array(&keys[1])),
        ("BCC", array(&keys[2])),
        ("x-other", s("kept")),
    ]));
    let c = try_publish(
        &ch,
        "amq.direct",
        &keys[0],
        BasicPublishOptions { mandatory: true, ..Default::default() },
        b"memo",
        props,
    )
    .await
    .unwrap();
    assert_eq!(c, Confirmation::Ack(None));
    for k in &keys {
        let m = within(ch.basic_get(k.as_str().into(), BasicGetOptions { no_ack: true }))
            .await
            .unwrap()
            .expect("a copy in every queue");
        assert_eq!(m.delivery.data, b"memo");
        assert_eq!(m.delivery.routing_key.as_str(), keys[0], "the routing key is the original one");
        let h = m.delivery.properties.headers().clone().expect("headers kept");
        assert!(h.contains_key("CC"), "CC is delivered");
        assert!(!h.contains_key("BCC"), "BCC must be stripped");
        assert!(h.contains_key("x-other"));
        assert_eq!(q::counts(&ch, k).await.unwrap().0, 0, "exactly one copy");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_reply_to_rpc() {
    let server = TestServer::start().await;
    let rpc_queue = unique("rpc");
    // Responder on its own connection.
    let (_rc, responder) = server.lapin_channel().await;
    q::declare(&responder, &rpc_queue).await;
    let mut requests = q::consume(&responder, &rpc_queue, false).await;

    let (_qc, requester) = server.lapin_channel().await;
    let mut replies = q::consume(&requester, REPLY_TO, true).await;
    let props = BasicProperties::default().with_reply_to(REPLY_TO.into()).with_correlation_id("call-1".into());
    q::publish_props(&requester, "", &rpc_queue, b"ping", props).await;

    let req = next_delivery(&mut requests).await;
    assert_eq!(req.data, b"ping");
    let reply_to = req.properties.reply_to().clone().expect("reply_to kept").to_string();
    assert!(reply_to.starts_with("amq.rabbitmq.reply-to."), "rewritten reply_to: {reply_to}");
    let corr = req.properties.correlation_id().clone().unwrap();
    let reply_props = BasicProperties::default().with_correlation_id(corr);
    q::publish_props(&responder, "", &reply_to, b"pong", reply_props).await;
    within(req.ack(BasicAckOptions::default())).await.unwrap();

    let reply = next_delivery(&mut replies).await;
    assert_eq!(reply.data, b"pong");
    assert_eq!(reply.properties.correlation_id().as_ref().map(ShortString::as_str), Some("call-1"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_reply_to_misuse_is_406() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    // The reply consumer must be no_ack.
    let ch = within(conn.create_channel()).await.unwrap();
    assert_code(consume_opts(&ch, REPLY_TO, "", BasicConsumeOptions::default()).await, 406);

    // Publishing with reply_to = amq.rabbitmq.reply-to without consuming from it first.
    let ch = confirmed_channel(&conn).await;
    let target = unique("rpc-target");
    q::declare(&ch, &target).await;
    let props = BasicProperties::default().with_reply_to(REPLY_TO.into());
    let r = try_publish(&ch, "", &target, BasicPublishOptions::default(), b"x", props).await;
    assert_code(r, 406);
    let ch = within(conn.create_channel()).await.unwrap();
    assert_eq!(q::counts(&ch, &target).await.unwrap().0, 0, "the refused message was not enqueued");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn immediate_publish_is_540() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let mut events = conn.events_listener();
    let ch = confirmed_channel(&conn).await;
    let immediate = BasicPublishOptions { immediate: true, ..Default::default() };
    let r = try_publish(&ch, "", "anything", immediate, b"x", BasicProperties::default()).await;
    assert_code(r, 540);
    assert_eq!(next_connection_error(&mut events).await, Some(540));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_prefetch_size_is_540() {
    let server = TestServer::start().await;
    let (mut raw, _) = RawClient::open(server.addr, 0).await;
    raw.open_channel(1).await;
    raw.send(1, Method::BasicQos(amqp_codec::BasicQos { prefetch_size: 4096, prefetch_count: 10, global: false }))
        .await;
    let close = raw.expect_connection_close().await;
    assert_eq!(close.reply_code, 540, "{close:?}");
    assert_eq!((close.class_id, close.method_id), (60, 10));

    // prefetch_size 0 is fine.
    let (mut raw, _) = RawClient::open(server.addr, 0).await;
    raw.open_channel(1).await;
    raw.send(1, Method::BasicQos(amqp_codec::BasicQos { prefetch_size: 0, prefetch_count: 10, global: false })).await;
    assert_eq!(raw.expect_method(1).await, Method::BasicQosOk);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn message_larger_than_the_limit_is_406() {
    let server = TestServer::start_with(|c| c.limits.max_message_size_bytes = 1024).await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let name = unique("size");
    q::declare(&ch, &name).await;
    let at_limit = vec![7u8; 1024];
    assert!(try_publish(&ch, "", &name, BasicPublishOptions::default(), &at_limit, BasicProperties::default())
        .await
        .unwrap()
        .is_ack());
    let over = vec![7u8; 1025];
    assert_code(
        try_publish(&ch, "", &name, BasicPublishOptions::default(), &over, BasicProperties::default()).await,
        406,
    );
    let ch = within(conn.create_channel()).await.unwrap();
    assert_eq!(q::counts(&ch, &name).await.unwrap().0, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_id_must_match_the_authenticated_user() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let name = unique("user-id");
    q::declare(&ch, &name).await;
    let ok = BasicProperties::default().with_user_id("guest".into());
    assert!(try_publish(&ch, "", &name, BasicPublishOptions::default(), b"ok", ok).await.unwrap().is_ack());
    let forged = BasicProperties::default().with_user_id("mallory".into());
    assert_code(try_publish(&ch, "", &name, BasicPublishOptions::default(), b"forged", forged).await, 406);
    let ch = within(conn.create_channel()).await.unwrap();
    assert_eq!(q::counts(&ch, &name).await.unwrap().0, 1);
}

/// As RabbitMQ: channel.flow(active=true) is answered, active=false is not implemented (540
/// closes the connection). amqp091-go's suite asserts exactly this.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channel_flow_off_is_not_implemented_as_in_rabbitmq() {
    let server = TestServer::start().await;
    let (mut raw, _) = RawClient::open(server.addr, 0).await;
    raw.open_channel(1).await;
    raw.send(1, Method::ChannelFlow(amqp_codec::ChannelFlow { active: true })).await;
    assert!(matches!(raw.expect_method(1).await, Method::ChannelFlowOk(ok) if ok.active));
    raw.send(1, Method::ChannelFlow(amqp_codec::ChannelFlow { active: false })).await;
    let close = raw.expect_connection_close().await;
    assert_eq!((close.reply_code, close.class_id, close.method_id), (540, 20, 20), "{close:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_ok_precedes_the_redeliveries() {
    // Clients (lapin among them) discard deliveries buffered before basic.recover-ok, as
    // RabbitMQ answers recover-ok before its queues redeliver. So must we.
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let name = unique("recover-raw");
    q::declare(&ch, &name).await;
    let (mut raw, _) = RawClient::open(server.addr, 0).await;
    raw.open_channel(1).await;
    let consume =
        amqp_codec::BasicConsume { queue: name.as_str().into(), consumer_tag: "c".into(), ..Default::default() };
    raw.send(1, Method::BasicConsume(consume)).await;
    assert!(matches!(raw.expect_method(1).await, Method::BasicConsumeOk(_)));
    q::publish(&ch, "", &name, b"r").await;
    match raw.expect_method(1).await {
        Method::BasicDeliver(d) => assert!(!d.redelivered),
        other => panic!("expected a delivery, got {other:?}"),
    }
    let _header = raw.read_frame().await;
    let _body = raw.read_frame().await;
    raw.send(1, Method::BasicRecover(amqp_codec::BasicRecover { requeue: true })).await;
    assert_eq!(raw.expect_method(1).await, Method::BasicRecoverOk, "recover-ok must come before the redelivery");
    match raw.expect_method(1).await {
        Method::BasicDeliver(d) => assert!(d.redelivered),
        other => panic!("expected the redelivery, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn higher_priority_consumers_are_served_first_while_they_have_credit() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let name = unique("consumer-priority");
    q::declare(&ch, &name).await;
    let low_ch = within(conn.create_channel()).await.unwrap();
    let high_ch = within(conn.create_channel()).await.unwrap();
    within(high_ch.basic_qos(2, BasicQosOptions::default())).await.unwrap();
    let prio = |p: i32| headers(&[("x-priority", AMQPValue::LongInt(p))]);
    let opts = BasicConsumeOptions::default();
    let mut low = within(low_ch.basic_consume(name.as_str().into(), "low".into(), opts, prio(0))).await.unwrap();
    let mut high = within(high_ch.basic_consume(name.as_str().into(), "high".into(), opts, prio(5))).await.unwrap();
    for i in 0..6u8 {
        q::publish(&ch, "", &name, &[i]).await;
    }
    let high_got: Vec<Vec<u8>> = receive_n(&mut high, 2).await.into_iter().map(|d| d.data).collect();
    let low_got: Vec<Vec<u8>> = receive_n(&mut low, 4).await.into_iter().map(|d| d.data).collect();
    assert_eq!(high_got, vec![vec![0], vec![1]], "the high-priority consumer takes messages up to its prefetch");
    assert_eq!(low_got, vec![vec![2], vec![3], vec![4], vec![5]]);

    let bad =
        within(low_ch.basic_consume(name.as_str().into(), "bad".into(), opts, headers(&[("x-priority", s("high"))])))
            .await;
    assert_code(bad, 406);
}

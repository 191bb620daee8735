//! Queues: server-named and declare-ok counts, passive and redeclare rules, x-argument validation,
//! queue types, bind/unbind, purge, delete (if-unused, if-empty), exclusive and auto-delete
//! lifecycles, and broker-initiated consumer cancellation when a queue goes.

mod common;

use amqprs::channel::{BasicConsumeArguments, QueueDeclareArguments, QueueDeleteArguments};
use common::*;
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation};

fn args(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

async fn declare_with(
    ch: &Channel,
    name: &str,
    opts: QueueDeclareOptions,
    arguments: FieldTable,
) -> Result<lapin::Queue, lapin::Error> {
    within(ch.queue_declare(name.into(), opts, arguments)).await
}

async fn confirm_channel(conn: &lapin::Connection) -> Channel {
    let ch = within(conn.create_channel()).await.unwrap();
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    ch
}

fn queue_exists(server: &TestServer, name: &str) -> bool {
    server.broker().vhost("/").expect("vhost /").queue(name).is_some()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_named_queues_get_amq_gen_names() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let opts = QueueDeclareOptions { exclusive: true, ..Default::default() };
    let a = declare_with(&ch, "", opts, FieldTable::default()).await.unwrap();
    let b = declare_with(&ch, "", opts, FieldTable::default()).await.unwrap();
    for q in [&a, &b] {
        assert!(q.name().as_str().starts_with("amq.gen-"), "{}", q.name());
        assert_eq!(q.name().as_str().len(), "amq.gen-".len() + 22);
        assert_eq!((q.message_count(), q.consumer_count()), (0, 0));
    }
    assert_ne!(a.name(), b.name());
    // The empty name means "the queue last declared on this channel".
    q::publish(&ch, "", b.name().as_str(), b"to-b").await;
    let purged = within(ch.queue_purge("".into(), QueuePurgeOptions::default())).await.unwrap();
    assert_eq!(purged, 1);

    // amqprs sees the same.
    let conn = server.amqprs().await;
    let (ach, _events) = amqprs_channel(&conn).await;
    let (name, messages, consumers) =
        within(ach.queue_declare(QueueDeclareArguments::exclusive_server_named())).await.unwrap().expect("declare-ok");
    assert!(name.starts_with("amq.gen-"), "{name}");
    assert_eq!((messages, consumers), (0, 0));
    // Clients may not pick amq.* names themselves.
    let (_c, ch) = server.lapin_channel().await;
    assert_code(declare_with(&ch, "amq.mine", QueueDeclareOptions::default(), FieldTable::default()).await, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declare_ok_reports_ready_messages_and_consumers() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirm_channel(&conn).await;
    let name = unique("counts");
    q::declare(&ch, &name).await;
    for i in 0..3u8 {
        q::publish(&ch, "", &name, &[i]).await;
    }
    let again = declare_with(&ch, &name, QueueDeclareOptions::default(), FieldTable::default()).await.unwrap();
    assert_eq!((again.message_count(), again.consumer_count()), (3, 0));

    let consumer_ch = within(conn.create_channel()).await.unwrap();
    within(consumer_ch.basic_qos(1, BasicQosOptions::default())).await.unwrap();
    let mut consumer = q::consume(&consumer_ch, &name, false).await;
    let first = next_delivery(&mut consumer).await;
    assert_eq!(first.data, vec![0]);
    // One unacked (not counted as ready), two ready, one consumer.
    assert_eq!(q::counts(&ch, &name).await.unwrap(), (2, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passive_declare_of_a_missing_queue_is_404() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    assert_code(q::counts(&ch, &unique("missing")).await, 404);
    assert!(!ch.status().connected(), "a channel error closes the channel");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redeclare_with_other_properties_is_406() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = within(conn.create_channel()).await.unwrap();
    let name = unique("redeclare");
    let ten = args(&[("x-max-length", AMQPValue::LongInt(10))]);
    declare_with(&ch, &name, QueueDeclareOptions::default(), ten.clone()).await.unwrap();
    // Same again is fine.
    declare_with(&ch, &name, QueueDeclareOptions::default(), ten).await.unwrap();

    let twenty = args(&[("x-max-length", AMQPValue::LongInt(20))]);
    assert_code(declare_with(&ch, &name, QueueDeclareOptions::default(), twenty).await, 406);

    let ch = within(conn.create_channel()).await.unwrap();
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };
    let ten = args(&[("x-max-length", AMQPValue::LongInt(10))]);
    assert_code(declare_with(&ch, &name, durable, ten).await, 406);

    // A passive declare ignores the arguments.
    let ch = within(conn.create_channel()).await.unwrap();
    assert!(q::counts(&ch, &name).await.is_ok());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_x_arguments_are_406() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let cases = [
        ("x-max-length", AMQPValue::LongString(LongString::from("ten"))),
        ("x-message-ttl", AMQPValue::LongInt(-1)),
        ("x-expires", AMQPValue::LongInt(0)),
        ("x-overflow", AMQPValue::LongString(LongString::from("explode"))),
        ("x-queue-type", AMQPValue::LongString(LongString::from("no-such-type"))),
    ];
    for (key, value) in cases {
        let ch = within(conn.create_channel()).await.unwrap();
        let name = unique("bad-arg");
        let r = declare_with(&ch, &name, QueueDeclareOptions::default(), args(&[(key, value.clone())])).await;
        assert_code(r, 406);
        assert!(!queue_exists(&server, &name), "{key}: the queue must not be created");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queue_types_classic_and_quorum() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirm_channel(&conn).await;
    let qtype = |t: &str| args(&[("x-queue-type", AMQPValue::LongString(LongString::from(t)))]);
    let durable = QueueDeclareOptions { durable: true, ..Default::default() };

    let classic = unique("classic");
    declare_with(&ch, &classic, QueueDeclareOptions::default(), qtype("classic")).await.unwrap();
    let quorum = unique("quorum");
    declare_with(&ch, &quorum, durable, qtype("quorum")).await.unwrap();
    q::publish(&ch, "", &quorum, b"q").await;
    assert_eq!(q::get_body(&ch, &quorum).await.as_deref(), Some(&b"q"[..]));

    // Quorum queues are always durable (RabbitMQ refuses a transient one with 406).
    let transient = unique("quorum-transient");
    assert_code(declare_with(&ch, &transient, QueueDeclareOptions::default(), qtype("quorum")).await, 406);

    // amqprs: the same declarations.
    let aconn = server.amqprs().await;
    let (ach, _events) = amqprs_channel(&aconn).await;
    let mut table = amqprs::FieldTable::new();
    table.insert("x-queue-type".try_into().unwrap(), amqprs::FieldValue::S("quorum".try_into().unwrap()));
    let name = unique("quorum-amqprs");
    let decl = QueueDeclareArguments::durable_client_named(&name).arguments(table).finish();
    let (declared, _, _) = within(ach.queue_declare(decl)).await.unwrap().expect("declare-ok");
    assert_eq!(declared, name);
    assert!(queue_exists(&server, &name));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bind_and_unbind_change_routing() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirm_channel(&conn).await;
    let name = unique("bind");
    q::declare(&ch, &name).await;
    q::bind(&ch, &name, "amq.direct", &name).await;
    // Binding twice is idempotent.
    q::bind(&ch, &name, "amq.direct", &name).await;
    let mandatory = BasicPublishOptions { mandatory: true, ..Default::default() };
    let publish = |ch: &Channel| {
        let ch = ch.clone();
        let rk = name.clone();
        async move {
            let c = within(ch.basic_publish(
                "amq.direct".into(),
                rk.as_str().into(),
                mandatory,
                b"b",
                BasicProperties::default(),
            ))
            .await
            .unwrap();
            match within(c).await.unwrap() {
                Confirmation::Ack(returned) => returned.is_none(),
                other => panic!("{other:?}"),
            }
        }
    };
    assert!(publish(&ch).await, "routed while bound");
    assert_eq!(q::counts(&ch, &name).await.unwrap().0, 1, "one copy despite the duplicate bind");
    within(ch.queue_unbind(name.as_str().into(), "amq.direct".into(), name.as_str().into(), FieldTable::default()))
        .await
        .unwrap();
    assert!(!publish(&ch).await, "returned once unbound");
    assert_eq!(q::counts(&ch, &name).await.unwrap().0, 1);

    // Binding a missing queue or to a missing exchange is 404.
    let r = ch.queue_bind(
        unique("nq").as_str().into(),
        "amq.direct".into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    );
    assert_code(within(r).await, 404);
    let ch = within(conn.create_channel()).await.unwrap();
    let r = ch.queue_bind(
        name.as_str().into(),
        unique("nx").as_str().into(),
        "k".into(),
        QueueBindOptions::default(),
        FieldTable::default(),
    );
    assert_code(within(r).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_returns_the_number_of_ready_messages() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirm_channel(&conn).await;
    let name = unique("purge");
    q::declare(&ch, &name).await;
    for i in 0..5u8 {
        q::publish(&ch, "", &name, &[i]).await;
    }
    assert_eq!(within(ch.queue_purge(name.as_str().into(), QueuePurgeOptions::default())).await.unwrap(), 5);
    assert_eq!(q::counts(&ch, &name).await.unwrap().0, 0);
    assert_eq!(within(ch.queue_purge(name.as_str().into(), QueuePurgeOptions::default())).await.unwrap(), 0);

    // amqprs
    let aconn = server.amqprs().await;
    let (ach, _events) = amqprs_channel(&aconn).await;
    q::publish(&ch, "", &name, b"x").await;
    let purged = within(ach.queue_purge(amqprs::channel::QueuePurgeArguments::new(&name))).await.unwrap();
    assert_eq!(purged, Some(1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_if_unused_and_if_empty() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirm_channel(&conn).await;
    let name = unique("delete");
    q::declare(&ch, &name).await;
    let consumer_ch = within(conn.create_channel()).await.unwrap();
    let consumer = q::consume(&consumer_ch, &name, false).await;

    let if_unused = QueueDeleteOptions { if_unused: true, ..Default::default() };
    assert_code(within(ch.queue_delete(name.as_str().into(), if_unused)).await, 406);

    within(consumer_ch.basic_cancel(consumer.tag(), BasicCancelOptions::default())).await.unwrap();
    let ch = confirm_channel(&conn).await;
    for i in 0..4u8 {
        q::publish(&ch, "", &name, &[i]).await;
    }
    let if_empty = QueueDeleteOptions { if_empty: true, ..Default::default() };
    assert_code(within(ch.queue_delete(name.as_str().into(), if_empty)).await, 406);

    let ch = within(conn.create_channel()).await.unwrap();
    assert_eq!(q::counts(&ch, &name).await.unwrap(), (4, 0), "refused deletes leave the queue alone");
    // No consumers any more: if_unused passes and delete-ok carries the message count.
    let deleted = within(ch.queue_delete(name.as_str().into(), if_unused)).await.unwrap();
    assert_eq!(deleted, 4);
    assert_code(q::counts(&ch, &name).await, 404);

    // amqprs: delete-ok count, and deleting a missing queue is fine.
    let aconn = server.amqprs().await;
    let (ach, _events) = amqprs_channel(&aconn).await;
    let name2 = unique("delete-amqprs");
    let ch = confirm_channel(&conn).await;
    q::declare(&ch, &name2).await;
    q::publish(&ch, "", &name2, b"1").await;
    q::publish(&ch, "", &name2, b"2").await;
    assert_eq!(within(ach.queue_delete(QueueDeleteArguments::new(&name2))).await.unwrap(), Some(2));
    assert_eq!(within(ach.queue_delete(QueueDeleteArguments::new(&name2))).await.unwrap(), Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exclusive_queue_is_locked_to_its_connection_and_dies_with_it() {
    let server = TestServer::start().await;
    let (owner, owner_ch) = server.lapin_channel().await;
    let name = unique("exclusive");
    let excl = QueueDeclareOptions { exclusive: true, ..Default::default() };
    declare_with(&owner_ch, &name, excl, FieldTable::default()).await.unwrap();
    q::publish(&owner_ch, "", &name, b"mine").await;

    let other = server.lapin().await;
    let ch = within(other.create_channel()).await.unwrap();
    assert_code(q::counts(&ch, &name).await, 405);
    let ch = within(other.create_channel()).await.unwrap();
    let r = ch.basic_consume(name.as_str().into(), "".into(), BasicConsumeOptions::default(), FieldTable::default());
    assert_code(within(r).await, 405);
    let ch = within(other.create_channel()).await.unwrap();
    assert_code(within(ch.queue_delete(name.as_str().into(), QueueDeleteOptions::default())).await, 405);
    let ch = within(other.create_channel()).await.unwrap();
    assert_code(declare_with(&ch, &name, excl, FieldTable::default()).await, 405);

    // The owner still uses it.
    assert_eq!(q::counts(&owner_ch, &name).await.unwrap(), (1, 0));

    within(owner.close(200, "bye".into())).await.unwrap();
    eventually(|| !queue_exists(&server, &name), "the exclusive queue to be deleted").await;
    let ch = within(other.create_channel()).await.unwrap();
    assert_code(q::counts(&ch, &name).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_delete_queue_goes_when_its_last_consumer_cancels() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = within(conn.create_channel()).await.unwrap();
    let name = unique("autodel");
    let opts = QueueDeclareOptions { auto_delete: true, ..Default::default() };
    declare_with(&ch, &name, opts, FieldTable::default()).await.unwrap();
    // Never consumed: stays.
    assert_eq!(q::counts(&ch, &name).await.unwrap(), (0, 0));

    let c1 = q::consume(&ch, &name, false).await;
    let ch2 = within(conn.create_channel()).await.unwrap();
    let c2 = q::consume(&ch2, &name, false).await;
    assert_eq!(q::counts(&ch, &name).await.unwrap(), (0, 2));
    within(ch.basic_cancel(c1.tag(), BasicCancelOptions::default())).await.unwrap();
    assert_eq!(q::counts(&ch, &name).await.unwrap(), (0, 1), "one consumer left");
    within(ch2.basic_cancel(c2.tag(), BasicCancelOptions::default())).await.unwrap();
    assert_code(q::counts(&ch, &name).await, 404);

    // Also when the last consumer's channel closes.
    let ch = within(conn.create_channel()).await.unwrap();
    let name2 = unique("autodel-close");
    declare_with(&ch, &name2, opts, FieldTable::default()).await.unwrap();
    let consumer_ch = within(conn.create_channel()).await.unwrap();
    let _c = q::consume(&consumer_ch, &name2, false).await;
    within(consumer_ch.close(200, "bye".into())).await.unwrap();
    assert_code(q::counts(&ch, &name2).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_queue_cancels_its_consumers() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let admin = within(conn.create_channel()).await.unwrap();
    let name = unique("cancelled");
    q::declare(&admin, &name).await;

    // lapin announces consumer_cancel_notify: its consumer stream ends.
    let consumer_ch = within(conn.create_channel()).await.unwrap();
    let mut lapin_consumer = q::consume(&consumer_ch, &name, false).await;

    // amqprs announces it too: its channel callback hears the basic.cancel.
    let aconn = server.amqprs().await;
    let (ach, mut events) = amqprs_channel(&aconn).await;
    let tag = within(ach.basic_consume_rx(BasicConsumeArguments::new(&name, "amqprs-consumer"))).await.unwrap().0;
    assert_eq!(tag, "amqprs-consumer");
    assert_eq!(q::counts(&admin, &name).await.unwrap(), (0, 2));

    within(admin.queue_delete(name.as_str().into(), QueueDeleteOptions::default())).await.unwrap();
    assert!(within(lapin_consumer.next()).await.is_none(), "the lapin consumer stream ends");
    assert_eq!(next_event(&mut events).await, ChannelEvent::Cancel("amqprs-consumer".into()));
    // The channels stay usable.
    q::declare(&consumer_ch, &unique("after-cancel")).await;
    assert!(ach.is_open());
}

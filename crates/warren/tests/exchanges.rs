//! Exchanges: the predeclared ones, declare/passive/redeclare rules and their errors, deletion,
//! exchange-to-exchange bindings, alternate exchanges, topic and headers routing, internal and
//! auto-delete exchanges.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};

/// A channel in confirm mode: once a publish is confirmed, the broker has routed it.
async fn confirm_channel(server: &TestServer) -> (lapin::Connection, Channel) {
    let (conn, ch) = server.lapin_channel().await;
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    (conn, ch)
}

async fn declare_ex(ch: &Channel, name: &str, kind: ExchangeKind, opts: ExchangeDeclareOptions, args: FieldTable) {
    within(ch.exchange_declare(name.into(), kind, opts, args)).await.expect("exchange.declare");
}

async fn passive_ex(ch: &Channel, name: &str) -> Result<(), lapin::Error> {
    let opts = ExchangeDeclareOptions { passive: true, ..Default::default() };
    within(ch.exchange_declare(name.into(), ExchangeKind::Direct, opts, FieldTable::default())).await
}

/// Publish (confirmed); returns the reply code if the broker returned it as unroutable.
async fn publish_mandatory(ch: &Channel, exchange: &str, rk: &str, props: BasicProperties) -> Option<u16> {
    let confirm = within(ch.basic_publish(
        exchange.into(),
        rk.into(),
        BasicPublishOptions { mandatory: true, ..Default::default() },
        b"m",
        props,
    ))
    .await
    .expect("basic.publish");
    match within(confirm).await.expect("confirm") {
        Confirmation::Ack(returned) => returned.map(|r| r.reply_code),
        other => panic!("expected an ack, got {other:?}"),
    }
}

async fn ready(ch: &Channel, queue: &str) -> u32 {
    q::counts(ch, queue).await.expect("passive queue.declare").0
}

fn table(pairs: &[(&str, AMQPValue)]) -> FieldTable {
    let mut t = FieldTable::default();
    for (k, v) in pairs {
        t.insert((*k).into(), v.clone());
    }
    t
}

fn s(v: &str) -> AMQPValue {
    AMQPValue::LongString(LongString::from(v))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn default_exchange_routes_by_queue_name() {
    let server = TestServer::start().await;
    let (_c, ch) = confirm_channel(&server).await;
    let name = unique("default-ex");
    q::declare(&ch, &name).await;
    assert_eq!(publish_mandatory(&ch, "", &name, BasicProperties::default()).await, None);
    assert_eq!(publish_mandatory(&ch, "", &unique("nobody"), BasicProperties::default()).await, Some(312));
    assert_eq!(ready(&ch, &name).await, 1);
    // The default exchange cannot be declared (not even passively, as in RabbitMQ), bound to
    // or deleted.
    let (_c2, ch2) = server.lapin_channel().await;
    assert_code(passive_ex(&ch2, "").await, 403);
    let bind =
        ch.queue_bind(name.as_str().into(), "".into(), "x".into(), QueueBindOptions::default(), FieldTable::default());
    assert_code(within(bind).await, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn predeclared_exchanges_exist() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    for name in ["amq.direct", "amq.fanout", "amq.topic", "amq.headers", "amq.match"] {
        passive_ex(&ch, name).await.unwrap_or_else(|e| panic!("{name}: {e:?}"));
    }
    // Redeclaring one with its own type is fine (durable, like RabbitMQ's).
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    declare_ex(&ch, "amq.fanout", ExchangeKind::Fanout, durable, FieldTable::default()).await;
    assert_code(passive_ex(&ch, &unique("missing-ex")).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declare_passive_and_redeclare_rules() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = within(conn.create_channel()).await.unwrap();
    let name = unique("ex");
    declare_ex(&ch, &name, ExchangeKind::Topic, ExchangeDeclareOptions::default(), FieldTable::default()).await;
    declare_ex(&ch, &name, ExchangeKind::Topic, ExchangeDeclareOptions::default(), FieldTable::default()).await;
    passive_ex(&ch, &name).await.expect("passive declare of an existing exchange");

    let other_type = ch.exchange_declare(
        name.as_str().into(),
        ExchangeKind::Fanout,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    );
    assert_code(within(other_type).await, 406);

    let ch = within(conn.create_channel()).await.unwrap();
    let durable = ExchangeDeclareOptions { durable: true, ..Default::default() };
    let other_durability =
        ch.exchange_declare(name.as_str().into(), ExchangeKind::Topic, durable, FieldTable::default());
    assert_code(within(other_durability).await, 406);

    let ch = within(conn.create_channel()).await.unwrap();
    assert_code(passive_ex(&ch, &unique("nope")).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_exchange_type_is_a_406_channel_error() {
    // As RabbitMQ 3.13+ does (3.10 closed the whole connection with 503): the connection survives.
    let server = TestServer::start().await;
    let (conn, ch) = server.lapin_channel().await;
    let r = ch.exchange_declare(
        unique("weird").as_str().into(),
        ExchangeKind::Custom("x-no-such-type".into()),
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    );
    assert_code(within(r).await, 406);
    let other = within(conn.create_channel()).await.expect("the connection is still open");
    passive_ex(&other, "amq.topic").await.expect("a new channel works");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_amq_prefix_is_403() {
    let server = TestServer::start().await;
    let (_c, ch) = server.lapin_channel().await;
    let r = ch.exchange_declare(
        "amq.custom".into(),
        ExchangeKind::Direct,
        ExchangeDeclareOptions::default(),
        FieldTable::default(),
    );
    assert_code(within(r).await, 403);
    let (_c, ch) = server.lapin_channel().await;
    assert_code(within(ch.exchange_delete("amq.direct".into(), ExchangeDeleteOptions::default())).await, 403);
    let (_c, ch) = server.lapin_channel().await;
    passive_ex(&ch, "amq.direct").await.expect("amq.direct survived");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_if_unused_refuses_an_exchange_with_bindings() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = within(conn.create_channel()).await.unwrap();
    let ex = unique("in-use");
    let queue = unique("in-use-q");
    declare_ex(&ch, &ex, ExchangeKind::Direct, ExchangeDeclareOptions::default(), FieldTable::default()).await;
    q::declare(&ch, &queue).await;
    q::bind(&ch, &queue, &ex, "k").await;
    let del = ch.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions { if_unused: true, ..Default::default() });
    assert_code(within(del).await, 406);

    let ch = within(conn.create_channel()).await.unwrap();
    passive_ex(&ch, &ex).await.expect("still there");
    within(ch.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default())).await.unwrap();
    assert_code(passive_ex(&ch, &ex).await, 404);
    let ch = within(conn.create_channel()).await.unwrap();
    // Deleting a missing exchange is not an error.
    within(ch.exchange_delete(ex.as_str().into(), ExchangeDeleteOptions::default())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_to_exchange_bind_and_unbind() {
    let server = TestServer::start().await;
    let (_c, ch) = confirm_channel(&server).await;
    let src = unique("e2e-src");
    let dst = unique("e2e-dst");
    let queue = unique("e2e-q");
    declare_ex(&ch, &src, ExchangeKind::Direct, ExchangeDeclareOptions::default(), FieldTable::default()).await;
    declare_ex(&ch, &dst, ExchangeKind::Fanout, ExchangeDeclareOptions::default(), FieldTable::default()).await;
    q::declare(&ch, &queue).await;
    q::bind(&ch, &queue, &dst, "").await;
    within(ch.exchange_bind(
        dst.as_str().into(),
        src.as_str().into(),
        "k".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();

    assert_eq!(publish_mandatory(&ch, &src, "k", BasicProperties::default()).await, None);
    assert_eq!(publish_mandatory(&ch, &src, "other", BasicProperties::default()).await, Some(312));
    assert_eq!(ready(&ch, &queue).await, 1);

    within(ch.exchange_unbind(
        dst.as_str().into(),
        src.as_str().into(),
        "k".into(),
        ExchangeUnbindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    assert_eq!(publish_mandatory(&ch, &src, "k", BasicProperties::default()).await, Some(312));
    assert_eq!(ready(&ch, &queue).await, 1);

    // Binding to a missing exchange is 404.
    let r = ch.exchange_bind(
        unique("gone").as_str().into(),
        src.as_str().into(),
        "k".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    );
    assert_code(within(r).await, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exchange_cycle_delivers_once() {
    let server = TestServer::start().await;
    let (_c, ch) = confirm_channel(&server).await;
    let a = unique("cycle-a");
    let b = unique("cycle-b");
    let queue = unique("cycle-q");
    declare_ex(&ch, &a, ExchangeKind::Fanout, ExchangeDeclareOptions::default(), FieldTable::default()).await;
    declare_ex(&ch, &b, ExchangeKind::Fanout, ExchangeDeclareOptions::default(), FieldTable::default()).await;
    for (d, s) in [(&b, &a), (&a, &b)] {
        within(ch.exchange_bind(
            d.as_str().into(),
            s.as_str().into(),
            "".into(),
            ExchangeBindOptions::default(),
            FieldTable::default(),
        ))
        .await
        .unwrap();
    }
    q::declare(&ch, &queue).await;
    q::bind(&ch, &queue, &a, "").await;
    q::bind(&ch, &queue, &b, "").await;
    assert_eq!(publish_mandatory(&ch, &a, "", BasicProperties::default()).await, None);
    assert_eq!(ready(&ch, &queue).await, 1, "a queue reached twice gets the message once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alternate_exchange_takes_unroutable_messages() {
    let server = TestServer::start().await;
    let (_c, ch) = confirm_channel(&server).await;
    let ae = unique("ae");
    let main = unique("ae-main");
    let q_main = unique("ae-main-q");
    let q_ae = unique("ae-q");
    declare_ex(&ch, &ae, ExchangeKind::Fanout, ExchangeDeclareOptions::default(), FieldTable::default()).await;
    let args = table(&[("alternate-exchange", s(&ae))]);
    declare_ex(&ch, &main, ExchangeKind::Direct, ExchangeDeclareOptions::default(), args).await;
    q::declare(&ch, &q_main).await;
    q::declare(&ch, &q_ae).await;
    q::bind(&ch, &q_main, &main, "known").await;
    q::bind(&ch, &q_ae, &ae, "").await;

    assert_eq!(publish_mandatory(&ch, &main, "known", BasicProperties::default()).await, None);
    // Unroutable through `main`, routed by its alternate exchange: not returned.
    assert_eq!(publish_mandatory(&ch, &main, "unknown", BasicProperties::default()).await, None);
    assert_eq!(publish_mandatory(&ch, &main, "unknown2", BasicProperties::default()).await, None);
    assert_eq!(ready(&ch, &q_main).await, 1);
    assert_eq!(ready(&ch, &q_ae).await, 2);
    let body = q::get_body(&ch, &q_ae).await;
    assert_eq!(body.as_deref(), Some(&b"m"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_wildcards() {
    let server = TestServer::start().await;
    let (_c, ch) = confirm_channel(&server).await;
    let ex = unique("topic");
    declare_ex(&ch, &ex, ExchangeKind::Topic, ExchangeDeclareOptions::default(), FieldTable::default()).await;
    let patterns = ["a.*.c", "a.#", "#", "*.b", "a.#.c", "*"];
    let queues: Vec<String> = patterns.iter().map(|_| unique("topic-q")).collect();
    for (queue, pattern) in queues.iter().zip(patterns) {
        q::declare(&ch, queue).await;
        q::bind(&ch, queue, &ex, pattern).await;
    }
    // routing key -> which patterns match (by index)
    let cases: [(&str, &[usize]); 7] = [
        ("a.b.c", &[0, 1, 2, 4]),
        ("a", &[1, 2, 5]),
        ("a.b", &[1, 2, 3]),
        ("a.c", &[1, 2, 4]),
        ("a.x.y.c", &[1, 2, 4]),
        ("x.y.z", &[2]),
        ("", &[2]),
    ];
    let mut expected = vec![0u32; patterns.len()];
    for (rk, matching) in cases {
        assert_eq!(publish_mandatory(&ch, &ex, rk, BasicProperties::default()).await, None, "{rk}");
        for &i in matching {
            expected[i] += 1;
        }
    }
    for (i, queue) in queues.iter().enumerate() {
        assert_eq!(ready(&ch, queue).await, expected[i], "pattern {}", patterns[i]);
    }
    // amq.topic works the same way.
    let via_amq = unique("amq-topic-q");
    q::declare(&ch, &via_amq).await;
    q::bind(&ch, &via_amq, "amq.topic", &format!("{via_amq}.*")).await;
    assert_eq!(publish_mandatory(&ch, "amq.topic", &format!("{via_amq}.x"), BasicProperties::default()).await, None);
    assert_eq!(
        publish_mandatory(&ch, "amq.topic", &format!("{via_amq}.x.y"), BasicProperties::default()).await,
        Some(312)
    );
    assert_eq!(ready(&ch, &via_amq).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_exchange_match_modes() {
    let server = TestServer::start().await;
    let (_c, ch) = confirm_channel(&server).await;
    let ex = unique("headers");
    declare_ex(&ch, &ex, ExchangeKind::Headers, ExchangeDeclareOptions::default(), FieldTable::default()).await;
    let q_all = unique("h-all");
    let q_any = unique("h-any");
    let q_any_x = unique("h-any-x");
    for queue in [&q_all, &q_any, &q_any_x] {
        q::declare(&ch, queue).await;
    }
    let all = table(&[("x-match", s("all")), ("format", s("pdf")), ("type", s("report"))]);
    let any = table(&[("x-match", s("any")), ("format", s("pdf")), ("x-tag", s("t"))]);
    let any_x = table(&[("x-match", s("any-with-x")), ("x-tag", s("t"))]);
    q::bind_args(&ch, &q_all, &ex, "", all).await;
    q::bind_args(&ch, &q_any, &ex, "", any).await;
    q::bind_args(&ch, &q_any_x, &ex, "", any_x).await;

    let headers = |pairs: &[(&str, AMQPValue)]| BasicProperties::default().with_headers(table(pairs));
    // Both: all + any match.
    publish_mandatory(&ch, &ex, "", headers(&[("format", s("pdf")), ("type", s("report"))])).await;
    // Only format: any matches, all does not.
    publish_mandatory(&ch, &ex, "", headers(&[("format", s("pdf"))])).await;
    // Only the x- header: `any` ignores x- keys, `any-with-x` matches.
    publish_mandatory(&ch, &ex, "", headers(&[("x-tag", s("t"))])).await;
    // Nothing matches.
    let returned = publish_mandatory(&ch, &ex, "", headers(&[("format", s("doc")), ("type", s("memo"))])).await;
    assert_eq!(returned, Some(312));
    let returned = publish_mandatory(&ch, &ex, "", BasicProperties::default()).await;
    assert_eq!(returned, Some(312), "no headers at all");

    assert_eq!(ready(&ch, &q_all).await, 1);
    assert_eq!(ready(&ch, &q_any).await, 2);
    assert_eq!(ready(&ch, &q_any_x).await, 1);

    // An invalid x-match is refused.
    let bad = table(&[("x-match", s("some"))]);
    let r = ch.queue_bind(q_all.as_str().into(), ex.as_str().into(), "".into(), QueueBindOptions::default(), bad);
    assert_code(within(r).await, 406);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_to_an_internal_exchange_is_403() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = within(conn.create_channel()).await.unwrap();
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    let internal = unique("internal");
    let front = unique("front");
    let queue = unique("internal-q");
    let opts = ExchangeDeclareOptions { internal: true, ..Default::default() };
    declare_ex(&ch, &internal, ExchangeKind::Fanout, opts, FieldTable::default()).await;
    declare_ex(&ch, &front, ExchangeKind::Fanout, ExchangeDeclareOptions::default(), FieldTable::default()).await;
    q::declare(&ch, &queue).await;
    q::bind(&ch, &queue, &internal, "").await;
    within(ch.exchange_bind(
        internal.as_str().into(),
        front.as_str().into(),
        "".into(),
        ExchangeBindOptions::default(),
        FieldTable::default(),
    ))
    .await
    .unwrap();
    // Reachable through another exchange...
    assert_eq!(publish_mandatory(&ch, &front, "", BasicProperties::default()).await, None);
    assert_eq!(ready(&ch, &queue).await, 1);
    // ...but not directly.
    let confirm = within(ch.basic_publish(
        internal.as_str().into(),
        "".into(),
        BasicPublishOptions::default(),
        b"x",
        BasicProperties::default(),
    ))
    .await;
    let result = match confirm {
        Ok(c) => within(c).await,
        Err(e) => Err(e),
    };
    assert_code(result, 403);
    let ch = within(conn.create_channel()).await.unwrap();
    assert_eq!(ready(&ch, &queue).await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn auto_delete_exchange_goes_with_its_last_binding() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = within(conn.create_channel()).await.unwrap();
    let ex = unique("autodel");
    let q1 = unique("autodel-q1");
    let q2 = unique("autodel-q2");
    let opts = ExchangeDeclareOptions { auto_delete: true, ..Default::default() };
    declare_ex(&ch, &ex, ExchangeKind::Direct, opts, FieldTable::default()).await;
    q::declare(&ch, &q1).await;
    q::declare(&ch, &q2).await;
    // Never bound: stays.
    passive_ex(&ch, &ex).await.unwrap();
    q::bind(&ch, &q1, &ex, "a").await;
    q::bind(&ch, &q2, &ex, "b").await;

    within(ch.queue_unbind(q1.as_str().into(), ex.as_str().into(), "a".into(), FieldTable::default())).await.unwrap();
    passive_ex(&ch, &ex).await.expect("one binding left");
    // The last binding goes with its queue.
    within(ch.queue_delete(q2.as_str().into(), QueueDeleteOptions::default())).await.unwrap();
    assert_code(passive_ex(&ch, &ex).await, 404);

    // Same through unbind.
    let ch = within(conn.create_channel()).await.unwrap();
    let ex2 = unique("autodel2");
    declare_ex(&ch, &ex2, ExchangeKind::Fanout, opts, FieldTable::default()).await;
    q::bind(&ch, &q1, &ex2, "").await;
    within(ch.queue_unbind(q1.as_str().into(), ex2.as_str().into(), "".into(), FieldTable::default())).await.unwrap();
    assert_code(passive_ex(&ch, &ex2).await, 404);
}

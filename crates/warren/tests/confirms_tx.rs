//! Publisher confirms (lapin, amqprs, and coalesced multiple-acks seen by a raw client) and
//! transactions (tx.select/commit/rollback of publishes and acks, and the mode conflicts).

mod common;

use amqp_codec::Method;
use bytes::BytesMut;
use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, Connection};

async fn channel(conn: &Connection) -> Channel {
    within(conn.create_channel()).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lapin_thousand_publishes_are_all_acked() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = channel(&conn).await;
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    assert!(ch.status().confirm());
    let name = unique("confirm");
    q::declare(&ch, &name).await;
    let mut pending = Vec::with_capacity(1000);
    for i in 0..1000u32 {
        let c = within(ch.basic_publish(
            "".into(),
            name.as_str().into(),
            BasicPublishOptions::default(),
            &i.to_be_bytes(),
            BasicProperties::default(),
        ))
        .await
        .unwrap();
        pending.push(c);
    }
    for (i, c) in pending.into_iter().enumerate() {
        assert_eq!(within(c).await.unwrap(), Confirmation::Ack(None), "publish {i}");
    }
    assert!(within(ch.wait_for_confirms()).await.unwrap().is_empty());
    assert_eq!(q::counts(&ch, &name).await.unwrap(), (1000, 0));
    // confirm.select twice is harmless.
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqprs_confirms_cover_every_publish() {
    let server = TestServer::start().await;
    let (_c, lch) = server.lapin_channel().await;
    let name = unique("confirm-amqprs");
    q::declare(&lch, &name).await;
    let conn = server.amqprs().await;
    let (ch, mut events) = amqprs_channel(&conn).await;
    within(ch.confirm_select(amqprs::channel::ConfirmSelectArguments::default())).await.unwrap();
    for i in 0..1000u32 {
        let args = amqprs::channel::BasicPublishArguments::new("", &name);
        within(ch.basic_publish(amqprs::BasicProperties::default(), i.to_be_bytes().to_vec(), args)).await.unwrap();
    }
    let mut confirmed = 0u64;
    while confirmed < 1000 {
        match next_event(&mut events).await {
            ChannelEvent::Ack(tag, multiple) => {
                assert!(tag > confirmed, "ack tags only grow: {tag} after {confirmed}");
                assert!(multiple || tag == confirmed + 1, "a single ack must be the next tag");
                confirmed = tag;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(confirmed, 1000);
    assert_eq!(q::counts(&lch, &name).await.unwrap(), (1000, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirms_are_coalesced_into_multiple_acks() {
    let server = TestServer::start().await;
    let (_c, lch) = server.lapin_channel().await;
    let name = unique("coalesce");
    q::declare(&lch, &name).await;

    let (mut raw, tune) = RawClient::open(server.addr, 0).await;
    raw.open_channel(1).await;
    raw.send(1, Method::ConfirmSelect(amqp_codec::ConfirmSelect { nowait: false })).await;
    assert_eq!(raw.expect_method(1).await, Method::ConfirmSelectOk);
    let mut buf = BytesMut::new();
    for i in 0..100u32 {
        RawClient::encode_publish(&mut buf, 1, "", &name, &i.to_be_bytes(), tune.frame_max);
    }
    raw.write_raw(&buf).await; // one write

    let mut ack_frames = 0;
    let mut saw_multiple = false;
    let mut highest = 0;
    while highest < 100 {
        match raw.expect_method(1).await {
            Method::BasicAck(ack) => {
                ack_frames += 1;
                assert!(ack.delivery_tag > highest, "ack tags only grow");
                assert!(ack.multiple || ack.delivery_tag == highest + 1);
                saw_multiple |= ack.multiple;
                highest = ack.delivery_tag;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(highest, 100);
    assert!(ack_frames < 100, "100 publishes in one write were acked in {ack_frames} frames");
    assert!(saw_multiple);
    assert_eq!(q::counts(&lch, &name).await.unwrap(), (100, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_publish_is_invisible_until_commit_and_dropped_by_rollback() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = channel(&conn).await;
    let observer = channel(&conn).await;
    let name = unique("tx-publish");
    q::declare(&ch, &name).await;
    within(ch.tx_select()).await.unwrap();

    q::publish(&ch, "", &name, b"rolled back").await;
    // A synchronous method on the tx channel orders us after the publish.
    assert_eq!(q::counts(&ch, &name).await.unwrap(), (0, 0), "uncommitted publish is not enqueued");
    within(ch.tx_rollback()).await.unwrap();
    assert_eq!(q::counts(&observer, &name).await.unwrap(), (0, 0));

    q::publish(&ch, "", &name, b"one").await;
    q::publish(&ch, "", &name, b"two").await;
    assert_eq!(q::counts(&observer, &name).await.unwrap().0, 0);
    within(ch.tx_commit()).await.unwrap();
    assert_eq!(q::counts(&observer, &name).await.unwrap(), (2, 0));
    assert_eq!(q::get_body(&observer, &name).await.as_deref(), Some(&b"one"[..]));
    assert_eq!(q::get_body(&observer, &name).await.as_deref(), Some(&b"two"[..]));

    // The channel stays transactional after commit: the next publish waits for the next commit.
    q::publish(&ch, "", &name, b"three").await;
    assert_eq!(q::counts(&ch, &name).await.unwrap().0, 0);
    within(ch.tx_commit()).await.unwrap();
    assert_eq!(q::counts(&observer, &name).await.unwrap().0, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_acks_apply_on_commit_only() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let observer = channel(&conn).await;
    within(observer.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    let name = unique("tx-ack");
    q::declare(&observer, &name).await;
    q::publish(&observer, "", &name, b"work").await;

    // Ack in a transaction, then roll back: the message is still unacked, so closing the channel
    // requeues it.
    let ch = channel(&conn).await;
    within(ch.tx_select()).await.unwrap();
    let m = within(ch.basic_get(name.as_str().into(), BasicGetOptions::default())).await.unwrap().expect("get-ok");
    within(m.delivery.ack(BasicAckOptions::default())).await.unwrap();
    within(ch.tx_rollback()).await.unwrap();
    within(ch.close(200, "bye".into())).await.unwrap();
    assert_eq!(q::counts(&observer, &name).await.unwrap(), (1, 0), "rolled-back ack: the message came back");

    // Ack, commit: gone even after the channel closes.
    let ch = channel(&conn).await;
    within(ch.tx_select()).await.unwrap();
    let m = within(ch.basic_get(name.as_str().into(), BasicGetOptions::default())).await.unwrap().expect("get-ok");
    assert!(m.delivery.redelivered);
    within(m.delivery.ack(BasicAckOptions::default())).await.unwrap();
    within(ch.tx_commit()).await.unwrap();
    within(ch.close(200, "bye".into())).await.unwrap();
    assert_eq!(q::counts(&observer, &name).await.unwrap(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amqprs_tx_commit_and_rollback() {
    let server = TestServer::start().await;
    let (_c, lch) = server.lapin_channel().await;
    let name = unique("tx-amqprs");
    q::declare(&lch, &name).await;
    let conn = server.amqprs().await;
    let (ch, _events) = amqprs_channel(&conn).await;
    within(ch.tx_select()).await.unwrap();
    let publish = |body: &'static [u8]| {
        let ch = ch.clone();
        let name = name.clone();
        async move {
            let args = amqprs::channel::BasicPublishArguments::new("", &name);
            within(ch.basic_publish(amqprs::BasicProperties::default(), body.to_vec(), args)).await.unwrap();
        }
    };
    publish(b"no").await;
    within(ch.tx_rollback()).await.unwrap();
    publish(b"yes").await;
    within(ch.tx_commit()).await.unwrap();
    assert_eq!(q::counts(&lch, &name).await.unwrap().0, 1);
    assert_eq!(q::get_body(&lch, &name).await.as_deref(), Some(&b"yes"[..]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirm_and_tx_modes_exclude_each_other() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = channel(&conn).await;
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    assert_code(within(ch.tx_select()).await, 406);

    let ch = channel(&conn).await;
    within(ch.tx_select()).await.unwrap();
    assert_code(within(ch.confirm_select(ConfirmSelectOptions::default())).await, 406);

    // commit / rollback on a non-transactional channel.
    let ch = channel(&conn).await;
    assert_code(within(ch.tx_commit()).await, 406);
    let ch = channel(&conn).await;
    assert_code(within(ch.tx_rollback()).await, 406);

    let ch = channel(&conn).await;
    within(ch.queue_declare(unique("still-ok").as_str().into(), QueueDeclareOptions::default(), FieldTable::default()))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_buffers_at_most_the_configured_operations() {
    let server = TestServer::start_with(|c| c.limits.max_uncommitted_tx_ops = 3).await;
    let conn = server.lapin().await;
    let ch = channel(&conn).await;
    let observer = channel(&conn).await;
    let name = unique("tx-bound");
    q::declare(&ch, &name).await;
    within(ch.tx_select()).await.unwrap();
    for body in [b"1", b"2", b"3"] {
        q::publish(&ch, "", &name, body).await;
    }
    within(ch.tx_commit()).await.unwrap();
    assert_eq!(q::counts(&observer, &name).await.unwrap(), (3, 0), "the bound counts per transaction");

    // Over the bound: amqprs reports the server's channel.close whatever the client was doing
    // (lapin may see its channel closing before its tx.commit and report no code).
    let aconn = server.amqprs().await;
    let (ach, mut events) = amqprs_channel(&aconn).await;
    within(ach.tx_select()).await.unwrap();
    for body in [b"4", b"5", b"6", b"7"] {
        let args = amqprs::channel::BasicPublishArguments::new("", &name);
        let _ = within(ach.basic_publish(amqprs::BasicProperties::default(), body.to_vec(), args)).await;
    }
    assert_eq!(next_event(&mut events).await, ChannelEvent::Close(406));
    assert_eq!(q::counts(&observer, &name).await.unwrap(), (3, 0), "nothing of the refused transaction is enqueued");
}

//! Consuming: acknowledgements (ack, nack, reject, multiple), prefetch per consumer and per
//! channel, round robin and order, requeue when a channel or connection closes, and recover.

mod common;

use common::*;
use futures_lite::StreamExt;
use lapin::options::*;
use lapin::BasicProperties;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nack_requeue_redelivers_and_reject_drops() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let name = unique("nack");
    q::declare(&ch, &name).await;
    q::publish(&ch, "", &name, b"again").await;
    let mut consumer = q::consume(&ch, &name, false).await;
    let d = next_delivery(&mut consumer).await;
    assert!(!d.redelivered);
    within(d.nack(BasicNackOptions { requeue: true, ..Default::default() })).await.unwrap();
    let d = next_delivery(&mut consumer).await;
    assert_eq!(d.data, b"again");
    assert!(d.redelivered, "a requeued message is flagged redelivered");
    within(d.reject(BasicRejectOptions { requeue: true })).await.unwrap();
    let d = next_delivery(&mut consumer).await;
    assert!(d.redelivered);
    // reject without requeue: gone for good, even once the channel closes.
    within(d.reject(BasicRejectOptions { requeue: false })).await.unwrap();
    within(ch.close(200, "bye".into())).await.unwrap();
    let ch = within(conn.create_channel()).await.unwrap();
    assert_eq!(q::counts(&ch, &name).await.unwrap(), (0, 0));

    // nack without requeue drops too.
    let ch = confirmed_channel(&conn).await;
    q::publish(&ch, "", &name, b"drop").await;
    let m = within(ch.basic_get(name.as_str().into(), BasicGetOptions::default())).await.unwrap().unwrap();
    within(m.delivery.nack(BasicNackOptions { requeue: false, ..Default::default() })).await.unwrap();
    within(ch.close(200, "bye".into())).await.unwrap();
    let ch = within(conn.create_channel()).await.unwrap();
    assert_eq!(q::counts(&ch, &name).await.unwrap(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ack_multiple_settles_everything_up_to_the_tag() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let name = unique("ack-multi");
    q::declare(&ch, &name).await;
    for i in 0..5u8 {
        q::publish(&ch, "", &name, &[i]).await;
    }
    let mut tags = Vec::new();
    for _ in 0..5 {
        let m = within(ch.basic_get(name.as_str().into(), BasicGetOptions::default())).await.unwrap().unwrap();
        tags.push(m.delivery.delivery_tag);
    }
    // Ack the first three at once, leave the last two unacked.
    within(ch.basic_ack(tags[2], BasicAckOptions { multiple: true })).await.unwrap();
    within(ch.close(200, "bye".into())).await.unwrap();
    let ch = within(conn.create_channel()).await.unwrap();
    // The two unacked came back; the acked three did not.
    assert_eq!(q::counts(&ch, &name).await.unwrap(), (2, 0));
    let m = within(ch.basic_get(name.as_str().into(), BasicGetOptions { no_ack: true })).await.unwrap().unwrap();
    assert_eq!(m.delivery.data, vec![3]);
    assert!(m.delivery.redelivered);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acking_an_unknown_delivery_tag_is_406() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let mut events = conn.events_listener();
    let ch = within(conn.create_channel()).await.unwrap();
    within(ch.basic_ack(99, BasicAckOptions::default())).await.unwrap();
    assert_eq!(next_connection_error(&mut events).await, Some(406));
    eventually(|| !ch.status().connected(), "the channel to close").await;
    // Only the channel closed.
    assert!(conn.status().connected());
    let ch = within(conn.create_channel()).await.unwrap();
    q::declare(&ch, &unique("still-fine")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_consumer_prefetch_limits_unacked_deliveries() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let name = unique("prefetch");
    q::declare(&ch, &name).await;
    for i in 0..3u8 {
        q::publish(&ch, "", &name, &[i]).await;
    }
    let consumer_ch = within(conn.create_channel()).await.unwrap();
    within(consumer_ch.basic_qos(2, BasicQosOptions::default())).await.unwrap();
    let mut consumer = q::consume(&consumer_ch, &name, false).await;
    let first = next_delivery(&mut consumer).await;
    let second = next_delivery(&mut consumer).await;
    assert_eq!((first.data.clone(), second.data.clone()), (vec![0], vec![1]));
    // The broker holds the third back: it is still ready.
    assert_eq!(q::counts(&ch, &name).await.unwrap(), (1, 1));
    within(first.ack(BasicAckOptions::default())).await.unwrap();
    let third = next_delivery(&mut consumer).await;
    assert_eq!(third.data, vec![2]);
    assert_eq!(q::counts(&ch, &name).await.unwrap(), (0, 1));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn global_prefetch_is_shared_by_the_channels_consumers() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let qa = unique("global-a");
    let qb = unique("global-b");
    for name in [&qa, &qb] {
        q::declare(&ch, name).await;
        for i in 0..3u8 {
            q::publish(&ch, "", name, &[i]).await;
        }
    }
    let consumer_ch = within(conn.create_channel()).await.unwrap();
    within(consumer_ch.basic_qos(2, BasicQosOptions { global: true })).await.unwrap();
    let mut ca = q::consume(&consumer_ch, &qa, false).await;
    let mut cb = q::consume(&consumer_ch, &qb, false).await;
    let mut received = Vec::new();
    while received.len() < 2 {
        let d = within(async {
            tokio::select! {
                Some(d) = ca.next() => d,
                Some(d) = cb.next() => d,
            }
        })
        .await
        .unwrap();
        received.push(d);
    }
    let ready = |name: String| {
        let ch = ch.clone();
        async move { q::counts(&ch, &name).await.unwrap().0 }
    };
    assert_eq!(ready(qa.clone()).await + ready(qb.clone()).await, 4, "two unacked in total across both consumers");
    within(received[0].ack(BasicAckOptions::default())).await.unwrap();
    let d = within(async {
        tokio::select! {
            Some(d) = ca.next() => d,
            Some(d) = cb.next() => d,
        }
    })
    .await
    .unwrap();
    assert!(!d.redelivered);
    assert_eq!(ready(qa).await + ready(qb).await, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn round_robin_across_two_consumers() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let name = unique("rr");
    let ch = confirmed_channel(&conn).await;
    q::declare(&ch, &name).await;
    let ch1 = within(conn.create_channel()).await.unwrap();
    let ch2 = within(conn.create_channel()).await.unwrap();
    let mut c1 = q::consume(&ch1, &name, false).await;
    let mut c2 = q::consume(&ch2, &name, false).await;
    for i in 0..100u32 {
        q::publish(&ch, "", &name, &i.to_be_bytes()).await;
    }
    let mut seen = std::collections::BTreeSet::new();
    for c in [&mut c1, &mut c2] {
        let mut last = None;
        for _ in 0..50 {
            let d = next_delivery(c).await;
            let n = u32::from_be_bytes(d.data.as_slice().try_into().unwrap());
            assert!(last.is_none_or(|l| l < n), "each consumer sees its share in order");
            last = Some(n);
            assert!(seen.insert(n), "message {n} delivered twice");
            within(d.ack(BasicAckOptions::default())).await.unwrap();
        }
    }
    assert_eq!(seen.len(), 100);
    assert_eq!(q::counts(&ch, &name).await.unwrap(), (0, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_consumer_receives_a_thousand_messages_in_order() {
    let server = TestServer::start().await;
    let (conn, ch) = server.lapin_channel().await;
    let name = unique("order");
    q::declare(&ch, &name).await;
    let consumer_ch = within(conn.create_channel()).await.unwrap();
    let mut consumer = q::consume(&consumer_ch, &name, true).await;
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
        drop(c);
    }
    for i in 0..1000u32 {
        let d = next_delivery(&mut consumer).await;
        assert_eq!(d.data, i.to_be_bytes(), "message {i} out of order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_messages_are_requeued_when_the_channel_closes() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let name = unique("requeue-ch");
    q::declare(&ch, &name).await;
    for i in 0..3u8 {
        q::publish(&ch, "", &name, &[i]).await;
    }
    let consumer_ch = within(conn.create_channel()).await.unwrap();
    let mut consumer = q::consume(&consumer_ch, &name, false).await;
    let got = receive_n(&mut consumer, 3).await;
    assert!(got.iter().all(|d| !d.redelivered));
    within(consumer_ch.close(200, "bye".into())).await.unwrap();

    let ch2 = within(conn.create_channel()).await.unwrap();
    let mut again = q::consume(&ch2, &name, false).await;
    let got = receive_n(&mut again, 3).await;
    for (i, d) in got.iter().enumerate() {
        assert_eq!(d.data, vec![i as u8], "requeued messages keep their order");
        assert!(d.redelivered);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unacked_messages_are_requeued_when_the_connection_closes() {
    let server = TestServer::start().await;
    let (_owner, ch) = server.lapin_channel().await;
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    let name = unique("requeue-conn");
    q::declare(&ch, &name).await;
    for i in 0..3u8 {
        q::publish(&ch, "", &name, &[i]).await;
    }
    let (consumer_conn, consumer_ch) = server.lapin_channel().await;
    let mut consumer = q::consume(&consumer_ch, &name, false).await;
    let got = receive_n(&mut consumer, 3).await;
    within(got[0].ack(BasicAckOptions::default())).await.unwrap();
    within(consumer_conn.close(200, "bye".into())).await.unwrap();

    let mut again = q::consume(&ch, &name, false).await;
    let got = receive_n(&mut again, 2).await;
    assert_eq!((got[0].data.clone(), got[1].data.clone()), (vec![1], vec![2]));
    assert!(got.iter().all(|d| d.redelivered));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recover_requeue_redelivers_unacked() {
    let server = TestServer::start().await;
    let conn = server.lapin().await;
    let ch = confirmed_channel(&conn).await;
    let name = unique("recover");
    q::declare(&ch, &name).await;
    q::publish(&ch, "", &name, b"a").await;
    q::publish(&ch, "", &name, b"b").await;
    let consumer_ch = within(conn.create_channel()).await.unwrap();
    let mut consumer = q::consume(&consumer_ch, &name, false).await;
    let first = receive_n(&mut consumer, 2).await;
    assert!(first.iter().all(|d| !d.redelivered));
    within(consumer_ch.basic_recover(BasicRecoverOptions { requeue: true })).await.unwrap();
    let again = receive_n(&mut consumer, 2).await;
    let bodies: Vec<Vec<u8>> = again.iter().map(|d| d.data.clone()).collect();
    assert_eq!(bodies, vec![b"a".to_vec(), b"b".to_vec()]);
    assert!(again.iter().all(|d| d.redelivered));
    for d in &again {
        within(d.ack(BasicAckOptions::default())).await.unwrap();
    }
    assert_eq!(q::counts(&ch, &name).await.unwrap(), (0, 1));
}

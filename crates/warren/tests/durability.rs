//! Durability across restarts of an in-process server: durable definitions survive and transient
//! ones do not, persistent messages on durable queues come back in order (delivered-but-unacked
//! ones with redelivered=true), acked and purged ones do not, and a full disk turns into publisher
//! nacks instead of lost or corrupted data. The kill -9 test of the real binary is `crash.rs`.

mod common;

use common::*;
use lapin::options::*;
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Confirmation, ExchangeKind};
use std::sync::Arc;

fn persistent() -> BasicProperties {
    BasicProperties::default().with_delivery_mode(2)
}

fn durable() -> QueueDeclareOptions {
    QueueDeclareOptions { durable: true, ..Default::default() }
}

async fn confirm_channel(conn: &lapin::Connection) -> Channel {
    let ch = within(conn.create_channel()).await.unwrap();
    within(ch.confirm_select(ConfirmSelectOptions::default())).await.unwrap();
    ch
}

async fn declare(ch: &Channel, name: &str, opts: QueueDeclareOptions) {
    within(ch.queue_declare(name.into(), opts, FieldTable::default())).await.expect("queue.declare");
}

/// Publishes `bodies` with `props` and waits for every confirm; returns the confirmations.
async fn publish_all(
    ch: &Channel,
    exchange: &str,
    rk: &str,
    bodies: &[String],
    props: BasicProperties,
) -> Vec<Confirmation> {
    let mut pending = Vec::new();
    for body in bodies {
        let opts = BasicPublishOptions::default();
        let c = within(ch.basic_publish(exchange.into(), rk.into(), opts, body.as_bytes(), props.clone()))
            .await
            .expect("basic.publish");
        pending.push(c);
    }
    let mut out = Vec::new();
    for c in pending {
        out.push(within(c).await.expect("confirm"));
    }
    out
}

/// Every message of `queue` with basic.get (acking each): (body, redelivered).
async fn drain(ch: &Channel, queue: &str) -> Vec<(String, bool)> {
    let mut out = Vec::new();
    while let Some(m) = within(ch.basic_get(queue.into(), BasicGetOptions { no_ack: false })).await.expect("basic.get")
    {
        out.push((String::from_utf8(m.delivery.data.clone()).unwrap(), m.delivery.redelivered));
        within(m.delivery.ack(BasicAckOptions::default())).await.expect("ack");
    }
    out
}

fn bodies(prefix: &str, n: usize) -> Vec<String> {
    (0..n).map(|i| format!("{prefix}-{i}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn durable_definitions_survive_a_restart_and_transient_ones_do_not() {
    let server = TestServer::start().await;
    let (conn, ch) = server.lapin_channel().await;
    let opts = ExchangeDeclareOptions { durable: true, ..Default::default() };
    within(ch.exchange_declare("events".into(), ExchangeKind::Topic, opts, FieldTable::default())).await.unwrap();
    let opts = ExchangeDeclareOptions::default();
    within(ch.exchange_declare("scratch".into(), ExchangeKind::Fanout, opts, FieldTable::default())).await.unwrap();
    declare(&ch, "orders", durable()).await;
    declare(&ch, "temp", QueueDeclareOptions::default()).await;
    declare(&ch, "mine", QueueDeclareOptions { durable: true, exclusive: true, ..Default::default() }).await;
    q::bind(&ch, "orders", "events", "order.*").await;
    q::bind(&ch, "temp", "events", "#").await;
    // A durable queue that is deleted again must not come back.
    declare(&ch, "gone", durable()).await;
    within(ch.queue_delete("gone".into(), QueueDeleteOptions::default())).await.unwrap();
    drop(conn);

    let server = server.restart().await;
    let restored = server.restored().clone();
    assert_eq!((restored.exchanges, restored.queues, restored.bindings), (1, 1, 1), "{restored:?}");
    let vhost = server.broker().vhost("/").unwrap();
    assert!(vhost.exchange("events").is_some_and(|e| e.def.durable));
    assert!(vhost.exchange("scratch").is_none(), "transient exchange is gone");
    assert!(vhost.queue("orders").is_some_and(|q| q.durable));
    for name in ["temp", "mine", "gone"] {
        assert!(vhost.queue(name).is_none(), "queue {name} must not survive");
    }
    // The binding routes again: a topic publish reaches the restored queue.
    let (_conn, ch) = server.lapin_channel().await;
    let ch2 = confirm_channel(&_conn).await;
    publish_all(&ch2, "events", "order.created", &["o1".to_string()], persistent()).await;
    assert_eq!(q::counts(&ch, "orders").await.unwrap(), (1, 0));
    // Redeclaring with other properties is still refused after the restart (406).
    let r = within(ch.queue_declare("orders".into(), QueueDeclareOptions::default(), FieldTable::default())).await;
    assert_code(r, 406);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_messages_survive_a_restart_in_order_and_transient_ones_do_not() {
    let server = TestServer::start().await;
    let (conn, ch) = server.lapin_channel().await;
    declare(&ch, "work", durable()).await;
    declare(&ch, "work-transient-queue", QueueDeclareOptions::default()).await;
    let confirms = confirm_channel(&conn).await;
    let kept = bodies("p", 500);
    let acks = publish_all(&confirms, "", "work", &kept, persistent()).await;
    assert!(acks.iter().all(|c| *c == Confirmation::Ack(None)));
    publish_all(&confirms, "", "work", &bodies("t", 10), BasicProperties::default()).await;
    publish_all(&confirms, "", "work-transient-queue", &bodies("x", 10), persistent()).await;
    drop(conn);

    let server = server.restart().await;
    assert_eq!(server.restored().messages, 500);
    let (_conn, ch) = server.lapin_channel().await;
    let got = drain(&ch, "work").await;
    let expected: Vec<(String, bool)> = kept.into_iter().map(|b| (b, false)).collect();
    assert_eq!(got, expected, "persistent messages in publish order, never delivered before");

    // Everything was acked: nothing comes back after another restart.
    drop(_conn);
    let server = server.restart().await;
    assert_eq!(server.restored().messages, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_but_unacked_messages_come_back_redelivered_and_acked_ones_do_not() {
    let server = TestServer::start().await;
    let (conn, ch) = server.lapin_channel().await;
    declare(&ch, "jobs", durable()).await;
    let confirms = confirm_channel(&conn).await;
    publish_all(&confirms, "", "jobs", &bodies("j", 6), persistent()).await;
    // Take four without acking, then ack the first two.
    let mut tags = Vec::new();
    for _ in 0..4 {
        let m = within(ch.basic_get("jobs".into(), BasicGetOptions { no_ack: false })).await.unwrap().unwrap();
        tags.push(m.delivery.delivery_tag);
    }
    within(ch.basic_ack(tags[1], BasicAckOptions { multiple: true })).await.unwrap();
    // A round trip on the channel: the broker has processed the acks once it answers.
    q::counts(&ch, "jobs").await.unwrap();
    // The server stops while j-2 and j-3 are still unacked (the client never acks them).
    let server = server.restart().await;
    drop(conn);
    let (_conn, ch) = server.lapin_channel().await;
    let got = drain(&ch, "jobs").await;
    let expected = vec![
        ("j-2".to_string(), true),
        ("j-3".to_string(), true),
        ("j-4".to_string(), false),
        ("j-5".to_string(), false),
    ];
    assert_eq!(got, expected);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purged_and_deleted_queues_leave_nothing_behind() {
    let server = TestServer::start().await;
    let (conn, ch) = server.lapin_channel().await;
    declare(&ch, "purged", durable()).await;
    declare(&ch, "deleted", durable()).await;
    let confirms = confirm_channel(&conn).await;
    publish_all(&confirms, "", "purged", &bodies("a", 20), persistent()).await;
    publish_all(&confirms, "", "deleted", &bodies("b", 20), persistent()).await;
    assert_eq!(within(ch.queue_purge("purged".into(), QueuePurgeOptions::default())).await.unwrap(), 20);
    within(ch.queue_delete("deleted".into(), QueueDeleteOptions::default())).await.unwrap();
    publish_all(&confirms, "", "purged", &["after".to_string()], persistent()).await;
    drop(conn);

    let server = server.restart().await;
    assert_eq!(server.restored().messages, 1);
    let (_conn, ch) = server.lapin_channel().await;
    assert_eq!(drain(&ch, "purged").await, vec![("after".to_string(), false)]);
    assert!(server.broker().vhost("/").unwrap().queue("deleted").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_routed_to_durable_and_transient_queues_is_confirmed_once_and_kept_where_durable() {
    let server = TestServer::start().await;
    let (conn, ch) = server.lapin_channel().await;
    let opts = ExchangeDeclareOptions { durable: true, ..Default::default() };
    within(ch.exchange_declare("fan".into(), ExchangeKind::Fanout, opts, FieldTable::default())).await.unwrap();
    declare(&ch, "fan-durable", durable()).await;
    declare(&ch, "fan-transient", QueueDeclareOptions::default()).await;
    q::bind(&ch, "fan-durable", "fan", "").await;
    q::bind(&ch, "fan-transient", "fan", "").await;
    let confirms = confirm_channel(&conn).await;
    let acks = publish_all(&confirms, "fan", "", &bodies("f", 50), persistent()).await;
    assert_eq!(acks.len(), 50);
    assert!(acks.iter().all(|c| *c == Confirmation::Ack(None)));
    assert_eq!(q::counts(&ch, "fan-transient").await.unwrap(), (50, 0));
    drop(conn);
    let server = server.restart().await;
    let (_conn, ch) = server.lapin_channel().await;
    assert_eq!(drain(&ch, "fan-durable").await.len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_broker_on_the_same_data_directory_is_refused() {
    let server = TestServer::start().await;
    let config = warren::Config {
        bind: "127.0.0.1".parse().unwrap(),
        amqp_port: 0,
        data_dir: server.data_dir().to_path_buf(),
        ..Default::default()
    };
    let err = warren::start(config).await.err().expect("second broker refused");
    assert!(err.contains("in use by another warren"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_nacks_persistent_publishes_and_recovers_when_space_returns() {
    let fs = Arc::new(warren_store::FaultyFs::new());
    let server = TestServer::start_on(fs.clone(), |_| {}).await;
    let (conn, ch) = server.lapin_channel().await;
    declare(&ch, "full", durable()).await;
    let confirms = confirm_channel(&conn).await;
    assert_eq!(publish_all(&confirms, "", "full", &bodies("ok", 3), persistent()).await.len(), 3);
    fs.set_space_limit(Some(fs.used_bytes()));
    let big = "z".repeat(4096);
    let refused = publish_all(&confirms, "", "full", std::slice::from_ref(&big), persistent()).await;
    assert!(matches!(refused[0], Confirmation::Nack(_)), "{refused:?}");
    // Transient messages are not affected by the disk.
    let transient = publish_all(&confirms, "", "full", &["t".to_string()], BasicProperties::default()).await;
    assert_eq!(transient, vec![Confirmation::Ack(None)]);
    fs.set_space_limit(None);
    // The first publish after the disk-full probe interval finds the space again.
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let c = publish_all(&confirms, "", "full", &["again".to_string()], persistent()).await;
        if c[0] == Confirmation::Ack(None) {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "publishes still refused after space came back");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The refused message is nowhere; the accepted ones are all there.
    let got: Vec<String> = drain(&ch, "full").await.into_iter().map(|(b, _)| b).collect();
    assert!(!got.contains(&big));
    assert_eq!(&got[..4], &["ok-0", "ok-1", "ok-2", "t"]);
    assert!(got[4..].iter().all(|b| b == "again"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn power_loss_keeps_every_confirmed_message_and_every_acknowledged_declaration() {
    use std::sync::atomic::{AtomicUsize, Ordering};
    let fs = Arc::new(warren_store::FaultyFs::new());
    let server = TestServer::start_on(fs.clone(), |_| {}).await;
    let (conn, ch) = server.lapin_channel().await;
    declare(&ch, "power", durable()).await;
    let confirms = confirm_channel(&conn).await;
    const TOTAL: usize = 3000;
    // Confirms are awaited in publish order: `confirmed` counts the prefix that was acked.
    let confirmed = Arc::new(AtomicUsize::new(0));
    let publisher = {
        let confirmed = confirmed.clone();
        tokio::spawn(async move {
            let mut pending = std::collections::VecDeque::new();
            for i in 0..TOTAL {
                let body = format!("m-{i}");
                let opts = BasicPublishOptions::default();
                let Ok(c) =
                    confirms.basic_publish("".into(), "power".into(), opts, body.as_bytes(), persistent()).await
                else {
                    break;
                };
                pending.push_back(c);
                // A window of 64 unconfirmed publishes, as real publishers keep.
                while pending.len() >= 64 {
                    match pending.pop_front().unwrap().await {
                        Ok(Confirmation::Ack(_)) => confirmed.fetch_add(1, Ordering::SeqCst),
                        _ => return,
                    };
                }
            }
            while let Some(c) = pending.pop_front() {
                match c.await {
                    Ok(Confirmation::Ack(_)) => confirmed.fetch_add(1, Ordering::SeqCst),
                    _ => return,
                };
            }
        })
    };
    eventually(|| confirmed.load(Ordering::SeqCst) >= TOTAL / 3, "a third of the publishes confirmed").await;
    let confirmed_before_crash = confirmed.load(Ordering::SeqCst);
    // Power loss with a torn last write: only what was fsynced (plus a few stray bytes) is left.
    let after_crash = Arc::new(fs.crash(Some(11)));
    drop(conn);
    let _ = within(publisher).await;

    let server = server.restart_on(after_crash).await;
    let (_conn, ch) = server.lapin_channel().await;
    let got: Vec<String> = drain(&ch, "power").await.into_iter().map(|(b, _)| b).collect();
    let expected_prefix: Vec<String> = (0..confirmed_before_crash).map(|i| format!("m-{i}")).collect();
    assert!(
        got.len() >= confirmed_before_crash && got[..confirmed_before_crash] == expected_prefix[..],
        "every confirmed message survives, in order: confirmed {confirmed_before_crash}, recovered {}",
        got.len()
    );
    let in_order: Vec<String> = (0..got.len()).map(|i| format!("m-{i}")).collect();
    assert_eq!(got, in_order, "nothing but published messages, each once, in order");
}

fn dir_bytes(dir: &std::path::Path) -> u64 {
    std::fs::read_dir(dir)
        .map_or(0, |entries| entries.flatten().filter_map(|e| e.metadata().ok()).map(|m| m.len()).sum())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumed_messages_give_their_disk_space_back() {
    const SEGMENT: u32 = 256 * 1024;
    let server = TestServer::start_with(|c| c.storage.segment_size_bytes = SEGMENT).await;
    let msgs_dir = server.data_dir().join("msgs");
    let (conn, ch) = server.lapin_channel().await;
    declare(&ch, "reclaim", durable()).await;
    let confirms = confirm_channel(&conn).await;
    let body = "r".repeat(16 * 1024);
    let batch: Vec<String> = (0..64).map(|_| body.clone()).collect();
    for _ in 0..32 {
        publish_all(&confirms, "", "reclaim", &batch, persistent()).await;
    }
    let written = dir_bytes(&msgs_dir);
    assert!(written > 32 << 20, "2048 x 16 KiB are on disk: {written} bytes");
    within(ch.basic_qos(500, BasicQosOptions::default())).await.unwrap();
    let mut consumer = q::consume(&ch, "reclaim", false).await;
    for _ in 0..2048 {
        let d = next_delivery(&mut consumer).await;
        within(d.ack(BasicAckOptions::default())).await.unwrap();
    }
    // Acks reach the disk with the writer's next group commit; then whole segments go.
    eventually(|| dir_bytes(&msgs_dir) <= 2 * SEGMENT as u64, "acked segments deleted").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_queue_pages_bodies_out_and_delivers_them_in_order_from_disk() {
    const BUDGET: u64 = 64 * 1024;
    let server = TestServer::start_with(|c| c.storage.queue_memory_bytes = BUDGET).await;
    let (conn, ch) = server.lapin_channel().await;
    declare(&ch, "long", durable()).await;
    let confirms = confirm_channel(&conn).await;
    let sent: Vec<String> = (0..2000).map(|i| format!("{i:04}-{}", "x".repeat(1000))).collect();
    for chunk in sent.chunks(250) {
        publish_all(&confirms, "", "long", chunk, persistent()).await;
    }
    // Transient messages in a durable queue stay in memory, after the persistent ones.
    publish_all(&confirms, "", "long", &["transient".to_string()], BasicProperties::default()).await;
    let q = server.broker().vhost("/").unwrap().queue("long").unwrap();
    let (memory, paged) = q.memory();
    assert!(paged > 1500, "most of the queue is paged out: {paged}");
    assert!(memory <= BUDGET + 250 * 1300, "memory {memory} stays near the budget");
    // Half with basic.get, half with a consumer: both read bodies back from the log, in order.
    let mut got: Vec<String> = Vec::new();
    for _ in 0..1000 {
        let m = within(ch.basic_get("long".into(), BasicGetOptions { no_ack: true })).await.unwrap().unwrap();
        got.push(String::from_utf8(m.delivery.data.clone()).unwrap());
    }
    let mut consumer = q::consume(&ch, "long", false).await;
    for _ in 0..1001 {
        let d = next_delivery(&mut consumer).await;
        got.push(String::from_utf8(d.data.clone()).unwrap());
        within(d.ack(BasicAckOptions::default())).await.unwrap();
    }
    let mut expected = sent;
    expected.push("transient".to_string());
    assert!(got == expected, "every message once, in publish order");
    assert_eq!(q.memory(), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tx_commit_ok_waits_until_the_transaction_is_on_disk() {
    let fs = Arc::new(warren_store::FaultyFs::new());
    let server = TestServer::start_on(fs.clone(), |_| {}).await;
    let (conn, ch) = server.lapin_channel().await;
    declare(&ch, "tx-durable", durable()).await;
    let tx = within(conn.create_channel()).await.unwrap();
    within(tx.tx_select()).await.unwrap();
    for i in 0..200 {
        let opts = BasicPublishOptions::default();
        let body = format!("tx-{i}");
        within(tx.basic_publish("".into(), "tx-durable".into(), opts, body.as_bytes(), persistent())).await.unwrap();
    }
    // A disk that does not finish its flush: commit-ok must not come while it hangs.
    fs.pause_syncs();
    let mut commit = tokio::spawn(async move { tx.tx_commit().await.map(|()| tx) });
    eventually(|| fs.syncs_waiting() > 0, "the group commit waits on the disk").await;
    let early = tokio::time::timeout(std::time::Duration::from_millis(200), &mut commit).await;
    assert!(early.is_err(), "commit-ok arrived before the messages were on disk");
    fs.resume_syncs();
    let _tx = within(commit).await.unwrap().expect("tx.commit-ok");
    // Power loss right after commit-ok: only fsynced data is left, and that is all of it.
    let after_crash = Arc::new(fs.crash(None));
    drop(conn);
    let server = server.restart_on(after_crash).await;
    let (_conn, ch) = server.lapin_channel().await;
    let got: Vec<String> = drain(&ch, "tx-durable").await.into_iter().map(|(b, _)| b).collect();
    assert_eq!(got, bodies("tx", 200));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirms_and_declare_ok_wait_for_the_disk() {
    let fs = Arc::new(warren_store::FaultyFs::new());
    let server = TestServer::start_on(fs.clone(), |_| {}).await;
    let (conn, ch) = server.lapin_channel().await;
    declare(&ch, "slow-disk", durable()).await;
    let confirms = confirm_channel(&conn).await;
    let hang = std::time::Duration::from_millis(200);

    // A persistent publish is confirmed only after its fsync.
    fs.pause_syncs();
    let opts = BasicPublishOptions::default();
    let pending =
        within(confirms.basic_publish("".into(), "slow-disk".into(), opts, b"p", persistent())).await.unwrap();
    let mut pending = tokio::spawn(pending);
    eventually(|| fs.syncs_waiting() > 0, "the group commit waits on the disk").await;
    assert!(tokio::time::timeout(hang, &mut pending).await.is_err(), "confirmed before it was on disk");
    // A transient publish on another channel is not held up by the disk.
    let other = confirm_channel(&conn).await;
    let transient = publish_all(&other, "", "slow-disk", &["t".to_string()], BasicProperties::default()).await;
    assert_eq!(transient, vec![Confirmation::Ack(None)]);
    fs.resume_syncs();
    assert_eq!(within(pending).await.unwrap().unwrap(), Confirmation::Ack(None));

    // A durable declaration is answered only after its fsync.
    fs.pause_syncs();
    let declaring = {
        let ch = ch.clone();
        tokio::spawn(async move { ch.queue_declare("declared".into(), durable(), FieldTable::default()).await })
    };
    let mut declaring = declaring;
    eventually(|| fs.syncs_waiting() > 0, "the definitions write waits on the disk").await;
    assert!(tokio::time::timeout(hang, &mut declaring).await.is_err(), "declare-ok before it was on disk");
    fs.resume_syncs();
    within(declaring).await.unwrap().expect("declare-ok");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_messages_page_out_under_memory_pressure_and_do_not_survive_a_restart() {
    const BUDGET: u64 = 64 * 1024;
    let server = TestServer::start_with(|c| {
        c.storage.queue_memory_bytes = BUDGET;
        c.storage.memory_high_watermark_bytes = 2 * BUDGET;
    })
    .await;
    let (conn, ch) = server.lapin_channel().await;
    declare(&ch, "mixed", durable()).await;
    declare(&ch, "scratch", QueueDeclareOptions::default()).await;
    let confirms = confirm_channel(&conn).await;
    let payload = "y".repeat(1000);
    let sent: Vec<String> = (0..1000).map(|i| format!("{i:04}-{payload}")).collect();
    // A transient queue, and a durable one taking transient and persistent messages in turn.
    for (i, chunk) in sent.chunks(100).enumerate() {
        publish_all(&confirms, "", "scratch", chunk, BasicProperties::default()).await;
        let props = if i % 2 == 0 { persistent() } else { BasicProperties::default() };
        publish_all(&confirms, "", "mixed", chunk, props).await;
    }
    let vhost = server.broker().vhost("/").unwrap();
    for name in ["scratch", "mixed"] {
        let (memory, paged) = vhost.queue(name).unwrap().memory();
        assert!(paged > 700, "{name}: most messages paged out ({paged})");
        assert!(memory <= BUDGET + 100 * 1300, "{name}: memory {memory} near the budget");
    }
    // Everything comes back in order, read from the log.
    let got: Vec<String> = drain(&ch, "scratch").await.into_iter().map(|(b, _)| b).collect();
    assert!(got == sent, "the transient queue delivers every message once, in order");
    // Restart: only the persistent half of the durable queue remains (transient copies on
    // disk are not messages to recover).
    drop(conn);
    let server = server.restart().await;
    let (_conn, ch) = server.lapin_channel().await;
    let got: Vec<String> = drain(&ch, "mixed").await.into_iter().map(|(b, _)| b).collect();
    let persistent_half: Vec<String> =
        sent.chunks(100).enumerate().filter(|(i, _)| i % 2 == 0).flat_map(|(_, c)| c.to_vec()).collect();
    assert!(got == persistent_half, "after a restart: the persistent messages, in order, and nothing else");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_memory_watermark_transient_messages_stay_in_memory_and_off_the_disk() {
    let server = TestServer::start_with(|c| c.storage.queue_memory_bytes = 64 * 1024).await;
    let (conn, ch) = server.lapin_channel().await;
    declare(&ch, "fast-lane", QueueDeclareOptions::default()).await;
    let confirms = confirm_channel(&conn).await;
    let sent: Vec<String> = (0..500).map(|i| format!("{i:04}-{}", "z".repeat(1000))).collect();
    publish_all(&confirms, "", "fast-lane", &sent, BasicProperties::default()).await;
    let (memory, paged) = server.broker().vhost("/").unwrap().queue("fast-lane").unwrap().memory();
    assert_eq!(paged, 0, "nothing paged while the broker is under its memory watermark");
    assert!(memory > 500 * 1000, "the queue holds its messages in memory: {memory}");
    assert!(dir_bytes(&server.data_dir().join("msgs")) < 64 * 1024, "no message was written");
    assert_eq!(drain(&ch, "fast-lane").await.len(), 500);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paged_out_message_that_fails_its_checksum_is_skipped_and_never_delivered() {
    let fs = Arc::new(warren_store::FaultyFs::new());
    let server = TestServer::start_on(fs.clone(), |c| c.storage.queue_memory_bytes = 1).await;
    let (conn, ch) = server.lapin_channel().await;
    declare(&ch, "rot", durable()).await;
    let confirms = confirm_channel(&conn).await;
    let sent = vec!["first-body".to_string(), "rotten-body".to_string(), "third-body".to_string()];
    publish_all(&confirms, "", "rot", &sent, persistent()).await;
    // One more publish pages the three out (they are durable now); it stays in memory itself.
    publish_all(&confirms, "", "rot", &["last".to_string()], BasicProperties::default()).await;
    assert_eq!(server.broker().vhost("/").unwrap().queue("rot").unwrap().memory().1, 3);
    // Bit rot in the second message's record, on disk, after it was written.
    let segment = fs.paths().into_iter().filter(|p| p.extension().is_some_and(|e| e == "seg")).max().unwrap();
    let data = fs.read_file(&segment).unwrap();
    let at = data.windows(11).position(|w| w == b"rotten-body").expect("the record is in the active segment");
    fs.flip_byte(&segment, at + 3, 0x20);
    let mut consumer = q::consume(&ch, "rot", false).await;
    let mut got = Vec::new();
    for _ in 0..3 {
        let d = next_delivery(&mut consumer).await;
        got.push(String::from_utf8(d.data.clone()).unwrap());
        within(d.ack(BasicAckOptions::default())).await.unwrap();
    }
    assert_eq!(got, vec!["first-body", "third-body", "last"]);
    // A round trip on the channel: the acks before it have been applied.
    assert_eq!(q::counts(&ch, "rot").await.unwrap(), (0, 1));
    // It was settled in the store, so it does not come back after a restart either.
    drop(consumer);
    drop(conn);
    let server = server.restart().await;
    assert_eq!(server.restored().messages, 0);
}

//! Message log behaviour: round trip, group commit, acks, delivered markers, reclamation,
//! version refusal.

mod common;

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use common::*;
use warren_store::{FaultyFs, Keep, StdFs, Store, StoreError, StoreOptions};

#[test]
fn append_then_read_round_trip() {
    let fs = FaultyFs::new();
    let (store, recovery) = open(&fs, StoreOptions::default());
    assert!(recovery.queues.is_empty());
    let (a, ra) = append_wait(&store, &[1, 2], b"first");
    let (b, rb) = append_wait(&store, &[1], b"");
    assert_eq!((ra, rb), (Ok(()), Ok(())));
    assert!(b > a);
    assert_eq!(store.read(a).unwrap(), Bytes::from_static(b"first"));
    assert_eq!(store.read(b).unwrap(), Bytes::new());
    assert_eq!(store.read(b + 100), Err(StoreError::NotFound(b + 100)));
    drop(store);
    let (store, recovery) = open(&fs, StoreOptions::default());
    assert_eq!(ids(&recovery, 1), vec![a, b]);
    assert_eq!(ids(&recovery, 2), vec![a]);
    assert_eq!(store.read(a).unwrap(), Bytes::from_static(b"first"));
    let (c, _) = append_wait(&store, &[1], b"x");
    assert!(c > b, "ids keep growing across restarts");
}

#[test]
fn works_on_the_real_file_system() {
    let dir = tempfile::tempdir().unwrap();
    let (store, _) = Store::open(dir.path(), small_options(), StdFs::shared()).unwrap();
    let mut ids_written = Vec::new();
    for i in 0..200u32 {
        let (id, r) = append_wait(&store, &[7], &i.to_le_bytes().repeat(20));
        r.unwrap();
        ids_written.push(id);
    }
    for &id in &ids_written[..100] {
        store.ack(7, id).unwrap();
    }
    sync_wait(&store).unwrap();
    drop(store);
    let (store, recovery) = Store::open(dir.path(), small_options(), StdFs::shared()).unwrap();
    assert_eq!(ids(&recovery, 7), ids_written[100..].to_vec());
    assert_eq!(store.read(ids_written[150]).unwrap(), 150u32.to_le_bytes().repeat(20));
}

#[test]
fn group_commit_shares_fdatasync_between_publishers() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, StoreOptions::default());
    let store = Arc::new(store);
    let before = fs.sync_count();
    let (threads, per_thread) = (8, 250);
    let handles: Vec<_> = (0..threads)
        .map(|t| {
            let store = store.clone();
            std::thread::spawn(move || {
                let receivers: Vec<_> = (0..per_thread)
                    .map(|i| {
                        let (done, rx) = completion();
                        store.append(&[t], Bytes::from(format!("{t}-{i}")), done).unwrap();
                        rx
                    })
                    .collect();
                receivers.into_iter().all(|rx| rx.recv().unwrap().is_ok())
            })
        })
        .collect();
    for h in handles {
        assert!(h.join().unwrap(), "every append completed Ok");
    }
    let n = threads * per_thread;
    let syncs = fs.sync_count() - before;
    eprintln!("group commit: {n} appends, {syncs} fdatasync calls");
    assert!(syncs * 4 < n, "{syncs} fdatasync calls for {n} appends");
}

#[test]
fn acks_and_delivered_markers_survive_restart() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, StoreOptions::default());
    let ids_: Vec<u64> = (0..5).map(|i| append_wait(&store, &[1, 2], &[i]).0).collect();
    store.ack(1, ids_[0]).unwrap();
    store.ack(1, ids_[0]).unwrap(); // twice: harmless
    store.ack(2, ids_[4]).unwrap();
    store.mark_delivered(1, ids_[2]).unwrap();
    sync_wait(&store).unwrap();
    drop(store);
    let (_store, recovery) = open(&fs, StoreOptions::default());
    assert_eq!(ids(&recovery, 1), ids_[1..].to_vec());
    assert_eq!(ids(&recovery, 2), ids_[..4].to_vec());
    let redelivered: Vec<bool> = recovery.queues[&1].messages().map(|m| m.redelivered).collect();
    assert_eq!(redelivered, vec![true, true, false, false]);
    assert!(recovery.queues[&2].messages().all(|m| !m.redelivered));
}

#[test]
fn acks_of_many_messages_in_one_call_survive_restart() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, StoreOptions::default());
    // More than one request's worth (1,024), and a message also stored for another queue.
    let written: Vec<u64> = (0..2500u32).map(|i| append_wait(&store, &[1, 2], &i.to_le_bytes()).0).collect();
    let (acked, kept) = written.split_at(2100);
    store.ack_many(1, acked).unwrap();
    store.ack_many(2, &written[..1]).unwrap();
    store.ack_many(1, &[]).unwrap();
    sync_wait(&store).unwrap();
    drop(store);
    let (_store, recovery) = open(&fs, StoreOptions::default());
    assert_eq!(ids(&recovery, 1), kept.to_vec());
    assert_eq!(ids(&recovery, 2), written[1..].to_vec());
}

#[test]
fn many_acks_in_one_request_keep_segments_within_their_size() {
    let fs = FaultyFs::new();
    let options = small_options();
    let (store, _) = open(&fs, options.clone());
    let written: Vec<u64> = (0..20u8).map(|i| append_wait(&store, &[1, 2], &[i; 100]).0).collect();
    // 1,000 ack records (26 B each) in one request need several 4 KiB segments (some of them
    // are reclaimed as they go).
    let acks: Vec<u64> = written.iter().copied().cycle().take(1000).collect();
    store.ack_many(1, &acks).unwrap();
    sync_wait(&store).unwrap();
    let lens: Vec<usize> = segment_files(&fs).iter().filter_map(|p| fs.file_len(p)).collect();
    assert!(lens.len() >= 2, "segment sizes: {lens:?}");
    assert!(lens.iter().all(|&len| len <= options.segment_size_bytes as usize), "segment sizes: {lens:?}");
}

#[test]
fn fully_acked_segments_are_deleted() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, small_options());
    let body = [7u8; 300];
    let ids_: Vec<u64> = (0..100).map(|_| append_wait(&store, &[1, 2], &body).0).collect();
    assert!(segment_files(&fs).len() >= 8, "spread over several segments");
    for &id in &ids_ {
        store.ack(1, id).unwrap();
    }
    sync_wait(&store).unwrap();
    assert!(segment_files(&fs).len() >= 8, "still needed by queue 2");
    for &id in &ids_ {
        store.ack(2, id).unwrap();
    }
    sync_wait(&store).unwrap();
    // Deletion is prompt; the last round may need one more commit to delete ack-holding segments.
    sync_wait(&store).unwrap();
    append_wait(&store, &[3], b"x").1.unwrap();
    let left = segment_files(&fs);
    assert!(left.len() <= 2, "left: {left:?}");
    assert_eq!(store.read(ids_[0]), Err(StoreError::NotFound(ids_[0])));
    drop(store);
    let (store, recovery) = open(&fs, small_options());
    assert_eq!(recovery.queues.len(), 1);
    assert_eq!(store.stats().index_anchors, 1);
}

#[test]
fn a_long_lived_message_keeps_the_acks_that_need_it() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, small_options());
    let body = [1u8; 300];
    // Segment 1: message `old` (never acked by queue 9) and messages acked later.
    let old = append_wait(&store, &[9], &body).0;
    let early: Vec<u64> = (0..5).map(|_| append_wait(&store, &[1], &body).0).collect();
    let later: Vec<u64> = (0..60).map(|_| append_wait(&store, &[1], &body).0).collect();
    for &id in early.iter().chain(&later) {
        store.ack(1, id).unwrap();
    }
    sync_wait(&store).unwrap();
    append_wait(&store, &[3], b"x").1.unwrap();
    drop(store);
    let (_store, recovery) = open(&fs, small_options());
    assert_eq!(ids(&recovery, 1), Vec::<u64>::new(), "acks of segment-1 messages were kept");
    assert_eq!(ids(&recovery, 9), vec![old]);
    assert!(segment_files(&fs).len() < 12, "segments holding only acked data went away");
}

#[test]
fn incompatible_version_is_refused_clearly() {
    let fs = FaultyFs::new();
    let path = Path::new(DIR).join("msgs").join(format!("{:020}.seg", 1));
    fs.write_file(&path, &warren_store::segment_header_with_version(1, 99));
    let err = Store::open(Path::new(DIR), StoreOptions::default(), Arc::new(fs.clone())).err().unwrap();
    assert!(matches!(err, StoreError::IncompatibleVersion { found: 99, expected: 1, .. }), "{err:?}");
    assert!(err.to_string().contains("version 99"), "{err}");
}

#[test]
fn a_record_larger_than_a_segment_gets_a_segment_of_its_own() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, small_options());
    let (small, r) = append_wait(&store, &[1], b"before");
    r.unwrap();
    let big: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
    let (large, r) = append_wait(&store, &[1], &big);
    r.unwrap();
    let (after, r) = append_wait(&store, &[1], b"after");
    r.unwrap();
    assert_eq!(store.read(large).unwrap(), Bytes::from(big.clone()));
    drop(store);
    let (store, recovery) = open(&fs, small_options());
    assert_eq!(recovery.stats.skipped_count, 0);
    assert_eq!(ids(&recovery, 1), vec![small, large, after]);
    assert_eq!(store.read(large).unwrap(), Bytes::from(big));
    assert_eq!(store.read(after).unwrap(), Bytes::from_static(b"after"));
}

#[test]
fn invalid_appends_are_refused() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, StoreOptions { max_record_bytes: 4096, ..small_options() });
    let (done, _rx) = completion();
    assert!(matches!(store.append(&[], Bytes::new(), done), Err(StoreError::Invalid(_))));
    let (done, _rx) = completion();
    assert!(matches!(store.append(&[1], Bytes::from(vec![0; 5000]), done), Err(StoreError::Invalid(_))));
    let (done, _rx) = completion();
    assert!(matches!(
        Store::open(
            Path::new("/x"),
            StoreOptions { segment_size_bytes: 10, ..StoreOptions::default() },
            Arc::new(fs.clone())
        ),
        Err(StoreError::Invalid(_))
    ));
    drop(done);
}

#[test]
fn append_with_names_the_message_in_its_completion_and_refusals_drop_it_uncalled() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, small_options());
    let (done, rx) = completion();
    let mut named = None;
    let id = store
        .append_with(Keep::Durable, &[1], Bytes::from_static(b"async"), |id| {
            named = Some(id);
            done
        })
        .unwrap();
    assert_eq!(named, Some(id));
    rx.recv().unwrap().unwrap();
    assert_eq!(store.read(id).unwrap(), Bytes::from_static(b"async"));
    let (done, rx) = completion();
    let err = store.append(&[], Bytes::new(), done).unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)));
    assert!(rx.recv().is_err(), "a refused append's completion is dropped, never called");
}

#[test]
fn segments_stay_within_their_size_bound() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, small_options());
    for i in 0..200u32 {
        store.mark_delivered(i as u64 % 5, i as u64).unwrap();
        append_wait(&store, &[i as u64 % 5], &vec![1u8; (i as usize * 37) % 900]).1.unwrap();
    }
    let files = segment_files(&fs);
    assert!(files.len() > 10);
    for f in files {
        assert!(fs.file_len(&f).unwrap() <= 4096, "{f:?} is {} bytes", fs.file_len(&f).unwrap());
    }
}

#[test]
fn purge_acks_a_queue_up_to_an_id_and_reclaims() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, small_options());
    let ids_: Vec<u64> = (0..60).map(|_| append_wait(&store, &[1, 2], &[3; 200]).0).collect();
    store.mark_delivered(2, ids_[59]).unwrap();
    store.purge(1, ids_[29]).unwrap();
    store.purge(2, u64::MAX).unwrap();
    sync_wait(&store).unwrap();
    drop(store);
    let (store, recovery) = open(&fs, small_options());
    assert_eq!(ids(&recovery, 1), ids_[30..].to_vec());
    assert!(!recovery.queues.contains_key(&2));
    store.purge(1, u64::MAX).unwrap();
    sync_wait(&store).unwrap();
    append_wait(&store, &[2], b"new").1.unwrap();
    assert!(segment_files(&fs).len() <= 2, "purged segments reclaimed: {:?}", segment_files(&fs));
    drop(store);
    let (_store, recovery) = open(&fs, small_options());
    assert!(recovery.queues[&2].messages().all(|m| !m.redelivered), "deleting a queue forgot its marker");
}

#[test]
fn paged_copies_read_back_like_messages_but_never_survive_a_restart() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, small_options());
    let (done, rx) = completion();
    let paged = store.append_with(Keep::UntilRestart, &[1], Bytes::from_static(b"transient"), |_| done).unwrap();
    rx.recv().unwrap().unwrap();
    let (kept, r) = append_wait(&store, &[1], b"persistent");
    r.unwrap();
    assert_eq!(store.read(paged).unwrap(), Bytes::from_static(b"transient"));
    drop(store);
    let (store, recovery) = open(&fs, small_options());
    assert_eq!(ids(&recovery, 1), vec![kept]);
    assert!(matches!(store.read(paged), Err(StoreError::NotFound(_))));
    let (next, r) = append_wait(&store, &[1], b"next");
    r.unwrap();
    assert!(next > kept && next > paged, "no id is handed out twice");
}

#[test]
fn after_a_failed_write_the_rest_of_the_batch_waits_so_nothing_overtakes_a_retried_purge() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, small_options());
    // Hold the writer in the fsync of a first append, so the next three form one batch.
    fs.pause_syncs();
    let (first_done, first) = completion();
    store.append(&[1], Bytes::from_static(b"first"), first_done).unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while fs.syncs_waiting() == 0 {
        assert!(std::time::Instant::now() < deadline, "the writer never reached its fsync");
        std::thread::yield_now();
    }
    fs.set_space_limit(Some(fs.used_bytes() + 2000));
    let (big_done, big) = completion();
    store.append(&[1], Bytes::from(vec![1u8; 3000]), big_done).unwrap();
    store.purge(1, u64::MAX).unwrap(); // the queue is deleted...
    let (later_done, later) = completion();
    // ...and this one does not fit in the segment, so the failed part is committed first and a
    // new segment (which would have room) is started.
    let later_id = store.append(&[1], Bytes::from(vec![2u8; 1100]), later_done).unwrap();
    fs.resume_syncs();
    first.recv().unwrap().unwrap();
    assert_eq!(big.recv().unwrap(), Err(StoreError::DiskFull));
    assert_eq!(later.recv().unwrap(), Err(StoreError::DiskFull), "refused: written, it would overtake the purge");
    fs.set_space_limit(None);
    let (after, r) = append_wait(&store, &[1], b"after");
    r.unwrap();
    drop(store);
    let (_store, recovery) = open(&fs, small_options());
    assert_eq!(ids(&recovery, 1), vec![after], "the retried purge settled what preceded it, nothing after");
    assert!(after > later_id);
}

/// The index keeps an anchor per stretch of log, not a place per message: reads walk from the
/// anchor at or before their id over messages and acks, in any order, within a segment and
/// across segments, before and after a restart.
#[test]
fn reads_walk_from_sparse_anchors_in_any_order() {
    let fs = FaultyFs::new();
    let options = StoreOptions { segment_size_bytes: 256 << 10, ..StoreOptions::default() };
    let (store, _) = open(&fs, options.clone());
    let body = |i: u64| vec![(i % 251) as u8; (i % 97) as usize];
    let mut written = Vec::new();
    for i in 0..6000u64 {
        let (done, rx) = completion();
        let id = store.append(&[1, 2], Bytes::from(body(i)), done).unwrap();
        written.push((id, rx, i));
        if i % 512 == 511 {
            // Appends in flight are bounded.
            sync_wait(&store).unwrap();
        }
        if i % 3 == 0 {
            // Acks of queue 2 between the messages: records the walks step over.
            store.ack(2, written[i as usize / 2].0).unwrap();
        }
    }
    let written: Vec<(u64, (), u64)> =
        written.into_iter().map(|(id, r, i)| (id, r.recv().unwrap().unwrap(), i)).collect();
    let check = |store: &Store| {
        // Backwards: every read starts again from an anchor.
        for (id, _, i) in written.iter().rev().step_by(7) {
            assert_eq!(store.read(*id).unwrap(), body(*i), "id {id}");
        }
        // Forwards, in one pass.
        let ids: Vec<u64> = written.iter().map(|w| w.0).collect();
        let mut seen = 0;
        store.read_many(&ids, |id, read| {
            assert_eq!(read.unwrap(), body(written[seen].2), "id {id}");
            seen += 1;
            true
        });
        assert_eq!(seen, written.len());
        let last = written.last().unwrap().0;
        assert_eq!(store.read(last + 1), Err(StoreError::NotFound(last + 1)));
    };
    let stats = store.stats();
    assert!(stats.segments > 2, "the messages span segments");
    assert!(stats.index_anchors < written.len() / 50, "{} anchors for {} messages", stats.index_anchors, written.len());
    check(&store);
    drop(store);
    let (store, _) = open(&fs, options);
    check(&store);
}

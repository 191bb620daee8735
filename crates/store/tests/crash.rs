//! Crash and corruption tests on `FaultyFs`: lost unsynced data, torn tails, flipped bytes,
//! disk full.

mod common;

use std::path::Path;

use bytes::Bytes;
use common::*;
use warren_store::{FaultyFs, FileSystem, StoreError, StoreOptions};

#[test]
fn completed_messages_survive_a_crash() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, StoreOptions::default());
    let confirmed: Vec<u64> = (0..20u8).map(|i| append_wait(&store, &[1], &[i; 50]).0).collect();
    // In flight at the crash: may or may not survive.
    let mut in_flight = Vec::new();
    for i in 0..20u8 {
        let (done, _rx) = completion();
        in_flight.push(store.append(&[1], Bytes::from(vec![i; 50]), done).unwrap());
    }
    let fs = fs.crash(Some(17));
    drop(store);
    let (store, recovery) = open(&fs, StoreOptions::default());
    let got = ids(&recovery, 1);
    assert_eq!(&got[..confirmed.len()], &confirmed[..]);
    assert!(got[confirmed.len()..].iter().all(|id| in_flight.contains(id)));
    for (i, &id) in confirmed.iter().enumerate() {
        assert_eq!(store.read(id).unwrap(), vec![i as u8; 50]);
    }
    assert_eq!(recovery.stats.skipped_count, 0);
}

#[test]
fn torn_tail_is_truncated() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, StoreOptions::default());
    let written: Vec<u64> = (0..3u8).map(|i| append_wait(&store, &[1], &[i; 10]).0).collect();
    drop(store);
    // A torn record at the end of the last segment: its length says 100 bytes, 15 are there.
    let last = segment_files(&fs).into_iter().max().unwrap();
    let file = fs.open(&last).unwrap();
    let mut torn = 100u32.to_le_bytes().to_vec();
    torn.extend_from_slice(&[0xAB; 11]);
    file.append(&torn).unwrap();
    file.sync_data().unwrap();
    let (store, recovery) = open(&fs, StoreOptions::default());
    assert_eq!(ids(&recovery, 1), written);
    assert_eq!(recovery.stats.truncated_bytes, 15);
    assert_eq!(recovery.stats.skipped_count, 0);
    append_wait(&store, &[1], b"after").1.unwrap();
    drop(store);
    let (_store, recovery) = open(&fs, StoreOptions::default());
    assert_eq!(recovery.stats.truncated_bytes, 0);
    assert_eq!(ids(&recovery, 1).len(), 4);
}

#[test]
fn flipped_byte_skips_only_that_record() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, StoreOptions::default());
    let written: Vec<u64> = (0..3u8).map(|i| append_wait(&store, &[1], &[i; 10]).0).collect();
    drop(store);
    // Segment 1: header (40 bytes), then three records of 10 + 8 + 2 + 8 + 10 = 38 bytes.
    let first = segment_files(&fs).into_iter().min().unwrap();
    fs.flip_byte(&first, 40 + 38 + 33, 0x20);
    let (store, recovery) = open(&fs, StoreOptions::default());
    assert_eq!(ids(&recovery, 1), vec![written[0], written[2]]);
    assert_eq!(recovery.stats.skipped_count, 1);
    let skip = &recovery.stats.skipped[0];
    assert_eq!((skip.segment, skip.offset, skip.len, skip.reason), (1, 78, 38, "checksum mismatch"));
    assert!(
        matches!(store.read(written[1]), Err(StoreError::CorruptRecord { id, .. }) if id == written[1]),
        "the damaged record is stepped over, and named as the reason"
    );
    assert_eq!(store.read(written[2]).unwrap(), vec![2u8; 10]);
    assert_eq!(store.read(written[0]).unwrap(), vec![0u8; 10], "behind the walk's last stop");
}

/// A damaged length field sends a walk astray: the record recovery finds after the damaged
/// bytes gets an anchor of its own, so every later message reads back.
#[test]
fn a_damaged_length_costs_only_its_own_record() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, StoreOptions::default());
    let written: Vec<u64> = (0..6u8).map(|i| append_wait(&store, &[1], &[i; 10]).0).collect();
    drop(store);
    // Records of 38 bytes from offset 40: record 1's length now claims 64 bytes more.
    let first = segment_files(&fs).into_iter().min().unwrap();
    fs.flip_byte(&first, 40 + 38, 0x40);
    let (store, recovery) = open(&fs, StoreOptions::default());
    assert_eq!(recovery.stats.skipped_count, 1);
    let mut expected = written.clone();
    expected.remove(1);
    assert_eq!(ids(&recovery, 1), expected);
    for (i, &id) in written.iter().enumerate().filter(|(i, _)| *i != 1) {
        assert_eq!(store.read(id).unwrap(), vec![i as u8; 10], "message {i}");
    }
    assert!(store.read(written[1]).is_err());
}

#[test]
fn corruption_detected_on_read() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, StoreOptions::default());
    let (id, _) = append_wait(&store, &[1], &[5; 10]);
    let first = segment_files(&fs).into_iter().max().unwrap();
    fs.flip_byte(&first, 40 + 33, 0x01);
    assert!(matches!(store.read(id), Err(StoreError::CorruptRecord { .. })));
}

#[test]
fn disk_full_fails_the_append_and_recovers_cleanly() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, small_options());
    let mut ok = Vec::new();
    fs.set_space_limit(Some(fs.used_bytes() + 3000));
    let mut full = 0;
    for i in 0..60u8 {
        match append_wait(&store, &[1], &[i; 100]) {
            (id, Ok(())) => ok.push(id),
            (_, Err(StoreError::DiskFull)) => full += 1,
            (_, Err(e)) => panic!("unexpected {e}"),
        }
    }
    assert!(full > 0 && !ok.is_empty(), "ok {} full {full}", ok.len());
    store.ack(1, ok[0]).unwrap(); // acks wait for space too
    store.ack_many(1, &ok[1..3]).unwrap(); // also when several go in one request
    fs.set_space_limit(None);
    let (after, r) = append_wait(&store, &[1], b"space is back");
    r.unwrap();
    ok.push(after);
    sync_wait(&store).unwrap();
    drop(store);
    let (store, recovery) = open(&fs, small_options());
    assert_eq!(recovery.stats.skipped_count, 0, "{:?}", recovery.stats.skipped);
    assert_eq!(recovery.stats.truncated_bytes, 0);
    assert_eq!(ids(&recovery, 1), ok[3..].to_vec());
    assert_eq!(store.read(after).unwrap(), Bytes::from_static(b"space is back"));
}

#[test]
fn a_store_opens_on_a_disk_without_room_for_a_new_segment() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, small_options());
    let written: Vec<u64> = (0..10u8).map(|i| append_wait(&store, &[1], &[i; 50]).0).collect();
    drop(store);
    // Not a byte free: the new segment that opening starts cannot even get its header.
    fs.set_space_limit(Some(fs.used_bytes()));
    let (store, recovery) = open(&fs, small_options());
    assert_eq!(ids(&recovery, 1), written, "every message is there to be consumed");
    assert_eq!(store.read(written[3]).unwrap(), Bytes::from(vec![3u8; 50]));
    assert_eq!(append_wait(&store, &[1], b"no room").1, Err(StoreError::DiskFull));
    store.ack(1, written[0]).unwrap();
    assert_eq!(sync_wait(&store), Err(StoreError::DiskFull), "the ack waits for room");
    // Room again: the segment is started, the waiting ack and new messages are written.
    fs.set_space_limit(None);
    let (after, r) = append_wait(&store, &[1], b"room again");
    r.unwrap();
    sync_wait(&store).unwrap();
    drop(store);
    let (store, recovery) = open(&fs, small_options());
    assert_eq!(recovery.stats.skipped_count, 0, "{:?}", recovery.stats.skipped);
    let mut expected = written[1..].to_vec();
    expected.push(after);
    assert_eq!(ids(&recovery, 1), expected);
    assert_eq!(store.read(after).unwrap(), Bytes::from_static(b"room again"));
}

#[test]
fn acks_wait_for_space_on_a_full_disk() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, small_options());
    let written: Vec<u64> = (0..10u8).map(|i| append_wait(&store, &[1], &[i; 50]).0).collect();
    fs.set_space_limit(Some(fs.used_bytes()));
    store.ack(1, written[0]).unwrap();
    store.ack_many(1, &written[1..4]).unwrap();
    // The barrier is not reached while acks wait for space.
    assert_eq!(sync_wait(&store), Err(StoreError::DiskFull));
    fs.set_space_limit(None);
    sync_wait(&store).unwrap();
    drop(store);
    let (_store, recovery) = open(&fs, small_options());
    assert_eq!(recovery.stats.skipped_count, 0, "{:?}", recovery.stats.skipped);
    assert_eq!(ids(&recovery, 1), written[4..].to_vec());
}

#[test]
fn segment_created_but_never_written_is_removed() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, StoreOptions::default());
    let (id, _) = append_wait(&store, &[1], b"x");
    drop(store);
    let stray = Path::new(DIR).join("msgs").join(format!("{:020}.seg", 99));
    fs.write_file(&stray, b"WARR");
    let (_store, recovery) = open(&fs, StoreOptions::default());
    assert_eq!(recovery.stats.removed_segments, 1);
    assert_eq!(ids(&recovery, 1), vec![id]);
}

#[test]
fn misnamed_segment_is_a_clear_error() {
    let fs = FaultyFs::new();
    let path = Path::new(DIR).join("msgs").join(format!("{:020}.seg", 5));
    fs.write_file(&path, &warren_store::segment_header_with_version(6, warren_store::FORMAT_VERSION));
    let err = warren_store::Store::open(Path::new(DIR), StoreOptions::default(), std::sync::Arc::new(fs.clone()));
    assert!(matches!(err.err().unwrap(), StoreError::Corrupt { .. }));
}

/// A moved message's copy and the settling of its original are one record: after a crash both
/// happened or neither, whatever part of the record reached the disk.
#[test]
fn a_move_is_all_or_nothing_across_a_crash() {
    for torn in [None, Some(5), Some(40)] {
        let fs = FaultyFs::new();
        let (store, _) = open(&fs, StoreOptions::default());
        let (original, _) = append_wait(&store, &[1], b"dead letter");
        let (done, rx) = completion();
        let copy = store.append_moved((1, original), &[2], Bytes::from_static(b"dead letter"), |_| done).unwrap();
        rx.recv().unwrap().unwrap();
        // The move that follows is in flight at the crash: all or nothing of it survives.
        let (second, _) = append_wait(&store, &[1], b"second");
        let (done, _rx) = completion();
        let in_flight = store.append_moved((1, second), &[2], Bytes::from_static(b"second"), |_| done).unwrap();
        let crashed = fs.crash(torn);
        drop(store);
        let (store, recovery) = open(&crashed, StoreOptions::default());
        assert_eq!(store.read(copy).unwrap(), Bytes::from_static(b"dead letter"));
        let (q1, q2) = (ids(&recovery, 1), ids(&recovery, 2));
        assert!(!q1.contains(&original), "the first original was settled by its move");
        match (q1.contains(&second), q2.contains(&in_flight)) {
            (true, false) | (false, true) => {}
            other => panic!("the second move half-happened ({other:?}) with torn {torn:?}"),
        }
        assert!(q2.contains(&copy));
    }
}

/// The parts of a group are written as one record: a crash anywhere in its write leaves all of
/// them or none, never some.
#[test]
fn a_group_survives_a_crash_whole_or_not_at_all() {
    let parts = || -> Vec<(Vec<u64>, Bytes)> {
        (0..5u8)
            .map(|i| (if i % 2 == 0 { vec![1] } else { vec![1, 2] }, Bytes::from(vec![i; 40 + i as usize])))
            .collect()
    };
    // Confirmed: all parts come back, each read back as itself, acked one by one.
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, StoreOptions::default());
    let (done, rx) = completion();
    let first = store.append_group(parts(), |_| done).unwrap();
    rx.recv().unwrap().unwrap();
    store.ack(1, first + 1).unwrap();
    sync_wait(&store).unwrap();
    let fs = fs.crash(None);
    drop(store);
    let (store, recovery) = open(&fs, StoreOptions::default());
    assert_eq!(ids(&recovery, 1), vec![first, first + 2, first + 3, first + 4]);
    assert_eq!(ids(&recovery, 2), vec![first + 1, first + 3]);
    for i in 0..5u8 {
        assert_eq!(store.read(first + i as u64).unwrap(), vec![i; 40 + i as usize]);
    }
    drop(store);
    // Torn at every length: none of the group's parts, and the log goes on after it.
    let group_len = 2 + (0..5).map(|i| 4 + 8 + 2 + 8 * (1 + i % 2) + 40 + i).sum::<usize>() + 10;
    for torn in [0, 1, 9, 10, 30, group_len / 2, group_len - 1] {
        let fs = FaultyFs::new();
        let (store, _) = open(&fs, StoreOptions::default());
        let (before, ok) = append_wait(&store, &[1], b"before");
        ok.unwrap();
        fs.pause_syncs();
        let (done, _rx) = completion();
        store.append_group(parts(), |_| done).unwrap();
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while fs.syncs_waiting() == 0 {
            assert!(std::time::Instant::now() < deadline, "the group's write never reached its sync");
            std::thread::yield_now();
        }
        let fs = fs.crash(Some(torn));
        drop(store);
        let (store, recovery) = open(&fs, StoreOptions::default());
        assert_eq!(ids(&recovery, 1), vec![before], "torn at {torn} of {group_len}");
        assert!(ids(&recovery, 2).is_empty());
        let (after, ok) = append_wait(&store, &[1], b"after");
        ok.unwrap();
        assert_eq!(store.read(after).unwrap(), &b"after"[..]);
    }
}

#[test]
fn a_group_is_refused_whole_when_it_cannot_be_a_record() {
    let fs = FaultyFs::new();
    let (store, _) = open(&fs, StoreOptions { max_record_bytes: 4096, ..small_options() });
    let big: Vec<(Vec<u64>, Bytes)> = (0..3).map(|_| (vec![1], Bytes::from(vec![0u8; 2000]))).collect();
    assert!(matches!(store.append_group(big, |_| completion().0), Err(StoreError::Invalid(_))));
    assert!(matches!(store.append_group(Vec::new(), |_| completion().0), Err(StoreError::Invalid(_))));
    let no_queue = vec![(Vec::new(), Bytes::from_static(b"x"))];
    assert!(matches!(store.append_group(no_queue, |_| completion().0), Err(StoreError::Invalid(_))));
    // Nothing was taken: the next message gets the next id.
    let (id, ok) = append_wait(&store, &[1], b"x");
    ok.unwrap();
    assert_eq!(id, 1);
}

/// An aggregate written with the acks of its parts: after a crash, either the aggregate is
/// there and the parts are settled, or the parts are there and the aggregate is not.
#[test]
fn a_settling_message_and_the_acks_it_carries_survive_together() {
    for torn in [None, Some(0), Some(12), Some(40)] {
        let fs = FaultyFs::new();
        let (store, _) = open(&fs, StoreOptions::default());
        let parts: Vec<u64> = (0..3u8).map(|i| append_wait(&store, &[1], &[i; 8]).0).collect();
        let settles = parts.iter().map(|&id| (1, id)).collect();
        let (done, rx) = completion();
        if torn.is_some() {
            fs.pause_syncs();
        }
        let aggregate = store.append_settling(settles, &[2], Bytes::from_static(b"[0,1,2]"), |_| done).unwrap();
        if torn.is_none() {
            rx.recv().unwrap().unwrap();
        } else {
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
            while fs.syncs_waiting() == 0 {
                assert!(std::time::Instant::now() < deadline, "the write never reached its sync");
                std::thread::yield_now();
            }
        }
        let fs = fs.crash(torn);
        drop(store);
        let (store, recovery) = open(&fs, StoreOptions::default());
        match torn {
            None => {
                assert_eq!((ids(&recovery, 1), ids(&recovery, 2)), (vec![], vec![aggregate]));
                assert_eq!(store.read(aggregate).unwrap(), &b"[0,1,2]"[..]);
            }
            Some(_) => assert_eq!((ids(&recovery, 1), ids(&recovery, 2)), (parts.clone(), vec![]), "torn at {torn:?}"),
        }
    }
}

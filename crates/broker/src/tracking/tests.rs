//! The tracker's unit tests: outcomes, bounds, lookups, the journal across restarts.

use super::*;

/// A fresh directory for a journal, and the journal's path in it.
fn journal_path() -> (std::path::PathBuf, std::path::PathBuf) {
    let dir = std::env::temp_dir().join(format!("warren-tracking-{}-{}", std::process::id(), rand::random::<u32>()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("tracking.log");
    (dir, path)
}

#[test]
fn a_message_succeeds_once_every_copy_is_acked_and_fails_on_any_dead_letter() {
    let t = Tracker::new(TrackingLimits::default());
    let id = t.start(10, None, Origin::Http);
    assert_eq!(t.status(id).unwrap().outcome, Outcome::Pending);
    t.routed(id, 11, "orders", vec!["a".into(), "b".into()]);
    t.delivered(id, 12, "a", 1);
    t.acked(id, 13, "a");
    let s = t.status(id).unwrap();
    assert_eq!((s.outcome, s.finished), (Outcome::Pending, false), "b still holds a copy");
    t.acked(id, 14, "b");
    let s = t.status(id).unwrap();
    assert_eq!((s.outcome, s.finished, s.events.len()), (Outcome::Succeeded, true, 5));

    let failed = t.start(20, None, Origin::Http);
    t.routed(failed, 21, "orders", vec!["a".into()]);
    t.left(failed, 22, "a", Reason::Rejected, Some(("dlx", vec!["dlq".into()])));
    let s = t.status(failed).unwrap();
    assert_eq!((s.outcome, s.finished), (Outcome::Failed, true));
    assert!(
        matches!(&s.events[2], Event::DeadLettered { reason, exchange, .. } if reason == "rejected" && exchange == "dlx")
    );
    t.delivered(failed, 23, "a", 2);
    assert!(t.status(failed).unwrap().finished, "failure is final");

    let lost = t.start(30, None, Origin::Http);
    t.routed(lost, 31, "orders", vec![]);
    assert_eq!(t.status(lost).unwrap().outcome, Outcome::Failed);
    assert_eq!(parse_id(&id_text(lost)), Some(lost));
}

#[test]
fn records_are_bounded_in_number_and_age() {
    let t = Tracker::new(TrackingLimits { max_records: 2, retention_ms: 1000 });
    let a = t.start(0, None, Origin::Http);
    let b = t.start(1, None, Origin::Http);
    let c = t.start(2, None, Origin::Http);
    assert!(t.status(a).is_none(), "the oldest goes past the count");
    assert!(t.status(b).is_some() && t.status(c).is_some());
    let d = t.start(1002, None, Origin::Http);
    assert!(t.status(b).is_none() && t.status(c).is_none(), "past the retention");
    assert!(t.status(d).is_some());
}

#[test]
fn each_origin_has_its_own_pool_and_keeps_it_across_a_restart() {
    let (dir, path) = journal_path();
    let limits = TrackingLimits { max_records: 2, retention_ms: 1000 };
    let t = Tracker::open(limits, path.clone(), 0).unwrap();
    let http = [t.start(0, None, Origin::Http), t.start(1, None, Origin::Http)];
    let amqp: Vec<u64> = (2..7).map(|at| t.start(at, None, Origin::Amqp)).collect();
    assert!(http.iter().all(|id| t.status(*id).is_some()), "AMQP records never push out HTTP ones");
    let kept: Vec<bool> = amqp.iter().map(|id| t.status(*id).is_some()).collect();
    assert_eq!(kept, [false, false, false, true, true], "the oldest AMQP records go past the count");
    t.close();

    let t = Tracker::open(limits, path.clone(), 10).unwrap();
    assert!(http.iter().chain(&amqp[3..]).all(|id| t.status(*id).is_some()), "both pools are read back");
    let newer = t.start(11, None, Origin::Amqp);
    assert!(t.status(amqp[3]).is_none() && t.status(newer).is_some(), "read back into the AMQP pool");
    assert!(http.iter().all(|id| t.status(*id).is_some()));
    t.start(1_001, None, Origin::Amqp);
    assert!(http.iter().all(|id| t.status(*id).is_none()), "past the retention, whatever the origin");
    t.close();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn changes_the_writer_had_no_room_for_are_written_by_a_catch_up_or_at_close() {
    let (dir, path) = journal_path();
    for catch_up in [true, false] {
        let t = Tracker::open(TrackingLimits::default(), path.clone(), 0).unwrap();
        let journal = t.journal.as_ref().unwrap();
        let (resume, paused) = std::sync::mpsc::channel();
        journal.send(Op::Pause(paused));
        let ids: Vec<u64> = (0..40).map(|at| t.start(at, None, Origin::Http)).collect();
        for id in &ids {
            t.routed(*id, 50, "x", vec!["q".into()]);
            t.acked(*id, 51, "q");
        }
        assert!(t.state.lock().journal_missed > 0, "the paused writer's queue overflowed");
        drop(resume);
        if catch_up {
            // Once the writer has room again, whatever its queue holds.
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
            while t.state.lock().journal_missed > 0 {
                assert!(std::time::Instant::now() < deadline, "caught up");
                t.catch_up();
                std::thread::yield_now();
            }
        }
        t.close();
        let t = Tracker::open(TrackingLimits::default(), path.clone(), 100).unwrap();
        for id in &ids {
            let s = t.status(*id).expect("every record is back");
            assert_eq!((s.outcome, s.version), (Outcome::Succeeded, 3), "its last state (catch_up {catch_up})");
        }
        t.close();
    }
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn records_survive_a_restart_and_a_torn_last_line_is_skipped() {
    let (dir, path) = journal_path();
    let t = Tracker::open(TrackingLimits::default(), path.clone(), 100).unwrap();
    let kept = t.start(100, None, Origin::Http);
    t.routed(kept, 101, "x", vec!["q".into()]);
    let old = t.start(1, None, Origin::Http);
    t.close();
    use std::io::Write;
    std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"id\": 12, \"rec").unwrap();
    let limits = TrackingLimits { max_records: 10, retention_ms: 1000 };
    let t = Tracker::open(limits, path.clone(), 1_050).unwrap();
    let s = t.status(kept).expect("kept across the restart");
    assert_eq!((s.outcome, s.events.len(), s.version), (Outcome::Pending, 2, 2));
    assert!(t.status(old).is_none(), "past its retention at the restart");
    t.acked(kept, 1_060, "q");
    t.close();
    let t = Tracker::open(limits, path, 1_070).unwrap();
    assert_eq!(t.status(kept).unwrap().outcome, Outcome::Succeeded);
    t.close();
    let _ = std::fs::remove_dir_all(dir);
}

#[test]
fn a_message_id_finds_the_latest_message_and_its_entry_goes_with_the_record() {
    let t = Tracker::new(TrackingLimits { max_records: 2, retention_ms: 1000 });
    let first = t.start(0, Some(("/", "order-1")), Origin::Http);
    assert_eq!(t.find("/", "order-1"), Some(first));
    assert_eq!(t.find("other", "order-1"), None, "per vhost");
    let second = t.start(1, Some(("/", "order-1")), Origin::Http);
    assert_eq!(t.find("/", "order-1"), Some(second), "the latest wins");
    t.start(2, None, Origin::Http);
    t.start(3, None, Origin::Http);
    assert_eq!(t.find("/", "order-1"), None, "gone with its record");
}

#[test]
fn only_a_truthy_header_opts_in_and_only_warren_headers_are_looked_at() {
    use amqp_codec::{BasicProperties, FieldTable, FieldValue};
    assert!(truthy(&FieldValue::Bool(true)));
    assert!(truthy(&FieldValue::LongStr("TRUE".into())));
    assert!(truthy(&FieldValue::I32(1)));
    assert!(!truthy(&FieldValue::Bool(false)));
    assert!(!truthy(&FieldValue::LongStr("no".into())));
    let with = |name: &'static str| {
        let mut headers = FieldTable::default();
        headers.insert(amqp_codec::ShortStr::from_static(name), FieldValue::Bool(true));
        BasicProperties { headers: Some(headers), ..Default::default() }.to_raw()
    };
    assert!(mentions_warren_headers(&with(TRACK_HEADER)));
    assert!(mentions_warren_headers(&with(ID_HEADER)));
    assert!(!mentions_warren_headers(&with("x-tenant")));
    assert!(!mentions_warren_headers(&BasicProperties::default().to_raw()));
}

#[test]
fn the_changes_a_record_goes_through_together_cost_one_journal_line() {
    let (dir, path) = journal_path();
    let t = Tracker::open(TrackingLimits::default(), path.clone(), 0).unwrap();
    let ids: Vec<u64> = (0..2 * MAX_DIRTY as u64)
        .map(|at| {
            let id = t.start(at, None, Origin::Http);
            t.routed(id, at, "x", vec!["q".into()]);
            t.acked(id, at, "q");
            id
        })
        .collect();
    t.close();
    // One line per record (three changes each), but for every MAX_DIRTY-th record, written when
    // its start filled the batch and again for its later changes.
    let lines = tracking_journal::read_lines(&path).len();
    assert_eq!(lines, ids.len() + ids.len() / MAX_DIRTY, "a line per record, not per change (3 each)");
    let t = Tracker::open(TrackingLimits::default(), path.clone(), 100).unwrap();
    for id in &ids {
        assert_eq!(t.status(*id).expect("back").outcome, Outcome::Succeeded, "its last state");
    }
    t.close();
    let _ = std::fs::remove_dir_all(dir);
}

//! The durable definitions map: durability across crashes, compaction, torn tails, versions.

use std::path::Path;
use std::sync::Arc;

use warren_store::{Definitions, DefinitionsOptions, FaultyFs, FileSystem, StoreError};

const DIR: &str = "/store";

fn open(fs: &FaultyFs, options: DefinitionsOptions) -> Definitions {
    Definitions::open(Path::new(DIR), options, Arc::new(fs.clone())).expect("open definitions")
}

#[test]
fn put_and_delete_are_durable_when_they_return() {
    let fs = FaultyFs::new();
    let defs = open(&fs, DefinitionsOptions::default());
    defs.put(b"queue/a", b"{durable}").unwrap();
    defs.put(b"queue/b", b"x").unwrap();
    defs.put(b"queue/a", b"v2").unwrap();
    assert!(defs.delete(b"queue/b").unwrap());
    assert!(!defs.delete(b"queue/b").unwrap());
    let fs = fs.crash(Some(3));
    drop(defs);
    let defs = open(&fs, DefinitionsOptions::default());
    assert_eq!(defs.entries(), vec![(b"queue/a".as_slice().into(), b"v2".as_slice().into())]);
    assert_eq!(defs.get(b"queue/b"), None);
    assert_eq!(defs.skipped_records(), 0);
}

#[test]
fn grows_then_compacts_by_rewriting() {
    let fs = FaultyFs::new();
    let options = DefinitionsOptions { compact_threshold_bytes: 2000, ..DefinitionsOptions::default() };
    let defs = open(&fs, options.clone());
    for round in 0..100u32 {
        defs.put(b"binding/1", &round.to_le_bytes()).unwrap();
        defs.put(format!("tmp/{round}").as_bytes(), b"gone soon").unwrap();
        defs.delete(format!("tmp/{round}").as_bytes()).unwrap();
    }
    assert!(defs.file_bytes() <= 2000, "compacted: {} bytes", defs.file_bytes());
    assert!(!fs.exists(&Path::new(DIR).join("definitions.log.tmp")));
    defs.put(b"after", b"compaction").unwrap();
    let fs = fs.crash(None);
    drop(defs);
    let defs = open(&fs, options);
    assert_eq!(defs.get(b"binding/1").unwrap(), 99u32.to_le_bytes().as_slice());
    assert_eq!(defs.get(b"after").unwrap(), b"compaction".as_slice());
    assert_eq!(defs.entries().len(), 2);
}

#[test]
fn torn_tail_and_stale_temp_file_are_cleaned() {
    let fs = FaultyFs::new();
    let defs = open(&fs, DefinitionsOptions::default());
    defs.put(b"k", b"v").unwrap();
    drop(defs);
    let log = Path::new(DIR).join("definitions.log");
    let file = fs.open(&log).unwrap();
    file.append(&[40, 0, 0, 0, 1, 2]).unwrap();
    file.sync_data().unwrap();
    fs.write_file(&Path::new(DIR).join("definitions.log.tmp"), b"half a rewrite");
    let len_before = fs.file_len(&log).unwrap();
    let defs = open(&fs, DefinitionsOptions::default());
    assert_eq!(defs.get(b"k").unwrap(), b"v".as_slice());
    assert_eq!(fs.file_len(&log).unwrap(), len_before - 6);
    assert!(!fs.exists(&Path::new(DIR).join("definitions.log.tmp")));
}

#[test]
fn disk_full_put_fails_and_leaves_the_log_clean() {
    let fs = FaultyFs::new();
    let defs = open(&fs, DefinitionsOptions::default());
    defs.put(b"a", b"1").unwrap();
    fs.set_space_limit(Some(fs.used_bytes() + 10));
    assert_eq!(defs.put(b"b", &[0; 100]), Err(StoreError::DiskFull));
    fs.set_space_limit(None);
    defs.put(b"c", b"3").unwrap();
    drop(defs);
    let defs = open(&fs, DefinitionsOptions::default());
    assert_eq!(defs.entries().len(), 2);
    assert_eq!(defs.skipped_records(), 0);
    assert!(defs.put(&[0; 5000], b"").is_err(), "key bound");
}

#[test]
fn incompatible_version_is_refused() {
    let fs = FaultyFs::new();
    let mut header = warren_store::segment_header_with_version(0, 7);
    header[12] = 2; // file kind: definitions
    fs.write_file(&Path::new(DIR).join("definitions.log"), &header);
    let err = Definitions::open(Path::new(DIR), DefinitionsOptions::default(), Arc::new(fs.clone())).err().unwrap();
    assert!(matches!(err, StoreError::IncompatibleVersion { found: 7, .. }), "{err:?}");
}

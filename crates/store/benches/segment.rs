//! Micro-benchmarks of the message log on the real file system: appending a batch of
//! messages and waiting until all are durable (group commit, so one or a few `fdatasync`s per
//! batch), and reading stored messages back by id. Figures depend on the disk.
//! Run with `cargo bench -p warren-store`.

use bytes::Bytes;
use divan::counter::ItemsCount;
use divan::{black_box, Bencher};
use std::sync::mpsc;
use warren_store::{StdFs, Store, StoreOptions};

fn main() {
    divan::main();
}

const BATCH: usize = 1000;

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let (store, _) = Store::open(dir.path(), StoreOptions::default(), StdFs::shared()).expect("the store opens");
    (dir, store)
}

/// Appends `BATCH` messages of `size` bytes for one queue and waits for all to be durable.
#[divan::bench(args = [16, 1024], sample_count = 20)]
fn append_batch_durably(bencher: Bencher, size: usize) {
    let (_dir, store) = open();
    let body = Bytes::from(vec![b'x'; size]);
    bencher.counter(ItemsCount::new(BATCH)).bench_local(|| {
        let (tx, rx) = mpsc::channel();
        for _ in 0..BATCH {
            let tx = tx.clone();
            store
                .append(&[1], body.clone(), Box::new(move |r| tx.send(r).expect("the bench waits")))
                .expect("appended");
        }
        for _ in 0..BATCH {
            rx.recv().expect("a completion").expect("durable");
        }
    });
    store.close();
}

/// Reads one stored message back by id (from the page cache: the log was just written).
#[divan::bench(args = [16, 1024])]
fn read_by_id(bencher: Bencher, size: usize) {
    let (_dir, store) = open();
    let body = Bytes::from(vec![b'x'; size]);
    let (tx, rx) = mpsc::channel();
    let ids: Vec<u64> = (0..10_000)
        .map(|_| {
            let tx = tx.clone();
            store.append(&[1], body.clone(), Box::new(move |r| tx.send(r).expect("waited"))).expect("appended")
        })
        .collect();
    for _ in 0..ids.len() {
        rx.recv().expect("a completion").expect("durable");
    }
    let mut next = 0;
    bencher.bench_local(|| {
        next = (next + 7919) % ids.len();
        black_box(store.read(ids[next]).expect("stored"))
    });
    store.close();
}

//! Measures the store's in-memory cost per unacked message: appends N empty-bodied messages to
//! one queue on the real file system and reports live heap bytes per message, counted by a
//! global allocator. Usage: `cargo run --release -p warren-store --example index_memory [N]`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use bytes::Bytes;
use warren_store::{StdFs, Store, StoreOptions};

struct Counting;

static LIVE_BYTES: AtomicIsize = AtomicIsize::new(0);

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.fetch_add(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let dir = std::env::temp_dir().join(format!("warren-index-memory-{}", std::process::id()));
    let (store, _) = Store::open(&dir, StoreOptions::default(), StdFs::shared()).expect("open");
    let sync = || {
        let (tx, rx) = std::sync::mpsc::channel();
        store.sync(Box::new(move |r| drop(tx.send(r)))).expect("sync");
        rx.recv().expect("sync done").expect("sync ok");
    };
    let before = LIVE_BYTES.load(Ordering::Relaxed);
    for i in 0..n {
        // Appends in flight are bounded (`channel_capacity`): wait for the disk now and then.
        if i % 2048 == 0 {
            sync();
        }
        store.append(&[1], Bytes::new(), Box::new(|r| r.expect("append"))).expect("submit");
    }
    sync();
    let after = LIVE_BYTES.load(Ordering::Relaxed);
    let stats = store.stats();
    println!(
        "{n} unacked messages: {} live heap bytes, {:.2} bytes/message (index: {} anchors, one per {} bytes of log, {} bytes allocated)",
        after - before,
        (after - before) as f64 / n as f64,
        stats.index_anchors,
        Store::INDEX_ANCHOR_SPACING_BYTES,
        stats.index_bytes,
    );
    drop(store);
    let _ = std::fs::remove_dir_all(&dir);
}

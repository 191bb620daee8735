//! Helpers shared by the store's integration tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::mpsc;
use std::sync::Arc;

use bytes::Bytes;
use warren_store::{Completion, FaultyFs, MessageId, Recovery, Store, StoreError, StoreOptions};

pub const DIR: &str = "/store";

pub fn small_options() -> StoreOptions {
    StoreOptions { segment_size_bytes: 4096, ..StoreOptions::default() }
}

pub fn open(fs: &FaultyFs, options: StoreOptions) -> (Store, Recovery) {
    Store::open(Path::new(DIR), options, Arc::new(fs.clone())).expect("open store")
}

pub fn completion() -> (Completion, mpsc::Receiver<Result<(), StoreError>>) {
    let (tx, rx) = mpsc::channel();
    (Box::new(move |r| drop(tx.send(r))), rx)
}

/// Appends and waits for the completion.
pub fn append_wait(store: &Store, queues: &[u64], body: &[u8]) -> (MessageId, Result<(), StoreError>) {
    let (done, rx) = completion();
    let id = store.append(queues, Bytes::copy_from_slice(body), done).expect("submit");
    (id, rx.recv().expect("completion called"))
}

/// Waits until everything submitted so far is durable.
pub fn sync_wait(store: &Store) -> Result<(), StoreError> {
    let (done, rx) = completion();
    store.sync(done).expect("submit sync");
    rx.recv().expect("sync completion called")
}

/// Ids recovered for `queue`.
pub fn ids(recovery: &Recovery, queue: u64) -> Vec<u64> {
    recovery.queues.get(&queue).map(|m| m.messages().map(|m| m.id).collect()).unwrap_or_default()
}

pub fn segment_files(fs: &FaultyFs) -> Vec<std::path::PathBuf> {
    fs.paths().into_iter().filter(|p| p.extension().is_some_and(|e| e == "seg")).collect()
}

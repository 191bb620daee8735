//! The reader thread: loads the bodies of paged-out messages from the log ahead of their
//! delivery, so that no async worker waits on a disk read. A queue asks for the next few ids in
//! line; the thread reads them (up to a byte bound per request) and hands them back through the
//! request's callback, which installs them in the queue and dispatches.

use super::Durability;
use parking_lot::Mutex;
use std::sync::mpsc;
use std::sync::{Arc, Weak};
use warren_core::Message;

/// What a request loaded: each id with its body, or `None` when it cannot be read.
pub type Loaded = Vec<(u64, Option<Arc<Message>>)>;

/// Called on the reader thread with what was loaded (a prefix of the ids asked for).
pub type OnLoaded = Box<dyn FnOnce(Loaded) + Send + 'static>;

/// Bodies one request loads at most (at least one message, whatever its size).
const MAX_BYTES_PER_REQUEST: usize = 1 << 20;

struct Request {
    ids: Vec<u64>,
    done: OnLoaded,
}

/// Handle to the reader thread; requests are served in order.
#[derive(Default)]
pub struct Reader {
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

impl Reader {
    /// Starts the thread; it holds `durability` weakly and stops when the handle is closed.
    pub fn start(&self, durability: Weak<Durability>) -> std::io::Result<()> {
        let (tx, rx) = mpsc::channel::<Request>();
        let thread = std::thread::Builder::new().name("warren-store-reader".into()).spawn(move || {
            while let Ok(Request { ids, done }) = rx.recv() {
                let Some(d) = durability.upgrade() else { return };
                done(load(&d, &ids));
            }
        })?;
        *self.tx.lock() = Some(tx);
        *self.thread.lock() = Some(thread);
        Ok(())
    }

    /// Asks for the bodies of `ids`; false (and `done` dropped) when the reader is stopped.
    pub fn request(&self, ids: Vec<u64>, done: OnLoaded) -> bool {
        match &*self.tx.lock() {
            Some(tx) => tx.send(Request { ids, done }).is_ok(),
            None => false,
        }
    }

    /// Stops the thread once the requests already sent are served, and waits for it: their
    /// callbacks (dead letters republished from here) reach a store that is still open.
    pub fn close(&self) {
        self.tx.lock().take();
        let thread = self.thread.lock().take();
        if let Some(thread) = thread.filter(|t| t.thread().id() != std::thread::current().id()) {
            let _ = thread.join();
        }
    }
}

fn load(d: &Durability, ids: &[u64]) -> Loaded {
    let mut loaded = Vec::with_capacity(ids.len());
    let mut bytes = 0;
    d.load_many(ids, |id, message| {
        bytes += message.as_ref().map_or(0, |m| m.body_len());
        loaded.push((id, message));
        bytes < MAX_BYTES_PER_REQUEST
    });
    loaded
}

//! The tracking journal: every change to a tracked message's record is appended, as the whole
//! record in one JSON line, to `tracking.log` in the data directory by a writer thread (many
//! lines per write; an `fdatasync` at most every 100 ms). At start the last line of each id wins, records past the
//! retention or the count are dropped, and the file is rewritten with the live ones; it is
//! rewritten the same way while running once it holds several times more lines than records.
//! A torn last line (a crash mid-write) is skipped.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

pub(crate) enum Op {
    /// One line (a record's id and its whole state, JSON).
    Line(Vec<u8>),
    /// Replace the file with these lines (the live records).
    Compact(Vec<Vec<u8>>),
    /// Tests: the writer waits until this channel's sender is dropped.
    #[cfg(test)]
    Pause(mpsc::Receiver<()>),
}

/// Changes waiting for the writer at most; beyond, changes are not queued (the tracker then
/// writes a whole snapshot once there is room again), so that no caller ever waits for the
/// disk while it holds the tracker's or a queue's lock (but for the last snapshot at close).
#[cfg(not(test))]
const MAX_QUEUED: usize = 65_536;
#[cfg(test)]
const MAX_QUEUED: usize = 16;

/// The longest a written line waits to be made durable: a machine that stops (power, kernel)
/// may lose the lines of this last interval. (The tracker gathers changes before they become
/// lines: a crash of the process loses those of about its last second, see `tracking`.)
const SYNC_INTERVAL: Duration = Duration::from_millis(100);

/// How long the writer lets changes gather after the first one wakes it.
const BATCH_WAIT: Duration = Duration::from_millis(2);

fn sync(file: &File) {
    if let Err(e) = file.sync_data() {
        tracing::error!(error = %e, "cannot sync the tracking journal");
    }
}

pub(crate) struct Journal {
    tx: Mutex<Option<mpsc::SyncSender<Op>>>,
    /// Ops sent and not yet taken by the writer.
    queued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

use parking_lot::Mutex;

/// Reads every line of the journal at `path` that parses (the last one per id is the state).
pub(crate) fn read_lines(path: &Path) -> Vec<Vec<u8>> {
    let Ok(file) = File::open(path) else { return Vec::new() };
    BufReader::new(file).split(b'\n').map_while(Result::ok).filter(|l| !l.is_empty()).collect()
}

impl Journal {
    /// Starts the writer over `path`, first replacing its content with `live`.
    pub fn start(path: PathBuf, live: Vec<Vec<u8>>) -> std::io::Result<Journal> {
        let mut file = rewrite(&path, &live)?;
        let (tx, rx) = mpsc::sync_channel::<Op>(MAX_QUEUED);
        let queued = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let taken = queued.clone();
        let thread = std::thread::Builder::new().name("warren-tracking".into()).spawn(move || {
            // Written to the file (the page cache) batch by batch, so a crash of the process loses
            // nothing written; made durable (fdatasync) at most every SYNC_INTERVAL_MS, since a
            // sync per batch cost the HTTP publish path more than all its other work.
            let mut unsynced_since: Option<Instant> = None;
            loop {
                let first = match unsynced_since {
                    None => match rx.recv() {
                        Ok(op) => Some(op),
                        Err(_) => break,
                    },
                    Some(since) => {
                        let left = SYNC_INTERVAL.saturating_sub(since.elapsed());
                        match rx.recv_timeout(left) {
                            Ok(op) => Some(op),
                            Err(mpsc::RecvTimeoutError::Timeout) => None,
                            Err(mpsc::RecvTimeoutError::Disconnected) => break,
                        }
                    }
                };
                if let Some(op) = first {
                    // Let the batch gather: while this thread sleeps, senders find no receiver
                    // to wake (a futex wake per line was most of the journal's cost).
                    std::thread::sleep(BATCH_WAIT);
                    let mut pending: Vec<u8> = Vec::new();
                    let mut result = Ok(());
                    for op in std::iter::once(op).chain(rx.try_iter()) {
                        taken.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                        match op {
                            Op::Line(line) => {
                                pending.extend_from_slice(&line);
                                pending.push(b'\n');
                            }
                            // The snapshot holds everything the lines before it said (and
                            // `rewrite` syncs it).
                            Op::Compact(lines) => {
                                pending.clear();
                                match rewrite(&path, &lines) {
                                    Ok(f) => {
                                        file = f;
                                        unsynced_since = None;
                                    }
                                    Err(e) => result = Err(e),
                                }
                            }
                            #[cfg(test)]
                            Op::Pause(until) => {
                                let _ = until.recv();
                            }
                        }
                    }
                    if !pending.is_empty() {
                        result = result.and_then(|()| file.write_all(&pending));
                        unsynced_since.get_or_insert_with(Instant::now);
                    }
                    if let Err(e) = result {
                        tracing::error!(error = %e, "cannot write the tracking journal");
                    }
                }
                if unsynced_since.is_some_and(|since| since.elapsed() >= SYNC_INTERVAL) {
                    sync(&file);
                    unsynced_since = None;
                }
            }
            if unsynced_since.is_some() {
                sync(&file);
            }
        })?;
        Ok(Journal { tx: Mutex::new(Some(tx)), queued, thread: Mutex::new(Some(thread)) })
    }

    /// Queues `op` for the writer; false if the queue is full (the writer is behind the disk).
    pub fn try_send(&self, op: Op) -> bool {
        match self.tx.lock().as_ref() {
            Some(tx) => match tx.try_send(op) {
                Ok(()) => {
                    self.queued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    true
                }
                Err(mpsc::TrySendError::Full(_)) => false,
                Err(mpsc::TrySendError::Disconnected(_)) => true,
            },
            None => true,
        }
    }

    /// Whether the writer's queue has room (so that a snapshot is worth building).
    pub fn has_room(&self) -> bool {
        self.queued.load(std::sync::atomic::Ordering::Relaxed) < MAX_QUEUED
    }

    /// Queues `op`, waiting for room (for the last snapshot at close).
    pub fn send(&self, op: Op) {
        let tx = self.tx.lock().clone();
        if let Some(tx) = tx {
            self.queued.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let _ = tx.send(op);
        }
    }

    /// Writes what was sent, then stops the writer.
    pub fn close(&self) {
        self.tx.lock().take();
        if let Some(thread) = self.thread.lock().take() {
            let _ = thread.join();
        }
    }
}

/// Replaces the file at `path` with `lines` (through a temporary file and a rename) and returns
/// it open for appending. The file is readable by its owner only: records hold the keys their
/// callbacks are signed with.
fn rewrite(path: &Path, lines: &[Vec<u8>]) -> std::io::Result<File> {
    let tmp = path.with_extension("log.tmp");
    {
        let mut out = BufWriter::new(crate::owner_only::create(&tmp)?);
        for line in lines {
            out.write_all(line)?;
            out.write_all(b"\n")?;
        }
        out.flush()?;
        out.get_ref().sync_all()?;
    }
    std::fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
    OpenOptions::new().append(true).open(path)
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn the_journal_is_readable_by_its_owner_only_even_if_it_was_not() {
        let dir = std::env::temp_dir().join(format!("warren-journal-mode-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("tracking.log");
        std::fs::write(&path, b"{}\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        // And a temporary file a crash left behind.
        let tmp = path.with_extension("log.tmp");
        std::fs::write(&tmp, b"").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();

        let journal = Journal::start(path.clone(), vec![b"{\"id\":1}".to_vec()]).unwrap();
        assert!(journal.try_send(Op::Compact(vec![b"{\"id\":2}".to_vec()])));
        journal.close();

        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_lines(&path), vec![b"{\"id\":2}".to_vec()]);
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

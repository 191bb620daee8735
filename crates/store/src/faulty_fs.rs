//! `FaultyFs`: an in-memory file system for tests that can lose unsynced data on a simulated
//! crash, tear the last write, flip bytes and refuse writes with "disk full". It also counts
//! `fdatasync` calls. Directory operations are modelled as immediately durable.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::{Condvar, Mutex};

use crate::fs::{FileSystem, FsFile};

#[derive(Default)]
struct MemFile {
    data: Vec<u8>,
    /// Content as of the last sync.
    durable: Vec<u8>,
    /// Lowest offset changed since the last sync.
    dirty_from: usize,
}

#[derive(Default)]
struct State {
    files: BTreeMap<PathBuf, MemFile>,
    /// Bumped by every crash; handles from before a crash fail.
    generation: u64,
    /// Total bytes all files may hold; `None` is unlimited.
    space_bytes: Option<u64>,
    syncs: u64,
    /// While set, `sync_data` blocks (a slow disk) until resumed or a crash.
    syncs_paused: bool,
    /// `sync_data` calls blocked right now.
    syncs_waiting: u64,
}

impl State {
    fn used(&self) -> u64 {
        self.files.values().map(|f| f.data.len() as u64).sum()
    }
}

/// A faulty in-memory file system; clones share the same state. Each value is a "view" of one
/// life of the machine: after [`FaultyFs::crash`] every operation through older views (and their
/// open files) fails, as a crashed process would do nothing more.
#[derive(Clone, Default)]
pub struct FaultyFs {
    state: Arc<Mutex<State>>,
    /// Wakes `sync_data` calls blocked by [`FaultyFs::pause_syncs`].
    sync_gate: Arc<Condvar>,
    generation: u64,
}

fn crashed() -> io::Error {
    io::Error::other("simulated crash: stale file handle")
}

fn not_found(path: &Path) -> io::Error {
    io::Error::new(io::ErrorKind::NotFound, format!("{} not found", path.display()))
}

impl FaultyFs {
    /// A new, empty file system.
    pub fn new() -> Self {
        Self::default()
    }

    /// Simulates a power loss: every file keeps only what was synced, plus, with
    /// `torn_bytes = Some(n)`, the first `n` bytes of what was appended after the last sync (a torn
    /// write). Views and handles from before the crash fail from now on; the returned view is the
    /// machine after reboot.
    #[must_use]
    pub fn crash(&self, torn_bytes: Option<usize>) -> FaultyFs {
        let mut st = self.state.lock();
        st.generation += 1;
        let next = FaultyFs { state: self.state.clone(), sync_gate: self.sync_gate.clone(), generation: st.generation };
        st.syncs_paused = false;
        self.sync_gate.notify_all();
        for f in st.files.values_mut() {
            let mut kept = f.durable.clone();
            if let Some(n) = torn_bytes {
                if f.dirty_from >= kept.len() && f.data.len() > kept.len() {
                    let extra = &f.data[kept.len()..];
                    kept.extend_from_slice(&extra[..n.min(extra.len())]);
                }
            }
            f.data = kept;
            f.dirty_from = f.durable.len().min(f.data.len());
        }
        next
    }

    fn live(&self) -> io::Result<parking_lot::MutexGuard<'_, State>> {
        let st = self.state.lock();
        if st.generation != self.generation {
            return Err(crashed());
        }
        Ok(st)
    }

    /// XORs the byte at `offset` of `path` with `mask`, in both its current and durable content.
    pub fn flip_byte(&self, path: &Path, offset: usize, mask: u8) {
        let mut st = self.state.lock();
        let f = st.files.get_mut(path).expect("flip_byte: no such file");
        if let Some(b) = f.data.get_mut(offset) {
            *b ^= mask;
        }
        if let Some(b) = f.durable.get_mut(offset) {
            *b ^= mask;
        }
    }

    /// Limits the total bytes all files may hold (writes beyond fail with "no space", after
    /// writing the part that fits); `None` removes the limit.
    pub fn set_space_limit(&self, bytes: Option<u64>) {
        self.state.lock().space_bytes = bytes;
    }

    /// Makes every `sync_data` block until [`FaultyFs::resume_syncs`] (or a crash): a disk whose
    /// flushes take as long as a test needs.
    pub fn pause_syncs(&self) {
        self.state.lock().syncs_paused = true;
    }

    /// Lets blocked and later `sync_data` calls through.
    pub fn resume_syncs(&self) {
        self.state.lock().syncs_paused = false;
        self.sync_gate.notify_all();
    }

    /// `sync_data` calls blocked by [`FaultyFs::pause_syncs`] right now.
    pub fn syncs_waiting(&self) -> u64 {
        self.state.lock().syncs_waiting
    }

    /// Total bytes currently held.
    pub fn used_bytes(&self) -> u64 {
        self.state.lock().used()
    }

    /// Number of `sync_data` calls so far.
    pub fn sync_count(&self) -> u64 {
        self.state.lock().syncs
    }

    /// Length of a file, if it exists.
    pub fn file_len(&self, path: &Path) -> Option<usize> {
        self.state.lock().files.get(path).map(|f| f.data.len())
    }

    /// The current content of a file, if it exists.
    pub fn read_file(&self, path: &Path) -> Option<Vec<u8>> {
        self.state.lock().files.get(path).map(|f| f.data.clone())
    }

    /// Paths of all files.
    pub fn paths(&self) -> Vec<PathBuf> {
        self.state.lock().files.keys().cloned().collect()
    }

    /// Writes a file's content directly (durable), for tests building odd files.
    pub fn write_file(&self, path: &Path, data: &[u8]) {
        let mut st = self.state.lock();
        let f = st.files.entry(path.to_path_buf()).or_default();
        f.data = data.to_vec();
        f.durable = data.to_vec();
        f.dirty_from = data.len();
    }
}

struct FaultyFile {
    state: Arc<Mutex<State>>,
    sync_gate: Arc<Condvar>,
    path: PathBuf,
    generation: u64,
}

impl FaultyFile {
    fn with<T>(&self, op: impl FnOnce(&mut State) -> io::Result<T>) -> io::Result<T> {
        let mut st = self.state.lock();
        if st.generation != self.generation {
            return Err(crashed());
        }
        if !st.files.contains_key(&self.path) {
            return Err(not_found(&self.path));
        }
        op(&mut st)
    }
}

impl FsFile for FaultyFile {
    fn append(&self, data: &[u8]) -> io::Result<()> {
        self.with(|st| {
            let free = st.space_bytes.map(|limit| limit.saturating_sub(st.used()) as usize);
            let f = st.files.get_mut(&self.path).ok_or_else(|| not_found(&self.path))?;
            let fits = free.map_or(data.len(), |free| free.min(data.len()));
            f.data.extend_from_slice(&data[..fits]);
            if fits < data.len() {
                return Err(io::Error::from_raw_os_error(28));
            }
            Ok(())
        })
    }
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<()> {
        self.with(|st| {
            let f = &st.files[&self.path];
            let start = usize::try_from(offset).map_err(|_| io::Error::other("offset"))?;
            let src = start.checked_add(buf.len()).and_then(|end| f.data.get(start..end));
            let src = src.ok_or_else(|| io::Error::new(io::ErrorKind::UnexpectedEof, "read past end"))?;
            buf.copy_from_slice(src);
            Ok(())
        })
    }
    fn sync_data(&self) -> io::Result<()> {
        {
            let mut st = self.state.lock();
            while st.syncs_paused && st.generation == self.generation {
                st.syncs_waiting += 1;
                self.sync_gate.wait(&mut st);
                st.syncs_waiting -= 1;
            }
        }
        self.with(|st| {
            st.syncs += 1;
            let f = st.files.get_mut(&self.path).ok_or_else(|| not_found(&self.path))?;
            let from = f.dirty_from.min(f.durable.len()).min(f.data.len());
            f.durable.truncate(from);
            f.durable.extend_from_slice(&f.data[from..]);
            f.dirty_from = f.data.len();
            Ok(())
        })
    }
    fn size_bytes(&self) -> io::Result<u64> {
        self.with(|st| Ok(st.files[&self.path].data.len() as u64))
    }
    fn truncate(&self, len: u64) -> io::Result<()> {
        self.with(|st| {
            let f = st.files.get_mut(&self.path).ok_or_else(|| not_found(&self.path))?;
            let len = usize::try_from(len).map_err(|_| io::Error::other("len"))?;
            f.data.resize(len, 0);
            f.dirty_from = f.dirty_from.min(len);
            Ok(())
        })
    }
}

impl FileSystem for FaultyFs {
    fn create_dir_all(&self, _dir: &Path) -> io::Result<()> {
        Ok(())
    }
    fn create(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let mut st = self.live()?;
        st.files.insert(path.to_path_buf(), MemFile::default());
        Ok(Arc::new(FaultyFile {
            state: self.state.clone(),
            sync_gate: self.sync_gate.clone(),
            path: path.to_path_buf(),
            generation: st.generation,
        }))
    }
    fn open(&self, path: &Path) -> io::Result<Arc<dyn FsFile>> {
        let st = self.live()?;
        if !st.files.contains_key(path) {
            return Err(not_found(path));
        }
        Ok(Arc::new(FaultyFile {
            state: self.state.clone(),
            sync_gate: self.sync_gate.clone(),
            path: path.to_path_buf(),
            generation: st.generation,
        }))
    }
    fn rename(&self, from: &Path, to: &Path) -> io::Result<()> {
        let mut st = self.live()?;
        let f = st.files.remove(from).ok_or_else(|| not_found(from))?;
        st.files.insert(to.to_path_buf(), f);
        Ok(())
    }
    fn remove(&self, path: &Path) -> io::Result<()> {
        self.live()?.files.remove(path).map(|_| ()).ok_or_else(|| not_found(path))
    }
    fn list(&self, dir: &Path) -> io::Result<Vec<String>> {
        let st = self.live()?;
        let names = st.files.keys().filter(|p| p.parent() == Some(dir));
        Ok(names.filter_map(|p| p.file_name()).map(|n| n.to_string_lossy().into_owned()).collect())
    }
    fn exists(&self, path: &Path) -> bool {
        self.state.lock().files.contains_key(path)
    }
    fn sync_dir(&self, _dir: &Path) -> io::Result<()> {
        self.live().map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crash_keeps_synced_and_torn_prefix() {
        let fs = FaultyFs::new();
        let p = Path::new("/d/f");
        let f = fs.create(p).unwrap();
        f.append(b"abc").unwrap();
        f.sync_data().unwrap();
        f.append(b"defgh").unwrap();
        let old = fs.clone();
        let fs = fs.crash(Some(2));
        assert!(f.append(b"x").is_err(), "stale handle fails after a crash");
        assert!(old.open(p).is_err(), "stale view fails after a crash");
        let f = fs.open(p).unwrap();
        assert_eq!(crate::fs::read_all(&*f).unwrap(), b"abcde");
        let fs = fs.crash(None);
        assert_eq!(crate::fs::read_all(&*fs.open(p).unwrap()).unwrap(), b"abc");
        assert_eq!(fs.sync_count(), 1);
    }

    #[test]
    fn disk_full_writes_prefix_then_fails() {
        let fs = FaultyFs::new();
        let f = fs.create(Path::new("/d/f")).unwrap();
        fs.set_space_limit(Some(4));
        let err = f.append(b"abcdef").unwrap_err();
        assert_eq!(crate::StoreError::io("append", &err), crate::StoreError::DiskFull);
        assert_eq!(f.size_bytes().unwrap(), 4);
        f.truncate(0).unwrap();
        fs.set_space_limit(None);
        f.append(b"abcdef").unwrap();
        fs.flip_byte(Path::new("/d/f"), 0, 0xFF);
        let mut b = [0];
        f.read_at(0, &mut b).unwrap();
        assert_eq!(b[0], b'a' ^ 0xFF);
    }
}

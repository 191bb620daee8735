//! `Definitions`: a small durable key -> bytes map (the broker's durable exchanges, queues,
//! bindings, users, serialized by the broker). A log file `DIR/definitions.log` of PUT/DELETE
//! records after a versioned header; every change is fsynced before returning; the log is
//! compacted by rewriting (temp file, fsync, rename, fsync dir) once it grows past a threshold.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::Mutex;

use crate::fs::{read_all, FileSystem, FsFile};
use crate::header::{self, FileKind, Header, HEADER_LEN};
use crate::record::{self, kind, FRAME_LEN};
use crate::StoreError;

const FILE: &str = "definitions.log";
const TMP: &str = "definitions.log.tmp";

/// Bounds of the definitions map.
#[derive(Debug, Clone)]
pub struct DefinitionsOptions {
    /// Largest key in bytes.
    pub max_key_bytes: usize,
    /// Largest value in bytes.
    pub max_value_bytes: usize,
    /// The log is rewritten when it is larger than this and more than twice its live content.
    pub compact_threshold_bytes: u64,
}

impl Default for DefinitionsOptions {
    fn default() -> Self {
        DefinitionsOptions { max_key_bytes: 4096, max_value_bytes: 1 << 20, compact_threshold_bytes: 1 << 20 }
    }
}

struct Inner {
    file: Arc<dyn FsFile>,
    len: u64,
    map: BTreeMap<Bytes, Bytes>,
    failed: Option<StoreError>,
}

/// The durable definitions map. Calls block on fsync: call them from a blocking context.
pub struct Definitions {
    fs: Arc<dyn FileSystem>,
    dir: PathBuf,
    options: DefinitionsOptions,
    inner: Mutex<Inner>,
    skipped: u64,
}

fn put_len(key: &[u8], value: &[u8]) -> u64 {
    (FRAME_LEN + 4 + key.len() + value.len()) as u64
}

fn encode_put(buf: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    record::encode(buf, kind::DEF_PUT, &[&(key.len() as u32).to_le_bytes(), key, value]);
}

impl Definitions {
    /// Opens (creating if needed) the definitions of the store in `dir`.
    pub fn open(dir: &Path, options: DefinitionsOptions, fs: Arc<dyn FileSystem>) -> Result<Self, StoreError> {
        fs.create_dir_all(dir).map_err(|e| StoreError::io("create store directory", &e))?;
        let (path, tmp) = (dir.join(FILE), dir.join(TMP));
        if fs.exists(&tmp) {
            fs.remove(&tmp).map_err(|e| StoreError::io("remove stale definitions temp file", &e))?;
        }
        let mut map = BTreeMap::new();
        let mut skipped = 0;
        let file = match fs.open(&path) {
            Ok(file) => {
                let buf = read_all(&*file).map_err(|e| StoreError::io("read definitions", &e))?;
                if buf.len() < HEADER_LEN {
                    // Crashed while creating it: nothing was ever acknowledged.
                    Self::create_file(&*fs, dir, &path)?
                } else {
                    header::decode(&buf, &path, FileKind::Definitions)?;
                    let mut bad = 0;
                    let end = record::scan(
                        &buf,
                        HEADER_LEN,
                        buf.len(),
                        |_, kind, payload| {
                            if !apply(&mut map, kind, payload) {
                                bad += 1;
                            }
                        },
                        |_| skipped += 1,
                    );
                    skipped += bad;
                    if end < buf.len() {
                        file.truncate(end as u64)
                            .and_then(|()| file.sync_data())
                            .map_err(|e| StoreError::io("truncate definitions tail", &e))?;
                    }
                    file
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Self::create_file(&*fs, dir, &path)?,
            Err(e) => return Err(StoreError::io("open definitions", &e)),
        };
        let len = file.size_bytes().map_err(|e| StoreError::io("definitions length", &e))?;
        let inner = Mutex::new(Inner { file, len, map, failed: None });
        Ok(Definitions { fs, dir: dir.to_path_buf(), options, inner, skipped })
    }

    fn create_file(fs: &dyn FileSystem, dir: &Path, path: &Path) -> Result<Arc<dyn FsFile>, StoreError> {
        let file = fs.create(path).map_err(|e| StoreError::io("create definitions", &e))?;
        file.append(&header::encode(FileKind::Definitions, Header { seq: 0, next_id: 0 }))
            .and_then(|()| file.sync_data())
            .and_then(|()| fs.sync_dir(dir))
            .map_err(|e| StoreError::io("create definitions", &e))?;
        Ok(file)
    }

    /// Records read at open that failed their checks and were ignored.
    pub fn skipped_records(&self) -> u64 {
        self.skipped
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Option<Bytes> {
        self.inner.lock().map.get(key).cloned()
    }

    /// Every entry, in key order.
    pub fn entries(&self) -> Vec<(Bytes, Bytes)> {
        self.inner.lock().map.iter().map(|(k, v)| (k.clone(), v.clone())).collect()
    }

    /// Sets `key` to `value`; durable when it returns `Ok`.
    pub fn put(&self, key: &[u8], value: &[u8]) -> Result<(), StoreError> {
        if key.len() > self.options.max_key_bytes || value.len() > self.options.max_value_bytes {
            return Err(StoreError::Invalid("definition key or value too large".into()));
        }
        let mut buf = Vec::new();
        encode_put(&mut buf, key, value);
        let mut inner = self.inner.lock();
        self.write(&mut inner, &buf)?;
        inner.map.insert(Bytes::copy_from_slice(key), Bytes::copy_from_slice(value));
        self.maybe_compact(&mut inner)
    }

    /// Removes `key`; durable when it returns. Returns whether it was present.
    pub fn delete(&self, key: &[u8]) -> Result<bool, StoreError> {
        let mut inner = self.inner.lock();
        if !inner.map.contains_key(key) {
            return Ok(false);
        }
        let mut buf = Vec::new();
        record::encode(&mut buf, kind::DEF_DELETE, &[key]);
        self.write(&mut inner, &buf)?;
        inner.map.remove(key);
        self.maybe_compact(&mut inner)?;
        Ok(true)
    }

    /// Applies every change of `batch` (a value sets its key, `None` removes it) with one write
    /// and one fsync; durable when it returns `Ok`. All or nothing.
    pub fn apply_batch(&self, batch: &[(Bytes, Option<Bytes>)]) -> Result<(), StoreError> {
        let mut buf = Vec::new();
        let mut inner = self.inner.lock();
        for (key, value) in batch {
            match value {
                Some(value) => {
                    if key.len() > self.options.max_key_bytes || value.len() > self.options.max_value_bytes {
                        return Err(StoreError::Invalid("definition key or value too large".into()));
                    }
                    encode_put(&mut buf, key, value);
                }
                None => record::encode(&mut buf, kind::DEF_DELETE, &[key]),
            }
        }
        if buf.is_empty() {
            return Ok(());
        }
        self.write(&mut inner, &buf)?;
        for (key, value) in batch {
            match value {
                Some(value) => inner.map.insert(key.clone(), value.clone()),
                None => inner.map.remove(key),
            };
        }
        self.maybe_compact(&mut inner)
    }

    fn write(&self, inner: &mut Inner, buf: &[u8]) -> Result<(), StoreError> {
        if let Some(err) = &inner.failed {
            return Err(err.clone());
        }
        if let Err(e) = inner.file.append(buf) {
            if inner.file.truncate(inner.len).is_err() {
                inner.failed = Some(StoreError::Failed("cannot roll back a partial definitions write".into()));
            }
            return Err(StoreError::io("append definition", &e));
        }
        if let Err(e) = inner.file.sync_data() {
            inner.failed = Some(StoreError::Failed(e.to_string()));
            return Err(StoreError::Failed(e.to_string()));
        }
        inner.len += buf.len() as u64;
        Ok(())
    }

    fn live_bytes(inner: &Inner) -> u64 {
        HEADER_LEN as u64 + inner.map.iter().map(|(k, v)| put_len(k, v)).sum::<u64>()
    }

    fn maybe_compact(&self, inner: &mut Inner) -> Result<(), StoreError> {
        if inner.len <= self.options.compact_threshold_bytes || inner.len <= 2 * Self::live_bytes(inner) {
            return Ok(());
        }
        // A failed compaction leaves the current log in place: the change is already durable.
        let _ = self.compact(inner);
        Ok(())
    }

    /// Rewrites the log with one PUT per entry: write temp, fsync, rename, fsync dir.
    fn compact(&self, inner: &mut Inner) -> Result<(), StoreError> {
        let (path, tmp) = (self.dir.join(FILE), self.dir.join(TMP));
        let mut buf = header::encode(FileKind::Definitions, Header { seq: 0, next_id: 0 }).to_vec();
        for (k, v) in &inner.map {
            encode_put(&mut buf, k, v);
        }
        let io = |e: std::io::Error| StoreError::io("compact definitions", &e);
        let file = self.fs.create(&tmp).map_err(io)?;
        if let Err(e) = file.append(&buf).and_then(|()| file.sync_data()) {
            let _ = self.fs.remove(&tmp);
            return Err(io(e));
        }
        self.fs.rename(&tmp, &path).map_err(io)?;
        self.fs.sync_dir(&self.dir).map_err(io)?;
        inner.file = self.fs.open(&path).map_err(io)?;
        inner.len = buf.len() as u64;
        Ok(())
    }

    /// Current size of the log file in bytes.
    pub fn file_bytes(&self) -> u64 {
        self.inner.lock().len
    }
}

fn apply(map: &mut BTreeMap<Bytes, Bytes>, kind: u8, payload: &[u8]) -> bool {
    match kind {
        kind::DEF_PUT => {
            let Some(len) = payload.get(0..4).and_then(|b| b.try_into().ok()).map(u32::from_le_bytes) else {
                return false;
            };
            let Some(key) = payload.get(4..4 + len as usize) else { return false };
            let value = &payload[4 + len as usize..];
            map.insert(Bytes::copy_from_slice(key), Bytes::copy_from_slice(value));
            true
        }
        kind::DEF_DELETE => {
            map.remove(payload);
            true
        }
        _ => false,
    }
}

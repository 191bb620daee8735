//! Segment files of the message log: their names (`DIR/msgs/<seq, 20 digits>.seg`), listing
//! and creation (header written, directory synced).

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::fs::{FileSystem, FsFile};
use crate::header::{self, FileKind, Header};
use crate::StoreError;

/// Sub-directory of the store holding segments.
pub const MSGS_DIR: &str = "msgs";
const SUFFIX: &str = ".seg";

/// Path of segment `seq` in `dir` (the `msgs` directory).
pub fn path(dir: &Path, seq: u32) -> PathBuf {
    dir.join(format!("{seq:020}{SUFFIX}"))
}

/// Sequence numbers of the segments in `dir`, ascending. Other names are ignored.
pub fn list(fs: &dyn FileSystem, dir: &Path) -> Result<Vec<u32>, StoreError> {
    let names = fs.list(dir).map_err(|e| StoreError::io("list segments", &e))?;
    let mut seqs: Vec<u32> =
        names.iter().filter_map(|n| n.strip_suffix(SUFFIX)).filter_map(|n| n.parse::<u32>().ok()).collect();
    seqs.sort_unstable();
    Ok(seqs)
}

/// Creates segment `seq` with its header, both made durable (the header's `next_id` must
/// survive even if every older segment is deleted next). On failure no file is left behind (best effort).
pub fn create(fs: &dyn FileSystem, dir: &Path, seq: u32, next_id: u64) -> Result<Arc<dyn FsFile>, StoreError> {
    let path = path(dir, seq);
    let file = fs.create(&path).map_err(|e| StoreError::io("create segment", &e))?;
    let header = header::encode(FileKind::Segment, Header { seq: seq as u64, next_id });
    let written = file.append(&header).and_then(|()| file.sync_data()).and_then(|()| fs.sync_dir(dir));
    if let Err(e) = written {
        let _ = fs.remove(&path);
        return Err(StoreError::io("create segment", &e));
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::FaultyFs;

    #[test]
    fn names_sort_and_ignore_others() {
        let fs = FaultyFs::new();
        let dir = Path::new("/s/msgs");
        create(&fs, dir, 10, 1).unwrap();
        create(&fs, dir, 9, 1).unwrap();
        fs.write_file(&dir.join("junk.tmp"), b"x");
        assert_eq!(list(&fs, dir).unwrap(), vec![9, 10]);
        assert_eq!(fs.file_len(&path(dir, 9)), Some(header::HEADER_LEN));
    }
}

//! Files that hold secrets (callback keys, push subscription secrets): created or truncated
//! readable and writable by their owner only, also when a file of that name already existed.

use std::fs::{File, OpenOptions};
use std::path::Path;

/// Creates `path`, or truncates it, for writing, with mode 0600 on Unix.
pub fn create(path: &Path) -> std::io::Result<File> {
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let file = options.open(path)?;
    // The mode above only applies to a new file; one left by a crash keeps its own.
    #[cfg(unix)]
    file.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
    Ok(file)
}

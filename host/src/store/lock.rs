//! One process per data directory.
//!
//! `wharf serve` and `wharf worker` take an exclusive advisory lock
//! (`flock`) on `DATA_DIR/wharf.lock` before they open the database, and
//! hold it until they exit. Two servers on one directory would both recover
//! and run the same open activities; the second is refused instead, with
//! the holder's pid (written into the lock file) in the message. The kernel
//! drops the lock with the holder's last descriptor, so a killed process
//! leaves no stale lock behind: the file stays, the lock does not.

use std::fs::File;
use std::io::{Read as _, Seek as _, SeekFrom, Write as _};
use std::os::fd::AsRawFd as _;
use std::path::{Path, PathBuf};

/// Name of the lock file in the data directory.
pub const LOCK_FILE: &str = "wharf.lock";

/// Why the data directory could not be locked.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds the lock.
    #[error(
        "the data directory {dir} is in use by another wharf process (pid {holder}); \
         stop it or choose another --data-dir"
    )]
    Held {
        /// The data directory.
        dir: PathBuf,
        /// The holder's pid as it wrote it, or `unknown`.
        holder: String,
    },
    /// The lock file could not be created, read or written.
    #[error("cannot lock the data directory {dir}: {source}")]
    Io {
        /// The data directory.
        dir: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// The held lock; released when dropped (or when the process dies).
#[derive(Debug)]
pub struct DataDirLock {
    // Kept open: closing the descriptor releases the lock.
    _file: File,
}

impl DataDirLock {
    /// Creates `dir` if needed and locks it for this process, or says which
    /// process holds it.
    pub fn acquire(dir: &Path) -> Result<Self, LockError> {
        let io = |source| LockError::Io {
            dir: dir.to_owned(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        // Not truncated on open: the holder's pid must stay readable to the
        // process that is refused.
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(dir.join(LOCK_FILE))
            .map_err(io)?;
        // SAFETY: flock on a descriptor this function owns; no memory is
        // passed.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc != 0 {
            let err = std::io::Error::last_os_error();
            if err.kind() != std::io::ErrorKind::WouldBlock {
                return Err(io(err));
            }
            let mut pid = String::new();
            // The holder may not have written its pid yet; then it is unknown.
            let _ = (&mut file).take(32).read_to_string(&mut pid);
            let pid = pid.trim();
            return Err(LockError::Held {
                dir: dir.to_owned(),
                holder: if pid.is_empty() { "unknown" } else { pid }.to_owned(),
            });
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Self { _file: file })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_with_the_pid_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = DataDirLock::acquire(dir.path()).unwrap();
        // flock locks belong to the open file, so a second open in the same
        // process conflicts just as another process would.
        match DataDirLock::acquire(dir.path()) {
            Err(LockError::Held { holder, .. }) => {
                assert_eq!(holder, std::process::id().to_string())
            }
            other => panic!("expected Held, got {other:?}"),
        }
        drop(first);
        DataDirLock::acquire(dir.path()).unwrap();
    }
}

//! One BM-SC per store: an exclusive advisory lock on `<data_dir>/bmsc.lock`.
//!
//! Two BM-SCs on one store would hand out different MTKs under the same MTK ID and the same
//! MIKEY counters. The lock is a `flock` taken with [`File::try_lock`]: the operating system
//! releases it when the holder exits, `kill -9` and crashes included, so a stale lock file
//! never blocks a start. The holder writes its PID into the file after locking, so the refused
//! start can name it. Readers (`bmsc status`) take no lock: they open the database read-only.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::StoreError;

/// The lock file's name inside `data_dir`.
pub const LOCK_FILE: &str = "bmsc.lock";

/// The held lock; dropping it (or the process ending) releases it.
#[derive(Debug)]
pub struct StoreLock {
    path: PathBuf,
    // Holding the open file holds the lock.
    _file: File,
}

impl StoreLock {
    /// Takes the exclusive lock of the store in `data_dir` (which must exist) without waiting.
    ///
    /// # Errors
    /// [`StoreError::Locked`] when another open file holds it (another process, or another
    /// store in this one), with the holder's PID when it has written it;
    /// [`StoreError::Io`] when the file cannot be opened, written or locked.
    pub fn acquire(data_dir: &Path) -> Result<Self, StoreError> {
        let path = data_dir.join(LOCK_FILE);
        let io = |source| StoreError::Io {
            path: path.clone(),
            source,
        };
        // Not truncated on open: the holder's PID must survive a refused attempt.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(StoreError::Locked {
                    pid: holder_pid(&file),
                    path,
                });
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
        }
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        writeln!(file, "{}", std::process::id()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Self { path, _file: file })
    }

    /// The lock file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// The PID the holder wrote, if it has written one yet.
fn holder_pid(file: &File) -> Option<u32> {
    let mut text = String::new();
    file.take(32).read_to_string(&mut text).ok()?;
    text.trim().parse().ok()
}

/// " (held by process N)" or "" for the message of [`StoreError::Locked`].
pub(super) fn holder_note(pid: Option<u32>) -> String {
    pid.map_or_else(String::new, |p| format!(" (held by process {p})"))
}

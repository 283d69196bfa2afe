//! One BM-SC per store: an exclusive advisory lock on `<data_dir>/bmsc.lock`.
//!
//! Two BM-SCs on one store would hand out different MTKs under the same MTK ID and the same
//! MIKEY counters. The lock is a `flock` taken with [`File::try_lock`]: the operating system
//! releases it when the holder exits, `kill -9` and crashes included, so a stale lock file
//! never blocks a start. The holder writes its PID into the file after locking, so the refused
//! start can name it. Readers (`bmsc status`) take no lock: they open the database read-only.

use std::fs::{File, OpenOptions};
use std::io::{Seek, SeekFrom, Write};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::StoreError;

/// The lock file's name inside `data_dir`.
pub const LOCK_FILE: &str = "bmsc.lock";

/// How often, and how long apart, a lock that names this process is tried again
/// ([`StoreLock::acquire`]): 50 × 10 ms.
const OWN_PID_RETRIES: u32 = 50;
const OWN_PID_WAIT: std::time::Duration = std::time::Duration::from_millis(10);

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
        let mut attempts = 0;
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) => {
                    let pid = holder_pid(&file);
                    // A lock this process released a moment ago can still be held by a child
                    // it is starting: the child shares the lock file's open description from
                    // its fork until its exec closes it. Wait for that, briefly; a store of
                    // this process that is still open is refused like any other holder.
                    if pid == Some(std::process::id()) && attempts < OWN_PID_RETRIES {
                        attempts += 1;
                        std::thread::sleep(OWN_PID_WAIT);
                        continue;
                    }
                    return Err(StoreError::Locked { pid, path });
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(io(e)),
            }
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

/// The PID the holder wrote, if it has written one yet (read from the start of the file, each
/// time it is asked).
fn holder_pid(file: &File) -> Option<u32> {
    let mut buf = [0u8; 32];
    let n = file.read_at(&mut buf, 0).ok()?;
    std::str::from_utf8(buf.get(..n)?).ok()?.trim().parse().ok()
}

/// " (held by process N)" or "" for the message of [`StoreError::Locked`].
pub(super) fn holder_note(pid: Option<u32>) -> String {
    pid.map_or_else(String::new, |p| format!(" (held by process {p})"))
}

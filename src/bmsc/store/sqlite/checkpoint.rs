//! The WAL checkpoint, off the commit path.
//!
//! SQLite's automatic checkpoint runs inside the `COMMIT` that pushes the WAL over 1000 pages:
//! that commit (and every registration waiting on its group) then also copies the WAL into the
//! database and syncs it. The writer therefore runs with `wal_autocheckpoint=0`, and this
//! thread, on a connection of its own, checkpoints every [`PERIOD`]: `PASSIVE`, which never
//! waits for, nor blocks, a reader or the writer. Under a steady stream of commits such a
//! checkpoint never finds the WAL fully copied, and SQLite starts the WAL file over only
//! then, so once the WAL holds over [`RESTART_FRAMES`] frames the thread copies the rest
//! while holding the writer's lock: only what was committed during the unlocked pass, a
//! short pause of the writer instead of a full copy inside a commit. Once the WAL is fully
//! copied and nothing was written for a period, `TRUNCATE` empties the WAL file of an idle
//! store. The WAL file thus stays within [`RESTART_FRAMES`] plus what one period writes
//! (while no reader holds an old snapshot for long).
//! Durability is unchanged: a commit is durable once in the WAL (`synchronous=FULL`); a
//! checkpoint only moves committed pages, and a crash in one is recovered from the WAL.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;
use tracing::warn;

use super::{StoreError, db};

/// How often the WAL is checkpointed.
pub(super) const PERIOD: Duration = Duration::from_millis(100);

/// WAL frames (pages) over which a checkpoint finishes under the writer's lock, so that the
/// next commit starts the WAL file over: about 16 MiB of 4 KiB pages.
pub(super) const RESTART_FRAMES: i64 = 4096;

/// What the checkpoint thread did, for tests and diagnostics.
#[derive(Debug, Default)]
pub struct CheckpointStats {
    /// `PASSIVE` checkpoints that copied every frame of the WAL.
    pub complete: AtomicU64,
    /// `TRUNCATE` checkpoints that emptied the WAL file.
    pub truncated: AtomicU64,
    /// Checkpoints finished under the writer's lock, the WAL being over `RESTART_FRAMES`.
    pub under_writer_lock: AtomicU64,
}

/// The checkpoint thread; dropping it stops and joins the thread.
pub(super) struct Checkpointer {
    stop: Arc<(Mutex<bool>, Condvar)>,
    stats: Arc<CheckpointStats>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Starts checkpointing the WAL database at `path` on a connection of its own.
    pub(super) fn start(path: &Path, writer: Arc<Mutex<Connection>>) -> Result<Self, StoreError> {
        let conn = Connection::open(path).map_err(db)?;
        // A TRUNCATE that finds the writer or a reader busy gives up at once, to try again.
        conn.busy_timeout(Duration::ZERO).map_err(db)?;
        let stop = Arc::new((Mutex::new(false), Condvar::new()));
        let stats = Arc::new(CheckpointStats::default());
        let (s, st) = (Arc::clone(&stop), Arc::clone(&stats));
        let thread = std::thread::Builder::new()
            .name("bmsc-wal-checkpoint".into())
            .spawn(move || run(&conn, &writer, &s, &st))
            .map_err(|e| StoreError::Backend(format!("cannot start the WAL checkpoint: {e}")))?;
        Ok(Self {
            stop,
            stats,
            thread: Some(thread),
        })
    }

    pub(super) fn stats(&self) -> Arc<CheckpointStats> {
        Arc::clone(&self.stats)
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        let (flag, cv) = &*self.stop;
        *flag.lock().unwrap_or_else(PoisonError::into_inner) = true;
        cv.notify_all();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// `PRAGMA wal_checkpoint(mode)`: (busy, frames in the WAL, frames copied).
fn checkpoint(conn: &Connection, mode: &str) -> rusqlite::Result<(i64, i64, i64)> {
    conn.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
}

fn run(
    conn: &Connection,
    writer: &Mutex<Connection>,
    stop: &(Mutex<bool>, Condvar),
    stats: &CheckpointStats,
) {
    let (flag, cv) = stop;
    let mut last_frames = -1;
    let mut failing = false;
    loop {
        {
            let stopped = flag.lock().unwrap_or_else(PoisonError::into_inner);
            let (stopped, _) = cv
                .wait_timeout_while(stopped, PERIOD, |s| !*s)
                .unwrap_or_else(PoisonError::into_inner);
            if *stopped {
                return;
            }
        }
        let outcome = checkpoint(conn, "PASSIVE").and_then(|(_, mut frames, mut copied)| {
            if frames > RESTART_FRAMES {
                let _writing = writer.lock().unwrap_or_else(PoisonError::into_inner);
                (_, frames, copied) = checkpoint(conn, "PASSIVE")?;
                stats.under_writer_lock.fetch_add(1, Ordering::Relaxed);
            }
            if frames > 0 && copied == frames {
                stats.complete.fetch_add(1, Ordering::Relaxed);
                if frames == last_frames {
                    let (busy, _, _) = checkpoint(conn, "TRUNCATE")?;
                    if busy == 0 {
                        stats.truncated.fetch_add(1, Ordering::Relaxed);
                        last_frames = 0;
                        return Ok(());
                    }
                }
            }
            last_frames = frames;
            Ok(())
        });
        match outcome {
            Ok(()) => failing = false,
            // TRUNCATE gave up on a busy writer or reader: the next period tries again.
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::DatabaseBusy => {}
            Err(e) => {
                if !failing {
                    warn!(error = %e, "WAL checkpoint failed; retrying every period");
                }
                failing = true;
            }
        }
    }
}

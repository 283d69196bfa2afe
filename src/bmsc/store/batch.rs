//! Group commit: many writers share one durable commit (docs/architecture.md §4, the store).
//!
//! A writer queues its job, either with [`GroupCommit::queue`], which returns at once with a
//! receiver that yields the job's result (an async caller awaits it: no thread is parked per
//! job), or with [`GroupCommit::submit`], which blocks until then. One writer thread per
//! group commit takes the queued jobs: it may linger up to [`GroupCommitLimits::max_wait`] for
//! the batch to fill to [`GroupCommitLimits::max_batch`], takes up to `max_batch` of them, runs
//! them through the backend's commit function (one transaction, one fsync) and hands each
//! job its own result. Jobs that arrive while a batch is being written queue for the next one,
//! so under load a batch holds what arrived during the previous fsync. The backend's commit
//! function keeps the jobs apart (SQLite: one savepoint each), so one failing job does not
//! fail the others; a failed commit fails every job of its batch.
//!
//! The mechanism knows no database: the SQLite store uses it for registrations, and another
//! backend can use it as it is (or complete its own receivers from an async client).

use std::collections::VecDeque;
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::StoreError;
use crate::telemetry::Counter;

/// Bounds of a group commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitLimits {
    /// Most jobs in one transaction (at least 1).
    pub max_batch: usize,
    /// How long the writer waits for a batch to fill before committing what it has. Zero
    /// (the default): no lingering; a batch is what queued during the previous commit.
    pub max_wait: Duration,
}

impl Default for GroupCommitLimits {
    fn default() -> Self {
        Self {
            max_batch: 512,
            max_wait: Duration::ZERO,
        }
    }
}

/// Upper bounds of the batch-size histogram buckets.
const SIZE_BUCKETS: [u64; 10] = [1, 2, 4, 8, 16, 32, 64, 128, 256, 512];

/// Counts of the group commits: exposed on `/metrics` as `mbms_bmsc_store_commits_total`
/// and the histogram `mbms_bmsc_store_batch_size`.
#[derive(Debug, Default)]
pub struct CommitStats {
    commits: Counter,
    jobs: Counter,
    buckets: [AtomicU64; SIZE_BUCKETS.len()],
}

impl CommitStats {
    /// Batches written (each one transaction, one durable commit).
    #[must_use]
    pub fn commits(&self) -> u64 {
        self.commits.get()
    }

    /// Jobs written in those batches.
    #[must_use]
    pub fn jobs(&self) -> u64 {
        self.jobs.get()
    }

    fn observe(&self, size: usize) {
        let size = size as u64;
        self.commits.inc();
        self.jobs.add(size);
        for (bound, b) in SIZE_BUCKETS.iter().zip(&self.buckets) {
            if size <= *bound {
                b.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Appends the Prometheus lines to `out`.
    pub fn render(&self, out: &mut String) {
        let c = "mbms_bmsc_store_commits_total";
        let _ = writeln!(out, "# HELP {c} Write batches committed by the store.");
        let _ = writeln!(out, "# TYPE {c} counter");
        let _ = writeln!(out, "{c} {}", self.commits());
        let h = "mbms_bmsc_store_batch_size";
        let _ = writeln!(out, "# HELP {h} Writes per committed batch.");
        let _ = writeln!(out, "# TYPE {h} histogram");
        for (bound, b) in SIZE_BUCKETS.iter().zip(&self.buckets) {
            let _ = writeln!(
                out,
                "{h}_bucket{{le=\"{bound}\"}} {}",
                b.load(Ordering::Relaxed)
            );
        }
        let _ = writeln!(out, "{h}_bucket{{le=\"+Inf\"}} {}", self.commits());
        let _ = writeln!(out, "{h}_sum {}", self.jobs());
        let _ = writeln!(out, "{h}_count {}", self.commits());
    }
}

/// Where a job's result goes: a thread blocked in [`GroupCommit::submit`], or a task awaiting
/// the receiver of [`GroupCommit::queue`].
enum Reply<R> {
    Thread(std::sync::mpsc::SyncSender<Result<R, StoreError>>),
    Task(oneshot::Sender<Result<R, StoreError>>),
}

impl<R> Reply<R> {
    fn send(self, r: Result<R, StoreError>) {
        // A submitter that went away (a client that left) loses only its answer: the job
        // itself is committed or failed like every other of its batch.
        match self {
            Self::Thread(tx) => {
                let _ = tx.send(r);
            }
            Self::Task(tx) => {
                let _ = tx.send(r);
            }
        }
    }
}

struct State<J, R> {
    queue: VecDeque<(J, Reply<R>)>,
    closing: bool,
}

struct Shared<J, R> {
    limits: GroupCommitLimits,
    state: Mutex<State<J, R>>,
    /// A job was queued, or the writer is asked to stop.
    arrived: Condvar,
    stats: Arc<CommitStats>,
}

impl<J, R> Shared<J, R> {
    fn lock(&self) -> MutexGuard<'_, State<J, R>> {
        // Every critical section leaves the state consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The group commit of jobs `J` answered with `R` (module doc).
pub struct GroupCommit<J, R> {
    shared: Arc<Shared<J, R>>,
    writer: Option<std::thread::JoinHandle<()>>,
}

impl<J, R> std::fmt::Debug for GroupCommit<J, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("limits", &self.shared.limits)
            .finish_non_exhaustive()
    }
}

/// The error of a job whose batch was not written (its commit function panicked or returned
/// too few results, or the writer is gone).
fn abandoned() -> StoreError {
    StoreError::Backend("the write batch was abandoned".to_owned())
}

impl<J: Send + 'static, R: Send + 'static> GroupCommit<J, R> {
    /// A group commit within `limits` whose writer thread (named `name`) writes each batch
    /// with `commit`: one transaction, one result per job, in order.
    ///
    /// # Errors
    /// The writer thread could not be started.
    pub fn start(
        limits: GroupCommitLimits,
        name: &str,
        mut commit: impl FnMut(Vec<J>) -> Vec<Result<R, StoreError>> + Send + 'static,
    ) -> std::io::Result<Self> {
        let shared = Arc::new(Shared {
            limits: GroupCommitLimits {
                max_batch: limits.max_batch.max(1),
                max_wait: limits.max_wait,
            },
            state: Mutex::new(State {
                queue: VecDeque::new(),
                closing: false,
            }),
            arrived: Condvar::new(),
            stats: Arc::default(),
        });
        let s = Arc::clone(&shared);
        let writer = std::thread::Builder::new()
            .name(name.to_owned())
            .spawn(move || write_batches(&s, &mut commit))?;
        Ok(Self {
            shared,
            writer: Some(writer),
        })
    }
}

impl<J, R> GroupCommit<J, R> {
    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> GroupCommitLimits {
        self.shared.limits
    }

    /// The commit counts.
    #[must_use]
    pub fn stats(&self) -> Arc<CommitStats> {
        Arc::clone(&self.shared.stats)
    }

    fn push(&self, job: J, reply: Reply<R>) {
        let mut st = self.shared.lock();
        st.queue.push_back((job, reply));
        drop(st);
        self.shared.arrived.notify_one();
    }

    /// Queues `job` and returns at once; the receiver yields its result once the batch holding
    /// it committed (or failed). Never blocks on the database: what an async caller awaits
    /// instead of a parked thread.
    pub fn queue(&self, job: J) -> oneshot::Receiver<Result<R, StoreError>> {
        let (tx, rx) = oneshot::channel();
        self.push(job, Reply::Task(tx));
        rx
    }

    /// Queues `job` and blocks until the batch holding it committed.
    ///
    /// # Errors
    /// The job's own error, or the batch's when its commit failed.
    pub fn submit(&self, job: J) -> Result<R, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.push(job, Reply::Thread(tx));
        rx.recv().unwrap_or_else(|_| Err(abandoned()))
    }
}

impl<J, R> Drop for GroupCommit<J, R> {
    /// Writes what is queued, then stops the writer.
    fn drop(&mut self) {
        self.shared.lock().closing = true;
        self.shared.arrived.notify_one();
        if let Some(w) = self.writer.take() {
            let _ = w.join();
        }
    }
}

/// The writer thread: takes what is queued (after lingering up to `max_wait` for a full
/// batch), writes it, answers each job; until asked to stop with nothing queued.
fn write_batches<J, R>(
    shared: &Shared<J, R>,
    commit: &mut dyn FnMut(Vec<J>) -> Vec<Result<R, StoreError>>,
) {
    let limits = shared.limits;
    loop {
        let mut st = shared.lock();
        while st.queue.is_empty() && !st.closing {
            st = shared
                .arrived
                .wait(st)
                .unwrap_or_else(PoisonError::into_inner);
        }
        if st.queue.is_empty() {
            return;
        }
        if !limits.max_wait.is_zero() {
            let deadline = Instant::now() + limits.max_wait;
            while st.queue.len() < limits.max_batch && !st.closing {
                let now = Instant::now();
                if now >= deadline {
                    break;
                }
                st = shared
                    .arrived
                    .wait_timeout(st, deadline - now)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            }
        }
        let n = st.queue.len().min(limits.max_batch);
        let mut jobs = Vec::with_capacity(n);
        let mut replies = Vec::with_capacity(n);
        for (job, reply) in st.queue.drain(..n) {
            jobs.push(job);
            replies.push(reply);
        }
        drop(st);
        shared.stats.observe(jobs.len());
        // A panicking backend fails its batch, not the writer: later batches are still written.
        let results = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| commit(jobs)))
            .unwrap_or_default();
        let mut results = results.into_iter();
        for reply in replies {
            reply.send(results.next().unwrap_or_else(|| Err(abandoned())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    /// Job 3 fails on its own; every other job `j` is answered `j * 10`.
    fn times_ten(jobs: Vec<u32>) -> Vec<Result<u32, StoreError>> {
        jobs.into_iter()
            .map(|j| {
                if j == 3 {
                    Err(StoreError::TimeOutOfRange)
                } else {
                    Ok(j * 10)
                }
            })
            .collect()
    }

    #[test]
    fn concurrent_jobs_share_commits_and_get_their_own_results() {
        let gc = Arc::new(
            GroupCommit::start(
                GroupCommitLimits {
                    max_batch: 8,
                    max_wait: Duration::from_secs(5),
                },
                "gc-test",
                times_ten,
            )
            .expect("writer"),
        );
        let barrier = Arc::new(Barrier::new(8));
        let started = Instant::now();
        let handles: Vec<_> = (0..8u32)
            .map(|i| {
                let (gc, barrier) = (Arc::clone(&gc), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    gc.submit(i)
                })
            })
            .collect();
        for (i, h) in (0..8u32).zip(handles) {
            let r = h.join().expect("thread");
            if i == 3 {
                assert!(matches!(r, Err(StoreError::TimeOutOfRange)));
            } else {
                assert_eq!(r.expect("ok"), i * 10);
            }
        }
        // A full batch ends the lingering: one commit, long before max_wait.
        assert_eq!(gc.stats().commits(), 1);
        assert_eq!(gc.stats().jobs(), 8);
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn queued_jobs_need_no_waiting_thread() {
        let gc = GroupCommit::start(
            GroupCommitLimits {
                max_batch: 6,
                max_wait: Duration::from_secs(5),
            },
            "gc-test",
            times_ten,
        )
        .expect("writer");
        let started = Instant::now();
        // One thread queues the whole batch without waiting for any of it.
        let receivers: Vec<_> = (0..6u32).map(|i| gc.queue(i)).collect();
        for (i, rx) in (0..6u32).zip(receivers) {
            let r = rx.blocking_recv().expect("answered");
            if i == 3 {
                assert!(matches!(r, Err(StoreError::TimeOutOfRange)));
            } else {
                assert_eq!(r.expect("ok"), i * 10);
            }
        }
        assert_eq!(gc.stats().commits(), 1);
        assert!(started.elapsed() < Duration::from_secs(4));
    }

    #[test]
    fn a_failed_commit_fails_every_job_of_its_batch() {
        let gc = GroupCommit::<u32, ()>::start(
            GroupCommitLimits {
                max_batch: 3,
                max_wait: Duration::from_secs(5),
            },
            "gc-test",
            |jobs| {
                jobs.iter()
                    .map(|_| Err(StoreError::Backend("disk full".into())))
                    .collect()
            },
        )
        .expect("writer");
        let receivers: Vec<_> = (0..3u32).map(|i| gc.queue(i)).collect();
        for rx in receivers {
            assert!(matches!(
                rx.blocking_recv().expect("answered"),
                Err(StoreError::Backend(_))
            ));
        }
    }

    #[test]
    fn many_submitters_in_small_batches_all_finish() {
        let gc = Arc::new(
            GroupCommit::<u32, u32>::start(
                GroupCommitLimits {
                    max_batch: 3,
                    max_wait: Duration::ZERO,
                },
                "gc-test",
                |jobs| jobs.into_iter().map(Ok).collect(),
            )
            .expect("writer"),
        );
        let (tx, rx) = std::sync::mpsc::channel();
        for t in 0..16u32 {
            let (gc, tx) = (Arc::clone(&gc), tx.clone());
            std::thread::spawn(move || {
                for k in 0..200u32 {
                    let job = t * 1000 + k;
                    let r = gc.submit(job);
                    assert_eq!(r.expect("ok"), job);
                }
                let _ = tx.send(t);
            });
        }
        drop(tx);
        for _ in 0..16 {
            // A lost wake-up would leave a submitter waiting for ever.
            rx.recv_timeout(Duration::from_secs(60))
                .expect("every submitter finishes");
        }
        let stats = gc.stats();
        assert_eq!(stats.jobs(), 16 * 200);
        assert!(stats.commits() >= 16 * 200 / 3);
    }

    #[test]
    fn a_panicking_commit_fails_its_batch_and_the_writer_goes_on() {
        let gc = GroupCommit::<u32, ()>::start(GroupCommitLimits::default(), "gc-test", |jobs| {
            assert!(!jobs.contains(&1), "backend bug");
            // A short answer fails the unanswered jobs instead of hanging them.
            if jobs.contains(&3) {
                return Vec::new();
            }
            jobs.iter().map(|_| Ok(())).collect()
        })
        .expect("writer");
        assert!(matches!(gc.submit(1), Err(StoreError::Backend(_))));
        assert!(gc.submit(2).is_ok());
        assert!(matches!(gc.submit(3), Err(StoreError::Backend(_))));
    }

    #[test]
    fn dropping_writes_what_is_queued() {
        let gc = GroupCommit::<u32, u32>::start(
            GroupCommitLimits {
                max_batch: 100,
                max_wait: Duration::from_secs(30),
            },
            "gc-test",
            |jobs| jobs.into_iter().map(Ok).collect(),
        )
        .expect("writer");
        let rx = gc.queue(7);
        let started = Instant::now();
        drop(gc);
        // Not held for the lingering: stopping ends it.
        assert!(started.elapsed() < Duration::from_secs(20));
        assert_eq!(rx.blocking_recv().expect("answered").expect("ok"), 7);
    }

    #[test]
    fn rendering_names_commits_and_batch_sizes() {
        let s = CommitStats::default();
        s.observe(3);
        s.observe(1);
        let mut out = String::new();
        s.render(&mut out);
        assert!(out.contains("mbms_bmsc_store_commits_total 2\n"));
        assert!(out.contains("mbms_bmsc_store_batch_size_bucket{le=\"2\"} 1\n"));
        assert!(out.contains("mbms_bmsc_store_batch_size_bucket{le=\"4\"} 2\n"));
        assert!(out.contains("mbms_bmsc_store_batch_size_sum 4\n"));
    }
}

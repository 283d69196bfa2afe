//! Group commit: many writers share one durable commit (docs/architecture.md §4, the store).
//!
//! A writer hands its job to [`GroupCommit::submit`] and blocks until the transaction holding
//! it has committed (or failed). No dedicated thread: whoever finds no batch being written
//! becomes the *leader*: it may linger up to [`GroupCommitLimits::max_wait`] for the batch to
//! fill to [`GroupCommitLimits::max_batch`], takes up to `max_batch` queued jobs, runs them
//! through the backend's commit function (one transaction, one fsync) and hands each waiter
//! its own result. Jobs that arrive while a batch is being written queue for the next one, so
//! under load a batch holds what arrived during the previous fsync. The backend's commit
//! function keeps the jobs apart (SQLite: one savepoint each), so one failing job does not
//! fail the others; a failed commit fails every job of its batch.
//!
//! The mechanism knows no database: the SQLite store uses it for registrations, and another
//! backend can use it as it is.

use std::collections::{HashMap, VecDeque};
use std::fmt::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::StoreError;
use crate::telemetry::Counter;

/// Bounds of a group commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GroupCommitLimits {
    /// Most jobs in one transaction (at least 1).
    pub max_batch: usize,
    /// How long the leader waits for a batch to fill before committing what it has. Zero
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

/// A queued job: its id, the job, and the condition its submitter waits on (one each, so a
/// finished batch wakes its own waiters and the next leader, not every waiter).
type Queued<J> = (u64, J, Arc<Condvar>);

struct State<J, R> {
    queue: VecDeque<Queued<J>>,
    results: HashMap<u64, Result<R, StoreError>>,
    leading: bool,
    next_id: u64,
}

/// The group commit of jobs `J` answered with `R` (module doc).
pub struct GroupCommit<J, R> {
    limits: GroupCommitLimits,
    state: Mutex<State<J, R>>,
    /// A job was queued (wakes a lingering leader).
    arrived: Condvar,
    stats: Arc<CommitStats>,
}

impl<J, R> std::fmt::Debug for GroupCommit<J, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupCommit")
            .field("limits", &self.limits)
            .finish_non_exhaustive()
    }
}

/// Answers the jobs of a batch when dropped, also when the commit function panicked.
struct Leader<'a, J, R> {
    gc: &'a GroupCommit<J, R>,
    ids: Vec<(u64, Arc<Condvar>)>,
    results: Vec<Result<R, StoreError>>,
}

impl<J, R> Drop for Leader<'_, J, R> {
    fn drop(&mut self) {
        let mut st = self.gc.lock();
        let mut results = std::mem::take(&mut self.results).into_iter();
        let mut wake = Vec::with_capacity(self.ids.len() + 1);
        for (id, cv) in self.ids.drain(..) {
            let r = results.next().unwrap_or_else(|| {
                Err(StoreError::Backend(
                    "the write batch was abandoned".to_owned(),
                ))
            });
            st.results.insert(id, r);
            wake.push(cv);
        }
        st.leading = false;
        // The oldest waiting job's submitter leads the next batch.
        if let Some((_, _, cv)) = st.queue.front() {
            wake.push(Arc::clone(cv));
        }
        drop(st);
        for cv in wake {
            cv.notify_one();
        }
    }
}

impl<J, R> GroupCommit<J, R> {
    /// A group commit within `limits`.
    #[must_use]
    pub fn new(limits: GroupCommitLimits) -> Self {
        Self {
            limits: GroupCommitLimits {
                max_batch: limits.max_batch.max(1),
                max_wait: limits.max_wait,
            },
            state: Mutex::new(State {
                queue: VecDeque::new(),
                results: HashMap::new(),
                leading: false,
                next_id: 0,
            }),
            arrived: Condvar::new(),
            stats: Arc::default(),
        }
    }

    /// The limits in force.
    #[must_use]
    pub fn limits(&self) -> GroupCommitLimits {
        self.limits
    }

    /// The commit counts.
    #[must_use]
    pub fn stats(&self) -> Arc<CommitStats> {
        Arc::clone(&self.stats)
    }

    fn lock(&self) -> MutexGuard<'_, State<J, R>> {
        // Every critical section leaves the state consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `job` and returns its result once the batch holding it committed. `commit`
    /// writes a batch in one transaction and returns one result per job, in order; it is run
    /// by whichever submitter leads that batch.
    ///
    /// # Errors
    /// The job's own error, or the batch's when its commit failed.
    pub fn submit(
        &self,
        job: J,
        commit: impl Fn(Vec<J>) -> Vec<Result<R, StoreError>>,
    ) -> Result<R, StoreError> {
        let mine = Arc::new(Condvar::new());
        let mut st = self.lock();
        let id = st.next_id;
        st.next_id = st.next_id.wrapping_add(1);
        st.queue.push_back((id, job, Arc::clone(&mine)));
        self.arrived.notify_one();
        loop {
            if let Some(r) = st.results.remove(&id) {
                return r;
            }
            if st.leading {
                st = mine.wait(st).unwrap_or_else(PoisonError::into_inner);
                continue;
            }
            st.leading = true;
            st = self.linger(st);
            let n = st.queue.len().min(self.limits.max_batch);
            let mut ids = Vec::with_capacity(n);
            let mut jobs = Vec::with_capacity(n);
            for (id, job, cv) in st.queue.drain(..n) {
                ids.push((id, cv));
                jobs.push(job);
            }
            drop(st);
            let mut leader = Leader {
                gc: self,
                ids,
                results: Vec::new(),
            };
            self.stats.observe(jobs.len());
            leader.results = commit(jobs);
            drop(leader);
            st = self.lock();
        }
    }

    /// Waits (at most `max_wait`) until `max_batch` jobs are queued.
    fn linger<'a>(&self, mut st: MutexGuard<'a, State<J, R>>) -> MutexGuard<'a, State<J, R>> {
        if self.limits.max_wait.is_zero() {
            return st;
        }
        let deadline = Instant::now() + self.limits.max_wait;
        while st.queue.len() < self.limits.max_batch {
            let now = Instant::now();
            if now >= deadline {
                break;
            }
            st = self
                .arrived
                .wait_timeout(st, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        st
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Barrier;

    #[test]
    fn concurrent_jobs_share_commits_and_get_their_own_results() {
        let gc = Arc::new(GroupCommit::<u32, u32>::new(GroupCommitLimits {
            max_batch: 8,
            max_wait: Duration::from_secs(5),
        }));
        let barrier = Arc::new(Barrier::new(8));
        let started = Instant::now();
        let handles: Vec<_> = (0..8u32)
            .map(|i| {
                let (gc, barrier) = (Arc::clone(&gc), Arc::clone(&barrier));
                std::thread::spawn(move || {
                    barrier.wait();
                    gc.submit(i, |jobs| {
                        jobs.into_iter()
                            .map(|j| {
                                if j == 3 {
                                    Err(StoreError::TimeOutOfRange)
                                } else {
                                    Ok(j * 10)
                                }
                            })
                            .collect()
                    })
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
    fn many_submitters_in_small_batches_all_finish() {
        let gc = Arc::new(GroupCommit::<u32, u32>::new(GroupCommitLimits {
            max_batch: 3,
            max_wait: Duration::ZERO,
        }));
        let (tx, rx) = std::sync::mpsc::channel();
        for t in 0..16u32 {
            let (gc, tx) = (Arc::clone(&gc), tx.clone());
            std::thread::spawn(move || {
                for k in 0..200u32 {
                    let job = t * 1000 + k;
                    let r = gc.submit(job, |jobs| jobs.into_iter().map(Ok).collect());
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
    fn a_panicking_commit_fails_its_batch_and_frees_the_next() {
        let gc = GroupCommit::<u32, ()>::new(GroupCommitLimits::default());
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            gc.submit(1, |_| panic!("backend bug"))
        }));
        assert!(r.is_err());
        assert!(
            gc.submit(2, |jobs| jobs.iter().map(|_| Ok(())).collect())
                .is_ok()
        );
        // A short answer fails the unanswered jobs instead of hanging them.
        assert!(matches!(
            gc.submit(3, |_| Vec::new()),
            Err(StoreError::Backend(_))
        ));
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

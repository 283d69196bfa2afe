//! Supervision of the BM-SC's essential tasks.
//!
//! Every task of the assembled server is essential: if one ends — returns, fails, panics or
//! is cancelled — while no shutdown was asked for, the supervisor logs which and why, marks the
//! server not ready, and stops the others through the same graceful path as SIGTERM. That path
//! has three steps: the [`Phase::Front`] tasks (Key Requests, media, key export) stop and drain,
//! so that a request still in flight has its event taken by a running Key Distribution; then the
//! [`Phase::Back`] tasks (the distribution and the housekeeping); the admin listener last, when
//! the owner shuts down, so `/health/ready` answers 503 meanwhile. `bmsc serve` then exits with
//! [`EXIT_TASK_ENDED`].

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::{AbortHandle, Id, JoinError, JoinHandle, JoinSet};

use super::health::Readiness;

/// The exit status of `bmsc serve` when an essential task ended unexpectedly. \[CHOICE\]
/// (docs/profile.md §6): every task is essential; status 3 is distinct from 1 (start or
/// other error) and 2 (invalid configuration).
pub const EXIT_TASK_ENDED: u8 = 3;

/// What a supervised task returns.
pub type TaskResult = Result<(), String>;

/// An essential task that ended while the server was not shutting down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskEnded {
    /// The task's name, e.g. `key distribution`.
    pub task: &'static str,
    /// How it ended: `returned`, `failed: ...`, `panicked`, `cancelled`.
    pub why: String,
}

/// When a task is stopped (module doc).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// First: the tasks that take traffic in.
    Front,
    /// Once every front task has ended.
    Back,
}

/// The traffic tasks (everything but the admin listener), spawned into one set.
#[derive(Default)]
pub struct Tasks {
    set: JoinSet<TaskResult>,
    names: HashMap<Id, (&'static str, Phase)>,
    handles: Vec<(&'static str, AbortHandle)>,
    front: usize,
}

impl Tasks {
    /// Spawns `fut` as the essential task `name`, stopped in `phase`.
    pub fn spawn(
        &mut self,
        name: &'static str,
        phase: Phase,
        fut: impl Future<Output = TaskResult> + Send + 'static,
    ) {
        let h = self.set.spawn(fut);
        self.names.insert(h.id(), (name, phase));
        self.handles.push((name, h));
        if phase == Phase::Front {
            self.front += 1;
        }
    }

    /// The name of the task that ended, and counts a front task gone.
    fn ended(&mut self, id: Id) -> &'static str {
        match self.names.get(&id) {
            Some((name, phase)) => {
                if *phase == Phase::Front {
                    self.front = self.front.saturating_sub(1);
                }
                name
            }
            None => "a task",
        }
    }

    /// The abort handles by name (for fault injection in tests).
    pub fn handles(&self) -> Vec<(&'static str, AbortHandle)> {
        self.handles.clone()
    }
}

fn describe(joined: Result<TaskResult, JoinError>) -> Result<(), String> {
    match joined {
        Ok(Ok(())) => Err("returned".to_owned()),
        Ok(Err(e)) => Err(format!("failed: {e}")),
        Err(e) if e.is_panic() => Err("panicked".to_owned()),
        Err(_) => Err("cancelled".to_owned()),
    }
}

/// The signals between the owner, the supervisor and the tasks.
pub struct Signals {
    /// Set by the owner to shut down (dropping it shuts down too).
    pub shutdown: watch::Receiver<bool>,
    /// Set by the supervisor to stop the [`Phase::Front`] tasks.
    pub front: watch::Sender<bool>,
    /// Set by the supervisor to stop the [`Phase::Back`] tasks, once the front ones ended.
    pub back: watch::Sender<bool>,
    /// Set by the supervisor to stop the admin listener, last.
    pub admin: watch::Sender<bool>,
    /// The first unexpected end, for whoever waits on it.
    pub failed: watch::Sender<Option<TaskEnded>>,
}

/// Watches `tasks` and `admin` until the owner shuts down (module doc). Returns the first
/// unexpected end, if any; else the errors of tasks that failed while stopping.
pub async fn supervise(
    mut tasks: Tasks,
    mut admin: JoinHandle<TaskResult>,
    signals: Signals,
    readiness: Arc<Readiness>,
) -> Result<Result<(), String>, TaskEnded> {
    let Signals {
        mut shutdown,
        front,
        back,
        admin: admin_stop,
        failed,
    } = signals;
    let mut first: Option<TaskEnded> = None;
    let mut errors = Vec::new();
    let mut admin_done = false;
    let ended = |task: &'static str, why: String, first: &mut Option<TaskEnded>| {
        if first.is_some() {
            return;
        }
        tracing::error!(task, why = %why, "an essential task ended: stopping the BM-SC");
        readiness.halt(&format!("{task} ended ({why})"));
        let _ = front.send(true);
        let e = TaskEnded { task, why };
        let _ = failed.send(Some(e.clone()));
        *first = Some(e);
    };
    loop {
        tokio::select! {
            biased;
            _ = shutdown.wait_for(|s| *s) => break,
            joined = &mut admin, if !admin_done => {
                admin_done = true;
                if let Err(why) = describe(joined) {
                    ended("admin", why, &mut first);
                }
            }
            Some(joined) = tasks.set.join_next_with_id() => {
                let (name, outcome) = match joined {
                    Ok((id, r)) => (tasks.ended(id), describe(Ok(r))),
                    Err(e) => (tasks.ended(e.id()), describe(Err(e))),
                };
                match (&first, outcome) {
                    (None, Err(why)) => ended(name, why, &mut first),
                    (Some(_), Err(why)) if why != "returned" => errors.push(format!("{name}: {why}")),
                    _ => {}
                }
                if first.is_some() && tasks.front == 0 {
                    let _ = back.send(true);
                }
            }
        }
    }
    readiness.halt("shutting down");
    let _ = front.send(true);
    if tasks.front == 0 {
        let _ = back.send(true);
    }
    while let Some(joined) = tasks.set.join_next_with_id().await {
        let (name, r) = match joined {
            Ok((id, r)) => (tasks.ended(id), r),
            Err(e) => (tasks.ended(e.id()), Err(e.to_string())),
        };
        if let Err(e) = r {
            errors.push(format!("{name}: {e}"));
        }
        if tasks.front == 0 {
            let _ = back.send(true);
        }
    }
    let _ = admin_stop.send(true);
    if !admin_done {
        match admin.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(format!("admin: {e}")),
            Err(e) => errors.push(format!("admin: {e}")),
        }
    }
    match first {
        Some(e) => Err(e),
        None if errors.is_empty() => Ok(Ok(())),
        None => Ok(Err(errors.join("; "))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rx {
        front: watch::Receiver<bool>,
        back: watch::Receiver<bool>,
        admin: watch::Receiver<bool>,
    }

    fn signals() -> (watch::Sender<bool>, Signals, Rx) {
        let (shutdown_tx, shutdown) = watch::channel(false);
        let (front, front_rx) = watch::channel(false);
        let (back, back_rx) = watch::channel(false);
        let (admin, admin_rx) = watch::channel(false);
        let (failed, _) = watch::channel(None);
        (
            shutdown_tx,
            Signals {
                shutdown,
                front,
                back,
                admin,
                failed,
            },
            Rx {
                front: front_rx,
                back: back_rx,
                admin: admin_rx,
            },
        )
    }

    async fn until(mut rx: watch::Receiver<bool>) -> TaskResult {
        let _ = rx.wait_for(|s| *s).await;
        Ok(())
    }

    #[tokio::test]
    async fn a_panicking_task_stops_the_others_and_is_named() {
        let (shutdown, signals, rx) = signals();
        let readiness = Arc::new(Readiness::default());
        readiness.set_started();
        let mut tasks = Tasks::default();
        tasks.spawn("key requests", Phase::Front, until(rx.front.clone()));
        tasks.spawn("registrations gauge", Phase::Back, until(rx.back.clone()));
        tasks.spawn("key distribution", Phase::Back, async {
            tokio::task::yield_now().await;
            panic!("injected");
        });
        let admin = tokio::spawn(until(rx.admin.clone()));
        let mut failed = signals.failed.subscribe();
        let sup = tokio::spawn(supervise(tasks, admin, signals, readiness.clone()));
        let e = failed
            .wait_for(Option::is_some)
            .await
            .expect("failure")
            .clone();
        assert_eq!(
            e.map(|e| (e.task, e.why)),
            Some(("key distribution", "panicked".into()))
        );
        assert!(!readiness.is_ready());
        // The front tasks stop at once, then the back ones; the admin listener waits for the
        // owner.
        assert!(*rx.front.borrow());
        let mut back = rx.back.clone();
        tokio::time::timeout(std::time::Duration::from_secs(5), back.wait_for(|s| *s))
            .await
            .expect("the back tasks are stopped once the front ones ended")
            .expect("signal");
        assert!(!*rx.admin.borrow());
        shutdown.send(true).expect("supervisor listens");
        let out = sup.await.expect("supervisor");
        assert_eq!(
            out.map_err(|e| e.task),
            Err("key distribution"),
            "the first unexpected end is the result"
        );
        assert!(*rx.admin.borrow());
    }

    #[tokio::test]
    async fn a_task_that_returns_is_an_unexpected_end_too() {
        let (_shutdown, signals, rx) = signals();
        let mut tasks = Tasks::default();
        tasks.spawn("registrations gauge", Phase::Back, async { Ok(()) });
        tasks.spawn("key requests", Phase::Front, until(rx.front));
        let admin = tokio::spawn(until(rx.admin));
        let mut failed = signals.failed.subscribe();
        let readiness = Arc::new(Readiness::default());
        let _sup = tokio::spawn(supervise(tasks, admin, signals, readiness));
        let e = failed
            .wait_for(Option::is_some)
            .await
            .expect("failure")
            .clone();
        assert_eq!(
            e.map(|e| (e.task, e.why)),
            Some(("registrations gauge", "returned".into()))
        );
    }

    #[tokio::test]
    async fn a_shutdown_stops_the_back_tasks_only_after_the_front_ones_ended() {
        let (shutdown, signals, rx) = signals();
        let mut tasks = Tasks::default();
        // A front task that drains for a while after its stop.
        let (mut front_rx, back_rx) = (rx.front.clone(), rx.back.clone());
        tasks.spawn("key requests", Phase::Front, async move {
            let _ = front_rx.wait_for(|s| *s).await;
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            if *back_rx.borrow() {
                return Err("the back tasks were stopped while draining".into());
            }
            Ok(())
        });
        tasks.spawn("key distribution", Phase::Back, until(rx.back));
        let admin = tokio::spawn(until(rx.admin));
        let readiness = Arc::new(Readiness::default());
        let sup = tokio::spawn(supervise(tasks, admin, signals, readiness));
        shutdown.send(true).expect("supervisor listens");
        assert_eq!(sup.await.expect("supervisor"), Ok(Ok(())));
    }
}

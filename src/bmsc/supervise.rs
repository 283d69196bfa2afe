//! Supervision of the BM-SC's essential tasks.
//!
//! Every task of the assembled server is essential: if one ends — returns, fails, panics or
//! is cancelled — while no shutdown was asked for, the supervisor logs which and why, marks the
//! server not ready, and stops the others through the same graceful path as SIGTERM (the
//! traffic tasks first; the admin listener last, when the owner shuts down, so `/health/ready`
//! answers 503 meanwhile). `bmsc serve` then exits with [`EXIT_TASK_ENDED`].

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

/// The traffic tasks (everything but the admin listener), spawned into one set.
#[derive(Default)]
pub struct Tasks {
    set: JoinSet<TaskResult>,
    names: HashMap<Id, &'static str>,
    handles: Vec<(&'static str, AbortHandle)>,
}

impl Tasks {
    /// Spawns `fut` as the essential task `name`.
    pub fn spawn(
        &mut self,
        name: &'static str,
        fut: impl Future<Output = TaskResult> + Send + 'static,
    ) {
        let h = self.set.spawn(fut);
        self.names.insert(h.id(), name);
        self.handles.push((name, h));
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
    /// Set by the supervisor to stop the traffic tasks.
    pub traffic: watch::Sender<bool>,
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
        traffic,
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
        let _ = traffic.send(true);
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
                    Ok((id, r)) => (tasks.names.get(&id).copied(), describe(Ok(r))),
                    Err(e) => (tasks.names.get(&e.id()).copied(), describe(Err(e))),
                };
                let name = name.unwrap_or("a task");
                match (&first, outcome) {
                    (None, Err(why)) => ended(name, why, &mut first),
                    (Some(_), Err(why)) if why != "returned" => errors.push(format!("{name}: {why}")),
                    _ => {}
                }
            }
        }
    }
    readiness.halt("shutting down");
    let _ = traffic.send(true);
    while let Some(joined) = tasks.set.join_next_with_id().await {
        let (name, r) = match joined {
            Ok((id, r)) => (tasks.names.get(&id).copied(), r),
            Err(e) => (tasks.names.get(&e.id()).copied(), Err(e.to_string())),
        };
        if let Err(e) = r {
            errors.push(format!("{}: {e}", name.unwrap_or("a task")));
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

    fn signals() -> (
        watch::Sender<bool>,
        Signals,
        watch::Receiver<bool>,
        watch::Receiver<bool>,
    ) {
        let (shutdown_tx, shutdown) = watch::channel(false);
        let (traffic, traffic_rx) = watch::channel(false);
        let (admin, admin_rx) = watch::channel(false);
        let (failed, _) = watch::channel(None);
        (
            shutdown_tx,
            Signals {
                shutdown,
                traffic,
                admin,
                failed,
            },
            traffic_rx,
            admin_rx,
        )
    }

    async fn until(mut rx: watch::Receiver<bool>) -> TaskResult {
        let _ = rx.wait_for(|s| *s).await;
        Ok(())
    }

    #[tokio::test]
    async fn a_panicking_task_stops_the_others_and_is_named() {
        let (shutdown, signals, traffic_rx, admin_rx) = signals();
        let readiness = Arc::new(Readiness::default());
        readiness.set_started();
        let mut tasks = Tasks::default();
        tasks.spawn("key requests", until(traffic_rx.clone()));
        tasks.spawn("key distribution", async {
            tokio::task::yield_now().await;
            panic!("injected");
        });
        let admin = tokio::spawn(until(admin_rx.clone()));
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
        // The traffic tasks stop at once; the admin listener waits for the owner.
        assert!(*traffic_rx.borrow());
        assert!(!*admin_rx.borrow());
        shutdown.send(true).expect("supervisor listens");
        let out = sup.await.expect("supervisor");
        assert_eq!(
            out.map_err(|e| e.task),
            Err("key distribution"),
            "the first unexpected end is the result"
        );
        assert!(*admin_rx.borrow());
    }

    #[tokio::test]
    async fn a_task_that_returns_is_an_unexpected_end_too() {
        let (_shutdown, signals, traffic_rx, admin_rx) = signals();
        let mut tasks = Tasks::default();
        tasks.spawn("registrations gauge", async { Ok(()) });
        tasks.spawn("key requests", until(traffic_rx));
        let admin = tokio::spawn(until(admin_rx));
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
    async fn a_shutdown_is_not_a_failure() {
        let (shutdown, signals, traffic_rx, admin_rx) = signals();
        let mut tasks = Tasks::default();
        tasks.spawn("key requests", until(traffic_rx.clone()));
        tasks.spawn("key distribution", until(traffic_rx));
        let admin = tokio::spawn(until(admin_rx));
        let readiness = Arc::new(Readiness::default());
        let sup = tokio::spawn(supervise(tasks, admin, signals, readiness));
        shutdown.send(true).expect("supervisor listens");
        assert_eq!(sup.await.expect("supervisor"), Ok(Ok(())));
    }
}

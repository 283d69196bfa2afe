//! Liveness and readiness of the assembled BM-SC (`/health/live`, `/health/ready`, `/health`).
//!
//! Live: the admin listener answers, so the process runs its runtime. Ready: every check holds —
//! the store answers, the listeners are served, the Key Distribution function runs, the key
//! source is reachable — and no essential task has ended. The flags are set by the tasks
//! themselves (a [`TaskGuard`] clears its flag the moment its task returns, fails, panics or
//! is cancelled), so readiness goes false at once, before the supervisor has stopped the rest.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use super::metrics::Metrics;
use crate::gba::zn::{PeerState, ZnClient};

/// What `/health` and `/health/ready` report: whether the server is ready, and a body that
/// says which check failed.
pub trait HealthCheck: Send + Sync + 'static {
    /// `(ready, body)`; the body is text, one line per check.
    fn check(&self) -> (bool, String);
}

/// A bare predicate: `ok` or `unavailable`.
impl<F: Fn() -> bool + Send + Sync + 'static> HealthCheck for F {
    fn check(&self) -> (bool, String) {
        if self() {
            (true, "ok".to_owned())
        } else {
            (false, "unavailable".to_owned())
        }
    }
}

/// How the key source's reachability is judged.
pub enum KeySourceProbe {
    /// The embedded list (or a source given by the embedding program): always reachable.
    Local,
    /// Zn: at least one Diameter peer OPEN.
    Zn(ZnClient),
    /// Nbsp_GBA or Naanf_AKMA: the outcome of the last request
    /// ([`crate::gba::sbi::SbiMetrics::reachable`]), read from the BM-SC's metrics.
    Http(Arc<Metrics>),
}

impl KeySourceProbe {
    fn failure(&self) -> Option<String> {
        match self {
            Self::Local => None,
            Self::Zn(c) => {
                let states = c.peer_states();
                (!states.contains(&PeerState::Open))
                    .then(|| format!("no Zn peer open ({} configured)", states.len()))
            }
            Self::Http(m) => match m.sbi.get() {
                Some(s) if !s.reachable() => {
                    Some("the last request to the key source got no usable answer".to_owned())
                }
                _ => None,
            },
        }
    }
}

/// Which readiness flag a [`TaskGuard`] holds up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Check {
    /// A listener's task: Key Requests, admin, media senders, key export.
    Listeners,
    /// The Key Distribution task.
    Distribution,
}

/// The readiness state of one BM-SC, shared by its tasks and the admin listener.
pub struct Readiness {
    store: AtomicBool,
    listeners: AtomicBool,
    distribution: AtomicBool,
    halted: Mutex<Option<String>>,
    key_source: OnceLock<KeySourceProbe>,
}

impl Default for Readiness {
    fn default() -> Self {
        Self {
            store: AtomicBool::new(true),
            listeners: AtomicBool::new(false),
            distribution: AtomicBool::new(false),
            halted: Mutex::new(None),
            key_source: OnceLock::new(),
        }
    }
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Readiness")
            .field("ready", &self.check().0)
            .finish_non_exhaustive()
    }
}

impl Readiness {
    /// Sets how the key source is probed (once; later calls are ignored).
    pub fn set_key_source(&self, probe: KeySourceProbe) {
        let _ = self.key_source.set(probe);
    }

    /// Records the outcome of the last store access.
    pub fn set_store(&self, ok: bool) {
        self.store.store(ok, Ordering::Relaxed);
    }

    /// Marks the listeners bound and the distribution running (at the end of the start).
    pub fn set_started(&self) {
        self.listeners.store(true, Ordering::Relaxed);
        self.distribution.store(true, Ordering::Relaxed);
    }

    /// Not ready from now on, for `why` (a task ended, or the server is shutting down); the
    /// first reason is kept.
    pub fn halt(&self, why: &str) {
        let mut h = self.halted.lock().unwrap_or_else(PoisonError::into_inner);
        if h.is_none() {
            *h = Some(why.to_owned());
        }
    }

    /// A guard that clears `check` when dropped (with its task's future).
    #[must_use]
    pub fn guard(self: &Arc<Self>, check: Check) -> TaskGuard {
        TaskGuard {
            readiness: Arc::clone(self),
            check,
        }
    }

    /// Whether every check holds.
    #[must_use]
    pub fn is_ready(&self) -> bool {
        self.check().0
    }
}

impl HealthCheck for Readiness {
    fn check(&self) -> (bool, String) {
        let flag = |b: &AtomicBool, what: &str| {
            if b.load(Ordering::Relaxed) {
                Ok(())
            } else {
                Err(what.to_owned())
            }
        };
        let halted = self
            .halted
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        let checks = [
            ("store", flag(&self.store, "the last store access failed")),
            ("listeners", flag(&self.listeners, "not served")),
            ("distribution", flag(&self.distribution, "not running")),
            (
                "key_source",
                self.key_source
                    .get()
                    .and_then(KeySourceProbe::failure)
                    .map_or(Ok(()), Err),
            ),
            ("server", halted.map_or(Ok(()), Err)),
        ];
        let ready = checks.iter().all(|(_, r)| r.is_ok());
        let mut body = String::from(if ready { "ready\n" } else { "not ready\n" });
        for (name, r) in &checks {
            let _ = match r {
                Ok(()) => writeln!(body, "{name}: ok"),
                Err(e) => writeln!(body, "{name}: {e}"),
            };
        }
        (ready, body)
    }
}

/// A shared [`Readiness`], as the admin listener takes it.
#[derive(Debug, Clone)]
pub struct SharedReadiness(pub Arc<Readiness>);

impl HealthCheck for SharedReadiness {
    fn check(&self) -> (bool, String) {
        self.0.check()
    }
}

/// Clears a readiness flag when dropped: held by a task's future, it goes when the task
/// returns, fails, panics or is cancelled.
pub struct TaskGuard {
    readiness: Arc<Readiness>,
    check: Check,
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        let flag = match self.check {
            Check::Listeners => &self.readiness.listeners,
            Check::Distribution => &self.readiness.distribution,
        };
        flag.store(false, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_only_when_every_check_holds_and_the_body_names_the_failing_one() {
        let r = Arc::new(Readiness::default());
        r.set_key_source(KeySourceProbe::Local);
        assert!(!r.is_ready(), "not ready before the start completed");
        r.set_started();
        assert!(r.check().0);
        let g = r.guard(Check::Distribution);
        drop(g);
        let (ready, body) = r.check();
        assert!(!ready);
        assert!(body.contains("distribution: not running"), "{body}");
        assert!(body.contains("store: ok"), "{body}");
    }

    #[test]
    fn a_halt_keeps_the_first_reason() {
        let r = Readiness::default();
        r.set_started();
        r.halt("key distribution ended");
        r.halt("shutting down");
        let (ready, body) = r.check();
        assert!(!ready);
        assert!(body.contains("server: key distribution ended"), "{body}");
    }

    #[test]
    fn a_failed_store_access_makes_it_not_ready() {
        let r = Readiness::default();
        r.set_started();
        r.set_store(false);
        assert!(!r.is_ready());
        r.set_store(true);
        assert!(r.is_ready());
    }
}

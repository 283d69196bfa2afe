//! The signals of `bmsc serve` (SIGTERM and Ctrl-C stop, SIGHUP reloads) and the fault
//! injection of its process tests.

use super::server::Bmsc;

/// Fault injection for the process tests (feature `fuzzing`, which only the test builds
/// enable): `MBMS_FAULT_ABORT_TASK=<task name>` cancels that task once started.
#[cfg(feature = "fuzzing")]
pub(super) fn inject_fault(bmsc: &Bmsc) {
    if let Ok(name) = std::env::var("MBMS_FAULT_ABORT_TASK") {
        tracing::warn!(task = %name, "fault injection: cancelling a task");
        bmsc.abort_task(&name);
    }
}

#[cfg(not(feature = "fuzzing"))]
pub(super) fn inject_fault(_: &Bmsc) {}

pub(super) enum Signal {
    Stop,
    Reload,
}

/// SIGTERM and Ctrl-C stop, SIGHUP reloads.
pub(super) struct OsSignals {
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    hup: Option<tokio::signal::unix::Signal>,
}

impl OsSignals {
    pub(super) fn new() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Self {
                term: signal(SignalKind::terminate()).ok(),
                hup: signal(SignalKind::hangup()).ok(),
            }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    pub(super) async fn next(&mut self) -> Signal {
        #[cfg(unix)]
        {
            let term = async {
                match &mut self.term {
                    Some(t) => {
                        t.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            let hup = async {
                match &mut self.hup {
                    Some(h) => {
                        h.recv().await;
                    }
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                () = term => Signal::Stop,
                _ = tokio::signal::ctrl_c() => Signal::Stop,
                () = hup => Signal::Reload,
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
            Signal::Stop
        }
    }
}

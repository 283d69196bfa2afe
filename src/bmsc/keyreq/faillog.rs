//! The failure lines of the Key Request function, throttled per kind
//! ([`LogThrottle`](crate::bmsc::logthrottle)): a flood of forged requests gives a few lines
//! with counts, not one line per request. The metrics count every failure.

use std::time::SystemTime;

use tracing::{info, warn};

use crate::bmsc::logthrottle::{LOG_INTERVAL, LogThrottle, Summary};

/// One throttle per kind of line.
#[derive(Debug)]
pub(super) struct FailureLogs {
    digest: LogThrottle,
    bsf_refused: LogThrottle,
    unavailable: LogThrottle,
    registration_forbidden: LogThrottle,
    request_late: LogThrottle,
    request_unanswered: LogThrottle,
}

impl Default for FailureLogs {
    fn default() -> Self {
        Self {
            digest: LogThrottle::new(LOG_INTERVAL),
            bsf_refused: LogThrottle::new(LOG_INTERVAL),
            unavailable: LogThrottle::new(LOG_INTERVAL),
            registration_forbidden: LogThrottle::new(LOG_INTERVAL),
            request_late: LogThrottle::new(LOG_INTERVAL),
            request_unanswered: LogThrottle::new(LOG_INTERVAL),
        }
    }
}

fn digest_line(s: &Summary) {
    info!(count = s.count, total = s.total, reasons = %s.reasons, btids = %s.samples,
        "Digest authentication refused");
}

fn bsf_line(s: &Summary) {
    info!(count = s.count, total = s.total, btids = %s.samples,
        "BSF does not authorize this NAF for the B-TID");
}

fn unavailable_line(s: &Summary) {
    warn!(count = s.count, total = s.total, reasons = %s.reasons, btids = %s.samples,
        "key source unavailable");
}

fn forbidden_line(s: &Summary) {
    info!(count = s.count, total = s.total, services = %s.reasons, btids = %s.samples,
        "registration not authorized");
}

fn late_line(s: &Summary) {
    info!(count = s.count, total = s.total, peers = %s.samples,
        "request not completed in time: closing the connection");
}

fn unanswered_line(s: &Summary) {
    warn!(count = s.count, total = s.total, peers = %s.samples,
        "request not answered within request_timeout");
}

impl FailureLogs {
    /// A Digest refusal of `btid` (when the header named one) for `reason`.
    pub(super) fn digest(&self, now: SystemTime, btid: Option<&str>, reason: &str) {
        if let Some(s) = self.digest.record(now, btid, reason) {
            digest_line(&s);
        }
    }

    /// The BSF's refusal (Zn 5402) for `btid`.
    pub(super) fn bsf_refused(&self, now: SystemTime, btid: &str) {
        if let Some(s) = self.bsf_refused.record(now, Some(btid), "not authorized") {
            bsf_line(&s);
        }
    }

    /// The key source could not answer for `btid`.
    pub(super) fn unavailable(&self, now: SystemTime, btid: &str, reason: &str) {
        if let Some(s) = self.unavailable.record(now, Some(btid), reason) {
            unavailable_line(&s);
        }
    }

    /// A registration of `btid` to `service` its IMPI may not use.
    pub(super) fn registration_forbidden(&self, now: SystemTime, btid: &str, service: &str) {
        if let Some(s) = self.registration_forbidden.record(now, Some(btid), service) {
            forbidden_line(&s);
        }
    }

    /// A request from `peer` not completed in time (a slowloris flood gives counts).
    pub(super) fn request_late(&self, now: SystemTime, peer: &str) {
        if let Some(s) = self
            .request_late
            .record(now, Some(peer), "request not completed in time")
        {
            late_line(&s);
        }
    }

    /// A request from `peer` not answered within `request_timeout`.
    pub(super) fn request_unanswered(&self, now: SystemTime, peer: &str) {
        let reason = "request not answered in time";
        if let Some(s) = self.request_unanswered.record(now, Some(peer), reason) {
            unanswered_line(&s);
        }
    }

    /// Logs what is pending of each kind whose interval is over (`all`: interval or not).
    pub(super) fn flush(&self, now: SystemTime, all: bool) {
        let pick = |t: &LogThrottle| if all { t.flush_all(now) } else { t.flush(now) };
        if let Some(s) = pick(&self.digest) {
            digest_line(&s);
        }
        if let Some(s) = pick(&self.bsf_refused) {
            bsf_line(&s);
        }
        if let Some(s) = pick(&self.unavailable) {
            unavailable_line(&s);
        }
        if let Some(s) = pick(&self.registration_forbidden) {
            forbidden_line(&s);
        }
        if let Some(s) = pick(&self.request_late) {
            late_line(&s);
        }
        if let Some(s) = pick(&self.request_unanswered) {
            unanswered_line(&s);
        }
    }
}

impl Drop for FailureLogs {
    /// Nothing counted goes unlogged: the rest at shutdown.
    fn drop(&mut self) {
        self.flush(SystemTime::now(), true);
    }
}

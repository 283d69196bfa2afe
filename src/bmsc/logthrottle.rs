//! Log lines an attacker cannot flood: per kind of failure (a forged Digest header, a request
//! not completed in time, …) at most one line per interval, carrying the count since the last
//! line, the total, the distinct reasons with their counts and a few sample subjects (B-TIDs,
//! peers). The first failure after a quiet interval is logged at once. Counting in the metrics
//! stays exact: this throttles only the lines.
//!
//! Everything a client controls (B-TID, reasons quoting its input) goes through [`escape`]
//! before it reaches a line.
//!
//! Sans-IO like the handler: the caller passes `now`, so the interval runs in virtual time in
//! tests.

use std::fmt::Write as _;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// \[CHOICE\] docs/profile.md §6 "failure log lines": at most one failure line per kind per
/// interval; client strings escaped and cut by [`escape`].
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Longest client-controlled string in a line, in characters; longer ones are cut and end
/// with `...`.
pub const MAX_LOGGED_CHARS: usize = 64;
/// Distinct reasons counted per line; further ones count under `other`.
const MAX_REASONS: usize = 8;
/// Distinct sample subjects per line.
const MAX_SAMPLES: usize = 3;

/// `s` safe for a log line: printable ASCII but `"` and `\` as is; `"` and `\` as `\"` and
/// `\\`; other ASCII (control characters, DEL) as `\xNN`; anything else as `\u{..}`. At most
/// [`MAX_LOGGED_CHARS`] characters of `s` are kept; a longer `s` ends with `...`.
#[must_use]
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len().min(MAX_LOGGED_CHARS * 2));
    for (i, c) in s.chars().enumerate() {
        if i == MAX_LOGGED_CHARS {
            out.push_str("...");
            break;
        }
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' => out.push(c),
            c if c.is_ascii() => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
        }
    }
    out
}

/// One line to log: what happened since the previous line of its kind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// Failures since the previous line (this one included).
    pub count: u64,
    /// Failures of this kind since the start.
    pub total: u64,
    /// The reasons with their counts, most frequent first, escaped:
    /// `{"unknown nonce": 9, "other": 2}`.
    pub reasons: String,
    /// Up to three distinct subjects (B-TIDs, peers), escaped: `["a", "b"]`.
    pub samples: String,
}

#[derive(Debug, Default)]
struct Window {
    last_line: Option<SystemTime>,
    pending: u64,
    total: u64,
    reasons: Vec<(String, u64)>,
    other_reasons: u64,
    samples: Vec<String>,
}

impl Window {
    fn note(&mut self, subject: Option<&str>, reason: &str) {
        self.pending += 1;
        self.total += 1;
        let reason = escape(reason);
        if let Some(r) = self.reasons.iter_mut().find(|(r, _)| *r == reason) {
            r.1 += 1;
        } else if self.reasons.len() < MAX_REASONS {
            self.reasons.push((reason, 1));
        } else {
            self.other_reasons += 1;
        }
        if let Some(s) = subject.map(escape)
            && self.samples.len() < MAX_SAMPLES
            && !self.samples.contains(&s)
        {
            self.samples.push(s);
        }
    }

    fn due(&self, now: SystemTime, interval: Duration) -> bool {
        self.last_line.is_none_or(|last| {
            // A clock that went back counts as due: better one line too many than none.
            now.duration_since(last).map_or(true, |d| d >= interval)
        })
    }

    fn take(&mut self, now: SystemTime) -> Summary {
        let mut reasons = std::mem::take(&mut self.reasons);
        reasons.sort_by_key(|r| std::cmp::Reverse(r.1));
        let mut items: Vec<String> = reasons
            .iter()
            .map(|(r, n)| format!("\"{r}\": {n}"))
            .collect();
        if self.other_reasons > 0 {
            items.push(format!("\"other\": {}", self.other_reasons));
        }
        let samples: Vec<String> = std::mem::take(&mut self.samples)
            .iter()
            .map(|s| format!("\"{s}\""))
            .collect();
        let summary = Summary {
            count: self.pending,
            total: self.total,
            reasons: format!("{{{}}}", items.join(", ")),
            samples: format!("[{}]", samples.join(", ")),
        };
        self.pending = 0;
        self.other_reasons = 0;
        self.last_line = Some(now);
        summary
    }
}

/// The throttle of one kind of failure line. `Sync`: one instance serves every connection.
#[derive(Debug)]
pub struct LogThrottle {
    interval: Duration,
    window: Mutex<Window>,
}

impl LogThrottle {
    /// A throttle allowing one line per `interval`.
    #[must_use]
    pub const fn new(interval: Duration) -> Self {
        Self {
            interval,
            window: Mutex::new(Window {
                last_line: None,
                pending: 0,
                total: 0,
                reasons: Vec::new(),
                other_reasons: 0,
                samples: Vec::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Window> {
        // Counts only: a panic elsewhere leaves them usable.
        self.window.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Counts one failure of `subject` (B-TID, peer; unescaped) for `reason` (unescaped) at
    /// `now`: the line to log now, if the interval since the last one is over.
    pub fn record(&self, now: SystemTime, subject: Option<&str>, reason: &str) -> Option<Summary> {
        let mut w = self.lock();
        w.note(subject, reason);
        w.due(now, self.interval).then(|| w.take(now))
    }

    /// The line for failures not yet logged, if the interval since the last line is over.
    pub fn flush(&self, now: SystemTime) -> Option<Summary> {
        let mut w = self.lock();
        (w.pending > 0 && w.due(now, self.interval)).then(|| w.take(now))
    }

    /// The line for failures not yet logged, interval or not (at shutdown).
    pub fn flush_all(&self, now: SystemTime) -> Option<Summary> {
        let mut w = self.lock();
        (w.pending > 0).then(|| w.take(now))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000 + secs)
    }

    #[test]
    fn control_characters_quotes_and_non_ascii_are_escaped() {
        assert_eq!(
            escape("a\nb\x1b[31m\"\\é"),
            "a\\x0ab\\x1b[31m\\\"\\\\\\u{e9}"
        );
        assert_eq!(
            escape("plain-B_TID@bsf.example.org"),
            "plain-B_TID@bsf.example.org"
        );
        assert_eq!(escape("\u{7f}\r"), "\\x7f\\x0d");
    }

    #[test]
    fn long_strings_are_cut_at_64_characters() {
        let long = "x".repeat(100);
        let e = escape(&long);
        assert_eq!(e, format!("{}...", "x".repeat(64)));
        assert_eq!(escape(&"x".repeat(64)), "x".repeat(64));
    }

    #[test]
    fn the_first_failure_of_a_quiet_period_is_logged_at_once_then_one_line_per_interval() {
        let t = LogThrottle::new(Duration::from_secs(10));
        let first = t
            .record(at(0), Some("b1"), "unknown nonce")
            .expect("first at once");
        assert_eq!((first.count, first.total), (1, 1));
        for i in 1..10 {
            assert_eq!(t.record(at(i), Some("b2"), "unknown nonce"), None, "{i}");
        }
        let second = t
            .record(at(10), Some("b3"), "bad response")
            .expect("interval over");
        assert_eq!((second.count, second.total), (10, 11));
        assert_eq!(second.reasons, r#"{"unknown nonce": 9, "bad response": 1}"#);
        assert_eq!(second.samples, r#"["b2", "b3"]"#);
        assert_eq!(t.flush(at(11)), None, "nothing pending");
        assert_eq!(t.record(at(12), None, "x"), None);
        assert_eq!(t.flush(at(15)), None, "interval not over");
        let third = t.flush(at(20)).expect("pending and due");
        assert_eq!(
            (third.count, third.total, third.samples.as_str()),
            (1, 12, "[]")
        );
        assert_eq!(t.record(at(100), None, "y").map(|s| s.count), Some(1));
    }

    #[test]
    fn reasons_and_samples_are_bounded() {
        let t = LogThrottle::new(Duration::from_secs(10));
        t.record(at(0), None, "start");
        for i in 0..50 {
            let s = format!("{i}");
            assert_eq!(t.record(at(1), Some(&s), &s), None);
        }
        let s = t.flush_all(at(2)).expect("pending");
        assert_eq!(s.count, 50);
        assert_eq!(s.reasons.split(", ").count(), MAX_REASONS + 1);
        assert!(s.reasons.ends_with(r#", "other": 42}"#), "{}", s.reasons);
        assert_eq!(s.samples, r#"["0", "1", "2"]"#);
    }
}

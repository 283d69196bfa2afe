//! The two clocks of the distribution: monotonic time for every schedule, wall time where the
//! protocol needs it (docs/profile.md §5 \[CHOICE\] clocks).
//!
//! Timers (MTK announce, switch and repetition, MSK creation and switch-over, retransmissions,
//! fan-out steps, sweeps) run on [`Now::mono`], so a step of the wall clock (an NTP
//! correction, an operator's `date`) neither stalls delivery nor fires everything at once.
//! Wall time ([`Now::wall`]) is used only for what outlives the process or leaves it: the
//! RFC 3339 times of the store (MSK creation, activation, expiry; registrations), GBA key
//! lifetimes, the `valid_from` of exported MTKs, and the counter floor
//! ([`super::counter::counter_floor`]). An MSK's expiry is read as wall time only when a start
//! loads it from the store; from then on its schedule is monotonic.

use std::time::{Duration, Instant, SystemTime};

/// The current time on both clocks, as the driver read them (the distributor never reads a
/// clock: docs/architecture.md principle 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Now {
    /// Monotonic time: every deadline of the distributor is an instant on this clock.
    pub mono: Instant,
    /// Wall-clock time: protocol and store times.
    pub wall: SystemTime,
}

impl Now {
    /// Both clocks at one moment.
    #[must_use]
    pub fn new(mono: Instant, wall: SystemTime) -> Self {
        Self { mono, wall }
    }

    /// The monotonic instant at which the wall clock, running on as it reads now, shows
    /// `wall`. A time too far in the past for the monotonic clock is taken as now (it is due);
    /// one too far ahead for it, as a century from now.
    #[must_use]
    pub fn mono_at(self, wall: SystemTime) -> Instant {
        const CENTURY: Duration = Duration::from_secs(100 * 365 * 86_400);
        match wall.duration_since(self.wall) {
            Ok(ahead) => self
                .mono
                .checked_add(ahead)
                .unwrap_or_else(|| self.mono + CENTURY),
            Err(e) => self.mono.checked_sub(e.duration()).unwrap_or(self.mono),
        }
    }

    /// The wall time the monotonic instant `at` corresponds to, as the wall clock reads now.
    #[must_use]
    pub fn wall_at(self, at: Instant) -> SystemTime {
        if at >= self.mono {
            self.wall + (at - self.mono)
        } else {
            self.wall
                .checked_sub(self.mono - at)
                .unwrap_or(SystemTime::UNIX_EPOCH)
        }
    }

    /// Both clocks `d` later.
    #[must_use]
    pub fn plus(self, d: Duration) -> Self {
        Self {
            mono: self.mono + d,
            wall: self.wall + d,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversions_follow_the_wall_clock_as_it_reads_now() {
        let now = Now::new(
            Instant::now(),
            SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000),
        );
        let s = Duration::from_secs;
        assert_eq!(now.mono_at(now.wall + s(90)), now.mono + s(90));
        assert_eq!(now.wall_at(now.mono + s(90)), now.wall + s(90));
        assert_eq!(now.wall_at(now.mono), now.wall);
        assert_eq!(now.mono_at(now.wall - s(30)), now.mono - s(30));
        // A time in the past is never a deadline in the future.
        assert!(now.mono_at(SystemTime::UNIX_EPOCH) <= now.mono);
        assert_eq!(now.plus(s(5)).mono, now.mono + s(5));
    }
}

//! The receiver's two small time-keyed sets: MSK requests waiting out the
//! solicited-pull back-off (TS 33.246 6.3.2.2.2), and the MSK IDs a missed-key
//! request was made for recently (TS 33.246 6.3.2.2.3). Both are bounded, so a
//! flood of datagrams cannot grow them.

use std::time::{Duration, Instant};

use crate::mbms::{KeyDomainId, MskId};

/// Bound on each set; when full, the oldest entry makes room.
pub const MAX_PENDING: usize = 64;

/// A delay drawn uniformly from `[min, max]` with one `u64` of randomness
/// (Lemire's multiply-shift: no modulo bias, no loop). A reversed window is
/// read as `[max, min]`; spans beyond 2^64 ns (584 years) are capped.
pub fn draw_delay((a, b): (Duration, Duration), random: u64) -> Duration {
    let (min, max) = if a <= b { (a, b) } else { (b, a) };
    let span = u64::try_from((max - min).as_nanos()).unwrap_or(u64::MAX);
    let offset = (u128::from(random) * (u128::from(span) + 1)) >> 64;
    // offset <= span <= u64::MAX, so the conversion cannot fail.
    min.saturating_add(Duration::from_nanos(u64::try_from(offset).unwrap_or(span)))
}

/// MSK requests due at a deadline.
#[derive(Default)]
pub struct Pending {
    entries: Vec<(Instant, KeyDomainId, MskId)>,
}

impl Pending {
    /// Schedules a request; one already pending for the same MSK ID keeps its
    /// (earlier) deadline.
    pub fn schedule(&mut self, at: Instant, kd: KeyDomainId, msk_id: MskId) {
        if self
            .entries
            .iter()
            .any(|(_, d, m)| *d == kd && *m == msk_id)
        {
            return;
        }
        if self.entries.len() >= MAX_PENDING {
            self.entries.remove(0);
        }
        self.entries.push((at, kd, msk_id));
    }

    pub fn earliest(&self) -> Option<Instant> {
        self.entries.iter().map(|(at, _, _)| *at).min()
    }

    /// Removes and returns the requests due at `now`, earliest first.
    pub fn take_due(&mut self, now: Instant) -> Vec<(KeyDomainId, MskId)> {
        let mut due: Vec<_> = self
            .entries
            .iter()
            .filter(|(at, _, _)| *at <= now)
            .copied()
            .collect();
        self.entries.retain(|(at, _, _)| *at > now);
        due.sort_by_key(|(at, _, _)| *at);
        due.into_iter().map(|(_, kd, id)| (kd, id)).collect()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

/// MSK IDs a missed-key request was made for, each until its hold-off ends.
#[derive(Default)]
pub struct Holdoff {
    entries: Vec<(Instant, KeyDomainId, MskId)>,
}

impl Holdoff {
    /// Whether a request for this MSK ID was made within its hold-off.
    pub fn holds(&mut self, now: Instant, kd: KeyDomainId, msk_id: MskId) -> bool {
        self.entries.retain(|(until, _, _)| *until > now);
        self.entries
            .iter()
            .any(|(_, d, m)| *d == kd && *m == msk_id)
    }

    /// A request for this MSK ID was made at `now`: held off until `now + holdoff`.
    pub fn hold(&mut self, now: Instant, holdoff: Duration, kd: KeyDomainId, msk_id: MskId) {
        self.entries.retain(|(_, d, m)| !(*d == kd && *m == msk_id));
        if self.entries.len() >= MAX_PENDING {
            self.entries.remove(0);
        }
        let until = now.checked_add(holdoff).unwrap_or(now);
        self.entries.push((until, kd, msk_id));
    }

    /// The MSK arrived: a later miss of it may be requested at once.
    pub fn forget(&mut self, kd: KeyDomainId, msk_id: MskId) {
        self.entries.retain(|(_, d, m)| !(*d == kd && *m == msk_id));
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn delay_covers_the_window_ends() {
        let w = (S, 3 * S);
        assert_eq!(draw_delay(w, 0), S);
        assert_eq!(draw_delay(w, u64::MAX), 3 * S);
        assert_eq!(draw_delay(w, 1 << 63), 2 * S);
        assert_eq!(draw_delay((3 * S, S), 0), S);
        assert_eq!(draw_delay((S, S), 12345), S);
        assert!(draw_delay((Duration::ZERO, Duration::MAX), u64::MAX) <= Duration::MAX);
    }

    #[test]
    fn sets_stay_bounded() {
        let now = Instant::now();
        let mut p = Pending::default();
        let mut h = Holdoff::default();
        let kd = KeyDomainId([0; 3]);
        for i in 0..1000u32 {
            let id = MskId::from_u32(i);
            p.schedule(now, kd, id);
            assert!(!h.holds(now, kd, id));
            h.hold(now, S, kd, id);
        }
        assert_eq!((p.len(), h.len()), (MAX_PENDING, MAX_PENDING));
        assert!(h.holds(now, kd, MskId::from_u32(999)));
        assert!(!h.holds(now, kd, MskId::from_u32(0)), "evicted");
        assert!(!h.holds(now + S, kd, MskId::from_u32(999)));
    }
}

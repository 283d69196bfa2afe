//! Which MSK requests an MTK message under an unknown MSK may cause (docs/profile.md §3, MSK
//! requests): only for a Key Group the UE was given, within a global and a per-group rate, once
//! per hold-off per MSK ID, and never again for an MSK ID the BM-SC refused until something
//! changes. An MTK message cannot be verified before its MSK is held, so these rules are all
//! that stands between a forged datagram and an authenticated HTTP request.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use crate::mbms::{KeyDomainId, MskId};

use super::timers::{Holdoff, MAX_PENDING};

/// Key Groups learned from verified MSK messages, at most (configured ones do not count).
pub const MAX_LEARNED_GROUPS: usize = 256;

/// A rate: `burst` requests at once, then one per `interval`. A zero `interval` is no limit; a
/// zero `burst` allows nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestRate {
    /// Time per request once the burst is spent.
    pub interval: Duration,
    /// Requests allowed at once.
    pub burst: u32,
}

impl RequestRate {
    /// No limit.
    pub const UNLIMITED: Self = Self {
        interval: Duration::ZERO,
        burst: u32::MAX,
    };
}

/// The rate limits of the MSK requests the receiver asks for on its own (missed keys).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestLimits {
    /// Over all Key Groups.
    pub global: RequestRate,
    /// For each (Key Domain ID, Key Group).
    pub per_group: RequestRate,
}

impl RequestLimits {
    /// docs/profile.md §3 \[CHOICE\]: 1 per second with a burst of 4 over all Key Groups, and 1 per
    /// 10 s for each Key Group.
    pub const DEFAULT: Self = Self {
        global: RequestRate {
            interval: Duration::from_secs(1),
            burst: 4,
        },
        per_group: RequestRate {
            interval: Duration::from_secs(10),
            burst: 1,
        },
    };

    /// No rate limit (the hold-off per MSK ID and the other rules still hold).
    pub const UNLIMITED: Self = Self {
        global: RequestRate::UNLIMITED,
        per_group: RequestRate::UNLIMITED,
    };
}

impl Default for RequestLimits {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// A token bucket kept as its theoretical arrival time (GCRA): a request is allowed while the
/// time is no more than `burst - 1` intervals ahead of now.
fn permits(tat: Option<Instant>, now: Instant, rate: RequestRate) -> bool {
    if rate.burst == 0 {
        return false;
    }
    if rate.interval.is_zero() {
        return true;
    }
    let Some(tat) = tat else {
        return true;
    };
    let ahead = tat.saturating_duration_since(now);
    ahead <= rate.interval.saturating_mul(rate.burst.saturating_sub(1))
}

fn take(tat: Option<Instant>, now: Instant, rate: RequestRate) -> Option<Instant> {
    if rate.interval.is_zero() {
        return None;
    }
    let base = tat.map_or(now, |t| t.max(now));
    Some(base.checked_add(rate.interval).unwrap_or(base))
}

/// Why no request was made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The BM-SC refused this MSK ID; nothing has changed since.
    Refused,
    /// Requested within the hold-off.
    HeldOff,
    /// Over the per-group or the global rate.
    Limited,
}

/// The request state: learned Key Groups, hold-offs, rate buckets, refused MSK IDs.
#[derive(Default)]
pub struct Gate {
    learned: BTreeSet<(KeyDomainId, u16)>,
    holdoff: Holdoff,
    global: Option<Instant>,
    groups: BTreeMap<(KeyDomainId, u16), Instant>,
    refused: Vec<(KeyDomainId, MskId)>,
}

impl Gate {
    /// A verified MSK message of this Key Group: the group is one of the UE's, and what the BM-SC
    /// refused for it may be asked again.
    pub fn learn(&mut self, kd: KeyDomainId, key_group: u16) {
        if self.learned.len() < MAX_LEARNED_GROUPS {
            self.learned.insert((kd, key_group));
        }
        self.refused
            .retain(|(d, id)| !(*d == kd && id.key_group == key_group));
    }

    pub fn learned(&self, kd: KeyDomainId, key_group: u16) -> bool {
        self.learned.contains(&(kd, key_group))
    }

    /// A missed-key request for `msk_id` at `now`, if every rule allows it; it then counts
    /// against the hold-off and both rates.
    pub fn try_request(
        &mut self,
        now: Instant,
        holdoff: Duration,
        limits: &RequestLimits,
        kd: KeyDomainId,
        msk_id: MskId,
    ) -> Result<(), Refusal> {
        if self.refused.contains(&(kd, msk_id)) {
            return Err(Refusal::Refused);
        }
        if self.holdoff.holds(now, kd, msk_id) {
            return Err(Refusal::HeldOff);
        }
        let group = (kd, msk_id.key_group);
        // A bucket back to full is the same as none: forget it, so the map stays small.
        self.groups.retain(|_, tat| *tat > now);
        let group_tat = self.groups.get(&group).copied();
        if !permits(group_tat, now, limits.per_group) || !permits(self.global, now, limits.global) {
            return Err(Refusal::Limited);
        }
        self.holdoff.hold(now, holdoff, kd, msk_id);
        if let Some(tat) = take(group_tat, now, limits.per_group) {
            self.groups.insert(group, tat);
        }
        self.global = take(self.global, now, limits.global);
        Ok(())
    }

    /// The BM-SC refused `msk_id`: not requested again until [`Self::learn`] for its group.
    pub fn refuse(&mut self, kd: KeyDomainId, msk_id: MskId) {
        if self.refused.contains(&(kd, msk_id)) {
            return;
        }
        if self.refused.len() >= MAX_PENDING {
            self.refused.remove(0);
        }
        self.refused.push((kd, msk_id));
    }

    /// The MSK arrived: a later miss of it may be requested at once.
    pub fn forget(&mut self, kd: KeyDomainId, msk_id: MskId) {
        self.holdoff.forget(kd, msk_id);
    }

    /// Entries held, for `Debug`.
    pub fn len(&self) -> usize {
        self.learned.len() + self.holdoff.len() + self.groups.len() + self.refused.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_bucket_allows_its_burst_then_one_per_interval() {
        let t0 = Instant::now();
        let rate = RequestRate {
            interval: S,
            burst: 4,
        };
        let mut tat = None;
        for _ in 0..4 {
            assert!(permits(tat, t0, rate));
            tat = take(tat, t0, rate);
        }
        assert!(!permits(tat, t0, rate));
        assert!(!permits(tat, t0 + S / 2, rate));
        assert!(permits(tat, t0 + S, rate));
        let none = RequestRate {
            interval: S,
            burst: 0,
        };
        assert!(!permits(None, t0, none));
        assert!(permits(Some(t0 + 1000 * S), t0, RequestRate::UNLIMITED));
    }
}

//! The MSK life cycle of one (Key Domain ID, Key Group) (TS 33.246 6.3.2.1, 6.3.3).
//!
//! An MSK is created with the interval [SEQl, SEQu] = [0, SEQu]: the UE starts with SEQs = SEQl
//! and accepts MTK IDs SEQl + 1 ..= SEQu (docs/profile.md §3), so MTK IDs run from 1 upwards.
//! SEQu covers the MTKs of `msk_lifetime / mtk_interval` with an eighth plus two as margin
//! (a restart starts a fresh MTK at once, using an ID early), capped at [`Tuning::max_sequ`].
//! The MSK is rotated at the first MTK switch at or after its expiry (`msk_lifetime` after it
//! became current), or earlier when its MTK IDs run out.
//!
//! Lead time: the next MSK is created, persisted and pushed to every registered UE
//! `min(msk_lifetime / 4, 60 s)` before the switch-over (at least the MTK announce time, at
//! most `msk_lifetime`): long enough for the push retransmissions of `[push]` defaults
//! (1 + 2 + 4 + 8 s) to complete, short enough that a UE holds just the current and the next MSK
//! (the UE keeps two per Key Group and deletes the older when a third arrives, docs/profile.md §3).
//! A switch never comes sooner than the lead time after the next MSK was pushed: when the next
//! MSK is late (a restart after a long stop), the current MSK carries on, with new MTKs while
//! it has MTK IDs left, else with its current MTK, until the lead time has passed.
//!
//! At the switch: Next → Current, the old Current → Retired, both persisted; a retired MSK is
//! deleted from the store after [`Tuning::retired_grace`]. Key Numbers increase by one at each
//! rotation, skip 0 (it means "the current MSK", docs/profile.md §1) and wrap from `ffff` to 1.
//!
//! Every deadline here is monotonic ([`super::clock`]): the MSK record's wall times are what
//! the store keeps (and what a restart reads back), while the running schedule holds their
//! monotonic counterparts in [`MskSlot`]. A step of the wall clock changes no rotation; the
//! records written after it carry wall times read after it.
//!
//! [`Tuning::max_sequ`]: super::Tuning::max_sequ
//! [`Tuning::retired_grace`]: super::Tuning::retired_grace

use std::time::{Duration, Instant, SystemTime};

use crate::bmsc::config::ServiceConfig;
use crate::bmsc::store::{MskRecord, MskState};
use crate::crypto::{Msk, Mtk, Salt};
use crate::mbms::MtkKeys;
use crate::mbms::profile::csb_id_for;
use crate::mikey::{KeyDomainId, MskId, MtkId};

use super::{DistributionError, Distributor, Now};

/// docs/profile.md §3: SEQl of every MSK; the first MTK ID is SEQl + 1.
pub(super) const SEQL: u16 = 0;

/// SEQu for MSKs living `lifetime` with an MTK every `interval`: the MTKs needed plus an eighth
/// and two as margin, at most `cap` (at least 1).
pub(crate) fn sequ_for(lifetime: Duration, interval: Duration, cap: u16) -> u16 {
    let needed = lifetime.as_nanos().div_ceil(interval.as_nanos().max(1));
    let with_margin = needed + needed / 8 + 2;
    u16::try_from(with_margin)
        .unwrap_or(u16::MAX)
        .min(cap)
        .max(1)
}

/// The lead time (module documentation).
pub(crate) fn lead_for(lifetime: Duration, announce: Duration, max_lead: Duration) -> Duration {
    (lifetime / 4).min(max_lead).max(announce).min(lifetime)
}

/// The Key Number after `n`: never 0, `ffff` wraps to 1.
pub(crate) fn next_key_number(n: u16) -> u16 {
    match n.wrapping_add(1) {
        0 => 1,
        k => k,
    }
}

/// MTK IDs left in an MSK's interval (`mtk_next_id` is 0 once `ffff` was used).
pub(super) fn ids_left(r: &MskRecord) -> u32 {
    if r.mtk_next_id > r.seql && r.mtk_next_id <= r.sequ {
        u32::from(r.sequ - r.mtk_next_id) + 1
    } else {
        0
    }
}

/// An MSK in memory with the keys of its MTK messages (derived once), and its creation and
/// expiry on the monotonic clock.
pub(super) struct MskSlot {
    pub(super) record: MskRecord,
    pub(super) keys: MtkKeys,
    /// `record.created_at` on the monotonic clock.
    pub(super) created: Instant,
    /// `record.expires_at` on the monotonic clock.
    pub(super) expires: Instant,
}

impl MskSlot {
    /// A slot for `record`, its wall times read on the monotonic clock as of `now`.
    pub(super) fn new(record: MskRecord, now: Now) -> Self {
        let keys = MtkKeys::new(&record.msk, csb_id_for(record.msk_id));
        Self {
            created: now.mono_at(record.created_at),
            expires: now.mono_at(record.expires_at),
            record,
            keys,
        }
    }

    pub(super) fn msk_id(&self) -> MskId {
        self.record.msk_id
    }
}

/// The schedule of a group, from the configuration of its services.
pub(super) struct GroupParams {
    pub(super) lifetime: Duration,
    pub(super) interval: Duration,
    pub(super) announce: Duration,
    pub(super) lead: Duration,
    pub(super) sequ: u16,
    pub(super) salted: bool,
}

/// An MTK of the group.
#[derive(Clone)]
pub(super) struct LiveMtk {
    pub(super) msk_id: MskId,
    pub(super) mtk_id: MtkId,
    pub(super) mtk: Mtk,
    pub(super) salt: Option<Salt>,
}

/// One (Key Domain ID, Key Group): its MSKs and MTK schedule, shared by its services.
pub(super) struct Group {
    /// Whether this node rotates its MSKs and makes its MTKs (always, but in a cluster, where
    /// one node at a time does, docs/cluster.md); a group not owned follows the store.
    pub(super) owned: bool,
    pub(super) key_domain: KeyDomainId,
    pub(super) key_group: u16,
    /// Indexes into `Distributor::services`.
    pub(super) services: Vec<usize>,
    pub(super) lifetime: Duration,
    /// The MTK changes every this long: the shortest `mtk_interval` of the group's services.
    pub(super) interval: Duration,
    /// Each MTK is first sent this long before it becomes current: the shortest `mtk_resend`.
    pub(super) announce: Duration,
    pub(super) lead: Duration,
    pub(super) sequ: u16,
    /// Whether MTKs carry an SRTP master salt (a streaming service uses the group).
    pub(super) salted: bool,
    pub(super) current: MskSlot,
    pub(super) next: Option<MskSlot>,
    pub(super) retired: Vec<MskSlot>,
    /// The MTK current now (what [`Distributor::current_mtk`] returns).
    pub(super) live: Option<LiveMtk>,
    /// The MTK announced for `switch_at`, once generated.
    pub(super) upcoming: Option<LiveMtk>,
    /// The next MTK switch.
    pub(super) switch_at: Instant,
    /// When the next MSK is to be created (meaningful while `next` is `None`).
    pub(super) next_msk_at: Instant,
    /// How long a retired MSK is kept.
    pub(super) retired_grace: Duration,
}

impl Group {
    /// Feeds every deadline of the group to `consider`; the next MTK's only when it is not
    /// `waiting` for the fan-out of its MSK (that fan-out's steps are deadlines of their own,
    /// and the MTK follows the last one).
    pub(super) fn deadlines(&self, waiting: bool, consider: &mut impl FnMut(Instant)) {
        if self.next.is_none() {
            consider(self.next_msk_at);
        }
        match self.upcoming {
            _ if waiting => {}
            None => consider(self.announce_at()),
            Some(_) => consider(self.switch_at),
        }
        for r in &self.retired {
            consider(self.delete_at(r));
        }
    }

    pub(super) fn announce_at(&self) -> Instant {
        self.switch_at
            .checked_sub(self.announce)
            .unwrap_or(self.switch_at)
    }

    fn delete_at(&self, r: &MskSlot) -> Instant {
        r.expires + self.retired_grace
    }

    /// Whether the MTK for the next switch goes under the next MSK.
    pub(super) fn rotation_due(&self) -> bool {
        ids_left(&self.current.record) == 0 || self.switch_at >= self.current.expires
    }

    /// When the current MSK will be switched over, from the MTK switches still to come
    /// (module documentation).
    pub(super) fn rotation_estimate(&self) -> Instant {
        let cur = &self.current.record;
        if let Some(up) = &self.upcoming
            && Some(up.msk_id) == self.next.as_ref().map(MskSlot::msk_id)
        {
            return self.switch_at;
        }
        // The first switch whose MTK is not yet generated.
        let base = if self.upcoming.is_some() {
            self.switch_at + self.interval
        } else {
            self.switch_at
        };
        let by_ids = ids_left(cur);
        let by_time = match self.current.expires.checked_duration_since(base) {
            Some(d) => u32::try_from(d.as_nanos().div_ceil(self.interval.as_nanos().max(1)))
                .unwrap_or(u32::MAX),
            None => 0,
        };
        let steps = by_ids.min(by_time);
        base + self.interval.saturating_mul(steps)
    }

    /// The slot holding `msk_id`, whatever its state.
    pub(super) fn slot(&self, msk_id: MskId) -> Option<&MskSlot> {
        std::iter::once(&self.current)
            .chain(self.next.as_ref())
            .chain(self.retired.iter())
            .find(|s| s.msk_id() == msk_id)
    }

    /// Every MSK a UE of this group may hold: retired (still in the grace period), current,
    /// next.
    pub(super) fn held(&self) -> impl Iterator<Item = &MskSlot> {
        self.retired
            .iter()
            .chain(std::iter::once(&self.current))
            .chain(self.next.as_ref())
    }

    fn key_number_in_use(&self, n: u16) -> bool {
        self.held().any(|s| s.msk_id().key_number == n)
    }
}

/// A group's stored MSKs in activation order, split into the others (retired or older),
/// the last current one and the last next one.
fn stored_msks(
    records: &[MskRecord],
    key_domain: KeyDomainId,
    key_group: u16,
) -> (Vec<MskRecord>, Option<MskRecord>, Option<MskRecord>) {
    let mut mine: Vec<MskRecord> = records
        .iter()
        .filter(|r| r.key_domain == key_domain && r.msk_id.key_group == key_group)
        .cloned()
        .collect();
    mine.sort_by_key(|r| (r.activates_at, r.created_at));
    let mut take_last = |state: MskState| {
        let i = mine.iter().rposition(|r| r.state == state)?;
        Some(mine.remove(i))
    };
    let current = take_last(MskState::Current);
    let next = take_last(MskState::Next);
    (mine, current, next)
}

impl Distributor {
    /// Builds a group from the stored MSKs, creating its first MSK when it has none; with the
    /// MSK whose fan-out the stop may have cut short, to be pushed again: the next MSK, or the
    /// one this start made current to finish an interrupted switch-over (a UE holding it takes
    /// the push as a validity update).
    pub(super) fn load_group(
        &mut self,
        (key_domain, key_group): (KeyDomainId, u16),
        services: Vec<usize>,
        specs: &[&ServiceConfig],
        records: &[MskRecord],
        now: Now,
    ) -> Result<(Group, Option<MskId>), DistributionError> {
        let p = self.group_params(specs);
        let (lifetime, interval, announce, lead, sequ, salted) =
            (p.lifetime, p.interval, p.announce, p.lead, p.sequ, p.salted);
        let (mine, mut current, mut next) = stored_msks(records, key_domain, key_group);
        let mut promoted_on_load = None;
        // Older Current/Next rows (an interrupted switch) are retired like the rest.
        let mut retired: Vec<MskRecord> = mine;
        for r in &mut retired {
            if r.state != MskState::Retired {
                r.state = MskState::Retired;
                r.expires_at = r.expires_at.min(now.wall);
                self.store.put_msk(r)?;
            }
        }
        if current.is_none()
            && let Some(mut n) = next.take()
        {
            // A crash between retiring the old current and promoting the next.
            n.state = MskState::Current;
            n.activates_at = now.wall;
            n.expires_at = now.wall + lifetime;
            self.store.put_msk(&n)?;
            promoted_on_load = Some(n.msk_id);
            current = Some(n);
        }
        if current.is_some() && next.as_ref().is_some_and(|n| n.current_mtk.is_some()) {
            // The first MTK under the next MSK was announced before the stop: UEs may use it
            // already, so the switch-over is finished now rather than going back.
            if let (Some(mut old), Some(mut n)) = (current.take(), next.take()) {
                old.state = MskState::Retired;
                old.expires_at = now.wall;
                self.store.put_msk(&old)?;
                n.state = MskState::Current;
                n.activates_at = now.wall;
                n.expires_at = now.wall + lifetime;
                self.store.put_msk(&n)?;
                retired.push(old);
                promoted_on_load = Some(n.msk_id);
                current = Some(n);
                self.metrics.msk_rotations.inc();
            }
        }
        let current = match current {
            Some(c) => c,
            None => {
                let last = retired
                    .iter()
                    .map(|r| r.msk_id.key_number)
                    .max()
                    .unwrap_or(0);
                let msk_id = MskId::new(key_group, next_key_number(last));
                let record = self.new_record(
                    key_domain,
                    msk_id,
                    sequ,
                    MskState::Current,
                    now.wall,
                    now.wall,
                    now.wall + lifetime,
                );
                // Durable before the MSK is used for anything; another node's, when it made
                // one first (a cluster).
                let stored = self.store.create_msk(&record)?;
                if stored.msk == record.msk {
                    tracing::info!(%key_domain, %msk_id, "first MSK created");
                } else {
                    tracing::info!(%key_domain, %msk_id, "first MSK made by another node adopted");
                }
                stored
            }
        };
        let live = current.current_mtk.as_ref().map(|m| LiveMtk {
            msk_id: current.msk_id,
            mtk_id: m.id,
            mtk: m.mtk.clone(),
            salt: m.salt.clone(),
        });
        let mut group = Group {
            owned: true,
            key_domain,
            key_group,
            services,
            lifetime,
            interval,
            announce,
            lead,
            sequ,
            salted,
            current: MskSlot::new(current, now),
            next: next.map(|n| MskSlot::new(n, now)),
            retired: retired.into_iter().map(|r| MskSlot::new(r, now)).collect(),
            live,
            upcoming: None,
            // A (re)start begins a fresh MTK at once: IDs continue from the stored mtk_next_id.
            switch_at: now.mono,
            next_msk_at: now.mono,
            retired_grace: self.tuning.retired_grace,
        };
        group.next_msk_at = group
            .rotation_estimate()
            .checked_sub(group.lead)
            .unwrap_or(now.mono);
        let repush = group
            .next
            .as_ref()
            .map(MskSlot::msk_id)
            .or(promoted_on_load);
        Ok((group, repush))
    }

    /// The schedule of a group of services `specs` (module documentation).
    pub(super) fn group_params(&self, specs: &[&ServiceConfig]) -> GroupParams {
        let lifetime = specs
            .iter()
            .map(|s| s.msk_lifetime)
            .max()
            .unwrap_or_default();
        let interval = specs
            .iter()
            .map(|s| s.mtk_interval)
            .min()
            .unwrap_or(Duration::from_secs(10))
            .max(Duration::from_millis(1));
        let announce = specs
            .iter()
            .map(|s| s.mtk_resend)
            .min()
            .unwrap_or_default()
            .min(interval);
        let lifetime = lifetime.max(interval);
        GroupParams {
            lifetime,
            interval,
            announce,
            lead: lead_for(lifetime, announce, self.tuning.max_lead),
            sequ: sequ_for(lifetime, interval, self.tuning.max_sequ),
            salted: specs.iter().any(|s| {
                matches!(
                    s.transport,
                    crate::bmsc::config::Transport::Streaming { .. }
                )
            }),
        }
    }

    /// A group this node does not own (a cluster, docs/cluster.md), as the store holds it now:
    /// its MSKs and the current MTK the owner made, for the pushes to the UEs that register
    /// with this node. Writes nothing, but the group's first MSK when the store has none yet
    /// (claimed in the store: the owner, if it made one first, has it adopted).
    pub(super) fn follow_group(
        &mut self,
        (key_domain, key_group): (KeyDomainId, u16),
        services: Vec<usize>,
        params: &GroupParams,
        records: &[MskRecord],
        now: Now,
    ) -> Result<Group, DistributionError> {
        let (mine, mut current, mut next) = stored_msks(records, key_domain, key_group);
        if current.is_none() {
            current = next.take();
        }
        let current = match current {
            Some(c) => c,
            None => {
                let last = mine.iter().map(|r| r.msk_id.key_number).max().unwrap_or(0);
                let record = self.new_record(
                    key_domain,
                    MskId::new(key_group, next_key_number(last)),
                    params.sequ,
                    MskState::Current,
                    now.wall,
                    now.wall,
                    now.wall + params.lifetime,
                );
                self.store.create_msk(&record)?
            }
        };
        // The MTK the owner delivers now: the latest announced, under the next MSK once the
        // switch-over to it has begun.
        let live_of = |r: &MskRecord| {
            r.current_mtk.as_ref().map(|m| LiveMtk {
                msk_id: r.msk_id,
                mtk_id: m.id,
                mtk: m.mtk.clone(),
                salt: m.salt.clone(),
            })
        };
        let live = next
            .as_ref()
            .and_then(live_of)
            .or_else(|| live_of(&current));
        Ok(Group {
            owned: false,
            key_domain,
            key_group,
            services,
            lifetime: params.lifetime,
            interval: params.interval,
            announce: params.announce,
            lead: params.lead,
            sequ: params.sequ,
            salted: params.salted,
            current: MskSlot::new(current, now),
            next: next.map(|n| MskSlot::new(n, now)),
            retired: mine.into_iter().map(|r| MskSlot::new(r, now)).collect(),
            live,
            upcoming: None,
            switch_at: now.mono,
            next_msk_at: now.mono,
            retired_grace: self.tuning.retired_grace,
        })
    }

    #[allow(clippy::too_many_arguments)]
    fn new_record(
        &mut self,
        key_domain: KeyDomainId,
        msk_id: MskId,
        sequ: u16,
        state: MskState,
        created_at: SystemTime,
        activates_at: SystemTime,
        expires_at: SystemTime,
    ) -> MskRecord {
        let msk = Msk::from_fn(|b| super::fill(&mut self.rng, b));
        MskRecord {
            key_domain,
            msk_id,
            msk,
            seql: SEQL,
            sequ,
            created_at,
            activates_at,
            expires_at,
            state,
            mtk_next_id: SEQL + 1,
            current_mtk: None,
        }
    }

    /// Creates, persists and queues the push of the next MSK of group `g`.
    pub(super) fn create_next(&mut self, g: usize, now: Now) -> Result<(), DistributionError> {
        let group = &self.groups[g];
        let mut key_number = next_key_number(group.current.msk_id().key_number);
        while group.key_number_in_use(key_number) {
            key_number = next_key_number(key_number);
        }
        let (key_domain, sequ, lifetime) = (group.key_domain, group.sequ, group.lifetime);
        let msk_id = MskId::new(group.key_group, key_number);
        let activates = now.wall_at(group.rotation_estimate().max(now.mono + group.lead));
        let record = self.new_record(
            key_domain,
            msk_id,
            sequ,
            MskState::Next,
            now.wall,
            activates,
            activates + lifetime,
        );
        let stored = self.store.create_msk(&record)?;
        if stored.msk == record.msk {
            tracing::info!(%key_domain, %msk_id, "next MSK created");
        } else {
            // A node that owned the group before made it (a cluster): the same MSK for all.
            tracing::info!(%key_domain, %msk_id, "next MSK made by another node adopted");
        }
        self.groups[g].next = Some(MskSlot::new(stored, now));
        self.queue_fanout(g, msk_id, now.mono);
        Ok(())
    }

    /// Everything of group `g` due at `now`, in order.
    pub(super) fn step_group(&mut self, g: usize, now: Now) -> Result<(), DistributionError> {
        // Bounded: each round makes progress; a restart may find several steps due at once.
        for _ in 0..8 {
            let group = &self.groups[g];
            let waiting = self.mtk_waits_for_fanout(g);
            if group.next.is_none() && now.mono >= group.next_msk_at {
                self.create_next(g, now)?;
            } else if group.upcoming.is_none() && now.mono >= group.announce_at() && !waiting {
                self.announce_mtk(g, now)?;
            } else if group.upcoming.is_some() && now.mono >= group.switch_at && !waiting {
                self.switch_mtk(g, now)?;
            } else {
                break;
            }
        }
        self.delete_retired(g, now.mono)
    }

    /// At the switch to the first MTK under the next MSK (at `at`, a monotonic instant not
    /// after `now`): Next → Current, Current → Retired.
    pub(super) fn rotate(
        &mut self,
        g: usize,
        at: Instant,
        now: Now,
    ) -> Result<(), DistributionError> {
        let group = &mut self.groups[g];
        let Some(mut next) = group.next.take() else {
            return Ok(());
        };
        let at_wall = now.wall_at(at);
        next.record.state = MskState::Current;
        next.record.activates_at = at_wall;
        next.record.expires_at = at_wall + group.lifetime;
        next.expires = at + group.lifetime;
        let mut old = std::mem::replace(&mut group.current, next);
        old.record.state = MskState::Retired;
        old.record.expires_at = at_wall;
        old.expires = at;
        // Old first: a crash in between leaves a Next and no Current, which a restart promotes.
        let persisted = self
            .store
            .put_msk(&old.record)
            .and_then(|()| self.store.put_msk(&group.current.record));
        group.retired.push(old);
        self.metrics.msk_rotations.inc();
        tracing::info!(
            key_domain = %group.key_domain,
            msk_id = %group.current.msk_id(),
            "MSK switch-over"
        );
        persisted.map_err(Into::into)
    }

    /// Deletes the retired MSKs of group `g` whose grace period is over.
    fn delete_retired(&mut self, g: usize, now: Instant) -> Result<(), DistributionError> {
        let group = &self.groups[g];
        let due: Vec<MskId> = group
            .retired
            .iter()
            .filter(|r| group.delete_at(r) <= now)
            .map(MskSlot::msk_id)
            .collect();
        let key_domain = group.key_domain;
        for msk_id in due {
            self.store.delete_msk(key_domain, msk_id)?;
            self.groups[g].retired.retain(|r| r.msk_id() != msk_id);
            tracing::debug!(%key_domain, %msk_id, "retired MSK deleted");
        }
        Ok(())
    }

    pub(super) fn group_of(&self, key_domain: KeyDomainId, key_group: u16) -> Option<usize> {
        self.groups
            .iter()
            .position(|g| g.key_domain == key_domain && g.key_group == key_group)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequ_covers_the_lifetime_with_margin_and_is_capped() {
        let s = Duration::from_secs;
        assert_eq!(sequ_for(s(3600), s(10), u16::MAX), 360 + 45 + 2);
        assert_eq!(sequ_for(s(10), s(10), u16::MAX), 3);
        assert_eq!(sequ_for(s(65534), s(1), u16::MAX), u16::MAX);
        assert_eq!(sequ_for(s(3600), s(10), 5), 5);
    }

    #[test]
    fn lead_is_a_quarter_of_the_lifetime_at_most_a_minute() {
        let s = Duration::from_secs;
        assert_eq!(lead_for(s(3600), s(1), s(60)), s(60));
        assert_eq!(lead_for(s(100), s(1), s(60)), s(25));
        assert_eq!(lead_for(s(10), s(5), s(60)), s(5));
        assert_eq!(lead_for(s(2), s(5), s(60)), s(2));
    }

    #[test]
    fn key_numbers_skip_zero() {
        assert_eq!(next_key_number(1), 2);
        assert_eq!(next_key_number(0xfffe), 0xffff);
        assert_eq!(next_key_number(0xffff), 1);
    }
}

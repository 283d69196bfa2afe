//! The push of a new MSK to every UE registered to a service of its key group (TS 33.246
//! 6.3.2.1A: the BM-SC pushes MSKs to the registered UEs).
//!
//! A fan-out walks the registrations of each service of the group a page at a time (keyset
//! paging, [`Tuning::batch_size`](super::Tuning::batch_size) per step), builds that page's MSK
//! messages on all cores and hands them to the driver before reading the next page: memory
//! holds one page of messages, never one per registered UE, and the driver reads
//! acknowledgements between steps. A UE registered to two services of the group is reached
//! once (the fan-out's epoch is marked in its MUK cache entry). Fan-outs run one at a time,
//! in the order the MSKs were created.
//!
//! On a store shared by several nodes the owner pushes nothing itself here: it writes the
//! fan-out's work items, which every node claims (`shared`), and the fan-out counts as done
//! once every item's first pushes went out.

use std::time::{Duration, Instant};

use crate::bmsc::store::Member;
use crate::gba::Btid;
use crate::mikey::{KeyDomainId, MskId};

use super::push::{Pull, PushKind, Resolved, Target};
use super::{DistributionError, Distributor, Now};

/// Wait before a fan-out step is retried after a store error.
const RETRY_AFTER_ERROR: Duration = Duration::from_secs(1);

/// A fan-out in progress.
pub(super) struct FanOut {
    group: usize,
    msk_id: MskId,
    /// Index into the group's services.
    service: usize,
    /// Last B-TID of the previous page of that service.
    after: Option<Btid>,
    epoch: u32,
    started: Instant,
    /// Not before this time (after a store error, or between looks at a shared fan-out).
    pub(super) not_before: Instant,
    /// Whether the nodes share it as work items; `None` until the store said.
    shared: Option<bool>,
}

impl FanOut {
    /// The group whose MSK it pushes.
    pub(super) fn group(&self) -> usize {
        self.group
    }
}

impl Distributor {
    /// Queues the push of group `g`'s MSK `msk_id` to every registered UE.
    pub(super) fn queue_fanout(&mut self, g: usize, msk_id: MskId, now: Instant) {
        let epoch = self.next_epoch;
        self.next_epoch = self.next_epoch.wrapping_add(1).max(1);
        self.fanouts.push_back(FanOut {
            group: g,
            msk_id,
            service: 0,
            after: None,
            epoch,
            started: now,
            not_before: now,
            shared: None,
        });
    }

    /// The epoch of the running fan-out of `msk_id` in group `g`, if it is running.
    pub(super) fn fanout_epoch(&self, g: usize, msk_id: MskId) -> Option<u32> {
        self.fanouts
            .front()
            .filter(|f| f.group == g && f.msk_id == msk_id)
            .map(|f| f.epoch)
    }

    /// Whether group `g`'s next MTK (its announce and its switch) waits: it would go under an
    /// MSK whose fan-out is queued or running — the next MSK at a switch-over a restart found
    /// due, or the MSK a restart made current. MTKs under an MSK go out only once the MSK was
    /// pushed to every registered UE, so that no UE sees them before the key.
    pub(super) fn mtk_waits_for_fanout(&self, g: usize) -> bool {
        let group = &self.groups[g];
        let under = match (&group.upcoming, &group.next) {
            (Some(up), _) => up.msk_id,
            (None, Some(next)) if group.rotation_due() => next.msk_id(),
            (None, _) => group.current.msk_id(),
        };
        self.fanouts
            .iter()
            .any(|f| f.group == g && f.msk_id == under)
    }

    /// Before the first page of a fan-out of group `g`: room in the MUK cache for every UE
    /// registered to the group's services, so that it does not grow (rehash, copy, fault new
    /// pages) step by step while the fan-out runs. Without the counts, it grows as it goes.
    fn reserve_muk_cache(&mut self, g: usize) {
        let Ok(counts) = self.store.count_registrations_by_service() else {
            return;
        };
        let registered: u64 = self.groups[g]
            .services
            .iter()
            .filter_map(|s| counts.get(&self.services[*s].id))
            .sum();
        let wanted = usize::try_from(registered).unwrap_or(usize::MAX);
        let muks = &mut self.pushes.muks;
        muks.reserve(wanted.saturating_sub(muks.len()));
    }

    /// One page of the running fan-out.
    pub(super) fn fanout_step(&mut self, now: Now) -> Result<(), DistributionError> {
        let Some(f) = self.fanouts.front() else {
            return Ok(());
        };
        if now.mono < f.not_before {
            return Ok(());
        }
        let group = &self.groups[f.group];
        if group.slot(f.msk_id).is_none() {
            self.fanouts.pop_front();
            return Ok(());
        }
        let Some(&service) = group.services.get(f.service) else {
            let took = now.mono.saturating_duration_since(f.started);
            self.metrics.push_fanout_latency.observe(took);
            tracing::info!(msk_id = %f.msk_id, ?took, "MSK fan-out done");
            self.fanouts.pop_front();
            return Ok(());
        };
        if f.shared != Some(false) {
            return self.shared_fanout_step(now);
        }
        let (g, first_page) = (f.group, f.service == 0 && f.after.is_none());
        if first_page {
            self.reserve_muk_cache(g);
        }
        let Some(f) = self.fanouts.front() else {
            return Ok(());
        };
        let group = &self.groups[g];
        let (key_domain, msk_id, epoch) = (group.key_domain, f.msk_id, f.epoch);
        let limit = self.tuning.batch_size.max(1);
        let page = match self.store.registrations_of_service(
            &self.services[service].id,
            f.after.as_ref(),
            limit,
        ) {
            Ok(page) => page,
            Err(e) => {
                if let Some(f) = self.fanouts.front_mut() {
                    f.not_before = now.mono + RETRY_AFTER_ERROR;
                }
                return Err(e.into());
            }
        };
        if let Some(f) = self.fanouts.front_mut() {
            if page.len() < limit {
                f.service += 1;
                f.after = None;
            } else {
                f.after = page.last().map(|m| m.btid.clone());
            }
        }
        let (targets, pulls) = self.page_targets(page, key_domain, msk_id, epoch, now);
        self.send_pushes(targets, now)?;
        self.send_pulls(pulls)
    }

    /// The pushes and pulls of one page of registrations for MSK `msk_id` of `key_domain` in
    /// fan-out `epoch`: a UE whose MUK is fresh gets a push, one with a stale MUK a pull, a UE
    /// already served in this epoch (registered to two services of the group) nothing; a UE
    /// without a MUK is counted as a failed push. Shared by the fan-out of a lone node and the
    /// work items of a shared store.
    pub(super) fn page_targets(
        &mut self,
        page: Vec<Member>,
        key_domain: KeyDomainId,
        msk_id: MskId,
        epoch: u32,
        now: Now,
    ) -> (Vec<Target>, Vec<Pull>) {
        let btids: Vec<&str> = page.iter().map(|m| m.btid.as_str()).collect();
        self.prefetch_muks(&btids, now.wall);
        let mut targets = Vec::with_capacity(page.len());
        let mut pulls: Vec<Pull> = Vec::new();
        let mut failed = 0u64;
        for m in page {
            let (key, fresh) = match self.resolve(m.btid.as_str(), now.wall) {
                Resolved::Fresh(k) => (k, true),
                Resolved::Stale(k) => (k, false),
                Resolved::Missing(e) => {
                    tracing::debug!(btid = %m.btid, "fan-out: no MUK: {e}");
                    failed += 1;
                    continue;
                }
            };
            let Some(entry) = self.pushes.muks.get_mut(&*key) else {
                continue;
            };
            if entry.epoch == epoch {
                continue;
            }
            entry.epoch = epoch;
            entry.registered = true;
            if fresh {
                targets.push(Target::new(
                    key,
                    m.ue_addr,
                    key_domain,
                    msk_id,
                    PushKind::NewKey,
                ));
            } else {
                pulls.push((key, m.ue_addr, key_domain, msk_id.key_group));
            }
        }
        self.metrics.pushes_failed.add(failed);
        (targets, pulls)
    }

    /// The running fan-out on a shared store: its work items written (once), then a look
    /// every poll interval at whether each item's first pushes went out. On an unshared store
    /// the store says so and the fan-out runs here, page by page.
    fn shared_fanout_step(&mut self, now: Now) -> Result<(), DistributionError> {
        let Some(f) = self.fanouts.front() else {
            return Ok(());
        };
        let (g, msk_id) = (f.group, f.msk_id);
        let key_domain = self.groups[g].key_domain;
        let result = if f.shared.is_none() {
            let services: Vec<String> = self.groups[g]
                .services
                .iter()
                .map(|s| self.services[*s].id.clone())
                .collect();
            let size = self.cluster.fanout_item_size;
            match self
                .store
                .create_fanout_items(key_domain, msk_id, &services, size)
            {
                Ok(Some(p)) => {
                    tracing::info!(
                        %msk_id,
                        items = p.items,
                        open = p.open,
                        "MSK fan-out shared among the nodes as work items"
                    );
                    Ok(Some(true))
                }
                Ok(None) => Ok(Some(false)),
                Err(e) => Err(e),
            }
        } else {
            self.store
                .fanout_progress(key_domain, msk_id)
                .map(|p| (p.unsent > 0).then_some(true))
        };
        let poll = self.fanout_poll();
        let Some(f) = self.fanouts.front_mut() else {
            return Ok(());
        };
        match result {
            Ok(Some(shared)) => {
                f.shared = Some(shared);
                f.not_before = if shared { now.mono + poll } else { now.mono };
                Ok(())
            }
            Ok(None) => {
                let took = now.mono.saturating_duration_since(f.started);
                self.metrics.push_fanout_latency.observe(took);
                tracing::info!(%msk_id, ?took, "MSK fan-out done (every work item sent)");
                self.fanouts.pop_front();
                Ok(())
            }
            Err(e) => {
                f.not_before = now.mono + RETRY_AFTER_ERROR;
                Err(e.into())
            }
        }
    }
}

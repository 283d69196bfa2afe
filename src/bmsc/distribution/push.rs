//! MSK messages to UEs (TS 33.246 6.3.2.1A/B, 6.3.2.3; docs/profile.md §2.1): pushes after Key
//! Request events, invalidations, solicited pulls, and the MUK cache.
//!
//! Every push asks for an acknowledgement (V = 1). Pushes sent together form a batch with one
//! contiguous counter range, one retransmission timer and, per UE, only what is needed to build
//! the message again: B-TID, address, MSK ID, kind and RAND (64 octets). What happens to a push
//! after it left, acknowledgement or retransmission, is in `retransmit`.
//!
//! The MUK of each UE is prepared once and cached by B-TID with the end of its GBA key
//! lifetime. When the key source says the keys have expired, the last MUK known for the B-TID
//! sends a solicited pull instead (V = 0, Key Number 0, never retransmitted), which makes the
//! UE bootstrap again and request the MSK. The cache keeps entries with pushes in flight and
//! registered UEs; the periodic sweep drops the others, and expired ones after
//! [`Tuning::expired_muk_retention`](super::Tuning::expired_muk_retention).

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;

use crate::gba::{Btid, KeySourceError};
use crate::mbms::profile::{INVALIDATION_SEQL, INVALIDATION_SEQU, MSK_RAND_LEN};
use crate::mbms::{MskDelivery, MskUpdate, PreparedMuk, build_msk_prepared};
use crate::mikey::{KeyDomainId, MskId};

use super::lifecycle::Group;
use super::{Datagram, DistributionError, Distributor, Now, par_map};

/// A cached MUK and the per-UE bookkeeping of the distribution.
pub(super) struct MukEntry {
    pub(super) muk: PreparedMuk,
    /// End of the GBA key lifetime.
    expires: SystemTime,
    /// The fan-out that last reached this UE (a UE registered to two services of one group
    /// gets the MSK once).
    pub(super) epoch: u32,
    /// Pushes in flight.
    pub(super) pending: u32,
    /// Whether the UE is (as far as the events tell) registered to some service.
    pub(super) registered: bool,
}

/// What an MSK message does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PushKind {
    /// Deliver the MSK with its interval.
    NewKey,
    /// Invalidate it (SEQl = ffff > SEQu = 0000).
    Invalidate,
}

/// One MSK message of a batch: everything needed to build it again.
pub(super) struct Target {
    pub(super) btid: Arc<str>,
    pub(super) ip: IpAddr,
    pub(super) key_domain: KeyDomainId,
    pub(super) msk_id: MskId,
    pub(super) kind: PushKind,
    pub(super) rand: [u8; MSK_RAND_LEN],
    pub(super) done: bool,
}

impl Target {
    pub(super) fn new(
        btid: Arc<str>,
        ip: IpAddr,
        key_domain: KeyDomainId,
        msk_id: MskId,
        kind: PushKind,
    ) -> Self {
        Self {
            btid,
            ip,
            key_domain,
            msk_id,
            kind,
            rand: [0; MSK_RAND_LEN],
            done: false,
        }
    }
}

/// Pushes sent together: counters `first ..`, one per target.
pub(super) struct Batch {
    pub(super) targets: Vec<Target>,
    pub(super) remaining: usize,
    pub(super) attempts: u32,
    pub(super) next_at: Instant,
}

/// A solicited pull to send: B-TID, address, Key Domain ID, Key Group.
pub(super) type Pull = (Arc<str>, IpAddr, KeyDomainId, u16);

/// The MSK messages of several Key Request events, held to be sent as one batch
/// ([`Distributor::on_events`]).
#[derive(Default)]
pub(super) struct Collected {
    targets: Vec<Target>,
    pulls: Vec<Pull>,
}

/// The state of every push in flight and the MUK cache.
#[derive(Default)]
pub(super) struct Pushes {
    pub(super) muks: MukCache,
    /// By first counter; a counter identifies its push (one allocator for everything).
    pub(super) batches: BTreeMap<u32, Batch>,
    /// (retransmission time, batch); stale entries are skipped when popped.
    pub(super) timers: BinaryHeap<Reverse<(Instant, u32)>>,
    pub(super) pending: usize,
}

impl Pushes {
    pub(super) fn pending(&self) -> usize {
        self.pending
    }

    pub(super) fn cached_muks(&self) -> usize {
        self.muks.len()
    }

    /// Closes push `index` of the batch starting at counter `first` (acknowledged or given
    /// up): no longer pending for its UE or the batch, which goes once none is left. Whether
    /// it was open.
    pub(super) fn close(&mut self, first: u32, index: usize) -> bool {
        let Some(batch) = self.batches.get_mut(&first) else {
            return false;
        };
        let Some(t) = batch.targets.get_mut(index).filter(|t| !t.done) else {
            return false;
        };
        t.done = true;
        if let Some(e) = self.muks.get_mut(&*t.btid) {
            e.pending = e.pending.saturating_sub(1);
        }
        batch.remaining -= 1;
        self.pending -= 1;
        if batch.remaining == 0 {
            self.batches.remove(&first);
        }
        true
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.timers.peek().map(|Reverse((t, _))| *t)
    }
}

/// How the MUK of a B-TID stands.
pub(super) enum Resolved {
    /// Keys valid now: push.
    Fresh(Arc<str>),
    /// Keys expired (or forgotten by the BSF) but the last MUK is known: solicited pull.
    Stale(Arc<str>),
    /// No MUK: nothing can be sent.
    Missing(KeySourceError),
}

/// The MSK `msk_id` of `key_domain` among `groups`.
fn slot_of(
    groups: &[Group],
    key_domain: KeyDomainId,
    msk_id: MskId,
) -> Option<&super::lifecycle::MskSlot> {
    groups
        .iter()
        .find(|g| g.key_domain == key_domain && g.key_group == msk_id.key_group)
        .and_then(|g| g.slot(msk_id))
}

/// Builds the message of `t` with counter `counter`; `None` when its MUK or MSK is gone.
pub(super) fn build_one(
    groups: &[Group],
    muks: &MukCache,
    fqdn: &str,
    t: &Target,
    counter: u32,
) -> Option<Vec<u8>> {
    let muk = &muks.get(&*t.btid)?.muk;
    let update = match t.kind {
        PushKind::NewKey => {
            let slot = slot_of(groups, t.key_domain, t.msk_id)?;
            MskUpdate::NewKey {
                msk: slot.record.msk.clone(),
                seql: slot.record.seql,
                sequ: slot.record.sequ,
            }
        }
        PushKind::Invalidate => MskUpdate::Invalidate {
            seql: INVALIDATION_SEQL,
            sequ: INVALIDATION_SEQU,
        },
    };
    let d = MskDelivery::new(
        t.key_domain,
        t.msk_id,
        counter,
        t.rand.to_vec(),
        fqdn,
        &t.btid,
        update,
    );
    match build_msk_prepared(muk, &d) {
        Ok(bytes) => Some(bytes),
        Err(e) => {
            tracing::error!(msk_id = %t.msk_id, "MSK message not built: {e}");
            None
        }
    }
}

/// The MUK cache, by B-TID. foldhash, seeded per process: a fan-out looks B-TIDs up several
/// times per UE, and SipHash was a tenth of its time; B-TIDs are the BSF's, not chosen by
/// whoever sends requests, so the weaker resistance to crafted collisions is acceptable.
pub(super) type MukCache = HashMap<Arc<str>, MukEntry, foldhash::fast::RandomState>;

/// Registrations a start pushes to again, at most ([`Distributor::repush_recent_registrations`]).
pub(super) const REPUSH_LIMIT: usize = 100_000;

/// The counter of the `i`-th push of a batch starting at `first`.
pub(super) fn counter_at(first: u32, i: usize) -> u32 {
    first.wrapping_add(u32::try_from(i).unwrap_or(u32::MAX))
}

impl Distributor {
    /// The cached MUK of `btid`, looked up in the key source when absent or past its key
    /// lifetime.
    pub(super) fn resolve(&mut self, btid: &str, now: SystemTime) -> Resolved {
        if let Some((key, e)) = self.pushes.muks.get_key_value(btid)
            && e.expires > now
        {
            return Resolved::Fresh(key.clone());
        }
        match self.key_source.lookup(btid, now) {
            Ok(keys) => Resolved::Fresh(self.cache_muk(
                btid,
                PreparedMuk::new(&keys.keys.muk()),
                keys.expires,
            )),
            Err(e @ (KeySourceError::Expired | KeySourceError::UnknownBtid)) => {
                match self.pushes.muks.get_key_value(btid) {
                    Some((key, _)) => Resolved::Stale(key.clone()),
                    None => Resolved::Missing(e),
                }
            }
            Err(e) => Resolved::Missing(e),
        }
    }

    /// Puts `btid`'s MUK in the cache (replacing an older one, keeping its state).
    fn cache_muk(&mut self, btid: &str, muk: PreparedMuk, expires: SystemTime) -> Arc<str> {
        let cached = self.pushes.muks.get_key_value(btid).map(|(k, _)| k.clone());
        if let Some(key) = cached
            && let Some(e) = self.pushes.muks.get_mut(btid)
        {
            e.muk = muk;
            e.expires = expires;
            return key;
        }
        let key: Arc<str> = Arc::from(btid);
        self.pushes.muks.insert(
            key.clone(),
            MukEntry {
                muk,
                expires,
                epoch: 0,
                pending: 0,
                registered: true,
            },
        );
        key
    }

    /// Looks up, on all cores, the MUKs of `btids` that are not cached fresh, and caches
    /// them: the key source lookups and MUK preparations of a fan-out page are independent.
    /// A failed lookup is left to [`Self::resolve`], which makes it again and decides.
    pub(super) fn prefetch_muks(&mut self, btids: &[&str], now: SystemTime) {
        let missing: Vec<&str> = btids
            .iter()
            .copied()
            .filter(|b| self.pushes.muks.get(*b).is_none_or(|e| e.expires <= now))
            .collect();
        let source = &self.key_source;
        let found = par_map(&missing, self.tuning.build_threads, |_, btid| {
            source
                .lookup(btid, now)
                .ok()
                .map(|k| (PreparedMuk::new(&k.keys.muk()), k.expires))
        });
        for (btid, found) in missing.iter().zip(found) {
            if let Some((muk, expires)) = found {
                self.cache_muk(btid, muk, expires);
            }
        }
    }

    /// The groups of `service_ids`, each once, in order; unknown services are skipped.
    fn groups_of(&self, service_ids: &[String]) -> Vec<usize> {
        let mut out = Vec::new();
        for id in service_ids {
            match self.services.iter().find(|s| s.id == *id) {
                Some(s) if !out.contains(&s.group) => out.push(s.group),
                Some(_) => {}
                None => tracing::warn!(service = %id, "event for a service not configured"),
            }
        }
        out
    }

    /// TS 33.246 6.3.2.1A: after a registration, the current MSK (and the next, if one is
    /// already out) of every service.
    pub(super) fn on_registered(
        &mut self,
        btid: &Btid,
        ip: IpAddr,
        service_ids: &[String],
        now: Now,
    ) -> Result<(), DistributionError> {
        let groups = self.groups_of(service_ids);
        let mut wanted = Vec::new();
        for g in &groups {
            let group = &self.groups[*g];
            wanted.push((*g, group.current.msk_id()));
            if let Some(n) = &group.next {
                wanted.push((*g, n.msk_id()));
            }
        }
        self.push_or_pull(btid, ip, &wanted, PushKind::NewKey, now)?;
        if let Some(e) = self.pushes.muks.get_mut(btid.as_str()) {
            e.registered = true;
        }
        Ok(())
    }

    /// At a (re)start: the registrations acknowledged within the push retransmission span
    /// before `now` (at most [`REPUSH_LIMIT`], newest first) get their MSKs pushed again, as
    /// after the registration. The push of a registration is queued after its durable write and
    /// its 200, so a stop may lose it, with its retransmission state; a UE that already holds
    /// the MSKs takes the push as a validity update. Older ones have had every retransmission
    /// (and a UE that never got the key requests it when it sees an MTK under it).
    pub(super) fn repush_recent_registrations(
        &mut self,
        now: Now,
    ) -> Result<(), DistributionError> {
        let span = (0..=self.push.retries).fold(Duration::ZERO, |sum, attempt| {
            sum.saturating_add(self.backoff(attempt))
        });
        let since = now.wall.checked_sub(span).unwrap_or(SystemTime::UNIX_EPOCH);
        let recent = self.store.registrations_since(since, REPUSH_LIMIT)?;
        let mut by_ue: BTreeMap<String, (Btid, IpAddr, Vec<String>)> = BTreeMap::new();
        for r in recent {
            by_ue
                .entry(r.btid.as_str().to_owned())
                .or_insert_with(|| (r.btid, r.ue_addr, Vec::new()))
                .2
                .push(r.service_id);
        }
        if !by_ue.is_empty() {
            tracing::info!(
                ues = by_ue.len(),
                "start: pushing again to recent registrations"
            );
        }
        // One batch for all of them (one counter reservation).
        self.collected = Some(Collected::default());
        let mut first_error = None;
        for (btid, ip, services) in by_ue.into_values() {
            if let Err(e) = self.on_registered(&btid, ip, &services, now) {
                first_error.get_or_insert(e);
                break;
            }
        }
        let sent = self.send_collected(now);
        first_error.map_or(sent, Err)
    }

    /// TS 33.246 6.3.2.1B: after a deregistration, invalidate every MSK of the services left
    /// that no remaining service uses, under the UE's MUK (the last one known if it expired).
    pub(super) fn on_deregistered(
        &mut self,
        btid: &Btid,
        ip: IpAddr,
        removed: &[String],
        remaining: &[String],
        now: Now,
    ) -> Result<(), DistributionError> {
        let keep = self.groups_of(remaining);
        let mut targets = Vec::new();
        let gone: Vec<usize> = self
            .groups_of(removed)
            .into_iter()
            .filter(|g| !keep.contains(g))
            .collect();
        let key = match self.resolve(btid.as_str(), now.wall) {
            Resolved::Fresh(k) | Resolved::Stale(k) => Some(k),
            Resolved::Missing(e) => {
                tracing::warn!(%btid, "no MUK for the invalidation: {e}");
                None
            }
        };
        for g in gone {
            let group = &self.groups[g];
            for slot in group.held() {
                match &key {
                    Some(k) => targets.push(Target::new(
                        k.clone(),
                        ip,
                        group.key_domain,
                        slot.msk_id(),
                        PushKind::Invalidate,
                    )),
                    None => self.metrics.pushes_failed.inc(),
                }
            }
        }
        self.send_pushes(targets, now)?;
        if remaining.is_empty()
            && let Some(e) = self.pushes.muks.get_mut(btid.as_str())
        {
            e.registered = false;
        }
        Ok(())
    }

    /// TS 33.246 6.3.2.2: the MSKs the UE asked for; Key Number 0 is the current MSK of the
    /// Key Group. MSKs no longer held are skipped (the Key Request function answered for them).
    pub(super) fn on_msk_requested(
        &mut self,
        btid: &Btid,
        ip: IpAddr,
        msks: &[(KeyDomainId, MskId)],
        now: Now,
    ) -> Result<(), DistributionError> {
        let mut wanted = Vec::new();
        for (key_domain, msk_id) in msks {
            let Some(g) = self.group_of(*key_domain, msk_id.key_group) else {
                tracing::debug!(%key_domain, %msk_id, "MSK request for an unknown key group");
                continue;
            };
            let group = &self.groups[g];
            let slot = if msk_id.is_current() {
                Some(&group.current)
            } else {
                group.slot(*msk_id)
            };
            match slot {
                Some(s) if !wanted.contains(&(g, s.msk_id())) => wanted.push((g, s.msk_id())),
                Some(_) => {}
                None => tracing::debug!(%key_domain, %msk_id, "requested MSK no longer held"),
            }
        }
        self.push_or_pull(btid, ip, &wanted, PushKind::NewKey, now)
    }

    /// Pushes `wanted` (group, MSK ID) to the UE, or one solicited pull per group when its keys
    /// expired.
    fn push_or_pull(
        &mut self,
        btid: &Btid,
        ip: IpAddr,
        wanted: &[(usize, MskId)],
        kind: PushKind,
        now: Now,
    ) -> Result<(), DistributionError> {
        if wanted.is_empty() {
            return Ok(());
        }
        match self.resolve(btid.as_str(), now.wall) {
            Resolved::Fresh(key) => {
                let mut targets = Vec::with_capacity(wanted.len());
                for (g, msk_id) in wanted {
                    let group = &self.groups[*g];
                    targets.push(Target::new(
                        key.clone(),
                        ip,
                        group.key_domain,
                        *msk_id,
                        kind,
                    ));
                    // The fan-out of this MSK, if running, need not reach this UE again.
                    if let Some(epoch) = self.fanout_epoch(*g, *msk_id)
                        && let Some(e) = self.pushes.muks.get_mut(&*key)
                    {
                        e.epoch = epoch;
                    }
                }
                self.send_pushes(targets, now)
            }
            Resolved::Stale(key) => {
                let mut pulls: Vec<Pull> = Vec::new();
                for (g, _) in wanted {
                    let group = &self.groups[*g];
                    if !pulls
                        .iter()
                        .any(|p| p.3 == group.key_group && p.2 == group.key_domain)
                    {
                        pulls.push((key.clone(), ip, group.key_domain, group.key_group));
                    }
                }
                self.send_pulls(pulls)
            }
            Resolved::Missing(e) => {
                tracing::warn!(%btid, "no MUK, MSK messages not sent: {e}");
                self.metrics.pushes_failed.add(wanted.len() as u64);
                Ok(())
            }
        }
    }

    /// Sends `targets` as one batch (counters, RANDs, messages built on all cores) and arms its
    /// retransmission; while events are collected ([`Distributor::on_events`]), they wait for
    /// the others of the call instead.
    pub(super) fn send_pushes(
        &mut self,
        targets: Vec<Target>,
        now: Now,
    ) -> Result<(), DistributionError> {
        if let Some(c) = &mut self.collected {
            c.targets.extend(targets);
            return Ok(());
        }
        self.send_pushes_batch(targets, now).map(|_| ())
    }

    /// Ends a collection: its pushes as one batch, then its pulls as one.
    pub(super) fn send_collected(&mut self, now: Now) -> Result<(), DistributionError> {
        let Some(c) = self.collected.take() else {
            return Ok(());
        };
        let pushed = self.send_pushes_batch(c.targets, now).map(|_| ());
        let pulled = self.send_pulls(c.pulls);
        pushed.and(pulled)
    }

    /// [`Self::send_pushes`]: the batch's first counter and its messages sent, when any was.
    pub(super) fn send_pushes_batch(
        &mut self,
        mut targets: Vec<Target>,
        now: Now,
    ) -> Result<Option<(u32, usize)>, DistributionError> {
        if targets.is_empty() {
            return Ok(None);
        }
        let first = self.allocate_counters(targets.len())?;
        // One call to the generator for the whole batch (one system call, not one per UE).
        let mut rands = vec![0u8; targets.len() * MSK_RAND_LEN];
        super::fill(&mut self.rng, &mut rands);
        for (t, rand) in targets.iter_mut().zip(rands.chunks_exact(MSK_RAND_LEN)) {
            t.rand.copy_from_slice(rand);
        }
        let built = par_map(&targets, self.tuning.build_threads, |i, t| {
            build_one(
                &self.groups,
                &self.pushes.muks,
                &self.fqdn,
                t,
                counter_at(first, i),
            )
        });
        let mut datagrams = Vec::with_capacity(targets.len());
        let (mut failed, mut invalidations) = (0u64, 0u64);
        for (t, bytes) in targets.iter_mut().zip(built) {
            let Some(bytes) = bytes else {
                t.done = true;
                failed += 1;
                continue;
            };
            datagrams.push(Datagram {
                to: SocketAddr::new(t.ip, self.ue_port),
                bytes: Bytes::from(bytes),
            });
            if t.kind == PushKind::Invalidate {
                invalidations += 1;
            }
            if let Some(e) = self.pushes.muks.get_mut(&*t.btid) {
                e.pending = e.pending.saturating_add(1);
            }
        }
        self.metrics.pushes_failed.add(failed);
        self.metrics.pushes_sent.add(datagrams.len() as u64);
        self.metrics.invalidations_sent.add(invalidations);
        let remaining = datagrams.len();
        if remaining > 0 {
            let next_at = now.mono + self.backoff(0);
            self.pushes.batches.insert(
                first,
                Batch {
                    targets,
                    remaining,
                    attempts: 0,
                    next_at,
                },
            );
            self.pushes.timers.push(Reverse((next_at, first)));
            self.pushes.pending += remaining;
        }
        self.send(datagrams);
        Ok((remaining > 0).then_some((first, remaining)))
    }

    /// Sends solicited pulls (V = 0, Key Number 0, no key data) under the last known MUKs.
    pub(super) fn send_pulls(&mut self, pulls: Vec<Pull>) -> Result<(), DistributionError> {
        if pulls.is_empty() {
            return Ok(());
        }
        if let Some(c) = &mut self.collected {
            c.pulls.extend(pulls);
            return Ok(());
        }
        let first = self.allocate_counters(pulls.len())?;
        let mut datagrams = Vec::with_capacity(pulls.len());
        for (i, (btid, ip, key_domain, key_group)) in pulls.into_iter().enumerate() {
            let rand: [u8; MSK_RAND_LEN] = self.random();
            let Some(entry) = self.pushes.muks.get(&*btid) else {
                continue;
            };
            let d = MskDelivery::new(
                key_domain,
                MskId::new(key_group, 0),
                counter_at(first, i),
                rand.to_vec(),
                &self.fqdn,
                &btid,
                MskUpdate::SolicitedPull,
            );
            let bytes = build_msk_prepared(&entry.muk, &d)?;
            datagrams.push(Datagram {
                to: SocketAddr::new(ip, self.ue_port),
                bytes: Bytes::from(bytes),
            });
        }
        self.metrics.solicited_pulls.add(datagrams.len() as u64);
        self.send(datagrams);
        Ok(())
    }

    /// Drops cached MUKs without pushes in flight of UEs no longer registered, and of UEs whose
    /// keys expired longer ago than the retention.
    pub(super) fn sweep(&mut self, now: SystemTime) {
        let retention = self.tuning.expired_muk_retention;
        self.pushes
            .muks
            .retain(|_, e| e.pending > 0 || (e.registered && e.expires + retention > now));
    }
}

//! The UE's key state (MGV-S): the MUKs with their counters and the MSKs with
//! their intervals, SEQs and counters, and the rules of docs/profile.md §3 that
//! change them. Nothing here sees a datagram: the receiver calls these only
//! once a message's MAC has verified.

use std::collections::BTreeMap;

use crate::crypto::{Msk, Muk};
use crate::mbms::{KeyDomainId, MskId, MtkKeys, MukId, profile};
use crate::mikey::SecurityPolicy;

use super::events::MskInfo;

/// docs/profile.md §3 \[SEED\]: at most two MSKs per (Key Domain ID, Key Group).
pub use crate::mbms::profile::MSKS_PER_KEY_GROUP;

/// Bound on stored MSKs over all key groups, so that even an authenticated
/// peer cannot grow the UE's memory without limit.
pub const MAX_MSKS: usize = 256;

/// A MUK and the last counter accepted under it.
pub(crate) struct MukEntry {
    pub id: MukId,
    pub muk: Muk,
    pub counter: Option<u32>,
}

/// Which of the held MUKs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MukSlot {
    Current,
    Previous,
}

/// The current MUK and at most one previous one (docs/profile.md §3 \[SEED\]: "try
/// the previous MUK(s) still held"). Their MUK IDs always differ.
#[derive(Default)]
pub(crate) struct MukSlots {
    pub current: Option<MukEntry>,
    pub previous: Option<MukEntry>,
}

impl MukSlots {
    /// Installs `muk` as current. The same ID with the same key keeps its
    /// counter; the same ID with another key starts a fresh counter; a new
    /// ID pushes the current MUK to previous (dropping the older previous).
    pub fn set(&mut self, id: MukId, muk: Muk) {
        let reuse = |e: MukEntry, muk: Muk| MukEntry {
            counter: if e.muk == muk { e.counter } else { None },
            id: e.id,
            muk,
        };
        if let Some(cur) = self.current.take_if(|c| c.id == id) {
            self.current = Some(reuse(cur, muk));
            return;
        }
        let entry = match self.previous.take_if(|p| p.id == id) {
            Some(prev) => reuse(prev, muk),
            None => MukEntry {
                id,
                muk,
                counter: None,
            },
        };
        if let Some(old) = self.current.replace(entry) {
            self.previous = Some(old);
        }
    }

    /// Forgets the MUK with this ID; a removed current MUK is succeeded by the previous one.
    pub fn remove(&mut self, id: &MukId) {
        if self.previous.as_ref().is_some_and(|p| &p.id == id) {
            self.previous = None;
        }
        if self.current.as_ref().is_some_and(|c| &c.id == id) {
            self.current = self.previous.take();
        }
    }

    /// The MUK whose ID is IDi ‖ IDr: the current one first, then the previous.
    pub fn find(&self, idi: &[u8], idr: &[u8]) -> Option<MukSlot> {
        let is = |e: &Option<MukEntry>| {
            e.as_ref()
                .is_some_and(|e| e.id.idi == idi && e.id.idr == idr)
        };
        if is(&self.current) {
            Some(MukSlot::Current)
        } else if is(&self.previous) {
            Some(MukSlot::Previous)
        } else {
            None
        }
    }

    pub fn get(&self, slot: MukSlot) -> Option<&MukEntry> {
        match slot {
            MukSlot::Current => self.current.as_ref(),
            MukSlot::Previous => self.previous.as_ref(),
        }
    }

    pub fn get_mut(&mut self, slot: MukSlot) -> Option<&mut MukEntry> {
        match slot {
            MukSlot::Current => self.current.as_mut(),
            MukSlot::Previous => self.previous.as_mut(),
        }
    }
}

/// A stored MSK. `keys` caches the MTK message protection keys, derived
/// once per installation (docs/profile.md §2.3), not once per MTK message.
pub(crate) struct MskEntry {
    pub keys: MtkKeys,
    pub seql: u16,
    pub sequ: u16,
    /// Last accepted MTK ID; SEQl right after installation.
    pub seqs: u16,
    /// Last accepted MTK message counter under this MSK.
    pub counter: Option<u32>,
    /// Installation order: the smaller, the earlier.
    pub installed: u64,
    pub sp: Option<SecurityPolicy>,
}

/// What applying a new key did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NewKeyOutcome {
    /// A new installation; `evicted` is the key group's older MSK it replaced.
    Installed { evicted: Option<MskId> },
    /// The same key again: only the validity interval changed.
    Updated,
}

/// A new MSK would exceed [`MAX_MSKS`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct StoreFull;

/// The stored MSKs by (Key Domain ID, MSK ID).
#[derive(Default)]
pub(crate) struct MskStore {
    pub map: BTreeMap<(KeyDomainId, MskId), MskEntry>,
    pub next_install: u64,
}

impl MskStore {
    pub fn get(&self, kd: KeyDomainId, msk_id: MskId) -> Option<&MskEntry> {
        self.map.get(&(kd, msk_id))
    }

    pub fn get_mut(&mut self, kd: KeyDomainId, msk_id: MskId) -> Option<&mut MskEntry> {
        self.map.get_mut(&(kd, msk_id))
    }

    /// A key in an MSK message (docs/profile.md §3, edge cases): a new key is a new
    /// installation (SEQs := SEQl, counter state reset), evicting the group's
    /// earlier-installed MSK when two are stored already; the stored key again
    /// is a validity-only update.
    pub fn new_key(
        &mut self,
        kd: KeyDomainId,
        msk_id: MskId,
        msk: &Msk,
        (seql, sequ): (u16, u16),
        sp: Option<SecurityPolicy>,
    ) -> Result<NewKeyOutcome, StoreFull> {
        if let Some(e) = self.get_mut(kd, msk_id)
            && e.keys.msk() == msk
        {
            e.update_validity(seql, sequ, sp);
            return Ok(NewKeyOutcome::Updated);
        }
        let replaces = self.map.contains_key(&(kd, msk_id));
        let evict = if replaces {
            None
        } else {
            self.earliest_if_full(kd, msk_id.key_group)
        };
        if !replaces && evict.is_none() && self.map.len() >= MAX_MSKS {
            return Err(StoreFull);
        }
        if let Some(old) = evict {
            self.map.remove(&(kd, old));
        }
        let installed = self.next_install;
        self.next_install = self.next_install.saturating_add(1);
        self.map.insert(
            (kd, msk_id),
            MskEntry {
                keys: MtkKeys::new(msk, profile::csb_id_for(msk_id)),
                seql,
                sequ,
                seqs: seql,
                counter: None,
                installed,
                sp,
            },
        );
        Ok(NewKeyOutcome::Installed { evicted: evict })
    }

    /// Whether an MSK of this Key Group is stored.
    pub fn holds_group(&self, kd: KeyDomainId, key_group: u16) -> bool {
        self.map
            .range((kd, MskId::new(key_group, 0))..=(kd, MskId::new(key_group, u16::MAX)))
            .next()
            .is_some()
    }

    /// Key data len 0: only the interval of a stored MSK changes. `false`
    /// when the MSK is not stored (nothing changes).
    pub fn validity_only(
        &mut self,
        kd: KeyDomainId,
        msk_id: MskId,
        (seql, sequ): (u16, u16),
        sp: Option<SecurityPolicy>,
    ) -> bool {
        match self.get_mut(kd, msk_id) {
            Some(e) => {
                e.update_validity(seql, sequ, sp);
                true
            }
            None => false,
        }
    }

    /// Deletes the MSK; `true` when one was stored.
    pub fn invalidate(&mut self, kd: KeyDomainId, msk_id: MskId) -> bool {
        self.map.remove(&(kd, msk_id)).is_some()
    }

    /// The earlier-installed MSK of the group when it already holds the
    /// maximum (docs/profile.md §3 \[CHOICE\]: "the older" = installed earlier).
    fn earliest_if_full(&self, kd: KeyDomainId, key_group: u16) -> Option<MskId> {
        let in_group: Vec<(u64, MskId)> = self
            .map
            .iter()
            .filter(|((d, id), _)| *d == kd && id.key_group == key_group)
            .map(|((_, id), e)| (e.installed, *id))
            .collect();
        if in_group.len() < MSKS_PER_KEY_GROUP {
            return None;
        }
        in_group.into_iter().min().map(|(_, id)| id)
    }

    pub fn infos(&self) -> impl Iterator<Item = MskInfo> + '_ {
        self.map.iter().map(|((kd, id), e)| MskInfo {
            key_domain_id: *kd,
            msk_id: *id,
            seql: e.seql,
            sequ: e.sequ,
            seqs: e.seqs,
            counter: e.counter,
            sp: e.sp.clone(),
        })
    }
}

impl MskEntry {
    /// docs/profile.md §3 \[CHOICE\]: SEQs := max(SEQs, SEQl), so a validity update
    /// never reopens older MTK IDs; the interval is replaced. An SP payload,
    /// when the message has one, replaces the stored one.
    fn update_validity(&mut self, seql: u16, sequ: u16, sp: Option<SecurityPolicy>) {
        self.seql = seql;
        self.sequ = sequ;
        self.seqs = crate::mbms::profile::seqs_after_validity_update(self.seqs, seql);
        if sp.is_some() {
            self.sp = sp;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(n: u8) -> MukId {
        MukId::new(b"bmsc", &[n])
    }

    #[test]
    fn muk_slots_keep_one_previous_and_counters_by_key() {
        let mut s = MukSlots::default();
        s.set(id(1), Muk::from_bytes([1; 32]));
        s.current.as_mut().unwrap().counter = Some(9);
        s.set(id(1), Muk::from_bytes([1; 32]));
        assert_eq!(s.current.as_ref().unwrap().counter, Some(9));
        s.set(id(2), Muk::from_bytes([2; 32]));
        assert_eq!(s.find(b"bmsc", &[1]), Some(MukSlot::Previous));
        assert_eq!(s.find(b"bmsc", &[2]), Some(MukSlot::Current));
        s.set(id(3), Muk::from_bytes([3; 32]));
        assert_eq!(s.find(b"bmsc", &[1]), None);
        // Back to a held previous ID with the same key: its counter stays.
        s.current.as_mut().unwrap().counter = Some(4);
        s.set(id(2), Muk::from_bytes([2; 32]));
        assert_eq!(s.find(b"bmsc", &[3]), Some(MukSlot::Previous));
        s.set(id(2), Muk::from_bytes([7; 32]));
        assert_eq!(s.current.as_ref().unwrap().counter, None);
        s.remove(&id(2));
        assert_eq!(s.find(b"bmsc", &[3]), Some(MukSlot::Current));
        assert!(s.previous.is_none());
    }
}

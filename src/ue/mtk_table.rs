//! The MTKs a media client may still need, for SRTP key lookup: filled from the
//! [`Event::MtkReady`] events of a [`Receiver`](super::Receiver), looked up by SRTP MKI (what a
//! decoder asks for when a packet names an unknown master key) or by SSRC (the newest MTK whose
//! SRTP-ID map names that crypto session).
//!
//! The table is bounded ([`MAX_MTK_ENTRIES`]): the oldest entry leaves first. Entries under an MSK
//! the receiver deleted ([`Event::MskInvalidated`]) are dropped. Keys zeroize themselves when an
//! entry is removed ([`Mtk`] and [`Salt`] wipe on drop).

use std::collections::VecDeque;

use crate::crypto::{Mtk, Salt};
use crate::mbms::profile::SRTP_MKI_LEN;
use crate::mbms::{KeyDomainId, MskId, MtkId};
use crate::mikey::SrtpIdEntry;

use super::events::Event;
use super::srtp::SrtpPolicy;

/// \[CHOICE\] docs/c-api.md §2: MTKs kept at most. With the profile's two MSKs per Key Group and one MTK in use per MSK at a
/// time, 64 leaves room for many services and for the MTKs a decoder still needs around a
/// switch.
pub const MAX_MTK_ENTRIES: usize = 64;

/// One MTK with what SRTP needs to use it. `Debug` never prints key material.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MtkEntry {
    /// Key Domain ID of the MSK that protected the MTK.
    pub key_domain_id: KeyDomainId,
    /// MSK ID of the MSK that protected the MTK.
    pub msk_id: MskId,
    /// The MTK ID.
    pub mtk_id: MtkId,
    /// The SRTP MKI: MSK ID ‖ MTK ID (docs/profile.md §2.4).
    pub mki: [u8; SRTP_MKI_LEN],
    /// The MTK: the SRTP master key.
    pub mtk: Mtk,
    /// The SRTP master salt, when the MTK message carried one.
    pub salt: Option<Salt>,
    /// The SRTP policy of a streaming MTK message.
    pub policy: Option<SrtpPolicy>,
    /// The crypto sessions (policy number, SSRC, ROC) of the SRTP-ID map.
    pub srtp_ids: Vec<SrtpIdEntry>,
}

impl MtkEntry {
    /// The entry of an [`Event::MtkReady`]; `None` for any other event.
    #[must_use]
    pub fn from_event(event: &Event) -> Option<Self> {
        match event {
            Event::MtkReady {
                key_domain_id,
                msk_id,
                mtk_id,
                mki,
                mtk,
                salt,
                policy,
                srtp_ids,
            } => Some(Self {
                key_domain_id: *key_domain_id,
                msk_id: *msk_id,
                mtk_id: *mtk_id,
                mki: *mki,
                mtk: mtk.clone(),
                salt: salt.clone(),
                policy: policy.clone(),
                srtp_ids: srtp_ids.clone(),
            }),
            _ => None,
        }
    }

    /// The crypto session of `ssrc` in the SRTP-ID map, if named there.
    #[must_use]
    pub fn session(&self, ssrc: u32) -> Option<&SrtpIdEntry> {
        self.srtp_ids.iter().find(|e| e.ssrc == ssrc)
    }
}

/// The bounded table of MTKs, oldest first.
#[derive(Debug, Clone, Default)]
pub struct MtkTable {
    entries: VecDeque<MtkEntry>,
}

impl MtkTable {
    /// An empty table.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Applies one receiver event: an [`Event::MtkReady`] adds its MTK (replacing an entry of
    /// the same MKI, evicting the oldest entry when [`MAX_MTK_ENTRIES`] are held); an
    /// [`Event::MskInvalidated`] drops the MTKs of that MSK. Other events change nothing.
    pub fn observe(&mut self, event: &Event) {
        match event {
            Event::MtkReady { .. } => {
                if let Some(entry) = MtkEntry::from_event(event) {
                    self.insert(entry);
                }
            }
            Event::MskInvalidated {
                key_domain_id,
                msk_id,
            } => self
                .entries
                .retain(|e| !(e.key_domain_id == *key_domain_id && e.msk_id == *msk_id)),
            _ => {}
        }
    }

    /// Adds `entry` as the newest, replacing one of the same MKI and Key Domain ID.
    pub fn insert(&mut self, entry: MtkEntry) {
        self.entries
            .retain(|e| !(e.mki == entry.mki && e.key_domain_id == entry.key_domain_id));
        while self.entries.len() >= MAX_MTK_ENTRIES {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// The newest MTK whose SRTP MKI is `mki` (MSK ID ‖ MTK ID); `None` for another length.
    #[must_use]
    pub fn by_mki(&self, mki: &[u8]) -> Option<&MtkEntry> {
        self.entries.iter().rev().find(|e| e.mki.as_slice() == mki)
    }

    /// The newest MTK whose SRTP-ID map names `ssrc`, with that crypto session (its ROC).
    #[must_use]
    pub fn by_ssrc(&self, ssrc: u32) -> Option<(&MtkEntry, &SrtpIdEntry)> {
        self.entries
            .iter()
            .rev()
            .find_map(|e| e.session(ssrc).map(|s| (e, s)))
    }

    /// MTKs held.
    #[must_use]
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no MTK is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Drops every entry.
    pub fn clear(&mut self) {
        self.entries.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::mbms::profile::srtp_mki;

    fn ready(kd: u8, msk: u32, mtk: u16, ssrcs: &[(u32, u32)]) -> Event {
        let msk_id = MskId::from_u32(msk);
        Event::MtkReady {
            key_domain_id: KeyDomainId([0, 0, kd]),
            msk_id,
            mtk_id: MtkId(mtk),
            mki: srtp_mki(msk_id, MtkId(mtk)),
            mtk: Mtk::from_bytes([mtk as u8; 16]),
            salt: Some(Salt::from_bytes([1; 14])),
            policy: None,
            srtp_ids: ssrcs
                .iter()
                .map(|&(ssrc, roc)| SrtpIdEntry {
                    policy_no: 0,
                    ssrc,
                    roc,
                })
                .collect(),
        }
    }

    #[test]
    fn lookups_find_the_newest_and_invalidation_drops() {
        let mut t = MtkTable::new();
        t.observe(&ready(1, 0x0001_0001, 1, &[(7, 0)]));
        t.observe(&ready(1, 0x0001_0001, 2, &[(7, 3)]));
        t.observe(&ready(1, 0x0001_0002, 1, &[(8, 0)]));
        assert_eq!(t.len(), 3);
        let mki = srtp_mki(MskId::from_u32(0x0001_0001), MtkId(1));
        assert_eq!(t.by_mki(&mki).map(|e| e.mtk_id), Some(MtkId(1)));
        assert!(t.by_mki(&mki[..5]).is_none());
        let (e, s) = t.by_ssrc(7).unwrap();
        assert_eq!((e.mtk_id, s.roc), (MtkId(2), 3));
        assert!(t.by_ssrc(9).is_none());
        t.observe(&Event::MskInvalidated {
            key_domain_id: KeyDomainId([0, 0, 1]),
            msk_id: MskId::from_u32(0x0001_0001),
        });
        assert_eq!(t.len(), 1);
        assert!(t.by_ssrc(7).is_none());
        assert!(t.by_ssrc(8).is_some());
    }

    #[test]
    fn the_table_is_bounded_and_evicts_the_oldest() {
        let mut t = MtkTable::new();
        for i in 0..(MAX_MTK_ENTRIES as u16 + 5) {
            t.observe(&ready(1, 0x0001_0001, i + 1, &[]));
        }
        assert_eq!(t.len(), MAX_MTK_ENTRIES);
        let first = srtp_mki(MskId::from_u32(0x0001_0001), MtkId(1));
        assert!(t.by_mki(&first).is_none());
        let last = srtp_mki(
            MskId::from_u32(0x0001_0001),
            MtkId(MAX_MTK_ENTRIES as u16 + 5),
        );
        assert!(t.by_mki(&last).is_some());
        // The same MKI again replaces, it does not duplicate.
        t.observe(&ready(1, 0x0001_0001, MAX_MTK_ENTRIES as u16 + 5, &[]));
        assert_eq!(t.len(), MAX_MTK_ENTRIES);
    }
}

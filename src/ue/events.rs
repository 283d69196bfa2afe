//! What the [`Receiver`](super::Receiver) tells its driver and media client:
//! events, discard reasons, counters, and a key-free view of the stored MSKs.

use std::fmt;

use crate::crypto::{Mtk, Salt};
use crate::mbms::profile::SRTP_MKI_LEN;
use crate::mbms::{KeyDomainId, MskId, MtkId};
use crate::mikey::{SecurityPolicy, SrtpIdEntry};

use super::srtp::SrtpPolicy;

/// One outcome of a datagram or a timer, in order. `Debug` never prints key
/// material (`Mtk` and `Salt` redact themselves).
#[non_exhaustive]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A new MSK was stored (TS 33.246 6.3.2.3; docs/profile.md §3: SEQs := SEQl).
    MskInstalled {
        /// Key Domain ID of the MSK.
        key_domain_id: KeyDomainId,
        /// MSK ID of the MSK.
        msk_id: MskId,
        /// SEQl: the lowest MTK ID the MSK may be used with.
        seql: u16,
        /// SEQu: the highest MTK ID the MSK may be used with.
        sequ: u16,
    },
    /// The validity interval of a stored MSK changed (key data len 0, or the
    /// same key again).
    MskUpdated {
        /// Key Domain ID of the MSK.
        key_domain_id: KeyDomainId,
        /// MSK ID of the MSK.
        msk_id: MskId,
        /// The new SEQl.
        seql: u16,
        /// The new SEQu.
        sequ: u16,
    },
    /// A stored MSK was deleted: invalidated by the BM-SC, or the older of a
    /// key group's two MSKs when a third arrived.
    MskInvalidated {
        /// Key Domain ID of the MSK.
        key_domain_id: KeyDomainId,
        /// MSK ID of the MSK.
        msk_id: MskId,
    },
    /// A verified MTK for the media client, with everything it needs to use it
    /// (docs/profile.md §3, last step of the MTK message).
    MtkReady {
        /// Key Domain ID of the MSK that protected the MTK.
        key_domain_id: KeyDomainId,
        /// MSK ID of the MSK that protected the MTK.
        msk_id: MskId,
        /// The MTK ID.
        mtk_id: MtkId,
        /// The SRTP MKI that names this MTK in the packets of a streaming service:
        /// MSK ID ‖ MTK ID (docs/profile.md §2.4, [`crate::mbms::profile::srtp_mki`]).
        mki: [u8; SRTP_MKI_LEN],
        /// The MTK (the SRTP master key of a streaming service).
        mtk: Mtk,
        /// The salt of a TEK+SALT Key data sub-payload, if carried (the SRTP master salt).
        salt: Option<Salt>,
        /// The SRTP policy of a streaming MTK message: its SP payload, else the one stored with
        /// the MSK; `None` for a download MTK message (no SRTP-ID map).
        policy: Option<SrtpPolicy>,
        /// The crypto sessions of the SRTP-ID map (policy number, SSRC, ROC) of a streaming
        /// MTK message; empty for a download one.
        srtp_ids: Vec<SrtpIdEntry>,
    },
    /// Run the MSK request procedure (TS 33.246 6.3.2.2) for this MSK: Key
    /// Number 0 (the current MSK of the Key Group) after a solicited pull,
    /// the specific MSK ID after an MTK under an unknown MSK (missed key).
    MskRequestNeeded {
        /// Key Domain ID of the MSK to request.
        key_domain_id: KeyDomainId,
        /// MSK ID to request (Key Number 0 for the Key Group's current MSK).
        msk_id: MskId,
    },
    /// The BM-SC refused an MSK request (docs/profile.md §3): that MSK ID is not requested
    /// again until a verified MSK message of its Key Group arrives.
    MskRequestFailed {
        /// Key Domain ID of the requested MSK.
        key_domain_id: KeyDomainId,
        /// MSK ID requested.
        msk_id: MskId,
        /// The per-item code of the answer (docs/profile.md §4: 400, 403, 404, 500), or the
        /// HTTP status (403, 404) that refused the whole request.
        code: u16,
    },
    /// A datagram was dropped; nothing is ever sent back for it.
    Discarded {
        /// Why.
        reason: DiscardReason,
    },
}

impl Event {
    /// Whether this is a discard notice: the only event a full queue gives up for another
    /// (docs/profile.md §3, bounds). Every other event is a key event.
    #[must_use]
    pub fn is_discard(&self) -> bool {
        matches!(self, Self::Discarded { .. })
    }
}

/// Why a datagram was dropped (docs/profile.md §3: every discard is counted and
/// logged with its reason, and silent on the wire).
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DiscardReason {
    /// Not a well-formed MIKEY message.
    Malformed,
    /// Well-formed MIKEY, but not an MSK or MTK message of the profile.
    NotProfileMessage,
    /// An MSK message under a MUK ID (IDi ‖ IDr) the UE does not hold.
    UnknownMuk,
    /// The counter is not newer than the stored one (RFC 1982 order).
    Replay,
    /// The MAC does not verify.
    BadMac,
    /// The decrypted key data is not what the profile requires.
    BadKeyData,
    /// An MTK message, or a validity-only update, for an MSK not stored.
    UnknownMsk,
    /// MTK ID above SEQu: the MSK may not be used for it.
    MtkIdOutsideInterval,
    /// MTK ID at or below SEQs: an older MTK.
    MtkIdNotNewer,
    /// An RFC 3830 verification message (data type 1): only the BM-SC takes those.
    UnexpectedAcknowledgement,
    /// A new MSK would exceed the receiver's bound on stored MSKs.
    StoreFull,
    /// An MTK message for a (Key Domain ID, Key Group) that is not one of the UE's: no MSK
    /// request follows.
    UnknownKeyGroup,
}

impl DiscardReason {
    /// Every reason, in the order of [`Stats`]' counters.
    pub const ALL: [Self; 12] = [
        Self::Malformed,
        Self::NotProfileMessage,
        Self::UnknownMuk,
        Self::Replay,
        Self::BadMac,
        Self::BadKeyData,
        Self::UnknownMsk,
        Self::MtkIdOutsideInterval,
        Self::MtkIdNotNewer,
        Self::UnexpectedAcknowledgement,
        Self::StoreFull,
        Self::UnknownKeyGroup,
    ];

    /// Stable snake_case name for logs and metrics labels.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::NotProfileMessage => "not_profile_message",
            Self::UnknownMuk => "unknown_muk",
            Self::Replay => "replay",
            Self::BadMac => "bad_mac",
            Self::BadKeyData => "bad_key_data",
            Self::UnknownMsk => "unknown_msk",
            Self::MtkIdOutsideInterval => "mtk_id_outside_interval",
            Self::MtkIdNotNewer => "mtk_id_not_newer",
            Self::UnexpectedAcknowledgement => "unexpected_acknowledgement",
            Self::StoreFull => "store_full",
            Self::UnknownKeyGroup => "unknown_key_group",
        }
    }

    fn index(self) -> usize {
        match self {
            Self::Malformed => 0,
            Self::NotProfileMessage => 1,
            Self::UnknownMuk => 2,
            Self::Replay => 3,
            Self::BadMac => 4,
            Self::BadKeyData => 5,
            Self::UnknownMsk => 6,
            Self::MtkIdOutsideInterval => 7,
            Self::MtkIdNotNewer => 8,
            Self::UnexpectedAcknowledgement => 9,
            Self::StoreFull => 10,
            Self::UnknownKeyGroup => 11,
        }
    }
}

impl fmt::Display for DiscardReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Malformed => "malformed MIKEY message",
            Self::NotProfileMessage => "not an MSK or MTK message of the profile",
            Self::UnknownMuk => "no MUK for IDi/IDr",
            Self::Replay => "counter not newer than the stored one",
            Self::BadMac => "MAC does not verify",
            Self::BadKeyData => "key data not as the profile requires",
            Self::UnknownMsk => "MSK not stored",
            Self::MtkIdOutsideInterval => "MTK ID above SEQu",
            Self::MtkIdNotNewer => "MTK ID not above SEQs",
            Self::UnexpectedAcknowledgement => "acknowledgement sent to the UE",
            Self::StoreFull => "MSK store full",
            Self::UnknownKeyGroup => "Key Group not one of the UE's",
        })
    }
}

/// Counters of the receiver, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// MSK messages accepted (MAC verified and applied).
    pub msk_accepted: u64,
    /// MTK messages accepted (an MTK handed out).
    pub mtk_accepted: u64,
    /// Acknowledgements returned.
    pub acks: u64,
    /// Missed-key MSK requests not made: within the hold-off, over a rate, or refused before.
    pub requests_suppressed: u64,
    /// Events dropped because the driver did not drain the queue: discard notices that found
    /// it full, and key events only when it held nothing else.
    pub events_dropped: u64,
    discards: [u64; DiscardReason::ALL.len()],
}

impl Stats {
    /// Datagrams discarded for `reason`.
    #[must_use]
    pub fn discards(&self, reason: DiscardReason) -> u64 {
        self.discards.get(reason.index()).copied().unwrap_or(0)
    }

    /// Datagrams discarded for any reason.
    #[must_use]
    pub fn total_discards(&self) -> u64 {
        self.discards.iter().sum()
    }

    /// `(reason, count)` for every reason, including zeros.
    pub fn discards_by_reason(&self) -> impl Iterator<Item = (DiscardReason, u64)> + '_ {
        DiscardReason::ALL
            .into_iter()
            .map(|r| (r, self.discards(r)))
    }

    pub(crate) fn count_discard(&mut self, reason: DiscardReason) {
        if let Some(c) = self.discards.get_mut(reason.index()) {
            *c = c.saturating_add(1);
        }
    }
}

/// A stored MSK without its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MskInfo {
    /// Key Domain ID of the MSK.
    pub key_domain_id: KeyDomainId,
    /// MSK ID of the MSK.
    pub msk_id: MskId,
    /// SEQl: the lowest MTK ID the MSK may be used with.
    pub seql: u16,
    /// SEQu: the highest MTK ID the MSK may be used with.
    pub sequ: u16,
    /// The last accepted MTK ID (SEQl right after installation).
    pub seqs: u16,
    /// The last accepted MTK message counter under this MSK, if any.
    pub counter: Option<u32>,
    /// The SP payload that came with the MSK message (TS 33.246 6.4.6.1), if any.
    pub sp: Option<SecurityPolicy>,
}

impl MskInfo {
    /// Whether the MSK message carried an SP payload.
    #[must_use]
    pub fn has_sp(&self) -> bool {
        self.sp.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_reason_has_its_own_counter_and_name() {
        let mut stats = Stats::default();
        let mut names = std::collections::BTreeSet::new();
        for (i, r) in DiscardReason::ALL.into_iter().enumerate() {
            assert_eq!(r.index(), i);
            assert!(names.insert(r.as_str()));
            stats.count_discard(r);
            assert_eq!(stats.discards(r), 1);
        }
        assert_eq!(stats.total_discards(), DiscardReason::ALL.len() as u64);
    }
}

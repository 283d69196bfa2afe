//! Structural reading of a decoded message against the profile: which
//! payloads, how many of each, which types. Nothing here is trusted yet.

use crate::mikey::view::{
    ExtensionView, KemacView, KeyIdEntries, KeyIdEntryView, PayloadView, SecurityPolicyView,
    VerificationView,
};
use crate::mikey::{
    DataType, EncrAlg, KeyDomainId, MIKEY_VERSION, MacAlg, MessageView, MskId, MtkId, PrfFunc,
    Timestamp,
};

use super::error::MessageError;
use super::profile;

/// The payloads of a message, counted and sorted by kind; each field holds
/// the last payload of its kind, except `ids`, which holds the first two.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Shape<'a> {
    pub key_ids: Option<KeyIdEntries<'a>>,
    pub t: Option<Timestamp>,
    pub rand: Option<&'a [u8]>,
    /// The data of the first and second ID payloads (IDi, IDr).
    pub ids: [Option<&'a [u8]>; 2],
    pub kemac: Option<KemacView<'a>>,
    pub sp: Option<SecurityPolicyView<'a>>,
    pub v: Option<VerificationView<'a>>,
    counts: Counts,
}

/// Payloads of each kind, saturating at 255 (far above any limit checked).
#[derive(Debug, Clone, Copy, Default)]
struct Counts {
    ext: u8,
    t: u8,
    rand: u8,
    ids: u8,
    kemac: u8,
    sp: u8,
    v: u8,
    other: u8,
}

/// The Key ID extension's entries, typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct KeyIds {
    pub key_domain_id: KeyDomainId,
    pub msk_id: MskId,
    pub mtk_id: Option<MtkId>,
}

/// Encr data that does not fit [`profile::MAX_ENCR_DATA_LEN`].
pub(crate) const ENCR_DATA_TOO_LONG: MessageError =
    MessageError::Structure("KEMAC Encr data is longer than any key data of the profile");

fn structure(what: &'static str) -> MessageError {
    MessageError::Structure(what)
}

impl<'a> Shape<'a> {
    /// Reads a datagram, sorting its payloads in the same walk, and hands
    /// both to `check`.
    pub fn parse<T>(
        bytes: &'a [u8],
        check: impl FnOnce(MessageView<'a>, &Self) -> Result<T, MessageError>,
    ) -> Result<T, MessageError> {
        let mut shape = Shape::default();
        let view = MessageView::decode_with(bytes, |_, p| shape.add(p))?;
        check(view, &shape)
    }

    /// The shape of a message already read.
    pub fn of(view: &MessageView<'a>) -> Self {
        let mut s = Shape::default();
        for (_, p) in view.payloads() {
            s.add(p);
        }
        s
    }

    fn add(&mut self, p: PayloadView<'a>) {
        let c = &mut self.counts;
        match p {
            PayloadView::Ext(ExtensionView::KeyId(ids)) => {
                c.ext = c.ext.saturating_add(1);
                self.key_ids = Some(ids);
            }
            PayloadView::T(t) => {
                c.t = c.t.saturating_add(1);
                self.t = Some(t);
            }
            PayloadView::Rand(r) => {
                c.rand = c.rand.saturating_add(1);
                self.rand = Some(r);
            }
            PayloadView::Id(id) => {
                if let Some(slot) = self.ids.get_mut(usize::from(c.ids)) {
                    *slot = Some(id.data);
                }
                c.ids = c.ids.saturating_add(1);
            }
            PayloadView::Kemac(k) => {
                c.kemac = c.kemac.saturating_add(1);
                self.kemac = Some(k);
            }
            PayloadView::Sp(sp) => {
                c.sp = c.sp.saturating_add(1);
                self.sp = Some(sp);
            }
            PayloadView::V(v) => {
                c.v = c.v.saturating_add(1);
                self.v = Some(v);
            }
            _ => c.other = c.other.saturating_add(1),
        }
    }

    /// Checks the HDR fields common to every message of the profile.
    pub fn check_hdr(view: &MessageView<'_>, data_type: DataType) -> Result<(), MessageError> {
        let h = view.hdr();
        if h.version != MIKEY_VERSION {
            return Err(structure("HDR version is not 1"));
        }
        if h.data_type != data_type {
            return Err(structure("HDR data type is not the one of this message"));
        }
        if h.prf_func != PrfFunc::MIKEY_1 {
            return Err(structure("HDR PRF func is not MIKEY-1"));
        }
        Ok(())
    }

    /// Exactly one EXT Key ID, T, KEMAC; `rand`, `ids`, `sp` within bounds;
    /// no V and nothing else.
    pub fn check_counts(
        &self,
        rand: (u8, u8),
        ids: (u8, u8),
        sp_max: u8,
    ) -> Result<(), MessageError> {
        let c = &self.counts;
        if c.ext != 1 {
            return Err(structure("exactly one Key ID extension is required"));
        }
        if c.t != 1 {
            return Err(structure("exactly one T payload is required"));
        }
        if c.kemac != 1 {
            return Err(structure("exactly one KEMAC payload is required"));
        }
        if c.rand < rand.0 || c.rand > rand.1 {
            return Err(structure("wrong number of RAND payloads"));
        }
        if c.ids < ids.0 || c.ids > ids.1 {
            return Err(structure("wrong number of ID payloads"));
        }
        if c.sp > sp_max {
            return Err(structure("too many SP payloads"));
        }
        if c.v != 0 || c.other != 0 {
            return Err(structure("payload not allowed in this message"));
        }
        Ok(())
    }

    /// Counts for the acknowledgement: one T, one V, at most one ID, nothing else.
    pub fn check_ack_counts(&self) -> Result<(), MessageError> {
        let c = &self.counts;
        if c.t != 1 || c.v != 1 {
            return Err(structure(
                "an acknowledgement needs exactly one T and one V",
            ));
        }
        if c.ids > 1 || c.ext + c.rand + c.kemac + c.sp + c.other != 0 {
            return Err(structure("payload not allowed in an acknowledgement"));
        }
        Ok(())
    }

    pub fn counter(&self) -> Result<u32, MessageError> {
        match self.t {
            Some(Timestamp::Counter(c)) => Ok(c),
            _ => Err(structure("T is not a COUNTER")),
        }
    }

    /// The KEMAC, checked for AES-CM-128, HMAC-SHA-1-160 and Encr data
    /// that fits the receiver's key data buffer.
    pub fn kemac(&self) -> Result<KemacView<'a>, MessageError> {
        let k = self.kemac.ok_or(structure("no KEMAC"))?;
        if k.encr_alg != EncrAlg::AES_CM_128 {
            return Err(structure("KEMAC encryption is not AES-CM-128"));
        }
        if k.mac_alg != MacAlg::HMAC_SHA1_160 {
            return Err(structure("KEMAC MAC is not HMAC-SHA-1-160"));
        }
        if k.encr_data.len() > profile::MAX_ENCR_DATA_LEN {
            return Err(ENCR_DATA_TOO_LONG);
        }
        Ok(k)
    }

    /// The Key ID entries: exactly one Key Domain ID and MSK ID, at most one MTK ID.
    pub fn key_ids(&self) -> Result<KeyIds, MessageError> {
        let entries = self.key_ids.ok_or(structure("no Key ID extension"))?;
        let (mut kd, mut msk, mut mtk) = (None, None, None);
        for e in entries.iter() {
            let slot_taken = match e {
                KeyIdEntryView::KeyDomain(id) => kd.replace(id).is_some(),
                KeyIdEntryView::Msk(id) => msk.replace(id).is_some(),
                KeyIdEntryView::Mtk(id) => mtk.replace(id).is_some(),
                KeyIdEntryView::Other { .. } => {
                    return Err(structure("Key ID sub-payload of unknown type or length"));
                }
            };
            if slot_taken {
                return Err(structure("repeated Key ID sub-payload"));
            }
        }
        Ok(KeyIds {
            key_domain_id: kd.ok_or(structure("no Key Domain ID"))?,
            msk_id: msk.ok_or(structure("no MSK ID"))?,
            mtk_id: mtk,
        })
    }
}

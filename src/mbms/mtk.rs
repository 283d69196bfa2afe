//! The MTK delivery message (docs/profile.md §2.3; TS 33.246 6.3.3): BM-SC → all
//! UEs of a user service, protected with the MSK.

use crate::crypto::{Msk, Mtk, ProtectionKeys, Salt};
use crate::mikey::view::{CsIdMapView, KemacView, SecurityPolicyView};
use crate::mikey::{
    CsIdMap, DataType, Extension, KeyData, KeyDataType, KeyDomainId, KeyIdEntry, KeyValidity,
    MessageView, MskId, MtkId, Payload, PolicyParam, ProtType, SecurityPolicy, SrtpIdEntry,
    SrtpParam, Timestamp,
};

use super::error::{BuildError, MessageError};
use super::profile;
use super::protect::{PlainBuf, open, psk_hdr, seal};
use super::shape::Shape;

/// The SRTP part of a streaming MTK message: one SRTP-ID map entry and the
/// SRTP policy (RFC 3830 §6.1.1, §6.10.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Streaming {
    /// The SRTP-ID map entry: policy number, SSRC and ROC.
    pub srtp: SrtpIdEntry,
    /// The SRTP security policy (SP payload).
    pub policy: SecurityPolicy,
}

impl Streaming {
    /// Crypto session 0 (policy 0, `ssrc`, `roc`) under the SRTP default
    /// profile AES-CM-128 / HMAC-SHA-1-80 (RFC 3711 §8.2) as SRTP policy
    /// parameters (RFC 3830 §6.10.1): docs/profile.md §2.3 for streaming services.
    pub fn srtp_default(ssrc: u32, roc: u32) -> Self {
        let p = |t: SrtpParam, v: u8| PolicyParam {
            param_type: t.0,
            value: vec![v],
        };
        Self {
            srtp: SrtpIdEntry {
                policy_no: 0,
                ssrc,
                roc,
            },
            policy: SecurityPolicy {
                policy_no: 0,
                prot_type: ProtType::SRTP,
                params: vec![
                    p(SrtpParam::ENCR_ALG, 1),
                    p(SrtpParam::ENCR_KEY_LEN, 16),
                    p(SrtpParam::AUTH_ALG, 1),
                    p(SrtpParam::AUTH_KEY_LEN, 20),
                    p(SrtpParam::SALT_KEY_LEN, 14),
                    p(SrtpParam::SRTP_PRF, 0),
                    p(SrtpParam::SRTP_ENCRYPTION, 1),
                    p(SrtpParam::SRTCP_ENCRYPTION, 1),
                    p(SrtpParam::SRTP_AUTHENTICATION, 1),
                    p(SrtpParam::AUTH_TAG_LEN, 10),
                ],
            },
        }
    }
}

/// Inputs of an MTK message.
#[derive(Debug, Clone)]
pub struct MtkDelivery {
    /// Key Domain ID of the Key ID extension.
    pub key_domain_id: KeyDomainId,
    /// MSK ID of the Key ID extension: the MSK that protects the message.
    pub msk_id: MskId,
    /// HDR CSB ID; [`profile::csb_id_for`] the MSK ID by default.
    pub csb_id: u32,
    /// MTK ID of the Key ID extension.
    pub mtk_id: MtkId,
    /// The BM-SC's counter for this MSK.
    pub counter: u32,
    /// The MTK, carried as TEK.
    pub mtk: Mtk,
    /// TEK+SALT when present (the SRTP master salt in streaming).
    pub salt: Option<Salt>,
    /// `None` for download services (empty map, no SP).
    pub streaming: Option<Streaming>,
}

/// The protection keys of the MTK messages under one MSK. They depend only
/// on (MSK, CSB ID, empty RAND), so they are derived once per MSK and reused
/// for every MTK message (docs/profile.md §2.3).
#[derive(Debug, Clone)]
pub struct MtkKeys {
    msk: Msk,
    csb_id: u32,
    keys: ProtectionKeys,
}

impl MtkKeys {
    /// Derives the protection keys of `msk` for `csb_id` and an empty RAND.
    pub fn new(msk: &Msk, csb_id: u32) -> Self {
        Self {
            msk: msk.clone(),
            csb_id,
            keys: ProtectionKeys::derive(msk.as_bytes(), csb_id, profile::MTK_DERIVATION_RAND),
        }
    }

    /// The MSK the keys were derived from.
    pub fn msk(&self) -> &Msk {
        &self.msk
    }

    /// The CSB ID the keys were derived for.
    pub fn csb_id(&self) -> u32 {
        self.csb_id
    }

    /// The cached protection keys.
    pub fn keys(&self) -> &ProtectionKeys {
        &self.keys
    }

    /// The keys for a received message: the cached ones unless the message
    /// has another CSB ID or carries a RAND payload.
    fn for_message(
        &self,
        csb_id: u32,
        rand: Option<&[u8]>,
    ) -> std::borrow::Cow<'_, ProtectionKeys> {
        match rand {
            None if csb_id == self.csb_id => std::borrow::Cow::Borrowed(&self.keys),
            _ => std::borrow::Cow::Owned(ProtectionKeys::derive(
                self.msk.as_bytes(),
                csb_id,
                rand.unwrap_or(profile::MTK_DERIVATION_RAND),
            )),
        }
    }
}

/// Builds an MTK message in the canonical order `HDR, EXT, T, [SP], KEMAC`.
/// `keys` must be for `d.csb_id`.
pub fn build_mtk(keys: &MtkKeys, d: &MtkDelivery) -> Result<Vec<u8>, BuildError> {
    if keys.csb_id != d.csb_id {
        return Err(BuildError::Invalid(
            "MTK keys were derived for another CSB ID",
        ));
    }
    let (cs_count, map) = match &d.streaming {
        Some(s) => (1, CsIdMap::SrtpId(vec![s.srtp])),
        None => (0, CsIdMap::Empty),
    };
    let hdr = psk_hdr(false, d.csb_id, cs_count, map);
    let mut payloads = vec![
        Payload::Ext(Extension::KeyId(vec![
            KeyIdEntry::KeyDomain(d.key_domain_id),
            KeyIdEntry::Msk(d.msk_id),
            KeyIdEntry::Mtk(d.mtk_id),
        ])),
        Payload::T(Timestamp::Counter(d.counter)),
    ];
    if let Some(s) = &d.streaming {
        payloads.push(Payload::Sp(s.policy.clone()));
    }
    let key_data = KeyData {
        key_type: if d.salt.is_some() {
            KeyDataType::TEK_SALT
        } else {
            KeyDataType::TEK
        },
        key: d.mtk.as_bytes().to_vec(),
        salt: d.salt.as_ref().map(|s| s.as_bytes().to_vec()),
        validity: KeyValidity::Null,
    };
    seal(hdr, payloads, &[key_data], &keys.keys, d.counter)
}

/// An MTK message with the profile's structure whose MAC is not checked
/// yet, borrowing the datagram.
#[derive(Debug, Clone)]
pub struct UnverifiedMtk<'a> {
    view: MessageView<'a>,
    kemac: KemacView<'a>,
    rand: Option<&'a [u8]>,
    sp: Option<SecurityPolicyView<'a>>,
    key_domain_id: KeyDomainId,
    msk_id: MskId,
    mtk_id: MtkId,
    counter: u32,
}

impl<'a> UnverifiedMtk<'a> {
    /// Checks the structure of docs/profile.md §2.3 (any order; exactly one EXT
    /// with an MTK ID, T, KEMAC; at most one RAND and one SP; IDs ignored).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, MessageError> {
        Shape::parse(bytes, Self::from_shape)
    }

    /// [`Self::parse`] of a message already read.
    pub fn from_view(view: MessageView<'a>) -> Result<Self, MessageError> {
        Self::from_shape(view, &Shape::of(&view))
    }

    fn from_shape(view: MessageView<'a>, shape: &Shape<'a>) -> Result<Self, MessageError> {
        Shape::check_hdr(&view, DataType::PSK_INIT)?;
        shape.check_counts((0, 1), (0, 2), 1)?;
        let ids = shape.key_ids()?;
        let mtk_id = ids
            .mtk_id
            .ok_or(MessageError::Structure("an MTK message carries an MTK ID"))?;
        Ok(Self {
            key_domain_id: ids.key_domain_id,
            msk_id: ids.msk_id,
            mtk_id,
            counter: shape.counter()?,
            kemac: shape.kemac()?,
            rand: shape.rand,
            sp: shape.sp,
            view,
        })
    }

    /// Key Domain ID from the Key ID extension.
    pub fn key_domain_id(&self) -> KeyDomainId {
        self.key_domain_id
    }

    /// MSK ID from the Key ID extension: the MSK to verify with.
    pub fn msk_id(&self) -> MskId {
        self.msk_id
    }

    /// MTK ID from the Key ID extension.
    pub fn mtk_id(&self) -> MtkId {
        self.mtk_id
    }

    /// Counter from the T payload, for the replay check.
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// CSB ID from the common header.
    pub fn csb_id(&self) -> u32 {
        self.view.hdr().csb_id
    }

    /// The decoded MIKEY message.
    pub fn view(&self) -> &MessageView<'a> {
        &self.view
    }

    /// Verifies the MAC with the MSK's keys, then decrypts the MTK.
    pub fn verify(self, keys: &MtkKeys) -> Result<MtkMessage, MessageError> {
        let hdr = self.view.hdr();
        let keys = keys.for_message(hdr.csb_id, self.rand);
        let mut plain = PlainBuf::new();
        let chain = open(&self.view, &self.kemac, &keys, self.counter, &mut plain)?;
        let mut items = chain.iter();
        let (Some(kd), None) = (items.next(), items.next()) else {
            return Err(MessageError::KeyContent("exactly one Key data sub-payload"));
        };
        if !matches!(kd.key_type, KeyDataType::TEK | KeyDataType::TEK_SALT) {
            return Err(MessageError::KeyContent(
                "the MTK is carried as TEK or TEK+SALT",
            ));
        }
        let mtk = Mtk::from_slice(kd.key)
            .map_err(|_| MessageError::KeyContent("the MTK must be 16 octets"))?;
        let salt = match kd.salt {
            Some(s) => Some(
                Salt::from_slice(s)
                    .map_err(|_| MessageError::KeyContent("the MTK salt must be 14 octets"))?,
            ),
            None => None,
        };
        let srtp = match hdr.cs_id_map {
            CsIdMapView::SrtpId(entries) => entries.first(),
            _ => None,
        };
        Ok(MtkMessage {
            key_domain_id: self.key_domain_id,
            msk_id: self.msk_id,
            mtk_id: self.mtk_id,
            csb_id: hdr.csb_id,
            counter: self.counter,
            mtk,
            salt,
            srtp,
            sp: self.sp.map(SecurityPolicy::from),
        })
    }
}

/// A verified MTK message.
#[derive(Debug, Clone)]
pub struct MtkMessage {
    /// Key Domain ID from the Key ID extension.
    pub key_domain_id: KeyDomainId,
    /// MSK ID from the Key ID extension.
    pub msk_id: MskId,
    /// MTK ID from the Key ID extension.
    pub mtk_id: MtkId,
    /// CSB ID from the common header.
    pub csb_id: u32,
    /// Counter from the T payload.
    pub counter: u32,
    /// The MTK.
    pub mtk: Mtk,
    /// The salt of a TEK+SALT Key data sub-payload (the SRTP master salt in streaming).
    pub salt: Option<Salt>,
    /// The first SRTP-ID map entry of a streaming message.
    pub srtp: Option<SrtpIdEntry>,
    /// The SP payload, when present.
    pub sp: Option<SecurityPolicy>,
}

//! The MSK delivery message (docs/profile.md §2.1; TS 33.246 6.3.2.3): BM-SC → one
//! UE, protected with that UE's MUK.

use std::fmt;

use crate::crypto::{Msk, Muk, PrfKey, ProtectionKeys};
use crate::mikey::view::{KemacView, KeyDataChain, KeyValidityView, SecurityPolicyView};
use crate::mikey::{
    CsIdMap, DataType, EncrAlg, KeyDataRef, KeyDataType, KeyDomainId, KeyIdEntry, MacAlg,
    MessageView, MessageWriter, MskId, SecurityPolicy,
};

use super::error::{BuildError, MessageError};
use super::profile;
use super::protect::{PlainBuf, open, psk_hdr};
use super::shape::Shape;

/// What an MSK message does to the UE's stored MSK.
#[derive(Clone, PartialEq, Eq)]
pub enum MskUpdate {
    /// A new key with the MTK ID interval [SEQl, SEQu] in which it may be used.
    NewKey {
        /// The MSK.
        msk: Msk,
        /// SEQl: the lowest MTK ID the MSK may be used with.
        seql: u16,
        /// SEQu: the highest MTK ID the MSK may be used with.
        sequ: u16,
    },
    /// Key data len 0: only the validity interval changes (TS 33.246 6.3.2.3).
    ValidityOnly {
        /// The new SEQl.
        seql: u16,
        /// The new SEQu.
        sequ: u16,
    },
    /// Key data len 0 and SEQl > SEQu: the MSK is invalidated (TS 33.246 6.3.2.1B).
    Invalidate {
        /// SEQl as carried (greater than SEQu).
        seql: u16,
        /// SEQu as carried.
        sequ: u16,
    },
    /// Key Number 0 and no key data: the UE runs the MSK request procedure
    /// for the Key Group (TS 33.246 6.3.2.2.4).
    SolicitedPull,
}

impl fmt::Debug for MskUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NewKey { msk, seql, sequ } => f
                .debug_struct("NewKey")
                .field("msk", msk)
                .field("seql", seql)
                .field("sequ", sequ)
                .finish(),
            Self::ValidityOnly { seql, sequ } => {
                write!(f, "ValidityOnly({seql:#06x}..={sequ:#06x})")
            }
            Self::Invalidate { seql, sequ } => write!(f, "Invalidate({seql:#06x}, {sequ:#06x})"),
            Self::SolicitedPull => f.write_str("SolicitedPull"),
        }
    }
}

/// Inputs of an MSK message.
#[derive(Debug, Clone)]
pub struct MskDelivery {
    /// Key Domain ID of the Key ID extension.
    pub key_domain_id: KeyDomainId,
    /// MSK ID of the Key ID extension (Key Group part and Key Number).
    pub msk_id: MskId,
    /// HDR CSB ID; [`profile::csb_id_for`] the MSK ID by default.
    pub csb_id: u32,
    /// The BM-SC's counter for this MUK.
    pub counter: u32,
    /// Fresh random octets ([`profile::MSK_RAND_LEN`]).
    pub rand: Vec<u8>,
    /// IDi: the BM-SC FQDN.
    pub idi: Vec<u8>,
    /// IDr: the B-TID.
    pub idr: Vec<u8>,
    /// V flag: the BM-SC wants an acknowledgement (always false for a solicited pull).
    pub v: bool,
    /// What the message does: new key, validity update, invalidation or solicited pull.
    pub update: MskUpdate,
}

impl MskDelivery {
    /// A delivery with the profile's defaults: CSB ID = MSK ID, V = 1 except
    /// for a solicited pull.
    pub fn new(
        key_domain_id: KeyDomainId,
        msk_id: MskId,
        counter: u32,
        rand: Vec<u8>,
        idi: &str,
        idr: &str,
        update: MskUpdate,
    ) -> Self {
        let v = !matches!(update, MskUpdate::SolicitedPull);
        Self {
            key_domain_id,
            msk_id,
            csb_id: profile::csb_id_for(msk_id),
            counter,
            rand,
            idi: idi.as_bytes().to_vec(),
            idr: idr.as_bytes().to_vec(),
            v,
            update,
        }
    }
}

/// A MUK prepared for many messages: its HMAC key state is kept, so each
/// message's key derivation (fresh RAND every time) starts from it instead of
/// re-keying (the BM-SC keeps one per registered UE, the UE one per MUK).
#[derive(Clone)]
pub struct PreparedMuk(PrfKey);

impl PreparedMuk {
    /// Keys the HMAC state with `muk`.
    pub fn new(muk: &Muk) -> Self {
        Self(PrfKey::new(muk.as_bytes()))
    }

    /// The protection keys of one message (RFC 3830 §4.1.4).
    pub fn keys(&self, csb_id: u32, rand: &[u8]) -> ProtectionKeys {
        ProtectionKeys::derive_with(&self.0, csb_id, rand)
    }
}

impl fmt::Debug for PreparedMuk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PreparedMuk([REDACTED])")
    }
}

/// Builds an MSK message in the canonical order `HDR, EXT, T, RAND, IDi, IDr, KEMAC`.
pub fn build_msk(muk: &Muk, d: &MskDelivery) -> Result<Vec<u8>, BuildError> {
    build_msk_prepared(&PreparedMuk::new(muk), d)
}

/// [`build_msk`] with a prepared MUK.
pub fn build_msk_prepared(muk: &PreparedMuk, d: &MskDelivery) -> Result<Vec<u8>, BuildError> {
    build_msk_with(&muk.keys(d.csb_id, &d.rand), d)
}

/// Builds an MSK message with protection keys already derived from the MUK,
/// `d.csb_id` and `d.rand`.
///
/// The message is written field by field into one buffer of its final size
/// ([`MessageWriter`]); the Key data is encrypted in place, then the MAC is written over
/// every octet before it.
pub fn build_msk_with(keys: &ProtectionKeys, d: &MskDelivery) -> Result<Vec<u8>, BuildError> {
    let (v, key, (seql, sequ)) = match &d.update {
        MskUpdate::NewKey { msk, seql, sequ } => (d.v, Some(&msk.as_bytes()[..]), (*seql, *sequ)),
        MskUpdate::ValidityOnly { seql, sequ } => {
            if seql > sequ {
                return Err(BuildError::Invalid("a validity update needs SEQl <= SEQu"));
            }
            (d.v, Some(&[][..]), (*seql, *sequ))
        }
        MskUpdate::Invalidate { seql, sequ } => {
            if seql <= sequ {
                return Err(BuildError::Invalid("an invalidation needs SEQl > SEQu"));
            }
            (d.v, Some(&[][..]), (*seql, *sequ))
        }
        MskUpdate::SolicitedPull => {
            if d.msk_id.key_number != 0 {
                return Err(BuildError::Invalid("a solicited pull has Key Number 0"));
            }
            (false, None, (0, 0))
        }
    };
    if !matches!(d.update, MskUpdate::SolicitedPull) && d.msk_id.key_number == 0 {
        return Err(BuildError::Invalid(
            "Key Number 0 is reserved for the current MSK",
        ));
    }
    let (from, to) = (seql.to_be_bytes(), sequ.to_be_bytes());
    let key_data: Option<KeyDataRef<'_>> = key.map(|key| KeyDataRef {
        key_type: profile::MSK_KEY_DATA_TYPE,
        key,
        interval: Some((&from, &to)),
    });
    let items = key_data.as_slice();
    let len = MSK_FIXED_LEN
        + d.rand.len()
        + d.idi.len()
        + d.idr.len()
        + items.iter().map(|kd| kd.key.len() + 10).sum::<usize>();
    let mut w = MessageWriter::new(&psk_hdr(v, d.csb_id, 0, CsIdMap::Empty), len)?;
    w.key_ids(&[
        KeyIdEntry::KeyDomain(d.key_domain_id),
        KeyIdEntry::Msk(d.msk_id),
    ])?;
    w.counter(d.counter);
    w.rand(&d.rand)?;
    w.id(profile::ID_TYPE, &d.idi)?;
    w.id(profile::ID_TYPE, &d.idr)?;
    let f = w.kemac(EncrAlg::AES_CM_128, items, MacAlg::HMAC_SHA1_160)?;
    let bytes = w.as_mut_bytes();
    if let Some(encr) = bytes.get_mut(f.encr_data.0..f.encr_data.0 + f.encr_data.1) {
        keys.apply_keystream(d.csb_id, u64::from(d.counter), encr);
    }
    let (covered, field) = bytes.split_at_mut(f.mac.0);
    field.copy_from_slice(&keys.mac(&[covered]));
    Ok(w.into_bytes())
}

/// The octets of an MSK message besides RAND, IDi, IDr and the Key data: HDR 10, EXT 15
/// (Key Domain ID and MSK ID), T 6, RAND 2, two ID 4 each, KEMAC 5 + MAC 20.
const MSK_FIXED_LEN: usize = 10 + 15 + 6 + 2 + 4 + 4 + 5 + 20;

/// An MSK message whose structure is that of the profile but whose MAC has
/// not been checked, borrowing the datagram: only what is needed to find
/// the MUK and check the counter is exposed.
#[derive(Debug, Clone)]
pub struct UnverifiedMsk<'a> {
    view: MessageView<'a>,
    kemac: KemacView<'a>,
    rand: &'a [u8],
    idi: &'a [u8],
    idr: &'a [u8],
    sp: Option<SecurityPolicyView<'a>>,
    key_domain_id: KeyDomainId,
    msk_id: MskId,
    counter: u32,
}

impl<'a> UnverifiedMsk<'a> {
    /// Checks the structure of docs/profile.md §2.1 (any payload order; exactly
    /// one EXT, T, RAND, KEMAC, two IDs; at most one SP).
    pub fn parse(bytes: &'a [u8]) -> Result<Self, MessageError> {
        Shape::parse(bytes, Self::from_shape)
    }

    /// [`Self::parse`] of a message already read.
    pub fn from_view(view: MessageView<'a>) -> Result<Self, MessageError> {
        Self::from_shape(view, &Shape::of(&view))
    }

    fn from_shape(view: MessageView<'a>, shape: &Shape<'a>) -> Result<Self, MessageError> {
        Shape::check_hdr(&view, DataType::PSK_INIT)?;
        shape.check_counts((1, 1), (2, 2), 1)?;
        let ids = shape.key_ids()?;
        if ids.mtk_id.is_some() {
            return Err(MessageError::Structure("an MSK message carries no MTK ID"));
        }
        let [idi, idr] = shape.ids;
        Ok(Self {
            key_domain_id: ids.key_domain_id,
            msk_id: ids.msk_id,
            counter: shape.counter()?,
            kemac: shape.kemac()?,
            rand: shape.rand.unwrap_or_default(),
            idi: idi.unwrap_or_default(),
            idr: idr.unwrap_or_default(),
            sp: shape.sp,
            view,
        })
    }

    /// Key Domain ID from the Key ID extension.
    pub fn key_domain_id(&self) -> KeyDomainId {
        self.key_domain_id
    }

    /// MSK ID from the Key ID extension.
    pub fn msk_id(&self) -> MskId {
        self.msk_id
    }

    /// Counter from the T payload, for the replay check.
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// CSB ID from the common header.
    pub fn csb_id(&self) -> u32 {
        self.view.hdr().csb_id
    }

    /// V flag from the common header: an acknowledgement is asked for.
    pub fn v(&self) -> bool {
        self.view.hdr().v
    }

    /// IDi data (the BM-SC FQDN), the first ID payload.
    pub fn idi(&self) -> &'a [u8] {
        self.idi
    }

    /// IDr data (the B-TID), the second ID payload.
    pub fn idr(&self) -> &'a [u8] {
        self.idr
    }

    /// The RAND payload, from which the message's keys are derived.
    pub fn rand(&self) -> &'a [u8] {
        self.rand
    }

    /// The decoded MIKEY message.
    pub fn view(&self) -> &MessageView<'a> {
        &self.view
    }

    /// Verifies the MAC with `muk`, then decrypts and reads the key data.
    pub fn verify(self, muk: &Muk) -> Result<MskMessage, MessageError> {
        self.verify_prepared(&PreparedMuk::new(muk))
    }

    /// [`UnverifiedMsk::verify`] with a prepared MUK.
    pub fn verify_prepared(self, muk: &PreparedMuk) -> Result<MskMessage, MessageError> {
        let keys = muk.keys(self.csb_id(), self.rand());
        let mut plain = PlainBuf::new();
        let chain = open(&self.view, &self.kemac, &keys, self.counter, &mut plain)?;
        let update = read_update(chain, self.msk_id)?;
        Ok(MskMessage {
            key_domain_id: self.key_domain_id,
            msk_id: self.msk_id,
            csb_id: self.csb_id(),
            counter: self.counter,
            v: self.v(),
            idi: self.idi().to_vec(),
            idr: self.idr().to_vec(),
            sp: self.sp.map(SecurityPolicy::from),
            update,
            keys,
        })
    }
}

fn seq(bytes: &[u8]) -> Result<u16, MessageError> {
    <[u8; profile::SEQ_LEN]>::try_from(bytes)
        .map(u16::from_be_bytes)
        .map_err(|_| MessageError::KeyContent("SEQl/SEQu must be 2 octets"))
}

fn read_update(items: KeyDataChain<'_>, msk_id: MskId) -> Result<MskUpdate, MessageError> {
    let mut items = items.iter();
    let Some(kd) = items.next() else {
        return if msk_id.is_current() {
            Ok(MskUpdate::SolicitedPull)
        } else {
            Err(MessageError::KeyContent(
                "no key data and Key Number is not 0",
            ))
        };
    };
    if msk_id.is_current() {
        return Err(MessageError::KeyContent("key data under Key Number 0"));
    }
    if items.next().is_some() {
        return Err(MessageError::KeyContent(
            "more than one Key data sub-payload",
        ));
    }
    if !matches!(kd.key_type, KeyDataType::TGK | KeyDataType::TGK_SALT) {
        return Err(MessageError::KeyContent("the MSK is carried as TGK"));
    }
    let KeyValidityView::Interval { from, to } = kd.validity else {
        return Err(MessageError::KeyContent(
            "the MSK needs an Interval key validity",
        ));
    };
    let (seql, sequ) = (seq(from)?, seq(to)?);
    match kd.key.len() {
        0 if seql > sequ => Ok(MskUpdate::Invalidate { seql, sequ }),
        0 => Ok(MskUpdate::ValidityOnly { seql, sequ }),
        _ => {
            let msk = Msk::from_slice(kd.key)
                .map_err(|_| MessageError::KeyContent("the MSK must be 16 octets"))?;
            Ok(MskUpdate::NewKey { msk, seql, sequ })
        }
    }
}

/// A verified MSK message.
#[derive(Debug, Clone)]
pub struct MskMessage {
    /// Key Domain ID from the Key ID extension.
    pub key_domain_id: KeyDomainId,
    /// MSK ID from the Key ID extension.
    pub msk_id: MskId,
    /// CSB ID from the common header.
    pub csb_id: u32,
    /// Counter from the T payload.
    pub counter: u32,
    /// V flag: the BM-SC asks for an acknowledgement.
    pub v: bool,
    /// IDi: the BM-SC FQDN.
    pub idi: Vec<u8>,
    /// IDr: the B-TID.
    pub idr: Vec<u8>,
    /// An SP payload, stored by the receiver (TS 33.246 6.4.6.1 step 3).
    pub sp: Option<SecurityPolicy>,
    /// What the message does to the stored MSK.
    pub update: MskUpdate,
    /// The keys of this message, for its acknowledgement.
    pub(crate) keys: ProtectionKeys,
}

impl MskMessage {
    /// The protection keys derived for this message (its acknowledgement uses the auth key).
    pub fn keys(&self) -> &ProtectionKeys {
        &self.keys
    }
}

#[cfg(test)]
mod writer_equivalence {
    //! The streaming build of [`build_msk_with`] against the reference: the same message as a
    //! typed [`Message`], encoded by the codec and sealed by [`super::super::protect::seal`].

    use proptest::prelude::*;

    use super::*;
    use crate::crypto::Muk;
    use crate::mikey::{Extension, Id, KeyData, KeyValidity, Payload, Timestamp};

    fn reference(keys: &ProtectionKeys, d: &MskDelivery) -> Vec<u8> {
        let interval = |seql: u16, sequ: u16| KeyValidity::Interval {
            from: seql.to_be_bytes().to_vec(),
            to: sequ.to_be_bytes().to_vec(),
        };
        let key_data = |key: Vec<u8>, seql, sequ| KeyData {
            key_type: profile::MSK_KEY_DATA_TYPE,
            key,
            salt: None,
            validity: interval(seql, sequ),
        };
        let (v, items) = match &d.update {
            MskUpdate::NewKey { msk, seql, sequ } => {
                (d.v, vec![key_data(msk.as_bytes().to_vec(), *seql, *sequ)])
            }
            MskUpdate::ValidityOnly { seql, sequ } | MskUpdate::Invalidate { seql, sequ } => {
                (d.v, vec![key_data(Vec::new(), *seql, *sequ)])
            }
            MskUpdate::SolicitedPull => (false, Vec::new()),
        };
        let id = |data: &[u8]| {
            Payload::Id(Id {
                id_type: profile::ID_TYPE,
                data: data.to_vec(),
            })
        };
        let payloads = vec![
            Payload::Ext(Extension::KeyId(vec![
                KeyIdEntry::KeyDomain(d.key_domain_id),
                KeyIdEntry::Msk(d.msk_id),
            ])),
            Payload::T(Timestamp::Counter(d.counter)),
            Payload::Rand(d.rand.clone()),
            id(&d.idi),
            id(&d.idr),
        ];
        let hdr = psk_hdr(v, d.csb_id, 0, CsIdMap::Empty);
        super::super::protect::seal(hdr, payloads, &items, keys, d.counter).expect("reference")
    }

    fn update() -> impl Strategy<Value = MskUpdate> {
        prop_oneof![
            (any::<[u8; 16]>(), any::<u16>(), any::<u16>()).prop_map(|(k, seql, sequ)| {
                MskUpdate::NewKey {
                    msk: Msk::from_bytes(k),
                    seql,
                    sequ,
                }
            }),
            (0u16..0x8000, 0u16..0x8000).prop_map(|(a, b)| MskUpdate::ValidityOnly {
                seql: a.min(b),
                sequ: a.max(b),
            }),
            (1u16..=u16::MAX).prop_map(|seql| MskUpdate::Invalidate { seql, sequ: 0 }),
            Just(MskUpdate::SolicitedPull),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn streaming_build_equals_the_typed_message_encoding(
            muk in any::<[u8; 32]>(),
            domain in any::<[u8; 3]>(),
            group in any::<u16>(),
            number in 1u16..,
            counter in any::<u32>(),
            rand in proptest::collection::vec(any::<u8>(), 16..=40),
            idi in proptest::collection::vec(any::<u8>(), 0..80),
            idr in proptest::collection::vec(any::<u8>(), 0..120),
            update in update(),
        ) {
            let key_number = if update == MskUpdate::SolicitedPull { 0 } else { number };
            let mut d = MskDelivery::new(
                KeyDomainId(domain),
                MskId::new(group, key_number),
                counter,
                rand,
                "",
                "",
                update,
            );
            d.idi = idi;
            d.idr = idr;
            let keys = PreparedMuk::new(&Muk::from_bytes(muk)).keys(d.csb_id, &d.rand);
            let built = build_msk_with(&keys, &d).expect("build");
            prop_assert_eq!(&built, &reference(&keys, &d));
            // Sized exactly: the clear Key data was never copied by a reallocation.
            prop_assert_eq!(built.capacity(), built.len());
        }
    }
}

//! Helpers of the UE receiver tests: a toy BM-SC that builds messages with
//! the crate's builders, the vector identities, and event draining.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use mbms_keys::crypto::{Msk, Mtk, Muk, ProtectionKeys, Salt};
use mbms_keys::mbms::{
    KeyDomainId, MskDelivery, MskId, MskUpdate, MtkDelivery, MtkId, MtkKeys, MukId, build_msk,
    build_mtk, profile,
};
use mbms_keys::mikey::Message;
use mbms_keys::ue::{DiscardReason, Event, Receiver, ReceiverConfig};

use crate::common;

pub const IDI: &str = "bmsc.mnc001.mcc001.pub.3gppnetwork.org";
pub const BTID: &str = "ICEiIyQlJicoKSorLC0uLw==@bsf.mnc001.mcc001.pub.3gppnetwork.org";
pub const SECOND_BTID: &str = "second-btid@bsf.mnc001.mcc001.pub.3gppnetwork.org";
pub const SEC: Duration = Duration::from_secs(1);

pub fn kd() -> KeyDomainId {
    "00f110".parse().unwrap()
}

pub fn id(key_group: u16, key_number: u16) -> MskId {
    MskId::new(key_group, key_number)
}

pub fn msk(n: u8) -> Msk {
    Msk::from_bytes([n; 16])
}

pub fn mtk(n: u8) -> Mtk {
    Mtk::from_bytes([n; 16])
}

/// The MUK of the vectors (30..4f).
pub fn vector_muk() -> Muk {
    Muk::from_hex(
        common::load("msk-message-normal")["inputs"]["muk"]
            .as_str()
            .unwrap(),
    )
    .unwrap()
}

/// The MUK ID of the vectors: IDi ‖ IDr.
pub fn vector_muk_id() -> MukId {
    MukId::new(IDI.as_bytes(), BTID.as_bytes())
}

/// The message octets of a vector.
pub fn vector(name: &str) -> Vec<u8> {
    common::hex_field(&common::load(name), &["message"])
}

/// A receiver with the default config and a fixed "random" source.
pub fn receiver() -> Receiver {
    receiver_with(ReceiverConfig::default(), 0)
}

pub fn receiver_with(config: ReceiverConfig, random: u64) -> Receiver {
    Receiver::new(config, Box::new(mbms_keys::crypto::Fixed(random)))
}

/// The MSK IDs of the `MskRequestNeeded` events among `events`, in order.
pub fn requests(events: &[Event]) -> Vec<MskId> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::MskRequestNeeded { msk_id, .. } => Some(*msk_id),
            _ => None,
        })
        .collect()
}

pub fn drain(rx: &mut Receiver) -> Vec<Event> {
    std::iter::from_fn(|| rx.poll_event()).collect()
}

pub fn discards(events: &[Event]) -> Vec<DiscardReason> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Discarded { reason } => Some(*reason),
            _ => None,
        })
        .collect()
}

/// The BM-SC side of one UE: its MUK, identities and counter.
pub struct Bmsc {
    pub muk: Muk,
    pub idr: String,
    pub counter: u32,
}

impl Bmsc {
    pub fn new(muk: Muk, idr: &str) -> Self {
        Self {
            muk,
            idr: idr.to_string(),
            counter: 0,
        }
    }

    /// The BM-SC of the vectors, with the UE's receiver holding its MUK.
    pub fn vectors(rx: &mut Receiver) -> Self {
        let b = Self::new(vector_muk(), BTID);
        rx.set_muk(b.muk_id(), b.muk.clone());
        b
    }

    pub fn muk_id(&self) -> MukId {
        MukId::new(IDI.as_bytes(), self.idr.as_bytes())
    }

    /// The next message (counter + 1) with the profile's default V.
    pub fn push(&mut self, msk_id: MskId, update: MskUpdate) -> Vec<u8> {
        self.counter = self.counter.wrapping_add(1);
        self.at(self.counter, msk_id, update)
    }

    pub fn new_key(&mut self, msk_id: MskId, key: &Msk, seql: u16, sequ: u16) -> Vec<u8> {
        self.push(
            msk_id,
            MskUpdate::NewKey {
                msk: key.clone(),
                seql,
                sequ,
            },
        )
    }

    /// A message with an explicit counter (the BM-SC counter is not moved).
    pub fn at(&self, counter: u32, msk_id: MskId, update: MskUpdate) -> Vec<u8> {
        let mut rand = [0x60u8; profile::MSK_RAND_LEN];
        rand[..4].copy_from_slice(&counter.to_be_bytes());
        let d = MskDelivery::new(kd(), msk_id, counter, rand.to_vec(), IDI, &self.idr, update);
        build_msk(&self.muk, &d).unwrap()
    }

    /// Like [`Bmsc::at`] with V forced.
    pub fn at_v(&self, counter: u32, msk_id: MskId, update: MskUpdate, v: bool) -> Vec<u8> {
        let bytes = self.at(counter, msk_id, update);
        remac(self.muk.as_bytes(), &bytes, |m| m.hdr.v = v)
    }
}

/// An MTK message (download form) under `key`.
pub fn mtk_msg(key: &Msk, msk_id: MskId, mtk_id: u16, counter: u32, t: &Mtk) -> Vec<u8> {
    mtk_msg_salted(key, msk_id, mtk_id, counter, t, None)
}

pub fn mtk_msg_salted(
    key: &Msk,
    msk_id: MskId,
    mtk_id: u16,
    counter: u32,
    t: &Mtk,
    salt: Option<Salt>,
) -> Vec<u8> {
    let csb_id = profile::csb_id_for(msk_id);
    let d = MtkDelivery {
        key_domain_id: kd(),
        msk_id,
        csb_id,
        mtk_id: MtkId(mtk_id),
        counter,
        mtk: t.clone(),
        salt,
        streaming: None,
    };
    build_mtk(&MtkKeys::new(key, csb_id), &d).unwrap()
}

/// Edits a message's unprotected fields and recomputes its MAC under
/// `inkey`, as a BM-SC holding the key could (the Encr data stays valid as
/// long as CSB ID and counter are unchanged).
pub fn remac(inkey: &[u8], bytes: &[u8], edit: impl FnOnce(&mut Message)) -> Vec<u8> {
    let mut m = Message::decode(bytes).unwrap().into_message();
    edit(&mut m);
    let rand = m.rand().unwrap_or_default().to_vec();
    let keys = ProtectionKeys::derive(inkey, m.hdr.csb_id, &rand);
    let (mut out, mac) = m.encode_with_mac_field().unwrap();
    let offset = mac.unwrap().offset;
    let tag = keys.mac(&[&out[..offset]]);
    out[offset..offset + tag.len()].copy_from_slice(&tag);
    out
}

/// A virtual epoch: the tests read the clock once and add durations.
pub fn epoch() -> Instant {
    Instant::now()
}

/// A message of `mikey-extra-messages.json` by name.
pub fn extra(name: &str) -> Vec<u8> {
    common::all_messages()
        .into_iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("{name}"))
        .1
}

//! The MSK acknowledgement (docs/profile.md §2.2): the RFC 3830 PSK verification
//! message a UE returns when the MSK message has V = 1.

use crate::crypto::{MAC_LEN, ProtectionKeys};
use crate::mikey::{
    CsIdMap, DataType, Hdr, Id, MIKEY_VERSION, MacAlg, Message, MessageView, Payload, PrfFunc,
    Timestamp, Verification,
};

use super::error::{BuildError, MessageError};
use super::msk::MskMessage;
use super::profile;
use super::protect::final_mac;
use super::shape::Shape;

/// What both ends know of the acknowledged MSK message: the identities,
/// CSB ID, counter and its protection keys (RFC 3830 §5.2: the
/// verification MAC uses the auth key of the exchange).
#[derive(Debug, Clone)]
pub struct AckContext {
    /// CSB ID of the acknowledged MSK message.
    pub csb_id: u32,
    /// Counter (T payload) of the acknowledged MSK message.
    pub counter: u32,
    /// IDi of the MSK message: the BM-SC FQDN.
    pub idi: Vec<u8>,
    /// IDr of the MSK message: the B-TID.
    pub idr: Vec<u8>,
    keys: ProtectionKeys,
}

impl AckContext {
    /// A context from the MSK message's protection keys, CSB ID, counter and identities.
    pub fn new(keys: ProtectionKeys, csb_id: u32, counter: u32, idi: &[u8], idr: &[u8]) -> Self {
        Self {
            csb_id,
            counter,
            idi: idi.to_vec(),
            idr: idr.to_vec(),
            keys,
        }
    }

    /// The context of a verified MSK message.
    pub fn of(msg: &MskMessage) -> Self {
        Self::new(
            msg.keys.clone(),
            msg.csb_id,
            msg.counter,
            &msg.idi,
            &msg.idr,
        )
    }

    /// MAC = HMAC-SHA-1(auth key, ack-without-MAC ‖ IDi ‖ IDr ‖ T value as transported).
    fn mac(&self, ack_without_mac: &[u8]) -> [u8; MAC_LEN] {
        self.keys.mac(&[
            ack_without_mac,
            &self.idi,
            &self.idr,
            &self.counter.to_be_bytes(),
        ])
    }
}

/// Builds the acknowledgement `HDR, T, IDr, V`.
pub fn build_ack(ctx: &AckContext) -> Result<Vec<u8>, BuildError> {
    let hdr = Hdr {
        version: MIKEY_VERSION,
        data_type: DataType::PSK_VERIFY,
        v: false,
        prf_func: PrfFunc::MIKEY_1,
        csb_id: ctx.csb_id,
        cs_count: 0,
        cs_id_map: CsIdMap::Empty,
    };
    let mut payloads = vec![Payload::T(Timestamp::Counter(ctx.counter))];
    if profile::ACK_CARRIES_IDR {
        payloads.push(Payload::Id(Id {
            id_type: profile::ID_TYPE,
            data: ctx.idr.clone(),
        }));
    }
    payloads.push(Payload::V(Verification {
        auth_alg: MacAlg::HMAC_SHA1_160,
        ver_data: vec![0; MAC_LEN],
    }));
    let (mut bytes, mac) = Message { hdr, payloads }.encode_with_mac_field()?;
    let offset = mac
        .map(|m| m.offset)
        .ok_or(BuildError::Invalid("no V field"))?;
    let (covered, field) = bytes.split_at_mut(offset);
    field.copy_from_slice(&ctx.mac(covered));
    Ok(bytes)
}

/// An acknowledgement whose verification MAC is not checked yet, borrowing
/// the datagram: enough to match it to an outstanding push by (B-TID, CSB
/// ID, counter).
#[derive(Debug, Clone)]
pub struct UnverifiedAck<'a> {
    view: MessageView<'a>,
    idr: Option<&'a [u8]>,
    counter: u32,
}

impl<'a> UnverifiedAck<'a> {
    /// Parses a datagram as an acknowledgement `HDR, T, [IDr], V` (PSK verification message,
    /// HMAC-SHA-1-160) without checking its MAC.
    ///
    /// # Errors
    /// [`MessageError`] when it does not decode or is not shaped as an acknowledgement.
    pub fn parse(bytes: &'a [u8]) -> Result<Self, MessageError> {
        Shape::parse(bytes, |view, shape| {
            Shape::check_hdr(&view, DataType::PSK_VERIFY)?;
            shape.check_ack_counts()?;
            let counter = shape.counter()?;
            match shape.v {
                Some(v) if v.auth_alg == MacAlg::HMAC_SHA1_160 => {}
                _ => return Err(MessageError::Structure("V auth alg is not HMAC-SHA-1-160")),
            }
            Ok(Self {
                view,
                idr: shape.ids[0],
                counter,
            })
        })
    }

    /// CSB ID from the common header.
    pub fn csb_id(&self) -> u32 {
        self.view.hdr().csb_id
    }

    /// Counter from the T payload.
    pub fn counter(&self) -> u32 {
        self.counter
    }

    /// IDr data when the acknowledgement carries it.
    pub fn idr(&self) -> Option<&'a [u8]> {
        self.idr
    }

    /// Checks that it acknowledges `ctx`'s message and that its MAC verifies.
    pub fn verify(self, ctx: &AckContext) -> Result<AckMessage, MessageError> {
        if self.csb_id() != ctx.csb_id || self.counter != ctx.counter {
            return Err(MessageError::Structure("acknowledges another message"));
        }
        if self.idr().is_some_and(|idr| idr != ctx.idr.as_slice()) {
            return Err(MessageError::Structure("acknowledges another B-TID"));
        }
        let (input, tag) = final_mac(&self.view)?;
        let ok = ctx.keys.verify_mac(
            &[input, &ctx.idi, &ctx.idr, &ctx.counter.to_be_bytes()],
            tag,
        );
        if !ok {
            return Err(MessageError::BadMac);
        }
        Ok(AckMessage {
            csb_id: ctx.csb_id,
            counter: ctx.counter,
        })
    }
}

/// A verified acknowledgement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AckMessage {
    /// CSB ID of the acknowledged MSK message.
    pub csb_id: u32,
    /// Counter of the acknowledged MSK message.
    pub counter: u32,
}

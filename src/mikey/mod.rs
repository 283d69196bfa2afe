//! The MIKEY wire codec: RFC 3830 payloads and the RFC 4563 MBMS extensions.
//!
//! Decoding is strict and total: every input either yields a [`MessageView`]
//! (read in place, nothing copied or allocated) and its owned copy
//! [`Received`], or a [`DecodeError`] naming the payload, the offset and the
//! reason; it never panics, loops or allocates more than the input's length.
//! Encoding derives the next-payload chain from the payload order, so that
//! `decode → encode` gives back the input octet for octet.
//!
//! No cryptography here: [`Received`] keeps the octets as received and where
//! the MAC field lies, for the verifiers in `crate::mbms`.

// No panic in non-test code (clippy.toml allows these in tests):
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![deny(clippy::indexing_slicing, clippy::panic)]
#![warn(missing_docs)]

mod error;
mod ext;
mod hdr;
mod kemac;
mod keyid;
mod payload;
mod put;
mod wire;
mod writer;

pub mod describe;
#[cfg(feature = "fuzzing")]
pub mod fuzzing;
pub mod view;

pub use error::{DecodeError, EncodeError, PayloadName, Reason};
pub use ext::{Extension, KeyIdEntry};
pub use hdr::{CsIdMap, GenericIdEntry, Hdr, MIKEY_VERSION, SrtpIdEntry};
pub use kemac::{Kemac, KeyData, KeyValidity};
pub use keyid::{IdParseError, KeyDomainId, MskId, MtkId};
pub use payload::{
    Cert, Chash, Dh, ECCSI_SIGNATURE_LEN, EccsiParts, ErrorPayload, Id, Idr, MacField, Payload,
    Pke, PolicyParam, Sakke, SecurityPolicy, Sign, Timestamp, Verification,
};
pub use view::MessageView;
pub use wire::{
    CertType, CsIdMapType, DataType, DhGroup, EncrAlg, ErrNo, ExtType, HashFunc, IdRole, IdType,
    KeyDataType, KeyIdType, KvType, MacAlg, PayloadType, PrfFunc, ProtType, SakkeIdScheme,
    SakkeParams, SignType, SrtpParam, TsType,
};
pub use writer::{KemacFields, KeyDataRef, MessageWriter};

/// A MIKEY message: the header and the payloads in wire order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// The common header.
    pub hdr: Hdr,
    /// The payloads after HDR, in wire order.
    pub payloads: Vec<Payload>,
}

/// A decoded datagram: the message, the octets as received, and the offsets
/// of each payload and of the MAC/verification field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Received {
    message: Message,
    bytes: Vec<u8>,
    /// Start offset of each payload of `message.payloads`.
    offsets: Vec<usize>,
    mac: Option<MacField>,
}

impl Received {
    /// The decoded message.
    pub fn message(&self) -> &Message {
        &self.message
    }

    /// The decoded message, the rest dropped.
    pub fn into_message(self) -> Message {
        self.message
    }

    /// The octets exactly as received.
    pub fn bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// Start offset of payload `i` (HDR is at offset 0 and not counted).
    pub fn payload_offset(&self, i: usize) -> Option<usize> {
        self.offsets.get(i).copied()
    }

    /// The MAC/signature field (of KEMAC, V or SIGN), if the message has one.
    pub fn mac_field(&self) -> Option<MacField> {
        self.mac
    }

    /// The octets the MAC covers: everything before the MAC field
    /// (RFC 3830 §5.2). `None` when the message has no MAC field.
    pub fn mac_input(&self) -> Option<&[u8]> {
        self.mac.and_then(|m| self.bytes.get(..m.offset))
    }

    /// The MAC field octets as received.
    pub fn mac_value(&self) -> Option<&[u8]> {
        self.mac
            .and_then(|m| self.bytes.get(m.offset..m.offset.checked_add(m.len)?))
    }
}

impl Message {
    /// Decodes one complete datagram. Trailing octets after the last payload
    /// are an error. The owned copy of [`MessageView::decode`].
    pub fn decode(input: &[u8]) -> Result<Received, DecodeError> {
        view::decode_owned(input)
    }

    /// Encodes the message, deriving every next-payload field.
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        Ok(self.encode_with_mac_field()?.0)
    }

    /// Encodes the message and says where the last MAC/signature field lies,
    /// so that a builder can compute the MAC over the octets before it and
    /// write it in place.
    pub fn encode_with_mac_field(&self) -> Result<(Vec<u8>, Option<MacField>), EncodeError> {
        let mut out = Vec::with_capacity(self.encoded_len_hint());
        let first = self
            .payloads
            .first()
            .map_or(PayloadType::LAST, Payload::payload_type);
        self.hdr.encode(first, &mut out)?;
        let mut mac = None;
        for (i, p) in self.payloads.iter().enumerate() {
            let next = self
                .payloads
                .get(i + 1)
                .map_or(PayloadType::LAST, Payload::payload_type);
            p.encode(next, &mut out)?;
            let field_len = match p {
                Payload::Kemac(k) => Some(k.mac.len()),
                Payload::V(v) => Some(v.ver_data.len()),
                Payload::Sign(s) => Some(s.signature.len()),
                _ => None,
            };
            if let Some(len) = field_len {
                mac = Some(MacField {
                    payload: p.payload_type(),
                    offset: out.len() - len,
                    len,
                });
            }
        }
        Ok((out, mac))
    }

    fn encoded_len_hint(&self) -> usize {
        10 + 48 * self.payloads.len()
    }

    /// The payloads of one type, in wire order.
    pub fn payloads_of(&self, t: PayloadType) -> impl Iterator<Item = &Payload> {
        self.payloads.iter().filter(move |p| p.payload_type() == t)
    }

    /// The first T payload.
    pub fn timestamp(&self) -> Option<Timestamp> {
        self.payloads.iter().find_map(|p| match p {
            Payload::T(t) => Some(*t),
            _ => None,
        })
    }

    /// The first RAND payload.
    pub fn rand(&self) -> Option<&[u8]> {
        self.payloads.iter().find_map(|p| match p {
            Payload::Rand(r) => Some(r.as_slice()),
            _ => None,
        })
    }

    /// The ID payloads in wire order (the first is IDi, the second IDr when
    /// both are present, RFC 3830 §3.1).
    pub fn ids(&self) -> impl Iterator<Item = &Id> {
        self.payloads.iter().filter_map(|p| match p {
            Payload::Id(id) => Some(id),
            _ => None,
        })
    }

    /// The IDR payloads in wire order.
    pub fn idrs(&self) -> impl Iterator<Item = &Idr> {
        self.payloads.iter().filter_map(|p| match p {
            Payload::Idr(idr) => Some(idr),
            _ => None,
        })
    }

    /// The first IDR payload of `role`.
    pub fn idr(&self, role: IdRole) -> Option<&Idr> {
        self.idrs().find(|idr| idr.role == role)
    }

    /// The first SAKKE payload.
    pub fn sakke(&self) -> Option<&Sakke> {
        self.payloads.iter().find_map(|p| match p {
            Payload::Sakke(s) => Some(s),
            _ => None,
        })
    }

    /// The first KEMAC payload.
    pub fn kemac(&self) -> Option<&Kemac> {
        self.payloads.iter().find_map(|p| match p {
            Payload::Kemac(k) => Some(k),
            _ => None,
        })
    }

    /// The first General Extension payload of type Key ID.
    pub fn key_id_ext(&self) -> Option<&[KeyIdEntry]> {
        self.payloads.iter().find_map(|p| match p {
            Payload::Ext(e @ Extension::KeyId(_)) => Some(e.key_ids()),
            _ => None,
        })
    }
}

#[cfg(test)]
mod tests;

//! The General Extension payload (RFC 3830 §6.15) read in place, with the
//! RFC 4563 Key ID sub-payloads iterated from the datagram.

use nom::Parser;

use super::fail::{Fail, Res};
use super::field::{bytes, items, len8_bytes, list_field, uint8, uint16};
use crate::mikey::error::PayloadName;
use crate::mikey::keyid::{KeyDomainId, MskId, MtkId};
use crate::mikey::wire::{ExtType, KeyIdType};

/// A General Extension payload, borrowing its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionView<'a> {
    /// Type 3, RFC 4563 Key ID.
    KeyId(KeyIdEntries<'a>),
    /// Any other extension type, as raw data.
    Other {
        /// The extension type.
        ext_type: ExtType,
        /// The extension data.
        data: &'a [u8],
    },
}

/// The Key ID sub-payloads of a Key ID extension, checked when the message
/// was decoded and read again on each iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyIdEntries<'a>(&'a [u8]);

/// One Key ID sub-payload, as [`crate::mikey::KeyIdEntry`]: typed for a
/// known type with the profile's length, raw otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyIdEntryView<'a> {
    /// Type 0, the MBMS Key Domain ID, of its 3-octet length.
    KeyDomain(KeyDomainId),
    /// Type 1, the MSK ID, of its 4-octet length.
    Msk(MskId),
    /// Type 2, the MTK ID, of its 2-octet length.
    Mtk(MtkId),
    /// Another type, or a known type of another length, raw.
    Other {
        /// The Key ID Type.
        id_type: KeyIdType,
        /// The Key ID.
        value: &'a [u8],
    },
}

impl<'a> ExtensionView<'a> {
    /// The extension type (3 for Key ID).
    pub fn ext_type(&self) -> ExtType {
        match self {
            Self::KeyId(_) => ExtType::KEY_ID,
            Self::Other { ext_type, .. } => *ext_type,
        }
    }

    /// Parses `Type ‖ Length (16) ‖ Data`; the data of a Key ID extension
    /// must be Key ID sub-payloads to its end.
    pub(crate) fn parse(i: &'a [u8]) -> Res<'a, Self> {
        let (i, (ext_type, len)) =
            (uint8("EXT type").map(ExtType), uint16("EXT length")).parse_complete(i)?;
        let len = usize::from(len);
        if ext_type != ExtType::KEY_ID {
            let (i, data) = bytes("EXT data", len).parse_complete(i)?;
            return Ok((i, Self::Other { ext_type, data }));
        }
        let (i, entries) = list_field("EXT data", len, PayloadName::KeyId, KeyIdEntries::tlv())
            .parse_complete(i)?;
        Ok((i, Self::KeyId(KeyIdEntries(entries))))
    }
}

impl<'a> KeyIdEntries<'a> {
    /// `Key ID Type ‖ Key ID Length ‖ Key ID`.
    fn tlv() -> impl Parser<&'a [u8], Output = (KeyIdType, &'a [u8]), Error = Fail> {
        (
            uint8("Key ID Type").map(KeyIdType),
            len8_bytes("Key ID Length", "Key ID"),
        )
    }

    /// An entry typed when its type is known and its length the profile's.
    fn typed(id_type: KeyIdType, value: &'a [u8]) -> KeyIdEntryView<'a> {
        let typed = match id_type {
            KeyIdType::KEY_DOMAIN_ID => value
                .try_into()
                .ok()
                .map(|b| KeyIdEntryView::KeyDomain(KeyDomainId(b))),
            KeyIdType::MSK_ID => value
                .try_into()
                .ok()
                .map(|b| KeyIdEntryView::Msk(MskId::from_bytes(b))),
            KeyIdType::MTK_ID => value
                .try_into()
                .ok()
                .map(|b| KeyIdEntryView::Mtk(MtkId(u16::from_be_bytes(b)))),
            _ => None,
        };
        typed.unwrap_or(KeyIdEntryView::Other { id_type, value })
    }

    /// The sub-payloads, in wire order.
    pub fn iter(&self) -> impl Iterator<Item = KeyIdEntryView<'a>> + Clone + 'a {
        // The entries were checked when the message was parsed.
        items(self.0, Self::tlv).map(|(id_type, value)| Self::typed(id_type, value))
    }
}

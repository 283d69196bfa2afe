//! The General Extension payload (RFC 3830 §6.15) read in place, with the
//! RFC 4563 Key ID sub-payloads iterated from the datagram.

use crate::mikey::DecodeError;
use crate::mikey::error::PayloadName;
use crate::mikey::keyid::{KeyDomainId, MskId, MtkId};
use crate::mikey::reader::Reader;
use crate::mikey::wire::{ExtType, KeyIdType};

/// A General Extension payload, borrowing its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionView<'a> {
    /// Type 3, RFC 4563 Key ID.
    KeyId(KeyIdEntries<'a>),
    /// Any other extension type, as raw data.
    Other { ext_type: ExtType, data: &'a [u8] },
}

/// The Key ID sub-payloads of a Key ID extension, checked when the message
/// was decoded and read again on each iteration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyIdEntries<'a>(&'a [u8]);

/// One Key ID sub-payload, as [`crate::mikey::KeyIdEntry`]: typed for a
/// known type with the profile's length, raw otherwise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyIdEntryView<'a> {
    KeyDomain(KeyDomainId),
    Msk(MskId),
    Mtk(MtkId),
    Other { id_type: KeyIdType, value: &'a [u8] },
}

impl<'a> ExtensionView<'a> {
    pub fn ext_type(&self) -> ExtType {
        match self {
            Self::KeyId(_) => ExtType::KEY_ID,
            Self::Other { ext_type, .. } => *ext_type,
        }
    }

    pub(crate) fn decode(r: &mut Reader<'a>) -> Result<Self, DecodeError> {
        let ext_type = ExtType(r.u8("EXT type")?);
        let len = usize::from(r.u16("EXT length")?);
        let mut data = r.sub("EXT data", len, PayloadName::KeyId)?;
        let all = data.rest();
        if ext_type != ExtType::KEY_ID {
            return Ok(Self::Other {
                ext_type,
                data: all,
            });
        }
        while !data.is_empty() {
            KeyIdEntries::tlv(&mut data)?;
        }
        Ok(Self::KeyId(KeyIdEntries(all)))
    }
}

impl<'a> KeyIdEntries<'a> {
    /// Reads `Key ID Type ‖ Key ID Length ‖ Key ID`.
    fn tlv(r: &mut Reader<'a>) -> Result<(KeyIdType, &'a [u8]), DecodeError> {
        let id_type = KeyIdType(r.u8("Key ID Type")?);
        let id_len = usize::from(r.u8("Key ID Length")?);
        Ok((id_type, r.bytes("Key ID", id_len)?))
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

    pub fn iter(&self) -> impl Iterator<Item = KeyIdEntryView<'a>> + Clone + 'a {
        let mut r = Reader::new(self.0, 0, PayloadName::KeyId);
        // The entries were checked when the message was decoded.
        std::iter::from_fn(move || {
            let (id_type, value) = Self::tlv(&mut r).ok()?;
            Some(Self::typed(id_type, value))
        })
    }
}

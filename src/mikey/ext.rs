//! The General Extension payload (RFC 3830 §6.15) and the RFC 4563 Key ID
//! extension (type 3) with its typed sub-payloads.

use super::error::EncodeError;
use super::keyid::{KeyDomainId, MskId, MtkId};
use super::put::{put_len8, put_len16, put_with_len16};
use super::wire::{ExtType, KeyIdType};

/// A General Extension payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Extension {
    /// Type 3, RFC 4563 Key ID, decoded into sub-payloads.
    KeyId(Vec<KeyIdEntry>),
    /// Any other extension type, kept as raw data.
    Other {
        /// The extension type.
        ext_type: ExtType,
        /// The extension data.
        data: Vec<u8>,
    },
}

/// One Key ID sub-payload: `Key ID Type (1) ‖ Key ID Length (1) ‖ Key ID`.
/// A known type with the profile's length is typed; anything else is raw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyIdEntry {
    /// Type 0, the MBMS Key Domain ID, of its 3-octet length.
    KeyDomain(KeyDomainId),
    /// Type 1, the MSK ID, of its 4-octet length.
    Msk(MskId),
    /// Type 2, the MTK ID, of its 2-octet length.
    Mtk(MtkId),
    /// Another type, or a known type of another length, kept raw.
    Other {
        /// The Key ID Type.
        id_type: KeyIdType,
        /// The Key ID.
        value: Vec<u8>,
    },
}

impl KeyIdEntry {
    /// The Key ID Type of the sub-payload.
    pub fn id_type(&self) -> KeyIdType {
        match self {
            Self::KeyDomain(_) => KeyIdType::KEY_DOMAIN_ID,
            Self::Msk(_) => KeyIdType::MSK_ID,
            Self::Mtk(_) => KeyIdType::MTK_ID,
            Self::Other { id_type, .. } => *id_type,
        }
    }

    /// Appends `Key ID Type ‖ Key ID Length ‖ Key ID`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.id_type().0);
        let (msk, mtk);
        let value: &[u8] = match self {
            Self::KeyDomain(id) => &id.0,
            Self::Msk(id) => {
                msk = id.to_bytes();
                &msk
            }
            Self::Mtk(id) => {
                mtk = id.0.to_be_bytes();
                &mtk
            }
            Self::Other { value, .. } => value,
        };
        put_len8(out, "Key ID", value.len())?;
        out.extend_from_slice(value);
        Ok(())
    }
}

impl Extension {
    /// The extension type (3 for Key ID).
    pub fn ext_type(&self) -> ExtType {
        match self {
            Self::KeyId(_) => ExtType::KEY_ID,
            Self::Other { ext_type, .. } => *ext_type,
        }
    }

    /// The Key ID sub-payloads, empty for another extension type.
    pub fn key_ids(&self) -> &[KeyIdEntry] {
        match self {
            Self::KeyId(entries) => entries,
            Self::Other { .. } => &[],
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Self::Other { ext_type, data } => {
                out.push(ext_type.0);
                put_len16(out, "EXT data", data.len())?;
                out.extend_from_slice(data);
                Ok(())
            }
            Self::KeyId(entries) => encode_key_id_ext(entries, out),
        }
    }
}

/// The body of a Key ID extension (type, length, `entries`), after its next-payload octet.
pub(crate) fn encode_key_id_ext(
    entries: &[KeyIdEntry],
    out: &mut Vec<u8>,
) -> Result<(), EncodeError> {
    out.push(ExtType::KEY_ID.0);
    put_with_len16(out, "EXT data", |out| {
        entries.iter().try_for_each(|e| e.encode(out))
    })?;
    Ok(())
}

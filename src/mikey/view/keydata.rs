//! Key data sub-payloads (RFC 3830 §6.13) and key validity data (§6.14)
//! read in place from decrypted Encr data, and a fixed stack buffer to
//! decrypt Encr data into.

use std::fmt;

use zeroize::Zeroize;

use nom::Parser;

use super::fail::{Res, decode_error, fail};
use super::field::{labelled, len8_bytes, len16_bytes, uint8};
use crate::mikey::DecodeError;
use crate::mikey::error::{PayloadName, Reason};
use crate::mikey::wire::{KeyDataType, KvType, PayloadType};

/// Key validity data, borrowing its fields.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyValidityView<'a> {
    /// KV NULL: no validity data.
    Null,
    /// `SPI Length (1) ‖ SPI`.
    Spi(&'a [u8]),
    /// `VF Length (1) ‖ Valid From ‖ VT Length (1) ‖ Valid To`.
    Interval {
        /// Valid From: where the interval starts (for SRTP, a ROC ‖ SEQ index).
        from: &'a [u8],
        /// Valid To: where the interval ends (for SRTP, a ROC ‖ SEQ index).
        to: &'a [u8],
    },
}

impl<'a> KeyValidityView<'a> {
    /// The KV type of this validity data.
    pub fn kv_type(&self) -> KvType {
        match self {
            Self::Null => KvType::NULL,
            Self::Spi(_) => KvType::SPI,
            Self::Interval { .. } => KvType::INTERVAL,
        }
    }

    /// Parses the KV data announced by `kv` (shared by Key data and DH).
    pub(crate) fn parse(kv: KvType, i: &'a [u8]) -> Res<'a, Self> {
        match kv {
            KvType::NULL => Ok((i, Self::Null)),
            KvType::SPI => len8_bytes("SPI Length", "SPI")
                .map(Self::Spi)
                .parse_complete(i),
            KvType::INTERVAL => (
                len8_bytes("VF Length", "Valid From"),
                len8_bytes("VT Length", "Valid To"),
            )
                .map(|(from, to)| Self::Interval { from, to })
                .parse_complete(i),
            other => fail(
                i,
                Reason::UnknownLength {
                    field: "KV type",
                    value: other.0,
                },
            ),
        }
    }
}

/// A Key data sub-payload borrowing the plaintext it was read from.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct KeyDataView<'a> {
    /// The type of the key (TGK, TGK+SALT, TEK, TEK+SALT).
    pub key_type: KeyDataType,
    /// The key.
    pub key: &'a [u8],
    /// Present exactly when the type carries a salt (TGK+SALT, TEK+SALT).
    pub salt: Option<&'a [u8]>,
    /// The key validity data, as its KV type gives it.
    pub validity: KeyValidityView<'a>,
}

/// Key data carries key material: it never prints its bytes.
impl fmt::Debug for KeyDataView<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyDataView")
            .field("key_type", &self.key_type)
            .field("key_len", &self.key.len())
            .field("salt_len", &self.salt.map(<[u8]>::len))
            .field("validity", &self.validity)
            .finish()
    }
}

/// A chain of Key data sub-payloads filling a plaintext exactly, checked
/// once and read again on each iteration.
#[derive(Clone, Copy)]
pub struct KeyDataChain<'a>(&'a [u8]);

/// Key data carries key material: only the chain's length is printed.
impl fmt::Debug for KeyDataChain<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyDataChain({} octets)", self.0.len())
    }
}

impl<'a> KeyDataChain<'a> {
    /// Checks that `plain` is a chain of Key data sub-payloads and nothing
    /// else, as [`crate::mikey::KeyData::decode_chain`]. Offsets in errors
    /// count from the start of `plain`.
    pub fn decode(plain: &'a [u8]) -> Result<Self, DecodeError> {
        labelled(PayloadName::Payload(PayloadType::KEY_DATA), chain(plain))
            .map(|_| Self(plain))
            .map_err(|e| decode_error(e, plain.len()))
    }

    /// The sub-payloads, in chain order.
    pub fn iter(&self) -> impl Iterator<Item = KeyDataView<'a>> + Clone + 'a {
        let mut rest = self.0;
        let mut more = !rest.is_empty();
        // The chain was checked by `decode`.
        std::iter::from_fn(move || {
            if !more {
                return None;
            }
            let (i, (kd, next)) = next_in_chain(rest).ok()?;
            (rest, more) = (i, next);
            Some(kd)
        })
    }
}

/// Key data sub-payloads, each chaining to the next, to the end of the input.
fn chain(i: &[u8]) -> Res<'_, ()> {
    let mut more = !i.is_empty();
    let mut rest = i;
    while more {
        (rest, (_, more)) = next_in_chain(rest)?;
    }
    if !rest.is_empty() {
        return fail(rest, Reason::TrailingBytes { count: rest.len() });
    }
    Ok((rest, ()))
}

/// Parses `Next payload ‖ Key data`; says whether another Key data follows.
fn next_in_chain(at: &[u8]) -> Res<'_, (KeyDataView<'_>, bool)> {
    let (i, next) = uint8("next payload").map(PayloadType).parse_complete(at)?;
    let (i, kd) = key_data(i)?;
    match next {
        PayloadType::LAST => Ok((i, (kd, false))),
        PayloadType::KEY_DATA => Ok((i, (kd, true))),
        other => fail(at, Reason::BadKeyDataChain(other.0)),
    }
}

/// Parses `Type ‖ KV ‖ Key data len ‖ Key data ‖ [Salt len ‖ Salt data] ‖ KV data`.
fn key_data<'a>(i: &'a [u8]) -> Res<'a, KeyDataView<'a>> {
    let (i, type_kv) = uint8("Type/KV").parse_complete(i)?;
    let key_type = KeyDataType(type_kv >> 4);
    let kv = KvType(type_kv & 0x0f);
    let (i, key) = len16_bytes("Key data len", "Key data").parse_complete(i)?;
    let (i, salt) = if key_type.has_salt() {
        len16_bytes("Salt len", "Salt data")
            .map(Some)
            .parse_complete(i)?
    } else {
        (i, None)
    };
    let (i, validity) = KeyValidityView::parse(kv, i)?;
    Ok((
        i,
        KeyDataView {
            key_type,
            key,
            salt,
            validity,
        },
    ))
}

/// Encr data longer than the buffer meant to hold its plaintext.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("Encr data of {len} octets does not fit the {max}-octet key data buffer")]
pub struct EncrDataTooLong {
    /// The length of Encr data, in octets.
    pub len: usize,
    /// The length of the buffer, in octets.
    pub max: usize,
}

/// A stack buffer of `N` octets for KEMAC Encr data, to be decrypted in
/// place and read as a [`KeyDataChain`]. The octets used are zeroized on
/// drop: once decrypted they are key material.
pub struct EncrDataBuf<const N: usize> {
    buf: [u8; N],
    len: usize,
}

impl<const N: usize> EncrDataBuf<N> {
    /// An empty buffer.
    pub fn new() -> Self {
        Self {
            buf: [0; N],
            len: 0,
        }
    }

    /// Replaces the content with a copy of `encr_data` and returns it, for
    /// decryption in place.
    pub fn fill(&mut self, encr_data: &[u8]) -> Result<&mut [u8], EncrDataTooLong> {
        self.as_mut_slice().zeroize();
        self.len = 0;
        let len = encr_data.len();
        let buf = self
            .buf
            .get_mut(..len)
            .ok_or(EncrDataTooLong { len, max: N })?;
        buf.copy_from_slice(encr_data);
        self.len = len;
        Ok(buf)
    }

    /// The octets filled in (decrypted, once decrypted in place).
    pub fn as_slice(&self) -> &[u8] {
        self.buf.get(..self.len).unwrap_or_default()
    }

    fn as_mut_slice(&mut self) -> &mut [u8] {
        self.buf.get_mut(..self.len).unwrap_or_default()
    }

    /// Reads the (decrypted) octets as a Key data chain.
    pub fn key_data(&self) -> Result<KeyDataChain<'_>, DecodeError> {
        KeyDataChain::decode(self.as_slice())
    }
}

impl<const N: usize> Default for EncrDataBuf<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> Drop for EncrDataBuf<N> {
    fn drop(&mut self) {
        self.as_mut_slice().zeroize();
    }
}

impl<const N: usize> fmt::Debug for EncrDataBuf<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EncrDataBuf({} octets, [REDACTED])", self.len)
    }
}

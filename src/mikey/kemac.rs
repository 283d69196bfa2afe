//! KEMAC (RFC 3830 §6.2) and its Key data sub-payloads (§6.13) with key
//! validity data (§6.14).

use super::DecodeError;
use super::error::EncodeError;
use super::put::{put_len8, put_len16};
use super::view::KeyDataChain;
use super::wire::{EncrAlg, KeyDataType, KvType, MacAlg, PayloadType};

/// The KEMAC payload. Encr data stays as transported (encrypted unless the
/// encryption algorithm is NULL); [`KeyData::decode_chain`] reads the
/// plaintext once a verifier has decrypted it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Kemac {
    /// The encryption algorithm of Encr data.
    pub encr_alg: EncrAlg,
    /// Encr data as transported: the Key data sub-payloads, encrypted unless Encr alg is NULL.
    pub encr_data: Vec<u8>,
    /// The MAC algorithm.
    pub mac_alg: MacAlg,
    /// The MAC, as long as the MAC algorithm says.
    pub mac: Vec<u8>,
}

impl Kemac {
    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        out.push(self.encr_alg.0);
        put_len16(out, "Encr data", self.encr_data.len())?;
        out.extend_from_slice(&self.encr_data);
        out.push(self.mac_alg.0);
        check_mac_len("MAC", self.mac_alg, &self.mac)?;
        out.extend_from_slice(&self.mac);
        Ok(())
    }
}

pub(crate) fn check_mac_len(
    field: &'static str,
    alg: MacAlg,
    mac: &[u8],
) -> Result<(), EncodeError> {
    match alg.mac_len() {
        Some(n) if n == mac.len() => Ok(()),
        Some(n) => Err(EncodeError::WrongLength {
            field,
            expected: n,
            len: mac.len(),
        }),
        None => Err(EncodeError::OutOfRange {
            field: "MAC alg of unknown length",
            value: alg.0.into(),
        }),
    }
}

/// A Key data sub-payload.
#[derive(Clone, PartialEq, Eq)]
pub struct KeyData {
    /// The type of the key (TGK, TGK+SALT, TEK, TEK+SALT).
    pub key_type: KeyDataType,
    /// The key.
    pub key: Vec<u8>,
    /// Present exactly when the type carries a salt (TGK+SALT, TEK+SALT).
    pub salt: Option<Vec<u8>>,
    /// The key validity data, as its KV type gives it.
    pub validity: KeyValidity,
}

/// Key data carries key material: it never prints its bytes.
impl std::fmt::Debug for KeyData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyData")
            .field("key_type", &self.key_type)
            .field("key_len", &self.key.len())
            .field("salt_len", &self.salt.as_ref().map(Vec::len))
            .field("validity", &self.validity)
            .finish()
    }
}

impl Drop for KeyData {
    fn drop(&mut self) {
        use zeroize::Zeroize;
        self.key.zeroize();
        if let Some(s) = self.salt.as_mut() {
            s.zeroize();
        }
    }
}

/// Key validity data (RFC 3830 §6.14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyValidity {
    /// KV NULL: no validity data.
    Null,
    /// KV SPI/MKI: `SPI Length (1) ‖ SPI`.
    Spi(Vec<u8>),
    /// KV Interval: `VF Length (1) ‖ Valid From ‖ VT Length (1) ‖ Valid To`.
    Interval {
        /// Valid From: where the interval starts (for SRTP, a ROC ‖ SEQ index).
        from: Vec<u8>,
        /// Valid To: where the interval ends (for SRTP, a ROC ‖ SEQ index).
        to: Vec<u8>,
    },
}

impl KeyValidity {
    /// The KV type of this validity data.
    pub fn kv_type(&self) -> KvType {
        match self {
            Self::Null => KvType::NULL,
            Self::Spi(_) => KvType::SPI,
            Self::Interval { .. } => KvType::INTERVAL,
        }
    }

    pub(crate) fn encode(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        match self {
            Self::Null => {}
            Self::Spi(spi) => {
                put_len8(out, "SPI", spi.len())?;
                out.extend_from_slice(spi);
            }
            Self::Interval { from, to } => {
                put_len8(out, "Valid From", from.len())?;
                out.extend_from_slice(from);
                put_len8(out, "Valid To", to.len())?;
                out.extend_from_slice(to);
            }
        }
        Ok(())
    }
}

impl KeyData {
    /// Decodes a chain of Key data sub-payloads filling `plain` exactly.
    /// Offsets in errors count from the start of `plain`.
    pub fn decode_chain(plain: &[u8]) -> Result<Vec<KeyData>, DecodeError> {
        KeyDataChain::decode(plain).map(|chain| chain.to_key_data())
    }

    /// Encodes a chain of Key data sub-payloads (the plaintext of Encr data).
    pub fn encode_chain(items: &[KeyData]) -> Result<Vec<u8>, EncodeError> {
        let mut out = Vec::with_capacity(items.len() * 32);
        for (i, kd) in items.iter().enumerate() {
            let next = if i + 1 < items.len() {
                PayloadType::KEY_DATA
            } else {
                PayloadType::LAST
            };
            out.push(next.0);
            kd.encode_one(&mut out)?;
        }
        Ok(out)
    }

    fn encode_one(&self, out: &mut Vec<u8>) -> Result<(), EncodeError> {
        if self.key_type.0 > 0x0f {
            return Err(EncodeError::OutOfRange {
                field: "Key data type",
                value: self.key_type.0.into(),
            });
        }
        out.push(self.key_type.0 << 4 | self.validity.kv_type().0);
        put_len16(out, "Key data", self.key.len())?;
        out.extend_from_slice(&self.key);
        match (&self.salt, self.key_type.has_salt()) {
            (Some(salt), true) => {
                put_len16(out, "Salt data", salt.len())?;
                out.extend_from_slice(salt);
            }
            (None, false) => {}
            (Some(salt), false) => {
                return Err(EncodeError::WrongLength {
                    field: "Salt data of a key type without salt",
                    expected: 0,
                    len: salt.len(),
                });
            }
            (None, true) => {
                return Err(EncodeError::WrongLength {
                    field: "Salt data of a key type with salt",
                    expected: 1,
                    len: 0,
                });
            }
        }
        self.validity.encode(out)?;
        Ok(())
    }
}

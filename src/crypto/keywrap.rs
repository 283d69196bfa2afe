//! The primitives of the KMS transport protection (docs/mcx.md §3): AES-256 key wrap
//! (RFC 3394) and key wrap with padding (RFC 5649), AES-256-GCM as XML Encryption 1.1 lays it
//! out (IV ‖ ciphertext ‖ tag), SHA-256 and HMAC-SHA-256 for XML Signature.

use aes_gcm::aead::{AeadInOut, KeyInit as _};
use aes_gcm::{Aes256Gcm, Nonce};
use aes_kw::{KwAes256, KwpAes256};
use sha2::{Digest, Sha256};
use thiserror::Error;
use zeroize::Zeroizing;

/// GCM IV length of XML Encryption 1.1 (96 bits).
pub const GCM_IV_LEN: usize = 12;
const GCM_TAG_LEN: usize = 16;

/// A wrap or unwrap failed. Carries no key material.
#[non_exhaustive]
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum WrapError {
    /// RFC 3394 takes 16 octets or more, a multiple of 8.
    #[error("key of {len} octets cannot be wrapped with RFC 3394")]
    Length {
        /// The length given.
        len: usize,
    },
    /// Integrity check failed: wrong key, or altered ciphertext.
    #[error("unwrap failed")]
    Integrity,
}

/// RFC 3394 AES-256 key wrap of `key` under the 256-bit `kek`.
///
/// # Errors
/// [`WrapError::Length`] unless `key` is 16 octets or more and a multiple of 8.
pub fn kw_wrap(kek: &[u8; 32], key: &[u8]) -> Result<Vec<u8>, WrapError> {
    if key.len() < 16 || !key.len().is_multiple_of(8) {
        return Err(WrapError::Length { len: key.len() });
    }
    let mut buf = vec![0u8; key.len() + 8];
    let kw = KwAes256::new(kek.into());
    let n = kw
        .wrap_key(key, &mut buf)
        .map_err(|_| WrapError::Length { len: key.len() })?
        .len();
    buf.truncate(n);
    Ok(buf)
}

/// RFC 3394 unwrap.
///
/// # Errors
/// [`WrapError::Integrity`] for a wrong key, altered or malformed input.
pub fn kw_unwrap(kek: &[u8; 32], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, WrapError> {
    if wrapped.len() < 24 || !wrapped.len().is_multiple_of(8) {
        return Err(WrapError::Integrity);
    }
    let mut buf = Zeroizing::new(vec![0u8; wrapped.len() - 8]);
    let kw = KwAes256::new(kek.into());
    let n = kw
        .unwrap_key(wrapped, &mut buf)
        .map_err(|_| WrapError::Integrity)?
        .len();
    buf.truncate(n);
    Ok(buf)
}

/// RFC 5649 AES-256 key wrap with padding (any length from 1 octet).
///
/// # Errors
/// [`WrapError::Length`] for an empty key.
pub fn kwp_wrap(kek: &[u8; 32], key: &[u8]) -> Result<Vec<u8>, WrapError> {
    if key.is_empty() {
        return Err(WrapError::Length { len: 0 });
    }
    let mut buf = vec![0u8; key.len().div_ceil(8) * 8 + 8];
    let kw = KwpAes256::new(kek.into());
    let n = kw
        .wrap_key(key, &mut buf)
        .map_err(|_| WrapError::Length { len: key.len() })?
        .len();
    buf.truncate(n);
    Ok(buf)
}

/// RFC 5649 unwrap.
///
/// # Errors
/// [`WrapError::Integrity`] for a wrong key, altered or malformed input.
pub fn kwp_unwrap(kek: &[u8; 32], wrapped: &[u8]) -> Result<Zeroizing<Vec<u8>>, WrapError> {
    if wrapped.len() < 16 || !wrapped.len().is_multiple_of(8) {
        return Err(WrapError::Integrity);
    }
    let mut buf = Zeroizing::new(vec![0u8; wrapped.len() - 8]);
    let kw = KwpAes256::new(kek.into());
    let n = kw
        .unwrap_key(wrapped, &mut buf)
        .map_err(|_| WrapError::Integrity)?
        .len();
    buf.truncate(n);
    Ok(buf)
}

/// AES-256-GCM of `plaintext` under `key` with the given IV, no associated data, as
/// `IV ‖ ciphertext ‖ tag` (XML Encryption 1.1 §5.2.4).
///
/// # Errors
/// [`WrapError::Length`] only for inputs beyond GCM's limit.
pub fn gcm_seal(
    key: &[u8; 32],
    iv: [u8; GCM_IV_LEN],
    plaintext: &[u8],
) -> Result<Vec<u8>, WrapError> {
    let mut body = Zeroizing::new(Vec::with_capacity(plaintext.len() + GCM_TAG_LEN));
    body.extend_from_slice(plaintext);
    Aes256Gcm::new(key.into())
        .encrypt_in_place(&Nonce::from(iv), b"", &mut *body)
        .map_err(|_| WrapError::Length {
            len: plaintext.len(),
        })?;
    let mut out = Vec::with_capacity(GCM_IV_LEN + body.len());
    out.extend_from_slice(&iv);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Opens [`gcm_seal`]'s layout.
///
/// # Errors
/// [`WrapError::Integrity`] for a wrong key, altered or short input.
pub fn gcm_open(key: &[u8; 32], sealed: &[u8]) -> Result<Zeroizing<Vec<u8>>, WrapError> {
    if sealed.len() < GCM_IV_LEN + GCM_TAG_LEN {
        return Err(WrapError::Integrity);
    }
    let (iv, body) = sealed.split_at(GCM_IV_LEN);
    let iv: [u8; GCM_IV_LEN] = iv.try_into().map_err(|_| WrapError::Integrity)?;
    let mut buf = Zeroizing::new(body.to_vec());
    Aes256Gcm::new(key.into())
        .decrypt_in_place(&Nonce::from(iv), b"", &mut *buf)
        .map_err(|_| WrapError::Integrity)?;
    Ok(buf)
}

/// SHA-256.
#[must_use]
pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// RFC 3394 §4.6: 256 bits of key data with a 256-bit KEK.
    #[test]
    fn kw_matches_rfc3394_4_6() {
        let kek: [u8; 32] =
            hex::decode("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F")
                .unwrap()
                .try_into()
                .unwrap();
        let key = hex::decode("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F")
            .unwrap();
        let w = kw_wrap(&kek, &key).unwrap();
        assert_eq!(
            hex::encode_upper(&w),
            "28C9F404C4B810F4CBCCB35CFB87F8263F5786E2D80ED326CBC7F0E71A99F43BFB988B9B7A02DD21"
        );
        assert_eq!(&*kw_unwrap(&kek, &w).unwrap(), key.as_slice());
    }

    #[test]
    fn kwp_round_trips_odd_lengths_and_detects_tampering() {
        let kek = [7u8; 32];
        for len in [1usize, 4, 36, 65, 69, 257, 265] {
            let key: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let mut w = kwp_wrap(&kek, &key).unwrap();
            assert_eq!(&*kwp_unwrap(&kek, &w).unwrap(), key.as_slice());
            w[3] ^= 1;
            assert_eq!(kwp_unwrap(&kek, &w), Err(WrapError::Integrity));
        }
    }

    #[test]
    fn gcm_round_trips_and_refuses_another_key() {
        let s = gcm_seal(&[1u8; 32], [2u8; 12], b"key material").unwrap();
        assert_eq!(&*gcm_open(&[1u8; 32], &s).unwrap(), b"key material");
        assert_eq!(gcm_open(&[3u8; 32], &s), Err(WrapError::Integrity));
    }
}

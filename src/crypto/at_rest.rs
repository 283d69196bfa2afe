//! Sealing of state at rest (docs/architecture.md principle 6: secrets are encrypted at
//! rest): AES-256-GCM under a 32-octet [`StateKey`], a fresh random 12-octet
//! nonce prepended, and associated data (a fixed label, or a caller's label and
//! row identity with [`seal_with`]) so that a blob sealed for another purpose
//! or another row under the same key does not open here.
//!
//! Blob layout: `nonce (12) ‖ ciphertext ‖ tag (16)`.

use aes_gcm::aead::{AeadInOut, KeyInit};
use aes_gcm::{Aes256Gcm, Nonce};
use zeroize::Zeroizing;

use super::secret::secret_bytes;

secret_bytes!(
    /// The key that seals state at rest: the UE's persisted state (MGV-S), and the key material
    /// of the BM-SC store, where it is the key-encryption key (KEK).
    StateKey,
    32
);

/// Associated data bound into every blob: names the format and its version.
pub const AD_LABEL: &[u8] = b"mbms-keys ue-state v1";

/// Octets of the random nonce at the start of a blob.
pub const NONCE_LEN: usize = 12;

/// Octets of the GCM tag at the end of a blob.
pub const TAG_LEN: usize = 16;

/// Why a blob did not open. Never says more than that: no oracle on content.
#[non_exhaustive]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AtRestError {
    /// Shorter than a nonce and a tag.
    #[error("sealed blob is too short ({len} octets)")]
    TooShort {
        /// The blob's length in octets.
        len: usize,
    },
    /// Wrong key, wrong label, or the blob was altered.
    #[error("sealed blob does not authenticate")]
    AuthenticationFailed,
}

fn cipher(key: &StateKey) -> Aes256Gcm {
    Aes256Gcm::new(key.as_bytes().into())
}

/// Seals `plaintext` under `key` with a fresh random nonce and the UE-state label
/// [`AD_LABEL`] as associated data.
///
/// # Panics
/// Only when the operating system's random generator fails (no input can
/// cause that), as [`StateKey::random`] does.
#[must_use]
pub fn seal(key: &StateKey, plaintext: &[u8]) -> Vec<u8> {
    seal_with(key, AD_LABEL, plaintext)
}

/// Opens a blob made by [`seal`] under the same key.
///
/// # Errors
/// [`AtRestError::TooShort`] or [`AtRestError::AuthenticationFailed`].
pub fn open(key: &StateKey, blob: &[u8]) -> Result<Zeroizing<Vec<u8>>, AtRestError> {
    open_with(key, AD_LABEL, blob)
}

/// Seals `plaintext` under `key` with a fresh random nonce, binding `aad` (not stored in the
/// blob): a store passes its format label and the row identity, so a blob copied to another
/// row, or sealed for another purpose under the same key, does not open.
///
/// # Panics
/// Only when the operating system's random generator fails (no input can
/// cause that), as [`StateKey::random`] does.
#[must_use]
pub fn seal_with(key: &StateKey, aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    let mut nonce = [0u8; NONCE_LEN];
    // reason: documented `# Panics`, as `StateKey::random`: no input can make the OS RNG fail.
    #[allow(clippy::panic)]
    if let Err(e) = getrandom::fill(&mut nonce) {
        panic!("operating system random generator failed: {e}");
    }
    // Room for the tag up front: encrypting never reallocates, so no copy of
    // the plaintext is left behind in freed memory.
    let mut body = Zeroizing::new(Vec::with_capacity(plaintext.len() + TAG_LEN));
    body.extend_from_slice(plaintext);
    let nonce = Nonce::from(nonce);
    // reason: GCM refuses only inputs beyond 2^36 octets, which no state reaches.
    #[allow(clippy::panic)]
    match cipher(key).encrypt_in_place(&nonce, aad, &mut *body) {
        Ok(()) => {}
        Err(e) => panic!("AES-GCM refused to seal: {e}"),
    }
    let mut out = Vec::with_capacity(NONCE_LEN + body.len());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    out
}

/// Opens a blob made by [`seal_with`] under the same key and associated data.
///
/// # Errors
/// [`AtRestError::TooShort`] or [`AtRestError::AuthenticationFailed`] (also for another `aad`).
pub fn open_with(
    key: &StateKey,
    aad: &[u8],
    blob: &[u8],
) -> Result<Zeroizing<Vec<u8>>, AtRestError> {
    if blob.len() < NONCE_LEN + TAG_LEN {
        return Err(AtRestError::TooShort { len: blob.len() });
    }
    let (nonce, body) = blob
        .split_at_checked(NONCE_LEN)
        .ok_or(AtRestError::TooShort { len: blob.len() })?;
    let nonce: [u8; NONCE_LEN] = nonce
        .try_into()
        .map_err(|_| AtRestError::TooShort { len: blob.len() })?;
    let mut buf = Zeroizing::new(body.to_vec());
    cipher(key)
        .decrypt_in_place(&Nonce::from(nonce), aad, &mut *buf)
        .map_err(|_| AtRestError::AuthenticationFailed)?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seal_then_open_gives_the_plaintext_back() {
        let key = StateKey::from_bytes([7; 32]);
        let blob = seal(&key, b"state");
        assert_eq!(blob.len(), NONCE_LEN + 5 + TAG_LEN);
        assert_eq!(open(&key, &blob).unwrap().as_slice(), b"state");
    }

    #[test]
    fn two_seals_use_different_nonces() {
        let key = StateKey::from_bytes([7; 32]);
        assert_ne!(seal(&key, b"x"), seal(&key, b"x"));
    }

    #[test]
    fn another_key_or_any_flipped_bit_is_refused() {
        let key = StateKey::from_bytes([7; 32]);
        let blob = seal(&key, b"state");
        assert_eq!(
            open(&StateKey::from_bytes([8; 32]), &blob),
            Err(AtRestError::AuthenticationFailed)
        );
        for i in 0..blob.len() * 8 {
            let mut bad = blob.clone();
            bad[i / 8] ^= 1 << (i % 8);
            assert_eq!(open(&key, &bad), Err(AtRestError::AuthenticationFailed));
        }
    }

    #[test]
    fn short_blobs_are_refused() {
        let key = StateKey::from_bytes([7; 32]);
        for len in 0..NONCE_LEN + TAG_LEN {
            assert_eq!(
                open(&key, &vec![0; len]),
                Err(AtRestError::TooShort { len })
            );
        }
        // Empty plaintext is still a valid blob.
        assert!(open(&key, &seal(&key, b"")).unwrap().is_empty());
    }

    #[test]
    fn associated_data_must_match() {
        let key = StateKey::from_bytes([7; 32]);
        let blob = seal_with(&key, b"row 1", b"secret");
        assert_eq!(
            open_with(&key, b"row 1", &blob).unwrap().as_slice(),
            b"secret"
        );
        assert_eq!(
            open_with(&key, b"row 2", &blob),
            Err(AtRestError::AuthenticationFailed)
        );
        assert_eq!(open(&key, &blob), Err(AtRestError::AuthenticationFailed));
        assert_eq!(
            open_with(&key, AD_LABEL, &seal(&key, b"x"))
                .unwrap()
                .as_slice(),
            b"x"
        );
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(
            format!("{:?}", StateKey::from_bytes([1; 32])),
            "StateKey([REDACTED])"
        );
    }
}

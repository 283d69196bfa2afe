//! Cryptography of the profile: the MIKEY PRF (RFC 3830 §4.1), KEMAC protection with AES-CM-128
//! and HMAC-SHA-1-160 (RFC 3830 §4.2.3, §4.2.4), the TS 33.220 Annex B KDF, and the secret key
//! types.
//!
//! This is the only module of the crate that names `aes`, `ctr`, `hmac`, `sha1` or `sha2`, so a
//! change of crypto backend stays inside it.
// No panic in non-test code (clippy.toml allows these in tests):
#![deny(clippy::unwrap_used, clippy::expect_used)]
#![deny(clippy::indexing_slicing, clippy::panic)]

pub mod at_rest;
pub mod kdf;
pub mod kemac;
#[cfg(feature = "mcx")]
pub mod keywrap;
pub mod prf;
pub mod random;
pub mod secret;

use hmac::digest::{Digest, Key, KeyInit};
use hmac::{EagerHash, Hmac};
use zeroize::Zeroize;

pub use at_rest::{AtRestError, StateKey};
pub use kdf::{KdfError, hmac_sha256, kdf, kdf_input};
pub use kemac::{Aes128Cm, HmacSha1State, MAC_LEN, ProtectionKeys, aes128_ctr_apply};
pub use prf::{
    PSK_AUTH_CONST, PSK_ENCR_CONST, PSK_SALT_CONST, PrfKey, TEK_CONST, TGK_AUTH_CONST,
    TGK_ENCR_CONST, TGK_SALT_CONST, TgkKeys, derive_from_tgk, mikey_prf, psk_label, tgk_label,
};
pub use random::{Fixed, OsRandom, Random, RngFailure, Seeded};
pub use secret::{
    AuthKey, EncKey, Kaf, KeyLengthError, Ks, KsExtNaf, KsIntNaf, KsNaf, Mrk, Msk, Mtk, Muk, Salt,
    SaltKey, ct_eq,
};

/// SHA-256 of the concatenation of `parts` (for the ECCSI and SAKKE hashes of `crate::ibe`,
/// which keeps this module the only one naming the hash crates).
#[must_use]
pub fn sha256(parts: &[&[u8]]) -> [u8; 32] {
    let mut h = sha2::Sha256::new();
    for part in parts {
        h.update(part);
    }
    h.finalize().into()
}

/// An HMAC keyed with any key length, without a fallible constructor.
///
/// RFC 2104 §2: a key longer than the block is hashed first, a shorter one is zero-padded to the
/// block. Doing that here gives the block-sized key `KeyInit::new` takes, so no `Result` (which
/// HMAC never returns as `Err`) has to be unwrapped.
fn keyed_hmac<D: EagerHash + Digest>(key: &[u8]) -> Hmac<D> {
    let mut block = Key::<Hmac<D>>::default();
    if key.len() > block.len() {
        let hashed = D::digest(key);
        block
            .iter_mut()
            .zip(hashed.iter())
            .for_each(|(d, s)| *d = *s);
    } else {
        block.iter_mut().zip(key).for_each(|(d, s)| *d = *s);
    }
    let mac = <Hmac<D> as KeyInit>::new(&block);
    block.as_mut_slice().zeroize();
    mac
}

#[cfg(test)]
mod tests {
    use hmac::Mac;
    use sha1::Sha1;
    use sha2::Sha256;

    use super::*;

    fn reference<D: EagerHash + Digest>(key: &[u8], data: &[u8]) -> Vec<u8> {
        let mut mac = <Hmac<D> as KeyInit>::new_from_slice(key).expect("HMAC takes any key");
        mac.update(data);
        mac.finalize().into_bytes().to_vec()
    }

    #[test]
    fn sha256_hashes_the_concatenation_of_its_parts() {
        // FIPS 180-2 Appendix B.1: SHA-256("abc").
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(hex::encode(sha256(&[b"abc"])), abc);
        assert_eq!(hex::encode(sha256(&[b"a", b"", b"bc"])), abc);
    }

    #[test]
    fn keyed_hmac_matches_new_from_slice_for_every_key_length() {
        for len in [0usize, 1, 20, 32, 63, 64, 65, 100, 200] {
            let key: Vec<u8> = (0..len).map(|i| (i * 7 + 3) as u8).collect();
            let mut a = keyed_hmac::<Sha1>(&key);
            a.update(b"data");
            assert_eq!(
                a.finalize().into_bytes().to_vec(),
                reference::<Sha1>(&key, b"data")
            );
            let mut b = keyed_hmac::<Sha256>(&key);
            b.update(b"data");
            assert_eq!(
                b.finalize().into_bytes().to_vec(),
                reference::<Sha256>(&key, b"data")
            );
        }
    }
}

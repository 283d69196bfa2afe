//! KEMAC protection: RFC 3830 §4.1.4 key derivation, §4.2.3 AES-CM-128, §4.2.4 HMAC-SHA-1-160,
//! and the §5.2 MAC over the message.
//!
//! The primitives keep their keyed state ([`Aes128Cm`]: the AES-128 key schedule,
//! [`HmacSha1State`]: the HMAC ipad/opad state), so a receiver that checks many messages under
//! one key does not re-key per message.
//!
//! The `zeroize` features of `aes`, `ctr` and `hmac` are enabled, so those cached states are
//! wiped on drop like the key octets ([`EncKey`], [`SaltKey`], [`AuthKey`]).

use core::fmt;

use aes::Aes128Enc;
use aes::cipher::{InnerIvInit, KeyInit, StreamCipher, StreamCipherCoreWrapper};
use ctr::CtrCore;
use ctr::flavors::Ctr128BE;
use hmac::{Hmac, Mac};
use sha1::Sha1;

use super::prf::{PSK_AUTH_CONST, PSK_ENCR_CONST, PSK_SALT_CONST, PrfKey, psk_label};
use super::secret::{AuthKey, EncKey, SaltKey, ct_eq};

/// HMAC-SHA-1-160 output and MAC field length (RFC 3830 §4.2.4, §6.2 MAC alg 1).
pub const MAC_LEN: usize = 20;

/// HMAC-SHA-1 keyed once; each [`HmacSha1State::mac`] starts from a copy of the keyed state.
///
/// RFC 3830 §4.2.4 (HMAC-SHA-1-160) and the §4.1.2 PRF, which runs many HMACs under one key.
#[derive(Clone)]
pub struct HmacSha1State(Hmac<Sha1>);

impl HmacSha1State {
    /// Keys the state; any key length (RFC 2104 hashes keys longer than 64 octets).
    #[must_use]
    pub fn new(key: &[u8]) -> Self {
        Self(super::keyed_hmac::<Sha1>(key))
    }

    /// HMAC-SHA-1 over the concatenation of `parts`, without re-keying.
    #[must_use]
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; MAC_LEN] {
        let mut h = self.0.clone();
        for part in parts {
            h.update(part);
        }
        h.finalize().into_bytes().into()
    }

    /// Checks `tag` against the MAC of `parts` in constant time; `false` unless 20 octets.
    #[must_use]
    pub fn verify(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        ct_eq(&self.mac(parts), tag)
    }
}

impl From<&AuthKey> for HmacSha1State {
    fn from(key: &AuthKey) -> Self {
        Self::new(key.as_bytes())
    }
}

impl fmt::Debug for HmacSha1State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("HmacSha1State([REDACTED])")
    }
}

/// AES-CM-128 with a cached key schedule (RFC 3830 §4.2.3, which takes AES-CM from SRTP,
/// RFC 3711 §4.1.1).
///
/// With SRTP_PREFIX_LENGTH zero, AES-CM is AES-128-CTR with the IV as the first counter block
/// and a 128-bit big-endian increment, so encryption and decryption are the same operation.
#[derive(Clone)]
pub struct Aes128Cm(Aes128Enc);

impl Aes128Cm {
    /// Expands the key schedule once.
    #[must_use]
    pub fn new(key: &EncKey) -> Self {
        Self(Aes128Enc::new(&(*key.as_bytes()).into()))
    }

    /// XORs the keystream starting at counter block `iv` into `data`, in place.
    pub fn apply(&self, iv: &[u8; 16], data: &mut [u8]) {
        let core = CtrCore::<&Aes128Enc, Ctr128BE>::inner_iv_init(&self.0, &(*iv).into());
        // A 128-bit counter reports no keystream limit (`remaining_blocks` is `None`), so
        // `apply_keystream` has no length at which it panics; the counter wraps mod 2^128 as
        // RFC 3711 §4.1.1 specifies.
        StreamCipherCoreWrapper::from_core(core).apply_keystream(data);
    }
}

impl fmt::Debug for Aes128Cm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Aes128Cm([REDACTED])")
    }
}

/// One-shot AES-CM-128 (RFC 3830 §4.2.3); expands the key each call, see [`Aes128Cm`] to reuse it.
pub fn aes128_ctr_apply(key: &EncKey, iv: &[u8; 16], data: &mut [u8]) {
    Aes128Cm::new(key).apply(iv, data);
}

/// The keys protecting one MIKEY message (RFC 3830 §4.1.4), with their cipher and MAC states.
///
/// Derived from the message's PSK (MUK for MSK messages, MSK for MTK messages, docs/profile.md §2),
/// its CSB ID and its RAND.
#[derive(Clone)]
pub struct ProtectionKeys {
    enc_key: EncKey,
    salt_key: SaltKey,
    auth_key: AuthKey,
    cipher: Aes128Cm,
    hmac: HmacSha1State,
}

impl ProtectionKeys {
    /// RFC 3830 §4.1.4: encryption key 16, salt 14, auth key 20 octets from
    /// PRF(inkey, const ‖ 0xFF ‖ CSB ID ‖ RAND). `rand` is empty for MTK messages without a RAND
    /// payload (docs/profile.md §2.3 \[CHOICE\]).
    #[must_use]
    pub fn derive(inkey: &[u8], csb_id: u32, rand: &[u8]) -> Self {
        Self::derive_with(&PrfKey::new(inkey), csb_id, rand)
    }

    /// [`ProtectionKeys::derive`] from an inkey whose HMAC state is already keyed.
    #[must_use]
    pub fn derive_with(inkey: &PrfKey, csb_id: u32, rand: &[u8]) -> Self {
        let mut label = psk_label(PSK_ENCR_CONST, csb_id, rand);
        let enc_key = EncKey::from_fn(|k| inkey.prf(&label, k));
        // The label starts with the 4-octet constant (`psk_label`); only that part changes.
        if let Some(constant) = label.first_chunk_mut::<4>() {
            *constant = PSK_SALT_CONST.to_be_bytes();
        }
        let salt_key = SaltKey::from_fn(|k| inkey.prf(&label, k));
        if let Some(constant) = label.first_chunk_mut::<4>() {
            *constant = PSK_AUTH_CONST.to_be_bytes();
        }
        let auth_key = AuthKey::from_fn(|k| inkey.prf(&label, k));
        Self::from_keys(enc_key, salt_key, auth_key)
    }

    /// Builds the cached cipher and MAC states from already derived keys.
    #[must_use]
    pub fn from_keys(enc_key: EncKey, salt_key: SaltKey, auth_key: AuthKey) -> Self {
        let cipher = Aes128Cm::new(&enc_key);
        let hmac = HmacSha1State::from(&auth_key);
        Self {
            enc_key,
            salt_key,
            auth_key,
            cipher,
            hmac,
        }
    }

    /// The AES-CM-128 key.
    #[must_use]
    pub fn enc_key(&self) -> &EncKey {
        &self.enc_key
    }

    /// The 112-bit salting key S.
    #[must_use]
    pub fn salt_key(&self) -> &SaltKey {
        &self.salt_key
    }

    /// The HMAC-SHA-1 key.
    #[must_use]
    pub fn auth_key(&self) -> &AuthKey {
        &self.auth_key
    }

    /// RFC 3830 §4.2.3: IV = (S XOR (0x0000 ‖ CSB ID ‖ T)) ‖ 0x0000, with T the 64-bit
    /// timestamp; a 32-bit COUNTER is zero-extended (docs/spec-notes.md §1.14).
    #[must_use]
    pub fn iv(&self, csb_id: u32, t64: u64) -> [u8; 16] {
        let mut mask = [0u8; 14];
        let (_, rest) = mask.split_at_mut(2);
        let (csb, t) = rest.split_at_mut(4);
        csb.copy_from_slice(&csb_id.to_be_bytes());
        t.copy_from_slice(&t64.to_be_bytes());
        let mut iv = [0u8; 16];
        iv.iter_mut()
            .zip(self.salt_key.as_bytes().iter().zip(mask))
            .for_each(|(o, (s, m))| *o = s ^ m);
        iv
    }

    /// Encrypts or decrypts the KEMAC Encr data in place with AES-CM-128 (RFC 3830 §4.2.3).
    pub fn apply_keystream(&self, csb_id: u32, t64: u64, data: &mut [u8]) {
        self.cipher.apply(&self.iv(csb_id, t64), data);
    }

    /// HMAC-SHA-1-160 over the concatenation of `parts` (RFC 3830 §5.2: the message up to the
    /// MAC field; §5.3 verification message: message ‖ IDi ‖ IDr ‖ T).
    #[must_use]
    pub fn mac(&self, parts: &[&[u8]]) -> [u8; MAC_LEN] {
        self.hmac.mac(parts)
    }

    /// Checks a received MAC in constant time; `false` when `tag` is not 20 octets.
    #[must_use]
    pub fn verify_mac(&self, parts: &[&[u8]], tag: &[u8]) -> bool {
        self.hmac.verify(parts, tag)
    }
}

impl fmt::Debug for ProtectionKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ProtectionKeys([REDACTED])")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).expect("hex")
    }

    /// docs/spec-notes.md §5.4 V1: PSK 00..0f, CSB 01020304, RAND 10..1f, T e4c2a8b000000000.
    fn v1() -> ProtectionKeys {
        ProtectionKeys::derive(
            &h("000102030405060708090a0b0c0d0e0f"),
            0x0102_0304,
            &h("101112131415161718191a1b1c1d1e1f"),
        )
    }

    #[test]
    fn rfc3830_4_1_4_keys_v1() {
        let k = v1();
        assert_eq!(
            k.enc_key().as_bytes().to_vec(),
            h("d0fe800a31aa671a9fda5009c60a1114")
        );
        assert_eq!(
            k.salt_key().as_bytes().to_vec(),
            h("4eacad003f487312d9d8d8e6c513")
        );
        assert_eq!(
            k.auth_key().as_bytes().to_vec(),
            h("5128fbd4045393bd34d9ffca7e877700781330e8")
        );
    }

    #[test]
    fn rfc3830_4_2_3_iv_and_aes_cm_v1() {
        let k = v1();
        assert_eq!(
            k.iv(0x0102_0304, 0xe4c2_a8b0_0000_0000).to_vec(),
            h("4eacac023c4c97d07168d8e6c5130000")
        );
        let mut data = h("00000010a0a1a2a3a4a5a6a7a8a9aaabacadaeaf");
        k.apply_keystream(0x0102_0304, 0xe4c2_a8b0_0000_0000, &mut data);
        assert_eq!(data, h("b1287b7aee49eeadcbc11767b97b9ac86c044f07"));
        k.apply_keystream(0x0102_0304, 0xe4c2_a8b0_0000_0000, &mut data);
        assert_eq!(data, h("00000010a0a1a2a3a4a5a6a7a8a9aaabacadaeaf"));
    }

    #[test]
    fn aes_cm_counter_wraps_mod_2_128() {
        let key = EncKey::from_bytes([0x2b; 16]);
        let iv = [0xff; 16];
        let mut two = [0u8; 32];
        aes128_ctr_apply(&key, &iv, &mut two);
        let mut second = [0u8; 16];
        aes128_ctr_apply(&key, &[0; 16], &mut second);
        assert_eq!(two.get(16..), Some(&second[..]));
    }

    #[test]
    fn empty_data_is_unchanged() {
        let mut empty: [u8; 0] = [];
        v1().apply_keystream(1, 2, &mut empty);
    }

    #[test]
    fn mac_parts_equal_mac_of_concatenation() {
        let k = v1();
        assert_eq!(k.mac(&[b"ab", b"", b"cd"]), k.mac(&[b"abcd"]));
        let tag = k.mac(&[b"abcd"]);
        assert!(k.verify_mac(&[b"abcd"], &tag));
        assert!(!k.verify_mac(&[b"abce"], &tag));
        assert!(!k.verify_mac(&[b"abcd"], tag.get(..19).unwrap_or_default()));
        assert!(!k.verify_mac(&[b"abcd"], &[]));
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(format!("{:?}", v1()), "ProtectionKeys([REDACTED])");
        assert_eq!(
            format!("{:?}", HmacSha1State::new(b"k")),
            "HmacSha1State([REDACTED])"
        );
    }
}

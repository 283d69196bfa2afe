//! The MIKEY PRF and its labels (RFC 3830 §4.1.2–§4.1.4): MIKEY-1 (PRF func 0, HMAC-SHA-1) and
//! PRF-HMAC-SHA-256 (PRF func 1, RFC 6043), the same construction over another HMAC.

use core::fmt;

use hmac::{Hmac, Mac};
use sha2::Sha256;
use zeroize::Zeroizing;

use super::kemac::{HmacSha1State, MAC_LEN};
use super::secret::{AuthKey, EncKey, SaltKey};

/// The longest HMAC output of a PRF here (HMAC-SHA-256).
const MAX_BLOCK_LEN: usize = 32;

/// RFC 3830 §4.1.2: the inkey is cut into 256-bit chunks s_1 … s_n.
const PRF_CHUNK_LEN: usize = 32;

/// RFC 3830 §4.1.3 constant for the TEK.
pub const TEK_CONST: u32 = 0x2AD0_1C64;
/// RFC 3830 §4.1.3 constant for the authentication key from a TGK.
pub const TGK_AUTH_CONST: u32 = 0x1B5C_7973;
/// RFC 3830 §4.1.3 constant for the encryption key from a TGK.
pub const TGK_ENCR_CONST: u32 = 0x1579_8CEF;
/// RFC 3830 §4.1.3 constant for the salting key from a TGK.
pub const TGK_SALT_CONST: u32 = 0x39A2_C14B;
/// RFC 3830 §4.1.4 constant for the KEMAC encryption key from a PSK/envelope key.
pub const PSK_ENCR_CONST: u32 = 0x1505_33E1;
/// RFC 3830 §4.1.4 constant for the MAC key from a PSK/envelope key.
pub const PSK_AUTH_CONST: u32 = 0x2D22_AC75;
/// RFC 3830 §4.1.4 constant for the KEMAC salting key from a PSK/envelope key.
pub const PSK_SALT_CONST: u32 = 0x29B8_8916;

/// RFC 3830 §4.1.2 PRF(inkey, label), filling all of `out`.
///
/// `out` = the leading octets of P(s_1, label, m) XOR … XOR P(s_n, label, m). Every chunk but the
/// last is 32 octets, so a 32-octet key (a MUK) is ONE chunk, not two (minisip's bug,
/// docs/spec-notes.md §1.15). An empty inkey, where the RFC's n = 0 would XOR nothing and give an all-zero
/// key, is taken as one empty chunk so the output still depends on the label.
pub fn mikey_prf(inkey: &[u8], label: &[u8], out: &mut [u8]) {
    PrfKey::new(inkey).prf(label, out);
}

/// An inkey prepared for the PRF: one keyed HMAC state per 256-bit chunk, so that a key
/// used for many derivations (a MUK for every MSK message to its UE, an MSK for its MTK
/// messages) is keyed once and each derivation starts from a copy of the ipad/opad state.
#[derive(Clone)]
pub struct PrfKey {
    chunks: Chunks,
}

/// The keyed chunks s_1 … s_n, under the HMAC of the PRF func.
#[derive(Clone)]
enum Chunks {
    /// MIKEY-1 (PRF func 0): HMAC-SHA-1.
    Sha1(Vec<HmacSha1State>),
    /// PRF-HMAC-SHA-256 (PRF func 1).
    Sha256(Vec<Hmac<Sha256>>),
}

/// Splits `inkey` into 256-bit chunks (RFC 3830 §4.1.2) keyed with `key`; an empty inkey is one
/// empty chunk (as [`mikey_prf`] says).
fn keyed_chunks<T>(inkey: &[u8], key: impl Fn(&[u8]) -> T) -> Vec<T> {
    let mut chunks: Vec<T> = inkey.chunks(PRF_CHUNK_LEN).map(&key).collect();
    if chunks.is_empty() {
        chunks.push(key(&[]));
    }
    chunks
}

impl PrfKey {
    /// The MIKEY-1 PRF (RFC 3830 §4.1.2, PRF func 0): splits `inkey` into s_1 … s_n and keys
    /// one HMAC-SHA-1 per chunk.
    #[must_use]
    pub fn new(inkey: &[u8]) -> Self {
        Self {
            chunks: Chunks::Sha1(keyed_chunks(inkey, HmacSha1State::new)),
        }
    }

    /// PRF-HMAC-SHA-256 (PRF func 1, RFC 6043, which MIKEY-SAKKE messages name, RFC 6509): the
    /// construction of RFC 3830 §4.1.2 with HMAC-SHA-256 in P, so each block is 256 bits
    /// (m = ⌈outkey length / 256⌉); the inkey is cut into 256-bit chunks as for MIKEY-1.
    #[must_use]
    pub fn hmac_sha256(inkey: &[u8]) -> Self {
        Self {
            chunks: Chunks::Sha256(keyed_chunks(inkey, super::keyed_hmac::<Sha256>)),
        }
    }

    /// PRF(inkey, label) into all of `out`.
    pub fn prf(&self, label: &[u8], out: &mut [u8]) {
        out.fill(0);
        match &self.chunks {
            Chunks::Sha1(chunks) => {
                for hmac in chunks {
                    p_xor(
                        |parts, o| o.copy_from_slice(&hmac.mac(parts)),
                        MAC_LEN,
                        label,
                        out,
                    );
                }
            }
            Chunks::Sha256(chunks) => {
                for hmac in chunks {
                    let mac = |parts: &[&[u8]], o: &mut [u8]| {
                        let mut h = hmac.clone();
                        for part in parts {
                            h.update(part);
                        }
                        o.copy_from_slice(&h.finalize().into_bytes());
                    };
                    p_xor(mac, 32, label, out);
                }
            }
        }
    }
}

impl fmt::Debug for PrfKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrfKey([REDACTED])")
    }
}

/// RFC 3830 §4.1.2: XORs P(s, label, m) into `out`, with A_0 = label, A_i = HMAC(s, A_(i-1)),
/// block_i = HMAC(s, A_i ‖ label). `hmac(parts, o)` writes HMAC(s, parts) into `o`, `len`
/// (at most [`MAX_BLOCK_LEN`]) octets.
fn p_xor(hmac: impl Fn(&[&[u8]], &mut [u8]), len: usize, label: &[u8], out: &mut [u8]) {
    let mut a_buf = Zeroizing::new([0u8; MAX_BLOCK_LEN]);
    let mut p_buf = Zeroizing::new([0u8; MAX_BLOCK_LEN]);
    let (Some(a), Some(p)) = (a_buf.get_mut(..len), p_buf.get_mut(..len)) else {
        return;
    };
    for (i, block) in out.chunks_mut(len).enumerate() {
        if i == 0 {
            hmac(&[label], a);
        } else {
            hmac(&[&*a], p);
            a.copy_from_slice(p);
        }
        hmac(&[&*a, label], p);
        block.iter_mut().zip(p.iter()).for_each(|(o, x)| *o ^= x);
    }
}

/// RFC 3830 §4.1.3 label for keys derived from a TGK: const ‖ CS ID ‖ CSB ID ‖ RAND.
#[must_use]
pub fn tgk_label(constant: u32, cs_id: u8, csb_id: u32, rand: &[u8]) -> Vec<u8> {
    let mut label = Vec::with_capacity(9 + rand.len());
    label.extend_from_slice(&constant.to_be_bytes());
    label.push(cs_id);
    label.extend_from_slice(&csb_id.to_be_bytes());
    label.extend_from_slice(rand);
    label
}

/// RFC 3830 §4.1.4 label for keys derived from a PSK or envelope key: const ‖ 0xFF ‖ CSB ID ‖
/// RAND. The 0xFF sits where §4.1.3 has the CS ID: these keys protect the message, not one
/// crypto session.
#[must_use]
pub fn psk_label(constant: u32, csb_id: u32, rand: &[u8]) -> Vec<u8> {
    tgk_label(constant, 0xFF, csb_id, rand)
}

/// The keys RFC 3830 §4.1.3 derives from a TGK for one crypto session.
///
/// MBMS delivers its MTK directly (docs/profile.md §2.3), so this serves generic MIKEY use and tests.
#[derive(Clone)]
pub struct TgkKeys {
    /// The TEK, of the length the security protocol asks for.
    pub tek: Zeroizing<Vec<u8>>,
    /// Encryption key, 16 octets.
    pub enc_key: EncKey,
    /// Salting key, 14 octets.
    pub salt_key: SaltKey,
    /// Authentication key, 20 octets.
    pub auth_key: AuthKey,
}

impl fmt::Debug for TgkKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TgkKeys([REDACTED])")
    }
}

/// RFC 3830 §4.1.3: TEK (`tek_len` octets), encryption, salting and authentication keys from a
/// TGK for crypto session `cs_id` of CSB `csb_id`.
#[must_use]
pub fn derive_from_tgk(tgk: &[u8], cs_id: u8, csb_id: u32, rand: &[u8], tek_len: usize) -> TgkKeys {
    let mut tek = Zeroizing::new(vec![0u8; tek_len]);
    mikey_prf(tgk, &tgk_label(TEK_CONST, cs_id, csb_id, rand), &mut tek);
    let derive = |constant: u32, out: &mut [u8]| {
        mikey_prf(tgk, &tgk_label(constant, cs_id, csb_id, rand), out);
    };
    TgkKeys {
        tek,
        enc_key: EncKey::from_fn(|k| derive(TGK_ENCR_CONST, k)),
        salt_key: SaltKey::from_fn(|k| derive(TGK_SALT_CONST, k)),
        auth_key: AuthKey::from_fn(|k| derive(TGK_AUTH_CONST, k)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(s: &str) -> Vec<u8> {
        hex::decode(s).expect("hex")
    }

    fn prf(inkey: &[u8], label: &[u8], len: usize) -> Vec<u8> {
        let mut out = vec![0xAA; len];
        mikey_prf(inkey, label, &mut out);
        out
    }

    fn seq(start: u8, len: usize) -> Vec<u8> {
        (0..len).map(|i| start.wrapping_add(i as u8)).collect()
    }

    /// P(s, label, m) written out from the RFC text, for comparison.
    fn p(s: &[u8], label: &[u8], m: usize) -> Vec<u8> {
        let h = HmacSha1State::new(s);
        let mut a = label.to_vec();
        let mut out = Vec::new();
        for _ in 0..m {
            a = h.mac(&[&a]).to_vec();
            out.extend_from_slice(&h.mac(&[&a, label]));
        }
        out
    }

    fn xor(a: &[u8], b: &[u8]) -> Vec<u8> {
        a.iter().zip(b).map(|(x, y)| x ^ y).collect()
    }

    #[test]
    fn spec_notes_5_3_tek_from_tgk() {
        let label = tgk_label(TEK_CONST, 1, 0x0102_0304, &seq(0x10, 16));
        assert_eq!(
            label,
            h("2ad01c640101020304101112131415161718191a1b1c1d1e1f")
        );
        assert_eq!(
            prf(&seq(0, 16), &label, 16),
            h("a488dab36184e8d41ae26cb6daf5405e")
        );
    }

    #[test]
    fn psk_label_puts_ff_in_the_cs_id_octet() {
        assert_eq!(
            psk_label(PSK_ENCR_CONST, 0x0001_0002, &[]),
            h("150533e1ff00010002")
        );
    }

    #[test]
    fn zero_length_out_is_fine() {
        let mut out: [u8; 0] = [];
        mikey_prf(&seq(0, 16), b"label", &mut out);
    }

    #[test]
    fn empty_inkey_is_one_empty_chunk() {
        let out = prf(&[], b"label", 30);
        assert_eq!(out, p(&[], b"label", 2).get(..30).unwrap_or_default());
        assert_ne!(out, vec![0; 30]);
    }

    #[test]
    fn a_32_octet_inkey_is_one_chunk() {
        let key = seq(0x30, 32);
        assert_eq!(
            prf(&key, b"L", 16),
            p(&key, b"L", 1).get(..16).unwrap_or_default()
        );
        // docs/spec-notes.md §5.3 256-bit PSK, where minisip diverges.
        let label = psk_label(PSK_ENCR_CONST, 0x0001_0002, &seq(0x60, 16));
        assert_eq!(prf(&key, &label, 16), h("b0cf21cb47ad7df13448601962d2b4b8"));
    }

    #[test]
    fn a_64_octet_inkey_is_two_full_chunks() {
        let key = seq(0, 64);
        let (s1, s2) = key.split_at(32);
        let expect = xor(&p(s1, b"L", 3), &p(s2, b"L", 3));
        assert_eq!(prf(&key, b"L", 48), expect.get(..48).unwrap_or_default());
    }

    #[test]
    fn multiples_of_32_octets_every_chunk_counts() {
        for n in 1..=4 {
            let key = seq(7, 32 * n);
            let mut flipped = key.clone();
            if let Some(last) = flipped.last_mut() {
                *last ^= 1;
            }
            assert_ne!(prf(&key, b"L", 20), prf(&flipped, b"L", 20), "n = {n}");
        }
    }

    #[test]
    fn a_40_octet_inkey_has_a_short_last_chunk() {
        let key = seq(0x40, 40);
        let (s1, s2) = key.split_at(32);
        assert_eq!(
            prf(&key, b"L", 25),
            xor(&p(s1, b"L", 2), &p(s2, b"L", 2))
                .get(..25)
                .unwrap_or_default()
        );
        let label = [h("2ad01c6400deadbeef"), seq(0x10, 16)].concat();
        assert_eq!(
            prf(&key, &label, 48),
            h(
                "309ae38470d15ff3c722880dd599d0e410c7b2ac2123ef5025e22046129afe067136ad80a2817d57398b7be9f12aad94"
            )
        );
    }

    #[test]
    fn output_is_a_prefix_of_longer_output() {
        let long = prf(&seq(1, 16), b"L", 61);
        for len in [0, 1, 19, 20, 21, 40, 60] {
            assert_eq!(
                prf(&seq(1, 16), b"L", len),
                long.get(..len).unwrap_or_default()
            );
        }
    }

    /// P(s, label, m) of PRF-HMAC-SHA-256 written out from the RFC text with a one-shot
    /// HMAC-SHA-256, for comparison.
    fn p256(s: &[u8], label: &[u8], m: usize) -> Vec<u8> {
        let mut a = label.to_vec();
        let mut out = Vec::new();
        for _ in 0..m {
            a = crate::crypto::hmac_sha256(s, &a).to_vec();
            out.extend_from_slice(&crate::crypto::hmac_sha256(s, &[&a[..], label].concat()));
        }
        out
    }

    fn prf256(inkey: &[u8], label: &[u8], len: usize) -> Vec<u8> {
        let mut out = vec![0xAA; len];
        PrfKey::hmac_sha256(inkey).prf(label, &mut out);
        out
    }

    #[test]
    fn prf_hmac_sha256_blocks_are_256_bits() {
        let key = seq(0, 16);
        let label = psk_label(PSK_ENCR_CONST, 0x1000_0001, &seq(0x10, 16));
        assert_eq!(prf256(&key, &label, 70), p256(&key, &label, 3)[..70]);
        assert_ne!(prf256(&key, &label, 16), prf(&key, &label, 16));
        let long = prf256(&key, &label, 70);
        for len in [0, 14, 16, 20, 32, 33, 64] {
            assert_eq!(prf256(&key, &label, len), long[..len]);
        }
    }

    #[test]
    fn prf_hmac_sha256_xors_256_bit_chunks() {
        let key = seq(0x40, 40);
        let (s1, s2) = key.split_at(32);
        assert_eq!(
            prf256(&key, b"L", 40),
            xor(&p256(s1, b"L", 2), &p256(s2, b"L", 2))[..40]
        );
        assert_eq!(prf256(&[], b"L", 20), p256(&[], b"L", 1)[..20]);
    }

    #[test]
    fn tgk_keys_spec_notes_5_3() {
        let k = derive_from_tgk(&seq(0, 16), 1, 0x0102_0304, &seq(0x10, 16), 16);
        assert_eq!(*k.tek, h("a488dab36184e8d41ae26cb6daf5405e"));
        assert_eq!(
            k.salt_key.as_bytes().to_vec(),
            h("bfd77adf6b9118d13fffbcd4b407")
        );
        assert_eq!(
            k.auth_key.as_bytes().to_vec(),
            h("8f3e29854e0fa85a76aec4dfdbe95edb82b84df1")
        );
        assert_eq!(
            k.enc_key.as_bytes().to_vec(),
            h("8ac599429ed300e8003dcfa78b664374")
        );
        assert_eq!(format!("{k:?}"), "TgkKeys([REDACTED])");
    }
}

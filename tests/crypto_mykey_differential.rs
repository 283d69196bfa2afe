//! Differential test against `mykey` 2.3.1 (`mykey::crypto`), an independent RFC 3830
//! implementation on the previous RustCrypto generation (hmac 0.12 / sha1 0.10): PRF, §4.1.4 keys,
//! §4.2.3 IV and AES-CM, HMAC-SHA-1 MAC, on deterministic pseudo-random inputs.

use mbms_keys::crypto::{
    AuthKey, EncKey, HmacSha1State, PSK_AUTH_CONST, PSK_ENCR_CONST, PSK_SALT_CONST, ProtectionKeys,
    TEK_CONST, TGK_AUTH_CONST, TGK_ENCR_CONST, TGK_SALT_CONST, aes128_ctr_apply, derive_from_tgk,
    mikey_prf, psk_label, tgk_label,
};
use mykey::crypto as mk;

const CASES: usize = 1200;

/// splitmix64: a fixed seed gives the same inputs on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }

    /// Random octets of a random length below `n`.
    fn bytes_below(&mut self, n: usize) -> Vec<u8> {
        let len = self.below(n);
        self.bytes(len)
    }
}

fn prf(inkey: &[u8], label: &[u8], len: usize) -> Vec<u8> {
    let mut out = vec![0; len];
    mikey_prf(inkey, label, &mut out);
    out
}

#[test]
fn agrees_with_mykey_on_random_inputs() {
    let mut rng = Rng(0x3383_0246_2024_0001);
    let mut cases = 0usize;
    let mut lens_seen = [false; 97];
    let mut rand_lens = [0usize; 2];
    for _ in 0..CASES {
        let inkey_len = match rng.below(4) {
            0 => 16,
            1 => 32,
            2 => 40,
            _ => 1 + rng.below(96),
        };
        lens_seen[inkey_len] = true;
        let inkey = rng.bytes(inkey_len);
        let csb_id = rng.next() as u32;
        let rand_len = if rng.below(2) == 0 { 0 } else { 16 };
        rand_lens[rand_len / 16] += 1;
        let rand = rng.bytes(rand_len);

        // Raw PRF, any label and output length.
        let label = rng.bytes_below(41);
        let out_len = rng.below(71);
        let theirs = mk::mikey_prf(&inkey, &label, out_len).expect("non-empty inkey");
        assert_eq!(
            prf(&inkey, &label, out_len),
            theirs,
            "PRF len {inkey_len}/{out_len}"
        );

        // Labels (§4.1.3, §4.1.4).
        let cs_id = rng.next() as u8;
        assert_eq!(
            psk_label(PSK_ENCR_CONST, csb_id, &rand),
            mk::label_from_psk(mk::CONST_ENC_FROM_PSK, csb_id, &rand)
        );
        assert_eq!(
            tgk_label(TEK_CONST, cs_id, csb_id, &rand),
            mk::label_from_tgk(mk::CONST_TEK, cs_id, csb_id, &rand)
        );

        // §4.1.4 protection keys.
        let keys = ProtectionKeys::derive(&inkey, csb_id, &rand);
        let enc = mk::derive_enc_key(&inkey, csb_id, &rand, mk::KEMAC_ENC_KEY_LEN).expect("enc");
        let salt = mk::derive_salt_key(&inkey, csb_id, &rand, mk::KEMAC_SALT_LEN).expect("salt");
        let auth = mk::derive_auth_key(&inkey, csb_id, &rand, 20).expect("auth");
        assert_eq!(
            keys.enc_key().as_bytes().to_vec(),
            enc,
            "enc key, inkey {inkey_len}"
        );
        assert_eq!(
            keys.salt_key().as_bytes().to_vec(),
            salt,
            "salt key, inkey {inkey_len}"
        );
        assert_eq!(
            keys.auth_key().as_bytes().to_vec(),
            auth,
            "auth key, inkey {inkey_len}"
        );
        assert_eq!(mk::CONST_ENC_FROM_PSK, PSK_ENCR_CONST);
        assert_eq!(mk::CONST_SALT_FROM_PSK, PSK_SALT_CONST);
        assert_eq!(mk::CONST_AUTH_FROM_PSK, PSK_AUTH_CONST);

        // §4.1.3 TGK keys.
        let tek_len = 1 + rng.below(40);
        let tgk = derive_from_tgk(&inkey, cs_id, csb_id, &rand, tek_len);
        let tek = mk::mikey_prf(
            &inkey,
            &mk::label_from_tgk(mk::CONST_TEK, cs_id, csb_id, &rand),
            tek_len,
        )
        .expect("tek");
        assert_eq!(*tgk.tek, tek);
        for (ours, constant, len) in [
            (tgk.enc_key.as_bytes().to_vec(), TGK_ENCR_CONST, 16),
            (tgk.salt_key.as_bytes().to_vec(), TGK_SALT_CONST, 14),
            (tgk.auth_key.as_bytes().to_vec(), TGK_AUTH_CONST, 20),
        ] {
            let theirs = mk::mikey_prf(
                &inkey,
                &mk::label_from_tgk(constant, cs_id, csb_id, &rand),
                len,
            )
            .expect("tgk key");
            assert_eq!(ours, theirs);
        }

        // §4.2.3 IV: a 4-octet COUNTER mostly, sometimes an 8-octet NTP timestamp.
        let ts = if rng.below(4) == 0 {
            rng.bytes(8)
        } else {
            rng.bytes(4)
        };
        let t64 = ts.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
        let iv = mk::kemac_iv(&salt, csb_id, &ts).expect("iv");
        assert_eq!(keys.iv(csb_id, t64), iv, "IV");

        // §4.2.3 AES-CM, cached and one-shot.
        let plain = rng.bytes_below(100);
        let mut theirs = plain.clone();
        mk::aes_cm_apply(&enc, &iv, &mut theirs).expect("aes-cm");
        let mut ours = plain.clone();
        keys.apply_keystream(csb_id, t64, &mut ours);
        assert_eq!(ours, theirs, "AES-CM, {} octets", plain.len());
        let mut one_shot = plain.clone();
        aes128_ctr_apply(keys.enc_key(), &iv, &mut one_shot);
        assert_eq!(one_shot, theirs);

        // §4.2.4 MAC, with the input split into two parts at a random point.
        let msg = rng.bytes_below(300);
        let (a, b) = msg.split_at(rng.below(msg.len() + 1));
        let tag = keys.mac(&[a, b]);
        assert_eq!(tag.to_vec(), mk::compute_mac(&auth, &msg).expect("mac"));
        assert!(mk::verify_mac(&auth, &msg, &tag).is_ok());
        assert!(keys.verify_mac(&[&msg], &tag));
        let auth_key = AuthKey::from_slice(&auth).expect("20 octets");
        assert_eq!(HmacSha1State::from(&auth_key).mac(&[&msg]), tag);
        let enc_key = EncKey::from_slice(&enc).expect("16 octets");
        assert_eq!(&enc_key, keys.enc_key());

        cases += 1;
    }
    assert_eq!(cases, CASES);
    assert!(cases >= 1000);
    for len in [16, 32, 40, 64, 96] {
        assert!(lens_seen[len], "inkey length {len} never drawn");
    }
    assert!(rand_lens[0] > 100 && rand_lens[1] > 100, "{rand_lens:?}");
}

/// The lengths around the 32-octet chunk boundary, where minisip's PRF breaks (docs/spec-notes.md §1.15).
#[test]
fn agrees_with_mykey_at_every_inkey_length_1_to_96() {
    let mut rng = Rng(0x1517);
    let mut cases = 0usize;
    for len in 1..=96 {
        let inkey = rng.bytes(len);
        let rand = rng.bytes(16);
        for out_len in [14, 16, 20, 41] {
            let label = psk_label(PSK_AUTH_CONST, 0x0001_0002, &rand);
            let theirs = mk::mikey_prf(&inkey, &label, out_len).expect("prf");
            assert_eq!(
                prf(&inkey, &label, out_len),
                theirs,
                "inkey {len}, out {out_len}"
            );
            cases += 1;
        }
    }
    assert_eq!(cases, 96 * 4);
}

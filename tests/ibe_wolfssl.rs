//! ECCSI and SAKKE against Debian's wolfSSL (`libwolfssl-dev`, built with ECCSI and SAKKE),
//! through our harness `tools/mcx-wolf` (C, built here with make): wolfSSL validates the SSK/PVT
//! and RSK our KMS side issues, verifies our signatures and decapsulates what we encapsulate;
//! we verify its signatures and decapsulate what it encapsulates to our UID.
//!
//! Oracle rule: without make, a C compiler or the wolfSSL headers the tests skip, or fail under
//! `MBMS_REQUIRE_ORACLES=1`.
#![cfg(feature = "mcx")]

mod kms_support;

use mbms_keys::crypto::OsRandom;
use mbms_keys::ibe::{Ksak, SakkeMaster, Ssv, eccsi, sakke, uid_format2};

use kms_support::wolf::{harness, wolf};

fn uid(n: u64) -> [u8; 32] {
    uid_format2("sip:alice@example.org", "kms.example.org", 2_592_000, 0, n).unwrap()
}

fn flip(h: &str, at: usize) -> String {
    let mut b = hex::decode(h).unwrap();
    b[at] ^= 1;
    hex::encode(b)
}

#[test]
fn wolfssl_validates_the_eccsi_keys_we_issue_and_our_signatures() {
    let Some(bin) = harness() else { return };
    let ksak = Ksak::generate(&mut OsRandom).unwrap();
    let kpak = ksak.kpak().unwrap();
    let kpak_h = hex::encode(kpak.to_octets());
    for n in 1..=3 {
        let id = uid(n);
        let id_h = hex::encode(id);
        let pair = ksak.issue(&id, &mut OsRandom).unwrap();
        let ssk_h = hex::encode(pair.ssk.as_bytes());
        let pvt_h = hex::encode(pair.pvt);
        let (code, _) = wolf(&bin, &["eccsi-validate", &kpak_h, &id_h, &ssk_h, &pvt_h]);
        assert_eq!(code, 0, "wolfSSL refused our SSK/PVT");
        // The harness can say no: a changed SSK.
        let bad = flip(&ssk_h, 31);
        let (code, _) = wolf(&bin, &["eccsi-validate", &kpak_h, &id_h, &bad, &pvt_h]);
        assert_eq!(code, 1);
        let msg = format!("message {n}");
        let msg_h = hex::encode(&msg);
        let sig = eccsi::sign(
            &kpak,
            &id,
            &pair.ssk,
            &pair.pvt,
            msg.as_bytes(),
            &mut OsRandom,
        )
        .unwrap();
        let sig_h = hex::encode(sig);
        let (code, _) = wolf(&bin, &["eccsi-verify", &kpak_h, &id_h, &msg_h, &sig_h]);
        assert_eq!(code, 0, "wolfSSL refused our signature");
        let (code, _) = wolf(&bin, &["eccsi-verify", &kpak_h, &id_h, "00", &sig_h]);
        assert_eq!(code, 1);
    }
}

#[test]
fn we_verify_wolfssl_signatures() {
    let Some(bin) = harness() else { return };
    let ksak = Ksak::generate(&mut OsRandom).unwrap();
    let kpak = ksak.kpak().unwrap();
    let id = uid(7);
    let pair = ksak.issue(&id, &mut OsRandom).unwrap();
    for msg in [&b""[..], b"a", &[0x5a; 1000][..]] {
        let (code, sig_h) = wolf(
            &bin,
            &[
                "eccsi-sign",
                &hex::encode(kpak.to_octets()),
                &hex::encode(id),
                &hex::encode(pair.ssk.as_bytes()),
                &hex::encode(pair.pvt),
                &hex::encode(msg),
            ],
        );
        assert_eq!(code, 0);
        let sig = hex::decode(&sig_h).unwrap();
        eccsi::verify(&kpak, &id, msg, &sig).unwrap();
        assert!(eccsi::verify(&kpak, &id, b"other", &sig).is_err());
    }
}

#[test]
fn wolfssl_validates_the_rsk_we_issue_and_sakke_works_both_ways() {
    let Some(bin) = harness() else { return };
    let z = SakkeMaster::generate(&mut OsRandom).unwrap();
    let zs = z.public().unwrap();
    let z_h = hex::encode(zs.to_octets());
    let id = uid(11);
    let id_h = hex::encode(id);
    let rsk = z.issue_rsk(&id).unwrap();
    let rsk_h = hex::encode(rsk.as_bytes());
    let (code, _) = wolf(&bin, &["sakke-validate", &z_h, &id_h, &rsk_h]);
    assert_eq!(code, 0, "wolfSSL refused our RSK");
    let (code, _) = wolf(
        &bin,
        &["sakke-validate", &z_h, &hex::encode(uid(12)), &rsk_h],
    );
    assert_eq!(code, 1);
    for _ in 0..2 {
        // wolfSSL encapsulates to our UID; we decapsulate.
        let ssv = Ssv::generate(&mut OsRandom).unwrap();
        let ssv_h = hex::encode(ssv.as_bytes());
        let (code, data_h) = wolf(&bin, &["sakke-encap", &z_h, &id_h, &ssv_h]);
        assert_eq!(code, 0);
        let data = hex::decode(&data_h).unwrap();
        assert_eq!(
            data.to_vec(),
            sakke::encapsulate(&zs, &id, &ssv).unwrap().to_vec()
        );
        let got = sakke::decapsulate(&zs, &id, &rsk, &data).unwrap();
        assert_eq!(got.as_bytes(), ssv.as_bytes());
        // We encapsulate; wolfSSL decapsulates.
        let ssv2 = Ssv::generate(&mut OsRandom).unwrap();
        let ours = hex::encode(sakke::encapsulate(&zs, &id, &ssv2).unwrap());
        let (code, out) = wolf(&bin, &["sakke-decap", &z_h, &id_h, &rsk_h, &ours]);
        assert_eq!(code, 0);
        assert_eq!(out, hex::encode(ssv2.as_bytes()));
    }
}

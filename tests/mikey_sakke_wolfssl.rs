//! MIKEY-SAKKE I_MESSAGEs against Debian's wolfSSL through `tools/mcx-wolf`: wolfSSL
//! decapsulates the SAKKE data of our messages with the receiver's RSK and gets our key, and
//! verifies our ECCSI signature over the message (`mikey-verify`, which finds the signature at
//! the message's end on its own); messages around SAKKE data and a signature wolfSSL made are
//! accepted by our verifier; the SSV wolfSSL decapsulates from a 256-bit key's message opens its
//! KEMAC. Skips without wolfSSL, fails under `MBMS_REQUIRE_ORACLES=1`.
#![cfg(feature = "mcx")]

mod common;
#[path = "kms_support/wolf.rs"]
mod mcx_wolf;
#[path = "common/mcx_users.rs"]
mod users;

use mbms_keys::crypto::OsRandom;
use mbms_keys::ibe::Ssv;
use mbms_keys::mcx::{
    DeliveryKey, KeyDelivery, KeyPurpose, ReplayCache, assemble, ntp_timestamp, verify_i_message,
};
use mbms_keys::mikey::Message;
use mcx_wolf::{harness, wolf};
use users::{KMS_URI, Kms, t0};

const CASES: [(KeyPurpose, u32); 3] = [
    (KeyPurpose::Gmk, 0x0abc_0001),
    (KeyPurpose::Pck, 0x1abc_0002),
    (KeyPurpose::Csk, 0x2abc_0003),
];

#[test]
fn wolfssl_decapsulates_and_verifies_our_messages() {
    let Some(bin) = harness() else { return };
    let kms = Kms::new();
    let alice = kms.user("sip:alice@example.org");
    let bob = kms.user("sip:bob@example.org");
    let z = hex::encode(kms.z.to_octets());
    let kpak = hex::encode(kms.kpak.to_octets());
    let (bob_uid, alice_uid) = (hex::encode(bob.uid), hex::encode(alice.uid));
    let rsk = hex::encode(bob.rsk.as_bytes());
    let mut checked = 0;
    for (purpose, key_id) in CASES {
        let key = Ssv::generate(&mut OsRandom).unwrap();
        let msg = kms.message(&alice, &bob, &key, purpose, key_id, t0());
        let data = Message::decode(&msg)
            .unwrap()
            .message()
            .sakke()
            .unwrap()
            .data
            .clone();
        let (code, ssv) = wolf(
            &bin,
            &["sakke-decap", &z, &bob_uid, &rsk, &hex::encode(&data)],
        );
        assert_eq!(code, 0, "{purpose}: wolfSSL did not decapsulate");
        assert_eq!(ssv, hex::encode(key.as_bytes()), "{purpose}");
        let m = hex::encode(&msg);
        let (code, _) = wolf(&bin, &["mikey-verify", &kpak, &alice_uid, &m]);
        assert_eq!(code, 0, "{purpose}: wolfSSL refused our signature");
        // wolfSSL can say no: another signer's UID, a changed octet before the signature.
        let (code, _) = wolf(&bin, &["mikey-verify", &kpak, &bob_uid, &m]);
        assert_eq!(code, 1, "{purpose}");
        let mut bad = msg.clone();
        bad[12] ^= 1;
        let (code, _) = wolf(
            &bin,
            &["mikey-verify", &kpak, &alice_uid, &hex::encode(&bad)],
        );
        assert_eq!(code, 1, "{purpose}");
        checked += 1;
    }
    assert_eq!(checked, CASES.len());
}

/// A 256-bit key (docs/mcx.md §11.5): wolfSSL decapsulates the SSV of the SAKKE payload and
/// verifies our signature over the whole message, KEMAC included; the KEMAC opens under the
/// envelope keys of the SSV wolfSSL recovered, to exactly the 32 octets sent.
#[test]
fn wolfssl_decapsulates_the_ssv_of_a_256_bit_message_and_its_kemac_opens_under_it() {
    use mbms_keys::mcx::kemac::envelope_keys;
    use mbms_keys::mikey::{Payload, Timestamp};

    let Some(bin) = harness() else { return };
    let kms = Kms::new();
    let alice = kms.user("sip:alice@example.org");
    let bob = kms.user("sip:bob@example.org");
    let z = hex::encode(kms.z.to_octets());
    let kpak = hex::encode(kms.kpak.to_octets());
    let (bob_uid, alice_uid) = (hex::encode(bob.uid), hex::encode(alice.uid));
    let rsk = hex::encode(bob.rsk.as_bytes());
    for (purpose, key_id) in CASES {
        let key = DeliveryKey::from_slice(&[key_id as u8 ^ 0xa5; 32]).unwrap();
        let msg = kms.message(&alice, &bob, &key, purpose, key_id, t0());
        let rx = Message::decode(&msg).unwrap();
        let m = rx.message();
        let data = m.sakke().unwrap().data.clone();
        let (code, ssv) = wolf(
            &bin,
            &["sakke-decap", &z, &bob_uid, &rsk, &hex::encode(&data)],
        );
        assert_eq!(code, 0, "{purpose}: wolfSSL did not decapsulate");
        let (code, _) = wolf(
            &bin,
            &["mikey-verify", &kpak, &alice_uid, &hex::encode(&msg)],
        );
        assert_eq!(code, 0, "{purpose}: wolfSSL refused our signature");

        let ssv = Ssv::from_slice(&hex::decode(ssv).unwrap()).unwrap();
        let Some(Timestamp::NtpUtc(t)) = m.timestamp() else {
            panic!("T")
        };
        let keys = envelope_keys(&ssv, m.hdr.csb_id, m.rand().unwrap());
        let Some(Payload::Kemac(kemac)) = m.payloads.get(m.payloads.len() - 2) else {
            panic!("KEMAC before SIGN")
        };
        // The MAC field ends 131 octets (SIGN header and signature) before the message's end.
        let mac_at = msg.len() - 131 - 20;
        assert_eq!(&msg[mac_at..msg.len() - 131], &kemac.mac[..]);
        assert!(keys.verify_mac(&[&msg[..mac_at]], &kemac.mac), "{purpose}");
        let mut plain = kemac.encr_data.clone();
        keys.apply_keystream(m.hdr.csb_id, t, &mut plain);
        // One Key data: next 0, type TGK / KV NULL, length 32, the key.
        assert_eq!(plain[..4], [0x00, 0x00, 0x00, 0x20], "{purpose}");
        assert_eq!(&plain[4..], key.as_bytes(), "{purpose}");
    }
}

#[test]
fn we_accept_messages_whose_sakke_data_and_signature_wolfssl_made() {
    let Some(bin) = harness() else { return };
    let kms = Kms::new();
    let alice = kms.user("sip:alice@example.org");
    let bob = kms.user("sip:bob@example.org");
    let z = hex::encode(kms.z.to_octets());
    let kpak = hex::encode(kms.kpak.to_octets());
    let (bob_uid, alice_uid) = (hex::encode(bob.uid), hex::encode(alice.uid));
    let ssk = hex::encode(alice.ssk.as_bytes());
    let pvt = hex::encode(alice.pvt);
    let mut accepted = 0;
    for (purpose, key_id) in CASES {
        let key = Ssv::generate(&mut OsRandom).unwrap();
        let (code, data) = wolf(
            &bin,
            &["sakke-encap", &z, &bob_uid, &hex::encode(key.as_bytes())],
        );
        assert_eq!(code, 0);
        let data = hex::decode(data).unwrap();
        assert_eq!(data.len(), 273);
        let dk = DeliveryKey::from(key.clone());
        let d = KeyDelivery {
            key: &dk,
            key_id,
            purpose,
            to_uid: &bob.uid,
            to_uri: Some(&bob.uri),
            kms_uri: Some(KMS_URI),
            time: ntp_timestamp(t0()).unwrap(),
            key_params: None,
        };
        let unsigned = assemble(&d, &alice.uid, &[0x3c; 16], &data).unwrap();
        let (code, sig) = wolf(
            &bin,
            &[
                "eccsi-sign",
                &kpak,
                &alice_uid,
                &ssk,
                &pvt,
                &hex::encode(unsigned.signed_octets()),
            ],
        );
        assert_eq!(code, 0);
        let sig: [u8; 129] = hex::decode(sig).unwrap().try_into().unwrap();
        let msg = unsigned.finish(&sig);
        let mut expect = kms.expect(&alice, t0());
        expect.purpose = Some(purpose);
        let got = verify_i_message(
            &msg,
            &kms.receiver(&bob, true),
            &expect,
            &mut ReplayCache::new(),
        )
        .unwrap_or_else(|e| panic!("{purpose}: {e}"));
        assert!(got.key == key, "{purpose}");
        assert_eq!((got.purpose, got.key_id), (purpose, key_id));
        accepted += 1;
    }
    assert_eq!(accepted, CASES.len());
}

/// `mikey-verify` itself against data neither side made: wolfSSL verifies the signatures of the
/// four Streamwide I_MESSAGEs with their KMS's KPAK and their initiators' UIDs.
#[test]
fn wolfssl_verifies_the_streamwide_messages() {
    let Some(bin) = harness() else { return };
    let v = common::load("streamwide-mikey-sakke");
    let kpak = v["kms"]["kpak"].as_str().unwrap();
    let users = v["users"].as_array().unwrap();
    let mut verified = 0;
    for m in v["messages"].as_array().unwrap() {
        let from = users
            .iter()
            .find(|u| u["uri"] == m["initiator_uri"])
            .unwrap();
        let uid = from["uid"].as_str().unwrap();
        let msg = m["message"].as_str().unwrap();
        let (code, _) = wolf(&bin, &["mikey-verify", kpak, uid, msg]);
        assert_eq!(code, 0, "{}", m["name"]);
        verified += 1;
    }
    assert_eq!(verified, 4);
}

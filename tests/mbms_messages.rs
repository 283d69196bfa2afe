//! The messages of docs/profile.md §2: the builders reproduce every vector octet
//! for octet, the verifiers accept them and read the right values, and any
//! tampering, truncation or wrong key is rejected.

mod common;

use mbms_keys::crypto::{Msk, Mtk, Muk, ProtectionKeys, Salt};
use mbms_keys::mbms::profile::MAX_ENCR_DATA_LEN;
use mbms_keys::mbms::{
    AckContext, MessageError, MskDelivery, MskUpdate, MtkDelivery, MtkKeys, Streaming,
    UnverifiedAck, UnverifiedMsk, UnverifiedMtk, build_ack, build_msk, build_mtk,
};
use mbms_keys::mikey::{
    Message, MskId, MtkId, Payload, PolicyParam, ProtType, SecurityPolicy, SrtpIdEntry,
};
use serde_json::Value;

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v["inputs"][k]
        .as_str()
        .unwrap_or_else(|| panic!("inputs.{k}"))
}

fn h(v: &Value, k: &str) -> Vec<u8> {
    hex::decode(s(v, k)).unwrap()
}

fn u32_hex(v: &Value, k: &str) -> u32 {
    u32::from_str_radix(s(v, k), 16).unwrap()
}

fn u16_hex(v: &Value, k: &str) -> u16 {
    u16::from_str_radix(s(v, k), 16).unwrap()
}

fn muk() -> Muk {
    Muk::from_hex(s(&common::load("msk-message-normal"), "muk")).unwrap()
}

fn msk_delivery(v: &Value) -> MskDelivery {
    let update = match s(v, "kind") {
        "normal" => MskUpdate::NewKey {
            msk: Msk::from_hex(s(v, "msk")).unwrap(),
            seql: u16_hex(v, "seql"),
            sequ: u16_hex(v, "sequ"),
        },
        "validity-update" => MskUpdate::ValidityOnly {
            seql: u16_hex(v, "seql"),
            sequ: u16_hex(v, "sequ"),
        },
        "invalidation" => MskUpdate::Invalidate {
            seql: u16_hex(v, "seql"),
            sequ: u16_hex(v, "sequ"),
        },
        "solicited-pull" => MskUpdate::SolicitedPull,
        other => panic!("{other}"),
    };
    let mut d = MskDelivery::new(
        s(v, "key_domain_id").parse().unwrap(),
        s(v, "msk_id").parse().unwrap(),
        u32_hex(v, "counter"),
        h(v, "rand"),
        s(v, "idi"),
        s(v, "idr"),
        update,
    );
    d.csb_id = u32_hex(v, "csb_id");
    d.v = v["inputs"]["v"].as_u64() == Some(1);
    d
}

const MSK_VECTORS: [&str; 4] = [
    "msk-message-normal",
    "msk-message-validity-update",
    "msk-message-invalidation",
    "msk-message-solicited-pull",
];

#[test]
fn msk_builder_reproduces_every_msk_vector() {
    for name in MSK_VECTORS {
        let v = common::load(name);
        let built = build_msk(&muk(), &msk_delivery(&v)).unwrap();
        assert_eq!(hex::encode(built), v["message"].as_str().unwrap(), "{name}");
    }
}

#[test]
fn msk_verifier_reads_every_msk_vector() {
    for name in MSK_VECTORS {
        let v = common::load(name);
        let bytes = common::hex_field(&v, &["message"]);
        let un = UnverifiedMsk::parse(&bytes).unwrap();
        assert_eq!(un.counter(), u32_hex(&v, "counter"), "{name}");
        assert_eq!(un.idi(), s(&v, "idi").as_bytes());
        assert_eq!(un.idr(), s(&v, "idr").as_bytes());
        let m = un.verify(&muk()).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(m.msk_id, s(&v, "msk_id").parse::<MskId>().unwrap());
        assert_eq!(m.csb_id, u32_hex(&v, "csb_id"));
        assert_eq!(m.v, v["inputs"]["v"].as_u64() == Some(1));
        assert_eq!(m.update, msk_delivery(&v).update, "{name}");
    }
}

fn mtk_delivery(v: &Value) -> MtkDelivery {
    let streaming = v["inputs"].get("srtp_id_map").map(|m| Streaming {
        srtp: SrtpIdEntry {
            policy_no: m["policy_no"].as_u64().unwrap() as u8,
            ssrc: u32::from_str_radix(m["ssrc"].as_str().unwrap(), 16).unwrap(),
            roc: u32::from_str_radix(m["roc"].as_str().unwrap(), 16).unwrap(),
        },
        policy: {
            let sp = &v["inputs"]["sp"];
            SecurityPolicy {
                policy_no: sp["policy_no"].as_u64().unwrap() as u8,
                prot_type: ProtType(sp["prot_type"].as_u64().unwrap() as u8),
                params: sp["params"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| PolicyParam {
                        param_type: p["type"].as_u64().unwrap() as u8,
                        value: hex::decode(p["value"].as_str().unwrap()).unwrap(),
                    })
                    .collect(),
            }
        },
    });
    MtkDelivery {
        key_domain_id: s(v, "key_domain_id").parse().unwrap(),
        msk_id: s(v, "msk_id").parse().unwrap(),
        csb_id: u32_hex(v, "csb_id"),
        mtk_id: s(v, "mtk_id").parse().unwrap(),
        counter: u32_hex(v, "counter"),
        mtk: Mtk::from_hex(s(v, "mtk")).unwrap(),
        salt: v["inputs"]["mtk_salt"]
            .as_str()
            .map(|x| Salt::from_hex(x).unwrap()),
        streaming,
    }
}

fn mtk_keys(v: &Value) -> MtkKeys {
    MtkKeys::new(&Msk::from_hex(s(v, "msk")).unwrap(), u32_hex(v, "csb_id"))
}

#[test]
fn mtk_builder_reproduces_both_mtk_vectors_and_verifier_reads_them() {
    for name in ["mtk-message-download", "mtk-message-streaming"] {
        let v = common::load(name);
        let d = mtk_delivery(&v);
        let built = build_mtk(&mtk_keys(&v), &d).unwrap();
        assert_eq!(
            hex::encode(&built),
            v["message"].as_str().unwrap(),
            "{name}"
        );
        let un = UnverifiedMtk::parse(&built).unwrap();
        assert_eq!(un.mtk_id(), d.mtk_id);
        assert_eq!(un.counter(), d.counter);
        let m = un.verify(&mtk_keys(&v)).unwrap();
        assert_eq!(m.mtk, d.mtk, "{name}");
        assert_eq!(m.salt, d.salt, "{name}");
        assert_eq!(m.mtk_id, MtkId(u16_hex(&v, "mtk_id")));
        assert_eq!(m.srtp, d.streaming.as_ref().map(|s| s.srtp));
        assert_eq!(m.sp, d.streaming.as_ref().map(|s| s.policy.clone()));
    }
}

#[test]
fn ack_builder_reproduces_the_ack_vector_and_the_bmsc_verifies_it() {
    let v = common::load("msk-ack");
    let request = h(&v, "request");
    let msg = UnverifiedMsk::parse(&request)
        .unwrap()
        .verify(&muk())
        .unwrap();
    let ctx = AckContext::of(&msg);
    let ack = build_ack(&ctx).unwrap();
    assert_eq!(hex::encode(&ack), v["message"].as_str().unwrap());
    // The BM-SC side: keys from its own MUK, RAND and identities.
    let keys = ProtectionKeys::derive(muk().as_bytes(), 0x00010002, &h(&v, "rand"));
    let bmsc_ctx = AckContext::new(
        keys,
        0x00010002,
        5,
        s(&v, "idi").as_bytes(),
        s(&v, "idr").as_bytes(),
    );
    let un = UnverifiedAck::parse(&ack).unwrap();
    assert_eq!((un.csb_id(), un.counter()), (0x00010002, 5));
    assert_eq!(un.idr(), Some(s(&v, "idr").as_bytes()));
    un.verify(&bmsc_ctx).unwrap();
}

/// Verifies any vector message with the key of its vector.
fn verify_vector(name: &str, bytes: &[u8]) -> Result<(), MessageError> {
    let v = common::load(name);
    match v["message_type"].as_str().unwrap() {
        "msk" => UnverifiedMsk::parse(bytes)?.verify(&muk()).map(drop),
        "mtk" => UnverifiedMtk::parse(bytes)?.verify(&mtk_keys(&v)).map(drop),
        "ack" => {
            let keys = ProtectionKeys::derive(muk().as_bytes(), 0x00010002, &h(&v, "rand"));
            let ctx = AckContext::new(
                keys,
                0x00010002,
                5,
                s(&v, "idi").as_bytes(),
                s(&v, "idr").as_bytes(),
            );
            UnverifiedAck::parse(bytes)?.verify(&ctx).map(drop)
        }
        other => panic!("{other}"),
    }
}

const ALL: [&str; 7] = [
    "msk-message-normal",
    "msk-message-validity-update",
    "msk-message-invalidation",
    "msk-message-solicited-pull",
    "mtk-message-download",
    "mtk-message-streaming",
    "msk-ack",
];

#[test]
fn flipping_any_bit_of_any_vector_fails_verification() {
    let mut flips = 0;
    for name in ALL {
        let bytes = common::hex_field(&common::load(name), &["message"]);
        verify_vector(name, &bytes).unwrap();
        for i in 0..bytes.len() {
            for bit in 0..8 {
                let mut t = bytes.clone();
                t[i] ^= 1 << bit;
                assert!(
                    verify_vector(name, &t).is_err(),
                    "{name}: octet {i} bit {bit} accepted"
                );
                flips += 1;
            }
        }
    }
    assert!(flips > 8000, "{flips}");
}

#[test]
fn truncating_any_vector_at_any_length_fails_cleanly() {
    for name in ALL {
        let bytes = common::hex_field(&common::load(name), &["message"]);
        for len in 0..bytes.len() {
            assert!(verify_vector(name, &bytes[..len]).is_err(), "{name}: {len}");
        }
    }
}

#[test]
fn wrong_key_gives_bad_mac() {
    let v = common::load("msk-message-normal");
    let bytes = common::hex_field(&v, &["message"]);
    let mut other = *muk().as_bytes();
    other[31] ^= 1;
    let e = UnverifiedMsk::parse(&bytes)
        .unwrap()
        .verify(&Muk::from_bytes(other))
        .unwrap_err();
    assert_eq!(e, MessageError::BadMac);
    let v = common::load("mtk-message-download");
    let bytes = common::hex_field(&v, &["message"]);
    let keys = MtkKeys::new(&Msk::from_bytes([0x11; 16]), 0x00010002);
    assert_eq!(
        UnverifiedMtk::parse(&bytes)
            .unwrap()
            .verify(&keys)
            .unwrap_err(),
        MessageError::BadMac
    );
}

/// Re-encodes a message in another payload order and re-computes its KEMAC MAC.
fn reseal(msg: &Message, keys: &ProtectionKeys) -> Vec<u8> {
    let (mut bytes, mac) = msg.encode_with_mac_field().unwrap();
    let off = mac.unwrap().offset;
    let (covered, field) = bytes.split_at_mut(off);
    field.copy_from_slice(&keys.mac(&[covered]));
    bytes
}

#[test]
fn receivers_accept_any_payload_order() {
    let v = common::load("msk-message-normal");
    let bytes = common::hex_field(&v, &["message"]);
    let mut msg = Message::decode(&bytes).unwrap().into_message();
    // HDR, EXT, T, RAND, IDi, IDr, KEMAC → HDR, IDi, RAND, T, IDr, EXT, KEMAC
    let p = msg.payloads.clone();
    msg.payloads = vec![
        p[3].clone(),
        p[2].clone(),
        p[1].clone(),
        p[4].clone(),
        p[0].clone(),
        p[5].clone(),
    ];
    let keys = ProtectionKeys::derive(muk().as_bytes(), 0x00010002, &h(&v, "rand"));
    let reordered = reseal(&msg, &keys);
    let m = UnverifiedMsk::parse(&reordered)
        .unwrap()
        .verify(&muk())
        .unwrap();
    assert_eq!(m.update, msk_delivery(&v).update);
    assert_eq!(m.idi, s(&v, "idi").as_bytes());
}

#[test]
fn payloads_after_the_mac_are_refused() {
    let v = common::load("mtk-message-download");
    let bytes = common::hex_field(&v, &["message"]);
    let mut msg = Message::decode(&bytes).unwrap().into_message();
    msg.payloads.push(Payload::Rand(vec![1, 2, 3]));
    let keys = mtk_keys(&v);
    let (mut b, mac) = msg.encode_with_mac_field().unwrap();
    let off = mac.unwrap().offset;
    let (covered, field) = b.split_at_mut(off);
    field[..20].copy_from_slice(&keys.keys().mac(&[covered]));
    let e = UnverifiedMtk::parse(&b).unwrap().verify(&keys).unwrap_err();
    assert!(matches!(e, MessageError::Structure(_)), "{e}");
}

/// docs/profile.md §2.3: Encr data is decrypted into a fixed buffer; longer Encr
/// data is not a message of the profile, refused before the MAC is checked.
#[test]
fn encr_data_longer_than_the_receive_buffer_is_refused_before_the_mac() {
    let v = common::load("mtk-message-download");
    let keys = mtk_keys(&v);
    let bytes = common::hex_field(&v, &["message"]);
    let with_encr_len = |len: usize| {
        let mut msg = Message::decode(&bytes).unwrap().into_message();
        for p in &mut msg.payloads {
            if let Payload::Kemac(k) = p {
                k.encr_data = vec![0x5a; len];
            }
        }
        reseal(&msg, keys.keys())
    };
    let too_long = with_encr_len(MAX_ENCR_DATA_LEN + 1);
    assert!(matches!(
        UnverifiedMtk::parse(&too_long),
        Err(MessageError::Structure(_))
    ));
    // At the limit it is read, MAC-checked and decrypted (into garbage).
    let at_limit = with_encr_len(MAX_ENCR_DATA_LEN);
    let e = UnverifiedMtk::parse(&at_limit)
        .unwrap()
        .verify(&keys)
        .unwrap_err();
    assert!(matches!(e, MessageError::KeyData(_)), "{e}");
}

#[test]
fn structure_is_checked_before_anything_else() {
    let v = common::load("msk-message-normal");
    let bytes = common::hex_field(&v, &["message"]);
    // An MSK message is not an MTK message and not an acknowledgement.
    assert!(matches!(
        UnverifiedMtk::parse(&bytes),
        Err(MessageError::Structure(_))
    ));
    assert!(matches!(
        UnverifiedAck::parse(&bytes),
        Err(MessageError::Structure(_))
    ));
    // Dropping RAND leaves a well-formed MIKEY message that is not an MSK message.
    let mut msg = Message::decode(&bytes).unwrap().into_message();
    msg.payloads.remove(2);
    let b = msg.encode().unwrap();
    assert!(matches!(
        UnverifiedMsk::parse(&b),
        Err(MessageError::Structure(_))
    ));
}

#[test]
fn random_inputs_build_and_verify() {
    for i in 0u32..200 {
        let muk = Muk::random();
        let msk = Msk::random();
        let rand = Muk::random().as_bytes()[..16].to_vec();
        let d = MskDelivery::new(
            "00f110".parse().unwrap(),
            MskId::new(7, (i % 0xfffe) as u16 + 1),
            i.wrapping_mul(7919),
            rand,
            "bmsc.example",
            "btid@bsf.example",
            MskUpdate::NewKey {
                msk: msk.clone(),
                seql: i as u16,
                sequ: 0xffff,
            },
        );
        let b = build_msk(&muk, &d).unwrap();
        let m = UnverifiedMsk::parse(&b).unwrap().verify(&muk).unwrap();
        assert_eq!(m.update, d.update);
        let ack = build_ack(&AckContext::of(&m)).unwrap();
        UnverifiedAck::parse(&ack)
            .unwrap()
            .verify(&AckContext::of(&m))
            .unwrap();
        let keys = MtkKeys::new(&msk, d.csb_id);
        let md = MtkDelivery {
            key_domain_id: d.key_domain_id,
            msk_id: d.msk_id,
            csb_id: d.csb_id,
            mtk_id: MtkId(i as u16 + 1),
            counter: i,
            mtk: Mtk::random(),
            salt: (i % 2 == 0).then(|| Salt::from_bytes([i as u8; 14])),
            streaming: None,
        };
        let mb = build_mtk(&keys, &md).unwrap();
        let mm = UnverifiedMtk::parse(&mb).unwrap().verify(&keys).unwrap();
        assert_eq!((mm.mtk, mm.salt), (md.mtk, md.salt));
    }
}

#[test]
fn builders_refuse_what_the_profile_cannot_express() {
    let v = common::load("msk-message-normal");
    let mut d = msk_delivery(&v);
    d.update = MskUpdate::SolicitedPull;
    assert!(
        build_msk(&muk(), &d).is_err(),
        "solicited pull with Key Number 2"
    );
    d.update = MskUpdate::Invalidate { seql: 1, sequ: 2 };
    assert!(
        build_msk(&muk(), &d).is_err(),
        "invalidation with SEQl <= SEQu"
    );
    d.update = MskUpdate::ValidityOnly { seql: 2, sequ: 1 };
    assert!(
        build_msk(&muk(), &d).is_err(),
        "validity update with SEQl > SEQu"
    );
}

//! The MIKEY-SAKKE I_MESSAGE of TS 33.180 key delivery (docs/mcx.md §11): the Streamwide
//! messages verify with their keys and give their keys; our messages round-trip for each
//! purpose; each refusal of the verifier is typed and comes in its order.
#![cfg(feature = "mcx")]

mod common;
#[path = "common/mcx_users.rs"]
mod users;

use std::time::{Duration, SystemTime};

use mbms_keys::crypto::OsRandom;
use mbms_keys::ibe::{Kpak, Rsk, SakkePublic, Ssv, eccsi, sakke};
use mbms_keys::mcx::{
    BuildError, DeliveryKey, Expect, KeyDelivery, KeyPurpose, Receiver, Refusal, ReplayCache,
    assemble, build_i_message, guk_id, ntp_timestamp, ntp_to_system, profile, verify_i_message,
};
use mbms_keys::mikey::{
    CsIdMap, DataType, GenericIdEntry, IdRole, IdType, Message, PayloadType, PrfFunc, SignType,
    Timestamp,
};
use serde_json::Value;
use users::{KMS_URI, Kms, t0};

// ---- the Streamwide messages -------------------------------------------------------------

struct Vectors(Value);

impl Vectors {
    fn load() -> Self {
        Self(common::load("streamwide-mikey-sakke"))
    }
    fn user(&self, uri: &str) -> &Value {
        self.0["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["uri"] == uri)
            .unwrap_or_else(|| panic!("{uri}"))
    }
    fn message(&self, name: &str) -> &Value {
        self.0["messages"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["name"] == name)
            .unwrap_or_else(|| panic!("{name}"))
    }
}

fn h(v: &Value, k: &str) -> Vec<u8> {
    hex::decode(v[k].as_str().unwrap_or_else(|| panic!("{k}"))).unwrap()
}

/// Verifies the vector message `name` as its responder, with or without the responder's URI.
fn verify_vector(name: &str, with_uri: bool) -> Result<mbms_keys::mcx::DeliveredKey, Refusal> {
    let v = Vectors::load();
    let m = v.message(name);
    let from = v.user(m["initiator_uri"].as_str().unwrap());
    let to = v.user(m["responder_uri"].as_str().unwrap());
    let kpak = Kpak::from_octets(&h(&v.0["kms"], "kpak")).unwrap();
    let z = SakkePublic::from_octets(&h(&v.0["kms"], "z")).unwrap();
    let rsk = Rsk::from_slice(&h(to, "rsk")).unwrap();
    let to_uid = h(to, "uid");
    let rx = Receiver {
        uid: &to_uid,
        uri: with_uri.then(|| to["uri"].as_str().unwrap()),
        rsk: &rsk,
        z: &z,
    };
    let from_uid = h(from, "uid");
    let msg = h(m, "message");
    // Verified as of the messages' T (NTP 3968437672, 2025-10-02T23:47:52Z).
    let at = ntp_to_system(0xec89_8da8_0000_0000);
    let expect = Expect {
        from_uid: &from_uid,
        kpak: &kpak,
        purpose: None,
        at,
        window: profile::FRESHNESS_WINDOW,
    };
    let got = verify_i_message(&msg, &rx, &expect, &mut ReplayCache::new())?;
    assert_eq!(got.key.as_bytes()[..], h(m, "key")[..], "{name}: key");
    assert_eq!(got.sender_uid, from_uid);
    assert_eq!(got.time, 0xec89_8da8_0000_0000);
    Ok(got)
}

#[test]
fn the_streamwide_gmk_message_verifies_and_gives_its_gmk_and_gmk_id() {
    let got = verify_vector("GMK", false).unwrap();
    assert_eq!(got.purpose, KeyPurpose::Gmk);
    assert_eq!(got.key_id, 0x0df9_bc39, "GMK-ID from the SPI");
    assert_eq!(got.csb_id, 0x06a1_2aea, "GUK-ID");
    assert_eq!(
        got.kms_uri.as_deref(),
        Some(&b"kms.mydev.streamwide.com"[..])
    );
    assert_eq!(got.key_params.as_ref().map(Vec::len), Some(71));
}

#[test]
fn the_streamwide_guk_id_is_the_gmk_id_hidden_for_the_receiver_uri() {
    // TS 33.180 F.1.3: checked with the receiver's URI, and the GMK-ID recovered from it.
    let got = verify_vector("GMK", true).unwrap();
    assert_eq!(got.key_id, 0x0df9_bc39);
    let gmk = Ssv::from_slice(&hex::decode("07d1a1677ac36d8e81620484689b3c2d").unwrap()).unwrap();
    assert_eq!(
        guk_id(gmk.as_bytes(), 0x0df9_bc39, "sip:alice@streamwide.com"),
        Some(0x06a1_2aea)
    );
    assert_ne!(
        guk_id(gmk.as_bytes(), 0x0df9_bc39, "sip:bob@streamwide.com"),
        Some(0x06a1_2aea)
    );
}

#[test]
fn the_streamwide_csk_and_pck_messages_verify_with_their_key_ids() {
    let csk = verify_vector("CSK", true).unwrap();
    assert_eq!((csk.purpose, csk.key_id), (KeyPurpose::Csk, 0x2ddd_5bf0));
    let pck = verify_vector("PCK", true).unwrap();
    assert_eq!((pck.purpose, pck.key_id), (KeyPurpose::Pck, 0x1699_2638));
    assert_eq!(pck.key_params.as_ref().map(|p| p[0]), Some(0x43));
}

#[test]
fn the_streamwide_legacy_gmk_message_verifies_and_its_uri_recovers_the_gmk_id() {
    // The IWF message has an SRTP-ID map: no SPI; its CSB ID is the GUK-ID.
    let plain = verify_vector("GMK (legacy format for IWF)", false).unwrap();
    assert_eq!(
        (plain.purpose, plain.key_id),
        (KeyPurpose::Gmk, 0x0482_09a7)
    );
    let with_uri = verify_vector("GMK (legacy format for IWF)", true).unwrap();
    assert_eq!(with_uri.csb_id, 0x0482_09a7);
    assert_eq!(
        with_uri.key_id, 0x0df9_bc39,
        "the same GMK-ID as the GMK message"
    );
}

// ---- our messages ------------------------------------------------------------------------

#[test]
fn a_built_message_round_trips_for_each_purpose() {
    let kms = Kms::new();
    let alice = kms.user("sip:alice@example.org");
    let bob = kms.user("sip:bob@example.org");
    for (purpose, key_id) in [
        (KeyPurpose::Gmk, 0x0123_4567),
        (KeyPurpose::Pck, 0x1234_5678),
        (KeyPurpose::Csk, 0x2345_6789),
    ] {
        let key = Ssv::generate(&mut OsRandom).unwrap();
        let msg = kms.message(&alice, &bob, &key, purpose, key_id, t0());
        for with_uri in [false, true] {
            let mut expect = kms.expect(&alice, t0() + Duration::from_secs(30));
            expect.purpose = Some(purpose);
            let got = verify_i_message(
                &msg,
                &kms.receiver(&bob, with_uri),
                &expect,
                &mut ReplayCache::new(),
            )
            .unwrap_or_else(|e| panic!("{purpose}: {e}"));
            assert!(got.key == key, "{purpose}");
            let shown = format!("{got:?}");
            assert!(shown.contains("[REDACTED]"), "{shown}");
            assert!(!shown.contains(&hex::encode(key.as_bytes())));
            assert_eq!((got.purpose, got.key_id), (purpose, key_id));
            assert_eq!(got.sender_uid, alice.uid);
            assert_eq!(got.time, ntp_timestamp(t0()).unwrap());
            assert_eq!(got.kms_uri.as_deref(), Some(KMS_URI.as_bytes()));
        }
    }
}

#[test]
fn a_built_message_has_the_profile_layout() {
    let kms = Kms::new();
    let alice = kms.user("sip:alice@example.org");
    let bob = kms.user("sip:bob@example.org");
    let key = Ssv::from_bytes([7; 16]);
    let msg = kms.message(&alice, &bob, &key, KeyPurpose::Gmk, 0x0abc_def0, t0());
    let rx = Message::decode(&msg).unwrap();
    let m = rx.message();
    assert_eq!(m.hdr.data_type, DataType::SAKKE);
    assert!(!m.hdr.v);
    assert_eq!(m.hdr.prf_func, PrfFunc::HMAC_SHA_256);
    let guk = guk_id(key.as_bytes(), 0x0abc_def0, &bob.uri).unwrap();
    assert_eq!(m.hdr.csb_id, guk);
    assert_ne!(guk, 0x0abc_def0);
    assert_eq!(guk >> 28, 0, "the purpose tag stays");
    let mut spi = 0x0abc_def0u32.to_be_bytes().to_vec();
    spi.extend(guk.to_be_bytes());
    assert_eq!(
        m.hdr.cs_id_map,
        CsIdMap::GenericId(vec![GenericIdEntry {
            cs_id: profile::GMK_CS_ID,
            prot_type: 0,
            s: false,
            policies: vec![],
            session_data: vec![],
            spi,
        }])
    );
    let types: Vec<u8> = m.payloads.iter().map(|p| p.payload_type().0).collect();
    assert_eq!(types, [5, 11, 14, 14, 14, 14, 26, 4]);
    assert_eq!(
        m.timestamp(),
        Some(Timestamp::NtpUtc(ntp_timestamp(t0()).unwrap()))
    );
    assert_eq!(m.rand().map(<[u8]>::len), Some(profile::RAND_LEN));
    let roles: Vec<IdRole> = m.idrs().map(|i| i.role).collect();
    assert_eq!(
        roles,
        [
            IdRole::IDRUIDI,
            IdRole::IDRUIDR,
            IdRole::IDRKMSI,
            IdRole::IDRKMSR
        ]
    );
    assert!(m.idrs().all(|i| i.id_type == IdType::URI));
    assert_eq!(m.idr(IdRole::IDRUIDR).unwrap().data, bob.uid);
    let sakke = m.sakke().unwrap();
    assert_eq!(sakke.data.len(), 273);
    // The SAKKE data decapsulates with bob's RSK on its own, and the signature verifies on
    // the octets before it, the SIGN header included.
    let ssv = sakke::decapsulate(&kms.z, &bob.uid, &bob.rsk, &sakke.data).unwrap();
    assert!(ssv == key);
    let field = rx.mac_field().unwrap();
    assert_eq!((field.payload, field.len), (PayloadType::SIGN, 129));
    let Some(mbms_keys::mikey::Payload::Sign(sign)) = m.payloads.last() else {
        panic!("SIGN last")
    };
    assert_eq!(sign.sign_type, SignType::ECCSI);
    assert_eq!(&msg[field.offset - 2..field.offset], [0x20, 0x81]);
    eccsi::verify(&kms.kpak, &alice.uid, &msg[..field.offset], &sign.signature).unwrap();
    // A PCK has no crypto session; a CSK one GENERIC-ID session whose SPI is the CSK-ID.
    let pck = kms.message(&alice, &bob, &key, KeyPurpose::Pck, 0x1000_0002, t0());
    let pck = Message::decode(&pck).unwrap().into_message();
    assert_eq!((pck.hdr.csb_id, pck.hdr.cs_count), (0x1000_0002, 0));
    assert_eq!(pck.hdr.cs_id_map, CsIdMap::Empty);
    let csk = kms.message(&alice, &bob, &key, KeyPurpose::Csk, 0x2000_0003, t0());
    let csk = Message::decode(&csk).unwrap().into_message();
    let CsIdMap::GenericId(entries) = &csk.hdr.cs_id_map else {
        panic!("{:?}", csk.hdr.cs_id_map)
    };
    assert_eq!(
        (entries[0].cs_id, &entries[0].spi[..]),
        (profile::CSK_CS_ID, &[0x20, 0, 0, 3][..])
    );
}

#[test]
fn the_builder_refuses_a_key_id_tagged_for_another_purpose() {
    let kms = Kms::new();
    let alice = kms.user("sip:alice@example.org");
    let key = DeliveryKey::from(Ssv::from_bytes([1; 16]));
    let d = KeyDelivery {
        key: &key,
        key_id: 0x1000_0001,
        purpose: KeyPurpose::Gmk,
        to_uid: &alice.uid,
        to_uri: None,
        kms_uri: None,
        time: 0,
        key_params: None,
    };
    let err = build_i_message(&d, &kms.z, &kms.signer(&alice), &mut OsRandom).unwrap_err();
    assert_eq!(
        err,
        BuildError::PurposeTag {
            key_id: 0x1000_0001,
            tag: 1,
            purpose: KeyPurpose::Gmk
        }
    );
}

// ---- refusals ------------------------------------------------------------------------------

struct Case {
    kms: Kms,
    alice: users::User,
    bob: users::User,
    key: Ssv,
}

impl Case {
    fn new() -> Self {
        let kms = Kms::new();
        Self {
            alice: kms.user("sip:alice@example.org"),
            bob: kms.user("sip:bob@example.org"),
            kms,
            key: Ssv::from_bytes([0x42; 16]),
        }
    }
    fn pck(&self) -> Vec<u8> {
        self.kms.message(
            &self.alice,
            &self.bob,
            &self.key,
            KeyPurpose::Pck,
            0x1000_0001,
            t0(),
        )
    }
    /// Bob verifies `msg` from Alice at `at`.
    fn verify_at(&self, msg: &[u8], at: SystemTime) -> Result<DeliveryKey, Refusal> {
        let expect = self.kms.expect(&self.alice, at);
        verify_i_message(
            msg,
            &self.kms.receiver(&self.bob, true),
            &expect,
            &mut ReplayCache::new(),
        )
        .map(|d| d.key)
    }
    fn verify(&self, msg: &[u8]) -> Result<DeliveryKey, Refusal> {
        self.verify_at(msg, t0())
    }
    /// `msg` with `edit` applied before the signature, signed again by Alice.
    fn resigned(&self, msg: &[u8], edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
        let mut body = msg[..msg.len() - 129].to_vec();
        edit(&mut body);
        let sig = eccsi::sign(
            &self.kms.kpak,
            &self.alice.uid,
            &self.alice.ssk,
            &self.alice.pvt,
            &body,
            &mut OsRandom,
        )
        .unwrap();
        body.extend(sig);
        body
    }
}

#[test]
fn a_changed_octet_is_a_bad_signature() {
    let c = Case::new();
    let msg = c.pck();
    assert!(c.verify(&msg).is_ok());
    let rand_at = 10 + 10 + 2; // HDR (10, #CS 0), T (10), RAND's next and length octets
    let mut bad = msg.clone();
    bad[rand_at] ^= 1;
    assert_eq!(c.verify(&bad).unwrap_err(), Refusal::BadSignature);
    let mut bad_sig = msg.clone();
    let at = msg.len() - 129 + 40; // in s
    bad_sig[at] ^= 1;
    assert_eq!(c.verify(&bad_sig).unwrap_err(), Refusal::BadSignature);
    // Signed by Alice but checked against another KMS's KPAK.
    let other = Kms::new();
    let expect = Expect {
        kpak: &other.kpak,
        ..c.kms.expect(&c.alice, t0())
    };
    let err = verify_i_message(
        &msg,
        &c.kms.receiver(&c.bob, false),
        &expect,
        &mut ReplayCache::new(),
    )
    .unwrap_err();
    assert_eq!(err, Refusal::BadSignature);
}

#[test]
fn a_message_for_another_receiver_is_refused_before_its_signature() {
    let c = Case::new();
    let carol = c.kms.user("sip:carol@example.org");
    let msg = c.pck();
    let expect = c.kms.expect(&c.alice, t0());
    let err = verify_i_message(
        &msg,
        &c.kms.receiver(&carol, true),
        &expect,
        &mut ReplayCache::new(),
    )
    .unwrap_err();
    assert_eq!(err, Refusal::WrongReceiver);
}

#[test]
fn a_message_from_another_sender_is_refused() {
    let c = Case::new();
    let carol = c.kms.user("sip:carol@example.org");
    let msg = c
        .kms
        .message(&carol, &c.bob, &c.key, KeyPurpose::Pck, 0x1000_0001, t0());
    assert_eq!(c.verify(&msg).unwrap_err(), Refusal::WrongSender);
}

#[test]
fn a_truncated_message_is_malformed() {
    let c = Case::new();
    let msg = c.pck();
    for cut in [0, 1, 7, 40, msg.len() / 2, msg.len() - 1] {
        let err = c.verify(&msg[..cut]).unwrap_err();
        assert!(matches!(err, Refusal::Malformed(_)), "{cut}: {err:?}");
        assert_eq!(err.reason(), "malformed");
    }
}

#[test]
fn a_replayed_message_is_refused_and_a_fresh_one_accepted() {
    let c = Case::new();
    let msg = c.pck();
    let rx = c.kms.receiver(&c.bob, false);
    let expect = c.kms.expect(&c.alice, t0());
    let mut cache = ReplayCache::new();
    assert!(verify_i_message(&msg, &rx, &expect, &mut cache).is_ok());
    assert_eq!(
        verify_i_message(&msg, &rx, &expect, &mut cache).unwrap_err(),
        Refusal::Replayed
    );
    // The same signed octets under another signature (new ephemeral): still a replay.
    let again = c.resigned(&msg, |_| {});
    assert_ne!(again, msg);
    assert_eq!(
        verify_i_message(&again, &rx, &expect, &mut cache).unwrap_err(),
        Refusal::Replayed
    );
    // Another message of the same second is not.
    let fresh = c.pck();
    assert!(verify_i_message(&fresh, &rx, &expect, &mut cache).is_ok());
    assert_eq!(cache.len(), 2);
}

#[test]
fn a_time_outside_the_window_is_stale_either_way() {
    let c = Case::new();
    let msg = c.pck();
    let w = profile::FRESHNESS_WINDOW;
    assert!(c.verify_at(&msg, t0() + w).is_ok());
    assert!(c.verify_at(&msg, t0() - w).is_ok());
    assert_eq!(
        c.verify_at(&msg, t0() + w + Duration::from_secs(1))
            .unwrap_err(),
        Refusal::StaleTime { seconds: -301 }
    );
    assert_eq!(
        c.verify_at(&msg, t0() - w - Duration::from_secs(1))
            .unwrap_err(),
        Refusal::StaleTime { seconds: 301 }
    );
}

#[test]
fn a_key_for_another_purpose_is_refused_when_one_is_required() {
    let c = Case::new();
    let msg = c.pck();
    let mut expect = c.kms.expect(&c.alice, t0());
    expect.purpose = Some(KeyPurpose::Gmk);
    let err = verify_i_message(
        &msg,
        &c.kms.receiver(&c.bob, false),
        &expect,
        &mut ReplayCache::new(),
    )
    .unwrap_err();
    assert_eq!(
        err,
        Refusal::WrongPurpose {
            expected: KeyPurpose::Gmk,
            got: KeyPurpose::Pck
        }
    );
    assert_eq!(err.reason(), "wrong_purpose");
}

#[test]
fn a_key_id_of_an_unknown_purpose_is_refused_even_when_signed() {
    let c = Case::new();
    // CSB ID (HDR octets 4..8) tagged 7, signed again by Alice.
    let msg = c.resigned(&c.pck(), |b| b[4] = 0x70);
    assert_eq!(c.verify(&msg).unwrap_err(), Refusal::UnknownPurpose(7));
}

#[test]
fn sakke_data_for_another_uid_does_not_decapsulate() {
    let c = Case::new();
    let carol = c.kms.user("sip:carol@example.org");
    // Signed by Alice, IDR 9 = Bob, but the key encapsulated to Carol.
    let data = sakke::encapsulate(&c.kms.z, &carol.uid, &c.key).unwrap();
    let dk = DeliveryKey::from(c.key.clone());
    let d = KeyDelivery {
        key: &dk,
        key_id: 0x1000_0001,
        purpose: KeyPurpose::Pck,
        to_uid: &c.bob.uid,
        to_uri: None,
        kms_uri: None,
        time: ntp_timestamp(t0()).unwrap(),
        key_params: None,
    };
    let unsigned = assemble(&d, &c.alice.uid, &[9; 16], &data).unwrap();
    let sig = eccsi::sign(
        &c.kms.kpak,
        &c.alice.uid,
        &c.alice.ssk,
        &c.alice.pvt,
        unsigned.signed_octets(),
        &mut OsRandom,
    )
    .unwrap();
    let msg = unsigned.finish(&sig);
    assert_eq!(c.verify(&msg).unwrap_err(), Refusal::DecapsulationFailed);
}

#[test]
fn a_guk_id_for_another_receiver_is_refused_with_the_receiver_uri() {
    let c = Case::new();
    // A GMK hidden for Carol's URI but sent to Bob: Bob's URI does not match its GUK-ID.
    let dk = DeliveryKey::from(c.key.clone());
    let d = KeyDelivery {
        key: &dk,
        key_id: 0x0000_0042,
        purpose: KeyPurpose::Gmk,
        to_uid: &c.bob.uid,
        to_uri: Some("sip:carol@example.org"),
        kms_uri: None,
        time: ntp_timestamp(t0()).unwrap(),
        key_params: None,
    };
    let msg = build_i_message(&d, &c.kms.z, &c.kms.signer(&c.alice), &mut OsRandom).unwrap();
    assert_eq!(c.verify(&msg).unwrap_err(), Refusal::GukIdMismatch);
    // Without its URI, Bob takes the GMK-ID from the SPI.
    let expect = c.kms.expect(&c.alice, t0());
    let got = verify_i_message(
        &msg,
        &c.kms.receiver(&c.bob, false),
        &expect,
        &mut ReplayCache::new(),
    )
    .unwrap();
    assert_eq!(got.key_id, 0x42);
}

#[test]
fn other_mikey_messages_are_refused_as_structure() {
    let c = Case::new();
    // An MBMS MSK message of the vectors: a MIKEY message, not a SAKKE I_MESSAGE.
    let (name, other) = common::all_messages()
        .into_iter()
        .find(|(_, m)| {
            Message::decode(m).is_ok_and(|r| r.message().hdr.data_type != DataType::SAKKE)
        })
        .expect("a non-SAKKE message among the vectors");
    let err = c.verify(&other).unwrap_err();
    assert!(matches!(err, Refusal::Structure(_)), "{name}: {err:?}");
    // No SAKKE payload: the data type changed to SAKKE on a message without one is refused
    // on its shape, and so is a second T.
    let msg = c.resigned(&c.pck(), |b| b[1] = 0x1b);
    assert!(matches!(c.verify(&msg).unwrap_err(), Refusal::Structure(_)));
}

/// The fuzz target's entry point (`fuzz/fuzz_targets/sakke_verify.rs`) on its seeds' kinds:
/// garbage, the valid message (accepted once, with its key, then refused as a replay: asserted
/// inside), and the valid message with a flipped octet.
#[test]
fn the_fuzz_entry_point_accepts_the_valid_message_once_and_refuses_the_rest() {
    use mbms_keys::mcx::fuzzing::sakke_verify;
    assert!(!sakke_verify(&[]));
    assert!(!sakke_verify(&[0x00, 0x01, 0x1a, 0x05]));
    assert!(sakke_verify(&[0x01]), "the valid message");
    assert!(
        sakke_verify(&[0x03]),
        "the valid message with a 32-octet key"
    );
    for mode in [0x01, 0x03] {
        let mut flip = vec![mode; 1];
        flip.extend([0u8; 14]);
        flip.push(0x01);
        assert!(!sakke_verify(&flip));
    }
}

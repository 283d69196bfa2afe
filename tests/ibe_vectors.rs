//! ECCSI (RFC 6507), SAKKE (RFC 6508) and UID format 2 (TS 33.180 F.2.1) against the published
//! known-answer values of `proto-vectors/eccsi-sakke-rfc.json` and `proto-vectors/uid-format2.json`
//! (provenance in proto-vectors/README.md), and the refusals of bad input.
#![cfg(feature = "mcx")]

use std::fs;

use serde_json::Value;

use mbms_keys::crypto::{Random, RngFailure};
use mbms_keys::ibe::{
    IbeError, Kpak, Ksak, Rsk, SakkeMaster, SakkePublic, Ssk, Ssv, eccsi, sakke, uid_format2,
};

fn vectors(name: &str) -> Value {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/proto-vectors/").to_owned() + name;
    serde_json::from_str(&fs::read_to_string(&path).expect(&path)).expect(&path)
}

fn h(v: &Value, k: &str) -> Vec<u8> {
    hex::decode(v[k].as_str().expect(k)).expect(k)
}

/// Hands out the given octets, then fails: a KAT's "random" values.
struct Script(Vec<u8>);

impl Random for Script {
    fn fill(&mut self, out: &mut [u8]) -> Result<(), RngFailure> {
        if self.0.len() < out.len() {
            return Err(RngFailure);
        }
        let rest = self.0.split_off(out.len());
        out.copy_from_slice(&self.0);
        self.0 = rest;
        Ok(())
    }
}

fn eccsi_v() -> Value {
    vectors("eccsi-sakke-rfc.json")["ECCSI_RFC6507"].clone()
}

fn sakke_v() -> Value {
    vectors("eccsi-sakke-rfc.json")["SAKKE_RFC6508"].clone()
}

#[test]
fn rfc6507_kpak_is_ksak_times_g() {
    let v = eccsi_v();
    let ksak = Ksak::from_slice(&h(&v, "KSAK")).unwrap();
    assert_eq!(ksak.kpak().unwrap().to_octets().to_vec(), h(&v, "KPAK"));
}

#[test]
fn rfc6507_kms_issues_the_appendix_ssk_and_pvt_for_v() {
    let v = eccsi_v();
    let ksak = Ksak::from_slice(&h(&v, "KSAK")).unwrap();
    let mut rng = Script(h(&v, "v"));
    let pair = ksak.issue(&h(&v, "ID"), &mut rng).unwrap();
    assert_eq!(pair.ssk.as_bytes().to_vec(), h(&v, "SSK"));
    assert_eq!(pair.pvt.to_vec(), h(&v, "PVT"));
}

#[test]
fn rfc6507_appendix_ssk_pvt_validate() {
    let v = eccsi_v();
    let kpak = Kpak::from_octets(&h(&v, "KPAK")).unwrap();
    let ssk = Ssk::from_slice(&h(&v, "SSK")).unwrap();
    eccsi::validate(&kpak, &h(&v, "ID"), &ssk, &h(&v, "PVT")).unwrap();
}

#[test]
fn rfc6507_signature_with_j_is_the_appendix_signature() {
    let v = eccsi_v();
    let kpak = Kpak::from_octets(&h(&v, "KPAK")).unwrap();
    let ssk = Ssk::from_slice(&h(&v, "SSK")).unwrap();
    let sig = eccsi::sign_with(
        &kpak,
        &h(&v, "ID"),
        &ssk,
        &h(&v, "PVT"),
        &h(&v, "M"),
        &h(&v, "j"),
    )
    .unwrap()
    .unwrap();
    assert_eq!(sig.to_vec(), h(&v, "Signature"));
    assert_eq!(sig[..32].to_vec(), h(&v, "r"));
    assert_eq!(sig[32..64].to_vec(), h(&v, "s"));
    // The same j through the generator-driven path gives the same signature.
    let mut rng = Script(h(&v, "j"));
    let sig2 = eccsi::sign(
        &kpak,
        &h(&v, "ID"),
        &ssk,
        &h(&v, "PVT"),
        &h(&v, "M"),
        &mut rng,
    )
    .unwrap();
    assert_eq!(sig2, sig);
}

#[test]
fn rfc6507_appendix_signature_verifies() {
    let v = eccsi_v();
    let kpak = Kpak::from_octets(&h(&v, "KPAK")).unwrap();
    eccsi::verify(&kpak, &h(&v, "ID"), &h(&v, "M"), &h(&v, "Signature")).unwrap();
}

#[test]
fn rfc6507_refusals() {
    let v = eccsi_v();
    let kpak = Kpak::from_octets(&h(&v, "KPAK")).unwrap();
    let id = h(&v, "ID");
    let msg = h(&v, "M");
    let sig = h(&v, "Signature");
    // A changed message, identifier, r or s.
    let mut m2 = msg.clone();
    m2[0] ^= 1;
    assert_eq!(
        eccsi::verify(&kpak, &id, &m2, &sig),
        Err(IbeError::BadSignature)
    );
    let mut id2 = id.clone();
    id2[5] ^= 1;
    assert_eq!(
        eccsi::verify(&kpak, &id2, &msg, &sig),
        Err(IbeError::BadSignature)
    );
    for at in [0usize, 40] {
        let mut s2 = sig.clone();
        s2[at] ^= 0x80;
        assert_eq!(
            eccsi::verify(&kpak, &id, &msg, &s2),
            Err(IbeError::BadSignature)
        );
    }
    // s = 0 and r = 0.
    let mut s0 = sig.clone();
    s0[32..64].fill(0);
    assert_eq!(
        eccsi::verify(&kpak, &id, &msg, &s0),
        Err(IbeError::BadSignature)
    );
    let mut r0 = sig.clone();
    r0[..32].fill(0);
    assert_eq!(
        eccsi::verify(&kpak, &id, &msg, &r0),
        Err(IbeError::BadSignature)
    );
    // Wrong length.
    assert!(matches!(
        eccsi::verify(&kpak, &id, &msg, &sig[..128]),
        Err(IbeError::Length {
            expected: 129,
            got: 128,
            ..
        })
    ));
    // A PVT off the curve inside the signature.
    let mut off = sig.clone();
    off[128] ^= 1;
    assert_eq!(
        eccsi::verify(&kpak, &id, &msg, &off),
        Err(IbeError::NotOnCurve { what: "PVT" })
    );
    // A compressed-form tag.
    let mut kp = h(&v, "KPAK");
    kp[0] = 0x02;
    assert_eq!(
        Kpak::from_octets(&kp),
        Err(IbeError::NotUncompressed { what: "KPAK" })
    );
    let mut kp = h(&v, "KPAK");
    kp[64] ^= 1;
    assert_eq!(
        Kpak::from_octets(&kp),
        Err(IbeError::NotOnCurve { what: "KPAK" })
    );
    assert!(matches!(
        Kpak::from_octets(&kp[..64]),
        Err(IbeError::Length { .. })
    ));
    // A tampered SSK does not validate.
    let mut ssk = h(&v, "SSK");
    ssk[31] ^= 1;
    let ssk = Ssk::from_slice(&ssk).unwrap();
    assert_eq!(
        eccsi::validate(&kpak, &id, &ssk, &h(&v, "PVT")),
        Err(IbeError::InvalidKeyPair)
    );
    // An SSK of q (not below the order).
    let q = Ssk::from_slice(&h(&v, "q")).unwrap();
    assert_eq!(
        eccsi::validate(&kpak, &id, &q, &h(&v, "PVT")),
        Err(IbeError::OutOfRange { what: "SSK" })
    );
}

#[test]
fn rfc6508_z_is_z_times_p() {
    let v = sakke_v();
    let z = SakkeMaster::from_slice(&h(&v, "z")).unwrap();
    assert_eq!(z.public().unwrap().to_octets().to_vec(), h(&v, "Z"));
}

#[test]
fn rfc6508_kms_issues_the_appendix_rsk() {
    let v = sakke_v();
    let z = SakkeMaster::from_slice(&h(&v, "z")).unwrap();
    let rsk = z.issue_rsk(&h(&v, "ID")).unwrap();
    assert_eq!(rsk.as_bytes().to_vec(), h(&v, "RSK"));
}

#[test]
fn rfc6508_appendix_rsk_validates_and_a_tampered_one_does_not() {
    let v = sakke_v();
    let zs = SakkePublic::from_octets(&h(&v, "Z")).unwrap();
    let id = h(&v, "ID");
    let rsk = Rsk::from_slice(&h(&v, "RSK")).unwrap();
    sakke::validate_rsk(&zs, &id, &rsk).unwrap();
    // The RSK of another identifier: on the curve, wrong pairing.
    let z = SakkeMaster::from_slice(&h(&v, "z")).unwrap();
    let other = z.issue_rsk(b"another identifier").unwrap();
    assert_eq!(
        sakke::validate_rsk(&zs, &id, &other),
        Err(IbeError::InvalidRsk)
    );
    // A changed coordinate: off the curve.
    let mut t = h(&v, "RSK");
    t[200] ^= 1;
    let t = Rsk::from_slice(&t).unwrap();
    assert_eq!(
        sakke::validate_rsk(&zs, &id, &t),
        Err(IbeError::NotOnCurve { what: "RSK" })
    );
}

#[test]
fn rfc6508_encapsulation_of_the_appendix_ssv() {
    let v = sakke_v();
    let zs = SakkePublic::from_octets(&h(&v, "Z")).unwrap();
    let ssv = Ssv::from_slice(&h(&v, "SSV")).unwrap();
    let data = sakke::encapsulate(&zs, &h(&v, "ID"), &ssv).unwrap();
    assert_eq!(data.to_vec(), h(&v, "Encapsulated_data"));
    assert_eq!(data[..257].to_vec(), h(&v, "R_bS"));
    assert_eq!(data[257..].to_vec(), h(&v, "H"));
}

#[test]
fn rfc6508_decapsulation_of_the_appendix_data() {
    let v = sakke_v();
    let zs = SakkePublic::from_octets(&h(&v, "Z")).unwrap();
    let rsk = Rsk::from_slice(&h(&v, "RSK")).unwrap();
    let ssv = sakke::decapsulate(&zs, &h(&v, "ID"), &rsk, &h(&v, "Encapsulated_data")).unwrap();
    assert_eq!(ssv.as_bytes().to_vec(), h(&v, "SSV"));
}

#[test]
fn rfc6508_refusals() {
    let v = sakke_v();
    let zs = SakkePublic::from_octets(&h(&v, "Z")).unwrap();
    let id = h(&v, "ID");
    let rsk = Rsk::from_slice(&h(&v, "RSK")).unwrap();
    let data = h(&v, "Encapsulated_data");
    // A changed H: the re-encapsulation check fails.
    let mut d = data.clone();
    d[260] ^= 1;
    assert_eq!(
        sakke::decapsulate(&zs, &id, &rsk, &d),
        Err(IbeError::DecapsulationFailed)
    );
    // Another identifier.
    assert_eq!(
        sakke::decapsulate(&zs, b"someone else", &rsk, &data),
        Err(IbeError::DecapsulationFailed)
    );
    // R off the curve, wrong tag, wrong length.
    let mut d = data.clone();
    d[10] ^= 1;
    assert_eq!(
        sakke::decapsulate(&zs, &id, &rsk, &d),
        Err(IbeError::NotOnCurve { what: "R" })
    );
    let mut d = data.clone();
    d[0] = 0x03;
    assert_eq!(
        sakke::decapsulate(&zs, &id, &rsk, &d),
        Err(IbeError::NotUncompressed { what: "R" })
    );
    assert!(matches!(
        sakke::decapsulate(&zs, &id, &rsk, &data[..272]),
        Err(IbeError::Length {
            expected: 273,
            got: 272,
            ..
        })
    ));
    // Z off the curve; a coordinate not below p.
    let mut zb = h(&v, "Z");
    zb[100] ^= 1;
    assert_eq!(
        SakkePublic::from_octets(&zb).err(),
        Some(IbeError::NotOnCurve { what: "Z" })
    );
    let mut zb = h(&v, "Z");
    zb[1..129].fill(0xff);
    assert_eq!(
        SakkePublic::from_octets(&zb).err(),
        Some(IbeError::NotOnCurve { what: "Z" })
    );
    // (0, 0) is on the curve with order 2: outside the subgroup of order q.
    let mut two = vec![0u8; 257];
    two[0] = 4;
    assert_eq!(
        SakkePublic::from_octets(&two).err(),
        Some(IbeError::NotInSubgroup { what: "Z" })
    );
    // Identifiers: empty, too long.
    let ssv = Ssv::from_slice(&h(&v, "SSV")).unwrap();
    assert_eq!(
        sakke::encapsulate(&zs, b"", &ssv),
        Err(IbeError::EmptyIdentifier)
    );
    assert_eq!(
        sakke::encapsulate(&zs, &[1u8; 129], &ssv),
        Err(IbeError::IdentifierTooLong)
    );
    // z of 0 and of q.
    let zero = SakkeMaster::from_bytes([0u8; 128]);
    assert_eq!(
        zero.public().err(),
        Some(IbeError::OutOfRange { what: "z" })
    );
    let q = SakkeMaster::from_slice(&h(&v, "q")).unwrap();
    assert_eq!(
        q.issue_rsk(&id).err(),
        Some(IbeError::OutOfRange { what: "z" })
    );
}

#[test]
fn uid_format2_vectors() {
    let v = vectors("uid-format2.json");
    let list = v["vectors"].as_array().unwrap();
    assert!(list.len() >= 9);
    for t in list {
        let uid = uid_format2(
            t["uri"].as_str().unwrap(),
            t["kms_uri"].as_str().unwrap(),
            t["period"].as_u64().unwrap(),
            t["offset"].as_u64().unwrap(),
            t["period_no"].as_u64().unwrap(),
        )
        .unwrap();
        assert_eq!(hex::encode(uid), t["uid"].as_str().unwrap(), "{t}");
    }
}

#[test]
fn uid_refuses_an_oversized_uri() {
    let long = "a".repeat(65536);
    assert!(uid_format2(&long, "kms", 1, 0, 1).is_err());
}

#[test]
fn secrets_are_redacted() {
    let v = sakke_v();
    let z = SakkeMaster::from_slice(&h(&v, "z")).unwrap();
    assert_eq!(format!("{z:?}"), "SakkeMaster([REDACTED])");
    let rsk = z.issue_rsk(&h(&v, "ID")).unwrap();
    assert_eq!(format!("{rsk:?}"), "Rsk([REDACTED])");
    let e = eccsi_v();
    let ksak = Ksak::from_slice(&h(&e, "KSAK")).unwrap();
    assert_eq!(format!("{ksak:?}"), "Ksak([REDACTED])");
    let pair = ksak.issue(b"id", &mut Script(h(&e, "v"))).unwrap();
    assert!(!format!("{pair:?}").contains(&hex::encode(pair.ssk.as_bytes())));
}

fn user<'a>(v: &'a Value, uri: &str) -> &'a Value {
    v["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["uri"] == uri)
        .unwrap_or_else(|| panic!("no user {uri}"))
}

/// A KMS we did not write: every key set of `streamwide-mikey-sakke.json` is for the UID format 2
/// of its user, and its RSK and SSK/PVT validate against the KMS's Z and KPAK.
#[test]
fn streamwide_key_sets_validate() {
    let v = vectors("streamwide-mikey-sakke.json");
    let kms = &v["kms"];
    let zs = SakkePublic::from_octets(&h(kms, "z")).unwrap();
    let kpak = Kpak::from_octets(&h(kms, "kpak")).unwrap();
    let users = v["users"].as_array().unwrap();
    assert_eq!(users.len(), 4);
    for u in users {
        let uid = uid_format2(
            u["uri"].as_str().unwrap(),
            kms["kms_uri"].as_str().unwrap(),
            kms["user_key_period"].as_u64().unwrap(),
            kms["user_key_offset"].as_u64().unwrap(),
            u["period_no"].as_u64().unwrap(),
        )
        .unwrap();
        assert_eq!(uid.to_vec(), h(u, "uid"), "{}", u["uri"]);
        let rsk = Rsk::from_slice(&h(u, "rsk")).unwrap();
        sakke::validate_rsk(&zs, &uid, &rsk).unwrap();
        let ssk = Ssk::from_slice(&h(u, "ssk")).unwrap();
        eccsi::validate(&kpak, &uid, &ssk, &h(u, "pvt")).unwrap();
    }
}

/// MIKEY-SAKKE messages we did not write: the SAKKE data decapsulates under the responder's RSK
/// to the key the vectors state, and the initiator's ECCSI signature over the message up to the
/// signature (SIGN payload header included) verifies, and fails one octet shorter.
#[test]
fn streamwide_messages_decapsulate_and_their_signatures_verify() {
    let v = vectors("streamwide-mikey-sakke.json");
    let kms = &v["kms"];
    let zs = SakkePublic::from_octets(&h(kms, "z")).unwrap();
    let kpak = Kpak::from_octets(&h(kms, "kpak")).unwrap();
    let messages = v["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 4);
    for m in messages {
        let resp = user(&v, m["responder_uri"].as_str().unwrap());
        let init = user(&v, m["initiator_uri"].as_str().unwrap());
        let rsk = Rsk::from_slice(&h(resp, "rsk")).unwrap();
        let ssv = sakke::decapsulate(&zs, &h(resp, "uid"), &rsk, &h(m, "sakke_data")).unwrap();
        assert_eq!(ssv.as_bytes().to_vec(), h(m, "key"), "{}", m["name"]);
        let msg = h(m, "message");
        let signed = m["sign_payload_offset"].as_u64().unwrap() as usize + 2;
        let sig = h(m, "signature");
        eccsi::verify(&kpak, &h(init, "uid"), &msg[..signed], &sig).unwrap();
        assert_eq!(
            eccsi::verify(&kpak, &h(init, "uid"), &msg[..signed - 1], &sig),
            Err(IbeError::BadSignature)
        );
    }
}

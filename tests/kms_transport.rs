//! TrK/InK protection (docs/mcx.md §3): what the KMS protects the client opens, in both modes,
//! with and without an InK; and the client's refusals, each a typed error, in the order
//! structure → signature → decryption and bound identifiers.

mod kms_support;

use mbms_keys::crypto::Seeded;
use mbms_keys::kms::messages::{KeyContent, KmsMessage, KmsResponse};
use mbms_keys::kms::transport::{self, AES256_GCM, KW_AES256, KW_AES256_PAD, Mode, TransportKeys};
use mbms_keys::kms::{KeyId, KmsError, Secret};

use kms_support::*;

fn protect(r: &KmsResponse, k: &TransportKeys) -> String {
    transport::protect(r, k, &mut Seeded::new(11)).unwrap()
}

fn plain(k: &KeyContent) -> Vec<u8> {
    match k {
        KeyContent::Plain(s) => s.expose().to_vec(),
        KeyContent::Encrypted(_) => panic!("still encrypted"),
    }
}

#[test]
fn the_client_opens_what_the_kms_protected_in_every_mode() {
    for mode in [Mode::Standard, Mode::Bound] {
        for ink in [false, true] {
            let k = keys(mode, ink);
            for r in [keyprov_response(), certcache_response()] {
                let doc = protect(&r, &k);
                assert_eq!(
                    transport::open(doc.as_bytes(), &k).unwrap(),
                    r,
                    "{mode:?} {ink}"
                );
            }
            let doc = protect(&init_response(), &k);
            let opened = transport::open(doc.as_bytes(), &k).unwrap();
            let Some(KmsMessage::Init { new_keys, .. }) = opened.message else {
                panic!()
            };
            assert_eq!(plain(&new_keys.transport[0].key), new_trk());
            assert_eq!(new_keys.transport[0].id, NEW_TRK_ID);
        }
    }
}

#[test]
fn no_key_travels_in_clear() {
    for mode in [Mode::Standard, Mode::Bound] {
        let doc = protect(&keyprov_response(), &keys(mode, true));
        for key in [rsk(), ssk(), pvt()] {
            assert!(!doc.contains(&hex::encode_upper(&key)));
            assert!(!doc.contains(&hex::encode(&key)));
        }
        assert!(
            !doc.contains("\"KeyContentType\""),
            "every key element is EncKeyContentType"
        );
    }
}

#[test]
fn standard_mode_wraps_octet_multiples_with_rfc3394_and_the_rest_with_gcm() {
    let doc = protect(&keyprov_response(), &keys(Mode::Standard, false));
    // Two key sets: SSK with kw-aes256, PVT and RSK with aes256-gcm.
    assert_eq!(doc.matches(KW_AES256).count(), 2, "{doc}");
    assert_eq!(doc.matches(AES256_GCM).count(), 4);
    assert!(!doc.contains(KW_AES256_PAD));
    assert!(doc.contains("<ds:KeyName>11223344</ds:KeyName>"));
}

#[test]
fn bound_mode_wraps_every_key_with_rfc5649() {
    let doc = protect(&keyprov_response(), &keys(Mode::Bound, true));
    assert_eq!(doc.matches(KW_AES256_PAD).count(), 6);
    // The signature names the InK (Signature-ID).
    assert!(doc.contains("<ds:KeyName>55667788</ds:KeyName>"), "{doc}");
}

#[test]
fn a_tampered_signature_value_is_refused() {
    for mode in [Mode::Standard, Mode::Bound] {
        let k = keys(mode, true);
        let doc = protect(&keyprov_response(), &k);
        let start = doc.find("<ds:SignatureValue>").unwrap() + "<ds:SignatureValue>".len();
        let mut bytes = doc.into_bytes();
        bytes[start] = if bytes[start] == b'A' { b'B' } else { b'A' };
        assert_eq!(transport::open(&bytes, &k), Err(KmsError::BadSignature));
    }
}

#[test]
fn tampered_content_is_refused_before_any_decryption() {
    let k = keys(Mode::Standard, true);
    let doc = protect(&keyprov_response(), &k);
    let altered = doc.replacen("<KeyPeriodNo>1516<", "<KeyPeriodNo>1517<", 1);
    assert_eq!(
        transport::open(altered.as_bytes(), &k),
        Err(KmsError::DigestMismatch)
    );
    // A broken ciphertext under a broken signature reports the signature, not the ciphertext.
    let cv = doc.find("<xenc:CipherValue>").unwrap() + "<xenc:CipherValue>".len();
    let mut bytes = doc.clone().into_bytes();
    bytes[cv] = if bytes[cv] == b'A' { b'B' } else { b'A' };
    assert_eq!(transport::open(&bytes, &k), Err(KmsError::DigestMismatch));
}

fn encrypted_keys(doc: &str) -> Vec<(usize, usize)> {
    let mut spans = Vec::new();
    let mut from = 0;
    while let Some(s) = doc[from..].find("<xenc:EncryptedKey") {
        let start = from + s;
        let end = start
            + doc[start..].find("</xenc:EncryptedKey>").unwrap()
            + "</xenc:EncryptedKey>".len();
        spans.push((start, end));
        from = end;
    }
    spans
}

#[test]
fn a_swapped_encrypted_key_is_refused() {
    for mode in [Mode::Standard, Mode::Bound] {
        let k = keys(mode, false);
        let doc = protect(&keyprov_response(), &k);
        let spans = encrypted_keys(&doc);
        assert_eq!(spans.len(), 6);
        // Swap the SSK of the first key set with the SSK of the second.
        let (a, b) = (spans[1], spans[4]);
        let swapped = format!(
            "{}{}{}{}{}",
            &doc[..a.0],
            &doc[b.0..b.1],
            &doc[a.1..b.0],
            &doc[a.0..a.1],
            &doc[b.1..]
        );
        assert_ne!(swapped, doc);
        assert_eq!(
            transport::open(swapped.as_bytes(), &k),
            Err(KmsError::DigestMismatch)
        );
    }
}

#[test]
fn bound_mode_refuses_a_trk_id_that_is_not_the_trusted_one() {
    let kms_side = keys(Mode::Bound, false);
    let doc = protect(&keyprov_response(), &kms_side);
    let mut client = kms_side.clone();
    client.trk_id = KeyId(0x1122_3345);
    assert_eq!(
        transport::open(doc.as_bytes(), &client),
        Err(KmsError::BoundTrkIdMismatch {
            element: "UserDecryptKey"
        })
    );
}

#[test]
fn bound_mode_refuses_an_ink_id_that_is_not_the_trusted_one() {
    let kms_side = keys(Mode::Bound, true);
    let doc = protect(&keyprov_response(), &kms_side);
    let mut client = kms_side.clone();
    let ink = client.ink.take().unwrap().1;
    client.ink = Some((KeyId(0x0bad_0bad), ink));
    assert_eq!(
        transport::open(doc.as_bytes(), &client),
        Err(KmsError::BoundInkIdMismatch {
            element: "UserDecryptKey"
        })
    );
}

#[test]
fn standard_mode_refuses_a_key_for_another_trk_id() {
    let kms_side = keys(Mode::Standard, true);
    let doc = protect(&keyprov_response(), &kms_side);
    let mut client = kms_side.clone();
    client.trk_id = KeyId(7);
    assert!(matches!(
        transport::open(doc.as_bytes(), &client),
        Err(KmsError::UnknownTransportKey {
            element: "UserDecryptKey",
            ..
        })
    ));
}

#[test]
fn a_wrong_trk_fails_decryption_after_a_good_signature() {
    for mode in [Mode::Standard, Mode::Bound] {
        let kms_side = keys(mode, true);
        let doc = protect(&keyprov_response(), &kms_side);
        let mut client = kms_side.clone();
        client.trk = Secret::new(vec![9; 32]);
        assert_eq!(
            transport::open(doc.as_bytes(), &client),
            Err(KmsError::Decrypt {
                element: "UserDecryptKey"
            })
        );
    }
}

#[test]
fn a_mode_mismatch_is_refused() {
    let doc = protect(&keyprov_response(), &keys(Mode::Standard, true));
    assert!(matches!(
        transport::open(doc.as_bytes(), &keys(Mode::Bound, true)),
        Err(KmsError::UnsupportedAlgorithm {
            what: "key encryption",
            ..
        })
    ));
}

#[test]
fn a_wrong_integrity_key_is_refused() {
    let doc = protect(&keyprov_response(), &keys(Mode::Standard, true));
    let mut client = keys(Mode::Standard, true);
    client.ink = Some((KeyId(0x5566_7788), Secret::new(vec![1; 32])));
    assert_eq!(
        transport::open(doc.as_bytes(), &client),
        Err(KmsError::BadSignature)
    );
    client.ink = Some((KeyId(1), Secret::new(vec![1; 32])));
    assert!(matches!(
        transport::open(doc.as_bytes(), &client),
        Err(KmsError::UnknownSignatureKey(_))
    ));
}

#[test]
fn unsigned_and_stripped_responses_are_refused() {
    let k = keys(Mode::Standard, true);
    assert_eq!(
        transport::open(keyprov_response().to_xml().as_bytes(), &k),
        Err(KmsError::Unsigned)
    );
    let doc = protect(&keyprov_response(), &k);
    let start = doc.find("<ds:Signature").unwrap();
    let end = doc.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let stripped = format!("{}{}", &doc[..start], &doc[end..]);
    assert_eq!(
        transport::open(stripped.as_bytes(), &k),
        Err(KmsError::Unsigned)
    );
}

#[test]
fn an_unsigned_kms_error_is_reported_as_a_refusal() {
    let k = keys(Mode::Standard, false);
    assert_eq!(
        transport::open(error_response().to_xml().as_bytes(), &k),
        Err(KmsError::Refused {
            code: 403,
            message: "identity not authorised".into()
        })
    );
    let signed = protect(&error_response(), &k);
    assert!(matches!(
        transport::open(signed.as_bytes(), &k),
        Err(KmsError::Refused { code: 403, .. })
    ));
}

#[test]
fn other_signature_algorithms_and_references_are_refused() {
    let k = keys(Mode::Standard, true);
    let doc = protect(&keyprov_response(), &k);
    let inclusive = doc.replacen(
        "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/2001/10/xml-exc-c14n#\">",
        "<ds:CanonicalizationMethod Algorithm=\"http://www.w3.org/TR/2001/REC-xml-c14n-20010315\">",
        1,
    );
    assert_ne!(inclusive, doc);
    assert!(matches!(
        transport::open(inclusive.as_bytes(), &k),
        Err(KmsError::UnsupportedAlgorithm {
            what: "canonicalization",
            ..
        })
    ));
    let sha1 = doc.replacen(
        "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
        "http://www.w3.org/2000/09/xmldsig#hmac-sha1",
        1,
    );
    assert!(matches!(
        transport::open(sha1.as_bytes(), &k),
        Err(KmsError::UnsupportedAlgorithm {
            what: "signature",
            ..
        })
    ));
    // A reference to anything but the whole document.
    let elsewhere = doc.replacen("URI=\"#SignedKmsResponse\"", "URI=\"#resp1\"", 1);
    assert!(matches!(
        transport::open(elsewhere.as_bytes(), &k),
        Err(KmsError::Structure(_))
    ));
}

#[test]
fn a_clear_key_inside_a_signed_response_is_refused() {
    // A KMS (or an attacker holding the InK) cannot smuggle a key in clear past the client.
    let k = keys(Mode::Standard, true);
    let mut r = keyprov_response();
    let Some(KmsMessage::KeyProv { key_sets, .. }) = &mut r.message else {
        panic!()
    };
    key_sets[0].ssk = KeyContent::Encrypted(mbms_keys::kms::messages::EncryptedKey {
        algorithm: KW_AES256.into(),
        key_name: Some("11223344".into()),
        cipher_value: vec![0; 40],
        carried_key_name: None,
    });
    let doc = protect(&r, &k);
    assert_eq!(
        transport::open(doc.as_bytes(), &k),
        Err(KmsError::Decrypt {
            element: "UserSigningKeySSK"
        })
    );
}

#[test]
fn secrets_are_redacted() {
    let k = keys(Mode::Bound, true);
    let shown = format!("{k:?}");
    assert!(shown.contains("Secret([REDACTED])"));
    assert!(!shown.contains("100, 101"));
}

#[test]
fn no_mutation_of_a_protected_response_changes_what_the_client_gets() {
    // Random octet changes never panic, and whatever still opens is the original response.
    for mode in [Mode::Standard, Mode::Bound] {
        let k = keys(mode, true);
        let original = keyprov_response();
        let doc = protect(&original, &k).into_bytes();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let mut opened = 0;
        for _ in 0..1500 {
            let mut d = doc.clone();
            for _ in 0..1 + (x % 3) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % d.len();
                d[i] = (x >> 40) as u8;
            }
            if let Ok(r) = transport::open(&d, &k) {
                assert_eq!(r, original);
                opened += 1;
            }
        }
        assert!(opened < 1500, "mutations must mostly be refused");
    }
}

#[test]
fn a_trk_of_the_wrong_length_is_a_typed_error() {
    let mut k = keys(Mode::Standard, false);
    k.trk = Secret::new(vec![1; 16]);
    assert_eq!(
        transport::protect(&keyprov_response(), &k, &mut Seeded::new(1)),
        Err(KmsError::TrkLength)
    );
}

/// The `KmsResponse` inside a protected document, its keys still encrypted.
fn inner_response(doc: &str) -> KmsResponse {
    let start = doc.find("<KmsResponse").unwrap();
    let end = doc.find("</KmsResponse>").unwrap() + "</KmsResponse>".len();
    let mut inner = doc[start..end].to_owned();
    // Exclusive C14N declares the default namespace on the root only.
    if !inner.starts_with("<KmsResponse xmlns=") {
        inner = inner.replacen(
            "<KmsResponse",
            "<KmsResponse xmlns=\"urn:3gpp:ns:mcsecKMSInterface:1.0\"",
            1,
        );
    }
    KmsResponse::parse(inner.as_bytes()).unwrap()
}

#[test]
fn a_new_trk_travels_with_its_id_as_carried_key_name() {
    for mode in [Mode::Standard, Mode::Bound] {
        let k = keys(mode, true);
        let doc = protect(&init_response(), &k);
        assert!(
            doc.contains(&format!(
                "<xenc:CarriedKeyName>{NEW_TRK_ID}</xenc:CarriedKeyName>"
            )),
            "{mode:?}"
        );
        assert!(doc.contains("xsi:type=\"KmsInitTkIkType\""));
        assert!(!doc.contains(&hex::encode(new_trk())));
        assert!(!doc.contains(&hex::encode_upper(new_trk())));
    }
}

#[test]
fn bound_mode_binds_the_new_key_id_and_refuses_another_carried_key_name() {
    // A new TrK encrypted for one identifier, re-labelled with another CarriedKeyName and
    // signed again (a KMS bug, or a holder of the InK): bound mode finds the bound identifier
    // is not the one named; standard mode has only the signed name to go by.
    for mode in [Mode::Bound, Mode::Standard] {
        let k = keys(mode, true);
        let mut r = inner_response(&protect(&init_response(), &k));
        let Some(KmsMessage::Init { new_keys, .. }) = &mut r.message else {
            panic!()
        };
        assert!(matches!(
            new_keys.transport[0].key,
            KeyContent::Encrypted(_)
        ));
        new_keys.transport[0].id = KeyId(0x1234_5678);
        let doc = protect(&r, &k);
        let opened = transport::open(doc.as_bytes(), &k);
        match mode {
            Mode::Bound => assert_eq!(
                opened,
                Err(KmsError::BoundNewKeyIdMismatch {
                    element: "NewTransportKey"
                })
            ),
            Mode::Standard => {
                let Some(KmsMessage::Init { new_keys, .. }) = opened.unwrap().message else {
                    panic!()
                };
                assert_eq!(new_keys.transport[0].id, KeyId(0x1234_5678));
            }
        }
    }
}

#[test]
fn a_new_key_without_its_identifier_is_a_structure_error() {
    let k = keys(Mode::Standard, false);
    let doc = protect(&init_response(), &k);
    let stripped = doc.replace(
        &format!("<xenc:CarriedKeyName>{NEW_TRK_ID}</xenc:CarriedKeyName>"),
        "",
    );
    assert_ne!(stripped, doc);
    // Refused as a document before the signature is looked at.
    assert!(matches!(
        transport::open(stripped.as_bytes(), &k),
        Err(KmsError::Structure(m)) if m.contains("CarriedKeyName")
    ));
}

//! KMS documents (TS 33.180 Annex D, docs/mcx.md §2): the reference examples parse; what we
//! build parses back to the same values; malformed input is refused with a typed error.

mod kms_support;

use mbms_keys::kms::messages::{
    KeyContent, KmsMessage, KmsRequest, KmsResponse, Role, xml_datetime,
};
use mbms_keys::kms::{KeyId, KmsError, MAX_DOCUMENT_LEN};

use kms_support::*;

fn read(name: &str) -> Vec<u8> {
    std::fs::read(vector(name)).unwrap()
}

fn plain(k: &KeyContent) -> Vec<u8> {
    match k {
        KeyContent::Plain(s) => s.expose().to_vec(),
        KeyContent::Encrypted(_) => panic!("expected a plain key"),
    }
}

#[test]
fn the_reference_init_response_parses() {
    let r = KmsResponse::parse(&read("responses/streamwide_test_init_response.xml")).unwrap();
    assert_eq!(r.id.as_deref(), Some("xmldoc"));
    assert_eq!(r.user_uri, "alice@org.com");
    assert_eq!(r.kms_uri, "localhost:8080");
    assert_eq!(r.time, "2021-05-10T11:23:02");
    let Some(KmsMessage::Init {
        certificate: c,
        new_keys,
    }) = r.message
    else {
        panic!("not a KmsInit")
    };
    assert!(new_keys.transport.is_empty());
    assert_eq!(c.role, Some(Role::Root));
    assert_eq!(c.version.as_deref(), Some("1.1.0"));
    assert_eq!(c.kms_uri, "localhost:8080");
    assert_eq!(c.user_id_format, "2");
    assert_eq!(c.user_key_period, 2_592_000);
    assert_eq!(c.user_key_offset, 0);
    assert_eq!(c.pub_enc_key.len(), 257);
    assert_eq!(c.pub_enc_key[..4], [0x04, 0x59, 0x58, 0xEF]);
    assert_eq!(c.pub_auth_key.len(), 65);
    assert_eq!(c.pub_auth_key[..4], [0x04, 0x50, 0xD4, 0x67]);
}

#[test]
fn the_reference_keyprov_response_parses_though_its_keys_lack_xsi_type() {
    let r = KmsResponse::parse(&read("responses/streamwide_test_key_prov_response.xml")).unwrap();
    let Some(KmsMessage::KeyProv { key_sets, .. }) = r.message else {
        panic!("not a KmsKeyProv")
    };
    let [k] = key_sets.as_slice() else {
        panic!("one key set")
    };
    assert_eq!(k.user_uri, "alice@org.com");
    assert_eq!(
        hex::encode(&k.user_id),
        "060c5cddd13b87be1e37d3ff091101684b88aadef26c409a8b49c8da9dd81a05"
    );
    assert_eq!(k.key_period_no, 625);
    assert_eq!(plain(&k.rsk).len(), 257);
    assert_eq!(
        hex::encode_upper(plain(&k.ssk)),
        "D31C6FD21791D92D0BC721B50125C2B83450F4727EC5A845853AD30E023C34F3"
    );
    assert_eq!(plain(&k.pvt).len(), 65);
    assert_eq!(plain(&k.pvt)[0], 0x04);
}

#[test]
fn responses_round_trip_through_build_and_parse() {
    for r in [keyprov_response(), certcache_response(), error_response()] {
        let doc = r.to_xml();
        assert_eq!(KmsResponse::parse(doc.as_bytes()).unwrap(), r, "{doc}");
    }
    // A new TrK is never written in clear: the unprotected document leaves it out.
    let init = init_response();
    let back = KmsResponse::parse(init.to_xml().as_bytes()).unwrap();
    let Some(KmsMessage::Init {
        certificate,
        new_keys,
    }) = back.message
    else {
        panic!()
    };
    assert_eq!(certificate, Box::new(certificate_fixture()));
    assert!(new_keys.transport.is_empty());
    assert!(!init.to_xml().contains(&hex::encode_upper(new_trk())));
}

fn certificate_fixture() -> mbms_keys::kms::messages::KmsCertificate {
    certificate()
}

#[test]
fn built_key_elements_say_their_content_type() {
    let doc = keyprov_response().to_xml();
    assert!(doc.contains("<UserDecryptKey xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"KeyContentType\">"));
    assert!(doc.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?><KmsResponse xmlns=\"urn:3gpp:ns:mcsecKMSInterface:1.0\""));
}

#[test]
fn requests_round_trip_with_trk_id_and_ink_id() {
    let req = KmsRequest {
        id: Some("req1".into()),
        user_uri: "sip:alice@example.org".into(),
        kms_uri: "kms.example.org".into(),
        time: xml_datetime(1_796_234_400),
        client_id: Some("client-7".into()),
        device_id: None,
        client_req_url: "https://kms.example.org/keymanagement/identity/v1/keyprov".into(),
        trk_id: Some(KeyId(0x1122_3344)),
        ink_id: Some(KeyId(0xa0b0_c0d0)),
    };
    let doc = req.to_xml();
    assert!(
        doc.contains(
            "<ext:TrkId xmlns:ext=\"urn:mbms-keys:ns:mcsecKMSExt:1.0\">11223344</ext:TrkId>"
        ),
        "{doc}"
    );
    assert_eq!(KmsRequest::parse(doc.as_bytes()).unwrap(), req);
}

#[test]
fn xml_datetime_is_utc_calendar_time() {
    assert_eq!(xml_datetime(0), "1970-01-01T00:00:00Z");
    assert_eq!(xml_datetime(951_782_400), "2000-02-29T00:00:00Z");
    assert_eq!(xml_datetime(1_796_234_400), "2026-12-02T18:00:00Z");
}

fn refused(doc: &str) -> KmsError {
    KmsResponse::parse(doc.as_bytes()).expect_err(doc)
}

#[test]
fn malformed_documents_are_refused_with_typed_errors() {
    let good = keyprov_response().to_xml();
    // Not well-formed, DTD, unknown entity.
    assert!(matches!(
        refused(&good[..good.len() - 3]),
        KmsError::Xml { .. }
    ));
    assert!(matches!(
        refused("<!DOCTYPE KmsResponse [<!ENTITY a \"b\">]><KmsResponse/>"),
        KmsError::Xml { .. }
    ));
    assert!(matches!(
        refused(&good.replace("<KmsUri>", "<KmsUri>&ext;")),
        KmsError::Xml { .. }
    ));
    // Wrong namespace, missing element, element out of order, bad integer, bad hex.
    assert!(matches!(
        refused(&good.replace("urn:3gpp:ns:mcsecKMSInterface:1.0", "urn:other")),
        KmsError::Structure(_)
    ));
    assert!(matches!(
        refused(&good.replacen("<KeyPeriodNo>1516</KeyPeriodNo>", "", 1)),
        KmsError::Structure(_)
    ));
    assert!(matches!(
        refused(
            &good
                .replacen("<Time>2026-12-02T18:00:00Z</Time>", "", 1)
                .replacen(
                    "<ClientReqUrl>",
                    "<Time>2026-12-02T18:00:00Z</Time><ClientReqUrl>",
                    1
                )
        ),
        KmsError::Structure(_)
    ));
    assert!(matches!(
        refused(&good.replacen("<KeyPeriodNo>1516<", "<KeyPeriodNo>-1<", 1)),
        KmsError::Structure(_)
    ));
    assert!(matches!(
        refused(&good.replacen(
            "xsi:type=\"KeyContentType\">04",
            "xsi:type=\"KeyContentType\">0G",
            1
        )),
        KmsError::Structure(_)
    ));
    assert!(matches!(
        refused(&good.replacen("xsi:type=\"KeyContentType\"", "xsi:type=\"OtherType\"", 1)),
        KmsError::Structure(_)
    ));
    // An unknown element of the KMS namespace (foreign ones are allowed by `any ##other`).
    assert!(matches!(
        refused(&good.replace("</KmsResponse>", "<Bogus/></KmsResponse>")),
        KmsError::Structure(_)
    ));
    KmsResponse::parse(
        good.replace("</KmsResponse>", "<x:Ext xmlns:x=\"urn:x\"/></KmsResponse>")
            .as_bytes(),
    )
    .unwrap();
}

#[test]
fn oversized_and_deep_documents_are_refused() {
    let big = format!(
        "<KmsResponse xmlns=\"urn:3gpp:ns:mcsecKMSInterface:1.0\"><UserUri>{}</UserUri></KmsResponse>",
        "a".repeat(MAX_DOCUMENT_LEN)
    );
    assert_eq!(
        KmsResponse::parse(big.as_bytes()),
        Err(KmsError::TooLarge {
            max: MAX_DOCUMENT_LEN
        })
    );
    let deep = format!("{}{}", "<a>".repeat(1000), "</a>".repeat(1000));
    assert!(matches!(
        KmsResponse::parse(deep.as_bytes()),
        Err(KmsError::Xml { .. })
    ));
}

#[test]
fn garbage_never_panics() {
    let good = keyprov_response().to_xml().into_bytes();
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for _ in 0..3000 {
        let mut doc = good.clone();
        for _ in 0..4 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let i = (x as usize) % doc.len();
            doc[i] = (x >> 32) as u8;
        }
        let _ = KmsResponse::parse(&doc);
        let _ = KmsRequest::parse(&doc);
    }
}

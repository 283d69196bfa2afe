//! The MIKEY-SAKKE payloads of the codec (RFC 6509, RFC 6043, TS 33.180;
//! docs/profile.md §2.5): the Streamwide I_MESSAGEs of `proto-vectors/`
//! read field by field (owned and borrowed), a message built from typed
//! values equal to the same message written out by hand, and the typed
//! errors of truncated or lying input and of values that do not fit.

mod common;

use mbms_keys::mikey::view::{CsIdMapView, PayloadView};
use mbms_keys::mikey::{
    CsIdMap, CsIdMapType, DataType, EncodeError, ExtType, Extension, GenericIdEntry, IdRole,
    IdType, Message, MessageView, Payload, PayloadName, PayloadType, PrfFunc, Reason, Sakke,
    SakkeIdScheme, SakkeParams, SignType, Timestamp,
};

/// The vector message `name` of `streamwide-mikey-sakke.json`.
fn vector(name: &str) -> Vec<u8> {
    let v = common::load("streamwide-mikey-sakke");
    let m = v["messages"]
        .as_array()
        .expect("messages")
        .iter()
        .find(|m| m["name"] == name)
        .unwrap_or_else(|| panic!("{name}"));
    hex::decode(m["message"].as_str().expect("message")).expect("hex")
}

// The UIDs of the KMS KeyProv sections of the Streamwide v5 vectors.
const UID_GMS: &str = "15a4d5b12856538d02d91fedbb766e6dd377b014c92e216666c8fb678608d20e";
const UID_ALICE: &str = "b5c452309219da6a3d805615548d6c1b0f4de45a6b48fb13d9a24d857fc03dc4";
const UID_BOB: &str = "780851cda91a9c33f941cd3a2831697e2893264754e363f8a0cef827eb201a81";
// The PVT of gms@streamwide.com (its KeyProv UserPubTokenPVT).
const PVT_GMS: &str = "0468a24d49b184d7008d22f63a415debd38bfa9295f066fa6ada5951c2322d2eca1d6f1d994f22710daef776d9c54d9a338f32395080d6f2bdffb6c7895f12cda2";
const KMS: &[u8] = b"kms.mydev.streamwide.com";

#[test]
fn the_gmk_vector_reads_field_by_field() {
    let bytes = vector("GMK");
    let rx = Message::decode(&bytes).expect("decodes");
    let m = rx.message();
    assert_eq!(m.hdr.data_type, DataType::SAKKE);
    assert_eq!(m.hdr.prf_func, PrfFunc::HMAC_SHA_256);
    assert_eq!(m.hdr.csb_id, 0x06a1_2aea);
    assert_eq!(m.hdr.cs_count, 1);
    assert_eq!(
        m.hdr.cs_id_map,
        CsIdMap::GenericId(vec![GenericIdEntry {
            cs_id: 4,
            prot_type: 0,
            s: false,
            policies: vec![0],
            session_data: vec![],
            spi: hex::decode("0df9bc3906a12aea").unwrap(),
        }])
    );
    let types: Vec<u8> = m.payloads.iter().map(|p| p.payload_type().0).collect();
    assert_eq!(types, [5, 11, 14, 14, 14, 14, 10, 26, 21, 4]);
    assert_eq!(
        m.timestamp(),
        Some(Timestamp::NtpUtc(0xec89_8da8_0000_0000))
    );
    assert_eq!(
        m.rand(),
        Some(&hex::decode("ca2f5d51ff0866362c1d85a56f84651e").unwrap()[..])
    );
    let idrs: Vec<_> = m.idrs().collect();
    let roles: Vec<IdRole> = idrs.iter().map(|i| i.role).collect();
    assert_eq!(
        roles,
        [
            IdRole::IDRUIDI,
            IdRole::IDRUIDR,
            IdRole::IDRKMSI,
            IdRole::IDRKMSR
        ]
    );
    assert!(idrs.iter().all(|i| i.id_type == IdType::URI));
    assert_eq!(hex::encode(&idrs[0].data), UID_GMS);
    assert_eq!(hex::encode(&idrs[1].data), UID_ALICE);
    assert_eq!(idrs[2].data, KMS);
    assert_eq!(idrs[3].data, KMS);
    assert_eq!(
        m.idr(IdRole::IDRUIDR).map(|i| hex::encode(&i.data)),
        Some(UID_ALICE.into())
    );

    let sakke = m.sakke().expect("SAKKE");
    assert_eq!(sakke.params, SakkeParams::PARAMETER_SET_1);
    assert_eq!(sakke.id_scheme, SakkeIdScheme::UID);
    assert_eq!(sakke.data.len(), 273);
    assert_eq!(sakke.data[0], 0x04);

    let ext = m.payloads_of(PayloadType::GENERAL_EXT).next().expect("EXT");
    let Payload::Ext(Extension::Other { ext_type, data }) = ext else {
        panic!("{ext:?}")
    };
    assert_eq!(*ext_type, ExtType::KEY_PARAMS);
    assert_eq!(data.len(), 71);
    assert_eq!(hex::encode(&data[..8]), "4300000000010000");

    let Some(Payload::Sign(sign)) = m.payloads.last() else {
        panic!("SIGN last")
    };
    assert_eq!(sign.sign_type, SignType::ECCSI);
    assert_eq!(sign.signature.len(), 129);
    let parts = sign.eccsi().expect("ECCSI parts");
    assert_eq!(hex::encode(parts.pvt), PVT_GMS);
    assert_eq!(&sign.signature[..32], parts.r);
    assert_eq!(&sign.signature[32..64], parts.s);

    // The signature covers everything before it, the SIGN type/length octets included.
    let mac = rx.mac_field().expect("signature field");
    assert_eq!((mac.payload, mac.len), (PayloadType::SIGN, 129));
    assert_eq!(mac.offset, bytes.len() - 129);
    let covered = rx.mac_input().expect("covered octets");
    assert_eq!(covered.len(), bytes.len() - 129);
    assert_eq!(covered[covered.len() - 2..], [0x20, 0x81]);
}

#[test]
fn the_pck_and_legacy_vectors_read_their_maps() {
    let pck = Message::decode(&vector("PCK")).expect("PCK");
    let h = &pck.message().hdr;
    assert_eq!((h.cs_count, &h.cs_id_map), (0, &CsIdMap::Empty));
    assert_eq!(
        pck.message()
            .idr(IdRole::IDRUIDR)
            .map(|i| hex::encode(&i.data)),
        Some(UID_BOB.into())
    );
    let csk = Message::decode(&vector("CSK")).expect("CSK");
    let CsIdMap::GenericId(entries) = &csk.message().hdr.cs_id_map else {
        panic!("GENERIC-ID")
    };
    assert_eq!(entries[0].cs_id, 6);
    assert_eq!(hex::encode(&entries[0].spi), "2ddd5bf0");
    let iwf = Message::decode(&vector("GMK (legacy format for IWF)")).expect("IWF");
    let h = &iwf.message().hdr;
    assert_eq!(h.cs_id_map.map_type(), CsIdMapType::SRTP_ID);
    assert_eq!(h.cs_count, 2);
    assert!(iwf.message().sakke().is_some());
}

#[test]
fn the_borrowed_reading_gives_the_same_fields() {
    for name in ["GMK", "CSK", "PCK"] {
        let bytes = vector(name);
        let owned = Message::decode(&bytes).expect("decodes");
        let view = MessageView::decode(&bytes).expect("decodes");
        assert_eq!(view.to_message(), *owned.message(), "{name}");
        match (view.hdr().cs_id_map, &owned.message().hdr.cs_id_map) {
            (CsIdMapView::GenericId(map), CsIdMap::GenericId(entries)) => {
                let spis: Vec<&[u8]> = map.iter().map(|e| e.spi).collect();
                let want: Vec<&[u8]> = entries.iter().map(|e| &e.spi[..]).collect();
                assert_eq!(spis, want, "{name}");
            }
            (CsIdMapView::Empty, CsIdMap::Empty) => {}
            other => panic!("{name}: {other:?}"),
        }
        let mut roles = Vec::new();
        let mut sakke = None;
        let mut pvt = None;
        for (_, p) in view.payloads() {
            match p {
                PayloadView::Idr(i) => roles.push(i.role.0),
                PayloadView::Sakke(s) => sakke = Some((s.params, s.id_scheme, s.data.len())),
                PayloadView::Sign(s) => pvt = s.eccsi().map(|e| e.pvt[0]),
                _ => {}
            }
        }
        assert_eq!(roles, [8, 9, 6, 7], "{name}");
        assert_eq!(
            sakke,
            Some((SakkeParams::PARAMETER_SET_1, SakkeIdScheme::UID, 273)),
            "{name}"
        );
        assert_eq!(pvt, Some(0x04), "{name}");
        let uid = view.idr(IdRole::IDRUIDR).expect("IDRuidr").data;
        assert_eq!(
            Some(uid),
            owned.message().idr(IdRole::IDRUIDR).map(|i| &i.data[..])
        );
        assert_eq!(view.sakke().map(|s| s.data.len()), Some(273), "{name}");
        let sign = view.sign().expect("SIGN");
        assert_eq!(sign.sign_type, SignType::ECCSI, "{name}");
        assert_eq!(view.mac_value(), Some(sign.signature), "{name}");
    }
}

/// The message of `common::sakke` with a GENERIC-ID map, written out octet by octet.
fn by_hand() -> Vec<u8> {
    let mut m = vec![0x01, 26, 5, 0x01, 0x06, 0xa1, 0x2a, 0xea, 0x01, 0x02];
    // GENERIC-ID entry: CS ID, Prot type, S/#P, Ps, Session Data Length, SPI Length, SPI.
    m.extend([0x04, 0x00, 0x01, 0x00, 0x00, 0x00, 0x08]);
    m.extend([0x0d, 0xf9, 0xbc, 0x39, 0x06, 0xa1, 0x2a, 0xea]);
    m.extend([11, 0x00, 0xec, 0x89, 0x8d, 0xa8, 0, 0, 0, 0]); // T, NTP-UTC
    m.extend([14, 16]); // RAND
    m.extend([0x5a; 16]);
    for (next, role, id) in [
        (14u8, 8u8, &[0x11u8; 32][..]),
        (14, 9, &[0x22; 32][..]),
        (10, 6, b"kms.example.org"),
    ] {
        m.extend([next, role, 0x01, 0x00, id.len() as u8]);
        m.extend(id);
    }
    m.extend([
        26, 0x00, 0x00, 0x00, 0x06, 0x00, 0x01, 0x06, 0x01, 0x01, 0x10,
    ]); // SP
    m.extend([21, 0x01, 0x02, 0x01, 0x11, 0x04]); // SAKKE, 273 octets
    m.extend([0x5c; 256]);
    m.extend([0x48; 16]);
    m.extend([4, 0x07, 0x00, 0x08]); // EXT type 7
    m.extend([0x43, 0, 0, 0, 0, 0x01, 0, 0]);
    m.extend([0x20, 0x81]); // SIGN: ECCSI, 129 octets
    m.extend([0x77; 64]);
    m.push(0x04);
    m.extend([0x66; 64]);
    m
}

#[test]
fn a_message_built_from_typed_values_is_the_one_written_by_hand() {
    let built = common::sakke::message(common::sakke::gmk_hdr());
    let bytes = built.encode().expect("encodes");
    assert_eq!(hex::encode(&bytes), hex::encode(by_hand()));
    let rx = Message::decode(&bytes).expect("decodes");
    assert_eq!(*rx.message(), built);
    let pck = common::sakke::message(common::sakke::pck_hdr());
    let bytes = pck.encode().expect("encodes");
    assert_eq!(*Message::decode(&bytes).expect("decodes").message(), pck);
}

/// The length of the HDR of [`by_hand`]: 10 octets and the GENERIC-ID entry.
const HDR_LEN: usize = 25;

/// `bytes` with the length field at `at` (of `width` octets) set to its largest value.
fn lying(bytes: &[u8], at: usize, width: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at..at + width].fill(0xff);
    b
}

#[test]
fn lying_lengths_are_typed_truncations_at_their_field() {
    let bytes = by_hand();
    let rx = Message::decode(&bytes).expect("decodes");
    let at = |t: PayloadType| {
        let i = rx
            .message()
            .payloads
            .iter()
            .position(|p| p.payload_type() == t)
            .expect("present");
        rx.payload_offset(i).expect("offset")
    };
    let (idr, sakke) = (at(PayloadType::IDR), at(PayloadType::SAKKE));
    for (bad, payload, offset, field) in [
        // IDR: next ‖ role ‖ type ‖ ID len (16) ‖ ID data.
        (
            lying(&bytes, idr + 3, 2),
            PayloadName::Payload(PayloadType::IDR),
            idr + 5,
            "ID data",
        ),
        // SAKKE: next ‖ params ‖ ID scheme ‖ data len (16) ‖ data.
        (
            lying(&bytes, sakke + 3, 2),
            PayloadName::Payload(PayloadType::SAKKE),
            sakke + 5,
            "SAKKE data",
        ),
        // The GENERIC-ID SPI Length (HDR offset 16), in a message cut after HDR.
        (
            lying(&bytes[..HDR_LEN], 16, 1),
            PayloadName::Hdr,
            17,
            "GENERIC-ID SPI",
        ),
        // #P = 127 policies.
        (
            {
                let mut b = bytes[..HDR_LEN].to_vec();
                b[12] = 0x7f;
                b
            },
            PayloadName::Hdr,
            13,
            "GENERIC-ID Ps",
        ),
    ] {
        let err = Message::decode(&bad).expect_err(field);
        assert_eq!(err.payload, payload, "{field}: {err}");
        assert_eq!(err.offset, offset, "{field}: {err}");
        assert!(
            matches!(err.reason, Reason::Truncated { field: f, .. } if f == field),
            "{field}: {err}"
        );
        assert_eq!(MessageView::decode(&bad).expect_err(field), err);
    }
    // #CS says two crypto sessions, the map has one.
    let mut two = bytes.clone();
    two[8] = 2;
    let err = Message::decode(&two).expect_err("#CS 2");
    assert_eq!(err.payload, PayloadName::Hdr, "{err}");
    // Every proper prefix is refused.
    for n in 0..bytes.len() {
        assert!(Message::decode(&bytes[..n]).is_err(), "prefix {n}");
    }
}

#[test]
fn values_that_do_not_fit_are_encode_errors() {
    let mut m = common::sakke::message(common::sakke::gmk_hdr());
    let CsIdMap::GenericId(entries) = &mut m.hdr.cs_id_map else {
        unreachable!()
    };
    entries[0].policies = vec![0; 128];
    assert!(matches!(
        m.encode(),
        Err(EncodeError::TooLong {
            field: "GENERIC-ID Ps",
            len: 128,
            max: 0x7f
        })
    ));
    let mut m = common::sakke::message(common::sakke::gmk_hdr());
    m.hdr.cs_count = 2;
    assert!(matches!(
        m.encode(),
        Err(EncodeError::WrongLength {
            expected: 2,
            len: 1,
            ..
        })
    ));
    let mut m = common::sakke::message(common::sakke::gmk_hdr());
    for p in &mut m.payloads {
        if let Payload::Sakke(Sakke { data, .. }) = p {
            *data = vec![0; 0x1_0000];
        }
    }
    assert!(matches!(
        m.encode(),
        Err(EncodeError::TooLong {
            field: "SAKKE data",
            len: 0x1_0000,
            max: 0xffff
        })
    ));
}

/// The seeds of the `mikey_decode` and `mikey_roundtrip` fuzz targets hold
/// MIKEY-SAKKE messages, so that fuzzing starts from IDR, SAKKE, GENERIC-ID
/// and ECCSI SIGN payloads; the targets' oracles pass on them.
#[test]
fn the_fuzz_seeds_reach_the_mikey_sakke_payloads() {
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    for target in ["mikey_decode", "mikey_roundtrip"] {
        let mut reached = (0, 0, 0, 0);
        for entry in std::fs::read_dir(corpus.join(target)).expect("corpus") {
            let seed = std::fs::read(entry.expect("entry").path()).expect("seed");
            mbms_keys::mikey::fuzzing::decode_never_panics(&seed);
            mbms_keys::mikey::fuzzing::roundtrip(&seed);
            mbms_keys::mikey::fuzzing::view_matches_owned(&seed);
            let Ok(rx) = Message::decode(&seed) else {
                continue;
            };
            let m = rx.message();
            reached.0 += usize::from(m.idrs().next().is_some());
            reached.1 += usize::from(m.sakke().is_some());
            reached.2 += usize::from(matches!(m.hdr.cs_id_map, CsIdMap::GenericId(_)));
            reached.3 += usize::from(
                m.payloads
                    .iter()
                    .any(|p| matches!(p, Payload::Sign(s) if s.eccsi().is_some())),
            );
        }
        assert!(
            reached.0 > 0 && reached.1 > 0 && reached.2 > 0 && reached.3 > 0,
            "{target}: {reached:?}"
        );
    }
}

/// The streaming writer gives the octets of `Message::encode` for a
/// MIKEY-SAKKE message (without SP, which the writer does not write), and
/// the signature field where the encoder says.
#[test]
fn the_message_writer_writes_the_same_octets() {
    use mbms_keys::mikey::{Extension, MessageWriter};
    for hdr in [common::sakke::gmk_hdr(), common::sakke::pck_hdr()] {
        let mut m = common::sakke::message(hdr.clone());
        m.payloads.retain(|p| !matches!(p, Payload::Sp(_)));
        let (want, want_field) = m.encode_with_mac_field().expect("encodes");
        let mut w = MessageWriter::new(&hdr, want.len()).expect("HDR");
        let mut signature = None;
        for p in &m.payloads {
            match p {
                Payload::T(t) => w.timestamp(*t),
                Payload::Rand(r) => w.rand(r).expect("RAND"),
                Payload::Idr(i) => w.idr(i.role, i.id_type, &i.data).expect("IDR"),
                Payload::Sakke(s) => w.sakke(s.params, s.id_scheme, &s.data).expect("SAKKE"),
                Payload::Ext(Extension::Other { ext_type, data }) => {
                    w.extension(*ext_type, data).expect("EXT")
                }
                Payload::Sign(s) => signature = Some(s.clone()),
                other => panic!("{other:?}"),
            }
        }
        let sign = signature.expect("SIGN");
        let (mut got, field) = w.sign(sign.sign_type, sign.signature.len()).expect("SIGN");
        assert!(got[field.offset..].iter().all(|&b| b == 0), "zeroed field");
        got[field.offset..field.offset + field.len].copy_from_slice(&sign.signature);
        assert_eq!(Some(field), want_field);
        assert_eq!(hex::encode(&got), hex::encode(&want));
    }
    // A signature longer than its 12-bit length field is an error.
    let w = MessageWriter::new(&common::sakke::pck_hdr(), 0).expect("HDR");
    assert!(matches!(
        w.sign(SignType::ECCSI, 0x1000),
        Err(EncodeError::TooLong { max: 0x0fff, .. })
    ));
}

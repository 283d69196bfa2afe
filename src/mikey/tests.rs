//! Unit tests of the codec: every rejection names payload, offset and reason.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap()
}

/// HDR of an MBMS MSK message: PSK init, V=1, CSB 00010002, #CS 0, empty map.
const HDR_EMPTY: &str = "01 00 {next} 80 00010002 00 01";

fn with_hdr(next: u8, rest: &str) -> Vec<u8> {
    let mut v = hex(&HDR_EMPTY.replace("{next}", &format!("{next:02x}")));
    v.extend(hex(rest));
    v
}

#[test]
fn hdr_only_message_round_trips() {
    let b = with_hdr(0, "");
    let rx = Message::decode(&b).unwrap();
    assert!(rx.message().payloads.is_empty());
    assert_eq!(rx.message().hdr.cs_id_map, CsIdMap::Empty);
    assert!(rx.message().hdr.v);
    assert_eq!(rx.message().encode().unwrap(), b);
}

#[test]
fn trailing_bytes_are_an_error_with_offset() {
    let b = with_hdr(0, "00");
    let e = Message::decode(&b).unwrap_err();
    assert_eq!(e.offset, 10);
    assert_eq!(e.reason, Reason::TrailingBytes { count: 1 });
}

#[test]
fn unknown_payload_type_is_an_error_naming_it() {
    let b = with_hdr(13, "00 00");
    let e = Message::decode(&b).unwrap_err();
    assert_eq!(e.reason, Reason::UnknownPayloadType(13));
    assert_eq!(e.offset, 10);
}

#[test]
fn key_data_outside_kemac_is_rejected() {
    let e = Message::decode(&with_hdr(20, "00 00 0000")).unwrap_err();
    assert_eq!(e.reason, Reason::KeyDataOutsideKemac);
}

#[test]
fn announced_payload_missing_is_truncation() {
    let e = Message::decode(&with_hdr(5, "")).unwrap_err();
    assert!(matches!(e.reason, Reason::Truncated { .. }), "{e}");
    assert_eq!(e.offset, 10);
}

#[test]
fn counter_timestamp_is_four_octets() {
    let b = with_hdr(5, "00 02 00000005");
    let rx = Message::decode(&b).unwrap();
    assert_eq!(rx.message().timestamp(), Some(Timestamp::Counter(5)));
    assert_eq!(Timestamp::Counter(5).t64(), 5);
    // An 8-octet COUNTER leaves 4 trailing octets.
    let e = Message::decode(&with_hdr(5, "00 02 0000000000000005")).unwrap_err();
    assert_eq!(e.reason, Reason::TrailingBytes { count: 4 });
}

#[test]
fn unknown_ts_type_has_no_known_length() {
    let e = Message::decode(&with_hdr(5, "00 07 00000005")).unwrap_err();
    assert_eq!(
        e.reason,
        Reason::UnknownLength {
            field: "TS type",
            value: 7
        }
    );
    assert_eq!(e.payload, PayloadName::Payload(PayloadType::T));
    assert_eq!(e.offset, 11);
}

#[test]
fn ext_with_zero_length_and_id_with_zero_length_terminate() {
    // GStreamer loops forever on these; we must decode them.
    let b = with_hdr(21, "06 03 0000 00 00 0000");
    let rx = Message::decode(&b).unwrap();
    assert_eq!(rx.message().payloads.len(), 2);
    assert_eq!(rx.message().encode().unwrap(), b);
}

#[test]
fn ext_length_beyond_datagram_is_truncation() {
    let e = Message::decode(&with_hdr(21, "00 03 ffff 00")).unwrap_err();
    assert!(
        matches!(e.reason, Reason::Truncated { needed: 0xffff, .. }),
        "{e}"
    );
}

#[test]
fn key_id_sub_payloads_are_typed_and_others_kept_raw() {
    // Key Domain, MSK ID, MTK ID, and a 1-octet MTK ID (raw) and type 9 (raw).
    let b = with_hdr(
        21,
        "00 03 0014 0003 00f110 0104 00010002 0202 0003 0201 07 0900",
    );
    let rx = Message::decode(&b).unwrap();
    let ids = rx.message().key_id_ext().unwrap();
    assert_eq!(
        ids[0],
        KeyIdEntry::KeyDomain(KeyDomainId([0x00, 0xf1, 0x10]))
    );
    assert_eq!(ids[1], KeyIdEntry::Msk(MskId::new(1, 2)));
    assert_eq!(ids[2], KeyIdEntry::Mtk(MtkId(3)));
    assert_eq!(
        ids[3],
        KeyIdEntry::Other {
            id_type: KeyIdType::MTK_ID,
            value: vec![7]
        }
    );
    assert_eq!(
        ids[4],
        KeyIdEntry::Other {
            id_type: KeyIdType(9),
            value: vec![]
        }
    );
    assert_eq!(rx.message().encode().unwrap(), b);
}

#[test]
fn key_id_sub_payload_overrunning_the_extension_is_rejected() {
    let e = Message::decode(&with_hdr(21, "00 03 0004 0003 00f1")).unwrap_err();
    assert_eq!(e.payload, PayloadName::KeyId);
    assert!(matches!(e.reason, Reason::Truncated { .. }));
}

#[test]
fn other_extension_types_are_kept_raw() {
    let b = with_hdr(21, "00 00 0003 aabbcc");
    let rx = Message::decode(&b).unwrap();
    assert_eq!(
        rx.message().payloads[0],
        Payload::Ext(Extension::Other {
            ext_type: ExtType::VENDOR_ID,
            data: vec![0xaa, 0xbb, 0xcc]
        })
    );
    assert_eq!(rx.message().encode().unwrap(), b);
}

#[test]
fn unknown_map_type_only_with_zero_cs() {
    let b = hex("01 00 00 00 00000001 00 07");
    let rx = Message::decode(&b).unwrap();
    assert_eq!(rx.message().hdr.cs_id_map, CsIdMap::Other(CsIdMapType(7)));
    assert_eq!(rx.message().encode().unwrap(), b);
    let e = Message::decode(&hex("01 00 00 00 00000001 01 07")).unwrap_err();
    assert_eq!(e.offset, 9);
    assert!(matches!(e.reason, Reason::UnknownLength { .. }));
}

#[test]
fn srtp_map_entries_follow_cs_count() {
    let b = hex("01 00 00 00 00000001 02 00 00 11223344 00000000 01 55667788 00000001");
    let rx = Message::decode(&b).unwrap();
    let CsIdMap::SrtpId(e) = &rx.message().hdr.cs_id_map else {
        panic!()
    };
    assert_eq!(e.len(), 2);
    assert_eq!(
        e[1],
        SrtpIdEntry {
            policy_no: 1,
            ssrc: 0x55667788,
            roc: 1
        }
    );
    assert_eq!(rx.message().encode().unwrap(), b);
    assert!(Message::decode(&b[..b.len() - 1]).is_err());
}

#[test]
fn kemac_with_unknown_mac_alg_is_rejected_at_the_alg_octet() {
    let e = Message::decode(&with_hdr(1, "00 01 0000 07")).unwrap_err();
    assert_eq!(e.offset, 14);
    assert_eq!(
        e.reason,
        Reason::UnknownLength {
            field: "MAC alg",
            value: 7
        }
    );
}

#[test]
fn key_data_chain_decodes_all_kv_types_and_round_trips() {
    let items = vec![
        KeyData {
            key_type: KeyDataType::TGK,
            key: vec![0xb0; 16],
            salt: None,
            validity: KeyValidity::Interval {
                from: vec![0, 1],
                to: vec![0xff, 0xff],
            },
        },
        KeyData {
            key_type: KeyDataType::TEK_SALT,
            key: vec![0xc0; 16],
            salt: Some(vec![0xd0; 14]),
            validity: KeyValidity::Spi(vec![1, 2, 3, 4]),
        },
        KeyData {
            key_type: KeyDataType::TEK,
            key: vec![],
            salt: None,
            validity: KeyValidity::Null,
        },
    ];
    let plain = KeyData::encode_chain(&items).unwrap();
    assert_eq!(plain[0], 20);
    assert_eq!(KeyData::decode_chain(&plain).unwrap(), items);
    for len in 1..plain.len() {
        assert!(
            KeyData::decode_chain(&plain[..len]).is_err(),
            "prefix {len}"
        );
    }
    assert!(KeyData::decode_chain(&[]).unwrap().is_empty());
}

#[test]
fn key_data_chaining_to_another_payload_is_rejected() {
    let e = KeyData::decode_chain(&hex("05 20 0000")).unwrap_err();
    assert_eq!(e.reason, Reason::BadKeyDataChain(5));
    assert_eq!(e.offset, 0);
}

#[test]
fn key_data_debug_hides_the_key() {
    let kd = KeyData {
        key_type: KeyDataType::TEK,
        key: vec![0xab; 16],
        salt: None,
        validity: KeyValidity::Null,
    };
    let dbg = format!("{kd:?}");
    assert!(
        !dbg.contains("171") && !dbg.to_lowercase().contains("abab"),
        "{dbg}"
    );
}

#[test]
fn sign_is_last_and_has_no_next_payload_field() {
    let b = with_hdr(4, "1003 aabbcc");
    let rx = Message::decode(&b).unwrap();
    assert_eq!(rx.mac_field().unwrap().offset, 12);
    assert_eq!(rx.message().encode().unwrap(), b);
    let mut m = rx.into_message();
    m.payloads.push(Payload::Rand(vec![]));
    assert_eq!(m.encode().unwrap_err(), EncodeError::SignNotLast);
}

#[test]
fn every_payload_kind_round_trips() {
    let dh_value = "ab".repeat(96);
    let b = with_hdr(
        2,
        &format!(
            "03 4002 beef \
             08 01 {dh_value} 12 02 0001 02 ffff \
             05 01 00112233445566778899aabbccddeeff \
             07 00 00000000000000ff \
             09 01 0003 636572 \
             0a 01 0000000000000000000000000000000000000000 \
             0c 00 00 0006 000110 010114 \
             0b 01 0000 \
             15 00 \
             01 0c 0000 \
             00 00 0002 aabb 01 1111111111111111111111111111111111111111"
        ),
    );
    let rx = Message::decode(&b).unwrap_or_else(|e| panic!("{e}"));
    let kinds: Vec<_> = rx
        .message()
        .payloads
        .iter()
        .map(|p| p.payload_type().0)
        .collect();
    assert_eq!(kinds, vec![2, 3, 8, 5, 7, 9, 10, 12, 11, 21, 1]);
    assert_eq!(rx.message().encode().unwrap(), b);
    assert_eq!(rx.mac_field().unwrap().payload, PayloadType::KEMAC);
}

#[test]
fn encode_rejects_values_that_do_not_fit() {
    let mut m = Message::decode(&with_hdr(0, "")).unwrap().into_message();
    m.payloads.push(Payload::Rand(vec![0; 256]));
    assert!(matches!(
        m.encode(),
        Err(EncodeError::TooLong { field: "RAND", .. })
    ));
    m.payloads[0] = Payload::Kemac(Kemac {
        encr_alg: EncrAlg::AES_CM_128,
        encr_data: vec![],
        mac_alg: MacAlg::HMAC_SHA1_160,
        mac: vec![0; 19],
    });
    assert!(matches!(m.encode(), Err(EncodeError::WrongLength { .. })));
}

#[test]
fn encode_derives_the_next_payload_chain() {
    let m = Message {
        hdr: Hdr {
            version: MIKEY_VERSION,
            data_type: DataType::PSK_INIT,
            v: false,
            prf_func: PrfFunc::MIKEY_1,
            csb_id: 7,
            cs_count: 0,
            cs_id_map: CsIdMap::Empty,
        },
        payloads: vec![Payload::T(Timestamp::Counter(1)), Payload::Rand(vec![9])],
    };
    let b = m.encode().unwrap();
    assert_eq!(
        hex::encode(&b),
        "01000500000000070001 0b0200000001 000109".replace(' ', "")
    );
}

#[test]
fn error_display_names_payload_offset_and_reason() {
    let e = Message::decode(&with_hdr(11, "00 10 00")).unwrap_err();
    let s = e.to_string();
    assert!(
        s.contains("RAND") && s.contains("offset 12") && s.contains("truncated"),
        "{s}"
    );
}

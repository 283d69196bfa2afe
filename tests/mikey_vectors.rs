//! Every vector message decodes, re-encodes byte-exactly, and every proper
//! prefix of it is rejected.

mod common;

use mbms_keys::mikey::{Message, PayloadType};

#[test]
fn vector_set_is_complete() {
    let msgs = common::all_messages();
    // 7 profile messages + 6 extra messages + 4 MIKEY-SAKKE messages.
    assert_eq!(
        msgs.len(),
        17,
        "{:?}",
        msgs.iter().map(|m| &m.0).collect::<Vec<_>>()
    );
}

#[test]
fn every_vector_message_decodes_and_reencodes_byte_exactly() {
    for (name, bytes) in common::all_messages() {
        let rx = Message::decode(&bytes).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(rx.bytes(), &bytes[..], "{name}");
        let re = rx
            .message()
            .encode()
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            hex::encode(&re),
            hex::encode(&bytes),
            "{name}: re-encoding differs"
        );
    }
}

#[test]
fn every_proper_prefix_of_every_vector_is_rejected() {
    let mut checked = 0usize;
    for (name, bytes) in common::all_messages() {
        for len in 0..bytes.len() {
            assert!(
                Message::decode(&bytes[..len]).is_err(),
                "{name}: prefix of {len} octets decoded"
            );
            checked += 1;
        }
    }
    assert!(checked > 1000, "{checked}");
}

#[test]
fn trailing_octet_after_any_vector_is_rejected() {
    for (name, mut bytes) in common::all_messages() {
        bytes.push(0);
        let err = Message::decode(&bytes).expect_err(&name);
        assert!(err.to_string().contains("trailing"), "{name}: {err}");
    }
}

#[test]
fn mac_field_is_the_last_twenty_octets_of_protected_vectors() {
    for (name, bytes) in common::all_messages() {
        let rx = Message::decode(&bytes).unwrap();
        let Some(mac) = rx.mac_field() else { continue };
        if mac.len == 0 || mac.payload == PayloadType::SIGN {
            continue;
        }
        assert_eq!(mac.len, 20, "{name}");
        assert_eq!(mac.offset, bytes.len() - 20, "{name}");
        assert_eq!(
            rx.mac_input().unwrap(),
            &bytes[..bytes.len() - 20],
            "{name}"
        );
        assert!(
            matches!(mac.payload, PayloadType::KEMAC | PayloadType::V),
            "{name}"
        );
    }
}

#[test]
fn profile_vectors_payload_octets_match_the_recorded_payloads() {
    for (name, v) in common::load_all() {
        let Some(payloads) = v.get("payloads").and_then(|p| p.as_array()) else {
            continue;
        };
        let bytes = common::hex_field(&v, &["message"]);
        let rx = Message::decode(&bytes).unwrap();
        // payloads[0] is HDR; the others start at the recorded offsets.
        assert_eq!(payloads.len(), rx.message().payloads.len() + 1, "{name}");
        let mut offset = 0usize;
        for (i, p) in payloads.iter().enumerate() {
            let hex = p["hex"].as_str().unwrap();
            if i > 0 {
                assert_eq!(rx.payload_offset(i - 1), Some(offset), "{name} payload {i}");
            }
            assert_eq!(
                hex::encode(&bytes[offset..offset + hex.len() / 2]),
                hex,
                "{name}"
            );
            offset += hex.len() / 2;
        }
        assert_eq!(offset, bytes.len(), "{name}");
    }
}

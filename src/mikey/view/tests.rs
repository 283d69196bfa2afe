//! Unit tests of the borrowed reading: what the differential tests against
//! the owned decode (`tests/mikey_view.rs`, `tests/mikey_proptest.rs`)
//! cannot see.

use super::*;

fn hex(s: &str) -> Vec<u8> {
    hex::decode(s.split_whitespace().collect::<String>()).unwrap()
}

/// TEK+SALT Key data: 16-octet key, 2-octet salt, KV NULL.
const TEK_SALT: &str = "00 30 0010 000102030405060708090a0b0c0d0e0f 0002 a1a2";

#[test]
fn encr_data_longer_than_the_buffer_is_a_typed_error() {
    let mut buf = EncrDataBuf::<4>::new();
    assert_eq!(buf.fill(&[0; 5]), Err(EncrDataTooLong { len: 5, max: 4 }));
    assert!(buf.as_slice().is_empty());
    assert_eq!(buf.fill(&[1; 4]).map(|b| b.len()), Ok(4));
}

#[test]
fn refilling_the_buffer_keeps_only_the_new_octets() {
    let mut buf = EncrDataBuf::<8>::new();
    buf.fill(&[0xaa; 8]).unwrap();
    buf.fill(&[0x55; 2]).unwrap();
    assert_eq!(buf.as_slice(), &[0x55, 0x55]);
}

#[test]
fn key_data_read_from_the_buffer_borrows_it() {
    let mut buf = EncrDataBuf::<64>::new();
    buf.fill(&hex(TEK_SALT)).unwrap();
    let chain = buf.key_data().unwrap();
    let mut items = chain.iter();
    let kd = items.next().unwrap();
    assert!(items.next().is_none());
    assert_eq!(kd.key_type, crate::mikey::KeyDataType::TEK_SALT);
    assert_eq!(kd.key.len(), 16);
    assert_eq!(kd.salt, Some(&[0xa1, 0xa2][..]));
    assert_eq!(kd.validity, KeyValidityView::Null);
}

#[test]
fn key_material_is_never_printed() {
    let mut buf = EncrDataBuf::<64>::new();
    buf.fill(&hex(TEK_SALT)).unwrap();
    let chain = buf.key_data().unwrap();
    let kd = chain.iter().next().unwrap();
    for text in [format!("{buf:?}"), format!("{chain:?}"), format!("{kd:?}")] {
        assert!(!text.contains("0102") && !text.contains("a1a2"), "{text}");
        assert!(!text.contains("[1, 2"), "{text}");
    }
}

#[test]
fn payloads_are_read_again_with_their_offsets() {
    // HDR (10 octets), T COUNTER 5, RAND of 2 octets.
    let b = hex("01 00 05 00 00000001 00 01  0b 02 00000005  00 02 beef");
    let view = MessageView::decode(&b).unwrap();
    let payloads: Vec<_> = view.payloads().collect();
    assert_eq!(
        payloads,
        [
            (10, PayloadView::T(Timestamp::Counter(5))),
            (16, PayloadView::Rand(&[0xbe, 0xef][..])),
        ]
    );
    assert_eq!(view.payload_count(), 2);
    assert_eq!(view.rand(), Some(&[0xbe, 0xef][..]));
    assert_eq!(view.mac_field(), None);
}

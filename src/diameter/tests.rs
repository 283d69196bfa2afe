use proptest::prelude::*;

use super::*;

const MAX: usize = 65_536;

fn bir() -> Message {
    let mut m = Message::request(
        cmd::BOOTSTRAPPING_INFO,
        app::ZN,
        true,
        vec![
            Avp::base(code::SESSION_ID, "bmsc.example;1;2"),
            Avp::grouped(
                code::VENDOR_SPECIFIC_APPLICATION_ID,
                None,
                vec![
                    Avp::base_u32(code::VENDOR_ID, VENDOR_3GPP),
                    Avp::base_u32(code::AUTH_APPLICATION_ID, app::ZN),
                ],
            ),
            Avp::base(code::ORIGIN_HOST, "bmsc.example"),
            Avp::tgpp(zn::TRANSACTION_IDENTIFIER, "abc@bsf"),
            Avp::tgpp(zn::NAF_ID, b"bmsc.example\x01\x00\x00\x00\x01".to_vec()),
        ],
    );
    m.header.hop_by_hop = 0x1122_3344;
    m.header.end_to_end = 0x5566_7788;
    m
}

#[test]
fn encodes_the_rfc_6733_layout() {
    let bytes = bir().encode().expect("encode");
    assert_eq!(bytes[0], 1);
    assert_eq!(u24(&bytes[1..4]), bytes.len());
    assert_eq!(bytes.len() % 4, 0);
    assert_eq!(bytes[4], 0xc0, "R and P");
    assert_eq!(u24(&bytes[5..8]), 310);
    assert_eq!(be32(&bytes[8..12]), 16_777_220);
    assert_eq!(be32(&bytes[12..16]), 0x1122_3344);
    assert_eq!(be32(&bytes[16..20]), 0x5566_7788);
    // Session-Id: code 263, M, length 8 + 16, no padding needed.
    assert_eq!(&bytes[20..28], &[0, 0, 1, 7, 0x40, 0, 0, 24]);
    // Transaction-Identifier: V+M, length 12 + 7 = 19, padded to 20 with one zero.
    let pos = bytes
        .windows(4)
        .position(|w| w == [0, 0, 1, 0x91])
        .expect("AVP 401");
    assert_eq!(
        &bytes[pos + 4..pos + 12],
        &[0xc0, 0, 0, 19, 0, 0, 0x28, 0xaf]
    );
    assert_eq!(&bytes[pos + 12..pos + 20], b"abc@bsf\0");
}

#[test]
fn decode_inverts_encode() {
    let m = bir();
    let bytes = m.encode().expect("encode");
    let back = Message::decode(&bytes, MAX).expect("decode");
    assert_eq!(back, m);
    assert_eq!(back.encode().expect("encode"), bytes);
    let vsai = back
        .find(code::VENDOR_SPECIFIC_APPLICATION_ID, None)
        .and_then(Avp::members)
        .expect("grouped");
    assert_eq!(vsai[1].as_u32(), Some(app::ZN));
}

#[test]
fn every_truncation_is_a_typed_error() {
    let bytes = bir().encode().expect("encode");
    for n in 0..bytes.len() {
        assert!(Message::decode(&bytes[..n], MAX).is_err(), "prefix {n}");
    }
    assert!(matches!(
        Message::decode(&bytes[..10], MAX),
        Err(DecodeError::Truncated { need: 20, have: 10 })
    ));
}

#[test]
fn header_errors() {
    let mut bytes = bir().encode().expect("encode");
    bytes[0] = 2;
    assert_eq!(Message::decode(&bytes, MAX), Err(DecodeError::Version(2)));
    let mut bytes = bir().encode().expect("encode");
    bytes[3] = bytes[3].wrapping_add(1);
    assert!(matches!(
        Message::decode(&bytes, MAX),
        Err(DecodeError::MessageLength(_))
    ));
    let bytes = bir().encode().expect("encode");
    assert!(matches!(
        Message::decode(&bytes, 40),
        Err(DecodeError::MessageLength(_))
    ));
    let mut long = bytes.clone();
    long.extend_from_slice(&[0; 4]);
    assert!(matches!(
        Message::decode(&long, MAX),
        Err(DecodeError::LengthMismatch { .. })
    ));
}

#[test]
fn a_lying_avp_length_is_refused() {
    let mut bytes = bir().encode().expect("encode");
    // Session-Id's length says 255 octets: past the message end.
    bytes[27] = 0xff;
    assert!(matches!(
        Message::decode(&bytes, MAX),
        Err(DecodeError::AvpLength { code: 263, .. })
    ));
    // Length under the header size.
    bytes[27] = 4;
    assert!(matches!(
        Message::decode(&bytes, MAX),
        Err(DecodeError::AvpLength {
            code: 263,
            length: 4,
            ..
        })
    ));
    // A vendor AVP whose length covers only 8 octets of its 12-octet header.
    let m = Message::request(1, 0, false, vec![Avp::tgpp(401, vec![])]);
    let mut b = m.encode().expect("encode");
    b[27] = 8;
    assert!(matches!(
        Message::decode(&b, MAX),
        Err(DecodeError::AvpLength { code: 401, .. })
    ));
}

#[test]
fn nesting_is_bounded() {
    let mut avp = Avp::base_u32(code::VENDOR_ID, 1);
    for _ in 0..MAX_DEPTH {
        avp = Avp::grouped(code::FAILED_AVP, None, vec![avp]);
    }
    let ok = Message::request(1, 0, false, vec![avp.clone()]);
    let bytes = ok.encode().expect("encode");
    assert!(
        Message::decode(&bytes, MAX).is_err(),
        "depth {}",
        MAX_DEPTH + 1
    );
    let mut shallow = Avp::base_u32(code::VENDOR_ID, 1);
    for _ in 0..MAX_DEPTH - 1 {
        shallow = Avp::grouped(code::FAILED_AVP, None, vec![shallow]);
    }
    let m = Message::request(1, 0, false, vec![shallow]);
    assert_eq!(
        Message::decode(&m.encode().expect("encode"), MAX).expect("decode"),
        m
    );
    let deep = Message::request(1, 0, false, vec![avp]);
    assert_eq!(
        Message::decode(&deep.encode().expect("encode"), MAX),
        Err(DecodeError::TooDeep)
    );
}

#[test]
fn results_are_read_from_either_form() {
    let h = bir().header;
    let a = Message::answer_to(&h, vec![Avp::base_u32(code::RESULT_CODE, 2001)]);
    assert_eq!(a.result(), Some(ResultCode::Base(2001)));
    assert!(a.result().expect("code").is_success());
    assert_eq!(a.header.flags, flags::PROXIABLE);
    assert_eq!(a.header.hop_by_hop, h.hop_by_hop);
    let e = Message::answer_to(
        &h,
        vec![Avp::grouped(
            code::EXPERIMENTAL_RESULT,
            None,
            vec![
                Avp::base_u32(code::VENDOR_ID, VENDOR_3GPP),
                Avp::base_u32(code::EXPERIMENTAL_RESULT_CODE, 5403),
            ],
        )],
    );
    assert_eq!(
        e.result(),
        Some(ResultCode::Experimental {
            vendor: VENDOR_3GPP,
            code: 5403
        })
    );
}

#[test]
fn ntp_time_both_eras() {
    // 2026-01-01T00:00:00Z = Unix 1767225600 = NTP 3976214400 (MSB set, era 0).
    let t = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_600);
    assert_eq!(system_to_ntp(t), Some(3_976_214_400));
    assert_eq!(ntp_to_system(3_976_214_400), t);
    // 2040: past the 2036 rollover, MSB clear.
    let t2 = SystemTime::UNIX_EPOCH + Duration::from_secs(2_208_988_800);
    let n2 = system_to_ntp(t2).expect("in range");
    assert_eq!(n2 & 0x8000_0000, 0);
    assert_eq!(ntp_to_system(n2), t2);
}

fn arb_avp() -> impl Strategy<Value = Avp> {
    let leaf = (
        400u32..420,
        any::<bool>(),
        any::<bool>(),
        proptest::collection::vec(any::<u8>(), 0..40),
    )
        .prop_map(|(code, vendor, m, data)| {
            let vendor = vendor.then_some(VENDOR_3GPP);
            let mut a = Avp::octets(code, vendor, m, data);
            if vendor.is_some() {
                a.flags |= avp_flags::VENDOR;
            }
            a
        });
    leaf.prop_recursive(3, 24, 4, |inner| {
        proptest::collection::vec(inner, 0..4)
            .prop_map(|m| Avp::grouped(code::EXPERIMENTAL_RESULT, None, m))
    })
}

proptest! {
    #[test]
    fn roundtrip(avps in proptest::collection::vec(arb_avp(), 0..8), hbh: u32, e2e: u32,
                 command in 0u32..0x0100_0000, application: u32, f: u8) {
        let mut m = Message::request(command, application, false, avps);
        m.header.flags = f;
        m.header.hop_by_hop = hbh;
        m.header.end_to_end = e2e;
        let bytes = m.encode().expect("encode");
        let back = Message::decode(&bytes, MAX).expect("decode");
        prop_assert_eq!(&back, &m);
        prop_assert_eq!(back.encode().expect("encode"), bytes);
    }

    #[test]
    fn arbitrary_octets_never_panic(data in proptest::collection::vec(any::<u8>(), 0..200)) {
        if let Ok(m) = Message::decode(&data, MAX) {
            let again = m.encode().expect("encode");
            prop_assert_eq!(Message::decode(&again, MAX).expect("decode"), m);
        }
    }
}

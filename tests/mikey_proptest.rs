//! Property tests of the MIKEY codec (RFC 3830, RFC 4563): every well-formed
//! message survives `encode → decode` as the same message and the same
//! octets, no input makes decoding or describing panic, and the borrowed
//! reading (`MessageView`) agrees with the owned decode on every input.
//!
//! Case counts are explicit so that the test log can report them.

use proptest::collection::vec;
use proptest::prelude::*;

use mbms_keys::mikey::{
    Cert, CertType, Chash, CsIdMap, CsIdMapType, DataType, Dh, DhGroup, EncrAlg, ErrNo,
    ErrorPayload, ExtType, Extension, HashFunc, Hdr, Id, IdType, Kemac, KeyData, KeyDataType,
    KeyDomainId, KeyIdEntry, KeyIdType, KeyValidity, MacAlg, Message, MessageView, MskId, MtkId,
    Payload, PayloadType, Pke, PolicyParam, PrfFunc, ProtType, SecurityPolicy, Sign, SignType,
    SrtpIdEntry, Timestamp, Verification, fuzzing,
};
use mbms_keys::mikey::{GenericIdEntry, IdRole, Idr, Sakke, SakkeIdScheme, SakkeParams};

/// Well-formed messages generated for the round trip.
const ROUNDTRIP_CASES: u32 = 2000;
/// Key data chains generated for their round trip.
const KEY_DATA_CASES: u32 = 2000;
/// Arbitrary octet strings fed to decode/describe.
const ARBITRARY_CASES: u32 = 5000;
/// Octet strings after a valid HDR, fed to decode/describe.
const HDR_PREFIX_CASES: u32 = 5000;
/// Valid messages with one octet changed, inserted or removed.
const MUTATION_CASES: u32 = 2000;

fn bytes(max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), 0..=max)
}

fn srtp_id_entry() -> impl Strategy<Value = SrtpIdEntry> {
    (any::<u8>(), any::<u32>(), any::<u32>()).prop_map(|(policy_no, ssrc, roc)| SrtpIdEntry {
        policy_no,
        ssrc,
        roc,
    })
}

/// A GENERIC-ID map entry (RFC 6043 §6.1).
fn generic_id_entry() -> impl Strategy<Value = GenericIdEntry> {
    (
        any::<u8>(),
        any::<u8>(),
        any::<bool>(),
        vec(any::<u8>(), 0..=3),
        bytes(8),
        bytes(12),
    )
        .prop_map(
            |(cs_id, prot_type, s, policies, session_data, spi)| GenericIdEntry {
                cs_id,
                prot_type,
                s,
                policies,
                session_data,
                spi,
            },
        )
}

/// HDR with every map kind: SRTP-ID with #CS entries, the RFC 4563 empty map
/// (any #CS), GENERIC-ID with #CS entries, and map types of unknown layout,
/// which only #CS = 0 allows.
fn hdr() -> impl Strategy<Value = Hdr> {
    let map = prop_oneof![
        vec(srtp_id_entry(), 0..=4).prop_map(|e| (e.len() as u8, CsIdMap::SrtpId(e))),
        any::<u8>().prop_map(|n| (n, CsIdMap::Empty)),
        vec(generic_id_entry(), 0..=3).prop_map(|e| (e.len() as u8, CsIdMap::GenericId(e))),
        (3u8..=0xff).prop_map(|t| (0, CsIdMap::Other(CsIdMapType(t)))),
    ];
    (
        any::<u8>(),
        any::<u8>(),
        any::<bool>(),
        0u8..=0x7f,
        any::<u32>(),
        map,
    )
        .prop_map(
            |(version, data_type, v, prf, csb_id, (cs_count, cs_id_map))| Hdr {
                version,
                data_type: DataType(data_type),
                v,
                prf_func: PrfFunc(prf),
                csb_id,
                cs_count,
                cs_id_map,
            },
        )
}

fn validity() -> impl Strategy<Value = KeyValidity> {
    prop_oneof![
        Just(KeyValidity::Null),
        bytes(8).prop_map(KeyValidity::Spi),
        (bytes(10), bytes(10)).prop_map(|(from, to)| KeyValidity::Interval { from, to }),
    ]
}

/// A MAC algorithm with a MAC of its length (RFC 3830 §6.2).
fn mac() -> impl Strategy<Value = (MacAlg, Vec<u8>)> {
    prop_oneof![
        Just((MacAlg::NULL, Vec::new())),
        vec(any::<u8>(), 20).prop_map(|m| (MacAlg::HMAC_SHA1_160, m)),
    ]
}

/// A Key data sub-payload: a salt exactly when the type has one (RFC 3830 §6.13).
fn key_data() -> impl Strategy<Value = KeyData> {
    (0u8..=0x0f, bytes(40), bytes(16), validity()).prop_map(|(t, key, salt, validity)| {
        let key_type = KeyDataType(t);
        KeyData {
            key_type,
            key,
            salt: key_type.has_salt().then_some(salt),
            validity,
        }
    })
}

fn key_data_chain() -> impl Strategy<Value = Vec<KeyData>> {
    vec(key_data(), 0..=4)
}

fn kemac() -> impl Strategy<Value = Kemac> {
    let encr = prop_oneof![
        // Encrypted (opaque) Encr data under any algorithm.
        (any::<u8>(), bytes(64)),
        // NULL encryption: a plaintext Key data chain.
        key_data_chain().prop_map(|c| (
            EncrAlg::NULL.0,
            KeyData::encode_chain(&c).expect("generated chain encodes")
        )),
    ];
    (encr, mac()).prop_map(|((alg, encr_data), (mac_alg, mac))| Kemac {
        encr_alg: EncrAlg(alg),
        encr_data,
        mac_alg,
        mac,
    })
}

fn dh() -> impl Strategy<Value = Dh> {
    let group = prop_oneof![
        Just(DhGroup::OAKLEY_5),
        Just(DhGroup::OAKLEY_1),
        Just(DhGroup::OAKLEY_2)
    ];
    group
        .prop_flat_map(|g| {
            let len = g.value_len().expect("known group");
            (Just(g), vec(any::<u8>(), len), 0u8..=0x0f, validity())
        })
        .prop_map(|(group, value, reserved, validity)| Dh {
            group,
            value,
            reserved,
            validity,
        })
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    prop_oneof![
        any::<u64>().prop_map(Timestamp::NtpUtc),
        any::<u64>().prop_map(Timestamp::Ntp),
        any::<u32>().prop_map(Timestamp::Counter),
    ]
}

fn chash() -> impl Strategy<Value = Chash> {
    prop_oneof![
        vec(any::<u8>(), 20).prop_map(|hash| Chash {
            hash_func: HashFunc::SHA1,
            hash
        }),
        vec(any::<u8>(), 16).prop_map(|hash| Chash {
            hash_func: HashFunc::MD5,
            hash
        }),
    ]
}

fn security_policy() -> impl Strategy<Value = SecurityPolicy> {
    let param =
        (any::<u8>(), bytes(16)).prop_map(|(param_type, value)| PolicyParam { param_type, value });
    (any::<u8>(), any::<u8>(), vec(param, 0..=6)).prop_map(|(policy_no, prot, params)| {
        SecurityPolicy {
            policy_no,
            prot_type: ProtType(prot),
            params,
        }
    })
}

/// The typed length of a Key ID type (RFC 4563 §4, docs/profile.md §1).
fn typed_len(t: u8) -> Option<usize> {
    match KeyIdType(t) {
        KeyIdType::KEY_DOMAIN_ID => Some(KeyDomainId::LEN),
        KeyIdType::MSK_ID => Some(MskId::LEN),
        KeyIdType::MTK_ID => Some(MtkId::LEN),
        _ => None,
    }
}

/// Key ID entries. An `Other` entry of a known type with the typed length
/// would decode as typed, so `Other` entries either have an unknown type or
/// a known type with another length.
fn key_id_entry() -> impl Strategy<Value = KeyIdEntry> {
    prop_oneof![
        any::<[u8; 3]>().prop_map(|b| KeyIdEntry::KeyDomain(KeyDomainId(b))),
        any::<u32>().prop_map(|v| KeyIdEntry::Msk(MskId::from_u32(v))),
        any::<u16>().prop_map(|v| KeyIdEntry::Mtk(MtkId(v))),
        (3u8..=0xff, bytes(12)).prop_map(|(t, value)| KeyIdEntry::Other {
            id_type: KeyIdType(t),
            value
        }),
        (0u8..=2, bytes(12))
            .prop_filter("typed length decodes as typed", |(t, v)| {
                typed_len(*t) != Some(v.len())
            })
            .prop_map(|(t, value)| KeyIdEntry::Other {
                id_type: KeyIdType(t),
                value
            }),
    ]
}

fn extension() -> impl Strategy<Value = Extension> {
    prop_oneof![
        vec(key_id_entry(), 0..=5).prop_map(Extension::KeyId),
        (any::<u8>(), bytes(32))
            .prop_filter("type 3 is Key ID", |(t, _)| ExtType(*t) != ExtType::KEY_ID)
            .prop_map(|(t, data)| Extension::Other {
                ext_type: ExtType(t),
                data
            }),
    ]
}

/// Every payload kind except SIGN, which has no next-payload field.
fn chained_payload() -> impl Strategy<Value = Payload> {
    prop_oneof![
        kemac().prop_map(Payload::Kemac).boxed(),
        (0u8..=3, bytes(64))
            .prop_map(|(cache, data)| Payload::Pke(Pke { cache, data }))
            .boxed(),
        dh().prop_map(Payload::Dh).boxed(),
        timestamp().prop_map(Payload::T).boxed(),
        (any::<u8>(), bytes(48))
            .prop_map(|(t, data)| Payload::Id(Id {
                id_type: IdType(t),
                data
            }))
            .boxed(),
        (any::<u8>(), bytes(64))
            .prop_map(|(t, data)| Payload::Cert(Cert {
                cert_type: CertType(t),
                data
            }))
            .boxed(),
        chash().prop_map(Payload::Chash).boxed(),
        mac()
            .prop_map(|(auth_alg, ver_data)| Payload::V(Verification { auth_alg, ver_data }))
            .boxed(),
        security_policy().prop_map(Payload::Sp).boxed(),
        bytes(0xff).prop_map(Payload::Rand).boxed(),
        (any::<u8>(), any::<u16>())
            .prop_map(|(e, reserved)| Payload::Err(ErrorPayload {
                err_no: ErrNo(e),
                reserved
            }))
            .boxed(),
        extension().prop_map(Payload::Ext).boxed(),
        (any::<u8>(), any::<u8>(), bytes(48))
            .prop_map(|(role, t, data)| Payload::Idr(Idr {
                role: IdRole(role),
                id_type: IdType(t),
                data
            }))
            .boxed(),
        (any::<u8>(), any::<u8>(), bytes(300))
            .prop_map(|(params, scheme, data)| Payload::Sakke(Sakke {
                params: SakkeParams(params),
                id_scheme: SakkeIdScheme(scheme),
                data
            }))
            .boxed(),
    ]
}

fn sign() -> impl Strategy<Value = Sign> {
    (0u8..=0x0f, bytes(300)).prop_map(|(t, signature)| Sign {
        sign_type: SignType(t),
        signature,
    })
}

/// A well-formed message: any payloads in any order, SIGN only last.
fn message() -> impl Strategy<Value = Message> {
    (
        hdr(),
        vec(chained_payload(), 0..=8),
        proptest::option::of(sign()),
    )
        .prop_map(|(hdr, mut payloads, sign)| {
            payloads.extend(sign.map(Payload::Sign));
            Message { hdr, payloads }
        })
}

/// A valid HDR followed by arbitrary octets, its next payload one of the
/// known types (mostly) or any value.
fn after_valid_hdr() -> impl Strategy<Value = Vec<u8>> {
    let next = prop_oneof![
        4 => prop_oneof![
            0u8..=12,
            Just(PayloadType::IDR.0),
            Just(PayloadType::KEY_DATA.0),
            Just(PayloadType::GENERAL_EXT.0),
            Just(PayloadType::SAKKE.0),
        ],
        1 => any::<u8>(),
    ];
    (hdr(), next, bytes(256)).prop_map(|(hdr, next, tail)| {
        let mut out = Message {
            hdr,
            payloads: Vec::new(),
        }
        .encode()
        .expect("generated HDR encodes");
        out[2] = next;
        out.extend_from_slice(&tail);
        out
    })
}

enum Mutation {
    Set(usize, u8),
    Insert(usize, u8),
    Remove(usize),
}

fn mutated_message() -> impl Strategy<Value = Vec<u8>> {
    (message(), 0u8..3, any::<prop::sample::Index>(), any::<u8>()).prop_map(
        |(m, kind, at, octet)| {
            let mut b = m.encode().expect("generated message encodes");
            let i = at.index(b.len());
            match kind {
                0 => Mutation::Set(i, octet),
                1 => Mutation::Insert(i, octet),
                _ => Mutation::Remove(i),
            }
            .apply(&mut b);
            b
        },
    )
}

impl Mutation {
    fn apply(self, b: &mut Vec<u8>) {
        match self {
            Self::Set(i, v) => b[i] = v,
            Self::Insert(i, v) => b.insert(i, v),
            Self::Remove(i) => {
                b.remove(i);
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(ROUNDTRIP_CASES))]

    /// RFC 3830 §6: a message re-decodes as itself; the octets and the MAC
    /// field position agree between encoder and decoder.
    #[test]
    fn well_formed_message_round_trips(m in message()) {
        let (bytes, mac) = m.encode_with_mac_field().expect("well-formed message encodes");
        let rx = Message::decode(&bytes).expect("encoded message decodes");
        prop_assert_eq!(rx.message(), &m);
        prop_assert_eq!(rx.bytes(), &bytes[..]);
        prop_assert_eq!(rx.mac_field(), mac);
        prop_assert_eq!(rx.message().encode().expect("re-encodes"), bytes.clone());
        fuzzing::roundtrip(&bytes);
        fuzzing::decode_never_panics(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(KEY_DATA_CASES))]

    /// RFC 3830 §6.13: a Key data chain re-decodes as itself.
    #[test]
    fn key_data_chain_round_trips(chain in key_data_chain()) {
        let bytes = KeyData::encode_chain(&chain).expect("well-formed chain encodes");
        let back = KeyData::decode_chain(&bytes).expect("encoded chain decodes");
        prop_assert_eq!(&back, &chain);
        prop_assert_eq!(KeyData::encode_chain(&back).expect("re-encodes"), bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(ARBITRARY_CASES))]

    /// Decoding is total: arbitrary octets never panic in decode or describe,
    /// and whatever decodes re-encodes to the same octets.
    #[test]
    fn arbitrary_octets_never_panic(data in vec(any::<u8>(), 0..512)) {
        fuzzing::decode_never_panics(&data);
        fuzzing::roundtrip(&data);
        let _ = KeyData::decode_chain(&data);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(HDR_PREFIX_CASES))]

    /// As above, past a valid HDR so that the payload decoders are reached.
    #[test]
    fn octets_after_a_valid_hdr_never_panic(data in after_valid_hdr()) {
        fuzzing::decode_never_panics(&data);
        fuzzing::roundtrip(&data);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(MUTATION_CASES))]

    /// As above, on valid messages with one octet changed, inserted or removed.
    #[test]
    fn mutated_messages_never_panic(data in mutated_message()) {
        fuzzing::decode_never_panics(&data);
        fuzzing::roundtrip(&data);
    }
}

/// Well-formed messages read by both decoders.
const VIEW_WELL_FORMED_CASES: u32 = 3000;
/// Arbitrary octet strings read by both decoders.
const VIEW_ARBITRARY_CASES: u32 = 10000;
/// Octet strings after a valid HDR read by both decoders.
const VIEW_HDR_PREFIX_CASES: u32 = 10000;
/// Mutated valid messages read by both decoders.
const VIEW_MUTATION_CASES: u32 = 5000;
/// Key data chains, intact and mutated, read by both decoders.
const VIEW_KEY_DATA_CASES: u32 = 3000;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(VIEW_WELL_FORMED_CASES))]

    /// The borrowed reading of a well-formed message is the message, and
    /// agrees with the owned decode field for field.
    #[test]
    fn view_agrees_with_owned_on_well_formed_messages(m in message()) {
        let bytes = m.encode().expect("well-formed message encodes");
        let view = MessageView::decode(&bytes).expect("encoded message reads");
        prop_assert_eq!(view.to_message(), m);
        fuzzing::view_matches_owned(&bytes);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(VIEW_ARBITRARY_CASES))]

    /// Arbitrary octets: both accept or both reject with the same error.
    #[test]
    fn view_agrees_with_owned_on_arbitrary_octets(data in vec(any::<u8>(), 0..512)) {
        fuzzing::view_matches_owned(&data);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(VIEW_HDR_PREFIX_CASES))]

    /// As above, past a valid HDR so that the payload readers are reached.
    #[test]
    fn view_agrees_with_owned_after_a_valid_hdr(data in after_valid_hdr()) {
        fuzzing::view_matches_owned(&data);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(VIEW_MUTATION_CASES))]

    /// As above, on valid messages with one octet changed, inserted or removed.
    #[test]
    fn view_agrees_with_owned_on_mutated_messages(data in mutated_message()) {
        fuzzing::view_matches_owned(&data);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(VIEW_KEY_DATA_CASES))]

    /// Key data chains, intact and with one octet changed, inserted or removed.
    #[test]
    fn key_data_view_agrees_with_owned(
        chain in key_data_chain(),
        kind in 0u8..4,
        at in any::<prop::sample::Index>(),
        octet in any::<u8>(),
    ) {
        let mut bytes = KeyData::encode_chain(&chain).expect("well-formed chain encodes");
        if !bytes.is_empty() {
            let i = at.index(bytes.len());
            match kind {
                0 => Mutation::Set(i, octet).apply(&mut bytes),
                1 => Mutation::Insert(i, octet).apply(&mut bytes),
                2 => Mutation::Remove(i).apply(&mut bytes),
                _ => {}
            }
        }
        fuzzing::key_data_view_matches_owned(&bytes);
    }
}

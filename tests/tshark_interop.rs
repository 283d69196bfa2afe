//! Interop with Wireshark's MIKEY dissector (`tshark`, Debian 4.0.x) as an
//! independent oracle of the wire structure (docs/oracles.md §4a, §6).
//!
//! Messages are built from typed values, encoded, wrapped in UDP to port
//! 2269 by `text2pcap` and dissected. Every field tshark shows must equal the
//! typed value, nothing may be malformed, and tshark's payloads must lie
//! exactly where the codec put them, the last one ending at the datagram's
//! end (tshark does not flag trailing octets, so this is checked by position).
//!
//! Skips when tshark or text2pcap is absent; fails instead when
//! `MBMS_REQUIRE_ORACLES=1`.

mod common;
#[path = "tshark/expect.rs"]
mod expect;
#[path = "tshark/oracle.rs"]
mod oracle;
#[cfg(feature = "mcx")]
#[path = "common/mcx_users.rs"]
mod users;

use mbms_keys::mikey::{
    CsIdMap, DataType, EncrAlg, ErrNo, ErrorPayload, Extension, Hdr, Id, IdType, Kemac, KeyData,
    KeyDataType, KeyDomainId, KeyIdEntry, KeyValidity, MIKEY_VERSION, MacAlg, Message, MskId,
    MtkId, Payload, PolicyParam, PrfFunc, ProtType, SecurityPolicy, SrtpIdEntry, SrtpParam,
    Timestamp, Verification,
};

use expect::{check, subtree};
use oracle::{HEADERS, tshark};

// The messages: MBMS-shaped, built from typed values (docs/profile.md §2).

/// Deterministic filler for "random" fields (splitmix64).
struct Filler(u64);

impl Filler {
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n)
            .map(|_| {
                self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
                let mut z = self.0;
                z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
                z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
                (z ^ (z >> 31)) as u8
            })
            .collect()
    }
}

const KEY_DOMAIN: KeyDomainId = KeyDomainId([0x00, 0xf1, 0x10]);
const BMSC_ID: &[u8] = b"bmsc.mnc001.mcc001.pub.3gppnetwork.org";
const UE_ID: &[u8] = b"ICEiIyQlJicoKSorLC0uLw==@bsf.mnc001.mcc001.pub.3gppnetwork.org";

fn hdr(data_type: DataType, v: bool, csb_id: u32, cs_id_map: CsIdMap) -> Hdr {
    let cs_count = match &cs_id_map {
        CsIdMap::SrtpId(e) => e.len() as u8,
        _ => 0,
    };
    Hdr {
        version: MIKEY_VERSION,
        data_type,
        v,
        prf_func: PrfFunc::MIKEY_1,
        csb_id,
        cs_count,
        cs_id_map,
    }
}

fn id(data: &[u8]) -> Payload {
    Payload::Id(Id {
        id_type: IdType::NAI,
        data: data.to_vec(),
    })
}

fn hmac_kemac(f: &mut Filler, encr_len: usize) -> Payload {
    Payload::Kemac(Kemac {
        encr_alg: EncrAlg::AES_CM_128,
        encr_data: f.bytes(encr_len),
        mac_alg: MacAlg::HMAC_SHA1_160,
        mac: f.bytes(20),
    })
}

/// MSK delivery (TS 33.246 6.3.2.3): HDR (empty map), EXT Key ID, T COUNTER,
/// RAND, IDi, IDr, KEMAC.
fn msk_message(f: &mut Filler) -> Message {
    let msk = MskId::new(0x0001, 0x0002);
    Message {
        hdr: hdr(DataType::PSK_INIT, true, msk.to_u32(), CsIdMap::Empty),
        payloads: vec![
            Payload::Ext(Extension::KeyId(vec![
                KeyIdEntry::KeyDomain(KEY_DOMAIN),
                KeyIdEntry::Msk(msk),
            ])),
            Payload::T(Timestamp::Counter(0x0000_0005)),
            Payload::Rand(f.bytes(16)),
            id(BMSC_ID),
            id(UE_ID),
            hmac_kemac(f, 26),
        ],
    }
}

/// MTK delivery for streaming (TS 33.246 6.3.3.2): HDR with an SRTP-ID map,
/// EXT Key ID, T COUNTER, RAND, SP (SRTP), KEMAC.
fn mtk_streaming_message(f: &mut Filler) -> Message {
    let map = CsIdMap::SrtpId(vec![
        SrtpIdEntry {
            policy_no: 0,
            ssrc: 0x1234_5678,
            roc: 0,
        },
        SrtpIdEntry {
            policy_no: 0,
            ssrc: 0x9abc_def0,
            roc: 0x0000_0007,
        },
    ]);
    let param = |t: SrtpParam, v: &[u8]| PolicyParam {
        param_type: t.0,
        value: v.to_vec(),
    };
    Message {
        hdr: hdr(DataType::PSK_INIT, false, 0x0001_0002, map),
        payloads: vec![
            Payload::Ext(Extension::KeyId(vec![
                KeyIdEntry::KeyDomain(KEY_DOMAIN),
                KeyIdEntry::Msk(MskId::new(0x0001, 0x0002)),
                KeyIdEntry::Mtk(MtkId(0x0003)),
            ])),
            Payload::T(Timestamp::Counter(0x0000_0003)),
            Payload::Rand(f.bytes(16)),
            Payload::Sp(SecurityPolicy {
                policy_no: 0,
                prot_type: ProtType::SRTP,
                params: vec![
                    param(SrtpParam::ENCR_ALG, &[0x01]),
                    param(SrtpParam::ENCR_KEY_LEN, &[0x10]),
                    param(SrtpParam::AUTH_ALG, &[0x01]),
                    param(SrtpParam::AUTH_KEY_LEN, &[0x14]),
                    param(SrtpParam::SALT_KEY_LEN, &[0x0e]),
                    param(SrtpParam::AUTH_TAG_LEN, &[0x0a]),
                ],
            }),
            hmac_kemac(f, 34),
        ],
    }
}

/// Verification message (TS 33.246 6.3.2.2.3): HDR, T, IDr, V.
fn verification_message(f: &mut Filler) -> Message {
    Message {
        hdr: hdr(DataType::PSK_VERIFY, false, 0x0001_0002, CsIdMap::Empty),
        payloads: vec![
            Payload::T(Timestamp::Counter(0x0000_0005)),
            id(UE_ID),
            Payload::V(Verification {
                auth_alg: MacAlg::HMAC_SHA1_160,
                ver_data: f.bytes(20),
            }),
        ],
    }
}

/// Error message (RFC 3830 §5.1.2): HDR, T, ERR, ERR, V.
fn error_message(f: &mut Filler) -> Message {
    Message {
        hdr: hdr(DataType::ERROR, false, 0x0001_0002, CsIdMap::Empty),
        payloads: vec![
            Payload::T(Timestamp::NtpUtc(0xe6a1_2b3c_8000_0000)),
            Payload::Err(ErrorPayload {
                err_no: ErrNo::AUTH_FAILURE,
                reserved: 0,
            }),
            Payload::Err(ErrorPayload {
                err_no: ErrNo::INVALID_TS,
                reserved: 0,
            }),
            Payload::V(Verification {
                auth_alg: MacAlg::HMAC_SHA1_160,
                ver_data: f.bytes(20),
            }),
        ],
    }
}

/// NTP-UTC T and a NULL-encrypted KEMAC whose plaintext Key data tshark
/// dissects: TEK+SALT with SPI, TGK with an interval, TEK with KV NULL.
fn null_kemac_message(f: &mut Filler, mac_alg: MacAlg) -> Message {
    let chain = vec![
        KeyData {
            key_type: KeyDataType::TEK_SALT,
            key: f.bytes(16),
            salt: Some(f.bytes(14)),
            validity: KeyValidity::Spi(vec![0x00, 0x03]),
        },
        KeyData {
            key_type: KeyDataType::TGK,
            key: f.bytes(16),
            salt: None,
            validity: KeyValidity::Interval {
                from: vec![0x00, 0x00, 0x00, 0x01],
                to: vec![0x00, 0x00, 0xff, 0xff],
            },
        },
        KeyData {
            key_type: KeyDataType::TEK,
            key: f.bytes(32),
            salt: None,
            validity: KeyValidity::Null,
        },
    ];
    let mac = match mac_alg.mac_len() {
        Some(n) => f.bytes(n),
        None => Vec::new(),
    };
    Message {
        hdr: hdr(DataType::PSK_INIT, false, 0x0001_0002, CsIdMap::Empty),
        payloads: vec![
            Payload::T(Timestamp::NtpUtc(0xe6a1_2b3c_4000_0000)),
            Payload::Rand(f.bytes(16)),
            Payload::Kemac(Kemac {
                encr_alg: EncrAlg::NULL,
                encr_data: KeyData::encode_chain(&chain).expect("chain encodes"),
                mac_alg,
                mac,
            }),
        ],
    }
}

fn check_all(name: &str, messages: &[(&str, Message)]) {
    let Some(t) = tshark() else { return };
    let datagrams: Vec<Vec<u8>> = messages
        .iter()
        .map(|(n, m)| m.encode().unwrap_or_else(|e| panic!("{n}: {e}")))
        .collect();
    let dissections = t.dissect(name, &datagrams);
    for ((n, m), d) in messages.iter().zip(&dissections) {
        check(n, m, d);
    }
    t.forget(name);
}

#[test]
fn msk_message_dissects_as_built() {
    let mut f = Filler(1);
    check_all("msk", &[("MSK message", msk_message(&mut f))]);
}

#[test]
fn mtk_streaming_message_dissects_as_built() {
    let mut f = Filler(2);
    check_all(
        "mtk",
        &[("MTK streaming message", mtk_streaming_message(&mut f))],
    );
}

#[test]
fn verification_message_dissects_as_built() {
    let mut f = Filler(3);
    check_all(
        "verification",
        &[("verification message", verification_message(&mut f))],
    );
}

#[test]
fn error_message_dissects_as_built() {
    let mut f = Filler(4);
    check_all("error", &[("error message", error_message(&mut f))]);
}

#[test]
fn null_kemac_key_data_dissects_as_built() {
    let mut f = Filler(5);
    check_all(
        "null-kemac",
        &[
            (
                "NULL KEMAC, HMAC",
                null_kemac_message(&mut f, MacAlg::HMAC_SHA1_160),
            ),
            (
                "NULL KEMAC, NULL MAC",
                null_kemac_message(&mut f, MacAlg::NULL),
            ),
        ],
    );
}

/// Every vector message, re-encoded by the codec, dissects into the same
/// payloads at the same offsets (structure only: values are checked above).
#[test]
fn vector_messages_dissect_at_the_codec_offsets() {
    let Some(t) = tshark() else { return };
    // Wireshark 4.0 knows the layout of CS ID map type 0 only and does not
    // read the map info of another type: a message with a GENERIC-ID map
    // (#CS > 0) is shown malformed (docs/oracles.md §4a). The Lua dissector's test covers those.
    let msgs: Vec<(String, Vec<u8>)> = common::all_messages()
        .into_iter()
        .filter(|(_, b)| {
            let rx = Message::decode(b).expect("decodes");
            !matches!(rx.message().hdr.cs_id_map, CsIdMap::GenericId(_))
        })
        .collect();
    assert!(
        msgs.iter()
            .any(|(n, _)| n.starts_with("streamwide-mikey-sakke"))
    );
    let datagrams: Vec<Vec<u8>> = msgs
        .iter()
        .map(|(n, b)| {
            let rx = Message::decode(b).unwrap_or_else(|e| panic!("{n}: {e}"));
            rx.message().encode().unwrap_or_else(|e| panic!("{n}: {e}"))
        })
        .collect();
    let dissections = t.dissect("vectors", &datagrams);
    for ((n, bytes), d) in msgs.iter().zip(&dissections) {
        let rx = Message::decode(bytes).expect("decodes");
        let m = rx.message();
        let ctx = format!("{n}: {}", hex::encode(bytes));
        assert_eq!(
            d.fields.get("_ws.malformed").map_or("", String::as_str),
            "",
            "{ctx}"
        );
        assert_eq!(d.frame_len, HEADERS + bytes.len(), "{ctx}");
        let tops: Vec<(&str, usize, usize)> = d
            .pdml
            .iter()
            .filter(|f| f.depth == 0)
            .map(|f| (f.name.as_str(), f.pos - HEADERS, f.size))
            .collect();
        let mut starts = vec![0];
        starts.extend((0..m.payloads.len()).map(|i| rx.payload_offset(i).expect("offset")));
        starts.push(bytes.len());
        let want: Vec<(&str, usize, usize)> = std::iter::once("mikey.hdr")
            .chain(m.payloads.iter().map(subtree))
            .enumerate()
            .map(|(i, s)| (s, starts[i], starts[i + 1] - starts[i]))
            .collect();
        assert_eq!(tops, want, "{ctx}");
    }
    t.forget("vectors");
}

/// MIKEY-SAKKE payloads (RFC 6509, RFC 6043) as the codec encodes them:
/// tshark's own MIKEY dissector shows the IDR roles, types and IDs, the SAKKE
/// params, ID scheme and data, and the ECCSI SIGN as the typed values. A PCK
/// delivery (#CS 0, the empty map) is used: Wireshark 4.0 knows the layout
/// of map type 0 only (docs/oracles.md §4a).
#[test]
fn mikey_sakke_payloads_dissect_as_built() {
    let m = common::sakke::message(common::sakke::pck_hdr());
    check_all("sakke", &[("MIKEY-SAKKE PCK-shaped message", m)]);
}

/// The I_MESSAGE our builder writes (`mcx::build_i_message`, docs/mcx.md §11) for a PCK:
/// tshark shows HDR (data type SAKKE, PRF func 1, CSB ID = PCK-ID, #CS 0), T (NTP-UTC), RAND,
/// the four IDRs, the SAKKE payload and the ECCSI SIGN as the codec reads them back, and the
/// built octets are those the typed message encodes to. GMK and CSK deliveries carry a
/// GENERIC-ID map (#CS 1), whose layout Wireshark 4.0 does not know (map type 0 only,
/// docs/oracles.md §4a).
#[cfg(feature = "mcx")]
#[test]
fn a_built_sakke_i_message_dissects_as_built() {
    use mbms_keys::ibe::Ssv;
    use mbms_keys::mcx::KeyPurpose;
    use mbms_keys::mikey::{IdRole, SakkeIdScheme, SakkeParams, SignType};

    if tshark().is_none() {
        return;
    }
    let kms = users::Kms::new();
    // UIDs of printable octets: tshark prints an IDR of ID type URI as text.
    let alice = kms.user_with_uid("sip:alice@example.org", [b'a'; 32]);
    let bob = kms.user_with_uid("sip:bob@example.org", [b'b'; 32]);
    let key = Ssv::from_bytes([0x24; 16]);
    let bytes = kms.message(
        &alice,
        &bob,
        &key,
        KeyPurpose::Pck,
        0x1234_5678,
        users::t0(),
    );
    let m = Message::decode(&bytes).expect("decodes").into_message();
    assert_eq!(
        m.encode().unwrap(),
        bytes,
        "the typed message encodes to the built octets"
    );
    assert_eq!(m.hdr.data_type, DataType::SAKKE);
    assert_eq!(m.hdr.prf_func, PrfFunc::HMAC_SHA_256);
    assert_eq!((m.hdr.csb_id, m.hdr.cs_count), (0x1234_5678, 0));
    assert_eq!(m.idr(IdRole::IDRUIDR).unwrap().data, bob.uid);
    let sakke = m.sakke().unwrap();
    assert_eq!(
        (sakke.params, sakke.id_scheme),
        (SakkeParams::PARAMETER_SET_1, SakkeIdScheme::UID)
    );
    let Some(Payload::Sign(sign)) = m.payloads.last() else {
        panic!("SIGN last")
    };
    assert_eq!(
        (sign.sign_type, sign.signature.len()),
        (SignType::ECCSI, 129)
    );
    // A 256-bit key: the same message with a KEMAC before SIGN (docs/mcx.md §11.5); tshark
    // shows its encr alg, Encr data, MAC alg and MAC as the codec reads them.
    let wide = mbms_keys::mcx::DeliveryKey::from_slice(&[0x42; 32]).unwrap();
    let bytes = kms.message(
        &alice,
        &bob,
        &wide,
        KeyPurpose::Pck,
        0x1234_5679,
        users::t0(),
    );
    let m256 = Message::decode(&bytes).expect("decodes").into_message();
    assert_eq!(m256.encode().unwrap(), bytes);
    let n = m256.payloads.len();
    let Some(Payload::Kemac(kemac)) = m256.payloads.get(n - 2) else {
        panic!("KEMAC before SIGN")
    };
    assert_eq!(
        (
            kemac.encr_alg,
            kemac.mac_alg,
            kemac.encr_data.len(),
            kemac.mac.len()
        ),
        (EncrAlg::AES_CM_128, MacAlg::HMAC_SHA1_160, 36, 20)
    );
    check_all(
        "sakke-built",
        &[
            ("built MIKEY-SAKKE PCK I_MESSAGE", m),
            (
                "built MIKEY-SAKKE PCK I_MESSAGE, 256-bit key in a KEMAC",
                m256,
            ),
        ],
    );
}

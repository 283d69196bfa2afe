//! A MIKEY-SAKKE I_MESSAGE-shaped message built from the codec's typed
//! values (the payload order of TS 33.180 key delivery: HDR, T, RAND, IDR
//! roles 8, 9, 6, SP, SAKKE, EXT type 7, SIGN), with placeholder contents:
//! the structure is what matters to the dissector tests that use it.

use mbms_keys::mikey::{
    CsIdMap, DataType, ExtType, Extension, GenericIdEntry, Hdr, IdRole, IdType, Idr, MIKEY_VERSION,
    Message, Payload, PolicyParam, PrfFunc, ProtType, Sakke, SakkeIdScheme, SakkeParams,
    SecurityPolicy, Sign, SignType, Timestamp,
};

/// The HDR of a GMK delivery: data type SAKKE, PRF-HMAC-SHA-256, one
/// crypto session in a GENERIC-ID map whose SPI is GMK-ID ‖ GUK-ID.
pub fn gmk_hdr() -> Hdr {
    Hdr {
        version: MIKEY_VERSION,
        data_type: DataType::SAKKE,
        v: false,
        prf_func: PrfFunc::HMAC_SHA_256,
        csb_id: 0x06a1_2aea,
        cs_count: 1,
        cs_id_map: CsIdMap::GenericId(vec![GenericIdEntry {
            cs_id: 4,
            prot_type: 0,
            s: false,
            policies: vec![0],
            session_data: vec![],
            spi: vec![0x0d, 0xf9, 0xbc, 0x39, 0x06, 0xa1, 0x2a, 0xea],
        }]),
    }
}

/// The HDR of a PCK delivery: no crypto session, the empty map.
pub fn pck_hdr() -> Hdr {
    Hdr {
        cs_count: 0,
        cs_id_map: CsIdMap::Empty,
        csb_id: 0x1699_2638,
        ..gmk_hdr()
    }
}

/// The payloads after `hdr`: T, RAND, IDR 8, 9, 6, SP, SAKKE, EXT 7, SIGN.
pub fn message(hdr: Hdr) -> Message {
    let idr = |role, data: &[u8]| {
        Payload::Idr(Idr {
            role,
            id_type: IdType::URI,
            data: data.to_vec(),
        })
    };
    let mut sakke_data = vec![0x04];
    sakke_data.extend([0x5c; 256]);
    sakke_data.extend([0x48; 16]);
    Message {
        hdr,
        payloads: vec![
            Payload::T(Timestamp::NtpUtc(0xec89_8da8_0000_0000)),
            Payload::Rand(vec![0x5a; 16]),
            idr(IdRole::IDRUIDI, &[0x11; 32]),
            idr(IdRole::IDRUIDR, &[0x22; 32]),
            idr(IdRole::IDRKMSI, b"kms.example.org"),
            Payload::Sp(SecurityPolicy {
                policy_no: 0,
                prot_type: ProtType::SRTP,
                params: vec![
                    PolicyParam {
                        param_type: 0,
                        value: vec![0x06],
                    },
                    PolicyParam {
                        param_type: 1,
                        value: vec![0x10],
                    },
                ],
            }),
            Payload::Sakke(Sakke {
                params: SakkeParams::PARAMETER_SET_1,
                id_scheme: SakkeIdScheme::UID,
                data: sakke_data,
            }),
            Payload::Ext(Extension::Other {
                ext_type: ExtType::KEY_PARAMS,
                data: vec![0x43, 0, 0, 0, 0, 0x01, 0, 0],
            }),
            Payload::Sign(Sign {
                sign_type: SignType::ECCSI,
                signature: [[0x77; 64].as_slice(), &[0x04], &[0x66; 64]].concat(),
            }),
        ],
    }
}

//! Fixtures the KMS tests share: sample responses with key material of the real sizes (RSK
//! 257, SSK 32, PVT 65 octets), transport keys, and the Python oracle lookup.
#![allow(dead_code)]

pub mod oracles;
pub mod server;
pub mod wolf;

use std::path::PathBuf;
use std::process::Command;

use mbms_keys::kms::messages::{
    ErrorInfo, KeyContent, KmsCertificate, KmsKeySet, KmsMessage, KmsResponse, NewKey, NewKeys,
    Role,
};
use mbms_keys::kms::transport::{Mode, TransportKeys};
use mbms_keys::kms::{KeyId, Secret};

/// `0x04 ‖ pseudo-random octets` of length `len`, distinct for each `seed` (a point-like value).
pub fn octets(len: usize, seed: u8) -> Vec<u8> {
    let mut x = (u64::from(seed) + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    (0..len)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            if i == 0 { 0x04 } else { (x >> 24) as u8 }
        })
        .collect()
}

pub fn rsk() -> Vec<u8> {
    octets(257, 1)
}
pub fn ssk() -> Vec<u8> {
    octets(32, 2)
}
pub fn pvt() -> Vec<u8> {
    octets(65, 3)
}
/// The identifier of [`new_trk`].
pub const NEW_TRK_ID: KeyId = KeyId(0x0badcafe);

pub fn new_trk() -> Vec<u8> {
    octets(32, 4)
}

pub fn certificate() -> KmsCertificate {
    KmsCertificate {
        version: Some("1.1.0".into()),
        role: Some(Role::Root),
        kms_uri: "kms.example.org".into(),
        cert_uri: Some("cert1.kms.example.org".into()),
        issuer: Some("www.example.org".into()),
        valid_from: Some("2026-01-01T00:00:00Z".into()),
        valid_to: Some("2027-01-01T00:00:00Z".into()),
        revoked: Some(false),
        user_id_format: "2".into(),
        user_key_period: 2_592_000,
        user_key_offset: 0,
        pub_enc_key: octets(257, 9),
        pub_auth_key: octets(65, 10),
        parameter_set: Some(1),
        domains: vec!["example.org".into()],
        ..KmsCertificate::default()
    }
}

fn header(url: &str, message: Option<KmsMessage>) -> KmsResponse {
    KmsResponse {
        id: Some("resp1".into()),
        user_uri: "sip:alice@example.org".into(),
        kms_uri: "kms.example.org".into(),
        time: "2026-12-02T18:00:00Z".into(),
        kms_id: Some("KMSProvider12345".into()),
        client_req_url: format!("https://kms.example.org/keymanagement/identity/v1/{url}"),
        message,
        error: None,
    }
}

pub fn key_set() -> KmsKeySet {
    KmsKeySet {
        kms_uri: "kms.example.org".into(),
        cert_uri: Some("cert1.kms.example.org".into()),
        issuer: None,
        user_uri: "sip:alice@example.org".into(),
        user_id: octets(32, 5),
        valid_from: Some("2026-12-01T00:00:00Z".into()),
        valid_to: Some("2026-12-31T00:00:00Z".into()),
        key_period_no: 1516,
        revoked: Some(false),
        rsk: KeyContent::Plain(Secret::new(rsk())),
        ssk: KeyContent::Plain(Secret::new(ssk())),
        pvt: KeyContent::Plain(Secret::new(pvt())),
    }
}

pub fn init_response() -> KmsResponse {
    header(
        "init",
        Some(KmsMessage::Init {
            certificate: Box::new(certificate()),
            new_keys: NewKeys {
                transport: vec![NewKey {
                    id: NEW_TRK_ID,
                    key: KeyContent::Plain(Secret::new(new_trk())),
                }],
                integrity: vec![],
            },
        }),
    )
}

pub fn keyprov_response() -> KmsResponse {
    let mut second = key_set();
    second.key_period_no = 1517;
    second.ssk = KeyContent::Plain(Secret::new(octets(32, 7)));
    header(
        "keyprov",
        Some(KmsMessage::KeyProv {
            key_sets: vec![key_set(), second],
            new_keys: NewKeys::default(),
        }),
    )
}

pub fn certcache_response() -> KmsResponse {
    header(
        "certcache",
        Some(KmsMessage::CertCache {
            cache_num: Some(3),
            certificates: vec![certificate(), {
                let mut c = certificate();
                c.role = Some(Role::External);
                c.kms_uri = "kms.partner.example".into();
                c
            }],
        }),
    )
}

pub fn error_response() -> KmsResponse {
    let mut r = header("keyprov", None);
    r.error = Some(ErrorInfo {
        code: 403,
        message: "identity not authorised".into(),
    });
    r
}

pub fn keys(mode: Mode, ink: bool) -> TransportKeys {
    TransportKeys {
        trk_id: KeyId(0x1122_3344),
        trk: Secret::new((0u8..32).collect()),
        ink: ink.then(|| (KeyId(0x5566_7788), Secret::new((100u8..132).collect()))),
        mode,
    }
}

pub fn schema_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("docs/mcx/schema/kms-schema.xsd")
}

pub fn vector(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("proto-vectors/mcx")
        .join(name)
}

/// A Python 3 that imports `xmlsec`, `xmlschema` and `lxml` (Debian's packages live under
/// /usr/bin/python3 even when another python3 comes first on PATH), or `None` after
/// `mbms_lab::oracle::missing`.
pub fn python() -> Option<PathBuf> {
    let mut candidates = vec![PathBuf::from("/usr/bin/python3")];
    candidates.extend(mbms_lab::oracle::find_on_path("python3"));
    let found = candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import xmlsec, xmlschema, lxml"])
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if found.is_none() {
        mbms_lab::oracle::missing(
            "python3 with xmlsec and xmlschema",
            "apt-get install python3-xmlsec python3-xmlschema",
        );
    }
    found
}

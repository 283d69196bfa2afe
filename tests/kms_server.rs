//! The KMS server (docs/mcx.md §9): the real `mbms-keys kms serve` on loopback, clients
//! registered with `kms add-client`, requests with ES256 and RS256 access tokens.
//!
//! - every mode (standard, bound) × with/without InK: init, keyprov, keyprov/<uri>/<time> (the
//!   next key period) and certcache answered, opened by `transport::open` with the client's
//!   keys, and the key material valid against the KmsInit certificate;
//! - every refusal with its status, a KmsError and no key material, and the server still
//!   answering after them;
//! - the master secrets survive a restart; the database holds no secret in clear;
//! - oracles: `xmlschema` validates every served document, `python3-xmlsec` decrypts the
//!   standard-mode keys of a served response, wolfSSL (`tools/mcx-wolf`) validates the served
//!   SSK/PVT and RSK. Each skips when its peer is missing, and fails then under
//!   `MBMS_REQUIRE_ORACLES=1`.
#![cfg(feature = "kms-server")]

mod kms_support;

use std::process::Command;

use jsonwebtoken::Algorithm;
use mbms_keys::ibe::{Kpak, Rsk, SakkePublic, Ssk, eccsi, sakke, uid_format2};
use mbms_keys::kms::messages::{KeyContent, KmsCertificate, KmsKeySet, KmsMessage, KmsResponse};
use mbms_keys::kms::transport::{self, Mode, TransportKeys};
use mbms_keys::kms::{KeyId, KmsError};
use mbms_lab::TempDir;

use kms_support::oracles::{DECRYPT, VALIDATE, ok, run, text};
use kms_support::server::*;
use kms_support::{python, schema_path};

const MODES: [(Mode, bool); 4] = [
    (Mode::Standard, false),
    (Mode::Standard, true),
    (Mode::Bound, false),
    (Mode::Bound, true),
];

fn init_certificate(r: &KmsResponse) -> KmsCertificate {
    match &r.message {
        Some(KmsMessage::Init { certificate, .. }) => (**certificate).clone(),
        other => panic!("not a KmsInit: {other:?}"),
    }
}

fn plain(k: &KeyContent) -> Vec<u8> {
    match k {
        KeyContent::Plain(s) => s.expose().to_vec(),
        KeyContent::Encrypted(_) => panic!("still encrypted"),
    }
}

fn the_key_set(r: &KmsResponse) -> KmsKeySet {
    match &r.message {
        Some(KmsMessage::KeyProv { key_sets, .. }) if key_sets.len() == 1 => key_sets[0].clone(),
        other => panic!("not one KmsKeySet: {other:?}"),
    }
}

/// Checks a key set against the certificate: UID format 2 of (user, KMS URI, period), the
/// SSK/PVT (RFC 6507 §5.1.2) and the RSK (RFC 6508 §6.1.2).
fn validate(cert: &KmsCertificate, set: &KmsKeySet, period_no: u64) {
    let uid = uid_format2(
        ALICE,
        KMS_URI,
        cert.user_key_period,
        cert.user_key_offset,
        period_no,
    )
    .unwrap();
    assert_eq!(set.key_period_no, period_no);
    assert_eq!(set.user_id, uid.to_vec());
    assert_eq!(set.user_uri, ALICE);
    let kpak = Kpak::from_octets(&cert.pub_auth_key).unwrap();
    let z = SakkePublic::from_octets(&cert.pub_enc_key).unwrap();
    let ssk = Ssk::from_slice(&plain(&set.ssk)).unwrap();
    eccsi::validate(&kpak, &uid, &ssk, &plain(&set.pvt)).expect("SSK/PVT valid");
    let rsk = Rsk::from_slice(&plain(&set.rsk)).unwrap();
    sakke::validate_rsk(&z, &uid, &rsk).expect("RSK valid");
}

/// The current key period number (NTP time).
fn current_period() -> u64 {
    (now() + 2_208_988_800) / PERIOD
}

/// What one client gets from the four requests, opened.
struct Served {
    docs: Docs,
    cert: KmsCertificate,
    sets: Vec<KmsKeySet>,
}

fn serve_all(kms: &Kms, keys: &TransportKeys, tag: &str) -> Served {
    let es = token(Algorithm::ES256, &claims(ALICE));
    let rs = token(Algorithm::RS256, &claims(ALICE));
    let ink_id = keys.ink.as_ref().map(|(id, _)| *id);
    let (next, _) = next_period_path(ALICE);
    let paths = [
        format!("{BASE}/init"),
        format!("{BASE}/keyprov"),
        next,
        format!("{BASE}/certcache"),
    ];
    let mut docs = Vec::new();
    let mut opened = Vec::new();
    for (i, path) in paths.iter().enumerate() {
        let t = if i % 2 == 0 { &es } else { &rs };
        let (status, body) = kms.post(path, t, &request(ALICE, path, keys.trk_id, ink_id));
        assert_eq!(status, 200, "{tag} {path}: {body}");
        let r = transport::open(body.as_bytes(), keys)
            .unwrap_or_else(|e| panic!("{tag} {path}: {e}: {body}"));
        assert_eq!(r.user_uri, ALICE);
        assert_eq!(r.kms_uri, KMS_URI);
        assert!(r.error.is_none());
        docs.push((format!("{tag}-{i}"), body));
        opened.push(r);
    }
    let cert = init_certificate(&opened[0]);
    assert_eq!(cert.kms_uri, KMS_URI);
    assert_eq!(cert.user_id_format, "2");
    assert_eq!(
        (
            cert.user_key_period,
            cert.user_key_offset,
            cert.parameter_set
        ),
        (PERIOD, 0, Some(1))
    );
    match &opened[3].message {
        Some(KmsMessage::CertCache { certificates, .. }) => {
            assert_eq!(certificates, &vec![cert.clone()]);
        }
        other => panic!("{tag}: not a KmsCertCache: {other:?}"),
    }
    let sets = vec![the_key_set(&opened[1]), the_key_set(&opened[2])];
    Served { docs, cert, sets }
}

#[test]
fn every_mode_gets_init_keyprov_the_next_period_and_certcache_with_valid_keys() {
    let dir = TempDir::new("kms-server-modes");
    let kms = Kms::start(dir.path());
    let mut kpaks = Vec::new();
    for (i, (mode, ink)) in MODES.into_iter().enumerate() {
        let keys = kms.add_client(&format!("client-{i}"), &[ALICE], mode, ink);
        let tag = format!("{mode:?}-ink{ink}");
        let before = current_period();
        let s = serve_all(&kms, &keys, &tag);
        let after = current_period();
        assert!(s.sets[0].key_period_no == before || s.sets[0].key_period_no == after);
        validate(&s.cert, &s.sets[0], s.sets[0].key_period_no);
        validate(&s.cert, &s.sets[1], s.sets[0].key_period_no + 1);
        // Another client's keys do not open the response.
        let other = kms_support::keys(mode, ink);
        assert!(transport::open(s.docs[1].1.as_bytes(), &other).is_err());
        kpaks.push((s.cert.pub_auth_key, s.cert.pub_enc_key));
    }
    kpaks.dedup();
    assert_eq!(kpaks.len(), 1, "one KMS certificate for every client");
}

fn expect_refusal(kms: &Kms, what: &str, got: (u16, String), status: u16) {
    let (s, body) = got;
    assert_eq!(s, status, "{what}: {body}");
    assert!(
        !body.contains("KmsKeySet") && !body.contains("EncryptedKey"),
        "{what}: {body}"
    );
    if !body.is_empty() {
        let r = KmsResponse::parse(body.as_bytes())
            .unwrap_or_else(|e| panic!("{what}: not a KmsResponse ({e}): {body}"));
        let e = r.error.unwrap_or_else(|| panic!("{what}: no KmsError"));
        assert_eq!(e.code, i64::from(status), "{what}");
        assert!(r.message.is_none());
    }
    let _ = kms;
}

#[test]
fn bad_input_gets_its_status_no_key_material_and_the_server_keeps_serving() {
    let dir = TempDir::new("kms-server-bad");
    let mut kms = Kms::start(dir.path());
    let keys = kms.add_client("c1", &[ALICE], Mode::Standard, true);
    let ink_id = keys.ink.as_ref().map(|(id, _)| *id);
    let keyprov = format!("{BASE}/keyprov");
    let good_body = request(ALICE, &keyprov, keys.trk_id, ink_id);
    let good = token(Algorithm::ES256, &claims(ALICE));
    let mut c = claims(ALICE);
    c["exp"] = (now() - 3600).into();
    let expired = token(Algorithm::ES256, &c);
    let mut c = claims(ALICE);
    c["aud"] = serde_json::json!(["gms.example.org"]);
    let wrong_aud = token(Algorithm::RS256, &c);
    let forged = forged_token(&claims(ALICE));
    let mut tampered = good.clone();
    tampered.insert(tampered.len() - 2, 'A');
    tampered.remove(tampered.len() - 1);
    let bob = token(Algorithm::ES256, &claims("sip:bob@example.org"));

    let mut cases: Vec<(&str, (u16, String), u16)> = vec![
        (
            "no token",
            kms.call("POST", &keyprov, None, good_body.as_bytes()),
            401,
        ),
        (
            "basic auth",
            kms.raw(
                format!(
                    "POST {keyprov} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\
                     authorization: Basic YTpi\r\ncontent-length: {}\r\n\r\n{good_body}",
                    good_body.len()
                )
                .as_bytes(),
            ),
            401,
        ),
        (
            "expired token",
            kms.post(&keyprov, &expired, &good_body),
            401,
        ),
        ("forged token", kms.post(&keyprov, &forged, &good_body), 401),
        (
            "tampered token",
            kms.post(&keyprov, &tampered, &good_body),
            401,
        ),
        (
            "wrong audience",
            kms.post(&keyprov, &wrong_aud, &good_body),
            401,
        ),
        (
            "identity not in the token",
            kms.post(&keyprov, &bob, &good_body),
            403,
        ),
        (
            "path identity not the request's",
            kms.post(&next_period_path("sip:bob@example.org").0, &bob, &good_body),
            400,
        ),
        ("GET", kms.call("GET", &keyprov, Some(&good), b""), 405),
        (
            "PUT",
            kms.call("PUT", &format!("{BASE}/init"), Some(&good), b""),
            405,
        ),
        (
            "unknown path",
            kms.post(&format!("{BASE}/keys"), &good, &good_body),
            404,
        ),
        ("root", kms.post("/", &good, &good_body), 404),
        (
            "declared body over the limit",
            kms.raw(
                format!(
                    "POST {keyprov} HTTP/1.1\r\nhost: x\r\ncontent-length: {}\r\n\r\n",
                    MAX_BODY + 1
                )
                .as_bytes(),
            ),
            413,
        ),
        (
            "chunked body over the limit",
            kms.raw(&{
                let mut b = format!(
                    "POST {keyprov} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {good}\r\n\
                     transfer-encoding: chunked\r\n\r\n"
                )
                .into_bytes();
                for _ in 0..(MAX_BODY / 4096 + 2) {
                    b.extend_from_slice(b"1000\r\n");
                    b.extend_from_slice(&[b'a'; 4096]);
                    b.extend_from_slice(b"\r\n");
                }
                b.extend_from_slice(b"0\r\n\r\n");
                b
            }),
            413,
        ),
        (
            "malformed XML",
            kms.post(&keyprov, &good, "<KmsRequest"),
            400,
        ),
        (
            "not XML",
            kms.post(&keyprov, &good, "\u{0}\u{1}binary"),
            400,
        ),
        (
            "schema-invalid request",
            kms.post(
                &keyprov,
                &good,
                &good_body.replace("<KmsUri>kms.example.org</KmsUri>", ""),
            ),
            400,
        ),
        (
            "another document",
            kms.post(
                &keyprov,
                &good,
                &good_body.replace("KmsRequest", "KmsResponse"),
            ),
            400,
        ),
        (
            "a DTD",
            kms.post(
                &keyprov,
                &good,
                &format!(
                    "<!DOCTYPE x [<!ENTITY a \"aaaa\">]>{}",
                    good_body.trim_start_matches("<?xml version=\"1.0\" encoding=\"UTF-8\"?>")
                ),
            ),
            400,
        ),
        (
            "a time too far ahead",
            kms.post(
                &format!(
                    "{BASE}/keyprov/sip%3Aalice%40example.org/{}",
                    mbms_keys::kms::messages::xml_datetime(now() + 3 * PERIOD)
                ),
                &good,
                &good_body,
            ),
            400,
        ),
        (
            "a time in the past",
            kms.post(
                &format!("{BASE}/keyprov/sip%3Aalice%40example.org/2001-01-01T00:00:00Z"),
                &good,
                &good_body,
            ),
            400,
        ),
        (
            "another KMS",
            kms.post(
                &keyprov,
                &good,
                &good_body.replace(">kms.example.org<", ">kms.other.org<"),
            ),
            400,
        ),
    ];
    // Unknown TrK-ID: a KmsError, unsigned (the KMS cannot sign for an unknown client).
    let unknown = KeyId(keys.trk_id.0 ^ 0x8000_0001);
    let r = kms.post(&keyprov, &good, &request(ALICE, &keyprov, unknown, None));
    match transport::open(r.1.as_bytes(), &keys) {
        Err(KmsError::Refused { code: 403, .. }) => {}
        other => panic!("unknown TrK-ID: {other:?}: {}", r.1),
    }
    cases.push(("unknown TrK-ID", r, 403));
    // A client asking for an identity it is not registered for: signed KmsError.
    let carol = "sip:carol@example.org";
    let r = kms.post(
        &keyprov,
        &token(Algorithm::ES256, &claims(carol)),
        &request(carol, &keyprov, keys.trk_id, ink_id),
    );
    match transport::open(r.1.as_bytes(), &keys) {
        Err(KmsError::Refused { code: 403, .. }) => {}
        other => panic!("unregistered identity: {other:?}"),
    }
    assert!(r.1.contains("SignedKmsResponse"), "signed: {}", r.1);
    cases.push(("identity not registered for the client", r, 403));
    // A wrong InK-ID.
    let r = kms.post(
        &keyprov,
        &good,
        &request(ALICE, &keyprov, keys.trk_id, Some(KeyId(1))),
    );
    cases.push(("wrong InK-ID", r, 403));
    // A slow head (slowloris) is cut; a request head over 16 KiB is refused.
    let (s, _) = kms.raw(
        format!(
            "POST {keyprov} HTTP/1.1\r\nhost: x\r\nx-big: {}\r\n\r\n",
            "a".repeat(20_000)
        )
        .as_bytes(),
    );
    assert_eq!(s, 431, "oversized head");

    let n = cases.len();
    for (what, got, status) in cases {
        expect_refusal(&kms, what, got, status);
    }
    assert!(n >= 25, "{n} cases");
    assert!(kms.running(), "the server stopped");
    // And it still answers.
    let (s, body) = kms.post(&keyprov, &good, &good_body);
    assert_eq!(s, 200, "{body}");
    transport::open(body.as_bytes(), &keys).expect("still serving");
    // The refusals were counted and logged, throttled, without the tokens.
    let log = kms.log();
    assert!(log.contains("KMS requests refused"), "{log}");
    assert!(
        !log.contains(&good) && !log.contains(&forged),
        "a token was logged"
    );
}

fn scan_for(file_bytes: &[u8], secret: &[u8], what: &str) {
    assert!(
        !file_bytes.windows(secret.len()).any(|w| w == secret),
        "{what} in clear in the store"
    );
    let h = hex::encode(secret);
    assert!(
        !file_bytes
            .windows(h.len())
            .any(|w| w.eq_ignore_ascii_case(h.as_bytes())),
        "{what} in hex in the store"
    );
}

#[test]
fn master_secrets_survive_a_restart_and_the_store_holds_no_secret_in_clear() {
    let dir = TempDir::new("kms-server-restart");
    let mut kms = Kms::start(dir.path());
    let k1 = kms.add_client("std", &[ALICE], Mode::Standard, true);
    let k2 = kms.add_client("bound", &[ALICE], Mode::Bound, false);
    let first = serve_all(&kms, &k1, "before");
    kms.restart();
    let second = serve_all(&kms, &k2, "after");
    assert_eq!(first.cert.pub_auth_key, second.cert.pub_auth_key, "KPAK");
    assert_eq!(first.cert.pub_enc_key, second.cert.pub_enc_key, "Z");
    validate(&second.cert, &second.sets[0], second.sets[0].key_period_no);
    kms.stop();

    // The masters as the store holds them (opened with the KEK).
    let data = dir.path().join("data");
    let (_store, masters) =
        mbms_keys::kms::store::KmsStore::open(&data, &data.join("kek")).unwrap();
    assert_eq!(
        masters.ksak.kpak().unwrap().to_octets().to_vec(),
        first.cert.pub_auth_key
    );
    let mut bytes = Vec::new();
    for f in std::fs::read_dir(&data).unwrap() {
        let p = f.unwrap().path();
        if p.file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("kms.sqlite")
        {
            bytes.extend(std::fs::read(&p).unwrap());
        }
    }
    assert!(bytes.len() > 4096);
    let mode = std::fs::metadata(data.join("kms.sqlite"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o077, 0, "kms.sqlite mode {mode:o}");
    scan_for(&bytes, masters.ksak.as_bytes(), "KSAK");
    scan_for(&bytes, masters.z.as_bytes(), "z");
    scan_for(&bytes, k1.trk.expose(), "TrK");
    scan_for(&bytes, k1.ink.as_ref().unwrap().1.expose(), "InK");
    scan_for(&bytes, k2.trk.expose(), "TrK");
    // The scan can fail: the public KPAK is derived, not stored, but the client-id is there.
    assert!(bytes.windows(5).any(|w| w == b"bound"));

    // Another KEK does not open the store.
    let other = dir.path().join("other-kek");
    std::fs::write(&other, format!("{}\n", "ab".repeat(32))).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&other, std::fs::Permissions::from_mode(0o600)).unwrap();
    assert!(matches!(
        mbms_keys::kms::store::KmsStore::open(&data, &other),
        Err(mbms_keys::kms::store::KmsStoreError::WrongKek { .. })
    ));
    // A missing KEK is refused for an existing store, not made anew.
    assert!(mbms_keys::kms::store::KmsStore::open(&data, &dir.path().join("none")).is_err());
    assert!(!dir.path().join("none").exists());
}

/// Named documents.
type Docs = Vec<(String, String)>;

/// Every document one server answers: the four requests for each mode, and refusals.
fn served_documents(kms: &Kms) -> (Docs, Vec<(TransportKeys, Served)>) {
    let mut docs = Vec::new();
    let mut clients = Vec::new();
    for (i, (mode, ink)) in MODES.into_iter().enumerate() {
        let keys = kms.add_client(&format!("o{i}"), &[ALICE], mode, ink);
        let s = serve_all(kms, &keys, &format!("{mode:?}-{ink}"));
        docs.extend(s.docs.iter().cloned());
        clients.push((keys, s));
    }
    let keyprov = format!("{BASE}/keyprov");
    let keys = &clients[0].0;
    for (name, got) in [
        ("e401", kms.call("POST", &keyprov, None, b"")),
        (
            "e403",
            kms.post(
                &keyprov,
                &token(Algorithm::ES256, &claims(ALICE)),
                &request(ALICE, &keyprov, KeyId(keys.trk_id.0 ^ 1), None),
            ),
        ),
        (
            "e400-signed",
            kms.post(
                &format!("{BASE}/keyprov/sip%3Aalice%40example.org/2001-01-01T00:00:00Z"),
                &token(Algorithm::ES256, &claims(ALICE)),
                &request(ALICE, &keyprov, keys.trk_id, None),
            ),
        ),
    ] {
        assert_ne!(got.0, 200);
        docs.push((name.to_owned(), got.1));
    }
    (docs, clients)
}

#[test]
fn served_responses_pass_xmlschema_and_python_xmlsec_decrypts_standard_keys() {
    let Some(py) = python() else { return };
    let dir = TempDir::new("kms-server-oracles");
    let kms = Kms::start(dir.path());
    let (docs, clients) = served_documents(&kms);
    let files: Vec<_> = docs
        .iter()
        .map(|(name, body)| {
            let p = dir.path().join(format!("{name}.xml"));
            std::fs::write(&p, body).unwrap();
            p
        })
        .collect();
    let out = run(Command::new(&py)
        .arg("-c")
        .arg(VALIDATE)
        .arg(schema_path())
        .args(&files));
    assert!(ok(&out), "xmlschema refused: {}", text(&out));
    assert!(
        text(&out).contains(&format!("valid {} invalid 0", files.len())),
        "{}",
        text(&out)
    );
    assert_eq!(files.len(), 19);
    // python3-xmlsec decrypts the served standard-mode keys to exactly what our client opens.
    let mut decrypted = 0;
    for (keys, served) in clients.iter().filter(|(k, _)| k.mode == Mode::Standard) {
        let doc = &served.docs[1].1;
        let p = dir.path().join(format!("xmlsec-{}.xml", keys.trk_id));
        std::fs::write(&p, doc).unwrap();
        let out = run(Command::new(&py)
            .arg("-c")
            .arg(DECRYPT)
            .arg(&p)
            .arg(hex::encode(keys.trk.expose())));
        assert!(ok(&out), "xmlsec refused: {}", text(&out));
        let set = &served.sets[0];
        let expected = vec![
            format!("UserDecryptKey {}", hex::encode(plain(&set.rsk))),
            format!("UserSigningKeySSK {}", hex::encode(plain(&set.ssk))),
            format!("UserPubTokenPVT {}", hex::encode(plain(&set.pvt))),
        ];
        let got: Vec<String> = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect();
        assert_eq!(got, expected);
        decrypted += got.len();
    }
    assert_eq!(decrypted, 6);
}

#[test]
fn wolfssl_validates_the_served_ssk_pvt_and_rsk() {
    let Some(bin) = kms_support::wolf::harness() else {
        return;
    };
    let dir = TempDir::new("kms-server-wolf");
    let kms = Kms::start(dir.path());
    let mut checked = 0;
    for (i, (mode, ink)) in [(Mode::Standard, true), (Mode::Bound, false)]
        .into_iter()
        .enumerate()
    {
        let keys = kms.add_client(&format!("w{i}"), &[ALICE], mode, ink);
        let s = serve_all(&kms, &keys, &format!("wolf-{mode:?}"));
        let kpak = hex::encode(&s.cert.pub_auth_key);
        let z = hex::encode(&s.cert.pub_enc_key);
        for set in &s.sets {
            let uid = hex::encode(&set.user_id);
            let (ssk, pvt, rsk) = (
                hex::encode(plain(&set.ssk)),
                hex::encode(plain(&set.pvt)),
                hex::encode(plain(&set.rsk)),
            );
            let (code, _) =
                kms_support::wolf::wolf(&bin, &["eccsi-validate", &kpak, &uid, &ssk, &pvt]);
            assert_eq!(code, 0, "wolfSSL refused the served SSK/PVT");
            let (code, _) = kms_support::wolf::wolf(&bin, &["sakke-validate", &z, &uid, &rsk]);
            assert_eq!(code, 0, "wolfSSL refused the served RSK");
            // The harness can say no: the key set of another period's UID.
            let other =
                hex::encode(uid_format2(ALICE, KMS_URI, PERIOD, 0, set.key_period_no + 7).unwrap());
            let (code, _) = kms_support::wolf::wolf(&bin, &["sakke-validate", &z, &other, &rsk]);
            assert_eq!(code, 1);
            checked += 1;
        }
    }
    assert_eq!(checked, 4);
}

#[test]
fn the_readme_request_document_is_served() {
    let readme =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap();
    let section = &readme[readme.find("## Mission-critical KMS").expect("KMS section")..];
    let start = section.find("```xml\n").expect("xml block") + 7;
    let xml = &section[start..start + section[start..].find("```").unwrap()];
    assert!(xml.contains("\n  <UserUri>"), "indented as written: {xml}");
    let dir = TempDir::new("kms-server-readme");
    let kms = Kms::start(dir.path());
    let keys = kms.add_client("ue-alice", &[ALICE], Mode::Bound, true);
    let (ink_id, _) = keys.ink.clone().unwrap();
    let body = xml
        .replace("1a2b3c4d", &keys.trk_id.to_string())
        .replace("5e6f7a8b", &ink_id.to_string());
    let t = token(Algorithm::ES256, &claims(ALICE));
    let (status, answer) = kms.post(&format!("{BASE}/keyprov"), &t, &body);
    assert_eq!(status, 200, "{answer}");
    let r = transport::open(answer.as_bytes(), &keys).unwrap();
    let set = the_key_set(&r);
    let (_, cert) = kms.post(&format!("{BASE}/init"), &t, &body);
    let cert = init_certificate(&transport::open(cert.as_bytes(), &keys).unwrap());
    validate(&cert, &set, set.key_period_no);
}

#[test]
fn the_store_refuses_duplicates_and_prints_no_secret() {
    use mbms_keys::kms::Secret;
    use mbms_keys::kms::store::{Client, KmsStore, KmsStoreError};
    let dir = TempDir::new("kms-store-debug");
    let data = dir.path().join("data");
    let (store, masters) = KmsStore::open(&data, &dir.path().join("kek")).unwrap();
    let trk: Vec<u8> = (0xa0..0xc0).collect();
    let ink: Vec<u8> = (0x40..0x60).collect();
    let client = Client {
        client_id: "c".into(),
        users: vec![ALICE.into()],
        keys: TransportKeys {
            trk_id: KeyId(7),
            trk: Secret::new(trk.clone()),
            ink: Some((KeyId(8), Secret::new(ink.clone()))),
            mode: Mode::Bound,
        },
    };
    store.add_client(&client).unwrap();
    let got = store.client_by_trk_id(KeyId(7)).unwrap().unwrap();
    assert_eq!(got.keys.trk, client.keys.trk);
    assert_eq!(got.keys.ink.as_ref().unwrap().1, Secret::new(ink.clone()));
    assert_eq!(got.users, vec![ALICE.to_owned()]);
    assert!(store.client_by_trk_id(KeyId(8)).unwrap().is_none());
    // The same client-id, a TrK-ID already taken, a TrK-ID that is another client's InK-ID.
    for (id, trk_id) in [("c", 9), ("d", 7), ("e", 8)] {
        let mut c = client.clone();
        c.client_id = id.into();
        c.keys.trk_id = KeyId(trk_id);
        c.keys.ink = None;
        assert!(
            matches!(store.add_client(&c), Err(KmsStoreError::Duplicate(_))),
            "{id} {trk_id}"
        );
    }
    let printed = format!("{got:?} {masters:?} {store:?}");
    for (what, secret) in [
        ("TrK", trk.as_slice()),
        ("InK", ink.as_slice()),
        ("KSAK", masters.ksak.as_bytes().as_slice()),
        ("z", masters.z.as_bytes().as_slice()),
    ] {
        assert!(
            !printed.contains(&hex::encode(&secret[..4])),
            "{what}: {printed}"
        );
        assert!(
            !printed.contains(format!("{:?}", &secret[..4]).trim_end_matches(']')),
            "{what}"
        );
    }
    assert!(printed.contains("REDACTED"));
}

#[test]
fn a_slow_head_is_cut_and_a_slow_body_gets_408() {
    use std::io::{Read, Write};
    use std::time::{Duration, Instant};
    let dir = TempDir::new("kms-server-slow");
    let mut kms = Kms::start(dir.path());
    let addr = kms.addr;
    let keyprov = format!("{BASE}/keyprov");
    // The configuration's request_timeout is 5 s (kms_support::server).
    let slow = |bytes: String| {
        std::thread::spawn(move || {
            let started = Instant::now();
            let mut s = std::net::TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            s.write_all(bytes.as_bytes()).unwrap();
            let mut buf = Vec::new();
            let _ = s.read_to_end(&mut buf);
            (
                started.elapsed(),
                String::from_utf8_lossy(&buf).into_owned(),
            )
        })
    };
    let head = slow(format!("POST {keyprov} HTTP/1.1\r\nhost: x\r\n"));
    let body = slow(format!(
        "POST {keyprov} HTTP/1.1\r\nhost: x\r\ncontent-length: 100\r\n\r\n<KmsRequest"
    ));
    let (t, text) = head.join().unwrap();
    assert!(!text.contains(" 200 "), "{text}");
    assert!(
        t >= Duration::from_secs(4) && t < Duration::from_secs(20),
        "head cut after {t:?}"
    );
    let (t, text) = body.join().unwrap();
    assert!(text.starts_with("HTTP/1.1 408 "), "{text}");
    assert!(text.contains("<ErrorCode>408</ErrorCode>"), "{text}");
    assert!(
        t >= Duration::from_secs(4) && t < Duration::from_secs(20),
        "body cut after {t:?}"
    );
    assert!(kms.running());
    let keys = kms.add_client("after-slow", &[ALICE], Mode::Standard, false);
    let (s, answer) = kms.post(
        &keyprov,
        &token(Algorithm::RS256, &claims(ALICE)),
        &request(ALICE, &keyprov, keys.trk_id, None),
    );
    assert_eq!(s, 200, "{answer}");
}

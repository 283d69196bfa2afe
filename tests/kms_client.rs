//! The KMS client (docs/mcx.md §10) against a test KMS on loopback (`kms_client_support`):
//! in standard and bound mode, with and without an InK, the key material is validated and
//! stored with exactly the values the KMS issued; every refusal is a typed error and stores
//! nothing. The reference example responses parse.

mod kms_client_support;

use std::time::Duration;

use mbms_keys::crypto::StateKey;
use mbms_keys::ibe::IbeError;
use mbms_keys::kms::client::{
    self, ClientConfig, ClientStore, KmsClient, KmsClientError, Request, Verified, check,
};
use mbms_keys::kms::messages::{KmsMessage, KmsResponse};
use mbms_keys::kms::transport::{Mode, TransportKeys};
use mbms_keys::kms::{KeyId, KmsError};
use mbms_lab::TempDir;

use kms_client_support::*;

fn client_with(
    kms: &TestKms,
    keys: TransportKeys,
    dir: &TempDir,
    token: &str,
    config: ClientConfig,
) -> KmsClient {
    let store = ClientStore::open(dir.path(), StateKey::from_bytes([7; 32])).unwrap();
    KmsClient::new(&kms.url(), token, USER, keys, store, config).unwrap()
}

fn client(kms: &TestKms, keys: TransportKeys, dir: &TempDir) -> KmsClient {
    client_with(kms, keys, dir, TOKEN, ClientConfig::default())
}

/// A store that already holds the test KMS's certificate (as after an init).
fn initialised(kms: &TestKms, keys: TransportKeys, dir: &TempDir) -> KmsClient {
    let c = client(kms, keys, dir);
    c.store().put_home_certificate(&certificate()).unwrap();
    c
}

const MODES: [(Mode, bool); 4] = [
    (Mode::Standard, false),
    (Mode::Standard, true),
    (Mode::Bound, false),
    (Mode::Bound, true),
];

#[tokio::test]
async fn keyprov_validates_and_stores_exactly_the_issued_keys_in_every_mode() {
    let period = current_period();
    let uid = uid(USER, period);
    let issued = issue(&uid);
    for (mode, ink) in MODES {
        let keys = transport_keys(mode, ink);
        let kms = start(keys.clone(), Fault::None);
        let dir = TempDir::new("kmsclient");
        let c = client(&kms, keys, &dir);
        // No certificate yet: the client runs init first, then keyprov.
        let out = c.run(&Request::KeyProv).await;
        let Ok(Verified::KeyProv(m)) = out.result else {
            panic!("{mode:?} {ink}: {:?}", out.result)
        };
        let [m] = m.as_slice() else {
            panic!("one key set")
        };
        assert_eq!(m.user_uri, USER);
        assert_eq!(m.kms_uri, KMS_URI);
        assert_eq!(
            (m.user_key_period, m.user_key_offset, m.key_period_no),
            (PERIOD, OFFSET, period)
        );
        assert_eq!(m.uid, uid);
        assert_eq!(m.ssk.as_bytes().to_vec(), issued.ssk);
        assert_eq!(m.pvt.to_vec(), issued.pvt);
        assert_eq!(m.rsk.as_bytes().to_vec(), issued.rsk);
        assert_eq!(m.kpak.to_vec(), kpak(), "the RFC 6507 KPAK");
        assert_eq!(m.z.to_vec(), z(), "the RFC 6508 Z");
        // Stored, sealed, and handed out for (user, period).
        assert_eq!(
            c.store().key_material(USER, period).unwrap().as_ref(),
            Some(m)
        );
        assert_eq!(
            c.store().key_material_at(USER, now()).unwrap().as_ref(),
            Some(m)
        );
        assert_eq!(
            c.store().home_certificate().unwrap().unwrap().kms_uri,
            KMS_URI
        );
        for name in c.store().entries().unwrap() {
            let blob = std::fs::read(dir.path().join(name)).unwrap();
            assert!(!blob.windows(32).any(|w| w == issued.ssk.as_slice()));
        }
        // What went on the wire: init then keyprov, the token, the TrK-ID and InK-ID.
        let seen = kms.seen();
        assert_eq!(
            seen.iter().map(|s| s.path.as_str()).collect::<Vec<_>>(),
            [
                "/keymanagement/identity/v1/init",
                "/keymanagement/identity/v1/keyprov"
            ]
        );
        for s in &seen {
            assert_eq!(
                s.authorization.as_deref(),
                Some(&*format!("Bearer {TOKEN}"))
            );
            assert!(s.body.contains(">11223344</ext:TrkId>"), "{}", s.body);
            assert_eq!(s.body.contains(">55667788</ext:InkId>"), ink);
            assert!(s.body.contains(&format!("<UserUri>{USER}</UserUri>")));
        }
        // The raw response is kept for --save-response.
        let raw = String::from_utf8(out.raw.unwrap()).unwrap();
        assert!(raw.contains("<SignedKmsResponse"));
    }
}

#[tokio::test]
async fn a_dated_keyprov_asks_by_user_and_time_and_gets_the_next_period() {
    let keys = transport_keys(Mode::Bound, true);
    let kms = start(keys.clone(), Fault::None);
    let dir = TempDir::new("kmsclient");
    let c = initialised(&kms, keys, &dir);
    let at = now() + PERIOD;
    let out = c.run(&Request::KeyProvAt { unix_secs: at }).await;
    let Ok(Verified::KeyProv(m)) = out.result else {
        panic!("{:?}", out.result)
    };
    assert_eq!(m[0].key_period_no, current_period() + 1);
    let path = &kms.seen()[0].path;
    let time = mbms_keys::kms::messages::xml_datetime(at).replace(':', "%3A");
    assert_eq!(
        path,
        &format!("/keymanagement/identity/v1/keyprov/sip%3Aalice%40example.org/{time}")
    );
    assert!(
        c.store()
            .key_material(USER, current_period() + 1)
            .unwrap()
            .is_some()
    );
}

#[tokio::test]
async fn init_and_certcache_store_checked_certificates() {
    let keys = transport_keys(Mode::Standard, false);
    let kms = start(keys.clone(), Fault::None);
    let dir = TempDir::new("kmsclient");
    let c = client(&kms, keys, &dir);
    let Ok(Verified::Init(cert)) = c.run(&Request::Init).await.result else {
        panic!()
    };
    assert_eq!(cert.pub_auth_key, kpak());
    assert_eq!(c.store().entries().unwrap(), ["home.cert"]);
    let Ok(Verified::CertCache(certs)) = c.run(&Request::CertCache).await.result else {
        panic!()
    };
    assert_eq!(certs.len(), 2);
    let partner = c
        .store()
        .certificate("kms.partner.example")
        .unwrap()
        .unwrap();
    assert_eq!((partner.pub_enc_key, partner.pub_auth_key), (z(), kpak()));
    assert_eq!(c.store().entries().unwrap().len(), 3);
}

/// A client configured with its KMS URI accepts the KmsInit certificate of that KMS only: a
/// certificate naming another KMS is `WrongKms` and nothing is stored (docs/mcx.md §10).
#[tokio::test]
async fn an_init_certificate_of_another_kms_than_the_configured_one_is_refused() {
    let keys = transport_keys(Mode::Standard, false);
    let kms = start(keys.clone(), Fault::None);
    for (configured, accepted) in [(KMS_URI, true), ("kms.other.example", false)] {
        let dir = TempDir::new("kmsclient");
        let config = ClientConfig {
            kms_uri: Some(configured.into()),
            ..ClientConfig::default()
        };
        let c = client_with(&kms, keys.clone(), &dir, TOKEN, config);
        let result = c.run(&Request::Init).await.result;
        if accepted {
            assert!(matches!(result, Ok(Verified::Init(_))), "{configured}");
            assert_eq!(c.store().entries().unwrap(), ["home.cert"]);
        } else {
            assert!(
                matches!(result, Err(KmsClientError::WrongKms)),
                "{configured}"
            );
            assert!(c.store().entries().unwrap().is_empty());
        }
    }
}

/// Runs keyprov against a KMS with `fault`, from a store holding only the certificate; checks
/// that nothing else was stored and returns the error.
async fn refused(mode: Mode, ink: bool, fault: Fault) -> KmsClientError {
    let keys = transport_keys(mode, ink);
    let kms = start(keys.clone(), fault);
    let dir = TempDir::new("kmsclient");
    let c = initialised(&kms, keys, &dir);
    let out = c.run(&Request::KeyProv).await;
    assert_eq!(
        c.store().entries().unwrap(),
        ["home.cert"],
        "{fault:?}: nothing stored"
    );
    assert!(
        c.store()
            .key_material(USER, current_period())
            .unwrap()
            .is_none()
    );
    out.result.expect_err("refused")
}

#[tokio::test]
async fn a_tampered_signature_is_refused() {
    for (mode, ink) in MODES {
        assert!(matches!(
            refused(mode, ink, Fault::TamperSignature).await,
            KmsClientError::Response(KmsError::BadSignature)
        ));
    }
}

#[tokio::test]
async fn a_swapped_encrypted_key_is_refused() {
    for mode in [Mode::Standard, Mode::Bound] {
        // Swapped in transit: the signature no longer covers the document.
        assert!(matches!(
            refused(mode, true, Fault::SwapEncryptedKeyInTransit).await,
            KmsClientError::Response(KmsError::DigestMismatch)
        ));
    }
    // Swapped under a good signature: the SSK does not validate with its PVT.
    let e = refused(Mode::Bound, true, Fault::SwapSskSigned).await;
    assert!(
        matches!(
            e,
            KmsClientError::InvalidSskPvt {
                source: IbeError::InvalidKeyPair,
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn bound_mode_refuses_another_trk_id_or_ink_id() {
    for ink in [false, true] {
        let e = refused(Mode::Bound, ink, Fault::OtherTrkId).await;
        assert!(
            matches!(
                e,
                KmsClientError::Response(KmsError::BoundTrkIdMismatch {
                    element: "UserDecryptKey"
                })
            ),
            "{e:?}"
        );
    }
    let e = refused(Mode::Bound, true, Fault::OtherInkId).await;
    assert!(
        matches!(
            e,
            KmsClientError::Response(KmsError::BoundInkIdMismatch { .. })
        ),
        "{e:?}"
    );
    // Standard mode names the TrK-ID in clear: refused before decryption.
    let e = refused(Mode::Standard, false, Fault::OtherTrkId).await;
    assert!(
        matches!(
            e,
            KmsClientError::Response(
                KmsError::UnknownSignatureKey(_) | KmsError::UnknownTransportKey { .. }
            )
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_invalid_rsk_is_refused() {
    for mode in [Mode::Standard, Mode::Bound] {
        let e = refused(mode, false, Fault::InvalidRsk).await;
        assert!(
            matches!(
                e,
                KmsClientError::InvalidRsk {
                    source: IbeError::InvalidRsk,
                    ..
                }
            ),
            "{e:?}"
        );
    }
}

#[tokio::test]
async fn an_invalid_pvt_is_refused() {
    for mode in [Mode::Standard, Mode::Bound] {
        let e = refused(mode, true, Fault::InvalidPvt).await;
        assert!(
            matches!(
                e,
                KmsClientError::InvalidSskPvt {
                    source: IbeError::InvalidKeyPair,
                    ..
                }
            ),
            "{e:?}"
        );
    }
}

#[tokio::test]
async fn schema_invalid_xml_is_refused() {
    let e = refused(Mode::Standard, false, Fault::SchemaInvalid).await;
    assert!(
        matches!(e, KmsClientError::Response(KmsError::Structure(_))),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_oversized_response_is_refused() {
    let e = refused(Mode::Standard, false, Fault::Oversized).await;
    assert!(
        matches!(e, KmsClientError::ResponseTooLarge { max } if max == 256 * 1024),
        "{e:?}"
    );
}

#[tokio::test]
async fn an_oversized_chunked_response_is_refused_while_reading() {
    use std::io::{Read, Write};
    // No Content-Length: the bound applies to what is read, 8 KiB chunks past 256 KiB.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 4096];
        let _ = s.read(&mut buf);
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
        let chunk = format!("2000\r\n{}\r\n", " ".repeat(0x2000));
        for _ in 0..64 {
            if s.write_all(chunk.as_bytes()).is_err() {
                return;
            }
        }
        let _ = s.write_all(b"0\r\n\r\n");
    });
    let dir = TempDir::new("kmsclient");
    let store = ClientStore::open(dir.path(), StateKey::from_bytes([7; 32])).unwrap();
    let c = KmsClient::new(
        &format!("http://{addr}"),
        TOKEN,
        USER,
        transport_keys(Mode::Standard, false),
        store,
        ClientConfig::default(),
    )
    .unwrap();
    let out = c.run(&Request::Init).await;
    assert!(
        matches!(out.result, Err(KmsClientError::ResponseTooLarge { .. })),
        "{:?}",
        out.result
    );
    assert!(out.raw.is_none());
    assert!(c.store().entries().unwrap().is_empty());
}

#[tokio::test]
async fn http_401_and_403_are_typed_errors() {
    assert!(matches!(
        refused(Mode::Standard, false, Fault::Status(401)).await,
        KmsClientError::Unauthorized
    ));
    assert!(matches!(
        refused(Mode::Standard, false, Fault::Status(403)).await,
        KmsClientError::Forbidden
    ));
    assert!(matches!(
        refused(Mode::Standard, false, Fault::Status(500)).await,
        KmsClientError::Status(500)
    ));
    // A token the KMS does not accept: its own 401.
    let keys = transport_keys(Mode::Standard, false);
    let kms = start(keys.clone(), Fault::None);
    let dir = TempDir::new("kmsclient");
    let c = client_with(&kms, keys, &dir, "other.token.x", ClientConfig::default());
    let out = c.run(&Request::KeyProv).await;
    assert!(matches!(out.result, Err(KmsClientError::Unauthorized)));
    assert!(c.store().entries().unwrap().is_empty(), "not even the init");
}

#[tokio::test]
async fn a_key_period_outside_the_window_and_a_kms_error_are_refused() {
    let e = refused(Mode::Bound, false, Fault::FarPeriod).await;
    let p = current_period();
    assert!(
        matches!(e, KmsClientError::UnexpectedKeyPeriod { found, expected } if found == p + 2 && expected == p),
        "{e:?}"
    );
    let e = refused(Mode::Bound, false, Fault::KmsError).await;
    assert!(
        matches!(
            e,
            KmsClientError::Response(KmsError::Refused { code: 404, .. })
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn a_key_set_for_another_uid_or_a_response_for_another_user_is_refused() {
    let e = refused(Mode::Standard, true, Fault::WrongUid).await;
    assert!(
        matches!(e, KmsClientError::UidMismatch { period_no } if period_no == current_period()),
        "{e:?}"
    );
    let e = refused(Mode::Bound, true, Fault::OtherUser).await;
    assert!(matches!(e, KmsClientError::WrongUser), "{e:?}");
}

#[tokio::test]
async fn key_material_without_a_certificate_is_refused() {
    let keys = transport_keys(Mode::Standard, false);
    let kms = start(keys.clone(), Fault::None);
    let dir = TempDir::new("kmsclient");
    let c = client(&kms, keys, &dir);
    // `exchange` does not fetch the certificate first (`run` does).
    let out = c.exchange(&Request::KeyProv).await;
    assert!(matches!(out.result, Err(KmsClientError::NoCertificate)));
    assert!(c.store().entries().unwrap().is_empty());
}

#[tokio::test]
async fn a_refused_init_stores_nothing_and_stops_the_keyprov() {
    let keys = transport_keys(Mode::Bound, true);
    let kms = start(keys.clone(), Fault::TamperSignature);
    let dir = TempDir::new("kmsclient");
    let c = client(&kms, keys, &dir);
    let out = c.run(&Request::KeyProv).await;
    assert!(matches!(
        out.result,
        Err(KmsClientError::Response(KmsError::BadSignature))
    ));
    assert!(c.store().entries().unwrap().is_empty());
    assert_eq!(kms.seen().len(), 1, "keyprov not sent after a refused init");
}

#[tokio::test]
async fn a_kms_that_does_not_answer_times_out() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let dir = TempDir::new("kmsclient");
    let store = ClientStore::open(dir.path(), StateKey::from_bytes([7; 32])).unwrap();
    let config = ClientConfig {
        timeout: Duration::from_millis(300),
        ..ClientConfig::default()
    };
    let c = KmsClient::new(
        &format!("http://{addr}"),
        TOKEN,
        USER,
        transport_keys(Mode::Standard, false),
        store,
        config,
    )
    .unwrap();
    let out = c.run(&Request::Init).await;
    assert!(matches!(out.result, Err(KmsClientError::Timeout(_))));
    drop(listener);
}

#[test]
fn the_reference_example_responses_parse_in_the_client() {
    let read = |n: &str| {
        std::fs::read(format!(
            "{}/proto-vectors/mcx/responses/{n}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let init = KmsResponse::parse(&read("streamwide_test_init_response.xml")).unwrap();
    let prov = KmsResponse::parse(&read("streamwide_test_key_prov_response.xml")).unwrap();
    let Some(KmsMessage::Init { certificate, .. }) = init.message else {
        panic!()
    };
    let Some(KmsMessage::KeyProv { key_sets, .. }) = prov.message else {
        panic!()
    };
    // The certificate is usable: KPAK on P-256, Z on the SAKKE curve of order q.
    check::certificate(&certificate).unwrap();
    // The key set is for the same user, KMS and UID parameters...
    let set = &key_sets[0];
    assert_eq!(
        mbms_keys::ibe::uid_format2("alice@org.com", "localhost:8080", 2_592_000, 0, 625)
            .unwrap()
            .to_vec(),
        set.user_id,
        "the UID the client computes is the key set's UserID"
    );
    // ...but comes from another KMS instance (docs/mcx.md §6): its SSK/PVT do not validate
    // against this KPAK.
    let e = check::validate_key_set(&certificate, "alice@org.com", set).unwrap_err();
    assert!(
        matches!(
            e,
            KmsClientError::InvalidSskPvt {
                period_no: 625,
                source: IbeError::InvalidKeyPair
            }
        ),
        "{e:?}"
    );
    // Its KeyPeriodNo counts from the Unix epoch (period 625 is May 2021 there), not from the
    // NTP epoch the client uses: the window check refuses it at the response's own time.
    let at = 1_621_257_916; // 2021-05-17T13:25:16Z, the response's Time
    assert_eq!(client::key_period_no(at, 2_592_000, 0), Some(1477));
    assert!(matches!(
        check::key_sets(&certificate, "alice@org.com", &key_sets, at),
        Err(KmsClientError::UnexpectedKeyPeriod {
            found: 625,
            expected: 1477
        })
    ));
    // Unsigned, the client's full path refuses both (docs/mcx.md §3.3 step 1).
    let dir = TempDir::new("kmsclient");
    let store = ClientStore::open(dir.path(), StateKey::from_bytes([7; 32])).unwrap();
    let keys = TransportKeys {
        trk_id: KeyId(1),
        ..transport_keys(Mode::Standard, false)
    };
    let c = KmsClient::new(
        "http://localhost:8080",
        TOKEN,
        "alice@org.com",
        keys,
        store,
        ClientConfig::default(),
    )
    .unwrap();
    for (req, doc) in [
        (Request::Init, "streamwide_test_init_response.xml"),
        (Request::KeyProv, "streamwide_test_key_prov_response.xml"),
    ] {
        assert!(matches!(
            c.accept(&req, &read(doc), at),
            Err(KmsClientError::Response(KmsError::Unsigned))
        ));
    }
    assert!(c.store().entries().unwrap().is_empty());
}

#[test]
fn errors_have_stable_reasons_and_never_print_keys() {
    assert_eq!(KmsClientError::Unauthorized.reason(), "unauthorized");
    assert_eq!(
        KmsClientError::Response(KmsError::BoundTrkIdMismatch { element: "x" }).reason(),
        "bound_trk_id_mismatch"
    );
    assert_eq!(
        KmsClientError::InvalidRsk {
            period_no: 1,
            source: IbeError::InvalidRsk
        }
        .reason(),
        "invalid_rsk"
    );
    let keys = transport_keys(Mode::Bound, true);
    let dir = TempDir::new("kmsclient");
    let store = ClientStore::open(dir.path(), StateKey::from_bytes([7; 32])).unwrap();
    let c = KmsClient::new(
        "http://127.0.0.1:9",
        TOKEN,
        USER,
        keys,
        store,
        ClientConfig::default(),
    )
    .unwrap();
    let dbg = format!("{c:?}");
    assert!(!dbg.contains(TOKEN), "{dbg}");
    assert!(dbg.contains("REDACTED"));
}

//! New TrK/InK delivery (docs/mcx.md §3.4): `kms rotate-client` stages new keys, the real
//! `mbms-keys kms serve` offers them in KmsInit/KmsKeyProv under the client's current keys, the
//! library client and `kms client` adopt them after the whole response verified, the server
//! switches at the first request naming the new TrK-ID, and the old TrK-ID is refused after.
//!
//! Oracles: the responses carrying new keys validate with Python `xmlschema`, and
//! `python3-xmlsec` decrypts the new TrK under the old TrK in standard mode. They skip when
//! their peer is missing, and fail then under `MBMS_REQUIRE_ORACLES=1`.
#![cfg(feature = "kms-server")]

mod kms_support;

use std::path::Path;
use std::process::Command;

use jsonwebtoken::Algorithm;
use mbms_keys::crypto::StateKey;
use mbms_keys::kms::KeyId;
use mbms_keys::kms::client::{ClientConfig, ClientStore, KmsClient, Request, Verified};
use mbms_keys::kms::messages::{KmsCertificate, KmsMessage};
use mbms_keys::kms::transport::{self, Mode, TransportKeys};
use mbms_lab::TempDir;
use serde_json::Value;

use kms_support::oracles::{DECRYPT, VALIDATE, ok, run, text};
use kms_support::server::*;
use kms_support::{python, schema_path};

const MODES: [(Mode, bool); 4] = [
    (Mode::Standard, false),
    (Mode::Standard, true),
    (Mode::Bound, false),
    (Mode::Bound, true),
];

/// `kms rotate-client --json`: the new TrK-ID and InK-ID (null without `--ink`).
fn rotate(kms: &Kms, client_id: &str, ink: bool) -> (KeyId, Option<KeyId>) {
    let out = rotate_cmd(kms, client_id, ink);
    assert!(
        out.status.success(),
        "rotate-client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["client_id"], client_id);
    // Identifiers only: nothing secret is printed.
    assert_eq!(v.as_object().unwrap().len(), 3, "{v}");
    let trk_id = KeyId::parse(v["new_trk_id"].as_str().unwrap()).unwrap();
    let ink_id = v["new_ink_id"].as_str().map(|s| KeyId::parse(s).unwrap());
    assert_eq!(ink_id.is_some(), ink);
    (trk_id, ink_id)
}

fn rotate_cmd(kms: &Kms, client_id: &str, ink: bool) -> std::process::Output {
    let mut cmd = Command::new(bin());
    cmd.args(["kms", "rotate-client", "--config"])
        .arg(&kms.config)
        .current_dir(&kms.dir)
        .args(["--client-id", client_id, "--json"]);
    if ink {
        cmd.arg("--ink");
    }
    cmd.output().unwrap()
}

/// The KMS certificate, through a client of its own (the test's client stores hold it, since a
/// client without one names the URL's host as KmsUri, not the configured `kms.example.org`).
fn certificate(kms: &Kms) -> KmsCertificate {
    let keys = kms.add_client("certificate", &[ALICE], Mode::Standard, false);
    let path = format!("{BASE}/init");
    let (status, body) = kms.post(
        &path,
        &token(Algorithm::ES256, &claims(ALICE)),
        &request(ALICE, &path, keys.trk_id, None),
    );
    assert_eq!(status, 200);
    match transport::open(body.as_bytes(), &keys).unwrap().message {
        Some(KmsMessage::Init { certificate, .. }) => *certificate,
        other => panic!("{other:?}"),
    }
}

fn client(kms: &Kms, dir: &Path, keys: TransportKeys, cert: &KmsCertificate) -> KmsClient {
    let store = ClientStore::open(dir, StateKey::from_bytes([7; 32])).unwrap();
    store.put_home_certificate(cert).unwrap();
    KmsClient::new(
        &format!("http://{}", kms.addr),
        &token(Algorithm::ES256, &claims(ALICE)),
        ALICE,
        keys,
        store,
        ClientConfig::default(),
    )
    .unwrap()
}

fn keyprov(kms: &Kms, trk_id: KeyId, ink_id: Option<KeyId>) -> (u16, String) {
    let path = format!("{BASE}/keyprov");
    kms.post(
        &path,
        &token(Algorithm::ES256, &claims(ALICE)),
        &request(ALICE, &path, trk_id, ink_id),
    )
}

#[tokio::test]
async fn rotation_round_trip_in_every_mode_and_the_old_trk_is_refused_after_the_switch() {
    let dir = TempDir::new("kms-rotation");
    let kms = Kms::start(dir.path());
    let cert = certificate(&kms);
    for (i, (mode, ink)) in MODES.into_iter().enumerate() {
        let tag = format!("{mode:?}-{ink}");
        let old = kms.add_client(&format!("r{i}"), &[ALICE], mode, ink);
        // Odd clients rotate their InK too; even ones keep theirs (or have none).
        let new_ink = i % 2 == 1;
        let (new_trk_id, new_ink_id) = rotate(&kms, &format!("r{i}"), new_ink);
        assert_ne!(new_trk_id, old.trk_id);

        // 1. The old keys still work and the answer offers the new ones.
        let c = client(
            &kms,
            &dir.path().join(format!("store-{i}")),
            old.clone(),
            &cert,
        );
        let out = c.run(&Request::KeyProv).await;
        assert!(
            matches!(out.result, Ok(Verified::KeyProv(ref m)) if m.len() == 1),
            "{tag}: {:?}",
            out.result
        );
        let adopted = out.rotated.expect("new keys adopted");
        assert_eq!(adopted.trk_id, new_trk_id, "{tag}");
        assert_ne!(adopted.trk, old.trk);
        assert_eq!(adopted.mode, mode);
        match (new_ink_id, &old.ink, &adopted.ink) {
            (Some(id), _, Some((got, k))) => {
                assert_eq!(*got, id);
                assert_eq!(k.expose().len(), 32);
            }
            (None, Some((old_id, old_k)), Some((got, k))) => {
                assert_eq!((got, k), (old_id, old_k), "{tag}: the InK is kept");
            }
            (None, None, None) => {}
            other => panic!("{tag}: {other:?}"),
        }
        assert_eq!(c.transport_keys().trk_id, new_trk_id);
        assert_eq!(c.transport_keys().trk, adopted.trk);
        // The staged keys are sealed in the store: neither raw nor in hex in its files.
        for f in ["kms.sqlite", "kms.sqlite-wal"] {
            let bytes = std::fs::read(kms.dir.join("data").join(f)).unwrap_or_default();
            for secret in std::iter::once(&adopted.trk).chain(adopted.ink.as_ref().map(|k| &k.1)) {
                let raw = secret.expose();
                assert!(!bytes.windows(raw.len()).any(|w| w == raw), "{tag} {f}");
                let hex = hex::encode(raw);
                assert!(!bytes.windows(hex.len()).any(|w| w == hex.as_bytes()));
            }
        }
        // Until the switch, the old TrK-ID is still served (and offered the keys again).
        let (status, body) = keyprov(&kms, old.trk_id, old.ink.as_ref().map(|k| k.0));
        assert_eq!(status, 200, "{tag}: {body}");
        assert!(body.contains("NewTransportKey"));

        // 2. The next request names the new TrK-ID: the KMS switches and answers under the
        // new keys, with nothing new to offer.
        let out = c.run(&Request::KeyProv).await;
        assert!(out.result.is_ok(), "{tag}: {:?}", out.result);
        assert!(out.rotated.is_none());
        let raw = out.raw.unwrap();
        assert!(!String::from_utf8_lossy(&raw).contains("NewTransportKey"));
        transport::open(&raw, &adopted).unwrap();
        assert!(transport::open(&raw, &old).is_err());

        // 3. After the switch the old TrK-ID is refused: 403, a KmsError, no key material.
        let (status, body) = keyprov(&kms, old.trk_id, old.ink.as_ref().map(|k| k.0));
        assert_eq!(status, 403, "{tag}: {body}");
        assert!(
            body.contains(&format!("unknown TrK-ID {}", old.trk_id)),
            "{body}"
        );
        assert!(!body.contains("EncryptedKey"));
        // A client still holding the old keys gets the typed refusal.
        let stale = client(
            &kms,
            &dir.path().join(format!("stale-{i}")),
            old.clone(),
            &cert,
        );
        let out = stale.run(&Request::Init).await;
        assert_eq!(out.result.unwrap_err().reason(), "forbidden");
        // And the new keys keep working.
        assert!(c.run(&Request::Init).await.result.is_ok());
    }
    // One rotation at a time: a second one is refused while one is pending, and after the
    // switch a new one may be staged.
    let keys = kms.add_client("once", &[ALICE], Mode::Standard, false);
    rotate(&kms, "once", false);
    let again = rotate_cmd(&kms, "once", false);
    assert_eq!(again.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&again.stderr).contains("pending"));
    let unknown = rotate_cmd(&kms, "nobody", false);
    assert_eq!(unknown.status.code(), Some(1));
    let c = client(&kms, &dir.path().join("store-once"), keys, &cert);
    assert!(c.run(&Request::Init).await.rotated.is_some());
    assert!(c.run(&Request::Init).await.result.is_ok());
    rotate(&kms, "once", true);
    // The server kept serving through all of it.
    assert!(kms.log().contains("switched to its new transport keys"));
}

/// Flips one base64 character of the first NewTransportKey's CipherValue.
fn tamper_new_key(doc: &str) -> String {
    let at = doc.find("<NewTransportKey").unwrap();
    let cv = at + doc[at..].find("<xenc:CipherValue>").unwrap() + "<xenc:CipherValue>".len();
    let mut b = doc.as_bytes().to_vec();
    b[cv + 3] = if b[cv + 3] == b'A' { b'B' } else { b'A' };
    String::from_utf8(b).unwrap()
}

#[tokio::test]
async fn a_tampered_new_key_is_refused_and_nothing_is_stored_or_adopted() {
    let dir = TempDir::new("kms-rotation-tamper");
    let kms = Kms::start(dir.path());
    let cert = certificate(&kms);
    for (i, (mode, ink)) in MODES.into_iter().enumerate() {
        let old = kms.add_client(&format!("t{i}"), &[ALICE], mode, ink);
        rotate(&kms, &format!("t{i}"), ink);
        let (status, body) = keyprov(&kms, old.trk_id, old.ink.as_ref().map(|k| k.0));
        assert_eq!(status, 200);
        // A fresh client with its certificate, so that only the key set is at stake.
        let c = client(
            &kms,
            &dir.path().join(format!("store-{i}")),
            old.clone(),
            &cert,
        );
        let tampered = tamper_new_key(&body);
        assert_ne!(tampered, body);
        let e = c
            .accept(&Request::KeyProv, tampered.as_bytes(), now())
            .unwrap_err();
        assert_eq!(e.reason(), "digest_mismatch", "{mode:?}-{ink}");
        assert_eq!(c.transport_keys().trk_id, old.trk_id);
        let period = mbms_keys::kms::client::key_period_no(now(), PERIOD, 0).unwrap();
        assert!(c.store().key_material(ALICE, period).unwrap().is_none());
        // The untampered document is accepted (the same client, the same moment).
        let a = c.accept(&Request::KeyProv, body.as_bytes(), now()).unwrap();
        assert!(a.rotated.is_some());
    }
}

#[test]
fn the_command_line_writes_the_new_trk_where_told_and_never_prints_it() {
    let dir = TempDir::new("kms-rotation-cli");
    let kms = Kms::start(dir.path());
    let cert = certificate(&kms);
    for (i, (mode, ink)) in MODES.into_iter().enumerate() {
        let old = kms.add_client(&format!("c{i}"), &[ALICE], mode, ink);
        let (new_trk_id, new_ink_id) = rotate(&kms, &format!("c{i}"), ink);
        let d = dir.path().join(format!("cli-{i}"));
        std::fs::create_dir_all(&d).unwrap();
        ClientStore::open_with_key_file(&d.join("store"), None)
            .unwrap()
            .put_home_certificate(&cert)
            .unwrap();
        std::fs::write(d.join("token"), token(Algorithm::ES256, &claims(ALICE))).unwrap();
        std::fs::write(d.join("trk"), hex::encode(old.trk.expose())).unwrap();
        if let Some((_, k)) = &old.ink {
            std::fs::write(d.join("ink"), hex::encode(k.expose())).unwrap();
        }
        let run_client = |trk_id: KeyId, ink_id: Option<KeyId>, trk: &str, ink: &str| {
            let mut cmd = Command::new(bin());
            cmd.args(["kms", "client", "keyprov", "--kms"])
                .arg(format!("http://{}", kms.addr))
                .args(["--user", ALICE, "--json", "--token"])
                .arg(format!("@{}", d.join("token").display()))
                .arg("--store")
                .arg(d.join("store"))
                .args(["--trk-id", &trk_id.to_string()])
                .arg("--trk")
                .arg(format!("@{}", d.join(trk).display()))
                .arg("--trk-out")
                .arg(d.join("trk.new"))
                .arg("--ink-out")
                .arg(d.join("ink.new"))
                .arg("--mode")
                .arg(match mode {
                    Mode::Standard => "standard",
                    Mode::Bound => "bound",
                });
            if let Some(id) = ink_id {
                cmd.args(["--ink-id", &id.to_string()])
                    .arg("--ink")
                    .arg(format!("@{}", d.join(ink).display()));
            }
            cmd.output().unwrap()
        };
        let out = run_client(old.trk_id, old.ink.as_ref().map(|k| k.0), "trk", "ink");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["ok"], true);
        assert_eq!(v["rotated"]["trk_id"], new_trk_id.to_string());
        assert_eq!(
            v["rotated"]["trk_file"],
            d.join("trk.new").display().to_string()
        );
        let new_trk = std::fs::read_to_string(d.join("trk.new")).unwrap();
        assert_eq!(new_trk.trim().len(), 64);
        use std::os::unix::fs::PermissionsExt as _;
        let m = std::fs::metadata(d.join("trk.new"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(m & 0o777, 0o600);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            !stdout.contains(new_trk.trim()),
            "the new TrK is not printed"
        );
        let ink_file = match new_ink_id {
            Some(id) => {
                assert_eq!(v["rotated"]["ink_id"], id.to_string());
                let k = std::fs::read_to_string(d.join("ink.new")).unwrap();
                assert!(!stdout.contains(k.trim()));
                "ink.new"
            }
            None => {
                assert!(v["rotated"]["ink_id"].is_null());
                assert!(!d.join("ink.new").exists());
                "ink"
            }
        };
        // The next run with the written keys: the switch, no new keys; the old ones refused.
        let new_ink = new_ink_id.or(old.ink.as_ref().map(|k| k.0));
        let out = run_client(new_trk_id, new_ink, "trk.new", ink_file);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stdout)
        );
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert!(v.get("rotated").is_none(), "{v}");
        let out = run_client(old.trk_id, old.ink.as_ref().map(|k| k.0), "trk", "ink");
        assert_eq!(out.status.code(), Some(1));
        let v: Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v["reason"], "forbidden");
    }
}

#[test]
fn responses_with_new_keys_pass_xmlschema_and_xmlsec_decrypts_the_new_trk_under_the_old() {
    let Some(py) = python() else { return };
    let dir = TempDir::new("kms-rotation-oracles");
    let kms = Kms::start(dir.path());
    let mut files = Vec::new();
    let mut decrypted = 0;
    for (i, (mode, ink)) in MODES.into_iter().enumerate() {
        let old = kms.add_client(&format!("o{i}"), &[ALICE], mode, ink);
        rotate(&kms, &format!("o{i}"), ink);
        let ink_id = old.ink.as_ref().map(|k| k.0);
        for path in [format!("{BASE}/init"), format!("{BASE}/keyprov")] {
            let (status, body) = kms.post(
                &path,
                &token(Algorithm::ES256, &claims(ALICE)),
                &request(ALICE, &path, old.trk_id, ink_id),
            );
            assert_eq!(status, 200);
            assert!(body.contains("NewTransportKey"));
            let p = dir.path().join(format!("doc-{i}-{}.xml", files.len()));
            std::fs::write(&p, &body).unwrap();
            files.push(p.clone());
            // What our client takes from it.
            let opened = transport::open(body.as_bytes(), &old).unwrap();
            let new_keys = match opened.message {
                Some(
                    mbms_keys::kms::messages::KmsMessage::Init { new_keys, .. }
                    | mbms_keys::kms::messages::KmsMessage::KeyProv { new_keys, .. },
                ) => new_keys,
                other => panic!("{other:?}"),
            };
            let adopted = mbms_keys::kms::rotation::adopt(&old, &new_keys)
                .unwrap()
                .unwrap();
            if mode != Mode::Standard {
                continue;
            }
            let out = run(Command::new(&py)
                .arg("-c")
                .arg(DECRYPT)
                .arg(&p)
                .arg(hex::encode(old.trk.expose())));
            assert!(ok(&out), "xmlsec refused: {}", text(&out));
            let lines = String::from_utf8(out.stdout).unwrap();
            let want = format!("NewTransportKey {}", hex::encode(adopted.trk.expose()));
            assert!(lines.lines().any(|l| l == want), "{lines}");
            decrypted += 1;
            if let (true, Some((_, k))) = (ink, &adopted.ink) {
                let want = format!("NewIntegrityKey {}", hex::encode(k.expose()));
                assert!(lines.lines().any(|l| l == want), "{lines}");
                decrypted += 1;
            }
        }
    }
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
    assert_eq!(files.len(), 8);
    // Standard mode: the new TrK of 2 clients × 2 documents, and the new InK of one × 2.
    assert_eq!(decrypted, 6);
}

//! `mbms-keys kms client …` against the test KMS of `kms_client_support`: the verified key
//! material as JSON (exit 0), typed refusals (exit 1, nothing stored), malformed arguments
//! (exit 2), and `--save-response`.

mod kms_client_support;

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use mbms_keys::kms::transport::Mode;
use mbms_lab::TempDir;

use kms_client_support::*;

const BIN: &str = env!("CARGO_BIN_EXE_mbms-keys");
const TRK: &str = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";
const INK: &str = "6465666768696a6b6c6d6e6f707172737475767778797a7b7c7d7e7f80818283";

/// Runs `mbms-keys kms client ARGS --json` with the token in a file: exit code and JSON.
fn kms_client(dir: &Path, args: &[&str]) -> (Option<i32>, Value) {
    let token = dir.join("token");
    std::fs::write(&token, format!("{TOKEN}\n")).unwrap();
    let out = Command::new(BIN)
        .args(["kms", "client"])
        .args(args)
        .arg(format!("--token=@{}", token.display()))
        .arg("--json")
        .env_remove("MBMS_KMS_TOKEN")
        .env_remove("MBMS_TRK")
        .env_remove("MBMS_INK")
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let v = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    };
    (out.status.code(), v)
}

fn keys_files(store: &Path) -> usize {
    std::fs::read_dir(store)
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .unwrap()
                    .file_name()
                    .to_string_lossy()
                    .starts_with("keys-")
            })
            .count()
        })
        .unwrap_or(0)
}

#[test]
fn keyprov_prints_the_verified_key_material_and_keeps_the_response() {
    let kms = start(transport_keys(Mode::Standard, false), Fault::None);
    let dir = TempDir::new("cli-kmsclient");
    let store = dir.path().join("store");
    let saved = dir.path().join("response.xml");
    let url = kms.url();
    let (code, v) = kms_client(
        dir.path(),
        &[
            "keyprov",
            "--kms",
            &url,
            "--user",
            USER,
            "--trk-id",
            "11223344",
            "--trk",
            TRK,
            "--store",
            store.to_str().unwrap(),
            "--save-response",
            saved.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["request"], "keyprov");
    let period = current_period();
    let uid = uid(USER, period);
    let issued = issue(&uid);
    let k = &v["key_sets"][0];
    assert_eq!(k["key_period_no"], period);
    assert_eq!(k["uid"], hex::encode(uid));
    assert_eq!(k["ssk"], hex::encode(&issued.ssk));
    assert_eq!(k["pvt"], hex::encode(&issued.pvt));
    assert_eq!(k["rsk"], hex::encode(&issued.rsk));
    assert_eq!(k["kpak"], hex::encode(kpak()));
    assert_eq!(k["z"], hex::encode(z()));
    let xml = std::fs::read_to_string(&saved).unwrap();
    assert!(xml.starts_with("<?xml") && xml.contains("<SignedKmsResponse"));
    assert!(xml.contains("<KmsKeyProv"), "the last response: keyprov");
    assert_eq!(keys_files(&store), 1);
    assert!(store.join("home.cert").exists() && store.join("store.key").exists());
    // A second run uses the stored certificate: only keyprov goes out.
    let before = kms.seen().len();
    let (code, _) = kms_client(
        dir.path(),
        &[
            "keyprov",
            "--kms",
            &url,
            "--user",
            USER,
            "--trk-id",
            "11223344",
            "--trk",
            TRK,
            "--store",
            store.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0));
    assert_eq!(kms.seen().len(), before + 1);
}

#[test]
fn bound_mode_with_an_ink_and_a_temporary_store() {
    let kms = start(transport_keys(Mode::Bound, true), Fault::None);
    let dir = TempDir::new("cli-kmsclient");
    let url = kms.url();
    let (code, v) = kms_client(
        dir.path(),
        &[
            "keyprov", "--kms", &url, "--user", USER, "--trk-id", "11223344", "--trk", TRK,
            "--ink-id", "55667788", "--ink", INK, "--mode", "bound",
        ],
    );
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(
        v["key_sets"][0]["uid"],
        hex::encode(uid(USER, current_period()))
    );
    let (code, v) = kms_client(
        dir.path(),
        &[
            "init", "--kms", &url, "--user", USER, "--trk-id", "11223344", "--trk", TRK,
            "--ink-id", "55667788", "--ink", INK, "--mode", "bound",
        ],
    );
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["certificate"]["kpak"], hex::encode(kpak()));
}

fn refused(mode: Mode, fault: Fault, extra: &[&str]) -> (Value, String, usize) {
    let kms = start(transport_keys(mode, false), fault);
    let dir = TempDir::new("cli-kmsclient");
    let store = dir.path().join("store");
    let saved = dir.path().join("response.xml");
    let url = kms.url();
    let mut args = vec![
        "keyprov",
        "--kms",
        &url,
        "--user",
        USER,
        "--trk-id",
        "11223344",
        "--trk",
        TRK,
        "--store",
        store.to_str().unwrap(),
        "--save-response",
        saved.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    let (code, v) = kms_client(dir.path(), &args);
    assert_eq!(code, Some(1), "{v}");
    assert_eq!(v["ok"], false);
    let saved = std::fs::read_to_string(&saved).unwrap_or_default();
    (v, saved, keys_files(&store))
}

#[test]
fn refusals_exit_1_with_a_reason_and_store_nothing() {
    let (v, saved, keys) = refused(Mode::Standard, Fault::TamperSignature, &[]);
    assert_eq!(v["reason"], "bad_signature");
    assert!(
        saved.contains("<ds:SignatureValue>"),
        "the refused response is kept"
    );
    assert_eq!(keys, 0);
    let (v, _, keys) = refused(Mode::Bound, Fault::OtherTrkId, &["--mode", "bound"]);
    assert_eq!(v["reason"], "bound_trk_id_mismatch");
    assert_eq!(keys, 0);
    let (v, _, keys) = refused(Mode::Standard, Fault::Status(401), &[]);
    assert_eq!(v["reason"], "unauthorized");
    assert_eq!(keys, 0);
    let (v, _, _) = refused(Mode::Standard, Fault::Status(403), &[]);
    assert_eq!(v["reason"], "forbidden");
}

#[test]
fn malformed_arguments_exit_2() {
    let dir = TempDir::new("cli-kmsclient");
    let base = [
        "keyprov",
        "--kms",
        "http://127.0.0.1:9",
        "--user",
        USER,
        "--trk-id",
        "11223344",
        "--trk",
        TRK,
    ];
    let with = |replace: &str, value: &str| -> Vec<String> {
        let mut v: Vec<String> = base.iter().map(|s| (*s).to_owned()).collect();
        let i = v.iter().position(|a| a == replace).unwrap();
        v[i + 1] = value.to_owned();
        v
    };
    for args in [
        with("--trk-id", "xyz"),
        with("--trk", "0011"),
        with("--kms", "https://kms.example.org"),
        with("--kms", "kms.example.org"),
        vec!["keyprov".into(), "--user".into(), USER.into()],
        {
            let mut v = with("--trk-id", "11223344");
            v.extend(["--ink-id".into(), "55667788".into()]);
            v
        },
        {
            let mut v = with("--trk-id", "11223344");
            v[0] = "init".into();
            v.extend(["--at".into(), "1".into()]);
            v
        },
    ] {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, v) = kms_client(dir.path(), &refs);
        assert_eq!(code, Some(2), "{args:?}: {v}");
        assert_eq!(v, Value::Null, "nothing on standard output");
    }
}

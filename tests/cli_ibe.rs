//! `mbms-keys ibe …` against the RFC 6507/6508 Appendix A values and the UID format 2 vectors
//! of `proto-vectors/`: results, refusals (exit 1, `{"ok": false}`) and malformed arguments
//! (exit 2).

use std::fs;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mbms-keys");
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proto-vectors/");

fn load(name: &str) -> Value {
    let text = fs::read_to_string(format!("{DIR}{name}")).expect("vector file");
    serde_json::from_str(&text).expect("JSON")
}

fn eccsi() -> Value {
    load("eccsi-sakke-rfc.json")["ECCSI_RFC6507"].clone()
}

fn sakke() -> Value {
    load("eccsi-sakke-rfc.json")["SAKKE_RFC6508"].clone()
}

fn s<'a>(v: &'a Value, k: &str) -> &'a str {
    v[k].as_str().unwrap_or_else(|| panic!("missing {k}"))
}

fn ibe_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .arg("ibe")
        .args(args)
        .arg("--json")
        .env_remove("MBMS_SSK")
        .env_remove("MBMS_RSK")
        .env_remove("MBMS_SSV")
        .envs(env.iter().copied())
        .output()
        .expect("run mbms-keys")
}

/// Runs `mbms-keys ibe ARGS --json`: the exit code and the JSON printed (Null if none).
fn ibe(args: &[&str]) -> (Option<i32>, Value) {
    let out = ibe_env(args, &[]);
    let text = String::from_utf8(out.stdout).expect("UTF-8");
    let v = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).expect("one JSON object")
    };
    (out.status.code(), v)
}

fn ok(args: &[&str]) -> Value {
    let (code, v) = ibe(args);
    assert_eq!(code, Some(0), "ibe {args:?}: {v}");
    assert_eq!(v["ok"], true, "ibe {args:?}");
    v
}

fn refused(args: &[&str]) -> Value {
    let (code, v) = ibe(args);
    assert_eq!(code, Some(1), "ibe {args:?}: {v}");
    assert_eq!(v["ok"], false, "ibe {args:?}");
    assert!(v["error"].is_string(), "ibe {args:?}");
    v
}

fn usage_error(args: &[&str]) {
    let out = ibe_env(args, &[]);
    assert_eq!(out.status.code(), Some(2), "ibe {args:?}");
    assert!(out.stdout.is_empty(), "ibe {args:?}");
}

/// `hex` with one bit of octet `at` flipped.
fn flip(hex_str: &str, at: usize) -> String {
    let mut b = hex::decode(hex_str).unwrap();
    b[at] ^= 1;
    hex::encode(b)
}

#[test]
fn uid_prints_every_vector() {
    let v = load("uid-format2.json");
    for t in v["vectors"].as_array().unwrap() {
        let (period, offset, no) = (
            t["period"].to_string(),
            t["offset"].to_string(),
            t["period_no"].to_string(),
        );
        let out = ok(&[
            "uid",
            "--uri",
            s(t, "uri"),
            "--kms-uri",
            s(t, "kms_uri"),
            "--period",
            &period,
            "--offset",
            &offset,
            "--period-no",
            &no,
        ]);
        assert_eq!(out["uid"], t["uid"]);
    }
}

#[test]
fn eccsi_verify_accepts_the_rfc_signature_and_refuses_a_changed_one() {
    let v = eccsi();
    let base = |sig: &str, msg: &str| {
        vec![
            "eccsi-verify".to_owned(),
            "--kpak".into(),
            s(&v, "KPAK").into(),
            "--id".into(),
            s(&v, "ID").into(),
            "--msg".into(),
            msg.into(),
            "--sig".into(),
            sig.into(),
        ]
    };
    let args = base(s(&v, "Signature"), s(&v, "M"));
    ok(&args.iter().map(String::as_str).collect::<Vec<_>>());
    let bad = base(&flip(s(&v, "Signature"), 40), s(&v, "M"));
    let out = refused(&bad.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(out["error"].as_str().unwrap().contains("does not verify"));
    let other_msg = base(s(&v, "Signature"), "6d657373616765");
    refused(&other_msg.iter().map(String::as_str).collect::<Vec<_>>());
    // Wrong length and an off-curve PVT are refusals, not usage errors.
    let short = base(&s(&v, "Signature")[..256], s(&v, "M"));
    refused(&short.iter().map(String::as_str).collect::<Vec<_>>());
    let off = base(&flip(s(&v, "Signature"), 128), s(&v, "M"));
    let out = refused(&off.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        out["error"]
            .as_str()
            .unwrap()
            .contains("not a point on the curve")
    );
}

#[test]
fn eccsi_sign_makes_a_signature_verify_accepts() {
    let v = eccsi();
    let out = ok(&[
        "eccsi-sign",
        "--kpak",
        s(&v, "KPAK"),
        "--id",
        s(&v, "ID"),
        "--ssk",
        s(&v, "SSK"),
        "--pvt",
        s(&v, "PVT"),
        "--msg",
        "00010203",
    ]);
    let sig = s(&out, "sig");
    assert_eq!(sig.len(), 2 * 129);
    assert!(sig.ends_with(&s(&v, "PVT").to_lowercase()));
    ok(&[
        "eccsi-verify",
        "--kpak",
        s(&v, "KPAK"),
        "--id",
        s(&v, "ID"),
        "--msg",
        "00010203",
        "--sig",
        sig,
    ]);
}

#[test]
fn eccsi_sign_takes_the_ssk_from_the_environment() {
    let v = eccsi();
    let out = ibe_env(
        &[
            "eccsi-sign",
            "--kpak",
            s(&v, "KPAK"),
            "--id",
            s(&v, "ID"),
            "--pvt",
            s(&v, "PVT"),
            "--msg",
            "00",
        ],
        &[("MBMS_SSK", s(&v, "SSK"))],
    );
    assert_eq!(out.status.code(), Some(0));
}

#[test]
fn eccsi_validate_accepts_the_rfc_pair_and_refuses_changed_ones() {
    let v = eccsi();
    let args = |ssk: &str, pvt: &str| {
        vec![
            "eccsi-validate".to_owned(),
            "--kpak".into(),
            s(&v, "KPAK").into(),
            "--id".into(),
            s(&v, "ID").into(),
            "--ssk".into(),
            ssk.into(),
            "--pvt".into(),
            pvt.into(),
        ]
    };
    let a = args(s(&v, "SSK"), s(&v, "PVT"));
    ok(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let bad_ssk = flip(s(&v, "SSK"), 31);
    let a = args(&bad_ssk, s(&v, "PVT"));
    let out = refused(&a.iter().map(String::as_str).collect::<Vec<_>>());
    // The refusal never quotes the key.
    assert!(!out.to_string().to_lowercase().contains(&bad_ssk));
    let a = args(&s(&v, "SSK")[..62], s(&v, "PVT"));
    refused(&a.iter().map(String::as_str).collect::<Vec<_>>());
    let a = args(s(&v, "SSK"), &flip(s(&v, "PVT"), 64));
    refused(&a.iter().map(String::as_str).collect::<Vec<_>>());
}

#[test]
fn sakke_encap_of_the_rfc_ssv_is_the_rfc_data() {
    let v = sakke();
    let out = ok(&[
        "sakke-encap",
        "--z",
        s(&v, "Z"),
        "--id",
        s(&v, "ID"),
        "--ssv",
        s(&v, "SSV"),
    ]);
    assert_eq!(s(&out, "data"), s(&v, "Encapsulated_data").to_lowercase());
}

#[test]
fn sakke_decap_recovers_the_rfc_ssv_and_a_fresh_one() {
    let v = sakke();
    let out = ok(&[
        "sakke-decap",
        "--z",
        s(&v, "Z"),
        "--id",
        s(&v, "ID"),
        "--rsk",
        s(&v, "RSK"),
        "--data",
        s(&v, "Encapsulated_data"),
    ]);
    assert_eq!(s(&out, "ssv"), s(&v, "SSV").to_lowercase());
    // A random SSV when none is given.
    let enc = ok(&["sakke-encap", "--z", s(&v, "Z"), "--id", s(&v, "ID")]);
    assert_eq!(s(&enc, "ssv").len(), 32);
    let dec = ok(&[
        "sakke-decap",
        "--z",
        s(&v, "Z"),
        "--id",
        s(&v, "ID"),
        "--rsk",
        s(&v, "RSK"),
        "--data",
        s(&enc, "data"),
    ]);
    assert_eq!(dec["ssv"], enc["ssv"]);
    // Changed data is refused.
    refused(&[
        "sakke-decap",
        "--z",
        s(&v, "Z"),
        "--id",
        s(&v, "ID"),
        "--rsk",
        s(&v, "RSK"),
        "--data",
        &flip(s(&v, "Encapsulated_data"), 270),
    ]);
}

#[test]
fn sakke_validate_accepts_the_rfc_rsk_and_refuses_bad_input() {
    let v = sakke();
    ok(&[
        "sakke-validate",
        "--z",
        s(&v, "Z"),
        "--id",
        s(&v, "ID"),
        "--rsk",
        s(&v, "RSK"),
    ]);
    // The RSK of another identifier.
    refused(&[
        "sakke-validate",
        "--z",
        s(&v, "Z"),
        "--id",
        "00",
        "--rsk",
        s(&v, "RSK"),
    ]);
    // Tampered RSK (off the curve), off-curve Z, short RSK.
    for (z, rsk) in [
        (s(&v, "Z").to_owned(), flip(s(&v, "RSK"), 100)),
        (flip(s(&v, "Z"), 100), s(&v, "RSK").to_owned()),
        (s(&v, "Z").to_owned(), s(&v, "RSK")[..512].to_owned()),
    ] {
        refused(&[
            "sakke-validate",
            "--z",
            &z,
            "--id",
            s(&v, "ID"),
            "--rsk",
            &rsk,
        ]);
    }
}

#[test]
fn malformed_arguments_exit_2() {
    let v = sakke();
    // Not hex; a missing option; an unknown subcommand.
    usage_error(&["sakke-validate", "--z", "xyz", "--id", "00", "--rsk", "00"]);
    usage_error(&["sakke-validate", "--z", s(&v, "Z"), "--id", "00"]);
    usage_error(&["eccsi-frobnicate"]);
    usage_error(&[
        "uid",
        "--uri",
        "a",
        "--kms-uri",
        "b",
        "--period",
        "-1",
        "--offset",
        "0",
        "--period-no",
        "1",
    ]);
}

//! `mbms-keys mikey build-sakke` and `verify-sakke`: a message built on the command line
//! verifies there and gives its key; the Streamwide GMK message verifies as of its time;
//! refusals exit 1 with a reason, malformed arguments exit 2.
#![cfg(feature = "mcx")]

mod common;
#[path = "common/mcx_users.rs"]
mod users;

use std::process::Command;

use serde_json::Value;
use users::Kms;

const BIN: &str = env!("CARGO_BIN_EXE_mbms-keys");

fn run(args: &[String]) -> (Option<i32>, Value) {
    let out = Command::new(BIN)
        .args(args)
        .env_remove("MBMS_KEY")
        .env_remove("MBMS_SSK")
        .env_remove("MBMS_RSK")
        .output()
        .expect("run mbms-keys");
    let text = String::from_utf8(out.stdout).unwrap();
    let v = if text.trim().is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    };
    (out.status.code(), v)
}

fn args(a: &[&str]) -> Vec<String> {
    a.iter().map(|s| (*s).to_owned()).collect()
}

struct Setup {
    kms: Kms,
    alice: users::User,
    bob: users::User,
}

impl Setup {
    fn new() -> Self {
        let kms = Kms::new();
        Self {
            alice: kms.user("sip:alice@example.org"),
            bob: kms.user("sip:bob@example.org"),
            kms,
        }
    }

    fn build(&self, extra: &[&str]) -> (Option<i32>, Value) {
        let mut a = args(&["mikey", "build-sakke", "--json"]);
        a.extend(args(&[
            "--key-id",
            "10000001",
            "--purpose",
            "pck",
            "--to-uid",
            &hex::encode(self.bob.uid),
            "--z",
            &hex::encode(self.kms.z.to_octets()),
            "--from-uid",
            &hex::encode(self.alice.uid),
            "--ssk",
            &hex::encode(self.alice.ssk.as_bytes()),
            "--pvt",
            &hex::encode(self.alice.pvt),
            "--kpak",
            &hex::encode(self.kms.kpak.to_octets()),
            "--time",
            "2027-01-15T08:00:00Z",
        ]));
        a.extend(args(extra));
        run(&a)
    }

    fn verify(&self, msg: &str, extra: &[&str]) -> (Option<i32>, Value) {
        let mut a = args(&["mikey", "verify-sakke", "--json"]);
        a.extend(args(&[
            "--uid",
            &hex::encode(self.bob.uid),
            "--rsk",
            &hex::encode(self.bob.rsk.as_bytes()),
            "--z",
            &hex::encode(self.kms.z.to_octets()),
            "--kpak",
            &hex::encode(self.kms.kpak.to_octets()),
            "--from-uid",
            &hex::encode(self.alice.uid),
        ]));
        a.extend(args(extra));
        a.push(msg.to_owned());
        run(&a)
    }
}

#[test]
fn a_message_built_on_the_command_line_verifies_and_gives_its_key() {
    let s = Setup::new();
    let key = "000102030405060708090a0b0c0d0e0f";
    let (code, v) = s.build(&["--key", key, "--kms-uri", users::KMS_URI]);
    assert_eq!(code, Some(0), "{v}");
    let msg = v["message"].as_str().unwrap().to_owned();
    let (code, v) = s.verify(&msg, &["--at", "2027-01-15T08:01:00Z", "--purpose", "pck"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["key"], key);
    assert_eq!(v["key_id"], "10000001");
    assert_eq!(v["purpose"], "pck");
    assert_eq!(v["sender_uid"], hex::encode(s.alice.uid));
    assert_eq!(v["time"], "2027-01-15T08:00:00.000Z");
    assert_eq!(v["kms_uri"], users::KMS_URI);

    // Refusals: exit 1 and a reason.
    let (code, v) = s.verify(&msg, &["--at", "2027-01-15T09:00:00Z"]);
    assert_eq!(
        (code, &v["reason"]),
        (Some(1), &Value::from("stale_time")),
        "{v}"
    );
    assert_eq!(v["ok"], false);
    let (code, v) = s.verify(&msg, &["--at", "2027-01-15T09:00:00Z", "--window", "2h"]);
    assert_eq!(code, Some(0), "{v}");
    let (code, v) = s.verify(&msg, &["--at", "2027-01-15T08:00:00Z", "--purpose", "gmk"]);
    assert_eq!(
        (code, &v["reason"]),
        (Some(1), &Value::from("wrong_purpose"))
    );
    let mut bad = hex::decode(&msg).unwrap();
    bad[25] ^= 1; // in RAND
    let (code, v) = s.verify(&hex::encode(&bad), &["--at", "2027-01-15T08:00:00Z"]);
    assert_eq!(
        (code, &v["reason"]),
        (Some(1), &Value::from("bad_signature"))
    );
    let (code, v) = s.verify(&msg[..100], &["--at", "2027-01-15T08:00:00Z"]);
    assert_eq!((code, &v["reason"]), (Some(1), &Value::from("malformed")));
    // Nothing of the key in a refusal.
    assert!(!v.to_string().contains(key));
}

/// A 256-bit key (docs/mcx.md §11.5): built from a key file, carried in a KEMAC under the
/// SSV, verified to exactly the 32 octets; `mikey decode` shows the KEMAC in text and JSON.
#[test]
fn a_256_bit_key_round_trips_through_the_command_line() {
    let s = Setup::new();
    let key = "8f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0";
    let dir = mbms_lab::TempDir::new("cli-sakke-256");
    let file = dir.path().join("key.hex");
    std::fs::write(&file, key).unwrap();
    let key_arg = format!("@{}", file.display());
    let (code, v) = s.build(&["--key", &key_arg, "--kms-uri", users::KMS_URI]);
    assert_eq!(code, Some(0), "{v}");
    let msg = v["message"].as_str().unwrap().to_owned();
    assert!(!msg.contains(&key[..32]) && !msg.contains(&key[32..]));
    let (code, v) = s.verify(&msg, &["--at", "2027-01-15T08:01:00Z", "--purpose", "pck"]);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["ok"], true);
    assert_eq!(v["key"], key);
    assert_eq!(v["key_id"], "10000001");

    let out = Command::new(BIN)
        .args(["mikey", "decode", "--json", &msg])
        .output()
        .unwrap();
    assert!(out.status.success());
    let d: Value = serde_json::from_slice(&out.stdout).unwrap();
    let payloads = d["payloads"].as_array().unwrap();
    let names: Vec<&str> = payloads
        .iter()
        .map(|p| p["payload"].as_str().unwrap())
        .collect();
    assert_eq!(names[names.len() - 2..], ["KEMAC", "SIGN"], "{names:?}");
    let kemac = &payloads[payloads.len() - 2];
    assert_eq!(kemac["encr_alg"]["name"], "AES-CM-128");
    assert_eq!(kemac["mac_alg"]["name"], "HMAC-SHA-1-160");
    assert_eq!(kemac["encr_data_len"], 36);
    assert_eq!(kemac["mac"].as_str().unwrap().len(), 40);
    let out = Command::new(BIN)
        .args(["mikey", "decode", &msg])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("KEMAC payload"), "{text}");
    assert!(
        text.contains("AES-CM-128") && text.contains("HMAC-SHA-1-160"),
        "{text}"
    );

    // Neither 24 nor 33 octets: malformed arguments, the key not quoted.
    for bad in [&key[..48], &format!("{key}00")[..]] {
        let out = Command::new(BIN)
            .args(s_build_args(&s, bad))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8(out.stderr).unwrap();
        assert!(
            err.contains("--key") && err.contains("16") && err.contains("32"),
            "{err}"
        );
        assert!(!err.contains(&key[..32]), "{err}");
    }
}

/// The arguments of `mikey build-sakke` for `key`, as [`Setup::build`] passes them.
fn s_build_args(s: &Setup, key: &str) -> Vec<String> {
    args(&[
        "mikey",
        "build-sakke",
        "--json",
        "--key",
        key,
        "--key-id",
        "10000001",
        "--purpose",
        "pck",
        "--to-uid",
        &hex::encode(s.bob.uid),
        "--z",
        &hex::encode(s.kms.z.to_octets()),
        "--from-uid",
        &hex::encode(s.alice.uid),
        "--ssk",
        &hex::encode(s.alice.ssk.as_bytes()),
        "--pvt",
        &hex::encode(s.alice.pvt),
        "--kpak",
        &hex::encode(s.kms.kpak.to_octets()),
    ])
}

#[test]
fn keys_are_read_from_files() {
    let s = Setup::new();
    let dir = mbms_lab::TempDir::new("cli-sakke");
    let key_file = dir.path().join("key");
    // Raw octets (not printable text, so not read as hex).
    std::fs::write(&key_file, [0x83u8; 16]).unwrap();
    let rsk_file = dir.path().join("rsk");
    std::fs::write(&rsk_file, hex::encode(s.bob.rsk.as_bytes())).unwrap();
    let (code, v) = s.build(&["--key", &format!("@{}", key_file.display())]);
    assert_eq!(code, Some(0), "{v}");
    let msg = v["message"].as_str().unwrap();
    let msg_file = dir.path().join("msg");
    std::fs::write(&msg_file, hex::decode(msg).unwrap()).unwrap();
    let mut a = args(&[
        "mikey",
        "verify-sakke",
        "--json",
        "--at",
        "2027-01-15T08:00:00Z",
    ]);
    a.extend(args(&[
        "--uid",
        &hex::encode(s.bob.uid),
        "--rsk",
        &format!("@{}", rsk_file.display()),
        "--z",
        &hex::encode(s.kms.z.to_octets()),
        "--kpak",
        &hex::encode(s.kms.kpak.to_octets()),
        "--from-uid",
        &hex::encode(s.alice.uid),
        &format!("@{}", msg_file.display()),
    ]));
    let (code, v) = run(&a);
    assert_eq!(code, Some(0), "{v}");
    assert_eq!(v["key"], "83".repeat(16));
}

#[test]
fn malformed_arguments_exit_2() {
    let s = Setup::new();
    let key = "000102030405060708090a0b0c0d0e0f";
    // A key ID tagged for another purpose, a short key, bad hex, a bad time.
    assert_eq!(s.build(&["--key", key, "--key-id", "20000001"]).0, Some(2));
    assert_eq!(s.build(&["--key", "0001"]).0, Some(2));
    assert_eq!(s.build(&["--key", "zz"]).0, Some(2));
    assert_eq!(s.build(&["--key", key, "--time", "yesterday"]).0, Some(2));
    assert_eq!(s.build(&["--key", key, "--purpose", "msk"]).0, Some(2));
    let (_, v) = s.build(&["--key", key]);
    let msg = v["message"].as_str().unwrap();
    assert_eq!(s.verify(msg, &["--at", "not a time"]).0, Some(2));
    assert_eq!(s.verify("0g", &[]).0, Some(2));
}

#[test]
fn the_streamwide_gmk_message_verifies_as_of_its_time() {
    let v = common::load("streamwide-mikey-sakke");
    let user = |uri: &str| {
        v["users"]
            .as_array()
            .unwrap()
            .iter()
            .find(|u| u["uri"] == uri)
            .unwrap()
            .clone()
    };
    let m = v["messages"].as_array().unwrap()[0].clone();
    assert_eq!(m["name"], "GMK");
    let gms = user("gms@streamwide.com");
    let alice = user("sip:alice@streamwide.com");
    let s = |v: &Value, k: &str| v[k].as_str().unwrap().to_owned();
    let a = args(&[
        "mikey",
        "verify-sakke",
        "--json",
        "--uid",
        &s(&alice, "uid"),
        "--uri",
        "sip:alice@streamwide.com",
        "--rsk",
        &s(&alice, "rsk"),
        "--z",
        &s(&v["kms"], "z"),
        "--kpak",
        &s(&v["kms"], "kpak"),
        "--from-uid",
        &s(&gms, "uid"),
        "--at",
        "2025-10-02T23:50:00Z",
        &s(&m, "message"),
    ]);
    let (code, out) = run(&a);
    assert_eq!(code, Some(0), "{out}");
    assert_eq!(out["key"], m["key"]);
    assert_eq!(out["key_id"], "0df9bc39");
    assert_eq!(out["csb_id"], "06a12aea");
    assert_eq!(out["purpose"], "gmk");
    assert_eq!(out["time"], "2025-10-02T23:47:52.000Z");
    // Today, it is stale.
    let mut now = a.clone();
    let at = now.iter().position(|x| x == "--at").unwrap();
    now.drain(at..at + 2);
    let (code, out) = run(&now);
    assert_eq!(
        (code, &out["reason"]),
        (Some(1), &Value::from("stale_time"))
    );
}

//! `mbms-keys gba …` against the vectors ks-naf-01, ks-int-naf-01 and mrk-01.

use std::fs;
use std::process::{Command, Output};

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mbms-keys");
const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/proto-vectors/");

fn load(name: &str) -> Value {
    let text = fs::read_to_string(format!("{DIR}{name}.json")).expect("vector file");
    serde_json::from_str(&text).expect("JSON")
}

fn field<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    path.iter()
        .fold(v, |cur, key| &cur[key])
        .as_str()
        .unwrap_or_else(|| panic!("missing {path:?}"))
}

fn gba(args: &[&str]) -> Output {
    gba_with_env(args, &[])
}

/// `mbms-keys gba ARGS` with the environment variables `env` set.
fn gba_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    Command::new(BIN)
        .arg("gba")
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("run mbms-keys")
}

fn stdout_ok(args: &[&str]) -> String {
    stdout_ok_with_env(args, &[])
}

/// The standard output of a successful `mbms-keys gba ARGS` with `env` set.
fn stdout_ok_with_env(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = gba_with_env(args, env);
    assert!(
        out.status.success(),
        "gba {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8")
}

fn assert_usage_error(args: &[&str]) {
    let out = gba(args);
    assert_eq!(out.status.code(), Some(2), "gba {args:?}");
    assert!(out.stdout.is_empty(), "gba {args:?}");
    assert!(!out.stderr.is_empty(), "gba {args:?}");
}

fn ks_naf_args<'a>(v: &'a Value, ks: &'a str) -> Vec<&'a str> {
    vec![
        "ks-naf",
        "--ks",
        ks,
        "--rand",
        field(v, &["inputs", "rand"]),
        "--impi",
        field(v, &["inputs", "impi"]),
        "--naf-fqdn",
        field(v, &["inputs", "naf_fqdn"]),
    ]
}

#[test]
fn ks_naf_from_ks_and_from_ck_ik() {
    let v = load("ks-naf-01");
    let expect = format!("{}\n", field(&v, &["expected", "ks_naf"]));
    let ks = field(&v, &["intermediates", "ks"]);
    assert_eq!(stdout_ok(&ks_naf_args(&v, ks)), expect);
    let out = stdout_ok(&[
        "ks-naf",
        "--ck",
        field(&v, &["inputs", "ck"]),
        "--ik",
        field(&v, &["inputs", "ik"]),
        "--rand",
        field(&v, &["inputs", "rand"]),
        "--impi",
        field(&v, &["inputs", "impi"]),
        "--naf-fqdn",
        field(&v, &["inputs", "naf_fqdn"]),
    ]);
    assert_eq!(out, expect);
}

#[test]
fn ks_int_naf_with_gba_u() {
    let v = load("ks-int-naf-01");
    let mut args = ks_naf_args(&v, field(&v, &["intermediates", "ks"]));
    args.push("--gba-u");
    assert_eq!(
        stdout_ok(&args),
        format!("{}\n", field(&v, &["expected", "ks_int_naf"]))
    );
}

#[test]
fn mrk_gba_me_and_gba_u() {
    let v = load("mrk-01");
    let ks_naf = field(&v, &["intermediates", "ks_naf"]);
    assert_eq!(
        stdout_ok(&["mrk", "--ks-naf", ks_naf]),
        format!("{}\n", field(&v, &["expected", "gba_me", "mrk"]))
    );
    // GBA_U: Ks_ext_NAF equals Ks_NAF for the same inputs, and MRK = Ks_ext_NAF.
    assert_eq!(
        stdout_ok(&["mrk", "--ks-ext-naf", ks_naf]),
        format!("{}\n", field(&v, &["expected", "gba_u", "mrk"]))
    );
}

#[test]
fn btid_from_rand() {
    let out = stdout_ok(&[
        "btid",
        "--rand",
        "202122232425262728292a2b2c2d2e2f",
        "--bsf",
        "bsf.mnc001.mcc001.pub.3gppnetwork.org",
    ]);
    assert_eq!(
        out,
        "ICEiIyQlJicoKSorLC0uLw==@bsf.mnc001.mcc001.pub.3gppnetwork.org\n"
    );
}

#[test]
fn bad_input_exits_2() {
    assert_usage_error(&["btid", "--rand", "2021", "--bsf", "bsf.example"]);
    assert_usage_error(&[
        "btid",
        "--rand",
        "202122232425262728292a2b2c2d2e2f",
        "--bsf",
        "a b",
    ]);
    assert_usage_error(&["mrk"]);
    assert_usage_error(&["mrk", "--ks-naf", "00"]);
    assert_usage_error(&["mrk", "--ks-naf", &"zz".repeat(32)]);
    assert_usage_error(&[
        "ks-naf",
        "--ck",
        "00",
        "--rand",
        "00",
        "--impi",
        "a",
        "--naf-fqdn",
        "b",
    ]);
    assert_usage_error(&[
        "ks-naf",
        "--ks",
        &"00".repeat(32),
        "--rand",
        "00",
        "--impi",
        "a",
        "--naf-fqdn",
        "b",
    ]);
}

#[test]
fn key_options_from_a_file_or_the_environment() {
    let v = load("mrk-01");
    let ks_naf = field(&v, &["intermediates", "ks_naf"]);
    let want = stdout_ok(&["mrk", "--ks-naf", ks_naf]);
    let dir = std::env::temp_dir().join(format!("mbms-keys-cli-gba-{}", std::process::id()));
    fs::create_dir_all(&dir).expect("temp dir");
    let raw = dir.join("ks_naf.bin");
    fs::write(&raw, hex::decode(ks_naf).expect("hex")).expect("write");
    let text = dir.join("ks_naf.hex");
    fs::write(&text, format!("{ks_naf}\n")).expect("write");
    for path in [&raw, &text] {
        let arg = format!("@{}", path.display());
        assert_eq!(stdout_ok(&["mrk", "--ks-naf", &arg]), want, "{arg}");
    }
    assert_eq!(
        stdout_ok_with_env(&["mrk"], &[("MBMS_KS_NAF", ks_naf)]),
        want
    );

    let k = load("ks-naf-01");
    let ks = field(&k, &["intermediates", "ks"]);
    let without_ks: Vec<&str> = ks_naf_args(&k, ks)
        .into_iter()
        .filter(|a| *a != "--ks" && *a != ks)
        .collect();
    assert_eq!(
        stdout_ok_with_env(&without_ks, &[("MBMS_KS", ks)]),
        stdout_ok(&ks_naf_args(&k, ks))
    );
    assert_eq!(
        stdout_ok_with_env(
            &[
                "ks-naf",
                "--rand",
                field(&k, &["inputs", "rand"]),
                "--impi",
                field(&k, &["inputs", "impi"]),
                "--naf-fqdn",
                field(&k, &["inputs", "naf_fqdn"]),
            ],
            &[
                ("MBMS_CK", field(&k, &["inputs", "ck"])),
                ("MBMS_IK", field(&k, &["inputs", "ik"])),
            ]
        ),
        format!("{}\n", field(&k, &["expected", "ks_naf"]))
    );
    let missing = gba(&["mrk", "--ks-naf", "@/nonexistent/ks_naf"]);
    assert_eq!(missing.status.code(), Some(2));
    let err = String::from_utf8_lossy(&missing.stderr);
    assert!(
        err.contains("--ks-naf: reading /nonexistent/ks_naf"),
        "{err}"
    );
}

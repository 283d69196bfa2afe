//! `mbms-keys ue` arguments: where pushes can arrive.

use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_mbms-keys");

#[test]
fn help_says_pushes_go_to_the_bmsc_ue_port() {
    let out = Command::new(BIN)
        .args(["ue", "--help"])
        .output()
        .expect("run mbms-keys");
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).expect("UTF-8");
    assert!(help.contains("ue_port"), "{help}");
}

/// The BM-SC pushes MSK messages to the port of its own configuration (`ue_port`, 2269 by
/// default): registration does not carry the UE's port, so a UE listening elsewhere is told.
#[test]
fn a_registering_ue_on_another_port_is_told_where_the_bmsc_pushes() {
    let out = Command::new(BIN)
        .args([
            "ue",
            "--bmsc",
            "http://127.0.0.1:1",
            "--btid",
            "dGVzdA==@bsf.example.org",
            "--service",
            "urn:example:svc",
            "--listen",
            "127.0.0.1:0",
        ])
        .env("MBMS_KS_NAF", "00".repeat(32))
        .output()
        .expect("run mbms-keys");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "no BM-SC there: {err}");
    assert!(
        err.contains("ue_port") && err.contains("2269"),
        "no note on the push port: {err}"
    );
}

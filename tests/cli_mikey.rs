//! `mbms-keys mikey build-msk | build-mtk | build-ack | verify` against the vectors.

mod common;

use std::process::Command;

use serde_json::Value;

fn run(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mbms-keys"))
        .args(args)
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn input(v: &Value, k: &str) -> String {
    v["inputs"][k].as_str().unwrap().to_string()
}

fn dec(v: &Value, k: &str) -> String {
    u32::from_str_radix(&input(v, k), 16).unwrap().to_string()
}

#[test]
fn build_msk_reproduces_the_four_msk_vectors() {
    for (name, extra) in [
        ("msk-message-normal", vec!["--ack"]),
        ("msk-message-validity-update", vec!["--ack"]),
        ("msk-message-invalidation", vec!["--ack", "--invalidate"]),
        ("msk-message-solicited-pull", vec!["--solicited-pull"]),
    ] {
        let v = common::load(name);
        let mut args = vec![
            "mikey".to_string(),
            "build-msk".into(),
            "--muk".into(),
            input(&v, "muk"),
            "--key-domain".into(),
            input(&v, "key_domain_id"),
            "--msk-id".into(),
            input(&v, "msk_id"),
            "--counter".into(),
            dec(&v, "counter"),
            "--rand".into(),
            input(&v, "rand"),
            "--idi".into(),
            input(&v, "idi"),
            "--idr".into(),
            input(&v, "idr"),
        ];
        if let Some(m) = v["inputs"]["msk"].as_str() {
            args.extend(["--msk".into(), m.to_string()]);
        }
        if !extra.contains(&"--invalidate") && !extra.contains(&"--solicited-pull") {
            args.extend([
                "--seql".into(),
                dec(&v, "seql"),
                "--sequ".into(),
                dec(&v, "sequ"),
            ]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = run(&refs);
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(out, v["message"].as_str().unwrap(), "{name}");
    }
}

#[test]
fn build_mtk_reproduces_download_and_streaming_vectors() {
    for name in ["mtk-message-download", "mtk-message-streaming"] {
        let v = common::load(name);
        let mut args = vec![
            "mikey".to_string(),
            "build-mtk".into(),
            "--msk".into(),
            input(&v, "msk"),
            "--key-domain".into(),
            input(&v, "key_domain_id"),
            "--msk-id".into(),
            input(&v, "msk_id"),
            "--mtk-id".into(),
            dec(&v, "mtk_id"),
            "--mtk".into(),
            input(&v, "mtk"),
            "--counter".into(),
            dec(&v, "counter"),
        ];
        if let Some(s) = v["inputs"]["mtk_salt"].as_str() {
            args.extend(["--salt".into(), s.to_string()]);
        }
        if let Some(m) = v["inputs"].get("srtp_id_map") {
            let ssrc = u32::from_str_radix(m["ssrc"].as_str().unwrap(), 16).unwrap();
            let roc = u32::from_str_radix(m["roc"].as_str().unwrap(), 16).unwrap();
            args.extend([
                "--srtp-ssrc".into(),
                ssrc.to_string(),
                "--srtp-roc".into(),
                roc.to_string(),
            ]);
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, out, err) = run(&refs);
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(out, v["message"].as_str().unwrap(), "{name}");
    }
}

#[test]
fn build_ack_reproduces_the_ack_vector() {
    let v = common::load("msk-ack");
    let (code, out, err) = run(&[
        "mikey",
        "build-ack",
        "--muk",
        &input(&v, "muk"),
        "--of",
        &input(&v, "request"),
    ]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(out, v["message"].as_str().unwrap());
}

fn verify_json(key: &str, msg: &str, of: Option<&str>) -> (i32, Value, String) {
    let mut args = vec!["mikey", "verify", "--json", "--key", key];
    if let Some(of) = of {
        args.extend(["--of", of]);
    }
    args.push(msg);
    let (code, out, err) = run(&args);
    let v = if out.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&out).unwrap()
    };
    (code, v, err)
}

#[test]
fn verify_reports_every_vector() {
    let muk = input(&common::load("msk-message-normal"), "muk");
    let normal = common::load("msk-message-normal");
    let (code, j, err) = verify_json(&muk, normal["message"].as_str().unwrap(), None);
    assert_eq!(code, 0, "{err}");
    assert_eq!(j["mac_ok"], true);
    assert_eq!(j["kind"], "msk");
    assert_eq!(j["csb_id"], 0x00010002);
    assert_eq!(j["counter"], 5);
    assert_eq!(j["key_domain_id"], "00f110");
    assert_eq!(j["msk_id"], "00010002");
    assert_eq!(j["mtk_id"], Value::Null);
    assert_eq!(j["v_flag"], true);
    assert_eq!(j["key_data"]["type"], "TGK");
    assert_eq!(j["key_data"]["key"], "b0b1b2b3b4b5b6b7b8b9babbbcbdbebf");
    assert_eq!(j["key_data"]["salt"], Value::Null);
    assert_eq!(j["key_data"]["kv_from"], "0001");
    assert_eq!(j["key_data"]["kv_to"], "ffff");

    let vu = common::load("msk-message-validity-update");
    let (code, j, _) = verify_json(&muk, vu["message"].as_str().unwrap(), None);
    assert_eq!((code, &j["key_data"]["key"]), (0, &Value::from("")));

    let sp = common::load("msk-message-solicited-pull");
    let (code, j, _) = verify_json(&muk, sp["message"].as_str().unwrap(), None);
    assert_eq!(
        (code, &j["key_data"], &j["v_flag"]),
        (0, &Value::Null, &Value::from(false))
    );

    for name in ["mtk-message-download", "mtk-message-streaming"] {
        let v = common::load(name);
        let (code, j, err) = verify_json(&input(&v, "msk"), v["message"].as_str().unwrap(), None);
        assert_eq!(code, 0, "{name}: {err}");
        assert_eq!(j["kind"], "mtk");
        assert_eq!(
            j["mtk_id"],
            u16::from_str_radix(&input(&v, "mtk_id"), 16).unwrap()
        );
        assert_eq!(j["key_data"]["key"], input(&v, "mtk"));
        assert_eq!(
            j["key_data"]["type"],
            if v["inputs"]["mtk_salt"].is_null() {
                "TEK"
            } else {
                "TEK+SALT"
            }
        );
    }

    let ack = common::load("msk-ack");
    let (code, j, err) = verify_json(
        &muk,
        ack["message"].as_str().unwrap(),
        Some(&input(&ack, "request")),
    );
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        (j["kind"].as_str(), j["mac_ok"].as_bool()),
        (Some("msk-ack"), Some(true))
    );
}

#[test]
fn verify_with_wrong_key_or_tampered_octet_exits_1() {
    let v = common::load("msk-message-normal");
    let msg = v["message"].as_str().unwrap();
    let mut wrong = input(&v, "muk");
    wrong.replace_range(0..2, "ff");
    let (code, j, _) = verify_json(&wrong, msg, None);
    assert_eq!((code, &j["mac_ok"]), (1, &Value::from(false)));
    // Flip one bit of the RAND: still well-formed.
    let mut bytes = hex::decode(msg).unwrap();
    bytes[40] ^= 0x01;
    let (code, j, _) = verify_json(&input(&v, "muk"), &hex::encode(bytes), None);
    assert_eq!((code, &j["mac_ok"]), (1, &Value::from(false)));
}

#[test]
fn verify_of_malformed_input_exits_2_with_the_parse_error() {
    let v = common::load("msk-message-normal");
    let msg = v["message"].as_str().unwrap();
    let (code, _, err) = run(&[
        "mikey",
        "verify",
        "--key",
        &input(&v, "muk"),
        &msg[..msg.len() - 2],
    ]);
    assert_eq!(code, 2);
    assert!(
        err.contains("KEMAC payload") && err.contains("offset"),
        "{err}"
    );
}

//! `mbms-keys mikey build-msk | build-mtk | build-ack | verify` against the vectors, and
//! `mikey decode` (text and `--json`) of a MIKEY-SAKKE message.

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

#[test]
fn verify_of_an_acknowledgement_without_of_is_a_usage_error() {
    let ack = common::load("msk-ack");
    let muk = input(&common::load("msk-message-normal"), "muk");
    let (code, out, err) = run(&[
        "mikey",
        "verify",
        "--key",
        &muk,
        ack["message"].as_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{out}{err}");
    assert!(out.is_empty(), "no report when no MAC was checked: {out}");
    assert!(err.contains("--of"), "{err}");
}

fn run_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_mbms-keys"))
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("binary runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).trim().to_string(),
        String::from_utf8_lossy(&out.stderr).to_string(),
    )
}

fn temp_path(name: &str, contents: &[u8]) -> String {
    let dir = std::env::temp_dir().join(format!("mbms-keys-cli-mikey-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("temp file");
    path.display().to_string()
}

#[test]
fn key_options_read_hex_files_raw_files_and_the_environment_alike() {
    let v = common::load("mtk-message-download");
    let msk = input(&v, "msk");
    let base = [
        "mikey",
        "build-mtk",
        "--key-domain",
        &input(&v, "key_domain_id"),
        "--msk-id",
        &input(&v, "msk_id"),
        "--mtk-id",
        &dec(&v, "mtk_id"),
        "--counter",
        &dec(&v, "counter"),
    ];
    let mtk = input(&v, "mtk");
    let build = |msk_arg: Option<&str>, mtk_arg: Option<&str>, env: &[(&str, &str)]| {
        let mut args = base.to_vec();
        if let Some(m) = msk_arg {
            args.extend(["--msk", m]);
        }
        if let Some(m) = mtk_arg {
            args.extend(["--mtk", m]);
        }
        run_env(&args, env)
    };
    let (code, want, err) = build(Some(&msk), Some(&mtk), &[]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(want, v["message"].as_str().unwrap());

    let hex_file = format!("@{}", temp_path("msk.hex", format!("{msk}\n").as_bytes()));
    let raw_file = format!("@{}", temp_path("msk.bin", &hex::decode(&msk).unwrap()));
    for (msk_arg, env) in [
        (Some(hex_file.as_str()), vec![]),
        (Some(raw_file.as_str()), vec![]),
        (None, vec![("MBMS_MSK", msk.as_str())]),
        (None, vec![("MBMS_MSK", hex_file.as_str())]),
    ] {
        let (code, out, err) = build(msk_arg, Some(&mtk), &env);
        assert_eq!(
            (code, out.as_str()),
            (0, want.as_str()),
            "{msk_arg:?} {env:?}: {err}"
        );
    }
    let (code, out, err) = build(Some(&msk), None, &[("MBMS_MTK", mtk.as_str())]);
    assert_eq!((code, out.as_str()), (0, want.as_str()), "{err}");

    // verify --key from the environment.
    let (code, out, err) = run_env(
        &["mikey", "verify", "--json", v["message"].as_str().unwrap()],
        &[("MBMS_KEY", msk.as_str())],
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("\"mac_ok\":true"), "{out}");
}

#[test]
fn a_missing_key_file_or_a_bad_key_is_exit_2_without_the_key() {
    let v = common::load("msk-ack");
    let muk = input(&v, "muk");
    let missing = temp_path("placeholder", b"") + ".absent";
    let (code, _, err) = run(&[
        "mikey",
        "build-ack",
        "--muk",
        &format!("@{missing}"),
        "--of",
        &input(&v, "request"),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("--muk") && err.contains(&missing), "{err}");
    // One octet short: the length is named, the key is not echoed.
    let short = &muk[..muk.len() - 2];
    for (args, env) in [
        (vec!["--muk", short], vec![]),
        (vec![], vec![("MBMS_MUK", short)]),
    ] {
        let mut all = vec!["mikey", "build-ack", "--of"];
        let request = input(&v, "request");
        all.push(&request);
        all.extend(args);
        let (code, _, err) = run_env(&all, &env);
        assert_eq!(code, 2, "{err}");
        assert!(err.contains("--muk"), "{err}");
        assert!(!err.contains(short), "key echoed: {err}");
    }
    // --help names the variable but never shows its value.
    let (code, out, _) = run_env(
        &["mikey", "build-ack", "--help"],
        &[("MBMS_MUK", muk.as_str())],
    );
    assert_eq!(code, 0);
    assert!(out.contains("MBMS_MUK"), "{out}");
    assert!(!out.contains(&muk), "{out}");
}

/// The Streamwide GMK I_MESSAGE of `proto-vectors/` (MIKEY-SAKKE).
fn sakke_vector() -> String {
    let v = common::load("streamwide-mikey-sakke");
    v["messages"][0]["message"]
        .as_str()
        .expect("message")
        .to_string()
}

#[test]
fn decode_json_shows_every_mikey_sakke_field() {
    let (code, out, err) = run(&["mikey", "decode", "--json", &sakke_vector()]);
    assert_eq!(code, 0, "{err}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    let hdr = &v["hdr"];
    assert_eq!(hdr["data_type"]["name"], "SAKKE");
    assert_eq!(hdr["prf_func"]["value"], 1);
    assert_eq!(hdr["prf_func"]["name"], "PRF-HMAC-SHA-256");
    assert_eq!(hdr["cs_id_map_type"]["name"], "GENERIC-ID");
    let entry = &hdr["generic_id_map"][0];
    assert_eq!(entry["cs_id"], 4);
    assert_eq!(entry["prot_type"]["name"], "SRTP");
    assert_eq!(entry["s"], false);
    assert_eq!(entry["policy_nos"], serde_json::json!([0]));
    assert_eq!(entry["session_data"], "");
    assert_eq!(entry["spi"], "0df9bc3906a12aea");
    let p = v["payloads"].as_array().expect("payloads");
    assert_eq!(p[0]["payload"], "T");
    assert_eq!(p[0]["ts_type"]["name"], "NTP-UTC");
    assert_eq!(p[0]["ts_value"], "ec898da800000000");
    let idr: Vec<&Value> = p.iter().filter(|p| p["payload"] == "IDR").collect();
    let roles: Vec<&str> = idr
        .iter()
        .map(|i| i["id_role"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        roles,
        [
            "Initiator UID",
            "Responder UID",
            "Initiator's KMS (IDRkmsi)",
            "Responder's KMS (IDRkmsr)"
        ]
    );
    assert_eq!(idr[0]["id_role"]["value"], 8);
    assert_eq!(idr[0]["id_type"]["name"], "URI");
    assert_eq!(idr[0]["id_len"], 32);
    assert_eq!(
        idr[0]["id_data_hex"],
        "15a4d5b12856538d02d91fedbb766e6dd377b014c92e216666c8fb678608d20e"
    );
    assert!(idr[0].get("id_text").is_none(), "a binary UID is not text");
    assert_eq!(idr[2]["id_text"], "kms.mydev.streamwide.com");
    let sakke = p.iter().find(|p| p["payload"] == "SAKKE").expect("SAKKE");
    assert_eq!(sakke["sakke_params"]["name"], "Parameter Set 1");
    assert_eq!(sakke["id_scheme"]["value"], 2);
    assert_eq!(sakke["id_scheme"]["name"], "MIKEY-SAKKE UID");
    assert_eq!(sakke["sakke_data_len"], 273);
    assert_eq!(sakke["sakke_data"].as_str().unwrap().len(), 546);
    let ext = p
        .iter()
        .find(|p| p["payload"] == "General Extension")
        .expect("EXT");
    assert_eq!(ext["ext_type"]["value"], 7);
    assert_eq!(ext["ext_type"]["name"], "Key parameters (TS 33.180)");
    assert!(
        ext["data"]
            .as_str()
            .unwrap()
            .starts_with("4300000000010000")
    );
    let sign = p.last().expect("SIGN");
    assert_eq!(sign["payload"], "SIGN");
    assert_eq!(sign["sign_type"]["name"], "ECCSI");
    assert_eq!(sign["signature_len"], 129);
    assert_eq!(
        sign["eccsi"]["pvt"],
        "0468a24d49b184d7008d22f63a415debd38bfa9295f066fa6ada5951c2322d2eca1d6f1d994f22710daef776d9c54d9a338f32395080d6f2bdffb6c7895f12cda2"
    );
    assert_eq!(sign["eccsi"]["r"].as_str().unwrap().len(), 64);
    assert_eq!(sign["eccsi"]["s"].as_str().unwrap().len(), 64);
    assert_eq!(v["mac_field"]["payload"], "SIGN");
    assert_eq!(v["mac_field"]["len"], 129);
}

#[test]
fn decode_text_shows_every_mikey_sakke_field() {
    let (code, out, err) = run(&["mikey", "decode", &sakke_vector()]);
    assert_eq!(code, 0, "{err}");
    for line in [
        "Data type: SAKKE (26)",
        "PRF func: PRF-HMAC-SHA-256 (1)",
        "CS ID map type: GENERIC-ID (2)",
        "SPI: 0df9bc3906a12aea",
        "TS type: NTP-UTC (0)",
        "IDR payload (offset 53)",
        "ID role: Initiator UID (8)",
        "ID role: Responder UID (9)",
        "ID text: kms.mydev.streamwide.com",
        "SAKKE payload (offset 217)",
        "SAKKE params: Parameter Set 1 (1)",
        "ID scheme: MIKEY-SAKKE UID (2)",
        "SAKKE data len: 273",
        "EXT type: Key parameters (TS 33.180) (7)",
        "Sign type: ECCSI (2)",
        "PVT: 0468a24d49b184d7",
    ] {
        assert!(out.contains(line), "{line} not in\n{out}");
    }
}

//! `mbms-keys mikey decode`: the message as a hex argument, as @FILE with
//! white space, or on standard input; a text tree or `--json`; malformed
//! input exits with code 2 and says which payload failed at which offset.

mod common;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use serde_json::Value;

const VECTOR: &str = "msk-message-normal";

/// The vector's message and its payloads (name, offset), HDR excluded,
/// taken from the vector's own payload list.
fn vector() -> (Vec<u8>, Vec<(String, usize)>) {
    let v = common::load(VECTOR);
    let message = common::hex_field(&v, &["message"]);
    let mut offset = 0;
    let mut payloads = Vec::new();
    for p in v["payloads"].as_array().expect("payloads") {
        let name = p["payload"].as_str().expect("payload name");
        if name != "HDR" {
            payloads.push((name.to_string(), offset));
        }
        offset += p["hex"].as_str().expect("payload hex").len() / 2;
    }
    assert_eq!(offset, message.len(), "vector payloads cover the message");
    (message, payloads)
}

fn decode(args: &[&str], stdin: Option<&str>) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mbms-keys"));
    cmd.args(["mikey", "decode"]).args(args);
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    });
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("mbms-keys runs");
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(text.as_bytes())
            .expect("write stdin");
    }
    child.wait_with_output().expect("mbms-keys exits")
}

fn stdout(o: &Output) -> String {
    String::from_utf8(o.stdout.clone()).expect("UTF-8 stdout")
}

fn stderr(o: &Output) -> String {
    String::from_utf8(o.stderr.clone()).expect("UTF-8 stderr")
}

fn temp_file(name: &str, contents: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("mbms-keys-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join(name);
    std::fs::write(&path, contents).expect("temp file");
    path
}

/// The CLI's name of a payload in the vector's naming.
fn cli_name(vector_name: &str) -> &str {
    match vector_name {
        "EXT" => "General Extension",
        other => other,
    }
}

/// Hex with spaces and line breaks, as pasted from a dump.
fn spaced_hex(bytes: &[u8]) -> String {
    bytes
        .chunks(16)
        .map(|line| {
            line.iter()
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

#[test]
fn hex_argument_prints_every_payload_in_the_text_tree() {
    let (message, payloads) = vector();
    let out = decode(&[&hex::encode(&message)], None);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    assert!(text.contains(&format!("MIKEY message, {} octets", message.len())));
    assert!(text.contains("Common Header (HDR)"), "{text}");
    for (name, offset) in &payloads {
        let line = format!("{} payload (offset {offset})", cli_name(name));
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
    for needle in [
        "Key ID (3)",
        "MBMS Key Domain ID (0)",
        "Value: 00f110",
        "MBMS Service Key ID (1)",
        "Value: 00010002",
        "COUNTER (2)",
        "bmsc.mnc001.mcc001.pub.3gppnetwork.org",
        "AES-CM-128 (1)",
        "HMAC-SHA-1-160 (1)",
    ] {
        assert!(text.contains(needle), "missing {needle:?} in\n{text}");
    }
}

#[test]
fn at_file_with_white_space_and_stdin_give_the_same_tree() {
    let (message, _) = vector();
    let want = decode(&[&hex::encode(&message)], None);
    assert_eq!(want.status.code(), Some(0));

    let path = temp_file("msk.hex", &spaced_hex(&message));
    let arg = format!("@{}", path.display());
    let from_file = decode(&[&arg], None);
    assert_eq!(from_file.status.code(), Some(0), "{}", stderr(&from_file));
    assert_eq!(stdout(&from_file), stdout(&want));

    let from_stdin = decode(&["-"], Some(&spaced_hex(&message)));
    assert_eq!(from_stdin.status.code(), Some(0), "{}", stderr(&from_stdin));
    assert_eq!(stdout(&from_stdin), stdout(&want));
}

#[test]
fn json_lists_the_payloads_and_the_key_ids() {
    let (message, payloads) = vector();
    let v = common::load(VECTOR);
    let out = decode(&["--json", &hex::encode(&message)], None);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let json: Value = serde_json::from_str(&stdout(&out)).expect("--json prints JSON");
    let list = json["payloads"].as_array().expect("payloads array");
    assert_eq!(list.len(), payloads.len());
    for (p, (name, offset)) in list.iter().zip(&payloads) {
        assert_eq!(p["payload"], cli_name(name));
        assert_eq!(p["offset"], *offset);
    }
    let key_ids = list[0]["key_ids"].as_array().expect("Key ID sub-payloads");
    let ids: Vec<(u64, &str)> = key_ids
        .iter()
        .map(|k| {
            (
                k["type"]["value"].as_u64().expect("type"),
                k["value"].as_str().expect("value"),
            )
        })
        .collect();
    assert_eq!(
        ids,
        [
            (0, v["inputs"]["key_domain_id"].as_str().unwrap()),
            (1, v["inputs"]["msk_id"].as_str().unwrap()),
        ]
    );
    assert_eq!(json["length"], message.len());
}

#[test]
fn truncated_message_exits_2_naming_payload_and_offset() {
    let (message, payloads) = vector();
    let kemac = payloads.iter().find(|p| p.0 == "KEMAC").expect("KEMAC").1;
    let idr = payloads
        .iter()
        .filter(|p| p.0 == "ID")
        .nth(1)
        .expect("IDr")
        .1;
    let mac = message.len() - 20;
    assert!(kemac < mac, "the MAC is KEMAC's last field");
    // Cut inside the KEMAC MAC, and inside IDr's ID data (RFC 3830 §6.2, §6.7).
    for (len, want) in [
        (message.len() - 1, format!("KEMAC payload at offset {mac}")),
        (idr + 10, format!("ID payload at offset {}", idr + 4)),
    ] {
        let out = decode(&[&hex::encode(&message[..len])], None);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(err.contains(&want), "{want:?} not in {err:?}");
        assert!(err.contains("truncated"), "{err}");
        assert!(stdout(&out).is_empty());
    }
}

#[test]
fn trailing_octet_exits_2_naming_the_offset() {
    let (mut message, _) = vector();
    let end = message.len();
    message.push(0x00);
    let out = decode(&[&hex::encode(&message)], None);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains(&format!("message at offset {end}")), "{err}");
    assert!(err.contains("trailing"), "{err}");
}

#[test]
fn non_hex_input_exits_2() {
    for bad in ["01zz", "010", "-x-"] {
        let out = decode(&["--", bad], None);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{bad}: {err}");
        assert!(err.contains("hex"), "{bad}: {err}");
    }
    let out = decode(&["-"], Some("01 00 0g"));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("hex"));
}

fn temp_bytes(name: &str, contents: &[u8]) -> PathBuf {
    let path = temp_file(name, "");
    std::fs::write(&path, contents).expect("temp file");
    path
}

/// `aa:bb:cc`, as Wireshark copies bytes.
fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

#[test]
fn a_binary_mikey_file_decodes_like_its_hex() {
    let (message, _) = vector();
    let want = decode(&[&hex::encode(&message)], None);
    assert_eq!(want.status.code(), Some(0));
    let path = temp_bytes("msk.mikey", &message);
    let from_binary = decode(&[&format!("@{}", path.display())], None);
    assert_eq!(
        from_binary.status.code(),
        Some(0),
        "{}",
        stderr(&from_binary)
    );
    assert_eq!(stdout(&from_binary), stdout(&want));
    // A binary file that is not MIKEY is malformed input, exit 2, not a hex error.
    let junk = temp_bytes("junk.mikey", &[0x01, 0xff, 0x00]);
    let out = decode(&[&format!("@{}", junk.display())], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("malformed MIKEY"), "{}", stderr(&out));
}

#[test]
fn colon_separated_and_0x_prefixed_hex_are_accepted_everywhere() {
    let (message, _) = vector();
    let want = stdout(&decode(&[&hex::encode(&message)], None));
    let colons = colon_hex(&message);
    let from_arg = decode(&[&colons], None);
    assert_eq!(from_arg.status.code(), Some(0), "{}", stderr(&from_arg));
    assert_eq!(stdout(&from_arg), want);
    let from_stdin = decode(&["-"], Some(&format!("{colons}\n")));
    assert_eq!(from_stdin.status.code(), Some(0), "{}", stderr(&from_stdin));
    assert_eq!(stdout(&from_stdin), want);
    let path = temp_file("msk.colons", &format!("0x{}\n", hex::encode(&message)));
    let from_file = decode(&[&format!("@{}", path.display())], None);
    assert_eq!(from_file.status.code(), Some(0), "{}", stderr(&from_file));
    assert_eq!(stdout(&from_file), want);
    // Text that is not hex stays a hex error.
    let bad = temp_file("bad.hex", "01:zz\n");
    let out = decode(&[&format!("@{}", bad.display())], None);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("invalid hex"), "{}", stderr(&out));
}

//! The Wireshark Lua dissector `tools/wireshark/mbms_mikey.lua` (docs/oracles.md
//! §4e) against the codec: every MIKEY message of
//! `proto-vectors/`, the messages of a BM-SC (MSK pushes, MTK messages, the
//! acknowledgements they draw, MTK objects), one of them as an HTTP body, a
//! MIKEY-SAKKE-shaped message, and malformed ones (every truncation, lying
//! lengths, trailing octets, corrupted octets, the fuzz corpus).
//!
//! The values tshark shows with the script loaded must be those the codec
//! reads from the same octets; bad input must be marked, never raise a Lua
//! error. Skips when tshark or text2pcap is absent; fails instead when
//! `MBMS_REQUIRE_ORACLES=1`.

mod common;
#[allow(dead_code)]
#[path = "bmsc_distribution/harness.rs"]
mod harness;
#[path = "wireshark_lua/tshark.rs"]
mod tshark;

use std::collections::BTreeMap;

use mbms_keys::mikey::{ExtType, Extension, KeyIdEntry, Message, Payload};

use harness::{DEST_A, DEST_B, Log, TempDir, Ue, at, config, download, run, service, start, t0};
use tshark::{EXPERTS, Row, say, tshark};

/// What the script should show for a message the codec decodes: field →
/// values joined by ','.
fn expected(m: &Message) -> BTreeMap<&'static str, String> {
    let mut e: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut push = |f: &'static str, v: String| e.entry(f).or_default().push(v);
    push(
        "mbms_mikey.cs_id_map_type",
        m.hdr.cs_id_map.map_type().0.to_string(),
    );
    let mut keys: Option<(Option<String>, Option<String>, Option<String>)> = None;
    for p in &m.payloads {
        if let Payload::Idr(idr) = p {
            push("mbms_mikey.idr.role", idr.role.0.to_string());
        }
        let Payload::Ext(ext) = p else { continue };
        push("mbms_mikey.ext.type", ext.ext_type().0.to_string());
        if let Extension::Other {
            ext_type: ExtType::KEY_PARAMS,
            data,
        } = ext
        {
            push("mbms_mikey.key_params", hex::encode(data));
        }
        let Extension::KeyId(entries) = ext else {
            continue;
        };
        let (mut domain, mut msk, mut mtk) = (None, None, None);
        for k in entries {
            push("mbms_mikey.key_id.type", k.id_type().0.to_string());
            match k {
                KeyIdEntry::KeyDomain(d) => {
                    let hex = hex::encode(d.0);
                    push("mbms_mikey.key_domain", hex.clone());
                    domain.get_or_insert(hex);
                }
                KeyIdEntry::Msk(id) => {
                    push("mbms_mikey.msk_id", format!("0x{:08x}", id.to_u32()));
                    push("mbms_mikey.key_group", id.key_group.to_string());
                    push("mbms_mikey.key_number", id.key_number.to_string());
                    msk.get_or_insert(format!("{:08x}", id.to_u32()));
                }
                KeyIdEntry::Mtk(id) => {
                    push("mbms_mikey.mtk_id", format!("0x{:04x}", id.0));
                    mtk.get_or_insert(format!("{:04x}", id.0));
                }
                KeyIdEntry::Other { value, .. } if !value.is_empty() => {
                    push("mbms_mikey.key_id.value", hex::encode(value));
                }
                KeyIdEntry::Other { .. } => {}
            }
        }
        keys.get_or_insert((domain, msk, mtk));
    }
    // The Info summary of the first Key ID extension (TS 33.246 naming).
    if let Some((domain, Some(msk), mtk)) = keys {
        let domain = domain.unwrap_or_else(|| "?".to_owned());
        let summary = match mtk {
            Some(mtk) => format!("MTK {domain}/{msk}#{mtk}"),
            None => format!("MSK {domain}/{msk}"),
        };
        push("mbms_mikey.summary", summary);
    }
    e.into_iter().map(|(f, v)| (f, v.join(","))).collect()
}

/// The fields compared with [`expected`].
const COMPARED: &[&str] = &[
    "mbms_mikey.key_domain",
    "mbms_mikey.msk_id",
    "mbms_mikey.key_group",
    "mbms_mikey.key_number",
    "mbms_mikey.mtk_id",
    "mbms_mikey.key_id.type",
    "mbms_mikey.key_id.value",
    "mbms_mikey.ext.type",
    "mbms_mikey.cs_id_map_type",
    "mbms_mikey.idr.role",
    "mbms_mikey.key_params",
    "mbms_mikey.summary",
];

/// One dissected, well-formed message against the codec: every compared
/// field equal, no expert info, the summary at the end of the Info column.
fn check(name: &str, bytes: &[u8], row: &Row) {
    let rx = Message::decode(bytes).unwrap_or_else(|e| panic!("{name}: the codec refuses it: {e}"));
    let want = expected(rx.message());
    let ctx = format!("{name}: {}", hex::encode(bytes));
    for f in COMPARED {
        let w = want.get(f).map_or("", String::as_str);
        assert_eq!(row[f], w, "{f} of {ctx}");
    }
    for f in EXPERTS {
        assert_eq!(row[f], "", "{f} of {ctx}");
    }
    if let Some(s) = want.get("mbms_mikey.summary") {
        assert!(
            row["_ws.col.Info"].ends_with(&format!(", {s}")),
            "Info of {ctx}: {}",
            row["_ws.col.Info"]
        );
    }
}

/// The messages a BM-SC sends (its distributor in virtual time, one UE
/// registered to a download and a streaming service, an MSK rotation), the
/// acknowledgements the UE answers with, and the MTK objects it writes, each
/// with its kind.
fn bmsc_messages(dir: &TempDir) -> Vec<(&'static str, Vec<u8>)> {
    let services = download("a", 1, "20s", "5s", DEST_A, dir.path())
        + &service(
            "s",
            2,
            "20s",
            "5s",
            DEST_B,
            "transport = \"streaming\"\n[services.srtp]\nssrc = 0x11223344\nroc = 5",
        );
    let mut b = start(
        dir.path(),
        config(dir.path(), 1, &[], &services),
        1,
        t0(),
        harness::tuning(),
    );
    let mut ues = [Ue::new(&b, 0, &[DEST_A, DEST_B])];
    let mut log = Log::default();
    b.register(0, &["a", "s"], t0());
    run(&mut b.d, t0(), at(30), &mut ues, &mut log);
    let mut out = Vec::new();
    // A second UE of the same subscriber answers the pushes as the first did.
    let mut echo = Ue::new(&b, 0, &[]);
    for (now, d) in &log.sent {
        if d.to == ues[0].addr() {
            out.push(("MSK push", d.bytes.to_vec()));
            if let Some(ack) = echo.handle(*now, &d.bytes) {
                out.push(("acknowledgement", ack));
            }
        } else {
            out.push(("MTK message", d.bytes.to_vec()));
        }
    }
    for (_, bytes) in &log.objects {
        out.push(("MTK object", bytes.clone()));
    }
    out
}

fn count_by_kind(messages: &[(&'static str, Vec<u8>)]) -> BTreeMap<&'static str, usize> {
    let mut n = BTreeMap::new();
    for (k, _) in messages {
        *n.entry(*k).or_default() += 1;
    }
    n
}

#[test]
fn every_vector_message_shows_the_codec_values() {
    let Some(t) = tshark() else { return };
    let msgs = common::all_messages();
    assert!(!msgs.is_empty());
    let datagrams: Vec<Vec<u8>> = msgs.iter().map(|(_, b)| b.clone()).collect();
    let rows = t.udp("vectors", &datagrams);
    let mut with_keys = 0;
    for ((name, bytes), row) in msgs.iter().zip(&rows) {
        check(name, bytes, row);
        with_keys += usize::from(!row["mbms_mikey.summary"].is_empty());
    }
    assert!(with_keys > 0, "some vector carries a Key ID extension");
    say(&format!(
        "{} vector messages match the codec ({with_keys} with a key summary)",
        msgs.len()
    ));
}

#[test]
fn bmsc_messages_show_the_codec_values() {
    let Some(t) = tshark() else { return };
    let dir = TempDir::new("wireshark-lua-bmsc");
    let msgs = bmsc_messages(&dir);
    let counts = count_by_kind(&msgs);
    for kind in ["MSK push", "acknowledgement", "MTK message", "MTK object"] {
        assert!(
            counts.get(kind).is_some_and(|n| *n > 0),
            "no {kind}: {counts:?}"
        );
    }
    let datagrams: Vec<Vec<u8>> = msgs.iter().map(|(_, b)| b.clone()).collect();
    let rows = t.udp("bmsc", &datagrams);
    let mut key_numbers = Vec::new();
    for ((kind, bytes), row) in msgs.iter().zip(&rows) {
        check(kind, bytes, row);
        let summary = &row["mbms_mikey.summary"];
        match *kind {
            "MSK push" => {
                assert!(summary.starts_with("MSK 00f110/"), "{kind}: {summary}");
                key_numbers.push(row["mbms_mikey.key_number"].clone());
            }
            "MTK message" | "MTK object" => {
                assert!(summary.starts_with("MTK 00f110/"), "{kind}: {summary}");
            }
            _ => {}
        }
    }
    key_numbers.dedup();
    assert!(
        key_numbers.len() > 1,
        "a rotation was seen: {key_numbers:?}"
    );
    say(&format!("BM-SC messages match the codec: {counts:?}"));
}

#[test]
fn an_http_response_with_a_mikey_body_shows_the_codec_values() {
    let Some(t) = tshark() else { return };
    let dir = TempDir::new("wireshark-lua-http");
    let msgs = bmsc_messages(&dir);
    let mut checked = 0;
    for kind in ["MTK object", "MSK push"] {
        let (_, body) = msgs.iter().find(|(k, _)| *k == kind).expect("sent");
        let row = t.http_response(&kind.replace(' ', "-"), body);
        assert_eq!(row["http.content_type"], "application/mikey");
        check(kind, body, &row);
        assert!(!row["mbms_mikey.summary"].is_empty(), "{kind}");
        checked += 1;
    }
    say(&format!(
        "{checked} HTTP bodies of type application/mikey match the codec"
    ));
}

/// MIKEY bodies inside a multipart HTTP body: a well-formed one reads as the
/// codec reads it, an empty one is marked as cut short.
#[test]
fn multipart_parts_of_type_application_mikey_are_dissected() {
    let Some(t) = tshark() else { return };
    let (name, msg) = common::all_messages()
        .into_iter()
        .find(|(n, _)| n.starts_with("msk-message"))
        .expect("an MSK vector");
    for (case, part) in [("whole", msg.as_slice()), ("empty", &[][..])] {
        let mut body = b"--b\r\nContent-Type: application/mikey\r\n\r\n".to_vec();
        body.extend_from_slice(part);
        body.extend_from_slice(b"\r\n--b--\r\n");
        let row = t.http_response_of_type(
            &format!("multipart-{case}"),
            "multipart/mixed; boundary=b",
            &body,
        );
        if part.is_empty() {
            assert!(!row["mbms_mikey.truncated"].is_empty(), "{case}");
        } else {
            check(&name, part, &row);
        }
    }
}

/// A MIKEY-SAKKE-shaped message (the payload order of TS 33.180 I_MESSAGEs),
/// built by the codec: HDR (type SAKKE, PRF 1, GENERIC-ID map), T, RAND, IDR
/// roles 8, 9, 6, SP, SAKKE, EXT type 7 (key parameters), SIGN (ECCSI).
fn sakke_shaped() -> Vec<u8> {
    common::sakke::message(common::sakke::gmk_hdr())
        .encode()
        .expect("encodes")
}

#[test]
fn a_mikey_sakke_shaped_message_shows_its_roles_and_key_parameters() {
    let Some(t) = tshark() else { return };
    let bytes = sakke_shaped();
    let rows = t.udp("sakke", std::slice::from_ref(&bytes));
    let row = &rows[0];
    // The script's values are the codec's ...
    check("MIKEY-SAKKE-shaped", &bytes, row);
    // ... and those the message was built with.
    assert_eq!(row["mbms_mikey.cs_id_map_type"], "2");
    assert_eq!(row["mbms_mikey.idr.role"], "8,9,6");
    assert_eq!(row["mbms_mikey.ext.type"], "7");
    assert_eq!(row["mbms_mikey.key_params"], "4300000000010000");
    assert_eq!(row["mbms_mikey.summary"], "");
    for f in EXPERTS {
        assert_eq!(row[f], "", "{f}");
    }
}

/// `bytes` with the length field at `at` (of `width` octets) set to its
/// largest value.
fn lying(bytes: &[u8], at: usize, width: usize) -> Vec<u8> {
    let mut b = bytes.to_vec();
    b[at..at + width].fill(0xff);
    b
}

#[test]
fn malformed_messages_are_marked_without_a_lua_error() {
    let Some(t) = tshark() else { return };
    let mut good: Vec<(String, Vec<u8>)> = common::all_messages();
    good.push(("MIKEY-SAKKE-shaped".to_owned(), sakke_shaped()));

    // Every truncation of a well-formed message ends inside a field.
    let mut cut = Vec::new();
    for (name, bytes) in &good {
        for n in 1..bytes.len() {
            cut.push((format!("{name} cut to {n}"), bytes[..n].to_vec()));
        }
    }
    let rows = t.udp(
        "truncations",
        &cut.iter().map(|c| c.1.clone()).collect::<Vec<_>>(),
    );
    for ((name, _), row) in cut.iter().zip(&rows) {
        assert!(
            !row["mbms_mikey.truncated"].is_empty() || !row["mbms_mikey.bad_length"].is_empty(),
            "{name}: not marked"
        );
    }

    // Length fields that claim more than there is, found by the codec's offsets.
    let mut lies = Vec::new();
    for (name, bytes) in &common::all_messages() {
        let rx = Message::decode(bytes).expect("decodes");
        for (i, p) in rx.message().payloads.iter().enumerate() {
            let at = rx.payload_offset(i).expect("offset");
            match p {
                // EXT: next ‖ type ‖ length (16).
                Payload::Ext(ext) => {
                    lies.push((format!("{name}: EXT length"), lying(bytes, at + 2, 2)));
                    if matches!(ext, Extension::KeyId(e) if !e.is_empty()) {
                        // The first Key ID Length, after its Type.
                        lies.push((format!("{name}: Key ID length"), lying(bytes, at + 5, 1)));
                    }
                }
                Payload::Rand(_) => {
                    lies.push((format!("{name}: RAND len"), lying(bytes, at + 1, 1)))
                }
                Payload::Kemac(_) => {
                    lies.push((format!("{name}: KEMAC len"), lying(bytes, at + 2, 2)));
                }
                Payload::Id(_) => lies.push((format!("{name}: ID len"), lying(bytes, at + 2, 2))),
                // IDR: next ‖ role ‖ type ‖ len (16); SAKKE: next ‖ params ‖ scheme ‖ len (16).
                Payload::Idr(_) => lies.push((format!("{name}: IDR len"), lying(bytes, at + 3, 2))),
                Payload::Sakke(_) => {
                    lies.push((format!("{name}: SAKKE len"), lying(bytes, at + 3, 2)))
                }
                _ => {}
            }
        }
    }
    assert!(lies.iter().any(|(n, _)| n.ends_with("Key ID length")));
    assert!(lies.iter().any(|(n, _)| n.ends_with("SAKKE len")));
    let rows = t.udp(
        "lying",
        &lies.iter().map(|l| l.1.clone()).collect::<Vec<_>>(),
    );
    for ((name, _), row) in lies.iter().zip(&rows) {
        assert!(
            !row["mbms_mikey.bad_length"].is_empty(),
            "{name}: not marked"
        );
    }

    // Types of unknown length: the first payload of type 13 (unassigned), and
    // CS ID map type 9 with crypto sessions. The walk stops with a warning.
    let mut unknown = Vec::new();
    for (_, bytes) in &good {
        let mut b = bytes.clone();
        b[2] = 13;
        unknown.push(b);
        let mut b = bytes.clone();
        b[8] = b[8].max(1);
        b[9] = 9;
        unknown.push(b);
    }
    for (i, row) in t.udp("unknown", &unknown).iter().enumerate() {
        let name = &good[i / 2].0;
        assert!(
            !row["mbms_mikey.unknown"].is_empty(),
            "{name} ({i}): not marked"
        );
    }

    // Octets after the last payload.
    let trailing: Vec<Vec<u8>> = good
        .iter()
        .map(|(_, b)| [b.as_slice(), &[0x00, 0x2a]].concat())
        .collect();
    for (row, (name, _)) in t.udp("trailing", &trailing).iter().zip(&good) {
        assert!(!row["mbms_mikey.trailing"].is_empty(), "{name}: not marked");
    }

    // Any octet corrupted, and the fuzz corpora: no Lua error (asserted for
    // every frame by the dissection itself), whatever the codec says.
    let mut noise = Vec::new();
    for (_, bytes) in &good {
        for i in 0..bytes.len() {
            let mut b = bytes.clone();
            b[i] ^= 0xff;
            noise.push(b);
        }
    }
    let corpus = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus");
    let mut from_corpus = 0;
    for target in ["mikey_decode", "mikey_roundtrip", "ue_receiver"] {
        let Ok(entries) = std::fs::read_dir(corpus.join(target)) else {
            continue;
        };
        for e in entries {
            let bytes = std::fs::read(e.expect("entry").path()).expect("corpus file");
            if !bytes.is_empty() && bytes.len() < 60_000 {
                noise.push(bytes);
                from_corpus += 1;
            }
        }
    }
    t.udp("noise", &noise);
    say(&format!(
        "malformed: {} truncations, {} lying lengths, {} with trailing octets, {} corrupted \
         or fuzz-corpus inputs ({from_corpus} from the corpus), {} of unknown types: all \
         marked, no Lua error",
        cut.len(),
        lies.len(),
        trailing.len(),
        noise.len(),
        unknown.len()
    ));
}

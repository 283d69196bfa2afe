//! Helpers shared by the integration tests: loading `proto-vectors/`.
#![allow(dead_code)]

use std::path::PathBuf;

use serde_json::Value;

pub fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("proto-vectors")
}

/// Every JSON vector file, by name (without `.json`), sorted.
pub fn load_all() -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(vectors_dir()).expect("proto-vectors/ readable") {
        let path = entry.expect("dir entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("json") {
            continue;
        }
        let text = std::fs::read_to_string(&path).expect("vector readable");
        let v: Value = serde_json::from_str(&text).expect("vector is JSON");
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        out.push((name, v));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

pub fn load(name: &str) -> Value {
    let text = std::fs::read_to_string(vectors_dir().join(format!("{name}.json")))
        .unwrap_or_else(|e| panic!("{name}: {e}"));
    serde_json::from_str(&text).expect("vector is JSON")
}

pub fn hex_field(v: &Value, path: &[&str]) -> Vec<u8> {
    let mut cur = v;
    for p in path {
        cur = &cur[*p];
    }
    hex::decode(
        cur.as_str()
            .unwrap_or_else(|| panic!("{path:?} is not a string")),
    )
    .unwrap_or_else(|e| panic!("{path:?}: {e}"))
}

/// Every complete MIKEY message among the vectors: (name, octets).
pub fn all_messages() -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for (name, v) in load_all() {
        if let Some(m) = v.get("message").and_then(Value::as_str) {
            out.push((name.clone(), hex::decode(m).expect("hex")));
        }
        if let Some(list) = v.get("messages").and_then(Value::as_array) {
            for m in list {
                let n = m["name"].as_str().expect("name");
                // A list of bare messages (`hex`), or of messages with their keys (`message`).
                let (n, hex) = match m.get("hex").and_then(Value::as_str) {
                    Some(hex) => (n.to_string(), hex),
                    None => (
                        format!("{name}-{n}"),
                        m["message"].as_str().expect("hex or message"),
                    ),
                };
                out.push((n, hex::decode(hex).expect("hex")));
            }
        }
    }
    out
}

pub mod postgres;
pub mod sakke;

// Not every test file uses all three.
#[allow(unused_imports)]
pub use mbms_lab::{TempDir, free_port, oracle};

/// Runs a command to completion off the async executor.
pub async fn run_blocking(mut cmd: std::process::Command) -> std::process::Output {
    tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("program runs")
}
